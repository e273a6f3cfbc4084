"""Workspaces: where an execution's artifacts, scratch folders and action logs live.

The scheduler never touches the disk itself: it asks its ``Workspace`` to get an attempt's
folders ready, to give it a log file, to seal an action's outputs (read-only, content hashes
for the record, and a manifest to check them by), to verify that input artifacts are still what
was sealed, and to find or restore cached outputs. ``DiskWorkspace`` keeps everything in the
execution's folder; the testing kit injects one that keeps logs and files in memory and touches
no disk, so a fake run and a real one go through the same scheduler with no branch between them.

Every method that reads or writes files runs in a worker thread: the event loop never blocks on
a ``mkdir``, a copy, a ``stat`` or a hash.

**Verified artifacts.** Read-only bits do not protect an artifact: an action may make it
writable again, and root (as CI often runs) ignores them. So a seal also records a manifest:
for each file its ``lstat`` signature (size, mtime, ctime, inode, mode) and the hash of its
bytes. ``InputChecks`` has every consumer's inputs checked against it before the consumer
starts and after it ends: a file whose signature changed is hashed again, and only a change of
bytes, executable bit, symlink target, or a file added or removed counts. The inode's change
time (``ctime``) is what no write can avoid setting and no call can set back; a file whose
ctime is not yet older than the file system's clock (a change in the same clock tick could
leave it equal) is hashed until a check sees the clock move past it, so a write is never
hidden by a coarse timestamp. Before a deploy every byte is hashed anyway (``full``): that
also covers what no manifest sees (bit rot, a file system that keeps no ctime, a clock set
back to the same instant).
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, Self

import anyio
import anyio.lowlevel
import attrs

from pipelinekit._model._secrets import Masker
from pipelinekit._runtime._blobs import CacheFolder, Kept, Linked, Unpacked, symlinked_parent
from pipelinekit._runtime._cache import (
    CacheFiles,
    cache_key,
    copy_outputs,
    glob_pattern,
    hash_matches,
)
from pipelinekit._runtime._private_inputs import make_copies, private_folder
from pipelinekit._thread import WorkerThread
from pipelinekit.exceptions import ActionFailed, ArtifactChanged
from pipelinekit.providers._context import LogFile, MemoryLogFile
from pipelinekit.providers._files import feed, remove_tree
from pipelinekit.stores import CacheEntry

__all__ = [
    "DiskWorkspace",
    "FileSeal",
    "InputChecks",
    "MemoryWorkspace",
    "Seal",
    "Sealed",
    "Workspace",
    "WorkspaceFactory",
    "snapshot",
]

#: What a check returns: for each changed artifact, what changed (``"app.txt: removed"``).
Changes = dict[str, tuple[str, ...]]

#: A check of artifacts this small runs on the engine's thread for small file work.
SMALL_FILES = 64
SMALL_BYTES = 1 << 20

#: What a check says when only the recorded content hash is known (the per-file manifest
#: stays in the memory of the process that sealed the artifact).
HASH_DIFFERS = "its content hash differs from the one recorded when it was sealed"


class Workspace(CacheFiles, Protocol):
    """One execution's folders: artifacts, scratch folders of actions, logs.

    ``root`` is the execution's folder (``RunResult.workdir``); ``logs`` is where log files go
    (recorded with the execution's start, so that logs can be followed while they are
    written); ``artifact(name)`` the folder of an output artifact; ``work`` the root of the
    actions' scratch folders. What keyed caches need of it (``use_cache``, ``hash_files``,
    ``keep``, ``unpack``, ``written_in_place``, ``symlinked_parent``) is ``CacheFiles``'s.
    """

    root: Path
    logs: Path
    work: Path

    def artifact(self, name: str) -> Path:
        """The folder of output artifact ``name``."""
        ...

    def log_file(self, node: str, masker: Masker, header: Callable[[], str]) -> LogFile:
        """The log file of action ``node`` (``"Stage.Action"``), written on first use."""
        ...

    async def prepare(self, node: str, outputs: Mapping[str, Path], *, again: bool) -> None:
        """Make ``outputs`` fresh empty folders; with ``again``, empty the scratch folder too."""
        ...

    async def seal(self, outputs: Mapping[str, Path]) -> dict[str, tuple[str, str]]:
        """Make a succeeded attempt's outputs read-only; return each one's path and hash."""
        ...

    async def verify(
        self, artifacts: Mapping[str, tuple[Path, str]], *, full: bool
    ) -> dict[str, tuple[str, ...]]:
        """What changed in each of ``artifacts`` (name: folder and sealed content hash).

        Only changed artifacts are in the answer. ``full`` hashes every byte instead of
        trusting the manifest of files whose signature did not change.
        """
        ...

    async def cache_key(
        self,
        action_type: str,
        provider: object,
        configuration: Mapping[str, str],
        inputs: Mapping[str, Path],
    ) -> str | None:
        """The cache key of an attempt, or ``None`` where nothing can be cached."""
        ...

    async def restore(self, entry: CacheEntry, outputs: Mapping[str, Path]) -> bool:
        """Bring a cached attempt's outputs into ``outputs``; ``False`` if they are gone.

        An ``OSError`` (a file swept meanwhile) leaves ``outputs`` empty: the caller warns
        and runs the action.
        """
        ...

    async def keep_outputs(self, outputs: Mapping[str, Path]) -> dict[str, Kept]:
        """Put sealed outputs into the cache folder (a ``cache=True`` success)."""
        ...

    async def private_copies(
        self, node: str, inputs: Mapping[str, Path]
    ) -> tuple[dict[str, Path], list[tuple[str, str]]]:
        """Fresh private writable copies of ``inputs`` for action ``node`` (``writable_inputs``).

        Returns each artifact's copy (for the action's context) and what was left out of the
        copies, ``(artifact, path)`` (pipes, sockets, devices: for the action's log).
        """
        ...


# -- seals: what an artifact was when its producer ended ------------------------------------------


@attrs.define(slots=True, eq=False)
class FileSeal:
    """One file (or symlink) of a sealed artifact."""

    #: ``"file"`` or ``"link"``.
    kind: Literal["file", "link"]
    #: SHA-256 of the bytes of a file, or of the target of a link.
    digest: bytes
    executable: bool
    #: ``lstat``'s size, mtime, ctime, inode, device and mode when its bytes were hashed.
    signature: tuple[int, ...]
    #: Whether the file system's clock had moved past its ctime before its bytes were hashed:
    #: then any later write shows in its signature, and a check need not hash it again.
    confirmed: bool


@attrs.define(slots=True, eq=False)
class Seal:
    """A sealed artifact: its content hash and its files' manifest."""

    #: ``content_hash`` of the folder (the hash the store records).
    digest: str
    #: By path relative to the artifact's folder (``/``-separated).
    files: dict[str, FileSeal]
    #: Bytes in its files.
    size: int = 0
    #: Checks of one artifact from several consumers' threads take turns.
    lock: threading.Lock = attrs.field(factory=threading.Lock)


def _signature(status: os.stat_result) -> tuple[int, ...]:
    return (
        status.st_size,
        status.st_mtime_ns,
        status.st_ctime_ns,
        status.st_ino,
        status.st_dev,
        status.st_mode,
    )


def _walk(folder: str, prefix: str = "") -> Iterator[tuple[str, str, bool]]:
    """Files and symlinks below ``folder``: relative path, path, and whether it is a link.

    What ``content_hash`` covers, in its order (by path parts: folders walked depth first,
    names sorted): regular files and symlinks, not folders, never following a link into a
    folder. Plain strings: on 1,000 files pathlib costs more than the system calls.
    """
    with os.scandir(folder) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        relative = prefix + entry.name
        if entry.is_symlink():
            yield relative, entry.path, True
        elif entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path, relative + "/")
        elif entry.is_file(follow_symlinks=False):
            yield relative, entry.path, False


