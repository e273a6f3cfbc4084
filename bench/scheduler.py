"""Scheduler overhead per action, against a bare anyio baseline running the same DAG.

    python bench/scheduler.py [--sizes 1000 10000] [--repeat 3]

For chain, fan-out/fan-in and layered DAGs of no-op async Python actions it measures, in the same
process and interleaved:

- pipelinekit: ``await pk.arun(pipeline, store=pk.MemoryStore())`` with the local executor and no
  hooks (the pipeline is compiled inside, as users run it);
- baseline: one anyio task per node of the same compiled graph (gates included), each waiting on
  its predecessors' ``anyio.Event`` and then setting its own.

It prints the best run of each per action, the ratio, the time to build, compile and run the
10,000-action layered pipeline, and the peak memory per action (tracemalloc, in a separate run).
Goals: at most 2x the baseline; 10,000 layered actions in under 1 s.
"""

from __future__ import annotations

import argparse
import gc
import math
import tempfile
import time
import tracemalloc
from collections.abc import Callable

import anyio

import pipelinekit as pk


async def noop(ctx: pk.ActionContext) -> None:
    """The work of every action: nothing."""


def action(name: str) -> pk.Action:
    """A no-op action."""
    return pk.Action(name, pk.python(noop))


def chain(size: int) -> pk.Pipeline:
    """``size`` stages of one action each."""
    return pk.Pipeline("chain", [pk.Stage(f"S{i}", [action("A")]) for i in range(size)])


def fan(size: int) -> pk.Pipeline:
    """One action, ``size - 2`` parallel ones, one more."""
    return pk.Pipeline(
        "fan",
        [
            pk.Stage("Out", [action("Start")]),
            pk.Stage("Wide", [action(f"A{i}") for i in range(size - 2)]),
            pk.Stage("In", [action("End")]),
        ],
    )


def layered(size: int) -> pk.Pipeline:
    """A square: sqrt(size) stages of sqrt(size) parallel actions."""
    side = math.isqrt(size)
    return pk.Pipeline(
        "layered",
        [pk.Stage(f"S{i}", [action(f"A{j}") for j in range(side)]) for i in range(side)],
    )


async def baseline(graph: object) -> None:
    """One task per node, each awaiting its predecessors' events."""
    events = {node: anyio.Event() for node in graph}  # type: ignore[attr-defined]

    async def node_task(node: str) -> None:
        for predecessor in graph.predecessors(node):  # type: ignore[attr-defined]
            await events[predecessor].wait()
        events[node].set()

    async with anyio.create_task_group() as tasks:
        for node in graph:  # type: ignore[attr-defined]
            tasks.start_soon(node_task, node)


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="pk-bench-")

    def run_pk(pipeline: pk.Pipeline) -> None:
        result = pk.run(pipeline, store=pk.MemoryStore(), workdir=workdir)
        assert result.succeeded, result.status  # noqa: S101 - a benchmark of failures is no benchmark

    print(f"{'shape':>8} {'actions':>7} {'pipelinekit':>14} {'baseline':>14} {'ratio':>6}")
    for size in args.sizes:
        for shape in (chain, fan, layered):
            pipeline = shape(size)
            graph = pipeline.compile().graph
            ours = theirs = float("inf")
            for _ in range(args.repeat):
                theirs = min(theirs, timed(lambda g=graph: anyio.run(baseline, g)))
                ours = min(ours, timed(lambda p=pipeline: run_pk(p)))
            actions = len(pipeline.compile().actions)
            print(
                f"{shape.__name__:>8} {actions:>7} {ours / actions * 1e6:11.1f} us "
                f"{theirs / actions * 1e6:11.1f} us {ours / theirs:5.2f}x"
            )

    side = 100
    total = min(timed(lambda: run_pk(layered(side * side))) for _ in range(args.repeat))
    print(f"10,000 layered actions, build + compile + run: {total:.3f} s (goal: under 1 s)")

    pipeline = layered(side * side)
    tracemalloc.start()
    run_pk(pipeline)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    per_action = peak / (side * side) / 1e3
    print(f"peak memory during the run: {peak / 1e6:.1f} MB, {per_action:.2f} kB/action")


if __name__ == "__main__":
    main()
