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

import math
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pipelinekit._runtime._takeover import Owner
from pipelinekit.exceptions import ExecutionError
from pipelinekit.providers._clock import BackgroundSleep, Clock
from pipelinekit.stores import Store

__all__ = ["MAX_LEASE_SECONDS", "MIN_LEASE_SECONDS", "Leases", "lease_length"]

#: Renewals come at most this far apart, so that a lease outlives several missed heartbeats.
HEARTBEAT_SECONDS = 1.0
#: Five heartbeats: one slow write to the store never loses a live run its lease.
MIN_LEASE_SECONDS = 5 * HEARTBEAT_SECONDS
#: A day: longer, and a dead owner on another host holds its executions for too long.
MAX_LEASE_SECONDS = 86400.0
_DEFAULT_SECONDS = 30.0
_VARIABLE = "PIPELINEKIT_LEASE_SECONDS"


def lease_length(seconds: float | None) -> float:
    """The lease length to use: ``seconds``, else ``$PIPELINEKIT_LEASE_SECONDS``, else 30.

    Raises ``ExecutionError`` naming the argument or the variable when the value is not a
    number of seconds between ``MIN_LEASE_SECONDS`` and ``MAX_LEASE_SECONDS``.
    """
    raw: object
    if seconds is not None:
        where, raw = "lease_seconds", seconds
    else:
        raw = os.environ.get(_VARIABLE)
        if raw is None or not raw.strip():
            return _DEFAULT_SECONDS
        where = f"${_VARIABLE}"
    try:
        value = float(raw)  # type: ignore[arg-type,unused-ignore]  # bad types are refused below
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        msg = f"{where} is {raw!r}, not a number of seconds; give e.g. 30 (the default)"
        raise ExecutionError(msg)
    if not MIN_LEASE_SECONDS <= value <= MAX_LEASE_SECONDS:
        msg = (
            f"{where} is {value:g} s; it must be at least {MIN_LEASE_SECONDS:g} s (five "
            f"heartbeats, so a live run never loses its lease to a slow write) and at most "
            f"{MAX_LEASE_SECONDS:g} s; the default is {_DEFAULT_SECONDS:g}"
        )
        raise ExecutionError(msg)
    return float(value)


class Leases:
    """The leases of one engine (``owner``) on the executions it runs."""

    def __init__(self, store: Store, owner: str, seconds: float, clock: Clock) -> None:
        """Lease executions in ``store`` to ``owner`` for ``seconds`` at a time."""
        self.store = store
        self.owner = owner
        self.seconds = seconds
        self.clock = clock

    async def take(self, execution_id: str) -> str | None:
        """Take (or renew) the execution's lease, or say who holds it and why it is theirs.

        Returns the owner it was taken from, if another held it.

        A holder on this host (and boot, and pid namespace) is asked directly: a dead one loses
        the lease at once, a live one keeps it even past its lease (a slow heartbeat never hands
        a live run to a second process). Any other holder keeps it until its lease expires.
        """
        now = self.clock.now().timestamp()
        until = now + self.seconds
        store = self.store
        # With ``now=0`` no lease that anybody holds counts as expired: this only takes a free
        # lease (or renews ours), and otherwise says who holds it.
        holder, held_until = await store.acquire(execution_id, self.owner, until=until, now=0.0)
        if holder == self.owner:
            return None
        previous = holder
        owner = Owner.parse(holder)
        if owner is not None and owner.is_dead():
            holder, held_until = await store.acquire(
                execution_id, self.owner, until=until, now=held_until
            )
        elif owner is None or not owner.is_alive_here():
            # Nothing here can tell whether it lives: its lease says.
            holder, held_until = await store.acquire(execution_id, self.owner, until=until, now=now)
        if holder != self.owner:
            raise ExecutionError(_held_by(execution_id, holder, held_until))
        return previous

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
        interval = HEARTBEAT_SECONDS
        renewed = self.clock.now()
        clock = self.clock
        wait = clock.background_sleep if isinstance(clock, BackgroundSleep) else clock.sleep
        while True:
            await wait(interval)
            if (self.clock.now() - renewed).total_seconds() >= self.seconds / 5:
                await self.take(execution_id)
                renewed = self.clock.now()
            request = await self.store.stop_request(execution_id)
            if request is not None:
                stop(*request)
            await decisions()


def _held_by(execution_id: str, holder: str, until: float) -> str:
    owner = Owner.parse(holder)
    if owner is not None and owner.is_alive_here():
        return (
            f"execution {execution_id} is run by process {owner.pid} on this host; stop it "
            f"there (pipelinekit stop {execution_id}) or wait for it to end"
        )
    when = datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds")
    return (
        f"execution {execution_id} is run by {holder} (its lease lasts until {when}); stop it "
        "there, or resume it after that time if that process died"
    )
