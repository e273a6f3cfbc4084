"""A failed shell action points at the fault: which command, how it ended, its last output.

Today's cut (issue 11, item 3): a failing multi-command action said "exited with status 1" and
the last lines of stderr only (for pytest, pip's warnings instead of the failures), and not which
of its seven commands failed.
"""

from __future__ import annotations

import io

import attrs
import pytest

import pipelinekit as pk
from pipelinekit.cli._view import PlainView, failure_report
from pipelinekit.testing import FakeExecutor, fail

pytestmark = pytest.mark.anyio


def one(action, **options):
    return pk.Pipeline("p", [pk.Stage("S", [action])], **options)


async def run_one(workdir, *commands, **options):
    result = await pk.arun(one(pk.Action("A", pk.shell(*commands, **options))), workdir=workdir)
    return result, result.actions["S.A"]


async def test_the_failing_command_of_several_is_named_with_its_place_and_status(workdir):
    result, action = await run_one(
        workdir,
        "echo setup",
        "echo 'WARNING: pip is old' >&2",
        "echo 'FAILED tests/test_x.py::test_one'; exit 1",
        "echo never",
    )
    failure = action.failure
    # stdout and stderr are two pipes: lines written back to back may be read in either order
    # (the next test pins the order where the writer waits between them).
    assert sorted(failure.output_tail) == sorted(
        ("setup", "WARNING: pip is old", "FAILED tests/test_x.py::test_one")
    )
    assert attrs.evolve(failure, output_tail=()) == pk.CommandFailure(
        exit_status=1,
        command="echo 'FAILED tests/test_x.py::test_one'; exit 1",
        index=2,
        count=4,
    )
    assert failure.how() == "exited with status 1"
    assert action.error.startswith(
        "command exited with status 1 in commands[2] (3 of 4): "
        "echo 'FAILED tests/test_x.py::test_one'; exit 1:\n"
    )
    # The test runner's failure (stdout) is in the tail, not only the warning (stderr).
    assert "FAILED tests/test_x.py::test_one" in action.error
    assert result.status is pk.Status.FAILED


async def test_the_tail_keeps_stdout_and_stderr_in_the_order_they_came(workdir):
    # Each line is written once the one before it is in the log, so the order is the writer's.
    log = '"$PK_WORKDIR/../../logs/S.A.log"'
    wait = f"until grep -q {{}} {log} 2>/dev/null; do :; done"
    _, action = await run_one(
        workdir,
        "echo out-1",
        wait.format("out-1"),
        "echo err-1 >&2",
        wait.format("err-1"),
        "echo out-2",
        wait.format("out-2"),
        "echo err-2 >&2; exit 3",
    )
    assert action.failure.output_tail == ("out-1", "err-1", "out-2", "err-2")
    assert action.failure.index == 6


async def test_only_the_last_twenty_lines_are_kept(workdir):
    _, action = await run_one(workdir, "seq 1 100; exit 2")
    assert action.failure.output_tail == tuple(str(n) for n in range(81, 101))


async def test_a_command_killed_by_a_signal_says_which_signal(workdir):
    _, action = await run_one(workdir, "echo going", "kill -KILL $$")
    assert action.failure.exit_status is None
    assert action.failure.signal == 9
    assert action.failure.signal_name == "SIGKILL"
    assert action.error.startswith("command killed by SIGKILL (signal 9) in commands[1] (2 of 2)")


async def test_a_program_killed_under_the_shell_is_told_as_the_shell_reports_it(workdir):
    _, action = await run_one(workdir, "sh -c 'kill -TERM $$'")
    assert action.failure.exit_status == 143
    assert action.failure.signal == 15
    assert action.failure.how() == (
        "exited with status 143 (128+SIGTERM: the command may have been killed by SIGTERM)"
    )


