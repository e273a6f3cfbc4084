"""``pipelinekit history``, ``status`` and ``logs``: what the store remembers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import anyio

from pipelinekit._events import Event
from pipelinekit._model import Status
from pipelinekit.cli._user import current_user
from pipelinekit.cli._view import SYMBOLS, render_duration
from pipelinekit.exceptions import ExecutionError, PipelineKitError
from pipelinekit.stores import ExecutionSummary, SQLiteStore

__all__ = ["NotFoundError", "execution_state", "history", "logs", "status", "stop"]


class NotFoundError(PipelineKitError):
    """The store has no such execution or action."""


def _events(store: SQLiteStore, execution_id: str) -> list[Event]:
    events = anyio.run(store.events, execution_id)
    if not events:
        msg = f"the store {str(store.path)!r} has no execution {execution_id!r}"
        raise NotFoundError(msg)
    return events


def history(
    store: SQLiteStore,
    pipeline: str | None,
    limit: int,
    page: int,
    out: TextIO,
    *,
    as_json: bool = False,
) -> None:
    """Print a page of executions, newest first (or its JSON)."""

    async def load() -> list[ExecutionSummary]:
        return await store.executions(pipeline, limit=limit, offset=(page - 1) * limit)

    rows = anyio.run(load)
    if as_json:
        out.write(json.dumps(history_json(rows, page), indent=2) + "\n")
        return
    if not rows:
        where = f" of pipeline {pipeline!r}" if pipeline else ""
        out.write(f"no executions{where} on page {page}\n")
        return
    header = ("EXECUTION", "PIPELINE", "STATUS", "TRIGGER", "STARTED", "DURATION")
    table = [header]
    for row in rows:
        trigger = row.trigger or ""
        if row.triggered_by:
            trigger += f" by {row.triggered_by}"
        table.append(
            (
                row.id,
                row.pipeline,
                f"{SYMBOLS.get(row.status, ('?', ''))[0]} {row.status}",
                trigger,
                row.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                render_duration(row.duration),
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]

    def render(line: tuple[str, ...]) -> str:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        return "  ".join(cells).rstrip() + "\n"

    out.writelines(render(line) for line in table)
    out.write(f"page {page} ({len(rows)} shown); --page {page + 1} for older ones\n")


def execution_state(events: Sequence[Event]) -> dict[str, Any]:
    """The execution's state in the shape of CodePipeline's GetPipelineState."""
    first = events[0]
    shape: dict[str, list[str]] = first.detail.get("stages", {})
    status = first.state
    stages: dict[str, dict[str, Any]] = {
        name: {
            "stageName": name,
            "latestExecution": {"pipelineExecutionId": first.execution_id, "status": "NotStarted"},
            "actionStates": {
                action: {"actionName": action, "latestExecution": {"status": "NotStarted"}}
                for action in actions
            },
        }
        for name, actions in shape.items()
    }
    for event in events:
        if event.type == "pipeline":
            status = event.state
            continue
        stage = stages.setdefault(
            event.stage or "",
            {
                "stageName": event.stage,
                "latestExecution": {"pipelineExecutionId": event.execution_id},
                "actionStates": {},
            },
        )
        if event.type == "stage":
            stage["latestExecution"]["status"] = str(event.state)
            continue
        action = stage["actionStates"].setdefault(
            event.action, {"actionName": event.action, "latestExecution": {}}
        )
        latest = action["latestExecution"]
        if event.type == "approval":
            latest["approval"] = {"status": str(event.state), **dict(event.detail)}
            if event.state is Status.WAITING_FOR_APPROVAL:
                latest["status"] = str(event.state)
            continue
        latest["status"] = str(event.state)
        latest["lastStatusChange"] = event.time.isoformat()
        if "attempt" in event.detail:
            latest["attempt"] = event.detail["attempt"]
        if event.detail.get("error"):
            latest["errorDetails"] = {"code": "JobFailed", "message": event.detail["error"]}
        elif event.state is not Status.FAILED:
            latest.pop("errorDetails", None)
        if event.detail.get("log_path"):
            latest["logPath"] = event.detail["log_path"]
        if event.detail.get("variables"):
            latest["outputVariables"] = event.detail["variables"]
    return {
        "pipelineName": first.pipeline,
        "pipelineExecutionId": first.execution_id,
        "status": str(status),
        "startTime": first.time.isoformat(),
        "trigger": {
            "triggerType": first.detail.get("trigger"),
            "triggerDetail": first.detail.get("triggered_by"),
        },
        "stageStates": [
            {**stage, "actionStates": list(stage["actionStates"].values())}
            for stage in stages.values()
        ],
    }


def history_json(rows: Sequence[ExecutionSummary], page: int) -> dict[str, Any]:
    """A page of history in the shape of CodePipeline's ``ListPipelineExecutions`` answer."""
    summaries = [
        {
            "pipelineExecutionId": row.id,
            "pipelineName": row.pipeline,
            "status": str(row.status),
            "startTime": row.started_at.isoformat(),
            "lastUpdateTime": (row.finished_at or row.started_at).isoformat(),
            "durationSeconds": row.duration,
            "trigger": {"triggerType": row.trigger, "triggerDetail": row.triggered_by},
        }
        for row in rows
    ]
    return {"pipelineExecutionSummaries": summaries, "page": page}


