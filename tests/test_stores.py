"""The stores: SQLite's settings and failure modes, identical behaviour of both stores (a
hypothesis state machine), concurrent writers, and history through the engine and the CLI."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import multiprocessing
import os
import random
import sqlite3
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import pipelinekit as pk
from pipelinekit.cli import _history
from pipelinekit.stores import Decision, SQLiteStore
from pipelinekit.stores._sqlite import SCHEMA_VERSION, _json

try:
    from pipelinekit.stores._sqlite import APPLICATION_ID
except ImportError:  # before the fix: the tests that need it fail on it
    APPLICATION_ID = int.from_bytes(b"PKit", "big")

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(  # noqa: PLR0917 - positional for short tests
    execution,
    sequence,
    kind="pipeline",
    state=pk.Status.IN_PROGRESS,
    stage=None,
    action=None,
    **detail,
):
    return pk.Event(
        kind,
        state,
        "p",
        execution,
        T0 + timedelta(seconds=sequence),
        stage,
        action,
        detail,
        sequence,
    )


def record(store, *events):
    return anyio.run(store.record, list(events))


def read(store, execution):
    return anyio.run(store.events, execution)


# -- SQLite itself ---------------------------------------------------------------------------------


def test_sqlite_settings_and_file_mode(tmp_path):
    path = tmp_path / "state.db"
    store = SQLiteStore(path)
    record(store, event("e1", 1))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    connection = store._connection().connection
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert connection.execute("PRAGMA busy_timeout").fetchone()[0] == 30000
    version = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'")
    assert int(version.fetchone()[0]) == SCHEMA_VERSION
    assert anyio.run(store.integrity_check) == "ok"


def test_events_survive_reopening(tmp_path):
    path = tmp_path / "state.db"
    first = SQLiteStore(path)
    written = [event("e1", 1, triggered_by="alice"), event("e1", 2, "stage", stage="Build")]
    record(first, *written)
    first.close()
    again = SQLiteStore(path)
    assert read(again, "e1") == written
    history = anyio.run(again.executions)
    assert [(h.id, h.pipeline, h.status, h.triggered_by) for h in history] == [
        ("e1", "p", pk.Status.IN_PROGRESS, "alice")
    ]


def test_a_large_batch_is_written_whole_and_in_order(tmp_path):
    # Batches go to SQLite as INSERTs of up to 100 rows: 250 events take three.
    store = SQLiteStore(tmp_path / "state.db")
    written = [event("e1", 1)] + [
        event("e1", n, "action", stage="S", action=f"A{n}", n=n) for n in range(2, 251)
    ]
    record(store, *written)
    assert read(store, "e1") == written
    # A bad event at the end of a batch (a gap) and none of the batch is kept.
    late = [event("e1", n, "action", stage="S", action=f"B{n}") for n in range(251, 451)]
    with pytest.raises(pk.StoreError, match="expects event number 451"):
        record(store, *late, event("e1", 452, "action", stage="S", action="C"))
    assert read(store, "e1") == written


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "state.db"
    record(SQLiteStore(path), event("e1", 1))
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(pk.StoreError, match="written by a newer pipelinekit \\(schema 99"):
        record(SQLiteStore(path), event("e2", 1))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda tmp: tmp / "missing" / "state.db", "does not exist; create it first"),
        (lambda tmp: tmp, "it is a directory"),
        (
            lambda tmp: (tmp / "x.db").write_text("hello, not a database" * 100) and tmp / "x.db",
            "it is not an SQLite database",
        ),
    ],
)
def test_paths_that_cannot_hold_a_database(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(pk.StoreError) as caught:
        record(SQLiteStore(path), event("e1", 1))
    assert str(path) in str(caught.value)
    assert reason in str(caught.value)


def test_an_engine_keeps_history_in_sqlite_by_default(tmp_path, cli):
    pipeline = pk.Pipeline("p", [pk.Stage("S", [pk.Action("W", pk.Wait(0))])])
    results = [pk.run(pipeline, workdir=tmp_path) for _ in range(3)]
    store = SQLiteStore(tmp_path / "state.db")
    history = anyio.run(store.executions)
    assert [h.id for h in history] == [r.execution_id for r in reversed(results)]

    async def through_the_engine():
        async with pk.Engine(workdir=tmp_path) as engine:
            return await engine.history(pipeline, limit=2, offset=1)

    assert [h.id for h in anyio.run(through_the_engine)] == [
        results[1].execution_id,
        results[0].execution_id,
    ]
    status, out, _ = cli("history", "--store", str(tmp_path / "state.db"), "--limit", "2")
    assert status == 0
    assert results[2].execution_id in out
    assert results[0].execution_id not in out
    status, out, _ = cli(
        "history",
        "p",
        "--store",
        str(tmp_path / "state.db"),
        "--limit",
        "2",
        "--page",
        "2",
        "--json",
    )
    assert status == 0
    (oldest,) = json.loads(out)["pipelineExecutionSummaries"]
    assert oldest["pipelineExecutionId"] == results[0].execution_id
    assert oldest["status"] == "Succeeded"
    assert oldest["trigger"]["triggerType"] == "StartPipelineExecution"
    assert oldest["durationSeconds"] >= 0
    status, out, _ = cli("status", results[0].execution_id, "--store", str(tmp_path / "state.db"))
    assert status == 0
    assert "✔ W Succeeded" in out
    status, _, err = cli("status", "nope", "--store", str(tmp_path / "state.db"))
    assert status == 2
    assert "has no execution 'nope'" in err


def test_status_json_and_logs(tmp_path, cli):
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage("Build", [pk.Action("Make", pk.shell("echo compiling; exit 4"))]),
            pk.Stage("Ship", [pk.Action("Go", pk.shell("true"))]),
        ],
    )
    result = pk.run(pipeline, workdir=tmp_path)
    store = str(tmp_path / "state.db")
    status, out, _ = cli("status", result.execution_id, "--json", "--store", store)
    assert status == 0
    import json  # noqa: PLC0415

    state = json.loads(out)
    assert state["pipelineName"] == "p"
    assert state["status"] == "Failed"
    build, ship = state["stageStates"]
    assert build["latestExecution"]["status"] == "Failed"
    make = build["actionStates"][0]["latestExecution"]
    assert make["errorDetails"]["message"].startswith("command exited with status 4")
    assert ship["actionStates"][0]["latestExecution"]["status"] == "NotStarted"
    status, out, _ = cli("logs", result.execution_id, "Build.Make", "--store", store)
    assert status == 0
    assert "compiling" in out
    status, _, err = cli("logs", result.execution_id, "Ship.Go", "--store", store)
    assert status == 2
    assert f"Ship.Go never ran in execution {result.execution_id}" in err
    status, _, err = cli("logs", result.execution_id, "Ship.Gone", "--store", store)
    assert status == 2
    assert "has no action 'Ship.Gone' (actions: Build.Make, Ship.Go)" in err


# -- both stores behave the same ---------------------------------------------------------------


SUBJECTS = [
    ("pipeline", None, None),
    ("stage", "S", None),
    ("stage", "T", None),
    ("action", "S", "A"),
    ("action", "S", "B"),
    ("approval", "S", "A"),
]
STATES = [
    pk.Status.IN_PROGRESS,
    pk.Status.SUCCEEDED,
    pk.Status.FAILED,
    pk.Status.WAITING_FOR_APPROVAL,
]


class BothStores(RuleBasedStateMachine):
    """Drive MemoryStore and SQLiteStore with the same operations; every answer must agree.

    Both share their rule code, so agreement says nothing about the rules themselves: those are
    checked against expectations stated in tests/test_store_contract.py.
    """

    @initialize()
    def open(self):
        self.tmp = tempfile_dir()
        self.memory = pk.MemoryStore()
        self.sqlite = SQLiteStore(self.tmp / "state.db")
        self.next = {}

    def both(self, events):
        outcomes = []
        for store in (self.memory, self.sqlite):
            try:
                record(store, *events)
                outcomes.append("ok")
            except pk.StoreError as error:
                outcomes.append(type(error).__name__)
        assert outcomes[0] == outcomes[1], (events, outcomes)
        return outcomes[0] == "ok"

    @rule(
        execution=st.sampled_from(["e1", "e2", "e3"]),
        count=st.integers(1, 3),
        picks=st.lists(
            st.tuples(st.sampled_from(SUBJECTS), st.sampled_from(STATES)), min_size=1, max_size=3
        ),
    )
    def append(self, execution, count, picks):
        start = self.next.get(execution, 1)
        events = []
        if start == 1:
            # Start new executions on purpose: a random first event is almost always refused.
            picks = [(("pipeline", None, None), pk.Status.IN_PROGRESS), *picks]
        for offset, ((kind, stage, action), state) in enumerate(picks[:count]):
            events.append(event(execution, start + offset, kind, state, stage, action))
        if self.both(events):
            self.next[execution] = start + len(events)

    @rule(execution=st.sampled_from(["e1", "e2"]), skip=st.integers(-1, 2))
    def out_of_sequence(self, execution, skip):
        sequence = self.next.get(execution, 1) + skip
        if sequence == self.next.get(execution, 1):
            return
        self.both([event(execution, sequence, "stage", pk.Status.IN_PROGRESS, "S")])

    @rule(
        execution=st.sampled_from(["e1", "e2", "nope"]),
        token=st.integers(1, 3),
        approved=st.booleans(),
        by=st.sampled_from(["bob", "alice"]),
    )
    def decide(self, execution, token, approved, by):
        decision = Decision(approved, by, "", T0)
        answers = []
        for store in (self.memory, self.sqlite):
            try:
                answers.append(anyio.run(store.put_decision, execution, token, decision))
            except pk.StoreError as error:
                answers.append(type(error).__name__)
        assert answers[0] == answers[1], (execution, token, answers)

    @invariant()
    def same_reads(self):
        for execution in ("e1", "e2", "e3"):
            assert read(self.memory, execution) == read(self.sqlite, execution)
        memory = anyio.run(self.memory.executions)
        sqlite = anyio.run(self.sqlite.executions)
        assert memory == sqlite
        for execution in ("e1", "e2"):
            for token in (1, 2, 3):
                assert anyio.run(self.memory.decision, execution, token) == anyio.run(
                    self.sqlite.decision, execution, token
                )

    def teardown(self):
        self.sqlite.close()


def tempfile_dir():
    import tempfile  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    return Path(tempfile.mkdtemp(prefix="pk-stores-"))


TestBothStores = BothStores.TestCase
TestBothStores.settings = settings(max_examples=40, stateful_step_count=15, deadline=None)


# -- concurrent writers -------------------------------------------------------------------------


def write_executions(path, prefix, executions, events_each):
    store = SQLiteStore(path, busy_timeout=60)
    for number in range(executions):
        execution = f"{prefix}-{number}"
        record(store, event(execution, 1))
        for sequence in range(2, events_each + 1):
            record(
                store, event(execution, sequence, "stage", pk.Status.IN_PROGRESS, f"S{sequence}")
            )
    store.close()


def test_threads_and_processes_write_one_database_without_losing_anything(tmp_path):
    path = tmp_path / "state.db"
    record(SQLiteStore(path), event("seed", 1))  # create the schema once
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=write_executions, args=(path, f"process{i}", 5, 20))
        for i in range(2)
    ]
    threads = [
        threading.Thread(target=write_executions, args=(path, f"thread{i}", 5, 20))
        for i in range(3)
    ]
    for worker in [*processes, *threads]:
        worker.start()
    for thread in threads:
        thread.join(timeout=120)
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    store = SQLiteStore(path)
    history = anyio.run(lambda: store.executions(limit=100))
    assert len(history) == 1 + 5 * 5
    for summary in history:
        if summary.id == "seed":
            continue
        assert [e.sequence for e in read(store, summary.id)] == list(range(1, 21))
    assert anyio.run(store.integrity_check) == "ok"


def test_pipeline_definitions_are_kept_once_per_version(tmp_path):
    import json  # noqa: PLC0415

    path = tmp_path / "state.db"
    first = pk.Pipeline("p", [pk.Stage("S", [pk.Action("W", pk.Wait(0))])])
    second = pk.Pipeline(
        "p", [pk.Stage("S", [pk.Action("W", pk.Wait(0)), pk.Action("X", pk.Wait(0))])]
    )
    for pipeline in (first, first, second):
        pk.run(pipeline, store=SQLiteStore(path), workdir=tmp_path)
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        assert connection.execute("SELECT count(*) FROM pipelines").fetchone() == (2,)
    store = SQLiteStore(path)
    definition = anyio.run(store.pipeline_definition, "p", second.shared_plan().definition_hash())
    assert json.loads(definition)["stages"][0]["actions"] == ["S.W", "S.X"]
    memory = pk.MemoryStore()
    pk.run(first, store=memory, workdir=tmp_path)
    digest = first.shared_plan().definition_hash()
    assert json.loads(anyio.run(memory.pipeline_definition, "p", digest))["pipeline"] == "p"


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=12,
)


@given(st.dictionaries(st.text(), _json_values, max_size=4))
def test_event_details_are_encoded_as_json_dumps_would(detail):
    # The store encodes details with a C encoder built once; it must write what json.dumps does.
    assert _json(detail) == json.dumps(detail, default=str, separators=(",", ":"))


def _write_in_child(store, connection):
    try:
        record(store, event("child", 1), event("child", 2, "stage", pk.Status.IN_PROGRESS, "S"))
        store.close()
        connection.send("ok")
    except BaseException as error:  # noqa: BLE001 - reported to the parent
        connection.send(repr(error))


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_store_used_before_a_fork_works_in_the_child(tmp_path):
    # The default start method on Linux forks: the child inherits the store with its thread
    # and connection, which it must not use.
    store = SQLiteStore(tmp_path / "state.db")
    record(store, event("parent", 1))
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_write_in_child, args=(store, send))
    child.start()
    try:
        assert receive.poll(60), "the child hung using the store it inherited"
        assert receive.recv() == "ok"
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
    record(store, event("parent", 2, "stage", pk.Status.IN_PROGRESS, "S"))
    assert [e.sequence for e in read(store, "child")] == [1, 2]
    assert [e.sequence for e in read(store, "parent")] == [1, 2]
    assert anyio.run(store.integrity_check) == "ok"
    store.close()


@pytest.mark.anyio
async def test_logs_follow_prints_an_action_log_until_the_action_ends(tmp_path):
    gate = tmp_path / "gate"
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage(
                "Build",
                [
                    pk.Action(
                        "Make",
                        pk.shell(
                            f"echo first; while [ ! -e {gate} ]; do sleep 0.01; done; echo second"
                        ),
                    )
                ],
            )
        ],
    )
    path = tmp_path / "state.db"
    waits: list[bool] = []

    def wait():
        # Called between two looks: only now may the action go on and end.
        waits.append(gate.exists())
        gate.touch()
        os.sched_yield()

    async with pk.Engine(store=SQLiteStore(path), workdir=tmp_path) as engine:
        execution = await engine.start(pipeline)
        async for seen in execution.events():
            if seen.node == "Build.Make" and seen.state is pk.Status.IN_PROGRESS:
                break
        out = io.StringIO()
        follower = SQLiteStore(path)
        try:
            await anyio.to_thread.run_sync(
                partial(
                    _history.logs, follower, execution.id, "Build.Make", out, follow=True, wait=wait
                )
            )
        finally:
            gate.touch()
            follower.close()
        assert (await execution.wait()).succeeded
    assert waits[0] is False  # it waited while the action ran
    text = out.getvalue()
    assert text.index("first") < text.index("second")


def test_a_secret_default_never_reaches_the_store(tmp_path):
    """The definition kept with an execution masks a secret variable's default."""
    path = tmp_path / "state.db"
    pipeline = pk.Pipeline(
        "p",
        [pk.Stage("S", [pk.Action("A", pk.shell("true"))])],
        variables=[pk.Variable("token", default="s3cr3t-default", secret=True)],
    )
    store = SQLiteStore(path)
    try:
        assert pk.run(pipeline, store=store, workdir=tmp_path).succeeded
    finally:
        store.close()
    assert b"s3cr3t-default" not in path.read_bytes()
    assert "s3cr3t-default" not in pipeline.compile().to_json()
    assert '"default": "****"' in pipeline.compile().to_json()


