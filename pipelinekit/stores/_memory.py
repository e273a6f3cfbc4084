"""``MemoryStore``: the state of executions in memory, for tests and runs that keep no history.

It follows exactly the rules of ``SQLiteStore`` (a hypothesis state machine drives both with the
same operations), so a test on one says something about the other.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, NoReturn

import attrs

from pipelinekit._model._declarations import TERMINAL, Status
from pipelinekit._model._events import Event
from pipelinekit.exceptions import StoreError
from pipelinekit.stores._records import CacheEntry, Decision, ExecutionSummary, SavedCache

if TYPE_CHECKING:
    # Annotations only: the compiler brings networkx, which a store never needs.
    from pipelinekit._compiler._plan import Plan

__all__ = [
    "TERMINAL",
    "MemoryStore",
    "refuse_gap",
    "refuse_terminal",
    "subject_key",
]


Subject = tuple[str, str, str, str]


def subject_key(event: Event) -> tuple[str, str, str]:
    """``(stage, action, kind)`` of what an event changes, in one attempt of the execution.

    The subject is the execution, a stage, an action or its approval. A stage retry starts a
    new attempt of the same execution (``execution_attempt`` in the events' detail): its
    subjects are new ones, so the first attempt's terminal states stay as they were recorded.
    """
    attempt = event.detail.get("execution_attempt", 1)
    suffix = f"#{attempt}" if attempt != 1 else ""
    kind = event.type
    if kind == "action":  # most events: tested first
        return (event.stage or "", event.action or "", suffix)
    if kind == "pipeline":
        return ("", "", suffix)
    if kind == "stage":
        return (event.stage or "", "", suffix)
    return (event.stage or "", event.action or "", "approval" + suffix)


def subject(event: Event) -> Subject:
    """What an event changes the state of (see ``subject_key``), with its execution."""
    return (event.execution_id, *subject_key(event))


def refuse_terminal(event: Event, current: Status) -> NoReturn:
    """Raise the ``StoreError`` for a change after a terminal state."""
    _, stage, action, kind = subject(event)
    what = "/".join(part for part in (stage, action) if part) or "the execution"
    if kind.startswith("approval"):
        what += "'s approval"
    msg = f"refusing {event}: {what} of execution {event.execution_id} already ended {current}"
    raise StoreError(msg)


def refuse_gap(event: Event, expected: int) -> NoReturn:
    """Raise the ``StoreError`` for an event that does not continue its execution's sequence."""
    if expected == 1 and not (event.type == "pipeline" and event.state is Status.IN_PROGRESS):
        msg = (
            f"refusing {event}: execution {event.execution_id} is unknown; its first event "
            "must be the pipeline's start"
        )
        raise StoreError(msg)
    msg = (
        f"refusing {event}: execution {event.execution_id} expects event number {expected}, "
        f"got {event.sequence} (another writer got there first?)"
    )
    raise StoreError(msg)


class MemoryStore:
    """Keeps events in memory; nothing survives the process."""

    #: Nothing survives the process, so the engine need not wait for a write to go on.
    durable = False
    batches_writes = False

    def __init__(self) -> None:
        """An empty store."""
        self._events: dict[str, list[Event]] = {}
        self._states: dict[Subject, Status] = {}
        self._summaries: dict[str, ExecutionSummary] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._stops: dict[str, tuple[bool, str]] = {}
        self._decisions: dict[tuple[str, int], Decision] = {}
        # The first decision kept wins even when engines on other threads (each with its own
        # event loop) share this store: the check and the keep are one step under the lock.
        self._deciding = threading.Lock()
        self._cache: dict[str, CacheEntry] = {}
        self._saved: dict[tuple[str, tuple[str, ...]], SavedCache] = {}
        self._pipelines: dict[tuple[str, str], Plan] = {}

    async def record(self, events: Sequence[Event]) -> list[Event]:
        """Check and append ``events``, all or none; return them."""
        # Check the whole batch before keeping any of it, so a refused batch leaves no trace.
        changes: dict[Subject, Status] = {}
        next_sequence: dict[str, int] = {}
        for event in events:
            expected = next_sequence.get(
                event.execution_id, len(self._events.get(event.execution_id, ())) + 1
            )
            if event.sequence != expected or (
                expected == 1
                and not (event.type == "pipeline" and event.state is Status.IN_PROGRESS)
            ):
                refuse_gap(event, expected)
            key = subject(event)
            current = changes.get(key, self._states.get(key))
            if current in TERMINAL:
                refuse_terminal(event, current)
            next_sequence[event.execution_id] = expected + 1
            changes[key] = event.state
        self._states.update(changes)
        for event in events:
            self._events.setdefault(event.execution_id, []).append(event)
            if event.type == "pipeline":
                self._summarise(event)
        return list(events)

    def _summarise(self, event: Event) -> None:
        known = self._summaries.get(event.execution_id)
        if known is None:
            self._summaries[event.execution_id] = ExecutionSummary(
                id=event.execution_id,
                pipeline=event.pipeline,
                status=event.state,
                started_at=event.time,
                trigger=event.detail.get("trigger"),
                triggered_by=event.detail.get("triggered_by"),
            )
        else:
            self._summaries[event.execution_id] = attrs.evolve(
                known,
                status=event.state,
                finished_at=event.time if event.state in TERMINAL else None,
            )

    async def acquire(
        self, execution_id: str, owner: str, *, until: float, now: float
    ) -> tuple[str, float]:
        """Take or renew the lease on an execution; return its holder and expiry after."""
        held = self._leases.get(execution_id)
        if held is not None and held[0] != owner and held[1] > now:
            return held
        if execution_id not in self._events:
            msg = f"cannot lease execution {execution_id}: it is unknown"
            raise StoreError(msg)
        self._leases[execution_id] = (owner, until)
        return owner, until

    async def release(self, execution_id: str, owner: str) -> None:
        """Give up ``owner``'s lease on an execution (nothing if another owner holds it)."""
        if self._leases.get(execution_id, ("",))[0] == owner:
            del self._leases[execution_id]

    async def lease(self, execution_id: str) -> tuple[str, float] | None:
        """Who holds the lease on ``execution_id`` and until when (epoch seconds), or ``None``."""
        return self._leases.get(execution_id)

    async def request_stop(self, execution_id: str, *, abandon: bool, reason: str) -> None:
        """Record that ``execution_id`` should stop (an abandon request replaces a plain one)."""
        if execution_id not in self._events:
            msg = f"cannot stop execution {execution_id}: it is unknown"
            raise StoreError(msg)
        earlier = self._stops.get(execution_id, (False, ""))[0]
        self._stops[execution_id] = (earlier or abandon, reason)

    async def stop_request(self, execution_id: str) -> tuple[bool, str] | None:
        """``(abandon, reason)`` if a stop was requested for ``execution_id``, else ``None``."""
        return self._stops.get(execution_id)

    async def put_decision(self, execution_id: str, token: int, decision: Decision) -> Decision:
        """Keep ``decision`` on approval request ``token`` unless one is; return the one kept."""
        if execution_id not in self._events:
            msg = f"cannot decide an approval of execution {execution_id}: it is unknown"
            raise StoreError(msg)
        with self._deciding:
            return self._decisions.setdefault((execution_id, token), decision)

    async def decision(self, execution_id: str, token: int) -> Decision | None:
        """The decision kept on approval request ``token`` of ``execution_id``, if any."""
        return self._decisions.get((execution_id, token))

    async def remember_pipeline(self, plan: Plan) -> None:
        """Keep the definition of a pipeline once per version (its definition hash)."""
        self._pipelines.setdefault((plan.pipeline.name, plan.definition_hash()), plan)

    async def pipeline_definition(self, name: str, digest: str) -> str | None:
        """The JSON definition of pipeline ``name`` at version ``digest``, if kept."""
        plan = self._pipelines.get((name, digest))
        return plan.to_json() if plan is not None else None

    async def cache_get(self, key: str) -> CacheEntry | None:
        """The cached result stored under ``key``, if any."""
        return self._cache.get(key)

    async def cache_put(self, key: str, entry: CacheEntry) -> None:
        """Keep a successful attempt's result under ``key`` (the newest wins)."""
        self._cache[key] = entry

    async def cache_entries(self) -> list[tuple[str, CacheEntry]]:
        """Every ``cache=True`` result kept, with its key."""
        return list(self._cache.items())

    async def saved_cache(self, key: str, paths: Sequence[str]) -> SavedCache | None:
        """The ``pk.Cache`` entry saved under exactly ``key`` for ``paths``, if any."""
        return self._saved.get((key, tuple(paths)))

    async def saved_caches(self, prefix: str = "") -> list[SavedCache]:
        """``pk.Cache`` entries whose key starts with ``prefix``, newest saved first."""
        found = [entry for (key, _), entry in self._saved.items() if key.startswith(prefix)]
        # Saved in order: among equal times, the later saved is the newer (sorted is stable).
        found.reverse()
        return sorted(found, key=lambda entry: entry.created_at, reverse=True)

    async def save_cache(self, entry: SavedCache) -> bool:
        """Keep ``entry`` unless its key and paths are taken; ``True`` if it was kept."""
        with self._deciding:
            if (entry.key, entry.paths) in self._saved:
                return False
            self._saved[entry.key, entry.paths] = entry
            return True

    async def cache_used(self, key: str, when: datetime) -> None:
        """Note that the entries under ``key`` were restored at ``when``."""
        if key in self._cache:
            self._cache[key] = attrs.evolve(self._cache[key], last_used=when)
        for identity, entry in list(self._saved.items()):
            if identity[0] == key:
                self._saved[identity] = attrs.evolve(entry, last_used=when)

    async def delete_caches(self, keys: Collection[str]) -> int:
        """Forget the entries under ``keys``; return how many went."""
        wanted = set(keys)
        gone = [key for key in self._cache if key in wanted]
        for key in gone:
            del self._cache[key]
        saved = [identity for identity in self._saved if identity[0] in wanted]
        for identity in saved:
            del self._saved[identity]
        return len(gone) + len(saved)

    async def delete_executions(self, execution_ids: Collection[str], *, now: float) -> list[str]:
        """Forget finished, unleased executions with everything kept about them (see ``Store``)."""
        wanted = [
            execution_id
            for execution_id in dict.fromkeys(execution_ids)
            if (summary := self._summaries.get(execution_id)) is not None
            and summary.status in TERMINAL
            and not self._leased(execution_id, now)
        ]
        for execution_id in wanted:
            del self._events[execution_id]
            self._summaries.pop(execution_id, None)
            self._leases.pop(execution_id, None)
            self._stops.pop(execution_id, None)
        gone = set(wanted)
        self._states = {key: value for key, value in self._states.items() if key[0] not in gone}
        self._decisions = {
            key: value for key, value in self._decisions.items() if key[0] not in gone
        }
        return wanted

    def _leased(self, execution_id: str, now: float) -> bool:
        lease = self._leases.get(execution_id)
        return lease is not None and lease[1] > now

    async def events(self, execution_id: str) -> list[Event]:
        """Every event of ``execution_id``, oldest first."""
        return list(self._events.get(execution_id, ()))

    async def executions(
        self, pipeline: str | None = None, *, limit: int = 20, offset: int = 0
    ) -> list[ExecutionSummary]:
        """Executions, newest first (of one pipeline, or of all), a page at a time."""
        found = [
            summary
            for summary in reversed(self._summaries.values())
            if pipeline is None or summary.pipeline == pipeline
        ]
        found.sort(key=lambda summary: summary.started_at, reverse=True)
        return found[offset : offset + limit]
