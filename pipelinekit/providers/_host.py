"""What this host can tell about its processes: whether one still lives, and which carry a tag.

Every command pipelinekit starts gets a tag in its environment (``PK_PROCESS_TAG``). A process
inherits its parent's environment through ``setsid``, a double fork or a daemon's detaching, so
on Linux the tag finds every descendant of a command, including those that left its process
group, by reading ``/proc/<pid>/environ`` (as Jenkins' process tree killer does with its
build cookie). A process that clears or replaces its environment (``env -i``, ``sudo`` with
``env_reset``) is not found; neither is anything on a system without ``/proc``, where only the
command's process group is ended.

A process is named by its pid and its start time (the boot's id and the start in clock ticks
since boot), so that a pid the kernel gave to another process since is never signalled.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import anyio

__all__ = [
    "OWNER_VARIABLE",
    "TAG_VARIABLE",
    "ProcessRecord",
    "alive",
    "children_of",
    "end_processes",
    "group_members",
    "pid_namespace",
    "process_tag",
    "start_time",
    "tagged",
]

#: The environment variable that tags a command and everything it starts.
TAG_VARIABLE = "PK_PROCESS_TAG"
#: Set by the ``pipelinekit`` command in its own environment (a library never changes its
#: host's environment): every process it starts, by any means (a Python action's own
#: ``subprocess.run`` too), inherits it, so a takeover finds them when the command died.
OWNER_VARIABLE = "PK_OWNER_PROCESS"
_TAG = ("\0" + TAG_VARIABLE + "=").encode()
_PROC = Path("/proc")
_POLL = 0.02
_MAX_POLL = 0.25


class ProcessRecord(Protocol):
    """Where an execution's commands are put on record, for whoever takes the execution over.

    ``tag`` (``"<execution id>/<owner>"``) starts the tag of every command the execution runs
    under this owner; ``started`` records a command's pid (which leads its process group) as
    soon as it runs, with its start time. It must not raise for a full disk or the like:
    losing a record only makes a takeover rely on the tags alone.
    """

    tag: str

    async def started(self, pid: int) -> None:
        """Put a running command on record."""
        ...


@functools.cache
def _boot_id() -> str:
    # Constant for the life of the host: read once.
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def pid_namespace() -> str | None:
    """The pid namespace this process runs in (``"pid:[4026531836]"``); ``None`` if unknown."""
    try:
        return str((_PROC / "self/ns/pid").readlink())
    except OSError:
        return None


def start_time(pid: int) -> str | None:
    """When process ``pid`` started, as ``"<boot id>:<ticks since boot>"``; ``None`` if unknown.

    ``None`` when the process is gone, or the system has no ``/proc`` to ask.
    """
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) < 20:  # noqa: PLR2004 - starttime is field 22, the 20th after the name
        return None
    return f"{_boot_id()}:{fields[19]}"


def alive(pid: int, started: str | None = None) -> bool:
    """Whether process ``pid`` lives (a zombie does not), and is the one that ``started`` then.

    Where the start time cannot be read (no ``/proc``), a live pid counts as the same process.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    if not _PROC.is_dir():  # pragma: no cover - not Linux
        return True
    now = start_time(pid)
    if now is None:
        return False
    if _state(pid) == "Z":
        return False
    return started is None or now == started


def _state(pid: int) -> str:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return "?"
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[0] if fields else "?"


def tagged(
    prefix: str, *, exclude: str | None = None, born_after: int | None = None
) -> dict[int, str]:
    """Live processes whose tag starts with ``prefix`` (and not ``exclude``), with start times.

    With ``born_after`` (a pid), only processes given a pid after it are read: the descendants
    of a command are (unless pids wrapped past it since: the caller judges), so the scan that
    follows each command reads a handful of processes rather than every one on the host.
    Reads ``/proc`` (call it from a worker thread); empty where there is no ``/proc``. The
    calling process and its ancestors are never included.
    """
    wanted = _TAG + prefix.encode()
    unwanted = _TAG + exclude.encode() if exclude is not None else None

    def match(environ: bytes) -> bool:
        at = environ.find(wanted)
        return at >= 0 and (unwanted is None or not environ.startswith(unwanted, at))

    return _scan(match, born_after)


def process_tag(pid: int) -> str | None:
    """``"<pid>@<start time>"``: what names process ``pid`` in ``PK_OWNER_PROCESS``."""
    started = start_time(pid)
    return f"{pid}@{started}" if started is not None else None


