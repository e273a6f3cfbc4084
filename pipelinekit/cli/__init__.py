"""The ``pipelinekit`` command line.

Exit status: 0 when all went well, 1 when a run failed, 2 for bad input (a missing or broken
file, an invalid pipeline, bad arguments, a store or folder that cannot be used), 130 for
Ctrl-C, 143 for SIGTERM, 70 for a bug. Problems print one per line, never as a traceback;
``--debug`` shows the traceback of an unexpected error. A name that starts with ``-`` is given
after ``--``: ``pipelinekit logs ID -- -Stage.-Action``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import NoReturn, TextIO

from pipelinekit._model._loader import LoadError, load_pipeline, source_of
from pipelinekit._model._pipeline import Pipeline
from pipelinekit._runtime._errors import plain
from pipelinekit._version import __version__
from pipelinekit.cli import _maintenance
from pipelinekit.cli._ids import UnknownExecutionError, resolve_execution
from pipelinekit.cli._store import NoStoreError, StoreLocation, find_store, store_option
from pipelinekit.exceptions import ExecutionError, PipelineDefinitionError, PipelineKitError
from pipelinekit.providers._commands import reference_notes

__all__ = ["entry", "locate_store", "main"]

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE

STORE_HELP = (
    "the store: its folder or its state.db (default: $PIPELINEKIT_HOME, else the nearest "
    ".pipelinekit/ from here up)"
)


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
    run = commands.add_parser("run", help="run a pipeline, showing its progress")
    run.add_argument("target", metavar="FILE[:NAME]", help=target_help)
    run.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a pipeline variable (repeatable)",
    )
    run.add_argument(
        "--max-concurrency",
        type=_positive_int,
        default=None,
        metavar="N",
        help="run at most N actions at once",
    )
    run.add_argument("--store", default=None, metavar="PATH", help=STORE_HELP)
    # The old name of --store for run, kept working (with a warning) for scripts that use it.
    run.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    run.add_argument(
        "--from",
        dest="from_stage",
        default=None,
        metavar="STAGE",
        help="start at STAGE, reusing the stages it depends on from --reuse ID",
    )
    run.add_argument(
        "--reuse",
        default=None,
        metavar="ID",
        help="the execution whose earlier stages --from reuses (an id, a prefix, latest)",
    )
    run.add_argument(
        "--no-cache",
        action="store_true",
        help="restore nothing from caches (cache=True actions run; pk.Cache folders start empty)",
    )
    run.add_argument("--plain", action="store_true", help="one line per event, even in a terminal")
    run.add_argument(
        "--verbose", action="store_true", help="show pipelinekit's structured log on stderr"
    )
    _execution_commands(commands)
    return parser


def _execution_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands about recorded executions: history, status, resume, retry, stop, logs."""
    store_help = STORE_HELP
    history = commands.add_parser("history", help="list past executions, newest first")
    history.add_argument("pipeline", nargs="?", metavar="PIPELINE", help="only this pipeline")
    history.add_argument("--limit", type=_positive_int, default=20, metavar="N", help="per page")
    history.add_argument("--page", type=_positive_int, default=1, metavar="K", help="page K")
    history.add_argument("--json", action="store_true", help="ListPipelineExecutions-like JSON")
    history.add_argument("--store", default=None, metavar="PATH", help=store_help)
    status = commands.add_parser("status", help="show an execution's stages and actions")
    status.add_argument("execution", metavar="ID")
    status.add_argument("--json", action="store_true", help="GetPipelineState-like JSON")
    status.add_argument("--store", default=None, metavar="PATH", help=store_help)
    resume = commands.add_parser("resume", help="take up an execution its process left unfinished")
    resume.add_argument("execution", metavar="ID")
    _run_again_options(resume, store_help)
    retry = commands.add_parser("retry", help="run a failed stage of an execution again")
    retry.add_argument("execution", metavar="ID")
    retry.add_argument("stage", metavar="STAGE")
    retry.add_argument(
        "--all-actions", action="store_true", help="run every action of the stage again"
    )
    _run_again_options(retry, store_help)
    stop = commands.add_parser("stop", help="stop an execution (here or in another process)")
    stop.add_argument("execution", metavar="ID")
    stop.add_argument("--abandon", action="store_true", help="cancel the running actions too")
    stop.add_argument("--reason", default="", help="why (kept with the execution)")
    stop.add_argument("--store", default=None, metavar="PATH", help=store_help)
    for verb in ("approve", "reject"):
        decide = commands.add_parser(
            verb, help=f"{verb} a manual approval waiting in an execution (here or elsewhere)"
        )
        decide.add_argument("execution", metavar="ID")
        decide.add_argument("action", metavar="STAGE.ACTION")
        decide.add_argument(
            "--by",
            default=None,
            metavar="NAME",
            help="who decides (default: your login name, said on stderr; never blank)",
        )
        decide.add_argument("--summary", default="", metavar="TEXT", help="why (kept with it)")
        decide.add_argument("--store", default=None, metavar="PATH", help=store_help)
    logs = commands.add_parser("logs", help="print an action's log")
    logs.add_argument("execution", metavar="ID")
    logs.add_argument("action", metavar="STAGE.ACTION")
    logs.add_argument(
        "--follow", "-f", action="store_true", help="go on printing until the action ends"
    )
    logs.add_argument("--store", default=None, metavar="PATH", help=store_help)
    _maintenance.add_commands(commands, store_help)


