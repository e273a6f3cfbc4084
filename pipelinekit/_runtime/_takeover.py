"""Taking over an execution whose owner died: who owns it, and ending what the dead owner left.

An engine's name in leases (its *owner*) says where it runs: host, pid, the process's start
time and a random part. On the same host a dead owner is known at once (its pid is gone, or
now belongs to a process that started later), so its execution is taken over without waiting
for the lease; a live owner on the same host is never taken over, whatever its lease says. An
owner on another host is presumed dead only when its lease has expired.

Before a taken-over execution runs anything, the processes its previous owners started are
ended: every process carrying the execution's tag (Linux, see ``providers._host``), and every
process group on record in the execution's process ledger whose leader is still the process
that was started. Only then can an action run again, so two attempts of one action never run
at the same time on this host.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import uuid
from functools import partial
from pathlib import Path

import anyio
import attrs

from pipelinekit._thread import WorkerThread
from pipelinekit.exceptions import ExecutionError
from pipelinekit.providers._host import (
    alive,
    children_of,
    end_processes,
    group_members,
    pid_namespace,
    start_time,
    tagged,
)

__all__ = ["Owner", "ProcessLedger", "end_leftovers"]


@attrs.frozen
class Owner:
    """Where an engine runs, as written in leases: ``host:pid:random@start@pid-namespace``.

    Its process can be asked directly only from the same host, boot and pid namespace (two
    containers may share a host name and a kernel, but not their pids), and only where its
    start time is known (a pid is never taken for the process that had it before).
    """

    host: str
    pid: int
    nonce: str
    #: The process's start time (``providers._host.start_time``); empty where unknown.
    started: str = ""
    #: The pid namespace it runs in (``providers._host.pid_namespace``); empty where unknown.
    namespace: str = ""

    @classmethod
    def this_process(cls) -> Owner:
        """The owner name of a new engine in this process."""
        pid = os.getpid()
        return cls(
            socket.gethostname(),
            pid,
            uuid.uuid4().hex[:8],
            start_time(pid) or "",
            pid_namespace() or "",
        )

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        """The owner a lease names; ``None`` for a name this version did not write."""
        ident, _, rest = text.partition("@")
        started, _, namespace = rest.partition("@")
        parts = ident.rsplit(":", 2)
        if len(parts) != 3 or not parts[1].isdigit():  # noqa: PLR2004 - host, pid, nonce
            return None
        return cls(parts[0], int(parts[1]), parts[2], started, namespace)

    def __str__(self) -> str:
        name = f"{self.host}:{self.pid}:{self.nonce}"
        return f"{name}@{self.started}@{self.namespace}" if self.started else name

    def answers_here(self) -> bool:
        """Whether this process can tell if the owner lives: same host, boot and namespace."""
        if not self.started or not self.namespace or self.host != socket.gethostname():
            return False
        boot = self.started.partition(":")[0]
        ours = (start_time(os.getpid()) or "").partition(":")[0]
        return boot == ours and self.namespace == pid_namespace()

    def is_dead(self) -> bool:
        """Whether this owner is known to be gone: asked here, its process is gone.

        ``False`` where it cannot be asked (another host or container, no ``/proc``: only its
        lease can tell) and for a live one.
        """
        return self.answers_here() and not alive(self.pid, self.started)

    def is_alive_here(self) -> bool:
        """Whether this owner is known to be alive: asked here, its process still runs."""
        return self.answers_here() and alive(self.pid, self.started)


class ProcessLedger:
    """The process groups an execution's commands lead on this host, one JSON line each.

    Kept in ``<root>/<execution id>.jsonl`` so that a takeover on this host finds them even
    where no tag can be read. The lines are written without fsync: only a crash of the whole
    host loses them, and that ends the processes too.
    """

    def __init__(
        self, root: Path, execution_id: str, owner: str, files: WorkerThread | None = None
    ) -> None:
        """The ledger of ``execution_id`` under ``root``, written by ``owner``."""
        self.path = root / f"{execution_id}.jsonl"
        self.tag = f"{execution_id}/{owner}"
        self._files = files
        self._written = False

    def _append(self, pid: int) -> None:
        started = start_time(pid)
        if started is None:
            return  # gone already, or nothing tells a reused pid from ours: tags alone must do
        line = json.dumps({"pid": pid, "started": started}) + "\n"
        # A lost line only leaves the takeover to the tags: never fail a command for it.
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(line)

    async def started(self, pid: int) -> None:
        """Put the group that command ``pid`` leads on record, with the command's start time."""
        self._written = True
        if self._files is not None:
            await self._files.run(partial(self._append, pid))
        else:
            await anyio.to_thread.run_sync(self._append, pid)

    def groups(self) -> dict[int, str]:
        """The recorded groups: leader pid and its start time (read from a worker thread)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError:
            return {}
        found: dict[int, str] = {}
        for line in text.splitlines():
            with contextlib.suppress(ValueError, TypeError, KeyError):
                record = json.loads(line)
                found[int(record["pid"])] = str(record["started"])
        return found

    async def forget(self, *, always: bool = False) -> None:
        """Remove the ledger: nothing it names runs any more.

        Without ``always`` only a ledger this object wrote to is removed (a run that started
        no command costs no trip to the disk).
        """
        if always or self._written:
            await anyio.to_thread.run_sync(partial(self.path.unlink, missing_ok=True))


async def end_leftovers(
    ledger: ProcessLedger,
    execution_id: str,
    owner: str,
    grace_period: float = 10.0,
    *,
    dead: str | None = None,
) -> None:
    """End every process earlier owners of ``execution_id`` left on this host.

    ``dead`` is the owner whose lease was just taken over, if any: when it was the
    ``pipelinekit`` command, every process it started (a Python action's own subprocesses
    too) carries its process tag, and is ended as well. Raises ``ExecutionError`` naming the
    survivors when some cannot be ended, for then running the execution on would run two
    attempts of an action at once.
    """
    groups = await anyio.to_thread.run_sync(ledger.groups)
    previous = Owner.parse(dead) if dead is not None else None
    command = (
        f"{previous.pid}@{previous.started}"
        if previous is not None and previous.started and previous.answers_here()
        else None
    )

    if command is not None and previous is not None:
        # What it started without a session of its own (a Python action's subprocess.run,
        # even with its environment cleared) stayed in its process group, if it led one.
        groups = {**groups, previous.pid: previous.started}

    def scan() -> dict[int, str]:
        found = tagged(f"{execution_id}/", exclude=f"{execution_id}/{owner}/")
        found.update(group_members(groups))
        if command is not None:
            found.update(children_of(command))
        return found

    survivors = await end_processes(scan, grace_period)
    if survivors:
        pids = ", ".join(str(pid) for pid in sorted(survivors))
        msg = (
            f"execution {execution_id}: processes its previous owner started are still running "
            f"after SIGKILL (pids {pids}); end them, then resume again"
        )
        raise ExecutionError(msg)
    await ledger.forget(always=True)
