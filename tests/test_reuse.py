"""Starting again from a stage: ``run(..., from_stage=S, reuse=ID)`` and ``run --from --reuse``.

Today's cut: a mistyped ``--var`` that only the tests read could only be fixed by a whole new
run, build included.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import anyio
import pytest

import pipelinekit as pk
from pipelinekit.testing import FakeExecutor

PIPELINE = """
import pipelinekit as pk

pipeline = pk.Pipeline(
    "release",
    [
        pk.Stage("Build", [pk.Action("Make", pk.shell(
            'echo built >> "{ledger}"',
            'echo "wheel #{{variables.flavour}}" > "$PK_OUTPUT_dist/pkg.whl"',
            "VERSION=1.2",
            output_variables=["VERSION"],
        ), outputs=["dist"], namespace="Build")]),
        pk.Stage("Test", [pk.Action("Unit", pk.shell(
            'echo tested >> "{ledger}"',
            'test "$(cat "$PK_INPUT_dist/pkg.whl")" = "wheel plain"',
            'test "#{{Build.VERSION}}" = 1.2',
            'test "#{{variables.mode}}" = ok',
        ), inputs=["dist"])]),
        pk.Stage("Deploy", [pk.Action("Ship", pk.shell('echo shipped >> "{ledger}"'))]),
    ],
    variables=[pk.Variable("mode", default="bad"), pk.Variable("flavour", default="plain")],
)
"""


def load(tmp_path: Path, text: str = PIPELINE) -> pk.Pipeline:
    from pipelinekit._model._loader import load_pipeline  # noqa: PLC0415

    path = tmp_path / "release.py"
    path.write_text(textwrap.dedent(text.format(ledger=tmp_path / "ledger.txt")))
    return load_pipeline(str(path))[0]


def ledger(tmp_path: Path) -> list[str]:
    return (tmp_path / "ledger.txt").read_text().split()


@pytest.fixture
def failed(tmp_path):
    """An execution whose tests failed on a bad --var (mode=bad), and its pipeline."""
    pipeline = load(tmp_path)
    result = pk.run(pipeline, workdir=tmp_path / "wd")
    assert result.stages["Build"].status is pk.Status.SUCCEEDED
    assert result.stages["Test"].status is pk.Status.FAILED
    return pipeline, result


def test_a_run_from_a_stage_reuses_the_earlier_ones_and_runs_the_rest(tmp_path, failed):
    pipeline, first = failed
    result = pk.run(
        pipeline,
        workdir=tmp_path / "wd",
        from_stage="Test",
        reuse=first.execution_id,
        variables={"mode": "ok"},
    )
    assert result.succeeded, result.actions["Test.Unit"].error
    assert result.execution_id != first.execution_id
    assert ledger(tmp_path) == ["built", "tested", "tested", "shipped"]  # built once
    make = result.actions["Build.Make"]
    assert make.status is pk.Status.SUCCEEDED
    assert make.attempts == ()  # not run
    assert make.variables == {"VERSION": "1.2"}
    assert result.variables["Build.VERSION"] == "1.2"
    assert (make.outputs["dist"] / "pkg.whl").read_text() == "wheel plain\n"
    assert str(result.workdir) in str(make.outputs["dist"])  # its own copy, not the old folder

    async def events():
        store = pk.SQLiteStore(tmp_path / "wd" / "state.db")
        try:
            return await store.events(result.execution_id)
        finally:
            store.close()

    recorded = anyio.run(events)
    assert recorded[0].detail["reused_from"] == first.execution_id
    assert recorded[0].detail["from_stage"] == "Test"
    reused = [e for e in recorded if e.detail.get("reused_from") and e.type != "pipeline"]
    assert [(e.type, e.stage, e.action, e.state) for e in reused] == [
        ("action", "Build", "Make", pk.Status.SUCCEEDED),
        ("stage", "Build", None, pk.Status.SUCCEEDED),
    ]
    assert not any(e.node == "Build.Make" and e.state is pk.Status.IN_PROGRESS for e in recorded)


def test_a_var_a_reused_stage_read_is_refused(tmp_path, failed):
    pipeline, first = failed
    with pytest.raises(pk.ExecutionError, match=r"--var flavour=\.\.\. changes what reused action"):
        pk.run(
            pipeline,
            workdir=tmp_path / "wd",
            from_stage="Test",
            reuse=first.execution_id,
            variables={"flavour": "fancy", "mode": "ok"},
        )
    # The same value as before is no change.
    result = pk.run(
        pipeline,
        workdir=tmp_path / "wd",
        from_stage="Test",
        reuse=first.execution_id,
        variables={"flavour": "plain", "mode": "ok"},
    )
    assert result.succeeded


def test_a_stage_that_did_not_succeed_is_not_reused(tmp_path, failed):
    pipeline, first = failed
    with pytest.raises(pk.ExecutionError, match=r"cannot reuse stage 'Test' .* ended Failed"):
        pk.run(pipeline, workdir=tmp_path / "wd", from_stage="Deploy", reuse=first.execution_id)


def test_gone_artifacts_are_refused_before_anything_is_recorded(tmp_path, failed):
    pipeline, first = failed
    shutil.rmtree(first.workdir / "artifacts" / "dist")
    with pytest.raises(pk.ExecutionError, match=r"artifact 'dist' of Build.Make .* is gone"):
        pk.run(pipeline, workdir=tmp_path / "wd", from_stage="Test", reuse=first.execution_id)

    async def history():
        store = pk.SQLiteStore(tmp_path / "wd" / "state.db")
        try:
            return await store.executions()
        finally:
            store.close()

    assert len(anyio.run(history)) == 1


def test_a_changed_definition_of_a_reused_stage_is_refused(tmp_path, failed):
    _, first = failed
    changed = load(tmp_path, PIPELINE.replace("VERSION=1.2", "VERSION=1.3"))
    with pytest.raises(pk.ExecutionError, match=r"stage\(s\) 'Build' .* definition changed"):
        pk.run(changed, workdir=tmp_path / "wd", from_stage="Test", reuse=first.execution_id)
    # A change in a stage that runs again is no reason to refuse.
    later = load(tmp_path, PIPELINE.replace("echo shipped", "echo shipped;"))
    result = pk.run(
        later,
        workdir=tmp_path / "wd",
        from_stage="Test",
        reuse=first.execution_id,
        variables={"mode": "ok"},
    )
    assert result.succeeded


def test_bad_requests_say_what_is_wrong(tmp_path, failed):
    pipeline, first = failed
    with pytest.raises(pk.ExecutionError, match="no stage 'Tset'; did you mean 'Test'"):
        pk.run(pipeline, workdir=tmp_path / "wd", from_stage="Tset", reuse=first.execution_id)
    with pytest.raises(pk.ExecutionError, match="from_stage and reuse go together"):
        pk.run(pipeline, workdir=tmp_path / "wd", from_stage="Test")
    with pytest.raises(pk.ExecutionError, match="depends on no stage"):
        pk.run(pipeline, workdir=tmp_path / "wd", from_stage="Build", reuse=first.execution_id)
    with pytest.raises(pk.ExecutionError, match="has no execution 'nope'"):
        pk.run(pipeline, workdir=tmp_path / "wd", from_stage="Test", reuse="nope")


def test_the_command_line_runs_from_a_stage(tmp_path, failed, cli, monkeypatch):
    """``pipelinekit run FILE --from STAGE --reuse ID`` with the id's forms."""
    _, first = failed
    monkeypatch.chdir(tmp_path)
    store = str(tmp_path / "wd")
    status, _, err = cli(
        "run", "release.py", "--from", "Test", "--reuse", "latest", "--store", store,
        "--var", "flavour=fancy", "--plain",
    )  # fmt: skip
    assert status == 2
    (line,) = err.splitlines()
    assert "changes what reused action Build.Make" in line
    status, out, err = cli(
        "run", "release.py", "--from", "Test", "--reuse", first.execution_id[:8],
        "--store", store, "--var", "mode=ok", "--plain",
    )  # fmt: skip
    assert status == 0, out + err
    assert ledger(tmp_path) == ["built", "tested", "tested", "shipped"]
    status, _, err = cli("run", "release.py", "--from", "Test", "--store", store)
    assert status == 2
    assert "--from and --reuse go together" in err


def test_the_fake_keeps_no_executions_to_reuse(tmp_path):
    pipeline = load(tmp_path)
    fake = FakeExecutor()
    assert fake.run(pipeline).succeeded
    with pytest.raises(pk.ExecutionError, match="the fake keeps no artifacts between runs"):
        fake.run(pipeline, from_stage="Test", reuse=fake.result.execution_id)
