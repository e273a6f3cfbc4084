"""How the pipelinekit program leaves: threads on their way out are not reported as stuck."""

from __future__ import annotations

import threading

from pipelinekit.cli import _threads_left


def test_a_thread_that_is_ending_is_waited_for_not_reported():
    # anyio's idle workers get their stop message when the loop closes and end a moment later:
    # the exit check used to see them alive and claim an action thread was stuck.
    release = threading.Event()
    ending = threading.Thread(target=release.wait)
    ending.start()
    release.set()
    assert ending not in _threads_left()
    assert not ending.is_alive()


def test_a_stuck_thread_is_reported():
    release = threading.Event()
    stuck = threading.Thread(target=release.wait)
    stuck.start()
    try:
        assert stuck in _threads_left()
    finally:
        release.set()
        stuck.join()
