"""What a run produced: ``RunResult`` with its ``StageResult``s and ``ActionResult``s.

Results are frozen values built from the execution's recorded state when it ends; they never
hold secrets (messages are masked before they get here).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from pipelinekit._model._declarations import Status
from pipelinekit.exceptions import ExecutionError
from pipelinekit.providers._failure import CommandFailure
from pipelinekit.providers._junit import TestReport

__all__ = ["ActionResult", "Attempt", "HookError", "RunResult", "StageResult"]


def _duration(started: datetime | None, finished: datetime | None) -> timedelta | None:
    if started is None or finished is None:
        return None
    return finished - started


def _caches(value: Iterable[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    return tuple(value)


def _reports(value: object) -> tuple[TestReport, ...]:
    return tuple(value) if isinstance(value, list | tuple) else ()


@attrs.frozen
class Attempt:
    """One try of an action.

    ``failure`` says which command failed and how, when a command's failure failed it;
    ``reports`` holds the test reports it named (``pk.shell(reports=...)``) and ``summary`` the
    Markdown it wrote to ``$PK_SUMMARY``, failed or not.
    """

    number: int
    status: Status
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
    failure: CommandFailure | None = attrs.field(default=None, kw_only=True)
    reports: tuple[TestReport, ...] = attrs.field(default=(), converter=_reports, kw_only=True)
    summary: str | None = attrs.field(default=None, kw_only=True)

    @property
    def duration(self) -> timedelta | None:
        """How long the attempt took (``None`` while it runs)."""
        return _duration(self.started_at, self.finished_at)


@attrs.frozen
class ActionResult:
    """The outcome of one action: status, attempts, times, error, variables and log.

    ``caches`` tells what its keyed caches (``pk.Cache``) did in its last attempt, one mapping
    per cache: ``key``, ``outcome`` (``"hit"``, ``"partial"``, ``"miss"``, ``"off"``), the key
    restored from and whether it was saved.
    """

    stage: str
    action: str
    status: Status
    attempts: tuple[Attempt, ...] = ()
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    variables: Mapping[str, str] = attrs.field(factory=dict)
    outputs: Mapping[str, Path] = attrs.field(factory=dict)
    log_path: Path | None = None
    cached: bool = False
    caches: tuple[Mapping[str, Any], ...] = attrs.field(default=(), converter=_caches)

    @property
    def name(self) -> str:
        """``"Stage.Action"``."""
        return f"{self.stage}.{self.action}"

    @property
    def duration(self) -> timedelta | None:
        """How long its attempts ran, together.

        The waits between them (a retry's backoff, the time before a stage was retried) are
        not counted: that is ``finished_at - started_at``.
        """
        total = timedelta()
        for attempt in self.attempts:
            if attempt.finished_at is None:
                return _duration(self.started_at, self.finished_at)
            total += attempt.finished_at - attempt.started_at
        return total if self.attempts else _duration(self.started_at, self.finished_at)

    @property
    def failure(self) -> CommandFailure | None:
        """Which command failed and how, if a command's failure failed the action."""
        if self.status is not Status.FAILED or not self.attempts:
            return None
        return self.attempts[-1].failure

    @property
    def reports(self) -> tuple[TestReport, ...]:
        """The test reports of its last attempt (``pk.shell(..., reports=[...])``)."""
        return self.attempts[-1].reports if self.attempts else ()

    @property
    def summary(self) -> str | None:
        """The Markdown summary its last attempt wrote to ``$PK_SUMMARY``, if any."""
        return self.attempts[-1].summary if self.attempts else None


@attrs.frozen
class StageResult:
    """The outcome of one stage."""

    name: str
    status: Status
    started_at: datetime | None = None
    finished_at: datetime | None = None
    actions: tuple[str, ...] = ()

    @property
    def duration(self) -> timedelta | None:
        """How long the stage ran."""
        return _duration(self.started_at, self.finished_at)


@attrs.frozen
class HookError:
    """A hook that failed or timed out on an event; the pipeline went on regardless."""

    hook: str
    event: str
    error: str


@attrs.frozen(repr=False)
class RunResult:
    """The outcome of an execution.

    ``stages`` and ``actions`` are keyed by stage name and by ``"Stage.Action"``; ``variables``
    holds every output variable of actions with a namespace, as ``"Namespace.Name"``, and the
    run's pipeline variables as ``"variables.name"``.
    """

    pipeline: str
    execution_id: str
    status: Status
    started_at: datetime
    finished_at: datetime
    stages: Mapping[str, StageResult]
    actions: Mapping[str, ActionResult]
    variables: Mapping[str, str] = attrs.field(factory=dict)
    hook_errors: tuple[HookError, ...] = ()
    workdir: Path | None = None

    @property
    def duration(self) -> timedelta:
        """How long the execution ran."""
        return self.finished_at - self.started_at

    def __repr__(self) -> str:
        # A summary: a full repr of thousands of actions is unreadable, and slow (asyncio itself
        # reprs the result of a run's main task on Python 3.11).
        return (
            f"RunResult(pipeline={self.pipeline!r}, execution_id={self.execution_id!r}, "
            f"status={self.status!s}, stages={len(self.stages)}, actions={len(self.actions)}, "
            f"duration={self.duration.total_seconds():.3f}s)"
        )

    @property
    def succeeded(self) -> bool:
        """Whether the execution succeeded."""
        return self.status is Status.SUCCEEDED

    def failed_actions(self) -> list[ActionResult]:
        """The actions that failed, in the order they finished."""
        failed = [a for a in self.actions.values() if a.status is Status.FAILED]
        return sorted(failed, key=lambda a: a.finished_at or self.finished_at)

    def raise_for_status(self) -> RunResult:
        """Return ``self`` if the run succeeded; raise ``ExecutionError`` naming what failed."""
        if self.succeeded:
            return self
        failed = "; ".join(f"{a.name}: {a.error}" for a in self.failed_actions())
        msg = f"pipeline {self.pipeline!r} execution {self.execution_id} {self.status}"
        raise ExecutionError(f"{msg}: {failed}" if failed else msg)