async def test_set_plus_e_and_the_status_the_next_command_sees_are_kept(workdir):
    # The note of which command runs must not change $?: the third command checks it.
    _, action = await run_one(
        workdir,
        "set +e",
        "false",
        'test $? -eq 1 || { echo "saw $?"; exit 9; }',
        "! true",
        "test $? -eq 1 || exit 8",
        "exit 4",
    )
    assert action.failure.index == 5
    assert action.failure.exit_status == 4


async def test_under_set_plus_e_the_last_command_s_failure_is_the_action_s(workdir):
    # Before, output variables hid it: their export ran last and returned 0.
    _, action = await run_one(
        workdir,
        "set +e",
        "V=1",
        "false",
        output_variables=["V"],
    )
    assert action.status is pk.Status.FAILED
    assert action.failure.index == 2


async def test_multi_line_commands_and_subshells_are_one_command_each(workdir):
    _, action = await run_one(
        workdir,
        "if true; then\n  echo inside\nfi",
        "(cd / && exit 0)",
        "for n in 1 2; do\n  test $n -lt 2 || exit 5\ndone",
    )
    assert action.failure.index == 2
    assert action.failure.command == "for n in 1 2; do\n  test $n -lt 2 || exit 5\ndone"
    assert action.failure.exit_status == 5
    report = failure_report(await _result_of(action, workdir))
    assert "  the command:" in report
    assert "  | for n in 1 2; do" in report


async def _result_of(action, workdir):
    del workdir
    return pk.RunResult(
        pipeline="p",
        execution_id="e",
        status=pk.Status.FAILED,
        started_at=action.started_at,
        finished_at=action.finished_at,
        stages={},
        actions={action.name: action},
    )


async def test_commands_continued_in_the_next_run_as_written_and_count_as_one(workdir):
    # A note between them would change what runs: `a &&` + note + `b` runs b whatever a did;
    # a here-document body would hold the note; a case pattern after it is a syntax error.
    result, action = await run_one(
        workdir,
        "cat > body.txt <<EOF",
        "hello",
        "EOF",
        'test "$(cat body.txt)" = hello',
        "case x in",
        "x) echo matched;;",
        "esac",
        "false &&",
        "echo never",
        "exit 6",
    )
    failure = action.failure
    assert failure.exit_status == 6
    assert failure.index == 9
    assert "never" not in action.log_path.read_text().splitlines()
    assert "matched" in action.log_path.read_text().splitlines()
    assert result.status is pk.Status.FAILED


async def test_a_failure_inside_a_joined_group_names_its_first_command(workdir):
    _, action = await run_one(workdir, "echo start", "true &&", "false", "echo never")
    assert action.failure.index == 1
    assert action.failure.command == "true &&\nfalse"
    assert action.failure.where() == "commands[1] (2 of 4): true && …"


async def test_a_reference_passed_as_data_is_never_in_the_failure(workdir):
    source = pk.Action("Version", pk.python(lambda ctx: {"V": "1.0; rm -rf x"}), namespace="Build")
    failing = pk.Action("A", pk.shell("echo start", 'test "#{Build.V}" = 2.0'), run_order=2)
    pipeline = pk.Pipeline("p", [pk.Stage("S", [source, failing])])
    result = await pk.arun(pipeline, workdir=workdir)
    failure = result.actions["S.A"].failure
    assert failure.index == 1
    assert failure.exit_status == 1
    assert "rm -rf" not in failure.command  # the value never became shell text
    # Shown as written, not as the rewritten text the shell ran ("${PK_REF_Build_V}").
    assert failure.command == 'test "#{Build.V}" = 2.0'


async def test_secrets_in_the_command_and_its_output_are_masked(workdir):
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage(
                "S",
                [
                    pk.Action(
                        "A",
                        pk.shell(
                            'echo "token is $TOKEN"; exit 1',
                            env={"TOKEN": "#{variables.token}"},
                        ),
                    )
                ],
            )
        ],
        variables=[pk.Variable("token", secret=True)],
    )
    result = await pk.arun(pipeline, workdir=workdir, variables={"token": "s3cr3t-value"})
    action = result.actions["S.A"]
    assert "s3cr3t-value" not in repr(action.failure)
    assert action.failure.output_tail == ("token is ****",)


