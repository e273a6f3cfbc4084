"""Recording cost: a run on SQLiteStore next to the same run on MemoryStore.

    python bench/store.py [--size 1000] [--repeat 15]

Runs the no-op pipelines of ``bench/scheduler.py`` (layered, fan-out/fan-in and chain; 1,000
actions by default) through ``pk.run`` with each store, interleaved in one process, and prints
the best time of each, their ratio, and the median of the ratios of the rounds (each round runs
both, close in time, which this noisy machine needs). The SQLite rounds share one database, as
history accumulates in real use.

Goal: SQLite at most 2x MemoryStore on the layered pipeline (the scheduler benchmark's). The
actions that become ready together write their starts in one transaction before they run, so a
wide pipeline pays little; a chain is the worst case: each action's start must be on disk before
it runs and nothing can share its transaction, so it pays a full transaction and a thread round
trip per action, which is more than a no-op action costs.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from pathlib import Path

from scheduler import chain, fan, layered

import pipelinekit as pk


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    print(f"{'shape':>8} {'actions':>7} {'memory':>10} {'sqlite':>10} {'ratio':>6} {'median':>7}")
    for shape in (layered, fan, chain):
        pipeline = shape(args.size)
        actions = len(pipeline.compile().actions)
        times: dict[str, list[float]] = {"memory": [], "sqlite": []}
        with tempfile.TemporaryDirectory(prefix="pk-bench-store-") as tmp:
            for _ in range(args.repeat):
                for name in ("memory", "sqlite"):
                    # One database for every round, as history accumulates in real use.
                    store = (
                        pk.MemoryStore() if name == "memory" else pk.SQLiteStore(Path(tmp) / "s.db")
                    )
                    gc.collect()
                    start = time.perf_counter()
                    result = pk.run(pipeline, store=store, workdir=tmp)
                    times[name].append(time.perf_counter() - start)
                    assert result.succeeded  # noqa: S101
                    if name == "sqlite":
                        store.close()
        memory, sqlite = min(times["memory"]), min(times["sqlite"])
        rounds = zip(times["sqlite"], times["memory"], strict=True)
        median = statistics.median(s / m for s, m in rounds)
        print(
            f"{shape.__name__:>8} {actions:>7} {memory * 1e3:8.1f}ms {sqlite * 1e3:8.1f}ms "
            f"{sqlite / memory:5.2f}x {median:6.2f}x"
        )
    print("goal: SQLite at most 2x MemoryStore on the layered pipeline")


if __name__ == "__main__":
    main()
