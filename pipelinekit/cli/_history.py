"""``pipelinekit history``, ``status`` and ``logs``: what the store remembers."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import anyio

from pipelinekit._model._declarations import TERMINAL, Status
from pipelinekit._model._events import Event
from pipelinekit._runtime._lease import lease_length
from pipelinekit._runtime._replay import ActionState, ExecutionState, replay
from pipelinekit._runtime._takeover import Owner
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


def orphaned(store: SQLiteStore, events: Sequence[Event], option: str | None = None) -> str | None:
    """Why an unfinished execution has no live owner, with how to resume it; else ``None``.

    ``option`` (`` --store PATH`` or ``""``) names the store in the hint; by default the
    database's path.

    An owner on this host is asked directly; one on another host counts as gone once its
    lease has expired. An execution nobody holds a lease on counts as gone once its last
    event is older than a lease would be (its owner died before taking one).
    """
    state = replay(events)
    if state.ended:
        return None
    execution_id = state.execution_id
    if option is None:
        option = f" --store {shlex.quote(str(store.path))}"
    resume = f"resume it with: pipelinekit resume {execution_id}{option}"
    held = anyio.run(store.lease, execution_id)
    now = time.time()
    if held is None:
        quiet = now - events[-1].time.timestamp()
        if quiet < lease_length(None):
            return None
        return f"execution {execution_id} is {state.status} but no process runs it; {resume}"
    holder, until = held
    owner = Owner.parse(holder)
    if owner is not None and owner.is_alive_here():
        return None
    if owner is not None and owner.is_dead():
        why = f"its process {owner.pid} on this host is gone"
    elif until > now:
        return None
    else:
        when = datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds")
        why = f"its owner {holder} has not renewed its lease since {when}"
    return f"execution {execution_id} is {state.status} but {why}; {resume}"


def history(
    store: SQLiteStore,
    pipeline: str | None,
    limit: int,
    page: int,
    out: TextIO,
    *,
    as_json: bool = False,
) -> None:
    """Print a page of executions, newest first (or its JSON); offer the next only if any."""

    async def load() -> list[ExecutionSummary]:
        # One more than a page: whether there is a next page, without counting them all.
        return await store.executions(pipeline, limit=limit + 1, offset=(page - 1) * limit)

    rows = anyio.run(load)
    more = len(rows) > limit
    rows = rows[:limit]
    states = _states(store, rows)
    if as_json:
        out.write(json.dumps(history_json(rows, page, more=more, states=states), indent=2) + "\n")
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
                _ran(states.get(row.id), row.duration),
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]

    def render(line: tuple[str, ...]) -> str:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        return "  ".join(cells).rstrip() + "\n"

    out.writelines(render(line) for line in table)
    if more:
        out.write(f"page {page} ({len(rows)} shown); --page {page + 1} for older ones\n")
    elif page > 1:
        out.write(f"page {page} ({len(rows)} shown), the last\n")


def execution_state(events: Sequence[Event]) -> dict[str, Any]:
    """The execution's state in the shape of CodePipeline's GetPipelineState."""
    state = replay(events)
    first = events[0]

    def action_state(action: ActionState) -> dict[str, Any]:
        latest: dict[str, Any] = {"status": str(action.status)}
        if action.changed_at is not None:
            latest["lastStatusChange"] = action.changed_at.isoformat()
        if action.attempts:
            latest["attempt"] = action.attempts[-1].number
        if action.error:
            latest["errorDetails"] = {"code": "JobFailed", "message": action.error}
        if action.log_path:
            latest["logPath"] = action.log_path
        if action.variables:
            latest["outputVariables"] = action.variables
        if action.approval is not None:
            latest["approval"] = {"status": str(action.approval.status), **action.approval.detail}
        if action.caches:
            latest["caches"] = [dict(cache) for cache in action.caches]
        last = action.attempts[-1] if action.attempts else None
        if last is not None and last.failure is not None:
            latest["failure"] = last.failure.to_detail()
        if last is not None and last.reports:
            latest["reports"] = [report.to_detail() for report in last.reports]
        return {"actionName": action.name, "latestExecution": latest}

    return {
        "pipelineName": state.pipeline,
        "pipelineExecutionId": state.execution_id,
        "status": str(state.status),
        "startTime": first.time.isoformat(),
        "trigger": {
            "triggerType": state.start.get("trigger"),
            "triggerDetail": state.start.get("triggered_by"),
        },
        "stageStates": [
            {
                "stageName": stage.name,
                "latestExecution": {
                    "pipelineExecutionId": state.execution_id,
                    "status": str(stage.status),
                },
                "actionStates": [
                    action_state(action)
                    for action in state.actions.values()
                    if action.stage == stage.name
                ],
            }
            for stage in state.stages.values()
        ],
    }


def _states(store: SQLiteStore, rows: Sequence[ExecutionSummary]) -> dict[str, ExecutionState]:
    """The replayed state of each execution of a page (one read of its events each)."""

    async def load() -> dict[str, ExecutionState]:
        found: dict[str, ExecutionState] = {}
        for row in rows:
            events = await store.events(row.id)
            if events:
                found[row.id] = replay(events)
        return found

    return anyio.run(load)


def _ran(state: ExecutionState | None, duration: float | None) -> str:
    """How long an execution ran, without the idle time between its runs (``0.8s (2 runs)``)."""
    if state is None:
        return render_duration(duration)
    now = None if state.ended else datetime.now(UTC)
    shown = render_duration(state.active_seconds(now))
    return f"{shown} ({len(state.runs)} runs)" if len(state.runs) > 1 else shown


def history_json(
    rows: Sequence[ExecutionSummary],
    page: int,
    *,
    more: bool = False,
    states: Mapping[str, ExecutionState] | None = None,
) -> dict[str, Any]:
    """A page of history in the shape of CodePipeline's ``ListPipelineExecutions`` answer.

    ``nextPage`` (CodePipeline's ``nextToken``) is there only when there are older ones.
    ``durationSeconds`` is the time it ran, without the idle time between a failure and its
    retry (or a crash and its resume); ``runs`` says how many runs that took.
    """
    states = states or {}
    summaries = []
    for row in rows:
        state = states.get(row.id)
        summary: dict[str, Any] = {
            "pipelineExecutionId": row.id,
            "pipelineName": row.pipeline,
            "status": str(row.status),
            "startTime": row.started_at.isoformat(),
            "lastUpdateTime": (row.finished_at or row.started_at).isoformat(),
            "durationSeconds": row.duration,
            "trigger": {"triggerType": row.trigger, "triggerDetail": row.triggered_by},
        }
        if state is not None:
            now = None if state.ended else datetime.now(UTC)
            summary["durationSeconds"] = round(state.active_seconds(now), 6)
            summary["runs"] = len(state.runs)
        summaries.append(summary)
    answer: dict[str, Any] = {"pipelineExecutionSummaries": summaries, "page": page}
    if more:
        answer["nextPage"] = page + 1
    return answer


def status(
    store: SQLiteStore, execution_id: str, out: TextIO, *, as_json: bool, option: str | None = None
) -> None:
    """Print an execution's stage and action tree (or its JSON).

    ``option`` names the store in the commands it suggests (see ``orphaned``).
    """
    events = _events(store, execution_id)
    state = execution_state(events)
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
    replayed = replay(events)
    now = datetime.now(UTC)
    out.write(f"  {_runs_line(replayed, now)}\n")
    note = orphaned(store, events, option)
    if note is not None:
        out.write(f"  ! {note}\n")
    for stage in state["stageStates"]:
        stage_status = stage["latestExecution"].get("status", "NotStarted")
        out.write(f"  {symbol(stage_status)} {stage['stageName']} {stage_status}\n")
        for action in stage["actionStates"]:
            latest = action["latestExecution"]
            action_status = latest.get("status", "NotStarted")
            line = f"      {symbol(action_status)} {action['actionName']} {action_status}"
            node = f"{stage['stageName']}.{action['actionName']}"
            recorded = replayed.actions.get(node)
            if recorded is not None:
                line += _action_notes(recorded, replayed, now)
            elif latest.get("attempt", 1) > 1:
                line += f" (attempt {latest['attempt']})"
            if "errorDetails" in latest:
                line += f": {latest['errorDetails']['message'].splitlines()[0]}"
            if action_status == Status.WAITING_FOR_APPROVAL:
                line += f" (pipelinekit approve {execution_id} {node}{option or ''}, or reject)"
            out.write(line + "\n")
            if recorded is not None and action_status == Status.WAITING_FOR_APPROVAL:
                out.writelines(f"          {text}\n" for text in _waiting(recorded, now))
            if recorded is not None and recorded.caches:
                out.write(f"          {_caches_line(recorded.caches)}\n")


def _runs_line(state: ExecutionState, now: datetime) -> str:
    """How long it ran: in all, and each run (the first, each retry or resume) on its own."""
    total = render_duration(state.active_seconds(None if state.ended else now))
    if len(state.runs) == 1:
        return f"ran {total}" + ("" if state.ended else " so far")
    parts = []
    for index, (span, kind) in enumerate(zip(state.runs, state.run_kinds, strict=True)):
        end = span[1] if len(span) > 1 else (now if index == len(state.runs) - 1 else span[0])
        seconds = render_duration((end - span[0]).total_seconds())
        what = {"start": "first run", "resume": "resumed"}.get(
            kind, kind.replace("retry ", "retry of stage ")
        )
        parts.append(f"{what} {seconds}")
    return f"ran {total} in {len(state.runs)} runs, idle time between them left out: " + ", ".join(
        parts
    )


def _caches_line(caches: Sequence[Mapping[str, Any]]) -> str:
    """What an action's keyed caches did: ``cache: partial tools-2 (restored tools-1)``."""
    told = []
    for cache in caches:
        text = f"{cache.get('outcome', '?')} {cache.get('key', '?')}"
        restored = cache.get("restored_key")
        if restored and restored != cache.get("key"):
            text += f" (restored {restored})"
        told.append(text)
    return "cache: " + "; ".join(told)


def _action_notes(action: ActionState, state: ExecutionState, now: datetime) -> str:
    """Its attempts, how long they ran (idle time between them left out), where it comes from."""
    notes = []
    if action.reused_from is not None:
        return f" (reused from execution {action.reused_from}, not run)"
    if len(action.attempts) > 1:
        notes.append(f"attempt {action.attempts[-1].number}")
    ran = sum(
        (
            ((attempt.finished_at or now) - attempt.started_at).total_seconds()
            for attempt in action.attempts
        ),
        0.0,
    )
    if action.attempts and action.status is not Status.WAITING_FOR_APPROVAL:
        notes.append(render_duration(ran))
    if state.attempt > 1 and action.attempts and action.execution_attempt < state.attempt:
        notes.append(f"kept from execution attempt {action.execution_attempt}")
    return f" ({', '.join(notes)})" if notes else ""


def _waiting(action: ActionState, now: datetime) -> list[str]:
    """What a waiting approval shows its reviewer: its custom data, link, and how long it waits."""
    request = action.approval
    if request is None:
        return []
    lines = []
    if request.detail.get("custom_data"):
        first, *more = str(request.detail["custom_data"]).splitlines() or [""]
        lines.append(f"review: {first}")
        lines.extend(f"        {line}" for line in more)  # under the first line, not the margin
    if request.detail.get("external_entity_link"):
        lines.append(f"link: {request.detail['external_entity_link']}")
    waited = render_duration(max(0.0, (now - request.time).total_seconds()))
    expires = request.detail.get("expires")
    lines.append(f"waiting for {waited}" + (f" (until {expires})" if expires else ""))
    return lines


#: How long ``logs --follow`` waits between two looks.
_PAUSE = partial(time.sleep, 0.25)


def logs(
    store: SQLiteStore,
    execution_id: str,
    node: str,
    out: TextIO,
    *,
    follow: bool = False,
    wait: Callable[[], None] = _PAUSE,
    option: str | None = None,
) -> None:
    """Print an action's log file; with ``follow``, go on printing it until the action ends.

    ``wait`` is called between two looks at the file and the record while following.
    """
    events = _events(store, execution_id)
    start = events[0].detail
    declared = {
        f"{s}.{a}" for s, actions in dict(start.get("stages") or {}).items() for a in actions
    }
    known = declared | {e.node for e in events if e.node}
    if node not in known:
        listed = ", ".join(sorted(n for n in known if n)) or "none"
        msg = f"execution {execution_id} has no action {node!r} (actions: {listed})"
        raise NotFoundError(msg)
    paths = [e.detail["log_path"] for e in events if e.node == node and e.detail.get("log_path")]
    if paths:
        path = Path(paths[-1])
    elif start.get("logs"):
        path = Path(start["logs"]) / f"{node}.log"
    else:
        out.write(f"{node} wrote no log\n")
        return
    if not follow:
        if not path.exists():
            raise NotFoundError(_no_log(events, node, path, gone=bool(paths)))
        out.write(path.read_text(encoding="utf-8", errors="replace"))
        return
    printed = 0
    while True:
        # Whether it is over is read before the file, so the last lines are never missed.
        over = _ended(events, node)
        printed = _print_from(path, printed, out)
        if over:
            return
        note = orphaned(store, events, option)
        if note is not None:
            # Nobody will write the rest: following on would wait forever.
            raise ExecutionError(note)
        wait()
        events = _events(store, execution_id)


def _no_log(events: Sequence[Event], node: str, path: Path, *, gone: bool) -> str:
    if gone:
        return f"the log of {node} is gone: {path}"
    execution_id = events[0].execution_id
    if not any(e.node == node for e in events):
        if _ended(events, node):
            return f"{node} never ran in execution {execution_id}"
        return f"{node} has not started yet; --follow waits for it"
    return f"{node} wrote no log yet"


def _ended(events: Sequence[Event], node: str) -> bool:
    """Whether ``node`` is done in this record: it ended, or its execution did."""
    state = replay(events)
    action = state.actions.get(node)
    return state.ended or (action is not None and action.status in TERMINAL)


def _print_from(path: Path, offset: int, out: TextIO) -> int:
    """Print what ``path`` holds past ``offset``; return the new offset."""
    try:
        with path.open("rb") as log:
            log.seek(offset)
            chunk = log.read()
    except FileNotFoundError:
        return offset  # not written yet
    if chunk:
        out.write(chunk.decode("utf-8", errors="replace"))
        out.flush()
    return offset + len(chunk)


def stop(store: SQLiteStore, execution_id: str, out: TextIO, *, abandon: bool, reason: str) -> None:
    """Ask the process running ``execution_id`` to stop it."""
    from pipelinekit._runtime._engine import Engine  # noqa: PLC0415 - the other store commands need no engine

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
    err: TextIO | None = None,
) -> None:
    """Approve or reject the manual approval waiting at ``node`` (the run takes it up).

    ``by`` is who decides; ``None`` (no ``--by``) means the login name, said on ``err``. A
    blank ``by`` is refused, never replaced by the login name.
    """
    from pipelinekit._runtime._decisions import post_decision  # noqa: PLC0415 - only these commands
    from pipelinekit.providers._decisions import check_identity  # noqa: PLC0415

    if by is None:
        who = current_user()
        if who is None:
            msg = "cannot tell who you are; say it with --by NAME"
            raise ExecutionError(msg)
        if err is not None:
            err.write(f"pipelinekit: deciding as {who} (give --by NAME to say otherwise)\n")
    elif not by.strip():
        msg = (
            f"--by needs the name of who decides (got {by!r}); leave --by out to decide as "
            "your login name"
        )
        raise ExecutionError(msg)
    else:
        who = by
    check_identity(who)
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
