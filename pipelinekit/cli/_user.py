"""Who runs the command: the name recorded as who started or decided something."""

from __future__ import annotations

import getpass

__all__ = ["current_user"]


def current_user() -> str | None:
    """The login name, or ``None`` where there is none (some containers) or it is blank."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no user name in some containers
        return None
    # $LOGNAME and friends come first in getuser(): a blank one names nobody.
    return name if name and name.strip() else None
