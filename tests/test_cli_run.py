"""``pipelinekit run``: plain progress, exit statuses, failure reports, Ctrl-C, and the example."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
import structlog
from rich.console import Console

import pipelinekit as pk
from pipelinekit.cli import main
from pipelinekit.cli._view import LiveView

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "webapp" / "pipeline.py"

PIPELINE = """
import pipelinekit as pk

pipeline = pk.Pipeline("demo", [
    pk.Stage("Build", [pk.Action("Compile", pk.shell("echo compiled"))]),
    pk.Stage("Test", [
        pk.Action("Unit", pk.shell("echo $OUTCOME; test $OUTCOME = pass",
                                   env={"OUTCOME": "#{variables.outcome}"})),
    ]),
], variables=[pk.Variable("outcome", default="pass")])
"""


@pytest.fixture(autouse=True)
def restore_structlog():
    yield
    structlog.reset_defaults()


def write(tmp_path, text=PIPELINE):
    path = tmp_path / "pipeline.py"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_successful_run_prints_one_line_per_event_and_exits_0(tmp_path, cli):
    path = write(tmp_path)
    status, out, _ = cli("run", str(path), "--store", str(tmp_path / "wd"))
    assert status == 0
    lines = out.splitlines()
    assert lines[0].endswith("pipeline demo InProgress")
    assert any(line.endswith("action Build.Compile Succeeded (attempt 1)") for line in lines)
    assert lines[-1].startswith("pipeline 'demo' Succeeded in ")


def test_a_failed_run_shows_the_failing_log_lines_and_exits_1(tmp_path, cli):
    path = write(tmp_path)
    status, out, _ = cli("run", str(path), "--var", "outcome=fail", "--store", str(tmp_path / "wd"))
    assert status == 1
    assert "Test.Unit failed: command exited with status 1" in out
    assert "  | fail" in out
    assert out.splitlines()[-1].startswith("pipeline 'demo' Failed in ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--var", "outcome"], "a --var is not NAME=VALUE"),
        (["--var", "outcom=x"], "did you mean 'outcome'?"),
    ],
)
def test_bad_variables_exit_2(tmp_path, cli, args, message):
    status, _, err = cli("run", str(write(tmp_path)), *args)
    assert status == 2
    assert message in err


def test_bad_max_concurrency_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["run", str(write(tmp_path)), "--max-concurrency", "0"])
    assert caught.value.code == 2
    assert "must be a whole number >= 1" in capsys.readouterr().err


def test_ctrl_c_cancels_cleanly(tmp_path):
    pidfile = tmp_path / "pid"
    path = write(
        tmp_path,
        f"""
        import pipelinekit as pk
        pipeline = pk.Pipeline("slow", [
            pk.Stage("S", [pk.Action("Sleep", pk.shell("echo $$ > {pidfile}; exec sleep 300"))]),
        ])
        """,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelinekit", "run", str(path), "--store", str(tmp_path / "wd")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline, "the action never started"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "cancelled by Ctrl-C" in out
    assert "action S.Sleep Abandoned" in out
    assert out.splitlines()[-1].startswith("pipeline 'slow' Stopped in ")
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_example_pipeline_runs_end_to_end(tmp_path, cli):
    staging = tmp_path / "staging"
    status, out, _ = cli(
        "run",
        str(EXAMPLE),
        "--var",
        f"staging_dir={staging}",
        "--store",
        str(tmp_path / "wd"),
    )
    assert status == 0, out
    assert (staging / "webapp.pyz").exists()
    assert (staging / "REVISION").read_text().startswith("deployed source ")
    checked = subprocess.run(
        [sys.executable, str(staging / "webapp.pyz"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert '"status": "ok"' in checked.stdout


def test_the_live_view_draws_the_tree_and_a_summary(tmp_path):
    async def failing(ctx):
        raise pk.ActionFailed("nope")

    pipeline = pk.Pipeline(
        "demo",
        [
            pk.Stage("Build", [pk.Action("Compile", pk.shell("echo ok"))]),
            pk.Stage("Test", [pk.Action("Unit", pk.python(failing))]),
            pk.Stage("Deploy", [pk.Action("Ship", pk.shell("true"))]),
        ],
    )
    console = Console(record=True, width=100, force_terminal=True, color_system=None)
    view = LiveView(pipeline, console)

    async def main():
        async with pk.Engine(workdir=tmp_path / "wd") as engine:
            execution = await engine.start(pipeline)
            await view.follow(execution)
            return await execution.wait()

    result = anyio.run(main)
    tree = Console(record=True, width=100, color_system=None)
    tree.print(view)
    drawn = tree.export_text()
    assert "✔  pipeline demo" not in drawn  # the pipeline failed
    assert "✖  pipeline demo" in drawn
    assert "✔      Compile" in drawn
    assert "✖      Unit" in drawn
    assert "·      Ship" in drawn
    view.finish(result, interrupted=False)
    summary = console.export_text()
    assert "Test.Unit failed: nope" in summary
    assert "✖ Failed" in summary
    assert "· NotStarted" in summary
    assert "pipeline 'demo' Failed in" in summary


def test_the_live_view_shows_how_to_decide_a_waiting_approval():
    pipeline = pk.Pipeline(
        "release", [pk.Stage("Approve", [pk.Action("Prod", pk.ManualApproval())])]
    )
    view = LiveView(pipeline, Console(width=200, color_system=None))
    now = datetime.now(UTC)
    waiting = pk.Event(
        "approval", pk.Status.WAITING_FOR_APPROVAL, "release", "e1", now, "Approve", "Prod"
    )
    view._apply(waiting)  # what follow() does with each event
    tree = Console(record=True, width=200, color_system=None)
    tree.print(view)
    assert "Prod waiting for approval: pipelinekit approve e1 Approve.Prod" in tree.export_text()
    decided = pk.Event(
        "approval", pk.Status.SUCCEEDED, "release", "e1", now, "Approve", "Prod", {"by": "bob"}
    )
    view._apply(decided)
    tree = Console(record=True, width=200, color_system=None)
    tree.print(view)
    assert "pipelinekit approve" not in tree.export_text()
