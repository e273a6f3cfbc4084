"""Leases: which engine runs an execution, kept alive by a heartbeat while it runs.

An engine takes an execution's lease in the store before it runs it (a new execution once its
start is recorded; a resumed one before anything else), renews it while the execution runs, and
releases it at the end. Another engine may take the execution over only once the lease has
expired. The heartbeat that renews it also brings in what other processes asked through the
store: a stop, and decisions on waiting approvals.

Times come from the engine's clock, so a virtual run's leases live in virtual time, and the
heartbeat waits with the clock's ``background_sleep`` when it has one: it never keeps a
virtual run alive by itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pipelinekit.exceptions import ExecutionError
from pipelinekit.providers._clock import BackgroundSleep, Clock
from pipelinekit.stores import Store

__all__ = ["Leases"]


class Leases:
    """The leases of one engine (``owner``) on the executions it runs."""

    def __init__(self, store: Store, owner: str, seconds: float, clock: Clock) -> None:
        """Lease executions in ``store`` to ``owner`` for ``seconds`` at a time."""
        self.store = store
        self.owner = owner
        self.seconds = seconds
        self.clock = clock

    async def take(self, execution_id: str) -> None:
        """Take (or renew) the execution's lease, or say who holds it and until when."""
        now = self.clock.now().timestamp()
        holder, until = await self.store.acquire(
            execution_id, self.owner, until=now + self.seconds, now=now
        )
        if holder != self.owner:
            when = datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds")
            msg = (
                f"execution {execution_id} is run by {holder} (its lease lasts until {when}); "
                "stop it there, or wait for the lease to expire if that process died"
            )
            raise ExecutionError(msg)

    async def release(self, execution_id: str) -> None:
        """Give the lease up (the execution ended, or this engine stops running it)."""
        await self.store.release(execution_id, self.owner)

    async def heartbeat(
        self,
        execution_id: str,
        *,
        stop: Callable[[bool, str], None],
        decisions: Callable[[], Awaitable[None]],
    ) -> None:
        """Renew the lease while the execution runs, until cancelled.

        Each round (at most a second apart) also reads a stop request, handed to ``stop`` as
        ``(abandon, reason)``, and calls ``decisions`` to pick up approval decisions.
        """
        interval = min(self.seconds / 3, 1.0)
        renewed = self.clock.now()
        clock = self.clock
        wait = clock.background_sleep if isinstance(clock, BackgroundSleep) else clock.sleep
        while True:
            await wait(interval)
            if (self.clock.now() - renewed).total_seconds() >= self.seconds / 3:
                await self.take(execution_id)
                renewed = self.clock.now()
            request = await self.store.stop_request(execution_id)
            if request is not None:
                stop(*request)
            await decisions()
