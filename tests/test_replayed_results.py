"""Results rebuilt from the record tell what the live run told.

Today's cut (issue 11, item 5): an execution taken up again (a stage retry, a resume, ``status``
and ``history``) is folded from its events, and the fold dropped what an ended attempt told:
which command failed, its test reports and summary, the keyed caches' outcomes; and a retried
attempt's end was the next attempt's start, so the backoff counted as the failed attempt's time.
"""

from __future__ import annotations

import inspect
import json
from datetime import timedelta

import pytest

import pipelinekit as pk
from pipelinekit._runtime._replay import replay
from pipelinekit.testing import FakeExecutor, fail, succeed

pytestmark = pytest.mark.anyio

JUNIT = (
    '<testsuite name="t" tests="2" failures="1" errors="0" skipped="0">'
    '<testcase classname="t" name="ok"/>'
    '<testcase classname="t" name="bad"><failure message="no"/></testcase>'
    "</testsuite>"
)


def unit_pipeline(flag):
    """Build.Make succeeds; Test.Unit writes a report and a summary, and fails until ``flag``."""
    unit = pk.shell(
        f"printf '%s' '{JUNIT}' > junit.xml",
        'echo "## Unit tests" > "$PK_SUMMARY"',
        f"test -f {flag} || exit 3",
        reports=["junit.xml"],
    )
    return pk.Pipeline(
        "p",
        [
            pk.Stage("Build", [pk.Action("Make", pk.shell("true"))]),
            pk.Stage("Test", [pk.Action("Unit", unit)]),
        ],
    )


async def test_a_retried_stage_s_result_keeps_the_failed_attempt_s_failure_reports_and_summary(
    tmp_path,
):
    flag = tmp_path / "fixed"
    pipeline = unit_pipeline(flag)
    async with pk.Engine(workdir=tmp_path / "w") as engine:
        first = await (await engine.start(pipeline)).wait()
        assert first.status is pk.Status.FAILED
        flag.touch()
        result = await (
            await engine.retry_stage(first.execution_id, "Test", pipeline=pipeline)
        ).wait()
    assert result.status is pk.Status.SUCCEEDED
    live = first.actions["Test.Unit"].attempts[0]
    failed, succeeded = result.actions["Test.Unit"].attempts
    assert live.failure is not None
    assert live.failure.exit_status == 3
    assert failed.failure == live.failure
    assert failed.reports == live.reports
    assert failed.reports[0].failed == ("t.bad",)
    assert failed.summary == live.summary == "## Unit tests"
    assert succeeded.failure is None
    assert succeeded.summary == "## Unit tests"
    assert result.actions["Test.Unit"].reports == live.reports


async def test_the_fold_of_the_events_has_the_attempts_the_live_run_had(tmp_path):
    flag = tmp_path / "never"
    events = []
    result = await pk.arun(unit_pipeline(flag), workdir=tmp_path / "w", hooks=[events.append])
    live = result.actions["Test.Unit"].attempts
    folded = replay(events).actions["Test.Unit"].attempts

    def told(attempts):
        return [(a.number, a.status, a.error, a.failure, a.reports, a.summary) for a in attempts]

    assert told(folded) == told(live)
    assert folded[0].failure is not None


#: The source of ``unit_pipeline`` (and its report), for a pipeline file run by the command line.
UNIT_PIPELINE_SOURCE = f"JUNIT = {JUNIT!r}\n" + inspect.getsource(unit_pipeline)


def test_a_retry_s_backoff_is_no_attempt_s_time_in_the_fold():
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage(
                "S",
                [
                    pk.Action(
                        "A",
                        pk.shell("true"),
                        retry=pk.Retry(2, delay=timedelta(minutes=5), jitter=0),
                    )
                ],
            )
        ],
    )
    fake = FakeExecutor({"S.A": [fail("flaky", after=10), succeed(after=20)]})
    result = fake.run(pipeline)
    live = result.actions["S.A"]
    assert [a.duration for a in live.attempts] == [timedelta(seconds=10), timedelta(seconds=20)]
    folded = replay(fake.events).actions["S.A"].attempts
    assert [a.duration for a in folded] == [timedelta(seconds=10), timedelta(seconds=20)]
    assert folded[0].error == "flaky"


