"""Running one action: its attempts, with retries, timeouts, its context and its cache.

``Attempts.run`` takes an action whose stage has been entered to its end: each attempt is opened
(an ``InProgress`` event, on record before the provider runs when the store is durable), its
context built (references resolved, folders ready, a log file), its provider run by the executor
under the action's timeout, and its end recorded. A failed attempt is retried while the action's
``Retry`` allows, after a backoff on the run's clock. The graph walk knows none of this: it hears
``True`` (succeeded) or ``False`` (failed) back.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any

import anyio

from pipelinekit._compiler._fingerprints import canonical
from pipelinekit._model._declarations import Category, Status
from pipelinekit._model._variables import resolve_value
from pipelinekit._runtime._artifacts import Holding, InputChecks, Sealed
from pipelinekit._runtime._cache import KeyedCaches
from pipelinekit._runtime._outputs import unkept_declaration
from pipelinekit._runtime._results import Attempt
from pipelinekit._runtime._run import ActionRecord, Run
from pipelinekit.exceptions import ActionFailed, ActionTimeout, ArtifactChanged, StoreError
from pipelinekit.providers._capabilities import Runnable, with_references_resolved
from pipelinekit.providers._context import ActionContext, LogFile
from pipelinekit.providers._failure import CommandFailed
from pipelinekit.stores import CacheEntry

__all__ = ["Attempts", "describe"]


def describe(error: BaseException) -> str:
    """How an error reads in a result: an ``ActionFailed``'s message, else type and message."""
    if isinstance(error, ActionFailed):
        return str(error) or type(error).__name__
    return f"{type(error).__name__}: {error}"


def _human(duration: timedelta) -> str:
    seconds = duration.total_seconds()
    if seconds < 60:  # noqa: PLR2004 - seconds in a minute
        return f"{seconds:g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:02.0f}s"


def _told_detail(attempt: Attempt) -> dict[str, Any]:
    """An attempt's failing command, reports and summary, for its event's detail."""
    detail: dict[str, Any] = {}
    if attempt.failure is not None:
        detail["failure"] = attempt.failure.to_detail()
    if attempt.reports:
        detail["reports"] = [report.to_detail() for report in attempt.reports]
    if attempt.summary is not None:
        detail["summary"] = attempt.summary
    return detail


class _NeverStarted(Exception):  # noqa: N818 - a marker, never raised
    """The marker ``_attempt`` returns for an attempt a stop kept from starting."""


NEVER_STARTED = _NeverStarted()


class _Slot:
    """A concurrency slot an attempt holds, given back once (early, or when it ends)."""

    __slots__ = ("_limiter",)

    def __init__(self, limiter: anyio.CapacityLimiter) -> None:
        self._limiter: anyio.CapacityLimiter | None = limiter

    def release(self) -> None:
        if self._limiter is not None:
            self._limiter.release()
            self._limiter = None


