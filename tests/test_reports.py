"""Test reports and summaries (issue 11, item 7).

Today's cut: a shell action could not name its JUnit XML files, so the result said nothing of
how many tests ran or which failed; nor could an action add a summary to the run's, as a GitHub
job summary does.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

import pipelinekit as pk
from pipelinekit.cli._view import PlainView
from pipelinekit.providers import _junit
from pipelinekit.providers._context import MAX_SUMMARY_BYTES
from pipelinekit.testing import FakeExecutor

pytestmark = pytest.mark.anyio

PYTEST_XML = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="1" skipped="1" tests="4">
<testcase classname="tests.test_a" name="test_ok" time="0.01"/>
<testcase classname="tests.test_a" name="test_bad" time="0.01"><failure message="assert 1 == 2">
E   assert 1 == 2</failure></testcase>
<testcase classname="tests.test_b" name="test_skip"><skipped message="later"/></testcase>
<testcase classname="tests.test_b" name="test_broken"><error message="fixture"/></testcase>
</testsuite></testsuites>
"""


def one(action):
    return pk.Pipeline("p", [pk.Stage("S", [action])])


def write(name: str, text: str) -> str:
    """A command writing ``text`` to ``name`` (in the action's working folder)."""
    return f"mkdir -p \"$(dirname '{name}')\" && cat > '{name}' <<'XML'\n{text}\nXML"


async def test_a_report_s_counts_and_failed_tests_are_in_the_result_and_event(workdir):
    events = []
    action = pk.Action(
        "Unit", pk.shell(write("junit.xml", PYTEST_XML), "exit 1", reports=["junit.xml"])
    )
    result = await pk.arun(one(action), workdir=workdir, hooks=[events.append])
    unit = result.actions["S.Unit"]
    assert unit.status is pk.Status.FAILED  # the commands' status decides, read or not
    (report,) = unit.reports
    assert report == pk.TestReport(
        "junit.xml",
        tests=4,
        failures=1,
        errors=1,
        skipped=1,
        failed=("tests.test_a.test_bad", "tests.test_b.test_broken"),
    )
    assert report.passed == 1
    (failed,) = [e for e in events if e.type == "action" and e.state is pk.Status.FAILED]
    assert failed.detail["reports"] == [report.to_detail()]
    assert pk.TestReport.from_detail(failed.detail["reports"][0]) == report


async def test_reports_of_a_successful_action_and_globs_over_folders(workdir):
    events = []
    passing = PYTEST_XML.replace('<failure message="assert 1 == 2">', "<system-out>").replace(
        "</failure>", "</system-out>"
    )
    action = pk.Action(
        "Unit",
        pk.shell(
            write("reports/a.xml", passing),
            write("reports/b.xml", '<testsuite tests="2"><testcase name="t"/></testsuite>'),
            reports=["reports/*.xml"],
        ),
    )
    result = await pk.arun(one(action), workdir=workdir, hooks=[events.append])
    unit = result.actions["S.Unit"]
    assert unit.status is pk.Status.SUCCEEDED, unit.error
    assert [(r.path, r.tests, r.failures, r.errors) for r in unit.reports] == [
        ("reports/a.xml", 4, 0, 1),
        ("reports/b.xml", 1, 0, 0),
    ]
    (succeeded,) = [e for e in events if e.type == "action" and e.state is pk.Status.SUCCEEDED]
    assert len(succeeded.detail["reports"]) == 2


async def test_a_missing_report_is_a_warning_not_a_failure(workdir):
    action = pk.Action("Unit", pk.shell("true", reports=["junit.xml"]))
    result = await pk.arun(one(action), workdir=workdir)
    unit = result.actions["S.Unit"]
    assert unit.status is pk.Status.SUCCEEDED
    (report,) = unit.reports
    assert report.problem == "no file matches this pattern"
    assert "test report not read report='junit.xml'" in unit.log_path.read_text()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            (
                '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                '<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><testsuite>&lol2;</testsuite>'
            ),
            "document type declaration",
        ),
        (
            '<!DOCTYPE t SYSTEM "file:///etc/passwd"><testsuite/>',
            "document type declaration",
        ),
        ("<testsuite><testcase", "not JUnit XML"),
    ],
)
def test_hostile_or_broken_xml_is_not_parsed(tmp_path, text, problem):
    (tmp_path / "junit.xml").write_text(text)
    (report,) = _junit.read_reports(tmp_path, ["junit.xml"])
    assert problem in report.problem
    assert report.tests == 0


def test_a_report_over_the_size_limit_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(_junit, "MAX_REPORT_BYTES", 100)
    (tmp_path / "junit.xml").write_text(PYTEST_XML)
    (report,) = _junit.read_reports(tmp_path, ["junit.xml"])
    assert report.problem.startswith("not read: ")
    assert "over 100" in report.problem


def test_failed_names_are_capped_but_counted(tmp_path):
    cases = "".join(f'<testcase name="t{n}"><failure/></testcase>' for n in range(50))
    (tmp_path / "junit.xml").write_text(f"<testsuite>{cases}</testsuite>")
    (report,) = _junit.read_reports(tmp_path, ["junit.xml"])
    assert report.failures == 50
    assert len(report.failed) == _junit.MAX_FAILED_NAMES


