"""pk.run tunes the garbage collector only while it owns the loop, and puts it back."""

from __future__ import annotations

import gc

import pytest

import pipelinekit as pk
from pipelinekit._runtime._collector import YOUNG_THRESHOLD, collector_tuned_for_a_run
from pipelinekit.testing import FakeExecutor


def still_frozen(frozen: int) -> bool:
    """Whether the objects frozen before are frozen still.

    A frozen object that dies (garbage another thread lets go of) leaves the count, so it may
    drop a little; ``gc.unfreeze()`` would empty it.
    """
    return frozen - 1000 <= gc.get_freeze_count() <= frozen + 1000


def test_the_collector_is_tuned_during_the_block_and_restored_after():
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()  # some interpreters or plugins freeze objects of their own
    with collector_tuned_for_a_run():
        assert gc.get_threshold()[0] == max(before[0], YOUNG_THRESHOLD)
        assert gc.get_threshold()[1:] == before[1:]
        if frozen == 0:
            assert gc.get_freeze_count() > 0  # what existed before is out of the walks
    assert gc.get_threshold() == before
    assert still_frozen(frozen)


def test_an_error_in_the_block_restores_it_too():
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    with pytest.raises(RuntimeError), collector_tuned_for_a_run():
        raise RuntimeError
    assert gc.get_threshold() == before
    assert still_frozen(frozen)


def test_a_disabled_collector_is_left_alone():
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    gc.disable()
    try:
        with collector_tuned_for_a_run():
            assert gc.get_threshold() == before
            assert still_frozen(frozen)
    finally:
        gc.enable()


def test_runs_that_own_the_loop_tune_it_and_put_it_back(tmp_path):
    seen = []

    def look(ctx):
        seen.append(gc.get_threshold()[0])

    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    pipeline = pk.Pipeline("p", [pk.Stage("S", [pk.Action("A", pk.python(look))])])
    assert pk.run(pipeline, store=pk.MemoryStore(), workdir=tmp_path).succeeded
    assert seen == [max(before[0], YOUNG_THRESHOLD)]
    assert gc.get_threshold() == before
    assert FakeExecutor().run(pipeline).succeeded
    assert gc.get_threshold() == before
    assert still_frozen(frozen)


def test_objects_the_host_froze_stay_frozen():
    before = gc.get_threshold()
    outside = gc.get_freeze_count()
    gc.freeze()
    frozen = gc.get_freeze_count()
    try:
        with collector_tuned_for_a_run():
            assert gc.get_threshold()[0] == max(before[0], YOUNG_THRESHOLD)
        assert still_frozen(frozen)  # not unfrozen by the run
        assert gc.get_threshold() == before
    finally:
        if outside == 0:
            gc.unfreeze()


def test_nested_and_concurrent_runs_restore_the_hosts_settings_once():
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    with collector_tuned_for_a_run():
        with collector_tuned_for_a_run():
            assert gc.get_threshold()[0] == max(before[0], YOUNG_THRESHOLD)
        # The inner one ended: still tuned for the outer one.
        assert gc.get_threshold()[0] == max(before[0], YOUNG_THRESHOLD)
    assert gc.get_threshold() == before
    assert still_frozen(frozen)
