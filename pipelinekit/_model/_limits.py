"""The sizes pipelinekit accepts, in one place, so that every check and every message agrees.

Each limit is generous for a release script yet far below what would fill a disk or a stack:
CodePipeline's own limits (a resolved action configuration of at most 100 KB, an approval of at
most 60 days) are the guide where it has one. Every limit is checked where the object that holds
the value is declared (``pk.Action(...)``, ``pk.Retry(...)``, ``pk.Pipeline(...)``), and each
message names the field, the limit (with its name here) and the value's size, in one line.

The walk that measures values (``measure`` and ``limit_problems``) never recurses, so a value
nested ten thousand deep, or a list that holds itself, is an error like any other, not a
``RecursionError``. It walks what ``#{...}`` resolution and the store's records walk: strings,
attrs objects, tuples, lists and mappings.
"""

from __future__ import annotations

import functools
import math
import operator
import reprlib
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any

from pipelinekit._model._frozendict import FrozenDict
from pipelinekit._model._variables import (
    _ATTRS,
    _MAPPING,
    _SEQUENCE,
    _STRING,
    _field_names,
    _kind,
    render_path,
)

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_BACKOFF",
    "MAX_DEFINITION_BYTES",
    "MAX_NESTING",
    "MAX_TIMEOUT",
    "MAX_VALUE_BYTES",
    "MAX_VARIABLE_DEFAULT",
    "MIN_SECRET_LENGTH",
    "NESTING_PROBLEM",
    "duration_problem",
    "limit_problems",
    "measure",
    "nul_problem",
    "shown",
    "size_problem",
    "utf8_size",
]

#: One string anywhere in a declaration (a configuration value, a provider's field, an env
#: value, a variable's description), in UTF-8 bytes. CodePipeline caps a resolved configuration
#: at 100 KB; more than that in one value is data, which belongs in an artifact. It also keeps
#: every value well under Linux's 128 KiB limit on one argument or environment string.
MAX_VALUE_BYTES = 100 * 1024
#: A variable's default, in characters: CodePipeline's limit for pipeline variables.
MAX_VARIABLE_DEFAULT = 1000
#: The whole definition: the bytes of every value declared (configurations, provider fields,
#: variables' defaults and descriptions, stage conditions, triggers; names are bounded by their
#: own rules). Every execution records the values its actions ran with, so this bounds what one
#: run writes besides its logs. Each action measures its values while it checks them and the
#: pipeline adds them up, rather than render the plan's JSON (which costs more than building
#: the pipeline, and holds no values); the 10,000-action bench/compile.py pipeline holds 0.5 MB.
MAX_DEFINITION_BYTES = 5 * 1024 * 1024
#: Nesting of lists, tuples, mappings and attrs objects inside a provider or a configuration
#: (a provider's own fields are level 1). Far deeper than any real template, far below Python's
#: recursion limit, which every later walk of the value (references, caching, records) may use.
MAX_NESTING = 32
#: The longest duration anywhere (an action's or approval's timeout, a retry delay, a wait, an
#: HTTP timeout): CodePipeline's approval maximum (86400 min). Longer is a mistake (10**12 s) and
#: overflows date arithmetic (``timedelta.max``).
MAX_TIMEOUT = timedelta(days=60)
#: The most tries of one action (``Retry.attempts``, the first included). More than this is
#: polling, which belongs inside the action, and every attempt is recorded.
MAX_ATTEMPTS = 100
#: The largest factor between two retry waits. With ``MAX_ATTEMPTS`` it keeps every wait a finite
#: number before ``max_delay`` caps it.
MAX_BACKOFF = 10.0
#: A secret shorter than this is refused: masking every "a" or "ab" in logs would corrupt them,
#: and so short a value protects nothing.
MIN_SECRET_LENGTH = 4

#: The longest mapping key written out in a field's path.
_SHOWN_KEY = 100


def utf8_size(text: str) -> int:
    """The UTF-8 size of ``text`` in bytes (a lone surrogate counts as its 3 bytes)."""
    # isascii() is a flag lookup in CPython: most values cost no encoding at all.
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def _bytes_text(size: int) -> str:
    return f"{size:,} bytes"


def size_problem(size: int) -> str:
    """The message for a value of ``size`` bytes, over ``MAX_VALUE_BYTES``."""
    return (
        f"is {_bytes_text(size)}; the limit is {_bytes_text(MAX_VALUE_BYTES)} (MAX_VALUE_BYTES): "
        "put large data in an artifact or a file and pass its name"
    )


