"""Questions about what happened in a run, answered from its events.

Each answer is a ``Verdict``: true or false for ``assert``, and when false its repr explains why
and shows the run's timeline, which pytest prints::

    assert ran_before(fake, "Build.Compile", "Test.Unit")
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from pipelinekit._model._declarations import Status
from pipelinekit._model._events import Event
from pipelinekit._runtime._replay import ActionState, replay

__all__ = ["RecordingHook", "Verdict", "never_ran", "ran_before", "ran_in_parallel", "timeline"]


@attrs.frozen
class Verdict:
    """The answer to a question about a run: truthy when yes; its repr explains a no."""

    ok: bool
    question: str
    explanation: str = ""
    timeline: str = ""

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        if self.ok:
            return f"<yes: {self.question}>"
        return f"<no: {self.question}: {self.explanation}\ntimeline:\n{self.timeline}>"


class RecordingHook:
    """A hook that keeps every event, to assert on notifications."""

    def __init__(self) -> None:
        """Nothing recorded yet."""
        self.events: list[Event] = []

    async def on_event(self, event: Event) -> None:
        """Keep the event."""
        self.events.append(event)

    def of(self, node: str) -> list[Event]:
        """The action and approval events of ``"Stage.Action"``, or the stage events of a stage."""
        return [e for e in self.events if e.node == node or (e.node is None and e.stage == node)]

    def states(self, node: str) -> list[Status]:
        """The states ``node`` went through, in order."""
        return [e.state for e in self.of(node)]


def _events(source: Any) -> Sequence[Event]:  # noqa: ANN401 - a fake, a hook or events
    events = getattr(source, "events", source)
    if not isinstance(events, Sequence):
        msg = f"cannot read events from {source!r}; pass a FakeExecutor, a RecordingHook or a list"
        raise TypeError(msg)
    return events


def timeline(events: Iterable[Event]) -> str:
    """One line per action and approval event: ``  #3 Build.Compile InProgress (attempt 1)``."""
    lines = []
    for event in events:
        if event.node is None:
            continue
        attempt = event.detail.get("attempt")
        suffix = f" (attempt {attempt})" if attempt and event.type == "action" else ""
        kind = " approval" if event.type == "approval" else ""
        lines.append(f"  #{event.sequence} {event.node}{kind} {event.state}{suffix}")
    return "\n".join(lines) or "  (no action ran)"


def _span(events: Sequence[Event], node: str) -> tuple[int, int] | None:
    """Sequence numbers of ``node``'s first start and its last end (``None`` if it never ran)."""
    action = _replayed(events).get(node)
    if action is None or action.first_start is None:
        return None
    return action.first_start, action.last_end if action.last_end is not None else 1 << 62


def _succeeded_at(events: Sequence[Event], node: str) -> int | None:
    action = _replayed(events).get(node)
    return action.first_success if action is not None else None


def _replayed(events: Sequence[Event]) -> Mapping[str, ActionState]:
    return replay(events).actions if events else {}


def _no(question: str, why: str, events: Sequence[Event]) -> Verdict:
    """A false verdict that says why and shows the run's timeline."""
    return Verdict(ok=False, question=question, explanation=why, timeline=timeline(events))


def ran_before(source: Any, first: str, then: str) -> Verdict:  # noqa: ANN401 - see _events
    """Whether ``first`` succeeded before ``then`` started."""
    events = _events(source)
    question = f"{first} ran before {then}"
    done = _succeeded_at(events, first)
    span = _span(events, then)
    if done is None:
        return _no(question, f"{first} never succeeded", events)
    if span is None:
        return _no(question, f"{then} never ran", events)
    if done < span[0]:
        return Verdict(ok=True, question=question)
    return _no(question, f"{then} started (#{span[0]}) before {first} succeeded (#{done})", events)


def ran_in_parallel(source: Any, a: str, b: str) -> Verdict:  # noqa: ANN401 - see _events
    """Whether ``a`` and ``b`` were running at the same time.

    That is: each started before the other ended.
    """
    events = _events(source)
    question = f"{a} and {b} ran in parallel"
    first, second = _span(events, a), _span(events, b)
    for node, span in ((a, first), (b, second)):
        if span is None:
            return _no(question, f"{node} never ran", events)
    assert first is not None  # noqa: S101 - checked above
    assert second is not None  # noqa: S101
    if first[0] < second[1] and second[0] < first[1]:
        return Verdict(ok=True, question=question)
    earlier, later = (a, b) if first[1] <= second[0] else (b, a)
    return _no(question, f"{earlier} had ended before {later} started", events)


def never_ran(source: Any, node: str) -> Verdict:  # noqa: ANN401 - see _events
    """Whether ``node`` never started."""
    events = _events(source)
    span = _span(events, node)
    question = f"{node} never ran"
    if span is None:
        return Verdict(ok=True, question=question)
    return _no(question, f"{node} started at #{span[0]}", events)
