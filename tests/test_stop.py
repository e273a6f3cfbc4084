"""Stopping executions: stop-and-wait, abandon, from another process through the store."""

from __future__ import annotations

import anyio
import pytest

import pipelinekit as pk

pytestmark = pytest.mark.anyio


def pipeline(started, release):
    async def slow(ctx):
        started.set()
        await release.wait()

    return pk.Pipeline(
        "p",
        [
            pk.Stage(
                "S",
                [pk.Action("Slow", pk.python(slow)), pk.Action("Later", pk.Wait(0), run_order=2)],
            ),
            pk.Stage("T", [pk.Action("Next", pk.Wait(0))]),
        ],
    )


async def test_stop_and_wait_lets_running_actions_finish(tmp_path):
    started, release = anyio.Event(), anyio.Event()
    async with pk.Engine(workdir=tmp_path) as engine:
        execution = await engine.start(pipeline(started, release))
        await started.wait()
        await engine.stop(execution.id, reason="maintenance")
        with pytest.raises(pk.ExecutionError, match="already stopping"):
            await engine.stop(execution.id)
        release.set()
        result = await execution.wait()
        events = await engine.store.events(execution.id)
    assert result.status is pk.Status.STOPPED
    assert result.actions["S.Slow"].status is pk.Status.SUCCEEDED  # it finished
    assert result.actions["S.Later"].status is pk.Status.NOT_STARTED
    assert result.stages["S"].status is pk.Status.STOPPED
    assert result.stages["T"].status is pk.Status.NOT_STARTED
    stopping = [e for e in events if e.type == "pipeline" and e.state is pk.Status.STOPPING]
    assert stopping[0].detail["stop-execution-comments"] == "maintenance"
    assert events[-1].state is pk.Status.STOPPED
    async with pk.Engine(workdir=tmp_path) as engine:
        with pytest.raises(pk.ExecutionError, match="already ended Stopped"):
            await engine.stop(execution.id)


async def test_abandon_cancels_running_actions(tmp_path):
    started, release = anyio.Event(), anyio.Event()
    async with pk.Engine(workdir=tmp_path) as engine:
        execution = await engine.start(pipeline(started, release))
        await started.wait()
        await engine.stop(execution.id, abandon=True)
        result = await execution.wait()
    slow = result.actions["S.Slow"]
    assert slow.status is pk.Status.ABANDONED
    assert slow.error == "abandoned: the execution was stopped"
    assert result.status is pk.Status.STOPPED


async def test_a_stop_reaches_a_run_of_another_engine_through_the_store(tmp_path):
    started, release = anyio.Event(), anyio.Event()
    store = pk.SQLiteStore(tmp_path / "state.db")
    async with pk.Engine(store=store, workdir=tmp_path, lease_seconds=5) as runner:
        execution = await runner.start(pipeline(started, release))
        await started.wait()
        # Another engine (as another process would) only has the store.
        async with pk.Engine(
            store=pk.SQLiteStore(tmp_path / "state.db"), workdir=tmp_path
        ) as other:
            await other.stop(execution.id, abandon=True, reason="from elsewhere")
        with anyio.fail_after(10):
            result = await execution.wait()
    assert result.actions["S.Slow"].status is pk.Status.ABANDONED
    assert result.status is pk.Status.STOPPED


async def test_stopping_an_unknown_execution_is_an_error(tmp_path):
    async with pk.Engine(workdir=tmp_path) as engine:
        with pytest.raises(pk.ExecutionError, match="has no execution 'nope'"):
            await engine.stop("nope")


def test_pipelinekit_stop_from_the_shell(tmp_path, cli):
    import os  # noqa: PLC0415
    import signal  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import time  # noqa: PLC0415

    (tmp_path / "p.py").write_text(
        "import pipelinekit as pk\n"
        "pipeline = pk.Pipeline('p', [pk.Stage('S', [pk.Action('Sleep', "
        f"pk.shell('touch {tmp_path}/started; exec sleep 300'))])])\n"
    )
    runner = subprocess.Popen(
        [sys.executable, "-m", "pipelinekit", "run", str(tmp_path / "p.py"),
         "--store", str(tmp_path / "wd"), "--plain"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PIPELINEKIT_LEASE_SECONDS": "5"},
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not (tmp_path / "started").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    store = str(tmp_path / "wd" / "state.db")
    status, out, _ = cli("history", "--store", store)
    execution_id = out.splitlines()[1].split()[0]
    status, out, _ = cli("stop", execution_id, "--abandon", "--store", store)
    assert status == 0
    assert f"stop requested for execution {execution_id}" in out
    try:
        out, _ = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.send_signal(signal.SIGKILL)
    assert runner.returncode == 1
    assert "action S.Sleep Abandoned" in out
    assert out.splitlines()[-1].startswith("pipeline 'p' Stopped in ")
    status, _, err = cli("stop", execution_id, "--store", store)
    assert status == 2
    assert "already ended Stopped" in err


class _HeldStore(pk.MemoryStore):
    """A durable store that holds the write of stage T's starts until told to go on."""

    durable = True
    batches_writes = True

    def __init__(self) -> None:
        super().__init__()
        self.writing = anyio.Event()
        self.go_on = anyio.Event()

    async def record(self, events):
        if any(e.type == "action" and e.stage == "T" for e in events):
            self.writing.set()
            await self.go_on.wait()
        return await super().record(events)


async def test_abandon_while_starts_are_written_abandons_actions_that_never_ran(tmp_path):
    ran: list[str] = []

    async def work(ctx):
        ran.append(ctx.action)

    store = _HeldStore()
    p = pk.Pipeline(
        "p",
        [
            pk.Stage("S", [pk.Action("A", pk.python(work))]),
            pk.Stage("T", [pk.Action("B", pk.python(work)), pk.Action("C", pk.python(work))]),
        ],
    )
    async with pk.Engine(store=store, workdir=tmp_path) as engine:
        execution = await engine.start(p)
        await store.writing.wait()
        # The starts of B and C are being written: the stop lands in the middle of the write.
        await engine.stop(execution.id, abandon=True)
        store.go_on.set()
        with anyio.fail_after(10):
            result = await execution.wait()
        events = await store.events(execution.id)
    assert ran == ["A"]
    for name in ("T.B", "T.C"):
        assert result.actions[name].status is pk.Status.ABANDONED
        states = [e.state for e in events if e.node == name]
        assert states == [pk.Status.IN_PROGRESS, pk.Status.ABANDONED]
    assert result.status is pk.Status.STOPPED
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
