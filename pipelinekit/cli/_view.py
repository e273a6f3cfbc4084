"""How ``pipelinekit run`` shows progress: a live tree in a terminal, plain lines elsewhere.

Both end with what a person needs to act on the run: for each failed action the command that
failed, how it ended and the last lines of its output; the counts and failed tests of the test
reports; the Markdown summaries actions wrote (``$PK_SUMMARY``); and a summary table. Times are
those the events carry, so the tree shows each action's attempts' time (not the waits between
them) and stays true when it takes up an execution that ran before (a retry, a resume).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from pipelinekit._model._declarations import Status
from pipelinekit._model._events import Event
from pipelinekit._model._pipeline import Pipeline
from pipelinekit._runtime._engine import Execution
from pipelinekit._runtime._replay import detail_time, replay
from pipelinekit._runtime._results import ActionResult, RunResult
from pipelinekit.providers._failure import CommandFailure
from pipelinekit.providers._junit import TestReport

__all__ = [
    "LiveView",
    "PlainView",
    "failure_report",
    "last_lines",
    "render_duration",
    "reports_report",
]

SYMBOLS = {
    Status.SUCCEEDED: ("✔", "green"),
    Status.FAILED: ("✖", "red"),
    Status.IN_PROGRESS: ("…", "yellow"),
    Status.NOT_STARTED: ("·", "dim"),
    Status.STOPPED: ("■", "magenta"),
    Status.STOPPING: ("■", "magenta"),
    Status.ABANDONED: ("■", "magenta"),
    Status.CANCELLED: ("■", "magenta"),
    Status.SUPERSEDED: ("↷", "dim"),
    Status.SKIPPED: ("↷", "dim"),
    Status.WAITING_FOR_APPROVAL: ("?", "cyan"),
}


def render_duration(duration: timedelta | float | None) -> str:
    """``0.4s``, ``12.0s``, ``3m05s``, or an empty string."""
    if duration is None:
        return ""
    seconds = duration.total_seconds() if isinstance(duration, timedelta) else duration
    if seconds < 60:  # noqa: PLR2004 - seconds in a minute
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def last_lines(path: Path | None, count: int = 15) -> list[str]:
    """The last ``count`` lines of a log file (none if there is no file)."""
    if path is None or not path.exists():
        return []
    return path.read_text(encoding="utf-8", errors="replace").splitlines()[-count:]


def failure_report(result: RunResult) -> list[str]:
    """For each failed action: its error, and the failing command and last lines of output.

    Without a failing command (a Python action, a timeout) the last lines of its log.
    """
    lines: list[str] = []
    for action in result.failed_actions():
        failure = action.failure
        if failure is None:
            lines.append(f"{action.name} failed: {action.error}")
            tail = last_lines(action.log_path)
            if tail:
                lines.append(f"  last lines of {action.log_path}:")
                lines.extend(f"  | {line}" for line in tail)
            continue
        lines.extend(_failure_lines(action, failure))
    return lines


def _failure_lines(action: ActionResult, failure: CommandFailure) -> list[str]:
    where = failure.where()
    lines = [f"{action.name} failed: command {failure.how()}" + (f" in {where}" if where else "")]
    if failure.command is not None and "\n" in failure.command:
        lines.append("  the command:")
        lines.extend(f"  | {line}" for line in failure.command.splitlines())
    if failure.output_tail:
        lines.append(f"  last {len(failure.output_tail)} lines of output (stdout and stderr):")
        lines.extend(f"  | {line}" for line in failure.output_tail)
    if action.log_path is not None:
        lines.append(f"  log: {action.log_path}")
    return lines


def _counts(reports: Sequence[TestReport]) -> str:
    read = [report for report in reports if report.problem is None]
    if not read:
        return ""
    tests = sum(report.tests for report in read)
    failed = sum(report.failures + report.errors for report in read)
    skipped = sum(report.skipped for report in read)
    text = f"{tests} tests, {failed} failed"
    return text + (f", {skipped} skipped" if skipped else "")


def reports_report(result: RunResult) -> list[str]:
    """For each action with test reports: their counts, failed tests and unread reports."""
    lines: list[str] = []
    for action in result.actions.values():
        for report in action.reports:
            if report.problem is not None:
                lines.append(f"{action.name} tests: {report.describe()} (a warning)")
                continue
            lines.append(f"{action.name} tests: {report.describe()}")
            lines.extend(f"  ✖ {name}" for name in report.failed)
            unnamed = report.failures + report.errors - len(report.failed)
            if unnamed > 0:
                lines.append(f"  ... and {unnamed} more failed")
    return lines


def _summaries(result: RunResult) -> list[tuple[str, str]]:
    return [
        (action.name, action.summary)
        for action in result.actions.values()
        if action.summary is not None
    ]


#: How many characters of an execution id the views show (any unique prefix names it).
SHORT_ID = 8


def short_id(execution_id: str) -> str:
    """The first characters of an execution id, as the views show it."""
    return execution_id[:SHORT_ID]


def _summary_line(
    result: RunResult, earlier: Sequence[Event] = (), now: Sequence[Event] = ()
) -> str:
    """The last line: how it ended and how long this run took.

    An execution taken up again (a retry, a resume) ran before: ``earlier`` holds its events
    from then, ``now`` this run's, and the line adds how long all its runs took together (the
    idle time between them left out, as ``history`` counts it).
    """
    line = f"pipeline {result.pipeline!r} {result.status} in {render_duration(result.duration)}"
    if earlier:
        last = earlier[-1].sequence
        state = replay([*earlier, *(event for event in now if event.sequence > last)])
        if len(state.runs) > 1:
            line += (
                f" this run, {render_duration(state.active_seconds())} in {len(state.runs)} runs"
            )
    return f"{line} (execution {result.execution_id})"


def reused_note(event: Event) -> str | None:
    """For an action or stage taken from another execution (``run --from --reuse``): whence."""
    reused = event.detail.get("reused_from")
    if event.type == "pipeline" or not isinstance(reused, str):
        return None
    return f"reused from {short_id(reused)}"


def _start_note(event: Event) -> str | None:
    """For a run from a stage reusing an execution: which stage and which execution."""
    reused, stage = event.detail.get("reused_from"), event.detail.get("from_stage")
    if event.type != "pipeline" or not isinstance(reused, str) or not isinstance(stage, str):
        return None
    return f"from stage {stage}, reusing execution {short_id(reused)}"


def earlier_line(events: Sequence[Event]) -> str | None:
    """What the actions of an execution taken up again did before (``None`` if nothing ran)."""
    if not events:
        return None
    state = replay(events)
    done = [
        f"{node} {action.status}"
        for node, action in state.actions.items()
        if action.status is not Status.NOT_STARTED
    ]
    if not done:
        return None
    return f"earlier in execution {short_id(state.execution_id)}: {', '.join(done)}"


def approval_hint(event: Event, store: str = "") -> str | None:
    """For an approval that starts waiting: how to decide it from a shell.

    ``store`` is the ``--store`` option the command needs, when the store is not the default.
    """
    if event.type != "approval" or event.state is not Status.WAITING_FOR_APPROVAL:
        return None
    where = f"{event.execution_id} {event.node}"
    return f"waiting for approval: pipelinekit approve {where}{store} (or reject)"


class PlainView:
    """One line per event, for logs and pipes."""

    def __init__(self, out: TextIO, store: str = "") -> None:
        """Write to ``out``; ``store`` is the ``--store`` option hints need (see approval_hint)."""
        self.out = out
        self.store = store
        self.printed = 0
        #: The events of an execution taken up again recorded before this view followed.
        self.earlier: list[Event] = []

    async def follow(self, execution: Execution) -> None:
        """Print each event as it comes (not those ``catch_up`` had)."""
        async for event in execution.events():
            if event.sequence > self.printed:
                self._print(event)

    def _print(self, event: Event) -> None:
        self.out.write(self.line(event) + "\n")
        if event.type == "pipeline" and event.state is Status.IN_PROGRESS:
            # approve, logs -f and stop need it: say it at once (a prefix of it will do).
            self.out.write(f"  execution {event.execution_id}\n")
        hint = approval_hint(event, self.store)
        if hint is not None:
            self.out.write(f"  {hint}\n")
            for label, key in (("custom data", "custom_data"), ("link", "external_entity_link")):
                value = event.detail.get(key)
                if isinstance(value, str) and value.strip():
                    self.out.write(f"  {label}: {_one_line(value, 200)}\n")
        self.out.flush()
        self.printed = event.sequence

    def catch_up(self, events: Sequence[Event]) -> None:
        """Take note of events recorded before this view followed (a retry, a resume).

        They are not printed again: one line says what each action did before.
        """
        if not events:
            return
        self.earlier = list(events)
        self.printed = max(self.printed, events[-1].sequence)
        line = earlier_line(events)
        if line is not None:
            self.out.write(line + "\n")
            self.out.flush()

    @staticmethod
    def line(event: Event) -> str:
        """``12:00:01 action Build.Compile InProgress (attempt 1)``."""
        note = reused_note(event) or _start_note(event)
        extra = f" ({note})" if note else ""
        return f"{event.time.strftime('%H:%M:%S')} {event}{extra}"

    def finish(
        self, result: RunResult | None, *, interrupted: str | None, events: Sequence[Event] = ()
    ) -> None:
        """Print the events not printed yet (a cancelled run's last), failures and a summary.

        ``interrupted`` says what stopped the run (``"cancelled by Ctrl-C"``), if anything.
        """
        for event in events:
            if event.sequence > self.printed:
                self._print(event)
        if result is None:
            return
        for line in failure_report(result) + reports_report(result):
            self.out.write(line + "\n")
        for name, summary in _summaries(result):
            self.out.write(f"--- summary of {name} ---\n{summary}\n")
        if interrupted:
            self.out.write(f"{interrupted}: running actions were stopped\n")
        self.out.write(_summary_line(result, self.earlier, events) + "\n")
        self.out.flush()


def _one_line(text: str, width: int = 100) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    cut = len(first) > width or "\n" in text.strip()
    return (first[:width] + " …") if cut else first


class LiveView:
    """A live tree of stages and actions with symbols, spinners and elapsed times (rich)."""

    def __init__(self, pipeline: Pipeline, console: Any, store: str = "") -> None:  # noqa: ANN401 - a rich Console
        """Draw ``pipeline`` on ``console``; ``store`` as for ``PlainView``."""
        from rich.spinner import Spinner  # noqa: PLC0415 - rich is optional (the cli extra)

        self.pipeline = pipeline
        self.console = console
        self.store = store
        self.status: dict[str, Status] = {}
        #: Time each node's ended attempts (or entries) took, and when its running one started.
        self.spent: dict[str, timedelta] = {}
        self.since: dict[str, datetime] = {}
        self.attempts: dict[str, int] = {}
        self.hints: dict[str, str] = {}
        #: What a waiting approval shows its reviewer (custom data, link).
        self.approvals: dict[str, list[str]] = {}
        #: What an ended action told: its failing command, its tests.
        self.notes: dict[str, str] = {}
        #: Where actions taken from another execution come from (``reused from 1a2b3c4d``).
        self.reused: dict[str, str] = {}
        self.spinner = Spinner("dots", style="yellow")
        self.title = f"pipeline {pipeline.name}"
        #: The last event applied, and the events recorded before this view followed.
        self.seen = 0
        self.earlier: list[Event] = []

    def catch_up(self, events: Sequence[Event]) -> None:
        """Apply what was recorded before this view followed (a retried or resumed execution).

        Actions that succeeded in an earlier attempt of the execution then show as succeeded,
        with the time they took, instead of as never started.
        """
        self.earlier = list(events)
        for event in events:
            self._apply(event)

    def _apply(self, event: Event) -> None:
        if event.sequence and event.sequence <= self.seen:
            return  # had already (caught up, then followed)
        self.seen = max(self.seen, event.sequence)
        if event.type == "pipeline" and event.state is Status.IN_PROGRESS:
            started = _start_note(event)
            self.title = f"pipeline {self.pipeline.name} (execution {event.execution_id})"
            if started is not None:
                self.title += f" [dim]{started}[/]"
        reused = reused_note(event)
        if reused is not None and event.node is not None:
            self.reused[event.node] = reused
        key = event.node or event.stage or "pipeline"
        if event.type == "pipeline":
            key = "pipeline"
        hint = approval_hint(event, self.store)
        if hint is not None:
            self.hints[key] = hint
            self.approvals[key] = self._approval_lines(event.detail)
        else:
            self.hints.pop(key, None)
            self.approvals.pop(key, None)
        self.status[key] = event.state
        if event.type == "approval":
            return  # the action's own events say when it starts and ends
        self._clock(key, event)
        if event.state is Status.IN_PROGRESS:
            self.notes.pop(key, None)
            if "attempt" in event.detail:
                self.attempts[key] = int(event.detail["attempt"])
        elif event.type == "action":
            self.notes[key] = self._note(event.detail)

    def _clock(self, key: str, event: Event) -> None:
        """Count the time of attempts (and entries), not the waits between them."""
        running = self.since.get(key)
        if event.state in {Status.IN_PROGRESS, Status.WAITING_FOR_APPROVAL}:
            if running is not None and event.state is Status.IN_PROGRESS:
                # A retry: the attempt before ended when its detail says, not now.
                ended = detail_time(event.detail.get("previous_finished_at")) or event.time
                self._add(key, max(timedelta(0), ended - running))
                self.since[key] = event.time
            elif running is None:
                self.since[key] = event.time
            return
        if running is not None:
            self._add(key, max(timedelta(0), event.time - running))
            del self.since[key]

    def _add(self, key: str, duration: timedelta) -> None:
        self.spent[key] = self.spent.get(key, timedelta(0)) + duration

    @staticmethod
    def _approval_lines(detail: Mapping[str, Any]) -> list[str]:
        from rich.markup import escape  # noqa: PLC0415

        lines = []
        custom = detail.get("custom_data")
        if isinstance(custom, str) and custom.strip():
            lines.append(f"[cyan]{escape(_one_line(custom))}[/]")
        link = detail.get("external_entity_link")
        if isinstance(link, str) and link.strip():
            lines.append(f"[cyan underline]{escape(link.strip())}[/]")
        return lines

    @staticmethod
    def _note(detail: Mapping[str, Any]) -> str:
        from rich.markup import escape  # noqa: PLC0415

        notes = []
        failure = CommandFailure.from_detail(detail.get("failure"))
        if failure is not None:
            where = f"commands[{failure.index}] " if failure.index is not None else ""
            notes.append(f"[red]{escape(where + failure.how())}[/]")
        raw = detail.get("reports")
        reports = [TestReport.from_detail(item) for item in raw] if isinstance(raw, list) else []
        counts = _counts([report for report in reports if report is not None])
        if counts:
            style = "dim" if ", 0 failed" in counts else "red"
            notes.append(f"[{style}]{escape(counts)}[/]")
        return " ".join(notes)

    def _elapsed(self, key: str) -> str:
        spent = self.spent.get(key)
        running = self.since.get(key)
        if running is not None:
            spent = (spent or timedelta(0)) + max(timedelta(0), datetime.now(UTC) - running)
        return render_duration(spent)

    def _symbol(self, key: str) -> Any:  # noqa: ANN401 - a rich renderable
        from rich.text import Text  # noqa: PLC0415

        status = self.status.get(key, Status.NOT_STARTED)
        if status is Status.IN_PROGRESS:
            return self.spinner
        symbol, style = SYMBOLS.get(status, ("?", "white"))
        return Text(symbol, style=style)

    def __rich__(self) -> Any:  # noqa: ANN401 - a rich renderable
        """The current tree, redrawn by ``rich.live.Live``."""
        from rich.table import Table  # noqa: PLC0415

        table = Table.grid(padding=(0, 1))
        table.add_column(width=2)
        table.add_column()
        table.add_column(justify="right", style="dim")
        table.add_row(self._symbol("pipeline"), f"[bold]{self.title}[/]", self._elapsed("pipeline"))
        for stage in self.pipeline.stages:
            table.add_row(
                self._symbol(stage.name), f"  [bold]{stage.name}[/]", self._elapsed(stage.name)
            )
            for action in stage.actions:
                node = f"{stage.name}.{action.name}"
                label = f"    {action.name}"
                if self.attempts.get(node, 1) > 1:
                    label += f" [dim](attempt {self.attempts[node]})[/]"
                if node in self.reused:
                    label += f" [dim]{self.reused[node]}[/]"
                if self.notes.get(node):
                    label += f" {self.notes[node]}"
                if node in self.hints:
                    label += f" [cyan]{self.hints[node]}[/]"
                table.add_row(self._symbol(node), label, self._elapsed(node))
                for line in self.approvals.get(node, ()):
                    table.add_row("", f"      {line}", "")
        return table

    async def follow(self, execution: Execution) -> None:
        """Redraw on every event, and a few times a second for spinners and clocks."""
        from rich.live import Live  # noqa: PLC0415

        with Live(self, console=self.console, refresh_per_second=8, transient=False):
            async for event in execution.events():
                self._apply(event)

    def finish(
        self, result: RunResult | None, *, interrupted: str | None, events: Sequence[Event] = ()
    ) -> None:
        """Print the failing commands and their output, tests, summaries and a summary table."""
        for event in events:  # a cancelled run's last, which the tree may not have had
            self._apply(event)
        from rich.markdown import Markdown  # noqa: PLC0415
        from rich.rule import Rule  # noqa: PLC0415
        from rich.table import Table  # noqa: PLC0415

        if result is None:
            return
        report = failure_report(result) + reports_report(result)
        if report:
            self.console.print()
            for line in report:
                style = "red" if not line.startswith("  ") else "dim"
                self.console.print(line, style=style, markup=False, highlight=False)
        for name, summary in _summaries(result):
            self.console.print(Rule(f"summary of {name}", align="left"))
            self.console.print(Markdown(summary))
        with_tests = any(action.reports for action in result.actions.values())
        table = Table(title="summary", title_justify="left")
        columns = ["stage", "action", "status", "attempts", "duration"]
        for column in [*columns, "tests"] if with_tests else columns:
            table.add_column(column)
        for action in result.actions.values():
            symbol, style = SYMBOLS.get(action.status, ("?", "white"))
            reused = self.reused.get(action.name) if not action.attempts else None
            cells = [
                action.stage,
                action.action,
                f"[{style}]{symbol} {action.status}[/]",
                "-" if reused else str(len(action.attempts)),
                f"[dim]{reused}[/]" if reused else render_duration(action.duration),
            ]
            if with_tests:
                cells.append(_counts(action.reports))
            table.add_row(*cells)
        self.console.print(table)
        if interrupted:
            self.console.print(f"[magenta]{interrupted}: running actions were stopped[/]")
        symbol, style = SYMBOLS.get(result.status, ("?", "white"))
        line = _summary_line(result, self.earlier, events)
        self.console.print(f"[{style}]{symbol}[/] {line}", highlight=False)
