"""Modules only some pipelines need are loaded when used, not with pipelinekit: archives
(tarfile, zipfile), downloads (httpx), JUnit reports (expat)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PIPELINE = """\
import pipelinekit as pk
pipeline = pk.Pipeline("one", [pk.Stage("S", [pk.Action("A", pk.shell("true"))])])
"""
COSTLY = ["tarfile", "zipfile", "httpx", "pyexpat", "pipelinekit.providers._unpack"]


@pytest.mark.parametrize("module", COSTLY)
def test_importing_pipelinekit_loads_none_of_them(module, tmp_path):
    code = f"import sys, pipelinekit\nassert {module!r} not in sys.modules, 'imported'\n"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_running_a_shell_action_loads_none_of_them(tmp_path):
    (tmp_path / "p.py").write_text(PIPELINE)
    code = (
        "import sys, pipelinekit as pk, runpy\n"
        "pipeline = runpy.run_path('p.py')['pipeline']\n"
        "assert pk.run(pipeline, workdir='wd').succeeded\n"
        f"print(sorted(m for m in {COSTLY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_command_line_loads_the_cache_folder_only_for_cache_and_gc(tmp_path):
    code = (
        "import sys, pipelinekit.cli\n"
        "assert 'pipelinekit._runtime._blobs' not in sys.modules, 'imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