# -- a file that is not its own, read-only or damaged ----------------------------------------------

DATA = Path(__file__).parent / "data"
#: The execution in data/state-schema-8.db.gz, a database made by pipelinekit before it set
#: SQLite's application_id (schema 8): a run whose approval bob decided from another engine.
SCHEMA_8_EXECUTION = "c3583a80-9c85-4b90-a878-a316adc0233e"


def schema_8_database(tmp_path):
    path = tmp_path / "state.db"
    path.write_bytes(gzip.decompress((DATA / "state-schema-8.db.gz").read_bytes()))
    return path


def every_call(store):
    """Each way in: a read, a write, a decision; what each gave (``"ok"`` or the error)."""
    calls = {
        "events": partial(store.events, "e1"),
        "executions": store.executions,
        "record": partial(store.record, [event("e9", 1)]),
        "decision": partial(store.decision, "e1", 1),
    }
    answers = {}
    for name, call in calls.items():
        try:
            anyio.run(call)
            answers[name] = "ok"
        except pk.StoreError as error:
            answers[name] = f"StoreError: {error}"
        except Exception as error:  # noqa: BLE001 - what leaks is what the test looks for
            answers[name] = f"{type(error).__module__}.{type(error).__name__}: {error}"
    return answers


def test_a_new_database_is_marked_as_pipelinekit_s(tmp_path):
    path = tmp_path / "state.db"
    store = SQLiteStore(path)
    record(store, event("e1", 1))
    store.close()
    with contextlib.closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert int.from_bytes(b"PKit", "big") == APPLICATION_ID


