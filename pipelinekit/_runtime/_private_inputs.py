"""Private writable copies of an action's input artifacts (``Action(writable_inputs=True)``).

Input artifacts are the producers' sealed outputs, shared by every consumer, and read-only.
Some tools write beside what they read (pytest's ``.pytest_cache``, ``__pycache__`` bytecode,
ruff's cache, in-tree builds): an action declared with ``writable_inputs=True`` gets its own copy
of each input instead, in ``work/<Stage.Action>.inputs/<artifact>``, fresh at each attempt.

The copy must be cheap and must never reach the producer's files. Each file is a copy-on-write
clone where the file system can make one (the ``FICLONE`` ioctl, what ``cp --reflink=auto``
uses: btrfs, XFS, bcachefs, OpenZFS 2.2+), else a real copy (``shutil.copyfile``, in the kernel
with ``sendfile``). Never a hard link: a write through one would change the producer's file.
Folders are made fresh and writable; files keep their executable bits and gain the owner's
write bit; symlinks are copied as links, and a link into the artifact is pointed at the same
file of the copy (else a write through it would reach the producer's file). "Into the artifact"
is decided on real paths (``os.path.realpath``), so an absolute link that reaches the artifact
by another path (through a symlinked folder, macOS's ``/var`` for ``/private/var``, a leading
``//``) is pointed at the copy too. Pipes, sockets and devices are no artifact's content (its
hash leaves them out): they are not copied, and the action's log names each one.

The producer's seals are still what is checked, before and after the action (the scheduler
checks the originals, not the copies): nothing written to a copy reaches an artifact. The copies
stay after the attempt, like its work folder, and are replaced by the next attempt's.

Everything here that touches files runs in a worker thread.
"""

# Plain string paths and os calls: on thousands of files pathlib costs more than the system
# calls themselves (as in _artifacts._walk).
# ruff: noqa: PTH102, PTH115, PTH117, PTH118, PTH123, PTH211

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

import attrs

from pipelinekit._runtime._clone import NO_CLONE, SUPPORTED, clone
from pipelinekit.exceptions import ActionFailed
from pipelinekit.providers._files import remove_tree

__all__ = ["Copied", "copy_private", "make_copies", "private_folder"]

#: Owner may write; folders also searchable (they hold what the action makes).
_WRITABLE_FILE = stat.S_IWUSR | stat.S_IRUSR
_WRITABLE_FOLDER = stat.S_IRWXU


def _umask() -> int:
    """The umask, read without setting it (``os.umask`` sets it for every thread a moment)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o777  # unknown: always set the modes


@attrs.define
class Copied:
    """What a copy did: files cloned (copy-on-write), files copied, bytes, links."""

    cloned: int = 0
    copied: int = 0
    bytes: int = 0
    links: int = 0
    #: Pipes, sockets and devices not copied: their paths, relative to the artifact.
    left_out: list[str] = attrs.field(factory=list)
    #: Whether cloning is still worth trying (a file system that refused once refuses again).
    clone: bool = attrs.field(default=SUPPORTED, repr=False)
    #: Whether ``copy_file_range`` works here (else ``sendfile``).
    copy_range: bool = attrs.field(default=hasattr(os, "copy_file_range"), repr=False)
    #: The process's umask, which ``os.open`` applies to a new file's mode.
    umask: int = attrs.field(factory=_umask, repr=False)


def private_folder(work: Path, node: str) -> Path:
    """Where the private copies of action ``node``'s inputs go (beside its work folder)."""
    # Beside, not inside: the work folder is the commands' current folder, and a tool run
    # there (pytest, a glob) must not find the copies.
    return work / f"{node}.inputs"


def _clone(source: int, target: int, copied: Copied) -> bool:
    """Clone ``source`` into ``target`` (open descriptors); ``False`` where it cannot."""
    if not copied.clone:
        return False
    copied.clone = clone(source, target)
    return copied.clone


def _copy_data(source: int, target: int, size: int, copied: Copied) -> None:
    """Copy ``size`` bytes in the kernel (``copy_file_range``, else ``sendfile``)."""
    done = 0
    while done < size:
        try:
            if copied.copy_range:
                sent = os.copy_file_range(source, target, size - done)
            else:
                sent = os.sendfile(target, source, None, size - done)
        except OSError as error:
            if not copied.copy_range or error.errno not in NO_CLONE:
                raise
            copied.copy_range = False  # e.g. across file systems on older kernels
            continue
        if sent == 0:  # the file shrank while it was copied: what is there is copied
            break
        done += sent


