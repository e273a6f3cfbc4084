"""The scheduler and the engine, driven by real Python actions: ordering, parallelism, failure
semantics, cancellation, retries, timeouts, variables, secrets, events and hooks."""

from __future__ import annotations

import threading

import anyio
import pytest
import structlog

import pipelinekit as pk

pytestmark = pytest.mark.anyio


def python_action(name, fn=None, **options):
    async def noop(ctx):
        pass

    return pk.Action(name, pk.python(fn or noop), **options)


async def run(pipeline, workdir, **options):
    return await pk.arun(pipeline, workdir=workdir, **options)


class Recorder:
    """A Python action factory that records what ran, in order."""

    def __init__(self):
        self.log: list[tuple[str, str]] = []

    def action(self, name, **options):
        async def body(ctx):
            self.log.append(("start", f"{ctx.stage}.{ctx.action}"))
            await anyio.lowlevel.checkpoint()
            self.log.append(("end", f"{ctx.stage}.{ctx.action}"))

        return pk.Action(name, pk.python(body), **options)

    def index(self, kind, node):
        return self.log.index((kind, node))


async def test_a_simple_run_succeeds_with_a_full_result(workdir):
    rec = Recorder()
    pipeline = pk.Pipeline(
        "p", [pk.Stage("Build", [rec.action("Compile")]), pk.Stage("Test", [rec.action("Unit")])]
    )
    result = await run(pipeline, workdir)
    assert result.status is pk.Status.SUCCEEDED
    assert result.succeeded
    assert result.stages["Build"].status is pk.Status.SUCCEEDED
    assert result.stages["Test"].actions == ("Test.Unit",)
    unit = result.actions["Test.Unit"]
    assert unit.status is pk.Status.SUCCEEDED
    assert [a.number for a in unit.attempts] == [1]
    assert unit.started_at <= unit.finished_at
    assert unit.duration is not None
    assert result.duration >= unit.duration
    assert rec.index("end", "Build.Compile") < rec.index("start", "Test.Unit")
    assert result.raise_for_status() is result


async def test_actions_of_one_group_really_run_concurrently(workdir):
    arrived = {"A": anyio.Event(), "B": anyio.Event()}

    def meets(me, other):
        async def body(ctx):
            arrived[me].set()
            with anyio.fail_after(5):  # a sequential scheduler would deadlock here
                await arrived[other].wait()

        return body

    pipeline = pk.Pipeline(
        "p",
        [pk.Stage("S", [python_action("A", meets("A", "B")), python_action("B", meets("B", "A"))])],
    )
    result = await run(pipeline, workdir)
    assert result.succeeded


async def test_run_order_groups_and_stages_run_in_order(workdir):
    rec = Recorder()
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage("One", [rec.action("A"), rec.action("B"), rec.action("C", run_order=2)]),
            pk.Stage("Two", [rec.action("D")]),
        ],
    )
    result = await run(pipeline, workdir)
    assert result.succeeded
    assert rec.index("end", "One.A") < rec.index("start", "One.C")
    assert rec.index("end", "One.B") < rec.index("start", "One.C")
    assert rec.index("end", "One.C") < rec.index("start", "Two.D")


async def test_failure_semantics(workdir):
    release = anyio.Event()
    sibling_finished = []

    async def slow_sibling(ctx):
        await release.wait()
        sibling_finished.append(True)

    async def failing(ctx):
        release.set()
        raise pk.ActionFailed("3 tests failed")

    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage("Build", [python_action("Compile")]),
            pk.Stage(
                "Test",
                [
                    python_action("Unit", failing),
                    python_action("Lint", slow_sibling),
                    python_action("Smoke", run_order=2),
                ],
            ),
            pk.Stage("Deploy", [python_action("Ship")]),
            pk.Stage("Docs", [python_action("Publish")], needs=["Build"]),
        ],
    )
    result = await run(pipeline, workdir)
    assert result.status is pk.Status.FAILED
    assert result.actions["Test.Unit"].status is pk.Status.FAILED
    assert result.actions["Test.Unit"].error == "3 tests failed"
    assert sibling_finished == [True]
    assert result.actions["Test.Lint"].status is pk.Status.SUCCEEDED
    assert result.actions["Test.Smoke"].status is pk.Status.NOT_STARTED
    assert result.stages["Test"].status is pk.Status.FAILED
    assert result.stages["Deploy"].status is pk.Status.NOT_STARTED
    assert result.actions["Deploy.Ship"].status is pk.Status.NOT_STARTED
    assert result.actions["Docs.Publish"].status is pk.Status.SUCCEEDED  # independent branch
    assert result.stages["Docs"].status is pk.Status.SUCCEEDED
    assert [a.name for a in result.failed_actions()] == ["Test.Unit"]
    with pytest.raises(pk.ExecutionError, match=r"Test\.Unit: 3 tests failed"):
        result.raise_for_status()


