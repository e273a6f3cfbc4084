"""``CommandFailure``: how a command failed, told so that it points at the fault.

A failed action that ran commands says which command failed (its text and its place among the
action's commands, for ``Commands``), how it ended (an exit status, or the signal that killed
it, by name) and the last lines of its output, stdout and stderr together in the order they
came. The failure travels on ``CommandFailed`` (an ``ActionFailed``) from the provider to the
attempt, which puts it, masked, on the result and in the failed event's detail; the live view
and the summary show it. It never holds more than a bounded amount of text: events and the
store keep it.
"""

from __future__ import annotations

import signal as signals
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from pipelinekit._model._secrets import MASK
from pipelinekit.exceptions import ActionFailed

__all__ = ["TAIL_LINES", "CommandFailed", "CommandFailure", "cut_at", "signal_name"]

#: How many of the last lines of output a failure keeps.
TAIL_LINES = 20
#: How long one kept line (or a command's text) may be; longer ones are cut, saying so.
_MAX_LINE = 500
#: How many lines of a multi-line command's text a failure keeps.
_COMMAND_LINES = 10


def signal_name(number: int) -> str | None:
    """``"SIGKILL"`` for 9; ``None`` for a number that is no signal here."""
    try:
        return signals.Signals(number).name
    except ValueError:
        return None


def cut_at(text: str, end: int) -> int:
    """Where to cut ``text`` at ``end`` or before, so that no ``MASK`` is cut in two.

    Text is masked before it is cut (cut first, a secret's start would stay); a cut through a
    mask would leave ``**``, which reads as a secret's piece: the cut moves before the mask.
    """
    start = text.rfind(MASK, max(0, end - len(MASK) + 1), end + len(MASK) - 1)
    return start if 0 <= start < end < start + len(MASK) else end


def _cut(line: str) -> str:
    if len(line) <= _MAX_LINE:
        return line
    end = cut_at(line, _MAX_LINE)
    return f"{line[:end]}… ({len(line) - end:,} more characters)"


def _command_text(command: str) -> str:
    lines = command.strip("\n").splitlines()
    kept = [_cut(line) for line in lines[:_COMMAND_LINES]]
    if len(lines) > _COMMAND_LINES:
        kept.append(f"… ({len(lines) - _COMMAND_LINES} more lines)")
    return "\n".join(kept)


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class CommandFailure:
    """Where and how a command failed.

    - ``exit_status``: the status it exited with; ``None`` when a signal killed it
    - ``signal``: the signal that killed it, or, with an ``exit_status`` above 128 from a
      shell, the signal that killed the command the shell ran (the shell reports 128 + signal)
    - ``command``: the failing command's text (``None`` when it is not known)
    - ``index``: its place in the action's commands, from 0 (``commands[index]``)
    - ``count``: how many commands the action had
    - ``output_tail``: the last lines of output, stdout and stderr as they came
    """

    exit_status: int | None
    signal: int | None = None
    command: str | None = None
    index: int | None = None
    count: int | None = None
    output_tail: tuple[str, ...] = attrs.field(default=(), converter=_strings)

    @classmethod
    def of_returncode(
        cls,
        returncode: int,
        *,
        from_shell: bool = False,
        output_tail: Sequence[str] = (),
        command: str | None = None,
        index: int | None = None,
        count: int | None = None,
        mask: Callable[[str], str] | None = None,
    ) -> CommandFailure:
        """From a process's return code (negative: killed by that signal).

        With ``from_shell``, a status above 128 that is 128 plus a signal's number is read as the
        shell reports a command killed by that signal. ``mask`` (the run's ``Masker.mask``) is
        applied to the whole text before any of it is cut: cut first, the start of a secret
        standing across the cut would be kept unmasked.
        """
        lines = output_tail[-TAIL_LINES:]
        if mask is not None:
            lines = [mask(line) for line in lines]
            command = mask(command) if command is not None else None
        tail = tuple(_cut(line) for line in lines)
        text = _command_text(command) if command is not None else None
        if returncode < 0:
            return cls(None, -returncode, text, index, count, tail)
        killed = returncode - 128
        if from_shell and killed > 0 and signal_name(killed) is not None:
            return cls(returncode, killed, text, index, count, tail)
        return cls(returncode, None, text, index, count, tail)

    @property
    def signal_name(self) -> str | None:
        """The signal's name (``"SIGKILL"``), if a signal is known."""
        return signal_name(self.signal) if self.signal is not None else None

    def how(self) -> str:
        """``"exited with status 1"`` or ``"killed by SIGKILL (signal 9)"``.

        A status of 128 plus a signal's number from a shell may be ``exit 130`` as well as a
        command the shell ran killed by SIGINT: it says both.
        """
        if self.signal is not None:
            name = self.signal_name or "an unknown signal"
            if self.exit_status is None:
                return f"killed by {name} (signal {self.signal})"
            return (
                f"exited with status {self.exit_status} (128+{name}: the command may have been "
                f"killed by {name})"
            )
        return f"exited with status {self.exit_status}"

    def where(self) -> str:
        """``"commands[2] (3 of 7): pytest -q"``, or ``""`` when the command is not known."""
        if self.index is None:
            return ""
        place = f"commands[{self.index}]"
        if self.count is not None:
            place += f" ({self.index + 1} of {self.count})"
        if self.command is None:
            return place
        first, _, rest = self.command.partition("\n")
        return f"{place}: {first}" + (" …" if rest else "")

    def message(self) -> str:
        """The action's error: how the command ended, which one, and the last lines of output."""
        where = self.where()
        head = f"command {self.how()}" + (f" in {where}" if where else "")
        if not self.output_tail:
            return head
        return head + ":\n" + "\n".join(self.output_tail)

    def masked(self, mask: Callable[[str], str]) -> CommandFailure:
        """This failure with ``mask`` applied to its text (the run's ``Masker.mask``).

        Its text was cut already: build it with ``of_returncode(mask=...)``, which masks
        before cutting; this masks again what was registered since.
        """
        return attrs.evolve(
            self,
            command=mask(self.command) if self.command is not None else None,
            output_tail=tuple(mask(line) for line in self.output_tail),
        )

    def to_detail(self) -> dict[str, Any]:
        """A JSON-ready form, for events and the store."""
        detail: dict[str, Any] = {"exit_status": self.exit_status}
        if self.signal is not None:
            detail["signal"] = self.signal
            detail["signal_name"] = self.signal_name
        if self.index is not None:
            detail["index"] = self.index
        if self.count is not None:
            detail["count"] = self.count
        if self.command is not None:
            detail["command"] = self.command
        detail["output_tail"] = list(self.output_tail)
        return detail

    @classmethod
    def from_detail(cls, detail: object) -> CommandFailure | None:
        """Read back what ``to_detail`` wrote (``None`` for anything else)."""
        if not isinstance(detail, Mapping):
            return None

        def number(key: str) -> int | None:
            value = detail.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        command = detail.get("command")
        tail = detail.get("output_tail")
        return cls(
            number("exit_status"),
            number("signal"),
            command if isinstance(command, str) else None,
            number("index"),
            number("count"),
            tuple(str(line) for line in tail) if isinstance(tail, list | tuple) else (),
        )


class CommandFailed(ActionFailed):
    """A command of an action failed; ``failure`` says which, how, and its last output."""

    def __init__(self, failure: CommandFailure) -> None:
        """The error for ``failure``; its message is ``failure.message()``."""
        super().__init__(failure.message())
        self.failure = failure
