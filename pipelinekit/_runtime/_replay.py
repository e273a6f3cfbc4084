"""Replay: the state of an execution, folded from its recorded events.

Everyone who asks "what state is this execution in" asks here: the scheduler taking up an
interrupted execution, ``status`` and ``logs`` on the command line, a decision posted from another
process, a stage retry and its "is this the latest failure" rule, and the timeline verdicts of
the testing kit. One fold means one answer: a rule about events (an attempt's end closes the
attempt its start opened; a retried stage starts over; an approval's token is the sequence number
of its request) is written once.

The fold is incremental (``ExecutionState.apply``) so that a reader following a live execution
can keep its state up to date, and it accepts states made by its caller (``replay(events,
into=...)``): the scheduler replays into its own per-action records, which carry the declaration
besides what the events say.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import attrs

from pipelinekit._model._declarations import TERMINAL, Status
from pipelinekit._model._events import Event
from pipelinekit._runtime._results import Attempt
from pipelinekit.providers._failure import CommandFailure
from pipelinekit.providers._junit import TestReport

__all__ = [
    "ActionState",
    "ApprovalRequest",
    "ExecutionState",
    "StageState",
    "detail_time",
    "replay",
]

#: Where the actions of a stage are neither running nor waiting: not what a resume must settle.
RUNNING = frozenset({Status.IN_PROGRESS, Status.WAITING_FOR_APPROVAL})


@attrs.frozen
class ApprovalRequest:
    """The latest word on an action's manual approval."""

    status: Status
    #: The sequence number of the request's ``WaitingForApproval`` event (its token).
    token: int
    detail: Mapping[str, Any]
    time: datetime


@attrs.define(slots=True, eq=False)
class ActionState:
    """What the record says of one action, in the execution's latest attempt."""

    stage: str
    name: str
    #: ``"Stage.Action"``.
    node: str = attrs.field(init=False)
    status: Status = Status.NOT_STARTED
    attempts: list[Attempt] = attrs.Factory(list)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    variables: dict[str, str] = attrs.Factory(dict)
    #: Its output variables that held a secret: ``variables`` has them masked, not their values.
    masked_variables: frozenset[str] = frozenset()
    log_path: str | None = None
    cached: bool = False
    #: Content hashes of the output artifacts of its last success.
    artifacts: dict[str, str] = attrs.Factory(dict)
    #: The latest approval event of the action, if it asked for one.
    approval: ApprovalRequest | None = None
    #: When the last action event of it was recorded.
    changed_at: datetime | None = None
    #: Sequence numbers: its first start, its latest end, its first success (for timelines).
    first_start: int | None = None
    last_end: int | None = None
    first_success: int | None = None
    #: The attempt of the execution (1, then one more per stage retry) it last changed in.
    execution_attempt: int = 1
    #: Whether its success was taken from another execution (``run --from --reuse``).
    reused_from: str | None = None
    #: What its keyed caches (``pk.Cache``) did in its last attempt: key, outcome, paths.
    caches: list[Mapping[str, Any]] = attrs.Factory(list)

    @node.default
    def _node(self) -> str:
        return f"{self.stage}.{self.name}"

    @property
    def running(self) -> bool:
        """Whether it is on record as started and not ended (running or awaiting approval)."""
        return self.status in RUNNING

    @staticmethod
    def _ended(
        attempt: Attempt,
        state: Status,
        when: datetime,
        told: Mapping[str, Any],
        *,
        prefix: str = "",
    ) -> Attempt:
        """``attempt`` ended ``state`` at ``when``, with what its end event told."""
        reports = told.get(f"{prefix}reports")
        summary = told.get(f"{prefix}summary")
        return attrs.evolve(
            attempt,
            status=state,
            finished_at=when,
            error=told.get(f"{prefix}error"),
            failure=CommandFailure.from_detail(told.get(f"{prefix}failure")),
            reports=tuple(
                report for report in map(TestReport.from_detail, reports) if report is not None
            )
            if isinstance(reports, list | tuple)
            else (),
            summary=summary if isinstance(summary, str) else None,
        )

    def apply(self, event: Event) -> None:
        """Fold one action event of this action."""
        state = event.state
        detail = event.detail
        self.status = state
        self.changed_at = event.time
        self.execution_attempt = int(detail.get("execution_attempt", 1))
        if state is Status.IN_PROGRESS:
            number = int(detail.get("attempt", len(self.attempts) + 1))
            if self.attempts and self.attempts[-1].status in RUNNING:
                # A retry: the attempt before it failed (the events record its end with the
                # retry's start, not on an event of its own). It ended before the backoff.
                self.attempts[-1] = self._ended(
                    self.attempts[-1],
                    Status.FAILED,
                    detail_time(detail.get("previous_finished_at")) or event.time,
                    detail,
                    prefix="previous_",
                )
            if self.started_at is None:
                self.started_at = event.time
            if self.first_start is None:
                self.first_start = event.sequence
            self.finished_at = None
            self.error = None
            self.attempts.append(Attempt(number, Status.IN_PROGRESS, event.time))
            return
        if state is Status.WAITING_FOR_APPROVAL:
            return
        self.finished_at = event.time
        self.error = detail.get("error")
        if state in TERMINAL:
            self.last_end = event.sequence
        if self.attempts and self.attempts[-1].status in RUNNING:
            self.attempts[-1] = self._ended(self.attempts[-1], state, event.time, detail)
        if state in {Status.SUCCEEDED, Status.FAILED}:
            self.caches = list(detail.get("caches") or [])
        if state is Status.SUCCEEDED:
            if self.first_success is None:
                self.first_success = event.sequence
            self.variables = dict(detail.get("variables") or {})
            self.masked_variables = frozenset(detail.get("masked_variables") or ())
            # An attempt that logged nothing leaves the log an earlier one wrote.
            self.log_path = detail.get("log_path") or self.log_path
            self.artifacts = dict(detail.get("artifacts") or {})
            self.cached = bool(detail.get("cached"))
            self.reused_from = detail.get("reused_from")
        elif detail.get("log_path"):
            self.log_path = detail["log_path"]

    def reopen(self) -> None:
        """Make it runnable again in a new attempt of the execution (a stage retry)."""
        self.status = Status.NOT_STARTED
        self.error = None
        self.finished_at = None


