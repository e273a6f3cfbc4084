"""``pk.Cache``: a folder an action keeps between executions under a key, as ``actions/cache``.

The declaration only: what is kept (``paths``, relative to the action's working folder), under
which key, and which older keys may stand in for it (``restore_keys``, prefixes). Keys are
templates: ``#{...}`` references are resolved like the rest of the configuration, and a few
placeholders in single braces are filled in at run time:

- ``{os}``, ``{arch}``, ``{python}``: the platform (``linux``, ``x86_64``, ``3.11``);
- ``{hash:ARTIFACT/GLOB,...}``: a digest of the files matching each glob in an input artifact
  (``**`` crosses folders), as GitHub's ``hashFiles``; a glob matching nothing fails the action.

``{{`` and ``}}`` stand for literal braces. This module parses and checks templates; filling
them in (reading files, the platform) belongs to the runtime.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Literal

import attrs

from pipelinekit._model._frozendict import to_tuple
from pipelinekit._model._limits import shown
from pipelinekit._model._names import ARTIFACT

__all__ = ["PLATFORM_PLACEHOLDERS", "Cache", "Part", "parse_template"]

#: The placeholders that name the platform.
PLATFORM_PLACEHOLDERS = ("os", "arch", "python")

#: The longest key (after it is filled in), as GitHub's.
MAX_KEY = 512
_MAX_RESTORE_KEYS = 10
_TOKEN = re.compile(r"#\{[^}]*\}|\{\{|\}\}|\{([^{}]*)\}|[{}]")
_PLACEHOLDERS = "{os}, {arch}, {python} or {hash:ARTIFACT/GLOB}"


@attrs.frozen
class Part:
    """One piece of a key template: text (with ``#{...}`` left in) or a placeholder."""

    kind: Literal["text", "platform", "hash"]
    #: The text, the platform placeholder's name, or for ``hash`` the globs, comma separated.
    value: str

    def globs(self) -> tuple[tuple[str, str], ...]:
        """A ``hash`` part's ``(artifact, glob)`` pairs."""
        pairs = []
        for item in self.value.split(","):
            artifact, _, glob = item.strip().partition("/")
            pairs.append((artifact, glob))
        return tuple(pairs)


def parse_template(text: str) -> tuple[list[Part], list[str]]:
    """The parts of a key template, and what is wrong with it (empty when nothing is)."""
    parts: list[Part] = []
    problems: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text):
        if match.start() > position:
            parts.append(Part("text", text[position : match.start()]))
        position = match.end()
        token = match[0]
        if token.startswith("#{"):
            parts.append(Part("text", token))  # a reference: resolved with the configuration
        elif token in {"{{", "}}"}:
            parts.append(Part("text", token[0]))
        elif token in {"{", "}"}:
            problems.append(
                f"has an unmatched {token!r} in {text!r}; write {token * 2!r} for a literal brace"
            )
        else:
            body = match[1].strip()
            if body in PLATFORM_PLACEHOLDERS:
                parts.append(Part("platform", body))
            elif body.startswith("hash:"):
                part = Part("hash", body[5:])
                problems.extend(_hash_problems(part, token))
                parts.append(part)
            else:
                problems.append(f"has an unknown placeholder {token!r}; use {_PLACEHOLDERS}")
    if position < len(text):
        parts.append(Part("text", text[position:]))
    return parts, problems


def _hash_problems(part: Part, token: str) -> Iterator[str]:
    if not part.value.strip():
        yield f"{token!r} names no files; write {{hash:ARTIFACT/GLOB}}, e.g. {{hash:src/*.txt}}"
        return
    for artifact, glob in part.globs():
        if ARTIFACT.problem(artifact) is not None or not glob:
            yield (
                f"{token!r}: each glob starts with the input artifact it looks in, "
                f"e.g. {{hash:src/requirements*.txt}} (got {artifact + '/' + glob!r})"
            )
        elif glob.startswith("/") or ".." in PurePosixPath(glob).parts:
            yield f"{token!r}: the glob {glob!r} must stay inside artifact {artifact!r}"


