"""An immutable, hashable str -> str mapping for the frozen model.

Frozen attrs classes hash their fields, so configuration maps must be hashable too; a dict is not,
and ``MappingProxyType`` is not hashable either. It subclasses ``dict`` so that reading it
(``len``, ``in``, iteration, ``json.dumps``) runs at C speed on large pipelines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn


class FrozenDict(dict[str, str]):
    """A read-only dict that can be hashed; every mutating method raises ``TypeError``."""

    __slots__ = ()

    def __hash__(self) -> int:  # type: ignore[override]  # dict is unhashable; this one is not
        return hash(frozenset(self.items()))

    def _refuse(self, *_args: object, **_kwargs: object) -> NoReturn:
        msg = "FrozenDict is read-only; build a new one (or use attrs.evolve on its owner)"
        raise TypeError(msg)

    __setitem__ = __delitem__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"

    def __reduce__(self) -> tuple[type[FrozenDict], tuple[dict[str, str]]]:
        return (FrozenDict, (dict(self),))


def to_frozendict(value: Any) -> Any:  # noqa: ANN401 - converters accept anything and leave bad input for validation
    """Convert a mapping (or ``None``) to a ``FrozenDict``; leave anything else for validation."""
    if value is None:
        return FrozenDict()
    if type(value) is FrozenDict:
        return value
    if isinstance(value, Mapping):
        return FrozenDict(value)
    return value


def to_tuple(value: Any) -> Any:  # noqa: ANN401 - see to_frozendict
    """Convert an iterable (not a string) to a tuple; leave anything else for validation."""
    if value is None:
        return ()
    if isinstance(value, str | bytes | Mapping):
        return value
    try:
        return tuple(value)
    except TypeError:
        return value
