"""Decisions on approvals that another process runs: checked against the record, kept in the store.

A decision for an execution this engine does not run is checked against the recorded request
(its approvers, whether self-approval is barred), kept in the store under the request's token
(the first decision wins), and picked up by the owning engine's heartbeat.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pipelinekit._model._declarations import TERMINAL, Status
from pipelinekit._model._events import execution_status
from pipelinekit.exceptions import ExecutionError
from pipelinekit.providers._decisions import check_decider
from pipelinekit.stores import Decision, Store

__all__ = ["post_decision"]


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
