"""Where the command line's store is: one rule for every command, as git finds ``.git``.

The store is a folder (``.pipelinekit`` by default) holding ``state.db`` and the executions'
artifacts, work folders and logs. A command finds it, in this order: ``--store PATH`` (the folder,
or the database file in it), ``$PIPELINEKIT_HOME``, the nearest ``.pipelinekit/`` folder found by
walking up from the current folder, and, for ``run`` only, a new ``.pipelinekit`` in the current
folder. Commands that only read never make one: they say where they looked and how to fix it.

The walk stops, as git's does, at the filesystem's root, at a mount boundary (a parent on another
device: a network or container mount above a project is not the project's) and at any folder
listed in ``$PIPELINEKIT_CEILING_DIRECTORIES`` (``:``-separated, like ``GIT_CEILING_DIRECTORIES``;
the ceiling itself is not searched). This module only finds; opening the store is the caller's.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

import attrs

from pipelinekit.exceptions import PipelineKitError

__all__ = ["FOLDER", "NoStoreError", "StoreLocation", "find_store", "store_option"]

#: The folder a store lives in, and the one the walk looks for.
FOLDER = ".pipelinekit"
DATABASE = "state.db"
HOME_VARIABLE = "PIPELINEKIT_HOME"
CEILING_VARIABLE = "PIPELINEKIT_CEILING_DIRECTORIES"


class NoStoreError(PipelineKitError):
    """A command that reads the store found none (it says where it looked and how to fix it)."""


@attrs.frozen
class StoreLocation:
    """A store's folder and its database file, and how it was found."""

    #: The folder of executions' artifacts, work folders and logs (absolute).
    home: Path
    #: The SQLite file (``home / "state.db"`` unless ``--store`` named another file).
    database: Path
    #: ``"--store"``, ``"$PIPELINEKIT_HOME"``, ``"found"`` (walked up to) or ``"new"``.
    how: str

    @property
    def exists(self) -> bool:
        """Whether the database is there (commands that only read need it)."""
        return self.database.is_file()

    @property
    def named(self) -> str:
        """How ``--store`` names it: the folder, or the database when it has another name."""
        return str(self.home if self.database == self.home / DATABASE else self.database)


def _given(path: Path, how: str, *, folder: bool = False) -> StoreLocation:
    """A store named on purpose: its folder, or its database file (a name ending ``.db``).

    With ``folder`` (the old ``--workdir``) it is a folder, whatever its name.
    """
    path = path.expanduser().absolute()
    if not folder and path.suffix == ".db" and not path.is_dir():
        return StoreLocation(path.parent, path, how)
    return StoreLocation(path, path / DATABASE, how)


def _ceilings(environ: Mapping[str, str]) -> set[Path]:
    return {
        Path(entry).expanduser().absolute()
        for entry in environ.get(CEILING_VARIABLE, "").split(os.pathsep)
        if entry and Path(entry).is_absolute()
    }


def walk_up(start: Path, environ: Mapping[str, str]) -> tuple[Path | None, Path]:
    """The nearest ``.pipelinekit`` folder from ``start`` up, and the last folder searched."""
    ceilings = _ceilings(environ)
    current = start.absolute()
    try:
        device = current.stat().st_dev
    except OSError:
        device = None
    while True:
        candidate = current / FOLDER
        if candidate.is_dir():
            return candidate, current
        parent = current.parent
        if parent == current or parent in ceilings:
            return None, current
        try:
            if device is not None and parent.stat().st_dev != device:
                return None, current  # a mount boundary: what is above is not this project's
        except OSError:
            return None, current
        current = parent


def find_store(
    option: str | None,
    *,
    create: bool = False,
    folder: bool = False,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> StoreLocation:
    """The store a command uses: ``--store``, ``$PIPELINEKIT_HOME``, walked up to, or new.

    ``create`` (``run``) settles for a new ``.pipelinekit`` in ``cwd`` when none is found;
    without it, a store that is not there is a ``NoStoreError`` saying where it was looked for
    and how to fix it. ``folder`` takes ``option`` as a folder even if it names a file (the
    old ``--workdir``). ``cwd`` and ``environ`` default to the process's.
    """
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    if option:
        location = _given(Path(option), "--store", folder=folder)
    elif environ.get(HOME_VARIABLE):
        location = _given(Path(environ[HOME_VARIABLE]), f"${HOME_VARIABLE}")
    else:
        found, top = walk_up(cwd, environ)
        if found is not None:
            location = StoreLocation(found, found / DATABASE, "found")
        elif create:
            home = cwd.absolute() / FOLDER
            location = StoreLocation(home, home / DATABASE, "new")
        else:
            msg = (
                f"no store found: no {FOLDER}/ folder from {str(cwd.absolute())!r} up to "
                f"{str(top)!r}; run a pipeline here first (pipelinekit run FILE), or give "
                f"--store PATH or set ${HOME_VARIABLE}"
            )
            raise NoStoreError(msg)
    if not create and not location.exists:
        where = "given by --store" if location.how == "--store" else f"in {location.how}"
        msg = (
            f"no store at {str(location.database)!r} ({where}); run a pipeline with it first, "
            f"or name an existing store"
        )
        raise NoStoreError(msg)
    return location


def store_option(location: StoreLocation, cwd: Path | None = None) -> str:
    """``" --store PATH"`` for hints, or ``""`` when the same command here finds it anyway."""
    try:
        here = find_store(None, create=True, cwd=cwd)
    except OSError:  # pragma: no cover - a current folder that is gone
        here = None
    if here is not None and here.database == location.database:
        return ""
    return f" --store {shlex.quote(location.named)}"
