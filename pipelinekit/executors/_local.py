"""``LocalExecutor``: runs providers in this process."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelinekit.providers._context import ActionContext

__all__ = ["LocalExecutor"]


class LocalExecutor:
    """Run each action's provider in this process.

    Async code runs in the event loop, commands as subprocesses, sync Python functions in worker
    threads.

    ``max_concurrency`` bounds how many actions run at once (``None``: no bound beyond the
    pipeline's own shape); the scheduler holds a slot from an action's start to its end, so
    waiting for a slot counts neither as running nor against the action's timeout.
    """

    def __init__(self, max_concurrency: int | None = None) -> None:
        """Bound concurrency to ``max_concurrency`` actions (at least 1), or not at all."""
        if max_concurrency is not None and (
            not isinstance(max_concurrency, int)
            or isinstance(max_concurrency, bool)
            or max_concurrency < 1
        ):
            msg = f"max_concurrency must be a whole number >= 1 (got {max_concurrency!r})"
            raise ValueError(msg)
        self.max_concurrency = max_concurrency

    async def execute(self, provider: Any, ctx: ActionContext) -> None:  # noqa: ANN401 - any provider
        """Run ``provider.run(ctx)``."""
        await provider.run(ctx)
