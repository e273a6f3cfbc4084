"""The cache folder: every file kept once, by its content; folders kept as trees of those files.

``<store>/cache/blobs/ab/abcd…`` holds one read-only file per distinct content (its SHA-256;
``…-x`` for an executable one), ``trees/<id>.json`` what a kept folder was: each file's blob,
each symlink's target, each folder. Keeping a folder hard-links its files into ``blobs/`` (a
copy only across file systems), so a cached action's outputs or a 100 MB venv cost their bytes
once, whatever the number of executions. Restoring links (or, where the file system can,
clones copy-on-write) every file back: no byte is copied.

**Safety.** A blob shares its inode with every restored link. Read-only modes stop a tool that
writes in place, but not root nor a tool that chmods first. So nothing trusts a blob blindly:
each tree records its blobs' size and mtime, which any write in place changes; a restore
``stat``s every blob and hashes again any that differs, and a blob whose bytes are no longer its
name is deleted (the restore is then a miss, and the action runs). After an action ran on
restored links, its blobs are ``stat``ed again and any written one is evicted at once. So a
corrupted blob is never restored. ``writable=True`` (private copies, cloned where possible)
is for tools known to write their cache files in place.

Everything here is blocking file work: call it from a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import stat
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import attrs

__all__ = ["CacheFolder", "Kept", "Unpacked", "clone_supported"]

_BLOCK = 1 << 20
#: Trees and blobs this young are never swept: a save in another process may not have
#: recorded its entry yet.
_GRACE_SECONDS = 3600.0
#: Linux's FICLONE ioctl: a copy-on-write clone of a whole file (btrfs, xfs, bcachefs...).
_FICLONE = 0x40049409
_NOT_SUPPORTED = {errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.ENOSYS}


@attrs.frozen
class Kept:
    """A folder put into the cache: its tree, bytes and files."""

    tree: str
    size: int
    files: int


@attrs.frozen
class Unpacked:
    """What a restore did: files, their bytes, bytes actually written, and how."""

    files: int
    size: int
    #: Bytes written (rewritten files, copies): 0 when everything was linked or cloned.
    written: int
    #: ``"link"``, ``"clone"`` or ``"copy"`` (how most files came back).
    method: str
    #: The blobs linked, with the size and mtime they had (checked after the action).
    linked: tuple[tuple[str, int, int], ...] = ()


class CacheBroken(Exception):  # noqa: N818 - internal: a restore that must become a miss
    """A tree or blob is gone or its bytes changed: the entry cannot be restored."""


def _hash_file(path: str, mention: bytes | None) -> tuple[str, bool]:
    """SHA-256 of a file, and whether ``mention`` occurs in its bytes."""
    digest = hashlib.sha256()
    found = False
    tail = b""
    with open(path, "rb") as handle:  # noqa: PTH123 - str paths throughout, for speed
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
            if mention and not found:
                window = tail + block
                found = mention in window
                tail = window[-(len(mention) - 1) :] if len(mention) > 1 else b""
    return digest.hexdigest(), found


def _walk(folder: str, prefix: str = "") -> Iterator[tuple[str, os.DirEntry[str]]]:
    with os.scandir(folder) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        relative = prefix + entry.name
        yield relative, entry
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path, relative + "/")


def _clone(source: str, target: str) -> None:
    """A copy-on-write clone of ``source`` at ``target`` (``OSError`` where unsupported)."""
    if sys.platform != "linux":
        raise OSError(errno.EOPNOTSUPP, "no clones here")
    import fcntl  # noqa: PLC0415 - Linux only

    with open(source, "rb") as src, open(target, "wb") as dst:  # noqa: PTH123
        try:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
        except OSError:
            dst.close()
            os.unlink(target)  # noqa: PTH108
            raise


def clone_supported(folder: Path) -> bool:
    """Whether the file system of ``folder`` clones files copy-on-write."""
    probe = folder / f".clone-probe-{uuid.uuid4().hex}"
    probe.write_bytes(b"x")
    try:
        _clone(str(probe), str(probe) + "-2")
    except OSError:
        return False
    else:
        Path(str(probe) + "-2").unlink()
        return True
    finally:
        probe.unlink()


class CacheFolder:
    """The content-addressed cache under ``root`` (``<store>/cache``)."""

    def __init__(self, root: Path) -> None:
        """Use ``root`` (made when first written to)."""
        self.root = root
        self.blobs = root / "blobs"
        self.trees = root / "trees"
        self.tmp = root / "tmp"
        self._clones: bool | None = None

    # -- keeping ------------------------------------------------------------------------------

    def blob(self, digest: str, *, executable: bool) -> str:
        """The path of a blob."""
        return f"{self.blobs}/{digest[:2]}/{digest}{'-x' if executable else ''}"

    def keep(self, folder: Path, *, mention: str | None = None) -> Kept | None:
        """Put ``folder`` (or one file) into the cache; ``None`` if it does not exist.

        ``mention`` is the absolute folder the files were made in: files holding it (but
        ``.pyc`` files, whose paths Python fixes when it loads them) are noted, and a restore
        elsewhere rewrites it in them (a venv's scripts and ``pyvenv.cfg``).
        """
        if not folder.exists() and not folder.is_symlink():
            return None
        self.tmp.mkdir(parents=True, exist_ok=True)
        needle = mention.encode() if mention else None
        files: dict[str, list[object]] = {}
        links: dict[str, str] = {}
        dirs: list[str] = []
        mentions: list[str] = []
        size = 0
        if folder.is_symlink() or not folder.is_dir():
            listing: Iterable[tuple[str, str, str]] = [("", str(folder), _kind(folder))]
        else:
            listing = (
                (relative, entry.path, _entry_kind(entry)) for relative, entry in _walk(str(folder))
            )
        for relative, path, kind in listing:
            if kind == "dir":
                dirs.append(relative)
            elif kind == "link":
                links[relative] = os.readlink(path)  # noqa: PTH115
            elif kind == "file":
                record, found = self._keep_file(path, needle, relative)
                files[relative] = record
                size += int(record[2])  # type: ignore[call-overload]
                if found:
                    mentions.append(relative)
        document = {
            "files": files,
            "links": links,
            "dirs": dirs,
            "mentions": mentions,
            "root": mention or "",
            "single": not folder.is_dir() or folder.is_symlink(),
        }
        text = json.dumps(document, sort_keys=True, separators=(",", ":"))
        tree = hashlib.sha256(text.encode()).hexdigest()
        target = self.trees / f"{tree}.json"
        if not target.exists():
            self.trees.mkdir(parents=True, exist_ok=True)
            temporary = self.tmp / f"{tree}.{uuid.uuid4().hex}"
            temporary.write_text(text)
            temporary.chmod(0o444)
            temporary.replace(target)
        return Kept(tree, size, len(files))

    def _keep_file(
        self, path: str, needle: bytes | None, relative: str
    ) -> tuple[list[object], bool]:
        before = os.lstat(path)
        executable = bool(before.st_mode & stat.S_IXUSR)
        digest, found = _hash_file(path, None if relative.endswith(".pyc") else needle)
        blob = self.blob(digest, executable=executable)
        if not os.path.lexists(blob):
            os.makedirs(os.path.dirname(blob), exist_ok=True)  # noqa: PTH103, PTH120
            self._ingest(path, blob, before, executable=executable)
        status = os.lstat(blob)
        return [digest, executable, status.st_size, status.st_mtime_ns], found

    def _ingest(self, path: str, blob: str, before: os.stat_result, *, executable: bool) -> None:
        """Link (across file systems: copy) ``path`` to ``blob``, read-only."""
        mode = 0o555 if executable else 0o444
        try:
            os.chmod(path, mode)  # noqa: PTH101 - the same inode as the blob-to-be
            os.link(path, blob)
        except FileExistsError:
            return  # kept by someone else meanwhile, with the same bytes
        except OSError as error:
            if error.errno not in {errno.EXDEV, errno.EPERM, errno.EMLINK}:
                raise
            temporary = f"{self.tmp}/{uuid.uuid4().hex}"
            shutil.copyfile(path, temporary)
            os.chmod(temporary, mode)  # noqa: PTH101
            with contextlib.suppress(FileExistsError):
                os.link(temporary, blob)
            os.unlink(temporary)  # noqa: PTH108
            return
        after = os.lstat(blob)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            os.unlink(blob)  # noqa: PTH108 - written while it was hashed: not these bytes
            msg = f"{path} changed while it was being cached"
            raise OSError(errno.EAGAIN, msg)

    # -- restoring ------------------------------------------------------------------------------

    def tree(self, tree: str) -> dict[str, object] | None:
        """A tree's document, or ``None`` if it is gone or unreadable."""
        try:
            document: dict[str, object] = json.loads((self.trees / f"{tree}.json").read_text())
        except (OSError, ValueError):
            return None
        return document

    def unpack(
        self,
        tree: str,
        target: Path,
        *,
        writable: bool = False,
        moved: tuple[str, str] | None = None,
    ) -> Unpacked | None:
        """Restore a tree at ``target`` (replacing what is there); ``None`` if it cannot be.

        ``moved`` is ``(old, new)``: the folder the files were kept from and the one they are
        restored to, rewritten in the files that mention it.
        """
        document = self.tree(tree)
        if document is None:
            return None
        files: dict[str, list[object]] = document["files"]  # type: ignore[assignment]
        try:
            blobs = self._checked(files)
        except CacheBroken:
            return None
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            _remove_tree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        single = bool(document.get("single"))
        if not single:
            target.mkdir()
            for relative in document["dirs"]:  # type: ignore[attr-defined]
                os.mkdir(f"{target}/{relative}")  # noqa: PTH102
        old, new = moved if moved is not None and moved[0] != moved[1] else ("", "")
        _symlinks(document["links"], target, single=single, old=old, new=new)  # type: ignore[arg-type]
        mentions = set(document["mentions"]) if old else set()  # type: ignore[call-overload]
        written = 0
        methods: dict[str, int] = {}
        linked: list[tuple[str, int, int]] = []
        for relative, (blob, record) in zip(files, blobs, strict=True):
            destination = str(target) if single else f"{target}/{relative}"
            executable = bool(record[1])
            if relative in mentions:
                written += _rewrite(blob, destination, old.encode(), new.encode())
                os.chmod(destination, _mode(executable, writable=writable))  # noqa: PTH101
                methods["copy"] = methods.get("copy", 0) + 1
                continue
            method = self._place(blob, destination, writable=writable)
            methods[method] = methods.get(method, 0) + 1
            if method == "copy":
                written += int(record[2])  # type: ignore[call-overload]
            elif method == "link":
                linked.append((blob, int(record[2]), int(record[3])))  # type: ignore[call-overload]
            if method != "link":
                os.chmod(destination, _mode(executable, writable=writable))  # noqa: PTH101
        size = sum(int(record[2]) for record in files.values())  # type: ignore[call-overload]
        method = max(methods, key=lambda name: methods[name]) if methods else "link"
        return Unpacked(len(files), size, written, method, tuple(linked))

    def _checked(self, files: dict[str, list[object]]) -> list[tuple[str, list[object]]]:
        """Each file's blob, after checking it is still what was kept (else ``CacheBroken``)."""
        checked = []
        for record in files.values():
            digest, executable, size, mtime = record
            blob = self.blob(str(digest), executable=bool(executable))
            try:
                status = os.lstat(blob)
            except OSError as error:
                raise CacheBroken(blob) from error
            if stat.S_IMODE(status.st_mode) != _mode(bool(executable), writable=False):
                os.chmod(blob, _mode(bool(executable), writable=False))  # noqa: PTH101
            if (status.st_size, status.st_mtime_ns) != (size, mtime):
                # A write in place (or a touch): its bytes decide.
                if _hash_file(blob, None)[0] != digest:
                    with contextlib.suppress(OSError):
                        os.unlink(blob)  # noqa: PTH108 - never restored again
                    raise CacheBroken(blob)
                record[2], record[3] = status.st_size, status.st_mtime_ns
            checked.append((blob, record))
        return checked

    def _place(self, blob: str, destination: str, *, writable: bool) -> str:
        if self._clones is not False:
            try:
                _clone(blob, destination)
            except OSError as error:
                if error.errno not in _NOT_SUPPORTED:
                    raise
                self._clones = False
            else:
                self._clones = True
                return "clone"
        if not writable:
            try:
                os.link(blob, destination)
            except OSError as error:
                if error.errno not in {errno.EXDEV, errno.EPERM, errno.EMLINK}:
                    raise
            else:
                return "link"
        shutil.copyfile(blob, destination)
        return "copy"

    def written_in_place(self, linked: Iterable[tuple[str, int, int]]) -> list[str]:
        """Blobs among ``linked`` written since they were restored; they are evicted."""
        evicted = []
        for blob, size, mtime in linked:
            try:
                status = os.lstat(blob)
            except OSError:
                continue
            if (status.st_size, status.st_mtime_ns) != (size, mtime):
                with contextlib.suppress(OSError):
                    os.unlink(blob)  # noqa: PTH108
                evicted.append(blob)
        return evicted

    # -- sweeping -------------------------------------------------------------------------------

    def sweep(self, keep: set[str], *, dry_run: bool = False) -> tuple[int, int]:
        """Delete trees not in ``keep`` and blobs no kept tree uses; return (files, bytes).

        What is younger than an hour stays: another process may be saving it right now.
        """
        now = time.time()
        removed = freed = 0
        used: set[str] = set()
        if self.trees.is_dir():
            for path in self.trees.glob("*.json"):
                tree = path.name.removesuffix(".json")
                if tree in keep or now - path.lstat().st_mtime < _GRACE_SECONDS:
                    document = self.tree(tree)
                    if document is not None:
                        for digest, executable, *_ in document["files"].values():  # type: ignore[attr-defined]
                            used.add(self.blob(str(digest), executable=bool(executable)))
                    continue
                removed += 1
                freed += path.lstat().st_size
                if not dry_run:
                    path.unlink()
        if self.blobs.is_dir():
            for folder in self.blobs.iterdir():
                for path in folder.iterdir():
                    if str(path) in used:
                        continue
                    status = path.lstat()
                    if now - status.st_ctime < _GRACE_SECONDS:
                        continue
                    removed += 1
                    # Its bytes come back only when the last link (an execution's) goes too.
                    freed += status.st_size if status.st_nlink == 1 else 0
                    if not dry_run:
                        path.unlink()
        return removed, freed

    def size(self) -> int:
        """Bytes the blobs hold."""
        total = 0
        if self.blobs.is_dir():
            for folder in self.blobs.iterdir():
                total += sum(path.lstat().st_size for path in folder.iterdir())
        return total


def _symlinks(links: dict[str, str], target: Path, *, single: bool, old: str, new: str) -> None:
    """Make a tree's symlinks; one into the folder it was kept from points into the new one."""
    for relative, link in links.items():
        destination = target if single else target / relative
        moved = new + link[len(old) :] if old and link.startswith(old) else link
        destination.symlink_to(moved)


def _kind(path: Path) -> str:
    if path.is_symlink():
        return "link"
    return "dir" if path.is_dir() else "file"


def _entry_kind(entry: os.DirEntry[str]) -> str:
    if entry.is_symlink():
        return "link"
    if entry.is_dir(follow_symlinks=False):
        return "dir"
    return "file" if entry.is_file(follow_symlinks=False) else "other"


def _mode(executable: bool, *, writable: bool) -> int:  # noqa: FBT001
    return (0o755 if executable else 0o644) if writable else (0o555 if executable else 0o444)


def _rewrite(blob: str, destination: str, old: bytes, new: bytes) -> int:
    """Write ``blob`` to ``destination`` with ``old`` replaced by ``new``; return the bytes.

    A binary file is rewritten only when the two are as long (its offsets stay right).
    """
    data = Path(blob).read_bytes()
    if b"\0" not in data or len(old) == len(new):
        data = data.replace(old, new)
    Path(destination).write_bytes(data)
    return len(data)


def _remove_tree(path: Path) -> None:
    """Remove a restored folder (its folders are writable; read-only files go with them)."""
    shutil.rmtree(path)
