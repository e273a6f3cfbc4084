"""The ``pipelinekit`` command line.

Exit status: 0 when all went well, 2 for bad input (a missing or broken file, an invalid
pipeline, bad arguments). Problems print one per line, never as a traceback; ``--debug`` shows
the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from pipelinekit._version import __version__
from pipelinekit.cli._load import LoadError, load_pipeline
from pipelinekit.exceptions import PipelineDefinitionError

__all__ = ["main"]

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipelinekit",
        description="Declare, check and run CI/CD pipelines written in Python.",
    )
    parser.add_argument("--version", action="version", version=f"pipelinekit {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of unexpected errors"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    target_help = (
        "a Python file defining a pipeline, optionally with :NAME to pick one of several "
        "(e.g. pipeline.py:release)"
    )
    validate = commands.add_parser(
        "validate", help="check a pipeline definition and report every problem"
    )
    validate.add_argument("target", metavar="FILE[:NAME]", help=target_help)
    graph = commands.add_parser("graph", help="print a pipeline's execution graph")
    graph.add_argument("target", metavar="FILE[:NAME]", help=target_help)
    graph.add_argument(
        "--format",
        choices=("mermaid", "dot", "json"),
        default="mermaid",
        help="output format (default: mermaid)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = _parser().parse_args(argv)
    out: TextIO = sys.stdout
    err: TextIO = sys.stderr
    try:
        pipeline, path = load_pipeline(args.target)
        plan = pipeline.compile()
    except LoadError as error:
        print(f"pipelinekit: error: {error}", file=err)
        return EXIT_BAD_INPUT
    except PipelineDefinitionError as error:
        for problem in error.problems:
            print(f"{args.target}: error: {problem}", file=err)
        count = len(error.problems)
        print(f"{count} problem{'s' if count > 1 else ''} found", file=err)
        return EXIT_BAD_INPUT
    except Exception as error:
        if args.debug:
            raise
        print(
            f"pipelinekit: internal error: {type(error).__name__}: {error} "
            "(this is a bug in pipelinekit; run with --debug for the traceback and report it)",
            file=err,
        )
        return EXIT_INTERNAL
    if args.command == "validate":
        groups = plan.order()
        print(
            f"ok: pipeline {pipeline.name!r} in {path} is valid: {len(pipeline.stages)} stages, "
            f"{len(plan.actions)} actions in {len(groups)} parallel steps",
            file=out,
        )
    else:
        render = {"mermaid": plan.to_mermaid, "dot": plan.to_dot, "json": plan.to_json}
        text = render[args.format]()
        out.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK
