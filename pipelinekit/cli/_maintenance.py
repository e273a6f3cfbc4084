"""``pipelinekit cache list|prune`` and ``pipelinekit gc``: what a store keeps, and for how long.

``gc`` is the retention of executions: it keeps the newest ``--keep`` executions of each
pipeline (default 50) and any younger than ``--older-than`` (default 30 days), and deletes the
others with their events, decisions and leases (one store transaction), then their folders
(artifacts, work folders, logs). It never deletes an execution that has not finished, nor one
whose lease is live. The store is changed first: a crash between the two leaves folders that
the next ``gc`` removes (it also removes folders no execution on record owns, once a day old).

``cache prune`` forgets cache entries (by last use, key prefix, or all), then sweeps the cache
folder of the files no entry uses. ``--dry-run`` says what would go and changes nothing.
"""

from __future__ import annotations

import argparse
import errno
import functools
import json
import os
import re
import stat
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio
import anyio.from_thread
import attrs

from pipelinekit._model._declarations import TERMINAL
from pipelinekit.exceptions import PipelineKitError
from pipelinekit.stores import SQLiteStore, Store

if TYPE_CHECKING:
    from pipelinekit._runtime._blobs import CacheFolder

__all__ = [
    "DEFAULT_KEEP",
    "DEFAULT_OLDER_THAN",
    "GcReport",
    "add_commands",
    "collect",
    "main",
    "parse_age",
    "prune_caches",
]

#: Executions of each pipeline ``gc`` keeps whatever their age.
DEFAULT_KEEP = 50
#: Executions younger than this are kept whatever their number.
DEFAULT_OLDER_THAN = "30d"
#: A folder under ``executions/`` that no execution on record owns goes once this old.
_ORPHAN_SECONDS = 86400.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


class UsageError(PipelineKitError):
    """A bad option value (one line, exit 2)."""


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``, ``45s`` (or a sum: ``1d12h``) as a ``timedelta``."""
    cleaned = text.strip().lower()
    matches = list(_AGE.finditer(cleaned))
    if not matches or "".join(match[0] for match in matches) != cleaned:
        msg = f"{text!r} is not an age; write a number and a unit, e.g. 30d, 12h, 90m, 2w"
        raise UsageError(msg)
    try:
        return timedelta(seconds=sum(float(m[1]) * _UNITS[m[2]] for m in matches))
    except (OverflowError, ValueError):  # past timedelta's 999,999,999 days, or infinite
        msg = f"{text!r} is too large an age; the most is 999999999d"
        raise UsageError(msg) from None


def _age(text: str) -> timedelta:
    try:
        return parse_age(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_commands(subparsers: Any, store_help: str) -> None:  # noqa: ANN401 - argparse's private type
    """Add ``cache`` and ``gc`` to the command line's subcommands."""
    cache = subparsers.add_parser(
        "cache", help="list or prune cached folders (pk.Cache) and results (cache=True)"
    )
    verbs = cache.add_subparsers(dest="cache_command", metavar="{list,prune}", required=True)
    listing = verbs.add_parser("list", help="show each cache entry: key, size, last used")
    listing.add_argument("--key", default="", metavar="PREFIX", help="only keys with this prefix")
    listing.add_argument("--json", action="store_true", help="one JSON document")
    listing.add_argument("--store", default=None, metavar="PATH", help=store_help)
    prune = verbs.add_parser("prune", help="forget cache entries and free their files")
    prune.add_argument(
        "--older-than", type=_age, default=None, metavar="AGE", help="not used for AGE (30d, 12h)"
    )
    prune.add_argument("--key", default=None, metavar="PREFIX", help="keys with this prefix")
    prune.add_argument("--all", action="store_true", help="every entry")
    prune.add_argument("--dry-run", action="store_true", help="say what would go; change nothing")
    prune.add_argument("--store", default=None, metavar="PATH", help=store_help)
    gc = subparsers.add_parser(
        "gc",
        help=f"delete old executions (keeps the last {DEFAULT_KEEP} per pipeline and any "
        f"younger than {DEFAULT_OLDER_THAN})",
    )
    gc.add_argument(
        "--keep",
        type=int,
        default=DEFAULT_KEEP,
        metavar="N",
        help=f"executions kept per pipeline whatever their age (default {DEFAULT_KEEP})",
    )
    gc.add_argument(
        "--older-than",
        type=_age,
        default=parse_age(DEFAULT_OLDER_THAN),
        metavar="AGE",
        help=f"delete only executions older than AGE (default {DEFAULT_OLDER_THAN})",
    )
    gc.add_argument("--pipeline", default=None, help="only this pipeline's executions")
    gc.add_argument("--dry-run", action="store_true", help="say what would go; change nothing")
    gc.add_argument("--store", default=None, metavar="PATH", help=store_help)


