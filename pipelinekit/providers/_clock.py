"""The ``Clock`` seam: where the scheduler reads the time, sleeps and times out.

``SystemClock`` is the real one; ``pipelinekit.testing.VirtualClock`` makes time virtual.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Protocol

import anyio

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Where the scheduler reads the time, sleeps and times out (a test double makes it virtual)."""

    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...

    async def background_sleep(self, seconds: float) -> None:
        """Wait ``seconds`` between rounds of a background chore (renewing a lease).

        Like ``sleep``, except that a virtual clock never moves time forward for such a wait
        alone: a run whose only timers are background ones is idle, not waiting.
        """
        ...

    def move_on_after(self, seconds: float) -> AbstractContextManager[anyio.CancelScope]:
        """A cancel scope that cancels itself ``seconds`` from now (``anyio.move_on_after``)."""
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
