"""Retrying a failed stage on the same execution id, with CodePipeline's rules."""

from __future__ import annotations

import pytest

import pipelinekit as pk

pytestmark = pytest.mark.anyio

RUNS: list[str] = []
BROKEN: set[str] = set()


async def work(ctx):
    node = f"{ctx.stage}.{ctx.action}"
    RUNS.append(node)
    if node in BROKEN:
        raise pk.ActionFailed(f"{node} is broken")
    ctx.set_variable("Ran", node)


def act(name, **options):
    return pk.Action(name, pk.python(work), **options)


PIPELINE = pk.Pipeline(
    "release",
    [
        pk.Stage("Build", [act("Compile", namespace="B")]),
        pk.Stage("Test", [act("Unit"), act("Lint"), act("Smoke", run_order=2)]),
        pk.Stage("Deploy", [act("Ship")]),
    ],
)


@pytest.fixture(autouse=True)
def reset():
    RUNS.clear()
    BROKEN.clear()


async def run_then_retry(tmp_path, failed_only):
    BROKEN.add("Test.Unit")
    async with pk.Engine(workdir=tmp_path) as engine:
        first = await (await engine.start(PIPELINE)).wait()
        assert first.status is pk.Status.FAILED
        BROKEN.clear()
        RUNS.clear()
        retried = await engine.retry_stage(
            first.execution_id, "Test", failed_only=failed_only, pipeline=PIPELINE
        )
        assert retried.id == first.execution_id
        result = await retried.wait()
        events = await engine.store.events(first.execution_id)
    return first, result, events


async def test_failed_actions_run_again_and_the_pipeline_goes_on(tmp_path):
    first, result, events = await run_then_retry(tmp_path, failed_only=True)
    assert RUNS == ["Test.Unit", "Test.Smoke", "Deploy.Ship"]  # Lint had succeeded
    assert result.status is pk.Status.SUCCEEDED
    assert result.execution_id == first.execution_id
    unit = result.actions["Test.Unit"]
    assert [(a.number, a.status) for a in unit.attempts] == [
        (1, pk.Status.FAILED),
        (2, pk.Status.SUCCEEDED),
    ]
    assert result.variables["B.Ran"] == "Build.Compile"  # from the first attempt
    # history is kept: the first attempt's Failed events are still there
    assert [e.state for e in events if e.type == "pipeline"] == [
        pk.Status.IN_PROGRESS,
        pk.Status.FAILED,
        pk.Status.IN_PROGRESS,
        pk.Status.SUCCEEDED,
    ]
    retry_start = [e for e in events if e.type == "pipeline"][2]
    assert retry_start.detail["retry"] == "Test"
    assert retry_start.detail["retry_mode"] == "FAILED_ACTIONS"
    assert retry_start.detail["execution_attempt"] == 2
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))


async def test_all_actions_run_again(tmp_path):
    _, result, _ = await run_then_retry(tmp_path, failed_only=False)
    assert sorted(RUNS) == ["Deploy.Ship", "Test.Lint", "Test.Smoke", "Test.Unit"]
    assert result.succeeded


async def test_retry_rules(tmp_path):
    async with pk.Engine(workdir=tmp_path) as engine:
        good = await (await engine.start(PIPELINE)).wait()
        with pytest.raises(pk.ExecutionError, match="it succeeded; there is nothing to retry"):
            await engine.retry_stage(good.execution_id, "Test", pipeline=PIPELINE)
        BROKEN.add("Build.Compile")
        bad = await (await engine.start(PIPELINE)).wait()
        with pytest.raises(pk.ExecutionError, match=r"stage 'Test' .* ended NotStarted"):
            await engine.retry_stage(bad.execution_id, "Test", pipeline=PIPELINE)
        with pytest.raises(pk.ExecutionError, match="did you mean 'Build'"):
            await engine.retry_stage(bad.execution_id, "Biuld", pipeline=PIPELINE)
        with pytest.raises(pk.ExecutionError, match="has no execution"):
            await engine.retry_stage("nope", "Build", pipeline=PIPELINE)
        with pytest.raises(pk.ExecutionError, match="did not record where"):
            await engine.retry_stage(bad.execution_id, "Build")
        BROKEN.clear()
        again = await (
            await engine.retry_stage(bad.execution_id, "Build", pipeline=PIPELINE)
        ).wait()
    assert again.succeeded


