"""``MemoryStore``: the state of executions in memory, for tests and runs that keep no history."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

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


def subject(event: Event) -> tuple[str, str | None, str | None]:
    """What an event changes the state of: the execution, one stage or one action."""
    if event.type == "pipeline":
        return (event.execution_id, None, None)
    if event.type == "stage":
        return (event.execution_id, event.stage, None)
    return (event.execution_id, event.stage, event.action)


class MemoryStore:
    """Keeps events in memory; nothing survives the process."""

    def __init__(self) -> None:
        """An empty store."""
        self._events: dict[str, list[Event]] = {}
        self._states: dict[tuple[str, str | None, str | None], Status] = {}

    async def record(self, events: Sequence[Event]) -> list[Event]:
        """Check and append ``events``; return them numbered."""
        # Check the whole batch first so that a refused batch leaves nothing half-written.
        states = dict(self._states)
        for event in events:
            key = subject(event)
            current = states.get(key)
            if current in TERMINAL:
                msg = (
                    f"refusing {event}: {'/'.join(k for k in key[1:] if k) or 'execution'} "
                    f"of execution {event.execution_id} already ended {current}"
                )
                raise StoreError(msg)
            states[key] = event.state
        self._states = states
        numbered = []
        for event in events:
            log = self._events.setdefault(event.execution_id, [])
            stamped = attrs.evolve(event, sequence=len(log) + 1)
            log.append(stamped)
            numbered.append(stamped)
        return numbered

    async def events(self, execution_id: str) -> list[Event]:
        """Every event of ``execution_id``, oldest first."""
        return list(self._events.get(execution_id, ()))

    def executions(self) -> list[str]:
        """The ids of every execution recorded, oldest first."""
        return list(self._events)
