"""pipelinekit's log: silent in a script that configured no logging, shown where the script's
structlog or logging configuration shows things, and always in the action's own log file; and
the costly modules a script may never need are not loaded by ``import pipelinekit``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

#: A release script's pipeline: one shell action. The action's log file is printed to a file of
#: its own, so that stdout and stderr hold only what pipelinekit itself printed.
SCRIPT = """
import pathlib
import pipelinekit as pk

pipeline = pk.Pipeline("release", [pk.Stage("Build", [pk.Action("Hello", pk.shell("echo hi"))])])
result = pk.run(pipeline, store=pk.MemoryStore(), workdir="wd")
assert result.succeeded, result
pathlib.Path("action.log").write_text(result.actions["Build.Hello"].log_path.read_text())
"""


def run_script(tmp_path, setup=""):
    code = textwrap.dedent(setup) + SCRIPT
    return subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )


def test_pk_run_prints_nothing_when_the_script_configured_no_logging(tmp_path):
    done = run_script(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == ""
    # The action's own log keeps every line.
    log = (tmp_path / "action.log").read_text()
    assert "[info] running argv=" in log
    assert "\nhi\n" in log


def test_warnings_stay_quiet_too_without_logging_configured(tmp_path):
    """Not even Python's last-resort handler prints pipelinekit's warnings to stderr."""
    code = (
        "from pipelinekit.providers._log import library_logger\n"
        "library_logger(execution_id='e1').warning('something odd', stage='S')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_pk_run_logs_where_the_scripts_logging_configuration_says(tmp_path):
    setup = """
    import logging, sys
    logging.basicConfig(
        level=logging.DEBUG, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s"
    )
    """
    done = run_script(tmp_path, setup)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    (running,) = [line for line in done.stderr.splitlines() if " running " in line]
    assert running.startswith("pipelinekit INFO running pipeline='release' execution_id=")
    assert "stage='Build' action='Hello' argv=['/bin/sh', '-c'," in running
    (output,) = [line for line in done.stderr.splitlines() if " output " in line]
    assert output.startswith("pipelinekit DEBUG output pipeline='release' execution_id=")
    assert output.endswith("stage='Build' action='Hello' stream='stdout' line='hi'")


def test_a_script_that_shows_warnings_only_sees_no_info_lines(tmp_path):
    setup = """
    import logging, sys
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    """
    done = run_script(tmp_path, setup)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_pk_run_logs_through_structlog_when_the_script_configured_it(tmp_path):
    setup = """
    import sys, structlog
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    """
    done = run_script(tmp_path, setup)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    running = next(line for line in lines if line["event"] == "running")
    assert running["level"] == "info"
    assert (running["pipeline"], running["stage"], running["action"]) == (
        "release",
        "Build",
        "Hello",
    )
    assert {"event": "output", "stream": "stdout", "line": "hi"}.items() <= next(
        line for line in lines if line["event"] == "output"
    ).items()
    assert "[info] running argv=" in (tmp_path / "action.log").read_text()


@pytest.mark.parametrize(
    "module",
    [
        "structlog",
        "rich",
        "sqlite3",
        "asyncio",
        "pipelinekit._runtime._engine",
        "pipelinekit.stores",
        "pipelinekit.cli",
    ],
)
def test_import_leaves_costly_modules_for_when_they_are_used(module, tmp_path):
    """A file that only declares a pipeline loads none of them (``pipelinekit validate``)."""
    code = f"import sys, pipelinekit\nassert {module!r} not in sys.modules, 'imported'\n"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_names_imported_on_first_use_are_listed_and_behave_as_the_others(tmp_path):
    code = (
        "import sys, pipelinekit as pk\n"
        "assert 'Plan' in dir(pk) and 'Plan' in pk.__all__ and 'run' in dir(pk)\n"
        "assert pk.Plan.__name__ == 'Plan' and pk.Plan.__module__ == 'pipelinekit'\n"
        "assert pk.Engine.__module__ == 'pipelinekit'\n"
        "from pipelinekit import Plan, SQLiteStore, run\n"
        "assert Plan is pk.Plan and run is pk.run and SQLiteStore is pk.stores.SQLiteStore\n"
        "try:\n"
        "    pk.no_such_name\n"
        "except AttributeError as error:\n"
        "    assert 'no_such_name' in str(error)\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
