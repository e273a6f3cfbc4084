"""A crash never doubles work: real processes, real SIGKILLs, and what a takeover ends first.

Each test here starts real commands that leave processes behind in every way a shell can (in
the action's process group, in a session of their own, through a double fork) and checks
that none survives its action, and that after a ``kill -9`` of the owner none survives into
the attempt a resume starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import attrs
import pytest

import pipelinekit as pk
from pipelinekit._runtime._takeover import Owner
from pipelinekit.providers._host import alive


def read_store(path, method, *args):
    """``store.<method>(*args)`` on the SQLite store at ``path``, closed afterwards."""
    store = pk.SQLiteStore(path)
    try:
        return anyio.run(getattr(store, method), *args)
    finally:
        store.close()


pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux's /proc")

#: Three loops that outlive the shell that starts them: one in its process group, one in a
#: session of its own, one behind a double fork. Each writes its pid first.
LEAVE_BEHIND = textwrap.dedent("""
    : >> "$PIDS"  # made first: on a missing file the wait below would end at once (wc fails)
    loop='echo $$ >> "$PIDS"; while :; do sleep 0.05; done'
    sh -c "$loop" &
    setsid sh -c "$loop" &
    sh -c "sh -c '$loop' &" &
    while [ "$(wc -l < "$PIDS")" -lt 3 ]; do sleep 0.01; done
""")

PIPELINE = """
import os
from pathlib import Path

import pipelinekit as pk

HERE = Path(__file__).parent
SCRIPT = {script!r}

async def work(ctx):
    with (HERE / "ledger.txt").open("a") as ledger:
        ledger.write(f"attempt {{ctx.attempt}}\\n")
        if ctx.attempt > 1:
            # What the first attempt left must be gone before this one does anything.
            for pid in (HERE / "pids").read_text().split():
                try:  # a zombie counts as dead: it runs nothing
                    state = Path(f"/proc/{{pid}}/stat").read_text().rsplit(")", 1)[1].split()[0]
                except OSError:
                    state = "Z"
                ledger.write(f"{{'dead' if state == 'Z' else 'alive'}} {{pid}}\\n")
            return
    env = {{"PIDS": str(HERE / "pids")}}
    await ctx.run_command(["sh", "-c", SCRIPT + "touch '" + str(HERE / "ready") + "'; sleep 300"],
                          env=env)


