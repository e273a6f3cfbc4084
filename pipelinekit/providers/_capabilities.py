"""What a provider may declare besides ``run``: optional capabilities, each a small protocol.

A provider is any object with ``async def run(self, ctx)``; these are the optional parts of its
contract, each with the default that applies when a provider does not declare it:

- ``idempotent: bool`` (default ``False``): running it again after a crash is safe, so a resumed
  execution runs an interrupted attempt again instead of failing it as interrupted.
- ``async def aclose(self)`` (default: nothing to close): called once, when the engine that
  ran it closes.
- ``output_variables: Sequence[str]`` (default: none declared): the output variables it sets,
  so that ``#{Namespace.Name}`` references are checked at definition time and the fake executor
  can make up values.

Each is checked with ``isinstance`` against its protocol (``runtime_checkable``), so the runtime
asks a typed question instead of looking a name up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pipelinekit.providers._context import ActionContext

__all__ = ["Closeable", "DeclaresOutputVariables", "Idempotent", "Runnable", "is_idempotent"]


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
class DeclaresOutputVariables(Protocol):
    """A provider that names the output variables it sets."""

    output_variables: Sequence[str]


def is_idempotent(provider: object) -> bool:
    """Whether ``provider`` declares itself idempotent (``False`` when it does not say)."""
    return isinstance(provider, Idempotent) and provider.idempotent is True
