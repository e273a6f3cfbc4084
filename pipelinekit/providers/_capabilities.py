"""What a provider may declare besides ``run``: optional capabilities, each a small protocol.

A provider is any object with ``async def run(self, ctx)``; these are the optional parts of its
contract, each with the default that applies when a provider does not declare it:

- ``idempotent: bool`` (default ``False``): running it again after a crash is safe, so a resumed
  execution runs an interrupted attempt again instead of failing it as interrupted.
- ``async def aclose(self)`` (default: nothing to close): called once, when the engine that
  ran it closes.
- ``output_variables: Sequence[str]`` (default: none declared): the output variables it sets
  every time it succeeds (required).
- ``optional_output_variables: Sequence[str]`` (default: none): the output variables it may
  leave unset.

  A provider that declares either (``None`` is the same as not declaring) has declared all the
  output variables it can set. Then a ``#{Namespace.Name}`` reference to a name in neither list
  is refused where the pipeline is written (with "did you mean"); after it succeeds, an unset
  required one or a set undeclared one fails its attempt, and an unset optional one is ``""``
  with a warning in its log; the fake executor makes up values for the required ones. A
  provider that declares nothing is not checked. Only providers that run themselves are asked:
  a declaration that a registry builds a provider for at run time says nothing of that
  provider's variables. A class declares fixed names as ``ClassVar`` tuples
  (``ManualApproval``: ``ApprovedBy``, ``Summary``); ``pk.shell`` and ``pk.python`` take them
  as arguments.
- ``resolve_references(lookup)`` (default: each reference's value is substituted for its text in
  every string of the provider): the provider to run, resolved its own way. ``Commands`` uses it
  so that a value never becomes shell text.

Each is checked with ``isinstance`` against its protocol (``runtime_checkable``), so the runtime
asks a typed question instead of looking a name up. The two output-variable protocols live in the
model (``_model/_output_variables.py``), which reads declarations for validation and cannot import
this layer; they are the same classes here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pipelinekit._model._output_variables import (
    DeclaresOptionalOutputVariables,
    DeclaresOutputVariables,
    declared_outputs,
)
from pipelinekit._model._variables import Reference, resolve_value

if TYPE_CHECKING:
    from pipelinekit.providers._context import ActionContext

__all__ = [
    "Closeable",
    "DeclaresOptionalOutputVariables",
    "DeclaresOutputVariables",
    "Idempotent",
    "ResolvesReferences",
    "Runnable",
    "is_idempotent",
    "optional_output_variables",
    "required_output_variables",
    "with_references_resolved",
]


@runtime_checkable
class Runnable(Protocol):
    """Anything with the provider's one required method.

    An action's provider is run as it is when it has ``run``; otherwise it is a declaration
    (an action type and configuration) that the registry builds a provider for.
    """

    async def run(self, ctx: ActionContext) -> None:
        """Do the action's work."""


@runtime_checkable
class Idempotent(Protocol):
    """A provider that says whether running it again after a crash is safe."""

    idempotent: bool


@runtime_checkable
class Closeable(Protocol):
    """A provider (or executor) holding resources until the engine closes."""

    async def aclose(self) -> None:
        """Release what it holds; called once, when the engine closes."""


@runtime_checkable
class ResolvesReferences(Protocol):
    """A provider that resolves its own ``#{...}`` references.

    The engine calls ``resolve_references(lookup)`` before each attempt of an action whose
    provider holds references, instead of substituting each value's text in every string of the
    provider. The contract:

    - return the provider to run; the declaration itself is left as it is (it is frozen, and the
      next attempt or execution resolves it again, maybe with other values);
    - get every value through ``lookup``, and let what it raises (a reference with no value)
      propagate: the attempt fails with that message;
    - depend on nothing but the declaration and the values, so the result can be recorded and
      used as a cache key.

    ``Commands`` implements it to pass each value to the shell as an environment variable, never
    as shell text.
    """

    def resolve_references(self, lookup: Callable[[Reference], str]) -> Runnable:
        """The provider to run, with the value of each reference from ``lookup``."""


def with_references_resolved(provider: Runnable, lookup: Callable[[Reference], str]) -> Runnable:
    """``provider`` resolved its own way when it says how, else by substituting text."""
    if isinstance(provider, ResolvesReferences):
        return provider.resolve_references(lookup)
    resolved: Runnable = resolve_value(provider, lookup)
    return resolved


def is_idempotent(provider: object) -> bool:
    """Whether ``provider`` declares itself idempotent (``False`` when it does not say)."""
    return isinstance(provider, Idempotent) and provider.idempotent is True


def required_output_variables(provider: object) -> tuple[str, ...]:
    """The output variables ``provider`` declares it always sets (none when it declares none)."""
    declared = declared_outputs(provider)
    return declared.required if declared is not None else ()


def optional_output_variables(provider: object) -> tuple[str, ...]:
    """The output variables ``provider`` declares it may leave unset."""
    declared = declared_outputs(provider)
    return declared.optional if declared is not None else ()