async def test_the_stage_fails_only_after_running_siblings_finish(workdir):
    release = anyio.Event()

    async def failing(ctx):
        raise pk.ActionFailed("no")

    async def sibling(ctx):
        await anyio.lowlevel.checkpoint()
        release.set()

    store = pk.MemoryStore()
    pipeline = pk.Pipeline(
        "p", [pk.Stage("S", [python_action("Bad", failing), python_action("Slow", sibling)])]
    )
    result = await run(pipeline, workdir, store=store)
    events = await store.events(result.execution_id)
    order = [(e.type, e.action or e.stage, str(e.state)) for e in events]
    assert order.index(("action", "Slow", "Succeeded")) < order.index(("stage", "S", "Failed"))


async def test_an_exception_fails_the_action_with_its_type(workdir):
    async def broken(ctx):
        msg = "bad value"
        raise ValueError(msg)

    result = await run(pk.Pipeline("p", [pk.Stage("S", [python_action("A", broken)])]), workdir)
    assert result.actions["S.A"].error == "ValueError: bad value"


async def test_max_concurrency_bounds_running_actions(workdir):
    running = 0
    peak = 0

    async def body(ctx):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        running -= 1

    pipeline = pk.Pipeline("p", [pk.Stage("S", [python_action(f"A{i}", body) for i in range(8)])])
    assert (await run(pipeline, workdir, max_concurrency=2)).succeeded
    assert peak == 2
    peak = 0
    assert (await run(pipeline, workdir)).succeeded
    assert peak == 8


async def test_cancelling_the_caller_abandons_running_actions(workdir):
    started = anyio.Event()

    async def forever(ctx):
        started.set()
        await anyio.sleep_forever()

    store = pk.MemoryStore()
    pipeline = pk.Pipeline(
        "p", [pk.Stage("S", [python_action("Hang", forever)]), pk.Stage("T", [python_action("B")])]
    )
    async with anyio.create_task_group() as tasks:
        engine = pk.Engine(store=store, workdir=workdir)

        async def go():
            async with engine:
                execution = await engine.start(pipeline)
                holder.append(execution)
                await execution.wait()

        holder = []
        tasks.start_soon(go)
        await started.wait()
        tasks.cancel_scope.cancel()
    execution = holder[0]
    assert execution.done
    events = await store.events(execution.id)
    states = [(e.type, e.action or e.stage or "", str(e.state)) for e in events]
    assert ("action", "Hang", "Abandoned") in states
    assert ("stage", "S", "Stopped") in states
    assert states[-1] == ("pipeline", "", "Stopped")
    assert execution.result.status is pk.Status.STOPPED
    assert execution.result.actions["T.B"].status is pk.Status.NOT_STARTED


async def test_retries_record_each_attempt(workdir):
    calls = []

    async def flaky(ctx):
        calls.append(ctx.attempt)
        if ctx.attempt < 3:
            raise pk.ActionFailed(f"try {ctx.attempt} failed")

    pipeline = pk.Pipeline(
        "p", [pk.Stage("S", [python_action("A", flaky, retry=pk.Retry(3, delay=0))])]
    )
    store = pk.MemoryStore()
    result = await run(pipeline, workdir, store=store)
    action = result.actions["S.A"]
    assert action.status is pk.Status.SUCCEEDED
    assert calls == [1, 2, 3]
    assert [(a.number, a.status, a.error) for a in action.attempts] == [
        (1, pk.Status.FAILED, "try 1 failed"),
        (2, pk.Status.FAILED, "try 2 failed"),
        (3, pk.Status.SUCCEEDED, None),
    ]
    starts = [e for e in await store.events(result.execution_id) if e.action == "A"]
    assert [e.detail.get("attempt") for e in starts] == [1, 2, 3, 3]
    assert starts[1].detail["previous_error"] == "try 1 failed"


