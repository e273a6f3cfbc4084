"""Reusing the earlier stages of an execution: ``run(..., from_stage=S, reuse=ID)``.

A new execution takes the stages ``S`` depends on (its ancestors in the stage graph: for a
linear pipeline, every stage declared before it) from execution ``ID`` as they ended there,
without running them: their output variables and their artifacts (copied into the new
execution's folder, each checked against the hash ``ID`` recorded), recorded as ``Succeeded``
with ``reused_from``. ``S`` and every stage that is not one of its ancestors run.

Before anything is recorded this module refuses what would make the new execution lie: a
reused stage that did not succeed in ``ID``, an artifact that is gone (``gc`` may have removed
it) or changed, a reused stage whose definition changed since ``ID`` ran (each execution
records a fingerprint per stage; older ones only the pipeline's definition hash), and a
variable given a new value that a reused action read through a ``#{variables.NAME}``
reference. What a Python action reads from ``ctx.variables`` in its code cannot be seen, and
the fingerprint of a Python function is its qualified name, not its code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import attrs

from pipelinekit._compiler._plan import Plan
from pipelinekit._model._declarations import Status
from pipelinekit._model._events import Event
from pipelinekit._model._names import did_you_mean
from pipelinekit._model._pipeline import Pipeline
from pipelinekit._model._variables import iter_strings, well_formed_references
from pipelinekit._runtime._replay import ActionState, replay
from pipelinekit._runtime._run_variables import resolve_run_variables, variables_again
from pipelinekit.exceptions import ExecutionError
from pipelinekit.stores import Store

__all__ = [
    "Reuse",
    "plan_reuse",
    "refuse_masked_references",
    "reuse_variables",
    "stage_fingerprints",
]


@attrs.frozen
class Reuse:
    """What a new execution takes from an earlier one, checked before it starts."""

    #: The execution the stages come from.
    execution_id: str
    #: The first stage that runs.
    from_stage: str
    #: The reused stages, in the pipeline's order.
    stages: tuple[str, ...]
    #: The reused actions as they ended in ``execution_id``, by ``"Stage.Action"``.
    actions: Mapping[str, ActionState]
    #: Each reused artifact: where ``execution_id`` left it, and its recorded content hash.
    artifacts: Mapping[str, tuple[Path, str]]


def stage_fingerprints(plan: Plan) -> dict[str, str]:
    """A hash of each stage's definition: its needs, actions, wiring and providers.

    Providers are hashed by their declared fields (a function by its qualified name). Computed
    once per plan (``Plan.stage_fingerprints``); the copy is the caller's.
    """
    return dict(plan.stage_fingerprints)


def _ancestors(plan: Plan, stage: str) -> list[str]:
    """The stages ``stage`` depends on, directly or not, in the pipeline's order."""
    found: set[str] = set()
    waiting = list(plan.stage_needs[stage])
    while waiting:
        current = waiting.pop()
        if current not in found:
            found.add(current)
            waiting.extend(plan.stage_needs[current])
    return [s.name for s in plan.pipeline.stages if s.name in found]


async def plan_reuse(
    store: Store, pipeline: Pipeline, execution_id: str, from_stage: str
) -> tuple[Reuse, Event]:
    """Check that ``pipeline`` can start at ``from_stage`` reusing ``execution_id``.

    Returns what to reuse and the execution's first event; ``ExecutionError`` saying why not.
    """
    plan = pipeline.shared_plan()
    names = [stage.name for stage in pipeline.stages]
    if from_stage not in names:
        hint = did_you_mean(from_stage, names)
        msg = f"pipeline {pipeline.name!r} has no stage {from_stage!r}{hint}"
        raise ExecutionError(msg)
    events = await store.events(execution_id)
    if not events:
        msg = f"the store has no execution {execution_id!r} to reuse stages from"
        raise ExecutionError(msg)
    first = events[0]
    if first.pipeline != pipeline.name:
        msg = (
            f"execution {execution_id} ran pipeline {first.pipeline!r}, not {pipeline.name!r}; "
            "reuse an execution of the same pipeline"
        )
        raise ExecutionError(msg)
    stages = _ancestors(plan, from_stage)
    if not stages:
        msg = (
            f"stage {from_stage!r} of pipeline {pipeline.name!r} depends on no stage: there is "
            "nothing to reuse; run the pipeline without --from"
        )
        raise ExecutionError(msg)
    state = replay(events)
    for name in stages:
        recorded = state.stages.get(name)
        status = recorded.status if recorded is not None else Status.NOT_STARTED
        if status is not Status.SUCCEEDED:
            msg = (
                f"cannot reuse stage {name!r} of execution {execution_id}: it ended {status} "
                f"there (a reused stage must have succeeded); use --from {name} or earlier"
            )
            raise ExecutionError(msg)
    _same_stages(plan, first, stages)
    actions = {node: action for node, action in state.actions.items() if action.stage in stages}
    refuse_masked_references(
        plan,
        actions,
        (node for node in plan.actions if node not in actions),
        f"cannot reuse the stages before {from_stage!r} from execution {execution_id}",
    )
    return Reuse(
        execution_id, from_stage, tuple(stages), actions, _artifacts(plan, first, actions)
    ), first


