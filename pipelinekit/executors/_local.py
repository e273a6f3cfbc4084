"""``LocalExecutor``: runs providers in this process."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelinekit.providers._capabilities import Runnable
    from pipelinekit.providers._context import ActionContext

__all__ = ["LocalExecutor"]


class LocalExecutor:
    """Run each action's provider in this process.

    Async code runs in the event loop, commands as subprocesses, sync Python functions in worker
    threads. How many actions run at once is the engine's option: ``pk.Engine(max_concurrency=8)``
    or ``pk.run(..., max_concurrency=8)``.
    """

    def __init__(self, *, max_concurrency: object = None) -> None:
        """A local executor (``max_concurrency`` moved to the engine; passing it is an error)."""
        if max_concurrency is not None:
            msg = (
                "max_concurrency is an option of the engine now, not of LocalExecutor: "
                f"pk.Engine(max_concurrency={max_concurrency!r}) or "
                f"pk.run(..., max_concurrency={max_concurrency!r})"
            )
            raise TypeError(msg)

    async def execute(self, provider: Runnable, ctx: ActionContext) -> None:
        """Run ``provider.run(ctx)``."""
        await provider.run(ctx)
