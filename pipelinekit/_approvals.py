"""Manual approvals waiting in an engine: who may decide them, and the decisions.

``ManualApproval`` actions open a ``PendingApproval`` here and wait on it; ``Engine.approve`` and
``Engine.reject`` decide it. An approval is keyed by execution id and ``"Stage.Action"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import anyio
import attrs

from pipelinekit.exceptions import ExecutionError

__all__ = ["Approvals", "Decision", "PendingApproval"]


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

    def waiting(self) -> list[tuple[str, str]]:
        """``(execution id, "Stage.Action")`` of every approval waiting."""
        return list(self._pending)

    def decide(
        self, execution_id: str, node: str, *, approved: bool, by: str, summary: str, now: datetime
    ) -> Decision:
        """Approve or reject; ``ExecutionError`` when nothing waits there or ``by`` may not."""
        pending = self._pending.get((execution_id, node))
        if pending is None:
            waiting = ", ".join(n for e, n in self._pending if e == execution_id) or "none"
            msg = (
                f"no approval is waiting at {node!r} in execution {execution_id} "
                f"(waiting: {waiting})"
            )
            raise ExecutionError(msg)
        if not by:
            msg = "an approval decision needs the name of who decides (by=...)"
            raise ExecutionError(msg)
        if pending.approvers and by not in pending.approvers:
            allowed = ", ".join(sorted(pending.approvers))
            msg = f"{by!r} may not decide the approval at {node!r}; approvers: {allowed}"
            raise ExecutionError(msg)
        if pending.barred is not None and by == pending.barred:
            msg = (
                f"{by!r} started execution {execution_id} and may not approve it; "
                "ask another approver"
            )
            raise ExecutionError(msg)
        decision = Decision(approved, by, summary, now)
        pending.decide(decision)
        self.close(execution_id, node)
        return decision
