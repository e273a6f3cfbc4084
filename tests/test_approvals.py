"""Deciding manual approvals of executions another engine or process runs, through the store."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from functools import partial

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
    async with pk.Engine(store=SQLiteStore(path), workdir=tmp_path) as runner:
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
    async with pk.Engine(store=SQLiteStore(path), workdir=tmp_path) as runner:
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
    async with pk.Engine(store=SQLiteStore(path), workdir=tmp_path) as runner:
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
    environment = {k: v for k, v in os.environ.items() if k != "PIPELINEKIT_LEASE_SECONDS"}
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


# -- the first decision wins ----------------------------------------------------------------------


def stores():
    return pytest.mark.parametrize(
        "make", [lambda path: pk.MemoryStore(), SQLiteStore], ids=["memory", "sqlite"]
    )


@stores()
async def test_in_one_engine_a_decision_after_the_first_is_refused(tmp_path, make):
    store = make(tmp_path / "state.db")
    async with pk.Engine(store=store, workdir=tmp_path) as engine:
        execution = await engine.start(release(), triggered_by="alice")
        await waiting(execution)
        # Back to back: the action has not yet recorded bob's decision when mallory's comes.
        await engine.approve(execution.id, "Approve.Prod", by="bob", summary="ship it")
        with pytest.raises(pk.ExecutionError, match="already approved by bob at "):
            await engine.reject(execution.id, "Approve.Prod", by="mallory")
        with pytest.raises(pk.ExecutionError, match="already approved by bob at "):
            await engine.approve(execution.id, "Approve.Prod", by="carol")
        with anyio.fail_after(10):
            result = await execution.wait()
    assert result.succeeded
    assert result.actions["Approve.Prod"].variables == {"ApprovedBy": "bob", "Summary": "ship it"}
    if isinstance(store, SQLiteStore):
        store.close()


@stores()
async def test_in_one_engine_concurrent_decisions_have_one_winner(tmp_path, make):
    store = make(tmp_path / "state.db")
    outcomes: dict[str, str] = {}
    async with pk.Engine(store=store, workdir=tmp_path) as engine:
        execution = await engine.start(release(), triggered_by="alice")
        await waiting(execution)

        async def decide(by: str, *, approved: bool) -> None:
            verb = engine.approve if approved else engine.reject
            try:
                await verb(execution.id, "Approve.Prod", by=by)
            except pk.ExecutionError as error:
                outcomes[by] = str(error)
            else:
                outcomes[by] = "won"

        async with anyio.create_task_group() as tasks:
            for by, approved in [("bob", True), ("mallory", False), ("carol", True)]:
                tasks.start_soon(partial(decide, by, approved=approved))
        with anyio.fail_after(10):
            result = await execution.wait()
    winners = [by for by, outcome in outcomes.items() if outcome == "won"]
    assert len(winners) == 1, outcomes
    (winner,) = winners
    verb = "rejected" if winner == "mallory" else "approved"
    for by, outcome in outcomes.items():
        if by != winner:
            assert f"already {verb} by {winner} at " in outcome
    assert result.succeeded is (winner != "mallory")
    if winner != "mallory":
        assert result.actions["Approve.Prod"].variables["ApprovedBy"] == winner
    if isinstance(store, SQLiteStore):
        store.close()


async def test_a_decision_kept_just_before_the_timeout_stands(tmp_path):
    """Kept in the store by another engine, not yet taken up here when the timeout fires."""
    from pipelinekit.testing import VirtualClock  # noqa: PLC0415
    from pipelinekit.testing._fake import MemoryWorkspace  # noqa: PLC0415

    store = pk.MemoryStore()
    clock = VirtualClock()
    pipeline = release(timeout=60)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(clock.drive, lambda: "stuck")
        async with pk.Engine(
            store=store, clock=clock, workdir=tmp_path, workspaces=MemoryWorkspace
        ) as engine:
            execution = await engine.start(pipeline, triggered_by="alice")
            await waiting(execution)
            async with pk.Engine(store=store, clock=clock, workdir=tmp_path) as other:
                await other.approve(execution.id, "Approve.Prod", by="bob")
            result = await execution.wait()
        tasks.cancel_scope.cancel()
    assert result.succeeded, result.actions["Approve.Prod"].error
    assert result.actions["Approve.Prod"].variables["ApprovedBy"] == "bob"


async def test_a_decision_after_the_timeout_is_refused_saying_so(tmp_path):
    from pipelinekit._runtime._decisions import post_decision  # noqa: PLC0415
    from pipelinekit.testing import VirtualClock  # noqa: PLC0415
    from pipelinekit.testing._fake import MemoryWorkspace  # noqa: PLC0415

    store = pk.MemoryStore()
    clock = VirtualClock()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(clock.drive, lambda: "stuck")
        async with pk.Engine(
            store=store, clock=clock, workdir=tmp_path, workspaces=MemoryWorkspace
        ) as engine:
            execution = await engine.start(release(timeout=60), triggered_by="alice")
            request = await waiting(execution)
            result = await execution.wait()
        tasks.cancel_scope.cancel()
    assert result.actions["Approve.Prod"].error == "approval timed out after 0:01:00"
    # What a decision racing the timeout finds in the store: the timeout was kept first.
    kept = await store.decision(execution.id, request.sequence)
    assert kept is not None
    assert (kept.approved, kept.by) == (False, "")
    # Replayed as if the record still said it waits (the decision raced the timeout's event).
    events = [e for e in await store.events(execution.id) if e.sequence <= request.sequence]
    racing = pk.MemoryStore()
    await racing.record(events)
    await racing.put_decision(execution.id, request.sequence, kept)
    with pytest.raises(pk.ExecutionError, match="already timed out at "):
        await post_decision(
            racing, execution.id, "Approve.Prod", approved=True, by="bob", summary="", now=NOW
        )


# -- across processes -----------------------------------------------------------------------------


async def record_a_waiting_approval(store, execution_id="e1"):
    """An execution whose approval waits, as its owner records it (the deciders need no more)."""
    await store.record(
        [
            pk.Event("pipeline", pk.Status.IN_PROGRESS, "release", execution_id, NOW, sequence=1),
            pk.Event(
                "approval",
                pk.Status.WAITING_FOR_APPROVAL,
                "release",
                execution_id,
                NOW,
                "Approve",
                "Prod",
                {"approvers": [], "self_approval": True},
                2,
            ),
        ]
    )


def test_separate_connections_racing_in_threads_have_one_winner(tmp_path):
    from pipelinekit._runtime._decisions import post_decision  # noqa: PLC0415

    path = tmp_path / "state.db"
    setup = SQLiteStore(path)
    anyio.run(record_a_waiting_approval, setup)
    setup.close()
    people = [f"person{n}" for n in range(8)]
    barrier = threading.Barrier(len(people))
    outcomes: dict[str, str] = {}

    def decide(by: str) -> None:
        store = SQLiteStore(path)
        try:
            anyio.run(store._run, lambda connection: None)  # opened before the race
            barrier.wait()
            anyio.run(
                partial(
                    post_decision,
                    store,
                    "e1",
                    "Approve.Prod",
                    approved=by.endswith(("0", "2", "4", "6")),
                    by=by,
                    summary="",
                    now=datetime.now(UTC),
                )
            )
            outcomes[by] = "won"
        except pk.ExecutionError as error:
            outcomes[by] = str(error)
        finally:
            store.close()

    threads = [threading.Thread(target=decide, args=(by,)) for by in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [by for by, outcome in outcomes.items() if outcome == "won"]
    assert len(winners) == 1, outcomes
    assert len(outcomes) == len(people)
    for by, outcome in outcomes.items():
        if by != winners[0]:
            assert f"by {winners[0]} at " in outcome, outcome
    check = SQLiteStore(path)
    kept = anyio.run(check.decision, "e1", 2)
    check.close()
    assert kept is not None
    assert kept.by == winners[0]


def test_processes_deciding_at_once_have_one_winner(tmp_path):
    path = tmp_path / "state.db"
    setup = SQLiteStore(path)
    anyio.run(record_a_waiting_approval, setup)
    setup.close()
    runs = []
    for number in range(4):
        verb = "approve" if number % 2 == 0 else "reject"
        runs.append(
            subprocess.Popen(
                [
                    *(sys.executable, "-m", "pipelinekit", verb, "e1", "Approve.Prod"),
                    *("--by", f"person{number}", "--store", str(path)),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    answers = []
    for run in runs:
        out, err = run.communicate(timeout=60)
        answers.append((run.returncode, out, err))
    winners = [n for n, (code, _, _) in enumerate(answers) if code == 0]
    assert len(winners) == 1, answers
    (winner,) = winners
    verb = "approved" if winner % 2 == 0 else "rejected"
    for number, (code, _, err) in enumerate(answers):
        if number != winner:
            assert code == 2, err
            assert f"already {verb} by person{winner} at " in err, err
            assert "Traceback" not in err


# -- who decides ----------------------------------------------------------------------------------

BLANK = ["", "   ", "\t", "\n"]
BAD_NAMES = [" bob", "bob ", "bob\nalice", "bob\x00"]


@stores()
async def test_blank_or_malformed_identities_are_refused_here_and_elsewhere(tmp_path, make):
    store = make(tmp_path / "state.db")
    async with pk.Engine(store=store, workdir=tmp_path) as engine:
        execution = await engine.start(release(allow_self_approval=False), triggered_by="alice")
        await waiting(execution)
        async with pk.Engine(store=store, workdir=tmp_path) as other:
            for deciding in (engine, other):  # the run's own engine, and another one
                for by in BLANK:
                    with pytest.raises(pk.ExecutionError, match="needs the name of who decides"):
                        await deciding.approve(execution.id, "Approve.Prod", by=by)
                for by in BAD_NAMES:
                    with pytest.raises(pk.ExecutionError, match="spaces around it or control"):
                        await deciding.reject(execution.id, "Approve.Prod", by=by)
            # "alice " is not a way around the bar on self-approval.
            with pytest.raises(pk.ExecutionError):
                await engine.approve(execution.id, "Approve.Prod", by="alice ")
            await engine.approve(execution.id, "Approve.Prod", by="bob")
        with anyio.fail_after(10):
            result = await execution.wait()
    assert result.actions["Approve.Prod"].variables["ApprovedBy"] == "bob"
    if isinstance(store, SQLiteStore):
        store.close()


async def test_the_cli_never_invents_who_decides(tmp_path, cli, monkeypatch):
    path = tmp_path / "state.db"
    store = SQLiteStore(path)
    await record_a_waiting_approval(store)
    store.close()
    for by in ["", "   "]:
        status, out, err = await anyio.to_thread.run_sync(
            cli, "approve", "e1", "Approve.Prod", "--by", by, "--store", str(path)
        )
        assert status == 2, (by, out, err)
        assert "needs the name of who decides" in err
        assert "approved" not in out
    # Without --by: the login name, said on stderr in one line.
    monkeypatch.setattr("pipelinekit.cli._user.getpass.getuser", lambda: "   ")
    status, out, err = await anyio.to_thread.run_sync(
        cli, "approve", "e1", "Approve.Prod", "--store", str(path)
    )
    assert status == 2
    assert "cannot tell who you are; say it with --by NAME" in err
    monkeypatch.setattr("pipelinekit.cli._user.getpass.getuser", lambda: "dana")
    status, out, err = await anyio.to_thread.run_sync(
        cli, "approve", "e1", "Approve.Prod", "--store", str(path)
    )
    assert status == 0, err
    assert err == "pipelinekit: deciding as dana (give --by NAME to say otherwise)\n"
    assert "approved Approve.Prod of execution e1 as dana" in out
