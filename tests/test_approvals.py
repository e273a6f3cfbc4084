"""Deciding manual approvals of executions another engine or process runs, through the store."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime

import anyio
import pytest

import pipelinekit as pk
from pipelinekit.cli._view import PlainView
from pipelinekit.stores import Decision, SQLiteStore

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def release(**options):
    return pk.Pipeline(
        "release",
        [
            pk.Stage("Approve", [pk.Action("Prod", pk.ManualApproval(**options))]),
            pk.Stage("Deploy", [pk.Action("Ship", pk.Wait(0))]),
        ],
    )


async def waiting(execution):
    async for event in execution.events():
        if event.type == "approval" and event.state is pk.Status.WAITING_FOR_APPROVAL:
            return event
    raise AssertionError("no approval was requested")


@pytest.mark.parametrize("make", [lambda path: pk.MemoryStore(), SQLiteStore])
async def test_the_first_decision_kept_stands(tmp_path, make):
    store = make(tmp_path / "state.db")
    start = pk.Event("pipeline", pk.Status.IN_PROGRESS, "p", "e1", NOW, sequence=1)
    await store.record([start])
    yes = Decision(approved=True, by="bob", summary="ok", time=NOW)
    no = Decision(approved=False, by="carol", summary="no", time=NOW)
    assert await store.decision("e1", 7) is None
    assert await store.put_decision("e1", 7, yes) == yes
    assert await store.put_decision("e1", 7, no) == yes  # too late
    assert await store.decision("e1", 7) == yes
    assert await store.put_decision("e1", 9, no) == no  # another request of the execution
    with pytest.raises(pk.StoreError, match="execution nope: it is unknown"):
        await store.put_decision("nope", 1, yes)


async def test_an_approval_is_decided_from_another_engine(tmp_path):
    path = tmp_path / "state.db"
    async with pk.Engine(store=SQLiteStore(path), workdir=tmp_path, lease_seconds=0.3) as runner:
        execution = await runner.start(release(approvers=["bob", "alice"]), triggered_by="alice")
        request = await waiting(execution)
        assert request.detail["approvers"] == ["bob", "alice"]
        # Another engine (as another process would) has only the store.
        async with pk.Engine(store=SQLiteStore(path), workdir=tmp_path) as other:
            with pytest.raises(pk.ExecutionError, match="'mallory' may not decide"):
                await other.approve(execution.id, "Approve.Prod", by="mallory")
            with pytest.raises(pk.ExecutionError, match=r"waiting: Approve\.Prod"):
                await other.approve(execution.id, "Deploy.Ship", by="bob")
            await other.approve(execution.id, "Approve.Prod", by="bob", summary="ship it")
            with pytest.raises(pk.ExecutionError, match="already approved by bob"):
                await other.reject(execution.id, "Approve.Prod", by="alice")
        with anyio.fail_after(10):
            result = await execution.wait()
    assert result.succeeded
    assert result.actions["Approve.Prod"].variables == {"ApprovedBy": "bob", "Summary": "ship it"}


async def test_self_approval_is_barred_from_elsewhere_too(tmp_path):
    path = tmp_path / "state.db"
    async with pk.Engine(store=SQLiteStore(path), workdir=tmp_path, lease_seconds=0.3) as runner:
        execution = await runner.start(release(allow_self_approval=False), triggered_by="alice")
        await waiting(execution)
        async with pk.Engine(store=SQLiteStore(path), workdir=tmp_path) as other:
            with pytest.raises(pk.ExecutionError, match="'alice' started execution"):
                await other.approve(execution.id, "Approve.Prod", by="alice")
            await other.reject(execution.id, "Approve.Prod", by="bob", summary="not today")
        with anyio.fail_after(10):
            result = await execution.wait()
    assert result.actions["Approve.Prod"].error == "rejected by bob: not today"
    assert result.actions["Deploy.Ship"].status is pk.Status.NOT_STARTED


async def test_pipelinekit_approve_and_reject_from_the_shell(tmp_path, cli):
    path = tmp_path / "state.db"
    store = str(path)
    async with pk.Engine(store=SQLiteStore(path), workdir=tmp_path, lease_seconds=0.3) as runner:
        execution = await runner.start(release(approvers=["bob"]), triggered_by="alice")
        await waiting(execution)
        status, _, err = await anyio.to_thread.run_sync(
            cli, "approve", execution.id, "Approve.Prod", "--by", "eve", "--store", store
        )
        assert status == 2
        assert "'eve' may not decide the approval at 'Approve.Prod'; approvers: bob" in err
        status, out, _ = await anyio.to_thread.run_sync(
            cli, "status", execution.id, "--store", store
        )
        assert f"Prod WaitingForApproval (pipelinekit approve {execution.id} Approve.Prod" in out
        status, out, _ = await anyio.to_thread.run_sync(
            cli, "approve", execution.id, "Approve.Prod", "--by", "bob", "--store", store
        )
        assert status == 0
        assert f"approved Approve.Prod of execution {execution.id} as bob" in out
        with anyio.fail_after(10):
            assert (await execution.wait()).succeeded
    status, _, err = await anyio.to_thread.run_sync(
        cli, "reject", execution.id, "Approve.Prod", "--by", "bob", "--store", store
    )
    assert status == 2
    assert "already ended Succeeded" in err


def test_the_plain_view_says_how_to_decide_a_waiting_approval(capsys):
    view = PlainView(sys.stdout)
    event = pk.Event(
        "approval",
        pk.Status.WAITING_FOR_APPROVAL,
        "release",
        "e1",
        NOW,
        "Approve",
        "Prod",
        sequence=3,
    )
    view._print(event)  # what follow() does with each event
    assert "pipelinekit approve e1 Approve.Prod (or reject)" in capsys.readouterr().out


def test_an_approval_event_says_who_decided():
    decided = pk.Event(
        "approval",
        pk.Status.SUCCEEDED,
        "release",
        "e1",
        NOW,
        "Approve",
        "Prod",
        {"by": "bob", "summary": "ship it"},
        4,
    )
    assert str(decided) == "approval Approve.Prod Succeeded by bob: ship it"


def test_a_run_in_one_process_is_approved_from_another(tmp_path, cli):
    # Real processes: `pipelinekit run` waits at the approval; the person approves from a shell.
    (tmp_path / "p.py").write_text(
        "import pipelinekit as pk\n"
        "pipeline = pk.Pipeline('rel', [\n"
        "    pk.Stage('Approve', [pk.Action('Prod', pk.ManualApproval())]),\n"
        "    pk.Stage('Deploy', [pk.Action('Ship', pk.shell('echo shipped'))]),\n"
        "])\n"
    )
    environment = {**os.environ, "PIPELINEKIT_LEASE_SECONDS": "0.3"}
    with subprocess.Popen(
        [sys.executable, "-m", "pipelinekit", "run", "p.py", "--plain"],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as run:
        # If the run never asks (a bug), reading its output must not hang the suite.
        watchdog = threading.Timer(60, run.kill)
        watchdog.start()
        try:
            assert run.stdout is not None
            hint = ""
            for line in run.stdout:  # blocks until the run prints its next line
                if "waiting for approval:" in line:
                    hint = line
                    break
            command = hint.split("waiting for approval: ")[1].split(" (or reject)")[0].split()
            assert command[:2] == ["pipelinekit", "approve"]
            store = str(tmp_path / ".pipelinekit" / "state.db")
            status, _, err = cli(*command[1:], "--by", "bob", "--summary", "ok", "--store", store)
            assert status == 0, err
            rest = run.stdout.read()
            assert run.wait(timeout=30) == 0, rest
        finally:
            watchdog.cancel()
            if run.poll() is None:
                run.kill()
    assert "approval Approve.Prod Succeeded by bob: ok" in rest
    assert "pipeline rel Succeeded" in rest
