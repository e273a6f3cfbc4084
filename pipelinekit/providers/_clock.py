"""The ``Clock`` seam: where the scheduler reads the time, sleeps and times out.

``SystemClock`` is the real one; ``pipelinekit.testing.VirtualClock`` makes time virtual.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import anyio

__all__ = ["BackgroundSleep", "Clock", "SystemClock"]


class Clock(Protocol):
    """Where the scheduler reads the time, sleeps and times out (a test double makes it virtual)."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...

    def move_on_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        """A cancel scope that cancels itself ``seconds`` from now (``anyio.move_on_after``)."""
        ...


@runtime_checkable
class BackgroundSleep(Protocol):
    """A clock that tells background waits apart (optional; ``Clock.sleep`` otherwise).

    ``background_sleep`` waits between rounds of a background chore (renewing a lease): like
    ``sleep``, except that a virtual clock never moves time forward for such a wait alone, so
    a run whose only timers are background ones is idle, not waiting.
    """

    async def background_sleep(self, seconds: float) -> None:
        """Wait ``seconds`` for a background chore."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """The current UTC time."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        await anyio.sleep(seconds)

    async def background_sleep(self, seconds: float) -> None:
        """Sleep for real."""
        await anyio.sleep(seconds)

    def move_on_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        """``anyio.move_on_after``."""
        return anyio.move_on_after(seconds)
