"""pytest plugin (entry point ``pytest11``): fixtures for testing pipelines.

- ``fake_executor``: a ``pipelinekit.testing.FakeExecutor`` in which every action succeeds;
  script outcomes with ``fake_executor.outcomes["Stage.Action"] = fail("...")``.
- ``engine``: a ``pipelinekit.Engine`` with an in-memory store and a temporary working folder,
  not yet entered: ``async with engine: ...``.

It only wires fixtures to ``pipelinekit.testing``; it uses nothing but pytest's public API.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelinekit._runtime._engine import Engine
from pipelinekit.stores import MemoryStore
from pipelinekit.testing import FakeExecutor

__all__ = ["engine", "fake_executor"]


@pytest.fixture
def fake_executor() -> FakeExecutor:
    """A fake executor in which every action succeeds unless scripted otherwise."""
    return FakeExecutor()


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    """An engine with an in-memory store, working in a temporary folder (enter it yourself)."""
    return Engine(store=MemoryStore(), workdir=tmp_path / "pipelinekit")
