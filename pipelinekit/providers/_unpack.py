"""Unpacking an archive safely (``ArchiveSource``): every member checked before any is written.

Members with an absolute path or ``..``, links (symbolic or hard) out of the folder, device
files and pipes, and archives past their size or member limits are refused, naming the member.
So are archives that do not describe one tree: a name twice, a name both a file and a folder,
a member inside a file or a link of the archive (written, it would go through the link), a
hard link to no file before it. Tar members also go through the standard library's ``data``
filter (PEP 706).

What is checked only as it is written (a zip member's CRC, the bytes that really come out, the
disk) can still fail midway: members are unpacked into a private staging folder and moved into
the artifact only once all of them are written, and the staging folder is removed on any
failure or cancellation, so a refused archive leaves nothing in the artifact.

Loaded only by an ``ArchiveSource`` that runs: ``tarfile`` and ``zipfile`` (with bz2 and lzma)
are not imported with pipelinekit.
"""

from __future__ import annotations

import lzma
import os
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import attrs

from pipelinekit.providers._files import remove_tree

__all__ = ["Checkpoint", "Limits", "Refused", "unpack"]

#: Called before each member is written: raises to stop unpacking (a cancellation).
Checkpoint = Callable[[], None]


class Refused(Exception):  # noqa: N818 - internal: becomes the action's ActionFailed
    """A member that must not be extracted (its name, and why)."""

    def __init__(self, member: str, why: str) -> None:
        super().__init__(member, why)
        self.member = member
        self.why = why


def _relative_parts(name: str, strip: int, *, member: str) -> tuple[str, ...] | None:
    """The path parts where member ``name`` goes, ``strip_components`` removed.

    ``None`` when nothing is left (the stripped top folders themselves). Absolute names and
    ``..`` are refused, never quietly rewritten: an archive that has them is not what it says.
    """
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise Refused(member, "has an absolute path")
    parts = tuple(part for part in name.replace("\\", "/").split("/") if part not in {"", "."})
    if ".." in parts:
        raise Refused(member, "climbs out of the folder with '..'")
    if len(parts) <= strip:
        return None
    return parts[strip:]


_FILE, _FOLDER, _LINK = "file", "folder", "link"

#: What reading a damaged or cut short compressed tar raises (gzip, bz2, xz).
_DAMAGED = (tarfile.ReadError, tarfile.CompressionError, EOFError, zlib.error, lzma.LZMAError)


class _Tree:
    """The kind of every path the archive makes, so a clash is refused before any write."""

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}

    def add(self, member: str, parts: tuple[str, ...], kind: str) -> None:
        """Record ``parts`` as a ``kind``; refuse a clash with what the archive made before."""
        for depth in range(1, len(parts)):
            above = "/".join(parts[:depth])
            known = self.kinds.setdefault(above, _FOLDER)
            if known == _FILE:
                raise Refused(member, f"is inside {above!r}, which is a file of the archive")
            if known == _LINK:
                why = f"is inside {above!r}, which is a link: nothing is written through a link"
                raise Refused(member, why)
        name = "/".join(parts)
        before = self.kinds.get(name)
        if before is None or before == kind == _FOLDER:  # a folder listed twice is one folder
            self.kinds[name] = kind
            return
        # Refused, never "the last one wins" (zip and tar alike): a release's archive names
        # each file once, and a file after a link of its name would be written through it.
        if before != kind:
            raise Refused(member, f"is both a {before} and a {kind} in the archive")
        raise Refused(member, "appears twice in the archive")

    def is_file(self, parts: tuple[str, ...]) -> bool:
        """Whether ``parts`` is a file already in the archive (what a hard link may name)."""
        return self.kinds.get("/".join(parts)) == _FILE


@attrs.frozen
class Limits:
    """How much an archive may unpack: bytes in all, and members."""

    max_bytes: int
    max_members: int

    def count(self, members: int, total: int, member: str) -> None:
        """Refuse ``member`` when it makes ``members`` or ``total`` bytes too many."""
        if members > self.max_members:
            raise Refused(member, f"is one member more than max_members={self.max_members} allows")
        if total > self.max_bytes:
            raise Refused(
                member,
                f"takes the uncompressed size past max_bytes={self.max_bytes}",
            )


def _nothing() -> None:
    """No cancellation to look for (``unpack`` called outside a worker thread)."""


