"""docs/recipes.md's recipes run as written: the release recipe releases a library made here."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "examples" / "release" / "pipeline.py"

PYPROJECT = """\
[build-system]
requires = ["setuptools>=70.1"]
build-backend = "setuptools.build_meta"

[project]
name = "tiny_lib"
version = "1.2.3"
description = "A library that adds."
requires-python = ">=3.11"

[tool.setuptools.packages.find]
where = ["src"]
"""


def sdist(folder: Path, *, test_body: str = "assert add(2, 3) == 5") -> Path:
    """An sdist of tiny_lib 1.2.3, as `python -m build --sdist` lays it out (one top folder)."""
    files = {
        "pyproject.toml": PYPROJECT,
        "src/tiny_lib/__init__.py": 'def add(a, b):\n    """Add."""\n    return a + b\n',
        "tests/test_add.py": f"from tiny_lib import add\n\n\ndef test_add():\n    {test_body}\n",
    }
    archive = folder / "tiny_lib-1.2.3.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(f"tiny_lib-1.2.3/{name}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return archive


def release(tmp_path: Path, archive: Path, index: Path) -> tuple[int, str]:
    """`pipelinekit run` the recipe in a process; approve it from another, as a maintainer does."""
    environment = {
        **os.environ,
        # The Python running the suite has pytest, ruff and setuptools: the recipe's tools.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "RELEASE_PYTHONS": sys.executable,
    }
    environment.pop("PIPELINEKIT_HOME", None)
    command = [
        sys.executable, "-m", "pipelinekit", "run", str(RELEASE), "--plain",
        "--var", f"sdist={archive}", "--var", f"index={index}",
    ]  # fmt: skip
    with subprocess.Popen(
        command,
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as run:
        watchdog = threading.Timer(240, run.kill)  # a bug must not hang the suite
        watchdog.start()
        try:
            assert run.stdout is not None
            seen: list[str] = []
            for line in run.stdout:
                seen.append(line)
                if "waiting for approval:" in line:
                    approve = line.split("waiting for approval: ")[1].split(" (or reject)")[0]
                    decided = subprocess.run(
                        [sys.executable, "-m", *approve.split()[:4], "--by", "maintainer"],
                        cwd=tmp_path,
                        env=environment,
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    assert decided.returncode == 0, decided.stderr
            return run.wait(timeout=60), "".join(seen)
        finally:
            watchdog.cancel()
            if run.poll() is None:
                run.kill()


def test_the_release_recipe_releases_a_library(tmp_path):
    index = tmp_path / "simple"
    status, output = release(tmp_path, sdist(tmp_path), index)
    assert status == 0, output
    # Published in the PEP 503 layout, and what was published installs and imports.
    [wheel] = (index / "tiny-lib").iterdir()
    assert wheel.name == "tiny_lib-1.2.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        assert "tiny_lib/__init__.py" in archive.namelist()
    assert "Publish tiny_lib 1.2.3?" in output  # the approval asked with the checked metadata
    assert "Check.Py1 tests: junit.xml: 1 tests, 0 failed" in output
    # The smoke test's own line, printed by the installed copy, is in the action's log.
    logs = subprocess.run(
        [sys.executable, "-m", "pipelinekit", "logs", "latest", "Publish.Smoke"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "tiny_lib 1.2.3" in logs.stdout


def test_a_failing_test_stops_the_release_before_the_approval(tmp_path):
    index = tmp_path / "simple"
    status, output = release(tmp_path, sdist(tmp_path, test_body="assert add(2, 2) == 5"), index)
    assert status == 1, output
    assert "waiting for approval" not in output
    assert not index.exists()
    # The failure names the failing command and shows pytest's own report (on stdout).
    assert "pytest" in output
    assert "test_add" in output
