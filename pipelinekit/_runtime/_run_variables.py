"""A run's pipeline variables: defaults and overrides at the start, again on resume or retry.

The store never keeps a secret's value (events hold it masked), so an execution taken up again
must be given its secret variables anew; ``variables_again`` says which, by name, and why.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipelinekit._model._events import Event
from pipelinekit._model._names import did_you_mean
from pipelinekit._model._pipeline import Pipeline
from pipelinekit.exceptions import ExecutionError

__all__ = ["resolve_run_variables", "variables_again"]


def resolve_run_variables(pipeline: Pipeline, overrides: Mapping[str, str]) -> dict[str, str]:
    """The run's pipeline variables: their defaults, with ``overrides`` applied.

    Raises ``ExecutionError`` when a name is unknown, a value is not a string or a variable has
    no value at all.
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
            problems.append(f"variable {name!r} must be a string (got {value!r})")
    values: dict[str, str] = {}
    for name, variable in declared.items():
        chosen: object = overrides.get(name, variable.default)
        if chosen is None:
            problems.append(
                f"variable {name!r} has no default; give it a value, e.g. variables="
                f"{{{name!r}: ...}} or --var {name}=..."
            )
        elif isinstance(chosen, str):
            values[name] = chosen
    if problems:
        raise ExecutionError("; ".join(problems))
    return values


def variables_again(first: Event, pipeline: Pipeline, given: Mapping[str, str]) -> dict[str, str]:
    """The variables a recorded execution runs on with, from its first event.

    Secret values were never recorded: each comes from ``given``, or is the variable's default
    when the execution started with the default. Raises ``ExecutionError`` when a secret that
    was given at the start is missing, or ``given`` names anything but a secret variable.
    """
    values = {k: str(v) for k, v in dict(first.detail.get("variables") or {}).items()}
    declared = {variable.name: variable for variable in pipeline.variables}
    problems = []
    for name, value in given.items():
        variable = declared.get(name)
        if variable is None:
            hint = did_you_mean(name, declared)
            problems.append(
                f"variable {name!r} is not declared by pipeline {pipeline.name!r}{hint}"
            )
        elif not variable.secret:
            problems.append(
                f"variable {name!r} is not secret: execution {first.execution_id} goes on with "
                f"the value it started with ({values.get(name)!r})"
            )
        elif not isinstance(value, str):
            problems.append(f"variable {name!r} must be a string (got {value!r})")
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
    if problems:
        raise ExecutionError("; ".join(problems))
    return values