def test_pipelinekit_retry_from_the_shell(tmp_path, cli):
    flag = tmp_path / "broken"
    flag.touch()
    (tmp_path / "p.py").write_text(
        "import pipelinekit as pk\n"
        "pipeline = pk.Pipeline('p', [\n"
        f"    pk.Stage('S', [pk.Action('A', pk.shell('test ! -e {flag}'))]),\n"
        "    pk.Stage('T', [pk.Action('B', pk.shell('true'))]),\n"
        "])\n"
    )
    status, _, _ = cli("run", str(tmp_path / "p.py"), "--store", str(tmp_path / "wd"))
    assert status == 1
    store = str(tmp_path / "wd" / "state.db")
    execution_id = cli("history", "--store", store)[1].splitlines()[1].split()[0]
    flag.unlink()
    status, out, _ = cli("retry", execution_id, "S", "--store", store, "--plain")
    assert status == 0, out
    assert "action T.B Succeeded" in out
    assert out.splitlines()[-1].startswith("pipeline 'p' Succeeded in ")
    status, _, err = cli("retry", execution_id, "S", "--store", store)
    assert status == 2
    assert "it succeeded; there is nothing to retry" in err


def test_pipelinekit_retry_takes_secrets_again_with_var(tmp_path, cli):
    flag = tmp_path / "broken"
    flag.touch()
    (tmp_path / "p.py").write_text(
        "import pipelinekit as pk\n"
        "pipeline = pk.Pipeline('p', [\n"
        "    pk.Stage('S', [pk.Action('A', pk.shell(\n"
        f"        'test ! -e {flag} && test \"#{{variables.token}}\" = s3cr3t'))]),\n"
        "], variables=[pk.Variable('token', secret=True)])\n"
    )
    wd = str(tmp_path / "wd")
    status, _, _ = cli("run", str(tmp_path / "p.py"), "--store", wd, "--var", "token=s3cr3t")
    assert status == 1
    store = str(tmp_path / "wd" / "state.db")
    execution_id = cli("history", "--store", store)[1].splitlines()[1].split()[0]
    flag.unlink()
    status, _, err = cli("retry", execution_id, "S", "--store", store)
    assert status == 2
    assert "give it again" in err
    assert "--var token=" in err
    status, _, err = cli("retry", execution_id, "S", "--store", store, "--var", "token")
    assert status == 2
    assert "is not NAME=VALUE" in err
    status, out, _ = cli(
        "retry", execution_id, "S", "--store", store, "--var", "token=s3cr3t", "--plain"
    )
    assert status == 0, out


async def test_a_changed_definition_cannot_be_retried(tmp_path):
    BROKEN.add("Test.Unit")
    async with pk.Engine(workdir=tmp_path) as engine:
        first = await (await engine.start(PIPELINE)).wait()
        changed = pk.Pipeline(
            "release", [*PIPELINE.stages[:2], pk.Stage("Deploy", [act("Ship"), act("Notify")])]
        )
        with pytest.raises(pk.ExecutionError, match="changed since execution"):
            await engine.retry_stage(first.execution_id, "Test", pipeline=changed)


async def test_only_the_latest_failure_in_a_stage_can_be_retried(tmp_path):
    BROKEN.add("Test.Unit")
    async with pk.Engine(workdir=tmp_path) as engine:
        older = await (await engine.start(PIPELINE)).wait()
        newer = await (await engine.start(PIPELINE)).wait()
        with pytest.raises(
            pk.ExecutionError, match=f"a later execution \\({newer.execution_id}\\)"
        ):
            await engine.retry_stage(older.execution_id, "Test", pipeline=PIPELINE)
        BROKEN.clear()
        retried = await (
            await engine.retry_stage(newer.execution_id, "Test", pipeline=PIPELINE)
        ).wait()
    assert retried.succeeded


SEEN: list[str] = []  # what the deploy saw of the two secrets


async def deploy(ctx):
    SEEN.append(f"{ctx.variables['variables.token']} {ctx.variables['variables.colour']}")
    if "Deploy.Ship" in BROKEN:
        raise pk.ActionFailed("the cluster is down")


SECRET_PIPELINE = pk.Pipeline(
    "secret",
    [pk.Stage("Deploy", [pk.Action("Ship", pk.python(deploy))])],
    variables=[
        pk.Variable("token", secret=True),
        pk.Variable("region", default="eu"),
        pk.Variable("colour", default="blue", secret=True),
    ],
)


