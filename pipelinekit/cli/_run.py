"""``pipelinekit run``: run a pipeline from a file, showing its progress."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, TextIO, TypeVar

import anyio
import anyio.abc
import attrs

from pipelinekit._model._declarations import Status
from pipelinekit._model._pipeline import Pipeline
from pipelinekit._runtime._collector import collector_tuned_for_a_run
from pipelinekit._runtime._engine import Engine, Execution
from pipelinekit._runtime._replay import ExecutionState
from pipelinekit._runtime._results import RunResult
from pipelinekit.cli._store import StoreLocation, store_option
from pipelinekit.cli._user import current_user
from pipelinekit.providers._host import (
    OWNER_VARIABLE,
    children_of,
    end_processes,
    group_members,
    process_tag,
    start_time,
    tagged,
)
from pipelinekit.providers._log import LOGGER_NAME
from pipelinekit.stores import SQLiteStore

__all__ = ["cannot_resume", "parse_variables", "resume_execution", "run_pipeline"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

T = TypeVar("T")


class BadVariableError(ValueError):
    """A ``--var`` that is not ``NAME=VALUE``."""


def parse_variables(items: Sequence[str]) -> dict[str, str]:
    """``["env=prod", "n=1"]`` -> ``{"env": "prod", "n": "1"}``."""
    values: dict[str, str] = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name:
            # The item itself is never echoed: it may be a secret given without its name.
            msg = "a --var is not NAME=VALUE (give each variable as --var NAME=VALUE)"
            raise BadVariableError(msg)
        if name in values:
            msg = f"--var {name}=... is given twice; give each variable once"
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


def make_view(pipeline: Pipeline, out: TextIO, *, plain: bool, option: str = "") -> Any:  # noqa: ANN401 - a view
    """A live view in a terminal (with rich installed), plain lines otherwise.

    ``option`` (`` --store PATH`` or nothing) goes into the commands its hints show.
    """
    from pipelinekit.cli._view import LiveView, PlainView  # noqa: PLC0415 - loads rich lazily

    if not plain and out.isatty():
        try:
            from rich.console import Console  # noqa: PLC0415
        except ImportError:  # pragma: no cover - the cli extra brings rich
            sys.stderr.write(
                "pipelinekit: install rich (pip install 'pipelinekit[cli]') for live progress\n"
            )
        else:
            return LiveView(pipeline, Console(file=out), option)
    return PlainView(out, option)


#: The signals that stop a run, and how its summary says so. A closed terminal or a dropped
#: ssh session (SIGHUP) stops the run cleanly too: the actions' processes, in sessions of their
#: own, would never hear of it and go on alone.
_STOPPED_BY: dict[signal.Signals, str] = {
    signal.SIGINT: "cancelled by Ctrl-C",
    signal.SIGTERM: "stopped by SIGTERM",
    signal.SIGHUP: "stopped by SIGHUP (the terminal closed)",
}


@attrs.define
class Interruption:
    """The signals (Ctrl-C, SIGTERM) that asked a command to stop, and what to do about them.

    The first cancels the run: running actions get SIGTERM and their grace period, and the
    execution ends ``Stopped``. The second SIGKILLs every process the run started, so the
    command ends at once however its actions treat SIGTERM. A third leaves at once.
    """

    first: int | None = None
    count: int = 0
    #: The tag prefix of the processes the run started (``execution/owner``), once known.
    tag: str | None = None

    @property
    def exit_status(self) -> int:
        """128 + the signal, as shells report it: 130 for Ctrl-C, 143 for SIGTERM, 129 for HUP."""
        return 128 + (self.first or signal.SIGINT)

    def describe(self) -> str | None:
        """What stopped the run, for its summary; ``None`` if nothing did."""
        if self.first is None:
            return None
        return _STOPPED_BY.get(signal.Signals(self.first), f"stopped by signal {self.first}")

    async def watch(self, run: anyio.CancelScope, err: TextIO) -> None:
        """Hear SIGINT and SIGTERM until cancelled (the command's end)."""
        with anyio.open_signal_receiver(*_STOPPED_BY) as signals:
            # The killing goes on beside the listening: a third signal is heard at once.
            async with anyio.create_task_group() as killing:
                await self._listen(signals, run, killing, err)

    async def _listen(
        self,
        signals: AsyncIterator[int],
        run: anyio.CancelScope,
        killing: anyio.abc.TaskGroup,
        err: TextIO,
    ) -> None:
        async for signum in signals:
            self.count += 1
            if self.first is None:
                self.first = signum
                run.cancel()
            elif self.count == 2:  # noqa: PLR2004 - the second signal
                err.write("pipelinekit: interrupted again: killing the running actions\n")
                err.flush()
                if self.tag is not None:
                    scan = partial(tagged, self.tag + "/")
                    killing.start_soon(partial(end_processes, scan, grace_period=0))
                killing.start_soon(partial(end_processes, _our_children, grace_period=0))
            else:
                err.write("pipelinekit: interrupted a third time: leaving now\n")
                err.flush()
                os._exit(self.exit_status)


def _our_children() -> dict[int, str]:
    """Live processes this command started by any means (see ``children_marked``).

    Those that cleared their environment are found too when they stayed in this command's
    process group and the command leads it (run from an interactive shell, as a job).
    """
    tag = os.environ.get(OWNER_VARIABLE)
    found = children_of(tag) if tag else {}
    me = os.getpid()
    started = start_time(me)
    if os.getpgrp() == me and started is not None:
        found.update(group_members({me: started}))
    return found


async def end_our_children(interruption: Interruption) -> None:
    """After a run a signal stopped: end what its actions started outside ``run_command``.

    Commands were ended with their actions; a Python action's own subprocesses were not, and
    a stopped run must not leave them running (nor a stage retry run beside them).
    """
    if interruption.first is not None:
        grace = 0.0 if interruption.count > 1 else _CHILDREN_GRACE
        await end_processes(_our_children, grace_period=grace)


#: How long a Python action's own processes get to end after SIGTERM when a run is stopped.
_CHILDREN_GRACE = 5.0


async def supervised(
    body: Callable[[Interruption], Awaitable[T]], interruption: Interruption, err: TextIO
) -> T | None:
    """Run ``body`` until it returns or a signal cancels it (then ``None``)."""
    async with anyio.create_task_group() as watching:
        run = anyio.CancelScope()
        watching.start_soon(interruption.watch, run, err)
        try:
            with run:
                return await body(interruption)
            await end_our_children(interruption)
        finally:
            watching.cancel_scope.cancel()
    return None


async def _run(
    pipeline: Pipeline,
    variables: dict[str, str],
    view: Any,  # noqa: ANN401 - a view
    *,
    max_concurrency: int | None,
    location: StoreLocation,
    holder: list[Execution],
    source: str | None,
    interruption: Interruption,
    from_stage: str | None,
    reuse: str | None,
    use_cache: bool,
) -> RunResult | None:
    # A database named on its own (--store x/other.db) is opened here; the usual one, the
    # engine makes (and makes its folder).
    store = (
        None if location.database == location.home / "state.db" else SQLiteStore(location.database)
    )
    engine = Engine(
        max_concurrency=max_concurrency, workdir=location.home, store=store, use_cache=use_cache
    )
    try:
        async with engine, anyio.create_task_group() as tasks:
            execution = await engine.start(
                pipeline,
                variables=variables,
                triggered_by=current_user(),
                source=source,
                from_stage=from_stage,
                reuse=reuse,
            )
            holder.append(execution)
            interruption.tag = f"{execution.id}/{engine.owner}"
            # The view ends by itself with the execution's last event.
            tasks.start_soon(view.follow, execution)
            return await execution.wait()
    finally:
        if store is not None:
            await anyio.to_thread.run_sync(store.close)
    return None  # pragma: no cover - the block returns or raises


@contextlib.contextmanager
def children_marked() -> Iterator[None]:
    """Tag this process's environment so that all it starts can be found after a crash.

    The command owns its process, so it may change its environment where a library may not:
    every process an action starts inherits the tag, however it was started (a Python action's
    own ``subprocess.run`` too), and a takeover after ``kill -9`` ends them (see ``_host``).
    The environment is as it was again afterwards (``main()`` may be called in-process).
    """
    tag = process_tag(os.getpid())
    before = os.environ.get(OWNER_VARIABLE)
    if tag is not None:
        os.environ[OWNER_VARIABLE] = tag
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(OWNER_VARIABLE, None)
        else:
            os.environ[OWNER_VARIABLE] = before


def run_pipeline(
    pipeline: Pipeline,
    *,
    source: str | None = None,
    variables: dict[str, str],
    max_concurrency: int | None,
    location: StoreLocation,
    plain: bool,
    verbose: bool,
    out: TextIO,
    err: TextIO,
    from_stage: str | None = None,
    reuse: str | None = None,
    use_cache: bool = True,
) -> int:
    """Run ``pipeline`` with progress on ``out``, recorded in the store at ``location``.

    With ``from_stage`` and ``reuse`` it starts at that stage, reusing the stages before it
    from execution ``reuse``; ``use_cache=False`` is ``--no-cache``. Returns the exit status.
    """
    view = make_view(pipeline, out, plain=plain, option=store_option(location))
    interruption = Interruption()
    holder: list[Execution] = []

    async def body(interruption: Interruption) -> RunResult | None:
        return await _run(
            pipeline,
            variables,
            view,
            max_concurrency=max_concurrency,
            location=location,
            holder=holder,
            source=source,
            interruption=interruption,
            from_stage=from_stage,
            reuse=reuse,
            use_cache=use_cache,
        )

    with show_log(err, verbose=verbose), collector_tuned_for_a_run(), children_marked():
        result = anyio.run(supervised, body, interruption, err)
    if result is None and holder:
        # Cancelled by a signal: the scheduler recorded a Stopped result before giving up.
        result = holder[0].result
    view.finish(
        result, interrupted=interruption.describe(), events=holder[0].recorded if holder else ()
    )
    if interruption.first is not None:
        return interruption.exit_status
    if result is None:  # pragma: no cover - only when cancelled before the start was recorded
        return EXIT_FAILED
    return EXIT_OK if result.succeeded else EXIT_FAILED


def cannot_resume(state: ExecutionState, option: str) -> str | None:
    """Why an ended execution is not resumed, naming the commands that go on from it.

    ``None`` when it has not ended (a resume may take it up). ``option`` (`` --store PATH`` or
    ``""``) goes into the commands.
    """
    if not state.ended:
        return None
    execution_id = state.execution_id
    if state.status is Status.SUCCEEDED:
        return f"execution {execution_id} succeeded; there is nothing to resume"
    how = "was stopped" if state.status is Status.STOPPED else f"ended {state.status}"
    why = f"execution {execution_id} {how}; resume takes up only an execution whose process died"
    stages = state.retryable_stages()
    if stages:
        commands = " or ".join(
            f"pipelinekit retry {execution_id} {shlex.quote(stage)}{option}" for stage in stages
        )
        which = ", ".join(repr(stage) for stage in stages)
        plural = "s" if len(stages) > 1 else ""
        return f"{why}: retry its stage{plural} {which} with: {commands}"
    waiting = [name for name, stage in state.stages.items() if stage.status is Status.NOT_STARTED]
    source = state.start.get("source") or "FILE"
    then = (
        f"; run what is left as a new execution that reuses what it made: pipelinekit run "
        f"{shlex.quote(str(source))} --from {shlex.quote(waiting[0])} --reuse {execution_id}"
        f"{option}"
        if waiting
        else ""
    )
    return f"{why}, and no stage of it failed or stopped, so none can be retried{then}"


def resume_execution(
    execution_id: str,
    location: StoreLocation,
    pipeline: Pipeline | None,
    *,
    plain: bool,
    out: TextIO,
    err: TextIO,
    retry: tuple[str, bool] | None = None,
    variables: Mapping[str, str] | None = None,
) -> int:
    """Resume ``execution_id`` from the store at ``location``; return the exit status.

    With ``retry`` (a stage, and whether only its failed actions run) run that stage again.
    ``variables`` gives secret variables their values again.
    """
    store = SQLiteStore(location.database)
    interruption = Interruption()
    holder: list[tuple[Any, Execution]] = []

    async def body(interruption: Interruption) -> RunResult | None:
        # The executions' folders sit beside the store, as the engine that ran them left them.
        engine = Engine(store=store, workdir=location.home)
        # What it did before, read while nobody runs it: the view starts from there (earlier
        # successes show as succeeded, the summary counts all its runs).
        earlier = await store.events(execution_id)
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
            interruption.tag = f"{execution.id}/{engine.owner}"
            view = make_view(execution.pipeline, out, plain=plain, option=store_option(location))
            view.catch_up(earlier)
            holder.append((view, execution))
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(view.follow, execution)
                return await execution.wait()
        return None  # pragma: no cover - the block returns or raises

    try:
        # The engine hands back errors of its body unwrapped (see Engine.__aexit__).
        with show_log(err, verbose=False), collector_tuned_for_a_run(), children_marked():
            result = anyio.run(supervised, body, interruption, err)
    finally:
        store.close()
    if not holder:  # interrupted before the execution was taken up
        err.write(
            f"pipelinekit: {interruption.describe() or 'interrupted'} before execution "
            f"{execution_id} was taken up: nothing of it runs here; resume it again\n"
        )
        return interruption.exit_status
    view, execution = holder[0]
    if result is None:
        result = execution.result
    view.finish(result, interrupted=interruption.describe(), events=execution.recorded)
    if interruption.first is not None:
        return interruption.exit_status
    if result is None:  # pragma: no cover - only when cancelled before anything was recorded
        return EXIT_FAILED
    return EXIT_OK if result.succeeded else EXIT_FAILED
