"""The ``Executor`` protocol: where an action's provider runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pipelinekit.providers._context import ActionContext

__all__ = ["Executor"]


@runtime_checkable
class Executor(Protocol):
    """Runs one attempt of one action.

    An executor may have ``max_concurrency`` (``int | None``): how many actions may run at once.

    ``execute`` runs ``provider.run(ctx)`` somewhere (in this process, in a test double, on a
    cluster) and returns when it is done; it raises what the provider raised to fail the attempt.
    Cancelling ``execute`` must cancel the work. Retries, timeouts and state changes are the
    scheduler's: an executor never records anything.
    """

    async def execute(self, provider: Any, ctx: ActionContext) -> None:  # noqa: ANN401 - any provider
        """Run one attempt."""
        ...
