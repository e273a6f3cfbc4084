"""``VirtualClock``: time that passes only when everything waits for it.

Sleeps and timeouts register timers; a driver task watches the event loop and, whenever no task
can run any more, jumps the clock to the next timer and fires it. An hour of scripted work
therefore takes no real time, and a timeout fires exactly when it should. Like trio's
``MockClock`` with ``autojump_threshold=0``, but on asyncio, whose first-in-first-out scheduling
keeps runs deterministic.

"No task can run" is read from asyncio's ready queue. Work in other threads is invisible to it,
so virtual runs must not wait for threads (the fake executor runs no provider and touches no
disk; a hook that is a plain function runs in a thread but cannot hold the run up).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel

from pipelinekit.exceptions import PipelineKitError

__all__ = ["DEFAULT_START", "StuckRunError", "VirtualClock"]

#: Where virtual time starts unless told otherwise: fixed, so results are reproducible.
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
#: How long (real seconds) an idle run with no timer left may wait for outside help before it
#: counts as stuck.
STUCK_AFTER = 2.0


class StuckRunError(PipelineKitError):
    """A virtual run can never finish: something waits forever and nothing will wake it."""


class _Timer:
    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], object]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False


class VirtualClock:
    """A clock for the scheduler whose time advances only when every task waits on it."""

    def __init__(
        self, start: datetime = DEFAULT_START, *, stuck_after: float = STUCK_AFTER
    ) -> None:
        """Start at ``start`` (timezone-aware); see ``drive`` for ``stuck_after``."""
        self.start = start
        self.stuck_after = stuck_after
        self.elapsed = 0.0
        self._now = start  # time moves only in _advance, so now() is read far more than built
        self._timers: list[tuple[float, int, _Timer]] = []
        # Timers of background chores (a lease's heartbeat): they fire when time gets to them,
        # but time never moves for them alone.
        self._background: list[tuple[float, int, _Timer]] = []
        self._order = itertools.count()
        self._wake: anyio.Event | None = None

    def now(self) -> datetime:
        """The virtual time."""
        return self._now

    def _add(
        self, seconds: float, callback: Callable[[], object], *, background: bool = False
    ) -> _Timer:
        timer = _Timer(self.elapsed + max(seconds, 0.0), callback)
        heap = self._background if background else self._timers
        heapq.heappush(heap, (timer.deadline, next(self._order), timer))
        if self._wake is not None and not background:
            self._wake.set()
        return timer

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of virtual time."""
        await self._sleep(seconds, background=False)

    async def background_sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of virtual time, which never moves for this wait alone."""
        await self._sleep(seconds, background=True)

    async def _sleep(self, seconds: float, *, background: bool) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        # A bare future: the cheapest thing to wait on, and the virtual clock is asyncio's anyway.
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        timer = self._add(seconds, wake, background=background)
        try:
            await woken
        finally:
            timer.cancelled = True

    @contextlib.contextmanager
    def move_on_after(self, seconds: float) -> Iterator[anyio.CancelScope]:
        """A cancel scope cancelled after ``seconds`` of virtual time."""
        scope = anyio.CancelScope()
        timer = self._add(seconds, scope.cancel)
        try:
            with scope:
                yield scope
        finally:
            timer.cancelled = True

    def _next(self) -> _Timer | None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][2] if self._timers else None

    def _advance(self) -> bool:
        """Jump to the next timer and fire every timer due then; ``False`` if none is left."""
        timer = self._next()
        if timer is None:
            return False
        self.elapsed = max(self.elapsed, timer.deadline)
        self._now = self.start + timedelta(seconds=self.elapsed)
        for heap in (self._background, self._timers):
            while heap and heap[0][0] <= self.elapsed:
                _, _, due = heapq.heappop(heap)
                if not due.cancelled:
                    due.cancelled = True
                    due.callback()
        return True

    async def drive(self, describe_stuck: Callable[[], str]) -> None:
        """Advance time whenever the loop is idle, until cancelled.

        Raises ``StuckRunError`` (with ``describe_stuck()``) when the loop stays idle with no
        timer left for ``stuck_after`` real seconds: nothing could ever wake the run.
        """
        loop = asyncio.get_running_loop()
        ready = getattr(loop, "_ready", None)
        if ready is None:  # pragma: no cover - an event loop without a ready queue
            msg = "virtual time needs asyncio's default event loop"
            raise StuckRunError(msg)
        idle = 0
        while True:
            # asyncio's own yield: this loop turns once per loop iteration, so it must be cheap.
            await asyncio.sleep(0)
            if ready:
                idle = 0
                continue
            # Let chains of wake-ups (a task setting an event another waits on) settle first.
            idle += 1
            if idle < 3:  # noqa: PLR2004 - rounds of quiet before time moves
                continue
            idle = 0
            if self._advance():
                continue
            self._wake = anyio.Event()
            with anyio.move_on_after(self.stuck_after) as waited:
                await self._wake.wait()
            self._wake = None
            if waited.cancelled_caught:
                raise StuckRunError(describe_stuck())