async def test_a_retry_is_given_the_secrets_the_store_never_kept(tmp_path):
    SEEN.clear()
    BROKEN.add("Deploy.Ship")
    async with pk.Engine(workdir=tmp_path) as engine:
        first = await engine.start(SECRET_PIPELINE, variables={"token": "s3cr3t"})
        assert (await first.wait()).status is pk.Status.FAILED
        events = await engine.store.events(first.id)
        assert "s3cr3t" not in repr(events)  # kept nowhere
        BROKEN.clear()
        with pytest.raises(pk.ExecutionError) as refused:
            await engine.retry_stage(first.id, "Deploy", pipeline=SECRET_PIPELINE)
        assert "secret variable 'token'" in str(refused.value)
        assert "--var token=" in str(refused.value)
        assert "colour" not in str(refused.value)  # it started with its default
        with pytest.raises(pk.ExecutionError, match="'region' is not secret"):
            await engine.retry_stage(
                first.id,
                "Deploy",
                pipeline=SECRET_PIPELINE,
                variables={"token": "s3cr3t", "region": "us"},
            )
        again = await engine.retry_stage(
            first.id, "Deploy", pipeline=SECRET_PIPELINE, variables={"token": "s3cr3t"}
        )
        result = await again.wait()
    assert result.succeeded
    assert SEEN == ["s3cr3t blue", "s3cr3t blue"]  # never "****"


def _shifted_clock():
    """The real clock, moved on by ``shift`` (an idle hour between a failure and its retry)."""
    from datetime import timedelta  # noqa: PLC0415

    from pipelinekit.providers._clock import SystemClock  # noqa: PLC0415

    class Shifted(SystemClock):
        shift = timedelta(0)

        def now(self):
            return super().now() + self.shift

    return Shifted()


async def test_history_and_status_agree_with_a_retry_and_leave_idle_time_out(tmp_path, cli, capsys):
    """Today's cut: history counted the idle hour before the retry as running time, and
    status did not say what ran when."""
    import json  # noqa: PLC0415
    from datetime import timedelta  # noqa: PLC0415

    import anyio  # noqa: PLC0415

    clock = _shifted_clock()
    BROKEN.add("Test.Unit")
    async with pk.Engine(workdir=tmp_path, clock=clock) as engine:
        first = await (await engine.start(PIPELINE)).wait()
    assert first.status is pk.Status.FAILED
    clock.shift = timedelta(hours=1)
    BROKEN.clear()
    async with pk.Engine(workdir=tmp_path, clock=clock) as engine:
        again = await (
            await engine.retry_stage(first.execution_id, "Test", pipeline=PIPELINE)
        ).wait()
    assert again.succeeded
    store = str(tmp_path)

    def command(*args):
        return anyio.to_thread.run_sync(cli, *args)

    status, out, _ = await command("history", "--store", store)
    assert status == 0
    row = out.splitlines()[1]
    assert "Succeeded" in row
    assert row.endswith("(2 runs)")
    assert "60m" not in row
    document = json.loads((await command("history", "--json", "--store", store))[1])
    (summary,) = document["pipelineExecutionSummaries"]
    assert summary["runs"] == 2
    assert summary["durationSeconds"] < 60
    status, out, _ = await command("status", first.execution_id, "--store", store)
    lines = out.splitlines()
    assert lines[1].startswith("  ran ")
    assert "in 2 runs, idle time between them left out: first run" in lines[1]
    assert "retry of stage Test" in lines[1]
    compile_line = next(line for line in lines if "Compile" in line)
    assert "kept from execution attempt 1" in compile_line
    unit_line = next(line for line in lines if "Unit" in line)
    assert "kept" not in unit_line  # it ran again in the retry
    lint_line = next(line for line in lines if "Lint" in line)
    assert "kept from execution attempt 1" in lint_line  # failed_only: it did not run again


async def test_status_shows_a_waiting_approval_its_data_link_and_wait(tmp_path, cli):
    """Today's cut: custom_data showed only in status --json, and no waiting time."""
    import anyio  # noqa: PLC0415

    pipeline = pk.Pipeline(
        "gated",
        [
            pk.Stage(
                "Approve",
                [
                    pk.Action(
                        "Prod",
                        pk.ManualApproval(
                            custom_data="check the changelog\nand the migration notes",
                            external_entity_link="https://example.invalid/pr/1",
                        ),
                    )
                ],
            )
        ],
    )
    async with pk.Engine(workdir=tmp_path) as engine:
        execution = await engine.start(pipeline)
        async for event in execution.events():
            if event.state is pk.Status.WAITING_FOR_APPROVAL:
                break
        status, out, err = await anyio.to_thread.run_sync(
            cli, "status", execution.id, "--store", str(tmp_path)
        )
        await engine.reject(execution.id, "Approve.Prod", by="bob")
        await execution.wait()
    assert status == 0, err
    # A second line of custom data stands under the first, not at the left margin.
    review = "          review: check the changelog\n                  and the migration notes\n"
    assert review in out
    assert "          link: https://example.invalid/pr/1\n" in out
    assert "          waiting for 0." in out
