"""What verifying artifacts costs: pipelines with the checks next to the same without them.

    python bench/artifacts.py [--repeat 5] [--quick] [--only small|big|deploy|checks]

A producer writes a small artifact (one 100-byte file) and a big one (1,000 files of 100 KB:
~100 MB); consumers take both as inputs. Each figure runs the pipeline on ``MemoryStore`` with
the engine's ``DiskWorkspace`` (verified: every consumer's inputs checked when it starts and
when it ends, a deploy's in full) and with ``Unverified``, a workspace that seals as before
this check existed (hash, then read-only bits) and checks nothing. Rounds are interleaved; the
best time of each and the median of the per-round ratios are printed.

1. ``small``: only the small artifact, 3 no-op consumers (the common case; 5 times the rounds,
   as each round is short and the machine's noise large).
2. ``big``: both artifacts, 3 no-op consumers (no consumer reads a byte: the worst case for
   the ratio, as the checks are all the consumers do).
3. ``deploy``: as ``big``, plus a deploy-category consumer (its check hashes every byte).
4. ``checks``: one check of the big artifact by itself: by the manifest once confirmed, the
   first check after sealing (files not yet confirmed are hashed), and in full; and the median
   of 200 checks of the small artifact on the engine's thread for small file work.

``--quick`` uses 100 files of 100 KB (10 MB).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

import anyio
from runtime import rounds

import pipelinekit as pk
from pipelinekit._runtime._artifacts import DiskWorkspace, _make_read_only, _remove_tree
from pipelinekit._thread import WorkerThread
from pipelinekit.providers._sources import content_hash

FILE_SIZE = 100 * 1024
BLOCK = os.urandom(FILE_SIZE)


class Unverified(DiskWorkspace):
    """The workspace as it was before artifacts were verified: hash and seal, check nothing."""

    def _seal(self, outputs: Mapping[str, Path]) -> dict[str, tuple[str, str]]:
        hashes = {name: (str(path), content_hash(path)) for name, path in outputs.items()}
        for path in outputs.values():
            _make_read_only(path)
        return hashes

    async def verify(
        self, artifacts: Mapping[str, tuple[Path, str]], *, full: bool
    ) -> dict[str, tuple[str, ...]]:
        """Nothing is checked."""
        del artifacts, full
        return {}


def producer(files: int) -> Callable[[pk.ActionContext], None]:
    """The producer: a 100-byte file in ``small``; ``files`` of 100 KB in ``big``, if asked."""

    def make(ctx: pk.ActionContext) -> None:
        (ctx.outputs["small"] / "version.txt").write_bytes(BLOCK[:100])
        if "big" not in ctx.outputs:
            return
        big = ctx.outputs["big"]
        for folder in range(files // 100 or 1):
            (big / f"d{folder}").mkdir()
            for n in range(min(100, files)):
                (big / f"d{folder}" / f"f{n}.bin").write_bytes(BLOCK)

    return make


async def noop(ctx: pk.ActionContext) -> None:
    """A consumer that reads nothing."""


@pk.provider("Custom", "NoopDeploy", category=pk.Category.DEPLOY)
class NoopDeploy:
    """A deploy-category consumer that ships nothing (so only its checks cost)."""

    async def run(self, ctx: pk.ActionContext) -> None:
        """Nothing."""


def pipeline(files: int, *, big: bool, deploy: bool) -> pk.Pipeline:
    """Build, then 3 consumers of what it made (and a deploy, with ``deploy``)."""
    outputs = ["small", "big"] if big else ["small"]
    stages = [
        pk.Stage("Build", [pk.Action("Make", pk.python(producer(files)), outputs=outputs)]),
        pk.Stage("Test", [pk.Action(f"Use{n}", pk.python(noop), inputs=outputs) for n in range(3)]),
    ]
    if deploy:
        stages.append(pk.Stage("Deploy", [pk.Action("Ship", NoopDeploy(), inputs=outputs)]))
    return pk.Pipeline("artifacts", stages)


def run_once(plan: pk.Pipeline, workspaces: type[DiskWorkspace], workdir: Path) -> None:
    """Run ``plan`` once in a fresh engine with ``workspaces``; remove its folder after."""

    async def go() -> None:
        async with pk.Engine(
            store=pk.MemoryStore(), workdir=workdir, workspaces=workspaces
        ) as engine:
            result = await (await engine.start(plan)).wait()
        if not result.succeeded:
            raise RuntimeError({n: a.error for n, a in result.actions.items() if a.error})

    anyio.run(go)
    _remove_tree(workdir)


def report(what: str, times: Mapping[str, Sequence[float]]) -> None:
    """One line: best times, their ratio, the median of the per-round ratios."""
    ours, theirs = times["verified"], times["unverified"]
    median = statistics.median(o / t for o, t in zip(ours, theirs, strict=True))
    print(
        f"{what:<8} verified {min(ours) * 1e3:8.1f} ms   unverified {min(theirs) * 1e3:8.1f} ms"
        f"   ratio {min(ours) / min(theirs):.2f}x best, {median:.2f}x median"
        f"   (+{(min(ours) - min(theirs)) * 1e3:.1f} ms)"
    )


def checks(files: int, repeat: int, root: Path) -> None:
    """One check of the big artifact, each way."""
    workspace = DiskWorkspace(root / "ws")
    outputs = {"big": workspace.artifact("big")}

    class Context:
        pass

    context = Context()
    context.outputs = {"small": root / "small", **outputs}  # type: ignore[attr-defined]
    (root / "small").mkdir(parents=True)
    first: list[float] = []
    confirmed: list[float] = []
    full: list[float] = []
    for _ in range(repeat):
        anyio.run(lambda: workspace.prepare("S.A", outputs, again=False))
        producer(files)(context)  # type: ignore[arg-type]
        digest = anyio.run(workspace.seal, outputs)["big"][1]
        check = {"big": (outputs["big"], digest)}
        for times, whole in ((first, False), (confirmed, False), (full, True)):
            if times is confirmed:
                time.sleep(0.02)  # let the file system's clock pass the seal's tick
                anyio.run(partial(workspace.verify, check, full=False))  # confirms
            start = time.perf_counter()
            if anyio.run(partial(workspace.verify, check, full=whole)):
                raise RuntimeError("the artifact changed")
            times.append(time.perf_counter() - start)
        (root / "small" / "version.txt").unlink()
    print(
        f"checks   one check of {files} files / {files * FILE_SIZE // 2**20} MB: "
        f"manifest (confirmed) {min(confirmed) * 1e3:.1f} ms, "
        f"first after sealing {min(first) * 1e3:.1f} ms, full {min(full) * 1e3:.1f} ms"
    )


def small_check(root: Path, count: int = 200) -> None:
    """The median of ``count`` checks of a one-file artifact, as a consumer pays it."""
    files = WorkerThread("bench files")
    workspace = DiskWorkspace(root / "small-ws", files=files)
    outputs = {"small": workspace.artifact("small")}

    async def go() -> list[float]:
        await workspace.prepare("S.A", outputs, again=False)
        (outputs["small"] / "version.txt").write_bytes(BLOCK[:100])
        digest = (await workspace.seal(outputs))["small"][1]
        check = {"small": (outputs["small"], digest)}
        await anyio.sleep(0.02)  # let the file system's clock pass the seal's tick
        times: list[float] = []
        for _ in range(count):
            start = time.perf_counter()
            await workspace.verify(check, full=False)
            times.append(time.perf_counter() - start)
        return times

    times = anyio.run(go)
    files.close()
    print(
        f"checks   one check of a one-file artifact (the engine's small-work thread): "
        f"median {statistics.median(times) * 1e6:.0f} us, best {min(times) * 1e6:.0f} us"
    )


FIGURES = ("small", "big", "deploy", "checks")
#: The small figure is quick and noisy: it runs this many times the rounds of the others.
SMALL_ROUNDS = 5


def main() -> None:
    """Run every figure (or the one ``--only`` names)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=FIGURES)
    options = parser.parse_args()
    files = 100 if options.quick else 1000
    print("python bench/artifacts.py " + " ".join(sys.argv[1:] or [f"--repeat {options.repeat}"]))
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        for what, big, deploy in (
            ("small", False, False),
            ("big", True, False),
            ("deploy", True, True),
        ):
            if options.only not in (None, what):
                continue
            plan = pipeline(files, big=big, deploy=deploy)
            times = rounds(
                {
                    "verified": lambda p=plan: run_once(p, DiskWorkspace, root / "wd"),
                    "unverified": lambda p=plan: run_once(p, Unverified, root / "wd"),
                },
                options.repeat * (SMALL_ROUNDS if what == "small" else 1),
            )
            report(what, times)
        if options.only in (None, "checks"):
            checks(files, options.repeat, root / "checks")
            small_check(root)


if __name__ == "__main__":
    main()
