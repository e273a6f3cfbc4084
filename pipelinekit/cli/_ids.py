"""Execution ids for humans: a unique prefix (as git takes one), ``latest`` or ``latest:NAME``."""

from __future__ import annotations

import anyio

from pipelinekit.exceptions import PipelineKitError
from pipelinekit.stores import Store

__all__ = ["MIN_PREFIX", "UnknownExecutionError", "resolve_execution"]

#: The shortest prefix taken for an id: shorter ones match too much to be typed on purpose.
MIN_PREFIX = 4
_PAGE = 500


class UnknownExecutionError(PipelineKitError):
    """No execution, or more than one, answers to what was typed."""


def resolve_execution(store: Store, text: str) -> str:
    """The execution id ``text`` names in ``store``: itself, ``latest[:PIPELINE]``, or a prefix."""
    return anyio.run(_resolve, store, text)


async def _resolve(store: Store, text: str) -> str:
    if text == "latest" or text.startswith("latest:"):
        pipeline = text.partition(":")[2] or None
        newest = await store.executions(pipeline, limit=1)
        if not newest:
            of = f" of pipeline {pipeline!r}" if pipeline else ""
            msg = f"the store has no execution{of} yet"
            raise UnknownExecutionError(msg)
        return newest[0].id
    if await store.events(text):
        return text
    if len(text) < MIN_PREFIX:
        msg = (
            f"the store has no execution {text!r}; give its id, a prefix of at least "
            f"{MIN_PREFIX} characters, or latest"
        )
        raise UnknownExecutionError(msg)
    found: list[str] = []
    offset = 0
    while True:
        page = await store.executions(limit=_PAGE, offset=offset)
        found.extend(summary.id for summary in page if summary.id.startswith(text))
        if len(page) < _PAGE or len(found) > 1:
            break
        offset += _PAGE
    if not found:
        msg = f"the store has no execution {text!r} (nor one whose id starts so)"
        raise UnknownExecutionError(msg)
    if len(found) > 1:
        listed = ", ".join(found[:3])
        msg = f"{text!r} starts the ids of several executions ({listed}, ...); type more of it"
        raise UnknownExecutionError(msg)
    return found[0]
