"""Workspaces: where an execution's artifacts, scratch folders and action logs live.

The scheduler never touches the disk itself: it asks its ``Workspace`` to get an attempt's
folders ready, to give it a log file, to seal an action's outputs (read-only, content hashes
for the record) and to find or restore cached outputs. ``DiskWorkspace`` keeps everything in the
execution's folder; the testing kit injects one that keeps logs in memory and touches no disk,
so a fake run and a real one go through the same scheduler with no branch between them.

Every method that reads or writes files runs in a worker thread: the event loop never blocks on
a ``mkdir``, a copy or a hash.
"""

from __future__ import annotations

import shutil
import stat
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import anyio

from pipelinekit._model._secrets import Masker
from pipelinekit._runtime._cache import cache_key, copy_outputs, hash_outputs
from pipelinekit._thread import WorkerThread
from pipelinekit.providers._context import LogFile, MemoryLogFile
from pipelinekit.stores import CacheEntry

__all__ = ["DiskWorkspace", "MemoryWorkspace", "Workspace", "WorkspaceFactory"]


class Workspace(Protocol):
    """One execution's folders: artifacts, scratch folders of actions, logs.

    ``root`` is the execution's folder (``RunResult.workdir``); ``logs`` is where log files go
    (recorded with the execution's start, so that logs can be followed while they are
    written); ``artifact(name)`` the folder of an output artifact; ``work`` the root of the
    actions' scratch folders.
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
        """Copy a cached attempt's outputs into ``outputs``; ``False`` if they are gone."""
        ...


def _make_read_only(root: Path) -> None:
    # Inputs are the producers' outputs, shared by every consumer: take write bits away so a
    # consumer cannot change what another one reads (root ignores the bits; CI as root relies on
    # the content hashes the store keeps instead).
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _remove_tree(path: Path) -> None:
    def make_writable(function: Any, name: str, _info: object) -> None:  # noqa: ANN401
        Path(name).parent.chmod(0o700)
        Path(name).chmod(0o700)
        function(name)

    if path.exists():
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=make_writable)
        else:  # pragma: no cover - Python 3.11 only knows onerror
            shutil.rmtree(path, onerror=make_writable)


class WorkspaceFactory(Protocol):
    """Makes the workspace of an execution from its folder (``Engine(workspaces=...)``)."""

    def __call__(self, root: Path, *, files: WorkerThread | None = None) -> Workspace:
        """The workspace under ``root``; ``files`` is the thread for small file work."""
        ...


class DiskWorkspace:
    """An execution's folder: ``artifacts/``, ``work/`` and ``logs/`` under ``root``.

    Log writes and work folders go to ``files`` (the engine's thread for small file work);
    copies, hashes and removals of whole folders to anyio's worker threads.
    """

    def __init__(self, root: Path, *, files: WorkerThread | None = None) -> None:
        """Work under ``root`` (made as needed)."""
        self.root = root
        self.files = files
        # Absolute: the recorded log paths are read later, from wherever a person runs `logs`.
        self.logs = (root / "logs").absolute()
        self.work = root / "work"
        self.artifacts = root / "artifacts"

    def artifact(self, name: str) -> Path:
        """``artifacts/<name>``."""
        return self.artifacts / name

    def log_file(self, node: str, masker: Masker, header: Callable[[], str]) -> LogFile:
        """``logs/<Stage.Action>.log``, appended to by each attempt."""
        return LogFile(self.logs, f"{node}.log", masker, header=header, files=self.files)

    async def prepare(self, node: str, outputs: Mapping[str, Path], *, again: bool) -> None:
        """Fresh output folders (and an empty scratch folder for a later attempt)."""
        if outputs or again:
            await anyio.to_thread.run_sync(
                self._fresh, list(outputs.values()), self.work / node if again else None
            )

    @staticmethod
    def _fresh(outputs: list[Path], workdir: Path | None) -> None:
        for path in outputs:
            _remove_tree(path)
            path.mkdir(parents=True)
        if workdir is not None:
            _remove_tree(workdir)

    async def seal(self, outputs: Mapping[str, Path]) -> dict[str, tuple[str, str]]:
        """Hash the outputs, then take their write bits away (one trip to a worker thread)."""
        if not outputs:
            return {}
        return await anyio.to_thread.run_sync(self._seal, outputs)

    @staticmethod
    def _seal(outputs: Mapping[str, Path]) -> dict[str, tuple[str, str]]:
        hashes = hash_outputs(outputs)
        for path in outputs.values():
            _make_read_only(path)
        return hashes

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
        return await anyio.to_thread.run_sync(copy_outputs, entry, outputs)


class MemoryWorkspace:
    """A workspace that touches no disk: logs stay in memory, outputs are names only.

    For runs whose actions run nothing for real (the fake executor): paths are made up under
    ``root`` and never created, nothing is hashed, and nothing can be cached.
    """

    def __init__(self, root: Path, *, files: WorkerThread | None = None) -> None:
        """Make up paths under ``root`` (``files`` is not needed: nothing is written)."""
        del files
        self.root = root
        self.logs = root / "logs"
        self.work = root / "work"
        self._artifacts = root / "artifacts"
        #: Every log file handed out, by action.
        self.log_files: dict[str, MemoryLogFile] = {}

    def artifact(self, name: str) -> Path:
        """A path under ``root/artifacts`` that is never made."""
        return self._artifacts / name

    def log_file(self, node: str, masker: Masker, header: Callable[[], str]) -> LogFile:
        """A log kept in memory."""
        log = MemoryLogFile(self.logs, f"{node}.log", masker, header=header)
        self.log_files[node] = log
        return log

    async def prepare(self, node: str, outputs: Mapping[str, Path], *, again: bool) -> None:
        """Nothing to make."""

    async def seal(self, outputs: Mapping[str, Path]) -> dict[str, tuple[str, str]]:  # noqa: ARG002 - the protocol's
        """Nothing to seal or hash."""
        return {}

    async def cache_key(
        self,
        action_type: str,
        provider: object,
        configuration: Mapping[str, str],
        inputs: Mapping[str, Path],
    ) -> None:
        """No cache: there are no files to hash."""
        del action_type, provider, configuration, inputs  # the protocol's signature

    async def restore(self, entry: CacheEntry, outputs: Mapping[str, Path]) -> bool:  # noqa: ARG002 - the protocol's
        """Nothing to restore."""
        return False
