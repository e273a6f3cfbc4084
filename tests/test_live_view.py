"""The live tree stays truthful: across retries, with attempt times, and while approvals wait.

Today's cuts (issue 11, items 5 and 9): after a stage retry the tree showed the actions that had
succeeded before as not started; times counted the waits between attempts; a waiting
``ManualApproval`` stayed at 0.0 s and its ``custom_data`` showed only in ``status --json``.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import pipelinekit as pk
from pipelinekit.testing import FakeExecutor, fail, succeed

rich = pytest.importorskip("rich.console")
from pipelinekit.cli._view import LiveView  # noqa: E402 - rich is optional

BROKEN: set[str] = set()


async def work(ctx):
    if f"{ctx.stage}.{ctx.action}" in BROKEN:
        raise pk.ActionFailed("broken")


PIPELINE = pk.Pipeline(
    "release",
    [
        pk.Stage("Build", [pk.Action("Compile", pk.python(work))]),
        pk.Stage("Test", [pk.Action("Unit", pk.python(work)), pk.Action("Lint", pk.python(work))]),
    ],
)


def drawn(view: LiveView) -> str:
    console = rich.Console(record=True, width=200, color_system=None)
    console.print(view)
    return console.export_text()


def event(type_, state, action=None, at=None, stage="S", **detail):
    return pk.Event(type_, state, "p", "e1", at or datetime.now(UTC), stage, action, detail)


@pytest.mark.anyio
async def test_after_a_stage_retry_earlier_successes_stay_succeeded(tmp_path):
    BROKEN.add("Test.Unit")
    async with pk.Engine(workdir=tmp_path) as engine:
        first = await (await engine.start(PIPELINE)).wait()
        assert first.status is pk.Status.FAILED
        BROKEN.clear()
        execution = await engine.retry_stage(first.execution_id, "Test", pipeline=PIPELINE)
        view = LiveView(PIPELINE, rich.Console(color_system=None))
        view.catch_up(await engine.store.events(first.execution_id))
        await view.follow(execution)
        result = await execution.wait()
    tree = drawn(view)
    assert result.status is pk.Status.SUCCEEDED
    assert "✔      Compile" in tree  # not "·": it succeeded in the first attempt
    assert "✔      Lint" in tree
    assert "✔      Unit (attempt 2)" in tree


def test_times_count_attempts_not_the_wait_between_them():
    view = LiveView(pk.Pipeline("p", [pk.Stage("S", [pk.Action("A", pk.shell("x"))])]), None)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    view._apply(event("action", pk.Status.IN_PROGRESS, "A", t0, attempt=1))
    view._apply(
        event(
            "action",
            pk.Status.IN_PROGRESS,
            "A",
            t0 + timedelta(seconds=61),
            attempt=2,
            previous_error="boom",
            previous_finished_at=(t0 + timedelta(seconds=1)).isoformat(),
        )
    )
    view._apply(event("action", pk.Status.SUCCEEDED, "A", t0 + timedelta(seconds=63), attempt=2))
    assert view._elapsed("S.A") == "3.0s"  # 1 s, then 2 s; not the minute between


def test_the_result_s_duration_counts_attempts_not_the_wait_between_them():
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage(
                "S",
                [
                    pk.Action(
                        "Flaky",
                        pk.shell("x"),
                        retry=pk.Retry(2, delay=timedelta(minutes=1), jitter=0),
                    )
                ],
            )
        ],
    )
    result = FakeExecutor({"S.Flaky": [fail(after=10), succeed(after=5)]}).run(pipeline)
    flaky = result.actions["S.Flaky"]
    assert flaky.duration == timedelta(seconds=15)
    assert flaky.finished_at - flaky.started_at == timedelta(seconds=75)


def test_a_waiting_approval_s_timer_counts_and_its_custom_data_shows():
    pipeline = pk.Pipeline("p", [pk.Stage("S", [pk.Action("Prod", pk.ManualApproval())])])
    view = LiveView(pipeline, None)
    asked = datetime.now(UTC) - timedelta(minutes=5)
    view._apply(event("action", pk.Status.IN_PROGRESS, "Prod", asked, attempt=1))
    view._apply(
        event(
            "approval",
            pk.Status.WAITING_FOR_APPROVAL,
            "Prod",
            asked,
            custom_data="Release 2.1 [prod]: check the changelog\nsecond line",
            external_entity_link="https://example.test/changes/21",
        )
    )
    tree = drawn(view)
    assert view._elapsed("S.Prod").startswith("5m0")  # not 0.0s
    assert "Release 2.1 [prod]: check the changelog …" in tree  # markup-safe, one line
    assert "https://example.test/changes/21" in tree
    assert "?      Prod waiting for approval: pipelinekit approve e1 S.Prod" in tree
    view._apply(event("approval", pk.Status.SUCCEEDED, "Prod", by="bob"))
    view._apply(event("action", pk.Status.SUCCEEDED, "Prod", attempt=1))
    tree = drawn(view)
    assert "Release 2.1" not in tree
    assert "✔      Prod" in tree


def test_the_plain_view_prints_an_approval_s_custom_data_and_link():
    import io  # noqa: PLC0415

    from pipelinekit.cli._view import PlainView  # noqa: PLC0415

    out = io.StringIO()
    PlainView(out)._print(
        event(
            "approval",
            pk.Status.WAITING_FOR_APPROVAL,
            "Prod",
            custom_data="Release 2.1",
            external_entity_link="https://example.test/21",
        )
    )
    assert "  custom data: Release 2.1\n  link: https://example.test/21\n" in out.getvalue()


# -- through the command line: a stage retried, a run from a stage reusing an execution ----------

CLI_PIPELINE = """
import pipelinekit as pk

