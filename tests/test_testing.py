"""pipelinekit.testing: the fake executor, virtual time, verdicts, the recording hook, manual
approvals, and the pytest plugin's fixtures."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest

import pipelinekit as pk
from pipelinekit.testing import (
    DEFAULT_START,
    FakeExecutor,
    RecordingHook,
    StuckRunError,
    VirtualClock,
    approve,
    fail,
    hang,
    never_ran,
    ran_before,
    ran_in_parallel,
    reject,
    succeed,
)

pytestmark = pytest.mark.anyio


def sh(name, sets=(), **options):
    return pk.Action(name, pk.shell(f"./{name.lower()}.sh", output_variables=sets), **options)


PIPELINE = pk.Pipeline(
    "webapp",
    [
        pk.Stage("Source", [sh("Checkout", outputs=["src"], namespace="Src")]),
        pk.Stage(
            "Build",
            [sh("Compile", ["Version"], inputs=["src"], outputs=["dist"], namespace="Build")],
        ),
        pk.Stage("Test", [sh("Unit", inputs=["dist"]), sh("Lint", inputs=["src"])]),
        pk.Stage("Approve", [pk.Action("Prod", pk.ManualApproval(timeout=timedelta(hours=4)))]),
        pk.Stage(
            "Deploy",
            [pk.Action("Ship", pk.shell("./deploy.sh #{Build.Version}"), inputs=["dist"])],
        ),
    ],
)


def test_the_api_example():
    fake = FakeExecutor(
        {"Test.Unit": fail("3 tests failed"), "Approve.Prod": approve(by="bob")},
        default=succeed(),
    )
    result = fake.run(PIPELINE)
    assert result.status is pk.Status.FAILED
    assert result.actions["Test.Lint"].status is pk.Status.SUCCEEDED
    assert result.stages["Deploy"].status is pk.Status.NOT_STARTED
    assert fake.calls[0] == "Source.Checkout"


def test_a_green_run_with_variables_outputs_and_an_approval():
    fake = FakeExecutor(
        {
            "Build.Compile": succeed(
                variables={"Version": "1.4.2"}, outputs={"dist": {"app.zip": b"PK"}}
            ),
            "Approve.Prod": approve(by="bob", summary="LGTM", after=timedelta(hours=2)),
        }
    )
    result = fake.run(PIPELINE)
    assert result.succeeded
    assert result.variables["Build.Version"] == "1.4.2"
    assert fake.artifacts == {"dist": {"app.zip": b"PK"}}
    assert result.actions["Approve.Prod"].variables == {"ApprovedBy": "bob", "Summary": "LGTM"}
    approvals = [e for e in fake.events if e.type == "approval"]
    assert [(e.state, e.detail.get("by")) for e in approvals] == [
        (pk.Status.WAITING_FOR_APPROVAL, None),
        (pk.Status.SUCCEEDED, "bob"),
    ]
    assert result.duration == timedelta(hours=2)


def test_a_rejection_fails_the_stage():
    fake = FakeExecutor({"Approve.Prod": reject(by="eve", summary="not today")})
    result = fake.run(PIPELINE)
    assert result.actions["Approve.Prod"].error == "rejected by eve: not today"
    assert result.stages["Approve"].status is pk.Status.FAILED
    assert fake.never_ran("Deploy.Ship")


def test_time_is_virtual_and_exact():
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage(
                "S",
                [
                    pk.Action(
                        "Flaky",
                        pk.shell("x"),
                        retry=pk.Retry(3, delay=timedelta(minutes=1), backoff=2, jitter=0),
                    ),
                    pk.Action("Slow", pk.shell("y"), timeout=timedelta(minutes=30)),
                ],
            )
        ],
    )
    fake = FakeExecutor(
        {
            "S.Flaky": [
                fail("1", after=10),
                fail("2", after=10),
                succeed(after=timedelta(hours=1)),
            ],
            "S.Slow": hang(),
        }
    )
    result = fake.run(pipeline)
    flaky = result.actions["S.Flaky"]
    assert [a.duration for a in flaky.attempts] == [
        timedelta(seconds=10),
        timedelta(seconds=10),
        timedelta(hours=1),
    ]
    # waits of 1 and 2 minutes between the attempts
    assert flaky.attempts[1].started_at - flaky.attempts[0].finished_at == timedelta(minutes=1)
    assert flaky.attempts[2].started_at - flaky.attempts[1].finished_at == timedelta(minutes=2)
    assert flaky.started_at == DEFAULT_START
    slow = result.actions["S.Slow"]
    assert slow.error == "timed out after 30m00s"
    assert slow.duration == timedelta(minutes=30)
    assert result.duration == timedelta(hours=1, minutes=3, seconds=20)


def test_runs_are_reproducible_with_jitter():
    pipeline = pk.Pipeline(
        "p", [pk.Stage("S", [pk.Action("A", pk.shell("x"), retry=pk.Retry(3, delay=60))])]
    )
    script = {"S.A": [fail(), fail(), succeed()]}
    first = FakeExecutor(script).run(pipeline)
    second = FakeExecutor(script).run(pipeline)
    assert first.duration == second.duration
    assert first.duration > timedelta(minutes=3)  # 60 s + 120 s, plus jitter


def test_calls_record_attempts_in_start_order():
    fake = FakeExecutor({"Build.Compile": [fail(), succeed()]})
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage("Source", [sh("Checkout")]),
            pk.Stage("Build", [sh("Compile", retry=pk.Retry(2, delay=0))]),
        ],
    )
    fake.run(pipeline)
    assert fake.calls == ["Source.Checkout", "Build.Compile", "Build.Compile"]
    assert [c.attempt for c in fake.calls] == [1, 1, 2]
    assert repr(fake.calls[2]) == "Call('Build.Compile', attempt=2)"


def test_a_callable_decides_from_the_context():
    seen = []

    def script(ctx):
        seen.append((ctx.attempt, ctx.provider.commands))
        return fail("first") if ctx.attempt == 1 else succeed(variables={"Version": "2"})

    async def async_script(ctx):
        await anyio.lowlevel.checkpoint()
        return succeed()

    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage(
                "A",
                [
                    pk.Action(
                        "P",
                        pk.shell("make", output_variables=["Version"]),
                        namespace="N",
                        retry=pk.Retry(2, delay=0),
                    )
                ],
            ),
            pk.Stage("B", [pk.Action("C", pk.shell("deploy #{N.Version}"))]),
        ],
    )
    fake = FakeExecutor({"A.P": script, "B.C": async_script})
    assert fake.run(pipeline).succeeded
    assert seen == [(1, ("make",)), (2, ("make",))]


def test_an_unknown_key_is_an_error_listing_the_real_names():
    with pytest.raises(pk.ExecutionError) as caught:
        FakeExecutor({"Test.Unti": fail()}).run(PIPELINE)
    message = str(caught.value)
    assert "'Test.Unti'; did you mean 'Test.Unit'?" in message
    assert "Source.Checkout, Build.Compile, Test.Unit" in message


def test_a_script_that_is_not_an_outcome_fails_the_action_clearly():
    result = FakeExecutor({"Test.Unit": lambda ctx: "ok"}).run(PIPELINE)
    assert "gave 'ok'; use succeed(), fail(), hang(), approve() or reject()" in (
        result.actions["Test.Unit"].error
    )


def test_an_outcome_writing_an_undeclared_artifact_is_refused():
    result = FakeExecutor({"Test.Unit": succeed(outputs={"junk": {"a": "b"}})}).run(PIPELINE)
    assert "writes artifact 'junk', which 'Test.Unit' does not declare" in (
        result.actions["Test.Unit"].error
    )


def test_a_run_that_can_never_end_is_reported():
    pipeline = pk.Pipeline("p", [pk.Stage("S", [sh("Forever")])])
    with pytest.raises(StuckRunError, match=r"S\.Forever waits forever"):
        FakeExecutor({"S.Forever": hang()}, stuck_after=0.05).run(pipeline)


def test_verdicts_read_like_the_question_and_explain_a_no():
    fake = FakeExecutor({"Test.Unit": fail("boom")})
    fake.run(PIPELINE)
    assert ran_before(fake, "Build.Compile", "Test.Unit")
    assert ran_in_parallel(fake, "Test.Unit", "Test.Lint")
    assert never_ran(fake, "Deploy.Ship")
    no = ran_before(fake, "Test.Unit", "Deploy.Ship")
    assert not no
    text = repr(no)
    assert text.startswith("<no: Test.Unit ran before Deploy.Ship: Test.Unit never succeeded")
    assert "#3 Source.Checkout InProgress (attempt 1)" in text
    assert "Test.Unit Failed (attempt 1)" in text
    assert not ran_in_parallel(fake, "Source.Checkout", "Build.Compile")
    assert "Source.Checkout had ended before Build.Compile started" in repr(
        ran_in_parallel(fake, "Source.Checkout", "Build.Compile")
    )
    assert not fake.never_ran("Test.Unit")
    assert repr(fake.ran_before("Build.Compile", "Test.Unit")) == (
        "<yes: Build.Compile ran before Test.Unit>"
    )


def test_recording_hook_keeps_every_notification():
    hook = RecordingHook()
    fake = FakeExecutor({"Approve.Prod": approve(by="bob")}, hooks=[hook])
    fake.run(PIPELINE)
    assert [e.sequence for e in hook.events] == [e.sequence for e in fake.events]
    assert hook.states("Approve.Prod") == [
        pk.Status.IN_PROGRESS,
        pk.Status.WAITING_FOR_APPROVAL,
        pk.Status.SUCCEEDED,
        pk.Status.SUCCEEDED,
    ]
    assert hook.states("Approve") == [pk.Status.IN_PROGRESS, pk.Status.SUCCEEDED]


def test_hooks_hear_of_each_change_as_the_run_goes_not_at_its_end():
    hook = RecordingHook()
    heard: list[str] = []

    def third(ctx):
        # B took a virtual minute: by now what happened before it has been announced.
        heard.extend(f"{e.node or e.stage} {e.state}" for e in hook.events)
        return succeed()

    chain = pk.Pipeline(
        "chain",
        [pk.Stage(name, [pk.Action(name.lower(), pk.Wait(0))]) for name in ("A", "B", "C")],
    )
    fake = FakeExecutor({"B.b": succeed(after=timedelta(minutes=1)), "C.c": third}, hooks=[hook])
    assert fake.run(chain).succeeded
    assert "A.a Succeeded" in heard
    assert "B.b InProgress" in heard


async def test_arun_inside_an_event_loop():
    fake = FakeExecutor({"Test.Unit": succeed(after=timedelta(days=1))})
    result = await fake.arun(PIPELINE)
    assert result.duration == timedelta(days=1)


def test_the_plugin_gives_a_fake_executor(fake_executor):
    fake_executor.outcomes["Test.Lint"] = fail("style")
    result = fake_executor.run(PIPELINE)
    assert result.actions["Test.Lint"].error == "style"


async def test_the_plugin_gives_an_engine_with_a_memory_store(engine):
    assert isinstance(engine.store, pk.MemoryStore)
    async with engine:
        execution = await engine.start(
            pk.Pipeline("p", [pk.Stage("S", [pk.Action("W", pk.Wait(0))])])
        )
        assert (await execution.wait()).succeeded


# -- real manual approvals ---------------------------------------------------------------------


def approval_pipeline(**options):
    return pk.Pipeline(
        "release",
        [pk.Stage("Approve", [pk.Action("Prod", pk.ManualApproval(**options))])],
    )


async def wait_for_approval(engine, execution):
    async for event in execution.events():
        if event.type == "approval":
            return event
    raise AssertionError("no approval was requested")


async def test_engine_approve_lets_the_action_succeed(engine):
    async with engine:
        execution = await engine.start(approval_pipeline(custom_data="v1.2"), triggered_by="alice")
        event = await wait_for_approval(engine, execution)
        assert event.state is pk.Status.WAITING_FOR_APPROVAL
        assert event.detail["custom_data"] == "v1.2"
        await engine.approve(execution.id, "Approve.Prod", by="bob", summary="LGTM")
        result = await execution.wait()
    assert result.succeeded
    assert result.actions["Approve.Prod"].variables == {"ApprovedBy": "bob", "Summary": "LGTM"}


async def test_engine_reject_fails_the_action(engine):
    async with engine:
        execution = await engine.start(approval_pipeline())
        await wait_for_approval(engine, execution)
        await engine.reject(execution.id, "Approve.Prod", by="bob", summary="broken")
        result = await execution.wait()
    assert result.actions["Approve.Prod"].error == "rejected by bob: broken"


async def test_who_may_approve(engine):
    async with engine:
        execution = await engine.start(
            approval_pipeline(approvers=["bob", "alice"], allow_self_approval=False),
            triggered_by="alice",
        )
        await wait_for_approval(engine, execution)
        with pytest.raises(pk.ExecutionError, match="'mallory' may not decide"):
            await engine.approve(execution.id, "Approve.Prod", by="mallory")
        with pytest.raises(pk.ExecutionError, match=r"started execution .* may not approve"):
            await engine.approve(execution.id, "Approve.Prod", by="alice")
        with pytest.raises(pk.ExecutionError, match=r"no approval is waiting at 'Approve\.Nope'"):
            await engine.approve(execution.id, "Approve.Nope", by="bob")
        await engine.approve(execution.id, "Approve.Prod", by="bob")
        assert (await execution.wait()).succeeded
        with pytest.raises(pk.ExecutionError, match="already ended Succeeded; no approval waits"):
            await engine.approve(execution.id, "Approve.Prod", by="bob")


async def test_an_approval_times_out_in_virtual_time(tmp_path):
    clock = VirtualClock()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(clock.drive, lambda: "stuck")
        async with pk.Engine(clock=clock, workdir=tmp_path) as engine:
            execution = await engine.start(approval_pipeline(timeout=timedelta(hours=4)))
            result = await execution.wait()
        tasks.cancel_scope.cancel()
    action = result.actions["Approve.Prod"]
    assert action.error == "approval timed out after 4:00:00"
    assert action.duration == timedelta(hours=4)


def test_a_fake_run_touches_no_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    FakeExecutor({"Build.Compile": succeed(outputs={"dist": {"a": "b"}})}).run(PIPELINE)
    assert list(tmp_path.iterdir()) == []


# -- what a command's failure, its test reports and its summary tell ---------------------------

SECRET = "supersecretvalue"  # noqa: S105 - a test secret
JUNIT = (
    '<testsuite tests="2" failures="1"><testcase classname="t" name="ok"/>'
    f'<testcase classname="t" name="bad_{SECRET}"><failure/></testcase></testsuite>'
)
TOLD = pk.Pipeline(
    "told",
    [
        pk.Stage(
            "Test",
            [
                pk.Action(
                    "Unit",
                    pk.shell(
                        f"echo '{JUNIT}' > junit.xml",
                        'echo "## Tested #{variables.tok}" > "$PK_SUMMARY"',
                        'echo "out #{variables.tok}"; exit 3',
                        reports=["junit.xml"],
                    ),
                )
            ],
        )
    ],
    variables=[pk.Variable("tok", secret=True)],
)
REPORT = pk.TestReport("junit.xml", tests=2, failures=1, failed=[f"t.bad_{SECRET}"])
SUMMARY = f"## Tested {SECRET}"


def ended(events, node):
    ends = {pk.Status.SUCCEEDED, pk.Status.FAILED}
    (end,) = [e for e in events if e.type == "action" and e.node == node and e.state in ends]
    return {key: value for key, value in end.detail.items() if key != "log_path"}


def test_a_scripted_command_failure_reports_and_summary_are_told_as_a_real_run_tells_them(
    tmp_path,
):
    """Same event detail, same results, masked the same way: hooks and asserts see no difference."""
    store = pk.MemoryStore()
    real = pk.run(TOLD, store=store, workdir=tmp_path, variables={"tok": SECRET})
    # What the real run's action told, its secret unmasked, as a test would script it.
    told = real.actions["Test.Unit"].attempts[0].failure
    assert told is not None
    failure = pk.CommandFailure(
        3, command=told.command, index=2, count=3, output_tail=[f"out {SECRET}"]
    )
    fake = FakeExecutor({"Test.Unit": fail(failure=failure, reports=[REPORT], summary=SUMMARY)})
    scripted = fake.run(TOLD, variables={"tok": SECRET})
    real_events = anyio.run(store.events, real.execution_id)
    assert ended(fake.events, "Test.Unit") == ended(real_events, "Test.Unit")
    assert "failure" in ended(fake.events, "Test.Unit")
    (real_attempt,) = real.actions["Test.Unit"].attempts
    (fake_attempt,) = scripted.actions["Test.Unit"].attempts
    for field in ("error", "failure", "reports", "summary"):
        assert getattr(fake_attempt, field) == getattr(real_attempt, field), field
    assert fake_attempt.summary == "## Tested ****"
    assert SECRET not in repr(fake.events) + repr(scripted)


def test_a_success_can_carry_reports_and_a_summary_for_hooks():
    hook = RecordingHook()
    fake = FakeExecutor(
        {"Test.Unit": succeed(reports=[pk.TestReport("junit.xml", tests=5)], summary="## ok")},
        hooks=[hook],
    )
    result = fake.run(TOLD, variables={"tok": SECRET})
    assert result.succeeded
    (attempt,) = result.actions["Test.Unit"].attempts
    assert attempt.reports == (pk.TestReport("junit.xml", tests=5),)
    assert attempt.summary == "## ok"
    detail = ended(fake.events, "Test.Unit")
    assert detail["reports"] == [pk.TestReport("junit.xml", tests=5).to_detail()]
    assert detail["summary"] == "## ok"
    heard = [e for e in hook.events if e.node == "Test.Unit" and e.state is pk.Status.SUCCEEDED]
    assert heard[0].detail["summary"] == "## ok"


def test_a_scripted_failure_is_the_error_a_real_one_would_be():
    fake = FakeExecutor({"Test.Unit": fail(failure=pk.CommandFailure(1, signal=None))})
    result = fake.run(TOLD, variables={"tok": SECRET})
    assert result.actions["Test.Unit"].error == "command exited with status 1"
    with pytest.raises(pk.ExecutionError, match="a message or a failure"):
        fail("broke", failure=pk.CommandFailure(1))
    with pytest.raises(pk.ExecutionError, match=r"failure= must be a pk\.CommandFailure"):
        fail(failure="exit 1")
    with pytest.raises(pk.ExecutionError, match=r"reports= must be a list of pk\.TestReport"):
        succeed(reports=["junit.xml"])
    with pytest.raises(pk.ExecutionError, match="summary= must be a string"):
        succeed(summary=3)


def test_cache_true_never_hits_in_the_fake_even_with_a_kept_store():
    """As docs/testing.md's Limits say: the fake's files are in memory, nothing is cached."""
    pipeline = pk.Pipeline("c", [pk.Stage("S", [pk.Action("A", pk.shell("true"), cache=True)])])
    fake = FakeExecutor(store=pk.MemoryStore())
    fake.run(pipeline)
    second = fake.run(pipeline)
    assert second.actions["S.A"].cached is False
    assert [str(call) for call in fake.calls] == ["S.A"]  # calls are the last run's
