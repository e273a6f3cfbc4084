"""What a provider declares of the output variables it sets, read where the model needs it.

A provider may name the output variables it sets: ``output_variables`` (required: each is set
whenever the provider succeeds) and ``optional_output_variables`` (may be left unset). With a
declaration, a ``#{Namespace.Name}`` reference to any other name can never have a value, so
validation refuses it where the pipeline is written, and the runtime holds the provider to it.
Without one (no attribute, or ``None``: a plain function, a declaration the registry builds a
provider for at run time) nothing is checked.

The model cannot import the providers layer, so the two attributes are read here by name; the
providers layer states the same contract as protocols (``providers/_capabilities.py``) and reads
declarations through this module, so there is one reading of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import attrs

from pipelinekit._model._names import NameRule

__all__ = [
    "OUTPUT_VARIABLE",
    "DeclaredOutputs",
    "DeclaresOptionalOutputVariables",
    "DeclaresOutputVariables",
    "declaration_problems",
    "declared_outputs",
    "runs_itself",
]

#: What ``ActionContext.set_variable`` accepts as a name.
OUTPUT_VARIABLE = NameRule(
    "output variable name",
    re.compile(r"[A-Za-z0-9@\-_]+"),
    128,
    "letters A-Z a-z, digits and @ - _",
)


@attrs.frozen
class DeclaredOutputs:
    """The output variables a provider declares."""

    #: Set by every success of the provider.
    required: tuple[str, ...]
    #: Maybe left unset.
    optional: tuple[str, ...] = ()
    #: Whether the provider's class fixes the names (a built-in's ``ClassVar``), so that the
    #: person writing the pipeline cannot add one.
    fixed: bool = False

    @property
    def names(self) -> frozenset[str]:
        """Every declared name, required or optional."""
        return frozenset(self.required) | frozenset(self.optional)

    def describe(self) -> str:
        """``'A', 'B' (optional: 'C')``, or ``no output variables``."""
        if not self.required and not self.optional:
            return "no output variables"
        shown = ", ".join(map(repr, sorted(self.required)))
        if self.optional:
            optional = ", ".join(map(repr, sorted(self.optional)))
            shown = f"{shown} (optional: {optional})" if shown else f"optional {optional}"
        return shown


def _names(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return tuple(name for name in value if isinstance(name, str))
    return None  # not a declaration the model can read; the provider's own checks report it


@runtime_checkable
class DeclaresOutputVariables(Protocol):
    """A provider that names the output variables it sets whenever it succeeds."""

    output_variables: Sequence[str] | None


@runtime_checkable
class DeclaresOptionalOutputVariables(Protocol):
    """A provider that names the output variables it may leave unset."""

    optional_output_variables: Sequence[str] | None


def runs_itself(provider: object) -> bool:
    """Whether ``provider`` is run as it is (it has ``run``), rather than built by a registry."""
    return callable(getattr(type(provider), "run", None))


def declared_outputs(provider: object) -> DeclaredOutputs | None:
    """The output variables ``provider`` declares, or ``None`` when it declares none.

    Only a provider that runs itself is asked: a declaration run by a provider that a registry
    builds at run time says nothing of what that provider will set.
    """
    if not runs_itself(provider):
        return None
    value = provider.output_variables if isinstance(provider, DeclaresOutputVariables) else None
    required = _names(value)
    optional = _names(
        provider.optional_output_variables
        if isinstance(provider, DeclaresOptionalOutputVariables)
        else None
    )
    if required is None and optional is None:
        return None
    # A ClassVar is the very object the class holds; a field of an attrs class is a value of
    # the instance (the class holds a slot descriptor).
    fixed = required is not None and any(
        vars(cls).get("output_variables") is value for cls in type(provider).__mro__
    )
    return DeclaredOutputs(required or (), optional or (), fixed=fixed)


def declaration_problems(required: object, optional: object) -> Iterator[tuple[str, str]]:
    """Broken rules of a provider's declaration, as (field, message) pairs.

    Each list holds valid names, once; a name is required or optional, not both. ``None``
    (declares nothing) is fine for either.
    """
    seen: dict[str, str] = {}
    for field, names in (("output_variables", required), ("optional_output_variables", optional)):
        if names is None:
            continue
        if not isinstance(names, tuple):
            yield field, f"must be a list of output variable names (got {names!r})"
            continue
        for name in names:
            if (bad := OUTPUT_VARIABLE.problem(name)) is not None:
                yield field, bad
            elif name in seen:
                where = "twice" if seen[name] == field else f"in {seen[name]} too"
                yield (
                    field,
                    (
                        f"output variable {name!r} is declared {where}; name each once, as "
                        "required (output_variables) or optional (optional_output_variables)"
                    ),
                )
            else:
                seen[name] = field
