"""``Execution``: a handle on one execution, and the feed the engine fills for it.

The engine announces each recorded event to the execution's ``ExecutionFeed`` and finishes it
with the result; the ``Execution`` handle reads the feed (``wait()``, ``events()``, ``status``)
and asks its engine to stop it. Readers never see an event before the store has it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from pipelinekit._model._declarations import Status
from pipelinekit._model._events import Event
from pipelinekit._runtime._errors import plain

if TYPE_CHECKING:
    from pipelinekit._model._pipeline import Pipeline
    from pipelinekit._runtime._results import RunResult

__all__ = ["Execution", "ExecutionFeed"]


class ExecutionFeed:
    """What the engine tells an execution's readers: its events as recorded, then its end."""

    def __init__(self) -> None:
        """No event yet."""
        self.events: list[Event] = []
        self.status = Status.IN_PROGRESS
        self.result: RunResult | None = None
        self.error: BaseException | None = None
        self.done = anyio.Event()
        self._changed: anyio.Event | None = None
        self._listeners: list[Callable[[Event], None]] = []

    def listen(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` with every event announced from now on (it must not block)."""
        self._listeners.append(listener)

    def announce(self, event: Event) -> None:
        """A recorded event: keep it, and tell the listeners and waiting readers."""
        self.events.append(event)
        if event.type == "pipeline":
            self.status = event.state
        for listener in self._listeners:
            listener(event)
        self._wake()

    def finish(self, result: RunResult | None, error: BaseException | None) -> None:
        """The execution ended with ``result`` (or ``error``, for whoever waits on it)."""
        self.result = result
        self.error = error
        self.done.set()
        self._wake()

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def changed(self) -> None:
        """Wait for the next event or the end."""
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()


class Execution:
    """A handle on one execution: ``id``, ``await wait()``, ``async for e in events()``."""

    def __init__(
        self,
        execution_id: str,
        pipeline: Pipeline,
        feed: ExecutionFeed,
        stop: Callable[[str, bool, str], Awaitable[None]],
    ) -> None:
        """Made by the engine (``Engine.start``, ``resume``, ``retry_stage``)."""
        self.id = execution_id
        self.pipeline = pipeline
        self._feed = feed
        self._stop = stop

    @property
    def status(self) -> Status:
        """The execution's status as last recorded (``InProgress`` until it ends)."""
        return self._feed.status

    @property
    def recorded(self) -> list[Event]:
        """The events announced so far, oldest first."""
        return list(self._feed.events)

    @property
    def result(self) -> RunResult | None:
        """The result once the execution ended (also a Stopped one after cancellation)."""
        return self._feed.result

    @property
    def done(self) -> bool:
        """Whether the execution has ended."""
        return self._feed.done.is_set()

    async def wait(self) -> RunResult:
        """Wait for the end; return the ``RunResult``."""
        await self._feed.done.wait()
        if self._feed.error is not None:
            raise plain(self._feed.error)
        assert self._feed.result is not None  # noqa: S101 - set with done
        return self._feed.result

    async def events(self) -> AsyncIterator[Event]:
        """Every event of the execution, from its first, live until it ends."""
        index = 0
        feed = self._feed
        while True:
            while index < len(feed.events):
                yield feed.events[index]
                index += 1
            if feed.done.is_set():
                return
            await feed.changed()

    async def stop(self, *, abandon: bool = False, reason: str = "") -> None:
        """Stop the execution (``Engine.stop`` for this one)."""
        await self._stop(self.id, abandon, reason)

    def __repr__(self) -> str:
        return f"<Execution {self.id} of {self.pipeline.name!r}: {self.status}>"
