"""Two file chores shared by the providers and the runtime: hashing a file, removing a tree.

``feed`` reads a file once in 1 MB blocks into any number of digests (a file's own SHA-256,
an artifact's content hash, a search for a path in its bytes), so every hash of a file's bytes
in pipelinekit is the same loop and gives the same digest. ``remove_tree`` removes a folder an
action or an archive may have left read-only, without ever making a file writable.

Blocking calls: use them from a worker thread.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Protocol

__all__ = ["BLOCK", "Sink", "feed", "remove_tree", "sha256_file"]

#: Bytes read at a time: large enough for few system calls, small enough for any memory.
BLOCK = 1 << 20


class Sink(Protocol):
    """What ``feed`` writes a file's blocks to: a ``hashlib`` digest, or anything like it."""

    def update(self, data: bytes, /) -> None:
        """Take the next block."""


def feed(path: str | os.PathLike[str], *sinks: Sink) -> None:
    """Read the file at ``path`` once, block by block, into every one of ``sinks``."""
    with open(path, "rb") as handle:  # noqa: PTH123 - str paths from os.scandir, for speed
        for block in iter(lambda: handle.read(BLOCK), b""):
            for sink in sinks:
                sink.update(block)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of the file at ``path``, in hex."""
    digest = hashlib.sha256()
    feed(path, digest)
    return digest.hexdigest()


def remove_tree(path: Path) -> None:
    """Remove the folder ``path``, whatever modes were left on its folders.

    A folder that refuses (no write or search permission) is given ``0o700`` and the removal
    tried again. A file's own mode never matters to removing it, and a file is never chmodded:
    it may be a hard link into the cache, whose blob must stay read-only (and keep its
    executable bit). A symbolic link at ``path`` is removed, never followed.
    """

    def make_writable(function: Any, name: str, _info: object) -> None:  # noqa: ANN401 - rmtree's
        Path(name).parent.chmod(0o700)
        if Path(name).is_dir() and not Path(name).is_symlink():
            Path(name).chmod(0o700)
        function(name)

    if path.is_symlink():
        path.unlink()
    elif path.exists():
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=make_writable)
        else:  # pragma: no cover - Python 3.11 only knows onerror
            shutil.rmtree(path, onerror=make_writable)