def _file_seal(
    path: str,
    link: bool,  # noqa: FBT001 - internal
    clock: int | None,
    whole: hashlib._Hash | None,
) -> FileSeal:
    """Hash one file (feeding ``whole``, the artifact's content hash, on the way)."""
    status = os.lstat(path)
    if link:
        target = os.readlink(path).encode()  # noqa: PTH115 - a str path, see _walk
        if whole is not None:
            whole.update(b"link:" + target + b"\0")
        return FileSeal(
            "link",
            hashlib.sha256(target).digest(),
            executable=False,
            signature=_signature(status),
            confirmed=clock is not None and clock > status.st_ctime_ns,
        )
    executable = os.access(path, os.X_OK)  # as content_hash tells it
    if whole is not None:
        whole.update(b"x" if executable else b"-")
    digest = hashlib.sha256()
    feed(path, digest, *(() if whole is None else (whole,)))
    if whole is not None:
        whole.update(b"\0")
    return FileSeal(
        "file",
        digest.digest(),
        executable=executable,
        signature=_signature(status),
        confirmed=clock is not None and clock > status.st_ctime_ns,
    )


def snapshot(root: Path, *, clock: int | None) -> Seal:
    """Hash every file of ``root``: its ``content_hash`` and its manifest, in one read.

    ``clock`` is the file system's time, taken before (``None`` when unknown): files whose
    ctime is older are confirmed. Call it from a worker thread.
    """
    whole = hashlib.sha256()
    files: dict[str, FileSeal] = {}
    for relative, path, link in _walk(str(root)):
        whole.update(relative.encode() + b"\0")
        files[relative] = _file_seal(path, link, clock, whole)
    return Seal(whole.hexdigest(), files, sum(entry.signature[0] for entry in files.values()))


