"""What a hostile shell action cannot do to the run: hang it, leak a secret's start, be misread.

The issue-11 shell features read files the commands control ($PK_SUMMARY, the output variables
file, the command notes, JUnit reports), cut long text, and put notes between the commands;
each test here is a probe that broke them (a FIFO hung the run; text cut before masking showed
a secret's first characters; a note changed what a script did).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import anyio
import pytest

import pipelinekit as pk
from pipelinekit._model._secrets import Masker
from pipelinekit.providers import _junit
from pipelinekit.providers._commands import Commands
from pipelinekit.providers._context import MAX_SUMMARY_BYTES
from pipelinekit.providers._failure import CommandFailure
from pipelinekit.providers._junit import TestReport

pytestmark = pytest.mark.anyio

SECRET = "hunter2secretvalue"  # noqa: S105 - a made-up secret to mask
#: A guard, not a wait: a run that hangs fails the test instead of hanging the suite.
GUARD = 60


def one(action, **options):
    return pk.Pipeline("p", [pk.Stage("S", [action])], **options)


def with_secret(action):
    return pk.Pipeline(
        "p",
        [pk.Stage("S", [action])],
        variables=[pk.Variable("tok", secret=True, default=SECRET)],
    )


async def run(pipeline, workdir, **options):
    with anyio.fail_after(GUARD):
        return await pk.arun(pipeline, workdir=workdir, **options)


def log_of(result, name="S.A"):
    return result.actions[name].log_path.read_text()


# -- 1. files the commands control are read only when they are regular files -------------------


async def test_a_fifo_at_pk_summary_is_not_read_and_the_run_ends(workdir):
    result = await run(one(pk.Action("A", pk.shell('mkfifo "$PK_SUMMARY"', "echo done"))), workdir)
    action = result.actions["S.A"]
    assert action.status is pk.Status.SUCCEEDED
    assert action.summary is None
    assert "summary not read" in log_of(result)
    assert "not a regular file" in log_of(result)


async def test_a_symbolic_link_at_pk_summary_is_not_followed(workdir):
    result = await run(one(pk.Action("A", pk.shell('ln -s /dev/zero "$PK_SUMMARY"'))), workdir)
    assert result.actions["S.A"].summary is None
    assert "symbolic link" in log_of(result)


async def test_a_fifo_at_the_variables_file_is_not_read_and_the_run_ends(workdir):
    action = pk.Action(
        "A", pk.shell('mkfifo "$PK_VARIABLES_FILE"', optional_output_variables=["X"])
    )
    result = await run(one(action), workdir)
    assert result.actions["S.A"].status is pk.Status.SUCCEEDED
    assert result.actions["S.A"].variables == {"X": ""}
    assert "output variables not read" in log_of(result)


async def test_a_fifo_at_the_command_notes_is_not_read_and_the_run_ends(workdir):
    action = pk.Action(
        "A", pk.shell('rm -f "$PK_COMMAND_FILE"; mkfifo "$PK_COMMAND_FILE"', "false")
    )
    result = await run(one(action), workdir)
    failure = result.actions["S.A"].failure
    assert failure.exit_status == 1
    assert failure.index is None  # the notes could not be read: no command is blamed


async def test_a_fifo_named_by_a_report_pattern_is_not_read(workdir):
    action = pk.Action("A", pk.shell("mkfifo junit.xml", reports=["junit.xml"]))
    result = await run(one(action), workdir)
    (report,) = result.actions["S.A"].reports
    assert report.problem == "not a regular file (a FIFO)"


def test_a_report_swapped_for_a_fifo_after_the_glob_is_not_opened_blocking(tmp_path):
    # The glob found a file; between the glob and the read it became a FIFO. The read opens
    # without blocking and looks at what it opened, so no check-then-open window remains.
    os.mkfifo(tmp_path / "junit.xml")
    report = _junit._read(tmp_path / "junit.xml", "junit.xml", str)
    assert report.problem == "not a regular file (a FIFO)"


# -- 2. text is masked before it is cut --------------------------------------------------------


def masker():
    return Masker([SECRET])


@pytest.mark.parametrize("before", [490, 495, 498, 499, 500, 501])
def test_a_long_output_line_is_masked_before_it_is_cut(before):
    line = "x" * before + SECRET + "y" * 40
    failure = CommandFailure.of_returncode(1, output_tail=[line], mask=masker().mask)
    (kept,) = failure.output_tail
    assert "hunter" not in kept
    assert SECRET[:3] not in kept.replace("x", "").replace("y", "")
    # A cut never leaves a piece of a mask: either the whole mask or none of it.
    shown = kept.split("…")[0]
    assert shown.rstrip("x") in ("", "****") or shown.endswith(
        "****" + "y" * (len(shown) - before - 4)
    )


def test_a_long_command_is_masked_before_it_is_cut():
    command = "echo " + "y" * 495 + SECRET
    failure = CommandFailure.of_returncode(1, command=command, index=0, count=1, mask=masker().mask)
    assert "hunt" not in failure.command


async def test_a_secret_at_a_failure_line_s_cut_reaches_no_output(workdir, cli, tmp_path):
    action = pk.Action(
        "A",
        pk.shell(
            'python3 -c \'import os; print("x"*490 + os.environ["TOK"])\'',
            "false",
            env={"TOK": "#{variables.tok}"},
        ),
    )
    events = []
    result = await run(with_secret(action), workdir, hooks=[events.append])
    failed = result.actions["S.A"]
    assert "hunter" not in repr(failed.failure)
    assert "hunter" not in failed.error
    assert "hunter" not in repr([e.detail for e in events])
    assert "hunter" not in log_of(result)


async def test_a_summary_is_masked_before_it_is_cut(workdir):
    action = pk.Action(
        "A",
        pk.shell(
            'python3 -c \'import os,sys; sys.stdout.write("a"*'
            f'({MAX_SUMMARY_BYTES}-8) + os.environ["TOK"])\' > "$PK_SUMMARY"',
            env={"TOK": "#{variables.tok}"},
        ),
    )
    result = await run(with_secret(action), workdir)
    summary = result.actions["S.A"].summary
    assert "hunter" not in summary
    assert "a" * 100 in summary
    assert summary.split("\n")[0].replace("a", "") in ("", "****")


async def test_a_summary_holding_many_secrets_keeps_no_start_of_one_past_the_read(workdir):
    # Masks shrink the text: 9,000 masked secrets then one cut by the read must not leave
    # the cut one's start within the kept part.
    count = MAX_SUMMARY_BYTES // len(SECRET) + 50
    action = pk.Action(
        "A",
        pk.shell(
            f"python3 -c 'import os,sys; sys.stdout.write(os.environ[\"TOK\"]*{count})'"
            ' > "$PK_SUMMARY"',
            env={"TOK": "#{variables.tok}"},
        ),
    )
    result = await run(with_secret(action), workdir)
    summary = result.actions["S.A"].summary
    assert summary.split("\n")[0].replace("****", "") == ""


# -- 3. a report's file name is masked too ------------------------------------------------------


def test_a_report_s_path_and_problem_are_masked():
    report = TestReport(f"report-{SECRET}.xml", failed=(f"t.{SECRET}",), problem=f"x {SECRET}")
    masked = report.masked(masker().mask)
    assert SECRET not in repr(masked)
    assert masked.path == "report-****.xml"


async def test_a_secret_in_a_report_s_file_name_is_never_shown(workdir):
    action = pk.Action(
        "A",
        pk.shell(
            "echo '<testsuite><testcase name=\"t\"><failure/></testcase></testsuite>'"
            ' > "report-$TOK.xml"',
            'echo bad > "bad-$TOK.xml"',
            env={"TOK": "#{variables.tok}"},
            reports=["report-*.xml", "bad-*.xml"],
        ),
    )
    events = []
    result = await run(with_secret(action), workdir, hooks=[events.append])
    reports = result.actions["S.A"].reports
    assert [report.path for report in reports] == ["report-****.xml", "bad-****.xml"]
    assert SECRET not in repr([e.detail for e in events])
    assert SECRET not in log_of(result)


# -- 5. output variables are exported however the commands end ---------------------------------


async def test_an_output_variable_set_before_exit_0_is_handed_over(workdir):
    action = pk.Action("A", pk.shell("VERSION=1.2", "exit 0", output_variables=["VERSION"]))
    result = await run(one(action), workdir)
    assert result.actions["S.A"].status is pk.Status.SUCCEEDED
    assert result.actions["S.A"].variables == {"VERSION": "1.2"}


async def test_a_replaced_exit_trap_is_named_when_variables_are_missing(workdir):
    action = pk.Action(
        "A", pk.shell("VERSION=1.2", "trap 'echo bye' EXIT", output_variables=["VERSION"])
    )
    result = await run(one(action), workdir)
    assert "replaced the EXIT trap" in result.actions["S.A"].error


@pytest.mark.parametrize("name", ["__pk_at", "__pk_end", "PK_SUMMARY", "PK_REF_x"])
@pytest.mark.parametrize("field", ["output_variables", "optional_output_variables"])
def test_reserved_output_variable_names_are_refused_where_declared(name, field):
    with pytest.raises(pk.PipelineDefinitionError) as caught:
        pk.Action("A", pk.shell("true", **{field: [name]}))
    problem = caught.value.problems[0]
    assert problem.field == f"provider.{field}"
    assert "reserved" in problem.message
    assert name in problem.message


# -- 4. the notes between commands change nothing the commands do -------------------------------

SHELLS = [s for s in ("/bin/sh", "bash") if shutil.which(s)]

SAME = {
    "esac_then_case": ["echo esac", "case a in", "a) echo A;;", "esac", "echo done"],
    "quote_span": ["echo 'a", "b'", "echo done"],
    "python_quote_span": ["python3 -c 'print(1)", "print(2)'"],
    "underscore": ["echo hello", "echo last=$_"],
    "underscore_first": ["echo first=$_ | tr -d /"],
    "errtrap": ["set +e", "trap 'echo ERR trapped' ERR", "false", "echo after"],
    "setx": ["set -x", "echo hi"],
    "setx_fail": ["set -x", "false"],
    "func": ["f() {", "  echo in f; return 3", "}", "set +e", "f", "echo rc=$?"],
    "func_body_next": ["f()", "{ echo body; }", "f"],
    "arith_shift": ["echo $((1<<3))", "false", "echo never"],
    "subshell_exit": ["(exit 3)", "echo never"],
    "subshell_span": ["(", "echo in", ")", "echo out"],
    "if_span": ["if true", "then", "echo yes", "fi"],
    "while_read": ["printf 'a\\nb\\n' | while read x", "do", "echo got $x", "done"],
    "dollar_q": ["set +e", "false", "echo rc=$?"],
    "bang": ["! true", "echo after bang rc=$?"],
    "trap_exit": ["trap 'echo exit trap rc=$?' EXIT", "exit 3"],
    "backslash_comment": ["echo a # \\", "echo b"],
    "heredoc_quoted_str": ["echo 'x<<EOF'", "false", "echo never"],
    "cmdsubst_span": ["x=$(echo a", "echo b)", 'echo "$x"'],
    "cmdsubst_case": ["x=$(case a in a) echo A;; esac", ")", 'echo "$x"'],
    "brace_group_redir": ["{", "echo in", "} > out.txt", "cat out.txt"],
    "case_no_semicolons": ["case a in", "a) echo A", "esac", "echo after"],
    "case_paren_patterns": ["case b in", "(a|b) echo AB;;", "(*) echo other;;", "esac"],
    "pipe_span": ["echo abc |", "tr a-z A-Z"],
    "and_comment": ["true && # go on", "echo next"],
    "heredoc": ["cat <<EOF", "body $((1+1))", "EOF", "echo after"],
    "heredoc_quoted": ["cat <<'EOF'", "body $x", "EOF", "echo after"],
    "set_u": ["set -u", "echo $_ >/dev/null", "echo ok"],
    "exit_in_middle": ["echo a", "exit 4", "echo never"],
}
BASH_ONLY = {
    "array_span": ["a=(1", "2)", 'echo "${a[@]}"'],
    "errtrace": ["set -E +e", "trap 'echo ERR trapped' ERR", "false", "echo after"],
    "conditional_span": ["[[ a == a &&", "b == b ]]", "echo yes"],
    "process_substitution": ["cat <(echo in", ")", "echo out"],
}


def _plain(commands):
    return "set -e\n" + "\n".join(commands) + "\n"


def _numberless(stderr):
    """The shell's messages without their line numbers (``sh: 4:``, ``line 4:``)."""
    return re.sub(r"(line |: )\d+:", r"\1N:", stderr)


