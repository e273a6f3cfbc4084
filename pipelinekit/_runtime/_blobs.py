"""The cache folder: every file kept once, by its content; folders kept as trees of those files.

``<store>/cache/blobs/ab/abcd…`` holds one read-only file per distinct content (its SHA-256;
``…-x`` for an executable one), ``trees/<id>.json`` what a kept folder was: each file's blob,
each symlink's target, each folder. Keeping a folder hard-links its files into ``blobs/`` (a
copy only across file systems), so a cached action's outputs or a 100 MB venv cost their bytes
once, whatever the number of executions. Restoring links (or, where the file system can,
clones copy-on-write) every file back: no byte is copied.

**Safety.** A blob shares its inode with every restored link. Read-only modes stop a tool that
writes in place, but not root nor a tool that chmods first; and a write can keep the size and
set the mtime back. What no write can avoid is moving the inode's change time (ctime), which
no call sets back. So nothing trusts a blob blindly: each tree records its blobs' size and
mtime, and ``trees/<id>.checked`` the ctime each blob had when this tree last checked or
linked it. A restore ``stat``s every blob and hashes again any whose size, mtime or ctime
moved (a link or an unlink elsewhere moves the ctime too: that costs a hash, once); a blob
whose bytes are no longer its name is deleted (the restore is then a miss, and the action
runs). The ctimes are taken again after the restore linked its files (a link moves them).
After an action ran on restored links, its blobs are ``stat``ed again: one whose size or mtime
moved is evicted at once, one whose ctime alone moved is hashed and evicted if its bytes
changed. ``writable=True`` (private copies, cloned where possible) is for tools known to
write their cache files in place. What this cannot see: a write through another link in the
instant between a restore's link and its ``stat`` (the two ctimes are then one), and, on
kernels older than Linux 6.13 (coarse timestamps), a write in the same clock tick (a few
milliseconds) as that ``stat``.

**The working folder.** A cache path is resolved inside an action's working folder without
following links: ``symlinked_parent`` finds a folder on the way that is a symbolic link, and the
caller neither saves nor restores that path (a save would make the files it points at read-only
links into the cache; a restore would replace them).

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
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import attrs

from pipelinekit._runtime._clone import SUPPORTED, clone
from pipelinekit.providers._files import feed, remove_tree

__all__ = ["CacheFolder", "Kept", "Linked", "Unpacked", "clone_supported", "symlinked_parent"]

#: A blob a restore linked: its path, and its size, mtime and ctime once the restore was done.
Linked = tuple[str, int, int, int]

#: Trees and blobs this young are never swept: a save in another process may not have
#: recorded its entry yet.
_GRACE_SECONDS = 3600.0


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
    #: The blobs linked, with the size, mtime and ctime they had (checked after the action).
    linked: tuple[Linked, ...] = ()


class CacheBroken(Exception):  # noqa: N818 - internal: a restore that must become a miss
    """A tree or blob is gone or its bytes changed: the entry cannot be restored."""


class _Mention:
    """Whether some bytes occur in what it is fed, block by block (a ``feed`` sink)."""

    def __init__(self, mention: bytes) -> None:
        self.mention = mention
        self.found = False
        self._tail = b""

    def update(self, block: bytes) -> None:
        if self.mention and not self.found:
            window = self._tail + block
            self.found = self.mention in window
            keep = len(self.mention) - 1
            self._tail = window[-keep:] if keep else b""


def _hash_file(path: str, mention: bytes | None) -> tuple[str, bool]:
    """SHA-256 of a file, and whether ``mention`` occurs in its bytes."""
    digest = hashlib.sha256()
    if not mention:
        feed(path, digest)
        return digest.hexdigest(), False
    seen = _Mention(mention)
    feed(path, digest, seen)
    return digest.hexdigest(), seen.found


def _walk(folder: str, prefix: str = "") -> Iterator[tuple[str, os.DirEntry[str]]]:
    with os.scandir(folder) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        relative = prefix + entry.name
        yield relative, entry
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path, relative + "/")


def symlinked_parent(root: Path, relative: str) -> str | None:
    """The first folder on the way from ``root`` to ``relative`` that is a symbolic link.

    ``relative`` itself may be a link (it is kept as one); ``None`` when no folder before it is.
    """
    parts = relative.split("/")
    current = str(root)
    for index, part in enumerate(parts[:-1]):
        current = f"{current}/{part}"
        if Path(current).is_symlink():
            return "/".join(parts[: index + 1])
    return None


def _digest_of(blob: str) -> str:
    """The SHA-256 a blob's name says it holds."""
    return os.path.basename(blob).removesuffix("-x")  # noqa: PTH119


