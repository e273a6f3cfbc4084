"""Reading a file an action's commands control, without letting them block or mislead the run.

``$PK_SUMMARY``, the output variables file, the command notes and JUnit reports are written by
the commands, which may leave anything at those paths: a FIFO (opening it for reading blocks
until a writer comes, in a worker thread no timeout, stop or Ctrl-C can reach), a symbolic link
to ``/dev/zero``, a device. So a file is opened without blocking (``O_NONBLOCK``) and, for the
files named by pipelinekit, without following a symbolic link (``O_NOFOLLOW``); what was opened
is then checked to be a regular file (``fstat`` of the open descriptor: no window between a
check and the open) and read up to a bound. Anything else is a ``problem`` to warn about.

Blocking calls: use them from a worker thread.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import attrs

__all__ = ["FileRead", "read_regular"]

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


@attrs.frozen
class FileRead:
    """What reading one file gave.

    ``data`` is ``None`` when there is no file (``problem`` is ``None`` then) or when it was not
    read (``problem`` says why: ``"not a regular file (a FIFO)"``...). ``complete`` says whether
    ``data`` is the whole file (not cut at the bound).
    """

    data: bytes | None
    problem: str | None = None
    complete: bool = True
    #: The file's size (0 when it was not read).
    size: int = 0


def read_regular(  # noqa: PLR0911 - one return per reason not to read
    path: Path, limit: int, *, follow: bool = False, whole: bool = False
) -> FileRead:
    """Read at most ``limit`` bytes of ``path`` if it is a regular file (blocking).

    ``follow``: follow a symbolic link at ``path`` (reports the person named may be links);
    pipelinekit's own files are never read through one. ``whole``: a file over ``limit`` is
    not read at all (a ``problem``), instead of read in part.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        return FileRead(None)
    except OSError as error:
        if error.errno == errno.ELOOP and not follow:
            return FileRead(None, "not read: it is a symbolic link; write the file itself")
        return FileRead(None, f"cannot be read: {error.strerror or error}")
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            kind = next((name for test, name in _KINDS if test(status.st_mode)), "")
            return FileRead(None, "not a regular file" + (f" ({kind})" if kind else ""))
        if whole and status.st_size > limit:
            problem = f"not read: {status.st_size:,} bytes, over {limit:,}"
            return FileRead(None, problem, complete=False, size=status.st_size)
        chunks: list[bytes] = []
        left = limit + 1  # one byte more says whether there is more
        while left > 0:
            chunk = os.read(descriptor, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as error:
        return FileRead(None, f"cannot be read: {error.strerror or error}")
    finally:
        os.close(descriptor)
    data = b"".join(chunks)
    return FileRead(data[:limit], complete=len(data) <= limit, size=status.st_size)
