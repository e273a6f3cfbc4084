"""Approval requests waiting in one engine, who may decide them, and which decision stands.

``ManualApproval`` actions open a ``PendingApproval`` in their engine (through their context)
and wait on it; ``Engine.approve`` and ``Engine.reject`` decide it. An approval is keyed by
execution id and ``"Stage.Action"``; each request also has a token, the sequence number of its
``WaitingForApproval`` event, as CodePipeline's approvals have one.

The first decision kept wins. A decision is kept in the store under the request's token (a
conditional insert: the store keeps one per token and returns the one that stands) before the
waiting action hears of it, whether it is made in this engine, in another engine or process
(``pipelinekit._runtime._decisions``), or by the request timing out. Whoever comes second, even
by a microsecond, is told who decided what and when; nothing is decided by reading and then
writing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta

import anyio

from pipelinekit.exceptions import ExecutionError
from pipelinekit.providers._identity import TIMED_OUT, check_identity
from pipelinekit.stores._records import Decision

__all__ = [
    "TIMED_OUT",
    "Approvals",
    "Keep",
    "PendingApproval",
    "check_decider",
    "check_identity",
    "refusal",
]

#: Keeps a decision on request ``token`` of an execution unless one is kept; returns the one
#: that stands (``Store.put_decision``).
Keep = Callable[[str, int, Decision], Awaitable[Decision]]


class PendingApproval:
    """One approval request, waiting for its decision."""

    def __init__(self, approvers: Iterable[str], barred: str | None) -> None:
        """Only ``approvers`` (anyone, when empty) may decide; never ``barred``."""
        self.approvers = frozenset(approvers)
        self.barred = barred
        #: The decision handed to the waiting action, once there is one.
        self.decision: Decision | None = None
        #: The sequence number of the request's ``WaitingForApproval`` event, once recorded.
        self.token: int | None = None
        #: Outside a run (no store, no token) the request keeps its first decision itself.
        self.kept: Decision | None = None
        self._decided = anyio.Event()
        self._on_record = False
        self._settled = anyio.Event()  # on record, or closed before it could be

    def recorded(self, token: int | None) -> None:
        """The request is on record as event ``token`` (``None`` outside a run): decide away."""
        self.token = token
        self._on_record = True
        self._settled.set()

    async def wait_recorded(self) -> bool:
        """Wait until the request is on record; ``False`` if it closed before it was."""
        await self._settled.wait()
        return self._on_record

    async def wait(self) -> Decision:
        """Wait for the decision."""
        await self._decided.wait()
        assert self.decision is not None  # noqa: S101 - set before the event
        return self.decision

    def decide(self, decision: Decision) -> None:
        """Hand the decision that stands to the waiting action (the first one handed stays)."""
        if self.decision is None:
            self.decision = decision
        self._decided.set()


class Approvals:
    """The approvals waiting in one engine.

    ``keep`` is where decisions are kept first (the engine's ``store.put_decision``); without
    it (an ``ActionContext`` made outside an engine) each request keeps its first decision
    itself.
    """

    def __init__(self, keep: Keep | None = None) -> None:
        """No approval waits yet."""
        self._keep = keep
        self._pending: dict[tuple[str, str], PendingApproval] = {}

    def open(
        self, execution_id: str, node: str, *, approvers: Iterable[str], barred: str | None
    ) -> PendingApproval:
        """Start waiting for a decision on ``node`` of ``execution_id``."""
        pending = PendingApproval(approvers, barred)
        self._pending[(execution_id, node)] = pending
        return pending

    def close(self, execution_id: str, node: str, pending: PendingApproval | None = None) -> None:
        """Stop waiting (decided, timed out or cancelled); only ``pending`` if given."""
        current = self._pending.get((execution_id, node))
        if current is not None and (pending is None or current is pending):
            del self._pending[(execution_id, node)]
            # A decider waiting for the request to be recorded must not wait forever.
            current._settled.set()  # noqa: SLF001 - the request's own module

    def pending(self, execution_id: str) -> list[tuple[str, PendingApproval]]:
        """``("Stage.Action", request)`` of the approvals waiting in ``execution_id``."""
        return [(n, p) for (e, n), p in self._pending.items() if e == execution_id]

    def is_waiting(self, execution_id: str, node: str) -> bool:
        """Whether an approval of this engine waits at ``node`` of ``execution_id``."""
        return (execution_id, node) in self._pending

    async def decide(
        self, execution_id: str, node: str, *, approved: bool, by: str, summary: str, now: datetime
    ) -> Decision:
        """Approve or reject a request waiting here; the decision is kept before it is heard.

        ``ExecutionError`` when nothing waits there, ``by`` may not decide, or a decision was
        kept first (saying whose, and when).
        """
        pending = self._pending.get((execution_id, node))
        if pending is None:
            raise self._not_waiting(execution_id, node)
        check_decider(execution_id, node, by, pending.approvers, pending.barred)
        ours = Decision(approved, by, summary, now)
        # The token keys the decision in the store: a decision made the moment the request
        # opened waits the few milliseconds until it is on record.
        if not await pending.wait_recorded():
            raise self._not_waiting(execution_id, node)
        kept = await self._kept(execution_id, pending, ours)
        if kept != ours:
            raise ExecutionError(refusal(kept, execution_id, node))
        pending.decide(kept)
        self.close(execution_id, node, pending)
        return kept

    def hand_over(self, execution_id: str, node: str, token: int, decision: Decision) -> None:
        """Give a decision kept elsewhere to the request ``token`` if it waits here."""
        pending = self._pending.get((execution_id, node))
        if pending is not None and pending.token == token:
            pending.decide(decision)
            self.close(execution_id, node, pending)

    async def time_out(
        self, execution_id: str, pending: PendingApproval, *, after: timedelta, now: datetime
    ) -> Decision:
        """Keep the timeout of ``pending`` as its decision, unless a person's came first.

        Returns the decision that stands: the timeout's (``by`` is ``TIMED_OUT``), or one
        kept a moment before it fired and not yet heard by the waiting action.
        """
        if pending.decision is not None:
            return pending.decision  # handed over as the timer fired
        ours = Decision(approved=False, by=TIMED_OUT, summary=f"timed out after {after}", time=now)
        return await self._kept(execution_id, pending, ours)

    async def _kept(self, execution_id: str, pending: PendingApproval, ours: Decision) -> Decision:
        if self._keep is None or pending.token is None:
            if pending.kept is None:
                pending.kept = ours
            return pending.kept
        return await self._keep(execution_id, pending.token, ours)

    def _not_waiting(self, execution_id: str, node: str) -> ExecutionError:
        waiting = ", ".join(n for n, _ in self.pending(execution_id)) or "none"
        msg = f"no approval is waiting at {node!r} in execution {execution_id} (waiting: {waiting})"
        return ExecutionError(msg)


def refusal(kept: Decision, execution_id: str, node: str) -> str:
    """Why a decision is refused when ``kept`` stands: who decided what, and when."""
    when = kept.time.isoformat(timespec="seconds")
    if kept.by == TIMED_OUT:
        return f"the approval at {node!r} in execution {execution_id} already timed out at {when}"
    verb = "approved" if kept.approved else "rejected"
    return (
        f"the approval at {node!r} in execution {execution_id} was already {verb} by {kept.by} "
        f"at {when}"
    )


def check_decider(
    execution_id: str, node: str, by: str, approvers: Iterable[str], barred: str | None
) -> None:
    """Raise ``ExecutionError`` unless ``by`` may decide the approval at ``node``."""
    check_identity(by)
    allowed = frozenset(approvers)
    if allowed and by not in allowed:
        names = ", ".join(sorted(allowed))
        msg = f"{by!r} may not decide the approval at {node!r}; approvers: {names}"
        raise ExecutionError(msg)
    if barred is not None and by == barred:
        msg = (
            f"{by!r} started execution {execution_id} and may not approve it; ask another approver"
        )
        raise ExecutionError(msg)