def test_a_report_with_only_totals_is_read_from_its_attributes(tmp_path):
    (tmp_path / "junit.xml").write_text(
        '<testsuites><testsuite tests="3" failures="1"/><testsuite tests="2" skipped="2"/>'
        "</testsuites>"
    )
    (report,) = _junit.read_reports(tmp_path, ["junit.xml"])
    assert (report.tests, report.failures, report.skipped) == (5, 1, 2)


@pytest.mark.parametrize("pattern", ["../junit.xml", "/srv/junit.xml", "", "a/../../b.xml"])
def test_report_patterns_stay_in_the_working_folder(pattern):
    with pytest.raises(pk.PipelineDefinitionError) as caught:
        pk.Action("Unit", pk.shell("true", reports=[pattern]))
    assert caught.value.problems[0].field == "provider.reports[0]"


async def test_a_summary_written_to_pk_summary_is_in_the_result_and_masked(workdir):
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage(
                "S",
                [
                    pk.Action(
                        "Docs",
                        pk.shell(
                            'echo "## Docs built" >> "$PK_SUMMARY"',
                            'echo "token: $TOKEN" >> "$PK_SUMMARY"',
                            env={"TOKEN": "#{variables.token}"},
                        ),
                    )
                ],
            )
        ],
        variables=[pk.Variable("token", secret=True)],
    )
    events = []
    result = await pk.arun(
        pipeline, workdir=workdir, variables={"token": "s3cr3t-value"}, hooks=[events.append]
    )
    docs = result.actions["S.Docs"]
    assert docs.summary == "## Docs built\ntoken: ****"
    (succeeded,) = [e for e in events if e.type == "action" and e.state is pk.Status.SUCCEEDED]
    assert succeeded.detail["summary"] == "## Docs built\ntoken: ****"


async def test_a_failed_action_s_summary_is_kept_too(workdir):
    action = pk.Action("A", pk.shell('echo "what went wrong" > "$PK_SUMMARY"', "exit 1"))
    result = await pk.arun(one(action), workdir=workdir)
    assert result.actions["S.A"].summary == "what went wrong"


async def test_a_python_action_writes_its_summary_through_the_context(workdir):
    def build(ctx):
        ctx.summary_path.write_text("built **3** wheels\n")

    result = await pk.arun(one(pk.Action("A", pk.python(build))), workdir=workdir)
    assert result.actions["S.A"].summary == "built **3** wheels"


async def test_a_summary_is_cut_at_its_size_limit(workdir):
    action = pk.Action(
        "A", pk.shell(f'head -c {MAX_SUMMARY_BYTES + 10} /dev/zero | tr "\\0" x > "$PK_SUMMARY"')
    )
    result = await pk.arun(one(action), workdir=workdir)
    summary = result.actions["S.A"].summary
    assert summary.startswith("x" * MAX_SUMMARY_BYTES)
    assert summary.endswith(f"(cut: a summary keeps its first {MAX_SUMMARY_BYTES:,} bytes)")


async def test_actions_that_write_no_summary_have_none(workdir):
    result = await pk.arun(one(pk.Action("A", pk.shell("true"))), workdir=workdir)
    assert result.actions["S.A"].summary is None
    assert result.actions["S.A"].reports == ()


async def test_the_end_of_run_shows_tests_and_summaries(workdir):
    action = pk.Action(
        "Unit",
        pk.shell(
            write("junit.xml", PYTEST_XML),
            'echo "# Coverage 93%" > "$PK_SUMMARY"',
            reports=["junit.xml", "missing.xml"],
        ),
    )
    result = await pk.arun(one(action), workdir=workdir)
    out = io.StringIO()
    PlainView(out).finish(result, interrupted=None)
    text = out.getvalue()
    assert "S.Unit tests: junit.xml: 4 tests, 1 failed, 1 errors, 1 skipped\n" in text
    assert "  ✖ tests.test_a.test_bad\n" in text
    assert "S.Unit tests: missing.xml: no file matches this pattern (a warning)\n" in text
    assert "--- summary of S.Unit ---\n# Coverage 93%\n" in text


def test_the_live_view_shows_an_action_s_test_counts():
    rich = pytest.importorskip("rich.console")
    from pipelinekit.cli._view import LiveView  # noqa: PLC0415

    view = LiveView(one(pk.Action("Unit", pk.shell("true"))), rich.Console(color_system=None))
    report = pk.TestReport("junit.xml", tests=12, failures=2, failed=("a", "b"))
    detail = {"reports": [report.to_detail()]}
    view._apply(
        pk.Event("action", pk.Status.FAILED, "p", "e", datetime.now(UTC), "S", "Unit", detail)
    )
    drawn = rich.Console(record=True, width=200, color_system=None)
    drawn.print(view)
    assert "Unit 12 tests, 2 failed" in drawn.export_text()


def test_the_fake_runs_no_commands_so_reads_no_reports():
    """The fake never runs the commands: no report is written, so none is read; the outcome
    alone decides (as the commands' status does in a real run)."""
    fake = FakeExecutor()
    result = fake.run(one(pk.Action("Unit", pk.shell("pytest", reports=["junit.xml"]))))
    assert result.actions["S.Unit"].status is pk.Status.SUCCEEDED
    assert result.actions["S.Unit"].reports == ()
