"""Hooks: who hears about state changes.

A hook is any object with ``async def on_event(self, event: pk.Event) -> None``, or a plain
callable taking the event (a coroutine function is awaited; any other callable runs in a worker
thread, so it may block). Each hook gets every event of an execution in order, from a queue of
its own: a hook that is slow, hangs or raises never stalls or fails the pipeline. A call that
raises or takes longer than the engine's ``hook_timeout`` is recorded on the result
(``RunResult.hook_errors``) and delivery goes on with the next event.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pipelinekit._model._events import Event

__all__ = ["Hook", "LogHook"]


@runtime_checkable
class Hook(Protocol):
    """Receives every event of every execution it is attached to."""

    async def on_event(self, event: Event) -> None:
        """Handle one event."""
        ...


class LogHook:
    """Write each event through structlog (``logger`` or structlog's ``pipelinekit`` logger).

    Failures are logged at ``error`` level, everything else at ``level`` (default ``info``).
    """

    def __init__(self, logger: Any = None, *, level: str = "info") -> None:  # noqa: ANN401 - any structlog logger
        """Log through ``logger`` at ``level``."""
        if logger is None:
            import structlog  # noqa: PLC0415 - only this hook needs it at once; keep imports light

            logger = structlog.get_logger("pipelinekit")
        self._logger = logger
        self._level = level

    async def on_event(self, event: Event) -> None:
        """Log the event with its fields."""
        level = "error" if event.state == "Failed" else self._level
        fields: dict[str, Any] = {
            "pipeline": event.pipeline,
            "execution_id": event.execution_id,
            "type": event.type,
            "state": str(event.state),
            "sequence": event.sequence,
        }
        if event.stage is not None:
            fields["stage"] = event.stage
        if event.action is not None:
            fields["action"] = event.action
        fields.update({k: v for k, v in event.detail.items() if k != "variables"})
        getattr(self._logger, level)("pipelinekit.event", **fields)
