"""``FakeExecutor``: runs a pipeline through the real engine with scripted outcomes.

Each action is answered by an outcome (``succeed()``, ``fail()``, ``hang()``, ``approve()``,
``reject()``) instead of its provider. Time is virtual (``VirtualClock``): ``after=`` durations,
retry backoff, timeouts and approval timeouts cost no real time, and results carry virtual
timestamps. Nothing touches the disk: artifacts an outcome writes are kept in ``artifacts``.

``FakeExecutor`` is the harness: it builds an ordinary ``Engine`` and injects what differs, as
trio injects its ``MockClock``: a ``ScriptedExecutor`` that plays the outcomes, the virtual clock,
an in-memory store and a workspace that touches no disk. The engine and scheduler do not know
they are under test.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Self, TypeAlias

import anyio
import anyio.lowlevel
import attrs

from pipelinekit._model._declarations import Status
from pipelinekit._model._events import Event
from pipelinekit._model._frozendict import to_frozendict
from pipelinekit._model._limits import shown
from pipelinekit._model._names import did_you_mean
from pipelinekit._model._pipeline import Pipeline
from pipelinekit._runtime._artifacts import MemoryWorkspace
from pipelinekit._runtime._collector import collector_tuned_for_a_run
from pipelinekit._runtime._engine import Engine, Execution
from pipelinekit._runtime._results import RunResult
from pipelinekit.exceptions import ActionFailed, ExecutionError
from pipelinekit.providers._action_files import FileRead
from pipelinekit.providers._capabilities import required_output_variables
from pipelinekit.providers._context import ActionContext, summary_limit, summary_text
from pipelinekit.providers._failure import CommandFailed, CommandFailure
from pipelinekit.providers._identity import check_identity
from pipelinekit.providers._junit import TestReport
from pipelinekit.stores import MemoryStore
from pipelinekit.testing._timeline import Verdict, never_ran, ran_before, ran_in_parallel
from pipelinekit.testing._virtual_clock import DEFAULT_START, StuckRunError, VirtualClock

__all__ = [
    "Approve",
    "Call",
    "Fail",
    "FakeExecutor",
    "Hang",
    "Reject",
    "ScriptedExecutor",
    "Succeed",
    "approve",
    "fail",
    "hang",
    "reject",
    "succeed",
]


def _to_duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    msg = f"after= must be a timedelta or seconds (got {value!r})"
    raise TypeError(msg)


def _to_reports(value: object) -> tuple[TestReport, ...]:
    reports = tuple(value) if isinstance(value, list | tuple) else None
    if reports is None or not all(isinstance(report, TestReport) for report in reports):
        msg = (
            "reports= must be a list of pk.TestReport(...), as a provider reads them from "
            f"JUnit XML (got {shown(value)})"
        )
        raise ExecutionError(msg)
    return reports


def _to_summary(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        msg = f"summary= must be a string of Markdown, or None (got {shown(value)})"
        raise ExecutionError(msg)
    return value


def _to_failure(value: object) -> CommandFailure | None:
    if value is not None and not isinstance(value, CommandFailure):
        msg = f"failure= must be a pk.CommandFailure(...), or None (got {shown(value)})"
        raise ExecutionError(msg)
    return value


@attrs.frozen
class Succeed:
    """The action succeeds after ``after``, setting ``variables`` and writing ``outputs``.

    ``reports`` and ``summary`` are told as a provider tells what it read and wrote.
    """

    outputs: Mapping[str, Mapping[str, str | bytes]] = attrs.field(factory=dict)
    variables: Mapping[str, str] = attrs.field(factory=dict, converter=to_frozendict)
    after: timedelta = attrs.field(default=timedelta(0), converter=_to_duration)
    reports: tuple[TestReport, ...] = attrs.field(default=(), converter=_to_reports, kw_only=True)
    summary: str | None = attrs.field(default=None, converter=_to_summary, kw_only=True)


@attrs.frozen
class Fail:
    """The action fails with ``message`` after ``after``; with ``failure``, as that command.

    ``reports`` and ``summary`` are told as a provider tells what it read and wrote.
    """

    message: str = "failed"
    after: timedelta = attrs.field(default=timedelta(0), converter=_to_duration)
    failure: CommandFailure | None = attrs.field(default=None, converter=_to_failure, kw_only=True)
    reports: tuple[TestReport, ...] = attrs.field(default=(), converter=_to_reports, kw_only=True)
    summary: str | None = attrs.field(default=None, converter=_to_summary, kw_only=True)


@attrs.frozen
class Hang:
    """The action never finishes by itself (only a timeout, a stop or cancellation end it)."""


@attrs.frozen
class Approve:
    """An approval: the action waits for approval, then ``by`` approves it after ``after``."""

    by: str = "approver"
    summary: str = ""
    after: timedelta = attrs.field(default=timedelta(0), converter=_to_duration)

    def __attrs_post_init__(self) -> None:
        # Refused as the real engine refuses it: a fake run must not pass where a real one fails.
        check_identity(self.by)


@attrs.frozen
class Reject:
    """An approval that ``by`` rejects after ``after``: the action fails."""

    by: str = "approver"
    summary: str = ""
    after: timedelta = attrs.field(default=timedelta(0), converter=_to_duration)

    def __attrs_post_init__(self) -> None:
        # Refused as the real engine refuses it: a fake run must not pass where a real one fails.
        check_identity(self.by)


Outcome: TypeAlias = Succeed | Fail | Hang | Approve | Reject
#: What a key of ``FakeExecutor(outcomes)`` maps to: one outcome, one per attempt (the last
#: repeats), or a function of the context returning an outcome.
Script: TypeAlias = (
    Outcome | Sequence[Outcome] | Callable[[ActionContext], Outcome | Awaitable[Outcome]]
)


def succeed(
    *,
    outputs: Mapping[str, Mapping[str, str | bytes]] | None = None,
    variables: Mapping[str, str] | None = None,
    after: timedelta | float = timedelta(0),
    reports: Sequence[TestReport] = (),
    summary: str | None = None,
) -> Succeed:
    """Succeed after ``after`` (virtual time), with output ``variables`` and artifact files.

    ``reports`` (``pk.TestReport``, as ``pk.shell(..., reports=[...])`` reads JUnit XML) and
    ``summary`` (Markdown, as written to ``$PK_SUMMARY``) reach the attempt's result and its
    event as a real run's do: masked, and a summary cut to the same length.

    Required output variables the provider declares (``output_variables``) and the outcome does
    not set get the value ``"fake-<name>"``; optional ones are ``""``. As in a real run, an
    outcome that sets one the provider does not declare fails the attempt.

    ``outputs={"dist": {"app.zip": b"..."}}`` "writes" files of the action's output artifacts;
    the fake keeps them in ``FakeExecutor.artifacts``. Files "written" to an input artifact
    change the producer's files, and the action fails as on disk (``ArtifactChanged``), unless
    the action has ``writable_inputs=True``: then they go to its private copy, which nobody reads.
    """
    return Succeed(outputs or {}, variables or {}, after, reports=reports, summary=summary)


def fail(
    message: str | None = None,
    *,
    after: timedelta | float = timedelta(0),
    failure: CommandFailure | None = None,
    reports: Sequence[TestReport] = (),
    summary: str | None = None,
) -> Fail:
    """Fail with ``message`` (default ``"failed"``) after ``after`` (virtual time).

    With ``failure`` (``pk.CommandFailure``) the action fails as when that command failed: its
    error is ``failure.message()`` and the attempt carries the failure (masked), so a test sees
    what a hook or ``pipelinekit status`` would show; give a message or a failure, not both.
    ``reports`` and ``summary`` are ``succeed``'s: a failed test run has them too.
    """
    if message is not None and failure is not None:
        msg = (
            "fail() takes a message or a failure (whose message() is the action's error, as "
            "in a real run), not both"
        )
        raise ExecutionError(msg)
    return Fail(
        "failed" if message is None else message,
        after,
        failure=failure,
        reports=reports,
        summary=summary,
    )


def hang() -> Hang:
    """Never finish: a timeout (or a stop) is the only way out."""
    return Hang()


def approve(
    *, by: str = "approver", summary: str = "", after: timedelta | float = timedelta(0)
) -> Approve:
    """Wait for approval, then be approved by ``by`` after ``after`` (virtual time)."""
    return Approve(by, summary, after)


def reject(
    *, by: str = "approver", summary: str = "", after: timedelta | float = timedelta(0)
) -> Reject:
    """Wait for approval, then be rejected by ``by`` after ``after``: the action fails."""
    return Reject(by, summary, after)


_OUTCOMES = (Succeed, Fail, Hang, Approve, Reject)


class Call(str):  # noqa: SLOT000 - instances carry an attempt number
    """An action the fake ran: compares equal to ``"Stage.Action"``; ``attempt`` says which try."""

    attempt: int

    def __new__(cls, node: str, attempt: int) -> Self:
        """``Call("Build.Compile", 2)``."""
        call = super().__new__(cls, node)
        call.attempt = attempt
        return call

    def __repr__(self) -> str:
        return f"Call({str(self)!r}, attempt={self.attempt})"


class ScriptedExecutor:
    """An ``Executor`` that plays scripted outcomes instead of running providers.

    ``outcomes`` maps ``"Stage.Action"`` to a script; every other action gets ``default``.
    ``calls`` lists the attempts it played, in start order; ``artifacts`` the files outcomes
    wrote (artifact -> path -> bytes).
    """

    def __init__(self, outcomes: Mapping[str, Script], default: Script) -> None:
        """Play ``outcomes`` (and ``default`` for the rest)."""
        self.outcomes = outcomes
        self.default = default
        self.calls: list[Call] = []
        self.artifacts: dict[str, dict[str, bytes]] = {}
        #: The private copies (``writable_inputs=True``) the workspace handed out: a write to
        #: one reaches nobody, a write to any other input changes the artifact.
        self.copies: set[Path] = set()
        self.running: set[str] = set()

    async def execute(self, provider: object, ctx: ActionContext) -> None:  # noqa: ARG002 - the protocol's signature; the provider is never run
        """Play the scripted outcome of this attempt instead of running ``provider``."""
        node = f"{ctx.stage}.{ctx.action}"
        self.calls.append(Call(node, ctx.attempt))
        self.running.add(node)
        try:
            await self._execute(node, ctx)
        finally:
            self.running.discard(node)

    async def _execute(self, node: str, ctx: ActionContext) -> None:
        # Yield once, as real work would: every action of a group starts before any ends.
        await asyncio.sleep(0)
        script = self.outcomes.get(node, self.default)
        outcome = (
            script if isinstance(script, _OUTCOMES) else await self._outcome(script, node, ctx)
        )
        await self._play(outcome, node, ctx)

    async def _outcome(self, script: Script, node: str, ctx: ActionContext) -> Outcome:
        chosen: object
        if isinstance(script, Sequence) and not isinstance(script, str):
            if not script:
                msg = f"the fake's outcome list for {node!r} is empty"
                raise ExecutionError(msg)
            chosen = script[min(ctx.attempt, len(script)) - 1]
        elif callable(script):
            chosen = script(ctx)
            if inspect.isawaitable(chosen):
                chosen = await chosen
        else:
            chosen = script
        if not isinstance(chosen, _OUTCOMES):
            msg = (
                f"the fake's script for {node!r} gave {chosen!r}; use succeed(), fail(), "
                "hang(), approve() or reject()"
            )
            raise ExecutionError(msg)
        return chosen

    async def _play(self, outcome: Outcome, node: str, ctx: ActionContext) -> None:
        if type(outcome) is Succeed and not outcome.after and not outcome.outputs:
            self._succeed(outcome, ctx)  # the common case, without the general path below
            return
        clock = ctx.clock
        if isinstance(outcome, Hang):
            await anyio.sleep_forever()
        if isinstance(outcome, Approve | Reject):
            await ctx.report_approval(Status.WAITING_FOR_APPROVAL)
        if outcome.after > timedelta(0):  # type: ignore[union-attr]  # Hang returned above
            await clock.sleep(outcome.after.total_seconds())  # type: ignore[union-attr]
        if isinstance(outcome, Fail):
            _tell(outcome, ctx)
            if outcome.failure is not None:
                raise CommandFailed(outcome.failure)  # the engine masks it, as a real one
            raise ActionFailed(outcome.message)
        if isinstance(outcome, Reject):
            await ctx.report_approval(Status.FAILED, by=outcome.by, summary=outcome.summary)
            msg = f"rejected by {outcome.by}" + (f": {outcome.summary}" if outcome.summary else "")
            raise ActionFailed(msg)
        if isinstance(outcome, Approve):
            await ctx.report_approval(Status.SUCCEEDED, by=outcome.by, summary=outcome.summary)
            ctx.set_variable("ApprovedBy", outcome.by)
            ctx.set_variable("Summary", outcome.summary)
            return
        assert isinstance(outcome, Succeed)  # noqa: S101 - every other kind returned or raised
        self._succeed(outcome, ctx)
        for artifact, files in outcome.outputs.items():
            if artifact in ctx.inputs:
                written = {
                    path: content.encode() if isinstance(content, str) else bytes(content)
                    for path, content in files.items()
                }
                if ctx.inputs[artifact] not in self.copies:
                    # A read-only input, written anyway (as root can): the producer's files
                    # change, and the check after the action fails it as on disk.
                    self.artifacts.setdefault(artifact, {}).update(written)
                continue  # else its private copy (writable_inputs=True), which nobody reads
            if artifact not in ctx.outputs:
                msg = (
                    f"the fake's outcome writes artifact {artifact!r}, which {node!r} does not "
                    "declare"
                )
                raise ExecutionError(msg)
            self.artifacts[artifact] = {
                path: content.encode() if isinstance(content, str) else bytes(content)
                for path, content in files.items()
            }

    @staticmethod
    def _succeed(outcome: Succeed, ctx: ActionContext) -> None:
        # As if the provider had run: the required variables it declares get a placeholder
        # value, so that later references resolve unless a test scripts real values. The engine
        # holds the outcome to the declaration as it holds a real provider, and makes unset
        # optional ones empty (``_runtime/_outputs.py``).
        for name in required_output_variables(ctx.provider):
            if name not in outcome.variables:
                ctx.set_variable(name, f"fake-{name}")
        for name, value in outcome.variables.items():
            ctx.set_variable(name, value)
        _tell(outcome, ctx)


def _tell(outcome: Succeed | Fail, ctx: ActionContext) -> None:
    """Tell the engine the scripted reports and summary, as a provider does."""
    ctx.reports.extend(outcome.reports)  # masked by the engine, as a provider's
    if outcome.summary is not None:
        # What the engine would read of a file holding it, told the engine's way (one function).
        raw = outcome.summary.encode()
        limit = summary_limit(ctx.masker)
        told = summary_text(FileRead(raw[:limit], complete=len(raw) <= limit), ctx.masker)

        async def read_summary() -> str | None:
            return told

        # A real action writes $PK_SUMMARY, which the engine reads back; the fake writes no
        # file, so this context (made for this attempt only) answers from the script.
        ctx.read_summary = read_summary  # type: ignore[method-assign]


class FakeExecutor:
    """Run pipelines with scripted outcomes, in virtual time, through the real scheduler.

    ``outcomes`` maps ``"Stage.Action"`` to a script; every other action gets ``default``
    (``succeed()`` unless told otherwise). A key that names no action is an error listing the
    real names. After a run: ``calls`` (actions in start order, with attempt numbers),
    ``events`` (every state change), ``artifacts`` (files outcomes wrote) and ``result``.
    """

    def __init__(
        self,
        outcomes: Mapping[str, Script] | None = None,
        *,
        default: Script | None = None,
        max_concurrency: int | None = None,
        start: datetime = DEFAULT_START,
        hooks: Sequence[Any] = (),
        seed: int = 0,
        stuck_after: float = 2.0,
        store: MemoryStore | None = None,
        use_cache: bool = True,
    ) -> None:
        """Script the actions; nothing runs until ``run`` or ``arun``.

        ``store`` keeps history and caches across runs (``pk.Cache`` entries hit, partially
        hit or miss as on disk, with empty folders: the fake writes no files); by default each
        run gets a new one. ``use_cache=False`` is ``pipelinekit run --no-cache``.

        ``start`` is where virtual time begins; ``seed`` makes retry jitter reproducible;
        ``stuck_after`` is how long (real seconds) an idle run with nothing left to wake it
        waits before it fails with ``StuckRunError``.
        """
        self.seed = seed
        self.stuck_after = stuck_after
        self.store = store
        self.use_cache = use_cache
        self.outcomes = dict(outcomes or {})
        self.default: Script = default if default is not None else Succeed()
        self.max_concurrency = max_concurrency
        self.start = start
        self.hooks = tuple(hooks)
        self.calls: list[Call] = []
        self.events: list[Event] = []
        self.artifacts: dict[str, dict[str, bytes]] = {}
        self.result: RunResult | None = None
        self.engine: Engine | None = None
        self._execution: Execution | None = None
        self._scripted: ScriptedExecutor | None = None

    # -- running ---------------------------------------------------------------------------------

    def check(self, pipeline: Pipeline) -> None:
        """Refuse keys that name no action of ``pipeline`` (a typo must never do nothing)."""
        nodes = [
            f"{stage.name}.{action.name}" for stage in pipeline.stages for action in stage.actions
        ]
        unknown = [key for key in self.outcomes if key not in nodes]
        if unknown:
            hints = "".join(did_you_mean(key, nodes) for key in unknown[:1])
            msg = (
                f"FakeExecutor outcomes name no action of pipeline {pipeline.name!r}: "
                f"{', '.join(map(repr, unknown))}{hints} (actions: {', '.join(nodes)})"
            )
            raise ExecutionError(msg)

    def run(
        self,
        pipeline: Pipeline,
        *,
        variables: Mapping[str, str] | None = None,
        triggered_by: str | None = None,
        from_stage: str | None = None,
        reuse: str | None = None,
    ) -> RunResult:
        """Run ``pipeline`` to its end (blocking; its own event loop); return the result.

        ``from_stage`` and ``reuse`` are refused (see ``arun``).
        """
        with collector_tuned_for_a_run():
            return anyio.run(
                partial(
                    self.arun,
                    pipeline,
                    variables=variables,
                    triggered_by=triggered_by,
                    from_stage=from_stage,
                    reuse=reuse,
                ),
                backend="asyncio",
            )

    async def arun(
        self,
        pipeline: Pipeline,
        *,
        variables: Mapping[str, str] | None = None,
        triggered_by: str | None = None,
        from_stage: str | None = None,
        reuse: str | None = None,
    ) -> RunResult:
        """Run ``pipeline`` to its end inside a running (asyncio) event loop.

        ``from_stage`` with ``reuse`` (``run(..., from_stage=, reuse=)``) is refused: the
        fake's artifacts live in memory for one run only (even with a ``store`` kept across
        runs), so an earlier execution's cannot be reused; script the reused actions'
        outcomes instead.
        """
        if from_stage is not None or reuse is not None:
            msg = (
                "the fake keeps no artifacts between runs, so from_stage/reuse has nothing "
                "to reuse; script the earlier stages' outcomes (succeed(outputs=..., "
                "variables=...)) and run the whole pipeline"
            )
            raise ExecutionError(msg)
        self.check(pipeline)
        scripted = self._scripted = ScriptedExecutor(self.outcomes, self.default)
        # The harness's lists are the executor's: a test reading them mid-run sees them grow.
        self.calls = scripted.calls
        self.artifacts = scripted.artifacts
        self.events = []
        self.result = None
        clock = VirtualClock(self.start, stuck_after=self.stuck_after)
        engine = Engine(
            store=self.store if self.store is not None else MemoryStore(),
            executor=scripted,
            use_cache=self.use_cache,
            max_concurrency=self.max_concurrency,
            clock=clock,
            rng=random.Random(self.seed),  # noqa: S311 - jitter, not secrets
            hooks=self.hooks,
            workdir=Path("fake-run"),
            # The outcomes' files are the workspace's: sealed and checked as files on disk are.
            workspaces=partial(
                MemoryWorkspace, contents=scripted.artifacts, copies=scripted.copies
            ),
        )
        self.engine = engine
        result: RunResult | None = None
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(clock.drive, self._describe_stuck)
                async with engine:
                    self._execution = await engine.start(
                        pipeline, variables=variables, triggered_by=triggered_by
                    )
                    result = await self._execution.wait()
                tasks.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            stuck = group.subgroup(StuckRunError)
            if stuck is not None:
                raise stuck.exceptions[0] from None
            raise
        finally:
            if self._execution is not None:
                self.events = self._execution.recorded
        assert result is not None  # noqa: S101 - wait() returned
        self.result = result
        return result

    def _describe_stuck(self) -> str:
        stuck = sorted(self._scripted.running) if self._scripted is not None else []
        return (
            "the fake run can never finish: "
            + (", ".join(stuck) or "an action")
            + " waits forever (hang(), or a wait nothing will end) and has no timeout; "
            "give the action a timeout or script another outcome"
        )

    # -- questions about the last run --------------------------------------------------------------

    def ran_before(self, first: str, then: str) -> Verdict:
        """Whether ``first`` succeeded before ``then`` started (use with ``assert``)."""
        return ran_before(self.events, first, then)

    def ran_in_parallel(self, a: str, b: str) -> Verdict:
        """Whether ``a`` and ``b`` were running at the same time (use with ``assert``)."""
        return ran_in_parallel(self.events, a, b)

    def never_ran(self, node: str) -> Verdict:
        """Whether ``node`` never started (use with ``assert``)."""
        return never_ran(self.events, node)
