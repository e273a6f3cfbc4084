"""The ``Recorder``: every state change of an execution goes through it to the store.

Events are numbered and queued synchronously (the scheduler changes state without waiting),
written to the store in order and in batches, and announced only once the store has them.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import anyio.abc
import anyio.lowlevel

from pipelinekit._model._events import Event
from pipelinekit.stores import Store

__all__ = ["Recorder"]


class Recorder:
    """Numbers events, writes them to the store in order and in batches, then announces them.

    ``emit`` only queues (it never waits), so the scheduler can change state synchronously;
    ``flush`` returns once everything emitted before it was called is written. Only one flush
    writes at a time and it takes every event queued meanwhile, so concurrent flushes share
    transactions instead of queueing one each behind the other.
    """

    def __init__(
        self, store: Store, announce: Callable[[Event], None], *, last_sequence: int = 0
    ) -> None:
        """Record into ``store``; hand each recorded event to ``announce``."""
        self.store = store
        self._announce = announce
        self._pending: list[Event] = []
        self._sequence = last_sequence
        self._recorded = last_sequence
        self._writing = False
        self._written: anyio.Event | None = None
        self._flush_scheduled = False
        # Stores whose writes cost (a transaction, a thread) ask for bursts to be batched.
        self._batching = store.batches_writes
        #: Whether what the store keeps survives the process (then starts are written first).
        self.durable = store.durable

    def number(self) -> int:
        """The sequence number of the next event."""
        self._sequence += 1
        return self._sequence

    def emit(self, event: Event) -> None:
        """Queue an event numbered by ``number()``; it is written by the next ``flush``."""
        self._pending.append(event)

    async def _settle(self) -> None:
        """Let the ready tasks run first while they keep emitting.

        A burst of changes (a group of actions ending, the next ones starting) then makes one
        transaction.
        """
        for _ in range(8):
            queued = len(self._pending)
            await anyio.lowlevel.checkpoint()
            if len(self._pending) == queued:
                return

    def flush_soon(self, tasks: anyio.abc.TaskGroup) -> None:
        """Have what is queued written by a task of ``tasks``, without waiting for it.

        One such task at a time: actions that end together share it (and its transaction).
        """
        if not self._flush_scheduled:
            self._flush_scheduled = True
            tasks.start_soon(self._background_flush, name="pipelinekit recorder")

    async def _background_flush(self) -> None:
        self._flush_scheduled = False
        await self.flush()

    async def flush(self) -> None:
        """Return once every event emitted so far is written (and announced)."""
        target = self._sequence
        while self._recorded < target:
            if self._writing:
                if self._written is None:
                    self._written = anyio.Event()
                await self._written.wait()
                continue
            self._writing = True
            try:
                if self._batching:
                    await self._settle()
                while self._pending:
                    batch, self._pending = self._pending, []
                    # Once taken, a batch is written whatever happens to the caller: a stop
                    # that cancelled the write half way would leave a gap in the record.
                    with anyio.CancelScope(shield=True):
                        recorded = await self.store.record(batch)
                    for event in recorded:
                        self._announce(event)
                    self._recorded = batch[-1].sequence
            finally:
                self._writing = False
                if self._written is not None:
                    self._written.set()
                    self._written = None