@attrs.frozen
class Cache:
    """A folder kept between executions under a key (``Action(..., caches=[pk.Cache(...)])``).

    Before the action runs, the entry saved under ``key`` is restored into ``paths`` (relative
    to the action's working folder); failing that, the newest entry whose key starts with one of
    ``restore_keys`` (tried in order). After the action succeeds, ``paths`` are saved under
    ``key`` unless that key was restored exactly: entries never change once saved. Restored
    files are read-only hard links into the cache (or copy-on-write clones), which costs no
    copy; ``writable=True`` gives private writable copies instead, for tools that write in
    place (reflinks where the file system has them, so still cheap there).
    """

    key: str
    paths: tuple[str, ...] = attrs.field(converter=to_tuple)
    restore_keys: tuple[str, ...] = attrs.field(default=(), converter=to_tuple, kw_only=True)
    writable: bool = attrs.field(default=False, kw_only=True)

    def problems(self) -> Iterator[tuple[str, str]]:
        """``(field, message)`` for each rule the declaration breaks."""
        key: object = self.key
        if not isinstance(key, str) or not key.strip():
            yield "key", f"must be a non-empty string (got {shown(key)})"
        else:
            for message in parse_template(key)[1]:
                yield "key", f"key {message}"
            if len(key) > MAX_KEY:
                yield "key", f"must be at most {MAX_KEY} characters (got {len(key)})"
        yield from self._paths_problems()
        restore_keys: object = self.restore_keys
        if not isinstance(restore_keys, tuple) or not all(
            isinstance(prefix, str) and prefix for prefix in restore_keys
        ):
            yield (
                "restore_keys",
                f"must be a list of non-empty key prefixes (got {shown(restore_keys)})",
            )
        else:
            if len(restore_keys) > _MAX_RESTORE_KEYS:
                yield "restore_keys", f"at most {_MAX_RESTORE_KEYS} (got {len(restore_keys)})"
            for prefix in restore_keys:
                for message in parse_template(prefix)[1]:
                    yield "restore_keys", f"restore key {message}"
        writable: object = self.writable
        if type(writable) is not bool:
            yield "writable", f"must be True or False (got {shown(writable)})"

    def _paths_problems(self) -> Iterator[tuple[str, str]]:
        paths: object = self.paths
        if not isinstance(paths, tuple) or not paths:
            yield "paths", f"must be a non-empty list of folders or files (got {shown(paths)})"
            return
        for path in paths:
            if not isinstance(path, str) or not path.strip():
                yield "paths", f"each path must be a non-empty string (got {shown(path)})"
                continue
            pure = PurePosixPath(path)
            if pure.is_absolute() or ".." in pure.parts or path.startswith("~"):
                message = (
                    f"{path!r} must be relative to the action's working folder and stay inside "
                    "it (e.g. '.venv')"
                )
                yield "paths", message
            elif pure.parts in {(), (".",)}:
                yield "paths", f"{path!r} is the whole working folder; name what to keep in it"
        normal = [PurePosixPath(p).as_posix() for p in paths if isinstance(p, str)]
        if len(set(normal)) != len(normal):
            yield "paths", f"lists the same path more than once: {shown(list(paths))}"
        for one in normal:
            for other in normal:
                if one != other and other.startswith(one + "/"):
                    yield "paths", f"{other!r} is inside {one!r}; keep only {one!r}"

    def artifacts(self) -> set[str]:
        """The input artifacts its ``{hash:...}`` placeholders look in.

        Only its well-typed templates are read: ``problems()`` names the others.
        """
        found: set[str] = set()
        restore_keys: object = self.restore_keys
        texts: list[object] = [self.key]
        if isinstance(restore_keys, tuple):
            texts.extend(restore_keys)
        for text in texts:
            if not isinstance(text, str):
                continue
            for part in parse_template(text)[0]:
                if part.kind == "hash":
                    found.update(artifact for artifact, _ in part.globs())
        return found
