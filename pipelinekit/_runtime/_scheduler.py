"""The scheduler: walks a compiled plan with anyio, one task per running action.

Each node of the plan keeps a count of its unfinished predecessors; when an action succeeds, the
counts of its successors drop, and a node whose count reaches zero starts at once (a gate
completes on the spot). Counting avoids waiting on one event per predecessor, which on 10,000
actions costs several times the work itself.

Failure follows CodePipeline: the failed action's running siblings finish, nothing after it in
its stage or in stages that need it starts (they end ``NotStarted``), stages that do not depend
on it go on. Cancelling the caller abandons the running actions (their process groups are
ended) and stops the execution; every change is still recorded.

State changes go through the ``Recorder``: events are queued synchronously, written to the store
in batches, and announced only after the store returned them. An action's ``InProgress`` is
written before its provider runs, so a crash can never hide an action that had started.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
import sys
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import attrs

from pipelinekit._compiler._plan import GATE, Plan
from pipelinekit._model._declarations import Action, Status
from pipelinekit._model._events import Event, EventType
from pipelinekit._model._secrets import Masker
from pipelinekit._model._variables import Reference, resolve_value
from pipelinekit._runtime._cache import cache_key, canonical, copy_outputs, hash_outputs
from pipelinekit._runtime._recorder import Recorder
from pipelinekit._runtime._results import ActionResult, Attempt, RunResult, StageResult
from pipelinekit.exceptions import ActionFailed, ActionTimeout, ExecutionError, StoreError
from pipelinekit.providers import ProviderRegistry
from pipelinekit.providers._clock import Clock
from pipelinekit.providers._context import ActionContext, LogFile, MemoryLogFile
from pipelinekit.providers._decisions import Approvals
from pipelinekit.stores import CacheEntry

__all__ = ["Scheduler", "default_workdir"]


@attrs.define
class _ActionState:
    node: str
    stage: str
    action: Action
    status: Status = Status.NOT_STARTED
    attempts: list[Attempt] = attrs.Factory(list)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    variables: dict[str, str] = attrs.Factory(dict)
    log_path: Path | None = None
    action_type: str = ""
    cached: bool = False

    def result(self, outputs: Mapping[str, Path]) -> ActionResult:
        return ActionResult(
            stage=self.stage,
            action=self.action.name,
            status=self.status,
            attempts=tuple(self.attempts),
            started_at=self.started_at,
            finished_at=self.finished_at,
            error=self.error,
            variables=dict(self.variables),
            outputs={name: outputs[name] for name in self.action.outputs if name in outputs},
            log_path=self.log_path,
            cached=self.cached,
        )


@attrs.define
class _StageState:
    name: str
    status: Status = Status.NOT_STARTED
    started_at: datetime | None = None
    finished_at: datetime | None = None
    running: int = 0
    failed: bool = False


class _Missing(ActionFailed):
    pass


def _describe(error: BaseException) -> str:
    if isinstance(error, ActionFailed):
        return str(error) or type(error).__name__
    return f"{type(error).__name__}: {error}"


def _make_read_only(root: Path) -> None:
    # Inputs are the producers' outputs, shared by every consumer: take write bits away so a
    # consumer cannot change what another one reads (root ignores the bits; CI as root relies on
    # the content hashes the store keeps instead).
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _remove_tree(path: Path) -> None:
    def make_writable(function: Any, name: str, _info: object) -> None:  # noqa: ANN401
        Path(name).parent.chmod(0o700)
        Path(name).chmod(0o700)
        function(name)

    if path.exists():
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=make_writable)
        else:  # pragma: no cover - Python 3.11 only knows onerror
            shutil.rmtree(path, onerror=make_writable)


class Scheduler:
    """Runs one execution of a plan to its end."""

    def __init__(
        self,
        *,
        plan: Plan,
        execution_id: str,
        variables: Mapping[str, str],
        executor: Any,  # noqa: ANN401 - any Executor
        recorder: Recorder,
        workdir: Path,
        masker: Masker,
        registry: Callable[[], ProviderRegistry],
        clock: Clock,
        trigger: Mapping[str, Any],
        approvals: Approvals | None = None,
        rng: random.Random | None = None,
        recovered: list[Event] | None = None,
        retry: tuple[str, bool] | None = None,
    ) -> None:
        """Prepare a run; ``run()`` does it.

        With ``recovered`` (the events of an interrupted execution) the run takes it up where
        it stopped. With ``retry`` (a stage, and whether only its failed actions run again) too
        it is a new attempt of an ended execution that runs that stage again.
        """
        self.recovered = recovered
        self.retry = retry
        self.execution_attempt = 1
        if recovered and retry:
            self.execution_attempt = 1 + max(
                int(event.detail.get("execution_attempt", 1)) for event in recovered
            )
        self.rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not secrets
        self.plan = plan
        self.pipeline = plan.pipeline.name
        self.execution_id = execution_id
        self.executor = executor
        self.recorder = recorder
        self.workdir = workdir
        # Absolute: the recorded log paths are read later, from wherever a person runs `logs`.
        self.logs = (workdir / "logs").absolute()
        self.work = workdir / "work"
        self.artifacts = workdir / "artifacts"
        self.masker = masker
        self.registry = registry
        self.clock = clock
        self.trigger = dict(trigger)
        self.approvals = approvals if approvals is not None else Approvals()
        self.values: dict[str, str] = {f"variables.{k}": v for k, v in variables.items()}
        self.values["codepipeline.PipelineExecutionId"] = execution_id
        self.values["pipeline.execution_id"] = execution_id
        self.values["pipeline.name"] = self.pipeline
        self.run_variables = dict(variables)
        graph = plan.graph
        self.remaining: dict[str, int] = dict(graph.in_degree())
        self.kinds: dict[str, str] = dict(graph.nodes(data="kind"))
        type_names: dict[object, str] = {}
        self.actions = {
            node: _ActionState(
                node,
                graph.nodes[node]["stage"],
                action,
                action_type=type_names.get(action.action_type)
                or type_names.setdefault(action.action_type, str(action.action_type)),
            )
            for node, action in plan.actions.items()
        }
        self.stages = {stage.name: _StageState(stage.name) for stage in plan.pipeline.stages}
        self.exit_gates = {gate: stage for stage, gate in plan.exit_gates.items()}
        self.namespaces = {
            action.namespace: node for node, action in plan.actions.items() if action.namespace
        }
        self.artifact_paths: dict[str, Path] = {}
        self.started_at = clock.now()
        # An executor that runs nothing for real (the fake) keeps the run off the disk, and its
        # actions' starts need not be written before they run: no crash can interrupt them.
        self.virtual = bool(getattr(executor, "virtual", False))
        self.log_files: Callable[..., LogFile] = MemoryLogFile if self.virtual else LogFile
        max_concurrency = getattr(executor, "max_concurrency", None)
        self.limiter = anyio.CapacityLimiter(max_concurrency) if max_concurrency else None
        self._tasks: anyio.abc.TaskGroup | None = None
        #: Set by a stop: nothing new starts, and the execution ends Stopped.
        self.stopping = False
        self.abandoning = False
        #: The result, once the run ended (also when it was cancelled).
        self.result: RunResult | None = None

    # -- events --------------------------------------------------------------------------------

    def emit(
        self,
        type_: EventType,
        state: Status,
        *,
        stage: str | None = None,
        action: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Queue an event for the recorder; return its sequence number."""
        masked = self.masker.mask_value(detail) if detail and self.masker else detail
        if self.execution_attempt != 1:
            masked = {**(masked or {}), "execution_attempt": self.execution_attempt}
        sequence = self.recorder.number()
        self.recorder.emit(
            Event(
                type_,
                state,
                self.pipeline,
                self.execution_id,
                self.clock.now(),
                stage,
                action,
                masked,
                sequence,
            )
        )
        return sequence

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
        if self.recovered is not None:
            await self._resume()
        else:
            await self._begin()
        if recorded is not None:
            await recorded()
        if started is not None:
            started()
        try:
            async with anyio.create_task_group() as tasks:
                self._tasks = tasks
                # The roots first, all of them: starting a recovered one changes the counts.
                roots = [node for node, count in self.remaining.items() if count == 0]
                await self._launch(self._runnable(roots))
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                self.result = await self._finish(stopped=True)
            raise
        self.result = await self._finish(stopped=self.stopping)
        return self.result

    def request_stop(self, *, abandon: bool, reason: str = "") -> None:
        """Stop the execution: nothing new starts.

        With ``abandon`` running actions are cancelled (and end ``Abandoned``); otherwise they
        finish first.
        """
        if not self.stopping or (abandon and not self.abandoning):
            self.emit(
                "pipeline",
                Status.STOPPING,
                detail={"abandon": abandon, "stop-execution-comments": reason},
            )
        self.stopping = True
        if abandon and not self.abandoning:
            self.abandoning = True
            # Every running action is cancelled at once; run() goes on to record the end.
            if self._tasks is not None:
                self._tasks.cancel_scope.cancel()
        if self._tasks is not None and not self.abandoning:
            self.recorder.flush_soon(self._tasks)

    async def _begin(self) -> None:
        self.emit(
            "pipeline",
            Status.IN_PROGRESS,
            detail={
                **self.trigger,
                "variables": self.run_variables,
                "execution_mode": str(self.plan.pipeline.execution_mode),
                "definition_hash": self.plan.definition_hash(),
                # Where the actions' logs go, so they can be followed while they are written.
                "logs": str(self.logs),
                # The shape of the pipeline, so history can show what never started.
                "stages": {
                    stage.name: [action.name for action in stage.actions]
                    for stage in self.plan.pipeline.stages
                },
            },
        )
        await self.recorder.flush()

    async def _resume(self) -> None:
        """Take up a recorded execution where it stopped.

        What succeeded stays done; what was running is run again if its provider is
        idempotent, and fails as interrupted otherwise.
        """
        events = self.recovered or []
        for event in events:
            self._recover(event)
        if self.retry is not None:
            self._reopen(*self.retry)
            await self.recorder.flush()
            return
        self.emit("pipeline", Status.IN_PROGRESS, detail={"resumed": True})
        for state in self.actions.values():
            if state.status not in {Status.IN_PROGRESS, Status.WAITING_FOR_APPROVAL}:
                continue
            if getattr(self._provider(state.action), "idempotent", False) is True:
                state.status = Status.NOT_STARTED  # runs again, as a new attempt
                continue
            message = (
                "interrupted: the process running it stopped; it is not idempotent, so it was "
                "not run again (retry its stage to run it)"
            )
            now = self.clock.now()
            state.status = Status.FAILED
            state.error = message
            state.finished_at = now
            if state.attempts:
                last = state.attempts[-1]
                state.attempts[-1] = attrs.evolve(
                    last, status=Status.FAILED, finished_at=now, error=message
                )
            self.stages[state.stage].failed = True
            self.emit(
                "action",
                Status.FAILED,
                stage=state.stage,
                action=state.action.name,
                detail={"attempt": len(state.attempts), "error": message, "interrupted": True},
            )
        await self.recorder.flush()

    def _reopen(self, stage_name: str, failed_only: bool) -> None:  # noqa: FBT001 - internal
        """Make ``stage_name`` run again in this new attempt of the execution."""
        stage = self.stages[stage_name]
        stage.status = Status.NOT_STARTED
        stage.started_at = stage.finished_at = None
        stage.failed = False
        stage.running = 0
        again = []
        for action in self.plan.pipeline.stage(stage_name).actions:
            state = self.actions[f"{stage_name}.{action.name}"]
            if failed_only and state.status is Status.SUCCEEDED:
                continue
            state.status = Status.NOT_STARTED
            state.error = None
            state.finished_at = None
            again.append(state.node)
        self.emit(
            "pipeline",
            Status.IN_PROGRESS,
            detail={
                "retry": stage_name,
                "retry_mode": "FAILED_ACTIONS" if failed_only else "ALL_ACTIONS",
                "actions": again,
            },
        )

    def _recover(self, event: Event) -> None:
        if event.type == "stage" and event.stage in self.stages:
            stage = self.stages[event.stage]
            stage.status = event.state
            if event.state is Status.IN_PROGRESS:
                stage.started_at = stage.started_at or event.time
            else:
                stage.finished_at = event.time
                stage.failed = event.state is Status.FAILED
            return
        if event.type != "action" or event.node not in self.actions:
            return
        state = self.actions[event.node]
        state.status = event.state
        number = int(event.detail.get("attempt", len(state.attempts) or 1))
        if event.state is Status.IN_PROGRESS:
            state.started_at = state.started_at or event.time
            state.attempts.append(Attempt(number, Status.IN_PROGRESS, event.time))
            return
        state.finished_at = event.time
        state.error = event.detail.get("error")
        if state.attempts:
            state.attempts[-1] = attrs.evolve(
                state.attempts[-1], status=event.state, finished_at=event.time, error=state.error
            )
        if event.state is Status.SUCCEEDED:
            state.variables = dict(event.detail.get("variables") or {})
            if event.detail.get("log_path"):
                state.log_path = Path(event.detail["log_path"])
            namespace = state.action.namespace
            for name, value in state.variables.items():
                if namespace:
                    self.values[f"{namespace}.{name}"] = value
            for name in state.action.outputs:
                self.artifact_paths[name] = self.artifacts / name
        elif event.state is Status.FAILED:
            self.stages[state.stage].failed = True

    def _runnable(self, nodes: list[str]) -> list[str]:
        """Of ``nodes`` (whose predecessors are done), the actions to start now.

        Recovered successes pass straight through to what they make ready.
        """
        # A worklist, not recursion: a resumed run may pass through thousands of actions that
        # had already succeeded.
        runnable: list[str] = []
        waiting = list(reversed(nodes))
        while waiting:
            current = waiting.pop()
            status = self.actions[current].status
            if status is Status.SUCCEEDED:  # recovered: done before the crash
                waiting.extend(self._made_ready(current))
            elif status is not Status.FAILED and not self.stopping:  # failures stay failed
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
        assert self._tasks is not None  # noqa: S101 - set before any node starts
        opened: list[datetime | None] = []
        for node in nodes:
            state = self.actions[node]
            self._enter_stage(state)
            if self.limiter is None:
                opened.append(self._open_attempt(state, len(state.attempts) + 1, None))
            else:
                opened.append(None)
        if nodes and self.limiter is None:
            try:
                await self._record_starts()
                # A stop that came during the write must keep them from running; an action
                # that never awaits would otherwise run to its end before noticing.
                await anyio.lowlevel.checkpoint_if_cancelled()
            except anyio.get_cancelled_exc_class():
                # Stopped before they ran: on record as started, so they end Abandoned.
                for node, started in zip(nodes, opened, strict=True):
                    state = self.actions[node]
                    self.stages[state.stage].running -= 1
                    assert started is not None  # noqa: S101 - opened above
                    self._abandoned(state, len(state.attempts) + 1, started)
                raise
        kept = (nodes[-1], opened[-1]) if keep_one and nodes else None
        count = len(nodes) - 1 if kept else len(nodes)
        for node, started in zip(nodes[:count], opened[:count], strict=True):
            self._tasks.start_soon(
                self._run_action, node, started, name=f"pipelinekit action {node}"
            )
        return kept

    async def _record_starts(self) -> None:
        """Put the attempts just opened on record, as the store requires, before they run."""
        if self.recorder.durable and not self.virtual:
            await self.recorder.flush()  # on record before the providers run: crash-safe
        else:
            # Nothing real runs (the fake), or the store forgets everything with the process:
            # no crash can make the record matter, so nothing waits for it. The starts are
            # still written (and announced) at once, by a background flush.
            assert self._tasks is not None  # noqa: S101 - actions run inside run()
            self.recorder.flush_soon(self._tasks)

    def _made_ready(self, node: str) -> list[str]:
        """The actions that can start now that ``node`` succeeded (gates pass on the spot)."""
        ready: list[str] = []
        finished = [node]
        while finished:
            current = finished.pop()
            for successor in self.plan.graph.successors(current):
                self.remaining[successor] -= 1
                if self.remaining[successor] == 0:
                    if self.kinds[successor] == GATE:
                        self._gate_passed(successor)
                        finished.append(successor)
                    else:
                        ready.append(successor)
        return ready

    def _gate_passed(self, gate: str) -> None:
        stage_name = self.exit_gates.get(gate)
        if stage_name is not None:
            stage = self.stages[stage_name]
            if stage.status is not Status.SUCCEEDED:  # a resumed run may find it done
                stage.status = Status.SUCCEEDED
                stage.finished_at = self.clock.now()
                self.emit("stage", Status.SUCCEEDED, stage=stage_name)

    def _enter_stage(self, state: _ActionState) -> None:
        stage = self.stages[state.stage]
        if stage.started_at is None:
            stage.started_at = self.clock.now()
            stage.status = Status.IN_PROGRESS
            self.emit("stage", Status.IN_PROGRESS, stage=stage.name)
        stage.running += 1

    async def _run_action(self, node: str, opened: datetime | None) -> None:
        """Run the action ``node`` (its stage entered; its first attempt opened at ``opened``).

        Then, in the same task, one of the actions it made ready, and so on down a chain (the
        task keeps the name of the first).
        """
        following: tuple[str, datetime | None] | None = (node, opened)
        while following is not None:
            node, opened = following
            state = self.actions[node]
            stage = self.stages[state.stage]
            try:
                succeeded = await self._attempts(state, opened)
            except anyio.get_cancelled_exc_class():
                stage.running -= 1
                raise
            stage.running -= 1
            ready = self._runnable(self._made_ready(node)) if succeeded else []
            if not succeeded:
                stage.failed = True
            if stage.failed and stage.running == 0 and stage.status is Status.IN_PROGRESS:
                stage.status = Status.FAILED
                stage.finished_at = self.clock.now()
                self.emit("stage", Status.FAILED, stage=stage.name)
            if not ready:
                # Not awaited: a background flush writes and announces this action's end.
                assert self._tasks is not None  # noqa: S101 - set before any action runs
                self.recorder.flush_soon(self._tasks)
                return
            # This action's end goes on record with the starts of those it made ready.
            following = await self._launch(ready, keep_one=True)

    async def _attempts(self, state: _ActionState, opened: datetime | None) -> bool:
        action = state.action
        retry = action.retry
        attempts = retry.attempts if retry else 1
        previous: str | None = None
        # A resumed action goes on counting from the attempts it made before the crash.
        first = len(state.attempts) + 1
        last = first + attempts - 1
        for number in range(first, last + 1):
            if self.limiter is None:
                error = await self._attempt(state, number, previous, opened)
            else:
                async with self.limiter:
                    error = await self._attempt(state, number, previous, opened)
            opened = None  # later attempts open themselves
            if error is None:
                return True
            previous = _describe(error)
            if number < last and retry is not None and retry.retries(error) and not self.stopping:
                try:
                    await self.clock.sleep(retry.delay_before(number + 1, self.rng).total_seconds())
                except anyio.get_cancelled_exc_class():
                    # Stopped (or cancelled) between attempts: the action ends here.
                    state.status = Status.ABANDONED
                    state.error = "abandoned between attempts: the execution was stopped"
                    state.finished_at = self.clock.now()
                    self.emit("action", Status.ABANDONED, stage=state.stage, action=action.name)
                    raise
                continue
            state.status = Status.FAILED
            state.error = previous = self.masker.mask(previous)
            state.finished_at = state.attempts[-1].finished_at
            self.emit(
                "action",
                Status.FAILED,
                stage=state.stage,
                action=action.name,
                detail={
                    "attempt": number,
                    "error": previous,
                    "log_path": str(state.log_path) if state.log_path else None,
                },
            )
            return False
        return False  # pragma: no cover - the loop always returns

    def _open_attempt(self, state: _ActionState, number: int, previous: str | None) -> datetime:
        """Mark attempt ``number`` of an action started (an event); return when it started."""
        started = self.clock.now()
        state.status = Status.IN_PROGRESS
        if state.started_at is None:
            state.started_at = started
        detail: dict[str, Any] = {"attempt": number, "action_type": state.action_type}
        if previous is not None:
            detail["previous_error"] = previous
        self.emit(
            "action", Status.IN_PROGRESS, stage=state.stage, action=state.action.name, detail=detail
        )
        return started

    def _abandoned(self, state: _ActionState, number: int, started: datetime) -> None:
        """End attempt ``number`` (and so the action) ``Abandoned``: the execution stopped."""
        finished = self.clock.now()
        state.attempts.append(Attempt(number, Status.ABANDONED, started, finished, "cancelled"))
        state.status = Status.ABANDONED
        state.finished_at = finished
        state.error = (
            "abandoned: the execution was stopped"
            if self.abandoning
            else "abandoned: the execution was cancelled"
        )
        self.emit("action", Status.ABANDONED, stage=state.stage, action=state.action.name)

    async def _attempt(
        self, state: _ActionState, number: int, previous: str | None, opened: datetime | None
    ) -> BaseException | None:
        """Run attempt ``number``; return its error (``None`` when it succeeded).

        ``opened`` is when the attempt was opened (and put on record) by ``_launch``; ``None``
        opens it here.
        """
        action = state.action
        if opened is None:
            started = self._open_attempt(state, number, previous)
            await self._record_starts()
        else:
            started = opened
        log_file = self.log_files(
            self.logs,
            f"{state.node}.log",
            self.masker,
            header=lambda: f"--- {state.node} attempt {number} at {started.isoformat()} ---",
        )
        error: BaseException | None = None
        ctx: ActionContext | None = None
        cached = False
        try:
            ctx, provider = await self._prepare(state, number, log_file)
            if action.cache and not self.virtual:
                cached = await self._from_cache(state, ctx, provider)
            if cached:
                pass  # the outputs and variables of an identical earlier attempt
            elif action.timeout is None:
                await self.executor.execute(provider, ctx)
            else:
                seconds = action.timeout.total_seconds()
                with self.clock.move_on_after(seconds) as scope:
                    await self.executor.execute(provider, ctx)
                if scope.cancelled_caught:
                    error = ActionTimeout(f"timed out after {_human(action.timeout)}")
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._close_log(state, log_file)
                self._abandoned(state, number, started)
            raise
        except StoreError:
            raise  # the run cannot go on without its record; never an action's failure
        except Exception as raised:  # noqa: BLE001 - any provider error fails the attempt
            error = raised
        finished = self.clock.now()
        if error is not None:
            message = self.masker.mask(_describe(error))
            log_file.queue(f"--- attempt {number} failed: {message} ---")
            await self._close_log(state, log_file)
            state.attempts.append(Attempt(number, Status.FAILED, started, finished, message))
            return error
        assert ctx is not None  # noqa: S101 - set when no error was raised
        await self._close_log(state, log_file)
        state.attempts.append(Attempt(number, Status.SUCCEEDED, started, finished))
        await self._succeeded(state, ctx, number, cached=cached)
        return None

    async def _succeeded(
        self, state: _ActionState, ctx: ActionContext, number: int, *, cached: bool
    ) -> None:
        action = state.action
        state.status = Status.SUCCEEDED
        state.finished_at = state.attempts[-1].finished_at
        state.error = None
        state.variables = dict(ctx.output_variables)
        if action.namespace:
            for name, value in ctx.output_variables.items():
                self.values[f"{action.namespace}.{name}"] = value
        ended: dict[str, Any] = {
            "attempt": number,
            "variables": state.variables,
            "log_path": str(state.log_path) if state.log_path else None,
            **self._resolved(state, ctx),
        }
        hashes: dict[str, tuple[str, str]] = {}
        if action.outputs and not self.virtual:
            hashes = await anyio.to_thread.run_sync(hash_outputs, ctx.outputs)
            ended["artifacts"] = {name: digest for name, (_, digest) in hashes.items()}
        if action.cache and not cached and ctx.cache_key is not None:
            entry = CacheEntry(self.execution_id, state.node, dict(state.variables), hashes)
            await self.recorder.store.cache_put(ctx.cache_key, entry)
        if action.outputs and not self.virtual:
            await anyio.to_thread.run_sync(self._seal_outputs, action)
        if cached:
            ended["cached"] = True
            state.cached = True
        self.emit("action", Status.SUCCEEDED, stage=state.stage, action=action.name, detail=ended)

    def _resolved(self, state: _ActionState, ctx: ActionContext) -> dict[str, Any]:
        """What the attempt ran with, references resolved (masked when the event is built)."""
        resolved: dict[str, Any] = {}
        if ctx.configuration:
            resolved["configuration"] = dict(ctx.configuration)
        if state.node in self.plan.referencing:
            resolved["provider"] = canonical(ctx.provider)
        return resolved

    async def _from_cache(self, state: _ActionState, ctx: ActionContext, provider: Any) -> bool:  # noqa: ANN401
        """Reuse an identical earlier attempt's results; ``False`` when there is none."""
        key = await anyio.to_thread.run_sync(
            cache_key, state.action_type, provider, ctx.configuration, ctx.inputs
        )
        ctx.cache_key = key
        entry = await self.recorder.store.cache_get(key)
        if entry is None:
            return False
        if not await anyio.to_thread.run_sync(copy_outputs, entry, ctx.outputs):
            return False
        for name, value in entry.variables.items():
            ctx.set_variable(name, value)
        ctx.log.info("cached", reused=f"{entry.node} of execution {entry.execution_id}")
        return True

    async def _close_log(self, state: _ActionState, log_file: LogFile) -> None:
        if log_file.pending:
            with anyio.CancelScope(shield=True):
                await log_file.flush()
        if log_file.written:
            state.log_path = log_file.path

    def _seal_outputs(self, action: Action) -> None:
        for name in action.outputs:
            _make_read_only(self.artifact_paths[name])

    async def _prepare(
        self, state: _ActionState, number: int, log_file: LogFile
    ) -> tuple[ActionContext, Any]:
        action = state.action
        provider = self._provider(action)
        configuration: Mapping[str, str] = action.configuration
        if state.node in self.plan.referencing:
            lookup = self._lookup
            configuration = resolve_value(configuration, lookup)
            provider = resolve_value(provider, lookup)
        outputs = {name: self.artifacts / name for name in action.outputs}
        inputs = {name: self.artifact_paths[name] for name in action.inputs}
        if (outputs or number > 1) and not self.virtual:
            workdir = self.work / state.node
            await anyio.to_thread.run_sync(self._fresh_dirs, list(outputs.values()), workdir)
        self.artifact_paths.update(outputs)
        ctx = ActionContext(
            execution_id=self.execution_id,
            pipeline=self.pipeline,
            stage=state.stage,
            action=action.name,
            attempt=number,
            inputs=inputs,
            outputs=outputs,
            work_root=self.work,
            configuration=configuration,
            variables=self.values,
            log_file=log_file,
            masker=self.masker,
            clock=self.clock,
            approvals=self.approvals,
            triggered_by=self.trigger.get("triggered_by"),
            report=partial(self._report_approval, state),
        )
        ctx.provider = provider
        return ctx, provider

    async def _report_approval(
        self, state: _ActionState, status: Status, detail: dict[str, Any]
    ) -> int:
        state.status = (
            Status.WAITING_FOR_APPROVAL
            if status is Status.WAITING_FOR_APPROVAL
            else Status.IN_PROGRESS
        )
        sequence = self.emit(
            "approval", status, stage=state.stage, action=state.action.name, detail=detail
        )
        await self.recorder.flush()
        return sequence

    @staticmethod
    def _fresh_dirs(outputs: list[Path], workdir: Path) -> None:
        for path in outputs:
            _remove_tree(path)
            path.mkdir(parents=True)
        _remove_tree(workdir)

    def _provider(self, action: Action) -> Any:  # noqa: ANN401 - any provider
        provider = action.provider
        if callable(getattr(provider, "run", None)):
            return provider
        action_type = action.action_type
        if action_type is None:  # pragma: no cover - validation refuses such actions
            msg = f"{provider!r} has no action type"
            raise ExecutionError(msg)
        return self.registry().build(action_type, action.configuration)

    def _lookup(self, reference: Reference) -> str:
        key = f"{reference.namespace}.{reference.name}"
        value = self.values.get(key)
        if value is not None:
            return value
        producer = self.namespaces.get(reference.namespace)
        if producer is None:
            msg = f"{reference.text} has no value in this run"
        else:
            msg = (
                f"{reference.text} has no value: {producer!r} (namespace "
                f"{reference.namespace!r}) did not set output variable {reference.name!r}"
            )
        raise _Missing(msg)

    # -- the end -------------------------------------------------------------------------------

    async def _finish(self, *, stopped: bool) -> RunResult:
        # An action on record as started whose task was cancelled before it ran anything.
        for state in self.actions.values():
            if state.status in {Status.IN_PROGRESS, Status.WAITING_FOR_APPROVAL}:
                self._abandoned(
                    state, len(state.attempts) + 1, state.started_at or self.clock.now()
                )
        now = self.clock.now()
        for stage in self.stages.values():
            if stage.status is Status.IN_PROGRESS:
                stage.status = Status.STOPPED if stopped else Status.FAILED
                stage.finished_at = now
                self.emit("stage", stage.status, stage=stage.name)
        if stopped:
            status = Status.STOPPED
        elif all(stage.status is Status.SUCCEEDED for stage in self.stages.values()):
            status = Status.SUCCEEDED
        else:
            status = Status.FAILED
        self.emit("pipeline", status)
        await self.recorder.flush()
        outputs = self.artifact_paths
        actions = {node: state.result(outputs) for node, state in self.actions.items()}
        stages = {
            stage.name: StageResult(
                stage.name,
                self.stages[stage.name].status,
                self.stages[stage.name].started_at,
                self.stages[stage.name].finished_at,
                tuple(f"{stage.name}.{action.name}" for action in stage.actions),
            )
            for stage in self.plan.pipeline.stages
        }
        return RunResult(
            pipeline=self.pipeline,
            execution_id=self.execution_id,
            status=status,
            started_at=self.started_at,
            finished_at=now,
            stages=stages,
            actions=actions,
            variables={
                key: self.masker.mask(value)
                for key, value in self.values.items()
                if not key.startswith(("codepipeline.", "pipeline."))
            },
            workdir=self.workdir,
        )


def _human(duration: timedelta) -> str:
    seconds = duration.total_seconds()
    if seconds < 60:  # noqa: PLR2004 - seconds in a minute
        return f"{seconds:g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:02.0f}s"


def default_workdir() -> Path:
    """``.pipelinekit`` in the current directory, or ``$PIPELINEKIT_HOME``."""
    return Path(os.environ.get("PIPELINEKIT_HOME", ".pipelinekit"))
