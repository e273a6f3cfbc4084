"""Decisions on approvals that another process runs: checked against the record, kept in the store.

A decision for an execution this engine does not run is checked against the recorded request
(its approvers, whether self-approval is barred), kept in the store under the request's token
(the first decision wins), and picked up by the owning engine's heartbeat.
"""

from __future__ import annotations

from datetime import datetime

from pipelinekit._runtime._replay import replay
from pipelinekit.exceptions import ExecutionError
from pipelinekit.providers._decisions import Approvals, check_decider
from pipelinekit.stores import Decision, Store

__all__ = ["post_decision", "take_decisions"]


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
    state = replay(events)
    if state.ended:
        msg = f"execution {execution_id} already ended {state.status}; no approval waits in it"
        raise ExecutionError(msg)
    waiting = state.waiting_for_approval()
    if node not in waiting:
        msg = (
            f"no approval is waiting at {node!r} in execution {execution_id} "
            f"(waiting: {', '.join(waiting) or 'none'})"
        )
        raise ExecutionError(msg)
    request = state.actions[node].approval
    assert request is not None  # noqa: S101 - it waits, so it has a request
    token, detail = request.token, request.detail
    approvers = [str(name) for name in detail.get("approvers") or ()]
    barred = state.start.get("triggered_by") if detail.get("self_approval") is False else None
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


async def take_decisions(store: Store, approvals: Approvals, execution_id: str) -> None:
    """Hand decisions kept in ``store`` to the approvals of ``execution_id`` waiting here."""
    for node, pending in approvals.pending(execution_id):
        if pending.token is None:
            continue  # its request is not on record yet
        decision = await store.decision(execution_id, pending.token)
        if decision is None or not approvals.is_waiting(execution_id, node):
            continue
        try:
            approvals.decide(
                execution_id,
                node,
                approved=decision.approved,
                by=decision.by,
                summary=decision.summary,
                now=decision.time,
            )
        except ExecutionError as error:
            # Checked when it was kept; refused here only if the rules changed meanwhile.
            from pipelinekit.providers._log import library_logger  # noqa: PLC0415 - rare

            library_logger().warning(
                "approval decision refused", execution_id=execution_id, error=str(error)
            )
