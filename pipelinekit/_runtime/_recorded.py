"""Taking up a recorded execution: with which pipeline, and whether it may be resumed or retried.

``resume`` and ``retry_stage`` continue an execution from its record. Before anything runs they
check, from the replayed state, that the execution may be continued that way (CodePipeline's
rules for retries included), and find the pipeline to continue it with: the one given, or the
one loaded again from where the execution recorded it was defined, which must be the same
definition.
"""

from __future__ import annotations

from pipelinekit._model._declarations import Status
from pipelinekit._model._events import Event
from pipelinekit._model._loader import load_pipeline
from pipelinekit._model._names import did_you_mean
from pipelinekit._model._pipeline import Pipeline
from pipelinekit._runtime._replay import ExecutionState, replay
from pipelinekit.exceptions import ExecutionError
from pipelinekit.stores import ExecutionSummary, Store

__all__ = ["check_resumable", "check_retryable", "pipeline_for", "refuse_if_not_latest"]

#: How an ended stage (or execution) must have ended for a retry.
_RETRYABLE = frozenset({Status.FAILED, Status.STOPPED})


def check_resumable(state: ExecutionState) -> None:
    """Refuse to resume an execution that has ended."""
    if state.ended:
        retryable = state.retryable_stages()  # what may go on from it, named
        then = (
            f"retry_stage() can run again its stage(s) {', '.join(map(repr, retryable))}"
            if retryable
            else "no stage can be retried; run(from_stage=..., reuse=...) can go on from it"
        )
        msg = (
            f"execution {state.execution_id} already ended {state.status}; nothing to resume "
            f"({then})"
        )
        raise ExecutionError(msg)


def check_retryable(state: ExecutionState, stage: str, pipeline: Pipeline) -> None:
    """Refuse to retry ``stage`` unless the execution ended and the stage failed or stopped."""
    if state.status not in _RETRYABLE:
        if state.status is Status.SUCCEEDED:
            why = "it succeeded; there is nothing to retry"
        else:
            why = f"it is {state.status}; stop it or wait for it to end first"
        msg = f"cannot retry a stage of execution {state.execution_id}: {why}"
        raise ExecutionError(msg)
    names = [s.name for s in pipeline.stages]
    if stage not in names:
        hint = did_you_mean(stage, names)
        msg = f"pipeline {pipeline.name!r} has no stage {stage!r}{hint}"
        raise ExecutionError(msg)
    recorded = state.stages.get(stage)
    ended = recorded.status if recorded is not None else Status.NOT_STARTED
    if ended not in _RETRYABLE:
        msg = (
            f"stage {stage!r} of execution {state.execution_id} ended {ended}; only a failed or "
            "stopped stage can be retried"
        )
        raise ExecutionError(msg)


async def refuse_if_not_latest(store: Store, first: Event, stage: str) -> None:
    """Refuse a retry once a later execution failed in the same stage.

    CodePipeline's rule: retrying the older failure would undo the newer state.
    """
    newer: list[ExecutionSummary] = []
    offset = 0
    while True:
        page = await store.executions(first.pipeline, limit=50, offset=offset)
        newer.extend(s for s in page if s.started_at > first.time)
        if len(page) < 50 or page[-1].started_at <= first.time:  # noqa: PLR2004 - the page size
            break
        offset += 50
    for summary in newer:
        later = replay(await store.events(summary.id)).stages.get(stage)
        if later is not None and later.ever_failed:
            msg = (
                f"cannot retry stage {stage!r} of execution {first.execution_id}: a later "
                f"execution ({summary.id}) failed in it since; retry that one instead"
            )
            raise ExecutionError(msg)


def _load_recorded(first: Event) -> Pipeline:
    """The pipeline an execution recorded it was run from (``FILE:NAME``)."""
    source = first.detail.get("source")
    if not source:
        msg = (
            f"execution {first.execution_id} did not record where pipeline {first.pipeline!r} "
            "is defined; pass it: engine.resume(id, pipeline=...) or pipelinekit resume ID FILE"
        )
        raise ExecutionError(msg)
    pipeline, _ = load_pipeline(str(source))
    return pipeline


def pipeline_for(first: Event, pipeline: Pipeline | None, what: str) -> Pipeline:
    """The pipeline to continue a recorded execution with.

    The one given, or else the one loaded from where the execution recorded it was defined; it
    must be the same definition.
    """
    found = pipeline if pipeline is not None else _load_recorded(first)
    if found.name != first.pipeline:
        msg = f"execution {first.execution_id} ran pipeline {first.pipeline!r}, not {found.name!r}"
        raise ExecutionError(msg)
    _same_definition(found, first, what)
    return found


def _same_definition(pipeline: Pipeline, first: Event, what: str) -> None:
    """Refuse to continue an execution with a pipeline whose structure has changed."""
    recorded = first.detail.get("definition_hash")
    if recorded is not None and recorded != pipeline.shared_plan().definition_hash():
        msg = (
            f"pipeline {pipeline.name!r} changed since execution {first.execution_id} started "
            f"(its stages, actions or wiring differ); {what} with the definition it ran with"
        )
        raise ExecutionError(msg)
