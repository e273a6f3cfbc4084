"""Recording cost: a run on SQLiteStore next to the same run on MemoryStore.

    python bench/store.py [--size 1000] [--repeat 5]

Runs the layered no-op pipeline of ``bench/scheduler.py`` (1,000 actions by default) through
``pk.arun`` with each store, interleaved in one process, and prints the best time of each, per
action, and the ratio. The SQLite rounds share one database, as history accumulates in real use.
Goal: SQLite at most 2x MemoryStore.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

from scheduler import layered

import pipelinekit as pk


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    pipeline = layered(args.size)
    actions = len(pipeline.compile().actions)
    times: dict[str, float] = {"memory": float("inf"), "sqlite": float("inf")}
    events = 0
    with tempfile.TemporaryDirectory(prefix="pk-bench-store-") as tmp:
        for _ in range(args.repeat):
            for name in ("memory", "sqlite"):
                # One database for every round, as history accumulates in real use.
                store = pk.MemoryStore() if name == "memory" else pk.SQLiteStore(Path(tmp) / "s.db")
                gc.collect()
                start = time.perf_counter()
                result = pk.run(pipeline, store=store, workdir=tmp)
                times[name] = min(times[name], time.perf_counter() - start)
                assert result.succeeded  # noqa: S101
                if name == "sqlite":
                    store.close()
        events = 2 + 2 * len(pipeline.stages) + 2 * actions
    for name, seconds in times.items():
        print(f"{name:>7}: {seconds * 1e3:7.1f} ms  {seconds / actions * 1e6:6.1f} us/action")
    print(
        f"sqlite / memory: {times['sqlite'] / times['memory']:.2f}x "
        f"({actions} actions, {events} events; goal: at most 2x)"
    )


if __name__ == "__main__":
    main()