pipeline = pk.Pipeline("crash", [
    pk.Stage("Deploy", [pk.Action("Work", pk.python(work, idempotent=True))]),
])
"""


def pids(path: Path) -> list[int]:
    return [int(pid) for pid in path.read_text().split()]


def wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def kill_all(found: list[int]) -> None:
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_nothing_a_command_starts_outlives_its_action(tmp_path):
    script = LEAVE_BEHIND + "exit 0\n"
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage(
                "S", [pk.Action("A", pk.Commands([script], env={"PIDS": str(tmp_path / "pids")}))]
            )
        ],
    )
    result = pk.run(pipeline, workdir=tmp_path / "wd")
    left = pids(tmp_path / "pids")
    try:
        assert result.succeeded, result.actions["S.A"].error
        assert len(left) == 3
        assert [pid for pid in left if alive(pid)] == []
    finally:
        kill_all(left)


def test_a_timed_out_action_takes_everything_it_started_with_it(tmp_path):
    script = LEAVE_BEHIND + "sleep 300\n"
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage(
                "S",
                [
                    pk.Action(
                        "A",
                        pk.Commands(
                            [script], env={"PIDS": str(tmp_path / "pids")}, grace_period=0.5
                        ),
                        timeout=3,
                    )
                ],
            )
        ],
    )
    result = pk.run(pipeline, workdir=tmp_path / "wd")
    left = pids(tmp_path / "pids")
    try:
        assert result.actions["S.A"].status is pk.Status.FAILED
        assert [pid for pid in left if alive(pid)] == []
    finally:
        kill_all(left)


def start_run(tmp_path: Path) -> subprocess.Popen[bytes]:
    """``pipelinekit run`` of the pipeline that leaves processes behind, in a real process."""
    (tmp_path / "pipeline.py").write_text(PIPELINE.format(script=LEAVE_BEHIND))
    return subprocess.Popen(
        [sys.executable, "-m", "pipelinekit", "run", str(tmp_path / "pipeline.py"),
         "--store", str(tmp_path / "wd"), "--plain"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def start_and_kill(tmp_path: Path) -> tuple[str, int]:
    """Run the pipeline in a real process, SIGKILL it mid-action; the execution id, its pid."""
    run = start_run(tmp_path)
    try:
        wait_for(tmp_path / "ready")
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
    store = pk.SQLiteStore(tmp_path / "wd" / "state.db")
    (summary,) = anyio.run(store.executions)
    store.close()
    return summary.id, run.pid


def test_a_resume_ends_what_the_dead_owner_left_before_running_again(tmp_path):
    execution_id, _ = start_and_kill(tmp_path)
    left = pids(tmp_path / "pids")
    try:
        # The crash left all three running: nobody was there to end them.
        assert len(left) == 3
        assert all(alive(pid) for pid in left)
        # The dead owner's lease (30 s by default) does not hold the resume back: its
        # process is known to be gone.
        resumed = subprocess.run(
            [sys.executable, "-m", "pipelinekit", "resume", execution_id,
             "--store", str(tmp_path / "wd" / "state.db"), "--plain"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
        ledger = (tmp_path / "ledger.txt").read_text().split("\n")
        assert ledger[:2] == ["attempt 1", "attempt 2"]
        assert sorted(line for line in ledger if line.startswith(("alive", "dead"))) == sorted(
            f"dead {pid}" for pid in left
        )
        assert not (tmp_path / "wd" / "processes" / f"{execution_id}.jsonl").exists()
    finally:
        kill_all(left)


def test_a_live_owner_on_this_host_is_never_taken_over_even_past_its_lease(tmp_path):
    run = start_run(tmp_path)
    try:
        wait_for(tmp_path / "ready")
        store = tmp_path / "wd" / "state.db"
        import sqlite3  # noqa: PLC0415 - only here: the lease is made to look expired

        with contextlib.closing(sqlite3.connect(store)) as connection, connection:
            connection.execute("UPDATE leases SET until = 1")
        (summary,) = read_store(store, "executions")
        resumed = subprocess.run(
            [sys.executable, "-m", "pipelinekit", "resume", summary.id, "--store", str(store)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert resumed.returncode == 2
        assert f"is run by process {run.pid} on this host" in resumed.stderr
        assert run.poll() is None
        assert all(alive(pid) for pid in pids(tmp_path / "pids"))
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
        kill_all(pids(tmp_path / "pids"))


def test_an_owner_is_dead_when_its_pid_is_gone_or_belongs_to_a_later_process():
    me = Owner.this_process()
    assert Owner.parse(str(me)) == me
    assert me.is_alive_here()
    assert not me.is_dead()
    # The same pid, started at another time: the kernel gave our pid to someone else.
    reused = attrs.evolve(me, started=f"{me.started}0")
    assert reused.is_dead()
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert attrs.evolve(me, pid=gone.pid).is_dead()
    # Where nothing here can tell (another host, another container with the same host name
    # and kernel, a system without /proc), only the lease can: neither dead nor alive.
    for elsewhere in (
        attrs.evolve(me, host="another-host", pid=gone.pid),
        attrs.evolve(me, namespace="pid:[1]", pid=gone.pid),
        attrs.evolve(me, started="", pid=gone.pid),
    ):
        assert not elsewhere.is_dead()
        assert not elsewhere.is_alive_here()
    # Names written by earlier versions parse; what no version wrote does not.
    assert Owner.parse("host:123:abcd") == Owner("host", 123, "abcd", "")
    assert Owner.parse("nonsense") is None


def test_status_and_logs_follow_notice_a_dead_owner_and_say_how_to_resume(tmp_path, cli):
    execution_id, pid = start_and_kill(tmp_path)
    store = str(tmp_path / "wd" / "state.db")
    try:
        status, out, _ = cli("status", execution_id, "--store", store)
        assert status == 0
        assert f"its process {pid} on this host is gone" in out
        assert f"pipelinekit resume {execution_id}" in out
        # It would wait forever for lines nobody writes: it says why it stops instead.
        status, _, err = cli("logs", execution_id, "Deploy.Work", "--follow", "--store", store)
        assert status == 2
        assert f"pipelinekit resume {execution_id}" in err
    finally:
        kill_all(pids(tmp_path / "pids"))


def test_a_decision_made_while_the_owner_was_dead_stands_after_resume(tmp_path, cli):
    (tmp_path / "p.py").write_text(
        "import pipelinekit as pk\n"
        "pipeline = pk.Pipeline('rel', [\n"
        "    pk.Stage('Approve', [pk.Action('Prod', pk.ManualApproval())]),\n"
        "    pk.Stage('Deploy', [pk.Action('Ship', pk.shell('echo shipped'))]),\n"
        "])\n"
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "pipelinekit", "run", "p.py", "--store", "wd", "--plain"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert run.stdout is not None
        for line in run.stdout:
            if "WaitingForApproval" in line:
                break
    finally:
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=30)
    store = str(tmp_path / "wd" / "state.db")
    (summary,) = read_store(store, "executions")
    # Nobody runs the execution: the decision is kept in the store all the same.
    status, _, err = cli("approve", summary.id, "Approve.Prod", "--by", "bob", "--store", store)
    assert status == 0, err
    resumed = subprocess.run(
        [sys.executable, "-m", "pipelinekit", "resume", summary.id, "--store", store, "--plain"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "action Deploy.Ship Succeeded" in resumed.stdout
    result = read_store(store, "events", summary.id)
    decided = [e for e in result if e.type == "approval" and e.state is pk.Status.SUCCEEDED]
    assert decided[-1].detail["by"] == "bob"


OWN_SUBPROCESS = """
import subprocess
from pathlib import Path