def _copy_file(source: str, target: str, status: os.stat_result, copied: Copied) -> None:
    # Never setuid, setgid or sticky: the copy is scratch of the action, not the artifact.
    wanted = (stat.S_IMODE(status.st_mode) | _WRITABLE_FILE) & 0o777
    reading = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        # The target is new and never a link (O_EXCL): nothing can be written through it.
        writing = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, wanted)
        try:
            if _clone(reading, writing, copied):
                copied.cloned += 1
            else:
                _copy_data(reading, writing, status.st_size, copied)
                copied.copied += 1
            if wanted & ~copied.umask != wanted:  # the umask took bits the copy must have
                os.fchmod(writing, wanted)
        finally:
            os.close(writing)
    finally:
        os.close(reading)
    copied.bytes += status.st_size


def _copy_tree(source: str, target: str, roots: _Roots, copied: Copied) -> None:
    """Copy folder ``source`` to ``target``; ``roots``: the artifact's folder and the copy's."""
    os.mkdir(target, _WRITABLE_FOLDER | 0o055)
    with os.scandir(source) as scan:
        entries = list(scan)
    for entry in entries:
        to = os.path.join(target, entry.name)
        if entry.is_symlink():
            link = os.readlink(entry.path)
            os.symlink(_link_target(link, source, target, roots), to)
            copied.links += 1
        elif entry.is_dir(follow_symlinks=False):
            _copy_tree(entry.path, to, roots, copied)
        elif entry.is_file(follow_symlinks=False):
            _copy_file(entry.path, to, entry.stat(follow_symlinks=False), copied)
        else:
            # Sockets, pipes and devices are no artifact's content (its hash leaves them out);
            # said in the action's log, so a tool that looks for one knows why it is missing.
            copied.left_out.append(os.path.relpath(entry.path, roots.source))


@attrs.frozen
class _Roots:
    """The artifact's folder as given, its real path, and the copy's folder."""

    source: str
    real: str
    copy: str


def _link_target(link: str, folder: str, copy_folder: str, roots: _Roots) -> str:
    """Where a link of ``folder`` (``copy_folder`` in the copy) points in the copy.

    A link to a file of the artifact points to that file of the copy (relative links stay
    relative); any other points where it pointed, absolutely (a relative one climbing out of
    the artifact would land elsewhere from the copy's folder, maybe in the producer's). Real
    paths are compared: the artifact may be named by another path (a symlinked folder above
    it, ``//``), and the link's own path may go through links.
    """
    pointed = os.path.realpath(os.path.join(folder, link))
    if pointed != roots.real and not pointed.startswith(roots.real + os.sep):
        return link if os.path.isabs(link) else pointed
    in_copy = roots.copy + pointed[len(roots.real) :]
    if os.path.isabs(link):
        return in_copy
    if os.path.normpath(os.path.join(copy_folder, link)) == in_copy:
        return link  # the same text lands on the same file of the copy
    return os.path.relpath(in_copy, copy_folder)


def copy_private(source: Path, target: Path) -> Copied:
    """Copy the folder ``source`` to ``target`` (which must not exist), writable, cheaply.

    Returns what it did. Call it from a worker thread.
    """
    copied = Copied()
    given = str(source.absolute())
    roots = _Roots(given, os.path.realpath(given), str(target.absolute()))
    _copy_tree(roots.source, roots.copy, roots, copied)
    return copied


def make_copies(
    node: str, inputs: Mapping[str, Path], folder: Path
) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    """Private writable copies of ``inputs`` (artifact -> folder) in ``folder``, for ``node``.

    An earlier attempt's copies are removed first. Returns each artifact's copy, and what was
    left out of the copies (artifact, path): pipes, sockets and devices, for the action's log.
    Call it from a worker thread (``Workspace.private_copies`` does).
    """
    remove_tree(folder)
    folder.mkdir(parents=True)
    copies: dict[str, Path] = {}
    left_out: list[tuple[str, str]] = []
    for name, source in inputs.items():
        if not source.is_dir():
            msg = (
                f"input artifact {name!r} of {node} is not at {str(source)!r}, so no private "
                "copy of it could be made; run its producer again (retry the stage)"
            )
            raise ActionFailed(msg)
        copies[name] = folder / name
        left_out += [(name, path) for path in copy_private(source, copies[name]).left_out]
    return copies, left_out
