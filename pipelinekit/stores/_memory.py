"""``MemoryStore``: the state of executions in memory, for tests and runs that keep no history."""

from __future__ import annotations

from collections.abc import Sequence

from pipelinekit._events import Event
from pipelinekit._model import Status
from pipelinekit.exceptions import StoreError

__all__ = ["TERMINAL", "MemoryStore"]

#: States after which an execution, stage or action never changes again.
TERMINAL = frozenset(
    {
        Status.SUCCEEDED,
        Status.FAILED,
        Status.STOPPED,
        Status.SUPERSEDED,
        Status.CANCELLED,
        Status.ABANDONED,
        Status.SKIPPED,
    }
)


Subject = tuple[str, str | None, str | None, str]


def subject(event: Event) -> Subject:
    """What an event changes the state of: the execution, a stage, an action or its approval."""
    if event.type == "pipeline":
        return (event.execution_id, None, None, "")
    if event.type == "stage":
        return (event.execution_id, event.stage, None, "")
    return (event.execution_id, event.stage, event.action, event.type)


class MemoryStore:
    """Keeps events in memory; nothing survives the process."""

    def __init__(self) -> None:
        """An empty store."""
        self._events: dict[str, list[Event]] = {}
        self._states: dict[Subject, Status] = {}

    async def record(self, events: Sequence[Event]) -> list[Event]:
        """Check and append ``events``; return them."""
        # Check the whole batch before keeping any of it, so a refused batch leaves no trace.
        changes: dict[Subject, Status] = {}
        next_sequence: dict[str, int] = {}
        for event in events:
            key = subject(event)
            current = changes.get(key, self._states.get(key))
            if current in TERMINAL:
                what = "/".join(part for part in key[1:3] if part) or "the execution"
                if key[3] == "approval":
                    what += "'s approval"
                msg = (
                    f"refusing {event}: {what} of execution {event.execution_id} already "
                    f"ended {current}"
                )
                raise StoreError(msg)
            expected = next_sequence.get(
                event.execution_id, len(self._events.get(event.execution_id, ())) + 1
            )
            if event.sequence != expected:
                msg = (
                    f"refusing {event}: execution {event.execution_id} expects event number "
                    f"{expected}, got {event.sequence} (another writer got there first?)"
                )
                raise StoreError(msg)
            next_sequence[event.execution_id] = expected + 1
            changes[key] = event.state
        self._states.update(changes)
        for event in events:
            self._events.setdefault(event.execution_id, []).append(event)
        return list(events)

    async def events(self, execution_id: str) -> list[Event]:
        """Every event of ``execution_id``, oldest first."""
        return list(self._events.get(execution_id, ()))

    def executions(self) -> list[str]:
        """The ids of every execution recorded, oldest first."""
        return list(self._events)
