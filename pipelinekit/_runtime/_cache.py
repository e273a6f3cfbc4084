"""Caching: reusing an identical attempt (``cache=True``) and folders kept by key (``pk.Cache``).

An action declared with ``cache=True`` is looked up by a key made of its action type, its
provider and configuration with every reference resolved, and the content hashes of its input
artifacts. An earlier successful attempt with the same key gives its output variables, and its
output artifacts come back from the cache folder (hard links to files kept once by content, see
``_blobs``), instead of running the provider again.

``KeyedCaches`` does what ``actions/cache`` does for an action's ``caches``: fill in each key
(references, platform, file hashes), restore the exact key or else the newest entry matching a
restore key, and after a success save under the key unless it was restored exactly. What it
did is returned as plain dicts, for the action's log, event and result. A cache path is
resolved inside the working folder without following links: one that goes through a symbolic
link (a folder on its way is one) is neither restored nor saved, and says why (``skipped``), so
that no file outside the working folder is ever made read-only, linked, replaced or deleted.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from pipelinekit._compiler._fingerprints import canonical
from pipelinekit._model._cache import MAX_KEY, Cache, parse_template
from pipelinekit._model._variables import Reference, resolve
from pipelinekit.exceptions import ActionFailed
from pipelinekit.providers._sources import content_hash
from pipelinekit.stores._records import CacheEntry, SavedCache

if TYPE_CHECKING:
    from pipelinekit._runtime._blobs import Kept, Linked, Unpacked
    from pipelinekit.stores._protocol import Store

__all__ = [
    "CacheFiles",
    "KeyedCaches",
    "cache_key",
    "copy_outputs",
    "glob_pattern",
    "platform_value",
]


def cache_key(
    action_type: str,
    provider: object,
    configuration: Mapping[str, str],
    inputs: Mapping[str, Path],
) -> str:
    """The key of an attempt (reads the input artifacts: call it from a worker thread).

    The declaration is rendered as stage fingerprints render it (``canonical``): the keys of
    entries saved by earlier releases stay the same.
    """
    document = {
        "action_type": action_type,
        "provider": canonical(provider),
        "configuration": canonical(dict(configuration)),
        "inputs": {name: content_hash(path) for name, path in sorted(inputs.items())},
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def copy_outputs(entry: CacheEntry, outputs: Mapping[str, Path]) -> bool:
    """Copy a cached attempt's artifacts into ``outputs``; ``False`` if any is gone or changed.

    The copies are what is checked against the recorded hashes, after copying: a cached folder
    changed while it was copied cannot slip through between a check and the copy. On ``False``
    the outputs may hold partial copies (the caller empties them). Call it from a worker thread.
    """
    for name in outputs:
        if name not in entry.outputs or not Path(entry.outputs[name][0]).is_dir():
            return False
    for name, target in outputs.items():
        source, digest = entry.outputs[name]
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        if content_hash(target) != digest:
            return False
    return True


# -- keyed caches (pk.Cache) -----------------------------------------------------------------------


def platform_value(name: str) -> str:
    """``{os}``, ``{arch}`` or ``{python}`` of this process."""
    if name == "os":
        return {"darwin": "macos", "win32": "windows"}.get(sys.platform, sys.platform)
    if name == "arch":
        machine = platform.machine().lower()
        return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def glob_pattern(glob: str) -> re.Pattern[str]:
    """A ``/``-separated glob as a regular expression: ``*``, ``?``, ``[...]`` and ``**``."""
    out = []
    index = 0
    while index < len(glob):
        char = glob[index]
        if glob.startswith("**/", index):
            out.append("(?:[^/]*/)*")
            index += 3
            continue
        if glob.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := glob.find("]", index + 2)) != -1:
            body = glob[index + 1 : end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            index = end + 1
            continue
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out) + r"\Z")


def hash_matches(files: Iterable[tuple[str, str, bytes]]) -> str:
    """The digest ``{hash:...}`` stands for: of each ``(artifact, path, file digest)``."""
    whole = hashlib.sha256()
    for artifact, relative, digest in sorted(files):
        whole.update(f"{artifact}/{relative}".encode() + b"\0" + digest + b"\n")
    return whole.hexdigest()[:20]


class CacheFiles(Protocol):
    """What ``KeyedCaches`` needs of a workspace (``Workspace`` extends it)."""

    use_cache: bool

    async def hash_files(
        self, inputs: Mapping[str, Path], globs: Sequence[tuple[str, str]], where: str
    ) -> str:
        """The digest of the input files matching ``globs`` (``ActionFailed`` if none does)."""
        ...

    async def keep(self, folder: Path, *, mention: str | None) -> Kept | None:
        """Put ``folder`` into the cache folder; ``None`` if it does not exist."""
        ...

    async def unpack(
        self, tree: str, target: Path, *, writable: bool, moved: tuple[str, str] | None
    ) -> Unpacked | None:
        """Restore a kept tree at ``target``; ``None`` if it is gone or damaged."""
        ...

    async def written_in_place(self, linked: Sequence[Linked]) -> list[str]:
        """Restored blobs written since they were restored; they are evicted."""
        ...

    async def symlinked_parent(self, workdir: Path, path: str) -> str | None:
        """The first folder on the way from ``workdir`` to ``path`` that is a symbolic link."""
        ...


@attrs.define
class _Restore:
    cache: Cache
    key: str
    outcome: str  # "hit", "partial", "miss" or "off"
    where: str
    restored: SavedCache | None = None
    unpacked: list[Unpacked] = attrs.Factory(list)
    #: Why it was neither restored nor saved (a path through a symbolic link).
    skipped: str | None = None
    #: The file error that made a restore a miss (a blob swept meanwhile by a prune).
    error: str | None = None

    def detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"key": self.key, "outcome": self.outcome}
        if self.skipped is not None:
            detail["skipped"] = self.skipped
        if self.error is not None:
            detail["error"] = self.error
        if self.restored is not None:
            detail["restored_key"] = self.restored.key
            detail["files"] = sum(unpacked.files for unpacked in self.unpacked)
            detail["bytes"] = sum(unpacked.size for unpacked in self.unpacked)
            detail["bytes_written"] = sum(unpacked.written for unpacked in self.unpacked)
        return detail


class KeyedCaches:
    """Restores and saves the ``caches`` of one attempt of an action."""

    def __init__(
        self,
        files: CacheFiles,
        store: Store,
        lookup: Callable[[Reference], str],
        now: Callable[[], datetime],
        *,
        node: str,
        execution_id: str,
        mask: Callable[[str], str] = str,
    ) -> None:
        """Work through ``files`` (the workspace) and ``store``; ``mask`` is the run's masker."""
        self.files = files
        self.store = store
        self.lookup = lookup
        self.now = now
        self.node = node
        self.execution_id = execution_id
        self.mask = mask
        self.done: list[_Restore] = []

    async def render(self, template: str, inputs: Mapping[str, Path], where: str) -> str:
        """A key template filled in: references, platform, file hashes."""
        pieces = []
        for part in parse_template(template)[0]:
            if part.kind == "text":
                pieces.append(resolve(part.value, self.lookup))
            elif part.kind == "platform":
                pieces.append(platform_value(part.value))
            else:
                pieces.append(await self.files.hash_files(inputs, part.globs(), where))
        key = "".join(pieces)
        if self.mask(key) != key:
            msg = (
                f"cache key of {where} holds the value of a secret variable; keys are kept in "
                "the store and shown by `pipelinekit cache list`: build it from a non-secret "
                "variable or a {hash:...} of files instead"
            )
            raise ActionFailed(msg)
        if len(key) > MAX_KEY or any(ord(char) < 32 for char in key) or "," in key:  # noqa: PLR2004 - control characters
            msg = (
                f"cache key {key[:80]!r} of {where} must be at most {MAX_KEY} characters, "
                "without commas or control characters; check the values it is made of"
            )
            raise ActionFailed(msg)
        return key

    async def restore(
        self, caches: Sequence[Cache], inputs: Mapping[str, Path], workdir: Path
    ) -> list[dict[str, Any]]:
        """Restore each cache into ``workdir``; what happened to each, for the log."""
        for index, cache in enumerate(caches):
            where = f"{self.node} caches[{index}]"
            key = await self.render(cache.key, inputs, where)
            prefixes = [await self.render(prefix, inputs, where) for prefix in cache.restore_keys]
            done = _Restore(cache, key, "off", where)
            self.done.append(done)
            if not self.files.use_cache:
                continue
            done.outcome = "miss"
            # Checked here, after the caches before it were restored (one may make the link).
            done.skipped = await self._through_link(cache, workdir, where)
            if done.skipped is not None:
                continue
            candidates: list[tuple[str, SavedCache]] = []
            exact = await self.store.saved_cache(key, cache.paths)
            if exact is not None:
                candidates.append(("hit", exact))
            for prefix in prefixes:
                candidates.extend(
                    ("partial", entry)
                    for entry in await self.store.saved_caches(prefix)
                    if entry.paths == cache.paths and entry.key != key
                )
            for outcome, entry in candidates:
                try:
                    unpacked = await self._unpack(entry, cache, workdir)
                except OSError as error:
                    # Not the entry's fault (a prune sweeping it now, a full disk): kept, and
                    # this attempt runs without it (the folder that failed was removed).
                    done.error = f"{type(error).__name__}: {error}"
                    break
                if unpacked is None:
                    # Damaged or gone: forgotten, so that this run can save the key afresh.
                    await self.store.delete_caches([entry.key])
                    continue
                done.outcome, done.restored, done.unpacked = outcome, entry, unpacked
                await self.store.cache_used(entry.key, self.now())
                break
        return [done.detail() for done in self.done]

    async def _through_link(self, cache: Cache, workdir: Path, where: str) -> str | None:
        """Why ``cache`` must not be restored or saved (a path through a link), or ``None``."""
        for path in cache.paths:
            link = await self.files.symlinked_parent(workdir, path)
            if link is not None:
                return (
                    f"{link!r} is a symbolic link on the way to path {path!r} of {where}: "
                    "the cache is neither restored nor saved, so that nothing outside the "
                    "working folder is changed; keep a folder that is inside the working folder"
                )
        return None

    async def _unpack(
        self, entry: SavedCache, cache: Cache, workdir: Path
    ) -> list[Unpacked] | None:
        unpacked = []
        for path in cache.paths:
            tree = entry.trees.get(path)
            if tree is None:
                continue  # it did not exist when the entry was saved
            one = await self.files.unpack(
                tree,
                workdir / path,
                writable=cache.writable,
                moved=(entry.root, str(workdir)),
            )
            if one is None:
                return None
            unpacked.append(one)
        return unpacked

    async def after(self, workdir: Path, *, succeeded: bool) -> list[dict[str, Any]]:
        """After the action: evict blobs it wrote in place; save on success (not exact hits)."""
        details = []
        for done in self.done:
            detail = done.detail()
            linked = [link for unpacked in done.unpacked for link in unpacked.linked]
            if linked and (evicted := await self.files.written_in_place(linked)):
                await self.store.delete_caches([done.restored.key] if done.restored else [])
                detail["evicted"] = len(evicted)
            if succeeded and done.outcome != "hit" and done.skipped is None:
                done.skipped = await self._through_link(done.cache, workdir, done.where)
                if done.skipped is not None:
                    detail["skipped"] = done.skipped
                    detail["saved"] = False
                else:
                    detail["saved"] = await self._save(done, workdir)
            details.append(detail)
        return details

    async def _save(self, done: _Restore, workdir: Path) -> bool:
        trees: dict[str, str] = {}
        size = files = 0
        for path in done.cache.paths:
            kept = await self.files.keep(workdir / path, mention=str(workdir))
            if kept is not None:
                trees[path] = kept.tree
                size += kept.size
                files += kept.files
        if not trees:
            return False  # nothing there to keep
        now = self.now()
        entry = SavedCache(
            key=done.key,
            paths=done.cache.paths,
            trees=trees,
            size=size,
            files=files,
            created_at=now,
            last_used=now,
            execution_id=self.execution_id,
            node=self.node,
            root=str(workdir),
        )
        return await self.store.save_cache(entry)
