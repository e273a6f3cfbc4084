"""``#{Namespace.Name}`` references: finding them, checking their shape, resolving them.

Resolution is one pass over the original text, so a resolved value that itself contains ``#{``
is never evaluated a second time.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any

import attrs

__all__ = [
    "RESERVED_NAMESPACES",
    "MalformedReference",
    "Reference",
    "collect_strings",
    "find_references",
    "iter_strings",
    "render_path",
    "resolve",
    "well_formed_references",
]

#: Namespaces that are not action namespaces.
RESERVED_NAMESPACES = frozenset({"variables", "codepipeline", "pipeline"})
#: Keys the run-metadata namespaces provide.
RUN_METADATA = {
    "codepipeline": frozenset({"PipelineExecutionId"}),
    "pipeline": frozenset({"execution_id", "name"}),
}

_WELL_FORMED = re.compile(r"#\{([A-Za-z0-9@_\-]+)\.([A-Za-z0-9@_\-]+)\}")


@attrs.frozen
class Reference:
    """A well-formed reference such as ``#{Build.Version}``."""

    namespace: str
    name: str

    @property
    def text(self) -> str:
        """The reference as written."""
        return f"#{{{self.namespace}.{self.name}}}"


@attrs.frozen
class MalformedReference:
    """Text that starts a reference but is not a well-formed one, with the reason."""

    text: str
    reason: str


def find_references(text: str) -> Iterator[Reference | MalformedReference]:
    """Every reference in ``text``, in order; malformed ones say what is wrong."""
    start = text.find("#{")
    while start != -1:
        match = _WELL_FORMED.match(text, start)
        if match:
            yield Reference(match[1], match[2])
            start = text.find("#{", match.end())
            continue
        end = text.find("}", start)
        nested = text.find("#{", start + 2)
        if end == -1 or (nested != -1 and nested < end):
            fragment = text[start : (nested if nested != -1 else len(text))][:40]
            yield MalformedReference(fragment, "is not closed with '}'")
            start = nested
            continue
        fragment = text[start : end + 1]
        body = fragment[2:-1]
        if not body:
            reason = "is empty; write '#{Namespace.Name}'"
        elif "." not in body:
            reason = "needs a namespace and a name separated by '.', e.g. '#{Build.Version}'"
        else:
            reason = (
                "is not '#{Namespace.Name}' with a namespace of letters, digits, '@', '_', '-' "
                "and a name of the same characters"
            )
        yield MalformedReference(fragment, reason)
        start = text.find("#{", end + 1)


def well_formed_references(text: str) -> list[tuple[str, str]] | None:
    """``(namespace, name)`` of every reference in ``text`` if all are well formed, else ``None``.

    The fast path for validation; ``find_references`` explains what is wrong.
    """
    found: list[tuple[str, str]] = _WELL_FORMED.findall(text)
    return found if text.count("#{") == len(found) else None


def resolve_value(value: Any, lookup: Callable[[Reference], str]) -> Any:  # noqa: ANN401, PLR0911 - any declaration, one return per shape
    """``value`` with references resolved in every string inside it.

    Walks attrs objects, tuples, lists and mappings, rebuilding only what changed; everything
    else is returned as it is.
    """
    cls: type = type(value)
    kind = _kind(cls)
    if kind == _STRING:
        return resolve(value, lookup)
    if kind == _ATTRS:
        changes = {}
        for field in attrs.fields(cls):
            if not field.init:
                continue
            current = getattr(value, field.name)
            resolved = resolve_value(current, lookup)
            if resolved is not current:
                changes[field.alias or field.name] = resolved
        return attrs.evolve(value, **changes) if changes else value
    if kind == _SEQUENCE:
        items = [resolve_value(item, lookup) for item in value]
        if any(new is not old for new, old in zip(items, value, strict=True)):
            return type(value)(items)
        return value
    if kind == _MAPPING:
        mapping = {key: resolve_value(item, lookup) for key, item in value.items()}
        if any(mapping[key] is not item for key, item in value.items()):
            return type(value)(mapping)
        return value
    return value


def resolve(text: str, lookup: Callable[[Reference], str]) -> str:
    """Replace every well-formed reference in ``text`` with ``lookup(reference)``, in one pass."""
    if "#{" not in text:
        return text
    return _WELL_FORMED.sub(lambda m: lookup(Reference(m[1], m[2])), text)


_LEAF, _STRING, _ATTRS, _SEQUENCE, _MAPPING = range(5)


@functools.lru_cache(maxsize=512)
def _kind(cls: type) -> int:
    """How to walk a value of type ``cls``, decided once per type."""
    if issubclass(cls, str):
        return _STRING
    if attrs.has(cls):
        return _ATTRS
    if issubclass(cls, tuple | list):
        return _SEQUENCE
    if issubclass(cls, Mapping):
        return _MAPPING
    return _LEAF


@functools.lru_cache(maxsize=512)
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(field.name for field in attrs.fields(cls))


def iter_strings(value: Any, containing: str = "") -> Iterator[tuple[str, str]]:  # noqa: ANN401 - walks any declaration
    """Every string inside an attrs object, tuple, list or mapping, with its path.

    Paths read like ``commands[0]`` or ``env['NAME']``. With ``containing``, only the strings
    that contain it. This is how references are found in providers: any string field of an attrs
    provider may hold ``#{...}`` references.
    """
    found: list[tuple[tuple[str, ...], str]] = []
    collect_strings(value, containing, (), found)
    for parts, text in found:
        yield render_path(parts), text


#: Types that never hold strings, skipped without a call.
_LEAF_TYPES = frozenset({type(None), bool, int, float, bytes, timedelta})


def collect_strings(  # noqa: PLR0912 - flat on purpose, see below
    value: Any,  # noqa: ANN401 - walks any declaration
    containing: str,
    parts: tuple[str, ...],
    out: list[tuple[tuple[str, ...], str]],
) -> None:
    """Append to ``out`` each string inside ``value`` containing ``containing``, with its path.

    Paths are tuples of parts (``("provider", ".commands", "[0]")``); ``render_path`` makes
    text of them.
    """
    # Hot on large pipelines: exact-type tests first, strings tested where they are met rather
    # than in a call of their own, and paths kept as tuples rendered only for what is yielded.
    cls: type = type(value)
    kind = _kind(cls)
    if kind == _STRING:
        if containing in value:
            out.append((parts, value))
    elif kind == _ATTRS:
        for name in _field_names(cls):
            item = getattr(value, name)
            if type(item) is str:
                if containing in item:
                    out.append(((*parts, "." + name), item))
            elif type(item) not in _LEAF_TYPES and (type(item) is not tuple or item):
                collect_strings(item, containing, (*parts, "." + name), out)
    elif kind == _SEQUENCE:
        for index, item in enumerate(value):
            if type(item) is str:
                if containing in item:
                    out.append(((*parts, f"[{index}]"), item))
            elif type(item) not in _LEAF_TYPES:
                collect_strings(item, containing, (*parts, f"[{index}]"), out)
    elif kind == _MAPPING and value:
        for key, item in value.items():
            collect_strings(item, containing, (*parts, f"[{key!r}]"), out)


def render_path(parts: tuple[str, ...]) -> str:
    """``("provider", ".commands", "[0]")`` -> ``"provider.commands[0]"``."""
    return "".join(parts).removeprefix(".")
