"""``ActionContext``: what a provider gets to do its work, and the action's log file.

Everything a provider writes through the context (log lines, command output, error messages,
variables) passes through the execution's ``Masker`` first, so registered secrets never reach
the log file, the structured log, events or results.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import anyio

from pipelinekit._model._declarations import Status
from pipelinekit._model._secrets import Masker, secret_problem
from pipelinekit._thread import WorkerThread
from pipelinekit.exceptions import ActionFailed
from pipelinekit.providers._action_files import FileRead, read_regular
from pipelinekit.providers._clock import Clock, SystemClock
from pipelinekit.providers._decisions import Approvals
from pipelinekit.providers._failure import CommandFailed, CommandFailure, cut_at
from pipelinekit.providers._host import ProcessRecord
from pipelinekit.providers._process import CommandResult, run_process

__all__ = ["MAX_SUMMARY_BYTES", "SUMMARY_FILE", "ActionContext", "ActionLog", "LogFile"]

_T = TypeVar("_T")
_VARIABLE_NAME = re.compile(r"[A-Za-z0-9@_\-]{1,128}")
_MAX_VARIABLE_VALUE = 122_880  # CodePipeline's limit for all output variables of one action
#: The file in an action's ``workdir`` that ``$PK_SUMMARY`` names.
SUMMARY_FILE = ".pk-summary.md"
#: How much of an action's summary is kept; more is cut, saying so. Results, events and the
#: store keep it, so it stays small (GitHub keeps 1 MiB of a step's summary; a pipeline's
#: summary shows every action's).
MAX_SUMMARY_BYTES = 64 * 1024


def summary_text(read: FileRead, masker: Masker) -> str | None:
    """The summary ``read`` gave, masked, then cut to ``MAX_SUMMARY_BYTES``.

    Masked before it is cut: cut first, a secret standing across the cut would keep its start.
    The read took ``masker.longest`` characters (at most 4 bytes each) more than is kept, so
    every secret starting in what is kept is whole in what was read.
    """
    if not read.data:
        return None
    text = read.data.decode("utf-8", "replace")
    if read.complete:
        masked = masker.mask(text)
    else:
        masked = masker.mask_through(text, max(0, len(text) - masker.longest))
    encoded = masked.encode("utf-8")
    cut = not read.complete
    if len(encoded) > MAX_SUMMARY_BYTES:
        # The characters whole within the byte limit, less a mask the limit would cut.
        kept = len(encoded[:MAX_SUMMARY_BYTES].decode("utf-8", "ignore"))
        masked = masked[: cut_at(masked, kept)]
        cut = True
    masked = masked.rstrip()
    if cut:
        masked += f"\n\n… (cut: a summary keeps its first {MAX_SUMMARY_BYTES:,} bytes)"
    return masked or None


def summary_limit(masker: Masker) -> int:
    """How much of a summary file to read: what is kept, and room for a secret across the cut."""
    return MAX_SUMMARY_BYTES + 4 * masker.longest


class LogFile:
    """An action's log file, written from worker threads so the event loop never blocks.

    Lines logged from synchronous code are queued and written with the next batch. ``header``
    is written before the first line, and only if a line comes: an action that logs nothing
    costs no file.
    """

    def __init__(
        self,
        directory: Path,
        name: str,
        masker: Masker,
        header: str | Callable[[], str] | None = None,
        files: WorkerThread | None = None,
    ) -> None:
        """Log to ``directory/name`` (created on first write), masking with ``masker``.

        ``header`` may be a function: it is only called if a line is ever written. ``files``
        is the thread that writes (default: anyio's worker threads).
        """
        self._files = files
        self._directory = directory
        self._name = name
        self.written = False
        self._masker = masker
        self._queued: list[str] = []
        self._header = header
        # One batch is written at a time; lines that come meanwhile go with the next one.
        self._writing = False
        self._written_batch: anyio.Event | None = None

    @property
    def path(self) -> Path:
        """The log file's path (the file exists once ``written``)."""
        return self._directory / self._name

    @property
    def pending(self) -> bool:
        """Whether lines wait to be written."""
        return bool(self._queued)

    def queue(self, line: str) -> None:
        """Add a line to be written with the next batch (for synchronous callers)."""
        self._queued.append(self._masker.mask(line))

    async def write(
        self, lines: Sequence[str], *, before: Callable[[], object] | None = None
    ) -> None:
        """Append ``lines`` (after anything queued), masked, with the header before the first.

        While a batch is being written, lines that come are queued and the writer takes them
        with its next batch, so a chatty command costs one worker-thread trip per batch, not
        one per chunk of output. ``flush`` waits for everything. ``before`` is a blocking call
        to make on the same trip, before the lines are written (such as making a folder).
        """
        self._queued.extend(self._masker.mask(line) for line in lines)
        if self._writing:
            if before is None:
                return  # the write in flight takes them next
            await self._writer_done()
        self._writing = True
        try:
            while self._queued or before is not None:
                batch, self._queued = self._queued, []
                header = self._header
                if header is not None and batch:
                    batch.insert(0, header() if callable(header) else header)
                    self._header = None
                try:
                    await self._keep(batch, before)
                except BaseException:
                    # Not written (cancelled before the trip): the lines wait for the next.
                    self._queued[:0] = batch
                    raise
                before = None
        finally:
            self._writing = False
            if self._written_batch is not None:
                self._written_batch.set()
                self._written_batch = None

    async def flush(self) -> None:
        """Return once every line written or queued so far is in the file."""
        await self._writer_done()
        await self.write(())

    async def _writer_done(self) -> None:
        while self._writing:
            if self._written_batch is None:
                self._written_batch = anyio.Event()
            await self._written_batch.wait()

    async def call(self, work: Callable[[], _T]) -> _T:
        """Call the blocking ``work`` on the thread that writes the log (for small file work).

        The run's own thread costs a third of a trip through anyio's pool; ``work`` must be
        quick and never block (it holds up the log lines behind it, and cannot be cancelled).
        """
        if self._files is not None:
            return await self._files.run(work)
        return await anyio.to_thread.run_sync(work)

    async def _keep(self, batch: list[str], before: Callable[[], object] | None = None) -> None:
        work = partial(self._append, batch, before)
        if self._files is not None:
            await self._files.run(work)
        else:
            await anyio.to_thread.run_sync(work)
        if batch:
            self.written = True

    def _append(self, lines: list[str], before: Callable[[], object] | None = None) -> None:
        if before is not None:
            before()
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


class MemoryLogFile(LogFile):
    """A log kept in memory (``lines``), for runs that must not touch the disk."""

    lines: list[str]

    async def _keep(self, batch: list[str], before: Callable[[], object] | None = None) -> None:
        # Nothing is ever written to ``path`` (nor ``before`` called: no folder is made); the
        # lines stay here.
        del before
        if not hasattr(self, "lines"):
            self.lines = []
        self.lines.extend(batch)
        if batch:
            self.written = True


class ActionLog:
    """A structlog-style logger for providers: each call goes to structlog and the log file.

    ``ctx.log.info("deploying", cluster="prod")``; ``bind()`` adds context to later calls.
    """

    def __init__(self, logger: Any, file: LogFile, masker: Masker) -> None:  # noqa: ANN401 - any structlog logger
        """Wrap a bound structlog ``logger``."""
        self._logger = logger
        self._file = file
        self._masker = masker

    def bind(self, **values: Any) -> ActionLog:  # noqa: ANN401 - structlog accepts any value
        """A logger with ``values`` added to every event."""
        return ActionLog(self._logger.bind(**values), self._file, self._masker)

    def _emit(self, level: str, event: str, values: dict[str, Any]) -> None:
        event = self._masker.mask(event)
        masked = self._masker.mask_value(values)
        rendered = " ".join(f"{key}={value!r}" for key, value in masked.items())
        self._file.queue(f"[{level}] {event}" + (f" {rendered}" if rendered else ""))
        getattr(self._logger, level)(event, **masked)

    def debug(self, event: str, **values: Any) -> None:  # noqa: ANN401
        """Log at debug level."""
        self._emit("debug", event, values)

    def info(self, event: str, **values: Any) -> None:  # noqa: ANN401
        """Log at info level."""
        self._emit("info", event, values)

    def warning(self, event: str, **values: Any) -> None:  # noqa: ANN401
        """Log at warning level."""
        self._emit("warning", event, values)

    def error(self, event: str, **values: Any) -> None:  # noqa: ANN401
        """Log at error level."""
        self._emit("error", event, values)


class ActionContext:
    """What a provider's ``run(ctx)`` gets.

    - ``execution_id``, ``pipeline``, ``stage``, ``action``, ``attempt`` (from 1)
    - ``inputs`` / ``outputs``: artifact name -> directory (inputs are the producers' outputs,
      not to be changed; outputs start empty)
    - ``workdir``: a scratch directory of this action, empty at each attempt
    - ``configuration``: the action's configuration with ``#{...}`` resolved
    - ``variables``: every value known so far (``"variables.env"``, ``"Build.Version"``, ...)
    - ``log``: a structlog-style logger that also writes the action's log file
    - ``set_variable()``, ``run_command()``, ``secret()``
    - ``summary_path``: where to write a Markdown summary of the action (``$PK_SUMMARY`` for
      its commands), shown in the run's summary
    """

    def __init__(
        self,
        *,
        execution_id: str,
        pipeline: str,
        stage: str,
        action: str,
        attempt: int,
        inputs: Mapping[str, Path],
        outputs: Mapping[str, Path],
        work_root: Path,
        configuration: Mapping[str, str],
        variables: Mapping[str, str],
        log_file: LogFile,
        masker: Masker,
        environment: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        approvals: Approvals | None = None,
        triggered_by: str | None = None,
        report: Callable[[Status, dict[str, Any]], Awaitable[int]] | None = None,
        processes: ProcessRecord | None = None,
    ) -> None:
        """Built by the scheduler for each attempt; providers never build one."""
        self._processes = processes
        #: The run's clock (virtual in fake runs): use it for waits and timeouts.
        self.clock: Clock = clock if clock is not None else SystemClock()
        #: The engine's waiting approvals (``ManualApproval`` uses it).
        self.approvals = approvals if approvals is not None else Approvals()
        #: Who started the execution, when known.
        self.triggered_by = triggered_by
        #: The provider this attempt runs, with its references resolved.
        self.provider: object = None
        #: The attempt's cache key, for actions declared with ``cache=True``.
        self.cache_key: str | None = None
        self._report = report
        self.execution_id = execution_id
        self.pipeline = pipeline
        self.stage = stage
        self.action = action
        self.attempt = attempt
        self.inputs = dict(inputs)
        self.outputs = dict(outputs)
        self.configuration = configuration
        # A read-only view: copying every known value for each of thousands of actions would
        # make a run quadratic.
        self.variables: Mapping[str, str] = MappingProxyType(
            dict(variables) if not isinstance(variables, dict) else variables
        )
        self.log_file = log_file
        self.masker = masker
        self.output_variables: dict[str, str] = {}
        self._work_root = work_root
        self._workdir: Path | None = None
        self._environment = environment
        self._log: ActionLog | None = None
        # Whether the action was told where its summary goes: only then is it looked for.
        self._summary_told = False
        # The summary file as read with the provider's own files (see ``read_with_summary``).
        self._summary_read: FileRead | None = None
        #: The provider this attempt's declaration holds, references unresolved (``provider``
        #: is the one that runs): ``Commands`` shows a failed command as it was written.
        self.declared_provider: object = None
        #: JUnit XML reports the provider read (``TestReport``), for the result and events.
        self.reports: list[Any] = []

    @property
    def workdir_path(self) -> Path:
        """Where ``workdir`` is, without making it."""
        return self._work_root / f"{self.stage}.{self.action}"

    @property
    def workdir(self) -> Path:
        """A scratch directory of this action, empty at each attempt (made on first use)."""
        if self._workdir is None:
            path = self.workdir_path
            path.mkdir(parents=True, exist_ok=True)
            self._workdir = path
        return self._workdir

    async def _ready_workdir(self) -> Path:
        """``workdir``, made off the event loop if need be.

        It is made on the log file's thread, on the same trip as the lines queued for the log
        (a command's "running" line): one trip for both.
        """
        if self._workdir is None:
            path = self.workdir_path
            await self.log_file.write((), before=partial(path.mkdir, parents=True, exist_ok=True))
            self._workdir = path
        return self._workdir

    @property
    def summary_path(self) -> Path:
        """Where the action may write a Markdown summary (its folder is made on first use).

        The run's summary shows it (as GitHub shows a job summary), masked, at most
        ``MAX_SUMMARY_BYTES``. Commands get the path as ``$PK_SUMMARY``.
        """
        self._summary_told = True
        return self.workdir / SUMMARY_FILE

    async def read_summary(self) -> str | None:
        """The summary the action wrote (masked, then cut to ``MAX_SUMMARY_BYTES``), if any.

        Only a regular file is read (a FIFO, a symbolic link or a device there is a warning in
        the log): see ``_action_files``.
        """
        if not self._summary_told:
            return None  # never told where: nothing to look for, no trip to the disk
        read = self._summary_read
        if read is None:
            path, limit = self.workdir_path / SUMMARY_FILE, summary_limit(self.masker)
            # A small read that never blocks (see _action_files): on the log's thread.
            read = await self.log_file.call(partial(read_regular, path, limit))
        if read.problem is not None:
            self.log.warning("summary not read", path=SUMMARY_FILE, why=read.problem)
        return summary_text(read, self.masker)

    async def read_with_summary(self, work: Callable[[], _T]) -> _T:
        """Call the blocking ``work`` on the log's thread, reading the summary on the same trip.

        A provider that reads small files of its own once it ends (``Commands``: the command
        note, the output variables) reads them this way: one trip instead of two, and
        ``read_summary`` then needs none. ``work`` must be quick and never block (see
        ``LogFile.call``).
        """
        if not self._summary_told:
            return await self.log_file.call(work)
        path, limit = self.workdir_path / SUMMARY_FILE, summary_limit(self.masker)

        def both() -> tuple[_T, FileRead]:
            return work(), read_regular(path, limit)

        result, self._summary_read = await self.log_file.call(both)
        return result

    @property
    def log(self) -> ActionLog:
        """A structlog-style logger bound to this action; it also writes the log file."""
        if self._log is None:
            # pipelinekit's logger is silent unless the application configured structlog or
            # logging (see _log.py); the log file gets every line regardless. Imported here:
            # many actions never log.
            from pipelinekit.providers._log import library_logger  # noqa: PLC0415

            logger = library_logger(
                pipeline=self.pipeline,
                execution_id=self.execution_id,
                stage=self.stage,
                action=self.action,
            )
            self._log = ActionLog(logger, self.log_file, self.masker)
        return self._log

    @property
    def log_path(self) -> Path:
        """The action's log file."""
        return self.log_file.path

    def set_variable(self, name: str, value: str) -> None:
        """Set an output variable, referable later as ``#{Namespace.name}``."""
        if not isinstance(name, str) or not _VARIABLE_NAME.fullmatch(name):
            msg = f"output variable name {name!r} must be 1-128 letters, digits, '@', '_' or '-'"
            raise ActionFailed(msg)
        if not isinstance(value, str):
            msg = f"output variable {name!r} must be a string (got {type(value).__name__})"
            raise ActionFailed(msg)
        self.output_variables[name] = value
        total = sum(len(k) + len(v) for k, v in self.output_variables.items())
        if total > _MAX_VARIABLE_VALUE:
            msg = f"output variables of this action exceed {_MAX_VARIABLE_VALUE} characters"
            raise ActionFailed(msg)

    async def report_approval(self, state: Status, **detail: Any) -> int | None:  # noqa: ANN401 - any detail
        """Record an approval state change (``WaitingForApproval``, then the decision).

        It becomes an event of type ``"approval"`` for this action, written before the call
        returns; while it waits, the action's status is ``WaitingForApproval``. Returns the
        event's sequence number (the request's token), or ``None`` outside a run.
        """
        if self._report is None:
            return None
        return await self._report(state, detail)

    def secret(self, name: str) -> str:
        """The secret ``name`` (from the environment), registered so it is masked everywhere."""
        value = self._base_environment().get(name)
        if value is None:
            msg = f"secret {name!r} is not set; set the environment variable {name} for the run"
            raise ActionFailed(msg)
        problem = secret_problem(value)
        if problem is not None:
            msg = f"secret {name!r} (the environment variable {name}) {problem}"
            raise ActionFailed(msg)
        self.masker.add(value)
        return value

    def add_secret(self, value: str) -> None:
        """Register ``value`` as a secret: masked in logs, errors, events and the store.

        Its printed forms (base64, URL- and JSON-escaped, hex) are masked too, and each string
        of a JSON object or array. A value too short to mask (fewer than ``MIN_SECRET_LENGTH``
        characters), empty or blank fails the action with ``ActionFailed``.
        """
        problem = secret_problem(value)
        if problem is not None:
            msg = f"ctx.add_secret(): the value {problem}"
            raise ActionFailed(msg)
        self.masker.add(value)

    def _base_environment(self) -> Mapping[str, str]:
        return os.environ if self._environment is None else self._environment

    def environment(self) -> dict[str, str]:
        """The environment commands of this action get: the process's plus ``PK_*`` values."""
        env = dict(self._base_environment())
        env.update(self._own_environment())
        return env

    def _own_environment(self) -> dict[str, str]:
        """The ``PK_*`` values of this attempt."""
        env = {
            "PK_EXECUTION_ID": self.execution_id,
            "PK_PIPELINE": self.pipeline,
            "PK_STAGE": self.stage,
            "PK_ACTION": self.action,
            "PK_ATTEMPT": str(self.attempt),
            "PK_WORKDIR": str(self.workdir_path),
            "PK_SUMMARY": str(self.workdir_path / SUMMARY_FILE),
        }
        self._summary_told = True
        for name, path in self.inputs.items():
            env[f"PK_INPUT_{name}"] = str(path)
        for name, path in self.outputs.items():
            env[f"PK_OUTPUT_{name}"] = str(path)
        return env

    def _command_environment(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        env = self.environment()
        if extra:
            env.update(extra)
        return env

    async def run_command(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        check: bool = True,
        grace_period: float = 10.0,
        capture: bool = False,
    ) -> CommandResult:
        """Run ``argv`` (a list; no shell) and stream its output into the log.

        The command runs in ``workdir`` (or ``cwd``) with ``environment()`` plus ``env``, in
        its own process group: cancelling the action ends the whole group (SIGTERM, then
        SIGKILL after ``grace_period`` seconds). With ``check`` a non-zero exit fails the action
        with ``CommandFailed``: the exit status (or the signal, by name) and the last lines of
        stdout and stderr as they came; with ``capture`` the result holds all of stdout.
        """
        if isinstance(argv, str):
            msg = "run_command takes a list of arguments, not a string; no shell is involved"
            raise TypeError(msg)
        environment = self._command_environment(env)
        logger = self.log._logger  # noqa: SLF001 - same module family; avoids double file writes

        async def sink(stream: str, lines: list[str]) -> None:
            await self.log_file.write(lines)
            for line in lines:
                logger.debug("output", stream=stream, line=self.masker.mask(line))

        # On record before the command starts: on the trip that makes the work folder, or a
        # trip of its own when there is no folder to make.
        self.log.info("running", argv=list(argv))
        if cwd is None and self._workdir is None:
            cwd = await self._ready_workdir()
        else:
            await self.log_file.flush()
        processes = self._processes
        prefix = processes.tag if processes is not None else self.execution_id
        result = await run_process(
            argv,
            cwd=cwd or self.workdir_path,
            env=environment,
            sink=sink,
            grace_period=grace_period,
            capture=capture,
            tag=f"{prefix}/{uuid.uuid4().hex}",
            started=processes.started if processes is not None else None,
        )
        if check and result.returncode != 0:
            failure = CommandFailure.of_returncode(
                result.returncode, output_tail=result.output_tail, mask=self.masker.mask
            )
            raise CommandFailed(failure)
        return result