async def test_retries_stop_after_the_last_attempt_and_honour_retry_on(workdir):
    calls = []

    async def always(ctx):
        calls.append(ctx.attempt)
        raise KeyError("x")

    retry = pk.Retry(2, delay=0, retry_on=[TimeoutError])
    pipeline = pk.Pipeline("p", [pk.Stage("S", [python_action("A", always, retry=retry)])])
    result = await run(pipeline, workdir)
    assert calls == [1]  # KeyError is not retried
    assert result.actions["S.A"].status is pk.Status.FAILED
    calls.clear()
    retry = pk.Retry(2, delay=0)
    pipeline = pk.Pipeline("p", [pk.Stage("S", [python_action("A", always, retry=retry)])])
    result = await run(pipeline, workdir)
    assert calls == [1, 2]
    assert len(result.actions["S.A"].attempts) == 2


async def test_a_timeout_cancels_the_attempt(workdir):
    cancelled = []

    async def hang(ctx):
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(True)
            raise

    retry = pk.Retry(2, delay=0, retry_on=[pk.ActionTimeout])
    pipeline = pk.Pipeline(
        "p", [pk.Stage("S", [python_action("A", hang, timeout=0.01, retry=retry)])]
    )
    result = await run(pipeline, workdir)
    action = result.actions["S.A"]
    assert action.status is pk.Status.FAILED
    assert action.error == "timed out after 0.01s"
    assert cancelled == [True, True]
    assert len(action.attempts) == 2


async def test_namespaces_and_pipeline_variables_are_resolved(workdir):
    seen = {}

    async def produce(ctx):
        ctx.set_variable("Version", "1.2.3")

    async def consume(ctx):
        seen.update(ctx.configuration)
        seen["visible"] = ctx.variables["Build.Version"]

    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage("Build", [python_action("Compile", produce, namespace="Build")]),
            pk.Stage(
                "Deploy",
                [
                    python_action(
                        "Ship",
                        consume,
                        configuration={
                            "Tag": "v#{Build.Version}-#{variables.env}",
                            "Run": "#{codepipeline.PipelineExecutionId}",
                        },
                    )
                ],
            ),
        ],
        variables=[pk.Variable("env", default="staging")],
    )
    result = await run(pipeline, workdir, variables={"env": "prod"})
    assert seen["Tag"] == "v1.2.3-prod"
    assert seen["Run"] == result.execution_id
    assert seen["visible"] == "1.2.3"
    assert result.variables["Build.Version"] == "1.2.3"
    assert result.variables["variables.env"] == "prod"
    assert result.actions["Build.Compile"].variables == {"Version": "1.2.3"}


async def test_resolved_values_are_never_evaluated_twice(workdir):
    seen = {}

    async def produce(ctx):
        ctx.set_variable("Text", "#{variables.secret}")

    async def consume(ctx):
        seen.update(ctx.configuration)

    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage("A", [python_action("P", produce, namespace="N")]),
            pk.Stage("B", [python_action("C", consume, configuration={"X": "#{N.Text}"})]),
        ],
        variables=[pk.Variable("secret", default="leaked")],
    )
    await run(pipeline, workdir)
    assert seen["X"] == "#{variables.secret}"


async def test_a_value_missing_at_run_time_fails_the_action_naming_its_producer(workdir):
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage("A", [python_action("P", namespace="N")]),
            pk.Stage("B", [python_action("C", configuration={"X": "#{N.Missing}"})]),
        ],
    )
    result = await run(pipeline, workdir)
    error = result.actions["B.C"].error
    assert error == (
        "#{N.Missing} has no value: 'A.P' (namespace 'N') did not set output variable 'Missing'"
    )


async def test_bad_run_variables_are_refused_before_anything_runs(workdir):
    pipeline = pk.Pipeline(
        "p",
        [pk.Stage("S", [python_action("A")])],
        variables=[pk.Variable("env"), pk.Variable("region", default="eu")],
    )
    with pytest.raises(pk.ExecutionError, match="'env' has no default"):
        await run(pipeline, workdir)
    with pytest.raises(pk.ExecutionError, match="did you mean 'region'"):
        await run(pipeline, workdir, variables={"env": "x", "regoin": "us"})