def _run_again_options(command: argparse.ArgumentParser, store_help: str) -> None:
    """What ``resume`` and ``retry`` both take: the pipeline's file, store, secrets, output."""
    command.add_argument(
        "target",
        nargs="?",
        metavar="FILE[:NAME]",
        help="the pipeline's file, when the execution did not record it",
    )
    command.add_argument("--store", default=None, metavar="PATH", help=store_help)
    command.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a secret variable's value again (the store never keeps secrets; repeatable)",
    )
    command.add_argument("--plain", action="store_true", help="one line per event")


def locate_store(args: argparse.Namespace, err: TextIO, *, create: bool = False) -> StoreLocation:
    """The store of a command, by the one rule every command follows (see ``_store``).

    ``run`` still takes ``--workdir``, the old name of ``--store``, with a warning on ``err``.
    """
    option = args.store
    old = getattr(args, "workdir", None)
    if old is not None:
        if option is not None:
            msg = "--workdir is the old name of --store; give only --store"
            raise BadArgumentsError(msg)
        print("pipelinekit: warning: --workdir is deprecated; use --store DIR", file=err)
        return find_store(old, create=create, folder=True)
    return find_store(option, create=create)


class BadArgumentsError(PipelineKitError):
    """Options that do not go together."""


def _store_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from pipelinekit.cli import _history  # noqa: PLC0415 - only store commands
    from pipelinekit.exceptions import StoreError  # noqa: PLC0415
    from pipelinekit.stores import SQLiteStore  # noqa: PLC0415

    try:
        location = locate_store(args, err)
    except (NoStoreError, BadArgumentsError) as error:
        print(f"pipelinekit: error: {error}", file=err)
        return EXIT_BAD_INPUT
    store = SQLiteStore(location.database)
    try:
        if getattr(args, "execution", None) is not None:
            args.execution = resolve_execution(store, args.execution)
        if args.command == "history":
            _history.history(store, args.pipeline, args.limit, args.page, out, as_json=args.json)
        elif args.command == "status":
            _history.status(
                store, args.execution, out, as_json=args.json, option=store_option(location)
            )
        elif args.command == "stop":
            _history.stop(store, args.execution, out, abandon=args.abandon, reason=args.reason)
        elif args.command in {"approve", "reject"}:
            _history.decide(
                store,
                args.execution,
                args.action,
                out,
                approved=args.command == "approve",
                by=args.by,
                summary=args.summary,
                err=err,
            )
        else:
            _history.logs(
                store,
                args.execution,
                args.action,
                out,
                follow=args.follow,
                option=store_option(location),
            )
    except (StoreError, ExecutionError, _history.NotFoundError, UnknownExecutionError) as error:
        print(f"pipelinekit: error: {error}", file=err)
        return EXIT_BAD_INPUT
    finally:
        store.close()
    return EXIT_OK


