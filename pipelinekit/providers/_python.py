"""Python functions as actions: ``pk.python(fn)`` and the ``@pk.action`` decorator."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, overload

import anyio
import attrs

from pipelinekit._model._declarations import Action, ActionTypeId, Category, Owner, Retry
from pipelinekit._model._frozendict import to_tuple
from pipelinekit._model._output_variables import declaration_problems
from pipelinekit.exceptions import ActionFailed

if TYPE_CHECKING:
    from pipelinekit.providers._context import ActionContext

__all__ = ["PythonFunction", "action", "python"]

ActionFunction = Callable[..., Any]


def _exited(name: str, error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"{name} called sys.exit({error.code!r})"
    return f"{name} raised {type(error).__name__}"


def _call_in_thread(fn: ActionFunction, ctx: ActionContext) -> Any:  # noqa: ANN401 - what fn returns
    # No signal reaches a worker thread: a KeyboardInterrupt here is the function's own, and
    # must fail its action rather than pass for a Ctrl-C of the whole program.
    # The others are turned into failures here too: a BaseException that crosses back from a
    # thread is not always handed over whole.
    try:
        return fn(ctx)
    except Exception:
        raise
    except BaseException as error:
        raise ActionFailed(_exited(getattr(fn, "__qualname__", repr(fn)), error)) from error


def _to_names(value: object) -> object:
    # A lone string is one name, not a list of its letters.
    if value is None:
        return None
    return (value,) if isinstance(value, str) else to_tuple(value)


@attrs.frozen
class PythonFunction:
    """Run a Python function as an action: ``fn(ctx)``.

    Async functions run in the event loop; plain functions run in a worker thread, so they may
    block (a cancelled thread is abandoned, as threads cannot be interrupted). A function may
    return a mapping of output variables instead of calling ``ctx.set_variable``. Set
    ``idempotent=True`` when running the function twice is harmless, so that a resumed execution
    may run it again after a crash.

    ``output_variables`` names the output variables the function sets every time it succeeds,
    ``optional_output_variables`` those it may leave unset. With either, a ``#{Namespace.Name}``
    reference to another name is refused where the pipeline is written, and a run fails the
    action when the function leaves a required one unset or sets one it does not declare (an
    optional one left unset is a warning in its log). Without them (``None``, the default)
    nothing is checked.
    """

    action_type: ClassVar[ActionTypeId] = ActionTypeId(
        Category.INVOKE, Owner.CUSTOM, "PythonFunction", "1"
    )

    fn: ActionFunction
    idempotent: bool = attrs.field(default=False, kw_only=True)
    output_variables: tuple[str, ...] | None = attrs.field(
        default=None, converter=_to_names, kw_only=True
    )
    optional_output_variables: tuple[str, ...] | None = attrs.field(
        default=None, converter=_to_names, kw_only=True
    )
    #: Whether the function is a coroutine function (runs in the loop, not in a thread).
    is_async: bool = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "is_async", inspect.iscoroutinefunction(self.fn))

    async def run(self, ctx: ActionContext) -> None:
        """Call the function with the context.

        A function that exits (``sys.exit()``, as a wrapped tool's ``main()`` does) fails its
        action like any error, and so does one that raises any other ``BaseException`` itself
        (``KeyboardInterrupt``, ``GeneratorExit``, a subclass of its own): none of them ends the
        run, or the program running it. A plain function still running when its action is
        cancelled (a timeout, a stop) is left to finish in its thread, as threads cannot be
        stopped; the ``pipelinekit`` command leaves without waiting for it.
        """
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        try:
            if self.is_async:
                returned = await self.fn(ctx)
            else:
                returned = await anyio.to_thread.run_sync(
                    _call_in_thread, self.fn, ctx, abandon_on_cancel=True
                )
                if inspect.isawaitable(returned):
                    returned = await returned
        except anyio.get_cancelled_exc_class():
            raise  # a timeout, a stop or Ctrl-C: the run's own doing
        except Exception:
            raise
        except BaseException as error:
            # KeyboardInterrupt too: the event loop turns a real Ctrl-C into a cancellation, so
            # one raised here is the function's own.
            raise ActionFailed(_exited(name, error)) from error
        if returned is None:
            return
        if not isinstance(returned, Mapping):
            msg = (
                f"{getattr(self.fn, '__qualname__', self.fn)!r} returned "
                f"{type(returned).__name__}; return None or a mapping of output variables"
            )
            raise ActionFailed(msg)
        for name, value in returned.items():
            ctx.set_variable(name, value)

    def problems(self) -> Iterable[tuple[str, str]]:
        """Broken rules of this declaration, as (field, message) pairs."""
        if not callable(self.fn):
            yield "fn", f"must be a function taking an ActionContext (got {self.fn!r})"
        if type(self.idempotent) is not bool:  # a truthy string would silently re-run it
            yield "idempotent", f"must be True or False (got {self.idempotent!r})"
        yield from declaration_problems(self.output_variables, self.optional_output_variables)


def python(
    fn: ActionFunction,
    *,
    idempotent: bool = False,
    output_variables: Iterable[str] | None = None,
    optional_output_variables: Iterable[str] | None = None,
) -> PythonFunction:
    """A provider that runs ``fn(ctx)``: ``pk.Action("Scan", pk.python(scan))``.

    ``output_variables`` / ``optional_output_variables`` declare the output variables it sets
    (see ``PythonFunction``), so that references to them are checked.
    """
    return PythonFunction(
        fn,
        idempotent=idempotent,
        output_variables=output_variables,
        optional_output_variables=optional_output_variables,
    )


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
    output_variables: Iterable[str] | None = None,
    optional_output_variables: Iterable[str] | None = None,
) -> Callable[[ActionFunction], Action]: ...


def action(
    fn: ActionFunction | None = None,
    /,
    *,
    name: str | None = None,
    idempotent: bool = False,
    output_variables: Iterable[str] | None = None,
    optional_output_variables: Iterable[str] | None = None,
    **options: Any,
) -> Action | Callable[[ActionFunction], Action]:
    """Make a whole ``Action`` of a function, named after it unless ``name=`` is given.

    ``idempotent``, ``output_variables`` and ``optional_output_variables`` are
    ``pk.python``'s; the other keyword arguments are ``Action``'s. Use it bare (``@pk.action``)
    or with arguments (``@pk.action(outputs=["report"], namespace="Build",
    output_variables=["Version"])``); the result goes straight into a stage.
    """

    def decorate(function: ActionFunction) -> Action:
        return Action(
            name if name is not None else function.__name__,
            PythonFunction(
                function,
                idempotent=idempotent,
                output_variables=output_variables,
                optional_output_variables=optional_output_variables,
            ),
            **options,
        )

    if fn is not None:
        return decorate(fn)
    return decorate