def _tar_members(
    archive: tarfile.TarFile, staging: Path, strip: int, limits: Limits, checkpoint: Checkpoint
) -> list[tarfile.TarInfo]:
    """Every member checked and renamed (``strip``), before anything is written."""
    checked: list[tarfile.TarInfo] = []
    tree = _Tree()
    total = 0
    last = ""
    try:
        for count, member in enumerate(archive, start=1):
            checkpoint()
            last = member.name
            total += member.size if member.isreg() else 0
            limits.count(count, total, member.name)
            renamed = _tar_renamed(member, strip)
            if renamed is None:
                continue
            parts = tuple(renamed.name.split("/"))
            if renamed.islnk() and not tree.is_file(tuple(renamed.linkname.split("/"))):
                why = f"is a hard link to {member.linkname!r}, which is no file before it"
                raise Refused(member.name, f"{why} in the archive")
            try:
                # The standard library's "data" filter (PEP 706) is the backstop: links pointing
                # out of the folder, device files and pipes, odd modes.
                filtered = tarfile.data_filter(renamed, str(staging))
            except tarfile.FilterError as error:
                raise Refused(member.name, _filter_reason(error)) from None
            kind = _FOLDER if renamed.isdir() else _LINK if renamed.issym() else _FILE
            tree.add(member.name, parts, kind)
            checked.append(filtered)
    except _DAMAGED as error:
        raise _damaged(last, error) from None
    return checked


def _damaged(last: str, error: BaseException) -> Refused:
    if not last:
        return Refused("", f"is cut short or damaged before its first member ({error})")
    return Refused(last, f"is cut short or damaged where it ends ({error})")


def _tar_renamed(member: tarfile.TarInfo, strip: int) -> tarfile.TarInfo | None:
    parts = _relative_parts(member.name, strip, member=member.name)
    if parts is None:
        return None
    changes: dict[str, str] = {"name": "/".join(parts)}
    if member.islnk():  # a hard link names another member: stripped and checked as one
        linked = _relative_parts(member.linkname, strip, member=member.name)
        if linked is None:
            raise Refused(member.name, f"is a hard link to {member.linkname!r}, outside")
        changes["linkname"] = "/".join(linked)
    return member.replace(**changes, deep=False)  # type: ignore[arg-type]


def _filter_reason(error: tarfile.FilterError) -> str:
    reasons: tuple[tuple[type[tarfile.FilterError], str], ...] = (
        (tarfile.AbsoluteLinkError, "is a link to an absolute path"),
        (tarfile.LinkOutsideDestinationError, "is a link pointing out of the folder"),
        (tarfile.OutsideDestinationError, "would be written out of the folder"),
        (tarfile.SpecialFileError, "is a device file or a pipe"),
        (tarfile.AbsolutePathError, "has an absolute path"),
    )
    for kind, reason in reasons:
        if isinstance(error, kind):
            return reason
    return str(error)


