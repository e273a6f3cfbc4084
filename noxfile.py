"""Project tasks: ``nox -s tests``, ``nox -s lint``, ``nox -s typing``."""

import os

import nox

#: The Pythons the package claims (pyproject's classifiers); tests run on each one found.
PYTHONS = ["3.11", "3.12", "3.13"]

nox.options.sessions = ["tests", "lint", "typing"]
# CI must test every Python the package claims; a developer's machine may have only one.
nox.options.error_on_missing_interpreters = bool(os.environ.get("CI"))


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the whole test suite (extra arguments go to pytest)."""
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff's checks and formatting."""
    session.install("ruff==0.17.6")  # pinned: formatting rules change between releases
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict over the package."""
    session.install("-e", ".[dev]")
    session.run("mypy", "--strict", "pipelinekit")
