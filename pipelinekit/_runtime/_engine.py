"""``Engine`` and ``Execution``: starting runs, following them, waiting for their results.

An engine is an async context manager that owns a task group; every execution it starts runs in
that group, so leaving ``async with engine:`` waits for them (and cancelling it cancels them).
``run()`` and ``arun()`` are the one-shot forms.
"""

from __future__ import annotations

import inspect
import math
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pipelinekit._model._declarations import TERMINAL, Status
from pipelinekit._model._events import Event, execution_status
from pipelinekit._model._loader import load_pipeline
from pipelinekit._model._names import did_you_mean
from pipelinekit._model._pipeline import Pipeline
from pipelinekit._model._secrets import Masker
from pipelinekit._runtime._decisions import post_decision
from pipelinekit._runtime._recorder import Recorder
from pipelinekit._runtime._results import HookError, RunResult
from pipelinekit._runtime._scheduler import Scheduler, default_workdir
from pipelinekit.exceptions import ExecutionError
from pipelinekit.executors import LocalExecutor
from pipelinekit.providers import ProviderRegistry
from pipelinekit.providers._clock import Clock, SystemClock
from pipelinekit.providers._decisions import Approvals
from pipelinekit.stores import ExecutionSummary, SQLiteStore, Store

__all__ = ["Engine", "Execution", "arun", "run"]


class Execution:
    """A handle on one execution: ``id``, ``await wait()``, ``async for e in events()``."""

    def __init__(self, execution_id: str, pipeline: Pipeline) -> None:
        """Made by ``Engine.start``."""
        self.id = execution_id
        self.pipeline = pipeline
        self._events: list[Event] = []
        self._changed: anyio.Event | None = None
        self._done = anyio.Event()
        self._result: RunResult | None = None
        self._error: BaseException | None = None
        self._senders: list[MemoryObjectSendStream[Event]] = []
        self._scheduler: Scheduler | None = None
        self.status: Status = Status.IN_PROGRESS

    def _announce(self, event: Event) -> None:
        self._events.append(event)
        if event.type == "pipeline":
            self.status = event.state
        for sender in self._senders:
            sender.send_nowait(event)
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def _finish(self, result: RunResult | None, error: BaseException | None) -> None:
        self._result = result
        self._error = error
        self._done.set()
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    @property
    def recorded(self) -> list[Event]:
        """The events announced so far, oldest first."""
        return list(self._events)

    @property
    def result(self) -> RunResult | None:
        """The result once the execution ended (also a Stopped one after cancellation)."""
        return self._result

    @property
    def done(self) -> bool:
        """Whether the execution has ended."""
        return self._done.is_set()

    async def wait(self) -> RunResult:
        """Wait for the end; return the ``RunResult``."""
        await self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._result is not None  # noqa: S101 - set with _done
        return self._result

    async def events(self) -> AsyncIterator[Event]:
        """Every event of the execution, from its first, live until it ends."""
        index = 0
        while True:
            while index < len(self._events):
                yield self._events[index]
                index += 1
            if self._done.is_set():
                return
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()


