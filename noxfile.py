"""Project tasks: ``nox -s tests``, ``lint``, ``typing``; ``nox -s mutants`` is run by hand."""

import os

import nox

#: The Pythons the package claims (pyproject's classifiers); tests run on each one found.
PYTHONS = ["3.11", "3.12", "3.13"]

# mutants is left out on purpose: it takes minutes per module, so CI never runs it.
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


@nox.session
def mutants(session: nox.Session) -> None:
    """Sampled mutation testing: ``nox -s mutants -- MODULE [TESTS...] [--max N]``."""
    if not session.posargs:
        session.error("give the module, e.g. nox -s mutants -- pipelinekit/_model/_variables.py")
    session.install("-e", ".[dev,mutation]")
    session.run("python", "tools/mutants.py", *session.posargs)
