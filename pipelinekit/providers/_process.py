"""Running a command in its own process group, streaming its output, ending it cleanly.

Each command starts a new session, so it and every process it starts share one process group.
When the command is cancelled (timeout, stop, Ctrl-C) the whole group gets SIGTERM, then SIGKILL
after a grace period; when it exits on its own, whatever it left running in the group is ended
the same way, so no orphan outlives its action. A process that starts a session of its own
leaves the group; on Linux it is found by the tag every command carries in its environment
(see ``_host``) and ended too.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import signal
import subprocess
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

import anyio
import attrs
from anyio.abc import ByteReceiveStream, Process

from pipelinekit.providers._host import TAG_VARIABLE, end_processes, tagged

__all__ = ["CommandResult", "LineSink", "run_process"]

#: Receives a batch of complete lines from "stdout" or "stderr".
LineSink = Callable[[str, list[str]], Awaitable[None]]
#: Hears of a started command's pid (which leads its process group).
StartedHook = Callable[[int], Awaitable[None]]

_POLL = 0.02
#: How long a command may run before pids could have wrapped past its own (seconds).
_WRAP_SAFE = 1.0


@attrs.frozen
class CommandResult:
    """How a command ended, with the last lines of its output."""

    argv: tuple[str, ...]
    returncode: int
    stdout_tail: tuple[str, ...] = ()
    stderr_tail: tuple[str, ...] = ()
    #: All of stdout, when the command ran with ``capture=True``.
    stdout: str | None = None
    #: The last lines of stdout and stderr together, in the order they were read.
    output_tail: tuple[str, ...] = ()


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    sink: LineSink | None = None,
    grace_period: float = 10.0,
    tail: int = 20,
    capture: bool = False,
    tag: str | None = None,
    started: StartedHook | None = None,
) -> CommandResult:
    """Run ``argv`` (no shell) to the end, streaming its output lines to ``sink``.

    With ``capture`` all of stdout is kept in the result too. ``tag`` goes into the command's
    environment as ``PK_PROCESS_TAG``: processes carrying it that are left when the command
    ends are ended with it, wherever they went. ``started`` hears of the command's pid as soon
    as it runs, to put it on record.
    """
    if tag is not None:
        env = {**(os.environ if env is None else env), TAG_VARIABLE: tag}
    tails = {"stdout": deque[str](maxlen=tail), "stderr": deque[str](maxlen=tail)}
    # Both streams' lines, as they come: a test runner's failures are on stdout, a package
    # manager's warnings on stderr, and the fault is seen only with both in their order.
    combined = deque[str](maxlen=tail)
    captured: list[str] = []
    if capture:
        downstream = sink

        async def sink(stream: str, lines: list[str]) -> None:
            if stream == "stdout":
                captured.extend(lines)
            if downstream is not None:
                await downstream(stream, lines)

    process = await anyio.open_process(
        list(argv),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    group = process.pid  # the leader of a new session leads its process group too
    began = anyio.current_time()
    try:
        if started is not None:
            await started(group)
        async with anyio.create_task_group() as tasks:
            assert process.stdout is not None  # noqa: S101 - opened with pipes above
            assert process.stderr is not None  # noqa: S101
            tasks.start_soon(_pump, process.stdout, "stdout", sink, (tails["stdout"], combined))
            tasks.start_soon(_pump, process.stderr, "stderr", sink, (tails["stderr"], combined))
            await process.wait()
            # Background children would keep the pipes open (and outlive the action).
            await _end_group(group, grace_period)
            if tag is not None:
                await _end_tagged(tag, group, anyio.current_time() - began, grace_period)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _terminate(process, group, grace_period)
            if tag is not None:
                await _end_tagged(tag, group, anyio.current_time() - began, grace_period)
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await process.aclose()
    returncode = process.returncode
    return CommandResult(
        tuple(argv),
        returncode if returncode is not None else -1,
        tuple(tails["stdout"]),
        tuple(tails["stderr"]),
        "\n".join(captured) if capture else None,
        tuple(combined),
    )


async def _pump(
    stream: ByteReceiveStream,
    name: str,
    sink: LineSink | None,
    tails: tuple[deque[str], deque[str]],
) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    async for chunk in stream:
        text = pending + decoder.decode(chunk)
        lines = text.split("\n")
        pending = lines.pop()
        if lines:
            lines = [line.removesuffix("\r") for line in lines]
            for tail in tails:
                tail.extend(lines)
            if sink is not None:
                await sink(name, lines)
    pending += decoder.decode(b"", final=True)
    if pending:
        for tail in tails:
            tail.append(pending)
        if sink is not None:
            await sink(name, [pending])


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def _group_exists(group: int) -> bool:
    """Whether any process (a zombie included) is in the group: one cheap system call."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a member changed its user id
        return True
    return True


def _group_alive(group: int) -> bool:
    """Whether a live (not zombie) process is left in the group (reads /proc: use a thread)."""
    if not _group_exists(group):
        return False
    proc = Path("/proc")
    if not proc.is_dir():  # pragma: no cover - not Linux: trust the signal
        return True
    # Zombies still count for killpg; where nobody reaps orphans (PID 1 in some containers)
    # they would never go away, so look at each process's state.
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and fields[2] == str(group) and fields[0] != "Z":  # noqa: PLR2004 - pgrp is the third field after the name
            return True
    return False


async def _wait_group_gone(group: int, seconds: float) -> bool:
    with anyio.move_on_after(seconds):
        # No event tells when the last member of a process group is gone: poll.
        while await anyio.to_thread.run_sync(_group_alive, group):  # noqa: ASYNC110
            await anyio.sleep(_POLL)
        return True
    return False


async def _end_group(group: int, grace_period: float) -> None:
    # Usually the command took its group with it: one signal-0 tells, with no trip to a thread
    # and no walk of /proc (which costs milliseconds on a busy machine).
    if not _group_exists(group) or not await anyio.to_thread.run_sync(_group_alive, group):
        return
    _signal_group(group, signal.SIGTERM)
    if not await _wait_group_gone(group, grace_period):
        _signal_group(group, signal.SIGKILL)
        await _wait_group_gone(group, 5)


async def _end_tagged(tag: str, pid: int, lasted: float, grace_period: float) -> None:
    # Descendants that left the group (setsid, setpgid) but kept the command's tag. They were
    # given pids after the command's, unless pids wrapped past it meanwhile: that takes tens
    # of thousands of forks, which no command makes in a second, so only a longer one has
    # every process read.
    born_after = pid if lasted < _WRAP_SAFE else None
    await end_processes(partial(tagged, tag, born_after=born_after), grace_period)


async def _terminate(process: Process, group: int, grace_period: float) -> None:
    _signal_group(group, signal.SIGTERM)
    with anyio.move_on_after(grace_period):
        await process.wait()
        while await anyio.to_thread.run_sync(_group_alive, group):  # noqa: ASYNC110 - see above
            await anyio.sleep(_POLL)
    _signal_group(group, signal.SIGKILL)
    await process.wait()
    await _wait_group_gone(group, 5)