async def test_secrets_are_masked_in_logs_errors_events_and_results(workdir, monkeypatch):
    monkeypatch.setenv("DEPLOY_KEY", "-----BEGIN KEY-----\nabcdefghijkl\n-----END KEY-----")

    async def leaky(ctx):
        key = ctx.secret("DEPLOY_KEY")
        ctx.log.info("using key", key=key)
        ctx.log.info("one line of it: abcdefghijkl")
        ctx.set_variable("Token", "token-" + ctx.configuration["Password"])
        msg = f"failed with password {ctx.configuration['Password']} and {key.splitlines()[1]}"
        raise pk.ActionFailed(msg)

    store = pk.MemoryStore()
    pipeline = pk.Pipeline(
        "p",
        [pk.Stage("S", [python_action("A", leaky, configuration={"Password": "#{variables.pw}"})])],
        variables=[pk.Variable("pw", default="hunter2hunter2", secret=True)],
    )
    with structlog.testing.capture_logs() as logs:
        result = await run(pipeline, workdir, store=store)
    action = result.actions["S.A"]
    assert "hunter2" not in action.error
    assert "abcdefghijkl" not in action.error
    assert "****" in action.error
    text = action.log_path.read_text()
    assert "abcdefghijkl" not in text
    assert "BEGIN KEY" not in text
    assert "****" in text
    everything = repr(await store.events(result.execution_id)) + repr(logs)
    everything += repr(dict(result.actions)) + repr(result.variables)
    assert "hunter2" not in everything
    assert "abcdefghijkl" not in everything


async def test_events_are_recorded_before_they_are_announced_and_numbered(workdir):
    store = pk.MemoryStore()
    seen_in_store = []

    async def hook(event):
        recorded = await store.events(event.execution_id)
        seen_in_store.append(event in recorded)

    pipeline = pk.Pipeline("p", [pk.Stage("S", [python_action("A"), python_action("B")])])
    result = await run(pipeline, workdir, store=store, hooks=[hook])
    events = await store.events(result.execution_id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert seen_in_store == [True] * len(events)
    assert (events[0].type, events[0].state) == ("pipeline", pk.Status.IN_PROGRESS)
    assert (events[-1].type, events[-1].state) == ("pipeline", pk.Status.SUCCEEDED)


async def test_hooks_get_every_event_in_order_and_failures_never_fail_the_pipeline(workdir):
    received = []
    plain_calls = []

    class Good:
        async def on_event(self, event):
            received.append(event.sequence)

    class Broken:
        async def on_event(self, event):
            msg = "webhook down"
            raise RuntimeError(msg)

    class Hanging:
        async def on_event(self, event):
            await anyio.sleep_forever()

    def plain(event):
        plain_calls.append(threading.current_thread() is threading.main_thread())

    pipeline = pk.Pipeline("p", [pk.Stage("S", [python_action("A")])])
    async with pk.Engine(
        hooks=[Good(), Broken(), Hanging(), plain], workdir=workdir, hook_timeout=0.05
    ) as engine:
        execution = await engine.start(pipeline)
        result = await execution.wait()
    assert result.succeeded
    assert received == list(range(1, len(received) + 1))
    assert len(received) == 6
    assert plain_calls == [False] * 6  # plain callables run in worker threads
    broken = [e for e in result.hook_errors if e.hook == "Broken"]
    assert len(broken) == 6
    assert broken[0].error == "RuntimeError: webhook down"
    hanging = [e for e in result.hook_errors if e.hook == "Hanging"]
    assert hanging
    # Either its call timed out, or the run ended first and the rest was given up on.
    assert hanging[0].error in {"timed out after 0.05s", "gave up with 5 events undelivered"}


async def test_pipeline_hooks_and_log_hook(workdir):
    events = []
    pipeline = pk.Pipeline(
        "p", [pk.Stage("S", [python_action("A")])], hooks=[events.append, pk.hooks.LogHook()]
    )
    with structlog.testing.capture_logs() as logs:
        result = await run(pipeline, workdir)
    assert [str(e.state) for e in events][-1] == "Succeeded"
    logged = [entry for entry in logs if entry["event"] == "pipelinekit.event"]
    assert len(logged) == len(events)
    assert logged[2] == {
        "event": "pipelinekit.event",
        "log_level": "info",
        "pipeline": "p",
        "execution_id": result.execution_id,
        "type": "action",
        "state": "InProgress",
        "sequence": 3,
        "stage": "S",
        "action": "A",
        "attempt": 1,
        "action_type": "Invoke/Custom/PythonFunction/1",
    }


async def test_execution_events_streams_live_and_ends(workdir):
    gate = anyio.Event()

    async def wait_for_gate(ctx):
        await gate.wait()

    pipeline = pk.Pipeline("p", [pk.Stage("S", [python_action("A", wait_for_gate)])])
    streamed = []
    async with pk.Engine(workdir=workdir) as engine:
        execution = await engine.start(pipeline)

        async def read():
            async for event in execution.events():
                streamed.append(event)
                if event.type == "action" and event.state is pk.Status.IN_PROGRESS:
                    gate.set()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read)
        result = await execution.wait()
    assert [e.sequence for e in streamed] == list(range(1, len(streamed) + 1))
    assert streamed[-1].state is result.status is pk.Status.SUCCEEDED
    assert [e async for e in execution.events()] == streamed  # replays after the end


