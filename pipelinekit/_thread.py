"""``WorkerThread``: one thread of its own that runs small blocking calls, in order.

Why not ``anyio.to_thread``: a round trip through anyio's worker pool (a capacity limiter, a
handoff to whichever worker is idle, a cancel scope) costs 100-300 us on a small machine, more
than a small SQLite transaction, a ``mkdir`` or the append of a few log lines. A run writes
once per burst of events, and on a chain of actions every action's start is such a burst; a
shell action makes its work folder and writes its log. A thread that lives as long as it has
work, fed by a queue and answering through the event loop's ``call_soon_threadsafe``, costs
about a third of that. A store keeps its connection on its thread; an engine has one for the
small file work of its runs (big copies and hashes still go to anyio's pool, so that they never
hold up a log line).

Only asyncio is served this way; under another anyio backend the calls go through
``anyio.to_thread`` as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

__all__ = ["WorkerThread"]

T = TypeVar("T")

_Item = tuple[Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:  # noqa: ANN401 - any result
    if future.cancelled():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class WorkerThread:
    """Runs functions on one thread of its own, one at a time, in the order they were given.

    The thread starts with the first call and ends after ``idle`` seconds without work (or at
    ``close``), so a store that is no longer used holds no thread. A call that was handed over
    always runs to its end: the caller waits for it even when cancelled, as with
    ``anyio.to_thread.run_sync``, and the cancellation is delivered afterwards.
    """

    def __init__(self, name: str, *, idle: float = 10.0) -> None:
        """Name the thread ``name``; it ends after ``idle`` seconds without work."""
        self.name = name
        self.idle = idle
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    async def run(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the thread and return what it returned (or raise what it raised)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # another anyio backend
            return await anyio.to_thread.run_sync(function)
        future: asyncio.Future[T] = loop.create_future()
        if self._pid != os.getpid():
            self._forget_parent()
        with self._lock:
            # Under the lock: a thread about to end for want of work sees this item first.
            self._queue.put((function, loop, future))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, args=(self._queue,), name=self.name, daemon=True
                )
                self._thread.start()
        with anyio.CancelScope(shield=True):
            result = await future
        return result  # noqa: RET504 - mypy reads the scope as able to swallow the error

    def _forget_parent(self) -> None:
        # A forked child has none of the parent's threads, and the lock may have been held
        # when it forked: start afresh rather than queue for a thread that is not there.
        self._queue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread = None
        self._pid = os.getpid()

    def close(self) -> None:
        """Let the thread end once the calls already given have run."""
        if self._pid != os.getpid():
            self._forget_parent()  # the parent's thread is the parent's to end
            return
        with self._lock:
            if self._thread is not None:
                # A call made after this goes to a new thread with a queue of its own, so two
                # threads never take from one queue (and never run calls out of order).
                self._queue.put(None)
                self._queue = queue.SimpleQueue()
                self._thread = None

    def _serve(self, work: queue.SimpleQueue[_Item | None]) -> None:
        while True:
            try:
                item = work.get(timeout=self.idle)
            except queue.Empty:
                with self._lock:
                    if work.empty():
                        if self._queue is work:
                            self._thread = None
                        return
                continue
            if item is None:
                return
            function, loop, future = item
            result: Any = None
            error: BaseException | None = None
            try:
                result = function()
            except BaseException as raised:  # noqa: BLE001 - handed to the caller, whatever it is
                error = raised
            # The loop may be gone (its run ended): nobody is left to tell.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, result, error)
