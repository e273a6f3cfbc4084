"""Output variables that held a secret are kept masked on record: never handed on as ``****``.

Today's cut: a stage reused with ``--from --reuse``, or a later stage of a resumed or retried
execution, read its earlier actions' output variables back from the events, where a secret in
them is ``****``; ``TOKEN=pre-<secret>-post`` reached the next stage as ``pre-****-post``.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

import pipelinekit as pk

SECRET = "supersecretvalue"  # noqa: S105 - a test secret


def pipeline(tmp_path: Path, *, python_reader: bool = False) -> pk.Pipeline:
    """Build sets TOKEN from a secret; Test reads it (unless it fails on purpose)."""
    gate = tmp_path / "pass"
    if python_reader:

        async def read(ctx: pk.ActionContext) -> None:
            (tmp_path / "seen").write_text(ctx.variables["B.TOKEN"])

        reader = pk.Action("T", pk.python(read))
    else:
        reader = pk.Action(
            "T",
            pk.shell(
                f'test -e "{gate}"',
                f'echo "#{{B.TOKEN}}" > "{tmp_path / "seen"}"',
            ),
        )
    return pk.Pipeline(
        "rel",
        [
            pk.Stage("Fetch", [pk.Action("Get", pk.shell("true"))]),
            pk.Stage(
                "Build",
                [
                    pk.Action(
                        "Make",
                        pk.shell(
                            "TOKEN=pre-#{variables.tok}-post",
                            "PLAIN=1",
                            output_variables=["TOKEN", "PLAIN"],
                        ),
                        namespace="B",
                    )
                ],
            ),
            pk.Stage("Test", [reader]),
            pk.Stage("Deploy", [pk.Action("Ship", pk.shell("echo #{B.PLAIN}"))]),
        ],
        variables=[pk.Variable("tok", secret=True)],
    )


def seen(tmp_path: Path) -> str | None:
    path = tmp_path / "seen"
    return path.read_text().strip() if path.exists() else None


def test_the_success_of_an_action_names_its_masked_output_variables(tmp_path):
    (tmp_path / "pass").touch()
    store = pk.MemoryStore()
    result = pk.run(pipeline(tmp_path), store=store, workdir=tmp_path / "wd",
                    variables={"tok": SECRET})  # fmt: skip
    assert result.succeeded
    assert seen(tmp_path) == f"pre-{SECRET}-post"  # in the run itself, the real value
    assert result.actions["Build.Make"].variables == {"TOKEN": "pre-****-post", "PLAIN": "1"}
    events = anyio.run(store.events, result.execution_id)
    (made,) = [e for e in events if e.node == "Build.Make" and e.state is pk.Status.SUCCEEDED]
    assert made.detail["masked_variables"] == ["TOKEN"]
    assert SECRET not in repr(events)


def test_a_reused_secret_output_variable_is_refused_naming_the_stage_to_run(tmp_path):
    wd = tmp_path / "wd"
    first = pk.run(pipeline(tmp_path), workdir=wd, variables={"tok": SECRET})
    assert first.stages["Test"].status is pk.Status.FAILED  # no "pass" file yet
    (tmp_path / "pass").touch()
    with pytest.raises(
        pk.ExecutionError,
        match=r"Test\.T reads #\{B\.TOKEN\}.*Build\.Make.*held a secret.*use --from Build",
    ):
        pk.run(pipeline(tmp_path), workdir=wd, from_stage="Test", reuse=first.execution_id,
               variables={"tok": SECRET})  # fmt: skip
    assert seen(tmp_path) is None  # nothing ran with "****"


def test_an_output_variable_without_a_secret_is_still_reused(tmp_path):
    """Deploy reads only PLAIN: reusing Build and Test for it is fine."""
    wd = tmp_path / "wd"
    (tmp_path / "pass").touch()
    first = pk.run(pipeline(tmp_path), workdir=wd, variables={"tok": SECRET})
    assert first.succeeded
    result = pk.run(pipeline(tmp_path), workdir=wd, from_stage="Deploy",
                    reuse=first.execution_id, variables={"tok": SECRET})  # fmt: skip
    assert result.succeeded
    assert result.variables["B.PLAIN"] == "1"


def test_python_code_never_reads_a_reused_masked_value(tmp_path):
    """Code reading ``ctx.variables`` cannot be seen ahead: the value is missing, not ``****``."""
    wd = tmp_path / "wd"
    first = pk.run(pipeline(tmp_path), workdir=wd, variables={"tok": SECRET})
    result = pk.run(pipeline(tmp_path, python_reader=True), workdir=wd, from_stage="Test",
                    reuse=first.execution_id, variables={"tok": SECRET})  # fmt: skip
    assert result.actions["Test.T"].status is pk.Status.FAILED
    assert "B.TOKEN" in (result.actions["Test.T"].error or "")
    assert seen(tmp_path) is None


def crashed_after_build(tmp_path: Path) -> tuple[pk.MemoryStore, str]:
    """A store holding an execution whose process died once Build had succeeded."""
    (tmp_path / "pass").touch()
    store = pk.MemoryStore()
    result = pk.run(pipeline(tmp_path), store=store, workdir=tmp_path / "wd",
                    variables={"tok": SECRET})  # fmt: skip
    events = anyio.run(store.events, result.execution_id)
    cut = next(i for i, e in enumerate(events) if e.type == "stage" and e.stage == "Test")
    crashed = pk.MemoryStore()
    anyio.run(crashed.record, events[:cut])
    (tmp_path / "seen").unlink()
    return crashed, result.execution_id


def test_a_resumed_execution_refuses_to_hand_on_a_masked_output_variable(tmp_path):
    store, execution_id = crashed_after_build(tmp_path)

    async def resume():
        async with pk.Engine(store=store, workdir=tmp_path / "wd") as engine:
            execution = await engine.resume(
                execution_id, pipeline=pipeline(tmp_path), variables={"tok": SECRET}
            )
            return await execution.wait()

    with pytest.raises(
        pk.ExecutionError,
        match=r"cannot resume execution .*Test\.T reads #\{B\.TOKEN\}.*held a secret"
        r".*--from Build",
    ):
        anyio.run(resume)
    assert seen(tmp_path) is None


def test_a_retried_stage_refuses_to_hand_on_a_masked_output_variable(tmp_path):
    wd = tmp_path / "wd"
    store = pk.MemoryStore()
    first = pk.run(pipeline(tmp_path), store=store, workdir=wd, variables={"tok": SECRET})
    assert first.stages["Test"].status is pk.Status.FAILED
    (tmp_path / "pass").touch()

    async def retry():
        async with pk.Engine(store=store, workdir=wd) as engine:
            execution = await engine.retry_stage(
                first.execution_id, "Test", pipeline=pipeline(tmp_path), variables={"tok": SECRET}
            )
            return await execution.wait()

    with pytest.raises(
        pk.ExecutionError, match=r"cannot retry stage 'Test'.*#\{B\.TOKEN\}.*held a secret"
    ):
        anyio.run(retry)
    assert seen(tmp_path) is None
