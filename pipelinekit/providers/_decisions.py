"""Approval requests waiting in one engine, and who may decide them.

``ManualApproval`` actions open a ``PendingApproval`` in their engine (through their context)
and wait on it; ``Engine.approve`` and ``Engine.reject`` decide it. An approval is keyed by
execution id and ``"Stage.Action"``; each request also has a token, the sequence number of its
``WaitingForApproval`` event, as CodePipeline's approvals have one. Decisions made in another
process reach it through the store (``pipelinekit._runtime._decisions``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import anyio

from pipelinekit.exceptions import ExecutionError
from pipelinekit.stores._records import Decision

__all__ = ["Approvals", "PendingApproval", "check_decider"]


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
