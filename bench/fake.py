"""Fake runs: actions per second of ``FakeExecutor.run`` next to the bare anyio baseline.

    python bench/fake.py [--repeat 5]

Runs 1,000- and 10,000-action layered pipelines (sqrt(n) stages of sqrt(n) actions, every action
"taking" a virtual minute) through the fake executor, and in the same process the bare anyio
task-group baseline of ``bench/scheduler.py`` on the same compiled graph. Prints the best time
of each, actions per second, and the ratio. Goals: 1,000 actions under 50 ms, 10,000 layered
actions under 1 s.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from datetime import timedelta

import anyio
from scheduler import baseline, timed

import pipelinekit as pk
from pipelinekit.testing import FakeExecutor, succeed


def layered(size: int) -> pk.Pipeline:
    """sqrt(size) stages of sqrt(size) actions (the fake never runs their commands)."""
    side = math.isqrt(size)
    return pk.Pipeline(
        "layered",
        [
            pk.Stage(f"S{i}", [pk.Action(f"A{j}", pk.shell("true")) for j in range(side)])
            for i in range(side)
        ],
    )


def best(repeat: int, fn: Callable[[], object]) -> float:
    """The shortest of ``repeat`` timings, in seconds."""
    return min(timed(fn) for _ in range(repeat))


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    header = ("actions", "outcome", "fake run", "actions/s", "baseline", "actions/s", "ratio")
    print("{:>8} {:>14} {:>10} {:>10} {:>10} {:>10} {:>6}".format(*header))
    for size in (1000, 10000):
        pipeline = layered(size)
        actions = len(pipeline.compile().actions)
        graph = pipeline.compile().graph
        theirs = best(args.repeat, lambda g=graph: anyio.run(baseline, g))
        for label, outcome in (
            ("succeed()", succeed()),
            ("after=1 minute", succeed(after=timedelta(minutes=1))),
        ):
            fake = FakeExecutor(default=outcome)
            ours = best(args.repeat, lambda p=pipeline, f=fake: f.run(p))
            assert fake.result is not None  # noqa: S101
            assert fake.result.succeeded, fake.result.status  # noqa: S101
            print(
                f"{actions:>8} {label:>14} {ours * 1e3:8.1f}ms {actions / ours:10.0f} "
                f"{theirs * 1e3:8.1f}ms {actions / theirs:10.0f} {ours / theirs:5.2f}x"
            )
    print(f"virtual duration of the last run: {fake.result.duration}")


if __name__ == "__main__":
    main()
