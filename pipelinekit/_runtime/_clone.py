"""Copy-on-write clones of a file: Linux's ``FICLONE`` ioctl (what ``cp --reflink`` uses).

A clone shares the source's blocks until either side writes (btrfs, XFS, bcachefs, OpenZFS
2.2+): the cache restores its blobs with it, private input copies are made with it. Where the
file system cannot clone, the caller copies (or links) instead.

Blocking calls: use them from a worker thread.
"""

from __future__ import annotations

import errno
import fcntl
import sys

__all__ = ["FICLONE", "NO_CLONE", "SUPPORTED", "clone"]

#: ``_IOW(0x94, 9, int)`` from ``<linux/fs.h>``: clone a whole file, sharing its blocks.
FICLONE = 0x40049409

#: The errors that mean "no clone here (this file system, this pair of them)": copy instead.
#: EPERM is one of them. ioctl_ficlone(2) gives it for an immutable target, and sandboxes
#: (seccomp profiles) and some FUSE or network file systems answer it for "not allowed here".
#: The callers clone only into a file they have just created, so it never means that the
#: copy would be refused too, and if it did the copy would raise its own error. A copy gives
#: the same bytes as a clone, so falling back costs only time, while raising made every cache
#: restore there a miss (the action ran again, every time) where private input copies, until
#: then the other copy of this code, already fell back.
NO_CLONE = frozenset(
    {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EPERM}
)

#: Whether trying is worth it at all (only Linux has FICLONE).
SUPPORTED = sys.platform == "linux"


def clone(source: int, target: int) -> bool:
    """Clone the file open at ``source`` into the one open for writing at ``target``.

    ``False`` where this file system cannot (``NO_CLONE``): the caller copies instead, and
    need not try again on the same file systems. Any other ``OSError`` is raised.
    """
    if not SUPPORTED:
        return False
    try:
        fcntl.ioctl(target, FICLONE, source)
    except OSError as error:
        if error.errno not in NO_CLONE:
            raise
        return False
    return True