def _resume_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import anyio  # noqa: PLC0415 - only resume needs these

    from pipelinekit._runtime._replay import replay  # noqa: PLC0415
    from pipelinekit.cli._run import (  # noqa: PLC0415
        BadVariableError,
        cannot_resume,
        parse_variables,
        resume_execution,
    )
    from pipelinekit.stores import SQLiteStore  # noqa: PLC0415

    try:
        location = locate_store(args, err)
    except (NoStoreError, BadArgumentsError) as error:
        print(f"pipelinekit: error: {error}", file=err)
        return EXIT_BAD_INPUT
    pipeline = None
    if args.target:
        try:
            pipeline, _ = load_pipeline(args.target)
        except (LoadError, PipelineDefinitionError) as error:
            print(f"pipelinekit: error: {error}", file=err)
            return EXIT_BAD_INPUT
    try:
        retry = (args.stage, not args.all_actions) if args.command == "retry" else None
        looking = SQLiteStore(location.database)
        try:
            execution_id = resolve_execution(looking, args.execution)
            if args.command == "resume":
                # An ended execution is not the engine's to resume; the person needs to hear
                # which command goes on from it, with this store named.
                refusal = cannot_resume(
                    replay(anyio.run(looking.events, execution_id)), store_option(location)
                )
                if refusal is not None:
                    print(f"pipelinekit: error: {refusal}", file=err)
                    return EXIT_BAD_INPUT
        finally:
            looking.close()
        return resume_execution(
            execution_id,
            location,
            pipeline,
            plain=args.plain,
            out=out,
            err=err,
            retry=retry,
            variables=parse_variables(args.var),
        )
    except (
        BadVariableError,
        ExecutionError,
        LoadError,
        PipelineDefinitionError,
        UnknownExecutionError,
    ) as error:
        print(f"pipelinekit: error: {error}", file=err)
        return EXIT_BAD_INPUT


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"must be a whole number >= 1 (got {text!r})"
        raise argparse.ArgumentTypeError(msg)
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    Whatever goes wrong ends in one line on stderr and a documented exit status, never a
    traceback: 2 for a mistake the person can fix, 130 for Ctrl-C, 70 for a bug (``--debug``
    shows its traceback).
    """
    args = _parser().parse_args(argv)
    err: TextIO = sys.stderr
    try:
        return _main(args, sys.stdout, err)
    except BaseException as caught:
        # Errors from inside task groups come wrapped; the one that says what happened counts.
        error = plain(caught)
        if isinstance(error, KeyboardInterrupt):
            print("pipelinekit: interrupted", file=err)
            return EXIT_INTERRUPTED
        if isinstance(error, BrokenPipeError):
            # The reader went away (`| head`): nothing more to say, and nowhere to say it.
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_BROKEN_PIPE
        if isinstance(error, PipelineKitError):
            print(f"pipelinekit: error: {_one_line(error)}", file=err)
            return EXIT_BAD_INPUT
        if isinstance(error, OSError):
            # The person's environment: a folder that is a file, a disk that is full.
            where = f" ({error.filename})" if error.filename else ""
            print(f"pipelinekit: error: {error.strerror or error}{where}", file=err)
            return EXIT_BAD_INPUT
        if isinstance(error, SystemExit):
            raise error from None  # an exit asked for: Python reports its status, no traceback
        if args.debug:
            raise  # a bug the person asked to see whole
        if not isinstance(error, Exception):
            raise error from error.__cause__  # a cancellation: never the person's doing
        print(
            f"pipelinekit: internal error: {type(error).__name__}: {_one_line(error)} "
            "(this is a bug in pipelinekit; run with --debug for the traceback and report it)",
            file=err,
        )
        return EXIT_INTERNAL


def entry() -> NoReturn:
    """The ``pipelinekit`` program: ``main()``, then exit with its status.

    A plain Python function still running when its action was cancelled (a timeout, a stop,
    Ctrl-C) goes on in its thread, for threads cannot be stopped; Python would wait for it at
    exit, so the program says so and leaves without it.
    """
    # Until a run listens for signals itself, SIGTERM and SIGHUP (while a pipeline file loads,
    # say) end the program with their own message and status, not silently.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stopped)
    status = main()
    left = _threads_left()
    if left:
        sys.stderr.write(
            f"pipelinekit: {len(left)} Python action thread(s) still running after their "
            "action ended (threads cannot be stopped); leaving without them\n"
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


#: How long threads that are ending anyway get to end before the program leaves without them.
_THREADS_GRACE = 1.0


def _threads_left() -> list[threading.Thread]:
    """Threads still running once those already on their way out have had a moment to end.

    anyio's idle worker threads are told to stop when the event loop closes, but they may still
    be alive a moment later: they are waited for briefly, so only a stuck action is reported.
    """
    deadline = time.monotonic() + _THREADS_GRACE
    left = []
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            left.append(thread)
    return left


def _stopped(signum: int, _frame: object) -> NoReturn:
    name = signal.Signals(signum).name
    sys.stderr.write(f"pipelinekit: stopped by {name}\n")
    sys.stderr.flush()
    os._exit(128 + signum)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _main(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:  # noqa: PLR0911 - one per command family
    if args.command in {"cache", "gc"}:
        return _maintenance.main(args, out, err)
    if args.command in {"history", "status", "logs", "stop", "approve", "reject"}:
        return _store_command(args, out, err)
    if args.command in {"resume", "retry"}:
        return _resume_command(args, out, err)
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
    if args.command == "run":
        return _run_command(args, pipeline, source_of(pipeline, path), out, err)
    if args.command == "validate":
        groups = plan.order()
        print(
            f"ok: pipeline {pipeline.name!r} in {path} is valid: {len(pipeline.stages)} stages, "
            f"{len(plan.actions)} actions in {len(groups)} parallel steps",
            file=out,
        )
        for note in reference_notes(pipeline):
            print(note, file=out)
    else:
        render = {"mermaid": plan.to_mermaid, "dot": plan.to_dot, "json": plan.to_json}
        text = render[args.format]()
        out.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


def _run_command(
    args: argparse.Namespace, pipeline: Pipeline, source: str, out: TextIO, err: TextIO
) -> int:
    from pipelinekit._runtime._run_variables import resolve_run_variables  # noqa: PLC0415 - only `run` needs it
    from pipelinekit.cli._run import BadVariableError, parse_variables, run_pipeline  # noqa: PLC0415

    try:
        location = locate_store(args, err, create=True)
        variables = parse_variables(args.var)
        reuse = _reused_execution(args, location)
        if reuse is None:
            resolve_run_variables(pipeline, variables)
        # else the engine checks them against what the reused execution ran with
    except (
        BadVariableError,
        ExecutionError,
        BadArgumentsError,
        NoStoreError,
        UnknownExecutionError,
    ) as error:
        print(f"pipelinekit: error: {error}", file=err)
        return EXIT_BAD_INPUT
    return run_pipeline(
        pipeline,
        source=source,
        variables=variables,
        max_concurrency=args.max_concurrency,
        location=location,
        from_stage=args.from_stage,
        reuse=reuse,
        use_cache=not args.no_cache,
        plain=args.plain,
        verbose=args.verbose,
        out=out,
        err=err,
    )


def _reused_execution(args: argparse.Namespace, location: StoreLocation) -> str | None:
    """The full id ``--reuse`` names in the run's store (``None`` without ``--from``)."""
    from pipelinekit.stores import SQLiteStore  # noqa: PLC0415 - only --reuse needs it

    if (args.from_stage is None) != (args.reuse is None):
        msg = "--from and --reuse go together: --from STAGE --reuse ID"
        raise BadArgumentsError(msg)
    if args.reuse is None:
        return None
    if not location.exists:
        msg = f"no store at {str(location.database)!r} to reuse execution {args.reuse!r} from"
        raise NoStoreError(msg)
    store = SQLiteStore(location.database)
    try:
        return resolve_execution(store, args.reuse)
    finally:
        store.close()
