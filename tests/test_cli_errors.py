"""Errors, never tracebacks: every user mistake is one line and exit 2; signals have their codes.

Ctrl-C ends ``pipelinekit run`` (and ``resume``) with 130 however many times it is pressed,
SIGTERM with 143 and its own message, and the action's processes never outlive either.
"""

from __future__ import annotations

import io
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

import pipelinekit as pk
from pipelinekit.stores import MemoryStore

SLOW = """
import pipelinekit as pk
pipeline = pk.Pipeline("slow", [
    pk.Stage("S", [pk.Action("Sleep", pk.Commands(
        ["trap '' TERM; echo $$ > {pidfile}; while :; do sleep 0.05; done"],
        grace_period=300))]),
])
"""

QUICK = """
import pipelinekit as pk
pipeline = pk.Pipeline("demo", [pk.Stage("Build", [pk.Action("Compile", pk.shell("echo hi"))])])
"""


def read_store(path, method, *args):
    """``store.<method>(*args)`` on the SQLite store at ``path``, closed afterwards."""
    store = pk.SQLiteStore(path)
    try:
        return anyio.run(getattr(store, method), *args)
    finally:
        store.close()


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def start_slow(tmp_path: Path, *command: str) -> tuple[subprocess.Popen[str], int]:
    """``pipelinekit <command>`` on a pipeline whose action ignores SIGTERM; its pid."""
    pidfile = tmp_path / "pid"
    write(tmp_path / "slow.py", SLOW.format(pidfile=pidfile))
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelinekit", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the action never started"
        time.sleep(0.02)
    return process, int(pidfile.read_text())


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_a_second_ctrl_c_ends_the_run_at_once_and_its_processes_with_it(tmp_path):
    # The action ignores SIGTERM and has a 300 s grace period: only the second Ctrl-C's
    # SIGKILL can end it soon.
    process, pid = start_slow(tmp_path, "run", "slow.py", "--store", "wd", "--plain")
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)  # the first Ctrl-C is being handled: the action got SIGTERM and ignores it
    assert process.poll() is None
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "cancelled by Ctrl-C" in out
    assert gone(pid)


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["TERM", "HUP"]
)
def test_sigterm_and_a_closed_terminal_stop_the_run_and_say_so(tmp_path, signum, status):
    pidfile = tmp_path / "pid"
    write(
        tmp_path / "p.py",
        f"""
        import pipelinekit as pk
        pipeline = pk.Pipeline("slow", [
            pk.Stage("S", [pk.Action("Sleep", pk.shell("echo $$ > {pidfile}; exec sleep 300"))]),
        ])
        """,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelinekit", "run", "p.py", "--store", "wd", "--plain"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline, "the action never started"
        time.sleep(0.02)
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    assert process.returncode == status, err
    assert "Traceback" not in err
    assert "Ctrl-C" not in out
    assert f"stopped by {signum.name}" in out
    assert out.splitlines()[-1].startswith("pipeline 'slow' Stopped in ")
    assert gone(int(pidfile.read_text()))


def test_ctrl_c_during_resume_exits_130_without_a_traceback(tmp_path):
    first, pid = start_slow(tmp_path, "run", "slow.py", "--store", "wd", "--plain")
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    (summary,) = read_store(tmp_path / "wd" / "state.db", "executions")
    (tmp_path / "pid").unlink()
    resumed, _ = start_slow_resume(tmp_path, summary.id)
    resumed.send_signal(signal.SIGINT)
    time.sleep(0.3)
    resumed.send_signal(signal.SIGINT)
    out, err = resumed.communicate(timeout=30)
    assert resumed.returncode == 130, err
    assert "Traceback" not in err
    assert "cancelled by Ctrl-C" in out
    assert gone(pid)


def start_slow_resume(tmp_path: Path, execution_id: str) -> tuple[subprocess.Popen[str], int]:
    # The action is not idempotent: a resume fails it as interrupted and ends at once. A retry
    # of its stage runs it again, which is what this test interrupts.
    subprocess.run(
        [sys.executable, "-m", "pipelinekit", "resume", execution_id,
         "--store", "wd/state.db", "--plain"],
        capture_output=True, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    return start_slow(tmp_path, "retry", execution_id, "S", "--store", "wd/state.db", "--plain")


def test_a_pipeline_file_that_exits_or_interrupts_is_one_line(tmp_path, cli):
    write(tmp_path / "exits.py", "import sys\nsys.exit(3)\n")
    status, _, err = cli("validate", str(tmp_path / "exits.py"))
    assert status == 2
    assert err.strip().count("\n") == 0
    assert "called sys.exit(3)" in err
    write(tmp_path / "interrupts.py", "raise KeyboardInterrupt\n")
    status, _, err = cli("run", str(tmp_path / "interrupts.py"))
    assert status == 130
    assert err.strip().count("\n") == 0
    assert "interrupted" in err


def test_a_bad_workdir_or_store_is_one_line(tmp_path, cli):
    write(tmp_path / "p.py", QUICK)
    (tmp_path / "a-file").write_text("")
    status, _, err = cli("run", str(tmp_path / "p.py"), "--store", str(tmp_path / "a-file"))
    assert status == 2
    assert err.startswith("pipelinekit: error: ")
    assert "a-file" in err
    assert err.strip().count("\n") == 0
    (tmp_path / "junk.db").write_bytes(os.urandom(4096))
    for command in (["resume", "x"], ["retry", "x", "S"], ["status", "x"], ["history"]):
        status, _, err = cli(*command, "--store", str(tmp_path / "junk.db"))
        assert status == 2, command
        assert err.startswith("pipelinekit: error: cannot use "), command
        assert err.strip().count("\n") == 0, command


def test_lease_settings_are_checked(tmp_path, cli, monkeypatch):
    write(tmp_path / "p.py", QUICK)
    for value, expected in (("abc", "not a number"), ("0", "at least"), ("nan", "not a number")):
        monkeypatch.setenv("PIPELINEKIT_LEASE_SECONDS", value)
        status, _, err = cli("run", str(tmp_path / "p.py"), "--store", str(tmp_path / "wd"))
        assert status == 2, value
        assert "PIPELINEKIT_LEASE_SECONDS" in err
        assert expected in err
    monkeypatch.delenv("PIPELINEKIT_LEASE_SECONDS")
    for bad in (0, -1, 0.5, float("inf")):
        with pytest.raises(pk.ExecutionError, match="lease_seconds"):
            pk.Engine(workdir=tmp_path, lease_seconds=bad)


def test_names_starting_with_a_dash_are_addressable_after_double_dash(tmp_path, cli):
    write(
        tmp_path / "p.py",
        """
        import pipelinekit as pk
        pipeline = pk.Pipeline("p", [pk.Stage("-S", [pk.Action("-A", pk.shell("echo dashing"))])])
        """,
    )
    status, _, _ = cli("run", str(tmp_path / "p.py"), "--store", str(tmp_path / "wd"))
    assert status == 0
    (summary,) = read_store(tmp_path / "wd" / "state.db", "executions")
    store = str(tmp_path / "wd" / "state.db")
    status, out, err = cli("logs", "--store", store, "--", summary.id, "-S.-A")
    assert status == 0, err
    assert "dashing" in out


class FailingStore(MemoryStore):
    """A store whose disk fills up after ``healthy`` writes."""

    def __init__(self, healthy: int) -> None:
        super().__init__()
        self.healthy = healthy

    async def record(self, events):
        self.healthy -= 1
        if self.healthy < 0:
            msg = "disk full"
            raise pk.StoreError(msg)
        return await super().record(events)


@pytest.mark.parametrize("healthy", [0, 1, 2])
def test_store_errors_reach_callers_as_store_errors_not_groups(tmp_path, healthy):
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage("S", [pk.Action("A", pk.Wait(0))]),
            pk.Stage("T", [pk.Action("B", pk.Wait(0))]),
        ],
    )
    with pytest.raises(pk.StoreError, match="disk full"):
        pk.run(pipeline, store=FailingStore(healthy), workdir=tmp_path)


@pytest.mark.skipif(sys.platform != "linux", reason="drops root's capabilities the Linux way")
def test_a_read_only_database_is_one_line_and_exit_2(tmp_path, cli):
    from test_stores import DROP_OVERRIDE  # noqa: PLC0415 - how root is made to obey file modes

    write(tmp_path / "p.py", QUICK)
    status, _, _ = cli("run", str(tmp_path / "p.py"), "--store", str(tmp_path / "wd"))
    assert status == 0
    database = tmp_path / "wd" / "state.db"
    database.chmod(0o444)
    (tmp_path / "wd").chmod(0o555)
    command = [sys.executable, "-m", "pipelinekit", "run", "p.py", "--store", "wd", "--plain"]
    if os.geteuid() == 0:
        command = [sys.executable, "-c", DROP_OVERRIDE, *command[1:]]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False
        )
    finally:
        (tmp_path / "wd").chmod(0o755)
        database.chmod(0o644)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("pipelinekit: error: ")
    assert done.stderr.strip().count("\n") == 0
    assert "state.db" in done.stderr


def test_a_var_without_a_name_is_never_echoed(tmp_path, cli):
    write(tmp_path / "p.py", QUICK)
    status, out, err = cli("run", str(tmp_path / "p.py"), "--var", "s3cr3t-t0ken")
    assert status == 2
    assert "s3cr3t" not in out + err
    assert "--var NAME=VALUE" in err


def test_the_fake_refuses_a_blank_decider_as_the_engine_does():
    from pipelinekit import testing  # noqa: PLC0415

    for blank in ("", "   ", " bob"):
        with pytest.raises(pk.ExecutionError, match="who decides"):
            testing.approve(by=blank)
        with pytest.raises(pk.ExecutionError, match="who decides"):
            testing.reject(by=blank)