def _difference(sealed: FileSeal, now: FileSeal) -> str | None:
    if sealed.kind != now.kind:
        return "replaced by a symlink" if now.kind == "link" else "replaced by a file"
    if sealed.digest != now.digest:
        return "symlink target changed" if now.kind == "link" else "content changed"
    if sealed.executable != now.executable:
        return "executable bit changed"
    return None


def _in_order(changes: list[tuple[str, str]]) -> tuple[str, ...]:
    changes.sort(key=lambda change: change[0].split("/"))
    return tuple(f"{relative}: {what}" for relative, what in changes)


def _check(
    root: Path, seal: Seal, clock: Callable[[], int | None], *, full: bool
) -> tuple[str, ...]:
    """What changed in ``root`` since ``seal``; hold ``seal.lock``.

    A file whose signature is the sealed one, and confirmed, is trusted; any other is hashed.
    An unchanged file hashed after the clock moved past its ctime becomes confirmed. ``clock``
    reads the file system's clock; it is read only when a file is hashed, before its hash.
    """
    changes: list[tuple[str, str]] = []
    present: set[str] = set()
    files = seal.files
    try:
        listing = list(_walk(str(root)))
    except OSError as error:
        return (f"cannot be read ({error.strerror or error})",)
    for relative, path, link in listing:
        present.add(relative)
        sealed = files.get(relative)
        if sealed is None:
            changes.append((relative, "added"))
            continue
        try:
            if not full and sealed.confirmed and _signature(os.lstat(path)) == sealed.signature:
                continue
            now = _file_seal(path, link, clock(), None)
        except FileNotFoundError:
            present.discard(relative)
            continue
        except OSError as error:
            changes.append((relative, f"cannot be read ({error.strerror or error})"))
            continue
        difference = _difference(sealed, now)
        if difference is not None:
            changes.append((relative, difference))
            continue
        # The same bytes: a touch or a chmod. What the file is now is what the manifest keeps.
        sealed.signature = now.signature
        sealed.confirmed = now.confirmed
    if len(present) != len(files) or changes:
        changes.extend((relative, "removed") for relative in files if relative not in present)
    return _in_order(changes)


def _make_read_only(root: Path) -> None:
    # Inputs are the producers' outputs, shared by every consumer: take write bits away so a
    # consumer cannot change what another one reads by accident (root ignores the bits, and an
    # action may give them back: the checks of InputChecks are what detect a change).
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _file_system_now(folder: Path) -> int | None:
    """The file system's clock, as it stamps a change now; ``None`` when it cannot be read.

    Touching a folder of ours sets its ctime to the file system's own time (its clock, its
    granularity: the kernel's coarse tick, a second on some file systems, the server's clock on
    NFS), which is what the ctimes of the artifacts' files are compared with.
    """
    try:
        os.utime(folder)
        return folder.stat().st_ctime_ns
    except OSError:
        return None


class _Clock:
    """The file system's clock, read on first use (a check that hashes nothing never reads it).

    Read once per check, before the first file is hashed: every hash of the check comes after
    it, as confirming a file requires.
    """

    __slots__ = ("_folder", "_read", "_time")

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._read = False
        self._time: int | None = None

    def __call__(self) -> int | None:
        if not self._read:
            self._time = _file_system_now(self._folder)
            self._read = True
        return self._time


class WorkspaceFactory(Protocol):
    """Makes the workspace of an execution from its folder (``Engine(workspaces=...)``)."""

    def __call__(
        self,
        root: Path,
        *,
        files: WorkerThread | None = None,
        cache: CacheFolder | None = None,
        use_cache: bool = True,
    ) -> Workspace:
        """The workspace under ``root``; ``files`` is the thread for small file work.

        ``cache`` is the cache folder shared by executions; ``use_cache=False`` restores none.
        """
        ...


def _matching(listing: Iterable[tuple[str, str]], glob: str) -> list[tuple[str, str]]:
    pattern = glob_pattern(glob)
    return [(relative, path) for relative, path in listing if pattern.match(relative)]