def _clone(source: str, target: str) -> bool:
    """A copy-on-write clone of ``source`` at ``target``; ``False`` (nothing left) where none."""
    if not SUPPORTED:
        return False
    with open(source, "rb") as src, open(target, "wb") as dst:  # noqa: PTH123
        try:
            if clone(src.fileno(), dst.fileno()):
                return True
        except OSError:
            dst.close()
            os.unlink(target)  # noqa: PTH108
            raise
    os.unlink(target)  # noqa: PTH108
    return False


def clone_supported(folder: Path) -> bool:
    """Whether the file system of ``folder`` clones files copy-on-write."""
    probe = folder / f".clone-probe-{uuid.uuid4().hex}"
    probe.write_bytes(b"x")
    try:
        cloned = _clone(str(probe), str(probe) + "-2")
    except OSError:
        return False
    finally:
        probe.unlink()
    if cloned:
        Path(str(probe) + "-2").unlink()
    return cloned


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
        else:
            # Young again: a prune between this keep and the entry's save (which points at
            # this tree) would otherwise sweep a tree as old as its first keep.
            os.utime(target)
        # Every blob of the tree was hashed just now (as the file linked to it, or itself).
        self._note_checked(tree, {self._blob_of(record) for record in files.values()})
        return Kept(tree, size, len(files))

    def _blob_of(self, record: list[object]) -> str:
        return self.blob(str(record[0]), executable=bool(record[1]))

    def _seen(self, tree: str) -> dict[str, int]:
        """The ctime each blob of ``tree`` had when it was last checked or linked."""
        try:
            seen: object = json.loads((self.trees / f"{tree}.checked").read_text())
        except (OSError, ValueError):
            return {}
        return (
            {str(k): v for k, v in seen.items() if isinstance(v, int)}
            if isinstance(seen, dict)
            else {}
        )

    def _note_checked(self, tree: str, blobs: Iterable[str]) -> dict[str, int]:
        """Record the ctimes ``blobs`` have now, as checked (see the module's **Safety**)."""
        seen = {}
        for blob in blobs:
            with contextlib.suppress(OSError):
                seen[os.path.basename(blob)] = os.lstat(blob).st_ctime_ns  # noqa: PTH119
        self.tmp.mkdir(parents=True, exist_ok=True)
        temporary = self.tmp / f"{tree}.checked.{uuid.uuid4().hex}"
        temporary.write_text(json.dumps(seen, separators=(",", ":")))
        temporary.replace(self.trees / f"{tree}.checked")
        return seen

    def _keep_file(
        self, path: str, needle: bytes | None, relative: str
    ) -> tuple[list[object], bool]:
        before = os.lstat(path)
        executable = bool(before.st_mode & stat.S_IXUSR)
        digest, found = _hash_file(path, None if relative.endswith(".pyc") else needle)
        blob = self.blob(digest, executable=executable)
        try:
            existing = os.lstat(blob)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(blob), exist_ok=True)  # noqa: PTH103, PTH120
            self._ingest(path, blob, digest, before, executable=executable)
        else:
            if not os.path.samestat(existing, before):
                self._share(path, blob, digest, before, executable=executable)
        status = os.lstat(blob)
        return [digest, executable, status.st_size, status.st_mtime_ns], found

    def _share(
        self, path: str, blob: str, digest: str, before: os.stat_result, *, executable: bool
    ) -> None:
        """Replace ``path`` by a link to ``blob``, which holds its bytes: they are kept once.

        The blob is hashed first: a name is trusted only with its bytes, and a damaged blob
        gives way to ``path``. Where no link can be made here, ``path`` stays a file of its own.
        """
        if _hash_file(blob, None)[0] != digest:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(blob)  # noqa: PTH108 - damaged: never linked to again
            self._ingest(path, blob, digest, before, executable=executable)
            return
        mode = _mode(executable, writable=False)
        if stat.S_IMODE(os.lstat(blob).st_mode) != mode:
            os.chmod(blob, mode)  # noqa: PTH101
        self._link_over(path, blob, before)

    @staticmethod
    def _link_over(path: str, blob: str, before: os.stat_result) -> None:
        """Replace ``path`` (unchanged since ``before``) by a link to ``blob``, if one can be."""
        temporary = f"{os.path.dirname(path)}/.pk-share-{uuid.uuid4().hex}"  # noqa: PTH120
        try:
            os.link(blob, temporary)
        except OSError as error:
            if error.errno not in {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES}:
                raise
            return
        now = os.lstat(path)
        if (now.st_size, now.st_mtime_ns, now.st_ctime_ns) != (
            before.st_size,
            before.st_mtime_ns,
            before.st_ctime_ns,
        ):
            os.unlink(temporary)  # noqa: PTH108
            msg = f"{path} changed while it was being cached"
            raise OSError(errno.EAGAIN, msg)
        os.replace(temporary, path)  # noqa: PTH105 - atomic: readers see one file or the other

    def _ingest(
        self, path: str, blob: str, digest: str, before: os.stat_result, *, executable: bool
    ) -> None:
        """Link (across file systems: copy) ``path`` to ``blob``, read-only.

        A file with other names (a tool's own cache hard-links its files into a venv) is
        copied instead, and then replaced by a link to the copy: its inode, which a name
        outside the folder shares, is never made read-only nor kept as a blob.
        """
        mode = 0o555 if executable else 0o444
        if before.st_nlink > 1:
            self._ingest_copy(path, blob, digest, mode)
            self._link_over(path, blob, before)
            return
        try:
            os.chmod(path, mode)  # noqa: PTH101 - the same inode as the blob-to-be
            os.link(path, blob)
        except FileExistsError:
            return  # kept by someone else meanwhile, with the same bytes
        except OSError as error:
            if error.errno not in {errno.EXDEV, errno.EPERM, errno.EMLINK}:
                raise
            self._ingest_copy(path, blob, digest, mode)
            return
        after = os.lstat(blob)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            os.unlink(blob)  # noqa: PTH108 - written while it was hashed: not these bytes
            msg = f"{path} changed while it was being cached"
            raise OSError(errno.EAGAIN, msg)

    def _ingest_copy(self, path: str, blob: str, digest: str, mode: int) -> None:
        """Make ``blob`` a read-only copy of ``path``, checked against ``digest``."""
        temporary = f"{self.tmp}/{uuid.uuid4().hex}"
        try:
            shutil.copyfile(path, temporary)
            if _hash_file(temporary, None)[0] != digest:
                msg = f"{path} changed while it was being cached"
                raise OSError(errno.EAGAIN, msg)
            os.chmod(temporary, mode)  # noqa: PTH101
            with contextlib.suppress(FileExistsError):
                os.link(temporary, blob)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)  # noqa: PTH108

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
            blobs = self._checked(files, self._seen(tree))
        except CacheBroken:
            return None
        try:
            return self._unpack(tree, document, blobs, target, writable=writable, moved=moved)
        except OSError:
            # A blob swept meanwhile (a concurrent `cache prune`), a full disk...: no folder
            # is left half restored (the caller counts it a miss and the action runs).
            with contextlib.suppress(OSError):
                _clear(target)
            raise

    def _unpack(
        self,
        tree: str,
        document: dict[str, object],
        blobs: list[tuple[str, list[object]]],
        target: Path,
        *,
        writable: bool,
        moved: tuple[str, str] | None,
    ) -> Unpacked:
        """Make ``target`` from ``document``'s checked ``blobs`` (see ``unpack``)."""
        files: dict[str, list[object]] = document["files"]  # type: ignore[assignment]
        _clear(target)
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
        linked: dict[str, tuple[int, int]] = {}
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
                linked[blob] = (int(record[2]), int(record[3]))  # type: ignore[call-overload]
            if method != "link":
                os.chmod(destination, _mode(executable, writable=writable))  # noqa: PTH101
        size = sum(int(record[2]) for record in files.values())  # type: ignore[call-overload]
        method = max(methods, key=lambda name: methods[name]) if methods else "link"
        # After every link (each moved its blob's ctime): what the action's end compares with.
        seen = self._note_checked(tree, {blob for blob, _ in blobs})
        after = tuple(
            (blob, size_, mtime, seen.get(os.path.basename(blob), -1))  # noqa: PTH119
            for blob, (size_, mtime) in linked.items()
        )
        return Unpacked(len(files), size, written, method, after)

    def _checked(
        self, files: dict[str, list[object]], seen: dict[str, int]
    ) -> list[tuple[str, list[object]]]:
        """Each file's blob, after checking it is still what was kept (else ``CacheBroken``).

        ``seen`` is the ctime of each blob when it was last checked: a blob whose ctime moved
        since (a write, even one that kept the size and set the mtime back; or a link or an
        unlink elsewhere) is hashed again, once per tree until it moves again.
        """
        checked = []
        hashed: set[str] = set()
        for record in files.values():
            digest, executable, size, mtime = record
            blob = self.blob(str(digest), executable=bool(executable))
            try:
                status = os.lstat(blob)
            except OSError as error:
                raise CacheBroken(blob) from error
            mode = _mode(bool(executable), writable=False)
            moved = (status.st_size, status.st_mtime_ns) != (size, mtime)
            if blob not in hashed and (
                moved
                or status.st_ctime_ns != seen.get(os.path.basename(blob))  # noqa: PTH119
                or stat.S_IMODE(status.st_mode) != mode
            ):
                # Its bytes decide.
                if _hash_file(blob, None)[0] != digest:
                    with contextlib.suppress(OSError):
                        os.unlink(blob)  # noqa: PTH108 - never restored again
                    raise CacheBroken(blob)
                hashed.add(blob)
            if stat.S_IMODE(status.st_mode) != mode:
                os.chmod(blob, mode)  # noqa: PTH101
            if moved:
                record[2], record[3] = status.st_size, status.st_mtime_ns
            checked.append((blob, record))
        return checked

    def _place(self, blob: str, destination: str, *, writable: bool) -> str:
        if self._clones is not False:
            self._clones = _clone(blob, destination)
            if self._clones:
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

    def written_in_place(self, linked: Iterable[Linked]) -> list[str]:
        """Blobs among ``linked`` written since they were restored; they are evicted.

        A size or mtime that moved evicts at once; a ctime alone that moved (an unlink, a link
        elsewhere, or a write that set the mtime back) hashes the blob, evicted if its bytes
        are no longer its name.
        """
        evicted = []
        for blob, size, mtime, ctime in dict.fromkeys(linked):
            try:
                status = os.lstat(blob)
            except OSError:
                continue
            if (status.st_size, status.st_mtime_ns) == (size, mtime) and (
                status.st_ctime_ns == ctime or _hash_file(blob, None)[0] == _digest_of(blob)
            ):
                continue
            with contextlib.suppress(OSError):
                os.unlink(blob)  # noqa: PTH108
            evicted.append(blob)
        return evicted

    # -- sweeping -------------------------------------------------------------------------------

    def sweep(
        self,
        keep: set[str],
        *,
        dry_run: bool = False,
        checkpoint: Callable[[], None] = lambda: None,
    ) -> tuple[int, int]:
        """Delete trees not in ``keep`` and blobs no kept tree uses; return (files, bytes).

        What is younger than an hour stays: another process may be saving it right now.
        ``checkpoint`` is called before each entry: it raises to stop (anyio's
        ``from_thread.check_cancelled`` in a worker thread), leaving what is not swept yet.
        """
        now = time.time()
        removed = freed = 0
        used: set[str] = set()
        if self.trees.is_dir():
            for path in self.trees.glob("*.json"):
                checkpoint()
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
        self._forget_checked(dry_run=dry_run)
        if self.blobs.is_dir():
            for folder in self.blobs.iterdir():
                for path in folder.iterdir():
                    checkpoint()
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

    def _forget_checked(self, *, dry_run: bool) -> None:
        """Delete the ctimes noted of trees that are gone."""
        for path in self.trees.glob("*.checked"):
            if not dry_run and not path.with_suffix(".json").exists():
                path.unlink(missing_ok=True)

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


def _clear(target: Path) -> None:
    """Remove what a failed restore left at ``target``."""
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        remove_tree(target)
