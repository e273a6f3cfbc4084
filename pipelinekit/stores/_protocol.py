"""The ``Store`` protocol: where the state of executions lives."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from pipelinekit._compiler._plan import Plan
from pipelinekit._model._events import Event
from pipelinekit.stores._records import CacheEntry, Decision, ExecutionSummary, SavedCache

__all__ = ["Store"]


@runtime_checkable
class Store(Protocol):
    """Keeps every state change of every execution, in order.

    ``record`` persists a batch of events of one or more executions, in the order given, all or
    nothing, and returns them. Events come numbered (``sequence``, contiguous from 1 per
    execution); a number that does not continue the execution's sequence is refused with
    ``StoreError``, and so is a state change after a terminal state (``Succeeded``, ``Failed``,
    ``Stopped``, ...) of the same execution, stage or action: a stale writer can never rewrite
    history. The engine announces an event to hooks and readers only after ``record`` returned
    it. ``events`` returns what was recorded for one execution, oldest first; ``executions``
    the history. Whatever goes wrong in a store reaches its caller as ``StoreError`` (with the
    underlying error as its ``__cause__``), never as the error of the library beneath.

    Two attributes tell the engine how to write: ``durable`` (what it keeps outlives the
    process; then an action's start is written before the action runs, so that a crash can
    never hide it) and ``batches_writes`` (a write costs enough, a transaction or a thread, that
    the engine should gather a burst of changes into one ``record`` call).
    """

    #: Whether what the store keeps outlives the process.
    durable: bool
    #: Whether bursts of events should be gathered into one ``record`` call.
    batches_writes: bool

    async def record(self, events: Sequence[Event]) -> list[Event]:
        """Persist ``events``; return them."""
        ...

    async def events(self, execution_id: str) -> list[Event]:
        """Every event recorded for ``execution_id``, oldest first."""
        ...

    async def acquire(
        self, execution_id: str, owner: str, *, until: float, now: float
    ) -> tuple[str, float]:
        """Take or renew the lease on an execution unless another owner holds a live one.

        Returns the holder and its expiry (epoch seconds) after the call: ``owner`` when it got
        the lease.
        """
        ...

    async def release(self, execution_id: str, owner: str) -> None:
        """Give up ``owner``'s lease on an execution."""
        ...

    async def lease(self, execution_id: str) -> tuple[str, float] | None:
        """Who holds the lease on an execution and until when, or ``None``; changes nothing."""
        ...

    async def request_stop(self, execution_id: str, *, abandon: bool, reason: str) -> None:
        """Record that an execution should stop; the process running it reads it."""
        ...

    async def stop_request(self, execution_id: str) -> tuple[bool, str] | None:
        """``(abandon, reason)`` if a stop was requested, else ``None``."""
        ...

    async def put_decision(self, execution_id: str, token: int, decision: Decision) -> Decision:
        """Keep a decision on the approval request ``token`` of an execution, unless one is kept.

        ``token`` is the sequence number of the request's ``WaitingForApproval`` event. Returns
        the decision that stands: the first one kept. The check and the keep must be one atomic
        step (a conditional insert in one transaction, a lock), across every engine and process
        sharing the store: approvals are decided by it, never by a read and then a write.
        """
        ...

    async def decision(self, execution_id: str, token: int) -> Decision | None:
        """The decision kept on approval request ``token``, if any."""
        ...

    async def remember_pipeline(self, plan: Plan) -> None:
        """Keep a pipeline's definition, once per version (its definition hash)."""
        ...

    async def pipeline_definition(self, name: str, digest: str) -> str | None:
        """The JSON definition of a pipeline version, if kept."""
        ...

    async def cache_get(self, key: str) -> CacheEntry | None:
        """The cached result of an earlier attempt stored under ``key``, if any."""
        ...

    async def cache_put(self, key: str, entry: CacheEntry) -> None:
        """Keep a successful attempt's result under ``key``."""
        ...

    async def executions(
        self, pipeline: str | None = None, *, limit: int = 20, offset: int = 0
    ) -> list[ExecutionSummary]:
        """Executions, newest first (of one pipeline, or of all), a page at a time."""
        ...

    async def cache_entries(self) -> list[tuple[str, CacheEntry]]:
        """Every ``cache=True`` result kept, with its key."""
        ...

    async def saved_cache(self, key: str, paths: Sequence[str]) -> SavedCache | None:
        """The ``pk.Cache`` entry saved under exactly ``key`` for ``paths``, if any."""
        ...

    async def saved_caches(self, prefix: str = "") -> list[SavedCache]:
        """``pk.Cache`` entries whose key starts with ``prefix``, newest saved first."""
        ...

    async def save_cache(self, entry: SavedCache) -> bool:
        """Keep ``entry`` unless one is kept under its key and paths; ``True`` if it was kept.

        Entries never change once saved: the check and the keep are one atomic step.
        """
        ...

    async def cache_used(self, key: str, when: datetime) -> None:
        """Note that the entries under ``key`` (of either kind) were restored at ``when``."""
        ...

    async def delete_caches(self, keys: Collection[str]) -> int:
        """Forget the entries (of either kind) under ``keys``; return how many went."""
        ...

    async def delete_executions(self, execution_ids: Collection[str], *, now: float) -> list[str]:
        """Forget finished executions with their events, decisions, leases and stop requests.

        Of ``execution_ids``, only those whose status is finished (``TERMINAL``) and that hold
        no lease live at ``now`` (epoch seconds) go; the check and the delete are one atomic
        step (one transaction), so a retry or a resume that takes an execution up after the
        caller chose it keeps it whole. A crash leaves every execution whole or gone.
        Returns the ids deleted (the caller sweeps their folders only).
        """
        ...