@attrs.frozen
class GcReport:
    """What ``collect`` deleted (or, dry, would delete)."""

    executions: tuple[str, ...]
    kept: int
    skipped_running: tuple[str, ...]
    folders: int
    bytes: int
    #: Folders not removed in full: (path, why). Their records are deleted already.
    failures: tuple[tuple[str, str], ...] = ()


#: Folders swept per worker-thread call: one call per folder cost a thread hand-off each (2,000
#: for 1,000 executions, each a wait for the scheduler on a busy machine); a batch keeps gc
#: cancellable between batches.
_FOLDERS_PER_CALL = 100
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _sweep(folder: int, *, remove: bool) -> int:
    """Bytes the files under the open folder ``folder`` take alone; removed when ``remove``.

    One pass on descriptors (as ``shutil.rmtree`` does, so a folder swapped for a link is never
    followed): each file is stat'ed once for its size, then unlinked. Sealed artifacts are
    read-only folders: a folder is made writable once, before its entries go, rather than after
    a failed unlink of each.
    """
    freed = 0
    if remove and os.fstat(folder).st_mode & stat.S_IRWXU != stat.S_IRWXU:
        os.fchmod(folder, stat.S_IRWXU)
    with os.scandir(folder) as listing:
        entries = list(listing)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            try:
                child = os.open(entry.name, _DIRECTORY, dir_fd=folder)
            except PermissionError:
                if not remove:
                    continue
                os.chmod(entry.name, stat.S_IRWXU, dir_fd=folder)
                child = os.open(entry.name, _DIRECTORY, dir_fd=folder)
            try:
                freed += _sweep(child, remove=remove)
            finally:
                os.close(child)
            if remove:
                os.rmdir(entry.name, dir_fd=folder)
            continue
        status = entry.stat(follow_symlinks=False)
        # A file linked from the cache frees nothing while the cache keeps it.
        if stat.S_ISREG(status.st_mode) and status.st_nlink == 1:
            freed += status.st_size
        if remove:
            os.unlink(entry.name, dir_fd=folder)
    return freed


def _sweep_folders(
    paths: Sequence[Path], *, remove: bool
) -> tuple[int, int, list[tuple[str, str]]]:
    """(folders found, bytes freed, failures) of ``paths``, each removed when ``remove``.

    A folder that cannot be removed in full (a busy mount, a file another process holds) is
    a failure (its path, and why), and the others are still swept.
    """
    folders = freed = 0
    failures: list[tuple[str, str]] = []
    for path in paths:
        try:
            found, size = _sweep_folder(path, remove=remove)
        except OSError as error:
            what = error.strerror or str(error)
            failures.append((str(path), f"{what} ({error.filename})" if error.filename else what))
            continue
        folders += found
        freed += size
    return folders, freed, failures


def _sweep_folder(path: Path, *, remove: bool) -> tuple[int, int]:
    """(1, bytes freed) of the execution folder ``path``; (0, 0) if there is none."""
    try:
        descriptor = os.open(path, _DIRECTORY)
    except OSError as error:
        # Gone, a file, or a link (never followed): nothing of an execution to sweep.
        if remove and error.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            raise
        return 0, 0
    try:
        freed = _sweep(descriptor, remove=remove)
    finally:
        os.close(descriptor)
    if remove:
        path.rmdir()
    return 1, freed