async def test_the_failed_event_carries_the_failure(workdir):
    events = []
    result = await pk.arun(
        one(pk.Action("A", pk.shell("echo a", "echo b >&2; exit 2"))),
        workdir=workdir,
        hooks=[events.append],
    )
    (failed,) = [e for e in events if e.type == "action" and e.state is pk.Status.FAILED]
    assert failed.detail["failure"] == {
        "exit_status": 2,
        "index": 1,
        "count": 2,
        "command": "echo b >&2; exit 2",
        "output_tail": ["a", "b"],
    }
    assert pk.CommandFailure.from_detail(failed.detail["failure"]) == result.actions["S.A"].failure


async def test_a_provider_s_own_command_fails_with_its_status_and_interleaved_tail(workdir):
    async def build(ctx):
        await ctx.run_command(["sh", "-c", "echo out; echo err >&2; exit 3"])

    result = await pk.arun(one(pk.Action("A", pk.python(build))), workdir=workdir)
    action = result.actions["S.A"]
    assert action.error == "command exited with status 3:\nout\nerr"
    assert action.failure.exit_status == 3
    assert action.failure.index is None
    assert action.failure.signal is None  # no shell read the status: 3 is a status


async def test_a_python_action_s_failure_has_no_command(workdir):
    def broken(ctx):
        raise pk.ActionFailed("nope")

    result = await pk.arun(one(pk.Action("A", pk.python(broken))), workdir=workdir)
    assert result.actions["S.A"].failure is None
    assert result.actions["S.A"].error == "nope"


async def test_the_summary_shows_the_command_the_status_and_the_tail(workdir):
    result = await pk.arun(
        one(pk.Action("Unit", pk.shell("echo collecting", "echo 'E   assert 1 == 2'; exit 1"))),
        workdir=workdir,
    )
    out = io.StringIO()
    PlainView(out).finish(result, interrupted=None)
    text = out.getvalue()
    assert (
        "S.Unit failed: command exited with status 1 in commands[1] (2 of 2): "
        "echo 'E   assert 1 == 2'; exit 1\n"
        "  last 2 lines of output (stdout and stderr):\n"
        "  | collecting\n"
        "  | E   assert 1 == 2\n"
    ) in text
    assert f"  log: {result.actions['S.Unit'].log_path}" in text


def test_the_live_view_shows_which_command_failed():
    rich = pytest.importorskip("rich.console")
    from datetime import UTC, datetime  # noqa: PLC0415

    from pipelinekit.cli._view import LiveView  # noqa: PLC0415

    pipeline = one(pk.Action("A", pk.shell("true", "false")))
    view = LiveView(pipeline, rich.Console(width=200, color_system=None))
    failure = pk.CommandFailure(exit_status=1, command="false", index=1, count=2)
    view._apply(
        pk.Event(
            "action",
            pk.Status.FAILED,
            "p",
            "e1",
            datetime.now(UTC),
            "S",
            "A",
            {"failure": failure.to_detail()},
        )
    )
    drawn = rich.Console(record=True, width=200, color_system=None)
    drawn.print(view)
    assert "A commands[1] exited with status 1" in drawn.export_text()


def test_the_fake_s_failures_have_no_command():
    """A scripted fail() runs no command: the result says so (no failure) as a real one would
    for a provider that failed without one."""
    fake = FakeExecutor({"S.A": fail("scripted")})
    result = fake.run(one(pk.Action("A", pk.shell("make"))))
    action = result.actions["S.A"]
    assert action.error == "scripted"
    assert action.failure is None
    assert action.reports == ()
    assert action.summary is None