def _no_match(where: str, artifact: str, glob: str, names: Sequence[str]) -> ActionFailed:
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")  # noqa: PLR2004
    msg = (
        f"cache key of {where}: {{hash:{artifact}/{glob}}} matches no file in input artifact "
        f"{artifact!r} ({'it has: ' + shown if names else 'it is empty'}); fix the glob"
    )
    return ActionFailed(msg)


class DiskWorkspace:
    """An execution's folder: ``artifacts/``, ``work/`` and ``logs/`` under ``root``.

    Log writes and work folders go to ``files`` (the engine's thread for small file work);
    copies, hashes, checks and removals of whole folders to anyio's worker threads.
    """

    def __init__(
        self,
        root: Path,
        *,
        files: WorkerThread | None = None,
        cache: CacheFolder | None = None,
        use_cache: bool = True,
    ) -> None:
        """Work under ``root`` (made as needed); keep caches in ``cache`` (``root/cache``)."""
        self.root = root
        self.files = files
        self.cache = cache if cache is not None else CacheFolder(root / "cache")
        self.use_cache = use_cache
        # Absolute: the recorded log paths are read later, from wherever a person runs `logs`.
        self.logs = (root / "logs").absolute()
        self.work = root / "work"
        self.artifacts = root / "artifacts"
        #: The seal of each artifact this workspace sealed or verified by its content hash.
        self.seals: dict[str, Seal] = {}

    def artifact(self, name: str) -> Path:
        """``artifacts/<name>``."""
        return self.artifacts / name

    def log_file(self, node: str, masker: Masker, header: Callable[[], str]) -> LogFile:
        """``logs/<Stage.Action>.log``, appended to by each attempt."""
        return LogFile(self.logs, f"{node}.log", masker, header=header, files=self.files)

    async def prepare(self, node: str, outputs: Mapping[str, Path], *, again: bool) -> None:
        """Fresh output folders (and an empty scratch folder for a later attempt)."""
        for name in outputs:
            self.seals.pop(name, None)  # made again: its old seal says nothing of the new
        if outputs or again:
            await anyio.to_thread.run_sync(
                self._fresh, list(outputs.values()), self.work / node if again else None
            )

    @staticmethod
    def _fresh(outputs: list[Path], workdir: Path | None) -> None:
        for path in outputs:
            remove_tree(path)
            path.mkdir(parents=True)
        if workdir is not None:
            remove_tree(workdir)

    async def seal(self, outputs: Mapping[str, Path]) -> dict[str, tuple[str, str]]:
        """Take the outputs' write bits away, then hash them (one trip to a worker thread)."""
        if not outputs:
            return {}
        return await anyio.to_thread.run_sync(self._seal, outputs)

    def _seal(self, outputs: Mapping[str, Path]) -> dict[str, tuple[str, str]]:
        for path in outputs.values():
            _make_read_only(path)
        # Taken after the chmods (which set every ctime) and before the hashes: a file whose
        # ctime is older than this is confirmed by the hash that follows.
        clock = _file_system_now(self.artifacts)
        hashes: dict[str, tuple[str, str]] = {}
        for name, path in outputs.items():
            seal = self.seals[name] = snapshot(path, clock=clock)
            hashes[name] = (str(path), seal.digest)
        return hashes

    async def verify(
        self, artifacts: Mapping[str, tuple[Path, str]], *, full: bool
    ) -> dict[str, tuple[str, ...]]:
        """Check ``artifacts`` against their seals, in a worker thread (see ``Workspace``).

        An artifact sealed by another process (a resumed or retried execution) is hashed in
        full against the recorded hash; its manifest is kept for the next checks.
        """
        if not artifacts:
            return {}
        if self.files is not None and not full and self._small(artifacts):
            # A few stats, at most a few small files to hash: the trip to the engine's thread
            # for small file work costs a third of one through anyio's pool.
            return await self.files.run(partial(self._verify, artifacts, full))
        return await anyio.to_thread.run_sync(self._verify, artifacts, full)

    def _small(self, artifacts: Mapping[str, tuple[Path, str]]) -> bool:
        total_files = total_size = 0
        for name, (_, digest) in artifacts.items():
            seal = self.seals.get(name)
            if seal is None or seal.digest != digest:
                return False  # hashed in full: not small work
            total_files += len(seal.files)
            total_size += seal.size
        return total_files <= SMALL_FILES and total_size <= SMALL_BYTES

    def _verify(self, artifacts: Mapping[str, tuple[Path, str]], full: bool) -> Changes:  # noqa: FBT001 - a thread's arguments
        clock = _Clock(self.artifacts)
        found: Changes = {}
        for name, (path, digest) in artifacts.items():
            seal = self.seals.get(name)
            if seal is None or seal.digest != digest:
                try:
                    seal = snapshot(path, clock=clock())
                except OSError as error:
                    found[name] = (f"cannot be read ({error.strerror or error})",)
                    continue
                if seal.digest != digest:
                    found[name] = (HASH_DIFFERS,)
                    continue
                self.seals[name] = seal
                continue  # just hashed in full
            with seal.lock:
                changes = _check(path, seal, clock, full=full)
            if changes:
                found[name] = changes
        return found

    async def cache_key(
        self,
        action_type: str,
        provider: object,
        configuration: Mapping[str, str],
        inputs: Mapping[str, Path],
    ) -> str:
        """Hash the action's declaration and its inputs' contents (in a worker thread)."""
        return await anyio.to_thread.run_sync(
            cache_key, action_type, provider, configuration, inputs
        )

    async def restore(self, entry: CacheEntry, outputs: Mapping[str, Path]) -> bool:
        """Copy the cached outputs, if they are still there unchanged."""
        return await anyio.to_thread.run_sync(self._restore, entry, outputs)

    def _restore(self, entry: CacheEntry, outputs: Mapping[str, Path]) -> bool:
        try:
            restored = self._restore_outputs(entry, outputs)
        except OSError:
            # A blob swept meanwhile (a concurrent `cache prune`): no output is left half
            # restored; the caller warns and runs the action.
            self._fresh(list(outputs.values()), None)
            raise
        if restored:
            return True
        self._fresh(list(outputs.values()), None)  # the action runs instead, from empty folders
        return False

    def _restore_outputs(self, entry: CacheEntry, outputs: Mapping[str, Path]) -> bool:
        if entry.trees:
            restored = all(
                name in entry.trees
                and self.cache.unpack(entry.trees[name], path, writable=False, moved=None)
                is not None
                for name, path in outputs.items()
            )
        else:  # kept before the cache folder: the earlier execution's copy
            restored = copy_outputs(entry, outputs)
        return restored

    async def keep_outputs(self, outputs: Mapping[str, Path]) -> dict[str, Kept]:
        """Hard-link sealed outputs into the cache folder: their bytes are kept once."""
        return await anyio.to_thread.run_sync(self._keep_outputs, outputs)

    def _keep_outputs(self, outputs: Mapping[str, Path]) -> dict[str, Kept]:
        kept: dict[str, Kept] = {}
        for name, path in outputs.items():
            one = self.cache.keep(path)
            if one is None:
                continue
            kept[name] = one
            seal = self.seals.get(name)
            if seal is not None:
                # Linking set each file's ctime: the next check hashes it once more, then
                # trusts its signature again (see InputChecks).
                with seal.lock:
                    for relative, file in seal.files.items():
                        try:
                            file.signature = _signature(os.lstat(path / relative))
                        except OSError:
                            continue
                        file.confirmed = False
        return kept

    async def private_copies(
        self, node: str, inputs: Mapping[str, Path]
    ) -> tuple[dict[str, Path], list[tuple[str, str]]]:
        """Copy ``inputs`` beside ``node``'s work folder, cloned where possible (worker thread)."""
        if not inputs:
            return {}, []
        return await anyio.to_thread.run_sync(
            make_copies, node, dict(inputs), private_folder(self.work, node)
        )

    async def hash_files(
        self, inputs: Mapping[str, Path], globs: Sequence[tuple[str, str]], where: str
    ) -> str:
        """Hash the input files matching ``globs`` (in a worker thread)."""
        return await anyio.to_thread.run_sync(self._hash_files, inputs, globs, where)

    @staticmethod
    def _hash_files(
        inputs: Mapping[str, Path], globs: Sequence[tuple[str, str]], where: str
    ) -> str:
        found: dict[tuple[str, str], bytes] = {}
        for artifact, glob in globs:
            listing = [
                (relative, path)
                for relative, path, link in _walk(str(inputs[artifact]))
                if not link
            ]
            matches = _matching(listing, glob)
            if not matches:
                raise _no_match(where, artifact, glob, [relative for relative, _ in listing])
            for relative, path in matches:
                if (artifact, relative) not in found:
                    found[artifact, relative] = _file_seal(path, False, None, None).digest  # noqa: FBT003
        return hash_matches(
            (artifact, relative, digest) for (artifact, relative), digest in found.items()
        )

    async def keep(self, folder: Path, *, mention: str | None) -> Kept | None:
        """Put ``folder`` into the cache folder (in a worker thread)."""
        return await anyio.to_thread.run_sync(partial(self.cache.keep, folder, mention=mention))

    async def unpack(
        self, tree: str, target: Path, *, writable: bool, moved: tuple[str, str] | None
    ) -> Unpacked | None:
        """Restore a kept tree at ``target`` (in a worker thread)."""
        return await anyio.to_thread.run_sync(
            partial(self.cache.unpack, tree, target, writable=writable, moved=moved)
        )

    async def written_in_place(self, linked: Sequence[Linked]) -> list[str]:
        """Evict restored blobs written since they were restored (in a worker thread)."""
        return await anyio.to_thread.run_sync(self.cache.written_in_place, linked)

    async def symlinked_parent(self, workdir: Path, path: str) -> str | None:
        """A symbolic link on the way to ``path`` in ``workdir`` (in a worker thread)."""
        return await anyio.to_thread.run_sync(symlinked_parent, workdir, path)