async def collect(
    store: Store,
    home: Path,
    *,
    keep: int = DEFAULT_KEEP,
    older_than: timedelta = timedelta(days=30),
    pipeline: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> GcReport:
    """Delete executions past retention, with their records and folders (see the module)."""
    now = now or datetime.now(UTC)
    summaries = await store.executions(pipeline, limit=1 << 62)
    seen: dict[str, int] = {}
    doomed: list[str] = []
    running: list[str] = []
    for summary in summaries:  # newest first
        rank = seen[summary.pipeline] = seen.get(summary.pipeline, 0) + 1
        started = summary.started_at
        if started.tzinfo is None:
            started = started.replace(tzinfo=UTC)
        if rank <= keep or now - started < older_than:
            continue
        if summary.status not in TERMINAL:
            running.append(summary.id)
            continue
        lease = await store.lease(summary.id)
        if lease is not None and lease[1] > now.timestamp():
            running.append(summary.id)
            continue
        doomed.append(summary.id)
    if not dry_run:
        # First: a crash leaves only folders behind. The store checks again, in the same
        # transaction as the delete, that each is finished and unleased: a retry or a resume
        # may have taken one up since it was chosen, and that one is left alone.
        deleted = await store.delete_executions(doomed, now=now.timestamp())
        taken = set(doomed) - set(deleted)
        running += [execution_id for execution_id in doomed if execution_id in taken]
        doomed = [execution_id for execution_id in doomed if execution_id not in taken]
    known = {summary.id for summary in summaries}
    targets = [home / "executions" / execution_id for execution_id in doomed]
    if pipeline is None:
        targets += await anyio.to_thread.run_sync(_orphans, home / "executions", known)
    folders = size = 0
    failures: list[tuple[str, str]] = []
    for first in range(0, len(targets), _FOLDERS_PER_CALL):
        batch = targets[first : first + _FOLDERS_PER_CALL]
        found, freed, failed = await anyio.to_thread.run_sync(
            functools.partial(_sweep_folders, batch, remove=not dry_run)
        )
        folders += found
        size += freed
        failures += failed
    return GcReport(
        tuple(doomed), len(summaries) - len(doomed), tuple(running), folders, size, tuple(failures)
    )


def _orphans(executions: Path, known: set[str]) -> list[Path]:
    """Folders under ``executions`` that no execution on record owns, a day old or more."""
    if not executions.is_dir():
        return []
    now = time.time()
    return [
        path
        for path in executions.iterdir()
        if path.name not in known and now - path.lstat().st_mtime > _ORPHAN_SECONDS
    ]


@attrs.frozen
class _Line:
    kind: str
    key: str
    size: int
    created: datetime | None
    used: datetime | None
    node: str


async def _entries(store: Store, prefix: str) -> list[_Line]:
    lines = [
        _Line("folder", e.key, e.size, e.created_at, e.last_used, e.node)
        for e in await store.saved_caches(prefix)
    ]
    lines += [
        _Line("result", key, entry.size, entry.created_at, entry.last_used, entry.node)
        for key, entry in await store.cache_entries()
        if key.startswith(prefix)
    ]
    return lines


async def prune_caches(
    store: Store,
    folder: CacheFolder,
    *,
    older_than: timedelta | None = None,
    key: str | None = None,
    every: bool = False,
    dry_run: bool = False,
    now: datetime | None = None,
) -> tuple[list[str], int]:
    """Forget matching entries and sweep the files no entry uses; (keys, bytes freed)."""
    now = now or datetime.now(UTC)
    lines = await _entries(store, key or "")
    doomed = []
    for line in lines:
        used = line.used or line.created
        if used is not None and used.tzinfo is None:
            used = used.replace(tzinfo=UTC)
        if every or key is not None or (older_than and (used is None or now - used > older_than)):
            doomed.append(line.key)
    if not dry_run:
        await store.delete_caches(doomed)
    keep: set[str] = set()
    for entry in await store.saved_caches():
        if dry_run and entry.key in doomed:
            continue
        keep.update(entry.trees.values())
    for entry_key, result in await store.cache_entries():
        if dry_run and entry_key in doomed:
            continue
        keep.update(result.trees.values())
    # Cancellable between entries: a prune of a large cache stops when asked (Ctrl-C).
    _, freed = await anyio.to_thread.run_sync(
        lambda: folder.sweep(keep, dry_run=dry_run, checkpoint=anyio.from_thread.check_cancelled)
    )
    return doomed, freed


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":  # noqa: PLR2004
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TB"  # pragma: no cover


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


async def _main(
    args: argparse.Namespace, home: Path, store: Store, out: TextIO, err: TextIO
) -> int:
    # Loaded by cache and gc only: the other commands import this module to list them.
    from pipelinekit._runtime._blobs import CacheFolder  # noqa: PLC0415

    folder = CacheFolder(home / "cache")
    if args.command == "gc":
        if args.keep < 0:
            msg = f"--keep must be 0 or more (got {args.keep})"
            raise UsageError(msg)
        report = await collect(
            store,
            home,
            keep=args.keep,
            older_than=args.older_than,
            pipeline=args.pipeline,
            dry_run=args.dry_run,
        )
        verb = "would delete" if args.dry_run else "deleted"
        out.write(
            f"{verb} {len(report.executions)} execution(s) and {report.folders} folder(s), "
            f"{_size(report.bytes)}; kept {report.kept}"
            + (
                f"; {len(report.skipped_running)} not finished or leased, left alone"
                if report.skipped_running
                else ""
            )
            + "\n"
        )
        err.writelines(
            f"pipelinekit: error: execution folder {path} could not be removed in full: "
            f"{why}; its records are deleted already, and `pipelinekit gc` removes what "
            "is left of it once the folder is a day old\n"
            for path, why in report.failures
        )
        return 1 if report.failures else 0
    if args.cache_command == "list":
        lines = await _entries(store, args.key)
        if args.json:
            out.write(
                json.dumps(
                    [
                        {
                            "kind": line.kind,
                            "key": line.key,
                            "size": line.size,
                            "created_at": _iso(line.created),
                            "last_used": _iso(line.used),
                            "node": line.node,
                        }
                        for line in lines
                    ],
                    indent=2,
                )
                + "\n"
            )
            return 0
        if not lines:
            out.write("no cache entries\n")
            return 0
        width = min(max(len(line.key) for line in lines), 72)
        out.write(f"{'KEY':<{width}}  {'KIND':<6}  {'SIZE':>9}  {'LAST USED':<16}  ACTION\n")
        out.writelines(
            f"{line.key:<{width}}  {line.kind:<6}  {_size(line.size):>9}  "
            f"{_when(line.used or line.created):<16}  {line.node}\n"
            for line in lines
        )
        return 0
    if not (args.all or args.key is not None or args.older_than is not None):
        msg = "cache prune needs --older-than AGE, --key PREFIX or --all"
        raise UsageError(msg)
    if args.key == "":
        # Every key starts with "": an unset $PREFIX in a script would forget every entry.
        msg = "cache prune --key needs a non-empty prefix; to forget every entry, use --all"
        raise UsageError(msg)
    keys, freed = await prune_caches(
        store,
        folder,
        older_than=args.older_than,
        key=args.key,
        every=args.all,
        dry_run=args.dry_run,
    )
    verb = "would forget" if args.dry_run else "forgot"
    out.write(f"{verb} {len(keys)} cache entr{'y' if len(keys) == 1 else 'ies'}, ")
    out.write(f"{'would free' if args.dry_run else 'freed'} {_size(freed)}\n")
    return 0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def main(
    args: argparse.Namespace,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run ``cache`` or ``gc``; bad input is one line on ``err`` and exit 2."""
    from pipelinekit.cli._store import find_store  # noqa: PLC0415 - CLI only

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        location = find_store(args.store)
        store = SQLiteStore(location.database)
        try:
            return anyio.run(_main, args, location.home, store, out, err)
        finally:
            store.close()
    except PipelineKitError as error:
        err.write(f"pipelinekit: error: {error}\n")
        return 2
