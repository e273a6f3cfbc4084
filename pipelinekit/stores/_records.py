"""The records a store keeps besides events, public so that anyone can implement a ``Store``.

``ExecutionSummary`` is a line of history, ``Decision`` an answer to an approval request kept for
the process that runs the execution, ``CacheEntry`` what a successful cached attempt left for
later ones (``cache=True``), ``SavedCache`` a folder kept under a key (``pk.Cache``). They are
plain frozen values: a store keeps them as they are and gives them back equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import attrs

from pipelinekit._model._declarations import Status

__all__ = ["CacheEntry", "Decision", "ExecutionSummary", "SavedCache"]


@attrs.frozen
class ExecutionSummary:
    """One line of history: an execution, its status, trigger and times."""

    id: str
    pipeline: str
    status: Status
    started_at: datetime
    finished_at: datetime | None = None
    trigger: str | None = None
    triggered_by: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (``None`` while it runs)."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@attrs.frozen
class Decision:
    """An answer to an approval request: approved or not, by whom, why and when."""

    approved: bool
    by: str
    summary: str
    time: datetime


@attrs.frozen
class CacheEntry:
    """What a successful attempt left for later ones: variables, and outputs with hashes.

    ``trees`` names each output's tree in the cache folder (its files kept once, by content);
    an entry without one (written before there was a cache folder) is restored from ``path``.
    """

    execution_id: str
    node: str
    variables: Mapping[str, str]
    outputs: Mapping[str, tuple[str, str]]  # artifact -> (path, content hash)
    trees: Mapping[str, str] = attrs.field(factory=dict)  # artifact -> tree in the cache folder
    #: Bytes of its outputs.
    size: int = 0
    created_at: datetime | None = None
    last_used: datetime | None = None


@attrs.frozen
class SavedCache:
    """A folder kept under a key (``pk.Cache``): never changed once saved.

    ``trees`` maps each of ``paths`` (relative to the action's working folder) to its tree in
    the cache folder; ``root`` is the working folder it was saved from (a restore elsewhere
    rewrites it in the files that mention it). One key may hold entries of different ``paths``,
    as ``actions/cache`` keeps one per key and version.
    """

    key: str
    paths: tuple[str, ...]
    trees: Mapping[str, str]
    size: int
    files: int
    created_at: datetime
    last_used: datetime
    execution_id: str
    node: str
    root: str