# -- in memory: the fake's files ----------------------------------------------------------------


def _memory_seal(files: Mapping[str, bytes]) -> Seal:
    """A seal of files kept in memory, hashed as ``content_hash`` hashes the same files."""
    whole = hashlib.sha256()
    sealed: dict[str, FileSeal] = {}
    for relative in sorted(files, key=lambda name: name.split("/")):
        content = files[relative]
        whole.update(relative.encode() + b"\0" + b"-" + content + b"\0")
        sealed[relative] = FileSeal(
            "file", hashlib.sha256(content).digest(), executable=False, signature=(), confirmed=True
        )
    return Seal(whole.hexdigest(), sealed, sum(map(len, files.values())))


class MemoryWorkspace:
    """A workspace that touches no disk: logs stay in memory, outputs are names only.

    For runs whose actions run nothing for real (the fake executor): paths are made up under
    ``root`` and never created, and nothing can be cached. Given ``contents`` (artifact ->
    relative path -> bytes, the files the fake's outcomes write), it seals and verifies them
    as ``DiskWorkspace`` does files, with the same hashes and the same answers; in memory there
    are no permissions or timestamps, so every check compares every byte (it is cheap here).
    """

    def __init__(
        self,
        root: Path,
        *,
        files: WorkerThread | None = None,
        contents: dict[str, dict[str, bytes]] | None = None,
        cache: CacheFolder | None = None,
        use_cache: bool = True,
        copies: set[Path] | None = None,
    ) -> None:
        """Make up paths under ``root`` (``files`` is not needed: nothing is written).

        ``copies`` is filled with the path of every private copy handed out (the fake plays
        a write to one as going nowhere, a write to any other input as changing the artifact).
        """
        del files, cache  # nothing is written, and keyed caches keep no files here
        self.copies = copies if copies is not None else set()
        self.use_cache = use_cache
        self.root = root
        self.logs = root / "logs"
        self.work = root / "work"
        self._artifacts = root / "artifacts"
        self.contents = contents
        #: Every log file handed out, by action.
        self.log_files: dict[str, MemoryLogFile] = {}
        #: The seal of each artifact sealed here.
        self.seals: dict[str, Seal] = {}

    def artifact(self, name: str) -> Path:
        """A path under ``root/artifacts`` that is never made."""
        return self._artifacts / name

    def log_file(self, node: str, masker: Masker, header: Callable[[], str]) -> LogFile:
        """A log kept in memory."""
        log = MemoryLogFile(self.logs, f"{node}.log", masker, header=header)
        self.log_files[node] = log
        return log

    async def prepare(self, node: str, outputs: Mapping[str, Path], *, again: bool) -> None:
        """Empty the outputs' files, as fresh folders would be."""
        del node, again  # no scratch folder in memory
        for name in outputs:
            self.seals.pop(name, None)
            if self.contents is not None:
                self.contents.pop(name, None)

    async def seal(self, outputs: Mapping[str, Path]) -> dict[str, tuple[str, str]]:
        """Hash the outputs' files, if this workspace was given any (else nothing to seal)."""
        if self.contents is None:
            return {}
        hashes: dict[str, tuple[str, str]] = {}
        for name, path in outputs.items():
            seal = self.seals[name] = _memory_seal(self.contents.get(name, {}))
            hashes[name] = (str(path), seal.digest)
        return hashes

    async def verify(
        self,
        artifacts: Mapping[str, tuple[Path, str]],
        *,
        full: bool,  # noqa: ARG002 - every check here is full
    ) -> dict[str, tuple[str, ...]]:
        """Compare the files with their seals, byte for byte (see ``Workspace``)."""
        if self.contents is None:
            return {}
        found: Changes = {}
        for name, (_, digest) in artifacts.items():
            now = _memory_seal(self.contents.get(name, {}))
            seal = self.seals.get(name)
            if seal is None or seal.digest != digest:
                if now.digest != digest:
                    found[name] = (HASH_DIFFERS,)
                continue
            changes: list[tuple[str, str]] = []
            for relative in seal.files.keys() | now.files.keys():
                before, after = seal.files.get(relative), now.files.get(relative)
                if before is None:
                    changes.append((relative, "added"))
                elif after is None:
                    changes.append((relative, "removed"))
                elif (difference := _difference(before, after)) is not None:
                    changes.append((relative, difference))
            if changes:
                found[name] = _in_order(changes)
        return found

    async def cache_key(
        self,
        action_type: str,
        provider: object,
        configuration: Mapping[str, str],
        inputs: Mapping[str, Path],
    ) -> None:
        """No cache: the files are the fake's, not a later run's."""
        del action_type, provider, configuration, inputs  # the protocol's signature

    async def restore(self, entry: CacheEntry, outputs: Mapping[str, Path]) -> bool:  # noqa: ARG002 - the protocol's
        """Nothing to restore."""
        return False

    async def keep_outputs(self, outputs: Mapping[str, Path]) -> dict[str, Kept]:  # noqa: ARG002
        """Nothing is cached (``cache_key`` is ``None``)."""
        return {}

    async def private_copies(
        self, node: str, inputs: Mapping[str, Path]
    ) -> tuple[dict[str, Path], list[tuple[str, str]]]:
        """Paths of copies, made up as the artifacts' are; noted in ``copies``."""
        folder = private_folder(self.work, node)
        made = {name: folder / name for name in inputs}
        self.copies.update(made.values())
        return made, []

    async def hash_files(
        self, inputs: Mapping[str, Path], globs: Sequence[tuple[str, str]], where: str
    ) -> str:
        """Hash the fake's files of the inputs as ``DiskWorkspace`` hashes files on disk."""
        found: dict[tuple[str, str], bytes] = {}
        for artifact, glob in globs:
            files = (self.contents or {}).get(artifact, {})
            names = sorted(files, key=lambda name: name.split("/"))
            matches = _matching(((name, name) for name in names), glob)
            if not matches:
                raise _no_match(where, artifact, glob, names)
            for relative, _ in matches:
                found[artifact, relative] = hashlib.sha256(files[relative]).digest()
        del inputs  # the fake's files are by artifact name
        return hash_matches(
            (artifact, relative, digest) for (artifact, relative), digest in found.items()
        )

    async def keep(self, folder: Path, *, mention: str | None) -> Kept | None:
        """A fake's working folder holds no files: every path is kept, empty."""
        del folder, mention
        return Kept("empty", 0, 0)

    async def unpack(
        self, tree: str, target: Path, *, writable: bool, moved: tuple[str, str] | None
    ) -> Unpacked | None:
        """Nothing to write: the entry's (empty) folders come back at once."""
        del tree, target, writable, moved
        return Unpacked(0, 0, 0, "link")

    async def written_in_place(self, linked: Sequence[Linked]) -> list[str]:
        """No files, nothing written."""
        del linked
        return []

    async def symlinked_parent(self, workdir: Path, path: str) -> str | None:
        """A fake's working folder holds no files, so no link either."""
        del workdir, path
        return None


