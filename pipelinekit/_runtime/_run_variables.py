"""A run's pipeline variables: defaults and overrides at the start, again on resume or retry.

The store never keeps a secret's value (events hold it masked), so an execution taken up again
must be given its secret variables anew; ``variables_again`` says which, by name, and why. The
same goes for a plain variable whose value held a secret (the start event names those in
``masked_variables``). Every value is checked where it is given: at most ``MAX_VALUE_BYTES``,
and a secret long enough to be masked (``secret_problem``).
"""

from __future__ import annotations

from collections.abc import Mapping

from pipelinekit._model._declarations import Variable
from pipelinekit._model._events import Event
from pipelinekit._model._limits import MAX_VALUE_BYTES
from pipelinekit._model._names import did_you_mean
from pipelinekit._model._pipeline import Pipeline
from pipelinekit._model._secrets import Masker, secret_problem
from pipelinekit.exceptions import ExecutionError

__all__ = ["resolve_run_variables", "variables_again"]


def _value_problem(variable: Variable, value: str) -> str | None:
    """What is wrong with ``value`` for ``variable`` (too big, or unfit as its secret)."""
    if len(value) * 4 > MAX_VALUE_BYTES:  # else it fits whatever it holds: no encoding needed
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > MAX_VALUE_BYTES:
            return (
                f"variable {variable.name!r} is {size} bytes (UTF-8), over the limit of "
                f"{MAX_VALUE_BYTES} bytes; pass big data as an artifact or a file, and its "
                "path as the variable"
            )
    if variable.secret:
        problem = secret_problem(value)
        if problem is not None:
            return f"secret variable {variable.name!r} {problem}"
    return None


def resolve_run_variables(pipeline: Pipeline, overrides: Mapping[str, str]) -> dict[str, str]:
    """The run's pipeline variables: their defaults, with ``overrides`` applied.

    Raises ``ExecutionError`` when a name is unknown, a value is not a string, is too big or
    is unfit as a secret, or a variable has no value at all.
    """
    declared = {variable.name: variable for variable in pipeline.variables}
    problems = []
    for name, value in overrides.items():
        if name not in declared:
            hint = did_you_mean(name, declared)
            problems.append(
                f"variable {name!r} is not declared by pipeline {pipeline.name!r}{hint}"
            )
        elif not isinstance(value, str):
            problems.append(f"variable {name!r} must be a string (got {type(value).__name__})")
    values: dict[str, str] = {}
    for name, variable in declared.items():
        chosen: object = overrides.get(name, variable.default)
        if chosen is None:
            problems.append(
                f"variable {name!r} has no default; give it a value, e.g. variables="
                f"{{{name!r}: ...}} or --var {name}=..."
            )
        elif isinstance(chosen, str):
            problem = _value_problem(variable, chosen)
            if problem is not None:
                problems.append(problem)
            values[name] = chosen
    if problems:
        raise ExecutionError("; ".join(problems))
    return values


def variables_again(first: Event, pipeline: Pipeline, given: Mapping[str, str]) -> dict[str, str]:
    """The variables a recorded execution runs on with, from its first event.

    Secret values were never recorded: each comes from ``given``, or is the variable's default
    when the execution started with the default. A plain variable whose recorded value was
    masked (it held a secret) is taken from ``given``, or is its default when the default masks
    to what was recorded. Raises ``ExecutionError`` when such a value is missing or unfit, or
    ``given`` names any other variable.
    """
    values = {k: str(v) for k, v in dict(first.detail.get("variables") or {}).items()}
    declared = {variable.name: variable for variable in pipeline.variables}
    masked = set(first.detail.get("masked_variables") or ())
    problems = []
    for name, value in given.items():
        variable = declared.get(name)
        if variable is None:
            hint = did_you_mean(name, declared)
            problems.append(
                f"variable {name!r} is not declared by pipeline {pipeline.name!r}{hint}"
            )
        elif not variable.secret and name not in masked:
            # The value is not shown: it may hold what a secret masked in it.
            problems.append(
                f"variable {name!r} is not secret: execution {first.execution_id} goes on with "
                "the value it started with"
            )
        elif not isinstance(value, str):
            problems.append(f"variable {name!r} must be a string (got {type(value).__name__})")
        elif (problem := _value_problem(variable, value)) is not None:
            problems.append(problem)
    started_with = set(first.detail.get("secrets_given") or ())
    for variable in declared.values():
        if not variable.secret:
            continue
        name = variable.name
        if name in given:
            values[name] = given[name]
        elif name in started_with or variable.default is None:
            problems.append(
                f"secret variable {name!r} had a value given when execution "
                f"{first.execution_id} started, and the store never keeps secrets; give it "
                f"again: variables={{{name!r}: ...}} or --var {name}=..."
            )
        else:
            values[name] = variable.default
    if masked and not problems:
        problems = _unmask_plain(first, declared, masked, given, values)
    if problems:
        raise ExecutionError("; ".join(problems))
    return values


def _unmask_plain(
    first: Event,
    declared: Mapping[str, Variable],
    masked: set[str],
    given: Mapping[str, str],
    values: dict[str, str],
) -> list[str]:
    """Put back the plain variables whose recorded value was masked (from ``given`` or default).

    Returns the problems: those that are neither given nor their default.
    """
    problems = []
    masker = Masker(values[v.name] for v in declared.values() if v.secret)
    for name in sorted(masked):
        variable = declared.get(name)
        if variable is None or variable.secret:
            continue
        if name in given:
            values[name] = given[name]
        elif variable.default is not None and masker.mask(variable.default) == values.get(name):
            values[name] = variable.default
        else:
            problems.append(
                f"variable {name!r} held a secret's value when execution {first.execution_id} "
                f"started, so the store kept it masked; give it again: variables={{{name!r}: "
                f"...}} or --var {name}=..."
            )
    return problems