def make_foreign(path, *, application_id=0, table=True, journal="delete", lookalike=False):
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(f"PRAGMA journal_mode = {journal}")
        if application_id:
            connection.execute(f"PRAGMA application_id = {application_id}")
        if lookalike:  # pipelinekit's table names, but no schema version: not ours
            for name in ("meta", "executions", "events"):
                connection.execute(f"CREATE TABLE {name} (key TEXT, value TEXT)")
        elif table:
            connection.execute("CREATE TABLE users (name TEXT)")
            connection.execute("INSERT INTO users VALUES ('ann')")
        else:
            connection.execute("PRAGMA user_version = 3")


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({}, "it is another program's SQLite database (tables: users)"),
        ({"journal": "wal"}, "it is another program's SQLite database (tables: users)"),
        ({"application_id": 0x12345678, "table": False}, "application_id 0x12345678"),
        ({"table": False}, "it is another program's SQLite database (no tables)"),
        ({"lookalike": True}, "(tables: events, executions, meta)"),
    ],
)
def test_someone_else_s_database_is_refused_untouched(tmp_path, options, reason):
    path = tmp_path / "theirs.db"
    make_foreign(path, **options)
    before = path.read_bytes()
    answers = every_call(SQLiteStore(path))
    assert path.read_bytes() == before
    assert not (tmp_path / "theirs.db-wal").exists()
    for answer in answers.values():
        assert answer.startswith("StoreError: "), answer
        assert str(path) in answer
        assert reason in answer
        assert "give pipelinekit a file of its own" in answer