def cache_pipeline():
    cache = pk.Cache(key="t-{hash:src/req.txt}", paths=[".venv"], restore_keys=["t-"])
    return pk.Pipeline(
        "p",
        [
            pk.Stage("Source", [pk.Action("Get", pk.shell("true"), outputs=["src"])]),
            pk.Stage("B", [pk.Action("A", pk.shell("true"), inputs=["src"], caches=[cache])]),
        ],
    )


def test_a_result_carries_its_keyed_caches_outcomes_live_and_folded():
    store = pk.MemoryStore()
    outcomes = {"Source.Get": succeed(outputs={"src": {"req.txt": b"a"}})}
    FakeExecutor(outcomes, store=store).run(cache_pipeline())
    fake = FakeExecutor(outcomes, store=store)
    result = fake.run(cache_pipeline())
    (ended,) = [e for e in fake.events if e.action == "A" and e.state is pk.Status.SUCCEEDED]
    caches = result.actions["B.A"].caches
    assert [c["outcome"] for c in caches] == ["hit"]
    assert list(caches) == ended.detail["caches"]
    assert replay(fake.events).actions["B.A"].caches == ended.detail["caches"]
    assert result.actions["Source.Get"].caches == ()


def test_a_failed_action_s_caches_outcomes_are_in_its_result():
    fake = FakeExecutor(
        {
            "Source.Get": succeed(outputs={"src": {"req.txt": b"a"}}),
            "B.A": fail("broken"),
        }
    )
    result = fake.run(cache_pipeline())
    assert [c["outcome"] for c in result.actions["B.A"].caches] == ["miss"]
    assert [c["outcome"] for c in replay(fake.events).actions["B.A"].caches] == ["miss"]


CACHED = """
import pipelinekit as pk

pipeline = pk.Pipeline("tools", [
    pk.Stage("Build", [
        pk.Action("Venv", pk.shell("test -d .venv || { mkdir .venv; echo x > .venv/tool; }"),
                  caches=[
            pk.Cache(key="tools-#{variables.v}", paths=[".venv"], restore_keys=["tools-"]),
        ]),
        pk.Action("Plain", pk.shell("true")),
    ]),
], variables=[pk.Variable("v", default="1")])
"""


def test_status_shows_each_action_s_cache_outcomes_on_one_line(tmp_path, cli):
    path = tmp_path / "pipeline.py"
    path.write_text(CACHED)
    store = str(tmp_path / "wd")
    outcomes = []
    for version in ("1", "1", "2"):
        status, _, err = cli("run", str(path), "--store", store, "--var", f"v={version}", "--plain")
        assert status == 0, err
        status, out, err = cli("status", "latest", "--store", store)
        assert status == 0, err
        lines = out.splitlines()
        (venv,) = [i for i, line in enumerate(lines) if line.strip().startswith("✔ Venv")]
        outcomes.append(lines[venv + 1].strip())
        assert not any(line.strip().startswith("cache") for line in lines[venv + 2 :])  # Plain
    assert outcomes == [
        "cache: miss tools-1",
        "cache: hit tools-1",
        "cache: partial tools-2 (restored tools-1)",
    ]
    status, out, _ = cli("status", "latest", "--store", store, "--json")
    (venv,) = [
        action["latestExecution"]
        for stage in json.loads(out)["stageStates"]
        for action in stage["actionStates"]
        if action["actionName"] == "Venv"
    ]
    (cache,) = venv["caches"]
    assert (cache["outcome"], cache["key"], cache["restored_key"]) == (
        "partial",
        "tools-2",
        "tools-1",
    )


def test_status_json_tells_the_failing_command_and_the_reports(tmp_path, cli):
    pipeline = tmp_path / "pipeline.py"
    pipeline.write_text(
        "import pipelinekit as pk\n"
        f"{UNIT_PIPELINE_SOURCE}\n"
        f"pipeline = unit_pipeline({str(tmp_path / 'never')!r})\n"
    )
    store = str(tmp_path / "wd")
    status, _, _ = cli("run", str(pipeline), "--store", store, "--plain")
    assert status == 1
    status, out, _ = cli("status", "latest", "--store", store, "--json")
    (unit,) = [
        action["latestExecution"]
        for stage in json.loads(out)["stageStates"]
        for action in stage["actionStates"]
        if action["actionName"] == "Unit"
    ]
    assert unit["failure"]["exit_status"] == 3
    assert unit["failure"]["index"] == 2
    assert unit["reports"][0]["failed"] == ["t.bad"]