class Attempts:
    """Runs the attempts of the actions of one ``Run``."""

    def __init__(self, run: Run) -> None:
        """Work for ``run``."""
        self.run_ = run
        #: The checks of the actions' input artifacts against their producers' seals.
        self.inputs = InputChecks(run.workspace)
        self._no_inputs = self.inputs.held("", {}, full=False)
        self._producers: dict[str, ActionRecord] | None = None
        #: Approval requests a resumed run asks again, by node: the token of the one the dead
        #: owner left waiting, whose decision (kept while nobody ran the execution) stands.
        self.carried: dict[str, int] = {}
        #: The token of each request asked again, mapped to the one it replaces.
        self.aliases: dict[int, int] = {}
        #: What the keyed caches (``pk.Cache``) of an action's last attempt did, by node.
        self.keyed: dict[str, list[dict[str, Any]]] = {}

    async def run(self, record: ActionRecord, opened: datetime | None) -> bool | None:
        """Run ``record``'s action to its end; ``True`` if it succeeded.

        ``None`` when it never started: a stop came while it waited for a concurrency slot.

        ``opened`` is when its first attempt was opened (and put on record) by the caller;
        ``None`` opens it here.
        """
        run = self.run_
        action = record.action
        retry = action.retry
        attempts = retry.attempts if retry else 1
        previous: str | None = None
        # A resumed action goes on counting from the attempts it made before the crash.
        first = len(record.attempts) + 1
        last = first + attempts - 1
        for number in range(first, last + 1):
            error = await self._attempt(record, number, previous, opened)
            if error is NEVER_STARTED:
                return None
            opened = None  # later attempts open themselves
            if error is None:
                return True
            previous = describe(error)
            if (
                number < last
                and retry is not None
                and retry.retries(error)
                and not isinstance(error, ArtifactChanged)  # it would stay changed
                and not run.stopping
            ):
                try:
                    await run.clock.sleep(retry.delay_before(number + 1, run.rng).total_seconds())
                except anyio.get_cancelled_exc_class():
                    # Stopped (or cancelled) between attempts: the action ends here.
                    record.status = Status.ABANDONED
                    record.error = "abandoned between attempts: the execution was stopped"
                    record.finished_at = run.now()
                    run.emit("action", Status.ABANDONED, stage=record.stage, action=action.name)
                    raise
                continue
            record.status = Status.FAILED
            record.error = previous = run.masker.mask(previous)
            record.finished_at = record.attempts[-1].finished_at
            run.emit(
                "action",
                Status.FAILED,
                stage=record.stage,
                action=action.name,
                detail={
                    **_told_detail(record.attempts[-1]),
                    "attempt": number,
                    "error": previous,
                    "log_path": record.log_path,
                    **self._caches_told(record),
                    **(
                        {"artifact_changed": error.changes}
                        if isinstance(error, ArtifactChanged)
                        else {}
                    ),
                },
            )
            return False
        return False  # pragma: no cover - the loop always returns

    def open(self, record: ActionRecord, number: int, previous: str | None) -> datetime:
        """Mark attempt ``number`` of an action started (an event); return when it started."""
        run = self.run_
        started = run.now()
        record.status = Status.IN_PROGRESS
        if record.started_at is None:
            record.started_at = started
        detail: dict[str, Any] = {"attempt": number, "action_type": record.action_type}
        if previous is not None:
            detail["previous_error"] = previous
            if record.attempts and record.attempts[-1].finished_at is not None:
                # When the failed attempt ended: the backoff before this one is nobody's time.
                detail["previous_finished_at"] = record.attempts[-1].finished_at.isoformat()
            # What the failed attempt told (no event of its own ends it): kept for replay.
            told_before = _told_detail(record.attempts[-1])
            detail.update({f"previous_{key}": value for key, value in told_before.items()})
        run.emit(
            "action", Status.IN_PROGRESS, stage=record.stage, action=record.name, detail=detail
        )
        return started

    def abandoned(self, record: ActionRecord, number: int, started: datetime) -> None:
        """End attempt ``number`` (and so the action) ``Abandoned``: the execution stopped."""
        run = self.run_
        finished = run.now()
        record.attempts.append(Attempt(number, Status.ABANDONED, started, finished, "cancelled"))
        record.status = Status.ABANDONED
        record.finished_at = finished
        record.error = (
            "abandoned: the execution was stopped"
            if run.abandoning
            else "abandoned: the execution was cancelled"
        )
        run.emit("action", Status.ABANDONED, stage=record.stage, action=record.name)

    async def _attempt(
        self, record: ActionRecord, number: int, previous: str | None, opened: datetime | None
    ) -> BaseException | None:
        """Run attempt ``number``; return its error (``None`` when it succeeded).

        Under a concurrency limit the attempt holds a slot from its opening to its provider's
        end: writing its log and recording its outcome happen after the slot is free for the
        next action.
        """
        run = self.run_
        limiter = run.limiter
        if limiter is None:
            return await self._attempt_in_slot(record, number, previous, opened, None)
        await limiter.acquire()
        slot = _Slot(limiter)
        try:
            if run.stopping and previous is None and opened is None:
                # Stopped while it waited for a slot: it never starts (stop-and-wait lets
                # running actions finish, not queued ones).
                return NEVER_STARTED
            return await self._attempt_in_slot(record, number, previous, opened, slot)
        finally:
            slot.release()

    async def _attempt_in_slot(
        self,
        record: ActionRecord,
        number: int,
        previous: str | None,
        opened: datetime | None,
        slot: _Slot | None,
    ) -> BaseException | None:
        run = self.run_
        action = record.action
        if opened is None:
            started = self.open(record, number, previous)
            await run.record_starts()
        else:
            started = opened
        log_file = run.workspace.log_file(
            record.node,
            run.masker,
            lambda: f"--- {record.node} attempt {number} at {started.isoformat()} ---",
        )
        error: BaseException | None = None
        ctx: ActionContext | None = None
        cached = False
        try:
            ctx, provider = await self._prepare(record, number, log_file)
            # Its inputs are checked before it starts (ArtifactChanged: it never runs on
            # changed content) and after its provider ends.
            async with self._holding(record, ctx) as held:
                if action.cache:
                    cached = await self._from_cache(record, ctx, provider)
                if not cached:  # else: the outputs and variables of an identical earlier attempt
                    keyed = await self._restore_caches(record, ctx) if action.caches else None
                    error = await self._provider_ran(record, provider, ctx, held)
                    if keyed is not None:
                        await self._save_caches(record, ctx, keyed, succeeded=error is None)
            if slot is not None:
                slot.release()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._close_log(record, log_file)
                self.abandoned(record, number, started)
            raise
        except StoreError:
            raise  # the run cannot go on without its record; never an action's failure
        except Exception as raised:  # noqa: BLE001 - any provider error fails the attempt
            error = raised
        if slot is not None:
            slot.release()
        finished = run.now()
        told = await self._told(ctx, error)
        if error is not None:
            message = run.masker.mask(describe(error))
            log_file.queue(f"--- attempt {number} failed: {message} ---")
            await self._close_log(record, log_file)
            record.attempts.append(
                Attempt(number, Status.FAILED, started, finished, message, **told)
            )
            return error
        assert ctx is not None  # noqa: S101 - set when no error was raised
        await self._close_log(record, log_file)
        record.attempts.append(Attempt(number, Status.SUCCEEDED, started, finished, **told))
        await self._succeeded(record, ctx, number, cached=cached)
        return None

    async def _told(self, ctx: ActionContext | None, error: BaseException | None) -> dict[str, Any]:
        """What an attempt tells besides how it ended: its failing command, reports, summary."""
        mask = self.run_.masker.mask
        told: dict[str, Any] = {}
        if isinstance(error, CommandFailed):
            told["failure"] = error.failure.masked(mask)
        if ctx is not None:
            if ctx.reports:
                told["reports"] = tuple(report.masked(mask) for report in ctx.reports)
            summary = await ctx.read_summary()  # masked; no trip to the disk unless told
            if summary is not None:
                told["summary"] = summary
        return told

    def _holding(self, record: ActionRecord, ctx: ActionContext) -> Holding:
        """The checks of the action's inputs: each against its producer's recorded hash."""
        if not ctx.inputs:
            return self._no_inputs
        producers = self._producers
        if producers is None:
            producers = self._producers = {
                name: producer
                for producer in self.run_.actions.values()
                for name in producer.action.outputs
            }
        inputs: dict[str, Sealed] = {}
        originals = self.run_.artifact_paths  # not ctx.inputs: those may be private copies
        for name in ctx.inputs:
            path = originals[name]
            producer = producers.get(name)
            digest = producer.artifacts.get(name) if producer is not None else None
            if producer is not None and digest:  # a workspace that hashes nothing: no check
                inputs[name] = Sealed(producer.node, path, digest)
        action_type = record.action.action_type
        # Where it matters most, every byte is hashed: what a deploy ships leaves for good.
        full = action_type is not None and action_type.category is Category.DEPLOY
        return self.inputs.held(record.node, inputs, full=full)

    async def _provider_ran(
        self, record: ActionRecord, provider: Runnable, ctx: ActionContext, held: Holding
    ) -> BaseException | None:
        """Run the provider; then its error, or ``ArtifactChanged`` if an input changed."""
        error: BaseException | None
        try:
            error = await self._execute(record, provider, ctx)
            if error is None:  # succeeded: held to the output variables it declares
                error = unkept_declaration(provider, ctx)
        except StoreError:
            raise  # the run cannot go on without its record; never an action's failure
        except Exception as raised:  # noqa: BLE001 - any provider error fails the attempt
            error = raised
        changed = await held.ended(describe(error) if error is not None else None)
        return changed or error

    async def _execute(
        self, record: ActionRecord, provider: Runnable, ctx: ActionContext
    ) -> ActionTimeout | None:
        """Have the executor run the provider, under the action's timeout."""
        run = self.run_
        timeout = record.action.timeout
        if timeout is None:
            await run.executor.execute(provider, ctx)
            return None
        with run.clock.move_on_after(timeout.total_seconds()) as scope:
            await run.executor.execute(provider, ctx)
        if scope.cancelled_caught:
            return ActionTimeout(f"timed out after {_human(timeout)}")
        return None

    async def _succeeded(
        self, record: ActionRecord, ctx: ActionContext, number: int, *, cached: bool
    ) -> None:
        run = self.run_
        action = record.action
        record.status = Status.SUCCEEDED
        record.finished_at = record.attempts[-1].finished_at
        record.error = None
        # Secrets: results and the store get output variables masked; the run's values keep
        # them as set, for the actions that read them.
        record.variables = run.masker.mask_value(dict(ctx.output_variables))
        if action.namespace:
            for name, value in ctx.output_variables.items():
                run.values[f"{action.namespace}.{name}"] = value
        ended: dict[str, Any] = {
            "attempt": number,
            "variables": record.variables,
            "log_path": record.log_path,
            **self._resolved(record, ctx),
            **_told_detail(record.attempts[-1]),
        }
        masked_outputs = [
            name for name, value in ctx.output_variables.items() if record.variables[name] != value
        ]
        record.masked_variables = frozenset(masked_outputs)
        if masked_outputs:
            # The record keeps "****" for them: a reuse, resume or retry that would hand them to
            # a later action refuses instead (_reuse.refuse_masked_references).
            ended["masked_variables"] = masked_outputs
        hashes: dict[str, tuple[str, str]] = {}
        if action.outputs:
            hashes = await run.workspace.seal(ctx.outputs)
            if hashes:
                # Kept on the record too: each consumer is checked against it.
                record.artifacts = {name: digest for name, (_, digest) in hashes.items()}
                ended["artifacts"] = dict(record.artifacts)
        # Secrets: variables that held one are not cached; a hit would hand out "****".
        unmasked = record.variables == ctx.output_variables
        if action.cache and not cached and ctx.cache_key is not None and unmasked:
            # Kept once, by content, in the cache folder: a hit links them back (no copy).
            kept = await run.workspace.keep_outputs(ctx.outputs)
            entry = CacheEntry(
                run.execution_id,
                record.node,
                dict(record.variables),
                hashes,
                trees={name: one.tree for name, one in kept.items()},
                size=sum(one.size for one in kept.values()),
                created_at=run.now(),
                last_used=run.now(),
            )
            await run.recorder.store.cache_put(ctx.cache_key, entry)
        ended.update(self._caches_told(record))
        if cached:
            ended["cached"] = True
            record.cached = True
        run.emit("action", Status.SUCCEEDED, stage=record.stage, action=action.name, detail=ended)

    def _caches_told(self, record: ActionRecord) -> dict[str, Any]:
        """What the keyed caches of its last attempt did, for its end event and its result."""
        told = self.keyed.pop(record.node, [])
        record.caches = list(told)
        return {"caches": told} if told else {}

    def _resolved(self, record: ActionRecord, ctx: ActionContext) -> dict[str, Any]:
        """What the attempt ran with, references resolved (masked when the event is built)."""
        resolved: dict[str, Any] = {}
        if ctx.configuration:
            resolved["configuration"] = dict(ctx.configuration)
        if record.node in self.run_.plan.referencing:
            resolved["provider"] = canonical(ctx.provider)
        return resolved

    async def _from_cache(
        self, record: ActionRecord, ctx: ActionContext, provider: Runnable
    ) -> bool:
        """Reuse an identical earlier attempt's results; ``False`` when there is none."""
        run = self.run_
        key = await run.workspace.cache_key(
            record.action_type, provider, ctx.configuration, ctx.inputs
        )
        if key is None:
            return False
        ctx.cache_key = key
        entry = await run.recorder.store.cache_get(key)
        if entry is None:
            return False
        if not run.workspace.use_cache:
            return False
        try:
            if not await run.workspace.restore(entry, ctx.outputs):
                return False
        except OSError as error:  # a file swept meanwhile (cache prune): the action runs
            ctx.log.warning("cache not restored", error=f"{type(error).__name__}: {error}")
            return False
        await run.recorder.store.cache_used(key, run.now())
        for name, value in entry.variables.items():
            ctx.set_variable(name, value)
        ctx.log.info("cached", reused=f"{entry.node} of execution {entry.execution_id}")
        return True

    async def _restore_caches(self, record: ActionRecord, ctx: ActionContext) -> KeyedCaches:
        """Restore the action's ``pk.Cache`` folders into its working folder (see _cache)."""
        run = self.run_
        keyed = KeyedCaches(
            run.workspace,
            run.recorder.store,
            run.lookup,
            run.now,
            node=record.node,
            execution_id=run.execution_id,
            mask=run.masker.mask,
        )
        for detail in await keyed.restore(record.action.caches, ctx.inputs, ctx.workdir_path):
            if "skipped" in detail:  # a path through a symbolic link: the cache is skipped
                ctx.log.warning("cache skipped", **detail)
                continue
            if "error" in detail:  # a file error restoring it (cache not restored): a miss
                ctx.log.warning("cache not restored", **detail)
                continue
            ctx.log.info("cache restored" if detail.get("restored_key") else "cache", **detail)
        return keyed

    async def _save_caches(
        self, record: ActionRecord, ctx: ActionContext, keyed: KeyedCaches, *, succeeded: bool
    ) -> None:
        """Save the folders of a succeeded attempt; a cache that cannot be saved only warns."""
        try:
            details = await keyed.after(ctx.workdir_path, succeeded=succeeded)
        except OSError as error:
            ctx.log.warning("cache not saved", error=f"{type(error).__name__}: {error}")
            details = [done.detail() for done in keyed.done]
        for detail in details:
            if "evicted" in detail:
                ctx.log.warning(
                    "cache files written in place were evicted; give the pk.Cache writable=True",
                    **detail,
                )
            elif "saved" in detail and "skipped" in detail:  # a path through a symbolic link
                ctx.log.warning("cache not saved", **detail)
            elif "saved" in detail:
                ctx.log.info("cache saved" if detail["saved"] else "cache not saved", **detail)
        self.keyed[record.node] = details

    @staticmethod
    async def _close_log(record: ActionRecord, log_file: LogFile) -> None:
        if log_file.pending:
            with anyio.CancelScope(shield=True):
                await log_file.flush()
        if log_file.written:
            record.log_path = str(log_file.path)

    async def _prepare(
        self, record: ActionRecord, number: int, log_file: LogFile
    ) -> tuple[ActionContext, Runnable]:
        run = self.run_
        action = record.action
        provider = declared_provider = run.provider(action)
        configuration = action.configuration
        if record.node in run.plan.referencing:
            configuration = resolve_value(configuration, run.lookup)
            provider = with_references_resolved(provider, run.lookup)
        run.used(provider)  # the object that runs, references resolved
        workspace = run.workspace
        outputs = {name: workspace.artifact(name) for name in action.outputs}
        inputs = {name: run.artifact_paths[name] for name in action.inputs}
        left_out: list[tuple[str, str]] = []  # pipes, sockets, devices: not in private copies
        if action.writable_inputs:  # the seals checked stay the originals' (_holding)
            inputs, left_out = await workspace.private_copies(record.node, inputs)
        await workspace.prepare(record.node, outputs, again=number > 1)
        run.artifact_paths.update(outputs)
        ctx = ActionContext(
            execution_id=run.execution_id,
            pipeline=run.pipeline,
            stage=record.stage,
            action=action.name,
            attempt=number,
            inputs=inputs,
            outputs=outputs,
            work_root=workspace.work,
            configuration=configuration,
            variables=run.values,
            log_file=log_file,
            masker=run.masker,
            clock=run.clock,
            approvals=run.approvals,
            triggered_by=run.trigger.get("triggered_by"),
            report=partial(self._report_approval, record),
            processes=run.processes,
        )
        ctx.provider = provider
        ctx.declared_provider = declared_provider
        for artifact, path in left_out:
            ctx.log.warning(
                "not in the private copy: a pipe, socket or device file is no artifact content",
                artifact=artifact,
                path=path,
            )
        return ctx, provider

    async def _report_approval(
        self, record: ActionRecord, status: Status, detail: dict[str, Any]
    ) -> int:
        run = self.run_
        record.status = (
            Status.WAITING_FOR_APPROVAL
            if status is Status.WAITING_FOR_APPROVAL
            else Status.IN_PROGRESS
        )
        sequence = run.emit(
            "approval", status, stage=record.stage, action=record.name, detail=detail
        )
        await run.recorder.flush()
        earlier = self.carried.pop(record.node, None)
        if earlier is not None and status is Status.WAITING_FOR_APPROVAL:
            # A decision kept for the dead owner's request (while nobody ran the execution, or
            # by someone who read the record before this request was on it) answers this one:
            # the heartbeat looks under both tokens (see take_decisions).
            self.aliases[sequence] = earlier
        return sequence