async def test_sync_functions_run_in_a_worker_thread_and_may_return_variables(workdir):
    threads = []

    def sync_body(ctx):
        threads.append(threading.current_thread() is threading.main_thread())
        return {"Answer": "42"}

    async def async_body(ctx):
        threads.append(threading.current_thread() is threading.main_thread())

    pipeline = pk.Pipeline(
        "p",
        [pk.Stage("S", [python_action("Sync", sync_body), python_action("Async", async_body)])],
    )
    result = await run(pipeline, workdir)
    assert sorted(threads) == [False, True]
    assert result.actions["S.Sync"].variables == {"Answer": "42"}


async def test_the_engine_must_be_entered(workdir):
    engine = pk.Engine(workdir=workdir)
    with pytest.raises(pk.ExecutionError, match="async with"):
        await engine.start(pk.Pipeline("p", [pk.Stage("S", [python_action("A")])]))


def test_run_is_the_blocking_form(workdir):
    result = pk.run(pk.Pipeline("p", [pk.Stage("S", [python_action("A")])]), workdir=workdir)
    assert result.succeeded


async def test_event_to_eventbridge_has_codepipelines_shape(workdir):
    store = pk.MemoryStore()
    pipeline = pk.Pipeline("p", [pk.Stage("S", [python_action("A")])])
    result = await run(pipeline, workdir, store=store, triggered_by="alice")
    events = await store.events(result.execution_id)
    started = events[0].to_eventbridge(region="eu-west-1", account="123456789012")
    assert started["source"] == "aws.codepipeline"
    assert started["detail-type"] == "CodePipeline Pipeline Execution State Change"
    assert started["resources"] == ["arn:aws:codepipeline:eu-west-1:123456789012:p"]
    assert started["detail"]["state"] == "STARTED"
    assert started["detail"]["execution-id"] == result.execution_id
    assert started["detail"]["execution-trigger"]["trigger-type"] == "StartPipelineExecution"
    action = events[2].to_eventbridge()
    assert action["detail-type"] == "CodePipeline Action Execution State Change"
    assert action["detail"]["type"] == {
        "owner": "Custom",
        "provider": "PythonFunction",
        "category": "Invoke",
        "version": "1",
    }
    assert events[0].detail["triggered_by"] == "alice"


async def test_a_result_repr_is_a_summary(workdir):
    result = await run(pk.Pipeline("p", [pk.Stage("S", [python_action("A")])]), workdir)
    text = repr(result)
    assert text.startswith(f"RunResult(pipeline='p', execution_id='{result.execution_id}'")
    assert "status=Succeeded, stages=1, actions=1" in text


def test_a_run_says_that_stage_conditions_are_not_evaluated(tmp_path):
    window = pk.Condition(
        pk.Result.FAIL,
        [pk.Rule("Window", "DeploymentWindow", configuration={"Cron": "0 0 9 ? * MON-FRI *"})],
    )
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage("Build", [pk.Action("A", pk.Wait(0))]),
            pk.Stage("Deploy", [pk.Action("B", pk.Wait(0))], before_entry=window),
        ],
    )
    with structlog.testing.capture_logs() as logs:
        result = pk.run(pipeline, store=pk.MemoryStore(), workdir=tmp_path)
    assert result.succeeded
    (warning,) = [e for e in logs if "stage conditions" in e["event"]]
    assert warning["log_level"] == "warning"
    assert warning["stages"] == ["Deploy"]
