"""Durability for real: a process killed with SIGKILL mid-run, its execution resumed; leases
that keep two processes from running one execution."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
import attrs
import pytest

import pipelinekit as pk

PIPELINE = """
import time
from pathlib import Path

import pipelinekit as pk

HERE = Path(__file__).parent
LEDGER = HERE / "ledger.txt"


def record(name):
    with LEDGER.open("a") as ledger:
        ledger.write(name + "\\n")


def quick(name):
    def body(ctx):
        record(name)
    return body


def blocking(name, release):
    def body(ctx):
        record(name)
        (HERE / f"started-{name}").touch()
        while not (HERE / release).exists():
            time.sleep(0.02)
    return body


IDEM = pk.python(blocking("Two.Idem", "release"), idempotent=True)
ONCE = pk.python(blocking("Branch.Once", "release"))
pipeline = pk.Pipeline("durable", [
    pk.Stage("One", [pk.Action("A", pk.python(quick("One.A"))),
                     pk.Action("B", pk.python(quick("One.B")))]),
    pk.Stage("Two", [pk.Action("Idem", IDEM)]),
    pk.Stage("Branch", [pk.Action("Once", ONCE)], needs=["One"]),
    pk.Stage("Three", [pk.Action("C", pk.python(quick("Three.C")))], needs=["Two"]),
    pk.Stage("Four", [pk.Action("D", pk.python(quick("Four.D")))]),
    pk.Stage("Five", [pk.Action("E", pk.python(quick("Five.E")))]),
])
"""


def wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def start_and_kill(tmp_path: Path) -> str:
    (tmp_path / "pipeline.py").write_text(textwrap.dedent(PIPELINE))
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelinekit", "run", str(tmp_path / "pipeline.py"),
         "--store", str(tmp_path / "wd"), "--plain"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for(tmp_path / "started-Two.Idem")
    wait_for(tmp_path / "started-Branch.Once")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    store = pk.SQLiteStore(tmp_path / "wd" / "state.db")
    (summary,) = anyio.run(store.executions)
    store.close()
    assert summary.status is pk.Status.IN_PROGRESS  # the killed run never ended it
    return summary.id


def ledger(tmp_path: Path) -> list[str]:
    return (tmp_path / "ledger.txt").read_text().split()


def test_a_killed_run_is_resumed_without_running_anything_twice_by_surprise(tmp_path):
    execution_id = start_and_kill(tmp_path)
    (tmp_path / "release").touch()  # the re-run of the idempotent action must not block
    # No wait for the dead owner's lease: its process is known to be gone.

    async def resume():
        store = pk.SQLiteStore(tmp_path / "wd" / "state.db")
        async with pk.Engine(store=store, workdir=tmp_path / "wd") as engine:
            execution = await engine.resume(execution_id)  # the pipeline's source was recorded
            result = await execution.wait()
        return result, await store.events(execution_id), await store.integrity_check()

    result, events, integrity = anyio.run(resume)
    runs = ledger(tmp_path)
    assert runs.count("One.A") == runs.count("One.B") == 1  # completed: never again
    assert runs.count("Two.Idem") == 2  # in flight and idempotent: run again
    assert runs.count("Branch.Once") == 1  # in flight, not idempotent: not run again
    assert runs.count("Three.C") == runs.count("Four.D") == runs.count("Five.E") == 1
    once = result.actions["Branch.Once"]
    assert once.status is pk.Status.FAILED
    assert once.error.startswith("interrupted: the process running it stopped")
    assert result.actions["Two.Idem"].status is pk.Status.SUCCEEDED
    assert [a.number for a in result.actions["Two.Idem"].attempts] == [1, 2]
    assert result.stages["Five"].status is pk.Status.SUCCEEDED
    assert result.status is pk.Status.FAILED  # because of the interrupted branch
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "pipeline"
    assert events[-1].state is pk.Status.FAILED
    assert integrity == "ok"


def test_two_processes_resuming_one_execution_one_wins(tmp_path):
    execution_id = start_and_kill(tmp_path)
    command = [sys.executable, "-m", "pipelinekit", "resume", execution_id,
               "--store", str(tmp_path / "wd" / "state.db"), "--plain"]  # fmt: skip
    env = {**os.environ, "PIPELINEKIT_LEASE_SECONDS": "30"}
    first = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    wait_for(tmp_path / "started-Two.Idem")  # already there; wait for the re-run instead
    deadline = time.monotonic() + 30
    while ledger(tmp_path).count("Two.Idem") < 2:
        assert time.monotonic() < deadline, "the resumed run never re-ran Two.Idem"
        time.sleep(0.02)
    second = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert second.returncode == 2
    assert f"execution {execution_id} is run by " in second.stderr
    assert "on this host; stop it there" in second.stderr
    (tmp_path / "release").touch()
    out, err = first.communicate(timeout=60)
    assert first.returncode == 1, err  # finished; failed only by the interrupted branch
    assert out.splitlines()[-1].startswith("pipeline 'durable' Failed in ")


def test_resume_refuses_what_cannot_be_resumed(tmp_path):
    pipeline = pk.Pipeline("p", [pk.Stage("S", [pk.Action("W", pk.Wait(0))])])
    done = pk.run(pipeline, workdir=tmp_path)

    async def resume(execution_id, **options):
        async with pk.Engine(workdir=tmp_path) as engine:
            await engine.resume(execution_id, **options)

    with pytest.raises(pk.ExecutionError, match="already ended Succeeded"):
        anyio.run(resume, done.execution_id)
    with pytest.raises(pk.ExecutionError, match="has no execution 'nope'"):
        anyio.run(resume, "nope")


def test_an_older_database_migrates_forward(tmp_path):
    path = tmp_path / "state.db"
    connection = sqlite3.connect(path)
    from pipelinekit.stores._sqlite import _MIGRATIONS, SCHEMA_VERSION  # noqa: PLC0415

    connection.executescript(_MIGRATIONS[1])
    connection.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    # An execution written by that version, which kept a copy of its last sequence number.
    connection.execute(
        "INSERT INTO executions (id, pipeline, status, started_at, last_sequence) "
        "VALUES ('old', 'p', 'InProgress', '2026-01-01T00:00:00+00:00', 2)"
    )
    connection.executemany(
        "INSERT INTO events VALUES ('old', ?, ?, 'InProgress', ?, NULL, "
        "'2026-01-01T00:00:00+00:00', '{}')",
        [(1, "pipeline", None), (2, "stage", "S")],
    )
    connection.commit()
    connection.close()
    result = pk.run(
        pk.Pipeline("p", [pk.Stage("S", [pk.Action("W", pk.Wait(0))])]),
        store=pk.SQLiteStore(path),
        workdir=tmp_path,
    )
    assert result.succeeded
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        assert connection.execute("SELECT value FROM meta").fetchone() == (str(SCHEMA_VERSION),)
        assert connection.execute("SELECT count(*) FROM leases").fetchone() == (0,)
        assert connection.execute("SELECT count(*) FROM stop_requests").fetchone() == (0,)
    store = pk.SQLiteStore(path)
    assert [e.sequence for e in anyio.run(store.events, "old")] == [1, 2]
    later = pk.Event("stage", pk.Status.SUCCEEDED, "p", "old", datetime.now(UTC), "S", sequence=3)
    with pytest.raises(pk.StoreError, match="expects event number 3"):
        anyio.run(store.record, [attrs.evolve(later, sequence=4)])
    anyio.run(store.record, [later])
    assert [e.sequence for e in anyio.run(store.events, "old")] == [1, 2, 3]


def test_a_resumed_run_is_given_its_secrets_again(tmp_path):
    seen: list[str] = []

    async def deploy(ctx):
        seen.append(ctx.variables["variables.token"])

    pipeline = pk.Pipeline(
        "p",
        [pk.Stage("S", [pk.Action("Deploy", pk.python(deploy))])],
        variables=[pk.Variable("token", secret=True)],
    )
    store = pk.MemoryStore()
    # What a process that died right after starting left: the start, the secret masked.
    begun = pk.Event(
        "pipeline",
        pk.Status.IN_PROGRESS,
        "p",
        "x1",
        datetime.now(UTC),
        detail={"variables": {"token": "****"}, "secrets_given": ["token"]},
        sequence=1,
    )
    anyio.run(store.record, [begun])

    async def resume(variables):
        async with pk.Engine(store=store, workdir=tmp_path) as engine:
            execution = await engine.resume("x1", pipeline=pipeline, variables=variables)
            return await execution.wait()

    with pytest.raises(pk.ExecutionError, match="secret variable 'token' had a value given"):
        anyio.run(resume, {})
    assert anyio.run(resume, {"token": "s3cr3t"}).succeeded
    assert seen == ["s3cr3t"]


STOPPABLE = """
from pathlib import Path