def test_a_database_of_the_previous_schema_is_recognised_and_marked(tmp_path):
    path = schema_8_database(tmp_path)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA application_id").fetchone()[0] == 0
    store = SQLiteStore(path)
    events = read(store, SCHEMA_8_EXECUTION)
    assert [e.state for e in events if e.type == "pipeline"][-1] is pk.Status.SUCCEEDED
    approval = next(e for e in events if e.type == "approval")
    kept = anyio.run(store.decision, SCHEMA_8_EXECUTION, approval.sequence)
    assert kept is not None
    assert (kept.by, kept.summary, kept.approved) == ("bob", "ok", True)
    assert anyio.run(store.integrity_check) == "ok"
    store.close()
    with contextlib.closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        version = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'")
        assert int(version.fetchone()[0]) == SCHEMA_VERSION
    # And it goes on being used, now known by its id.
    again = SQLiteStore(path)
    record(again, event("e2", 1))
    assert "e2" in [h.id for h in anyio.run(again.executions)]
    again.close()


#: Root ignores file modes. Dropped from the bounding set, these capabilities are gone from the
#: program it then runs, which obeys file modes like anyone else: CAP_DAC_OVERRIDE,
#: CAP_DAC_READ_SEARCH, CAP_FOWNER (PR_CAPBSET_DROP is 24).
DROP_OVERRIDE = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
for capability in (1, 2, 3):
    if libc.prctl(24, capability, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""

CHILD = """
import json, sys
sys.path.insert(0, sys.argv[2])
from test_stores import every_call
from pipelinekit.stores import SQLiteStore
print(json.dumps(every_call(SQLiteStore(sys.argv[1]))))
"""


def every_call_obeying_file_modes(path):
    """``every_call`` in a child process that cannot write where the file modes say so."""
    command = [sys.executable, "-c", CHILD, str(path), str(Path(__file__).parent)]
    if os.geteuid() == 0:
        command = [sys.executable, "-c", DROP_OVERRIDE, *command[1:]]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(sys.platform != "linux", reason="drops root's capabilities the Linux way")
@pytest.mark.parametrize("where", ["file", "folder"])
def test_a_read_only_database_is_a_store_error_naming_the_fix(tmp_path, where):
    path = tmp_path / "state.db"
    store = SQLiteStore(path)
    record(store, event("e1", 1))
    store.close()
    if where == "file":
        path.chmod(0o444)
    else:
        tmp_path.chmod(0o555)
    try:
        answers = every_call_obeying_file_modes(path)
    finally:
        tmp_path.chmod(0o755)
        path.chmod(0o600)
    if where == "file":
        # What it holds can still be read; a change is refused.
        assert answers["events"] == answers["executions"] == answers["decision"] == "ok"
        refused = [answers["record"]]
    else:
        # SQLite cannot make its -wal and -shm files beside it: nothing works.
        refused = list(answers.values())
    for answer in refused:
        assert answer.startswith("StoreError: "), answer
        assert str(path) in answer
        assert "it is read-only" in answer
        assert "write access" in answer


def damage(path, how):
    if how == "random bytes":
        path.write_bytes(random.Random(7).randbytes(40_000))
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:30_000])
    else:  # pages past the first overwritten: opens, then fails on reading the events
        data = bytearray(path.read_bytes())
        noise = random.Random(7).randbytes(3000)
        for page in range(2, len(data) // 4096):
            data[page * 4096 + 100 : page * 4096 + 3100] = noise
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["random bytes", "truncated", "damaged pages"])
def test_a_damaged_database_is_one_clear_store_error(tmp_path, cli, how):
    path = schema_8_database(tmp_path)
    damage(path, how)
    store = SQLiteStore(path)
    with pytest.raises(pk.StoreError) as caught:
        read(store, SCHEMA_8_EXECUTION)
    store.close()
    message = str(caught.value)
    assert str(path) in message
    assert "\n" not in message
    assert "move it aside" in message
    for command in (
        ["status", SCHEMA_8_EXECUTION],
        ["approve", SCHEMA_8_EXECUTION, "Approve.Prod", "--by", "bob"],
    ):
        status, out, err = cli(*command, "--store", str(path))
        assert status == 2, (command, out, err)
        assert err.count("\n") == 1, err
        assert err.startswith("pipelinekit: error: cannot use "), err


