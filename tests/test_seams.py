"""The seams, typed by their protocols: executors, providers' optional capabilities, stores,
clocks and workspaces, and what the engine does with each."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import anyio
import attrs
import pytest

import pipelinekit as pk
from pipelinekit._runtime._artifacts import DiskWorkspace, MemoryWorkspace
from pipelinekit.providers._capabilities import (
    Closeable,
    DeclaresOutputVariables,
    Idempotent,
    is_idempotent,
)
from pipelinekit.testing import FakeExecutor, ScriptedExecutor, VirtualClock, hang, succeed

pytestmark = pytest.mark.anyio


@pk.provider("Custom", "Pooled", category=pk.Category.BUILD)
@attrs.frozen(eq=False)
class Pooled:
    """A provider holding a resource until the engine closes."""

    closed: list[str]

    async def run(self, ctx: pk.ActionContext) -> None:
        assert not self.closed, "used after aclose()"

    async def aclose(self) -> None:
        self.closed.append("closed")


class ClosingExecutor(pk.LocalExecutor):
    def __init__(self) -> None:
        super().__init__()
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1


async def test_providers_are_closed_once_when_the_engine_closes_and_a_given_executor_is_not(
    tmp_path,
):
    closed: list[str] = []
    shared = Pooled(closed)
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage("S", [pk.Action("A", shared), pk.Action("B", shared)]),
            pk.Stage("T", [pk.Action("C", shared)]),
        ],
    )
    executor = ClosingExecutor()
    async with pk.Engine(store=pk.MemoryStore(), workdir=tmp_path, executor=executor) as engine:
        for _ in range(2):
            execution = await engine.start(pipeline)
            assert (await execution.wait()).succeeded
        assert closed == []  # open while the engine is
    assert closed == ["closed"]
    # The executor was given to the engine: the caller's to close, as a given store is.
    assert executor.closed == 0


@pk.provider("Custom", "Templated", category=pk.Category.BUILD)
@attrs.frozen(eq=False)
class Templated:
    """A provider whose field holds a reference: the object that runs is a resolved copy."""

    target: str
    ran: list[str]
    closed: list[str]

    async def run(self, ctx: pk.ActionContext) -> None:
        self.ran.append(self.target)

    async def aclose(self) -> None:
        self.closed.append(self.target)


async def test_the_provider_that_ran_is_the_one_closed(tmp_path):
    ran: list[str] = []
    closed: list[str] = []
    pipeline = pk.Pipeline(
        "p",
        [pk.Stage("S", [pk.Action("A", Templated("#{variables.env}", ran, closed))])],
        variables=[pk.Variable("env", default="prod")],
    )
    async with pk.Engine(store=pk.MemoryStore(), workdir=tmp_path) as engine:
        assert (await (await engine.start(pipeline)).wait()).succeeded
    assert ran == ["prod"]
    assert closed == ["prod"]  # the resolved copy, not the declaration


async def test_a_provider_failing_to_close_spares_the_others(tmp_path):
    closed: list[str] = []

    @pk.provider("Custom", "Broken", category=pk.Category.BUILD)
    class Broken:
        async def run(self, ctx: pk.ActionContext) -> None:
            pass

        async def aclose(self) -> None:
            raise RuntimeError("cannot close")

    pipeline = pk.Pipeline(
        "p", [pk.Stage("S", [pk.Action("A", Broken()), pk.Action("B", Pooled(closed))])]
    )
    async with pk.Engine(store=pk.MemoryStore(), workdir=tmp_path) as engine:
        await (await engine.start(pipeline)).wait()
    assert closed == ["closed"]


def test_max_concurrency_is_an_engine_option():
    with pytest.raises(TypeError, match=re.escape("pk.Engine(max_concurrency=4)")):
        pk.LocalExecutor(max_concurrency=4)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(pk.ExecutionError, match="max_concurrency must be a whole number"):
            pk.Engine(max_concurrency=bad, store=pk.MemoryStore())


def test_the_fake_bounds_concurrency_through_the_engine():
    pipeline = pk.Pipeline(
        "p", [pk.Stage("S", [pk.Action(f"A{i}", pk.shell("true")) for i in range(4)])]
    )
    fake = FakeExecutor(default=succeed(after=10), max_concurrency=2)
    result = fake.run(pipeline)
    # Two at a time, ten virtual seconds each: forty seconds in two waves of two.
    assert result.duration == timedelta(seconds=20)
    assert not fake.ran_in_parallel("S.A0", "S.A2")
    assert fake.ran_in_parallel("S.A0", "S.A1")


def test_capabilities_are_protocols_with_defaults():
    @attrs.frozen
    class Plain:
        async def run(self, ctx):
            pass

    @attrs.frozen
    class Safe:
        idempotent = True
        output_variables = ("Version",)

        async def run(self, ctx):
            pass

    assert not is_idempotent(Plain())
    assert is_idempotent(Safe())
    assert isinstance(Safe(), Idempotent)
    assert isinstance(Safe(), DeclaresOutputVariables)
    assert not isinstance(Plain(), DeclaresOutputVariables)
    assert isinstance(Pooled([]), Closeable)
    assert not isinstance(Plain(), Closeable)
    # A flag that is merely truthy is not a declaration of idempotence.
    assert not is_idempotent(type("Truthy", (), {"idempotent": 1})())


def test_the_fake_harness_injects_an_ordinary_executor():
    fake = FakeExecutor({"S.A": succeed(variables={"v": "1"})})
    action = pk.Action("A", pk.shell("true", output_variables=["v"]))
    result = fake.run(pk.Pipeline("p", [pk.Stage("S", [action])]))
    assert result.succeeded
    assert fake.engine is not None
    assert isinstance(fake.engine.executor, ScriptedExecutor)
    assert isinstance(fake.engine.executor, pk.Executor)
    assert fake.calls == ["S.A"]
    assert not hasattr(fake, "execute")  # the harness is not an executor


async def test_a_memory_workspace_touches_no_disk(tmp_path):
    workspace = MemoryWorkspace(tmp_path / "ws")
    outputs = {"out": workspace.artifact("out")}
    await workspace.prepare("S.A", outputs, again=True)
    assert await workspace.seal(outputs) == {}
    assert await workspace.cache_key("t", object(), {}, {}) is None
    log = workspace.log_file("S.A", pk._model._secrets.Masker([]), lambda: "header")
    await log.write(["one line"])
    assert workspace.log_files["S.A"].lines == ["header", "one line"]
    assert not (tmp_path / "ws").exists()


async def test_a_disk_workspace_makes_fresh_outputs_and_seals_them(tmp_path):
    workspace = DiskWorkspace(tmp_path / "ws")
    outputs = {"out": workspace.artifact("out")}
    await workspace.prepare("S.A", outputs, again=False)
    (outputs["out"] / "f.txt").write_text("x")
    hashes = await workspace.seal(outputs)
    assert set(hashes) == {"out"}
    assert hashes["out"][0] == str(outputs["out"])
    assert not (outputs["out"].stat().st_mode & 0o222)
    # Another attempt starts from empty folders again, sealed or not.
    (workspace.work / "S.A").mkdir(parents=True)
    await workspace.prepare("S.A", outputs, again=True)
    assert list(outputs["out"].iterdir()) == []
    assert not (workspace.work / "S.A").exists()
    assert workspace.logs.is_absolute()


async def test_background_waits_never_move_virtual_time_alone():
    clock = VirtualClock()
    ticks: list[float] = []

    async def chore() -> None:
        while True:
            await clock.background_sleep(1)
            ticks.append(clock.elapsed)

    async def work() -> None:
        await clock.sleep(3.5)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(clock.drive, lambda: "stuck")
        tasks.start_soon(chore)
        await work()
        assert clock.elapsed == 3.5
        # Time jumped straight to the work's end; the chore ran when time got past its timer.
        assert ticks == [3.5]
        tasks.cancel_scope.cancel()


def test_a_hung_fake_run_is_still_reported_stuck_with_a_heartbeat_running():
    pipeline = pk.Pipeline("p", [pk.Stage("S", [pk.Action("Forever", pk.shell("true"))])])
    with pytest.raises(pk.testing.StuckRunError):
        FakeExecutor({"S.Forever": hang()}, stuck_after=0.05).run(pipeline)


async def test_a_stop_asked_through_the_store_reaches_a_fake_run_in_virtual_time(tmp_path):
    """A stop recorded by another engine is read by the running one's heartbeat.

    The heartbeat's waits are background ones: they run whenever virtual time moves, so the
    stop is seen when the running action ends (at 10 s) and the next stage never starts.
    """
    store = pk.MemoryStore()
    clock = VirtualClock()
    scripted = ScriptedExecutor({"T.Long": succeed(after=3600)}, succeed(after=10))
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage("S", [pk.Action("Short", pk.shell("true"))]),
            pk.Stage("T", [pk.Action("Long", pk.shell("true"))]),
        ],
    )
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(clock.drive, lambda: "stuck")
        async with pk.Engine(
            store=store,
            executor=scripted,
            clock=clock,
            workdir=tmp_path,
            workspaces=MemoryWorkspace,
        ) as engine:
            execution = await engine.start(pipeline)
            async with pk.Engine(store=store, workdir=tmp_path, clock=clock) as other:
                await other.stop(execution.id, reason="from elsewhere")
            result = await execution.wait()
        tasks.cancel_scope.cancel()
    assert result.status is pk.Status.STOPPED
    assert result.actions["S.Short"].status is pk.Status.SUCCEEDED
    assert result.actions["T.Long"].status is pk.Status.NOT_STARTED
    assert result.duration == timedelta(seconds=10)


async def test_an_execution_handle_stops_its_execution(tmp_path):
    async def forever(ctx):
        await anyio.sleep_forever()

    pipeline = pk.Pipeline("p", [pk.Stage("S", [pk.Action("A", pk.python(forever))])])
    async with pk.Engine(store=pk.MemoryStore(), workdir=tmp_path) as engine:
        execution = await engine.start(pipeline)
        await anyio.wait_all_tasks_blocked()
        await execution.stop(abandon=True)
        result = await execution.wait()
    assert result.status is pk.Status.STOPPED
    assert execution.status is pk.Status.STOPPED
    assert execution.done
    assert repr(execution).endswith("'p': Stopped>")


def test_the_runtime_looks_up_no_capability_by_name():
    """Capabilities are typed questions (protocols), not getattr with a name and a default."""
    root = Path(pk.__file__).parent
    names = (
        "idempotent|aclose|max_concurrency|batches_writes|durable|virtual|on_event|output_variables"
    )
    lookup = re.compile(rf"getattr\([^)]*[\"']({names})[\"']")
    found = [
        f"{path.relative_to(root)}: {match.group(0)}"
        for path in root.rglob("*.py")
        for match in lookup.finditer(path.read_text())
    ]
    assert not found, found
    scheduler = (root / "_runtime" / "_scheduler.py").read_text()
    assert "virtual" not in scheduler


async def test_a_stop_keeps_actions_queued_for_a_slot_from_starting(tmp_path):
    """Stop-and-wait lets the running action finish; those waiting for a slot never start."""
    clock = VirtualClock()
    scripted = ScriptedExecutor({}, succeed(after=10))
    pipeline = pk.Pipeline(
        "p", [pk.Stage("S", [pk.Action(f"A{i}", pk.shell("true")) for i in range(3)])]
    )
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(clock.drive, lambda: "stuck")
        async with pk.Engine(
            store=pk.MemoryStore(),
            executor=scripted,
            clock=clock,
            workdir=tmp_path,
            workspaces=MemoryWorkspace,
            max_concurrency=1,
        ) as engine:
            execution = await engine.start(pipeline)
            await clock.sleep(5)
            await engine.stop(execution.id)
            result = await execution.wait()
        tasks.cancel_scope.cancel()
    assert result.status is pk.Status.STOPPED
    assert result.actions["S.A0"].status is pk.Status.SUCCEEDED
    assert result.actions["S.A1"].status is pk.Status.NOT_STARTED
    assert result.actions["S.A2"].status is pk.Status.NOT_STARTED
    assert scripted.calls == ["S.A0"]
    assert result.stages["S"].status is pk.Status.STOPPED