def _extract_tar(
    source: Path, staging: Path, strip: int, limits: Limits, checkpoint: Checkpoint
) -> None:
    try:
        archive = tarfile.open(source, "r:*")  # noqa: SIM115 - closed below
    except (EOFError, zlib.error, lzma.LZMAError) as error:  # compressed, then cut short
        raise _damaged("", error) from None
    except tarfile.TarError:
        # Its error lists every compression tried, over several lines: one says enough.
        raise Refused("", "is not a tar or zip archive (.tar, .tar.gz, .bz2, .xz, .zip)") from None
    with archive:
        members = _tar_members(archive, staging, strip, limits, checkpoint)
        current = [""]

        def already_checked(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
            checkpoint()
            current[0] = member.name
            # Checked again as it is written: a link extracted earlier may change where a
            # later member would land.
            try:
                return tarfile.data_filter(member, path)
            except tarfile.FilterError as error:
                raise Refused(member.name, _filter_reason(error)) from None

        # Every member checked above; the filter checks each again as it is written.
        try:
            archive.extractall(staging, members=members, filter=already_checked)  # noqa: S202
        except _DAMAGED as error:
            raise _damaged(current[0], error) from None
        except (OSError, KeyError) as error:  # the disk, or what the checks above missed
            raise Refused(current[0], f"could not be written ({_reason(error)})") from None


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return f"{type(error).__name__}: {error}"


def _zip_link_target(link: str, name: str, target: Path, member: str) -> str:
    if link.startswith(("/", "\\")):
        raise Refused(member, "is a link to an absolute path")
    pointed = os.path.normpath(target / Path(name).parent / link)
    if pointed != str(target) and not pointed.startswith(str(target) + os.sep):
        raise Refused(member, "is a link pointing out of the folder")
    return link


def _zip_plan(
    archive: zipfile.ZipFile, staging: Path, strip: int, limits: Limits
) -> list[tuple[zipfile.ZipInfo, str, int]]:
    """Every member checked (name, kind, link target, limits): (member, path, kind)."""
    planned: list[tuple[zipfile.ZipInfo, str, int]] = []
    tree = _Tree()
    total = 0
    for count, info in enumerate(archive.infolist(), start=1):
        total += info.file_size
        limits.count(count, total, info.filename)
        parts = _relative_parts(info.filename, strip, member=info.filename)
        if parts is None:
            continue
        name = "/".join(parts)
        # The kind of file is in the high bits where a Unix zip put one; none means a file.
        kind = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0  # noqa: PLR2004 - Unix
        if info.is_dir():
            kind = stat.S_IFDIR
        elif kind == stat.S_IFLNK:
            _zip_link_target(_zip_read(archive, info).decode(), name, staging, info.filename)
        elif kind not in {0, stat.S_IFREG}:
            raise Refused(info.filename, "is a device file or a pipe")
        kinds = {stat.S_IFDIR: _FOLDER, stat.S_IFLNK: _LINK}
        tree.add(info.filename, parts, kinds.get(kind, _FILE))
        planned.append((info, name, kind or stat.S_IFREG))
    return planned


def _zip_read(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise Refused(info.filename, f"is damaged ({error})") from None


def _extract_zip(
    source: Path, staging: Path, strip: int, limits: Limits, checkpoint: Checkpoint
) -> None:
    try:
        opened = zipfile.ZipFile(source)
    except zipfile.BadZipFile as error:
        raise Refused("", f"is a damaged zip archive ({error})") from None
    with opened as archive:
        planned = _zip_plan(archive, staging, strip, limits)
        real_target = os.path.realpath(staging)
        written = 0
        for info, name, kind in planned:
            checkpoint()
            path = staging / name
            try:
                if kind == stat.S_IFDIR:
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                # Its folder's real path, links followed: a link unpacked earlier must not have
                # made it lead out of the folder.
                folder = os.path.realpath(path.parent)
                if folder != real_target and not folder.startswith(real_target + os.sep):
                    raise Refused(info.filename, "would be written out of the folder")
                if kind == stat.S_IFLNK:
                    link = _zip_read(archive, info).decode()
                    path.symlink_to(_zip_link_target(link, name, staging, info.filename))
                    continue
                written = _zip_write(archive, info, path, written, limits)
            except OSError as error:  # the disk, or what the checks above missed
                raise Refused(info.filename, f"could not be written ({_reason(error)})") from None
            if (info.external_attr >> 16) & 0o111:
                path.chmod(0o755)


def _zip_write(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, written: int, limits: Limits
) -> int:
    """Write member ``info`` to ``path``; the bytes written so far, with its."""
    # Bytes counted as they come out, not as the header says: the header may lie.
    try:
        with archive.open(info) as reading, path.open("xb") as writing:
            for block in iter(lambda: reading.read(1 << 20), b""):
                written += len(block)
                limits.count(0, written, info.filename)
                writing.write(block)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise Refused(info.filename, f"is damaged ({error})") from None
    return written


def unpack(
    archive: Path,
    target: Path,
    strip: int,
    limits: Limits,
    *,
    staging: Path,
    checkpoint: Checkpoint = _nothing,
) -> None:
    """Unpack the zip or tar ``archive`` into ``target``; ``Refused`` names what may not go.

    Members are written in a new folder inside ``staging`` (on ``target``'s file system: the
    action's work folder), moved into ``target`` once all are written; that folder is removed
    whatever happens. ``checkpoint`` is called before each member: it raises to stop (anyio's
    ``from_thread.check_cancelled`` in a worker thread).
    """
    folder = Path(tempfile.mkdtemp(prefix=".pk-unpack-", dir=staging))
    moved: list[Path] = []
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, folder, strip, limits, checkpoint)
        else:
            _extract_tar(archive, folder, strip, limits, checkpoint)
        checkpoint()
        with os.scandir(folder) as unpacked:
            names = [entry.name for entry in unpacked]
        for name in names:
            # A rename: the folder is on the same file system, each move is one system call.
            os.rename(folder / name, target / name)  # noqa: PTH104
            moved.append(target / name)
    except BaseException:
        # A move that failed midway (the disk) must not leave part of the archive.
        for path in moved:
            if path.is_dir() and not path.is_symlink():
                remove_tree(path)
            else:
                path.unlink()
        raise
    finally:
        remove_tree(folder)
