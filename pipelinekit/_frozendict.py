"""An immutable, hashable str -> str mapping for the frozen model.

Frozen attrs classes hash their fields, so configuration maps must be hashable too; a dict is not,
and ``MappingProxyType`` is not hashable either.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


class FrozenDict(Mapping[str, str]):
    """A read-only mapping that keeps insertion order and can be hashed."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        """Copy ``data`` (or nothing) into a new frozen mapping."""
        self._data: dict[str, str] = dict(data) if data else {}
        self._hash: int | None = None

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._data) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"


def to_frozendict(value: Any) -> Any:  # noqa: ANN401 - converters accept anything and leave bad input for validation
    """Convert a mapping (or ``None``) to a ``FrozenDict``; leave anything else for validation."""
    if value is None:
        return FrozenDict()
    if isinstance(value, FrozenDict):
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
