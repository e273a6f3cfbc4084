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

import functools
import re
from collections.abc import Iterator, Sequence
from typing import Protocol, cast, runtime_checkable

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

    #: Every declared name, required or optional.
    names: frozenset[str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # Kept: validation asks it of every reference.
        object.__setattr__(self, "names", frozenset(self.required) | frozenset(self.optional))

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
    if type(value) is tuple and all(type(name) is str for name in value):
        return value  # the common shape, as it is
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
    kind: type = type(provider)
    return _shape(kind)[0]


@functools.lru_cache(maxsize=1024)
def _shape(cls: type) -> tuple[bool, bool, bool, object]:
    """What the class tells: (runs itself, declares required, declares optional, fixed list).

    Asked once per class: a protocol check costs microseconds, and validation asks it of every
    action with a namespace. An attrs field or a ``ClassVar`` is on the class; an attribute set
    only by ``__init__`` is not, and is looked for in the instance's ``__dict__`` instead. The
    fixed list is a ``ClassVar``'s value (an attrs field's class attribute is a descriptor).
    """
    fixed = next(
        (vars(k)["output_variables"] for k in cls.__mro__ if "output_variables" in vars(k)), None
    )
    return (
        callable(getattr(cls, "run", None)),
        isinstance(cls, DeclaresOutputVariables),
        isinstance(cls, DeclaresOptionalOutputVariables),
        fixed if isinstance(fixed, tuple | list) else None,
    )


@functools.lru_cache(maxsize=1024)
def _declared(
    required: tuple[str, ...] | None,
    optional: tuple[str, ...] | None,
    fixed: bool,  # noqa: FBT001 - positional: the cache key of the fast path
) -> DeclaredOutputs | None:
    # Most providers of a pipeline declare the same few lists: each is built once.
    if required is None and optional is None:
        return None
    return DeclaredOutputs(required or (), optional or (), fixed=fixed and required is not None)


def declared_outputs(provider: object) -> DeclaredOutputs | None:
    """The output variables ``provider`` declares, or ``None`` when it declares none.

    Only a provider that runs itself is asked: a declaration run by a provider that a registry
    builds at run time says nothing of what that provider will set.
    """
    kind: type = type(provider)
    runs, has_required, has_optional, fixed_list = _shape(kind)
    if not runs:
        return None
    # An attribute only ``__init__`` sets is in the instance's own ``__dict__``.
    own = None if has_required and has_optional else getattr(provider, "__dict__", None)
    value: object = None
    if has_required or (own and "output_variables" in own):
        value = cast("DeclaresOutputVariables", provider).output_variables
    optional: object = None
    if has_optional or (own and "optional_output_variables" in own):
        optional = cast("DeclaresOptionalOutputVariables", provider).optional_output_variables
    if value is None and optional is None:
        return None
    try:
        return _declared(_names(value), _names(optional), value is fixed_list)
    except TypeError:  # a list that holds something unhashable: the provider's checks say so
        return None


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
