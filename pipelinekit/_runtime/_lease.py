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

from pipelinekit._runtime._takeover import Owner
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
        """Take (or renew) the execution's lease, or say who holds it and why it is theirs.

        A holder on this host is asked directly: a dead one loses the lease at once, a live
        one keeps it even past its lease (a slow heartbeat never hands a live run to a second
        process). A holder on another host keeps it until its lease expires.
        """
        now = self.clock.now().timestamp()
        until = now + self.seconds
        store = self.store
        # With ``now=0`` no lease that anybody holds counts as expired: this only takes a free
        # lease (or renews ours), and otherwise says who holds it.
        holder, held_until = await store.acquire(execution_id, self.owner, until=until, now=0.0)
        if holder == self.owner:
            return
        owner = Owner.parse(holder)
        if owner is not None and owner.is_dead():
            holder, held_until = await store.acquire(
                execution_id, self.owner, until=until, now=held_until
            )
        elif owner is None or not owner.on_this_host():
            holder, held_until = await store.acquire(execution_id, self.owner, until=until, now=now)
        if holder != self.owner:
            raise ExecutionError(_held_by(execution_id, holder, held_until))

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


def _held_by(execution_id: str, holder: str, until: float) -> str:
    owner = Owner.parse(holder)
    if owner is not None and owner.on_this_host():
        return (
            f"execution {execution_id} is run by process {owner.pid} on this host; stop it "
            f"there (pipelinekit stop {execution_id}) or wait for it to end"
        )
    when = datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds")
    return (
        f"execution {execution_id} is run by {holder} (its lease lasts until {when}); stop it "
        "there, or resume it after that time if that process died"
    )
