"""Errors as the public API raises them: the documented class, never a group wrapping it.

anyio's task groups wrap what their tasks raise in ``ExceptionGroup``s, nested as deep as the
tasks are. A caller of ``pk.run`` or ``Engine`` writes ``except pk.StoreError`` and must catch
a store failure wherever in the engine it happened; ``plain`` takes the one error that says
what went wrong out of its groups.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NoReturn

from pipelinekit.exceptions import PipelineKitError

__all__ = ["plain", "raise_plain"]


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


def plain(error: BaseException) -> BaseException:
    """The error to raise in place of ``error``: itself unless it is a group.

    Of a group's errors, an interrupt (``KeyboardInterrupt``, ``SystemExit``) comes first, then
    pipelinekit's own errors, then any other ``Exception``, in the order raised. The others are
    kept as notes on the chosen one, and the group as its ``__context__``, so nothing is hidden.
    A group of cancellations only is returned as it is: the cancel scope it belongs to must see
    it.
    """
    if not isinstance(error, BaseExceptionGroup):
        return error
    leaves = list(_leaves(error))

    def rank(leaf: BaseException) -> int:
        if isinstance(leaf, KeyboardInterrupt | SystemExit):
            return 0
        if isinstance(leaf, PipelineKitError):
            return 1
        return 2 if isinstance(leaf, Exception) else 3

    chosen = min(leaves, key=rank, default=None)
    if chosen is None or rank(chosen) == 3:  # noqa: PLR2004 - nothing but cancellations
        return error
    for other in leaves:
        if other is not chosen and rank(other) < 3:  # noqa: PLR2004 - cancellations are no news
            chosen.add_note(f"also: {type(other).__name__}: {other}")
    chosen.__context__ = error
    return chosen


def raise_plain(error: BaseException) -> NoReturn:
    """Raise ``error`` as the public API raises errors (see ``plain``), keeping its cause."""
    chosen = plain(error)
    if chosen is error:
        raise error
    raise chosen from chosen.__cause__