# -- checking an action's inputs ------------------------------------------------------------------


@attrs.frozen
class Sealed:
    """An input artifact as its producer sealed it."""

    #: The producer's ``"Stage.Action"``.
    producer: str
    path: Path
    #: The content hash on record.
    digest: str


#: How many changed files an error names (``changes`` on the error has them all).
SHOWN = 3

_RULE = "actions must write to their outputs or work folder, never to their inputs"


def _listed(found: Sequence[str]) -> str:
    text = ", ".join(found[:SHOWN])
    if len(found) > SHOWN:
        text += f" and {len(found) - SHOWN} more"
    return text


def _also(found: Changes) -> str:
    """The other changed artifacts, after the first one's message."""
    others = list(found)[1:]
    if not others:
        return ""
    names = ", ".join(map(repr, others))
    return f"; input artifact{'s' if len(others) > 1 else ''} {names} changed too"


class InputChecks:
    """Checks, for one run, that the actions' input artifacts are what their producers sealed.

    Every consumer's inputs are checked when it starts (it fails without running when one
    changed) and when it ends (it fails when one changed while it ran, as it may have read
    changed bytes). Which actions were running on an artifact, and who first saw it changed,
    is kept for the errors.
    """

    def __init__(self, workspace: Workspace) -> None:
        """Check through ``workspace``."""
        self.workspace = workspace
        self._running: dict[str, set[str]] = {}
        self._first_seen: dict[str, str] = {}
        self._forming: dict[tuple[object, ...], _Shared] = {}

    def held(self, node: str, inputs: Mapping[str, Sealed], *, full: bool) -> Holding:
        """``async with checks.held(...) as held``: checked on entry, ``held.ended()`` after.

        Entering raises ``ArtifactChanged`` when an input changed before ``node`` started;
        ``full`` hashes every byte (before a deploy). Leaving forgets that it runs.
        """
        return Holding(self, node, inputs, full=full)

    async def _before(self, node: str, inputs: Mapping[str, Sealed], *, full: bool) -> None:
        found = await self._verify(inputs, full=full)
        if not found:
            return
        name, changes = next(iter(found.items()))
        seen = self._first_seen.get(name)
        message = (
            f"input artifact {name!r} changed after {inputs[name].producer} sealed it, before "
            f"{node} started: {_listed(changes)}"
            + (f" (first seen {seen})" if seen else "")
            + f"; {node} did not run on it ({_RULE})"
            + _also(found)
        )
        raise ArtifactChanged(message, found)

    async def _after(
        self, node: str, inputs: Mapping[str, Sealed], failure: str | None
    ) -> ArtifactChanged | None:
        found = await self._verify(inputs, full=False)
        if not found:
            return None
        name, changes = next(iter(found.items()))
        others = sorted(self._running.get(name, set()) - {node})
        seen = self._first_seen.get(name)
        for changed in found:
            self._first_seen.setdefault(changed, f"when {node} ended")
        suspects = ", ".join([node, *others]) + " or another process"
        message = (
            f"input artifact {name!r} changed while {node} ran: {_listed(changes)} "
            f"({inputs[name].producer} sealed it; {suspects} wrote to it"
            + (f", first seen {seen}" if seen else "")
            + f": {_RULE})"
            + _also(found)
            + (f"; it also failed: {failure}" if failure else "")
        )
        return ArtifactChanged(message, found)

    async def _verify(self, inputs: Mapping[str, Sealed], *, full: bool) -> Changes:
        """Check ``inputs``, sharing one check with the actions that ask at the same moment.

        The actions of a group start together, each asking to check the same inputs: the first
        yields once to the loop before its check goes to a thread, and every request made
        meanwhile shares that check. All of them came before it started looking at a file,
        so its answer is as good as their own would have been.
        """
        paths = {name: (sealed.path, sealed.digest) for name, sealed in inputs.items()}
        key = (full, *sorted((name, str(path), digest) for name, (path, digest) in paths.items()))
        forming = self._forming.get(key)
        if forming is not None:
            await forming.done.wait()
            if forming.found is not None:
                return forming.found
            # The check it joined never finished (its action was cancelled): its own instead.
            return await self.workspace.verify(paths, full=full)
        shared = self._forming[key] = _Shared()
        try:
            try:
                await anyio.lowlevel.checkpoint()
            finally:
                del self._forming[key]  # from here on, a request makes a check of its own
            shared.found = await self.workspace.verify(paths, full=full)
        finally:
            shared.done.set()
        return shared.found


class _Shared:
    """One check that the actions asking before it starts share."""

    __slots__ = ("done", "found")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.found: Changes | None = None


class Holding:
    """An action running on its input artifacts (see ``InputChecks.held``)."""

    def __init__(
        self, checks: InputChecks, node: str, inputs: Mapping[str, Sealed], *, full: bool
    ) -> None:
        """Prepare to check ``inputs`` of ``node``."""
        self._checks = checks
        self._node = node
        self._inputs = inputs
        self._full = full

    async def __aenter__(self) -> Self:
        """Check the inputs before the action starts; note that it runs on them."""
        if self._inputs:
            await self._checks._before(self._node, self._inputs, full=self._full)  # noqa: SLF001 - its partner
            for name in self._inputs:
                self._checks._running.setdefault(name, set()).add(self._node)  # noqa: SLF001
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Forget that the action runs on its inputs."""
        for name in self._inputs:
            self._checks._running.get(name, set()).discard(self._node)  # noqa: SLF001

    async def ended(self, failure: str | None) -> ArtifactChanged | None:
        """Check the inputs after the action ended (``failure``: its error, if it failed)."""
        if not self._inputs:
            return None
        return await self._checks._after(self._node, self._inputs, failure)  # noqa: SLF001
