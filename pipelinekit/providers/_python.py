"""Python functions as actions: ``pk.python(fn)`` and the ``@pk.action`` decorator."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any, ClassVar, overload

import attrs

from pipelinekit._model import Action, ActionTypeId, Category, Owner, Retry

__all__ = ["PythonFunction", "action", "python"]

ActionFunction = Callable[..., Any]


@attrs.frozen
class PythonFunction:
    """Run a Python function as an action: ``fn(ctx)``.

    Async functions run in the event loop; plain functions run in a worker thread, so they may
    block. Set ``idempotent=True`` when running the function twice is harmless, so that a resumed
    execution may run it again after a crash.
    """

    action_type: ClassVar[ActionTypeId] = ActionTypeId(
        Category.INVOKE, Owner.CUSTOM, "PythonFunction", "1"
    )

    fn: ActionFunction
    idempotent: bool = attrs.field(default=False, kw_only=True)

    @property
    def is_async(self) -> bool:
        """Whether the function is a coroutine function (runs in the loop, not in a thread)."""
        return inspect.iscoroutinefunction(self.fn)

    def problems(self) -> Iterable[tuple[str, str]]:
        """Broken rules of this declaration, as (field, message) pairs."""
        if not callable(self.fn):
            yield "fn", f"must be a function taking an ActionContext (got {self.fn!r})"


def python(fn: ActionFunction, *, idempotent: bool = False) -> PythonFunction:
    """A provider that runs ``fn(ctx)``: ``pk.Action("Scan", pk.python(scan))``."""
    return PythonFunction(fn, idempotent=idempotent)


@overload
def action(fn: ActionFunction, /) -> Action: ...


@overload
def action(
    *,
    name: str | None = None,
    inputs: Iterable[str] = (),
    outputs: Iterable[str] = (),
    namespace: str | None = None,
    run_order: int = 1,
    timeout: timedelta | float | None = None,
    retry: Retry | None = None,
    cache: bool = False,
    configuration: Mapping[str, str] | None = None,
    region: str | None = None,
    role_arn: str | None = None,
    idempotent: bool = False,
) -> Callable[[ActionFunction], Action]: ...


def action(
    fn: ActionFunction | None = None,
    /,
    *,
    name: str | None = None,
    idempotent: bool = False,
    **options: Any,
) -> Action | Callable[[ActionFunction], Action]:
    """Make a whole ``Action`` of a function, named after it unless ``name=`` is given.

    The other keyword arguments are ``Action``'s. Use it bare (``@pk.action``) or with
    arguments (``@pk.action(outputs=["report"])``); the result goes straight into a stage.
    """

    def decorate(function: ActionFunction) -> Action:
        return Action(
            name if name is not None else function.__name__,
            PythonFunction(function, idempotent=idempotent),
            **options,
        )

    if fn is not None:
        return decorate(fn)
    return decorate
