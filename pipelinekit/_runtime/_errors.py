"""Errors as the public API raises them: the documented class, never a group wrapping it.

anyio's task groups wrap what their tasks raise in ``ExceptionGroup``s, nested as deep as the
tasks are. A caller of ``pk.run`` or ``Engine`` writes ``except pk.StoreError`` and must catch
a store failure wherever in the engine it happened; ``plain`` takes the one error that says
what went wrong out of its groups.
"""

from __future__ import annotations

from collections.abc import Iterator

from pipelinekit.exceptions import PipelineKitError

__all__ = ["plain"]


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


def plain(error: BaseException) -> BaseException:
    """The error to raise in place of ``error``: itself unless it is a group.

    Of a group's errors, an interrupt (``KeyboardInterrupt``, ``SystemExit``) comes first, then
    pipelinekit's own errors, then anything else, in the order raised. The others are kept as
    notes on the chosen one, and the group as its ``__context__``, so nothing is hidden.
    """
    if not isinstance(error, BaseExceptionGroup):
        return error
    leaves = list(_leaves(error))
    if not leaves:  # pragma: no cover - groups are never empty
        return error

    def rank(leaf: BaseException) -> int:
        if not isinstance(leaf, Exception):
            return 0
        return 1 if isinstance(leaf, PipelineKitError) else 2

    chosen = min(leaves, key=rank)
    for other in leaves:
        if other is not chosen:
            chosen.add_note(f"also: {type(other).__name__}: {other}")
    chosen.__context__ = error
    return chosen