import anyio

import pipelinekit as pk

GO = Path(__file__).parent / "go"


async def unit(ctx):
    while not GO.exists():  # until the test lets it finish
        await anyio.sleep(0.01)


pipeline = pk.Pipeline("stoppable", [
    pk.Stage("Build", [pk.Action("Make", pk.shell("echo made"))]),
    pk.Stage("Test", [pk.Action("Unit", pk.python(unit)), pk.Action("Lint", pk.shell("true"))]),
    pk.Stage("Deploy", [pk.Action("Ship", pk.shell("echo shipped"))]),
])
"""


def stopped_execution(tmp_path: Path, *, abandon: bool) -> str:
    """An execution of STOPPABLE stopped while Test.Unit runs (abandoned, or let finish)."""
    from pipelinekit._model._loader import load_pipeline  # noqa: PLC0415

    path = tmp_path / "stoppable.py"
    path.write_text(textwrap.dedent(STOPPABLE))
    pipeline, _ = load_pipeline(str(path))

    async def main() -> str:
        async with pk.Engine(workdir=tmp_path / "wd") as engine:
            execution = await engine.start(pipeline, source=f"{path}:pipeline")
            async for event in execution.events():
                if event.node == "Test.Unit" and event.state is pk.Status.IN_PROGRESS:
                    break
            await engine.stop(execution.id, abandon=abandon)
            if not abandon:
                (tmp_path / "go").touch()
            await execution.wait()
            return execution.id

    return anyio.run(main)


def test_resume_after_a_stop_names_the_stages_to_retry_and_the_command(tmp_path, cli):
    """Today's cut: 'already ended Stopped; nothing to resume', no stage, no command."""
    execution_id = stopped_execution(tmp_path, abandon=True)
    store = str(tmp_path / "wd")
    status, out, err = cli("resume", execution_id[:8], "--store", store)
    assert status == 2
    assert out == ""
    (line,) = err.splitlines()
    assert f"execution {execution_id} was stopped" in line
    assert f"pipelinekit retry {execution_id} Test --store {store}" in line
    assert "Deploy" not in line  # it never started: retrying Test runs it
    # What it names works.
    (tmp_path / "go").touch()
    status, out, err = cli("retry", execution_id, "Test", "--store", store, "--plain")
    assert status == 0, out + err
    status, out, _ = cli("status", execution_id, "--store", store)
    assert "Deploy.Ship" not in out  # the tree shows names, not nodes
    assert "Ship Succeeded" in out


