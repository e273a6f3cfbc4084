"""``check_provider``: a generic conformance suite for action providers.

In the manner of trio's stream conformance checks: a provider author hands over factories for a
few scenarios, and the suite checks the contract every provider must keep (see
``pipelinekit.providers.Provider``): it succeeds with valid input, reports failure as
``ActionFailed``, lets cancellation and timeouts through promptly, leaves no process behind, and
never lets a registered secret reach its log.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs
import structlog

from pipelinekit._model._declarations import Action, Stage, Status
from pipelinekit._model._pipeline import Pipeline
from pipelinekit._model._secrets import Masker
from pipelinekit._runtime._engine import Engine
from pipelinekit.exceptions import ActionFailed
from pipelinekit.providers._clock import SystemClock
from pipelinekit.providers._context import ActionContext, LogFile

__all__ = ["ConformanceReport", "check_provider", "check_store"]

#: How long a "hang" scenario runs before it is cancelled, and how long it may take to stop.
_HANG_FOR = 0.3
_STOP_WITHIN = 5.0


@attrs.frozen
class ConformanceReport:
    """The checks that ran and passed (a failed check raises ``AssertionError``)."""

    provider: str
    passed: tuple[str, ...]


def _processes_with(token: str) -> list[int]:
    """Live processes whose environment carries ``token`` (Linux ``/proc``; empty elsewhere)."""
    found = []
    needle = f"PK_CONFORMANCE={token}".encode()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if needle not in (entry / "environ").read_bytes():
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(int(entry.name))
    return found


class _Harness:
    def __init__(self, root: Path, outputs: Sequence[str]) -> None:
        self.root = root
        self.outputs = tuple(outputs)
        self.token = uuid.uuid4().hex
        self.masker = Masker()

    def context(self, name: str) -> ActionContext:
        base = self.root / name
        outputs = {artifact: base / "artifacts" / artifact for artifact in self.outputs}
        for path in outputs.values():
            path.mkdir(parents=True)
        return ActionContext(
            execution_id=f"conformance-{name}",
            pipeline="conformance",
            stage="Check",
            action=name,
            attempt=1,
            inputs={},
            outputs=outputs,
            work_root=base / "work",
            configuration={},
            variables={},
            log_file=LogFile(base / "logs", f"{name}.log", self.masker),
            masker=self.masker,
            environment={**os.environ, "PK_CONFORMANCE": self.token},
            clock=SystemClock(),
        )

    async def left_behind(self) -> list[int]:
        # Give ended process groups a moment to be reaped before calling anything a leak.
        deadline = time.monotonic() + _STOP_WITHIN
        while True:
            alive = await anyio.to_thread.run_sync(_processes_with, self.token)
            if not alive or time.monotonic() > deadline:
                return alive
            await anyio.sleep(0.05)


def _fail(provider: str, check: str, problem: str) -> AssertionError:
    return AssertionError(f"{provider} fails the conformance check {check!r}: {problem}")


def check_provider(
    succeed: Callable[[], Any],
    *,
    fail: Callable[[], Any] | None = None,
    hang: Callable[[], Any] | None = None,
    leak: Callable[[str], Any] | None = None,
    outputs: Sequence[str] = (),
) -> ConformanceReport:
    """Check a provider against the contract; raise ``AssertionError`` naming what breaks it.

    - ``succeed()`` builds a provider that must succeed (in a context whose output artifacts are
      ``outputs``), both called directly and run by an engine;
    - ``fail()`` one that must fail by raising ``pk.ActionFailed``;
    - ``hang()`` one that works until cancelled: it must stop promptly when cancelled and when
      its action times out, without swallowing the cancellation;
    - ``leak(secret)`` one that writes ``secret`` to its output: the registered secret must not
      reach the log.

    After every scenario no process started by the provider may still run. Returns the checks
    that passed. Blocking: call it from a plain (not async) test.
    """
    return anyio.run(_check, succeed, fail, hang, leak, tuple(outputs))


async def _check(  # noqa: C901, PLR0912, PLR0915 - one scenario after the other, in order
    succeed: Callable[[], Any],
    fail: Callable[[], Any] | None,
    hang: Callable[[], Any] | None,
    leak: Callable[[str], Any] | None,
    outputs: tuple[str, ...],
) -> ConformanceReport:
    provider = succeed()
    name = type(provider).__name__
    passed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pk-conformance-") as tmp:
        harness = _Harness(Path(tmp), outputs)

        async def no_leftovers(scenario: str) -> None:
            alive = await harness.left_behind()
            if alive:
                raise _fail(name, "leaves no process behind", f"after {scenario}: pids {alive}")

        ctx = harness.context("succeed")
        try:
            await provider.run(ctx)
        except Exception as error:
            raise _fail(name, "succeeds", f"raised {type(error).__name__}: {error}") from error
        await no_leftovers("succeeding")
        passed.append("succeeds")

        pipeline = Pipeline(
            "conformance",
            [Stage("Check", [Action("Run", succeed(), outputs=outputs)])],
        )
        async with Engine(workdir=harness.root / "engine") as engine:
            result = await (await engine.start(pipeline)).wait()
        run = result.actions["Check.Run"]
        if run.status is not Status.SUCCEEDED:
            raise _fail(name, "succeeds in an engine", f"{run.status}: {run.error}")
        passed.append("succeeds in an engine")

        if fail is not None:
            try:
                await fail().run(harness.context("fail"))
            except ActionFailed:
                passed.append("reports failure as ActionFailed")
            except Exception as error:
                raise _fail(
                    name,
                    "reports failure as ActionFailed",
                    f"raised {type(error).__name__}: {error}",
                ) from error
            else:
                raise _fail(name, "reports failure as ActionFailed", "run() returned")
            await no_leftovers("failing")

        if hang is not None:
            started = time.monotonic()
            with anyio.move_on_after(_HANG_FOR) as scope:
                await hang().run(harness.context("cancel"))
            took = time.monotonic() - started
            if not scope.cancelled_caught:
                raise _fail(name, "honours cancellation", "run() returned before it was cancelled")
            if took > _HANG_FOR + _STOP_WITHIN:
                raise _fail(name, "honours cancellation", f"it took {took:.1f}s to stop")
            passed.append("honours cancellation")
            await no_leftovers("cancellation")

            timed = Pipeline(
                "conformance",
                [Stage("Check", [Action("Hang", hang(), outputs=outputs, timeout=_HANG_FOR)])],
            )
            started = time.monotonic()
            async with Engine(workdir=harness.root / "timeout") as engine:
                result = await (await engine.start(timed)).wait()
            took = time.monotonic() - started
            hung = result.actions["Check.Hang"]
            if hung.status is not Status.FAILED or not (hung.error or "").startswith("timed out"):
                raise _fail(name, "honours timeouts", f"{hung.status}: {hung.error}")
            if took > _HANG_FOR + _STOP_WITHIN:
                raise _fail(name, "honours timeouts", f"it took {took:.1f}s to stop")
            passed.append("honours timeouts")
            passed.append("leaves no process behind")

        if leak is not None:
            secret = f"s3cr3t-{uuid.uuid4().hex}"
            harness.masker.add(secret)
            ctx = harness.context("leak")
            with structlog.testing.capture_logs() as logs:
                try:
                    await leak(secret).run(ctx)
                except ActionFailed as error:
                    if secret in str(error):
                        raise _fail(name, "masks secrets", "the secret is in its error") from None
            await ctx.log_file.flush()
            text = ctx.log_path.read_text() if ctx.log_path.exists() else ""
            if secret in text:
                raise _fail(name, "masks secrets", f"the secret reached {ctx.log_path}")
            if secret in repr(logs):
                raise _fail(name, "masks secrets", "the secret reached the structured log")
            passed.append("masks secrets")
            await no_leftovers("the secret scenario")
    return ConformanceReport(name, tuple(passed))


# -- stores ---------------------------------------------------------------------------------------


def check_store(make: Callable[[], Any]) -> ConformanceReport:
    """Check a ``Store`` keeps the rules of caches and deletion that ``gc`` and caches rely on.

    ``make`` returns a new, empty store. Checked: a saved cache never changes (the first save
    stands), prefixes find the newest first, last use is kept, deleting caches, and deleting
    executions takes their events, leases and decisions with them and leaves the others whole.
    """
    return anyio.run(_check_store, make)


async def _check_store(make: Callable[[], Any]) -> ConformanceReport:  # noqa: PLR0915 - in order
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415

    from pipelinekit._model._events import Event  # noqa: PLC0415
    from pipelinekit.stores import CacheEntry, Decision, SavedCache  # noqa: PLC0415

    store = make()
    name = type(store).__name__
    passed: list[str] = []
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def saved(key: str, minute: int, tree: str = "t") -> SavedCache:
        when = start + timedelta(minutes=minute)
        return SavedCache(
            key=key,
            paths=(".venv",),
            trees={".venv": tree},
            size=10,
            files=1,
            created_at=when,
            last_used=when,
            execution_id="e",
            node="S.A",
            root="/w",
        )

    def check(condition: bool, check_name: str, problem: str) -> None:  # noqa: FBT001
        if not condition:
            raise _fail(name, check_name, problem)

    first = await store.save_cache(saved("venv-a", 1, "one"))
    again = await store.save_cache(saved("venv-a", 2, "two"))
    kept = await store.saved_cache("venv-a", (".venv",))
    check(first and not again, "saved caches never change", "a second save was accepted")
    check(kept is not None and kept.trees == {".venv": "one"}, "saved caches never change", "")
    passed.append("saved caches never change")
    await store.save_cache(saved("venv-b", 3))
    await store.save_cache(saved("other", 4))
    found = [entry.key for entry in await store.saved_caches("venv-")]
    check(found == ["venv-b", "venv-a"], "prefixes find the newest first", f"got {found}")
    check(
        await store.saved_cache("venv-a", ("other",)) is None,
        "prefixes find the newest first",
        "an entry of other paths was returned",
    )
    passed.append("prefixes find the newest first")
    used = start + timedelta(days=1)
    await store.cache_used("venv-a", used)
    kept = await store.saved_cache("venv-a", (".venv",))
    check(kept is not None and kept.last_used == used, "last use is kept", f"got {kept}")
    await store.cache_put("r", CacheEntry("e", "S.A", {}, {}, trees={"out": "x"}))
    await store.cache_used("r", used)
    results = dict(await store.cache_entries())
    check(results["r"].last_used == used, "last use is kept", f"got {results}")
    passed.append("last use is kept")
    gone = await store.delete_caches(["venv-a", "r", "missing"])
    left = [entry.key for entry in await store.saved_caches()]
    check(gone == len(["venv-a", "r"]), "deleting caches", f"{gone} went, not 2")
    check(sorted(left) == ["other", "venv-b"], "deleting caches", f"left {left}")
    check(await store.cache_get("r") is None, "deleting caches", "the result stayed")
    passed.append("deleting caches")

    def started(execution_id: str) -> Event:
        return Event("pipeline", Status.IN_PROGRESS, "p", execution_id, start, None, None, {}, 1)

    def ended(execution_id: str) -> Event:
        return Event("pipeline", Status.FAILED, "p", execution_id, start, None, None, {}, 2)

    for execution_id in ("x1", "x2", "x3", "x4"):
        await store.record([started(execution_id)])
        await store.acquire(execution_id, "me", until=10.0, now=0.0)
        await store.put_decision(
            execution_id, 1, Decision(approved=True, by="me", summary="", time=start)
        )
    for execution_id in ("x1", "x2", "x4"):
        await store.record([ended(execution_id)])
    # At 20.0 the leases (until 10.0) have expired but x4's, taken again (a retry of it).
    await store.acquire("x4", "retry", until=30.0, now=20.0)
    deleted = await store.delete_executions(["x1", "unknown", "x3", "x4"], now=20.0)
    history = sorted(summary.id for summary in await store.executions())
    check(
        deleted == ["x1"] and history == ["x2", "x3", "x4"],
        "deleting executions",
        f"deleted {deleted}, left {history} (only finished, unleased ones may go)",
    )
    check(await store.events("x1") == [], "deleting executions", "its events stayed")
    check(await store.lease("x1") is None, "deleting executions", "its lease stayed")
    check(await store.decision("x1", 1) is None, "deleting executions", "its decision stayed")
    check(
        len(await store.events("x2")) == len(["start", "end"]),
        "deleting executions",
        "another one lost events",
    )
    check(await store.lease("x2") is not None, "deleting executions", "another lost its lease")
    check(len(await store.events("x3")) == 1, "deleting executions", "an unfinished one went")
    check(
        len(await store.events("x4")) == len(["start", "end"]),
        "deleting executions",
        "a leased one went",
    )
    # The id can be used again, from its first event: nothing of the old one is left behind.
    await store.record([started("x1")])
    passed.append("deleting executions")
    close = getattr(store, "close", None)
    if callable(close):
        close()
    return ConformanceReport(name, tuple(passed))
