"""How ``pipelinekit run`` shows progress: a live tree in a terminal, plain lines elsewhere."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from pipelinekit._model._declarations import Status
from pipelinekit._model._events import Event
from pipelinekit._model._pipeline import Pipeline
from pipelinekit._runtime._engine import Execution
from pipelinekit._runtime._results import RunResult

__all__ = ["LiveView", "PlainView", "last_lines", "render_duration"]

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
    """For each failed action: its error and the last lines of its log."""
    lines: list[str] = []
    for action in result.failed_actions():
        lines.append(f"{action.name} failed: {action.error}")
        tail = last_lines(action.log_path)
        if tail:
            lines.append(f"  last lines of {action.log_path}:")
            lines.extend(f"  | {line}" for line in tail)
    return lines


def _summary_line(result: RunResult) -> str:
    return (
        f"pipeline {result.pipeline!r} {result.status} in {render_duration(result.duration)} "
        f"(execution {result.execution_id})"
    )


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

    async def follow(self, execution: Execution) -> None:
        """Print each event as it comes."""
        async for event in execution.events():
            self._print(event)

    def _print(self, event: Event) -> None:
        self.out.write(self.line(event) + "\n")
        if event.type == "pipeline" and event.state is Status.IN_PROGRESS:
            # approve, logs -f and stop need it: say it at once (a prefix of it will do).
            self.out.write(f"  execution {event.execution_id}\n")
        hint = approval_hint(event, self.store)
        if hint is not None:
            self.out.write(f"  {hint}\n")
        self.out.flush()
        self.printed = event.sequence

    @staticmethod
    def line(event: Event) -> str:
        """``12:00:01 action Build.Compile InProgress (attempt 1)``."""
        return f"{event.time.strftime('%H:%M:%S')} {event}"

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
        for line in failure_report(result):
            self.out.write(line + "\n")
        if interrupted:
            self.out.write(f"{interrupted}: running actions were stopped\n")
        self.out.write(_summary_line(result) + "\n")
        self.out.flush()


class LiveView:
    """A live tree of stages and actions with symbols, spinners and elapsed times (rich)."""

    def __init__(self, pipeline: Pipeline, console: Any, store: str = "") -> None:  # noqa: ANN401 - a rich Console
        """Draw ``pipeline`` on ``console``; ``store`` as for ``PlainView``."""
        from rich.spinner import Spinner  # noqa: PLC0415 - rich is optional (the cli extra)

        self.pipeline = pipeline
        self.console = console
        self.store = store
        self.status: dict[str, Status] = {}
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.attempts: dict[str, int] = {}
        self.hints: dict[str, str] = {}
        self.spinner = Spinner("dots", style="yellow")
        self.title = f"pipeline {pipeline.name}"

    def _apply(self, event: Event) -> None:
        if event.type == "pipeline" and event.state is Status.IN_PROGRESS:
            self.title = f"pipeline {self.pipeline.name} (execution {event.execution_id})"
        key = event.node or event.stage or "pipeline"
        if event.type == "pipeline":
            key = "pipeline"
        hint = approval_hint(event, self.store)
        if hint is not None:
            self.hints[key] = hint
        else:
            self.hints.pop(key, None)
        self.status[key] = event.state
        if event.state is Status.IN_PROGRESS:
            self.started.setdefault(key, time.monotonic())
            self.ended.pop(key, None)
            if "attempt" in event.detail:
                self.attempts[key] = int(event.detail["attempt"])
        else:
            self.ended[key] = time.monotonic()

    def _elapsed(self, key: str) -> str:
        if key not in self.started:
            return ""
        return render_duration(self.ended.get(key, time.monotonic()) - self.started[key])

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
                if node in self.hints:
                    label += f" [cyan]{self.hints[node]}[/]"
                table.add_row(self._symbol(node), label, self._elapsed(node))
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
        """Print the failing actions' last log lines and a summary table."""
        del events  # the summary table shows the final state
        from rich.table import Table  # noqa: PLC0415

        if result is None:
            return
        report = failure_report(result)
        if report:
            self.console.print()
            for line in report:
                style = "red" if not line.startswith("  ") else "dim"
                self.console.print(line, style=style, markup=False, highlight=False)
        table = Table(title="summary", title_justify="left")
        for column in ("stage", "action", "status", "attempts", "duration"):
            table.add_column(column)
        for action in result.actions.values():
            symbol, style = SYMBOLS.get(action.status, ("?", "white"))
            table.add_row(
                action.stage,
                action.action,
                f"[{style}]{symbol} {action.status}[/]",
                str(len(action.attempts)),
                render_duration(action.duration),
            )
        self.console.print(table)
        if interrupted:
            self.console.print(f"[magenta]{interrupted}: running actions were stopped[/]")
        symbol, style = SYMBOLS.get(result.status, ("?", "white"))
        self.console.print(f"[{style}]{symbol}[/] {_summary_line(result)}", highlight=False)