def nul_problem(text: str) -> str:
    """The message for ``text``, which holds a NUL character."""
    return (
        f"contains a NUL character (at index {text.index(chr(0))}), which no environment "
        "variable, argument, path or header can hold; remove it"
    )


#: The message for a value nested deeper than ``MAX_NESTING``.
NESTING_PROBLEM = (
    f"is nested more than {MAX_NESTING} levels deep; the limit is {MAX_NESTING} levels "
    "(MAX_NESTING): flatten it, or put the data in an artifact or a file"
)


def _duration_text(seconds: float) -> str:
    if seconds >= 1e15:  # noqa: PLR2004 - past this, digits say nothing more
        return f"{seconds:.3g} seconds"
    text = f"{seconds:,.0f} seconds" if seconds >= 1 else f"{seconds:g} seconds"
    days = int(seconds // 86400)
    return f"{text} ({days:,} days)" if days >= 1 else text


_MAX_TIMEOUT_TEXT = f"{MAX_TIMEOUT.days} days"


def duration_problem(value: object, *, zero: bool = False) -> str | None:
    """Why ``value`` is not a duration pipelinekit accepts, or ``None``.

    A duration is a ``timedelta`` (numbers were made one by ``to_duration``), positive (or zero
    with ``zero=True``) and at most ``MAX_TIMEOUT``.
    """
    if isinstance(value, timedelta):
        if value > MAX_TIMEOUT:
            return (
                f"is {_duration_text(value.total_seconds())}; the limit is {_MAX_TIMEOUT_TEXT} "
                "(MAX_TIMEOUT)"
            )
        if value > timedelta(0) or (zero and value == timedelta(0)):
            return None
    elif (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    ):
        # Numbers too large for a timedelta are left as they are by to_duration.
        return f"is {_duration_text(value)}; the limit is {_MAX_TIMEOUT_TEXT} (MAX_TIMEOUT)"
    wanted = "zero or more" if zero else "positive"
    return (
        f"must be a {wanted}, finite duration of at most {_MAX_TIMEOUT_TEXT}: a timedelta or "
        f"seconds (got {shown(value)})"
    )


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlong = 40
for _name in ("maxdict", "maxlist", "maxtuple", "maxset", "maxfrozenset", "maxdeque", "maxarray"):
    setattr(_REPR, _name, 4)


def shown(value: object) -> str:
    """``repr(value)``, cut short: a message never grows with the value it shows."""
    try:
        text = _REPR.repr(value)
    except RecursionError:
        # An object whose own repr walks a deep value (an attrs class holding one).
        return f"<a {type(value).__name__} nested too deep to show>"
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real problem
        return f"<a {type(value).__name__}>"
    return text if len(text) <= 100 else text[:97] + "..."  # noqa: PLR2004 - display width


_CONTAINERS = frozenset({_ATTRS, _SEQUENCE, _MAPPING})
#: Containers told by their exact type; an empty one is skipped where it is met.
_PLAIN_CONTAINERS = frozenset({tuple, list, dict, FrozenDict})
#: Types that hold no string, skipped where they are met.
_LEAF_TYPES = frozenset({type(None), bool, int, float, timedelta})


def measure(value: object) -> int | None:  # noqa: C901, PLR0911, PLR0912, PLR0915 - flat on purpose
    """The UTF-8 bytes of every string (and bytes) inside ``value``, or ``None`` for a limit broken.

    A limit is broken by a string or bytes over ``MAX_VALUE_BYTES``, a NUL in a string, or
    nesting deeper than ``MAX_NESTING``. This is the quick answer for the common, valid
    declaration; ``limit_problems`` explains a ``None``.
    """
    # Hot (every action's provider): the common containers are told by their exact type, an
    # attrs object's fields are read by one attrgetter, strings are measured where they are met
    # and empty containers and leaf types are never pushed.
    total = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    pop, push = pending.pop, pending.append
    while pending:
        item, depth = pop()
        cls: type = type(item)
        children: Iterable[Any]
        if cls is tuple or cls is list:
            children = item
        elif cls is FrozenDict or cls is dict:
            children = (*item, *item.values())
        elif (fields := _fields_of(cls)) is not None:
            children = fields(item)
        else:
            kind = _kind(cls)
            if kind == _SEQUENCE:
                children = item
            elif kind == _MAPPING:
                children = (*item, *item.values())
            elif kind == _STRING:
                size = utf8_size(item)
                if size > MAX_VALUE_BYTES or "\x00" in item:
                    return None
                total += size
                continue
            else:
                if cls is bytes or cls is bytearray:
                    if len(item) > MAX_VALUE_BYTES:
                        return None
                    total += len(item)
                continue
        if depth > MAX_NESTING:
            return None
        depth += 1
        for child in children:
            child_type = type(child)
            if child_type is str:
                size = len(child) if child.isascii() else utf8_size(child)
                if size > MAX_VALUE_BYTES or "\x00" in child:
                    return None
                total += size
            elif child_type in _LEAF_TYPES:
                continue
            elif child_type is tuple or child_type is list:
                # A list of strings (commands, arguments) is read here, not pushed.
                if not child:
                    continue
                if depth > MAX_NESTING:
                    return None
                for grandchild in child:
                    if type(grandchild) is str:
                        size = len(grandchild) if grandchild.isascii() else utf8_size(grandchild)
                        if size > MAX_VALUE_BYTES or "\x00" in grandchild:
                            return None
                        total += size
                    elif type(grandchild) not in _LEAF_TYPES:
                        push((grandchild, depth + 1))
            elif child_type in _PLAIN_CONTAINERS and not child:
                continue
            else:
                push((child, depth))
    return total


@functools.lru_cache(maxsize=512)
def _fields_of(cls: type) -> Callable[[Any], tuple[Any, ...]] | None:
    """The values of an attrs class's fields, as a tuple, in one C call (``None``: not attrs)."""
    if _kind(cls) != _ATTRS:
        return None
    names = _field_names(cls)
    if len(names) == 1:
        (name,) = names
        return lambda item: (getattr(item, name),)
    if not names:
        return lambda _item: ()
    return operator.attrgetter(*names)


def limit_problems(value: object, parts: tuple[str, ...]) -> tuple[list[tuple[str, str]], int]:
    """Every limit ``value`` breaks, as (field, message) pairs, and the bytes it holds.

    ``parts`` is the path of ``value`` (``("provider",)``); fields are rendered from it like
    ``provider.env['X']``. A value nested too deep is named by its first two steps and not walked
    further, so a list that holds itself is reported once.
    """
    found: list[tuple[str, str]] = []
    total = 0
    too_deep: set[tuple[str, ...]] = set()
    for path, item, depth in _walk(value, parts):
        cls: type = type(item)
        if depth > MAX_NESTING and _kind(cls) in _CONTAINERS:
            where = path[: len(parts) + 2]
            if where not in too_deep:
                too_deep.add(where)
                found.append((render_path(where), NESTING_PROBLEM))
            continue
        if isinstance(item, str):
            size = utf8_size(item)
            total += size
            if size > MAX_VALUE_BYTES:
                found.append((render_path(path), size_problem(size)))
            if "\x00" in item:
                found.append((render_path(path), nul_problem(item)))
        elif isinstance(item, bytes | bytearray):
            total += len(item)
            if len(item) > MAX_VALUE_BYTES:
                found.append((render_path(path), size_problem(len(item))))
    return found, total


_Step = tuple[tuple[str, ...], Any, int]


def _walk(value: object, parts: tuple[str, ...]) -> Iterator[_Step]:
    """(path, item, depth) for ``value`` and everything inside it, depth first, no recursion.

    A container deeper than ``MAX_NESTING`` is yielded but not opened.
    """
    pending: list[_Step] = [(parts, value, 0)]
    while pending:
        path, item, depth = pending.pop()
        yield path, item, depth
        if depth > MAX_NESTING:
            continue
        cls: type = type(item)
        kind = _kind(cls)
        children: list[_Step] = []
        if kind == _ATTRS:
            children = [
                ((*path, "." + name), getattr(item, name), depth + 1) for name in _field_names(cls)
            ]
        elif kind == _SEQUENCE:
            children = [
                ((*path, f"[{index}]"), child, depth + 1) for index, child in enumerate(item)
            ]
        elif kind == _MAPPING:
            for key, child in item.items():
                children.append(((*path, " (a key)"), key, depth + 1))
                step = f"[{key!r}]" if isinstance(key, str) and len(key) <= _SHOWN_KEY else "[...]"
                children.append(((*path, step), child, depth + 1))
        # Reversed onto the stack, so that problems come out in declaration order.
        pending.extend(reversed(children))
