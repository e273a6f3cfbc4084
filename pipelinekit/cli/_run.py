"""``pipelinekit run``: run a pipeline from a file, showing its progress."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import anyio

from pipelinekit._model._pipeline import Pipeline
from pipelinekit._runtime._collector import collector_tuned_for_a_run
from pipelinekit._runtime._engine import Engine, Execution
from pipelinekit._runtime._results import RunResult
from pipelinekit.cli._user import current_user
from pipelinekit.providers._log import LOGGER_NAME
from pipelinekit.stores import SQLiteStore

__all__ = ["parse_variables", "run_pipeline"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class BadVariableError(ValueError):
    """A ``--var`` that is not ``NAME=VALUE``."""


def parse_variables(items: Sequence[str]) -> dict[str, str]:
    """``["env=prod", "n=1"]`` -> ``{"env": "prod", "n": "1"}``."""
    values: dict[str, str] = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name:
            msg = f"--var {item!r} is not NAME=VALUE"
            raise BadVariableError(msg)
        values[name] = value
    return values


@contextlib.contextmanager
def show_log(err: TextIO, *, verbose: bool) -> Iterator[None]:
    """Show pipelinekit's log on ``err``: warnings and worse, everything when ``verbose``.

    The command owns its process, so it configures the log the library leaves alone: the
    standard library's ``"pipelinekit"`` logger, where the library logs when structlog is not
    configured (see ``providers/_log.py``). Not structlog: importing it costs a tenth of a
    second, and nothing needs it here. Undone at the end, for ``main()`` called in-process.
    """
    logger = logging.getLogger(LOGGER_NAME)
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    saved = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logger.propagate = False  # shown here, not again by a root handler
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def make_view(pipeline: Pipeline, out: TextIO, *, plain: bool) -> Any:  # noqa: ANN401 - a view
    """A live view in a terminal (with rich installed), plain lines otherwise."""
    from pipelinekit.cli._view import LiveView, PlainView  # noqa: PLC0415 - loads rich lazily

    if not plain and out.isatty():
        try:
            from rich.console import Console  # noqa: PLC0415
        except ImportError:  # pragma: no cover - the cli extra brings rich
            sys.stderr.write(
                "pipelinekit: install rich (pip install 'pipelinekit[cli]') for live progress\n"
            )
        else:
            return LiveView(pipeline, Console(file=out))
    return PlainView(out)


async def _watch_interrupt(
    run_scope: anyio.CancelScope, own_scope: anyio.CancelScope, flags: dict[str, bool]
) -> None:
    with own_scope, anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            flags["interrupted"] = True
            run_scope.cancel()
            return


async def _run(
    pipeline: Pipeline,
    variables: dict[str, str],
    view: Any,  # noqa: ANN401 - a view
    *,
    max_concurrency: int | None,
    workdir: str | None,
    flags: dict[str, bool],
    holder: list[Execution],
    source: str | None,
) -> RunResult | None:
    execution: Execution | None = None
    async with anyio.create_task_group() as tasks:
        watcher = anyio.CancelScope()
        tasks.start_soon(_watch_interrupt, tasks.cancel_scope, watcher, flags)
        engine = Engine(max_concurrency=max_concurrency, workdir=workdir)
        async with engine:
            execution = await engine.start(
                pipeline, variables=variables, triggered_by=current_user(), source=source
            )
            holder.append(execution)
            # The view ends by itself with the execution's last event.
            tasks.start_soon(view.follow, execution)
            result = await execution.wait()
        watcher.cancel()
        return result
    # Cancelled (Ctrl-C): the scheduler recorded a Stopped result before giving up.
    return execution.result if execution is not None else None


def run_pipeline(
    pipeline: Pipeline,
    *,
    source: str | None = None,
    variables: dict[str, str],
    max_concurrency: int | None,
    workdir: str | None,
    plain: bool,
    verbose: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    """Run ``pipeline`` with progress on ``out``; return the exit status."""
    view = make_view(pipeline, out, plain=plain)
    flags = {"interrupted": False}
    holder: list[Execution] = []
    with show_log(err, verbose=verbose), collector_tuned_for_a_run():
        result = anyio.run(
            lambda: _run(
                pipeline,
                variables,
                view,
                max_concurrency=max_concurrency,
                workdir=workdir,
                flags=flags,
                holder=holder,
                source=source,
            )
        )
    view.finish(
        result, interrupted=flags["interrupted"], events=holder[0].recorded if holder else ()
    )
    if flags["interrupted"]:
        return EXIT_INTERRUPTED
    if result is None:  # pragma: no cover - only when cancelled before the start was recorded
        return EXIT_FAILED
    return EXIT_OK if result.succeeded else EXIT_FAILED


def resume_execution(
    execution_id: str,
    store_path: Path,
    pipeline: Pipeline | None,
    *,
    plain: bool,
    out: TextIO,
    err: TextIO,
    retry: tuple[str, bool] | None = None,
    variables: Mapping[str, str] | None = None,
) -> int:
    """Resume ``execution_id`` from the store at ``store_path``; return the exit status.

    With ``retry`` (a stage, and whether only its failed actions run) run that stage again.
    ``variables`` gives secret variables their values again.
    """
    store = SQLiteStore(store_path)

    async def main() -> tuple[Any, RunResult]:
        # The executions' folders sit beside the store, as the engine that ran them left them.
        engine = Engine(store=store, workdir=store_path.parent)
        async with engine:
            if retry is None:
                execution = await engine.resume(
                    execution_id, pipeline=pipeline, variables=variables
                )
            else:
                stage, failed_only = retry
                execution = await engine.retry_stage(
                    execution_id,
                    stage,
                    failed_only=failed_only,
                    pipeline=pipeline,
                    variables=variables,
                )
            view = make_view(execution.pipeline, out, plain=plain)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(view.follow, execution)
                result = await execution.wait()
            return view, result

    try:
        # The engine hands back errors of its body unwrapped (see Engine.__aexit__).
        with show_log(err, verbose=False), collector_tuned_for_a_run():
            view, result = anyio.run(main)
    finally:
        store.close()
    view.finish(result, interrupted=False)
    return EXIT_OK if result.succeeded else EXIT_FAILED
