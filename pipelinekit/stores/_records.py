"""The records a store keeps besides events, public so that anyone can implement a ``Store``.

``ExecutionSummary`` is a line of history, ``Decision`` an answer to an approval request kept for
the process that runs the execution, ``CacheEntry`` what a successful cached attempt left for
later ones. They are plain frozen values: a store keeps them as they are and gives them back
equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import attrs

from pipelinekit._model._declarations import Status

__all__ = ["CacheEntry", "Decision", "ExecutionSummary"]


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
    """What a successful attempt left for later ones: variables, and outputs with hashes."""

    execution_id: str
    node: str
    variables: Mapping[str, str]
    outputs: Mapping[str, tuple[str, str]]  # artifact -> (path, content hash)
