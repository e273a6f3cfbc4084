"""Project-level promises: the public surface, import without side effects, the quick start
contract, and the example application."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pipelinekit as pk

ROOT = Path(__file__).resolve().parent.parent


def isort_style(names):
    """Constants, then classes, then the rest, each alphabetically (ruff's RUF022 order)."""

    def key(name):
        kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
        return (kind, name)

    return sorted(names, key=key)


def test_all_is_sorted_and_complete():
    assert pk.__all__ == isort_style(pk.__all__)
    for name in pk.__all__:
        assert hasattr(pk, name), name
    # The command line, and modules imported on demand (testing), are not in the namespace.
    on_demand = {"annotations", "cli", "testing", "pytest_plugin"}
    # pytest rewrites asserts in its plugins' packages, adding "@py_..." names.
    public = {n for n in vars(pk) if not n.startswith(("_", "@"))} - on_demand
    assert public <= set(pk.__all__)


def test_public_modules_have_sorted_all():
    import pipelinekit.testing  # noqa: F401, PLC0415 - imported on demand, like users do

    for module in (pk.exceptions, pk.providers, pk.hooks, pk.stores, pk.executors, pk.testing):
        assert module.__all__ == isort_style(module.__all__)


def test_reprs_name_the_public_module():
    assert pk.Action.__module__ == "pipelinekit"
    assert repr(pk.Variable("v")).startswith("Variable(")
    assert pk.Pipeline.__module__ == "pipelinekit"


def test_every_public_name_has_a_docstring():
    for name in pk.__all__:
        obj = getattr(pk, name)
        if isinstance(obj, str):
            continue
        assert obj.__doc__, name


def test_import_has_no_side_effects(tmp_path):
    code = (
        "import logging, sys, structlog\n"
        "before = structlog.is_configured()\n"
        "import pipelinekit\n"
        "assert structlog.is_configured() == before\n"
        "assert not logging.getLogger().handlers\n"
        "assert 'pipelinekit.cli' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == ""
    assert list(tmp_path.iterdir()) == []


def test_package_ships_py_typed():
    assert (Path(pk.__file__).parent / "py.typed").exists()


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "the quick start has exactly one sh block"
    return [line for line in blocks[0].splitlines() if line.strip()]


def test_quick_start_has_two_commands_and_ci_runs_the_second():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert "examples/webapp/pipeline.py" in commands[0]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci


def test_changelog_has_an_unreleased_section():
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text()


def test_example_application_passes_its_own_tests():
    app = ROOT / "examples" / "webapp" / "app"
    result = subprocess.run(
        [sys.executable, "-m", "unittest", "discover", "-s", "tests"],
        cwd=app,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stderr


def test_example_application_builds_into_a_working_zipapp(tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    source = ROOT / "examples" / "webapp" / "app" / "webapp"
    subprocess.run(["cp", "-R", str(source), str(build)], check=True)
    target = tmp_path / "webapp.pyz"
    subprocess.run(
        [sys.executable, "-m", "zipapp", str(build), "-m", "webapp.cli:main", "-o", str(target)],
        check=True,
    )
    checked = subprocess.run(
        [sys.executable, str(target), "--check"], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stderr
    assert '"status": "ok"' in checked.stdout


def test_readme_example_runs_as_shown():
    readme = (ROOT / "README.md").read_text()
    example = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)[0]
    namespace: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    plan = namespace["plan"]
    assert isinstance(plan, pk.Plan)
    assert plan.order() == [["Build.Compile"], ["Test.Unit", "Test.Lint"], ["Deploy.Ship"]]