def status(store: SQLiteStore, execution_id: str, out: TextIO, *, as_json: bool) -> None:
    """Print an execution's stage and action tree (or its JSON)."""
    state = execution_state(_events(store, execution_id))
    if as_json:
        out.write(json.dumps(state, indent=2) + "\n")
        return

    def symbol(value: str) -> str:
        try:
            return SYMBOLS[Status(value)][0]
        except (KeyError, ValueError):
            return "?"

    out.write(
        f"{symbol(state['status'])} pipeline {state['pipelineName']} {state['status']} "
        f"(execution {state['pipelineExecutionId']})\n"
    )
    for stage in state["stageStates"]:
        stage_status = stage["latestExecution"].get("status", "NotStarted")
        out.write(f"  {symbol(stage_status)} {stage['stageName']} {stage_status}\n")
        for action in stage["actionStates"]:
            latest = action["latestExecution"]
            action_status = latest.get("status", "NotStarted")
            line = f"      {symbol(action_status)} {action['actionName']} {action_status}"
            if latest.get("attempt", 1) > 1:
                line += f" (attempt {latest['attempt']})"
            if "errorDetails" in latest:
                line += f": {latest['errorDetails']['message'].splitlines()[0]}"
            if action_status == Status.WAITING_FOR_APPROVAL:
                node = f"{stage['stageName']}.{action['actionName']}"
                line += f" (pipelinekit approve {execution_id} {node}, or reject)"
            out.write(line + "\n")


def logs(store: SQLiteStore, execution_id: str, node: str, out: TextIO) -> None:
    """Print an action's log file."""
    events = _events(store, execution_id)
    paths = [e.detail["log_path"] for e in events if e.node == node and e.detail.get("log_path")]
    known = {e.node for e in events if e.node}
    if node not in known:
        listed = ", ".join(sorted(n for n in known if n)) or "none"
        msg = f"execution {execution_id} has no action {node!r} that ran (actions: {listed})"
        raise NotFoundError(msg)
    if not paths:
        out.write(f"{node} wrote no log\n")
        return
    path = Path(paths[-1])
    if not path.exists():
        msg = f"the log of {node} is gone: {path}"
        raise NotFoundError(msg)
    out.write(path.read_text(encoding="utf-8", errors="replace"))


def stop(store: SQLiteStore, execution_id: str, out: TextIO, *, abandon: bool, reason: str) -> None:
    """Ask the process running ``execution_id`` to stop it."""
    from pipelinekit._engine import Engine  # noqa: PLC0415 - the other store commands need no engine

    async def request() -> None:
        async with Engine(store=store, workdir=store.path.parent) as engine:
            await engine.stop(execution_id, abandon=abandon, reason=reason)

    anyio.run(request)
    how = "abandoning its running actions" if abandon else "letting running actions finish"
    out.write(f"stop requested for execution {execution_id} ({how})\n")


def decide(
    store: SQLiteStore,
    execution_id: str,
    node: str,
    out: TextIO,
    *,
    approved: bool,
    by: str | None,
    summary: str,
) -> None:
    """Approve or reject the manual approval waiting at ``node`` (the run takes it up)."""
    from pipelinekit._approvals import post_decision  # noqa: PLC0415 - only these commands

    who = by or current_user()
    if not who:
        msg = "cannot tell who you are; say it with --by NAME"
        raise ExecutionError(msg)
    anyio.run(
        partial(
            post_decision,
            store,
            execution_id,
            node,
            approved=approved,
            by=who,
            summary=summary,
            now=datetime.now(UTC),
        )
    )
    verb = "approved" if approved else "rejected"
    out.write(
        f"{verb} {node} of execution {execution_id} as {who}; the process running it goes on "
        "within a second\n"
    )
