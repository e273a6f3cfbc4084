"""Manual approvals: who may decide them, and the decisions, here or from another process.

``ManualApproval`` actions open a ``PendingApproval`` in their engine and wait on it;
``Engine.approve`` and ``Engine.reject`` decide it. An approval is keyed by execution id and
``"Stage.Action"``; each request also has a token, the sequence number of its
``WaitingForApproval`` event, as CodePipeline's approvals have one.

A decision for an execution that another process runs goes through the store (``post_decision``):
it is checked against the recorded request, kept under its token (the first decision wins), and
the owning engine picks it up with its heartbeat.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from pipelinekit._events import execution_status
from pipelinekit._model import TERMINAL, Status
from pipelinekit.exceptions import ExecutionError

if TYPE_CHECKING:
    from pipelinekit.stores import Store

__all__ = ["Approvals", "Decision", "PendingApproval", "check_decider", "post_decision"]


@attrs.frozen
class Decision:
    """An answer to an approval request."""

    approved: bool
    by: str
    summary: str
    time: datetime


class PendingApproval:
    """One approval request, waiting for its decision."""

    def __init__(self, approvers: Iterable[str], barred: str | None) -> None:
        """Only ``approvers`` (anyone, when empty) may decide; never ``barred``."""
        self.approvers = frozenset(approvers)
        self.barred = barred
        self.decision: Decision | None = None
        #: The sequence number of the request's ``WaitingForApproval`` event, once recorded.
        self.token: int | None = None
        self._decided = anyio.Event()

    async def wait(self) -> Decision:
        """Wait for the decision."""
        await self._decided.wait()
        assert self.decision is not None  # noqa: S101 - set before the event
        return self.decision

    def decide(self, decision: Decision) -> None:
        """Record the decision and wake the waiting action."""
        self.decision = decision
        self._decided.set()


class Approvals:
    """The approvals waiting in one engine."""

    def __init__(self) -> None:
        """No approval waits yet."""
        self._pending: dict[tuple[str, str], PendingApproval] = {}

    def open(
        self, execution_id: str, node: str, *, approvers: Iterable[str], barred: str | None
    ) -> PendingApproval:
        """Start waiting for a decision on ``node`` of ``execution_id``."""
        pending = PendingApproval(approvers, barred)
        self._pending[(execution_id, node)] = pending
        return pending

    def close(self, execution_id: str, node: str) -> None:
        """Stop waiting (decided, timed out or cancelled)."""
        self._pending.pop((execution_id, node), None)

    def pending(self, execution_id: str) -> list[tuple[str, PendingApproval]]:
        """``("Stage.Action", request)`` of the approvals waiting in ``execution_id``."""
        return [(n, p) for (e, n), p in self._pending.items() if e == execution_id]

    def is_waiting(self, execution_id: str, node: str) -> bool:
        """Whether an approval of this engine waits at ``node`` of ``execution_id``."""
        return (execution_id, node) in self._pending

    def decide(
        self, execution_id: str, node: str, *, approved: bool, by: str, summary: str, now: datetime
    ) -> Decision:
        """Approve or reject; ``ExecutionError`` when nothing waits there or ``by`` may not."""
        pending = self._pending.get((execution_id, node))
        if pending is None:
            waiting = ", ".join(n for n, _ in self.pending(execution_id)) or "none"
            msg = (
                f"no approval is waiting at {node!r} in execution {execution_id} "
                f"(waiting: {waiting})"
            )
            raise ExecutionError(msg)
        check_decider(execution_id, node, by, pending.approvers, pending.barred)
        decision = Decision(approved, by, summary, now)
        pending.decide(decision)
        self.close(execution_id, node)
        return decision


def check_decider(
    execution_id: str, node: str, by: str, approvers: Iterable[str], barred: str | None
) -> None:
    """Raise ``ExecutionError`` unless ``by`` may decide the approval at ``node``."""
    allowed = frozenset(approvers)
    if not by:
        msg = "an approval decision needs the name of who decides (by=...)"
        raise ExecutionError(msg)
    if allowed and by not in allowed:
        names = ", ".join(sorted(allowed))
        msg = f"{by!r} may not decide the approval at {node!r}; approvers: {names}"
        raise ExecutionError(msg)
    if barred is not None and by == barred:
        msg = (
            f"{by!r} started execution {execution_id} and may not approve it; ask another approver"
        )
        raise ExecutionError(msg)


async def post_decision(
    store: Store,
    execution_id: str,
    node: str,
    *,
    approved: bool,
    by: str,
    summary: str,
    now: datetime,
) -> Decision:
    """Decide the approval waiting at ``node`` of an execution another process runs.

    The request is read from the record (its approvers, whether self-approval is barred); the
    decision is kept in the store under the request's token, where the owner's heartbeat finds
    it. ``ExecutionError`` when the execution is unknown or over, nothing waits at ``node``,
    ``by`` may not decide, or someone decided first.
    """
    events = await store.events(execution_id)
    if not events:
        msg = f"the store has no execution {execution_id!r}"
        raise ExecutionError(msg)
    status = execution_status(events)
    if status in TERMINAL:
        msg = f"execution {execution_id} already ended {status}; no approval waits in it"
        raise ExecutionError(msg)
    latest: dict[str, tuple[Status, int, Mapping[str, Any]]] = {}
    for event in events:
        if event.type == "approval" and event.node is not None:
            latest[event.node] = (event.state, event.sequence, event.detail)
    waiting = sorted(
        n for n, (state, _, _) in latest.items() if state is Status.WAITING_FOR_APPROVAL
    )
    if node not in waiting:
        msg = (
            f"no approval is waiting at {node!r} in execution {execution_id} "
            f"(waiting: {', '.join(waiting) or 'none'})"
        )
        raise ExecutionError(msg)
    _, token, detail = latest[node]
    approvers = [str(name) for name in detail.get("approvers") or ()]
    barred = events[0].detail.get("triggered_by") if detail.get("self_approval") is False else None
    check_decider(execution_id, node, by, approvers, barred)
    ours = Decision(approved, by, summary, now)
    kept = await store.put_decision(execution_id, token, ours)
    if kept != ours:
        verb = "approved" if kept.approved else "rejected"
        msg = (
            f"the approval at {node!r} in execution {execution_id} was already {verb} by {kept.by}"
        )
        raise ExecutionError(msg)
    return kept
