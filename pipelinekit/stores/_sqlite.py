"""``SQLiteStore``: executions kept in an SQLite file, the default store.

The standard library's ``sqlite3`` runs on a thread of the store's own (never on the event
loop), on one connection guarded by a lock. The database uses WAL, so readers never block the
writer and several processes can share the file; every write is one ``BEGIN IMMEDIATE``
transaction (the write lock is taken up front, so two writers never deadlock upgrading a read
lock); a busy database is waited for (``busy_timeout``) rather than failing with "database is
locked".

``synchronous=NORMAL``: in WAL mode a committed transaction survives the process being killed at
any point (the crash pipelinekit must survive); only a power loss or an OS crash can lose the
last transactions, which is the trade-off SQLite recommends for WAL. Set ``synchronous="FULL"``
to be safe against those too, at the cost of an fsync per transaction.

The schema carries a version; older databases are migrated forward when opened, and a database
written by a newer pipelinekit is refused rather than misread.

The file is marked as pipelinekit's with SQLite's ``application_id`` (``APPLICATION_ID``, the
bytes ``PKit``). Before changing anything in an existing file (its journal mode, its schema),
the store checks it is its own: marked, or (made before the mark) holding pipelinekit's tables,
then marked. Anyone else's database is refused as it is, byte for byte.

Every ``sqlite3`` error, on opening or later in the store's thread, reaches the caller as a
``StoreError`` naming the file, what is wrong and what to do (the ``sqlite3`` error is its
``__cause__``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import weakref
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs

from pipelinekit._model._declarations import Status
from pipelinekit._model._events import Event
from pipelinekit._thread import WorkerThread
from pipelinekit.exceptions import StoreError
from pipelinekit.stores._memory import (
    TERMINAL,
    refuse_gap,
    refuse_terminal,
    subject_key,
)
from pipelinekit.stores._records import CacheEntry, Decision, ExecutionSummary, SavedCache

if TYPE_CHECKING:
    # Annotations only. sqlite3 is imported by the functions that open and write a database,
    # so that importing pipelinekit does not load it; the compiler brings networkx.
    import sqlite3

    from pipelinekit._compiler._plan import Plan

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SQLiteStore"]

T = TypeVar("T")

#: The schema this pipelinekit writes. Each entry of ``_MIGRATIONS`` moves a database one version
#: forward.
SCHEMA_VERSION = 9

_MIGRATIONS: dict[int, str] = {
    1: """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE executions (
            id TEXT PRIMARY KEY,
            pipeline TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            trigger TEXT,
            triggered_by TEXT,
            variables TEXT NOT NULL DEFAULT '{}',
            last_sequence INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX executions_by_pipeline ON executions (pipeline, started_at DESC);
        CREATE TABLE events (
            execution_id TEXT NOT NULL REFERENCES executions (id),
            sequence INTEGER NOT NULL,
            type TEXT NOT NULL,
            state TEXT NOT NULL,
            stage TEXT,
            action TEXT,
            time TEXT NOT NULL,
            detail TEXT NOT NULL,
            PRIMARY KEY (execution_id, sequence)
        );
        CREATE TABLE subjects (
            execution_id TEXT NOT NULL REFERENCES executions (id),
            stage TEXT NOT NULL,
            action TEXT NOT NULL,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            PRIMARY KEY (execution_id, stage, action, kind)
        );
    """,
    2: """
        CREATE TABLE leases (
            execution_id TEXT PRIMARY KEY REFERENCES executions (id),
            owner TEXT NOT NULL,
            until REAL NOT NULL
        );
    """,
    3: """
        CREATE TABLE stop_requests (
            execution_id TEXT PRIMARY KEY REFERENCES executions (id),
            abandon INTEGER NOT NULL,
            reason TEXT NOT NULL
        );
    """,
    4: """
        CREATE TABLE cache (
            key TEXT PRIMARY KEY,
            execution_id TEXT NOT NULL REFERENCES executions (id),
            node TEXT NOT NULL,
            variables TEXT NOT NULL,
            outputs TEXT NOT NULL
        );
    """,
    # Subjects' states are derived from the events (and cached), one write less per event.
    5: """
        DROP TABLE subjects;
    """,
    6: """
        CREATE TABLE pipelines (
            name TEXT NOT NULL,
            hash TEXT NOT NULL,
            definition TEXT NOT NULL,
            PRIMARY KEY (name, hash)
        );
    """,
    # An execution's last sequence number is read from its events (the primary key's index):
    # updating a copy of it made every write dirty one more page.
    7: """
        ALTER TABLE executions DROP COLUMN last_sequence;
    """,
    8: """
        CREATE TABLE decisions (
            execution_id TEXT NOT NULL REFERENCES executions (id),
            token INTEGER NOT NULL,
            approved INTEGER NOT NULL,
            decided_by TEXT NOT NULL,
            summary TEXT NOT NULL,
            time TEXT NOT NULL,
            PRIMARY KEY (execution_id, token)
        );
    """,
    # Cached results outlive their execution (their files are in the cache folder): no
    # foreign key any more, so that gc can delete the execution; keyed caches (pk.Cache).
    9: """
        CREATE TABLE cache_9 (
            key TEXT PRIMARY KEY,
            execution_id TEXT NOT NULL,
            node TEXT NOT NULL,
            variables TEXT NOT NULL,
            outputs TEXT NOT NULL,
            trees TEXT NOT NULL DEFAULT '{}',
            size INTEGER NOT NULL DEFAULT 0,
            created_at TEXT,
            last_used TEXT
        );
        INSERT INTO cache_9 (key, execution_id, node, variables, outputs)
            SELECT key, execution_id, node, variables, outputs FROM cache;
        DROP TABLE cache;
        ALTER TABLE cache_9 RENAME TO cache;
        CREATE TABLE saved_caches (
            key TEXT NOT NULL,
            paths TEXT NOT NULL,
            trees TEXT NOT NULL,
            size INTEGER NOT NULL,
            files INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            last_used TEXT NOT NULL,
            execution_id TEXT NOT NULL,
            node TEXT NOT NULL,
            root TEXT NOT NULL,
            PRIMARY KEY (key, paths)
        );
        CREATE INDEX executions_by_start ON executions (started_at);
    """,
}

#: SQLite's ``application_id`` of a pipelinekit database: the bytes ``PKit``.
APPLICATION_ID = int.from_bytes(b"PKit", "big")

#: The tables any version of the schema has: a database without the mark but with these (and a
#: schema version) was made by a pipelinekit from before the mark.
_OWN_TABLES = frozenset({"meta", "executions", "events"})
#: Every table any version of the schema made.
_KNOWN_TABLES = _OWN_TABLES | {
    "subjects",
    "leases",
    "stop_requests",
    "cache",
    "pipelines",
    "decisions",
    "saved_caches",
}

#: Steps that need a newer SQLite than some systems have. Without it the step is skipped; what
#: it would drop is then left in place, unused.
_NEEDS_SQLITE = {7: (3, 35, 0)}


_key = subject_key

# One INSERT of many rows rather than executemany: SQLite steps once instead of once per row,
# and the thread gives up the GIL once instead of once per row (about 2 us a row less here).
# 100 rows of 8 values stay under 999, the limit of SQLite before 3.32.
_ROWS_PER_INSERT = 100
_COLUMNS = 8


@functools.cache
def _insert_events(rows: int) -> str:
    # Placeholders only: the values are bound.
    return "INSERT INTO events VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * rows)  # noqa: S608


# Plain strings: sqlite3 binds a str subclass (the enum) through its adapter lookup, slower.
_TEXT = {status: status.value for status in Status}
_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - a placeholder time for keys, never shown


_encode = json.JSONEncoder(default=str, separators=(",", ":")).encode


def _fast_encoder() -> Callable[[Any, int], Sequence[str]] | None:
    """A C encoder with the settings of ``_encode``, built once (``None`` without the C part).

    ``JSONEncoder.encode`` builds one on every call, which is most of its cost for the small
    details of events (written by the thousand); built once, the same work costs a third.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython has it
        return None
    sort_keys, skip_keys, allow_nan = False, False, True
    # Positional only: markers (none: details never hold cycles), default, string encoder,
    # indent, key separator, item separator, then the three flags.
    encoder: Callable[[Any, int], Sequence[str]] = make(
        None,
        str,
        json.encoder.encode_basestring_ascii,
        None,
        ":",
        ",",
        sort_keys,
        skip_keys,
        allow_nan,
    )
    return encoder


_encode_fast = _fast_encoder()


def _json(value: Any) -> str:  # noqa: ANN401 - details hold plain values
    if _encode_fast is not None and type(value) is dict:
        return "".join(_encode_fast(value, 0))
    return _encode(value)


_CACHE_COLUMNS = "key, execution_id, node, variables, outputs, trees, size, created_at, last_used"
_SAVED_COLUMNS = "key, paths, trees, size, files, created_at, last_used, execution_id, node, root"


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _cache_entry(row: Sequence[Any]) -> tuple[str, CacheEntry]:
    key, execution_id, node, variables, outputs, trees, size, created, used = row
    return str(key), CacheEntry(
        str(execution_id),
        str(node),
        json.loads(variables),
        {name: (path, digest) for name, (path, digest) in json.loads(outputs).items()},
        json.loads(trees),
        int(size),
        datetime.fromisoformat(created) if created else None,
        datetime.fromisoformat(used) if used else None,
    )


def _saved(row: Sequence[Any]) -> SavedCache:
    key, paths, trees, size, files, created, used, execution_id, node, root = row
    return SavedCache(
        key=str(key),
        paths=tuple(json.loads(paths)),
        trees=json.loads(trees),
        size=int(size),
        files=int(files),
        created_at=datetime.fromisoformat(created),
        last_used=datetime.fromisoformat(used),
        execution_id=str(execution_id),
        node=str(node),
        root=str(root),
    )


_DECISION = (
    "SELECT approved, decided_by, summary, time FROM decisions WHERE execution_id = ? AND token = ?"
)


def _decision(row: Sequence[Any]) -> Decision:
    approved, by, summary, time = row
    return Decision(bool(approved), str(by), str(summary), datetime.fromisoformat(time))


@contextlib.contextmanager
def _immediate(connection: sqlite3.Connection, *, unknown: str | None = None) -> Iterator[None]:
    """One write transaction: ``BEGIN IMMEDIATE``, committed at the end, rolled back on any error.

    With ``unknown``, a foreign key that points nowhere (an execution the store does not have)
    becomes a ``StoreError`` saying ``unknown``.
    """
    import sqlite3  # noqa: PLC0415 - see the imports at the top

    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except sqlite3.IntegrityError as error:
        connection.execute("ROLLBACK")
        if unknown is None:
            raise
        raise StoreError(unknown) from error
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


@attrs.define
class _Connection:
    connection: sqlite3.Connection
    lock: threading.Lock


def _close_quietly(connection: sqlite3.Connection, pid: int) -> None:
    if os.getpid() != pid:
        return  # a forked child's copy of its parent's connection is the parent's to close
    with contextlib.suppress(Exception):  # closed already, or the interpreter is ending
        connection.close()


class SQLiteStore:
    """Keeps executions in an SQLite file (default ``.pipelinekit/state.db``).

    The file is created with mode 0600 (only its owner can read the history). A path that
    cannot hold a database (a missing folder, a file that is not SQLite or is damaged, another
    program's database, which is left untouched) raises ``StoreError`` naming the path, the
    reason and the fix, on first use; so does a change to a read-only database (reading one
    works), and any other error of SQLite.
    """

    #: Each write is a transaction in a worker thread: the engine batches bursts of changes.
    batches_writes = True
    durable = True

    def __init__(
        self,
        path: str | os.PathLike[str] = ".pipelinekit/state.db",
        *,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout: float = 30.0,
    ) -> None:
        """Use the database at ``path`` (opened, and created if need be, on first use)."""
        self.path = Path(path)
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self._opened: _Connection | None = None
        self._opening = threading.Lock()
        self._states: dict[str, tuple[int, dict[tuple[str, str, str], Status]]] = {}
        self._thread = WorkerThread(f"pipelinekit store {self.path}")
        self._pid = os.getpid()

    # -- connection ------------------------------------------------------------------------------

    def _forget_parent(self) -> None:
        if self._pid != os.getpid():
            # A forked child must not use its parent's connection (SQLite's rule) nor trust a
            # lock the parent may have held: it opens its own, and leaves the parent's alone.
            self._opening = threading.Lock()
            self._opened = None
            self._states.clear()
            self._pid = os.getpid()

    def _connection(self) -> _Connection:
        self._forget_parent()
        with self._opening:
            if self._opened is None:
                connection = self._open()
                self._opened = _Connection(connection, threading.Lock())
                # A store dropped without close() still closes its connection when it is
                # collected (instead of leaving SQLite's ResourceWarning to the collector).
                weakref.finalize(self, _close_quietly, connection, os.getpid())
            return self._opened

    def _fail(self, reason: str) -> StoreError:
        return StoreError(f"cannot use {str(self.path)!r} as a pipelinekit store: {reason}")

    def _failed(self, error: sqlite3.Error) -> StoreError:
        """The ``StoreError`` for an error of SQLite: what it means here, and what to do."""
        reason = str(error)
        lowered = reason.lower()
        if "readonly" in lowered or "read-only" in lowered:
            reason = (
                "it is read-only; give the user running pipelinekit write access to the file "
                "and its folder (SQLite writes -wal and -shm files beside it)"
            )
        elif "file is not a database" in lowered:
            reason = (
                "it is not an SQLite database (or it is damaged); move it aside to start a new "
                "history, or give pipelinekit a file of its own"
            )
        elif "malformed" in lowered or "corrupt" in lowered:
            reason = (
                f"it is damaged ({reason}); move it aside to start a new history (`sqlite3 "
                "FILE .recover` may save what is left of the old one)"
            )
        elif "locked" in lowered or "busy" in lowered:
            reason = (
                f"it stayed locked by another process for longer than busy_timeout "
                f"({self.busy_timeout:g} s); try again, or give SQLiteStore a longer busy_timeout"
            )
        elif "unable to open" in lowered:
            reason = f"SQLite cannot open it ({reason}); check the file and its folder's modes"
        elif "disk is full" in lowered:
            reason = "the disk is full; free some space and try again"
        return self._fail(" ".join(reason.split()))  # one line, whatever SQLite said

    def _unreadable(self, error: ValueError) -> StoreError:
        # A status, a time or JSON that pipelinekit did not write: the file was changed behind
        # its back, or damaged.
        msg = (
            f"it holds a record pipelinekit cannot read ({' '.join(str(error).split())}); it "
            "may be damaged: move it aside to start a new history"
        )
        return self._fail(msg)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Decode rows; what cannot be decoded is a ``StoreError``."""
        try:
            yield
        except ValueError as error:
            raise self._unreadable(error) from error

    def _open(self) -> sqlite3.Connection:
        import sqlite3  # noqa: PLC0415 - see the imports at the top

        path = self.path
        if not path.parent.is_dir():
            msg = f"its folder {str(path.parent)!r} does not exist; create it first"
            raise self._fail(msg)
        if path.is_dir():
            msg = "it is a directory"
            raise self._fail(msg)
        if not path.exists():
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass  # another process created it first
            except PermissionError as error:
                msg = (
                    f"cannot create it ({error.strerror}); give the user running pipelinekit "
                    "write access to its folder, or choose another path"
                )
                raise self._fail(msg) from error
            except OSError as error:
                raise self._fail(error.strerror or str(error)) from error
        connection: sqlite3.Connection | None = None
        try:
            connection = sqlite3.connect(
                path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            # Before anything changes the file (WAL changes its header): is it ours?
            self._claim(connection)
            mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                msg = f"SQLite could not switch it to WAL (journal mode {mode!r})"
                raise self._fail(msg)  # noqa: TRY301 - the handler below closes the connection
            connection.execute(f"PRAGMA synchronous = {self.synchronous}")
            connection.execute("PRAGMA foreign_keys = ON")
            self._migrate(connection)
        except BaseException as error:
            if connection is not None:
                connection.close()  # never left for the collector to find open
            if not isinstance(error, sqlite3.Error):
                raise  # not its own, or a newer schema: already a clear StoreError
            raise self._failed(error) from error
        return connection

    def _claim(self, connection: sqlite3.Connection) -> None:
        """Refuse a database that is not pipelinekit's; mark one that is but is not marked yet.

        Only reads until the file is known to be ours: another program's database is left
        exactly as it was. A new (empty) file is marked first, in its own transaction, so
        that whatever happens next it is known as ours.
        """
        import sqlite3  # noqa: PLC0415 - see the imports at the top

        if self._owner(connection) == APPLICATION_ID:
            return
        try:
            with _immediate(connection):
                # Again under the write lock: another process may have marked it meanwhile.
                marked = connection.execute("PRAGMA application_id").fetchone()[0]
                if marked != APPLICATION_ID:
                    connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        except sqlite3.OperationalError as error:
            if "readonly" not in str(error) or not self._tables(connection):
                raise
            # Ours by its tables but read-only: readable as it is; writes say it is read-only.

    def _owner(self, connection: sqlite3.Connection) -> int:
        """``APPLICATION_ID`` if the database is pipelinekit's, 0 if it is new; else refuse."""
        marked = int(connection.execute("PRAGMA application_id").fetchone()[0])
        if marked == APPLICATION_ID:
            return marked
        if marked != 0:
            msg = (
                f"it belongs to another program (SQLite application_id 0x{marked & 0xFFFFFFFF:08x},"
                " not pipelinekit's); give pipelinekit a file of its own"
            )
            raise self._fail(msg)
        if int(connection.execute("PRAGMA page_count").fetchone()[0]) == 0:
            return 0  # an empty file: ours to make
        tables = self._tables(connection)
        if (
            _OWN_TABLES <= tables <= _KNOWN_TABLES
            and connection.execute("SELECT 1 FROM meta WHERE key = 'schema_version'").fetchone()
        ):
            return 0  # made by a pipelinekit from before the mark
        listed = f"tables: {', '.join(sorted(tables))}" if tables else "no tables"
        msg = (
            f"it is another program's SQLite database ({listed}); give pipelinekit a file of "
            "its own"
        )
        raise self._fail(msg)

    @staticmethod
    def _tables(connection: sqlite3.Connection) -> frozenset[str]:
        rows = connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        return frozenset(str(row[0]) for row in rows)

    def _migrate(self, connection: sqlite3.Connection) -> None:
        import sqlite3  # noqa: PLC0415 - see the imports at the top

        with _immediate(connection):
            has_meta = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
            ).fetchone()
            version = 0
            if has_meta:
                row = connection.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                ).fetchone()
                version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                msg = (
                    f"it was written by a newer pipelinekit (schema {version}; this one knows "
                    f"up to {SCHEMA_VERSION}); upgrade pipelinekit to read it"
                )
                raise self._fail(msg)  # inside the transaction: it rolls back
            for step in range(version + 1, SCHEMA_VERSION + 1):
                if sqlite3.sqlite_version_info < _NEEDS_SQLITE.get(step, (0,)):
                    continue
                for statement in _MIGRATIONS[step].split(";"):
                    if statement.strip():
                        connection.execute(statement)
            if version < SCHEMA_VERSION:
                connection.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def in_thread() -> T:
            try:
                opened = self._connection()
                with opened.lock:
                    return work(opened.connection)
            except Exception as error:
                import sqlite3  # noqa: PLC0415 - loaded already; only on the way out of an error

                if isinstance(error, sqlite3.Error):
                    # Raised here, in the store's thread: the caller gets the StoreError.
                    raise self._failed(error) from error
                raise

        return await self._thread.run(in_thread)

    def close(self) -> None:
        """Close the connection and let the store's thread end (both come back if used again).

        Call it once nothing is using the store; a write still running finishes first.
        """
        self._forget_parent()
        self._thread.close()
        with self._opening:
            if self._opened is not None:
                with self._opened.lock:
                    self._opened.connection.close()
                self._opened = None

    # -- the Store protocol ------------------------------------------------------------------------

    async def record(self, events: Sequence[Event]) -> list[Event]:
        """Write ``events`` in one transaction, or none of them."""
        batch = list(events)
        if batch:
            await self._run(lambda connection: self._record(connection, batch))
        return batch

    def _record(self, connection: sqlite3.Connection, events: list[Event]) -> None:
        try:
            with _immediate(connection):
                values: list[Any] = []  # the rows' values, one after the other
                # Per execution in the batch: its last sequence number, and its subjects' states.
                last: dict[str, int] = {}
                states: dict[tuple[str, str, str], Status] = {}
                execution_id = ""
                for event in events:
                    if event.execution_id != execution_id:
                        if execution_id:
                            self._states[execution_id] = (last[execution_id], states)
                        execution_id = event.execution_id
                        if execution_id not in last:
                            last[execution_id] = self._last_sequence(connection, event)
                        states = self._states_of(connection, execution_id, last[execution_id])
                    if event.sequence != last[execution_id] + 1:
                        refuse_gap(event, last[execution_id] + 1)
                    last[execution_id] = event.sequence
                    key = _key(event)
                    current = states.get(key)
                    if current is not None and current in TERMINAL:
                        refuse_terminal(event, current)
                    states[key] = event.state
                    values.extend(
                        (
                            execution_id,
                            event.sequence,
                            event.type,
                            _TEXT[event.state],
                            event.stage,
                            event.action,
                            event.time.isoformat(),
                            _json(event.detail),
                        )
                    )
                    if event.type == "pipeline":
                        finished = event.time.isoformat() if event.state in TERMINAL else None
                        connection.execute(
                            "UPDATE executions SET status = ?, finished_at = ? WHERE id = ?",
                            (event.state.value, finished, execution_id),
                        )
                if execution_id:
                    self._states[execution_id] = (last[execution_id], states)
                step = _ROWS_PER_INSERT * _COLUMNS
                for first in range(0, len(values), step):
                    chunk = values[first : first + step]
                    connection.execute(_insert_events(len(chunk) // _COLUMNS), chunk)
        except BaseException:
            self._states.clear()  # the cache may hold what was rolled back
            raise

    def _states_of(
        self, connection: sqlite3.Connection, execution_id: str, last_sequence: int
    ) -> dict[tuple[str, str, str], Status]:
        """The current state of each subject of an execution.

        Cached between batches; the cache is trusted only while nobody else wrote to the
        execution (its last sequence number is the one this store wrote).
        """
        cached = self._states.get(execution_id)
        if cached is not None and cached[0] == last_sequence:
            return cached[1]
        states: dict[tuple[str, str, str], Status] = {}
        for kind, state, stage, action, detail in connection.execute(
            "SELECT type, state, stage, action, detail FROM events WHERE execution_id = ? "
            "ORDER BY sequence",
            (execution_id,),
        ):
            # Only the attempt number is needed from the detail; parse it only if it is there.
            attempt = json.loads(detail) if "execution_attempt" in detail else {}
            event = Event(kind, Status(state), "", execution_id, _EPOCH, stage, action, attempt)
            states[_key(event)] = Status(state)
        self._states[execution_id] = (last_sequence, states)
        return states

    def _last_sequence(self, connection: sqlite3.Connection, event: Event) -> int:
        """The last sequence number on record for ``event``'s execution (0 for a new one).

        The execution is created by its first event, which must be the pipeline's start.
        """
        row = connection.execute(
            "SELECT max(sequence) FROM events WHERE execution_id = ?", (event.execution_id,)
        ).fetchone()
        if row[0] is not None:
            return int(row[0])
        if not (event.type == "pipeline" and event.state is Status.IN_PROGRESS):
            refuse_gap(event, 1)
        detail = event.detail
        connection.execute(
            "INSERT INTO executions (id, pipeline, status, started_at, trigger, "
            "triggered_by, variables) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event.execution_id,
                event.pipeline,
                event.state.value,
                event.time.isoformat(),
                detail.get("trigger"),
                detail.get("triggered_by"),
                _json(detail.get("variables", {})),
            ),
        )
        return 0

    async def events(self, execution_id: str) -> list[Event]:
        """Every event of ``execution_id``, oldest first."""
        rows = await self._run(
            lambda connection: connection.execute(
                "SELECT type, state, stage, action, time, detail, sequence FROM events "
                "WHERE execution_id = ? ORDER BY sequence",
                (execution_id,),
            ).fetchall()
        )
        pipeline = await self._pipeline_of(execution_id) if rows else ""
        with self._reading():
            return [
                Event(
                    kind,
                    Status(state),
                    pipeline,
                    execution_id,
                    datetime.fromisoformat(time),
                    stage,
                    action,
                    json.loads(detail),
                    sequence,
                )
                for kind, state, stage, action, time, detail, sequence in rows
            ]

    async def _pipeline_of(self, execution_id: str) -> str:
        row = await self._run(
            lambda connection: connection.execute(
                "SELECT pipeline FROM executions WHERE id = ?", (execution_id,)
            ).fetchone()
        )
        return str(row[0]) if row else ""

    async def executions(
        self, pipeline: str | None = None, *, limit: int = 20, offset: int = 0
    ) -> list[ExecutionSummary]:
        """Executions, newest first (of one pipeline, or of all), a page at a time."""
        query = (
            "SELECT id, pipeline, status, started_at, finished_at, trigger, triggered_by "
            "FROM executions"
        )
        parameters: tuple[Any, ...] = ()
        if pipeline is not None:
            query += " WHERE pipeline = ?"
            parameters = (pipeline,)
        query += " ORDER BY started_at DESC, rowid DESC LIMIT ? OFFSET ?"
        rows = await self._run(
            lambda connection: connection.execute(query, (*parameters, limit, offset)).fetchall()
        )
        with self._reading():
            return [
                ExecutionSummary(
                    id=row[0],
                    pipeline=row[1],
                    status=Status(row[2]),
                    started_at=datetime.fromisoformat(row[3]),
                    finished_at=datetime.fromisoformat(row[4]) if row[4] else None,
                    trigger=row[5],
                    triggered_by=row[6],
                )
                for row in rows
            ]

    async def acquire(
        self, execution_id: str, owner: str, *, until: float, now: float
    ) -> tuple[str, float]:
        """Take or renew the lease on an execution; return its holder and expiry after.

        The lease goes to ``owner`` (until ``until``, epoch seconds) unless another owner holds
        one that has not expired at ``now``; then that owner and its expiry are returned.
        """

        def work(connection: sqlite3.Connection) -> tuple[str, float]:
            unknown = f"cannot lease execution {execution_id}: it is unknown"
            with _immediate(connection, unknown=unknown):
                row = connection.execute(
                    "SELECT owner, until FROM leases WHERE execution_id = ?", (execution_id,)
                ).fetchone()
                if row is not None and row[0] != owner and float(row[1]) > now:
                    return str(row[0]), float(row[1])
                connection.execute(
                    "INSERT INTO leases (execution_id, owner, until) VALUES (?, ?, ?) "
                    "ON CONFLICT (execution_id) DO UPDATE SET owner = excluded.owner, "
                    "until = excluded.until",
                    (execution_id, owner, until),
                )
            return owner, until

        return await self._run(work)

    async def release(self, execution_id: str, owner: str) -> None:
        """Give up ``owner``'s lease on an execution (nothing if another owner holds it)."""

        def work(connection: sqlite3.Connection) -> None:
            with _immediate(connection):
                connection.execute(
                    "DELETE FROM leases WHERE execution_id = ? AND owner = ?", (execution_id, owner)
                )

        await self._run(work)

    async def lease(self, execution_id: str) -> tuple[str, float] | None:
        """Who holds the lease on ``execution_id`` and until when (epoch seconds), or ``None``."""
        row = await self._run(
            lambda connection: connection.execute(
                "SELECT owner, until FROM leases WHERE execution_id = ?", (execution_id,)
            ).fetchone()
        )
        return (str(row[0]), float(row[1])) if row else None

    async def request_stop(self, execution_id: str, *, abandon: bool, reason: str) -> None:
        """Record that ``execution_id`` should stop (an abandon request replaces a plain one)."""

        def work(connection: sqlite3.Connection) -> None:
            unknown = f"cannot stop execution {execution_id}: it is unknown"
            with _immediate(connection, unknown=unknown):
                connection.execute(
                    "INSERT INTO stop_requests (execution_id, abandon, reason) VALUES (?, ?, ?) "
                    "ON CONFLICT (execution_id) DO UPDATE SET "
                    "abandon = max(abandon, excluded.abandon), reason = excluded.reason",
                    (execution_id, int(abandon), reason),
                )

        await self._run(work)

    async def stop_request(self, execution_id: str) -> tuple[bool, str] | None:
        """``(abandon, reason)`` if a stop was requested for ``execution_id``, else ``None``."""
        row = await self._run(
            lambda connection: connection.execute(
                "SELECT abandon, reason FROM stop_requests WHERE execution_id = ?",
                (execution_id,),
            ).fetchone()
        )
        return (bool(row[0]), str(row[1])) if row else None

    async def put_decision(self, execution_id: str, token: int, decision: Decision) -> Decision:
        """Keep ``decision`` on approval request ``token`` unless one is; return the one kept."""

        def work(connection: sqlite3.Connection) -> tuple[Any, ...]:
            unknown = f"cannot decide an approval of execution {execution_id}: it is unknown"
            with _immediate(connection, unknown=unknown):
                connection.execute(
                    "INSERT OR IGNORE INTO decisions (execution_id, token, approved, decided_by, "
                    "summary, time) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        execution_id,
                        token,
                        int(decision.approved),
                        decision.by,
                        decision.summary,
                        decision.time.isoformat(),
                    ),
                )
                row = connection.execute(_DECISION, (execution_id, token)).fetchone()
            return tuple(row)

        row = await self._run(work)
        with self._reading():
            return _decision(row)

    async def decision(self, execution_id: str, token: int) -> Decision | None:
        """The decision kept on approval request ``token`` of ``execution_id``, if any."""
        row = await self._run(
            lambda connection: connection.execute(_DECISION, (execution_id, token)).fetchone()
        )
        with self._reading():
            return _decision(row) if row is not None else None

    async def remember_pipeline(self, plan: Plan) -> None:
        """Keep the definition of a pipeline once per version (its definition hash)."""
        name, digest = plan.pipeline.name, plan.definition_hash()

        def work(connection: sqlite3.Connection) -> None:
            known = connection.execute(
                "SELECT 1 FROM pipelines WHERE name = ? AND hash = ?", (name, digest)
            ).fetchone()
            if known:
                return
            definition = plan.to_json()  # only for a version not seen before
            with _immediate(connection):
                connection.execute(
                    "INSERT OR IGNORE INTO pipelines (name, hash, definition) VALUES (?, ?, ?)",
                    (name, digest, definition),
                )

        await self._run(work)

    async def pipeline_definition(self, name: str, digest: str) -> str | None:
        """The JSON definition of pipeline ``name`` at version ``digest``, if kept."""
        row = await self._run(
            lambda connection: connection.execute(
                "SELECT definition FROM pipelines WHERE name = ? AND hash = ?", (name, digest)
            ).fetchone()
        )
        return str(row[0]) if row else None

    async def cache_get(self, key: str) -> CacheEntry | None:
        """The cached result stored under ``key``, if any."""
        row = await self._run(
            lambda connection: connection.execute(
                f"SELECT {_CACHE_COLUMNS} FROM cache WHERE key = ?",  # noqa: S608 - constant
                (key,),
            ).fetchone()
        )
        if row is None:
            return None
        with self._reading():
            return _cache_entry(row)[1]

    async def cache_put(self, key: str, entry: CacheEntry) -> None:
        """Keep a successful attempt's result under ``key`` (the newest wins)."""

        def work(connection: sqlite3.Connection) -> None:
            with _immediate(connection):
                connection.execute(
                    "INSERT OR REPLACE INTO cache (key, execution_id, node, variables, outputs, "
                    "trees, size, created_at, last_used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        entry.execution_id,
                        entry.node,
                        _json(dict(entry.variables)),
                        _json({k: list(v) for k, v in entry.outputs.items()}),
                        _json(dict(entry.trees)),
                        entry.size,
                        _time(entry.created_at),
                        _time(entry.last_used),
                    ),
                )

        await self._run(work)

    async def cache_entries(self) -> list[tuple[str, CacheEntry]]:
        """Every ``cache=True`` result kept, with its key."""
        rows = await self._run(
            lambda connection: connection.execute(
                f"SELECT {_CACHE_COLUMNS} FROM cache ORDER BY created_at DESC"  # noqa: S608
            ).fetchall()
        )
        with self._reading():
            return [_cache_entry(row) for row in rows]

    async def saved_cache(self, key: str, paths: Sequence[str]) -> SavedCache | None:
        """The ``pk.Cache`` entry saved under exactly ``key`` for ``paths``, if any."""
        row = await self._run(
            lambda connection: connection.execute(
                f"SELECT {_SAVED_COLUMNS} FROM saved_caches WHERE key = ? AND paths = ?",  # noqa: S608
                (key, _json(list(paths))),
            ).fetchone()
        )
        with self._reading():
            return _saved(row) if row is not None else None

    async def saved_caches(self, prefix: str = "") -> list[SavedCache]:
        """``pk.Cache`` entries whose key starts with ``prefix``, newest saved first."""
        # substr, not LIKE: a key may hold % and _, and LIKE ignores case.
        rows = await self._run(
            lambda connection: connection.execute(
                f"SELECT {_SAVED_COLUMNS} FROM saved_caches "  # noqa: S608 - constant
                "WHERE substr(key, 1, ?) = ? ORDER BY created_at DESC, rowid DESC",
                (len(prefix), prefix),
            ).fetchall()
        )
        with self._reading():
            return [_saved(row) for row in rows]

    async def save_cache(self, entry: SavedCache) -> bool:
        """Keep ``entry`` unless its key and paths are taken; ``True`` if it was kept."""

        def work(connection: sqlite3.Connection) -> bool:
            with _immediate(connection):
                cursor = connection.execute(
                    "INSERT OR IGNORE INTO saved_caches (key, paths, trees, size, files, "
                    "created_at, last_used, execution_id, node, root) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        entry.key,
                        _json(list(entry.paths)),
                        _json(dict(entry.trees)),
                        entry.size,
                        entry.files,
                        entry.created_at.isoformat(),
                        entry.last_used.isoformat(),
                        entry.execution_id,
                        entry.node,
                        entry.root,
                    ),
                )
                return cursor.rowcount == 1

        return await self._run(work)

    async def cache_used(self, key: str, when: datetime) -> None:
        """Note that the entries under ``key`` were restored at ``when``."""

        def work(connection: sqlite3.Connection) -> None:
            with _immediate(connection):
                for table in ("cache", "saved_caches"):
                    connection.execute(
                        f"UPDATE {table} SET last_used = ? WHERE key = ?",  # noqa: S608 - ours
                        (when.isoformat(), key),
                    )

        await self._run(work)

    async def delete_caches(self, keys: Collection[str]) -> int:
        """Forget the entries under ``keys``; return how many went (one transaction)."""
        wanted = list(keys)

        def work(connection: sqlite3.Connection) -> int:
            gone = 0
            with _immediate(connection):
                for first in range(0, len(wanted), _ROWS_PER_INSERT):
                    chunk = wanted[first : first + _ROWS_PER_INSERT]
                    marks = ", ".join("?" * len(chunk))
                    for table in ("cache", "saved_caches"):
                        gone += connection.execute(
                            f"DELETE FROM {table} WHERE key IN ({marks})",  # noqa: S608
                            chunk,
                        ).rowcount
            return gone

        return await self._run(work) if wanted else 0

    async def delete_executions(self, execution_ids: Collection[str], *, now: float) -> list[str]:
        """Forget finished, unleased executions with everything kept about them (see ``Store``).

        Which may go is read inside the write transaction that deletes them: a retry that takes
        an execution up (its status and lease written in a transaction of its own) is either
        seen here, and the execution kept, or comes after, and finds it gone.
        """
        wanted = list(dict.fromkeys(execution_ids))
        finished = [status.value for status in TERMINAL]

        def work(connection: sqlite3.Connection) -> list[str]:
            deleted: list[str] = []
            try:
                with _immediate(connection):
                    for first in range(0, len(wanted), _ROWS_PER_INSERT):
                        chunk = wanted[first : first + _ROWS_PER_INSERT]
                        marks = ", ".join("?" * len(chunk))
                        states = ", ".join("?" * len(finished))
                        doomed = [
                            str(row[0])
                            for row in connection.execute(
                                f"SELECT id FROM executions WHERE id IN ({marks}) "  # noqa: S608 - ours
                                f"AND status IN ({states}) AND NOT EXISTS (SELECT 1 FROM leases "
                                "WHERE leases.execution_id = executions.id AND until > ?)",
                                [*chunk, *finished, now],
                            )
                        ]
                        if not doomed:
                            continue
                        marks = ", ".join("?" * len(doomed))
                        # Children first: the foreign keys point at executions.
                        for table in ("events", "decisions", "leases", "stop_requests"):
                            connection.execute(
                                f"DELETE FROM {table} WHERE execution_id IN ({marks})",  # noqa: S608
                                doomed,
                            )
                        connection.execute(
                            f"DELETE FROM executions WHERE id IN ({marks})",  # noqa: S608
                            doomed,
                        )
                        deleted.extend(doomed)
            finally:
                for execution_id in wanted:
                    self._states.pop(execution_id, None)
            return deleted

        return await self._run(work) if wanted else []

    async def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` answer (``"ok"`` when all is well)."""
        row = await self._run(
            lambda connection: connection.execute("PRAGMA integrity_check").fetchone()
        )
        return str(row[0])