def _compare(shell, commands, tmp_path):
    env = dict(
        os.environ,
        PK_COMMAND_FILE=str(tmp_path / ".pkc"),
        PK_VARIABLES_FILE=str(tmp_path / ".pkv"),
    )
    script = Commands(commands).script()

    def run_one(text):
        return subprocess.run(
            [shell, "-c", text], capture_output=True, text=True, env=env, cwd=tmp_path, check=False
        )

    plain, noted = run_one(_plain(commands)), run_one(script)
    # Only the line numbers in the shell's messages may differ (documented): the plain script
    # here has `set -e` on line 1, the commands of an action start on line 1.
    return (plain.returncode, plain.stdout), (noted.returncode, noted.stdout), plain, noted


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("name", sorted(SAME))
def test_the_notes_change_nothing_the_commands_do(shell, name, tmp_path):
    plain, noted, raw_plain, raw_noted = _compare(shell, SAME[name], tmp_path)
    assert noted == plain
    assert _numberless(raw_noted.stderr) == _numberless(raw_plain.stderr)


@pytest.mark.skipif(not shutil.which("bash"), reason="bash is not installed")
@pytest.mark.parametrize("name", sorted(BASH_ONLY))
def test_the_notes_change_nothing_bash_commands_do(name, tmp_path):
    plain, noted, raw_plain, raw_noted = _compare("bash", BASH_ONLY[name], tmp_path)
    assert noted == plain
    assert _numberless(raw_noted.stderr) == _numberless(raw_plain.stderr)


