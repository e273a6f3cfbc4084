"""Fixtures shared by the tests (pytest finds them; nothing is star-imported)."""

from __future__ import annotations

import sys

import pytest

from pipelinekit.cli import main


@pytest.fixture(autouse=True)
def restore_structlog():
    """Give every test structlog as it was at start: unconfigured.

    ``structlog.testing.capture_logs`` (and any test that configures structlog) leaves structlog
    configured when it ends, and a configured structlog is where pk.run sends its log (see
    ``providers/_log.py``): a test that ran after it would log through, and print, what it left.
    Imported only if a test imported it, as the library does.
    """
    yield
    structlog = sys.modules.get("structlog")
    if structlog is not None:
        structlog.reset_defaults()


@pytest.fixture
def anyio_backend():
    """pipelinekit runs on asyncio; anyio-marked tests use it."""
    return "asyncio"


@pytest.fixture
def workdir(tmp_path):
    """Where a test's executions keep artifacts, work folders and logs."""
    return tmp_path / "wd"


@pytest.fixture
def cli(capsys):
    """Run the command line in-process: ``status, out, err = cli("validate", path)``.

    It also checks that no traceback ever reaches the person.
    """

    def run(*args):
        capsys.readouterr()  # what ran before (structlog prints to stdout by default) is not ours
        status = main(list(args))
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        return status, captured.out, captured.err

    return run
