"""Unpacking an archive safely (``ArchiveSource``): every member checked before any is written.

Members with an absolute path or ``..``, links (symbolic or hard) out of the folder, device
files and pipes, and archives past their size or member limits are refused, naming the member.
Tar members also go through the standard library's ``data`` filter (PEP 706). Loaded only by
an ``ArchiveSource`` that runs: ``tarfile`` and ``zipfile`` (with bz2 and lzma) are not imported
with pipelinekit.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path

import attrs

__all__ = ["Limits", "Refused", "unpack"]


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


def _tar_members(
    archive: tarfile.TarFile, target: Path, strip: int, limits: Limits
) -> list[tarfile.TarInfo]:
    """Every member checked and renamed (``strip``), before anything is written."""
    checked: list[tarfile.TarInfo] = []
    total = 0
    for count, member in enumerate(archive, start=1):
        total += member.size if member.isreg() else 0
        limits.count(count, total, member.name)
        renamed = _tar_renamed(member, strip)
        if renamed is None:
            continue
        try:
            # The standard library's "data" filter (PEP 706) is the backstop: links pointing
            # out of the folder, device files and pipes, odd modes.
            filtered = tarfile.data_filter(renamed, str(target))
        except tarfile.FilterError as error:
            raise Refused(member.name, _filter_reason(error)) from None
        checked.append(filtered)
    return checked


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


def _extract_tar(source: Path, target: Path, strip: int, limits: Limits) -> None:
    try:
        archive = tarfile.open(source, "r:*")  # noqa: SIM115 - closed below
    except tarfile.TarError:
        # Its error lists every compression tried, over several lines: one says enough.
        raise Refused("", "is not a tar or zip archive (.tar, .tar.gz, .bz2, .xz, .zip)") from None
    with archive:
        members = _tar_members(archive, target, strip, limits)

        def already_checked(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
            # Checked again as it is written: a link extracted earlier may change where a
            # later member would land.
            try:
                return tarfile.data_filter(member, path)
            except tarfile.FilterError as error:
                raise Refused(member.name, _filter_reason(error)) from None

        # Every member checked above; the filter checks each again as it is written.
        try:
            archive.extractall(target, members=members, filter=already_checked)  # noqa: S202
        except (tarfile.ReadError, zlib.error, EOFError) as error:
            raise Refused("", f"is damaged or cut short ({error})") from None


def _zip_link_target(link: str, name: str, target: Path, member: str) -> str:
    if link.startswith(("/", "\\")):
        raise Refused(member, "is a link to an absolute path")
    pointed = os.path.normpath(target / Path(name).parent / link)
    if pointed != str(target) and not pointed.startswith(str(target) + os.sep):
        raise Refused(member, "is a link pointing out of the folder")
    return link


def _zip_plan(
    archive: zipfile.ZipFile, target: Path, strip: int, limits: Limits
) -> list[tuple[zipfile.ZipInfo, str, int]]:
    """Every member checked (name, kind, link target, limits): (member, path, kind)."""
    planned: list[tuple[zipfile.ZipInfo, str, int]] = []
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
            _zip_link_target(archive.read(info).decode(), name, target, info.filename)
        elif kind not in {0, stat.S_IFREG}:
            raise Refused(info.filename, "is a device file or a pipe")
        planned.append((info, name, kind or stat.S_IFREG))
    return planned


def _extract_zip(source: Path, target: Path, strip: int, limits: Limits) -> None:
    try:
        opened = zipfile.ZipFile(source)
    except zipfile.BadZipFile as error:
        raise Refused("", f"is a damaged zip archive ({error})") from None
    with opened as archive:
        planned = _zip_plan(archive, target, strip, limits)
        real_target = os.path.realpath(target)
        written = 0
        for info, name, kind in planned:
            path = target / name
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
                link = archive.read(info).decode()
                path.symlink_to(_zip_link_target(link, name, target, info.filename))
                continue
            # Bytes counted as they come out, not as the header says: the header may lie.
            try:
                with archive.open(info) as reading, path.open("xb") as writing:
                    for block in iter(lambda: reading.read(1 << 20), b""):
                        written += len(block)
                        limits.count(0, written, info.filename)
                        writing.write(block)
            except (zipfile.BadZipFile, zlib.error, EOFError) as error:
                raise Refused(info.filename, f"is damaged ({error})") from None
            if (info.external_attr >> 16) & 0o111:
                path.chmod(0o755)


def unpack(archive: Path, target: Path, strip: int, limits: Limits) -> None:
    """Unpack the zip or tar ``archive`` into ``target``; ``Refused`` names what may not go."""
    if zipfile.is_zipfile(archive):
        _extract_zip(archive, target, strip, limits)
    else:
        _extract_tar(archive, target, strip, limits)
