"""The pipelinekit command: validate and graph, and a clear line (never a traceback) for every
kind of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipelinekit.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "webapp" / "pipeline.py"

GOOD = """
import pipelinekit as pk

pipeline = pk.Pipeline("demo", [
    pk.Stage("Build", [pk.Action("Compile", pk.shell("make"), outputs=["dist"])]),
    pk.Stage("Test", [pk.Action("Unit", pk.shell("make test"), inputs=["dist"])]),
])
"""


def write(tmp_path: Path, text: str, name: str = "pipeline.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_validate_a_good_pipeline(tmp_path, cli):
    status, out, err = cli("validate", str(write(tmp_path, GOOD)))
    assert status == 0
    assert "ok: pipeline 'demo'" in out
    assert "2 stages, 2 actions in 2 parallel steps" in out
    assert err == ""


def test_validate_reports_each_problem_on_its_own_line(tmp_path, cli):
    path = write(tmp_path, GOOD.replace('inputs=["dist"]', 'inputs=["dst"], namespace="dist"'))
    status, out, err = cli("validate", str(path))
    assert status == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"{path}: error: pipeline 'demo', stage 'Test', action 'Unit'")
    assert any("did you mean 'dist'?" in line for line in lines)
    assert lines[-1] == "2 problems found"


@pytest.mark.parametrize(
    ("form", "check"),
    [
        ("mermaid", lambda text: text.startswith("flowchart LR")),
        ("dot", lambda text: text.startswith('digraph "demo"')),
        ("json", lambda text: json.loads(text)["order"] == [["Build.Compile"], ["Test.Unit"]]),
    ],
)
def test_graph_formats(tmp_path, cli, form, check):
    status, out, _ = cli("graph", str(write(tmp_path, GOOD)), "--format", form)
    assert status == 0
    assert check(out)


def test_graph_defaults_to_mermaid(tmp_path, cli):
    status, out, _ = cli("graph", str(write(tmp_path, GOOD)))
    assert status == 0
    assert out.startswith("flowchart LR")


def test_missing_file(tmp_path, cli):
    status, _, err = cli("validate", str(tmp_path / "nope.py"))
    assert status == 2
    assert err == f"pipelinekit: error: {tmp_path / 'nope.py'}: no such file\n"


def test_directory_and_non_python_file(tmp_path, cli):
    assert cli("validate", str(tmp_path))[2].endswith(
        "is a directory; give the Python file that defines the pipeline\n"
    )
    text = tmp_path / "pipeline.yaml"
    text.write_text("stages: []")
    assert "is not a Python file" in cli("validate", str(text))[2]


def test_syntax_error_names_the_line(tmp_path, cli):
    path = write(tmp_path, "import pipelinekit as pk\n\npipeline = pk.Pipeline(\n")
    status, _, err = cli("validate", str(path))
    assert status == 2
    assert f"{path}:3: syntax error" in err


def test_an_exception_while_loading_names_the_line(tmp_path, cli):
    path = write(tmp_path, "x = 1\nraise RuntimeError('no credentials')\n")
    status, _, err = cli("validate", str(path))
    assert status == 2
    assert err.strip() == (
        f"pipelinekit: error: {path}:2: loading the file raised RuntimeError: no credentials"
    )


def test_an_invalid_pipeline_at_import_is_reported_as_problems(tmp_path, cli):
    path = write(tmp_path, GOOD.replace('"Compile"', '"Com pile"'))
    status, _, err = cli("validate", str(path))
    assert status == 2
    assert "action name 'Com pile' contains ' '" in err


def test_no_pipeline_in_the_file(tmp_path, cli):
    status, _, err = cli("validate", str(write(tmp_path, "x = 1\n")))
    assert status == 2
    assert "defines no pk.Pipeline at module level" in err


def test_several_pipelines_need_a_name(tmp_path, cli):
    two = GOOD + "\nrelease = pk.Pipeline('release', pipeline.stages)\nsame = pipeline\n"
    path = write(tmp_path, two)
    status, _, err = cli("validate", str(path))
    assert status == 2
    assert "defines 2 pipelines (pipeline, release); choose one with" in err
    status, out, _ = cli("validate", f"{path}:release")
    assert status == 0
    assert "'release'" in out


def test_name_may_be_the_pipeline_name(tmp_path, cli):
    status, out, _ = cli("validate", f"{write(tmp_path, GOOD)}:demo")
    assert status == 0
    assert "'demo'" in out


def test_unknown_name_suggests_a_near_one(tmp_path, cli):
    status, _, err = cli("validate", f"{write(tmp_path, GOOD)}:pipline")
    assert status == 2
    assert "defines no pipeline called 'pipline'; did you mean 'pipeline'?" in err


def test_name_of_something_else(tmp_path, cli):
    status, _, err = cli("validate", f"{write(tmp_path, GOOD + 'helper = 3')}:helper")
    assert status == 2
    assert "'helper' is a int, not a pk.Pipeline" in err


def test_the_file_can_import_its_neighbours(tmp_path, cli):
    write(tmp_path, "STAGES_NAME = 'Build'\n", name="settings_for_pipeline.py")
    path = write(
        tmp_path,
        GOOD.replace('"Build"', "settings_for_pipeline.STAGES_NAME").replace(
            "import pipelinekit as pk", "import pipelinekit as pk\nimport settings_for_pipeline"
        ),
    )
    status, out, _ = cli("validate", str(path))
    assert status == 0, out


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["graph", "x.py", "--format", "png"])
    assert caught.value.code == 2
    assert "invalid choice: 'png'" in capsys.readouterr().err


def test_the_example_pipeline_validates(cli):
    status, out, _ = cli("validate", str(EXAMPLE))
    assert status == 0
    assert "'webapp'" in out


def test_python_dash_m_and_the_console_script(tmp_path):
    path = write(tmp_path, GOOD)
    by_module = subprocess.run(
        [sys.executable, "-m", "pipelinekit", "validate", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert by_module.returncode == 0, by_module.stderr
    script = Path(sys.executable).with_name("pipelinekit")
    by_script = subprocess.run(
        [str(script), "graph", str(path), "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert by_script.returncode == 0, by_script.stderr
    assert json.loads(by_script.stdout)["pipeline"] == "demo"
    broken = subprocess.run(
        [str(script), "validate", str(tmp_path / "missing.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert broken.returncode == 2
    assert "Traceback" not in broken.stderr


def test_run_no_cache_runs_a_cached_action_again(tmp_path, cli):
    """``--no-cache`` (Engine(use_cache=False)): an unchanged cache=True action runs anyway."""
    ledger = tmp_path / "ledger.txt"
    (tmp_path / "p.py").write_text(
        "import pipelinekit as pk\n"
        "pipeline = pk.Pipeline('p', [pk.Stage('S', [pk.Action('A', "
        f"pk.shell('echo ran >> {ledger}'), cache=True)])])\n"
    )
    store = str(tmp_path / "wd")
    for options in ((), (), ("--no-cache",)):
        assert cli("run", str(tmp_path / "p.py"), "--store", store, "--plain", *options)[0] == 0
    assert ledger.read_text().split() == ["ran", "ran"]  # the second run was a cache hit