def children_of(tag: str) -> dict[int, str]:
    """Live processes started under the owner process ``tag`` names (see ``OWNER_VARIABLE``).

    Reads ``/proc``: use a worker thread.
    """
    wanted = b"\0" + OWNER_VARIABLE.encode() + b"=" + tag.encode() + b"\0"
    return _scan(lambda environ: wanted in environ + b"\0", None)


def _scan(match: Callable[[bytes], bool], born_after: int | None) -> dict[int, str]:
    if not _PROC.is_dir():  # pragma: no cover - not Linux
        return {}
    spared = _ancestors()
    newer = _born_after(born_after) if born_after is not None else None
    found: dict[int, str] = {}
    for entry in os.scandir(_PROC):
        name = entry.name
        if not name.isdigit() or int(name) in spared:
            continue
        if newer is not None and not newer(int(name)):
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as file:  # noqa: PTH123 - hot loop
                environ = b"\0" + file.read()
        except OSError:
            continue
        if not match(environ):
            continue
        started = start_time(int(name))
        if started is not None and _state(int(name)) != "Z":
            found[int(name)] = started
    return found


def _born_after(pid: int) -> Callable[[int], bool] | None:
    """Whether a pid was given out after ``pid``: pids count up to the last given, then wrap."""
    try:
        last = int((_PROC / "sys/kernel/ns_last_pid").read_text())
    except (OSError, ValueError):  # pragma: no cover - a kernel without it: read them all
        return None
    if last >= pid:
        return lambda other: pid < other <= last
    return lambda other: other > pid or other <= last


def group_members(groups: dict[int, str]) -> dict[int, str]:
    """Live members of the process groups led by ``groups`` (leader pid: its start time).

    A group counts only while it is the one that leader started: its leader lives with that
    start time, or is gone and every member started after it on the same boot (a process
    group id is not reused while the group has members). Reads ``/proc``: use a thread.
    """
    if not groups or not _PROC.is_dir():
        return {}
    spared = _ancestors()
    found: dict[int, str] = {}
    for entry in os.scandir(_PROC):
        name = entry.name
        if not name.isdigit() or int(name) in spared:
            continue
        try:
            stat = (_PROC / name / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) < 20 or fields[0] == "Z":  # noqa: PLR2004 - see start_time
            continue
        leader = int(fields[2])
        recorded = groups.get(leader)
        if recorded is None:
            continue
        started = f"{_boot_id()}:{fields[19]}"
        boot, _, ticks = recorded.partition(":")
        if int(name) == leader:
            ours = started == recorded
        else:
            leader_now = start_time(leader)
            ours = (
                leader_now == recorded
                if leader_now is not None
                else boot == _boot_id() and int(fields[19]) >= int(ticks or 0)
            )
        if ours:
            found[int(name)] = started
    return found


def _ancestors() -> frozenset[int]:
    # Asked on every scan; the chain changes only when an ancestor dies, and a pid it frees
    # would have to be reused by a tagged process of ours to matter: read it once per process.
    return _ancestors_of(os.getpid())


@functools.cache
def _ancestors_of(me: int) -> frozenset[int]:
    pids = {me}
    pid = os.getppid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            stat = (_PROC / str(pid) / "stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[-1].split()[1])
    return frozenset(pids)


def _signal(processes: dict[int, str], signum: int) -> None:
    for pid, started in processes.items():
        # Checked right before the signal: a pid that died and was given to another process
        # since the scan is left alone.
        if start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)


async def end_processes(scan: Callable[[], dict[int, str]], grace_period: float) -> dict[int, str]:
    """End the processes ``scan`` finds: SIGTERM, then SIGKILL after ``grace_period`` seconds.

    ``scan`` (run in a worker thread) returns live processes as ``{pid: start time}``; it is
    run again until it finds none, and what it finds anew (a child forked meanwhile) is
    signalled too. Returns what is still alive after the SIGKILL and five more seconds:
    normally nothing, only a process stuck in the kernel survives that.
    """
    found = await anyio.to_thread.run_sync(scan)
    for signum, wait in ((signal.SIGTERM, grace_period), (signal.SIGKILL, 5.0)):
        if not found:
            break
        signalled: set[tuple[int, str]] = set()
        pause = _POLL
        with anyio.move_on_after(wait):
            while found:
                fresh = {pid: at for pid, at in found.items() if (pid, at) not in signalled}
                _signal(fresh, signum)
                signalled.update(fresh.items())
                # Most processes go at once; those that linger are looked at less and less
                # often, for a scan of a busy host is not free.
                await anyio.sleep(pause)
                pause = min(pause * 1.5, _MAX_POLL)
                found = await anyio.to_thread.run_sync(scan)
    return found
