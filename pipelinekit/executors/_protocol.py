"""The ``Executor`` protocol: where an action's provider runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pipelinekit.providers._capabilities import Runnable
    from pipelinekit.providers._context import ActionContext

__all__ = ["Executor"]


@runtime_checkable
class Executor(Protocol):
    """Runs one attempt of one action.

    ``execute`` runs ``provider.run(ctx)`` somewhere (in this process, in a test double, on a
    cluster) and returns when it is done; it raises what the provider raised to fail the attempt.
    Cancelling ``execute`` must cancel the work. Retries, timeouts, concurrency limits and state
    changes are the engine's: an executor never records anything.

    Optional: ``async def aclose(self)``, called once when the engine that used the executor
    closes (``pipelinekit.providers._capabilities.Closeable``).
    """

    async def execute(self, provider: Runnable, ctx: ActionContext) -> None:
        """Run one attempt."""
        ...