@attrs.define(slots=True, eq=False)
class StageState:
    """What the record says of one stage, in the execution's latest attempt."""

    name: str
    status: Status = Status.NOT_STARTED
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: Whether one of its actions failed in the latest attempt (the stage fails once idle).
    failed: bool = False
    #: Whether it ever ended Failed in this execution, whatever came after.
    ever_failed: bool = False

    def apply(self, event: Event) -> None:
        """Fold one stage event of this stage."""
        self.status = event.state
        if event.state is Status.IN_PROGRESS:
            if self.started_at is None:
                self.started_at = event.time
            return
        self.finished_at = event.time
        self.failed = event.state is Status.FAILED
        self.ever_failed = self.ever_failed or self.failed

    def reopen(self) -> None:
        """Make it run again in a new attempt of the execution (a stage retry)."""
        self.status = Status.NOT_STARTED
        self.started_at = self.finished_at = None
        self.failed = False


@attrs.define(slots=True, eq=False)
class ExecutionState:
    """What the record says of an execution: its status, stages and actions.

    ``stages`` and ``actions`` are in the pipeline's order when the first event recorded its
    shape (every execution's does); events of others add them as they come.
    """

    execution_id: str
    pipeline: str
    status: Status = Status.IN_PROGRESS
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: The first event's detail: trigger, variables (secrets masked), source, shape, logs.
    start: Mapping[str, Any] = attrs.Factory(dict)
    #: 1, and one more for each stage retry.
    attempt: int = 1
    last_sequence: int = 0
    stages: dict[str, StageState] = attrs.Factory(dict)
    actions: dict[str, ActionState] = attrs.Factory(dict)
    #: When each run of it began and ended: the first, each stage retry, each resume. A run
    #: whose process died ends with its last event; the idle time between runs is in none.
    runs: list[list[datetime]] = attrs.Factory(list)
    #: What began each run: ``"start"``, ``"retry STAGE"`` or ``"resume"``.
    run_kinds: list[str] = attrs.Factory(list)
    #: When its last event was recorded, and the one before it.
    last_time: datetime | None = None
    previous_time: datetime | None = None

    def active_seconds(self, now: datetime | None = None) -> float:
        """How long it ran, in all its runs, without the idle time between them.

        A run still going counts up to ``now`` (default: its last event).
        """
        total = 0.0
        for index, span in enumerate(self.runs):
            end = span[1] if len(span) > 1 else None
            if end is None:
                last = index == len(self.runs) - 1
                end = (now if last and now is not None else None) or self.last_time or span[0]
            total += max(0.0, (end - span[0]).total_seconds())
        return total

    @classmethod
    def of(cls, first: Event) -> ExecutionState:
        """An empty state for the execution that ``first`` starts (its shape, if recorded)."""
        state = cls(first.execution_id, first.pipeline)
        shape: Mapping[str, Any] = first.detail.get("stages") or {}
        for stage, actions in shape.items():
            state.stages[stage] = StageState(stage)
            for action in actions:
                state.actions[f"{stage}.{action}"] = ActionState(stage, action)
        return state

    @property
    def ended(self) -> bool:
        """Whether the execution is over (a terminal status)."""
        return self.status in TERMINAL

    def waiting_for_approval(self) -> list[str]:
        """The actions whose approval request waits for a decision, sorted."""
        return sorted(
            node
            for node, action in self.actions.items()
            if action.approval is not None and action.approval.status is Status.WAITING_FOR_APPROVAL
        )

    def retryable_stages(self) -> list[str]:
        """The stages a retry can run again: those that ended Failed or Stopped, in order."""
        return [
            name
            for name, stage in self.stages.items()
            if stage.status in {Status.FAILED, Status.STOPPED}
        ]

    def variable_values(self) -> dict[str, str]:
        """The output variables of the actions that succeeded, keyed ``Stage.Action.Name``."""
        return {
            f"{node}.{name}": value
            for node, action in self.actions.items()
            for name, value in action.variables.items()
        }

    def apply(self, event: Event) -> None:
        """Fold one event of this execution into the state."""
        self.last_sequence = max(self.last_sequence, event.sequence)
        self.previous_time, self.last_time = self.last_time, event.time
        kind = event.type
        if kind == "pipeline":
            self._pipeline_event(event)
            return
        if event.stage is None:
            return
        if kind == "stage":
            stage = self.stages.get(event.stage)
            if stage is None:
                stage = self.stages[event.stage] = StageState(event.stage)
            stage.apply(event)
            return
        if event.action is None:
            return
        node = f"{event.stage}.{event.action}"
        action = self.actions.get(node)
        if action is None:
            action = self.actions[node] = ActionState(event.stage, event.action)
            self.stages.setdefault(event.stage, StageState(event.stage))
        if kind == "approval":
            previous = action.approval
            token = (
                event.sequence
                if event.state is Status.WAITING_FOR_APPROVAL or previous is None
                else previous.token
            )
            action.approval = ApprovalRequest(event.state, token, event.detail, event.time)
            if event.state is Status.WAITING_FOR_APPROVAL:
                action.status = Status.WAITING_FOR_APPROVAL
            elif action.status is Status.WAITING_FOR_APPROVAL:
                action.status = Status.IN_PROGRESS
            return
        action.apply(event)
        if event.state is Status.FAILED:
            self.stages[event.stage].failed = True

    def _pipeline_event(self, event: Event) -> None:
        detail = event.detail
        if self.started_at is None:
            self.started_at = event.time
            self.start = detail
            self.runs.append([event.time])
            self.run_kinds.append("start")
        elif event.state is Status.IN_PROGRESS and (
            detail.get("retry") is not None or detail.get("resumed")
        ):
            if self.runs and len(self.runs[-1]) == 1:
                # Its process died: that run ended with the last event it recorded.
                self.runs[-1].append(self.previous_time or self.runs[-1][0])
            self.runs.append([event.time])
            retried = detail.get("retry")
            self.run_kinds.append(f"retry {retried}" if retried is not None else "resume")
        if event.state in TERMINAL and self.runs and len(self.runs[-1]) == 1:
            self.runs[-1].append(event.time)
        self.status = event.state
        if event.state in TERMINAL:
            self.finished_at = event.time
        elif event.state is Status.IN_PROGRESS:
            self.finished_at = None
        attempt = detail.get("execution_attempt")
        if attempt is not None:
            self.attempt = max(self.attempt, int(attempt))
        retried = detail.get("retry")
        if retried is not None:
            # A new attempt of the execution runs this stage again: its actions listed in the
            # event (the failed ones, or all) start over, and so does the stage.
            self.stages.setdefault(retried, StageState(retried)).reopen()
            for node in detail.get("actions") or ():
                action = self.actions.get(node)
                if action is not None:
                    action.reopen()


def detail_time(value: object) -> datetime | None:
    """An ISO time of an event's detail, or ``None`` for anything else."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def replay(events: Iterable[Event], *, into: ExecutionState | None = None) -> ExecutionState:
    """Fold ``events`` (one execution's, oldest first) into its state.

    ``into`` continues a state (or fills one whose records the caller made); without it the
    first event starts a new one. An empty list with no ``into`` is a ``ValueError``.
    """
    state = into
    for event in events:
        if state is None:
            state = ExecutionState.of(event)
        state.apply(event)
    if state is None:
        msg = "replay() needs the events of an execution (got none)"
        raise ValueError(msg)
    return state
