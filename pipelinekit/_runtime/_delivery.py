"""Delivering events to hooks: each hook on a queue of its own, never stalling the run.

A hook is an object with ``async def on_event(event)`` (the ``pk.hooks.Hook`` protocol) or a
plain callable; a coroutine function is awaited, any other callable runs in a worker thread. A
call that raises or outlasts the engine's ``hook_timeout`` becomes a ``HookError`` on the result
and delivery goes on with the next event.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import anyio
import attrs
from anyio.streams.memory import MemoryObjectReceiveStream

from pipelinekit._model._events import Event
from pipelinekit._runtime._results import HookError, RunResult
from pipelinekit.hooks import Hook

__all__ = ["HookHandler", "deliver", "handler_of", "hook_name", "with_hook_errors"]

#: What delivery calls with each event.
HookHandler = Callable[[Event], Any]


def handler_of(hook: Hook | HookHandler) -> HookHandler:
    """What to call for each event: the hook's ``on_event``, or the callable itself."""
    if isinstance(hook, Hook):
        return hook.on_event
    return hook


def hook_name(hook: object) -> str:
    """How a hook is named in errors: a function's qualified name, else its class's name."""
    if inspect.isroutine(hook):
        return str(hook.__qualname__)
    return type(hook).__name__


async def _call(handler: HookHandler, event: Event) -> None:
    if inspect.iscoroutinefunction(handler):
        await handler(event)
        return
    returned = await anyio.to_thread.run_sync(handler, event, abandon_on_cancel=True)
    if inspect.isawaitable(returned):
        await returned


async def deliver(
    hook: Hook | HookHandler,
    receive: MemoryObjectReceiveStream[Event],
    errors: list[HookError],
    *,
    limit: float,
) -> None:
    """Hand every event from ``receive`` to ``hook`` in order; failures go to ``errors``.

    Each call may take ``limit`` seconds.
    """
    name = hook_name(hook)
    handler = handler_of(hook)
    async with receive:
        try:
            async for event in receive:
                try:
                    with anyio.move_on_after(limit) as scope:
                        await _call(handler, event)
                except Exception as failure:  # noqa: BLE001 - a hook never fails the pipeline
                    errors.append(
                        HookError(name, str(event), f"{type(failure).__name__}: {failure}")
                    )
                else:
                    if scope.cancelled_caught:
                        errors.append(HookError(name, str(event), f"timed out after {limit:g}s"))
        except anyio.get_cancelled_exc_class():
            left = receive.statistics().current_buffer_used
            errors.append(
                HookError(name, "(remaining events)", f"gave up with {left} events undelivered")
            )
            raise


def with_hook_errors(result: RunResult, errors: list[HookError]) -> RunResult:
    """``result`` with ``errors`` on it."""
    return attrs.evolve(result, hook_errors=tuple(errors))