def _same_stages(plan: Plan, first: Event, stages: list[str]) -> None:
    """Refuse when a reused stage's definition changed since the execution ran."""
    recorded: Mapping[str, str] | None = first.detail.get("stage_fingerprints")
    if recorded is None:
        # Recorded before stages had fingerprints: only the whole definition can be compared.
        digest = first.detail.get("definition_hash")
        if digest is not None and digest != plan.definition_hash():
            msg = (
                f"pipeline {plan.pipeline.name!r} changed since execution {first.execution_id} "
                "ran (it recorded only the whole pipeline's definition), so its stages cannot "
                "be reused; run the whole pipeline"
            )
            raise ExecutionError(msg)
        return
    now = stage_fingerprints(plan)
    changed = [name for name in stages if recorded.get(name) != now[name]]
    if changed:
        msg = (
            f"cannot reuse stage(s) {', '.join(map(repr, changed))} of execution "
            f"{first.execution_id}: their definition changed since it ran; use --from "
            f"{changed[0]} to run them again"
        )
        raise ExecutionError(msg)


def _artifacts(
    plan: Plan, first: Event, actions: Mapping[str, ActionState]
) -> dict[str, tuple[Path, str]]:
    """The artifacts the reused actions made, where the execution left them, with hashes."""
    logs = first.detail.get("logs")
    root = Path(str(logs)).parent if logs else None
    found: dict[str, tuple[Path, str]] = {}
    for node, state in actions.items():
        for name in plan.actions[node].outputs:
            digest = state.artifacts.get(name)
            if root is None or digest is None:
                msg = (
                    f"execution {first.execution_id} recorded no content hash of artifact "
                    f"{name!r} of {node}, so it cannot be reused safely; run the whole pipeline"
                )
                raise ExecutionError(msg)
            found[name] = (root / "artifacts" / name, digest)
    return found


def _references(plan: Plan, node: str) -> Iterator[tuple[str, str]]:
    """``(namespace, name)`` of each well-formed ``#{...}`` reference action ``node`` makes."""
    action = plan.actions[node]
    for declaration in (dict(action.configuration), action.caches, action.provider):
        for _, text in iter_strings(declaration, "#{"):
            yield from well_formed_references(text) or ()


def refuse_masked_references(
    plan: Plan, actions: Mapping[str, ActionState], running: Iterable[str], refused: str
) -> None:
    """Refuse when an action in ``running`` reads an output variable kept only masked.

    ``actions`` are the recorded actions; a succeeded one that is not in ``running`` keeps the
    output variables its events recorded, and those that held a secret were recorded as
    ``****`` (``masked_variables``): handing that on would run the reader with ``****``.
    ``refused`` starts the message (what cannot be done); it ends with the stage to run again.
    """
    will_run = set(running)
    masked: dict[tuple[str, str], str] = {}
    for node, state in actions.items():
        if state.masked_variables and state.status is Status.SUCCEEDED and node not in will_run:
            namespace = plan.actions[node].namespace
            if namespace:
                for name in state.masked_variables:
                    masked[namespace, name] = node
    if not masked:
        return
    for node in plan.actions:
        if node not in will_run:
            continue
        for reference in _references(plan, node):
            producer = masked.get(reference)
            if producer is not None:
                stage = actions[producer].stage
                fix = (
                    f"use --from {stage} to run {producer} again"
                    if _ancestors(plan, stage)
                    else f"run the whole pipeline again (no stage before {stage!r} to reuse)"
                )
                msg = (
                    f"{refused}: {node} reads #{{{reference[0]}.{reference[1]}}}, an output "
                    f"variable of {producer} that held a secret, and the store keeps it only "
                    f"masked (****); {fix}"
                )
                raise ExecutionError(msg)


def _read_by(plan: Plan, nodes: list[str]) -> dict[str, str]:
    """The pipeline variables that ``#{variables.NAME}`` in ``nodes`` read: name -> node."""
    found: dict[str, str] = {}
    for node in nodes:
        action = plan.actions[node]
        for declaration in (dict(action.configuration), action.provider):
            for _, text in iter_strings(declaration, "#{"):
                for namespace, name in well_formed_references(text) or ():
                    if namespace == "variables":
                        found.setdefault(name, node)
    return found


def reuse_variables(
    first: Event, pipeline: Pipeline, reuse: Reuse, given: Mapping[str, str]
) -> dict[str, str]:
    """The new execution's variables: those ``reuse.execution_id`` ran with, and ``given``.

    Secret variables are given again as for a resume. A value that differs from the one the
    reused actions read is refused; a value only the stages that run read may change.
    """
    declared = {variable.name: variable for variable in pipeline.variables}
    masked = set(first.detail.get("masked_variables") or ())
    again = {
        name: value
        for name, value in given.items()
        if name in declared and (declared[name].secret or name in masked)
    }
    values = variables_again(first, pipeline, again)
    read = _read_by(pipeline.shared_plan(), list(reuse.actions))
    for name, value in given.items():
        if name in again or name not in declared:
            continue  # unknown names are refused below, with a did-you-mean
        if name in read and values.get(name) != value:
            msg = (
                f"--var {name}=... changes what reused action {read[name]} of execution "
                f"{reuse.execution_id} read (#{{variables.{name}}}); use --from "
                f"{read[name].split('.')[0]} to run it again with the new value"
            )
            raise ExecutionError(msg)
        values[name] = value
    known = {name: value for name, value in values.items() if name in declared}
    unknown = {name: value for name, value in given.items() if name not in declared}
    return resolve_run_variables(pipeline, {**known, **unknown})
