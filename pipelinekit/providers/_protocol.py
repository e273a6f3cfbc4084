"""The ``Provider`` protocol and the registry that finds providers by action type.

A provider is one async method::

    async def run(self, ctx: ActionContext) -> None

It does its work, writes its output artifacts into ``ctx.outputs``, sets output variables with
``ctx.set_variable()`` and returns; it fails the action by raising ``pk.ActionFailed("why")``
(any other exception fails it too, with the exception's type and message). It must let
cancellation through (never swallow anyio's cancellation exception): a timeout, a stop or Ctrl-C
cancels ``run``. Optional attributes: ``idempotent`` (bool: may run again after a crash),
``aclose()`` (called once when the engine closes), ``problems()`` (definition checks),
``input_artifacts`` / ``output_artifacts`` (``(min, max)`` counts, checked at definition).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pipelinekit._model._declarations import ActionTypeId
from pipelinekit.exceptions import ExecutionError
from pipelinekit.providers._builtin import BUILTIN

if TYPE_CHECKING:
    from pipelinekit.providers._context import ActionContext

__all__ = ["ENTRY_POINT_GROUP", "Provider", "ProviderRegistry"]

ENTRY_POINT_GROUP = "pipelinekit.providers"


@runtime_checkable
class Provider(Protocol):
    """What runs an action: an ``action_type`` and one async ``run(ctx)`` method."""

    action_type: ClassVar[ActionTypeId]

    async def run(self, ctx: ActionContext) -> None:
        """Do the action's work; raise ``pk.ActionFailed`` to fail it."""


#: Builds a provider from a CodePipeline-style configuration map.
ProviderFactory = Callable[[Mapping[str, str]], Any]


class ProviderRegistry:
    """Provider classes keyed by ``ActionTypeId``.

    For definitions that name an action type rather than hold a provider object (such as
    imported CodePipeline JSON).

    ``ProviderRegistry.default()`` holds pipelinekit's own providers plus those that installed
    packages declare under the ``pipelinekit.providers`` entry point group (each entry point
    names a provider class). A class is built with ``from_configuration(configuration)`` when it
    has one, else with the configuration as keyword arguments.
    """

    def __init__(self) -> None:
        """An empty registry."""
        self._classes: dict[ActionTypeId, type] = {}

    @classmethod
    def default(cls) -> ProviderRegistry:
        """A registry of the built-in providers and every installed plugin's."""
        registry = cls()
        for provider_class in BUILTIN:
            registry.register(provider_class)
        registry.discover()
        return registry

    def register(self, provider_class: type) -> type:
        """Add a provider class (usable as a decorator); a later class replaces an earlier one."""
        action_type = getattr(provider_class, "action_type", None)
        if not isinstance(action_type, ActionTypeId):
            msg = (
                f"{provider_class!r} has no action_type; decorate it with "
                "@pk.provider(owner, name, category=...)"
            )
            raise ExecutionError(msg)
        self._classes[action_type] = provider_class
        return provider_class

    def discover(self) -> None:
        """Register the provider classes of installed plugins.

        Plugins declare them under the entry point group ``pipelinekit.providers``. Finding them
        reads the metadata of every installed package, so it happens only here: never at import,
        and an engine makes its default registry only to run an action that names an action
        type instead of holding a provider.
        """
        from importlib import metadata  # noqa: PLC0415 - tens of milliseconds; only plugins need it

        for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                provider_class = entry_point.load()
            except Exception as error:
                msg = (
                    f"provider plugin {entry_point.name!r} ({entry_point.value}) failed to "
                    f"load: {type(error).__name__}: {error}"
                )
                raise ExecutionError(msg) from error
            self.register(provider_class)

    def __contains__(self, action_type: object) -> bool:
        return action_type in self._classes

    def __iter__(self) -> Iterator[ActionTypeId]:
        return iter(self._classes)

    def get(self, action_type: ActionTypeId) -> type:
        """The class registered for ``action_type``."""
        try:
            return self._classes[action_type]
        except KeyError:
            known = ", ".join(sorted(str(t) for t in self._classes)) or "none"
            msg = (
                f"no provider is registered for action type {action_type}; install the "
                f"plugin that provides it or register a class (known: {known})"
            )
            raise ExecutionError(msg) from None

    def build(self, action_type: ActionTypeId, configuration: Mapping[str, str]) -> Any:  # noqa: ANN401 - any provider
        """A provider object for ``action_type`` built from ``configuration``."""
        provider_class = self.get(action_type)
        factory = getattr(provider_class, "from_configuration", None)
        try:
            if callable(factory):
                return factory(configuration)
            return provider_class(**configuration)
        except (TypeError, ValueError) as error:
            msg = f"cannot build a {action_type} provider from {dict(configuration)!r}: {error}"
            raise ExecutionError(msg) from error
