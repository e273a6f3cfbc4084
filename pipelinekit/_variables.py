"""``#{Namespace.Name}`` references: finding them, checking their shape, resolving them.

Resolution is one pass over the original text, so a resolved value that itself contains ``#{``
is never evaluated a second time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

__all__ = [
    "RESERVED_NAMESPACES",
    "MalformedReference",
    "Reference",
    "find_references",
    "iter_strings",
    "resolve",
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


def resolve(text: str, lookup: Callable[[Reference], str]) -> str:
    """Replace every well-formed reference in ``text`` with ``lookup(reference)``, in one pass."""
    if "#{" not in text:
        return text
    return _WELL_FORMED.sub(lambda m: lookup(Reference(m[1], m[2])), text)


def iter_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:  # noqa: ANN401 - walks any declaration
    """Every string inside an attrs object, tuple or mapping, with its path (``commands[0]``).

    This is how references are found in providers: any string field of an attrs provider may
    hold ``#{...}`` references.
    """
    if isinstance(value, str):
        yield path, value
    elif attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            yield from iter_strings(getattr(value, field.name), _join(path, field.name))
    elif isinstance(value, tuple | list):
        for index, item in enumerate(value):
            yield from iter_strings(item, f"{path}[{index}]")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from iter_strings(item, f"{path}[{key!r}]")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
