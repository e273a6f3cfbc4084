"""Deciding approvals: here, or in an execution another process runs, through the store.

Every decision is kept in the store under the request's token before anyone acts on it, and the
store keeps only the first (a conditional insert in one transaction): the first decision kept
wins, within an engine and across processes. A decision for an execution this engine does not
run is checked against the recorded request (its approvers, whether self-approval is barred)
and picked up by the owning engine's heartbeat.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pipelinekit._model._declarations import Status
from pipelinekit._runtime._replay import replay
from pipelinekit.exceptions import ExecutionError
from pipelinekit.providers._decisions import (
    TIMED_OUT,
    Approvals,
    check_decider,
    check_identity,
    refusal,
)
from pipelinekit.stores import Decision, Store

__all__ = ["decide", "post_decision", "take_decisions"]


async def decide(
    store: Store,
    approvals: Approvals,
    execution_id: str,
    node: str,
    *,
    approved: bool,
    by: str,
    summary: str,
    now: datetime,
) -> Decision:
    """Approve or reject the approval at ``node``, waiting here or in another process.

    ``ExecutionError`` when ``by`` is blank or may not decide, nothing waits there, or a
    decision was kept first (naming who decided what, and when).
    """
    check_identity(by)
    if approvals.is_waiting(execution_id, node):
        return await approvals.decide(
            execution_id, node, approved=approved, by=by, summary=summary, now=now
        )
    return await post_decision(
        store, execution_id, node, approved=approved, by=by, summary=summary, now=now
    )


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
    check_identity(by)
    events = await store.events(execution_id)
    if not events:
        msg = f"the store has no execution {execution_id!r}"
        raise ExecutionError(msg)
    state = replay(events)
    if state.ended:
        msg = f"execution {execution_id} already ended {state.status}; no approval waits in it"
        raise ExecutionError(msg)
    waiting = state.waiting_for_approval()
    action = state.actions.get(node)
    request = action.approval if action is not None else None
    if node not in waiting or request is None:
        if request is not None and request.status in {Status.SUCCEEDED, Status.FAILED}:
            # Decided and recorded already: say by whom, as when the decision is still only
            # kept (the same words either way).
            kept = await store.decision(execution_id, request.token)
            if kept is None:
                detail = request.detail
                by_whom = TIMED_OUT if detail.get("timed_out") else str(detail.get("by", "?"))
                kept = Decision(request.status is Status.SUCCEEDED, by_whom, "", request.time)
            raise ExecutionError(refusal(kept, execution_id, node))
        msg = (
            f"no approval is waiting at {node!r} in execution {execution_id} "
            f"(waiting: {', '.join(waiting) or 'none'})"
        )
        raise ExecutionError(msg)
    token, detail = request.token, request.detail
    approvers = [str(name) for name in detail.get("approvers") or ()]
    barred = state.start.get("triggered_by") if detail.get("self_approval") is False else None
    check_decider(execution_id, node, by, approvers, barred)
    ours = Decision(approved, by, summary, now)
    kept = await store.put_decision(execution_id, token, ours)
    if kept != ours:
        raise ExecutionError(refusal(kept, execution_id, node))
    return kept


async def take_decisions(
    store: Store,
    approvals: Approvals,
    execution_id: str,
    aliases: Mapping[int, int] | None = None,
) -> None:
    """Hand decisions kept in ``store`` to the approvals of ``execution_id`` waiting here.

    A kept decision stands as it is: it was checked before it was kept, and the store keeps
    only the first. ``aliases`` maps the token of a request a resumed run asked again to the
    token of the request it replaces: a decision kept for that one is checked against the new
    request's rules (its approvers may have changed), kept for it, and handed over.
    """
    for node, pending in approvals.pending(execution_id):
        token = pending.token
        if token is None:
            continue  # its request is not on record yet
        decision = await store.decision(execution_id, token)
        earlier = (aliases or {}).get(token)
        if decision is None and earlier is not None:
            carried = await store.decision(execution_id, earlier)
            if carried is not None and carried.by != TIMED_OUT:
                try:
                    check_decider(execution_id, node, carried.by, pending.approvers, pending.barred)
                except ExecutionError:
                    continue  # no longer theirs to decide: the request waits for another
                decision = await store.put_decision(execution_id, token, carried)
        if decision is not None:
            approvals.hand_over(execution_id, node, token, decision)
