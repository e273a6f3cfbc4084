"""Times read back from an event's detail: one reader, for the replay and the live view.

Today's cut: ``_runtime/_replay.py`` and ``cli/_view.py`` each had their own ``_time``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipelinekit._runtime import _replay
from pipelinekit.cli import _view


def test_an_iso_time_is_read_and_anything_else_is_none():
    when = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    assert _replay.detail_time(when.isoformat()) == when
    for value in (None, 3, "yesterday", "", when):
        assert _replay.detail_time(value) is None


@pytest.mark.parametrize("module", [_view])
def test_the_view_reads_times_as_the_replay_does(module):
    assert module.detail_time is _replay.detail_time
    assert not hasattr(module, "_time")