class Engine:
    """Runs pipelines: ``async with pk.Engine() as engine: execution = await engine.start(p)``.

    ``store`` keeps state (default: ``SQLiteStore`` at ``<workdir>/state.db``); ``hooks`` hear
    about every event of every execution (besides the pipeline's own hooks); ``executor`` runs
    the actions (default:
    ``LocalExecutor()``); ``workdir`` holds executions' artifacts, work folders and logs
    (default ``.pipelinekit``, or ``$PIPELINEKIT_HOME``); ``hook_timeout`` bounds one hook call
    (seconds) and how long a finished execution waits for its hooks.
    """

    def __init__(
        self,
        *,
        store: Store | None = None,
        hooks: Iterable[Any] = (),
        executor: Any = None,  # noqa: ANN401 - any Executor
        workdir: str | Path | None = None,
        registry: ProviderRegistry | None = None,
        hook_timeout: float = 10.0,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        """Configure an engine; nothing runs until ``async with``.

        An execution this engine runs is leased to it for ``lease_seconds`` at a time (default
        30, or ``$PIPELINEKIT_LEASE_SECONDS``), renewed while it runs: another engine can resume
        it only once the lease has expired.

        ``clock`` and ``rng`` (retry jitter) are for tests that need time and chance under
        control.
        """
        self.hooks = tuple(hooks)
        self.executor = executor if executor is not None else LocalExecutor()
        # Absolute, because commands run in their own work folders and get paths from it.
        self.workdir = (Path(workdir) if workdir is not None else default_workdir()).absolute()
        # The default store lives in the working folder, which entering the engine then makes.
        self._default_store = store is None
        self.store: Store = store if store is not None else SQLiteStore(self.workdir / "state.db")
        # Built when first needed: discovering plugins reads every installed package's metadata.
        self._registry = registry
        self.hook_timeout = hook_timeout
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.rng = rng
        self._tasks: anyio.abc.TaskGroup | None = None
        self.executions: dict[str, Execution] = {}
        self.approvals = Approvals()
        #: Who this engine is, in leases: host, process and a random part.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = (
            lease_seconds
            if lease_seconds is not None
            else float(os.environ.get("PIPELINEKIT_LEASE_SECONDS", "30"))
        )

    @property
    def registry(self) -> ProviderRegistry:
        """Provider classes by action type, for actions whose provider has no ``run``."""
        if self._registry is None:
            self._registry = ProviderRegistry.default()
        return self._registry

    async def __aenter__(self) -> Self:
        """Open the engine's task group (and make the working folder of the default store)."""
        if self._default_store:
            await anyio.to_thread.run_sync(partial(self.workdir.mkdir, parents=True, exist_ok=True))
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        """Wait for the executions still running (or cancel them, on error)."""
        assert self._tasks is not None  # noqa: S101 - entered first
        try:
            return await self._tasks.__aexit__(exc_type, exc, traceback)
        except BaseExceptionGroup as group:
            # An error of the code inside `async with engine:` comes back wrapped by the task
            # group; hand it back as it was raised.
            if exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is exc:
                raise exc from exc.__cause__
            raise
        finally:
            self._tasks = None

    async def start(
        self,
        pipeline: Pipeline,
        *,
        variables: Mapping[str, str] | None = None,
        triggered_by: str | None = None,
        trigger: str = "StartPipelineExecution",
        source: str | None = None,
    ) -> Execution:
        """Start an execution of ``pipeline``; return its handle once it is recorded.

        ``variables`` override the pipeline variables' defaults; an unknown name or a variable
        with neither default nor value is an ``ExecutionError``, raised before anything runs.
        """
        if self._tasks is None:
            msg = "the engine is not running: use 'async with pk.Engine(...) as engine:'"
            raise ExecutionError(msg)
        if not isinstance(pipeline, Pipeline):
            msg = f"start() needs a pk.Pipeline (got {type(pipeline).__name__})"
            raise ExecutionError(msg)
        values = resolve_run_variables(pipeline, variables or {})
        execution = Execution(str(uuid.uuid4()), pipeline)
        self.executions[execution.id] = execution
        trigger_detail: dict[str, Any] = {"trigger": trigger, "triggered_by": triggered_by}
        given = sorted(
            v.name for v in pipeline.variables if v.secret and v.name in (variables or {})
        )
        if given:
            # Their names only: the store never keeps a secret, so a resume must be given them
            # again, and must know which ones were not simply their defaults.
            trigger_detail["secrets_given"] = given
        if source is not None:
            # Where the pipeline is defined (FILE:NAME), so a resume can load it again.
            trigger_detail["source"] = source
        await self._tasks.start(self._run, execution, values, trigger_detail)
        return execution

    async def history(
        self, pipeline: Pipeline | str | None = None, *, limit: int = 20, offset: int = 0
    ) -> list[ExecutionSummary]:
        """Past executions (of ``pipeline``, or of all), newest first, ``limit`` at a time."""
        name = pipeline.name if isinstance(pipeline, Pipeline) else pipeline
        return await self.store.executions(name, limit=limit, offset=offset)

    async def approve(self, execution_id: str, action: str, *, by: str, summary: str = "") -> None:
        """Approve the ``ManualApproval`` waiting at ``action`` (``"Stage.Action"``).

        The execution may run in this engine or in another process on the same store (which
        picks the decision up within a second). ``ExecutionError`` when nothing waits there,
        ``by`` may not decide it, or it was decided already.
        """
        await self._decide(execution_id, action, approved=True, by=by, summary=summary)

    async def reject(self, execution_id: str, action: str, *, by: str, summary: str = "") -> None:
        """Reject the ``ManualApproval`` waiting at ``action``: the action and its stage fail.

        Reaches an execution of another process as ``approve`` does.
        """
        await self._decide(execution_id, action, approved=False, by=by, summary=summary)

    async def _decide(
        self, execution_id: str, node: str, *, approved: bool, by: str, summary: str
    ) -> None:
        if self.approvals.is_waiting(execution_id, node):
            self.approvals.decide(
                execution_id, node, approved=approved, by=by, summary=summary, now=self.clock.now()
            )
            return
        await post_decision(
            self.store,
            execution_id,
            node,
            approved=approved,
            by=by,
            summary=summary,
            now=self.clock.now(),
        )

    async def resume(
        self,
        execution_id: str,
        *,
        pipeline: Pipeline | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> Execution:
        """Take up an execution its process left unfinished (a crash, a kill, a reboot).

        What succeeded is not run again; an action that was running is run again if its
        provider is idempotent, and otherwise fails as interrupted (retry its stage to run it).
        Without ``pipeline`` the engine loads it from the file it was run from, if that was
        recorded. An execution still owned by a live process is refused, naming the owner and
        until when it holds the execution.

        The execution keeps the variables it started with, except secret ones: the store never
        keeps their values, so those given when the execution started must be given again in
        ``variables`` (the others take their defaults again).
        """
        events, status = await self._recorded(execution_id)
        if status in TERMINAL:
            msg = (
                f"execution {execution_id} already ended {status}; nothing to resume "
                "(retry a stage to run parts of it again)"
            )
            raise ExecutionError(msg)
        pipeline = _pipeline_for(events[0], pipeline, "resume it")
        values = variables_again(events[0], pipeline, variables or {})
        await self._lease(execution_id)
        return await self._continue(events, pipeline, values)

    async def retry_stage(
        self,
        execution_id: str,
        stage: str,
        *,
        failed_only: bool = True,
        pipeline: Pipeline | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> Execution:
        """Run a failed (or stopped) stage of an ended execution again.

        It is a new attempt of the same execution. ``failed_only`` runs only the actions that
        did not succeed (CodePipeline's ``FAILED_ACTIONS``); otherwise every action of the stage
        runs again (``ALL_ACTIONS``). Stages after it run as they would have. The earlier
        attempt stays in the history. Secret variables given when the execution started must be
        given again in ``variables``, as for ``resume``.
        """
        events, status = await self._recorded(execution_id)
        if status not in {Status.FAILED, Status.STOPPED}:
            if status is Status.SUCCEEDED:
                why = "it succeeded; there is nothing to retry"
            else:
                why = f"it is {status}; stop it or wait for it to end first"
            msg = f"cannot retry a stage of execution {execution_id}: {why}"
            raise ExecutionError(msg)
        pipeline = _pipeline_for(events[0], pipeline, "retry its stages")
        names = [s.name for s in pipeline.stages]
        if stage not in names:
            hint = did_you_mean(stage, names)
            msg = f"pipeline {pipeline.name!r} has no stage {stage!r}{hint}"
            raise ExecutionError(msg)
        ended = [e.state for e in events if e.type == "stage" and e.stage == stage]
        if not ended or ended[-1] not in {Status.FAILED, Status.STOPPED}:
            state = ended[-1] if ended else Status.NOT_STARTED
            msg = (
                f"stage {stage!r} of execution {execution_id} ended {state}; only a failed or "
                "stopped stage can be retried"
            )
            raise ExecutionError(msg)
        values = variables_again(events[0], pipeline, variables or {})
        await self._refuse_if_not_latest(events[0], stage)
        return await self._continue(events, pipeline, values, retry=(stage, failed_only))

    async def _refuse_if_not_latest(self, first: Event, stage: str) -> None:
        """Refuse a retry once a later execution failed in the same stage.

        CodePipeline's rule: retrying the older failure would undo the newer state.
        """
        newer: list[ExecutionSummary] = []
        offset = 0
        while True:
            page = await self.store.executions(first.pipeline, limit=50, offset=offset)
            newer.extend(s for s in page if s.started_at > first.time)
            if len(page) < 50 or page[-1].started_at <= first.time:  # noqa: PLR2004 - the page size
                break
            offset += 50
        for summary in newer:
            later = await self.store.events(summary.id)
            if any(
                e.type == "stage" and e.stage == stage and e.state is Status.FAILED for e in later
            ):
                msg = (
                    f"cannot retry stage {stage!r} of execution {first.execution_id}: a later "
                    f"execution ({summary.id}) failed in it since; retry that one instead"
                )
                raise ExecutionError(msg)

    async def _recorded(self, execution_id: str) -> tuple[list[Event], Status]:
        """An execution's events and its status, for continuing it."""
        if self._tasks is None:
            msg = "the engine is not running: use 'async with pk.Engine(...) as engine:'"
            raise ExecutionError(msg)
        events = await self.store.events(execution_id)
        if not events:
            msg = f"the store has no execution {execution_id!r}"
            raise ExecutionError(msg)
        return events, execution_status(events)

    async def _continue(
        self,
        events: list[Event],
        pipeline: Pipeline,
        values: dict[str, str],
        retry: tuple[str, bool] | None = None,
    ) -> Execution:
        """Run a recorded execution on from its events (resumed, or a stage retried)."""
        assert self._tasks is not None  # noqa: S101 - checked by _recorded
        first = events[0]
        execution = Execution(first.execution_id, pipeline)
        self.executions[first.execution_id] = execution
        trigger = {k: first.detail.get(k) for k in ("trigger", "triggered_by", "source")}
        await self._tasks.start(
            partial(self._run, execution, values, trigger, recovered=events, retry=retry)
        )
        return execution

    async def _lease(self, execution_id: str) -> None:
        """Take the execution's lease for this engine, or say who holds it."""
        now = time.time()
        holder, until = await self.store.acquire(
            execution_id, self.owner, until=now + self.lease_seconds, now=now
        )
        if holder != self.owner:
            when = datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds")
            msg = (
                f"execution {execution_id} is run by {holder} (its lease lasts until {when}); "
                "stop it there, or wait for the lease to expire if that process died"
            )
            raise ExecutionError(msg)

    async def _heartbeat(self, execution_id: str, scheduler: Scheduler) -> None:
        """Renew the lease while the execution runs; pick up stop requests and decisions.

        The lease tells other processes the owner is alive; stop requests and approval
        decisions come from other processes through the store.
        """
        interval = min(self.lease_seconds / 3, 1.0)
        renewed = time.monotonic()
        while True:
            await anyio.sleep(interval)
            if time.monotonic() - renewed >= self.lease_seconds / 3:
                await self._lease(execution_id)
                renewed = time.monotonic()
            request = await self.store.stop_request(execution_id)
            if request is not None:
                abandon, reason = request
                scheduler.request_stop(abandon=abandon, reason=reason)
            await self._take_decisions(execution_id)

    async def _take_decisions(self, execution_id: str) -> None:
        """Hand decisions kept in the store to the approvals of ``execution_id`` waiting here."""
        for node, pending in self.approvals.pending(execution_id):
            if pending.token is None:
                continue  # its request is not on record yet
            decision = await self.store.decision(execution_id, pending.token)
            if decision is None or not self.approvals.is_waiting(execution_id, node):
                continue
            try:
                self.approvals.decide(
                    execution_id,
                    node,
                    approved=decision.approved,
                    by=decision.by,
                    summary=decision.summary,
                    now=decision.time,
                )
            except ExecutionError as error:
                # Checked when it was kept; refused here only if the rules changed meanwhile.
                import structlog  # noqa: PLC0415 - rare, and slow to import

                structlog.get_logger("pipelinekit").warning(
                    "approval decision refused", execution_id=execution_id, error=str(error)
                )

    async def stop(self, execution_id: str, *, abandon: bool = False, reason: str = "") -> None:
        """Stop an execution; it ends ``Stopped``.

        Nothing new starts; running actions finish (``abandon=False``) or are cancelled and end
        ``Abandoned``. It reaches an execution run by another process through the store (that
        process picks it up within a second). Stopping an execution that has ended is an
        ``ExecutionError``.
        """
        events = await self.store.events(execution_id)
        if not events:
            msg = f"the store has no execution {execution_id!r}"
            raise ExecutionError(msg)
        status = execution_status(events)
        if status in TERMINAL:
            msg = f"execution {execution_id} already ended {status}; there is nothing to stop"
            raise ExecutionError(msg)
        earlier = await self.store.stop_request(execution_id)
        if earlier is not None and not abandon and not earlier[0]:
            msg = (
                f"execution {execution_id} is already stopping; stop it with abandon=True to "
                "cancel the actions still running"
            )
            raise ExecutionError(msg)
        await self.store.request_stop(execution_id, abandon=abandon, reason=reason)
        local = self.executions.get(execution_id)
        if local is not None and local._scheduler is not None and not local.done:  # noqa: SLF001
            local._scheduler.request_stop(abandon=abandon, reason=reason)  # noqa: SLF001

    async def _run(
        self,
        execution: Execution,
        values: dict[str, str],
        trigger: dict[str, Any],
        *,
        recovered: list[Event] | None = None,
        retry: tuple[str, bool] | None = None,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        pipeline = execution.pipeline
        _warn_unevaluated(pipeline, execution.id)
        masker = Masker(values[v.name] for v in pipeline.variables if v.secret)
        hooks = [*pipeline.hooks, *self.hooks]
        hook_errors: list[HookError] = []
        result: RunResult | None = None
        error: BaseException | None = None
        started = False
        scheduler: Scheduler | None = None

        def mark_started() -> None:
            nonlocal started
            started = True
            task_status.started()

        try:
            async with anyio.create_task_group() as deliveries:
                for hook in hooks:
                    send, receive = anyio.create_memory_object_stream[Event](math.inf)
                    execution._senders.append(send)  # noqa: SLF001 - the engine owns its executions
                    deliveries.start_soon(self._deliver, hook, receive, hook_errors)
                try:
                    scheduler = Scheduler(
                        plan=pipeline.shared_plan(),
                        execution_id=execution.id,
                        variables=values,
                        executor=self.executor,
                        recorder=Recorder(
                            self.store,
                            execution._announce,  # noqa: SLF001
                            last_sequence=recovered[-1].sequence if recovered else 0,
                        ),
                        workdir=self.workdir / "executions" / execution.id,
                        masker=masker,
                        registry=lambda: self.registry,
                        clock=self.clock,
                        trigger=trigger,
                        approvals=self.approvals,
                        rng=self.rng,
                        recovered=recovered,
                        retry=retry,
                    )

                    heartbeat = anyio.CancelScope()

                    execution._scheduler = scheduler  # noqa: SLF001

                    async def beat() -> None:
                        with heartbeat:
                            await self._heartbeat(execution.id, scheduler)

                    async def take_lease() -> None:
                        await self.store.remember_pipeline(pipeline.shared_plan())
                        await self._lease(execution.id)
                        deliveries.start_soon(beat)

                    result = await scheduler.run(started=mark_started, recorded=take_lease)
                finally:
                    for send in execution._senders:  # noqa: SLF001
                        send.close()
                    heartbeat.cancel()
                    # Hooks get a bounded time to catch up; the result does not wait longer.
                    deliveries.cancel_scope.deadline = anyio.current_time() + self.hook_timeout
                    with anyio.CancelScope(shield=True):
                        await self.store.release(execution.id, self.owner)
        except Exception as failure:
            if not started:
                raise  # start() raises it: nothing was recorded
            error = failure  # handed to whoever waits on the execution
        finally:
            if result is None and scheduler is not None:
                result = scheduler.result  # a cancelled run still has a (Stopped) result
            if result is not None and hook_errors:
                result = _with_hook_errors(result, hook_errors)
            execution._finish(result, error)  # noqa: SLF001

    async def _deliver(
        self,
        hook: Any,  # noqa: ANN401 - any hook
        receive: MemoryObjectReceiveStream[Event],
        errors: list[HookError],
    ) -> None:
        name = _hook_name(hook)
        handler = getattr(hook, "on_event", hook)
        delivered = 0
        async with receive:
            try:
                async for event in receive:
                    delivered += 1
                    try:
                        with anyio.move_on_after(self.hook_timeout) as scope:
                            await _call(handler, event)
                    except Exception as failure:  # noqa: BLE001 - a hook never fails the pipeline
                        errors.append(
                            HookError(name, str(event), f"{type(failure).__name__}: {failure}")
                        )
                    else:
                        if scope.cancelled_caught:
                            errors.append(
                                HookError(
                                    name, str(event), f"timed out after {self.hook_timeout:g}s"
                                )
                            )
            except anyio.get_cancelled_exc_class():
                left = receive.statistics().current_buffer_used
                errors.append(
                    HookError(name, "(remaining events)", f"gave up with {left} events undelivered")
                )
                raise


async def _call(handler: Callable[[Event], Any], event: Event) -> None:
    if inspect.iscoroutinefunction(handler):
        await handler(event)
        return
    returned = await anyio.to_thread.run_sync(handler, event, abandon_on_cancel=True)
    if inspect.isawaitable(returned):
        await returned


def _hook_name(hook: Any) -> str:  # noqa: ANN401 - any hook
    return getattr(hook, "__qualname__", None) or type(hook).__name__


def _with_hook_errors(result: RunResult, errors: list[HookError]) -> RunResult:
    import attrs  # noqa: PLC0415 - only needed when a hook failed

    return attrs.evolve(result, hook_errors=tuple(errors))


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


def _warn_unevaluated(pipeline: Pipeline, execution_id: str) -> None:
    """Say so when the pipeline declares stage conditions, which runs do not evaluate yet.

    They are part of the model (validated, compiled, kept with the definition) so that
    CodePipeline declarations load whole; a run goes on as if they were absent, and a person
    relying on one (a deployment window, say) must hear of it rather than find out later.
    """
    stages = [s.name for s in pipeline.stages if s.before_entry or s.on_success or s.on_failure]
    if stages:
        import structlog  # noqa: PLC0415 - rare, and slow to import

        structlog.get_logger("pipelinekit").warning(
            "stage conditions are not evaluated by this version of pipelinekit: the stages run "
            "as if they had none",
            pipeline=pipeline.name,
            execution_id=execution_id,
            stages=stages,
        )


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


async def arun(
    pipeline: Pipeline,
    *,
    variables: Mapping[str, str] | None = None,
    store: Store | None = None,
    hooks: Iterable[Any] = (),
    executor: Any = None,  # noqa: ANN401 - any Executor
    max_concurrency: int | None = None,
    workdir: str | Path | None = None,
    triggered_by: str | None = None,
) -> RunResult:
    """Run ``pipeline`` to its end inside a running event loop; return the result.

    ``max_concurrency`` bounds how many actions run at once (with the default executor).
    """
    if executor is None:
        executor = LocalExecutor(max_concurrency=max_concurrency)
    elif max_concurrency is not None:
        msg = "pass max_concurrency to your executor, not to arun(), when you give one"
        raise ExecutionError(msg)
    async with Engine(store=store, hooks=hooks, executor=executor, workdir=workdir) as engine:
        execution = await engine.start(pipeline, variables=variables, triggered_by=triggered_by)
        return await execution.wait()


def run(
    pipeline: Pipeline,
    *,
    variables: Mapping[str, str] | None = None,
    store: Store | None = None,
    hooks: Iterable[Any] = (),
    executor: Any = None,  # noqa: ANN401 - any Executor
    max_concurrency: int | None = None,
    workdir: str | Path | None = None,
    triggered_by: str | None = None,
) -> RunResult:
    """Run ``pipeline`` to its end and return the result (blocking; starts its own event loop)."""
    return anyio.run(
        partial(
            arun,
            pipeline,
            variables=variables,
            store=store,
            hooks=hooks,
            executor=executor,
            max_concurrency=max_concurrency,
            workdir=workdir,
            triggered_by=triggered_by,
        )
    )


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


def _pipeline_for(first: Event, pipeline: Pipeline | None, what: str) -> Pipeline:
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
