"""The scheduler: walks a compiled plan with anyio, one task per running action.

Each node of the plan keeps a count of its unfinished predecessors; when an action succeeds, the
counts of its successors drop, and a node whose count reaches zero starts at once (a gate
completes on the spot). Counting avoids waiting on one event per predecessor, which on 10,000
actions costs several times the work itself.

Failure follows CodePipeline: the failed action's running siblings finish, nothing after it in
its stage or in stages that need it starts (they end ``NotStarted``), stages that do not depend
on it go on. Cancelling the caller abandons the running actions (their process groups are
ended) and stops the execution; every change is still recorded.

This module is the walk only: stage states, launching, stopping and the end. Running one action
(attempts, retries, timeouts, context, cache) is ``_attempts``; folders and logs are the
injected ``Workspace``'s; taking up a recorded execution starts from ``_replay``. State changes
go through the ``Recorder``: events are queued synchronously, written to the store in batches,
and announced only after the store returned them. An action's ``InProgress`` is written before
its provider runs (when the store is durable), so a crash can never hide an action that had
started.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import anyio
import anyio.lowlevel
import attrs

from pipelinekit._compiler._plan import GATE
from pipelinekit._model._declarations import Status
from pipelinekit._model._events import Event
from pipelinekit._runtime._attempts import Attempts
from pipelinekit._runtime._replay import replay
from pipelinekit._runtime._results import RunResult, StageResult
from pipelinekit._runtime._reuse import Reuse, stage_fingerprints
from pipelinekit._runtime._run import ActionRecord, Run
from pipelinekit.exceptions import ExecutionError
from pipelinekit.providers._capabilities import is_idempotent
from pipelinekit.stores import CacheEntry

__all__ = ["Scheduler", "default_workdir"]


class Scheduler:
    """Runs one execution of a plan to its end."""

    def __init__(
        self,
        run: Run,
        *,
        recovered: list[Event] | None = None,
        retry: tuple[str, bool] | None = None,
        reuse: Reuse | None = None,
    ) -> None:
        """Prepare to walk ``run``'s plan; ``run()`` does it.

        With ``recovered`` (the events of an interrupted execution) the run takes it up where
        it stopped. With ``retry`` (a stage, and whether only its failed actions run again) too
        it is a new attempt of an ended execution that runs that stage again. With ``reuse``
        a new execution takes the stages it names from an earlier one instead of running them.
        """
        self.recovered = recovered
        self.retry = retry
        self.reuse = reuse
        plan = self.plan = run.plan
        self.workspace = run.workspace
        self.run_ = run
        self.attempts = Attempts(self.run_)
        self.remaining: dict[str, int] = dict(plan.in_degree)
        self.kinds = plan.kinds
        self.successors = plan.successors
        self.exit_gates = {gate: stage for stage, gate in plan.exit_gates.items()}
        self.started_at = run.now()
        #: The result, once the run ended (also when it was cancelled).
        self.result: RunResult | None = None

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked for (nothing new starts)."""
        return self.run_.stopping

    # -- the run -------------------------------------------------------------------------------

    async def run(
        self,
        started: Callable[[], None] | None = None,
        recorded: Callable[[], Awaitable[None]] | None = None,
    ) -> RunResult:
        """Run every action that can run; return the result.

        ``recorded`` is awaited once the execution's start is written (to take its lease),
        ``started`` called after it.
        """
        run = self.run_
        if self.recovered is not None:
            await self._resume(self.recovered)
        else:
            if self.reuse is not None:
                await self._take_reused(self.reuse)  # before anything is recorded: it may refuse
            await self._begin()
        if recorded is not None:
            await recorded()
        if started is not None:
            started()
        try:
            async with anyio.create_task_group() as tasks:
                run.tasks = tasks
                # The roots first, all of them: starting a recovered one changes the counts.
                roots = [node for node, count in self.remaining.items() if count == 0]
                await self._launch(self._runnable(roots))
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                self.result = await self._finish(stopped=True)
            raise
        self.result = await self._finish(stopped=run.stopping)
        return self.result

    def request_stop(self, *, abandon: bool, reason: str = "") -> None:
        """Stop the execution: nothing new starts.

        With ``abandon`` running actions are cancelled (and end ``Abandoned``); otherwise they
        finish first.
        """
        run = self.run_
        if not run.stopping or (abandon and not run.abandoning):
            run.emit(
                "pipeline",
                Status.STOPPING,
                detail={"abandon": abandon, "stop-execution-comments": reason},
            )
        run.stopping = True
        if abandon and not run.abandoning:
            run.abandoning = True
            # Every running action is cancelled at once; run() goes on to record the end.
            if run.tasks is not None:
                run.tasks.cancel_scope.cancel()
        if run.tasks is not None and not run.abandoning:
            run.recorder.flush_soon(run.tasks)

    async def _begin(self) -> None:
        run = self.run_
        run.emit(
            "pipeline",
            Status.IN_PROGRESS,
            detail={
                **run.trigger,
                "variables": run.run_variables,
                "execution_mode": str(self.plan.pipeline.execution_mode),
                "definition_hash": self.plan.definition_hash(),
                # Where the actions' logs go, so they can be followed while they are written.
                "logs": str(self.workspace.logs),
                # The shape of the pipeline, so history can show what never started.
                "stages": {
                    stage.name: [action.name for action in stage.actions]
                    for stage in self.plan.pipeline.stages
                },
                # So that a later run can reuse its stages only while they are unchanged.
                "stage_fingerprints": stage_fingerprints(self.plan),
            },
        )
        if self.reuse is not None:
            self._record_reused(self.reuse)
        await run.recorder.flush()

    async def _take_reused(self, reuse: Reuse) -> None:
        """Take the reused actions' artifacts and variables from the execution they ran in.

        Each artifact is copied into this execution's folder and checked against the hash the
        earlier execution recorded; one that is gone or changed is an ``ExecutionError``.
        """
        run = self.run_
        workspace = self.workspace
        for node, earlier in reuse.actions.items():
            record = run.actions[node]
            outputs = {name: workspace.artifact(name) for name in record.action.outputs}
            if outputs:
                for name, (path, _) in reuse.artifacts.items():
                    if name in outputs and not await anyio.Path(path).is_dir():
                        msg = (
                            f"artifact {name!r} of {node} in execution {reuse.execution_id} is "
                            f"gone ({path}; pipelinekit gc may have removed it), so it cannot "
                            "be reused; run the whole pipeline"
                        )
                        raise ExecutionError(msg)
                await workspace.prepare(node, outputs, again=False)
                entry = CacheEntry(
                    reuse.execution_id,
                    node,
                    {},
                    {
                        name: (str(reuse.artifacts[name][0]), reuse.artifacts[name][1])
                        for name in outputs
                    },
                )
                if not await workspace.restore(entry, outputs):
                    msg = (
                        f"the artifacts of {node} in execution {reuse.execution_id} changed "
                        "since it recorded them, so they cannot be reused; run the whole "
                        "pipeline"
                    )
                    raise ExecutionError(msg)
                hashes = await workspace.seal(outputs)
                record.artifacts = {name: digest for name, (_, digest) in hashes.items()}
                run.artifact_paths.update(outputs)
            record.status = Status.SUCCEEDED
            record.variables = dict(earlier.variables)
            record.masked_variables = earlier.masked_variables
            record.log_path = earlier.log_path
            self._hand_on(record)

    def _hand_on(self, record: ActionRecord) -> None:
        """Make the output variables of a success taken from the record readable by later actions.

        Those that held a secret are on record as ``****``: they are left out, so that code
        reading them fails on a missing value rather than running with ``****`` (references to
        them were refused before the execution started: ``refuse_masked_references``).
        """
        namespace = record.action.namespace
        if namespace:
            values = self.run_.values
            for name, value in record.variables.items():
                if name not in record.masked_variables:
                    values[f"{namespace}.{name}"] = value

    def _record_reused(self, reuse: Reuse) -> None:
        """Put the reused stages on record: ``Succeeded``, with where they come from."""
        run = self.run_
        note = {"reused_from": reuse.execution_id}
        for stage_name in reuse.stages:
            for action in self.plan.pipeline.stage(stage_name).actions:
                record = run.actions[f"{stage_name}.{action.name}"]
                detail: dict[str, object] = {**note, "variables": record.variables}
                if record.masked_variables:  # so that reusing this execution refuses them too
                    detail["masked_variables"] = sorted(record.masked_variables)
                if record.artifacts:
                    detail["artifacts"] = dict(record.artifacts)
                if record.log_path:
                    detail["log_path"] = record.log_path
                run.emit(
                    "action", Status.SUCCEEDED, stage=stage_name, action=action.name, detail=detail
                )
            stage = run.stages[stage_name]
            stage.status = Status.SUCCEEDED
            run.emit("stage", Status.SUCCEEDED, stage=stage_name, detail=note)

    async def _resume(self, events: list[Event]) -> None:
        """Take up a recorded execution where it stopped.

        What succeeded stays done; what was running is run again if its provider is
        idempotent, and fails as interrupted otherwise.
        """
        run = self.run_
        replay(events, into=run.state)
        run.execution_attempt = run.state.attempt
        for record in run.actions.values():
            if record.status is Status.SUCCEEDED:
                self._hand_on(record)
                for name in record.action.outputs:
                    run.artifact_paths[name] = self.workspace.artifact(name)
        if self.retry is not None:
            run.execution_attempt = run.state.attempt + 1
            self._reopen(*self.retry)
            await run.recorder.flush()
            return
        run.emit("pipeline", Status.IN_PROGRESS, detail={"resumed": True})
        for record in run.actions.values():
            if not record.running:
                continue
            if is_idempotent(run.provider(record.action)):
                # Runs again, as a new attempt; the interrupted one ends here.
                recorded = run.state.actions.get(record.node)
                request = recorded.approval if recorded is not None else None
                if request is not None and request.status is Status.WAITING_FOR_APPROVAL:
                    self.attempts.carried[record.node] = request.token
                record.status = Status.NOT_STARTED
                if record.attempts and record.attempts[-1].finished_at is None:
                    record.attempts[-1] = attrs.evolve(
                        record.attempts[-1],
                        status=Status.FAILED,
                        finished_at=run.now(),
                        error="interrupted: the process running it stopped; run again",
                    )
                continue
            message = (
                "interrupted: the process running it stopped; it is not idempotent, so it was "
                "not run again (retry its stage to run it)"
            )
            now = run.now()
            record.status = Status.FAILED
            record.error = message
            record.finished_at = now
            if record.attempts:
                record.attempts[-1] = attrs.evolve(
                    record.attempts[-1], status=Status.FAILED, finished_at=now, error=message
                )
            run.stages[record.stage].failed = True
            run.emit(
                "action",
                Status.FAILED,
                stage=record.stage,
                action=record.name,
                detail={"attempt": len(record.attempts), "error": message, "interrupted": True},
            )
        await run.recorder.flush()

    def _reopen(self, stage_name: str, failed_only: bool) -> None:  # noqa: FBT001 - internal
        """Make ``stage_name`` run again in this new attempt of the execution."""
        run = self.run_
        stage = run.stages[stage_name]
        stage.reopen()
        stage.running = 0
        again = []
        for action in self.plan.pipeline.stage(stage_name).actions:
            record = run.actions[f"{stage_name}.{action.name}"]
            if failed_only and record.status is Status.SUCCEEDED:
                continue
            record.reopen()
            again.append(record.node)
        run.emit(
            "pipeline",
            Status.IN_PROGRESS,
            detail={
                "retry": stage_name,
                "retry_mode": "FAILED_ACTIONS" if failed_only else "ALL_ACTIONS",
                "actions": again,
            },
        )

    # -- the walk ------------------------------------------------------------------------------

    def _runnable(self, nodes: list[str]) -> list[str]:
        """Of ``nodes`` (whose predecessors are done), the actions to start now.

        Recovered successes pass straight through to what they make ready.
        """
        # A worklist, not recursion: a resumed run may pass through thousands of actions that
        # had already succeeded.
        actions = self.run_.actions
        stopping = self.run_.stopping
        runnable: list[str] = []
        waiting = list(reversed(nodes))
        while waiting:
            current = waiting.pop()
            status = actions[current].status
            if status is Status.SUCCEEDED:  # recovered: done before the crash
                waiting.extend(self._made_ready(current))
            elif status is not Status.FAILED and not stopping:  # failures stay failed
                runnable.append(current)
        return runnable

    async def _launch(
        self, nodes: list[str], *, keep_one: bool = False
    ) -> tuple[str, datetime | None] | None:
        """Start the actions ``nodes``, one task each.

        Their first attempts open here, together, so that with a durable store all their
        starts go on record in one transaction before any of them runs, instead of each task
        waiting for the write on its own (for a stage of 30 actions, one wake-up instead of
        30). With a concurrency limit an attempt opens only once the limiter lets it run.

        With ``keep_one`` the last action gets no task: it is returned (with when its attempt
        opened) for the calling task to run, which spares a chain of actions a task each.
        """
        run = self.run_
        assert run.tasks is not None  # noqa: S101 - set before any node starts
        opened: list[datetime | None] = []
        for node in nodes:
            record = run.actions[node]
            self._enter_stage(record)
            if run.limiter is None:
                opened.append(self.attempts.open(record, len(record.attempts) + 1, None))
            else:
                opened.append(None)
        if nodes and run.limiter is None:
            try:
                await run.record_starts()
                # A stop that came during the write must keep them from running; an action
                # that never awaits would otherwise run to its end before noticing.
                await anyio.lowlevel.checkpoint_if_cancelled()
            except anyio.get_cancelled_exc_class():
                # Stopped before they ran: on record as started, so they end Abandoned.
                for node, started in zip(nodes, opened, strict=True):
                    record = run.actions[node]
                    run.stages[record.stage].running -= 1
                    assert started is not None  # noqa: S101 - opened above
                    self.attempts.abandoned(record, len(record.attempts) + 1, started)
                raise
        kept = (nodes[-1], opened[-1]) if keep_one and nodes else None
        count = len(nodes) - 1 if kept else len(nodes)
        for node, started in zip(nodes[:count], opened[:count], strict=True):
            run.tasks.start_soon(self._run_action, node, started, name=f"pipelinekit action {node}")
        return kept

    def _made_ready(self, node: str) -> list[str]:
        """The actions that can start now that ``node`` succeeded (gates pass on the spot)."""
        ready: list[str] = []
        finished = [node]
        remaining = self.remaining
        successors = self.successors
        while finished:
            current = finished.pop()
            for successor in successors[current]:
                remaining[successor] -= 1
                if remaining[successor] == 0:
                    if self.kinds[successor] == GATE:
                        self._gate_passed(successor)
                        finished.append(successor)
                    else:
                        ready.append(successor)
        return ready

    def _gate_passed(self, gate: str) -> None:
        stage_name = self.exit_gates.get(gate)
        if stage_name is not None:
            run = self.run_
            stage = run.stages[stage_name]
            if stage.status is not Status.SUCCEEDED:  # a resumed run may find it done
                stage.status = Status.SUCCEEDED
                stage.finished_at = run.now()
                run.emit("stage", Status.SUCCEEDED, stage=stage_name)

    def _enter_stage(self, record: ActionRecord) -> None:
        run = self.run_
        stage = run.stages[record.stage]
        if stage.started_at is None:
            stage.started_at = run.now()
            stage.status = Status.IN_PROGRESS
            run.emit("stage", Status.IN_PROGRESS, stage=stage.name)
        stage.running += 1

    async def _run_action(self, node: str, opened: datetime | None) -> None:
        """Run the action ``node`` (its stage entered; its first attempt opened at ``opened``).

        Then, in the same task, one of the actions it made ready, and so on down a chain (the
        task keeps the name of the first).
        """
        run = self.run_
        following: tuple[str, datetime | None] | None = (node, opened)
        while following is not None:
            node, opened = following
            record = run.actions[node]
            stage = run.stages[record.stage]
            try:
                succeeded = await self.attempts.run(record, opened)
            except anyio.get_cancelled_exc_class():
                stage.running -= 1
                raise
            stage.running -= 1
            ready = self._runnable(self._made_ready(node)) if succeeded else []
            if succeeded is False:
                stage.failed = True
            if stage.failed and stage.running == 0 and stage.status is Status.IN_PROGRESS:
                stage.status = Status.FAILED
                stage.finished_at = run.now()
                run.emit("stage", Status.FAILED, stage=stage.name)
            if not ready:
                # Not awaited: a background flush writes and announces this action's end.
                assert run.tasks is not None  # noqa: S101 - set before any action runs
                run.recorder.flush_soon(run.tasks)
                return
            # This action's end goes on record with the starts of those it made ready.
            following = await self._launch(ready, keep_one=True)

    # -- the end -------------------------------------------------------------------------------

    async def _finish(self, *, stopped: bool) -> RunResult:
        run = self.run_
        # An action on record as started whose task was cancelled before it ran anything.
        for record in run.actions.values():
            if record.running:
                self.attempts.abandoned(
                    record, len(record.attempts) + 1, record.started_at or run.now()
                )
        now = run.now()
        for stage in run.stages.values():
            if stage.status is Status.IN_PROGRESS:
                stage.status = Status.STOPPED if stopped else Status.FAILED
                stage.finished_at = now
                run.emit("stage", stage.status, stage=stage.name)
        if stopped:
            status = Status.STOPPED
        elif all(stage.status is Status.SUCCEEDED for stage in run.stages.values()):
            status = Status.SUCCEEDED
        else:
            status = Status.FAILED
        run.emit("pipeline", status)
        await run.recorder.flush()
        outputs = run.artifact_paths
        actions = {node: record.result(outputs) for node, record in run.actions.items()}
        stages = {
            stage.name: StageResult(
                stage.name,
                run.stages[stage.name].status,
                run.stages[stage.name].started_at,
                run.stages[stage.name].finished_at,
                tuple(f"{stage.name}.{action.name}" for action in stage.actions),
            )
            for stage in self.plan.pipeline.stages
        }
        return RunResult(
            pipeline=run.pipeline,
            execution_id=run.execution_id,
            status=status,
            started_at=self.started_at,
            finished_at=now,
            stages=stages,
            actions=actions,
            variables={
                key: run.masker.mask(value)
                for key, value in run.values.items()
                if not key.startswith(("codepipeline.", "pipeline."))
            },
            workdir=self.workspace.root,
        )


def default_workdir() -> Path:
    """``.pipelinekit`` in the current directory, or ``$PIPELINEKIT_HOME``."""
    return Path(os.environ.get("PIPELINEKIT_HOME", ".pipelinekit"))