def test_set_x_shows_no_line_of_pipelinekit_s(tmp_path):
    _, _, plain, noted = _compare(SHELLS[0], ["set -x", "echo hi", "true"], tmp_path)
    assert noted.stderr == plain.stderr


@pytest.mark.parametrize(
    ("commands", "index"),
    [
        (["echo 'in case of fire'", "echo ok", "false", "echo never"], 2),
        (["echo 'x<<EOF'", "echo ok", "false", "echo never"], 2),
        (["echo $((1<<3))", "echo ok", "false", "echo never"], 2),
        (["echo esac", "case a in", "a) true;;", "esac", "false"], 4),
        (["a=1", "if [ $a = 1 ]", "then", "  false", "fi", "echo never"], 1),
    ],
)
async def test_the_failing_command_is_the_one_blamed(commands, index, workdir):
    result = await run(one(pk.Action("A", pk.shell(*commands))), workdir)
    assert result.actions["S.A"].failure.index == index


async def test_the_command_shown_is_the_one_written_with_its_references(workdir):
    source = pk.Action("Version", pk.python(lambda ctx: {"V": "1.0"}), namespace="Build")
    failing = pk.Action("A", pk.shell("echo start", 'test "#{Build.V}" = 2.0'), run_order=2)
    result = await run(pk.Pipeline("p", [pk.Stage("S", [source, failing])]), workdir)
    failure = result.actions["S.A"].failure
    assert failure.command == 'test "#{Build.V}" = 2.0'


async def test_exit_130_is_a_status_a_signal_kill_is_a_signal(workdir):
    result = await run(one(pk.Action("A", pk.shell("exit 130"))), workdir)
    how = result.actions["S.A"].failure.how()
    assert how == (
        "exited with status 130 (128+SIGINT: the command may have been killed by SIGINT)"
    )
    assert CommandFailure.of_returncode(-2).how() == "killed by SIGINT (signal 2)"
