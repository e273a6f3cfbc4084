"""``pk.shell(..., idempotent=True)``: a crash resume runs such a shell action again.

Today's cut (issue 11, item 5): ``Commands.idempotent`` was a class constant ``False``, so a
crash always failed a running shell action on resume ("interrupted"), even one that is safe to
run twice; ``pk.python`` could say so, ``pk.shell`` could not.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

import pipelinekit as pk
from pipelinekit.providers._capabilities import is_idempotent

PIPELINE = """
from pathlib import Path

import pipelinekit as pk

HERE = str(Path(__file__).parent)
BODY = (
    'echo "$PK_ACTION" >> "$HERE/ledger.txt"',
    'touch "$HERE/started-$PK_ACTION"',
    'while [ ! -e "$HERE/release" ]; do sleep 0.02; done',
)
pipeline = pk.Pipeline("durable", [
    pk.Stage("Build", [
        pk.Action("Idem", pk.shell(*BODY, env={"HERE": HERE}, idempotent=True)),
        pk.Action("Once", pk.shell(*BODY, env={"HERE": HERE})),
    ]),
])
"""


def test_idempotent_is_a_field_false_unless_said():
    assert pk.shell("true").idempotent is False
    assert not is_idempotent(pk.shell("true"))
    assert is_idempotent(pk.shell("true", idempotent=True))
    assert pk.Commands(["true"], idempotent=True).idempotent is True


def test_idempotent_must_be_a_bool():
    with pytest.raises(pk.PipelineDefinitionError, match="must be True or False"):
        pk.Action("A", pk.Commands(["true"], idempotent="yes"))


def wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def test_a_crash_resume_runs_an_idempotent_shell_action_again(tmp_path):
    (tmp_path / "pipeline.py").write_text(textwrap.dedent(PIPELINE))
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelinekit", "run", str(tmp_path / "pipeline.py"),
         "--store", str(tmp_path / "wd"), "--plain"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for(tmp_path / "started-Idem")
    wait_for(tmp_path / "started-Once")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    (tmp_path / "release").touch()

    async def resume():
        store = pk.SQLiteStore(tmp_path / "wd" / "state.db")
        (summary,) = await store.executions()
        async with pk.Engine(store=store, workdir=tmp_path / "wd") as engine:
            execution = await engine.resume(summary.id)
            return await execution.wait()

    result = anyio.run(resume)
    runs = (tmp_path / "ledger.txt").read_text().split()
    assert runs.count("Idem") == 2  # in flight and idempotent: run again
    assert runs.count("Once") == 1  # in flight, not idempotent: failed as interrupted
    idem = result.actions["Build.Idem"]
    assert idem.status is pk.Status.SUCCEEDED, idem.error
    assert [a.number for a in idem.attempts] == [1, 2]
    once = result.actions["Build.Once"]
    assert once.status is pk.Status.FAILED
    assert once.error.startswith("interrupted: the process running it stopped")
