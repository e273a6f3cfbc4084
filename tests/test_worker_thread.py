"""The thread a store runs its blocking calls on: order, results, errors, cancellation, its end."""

from __future__ import annotations

import threading

import anyio
import pytest

from pipelinekit._thread import WorkerThread

pytestmark = pytest.mark.anyio


async def test_calls_run_in_order_on_one_thread_and_return_what_they_return():
    worker = WorkerThread("test store")
    seen: list[tuple[int, int]] = []

    def call(number: int) -> int:
        seen.append((number, threading.get_ident()))
        return number * 2

    async with anyio.create_task_group() as tasks:
        for number in range(20):
            tasks.start_soon(worker.run, lambda n=number: call(n))
    assert [number for number, _ in seen] == list(range(20))
    assert len({ident for _, ident in seen}) == 1
    assert seen[0][1] != threading.get_ident()  # never the event loop's thread
    assert await worker.run(lambda: call(21)) == 42
    worker.close()


async def test_an_error_reaches_the_caller_and_the_thread_goes_on():
    worker = WorkerThread("test store")

    def fail() -> None:
        msg = "disk full"
        raise OSError(msg)

    with pytest.raises(OSError, match="disk full"):
        await worker.run(fail)
    assert await worker.run(lambda: "still here") == "still here"
    worker.close()


async def test_a_cancelled_caller_waits_for_its_call_to_finish():
    worker = WorkerThread("test store")
    entered, leave = threading.Event(), threading.Event()
    order: list[str] = []
    scopes: list[anyio.CancelScope] = []

    def slow() -> None:
        entered.set()
        leave.wait(10)
        order.append("call finished")

    async def caller() -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await worker.run(slow)
        order.append("caller went on")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(caller)
        await anyio.to_thread.run_sync(entered.wait, 10)
        scopes[0].cancel()
        for _ in range(20):
            await anyio.lowlevel.checkpoint()  # time enough to (wrongly) abandon the call
        assert order == []
        leave.set()
    assert order == ["call finished", "caller went on"]
    worker.close()


async def test_the_thread_ends_when_idle_or_closed_and_comes_back_when_needed():
    worker = WorkerThread("test store", idle=0.01)
    first = await worker.run(threading.current_thread)
    first.join(10)  # ends by itself once idle
    assert not first.is_alive()
    second = await worker.run(threading.current_thread)
    assert second is not first
    worker.close()
    second.join(10)
    assert not second.is_alive()
    third = await worker.run(threading.current_thread)
    assert third.is_alive()
    worker.close()
