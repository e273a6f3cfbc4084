"""``Engine``: starting executions and following them; ``run()`` and ``arun()``.

An engine is an async context manager that owns a task group; every execution it starts runs in
that group, so leaving ``async with engine:`` waits for them (and cancelling it cancels them).
Leaving it also closes what the runs used: the providers that hold resources and the executor
(``aclose()``, once each). ``run()`` and ``arun()`` are the one-shot forms.

The engine wires the parts of a run together and does little itself: the scheduler walks the
plan, the recorder writes the record, delivery hands events to hooks, leases say who runs what,
replay reads the record back, run variables are resolved and given again on resume.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.abc

from pipelinekit._model._declarations import TERMINAL, Status
from pipelinekit._model._events import Event
from pipelinekit._model._limits import shown
from pipelinekit._model._pipeline import Pipeline
from pipelinekit._model._secrets import Masker
from pipelinekit._runtime._artifacts import DiskWorkspace, WorkspaceFactory
from pipelinekit._runtime._blobs import CacheFolder
from pipelinekit._runtime._collector import collector_tuned_for_a_run
from pipelinekit._runtime._decisions import decide, take_decisions
from pipelinekit._runtime._delivery import HookHandler, deliver, with_hook_errors
from pipelinekit._runtime._errors import raise_plain
from pipelinekit._runtime._execution import Execution, ExecutionFeed
from pipelinekit._runtime._lease import Leases, lease_length
from pipelinekit._runtime._recorded import (
    check_resumable,
    check_retryable,
    pipeline_for,
    refuse_if_not_latest,
)
from pipelinekit._runtime._recorder import Recorder
from pipelinekit._runtime._replay import ExecutionState, replay
from pipelinekit._runtime._results import HookError, RunResult
from pipelinekit._runtime._reuse import (
    Reuse,
    plan_reuse,
    refuse_masked_references,
    reuse_variables,
)
from pipelinekit._runtime._run import Run
from pipelinekit._runtime._run_variables import resolve_run_variables, variables_again
from pipelinekit._runtime._scheduler import Scheduler, default_workdir
from pipelinekit._runtime._takeover import Owner, ProcessLedger, end_leftovers
from pipelinekit._thread import WorkerThread
from pipelinekit.exceptions import ExecutionError
from pipelinekit.executors import Executor, LocalExecutor
from pipelinekit.hooks import Hook
from pipelinekit.providers import ProviderRegistry
from pipelinekit.providers._capabilities import Closeable
from pipelinekit.providers._clock import Clock, SystemClock
from pipelinekit.providers._decisions import Approvals
from pipelinekit.stores import ExecutionSummary, SQLiteStore, Store

__all__ = ["Engine", "Execution", "arun", "run"]

#: How long (seconds) the engine waits for one part's ``aclose()`` when it closes.
CLOSE_TIMEOUT = 10.0


def _check_concurrency(value: object) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        msg = f"max_concurrency must be a whole number >= 1 (got {value!r})"
        raise ExecutionError(msg)
    return value


def _check_use_cache(value: object) -> bool:
    if type(value) is not bool:
        msg = (
            "use_cache must be True or False (False restores nothing from caches, as "
            f"--no-cache) (got {shown(value)})"
        )
        raise ExecutionError(msg)
    return value


def _check_reuse_request(from_stage: object, reuse: object) -> None:
    """``from_stage`` and ``reuse`` go together, as a stage name and an execution id."""
    if (from_stage is None) != (reuse is None):
        msg = (
            "from_stage and reuse go together: start at a stage, reusing the stages "
            "before it from an execution (got only "
            f"{'from_stage' if reuse is None else 'reuse'})"
        )
        raise ExecutionError(msg)
    if from_stage is not None and not isinstance(from_stage, str):
        msg = f"from_stage must be a stage name, e.g. from_stage='Test' (got {shown(from_stage)})"
        raise ExecutionError(msg)
    if reuse is not None and not isinstance(reuse, str):
        msg = f"reuse must be an execution id, e.g. reuse=result.execution_id (got {shown(reuse)})"
        raise ExecutionError(msg)


class Engine:
    """Runs pipelines: ``async with pk.Engine() as engine: execution = await engine.start(p)``.

    ``store`` keeps state (default: ``SQLiteStore`` at ``<workdir>/state.db``); ``hooks`` hear
    about every event of every execution (besides the pipeline's own hooks); ``executor`` runs
    the actions (default: ``LocalExecutor()``); ``max_concurrency`` bounds how many actions of
    one execution run at once (default: no bound beyond the pipeline's shape); ``workdir`` holds
    executions' artifacts, work folders and logs (default ``.pipelinekit``, or
    ``$PIPELINEKIT_HOME``); ``hook_timeout`` bounds one hook call (seconds) and how long a
    finished execution waits for its hooks.
    """

    def __init__(
        self,
        *,
        store: Store | None = None,
        hooks: Iterable[Hook | HookHandler] = (),
        executor: Executor | None = None,
        max_concurrency: int | None = None,
        workdir: str | Path | None = None,
        registry: ProviderRegistry | None = None,
        hook_timeout: float = 10.0,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        lease_seconds: float | None = None,
        workspaces: WorkspaceFactory = DiskWorkspace,
        use_cache: bool = True,
    ) -> None:
        """Configure an engine; nothing runs until ``async with``.

        An execution this engine runs is leased to it for ``lease_seconds`` at a time (default
        30, or ``$PIPELINEKIT_LEASE_SECONDS``), renewed while it runs: another engine can resume
        it only once the lease has expired.

        ``clock``, ``rng`` (retry jitter) and ``workspaces`` (what makes an execution's folders
        from its path) are for test doubles that need time, chance and the disk under control.
        """
        self.hooks = tuple(hooks)
        self.executor: Executor = executor if executor is not None else LocalExecutor()
        # Like the store: an executor the engine made is the engine's to close; one it was
        # given is the caller's (it may serve other engines).
        self._owns_executor = executor is None
        self.max_concurrency = _check_concurrency(max_concurrency)
        # Absolute, because commands run in their own work folders and get paths from it.
        self.workdir = (Path(workdir) if workdir is not None else default_workdir()).absolute()
        # The default store lives in the working folder, which entering the engine then makes.
        self._default_store = store is None
        # A store the engine made is the engine's to close; one it was given is the caller's.
        self._owned_store: SQLiteStore | None = None
        if store is None:
            store = self._owned_store = SQLiteStore(self.workdir / "state.db")
        self.store: Store = store
        # Built when first needed: discovering plugins reads every installed package's metadata.
        self._registry = registry
        self.hook_timeout = hook_timeout
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.rng = rng
        self.workspaces = workspaces
        #: ``False`` (``pipelinekit run --no-cache``): nothing is restored from a cache
        #: (``cache=True`` results, ``pk.Cache`` folders); what succeeds is still saved.
        self.use_cache = _check_use_cache(use_cache)
        # Small file work of the runs (log lines, work folders): one thread, cheap to reach.
        self._files = WorkerThread("pipelinekit files")
        self._tasks: anyio.abc.TaskGroup | None = None
        #: The executions started, resumed or retried by this engine, by id.
        self.executions: dict[str, Execution] = {}
        self._schedulers: dict[str, Scheduler] = {}
        #: Providers the runs used that hold resources, closed with the engine (by identity).
        self._to_close: dict[int, Closeable] = {}
        self._closeable_types: dict[type, bool] = {}
        # Decisions are kept in the store first: the first one kept wins, here or elsewhere.
        self.approvals = Approvals(keep=self.store.put_decision)
        #: Who this engine is, in leases: host, process, a random part and the process's start.
        self.owner = str(Owner.this_process())
        self.lease_seconds = lease_length(lease_seconds)
        self.leases = Leases(self.store, self.owner, self.lease_seconds, self.clock)

    @property
    def registry(self) -> ProviderRegistry:
        """Provider classes by action type, for actions whose provider has no ``run``."""
        if self._registry is None:
            self._registry = ProviderRegistry.default()
        return self._registry

    async def __aenter__(self) -> Self:
        """Open the engine's task group (and make the working folder of the default store)."""
        if self._default_store:
            try:
                await anyio.to_thread.run_sync(
                    partial(self.workdir.mkdir, parents=True, exist_ok=True)
                )
            except OSError as error:
                reason = error.strerror or str(error)
                msg = (
                    f"cannot use {str(self.workdir)!r} as the working folder ({reason}); give "
                    "a folder this process may write to (workdir=..., or --store)"
                )
                raise ExecutionError(msg) from None
        self._tasks = anyio.create_task_group()
        await self._tasks.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        """Wait for the executions still running (or cancel them, on error); close their parts."""
        assert self._tasks is not None  # noqa: S101 - entered first
        try:
            return await self._tasks.__aexit__(exc_type, exc, traceback)
        except BaseExceptionGroup as group:
            # An error of the code inside `async with engine:` comes back wrapped by the task
            # group; hand it back as it was raised.
            if exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is exc:
                raise exc from exc.__cause__
            raise_plain(group)
        finally:
            self._tasks = None
            with anyio.CancelScope(shield=True):
                await self._close_parts()

    async def _close_parts(self) -> None:
        """``aclose()`` the providers the runs used, once each, and what the engine made.

        What the engine made itself (the default store, the default executor) is closed too;
        a store or executor given to it is the caller's. Each part gets ``CLOSE_TIMEOUT``
        seconds: one that hangs is given up on (and said so), never waited for forever.
        """
        self._files.close()
        if self._owned_store is not None:
            await anyio.to_thread.run_sync(self._owned_store.close)
        closing: list[Closeable] = list(self._to_close.values())
        self._to_close.clear()
        if self._owns_executor and isinstance(self.executor, Closeable):
            closing.append(self.executor)
        for part in closing:
            problem: str | None = None
            try:
                with anyio.move_on_after(CLOSE_TIMEOUT) as scope:
                    await part.aclose()
                if scope.cancelled_caught:
                    problem = f"aclose() took longer than {CLOSE_TIMEOUT:g}s; gave up on it"
            except Exception as error:  # noqa: BLE001 - one part failing to close spares the others
                problem = f"{type(error).__name__}: {error}"
            if problem is not None:
                from pipelinekit.providers._log import library_logger  # noqa: PLC0415 - rare

                library_logger().warning("closing failed", part=repr(part), error=problem)

    def _used(self, provider: object) -> None:
        """Remember a provider a run used, to close it with the engine if it holds anything."""
        kind = type(provider)
        closeable = self._closeable_types.get(kind)
        if closeable is None:
            # A protocol check costs microseconds, and a run asks it for every action.
            closeable = self._closeable_types[kind] = isinstance(provider, Closeable)
        if closeable:
            self._to_close.setdefault(id(provider), provider)  # type: ignore[arg-type]  # checked by type above

    async def start(
        self,
        pipeline: Pipeline,
        *,
        variables: Mapping[str, str] | None = None,
        triggered_by: str | None = None,
        trigger: str = "StartPipelineExecution",
        source: str | None = None,
        from_stage: str | None = None,
        reuse: str | None = None,
    ) -> Execution:
        """Start an execution of ``pipeline``; return its handle once it is recorded.

        ``variables`` override the pipeline variables' defaults; an unknown name or a variable
        with neither default nor value is an ``ExecutionError``, raised before anything runs.

        With ``from_stage`` and ``reuse`` (an execution id, both or neither) the new execution
        takes the stages ``from_stage`` depends on from execution ``reuse`` without running
        them: their output variables and artifacts, recorded ``Succeeded`` with
        ``reused_from``. It runs ``from_stage`` and every other stage. It starts with the
        variables ``reuse`` ran with (secret ones given again); ``variables`` may change those
        the reused actions did not read. Refused (``ExecutionError``, nothing recorded) when a
        reused stage did not succeed there or changed since, or its artifacts are gone.
        """
        tasks = self._running()
        if not isinstance(pipeline, Pipeline):
            msg = f"start() needs a pk.Pipeline (got {type(pipeline).__name__})"
            raise ExecutionError(msg)
        reused: Reuse | None = None
        _check_reuse_request(from_stage, reuse)
        if from_stage is not None and reuse is not None:
            reused, first = await plan_reuse(self.store, pipeline, reuse, from_stage)
            values = reuse_variables(first, pipeline, reused, variables or {})
        else:
            values = resolve_run_variables(pipeline, variables or {})
        execution_id = str(uuid.uuid4())
        trigger_detail: dict[str, Any] = {"trigger": trigger, "triggered_by": triggered_by}
        if reused is not None:
            trigger_detail["reused_from"] = reused.execution_id
            trigger_detail["from_stage"] = reused.from_stage
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
        execution, feed = self._execution(execution_id, pipeline)
        await tasks.start(partial(self._run, execution, feed, values, trigger_detail, reuse=reused))
        return execution

    def _running(self) -> anyio.abc.TaskGroup:
        if self._tasks is None:
            msg = "the engine is not running: use 'async with pk.Engine(...) as engine:'"
            raise ExecutionError(msg)
        return self._tasks

    def _execution(self, execution_id: str, pipeline: Pipeline) -> tuple[Execution, ExecutionFeed]:
        feed = ExecutionFeed()
        execution = Execution(execution_id, pipeline, feed, self._stop_from_handle)
        self.executions[execution_id] = execution
        return execution, feed

    async def _stop_from_handle(self, execution_id: str, abandon: bool, reason: str) -> None:  # noqa: FBT001 - Execution.stop's callback
        await self.stop(execution_id, abandon=abandon, reason=reason)

    async def history(
        self, pipeline: Pipeline | str | None = None, *, limit: int = 20, offset: int = 0
    ) -> list[ExecutionSummary]:
        """Past executions (of ``pipeline``, or of all), newest first, ``limit`` at a time."""
        name = pipeline.name if isinstance(pipeline, Pipeline) else pipeline
        return await self.store.executions(name, limit=limit, offset=offset)

    async def approve(self, execution_id: str, action: str, *, by: str, summary: str = "") -> None:
        """Approve the ``ManualApproval`` waiting at ``action`` (``"Stage.Action"``).

        The execution may run in this engine or in another process on the same store (which
        picks the decision up within a second). The first decision kept in the store stands:
        ``ExecutionError`` when nothing waits there, ``by`` is blank or may not decide it, or it
        was decided already (saying by whom, and when).
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
        await decide(
            self.store,
            self.approvals,
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
        events, state = await self._recorded(execution_id)
        check_resumable(state)
        pipeline = pipeline_for(events[0], pipeline, "resume it")
        values = variables_again(events[0], pipeline, variables or {})
        refuse_masked_references(
            pipeline.shared_plan(),
            state.actions,
            _to_run(pipeline, state),
            f"cannot resume execution {execution_id}",
        )
        dead = await self.leases.take(execution_id)
        try:
            # Nothing runs again while anything the dead owner started still runs.
            await end_leftovers(self._ledger(execution_id), execution_id, self.owner, dead=dead)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.leases.release(execution_id)
            raise
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
        events, state = await self._recorded(execution_id)
        pipeline = pipeline_for(events[0], pipeline, "retry its stages")
        check_retryable(state, stage, pipeline)
        values = variables_again(events[0], pipeline, variables or {})
        again = {
            f"{stage}.{action.name}"
            for action in pipeline.stage(stage).actions
            if not failed_only
            or state.actions.get(f"{stage}.{action.name}") is None
            or state.actions[f"{stage}.{action.name}"].status is not Status.SUCCEEDED
        }
        refuse_masked_references(
            pipeline.shared_plan(),
            state.actions,
            again | _to_run(pipeline, state),
            f"cannot retry stage {stage!r} of execution {execution_id}",
        )
        await refuse_if_not_latest(self.store, events[0], stage)
        return await self._continue(events, pipeline, values, retry=(stage, failed_only))

    async def _recorded(self, execution_id: str) -> tuple[list[Event], ExecutionState]:
        """An execution's events and its state, for continuing it."""
        self._running()
        events = await self.store.events(execution_id)
        if not events:
            msg = f"the store has no execution {execution_id!r}"
            raise ExecutionError(msg)
        return events, replay(events)

    async def _continue(
        self,
        events: list[Event],
        pipeline: Pipeline,
        values: dict[str, str],
        retry: tuple[str, bool] | None = None,
    ) -> Execution:
        """Run a recorded execution on from its events (resumed, or a stage retried)."""
        tasks = self._running()
        first = events[0]
        execution, feed = self._execution(first.execution_id, pipeline)
        trigger = {k: first.detail.get(k) for k in ("trigger", "triggered_by", "source")}
        await tasks.start(
            partial(self._run, execution, feed, values, trigger, recovered=events, retry=retry)
        )
        return execution

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
        status = replay(events).status
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
        scheduler = self._schedulers.get(execution_id)
        if scheduler is not None:
            scheduler.request_stop(abandon=abandon, reason=reason)

    def _scheduler(
        self,
        *,
        execution: Execution,
        feed: ExecutionFeed,
        values: dict[str, str],
        trigger: dict[str, Any],
        masker: Masker,
        recovered: list[Event] | None,
        retry: tuple[str, bool] | None,
        processes: ProcessLedger,
        reuse: Reuse | None = None,
    ) -> Scheduler:
        """A scheduler for ``execution``, wired to this engine's parts."""
        run = Run(
            plan=execution.pipeline.shared_plan(),
            execution_id=execution.id,
            variables=values,
            executor=self.executor,
            recorder=Recorder(
                self.store,
                feed.announce,
                last_sequence=recovered[-1].sequence if recovered else 0,
            ),
            workspace=self.workspaces(
                self.workdir / "executions" / execution.id,
                files=self._files,
                cache=CacheFolder(self.workdir / "cache"),
                use_cache=self.use_cache,
            ),
            masker=masker,
            processes=processes,
            registry=lambda: self.registry,
            clock=self.clock,
            trigger=trigger,
            approvals=self.approvals,
            rng=self.rng if self.rng is not None else random.Random(),  # noqa: S311 - jitter
            max_concurrency=self.max_concurrency,
            used=self._used,
        )
        return Scheduler(run, recovered=recovered, retry=retry, reuse=reuse)

    async def _let_go(self, execution_id: str, ledger: ProcessLedger) -> None:
        """Release the lease of an execution that ended here, and its process ledger."""
        with anyio.CancelScope(shield=True):
            await self.leases.release(execution_id)
            await ledger.forget()

    def _ledger(self, execution_id: str) -> ProcessLedger:
        return ProcessLedger(self.workdir / "processes", execution_id, self.owner, self._files)

    async def _beat(
        self, scope: anyio.CancelScope, execution_id: str, scheduler: Scheduler
    ) -> None:
        """Keep the lease of ``execution_id`` until ``scope`` is cancelled (the run's end)."""

        def stop(abandon: bool, reason: str) -> None:  # noqa: FBT001 - the heartbeat's callback
            scheduler.request_stop(abandon=abandon, reason=reason)

        with scope:
            await self.leases.heartbeat(
                execution_id,
                stop=stop,
                decisions=partial(
                    take_decisions,
                    self.store,
                    self.approvals,
                    execution_id,
                    scheduler.attempts.aliases,
                ),
            )

    async def _run(
        self,
        execution: Execution,
        feed: ExecutionFeed,
        values: dict[str, str],
        trigger: dict[str, Any],
        *,
        recovered: list[Event] | None = None,
        retry: tuple[str, bool] | None = None,
        reuse: Reuse | None = None,
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
                senders = []
                for hook in hooks:
                    send, receive = anyio.create_memory_object_stream[Event](math.inf)
                    senders.append(send)
                    feed.listen(send.send_nowait)
                    deliveries.start_soon(
                        partial(deliver, hook, receive, hook_errors, limit=self.hook_timeout)
                    )
                heartbeat = anyio.CancelScope()
                ledger = self._ledger(execution.id)
                try:
                    plan = pipeline.shared_plan()
                    scheduler = self._scheduler(
                        execution=execution,
                        feed=feed,
                        values=values,
                        trigger=trigger,
                        masker=masker,
                        recovered=recovered,
                        retry=retry,
                        processes=ledger,
                        reuse=reuse,
                    )
                    self._schedulers[execution.id] = scheduler

                    async def take_lease() -> None:
                        await self.store.remember_pipeline(plan)
                        await self.leases.take(execution.id)
                        deliveries.start_soon(self._beat, heartbeat, execution.id, scheduler)

                    result = await scheduler.run(started=mark_started, recorded=take_lease)
                finally:
                    self._schedulers.pop(execution.id, None)
                    for send in senders:
                        send.close()
                    heartbeat.cancel()
                    # Hooks get a bounded time to catch up; the result does not wait longer.
                    deliveries.cancel_scope.deadline = anyio.current_time() + self.hook_timeout
                    await self._let_go(execution.id, ledger)
        except Exception as failure:  # noqa: BLE001 - raised by start() or handed to the waiter
            if not started:  # start() raises it: nothing was recorded
                raise_plain(failure)
            error = failure  # handed to whoever waits on the execution
        finally:
            if result is None and scheduler is not None:
                result = scheduler.result  # a cancelled run still has a (Stopped) result
            if result is not None and hook_errors:
                result = with_hook_errors(result, hook_errors)
            feed.finish(result, error)


def _to_run(pipeline: Pipeline, state: ExecutionState) -> set[str]:
    """The actions a resumed execution may run: those that neither succeeded nor failed."""
    done = {Status.SUCCEEDED, Status.FAILED}
    return {
        node
        for node in pipeline.shared_plan().actions
        if node not in state.actions or state.actions[node].status not in done
    }


def _warn_unevaluated(pipeline: Pipeline, execution_id: str) -> None:
    """Say so when the pipeline declares stage conditions, which runs do not evaluate yet.

    They are part of the model (validated, compiled, kept with the definition) so that
    CodePipeline declarations load whole; a run goes on as if they were absent, and a person
    relying on one (a deployment window, say) must hear of it rather than find out later.
    """
    stages = [s.name for s in pipeline.stages if s.before_entry or s.on_success or s.on_failure]
    if stages:
        from pipelinekit.providers._log import library_logger  # noqa: PLC0415 - rare

        library_logger().warning(
            "stage conditions are not evaluated by this version of pipelinekit: the stages run "
            "as if they had none",
            pipeline=pipeline.name,
            execution_id=execution_id,
            stages=stages,
        )


async def arun(
    pipeline: Pipeline,
    *,
    variables: Mapping[str, str] | None = None,
    store: Store | None = None,
    hooks: Iterable[Hook | HookHandler] = (),
    executor: Executor | None = None,
    max_concurrency: int | None = None,
    workdir: str | Path | None = None,
    triggered_by: str | None = None,
    from_stage: str | None = None,
    reuse: str | None = None,
    use_cache: bool = True,
) -> RunResult:
    """Run ``pipeline`` to its end inside a running event loop; return the result.

    ``max_concurrency`` bounds how many actions run at once. ``from_stage`` with ``reuse``
    starts at that stage, reusing the stages before it from execution ``reuse`` (see
    ``Engine.start``). ``use_cache=False`` restores nothing from caches (``--no-cache``).
    """
    async with Engine(
        store=store,
        hooks=hooks,
        executor=executor,
        max_concurrency=max_concurrency,
        workdir=workdir,
        use_cache=use_cache,
    ) as engine:
        execution = await engine.start(
            pipeline,
            variables=variables,
            triggered_by=triggered_by,
            from_stage=from_stage,
            reuse=reuse,
        )
        return await execution.wait()


def run(
    pipeline: Pipeline,
    *,
    variables: Mapping[str, str] | None = None,
    store: Store | None = None,
    hooks: Iterable[Hook | HookHandler] = (),
    executor: Executor | None = None,
    max_concurrency: int | None = None,
    workdir: str | Path | None = None,
    triggered_by: str | None = None,
    from_stage: str | None = None,
    reuse: str | None = None,
    use_cache: bool = True,
) -> RunResult:
    """Run ``pipeline`` to its end and return the result (blocking; starts its own event loop).

    ``from_stage`` with ``reuse`` (an execution id) starts at that stage, reusing the stages
    before it from that execution (see ``Engine.start``).
    """
    with collector_tuned_for_a_run():
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
                from_stage=from_stage,
                reuse=reuse,
                use_cache=use_cache,
            )
        )