def test_resume_on_a_damaged_database_is_one_line(tmp_path, cli):
    path = schema_8_database(tmp_path)
    damage(path, "damaged pages")
    status, _, err = cli("resume", SCHEMA_8_EXECUTION, "--store", str(path))
    assert status == 2
    assert err.count("\n") == 1, err


def test_errors_in_the_store_s_thread_are_store_errors(tmp_path):
    path = tmp_path / "state.db"
    store = SQLiteStore(path, busy_timeout=0.05)
    record(store, event("e1", 1))
    # Another process holds the write lock longer than the store waits.
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(pk.StoreError, match="locked by another process") as caught:
            record(store, event("e1", 2, "stage", stage="S"))
        other.execute("ROLLBACK")
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    # A table dropped behind its back.
    with contextlib.closing(sqlite3.connect(path)) as other, other:
        other.execute("DROP TABLE decisions")
    with pytest.raises(pk.StoreError, match="no such table: decisions"):
        anyio.run(store.decision, "e1", 1)
    # A record changed behind its back into something pipelinekit never writes.
    with contextlib.closing(sqlite3.connect(path)) as other, other:
        other.execute("UPDATE events SET detail = '{not json' WHERE execution_id = 'e1'")
    with pytest.raises(pk.StoreError, match="holds a record pipelinekit cannot read"):
        read(store, "e1")
    store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_lease_is_read_without_being_changed(tmp_path, kind):
    store = pk.MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "state.db")
    record(store, event("e1", 1))

    async def check():
        assert await store.lease("e1") is None
        assert await store.acquire("e1", "me", until=100.0, now=1.0) == ("me", 100.0)
        assert await store.lease("e1") == ("me", 100.0)
        # Reading it neither renews it nor lets anybody else in.
        assert await store.acquire("e1", "you", until=200.0, now=50.0) == ("me", 100.0)
        assert await store.lease("e1") == ("me", 100.0)
        await store.release("e1", "me")
        assert await store.lease("e1") is None

    anyio.run(check)