pipeline = pk.Pipeline("demo", [
    pk.Stage("Build", [pk.Action("Compile", pk.shell("echo compiled"))]),
    pk.Stage("Test", [
        pk.Action("Unit", pk.shell("test -f {flag}")),
        pk.Action("Lint", pk.shell("true")),
    ]),
])
"""

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def in_a_terminal(*args: str, cwd: Path) -> tuple[int, str]:
    """Run the pipelinekit program with its output on a terminal (a pty); its status and text.

    The text is what the terminal was sent, its control sequences left out: every frame the
    live view drew, one after the other.
    """
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "60"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelinekit", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=env,
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # the program ended: its side of the terminal is closed
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        status = process.wait(timeout=30)
    return status, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


@pytest.fixture
def failed_run(tmp_path, cli):
    """A demo pipeline file whose Test.Unit failed (Build.Compile and Test.Lint succeeded)."""
    flag = tmp_path / "fixed"
    path = tmp_path / "pipeline.py"
    path.write_text(CLI_PIPELINE.format(flag=flag))
    status, out, _ = cli("run", str(path), "--store", str(tmp_path / "wd"), "--plain")
    assert status == 1
    execution_id = out.splitlines()[1].split()[-1]
    flag.touch()
    return path, execution_id


def test_a_plain_retry_tells_what_succeeded_before_and_the_time_of_all_runs(
    tmp_path, cli, failed_run
):
    _, execution_id = failed_run
    status, out, _ = cli(
        "retry", execution_id[:8], "Test", "--store", str(tmp_path / "wd"), "--plain"
    )
    assert status == 0, out
    assert f"earlier in execution {execution_id[:8]}: Build.Compile Succeeded, " in out
    assert "Test.Lint Succeeded" in out
    last = out.splitlines()[-1]
    assert last.startswith("pipeline 'demo' Succeeded in ")
    assert "in 2 runs" in last  # the summary says how long all of it ran, as history does


def test_the_live_tree_of_a_retry_shows_earlier_successes_as_succeeded(tmp_path, failed_run):
    _, execution_id = failed_run
    status, text = in_a_terminal("retry", execution_id, "Test", "--store", "wd", cwd=tmp_path)
    assert status == 0, text
    assert re.search(r"✔\s+Compile", text), text
    assert re.search(r"✔\s+Lint", text), text
    # In no frame is an action that succeeded before drawn as never started.
    assert not re.search(r"·\s+(Compile|Lint)", text), text
    assert "in 2 runs" in text


def test_reused_actions_show_where_they_come_from_plain_and_live(tmp_path, cli, failed_run):
    path, execution_id = failed_run
    short = execution_id[:8]
    status, out, _ = cli(
        "run", str(path), "--from", "Test", "--reuse", execution_id, "--store",
        str(tmp_path / "wd"), "--plain",
    )  # fmt: skip
    assert status == 0, out
    assert f"action Build.Compile Succeeded (reused from {short})" in out
    assert f"from stage Test, reusing execution {short}" in out
    status, text = in_a_terminal(
        "run", str(path), "--from", "Test", "--reuse", execution_id, "--store", "wd",
        cwd=tmp_path,
    )  # fmt: skip
    assert status == 0, text
    # Once the run started (its first frame is drawn before), the tree says whence it came.
    drawn = re.findall(r"^(.)\s+Compile(.*)$", text, re.MULTILINE)
    assert drawn[-1][0] == "✔", text
    assert drawn[-1][1].strip() == f"reused from {short}"
    # The summary table says so too, instead of an empty or 0.0s duration.
    (row,) = [line for line in text.splitlines() if "│ Compile" in line and "Succeeded" in line]
    assert f"reused from {short}" in row