import pipelinekit as pk

HERE = Path(__file__).parent


def sync(ctx):
    # Started by the function itself, not ctx.run_command: no command tag, no ledger entry.
    with (HERE / "marks").open("a") as marks:
        marks.write(f"attempt {ctx.attempt}\\n")
    subprocess.run(
        ["sh", "-c", f"echo $$ >> {HERE / 'pids'}; echo start >> {HERE / 'marks'}; "
                     f"touch {HERE / 'ready'}; sleep 300; echo end >> {HERE / 'marks'}"],
        check=True,
    )


SYNC = pk.python(sync, idempotent=True)
pipeline = pk.Pipeline("own", [pk.Stage("S", [pk.Action("Sync", SYNC)])])
"""


def test_a_python_action_s_own_subprocess_ends_before_the_resumed_attempt(tmp_path):
    (tmp_path / "pipeline.py").write_text(OWN_SUBPROCESS)
    run = subprocess.Popen(
        [sys.executable, "-m", "pipelinekit", "run", "pipeline.py", "--store", "wd", "--plain"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_for(tmp_path / "ready")
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
    (first,) = pids(tmp_path / "pids")
    try:
        assert alive(first)
        (summary,) = read_store(tmp_path / "wd" / "state.db", "executions")
        (tmp_path / "ready").unlink()
        resumed = subprocess.Popen(
            [sys.executable, "-m", "pipelinekit", "resume", summary.id,
             "--store", "wd/state.db", "--plain"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
        )  # fmt: skip
        try:
            wait_for(tmp_path / "ready")  # the second attempt's subprocess runs
            # The first attempt's was ended before the second attempt began.
            assert not alive(first)
            assert (tmp_path / "marks").read_text().split("\n")[:4] == [
                "attempt 1",
                "start",
                "attempt 2",
                "start",
            ]
        finally:
            resumed.send_signal(signal.SIGKILL)
            resumed.wait(timeout=30)
    finally:
        kill_all(pids(tmp_path / "pids"))


SPAWNS = """
import os
import subprocess
from pathlib import Path

import pipelinekit as pk

HERE = Path(__file__).parent


async def spawn(ctx):
    # Started by the function itself, in every way: none is a command of ctx.run_command.
    children = [
        subprocess.Popen(["sleep", "300"]),
        subprocess.Popen(["sleep", "301"], start_new_session=True),
        subprocess.Popen(["env", "-i", "/bin/sleep", "302"]),
    ]
    (HERE / "pids").write_text("".join(f"{child.pid}\\n" for child in children))
    (HERE / "ready").touch()
    await ctx.clock.sleep(300)


pipeline = pk.Pipeline("spawns", [pk.Stage("S", [pk.Action("A", pk.python(spawn))])])
"""


def test_a_stopped_run_ends_what_its_python_actions_started_themselves(tmp_path):
    (tmp_path / "pipeline.py").write_text(SPAWNS)
    # Led by the command, as a job of an interactive shell: the process that cleared its
    # environment is found in the command's group. (Its output goes to a file: a survivor
    # holding a pipe would hang the test rather than fail it.)
    with (tmp_path / "out.txt").open("w") as out:
        run = subprocess.Popen(
            [sys.executable, "-m", "pipelinekit", "run", "pipeline.py", "--store", "wd",
             "--plain"],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(tmp_path / "ready")
        started = pids(tmp_path / "pids")
        assert all(alive(pid) for pid in started)
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=60)
        assert run.returncode == 143, (tmp_path / "out.txt").read_text()
        assert [pid for pid in started if alive(pid)] == []
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        kill_all(pids(tmp_path / "pids"))


def test_a_takeover_ends_what_a_dead_command_left_in_its_own_process_group(tmp_path):
    # Run from an interactive shell, the command leads its process group (a job): a process
    # its Python action started with a cleared environment stays in that group.
    (tmp_path / "pipeline.py").write_text(SPAWNS.replace("async def spawn", "async def spawn"))
    run = subprocess.Popen(
        [sys.executable, "-m", "pipelinekit", "run", "pipeline.py", "--store", "wd", "--plain"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(tmp_path / "ready")
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
    started = pids(tmp_path / "pids")
    try:
        assert all(alive(pid) for pid in started)
        (summary,) = read_store(tmp_path / "wd" / "state.db", "executions")
        resumed = subprocess.run(
            [sys.executable, "-m", "pipelinekit", "resume", summary.id,
             "--store", "wd/state.db", "--plain"],
            capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
        )  # fmt: skip
        assert resumed.returncode == 1, resumed.stderr  # not idempotent: interrupted
        assert [pid for pid in started if alive(pid)] == []
    finally:
        kill_all(started)