def test_a_grace_period_beyond_the_longest_timeout_is_refused():
    with pytest.raises(pk.PipelineDefinitionError, match="grace_period"):
        pk.Action("A", pk.Commands(["true"], grace_period=10**12))


def _exits(ctx):
    sys.exit(2)


async def _exits_async(ctx):
    sys.exit(3)


def _interrupts(ctx):
    raise KeyboardInterrupt


def _closes(ctx):
    raise GeneratorExit


class _OwnBaseException(BaseException):
    pass


async def _interrupts_async(ctx):
    raise KeyboardInterrupt


async def _raises_its_own(ctx):
    raise _OwnBaseException


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (_exits, "_exits called sys.exit(2)"),
        (_exits_async, "_exits_async called sys.exit(3)"),
        (_interrupts, "_interrupts raised KeyboardInterrupt"),
        (_closes, "_closes raised GeneratorExit"),
        (_interrupts_async, "_interrupts_async raised KeyboardInterrupt"),
        (_raises_its_own, "_raises_its_own raised _OwnBaseException"),
    ],
)
def test_a_python_action_that_exits_fails_alone(tmp_path, function, message):
    # Wrapping a tool's main() is common; its sys.exit() must not end the run or the program.
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage("S", [pk.Action("A", pk.python(function)), pk.Action("B", pk.Wait(0))]),
            pk.Stage("T", [pk.Action("C", pk.Wait(0))]),
        ],
    )
    result = pk.run(pipeline, store=MemoryStore(), workdir=tmp_path)
    assert result.status is pk.Status.FAILED
    assert result.actions["S.A"].error == message
    assert result.actions["S.B"].status is pk.Status.SUCCEEDED


def test_pipelinekit_run_of_an_action_that_exits_is_a_failed_run(tmp_path):
    write(
        tmp_path / "p.py",
        """
        import sys
        import pipelinekit as pk

        def main(ctx):
            sys.exit(2)

        pipeline = pk.Pipeline("p", [pk.Stage("S", [pk.Action("A", pk.python(main))])])
        """,
    )
    done = subprocess.run(
        [sys.executable, "-m", "pipelinekit", "run", "p.py", "--store", "wd", "--plain"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "main called sys.exit(2)" in done.stdout


def test_a_variable_given_twice_is_refused(tmp_path, cli):
    write(tmp_path / "p.py", QUICK)
    status, _, err = cli("run", str(tmp_path / "p.py"), "--var", "x=1", "--var", "x=2")
    assert status == 2
    assert "--var x=... is given twice" in err


def test_a_pipeline_file_raising_any_base_exception_is_one_line(tmp_path, cli):
    write(tmp_path / "p.py", "raise GeneratorExit\n")
    status, _, err = cli("validate", str(tmp_path / "p.py"))
    assert status == 2
    assert "raised GeneratorExit" in err
    assert err.strip().count("\n") == 0


def test_a_reader_that_goes_away_is_no_error(tmp_path):
    write(tmp_path / "p.py", QUICK)
    reader = subprocess.Popen(
        [sys.executable, "-m", "pipelinekit", "graph", "p.py", "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    assert reader.stdout is not None
    reader.stdout.close()  # as `| head -0` does
    _, err = reader.communicate(timeout=60)
    assert b"error" not in err
    assert reader.returncode in {0, 141}


def test_an_approval_hint_names_a_store_that_is_not_the_default(tmp_path):
    from pipelinekit.cli._view import PlainView  # noqa: PLC0415

    event = pk.Event(
        "approval", pk.Status.WAITING_FOR_APPROVAL, "p", "e1",
        datetime.now(UTC), "Gate", "Ok", {}, 3,
    )  # fmt: skip
    out = io.StringIO()
    PlainView(out, " --store wd/state.db")._print(event)
    assert "pipelinekit approve e1 Gate.Ok --store wd/state.db (or reject)" in out.getvalue()


def test_a_blocked_python_action_does_not_keep_the_command_alive(tmp_path):
    write(
        tmp_path / "p.py",
        """
        import time
        import pipelinekit as pk

        def stuck(ctx):
            time.sleep(300)  # threads cannot be stopped

        pipeline = pk.Pipeline("p", [pk.Stage("S", [pk.Action("A", pk.python(stuck), timeout=1)])])
        """,
    )
    done = subprocess.run(
        [sys.executable, "-m", "pipelinekit", "run", "p.py", "--store", "wd", "--plain"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "timed out" in done.stdout
    assert "leaving without them" in done.stderr
    assert "Traceback" not in done.stderr


def test_sigterm_while_a_pipeline_file_loads_says_so(tmp_path):
    write(tmp_path / "p.py", "import time\nopen('loading', 'w').close()\ntime.sleep(300)\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelinekit", "validate", "p.py"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not (tmp_path / "loading").exists():
        assert time.monotonic() < deadline, "the file never loaded"
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 143
    assert err.strip() == "pipelinekit: stopped by SIGTERM"