def test_resume_after_a_stop_between_stages_names_run_from_reuse(tmp_path, cli):
    """Stopped once Test finished: no stage can be retried; a new run can take it from there."""
    execution_id = stopped_execution(tmp_path, abandon=False)
    store = str(tmp_path / "wd")
    status, _, err = cli("resume", execution_id, "--store", store)
    assert status == 2
    (line,) = err.splitlines()
    assert "no stage of it failed or stopped" in line
    assert (
        f"pipelinekit run {tmp_path / 'stoppable.py'}:pipeline --from Deploy "
        f"--reuse {execution_id} --store {store}"
    ) in line


def test_the_command_line_resume_shows_what_ran_before_the_crash(tmp_path, cli):
    execution_id = start_and_kill(tmp_path)
    (tmp_path / "release").touch()
    status, out, _ = cli("resume", execution_id, "--store", str(tmp_path / "wd"), "--plain")
    assert status == 1, out  # Branch.Once was interrupted
    first = out.splitlines()[0]
    assert first.startswith(f"earlier in execution {execution_id[:8]}: One.A Succeeded, ")
    assert "Two.Idem InProgress" in first
    # What succeeded before the crash is not printed again as if it ran now.
    assert "action One.A" not in out
    assert "in 2 runs" in out.splitlines()[-1]
