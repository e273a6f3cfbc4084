"""Compile cost per action, next to networkx's own cost of building the same graph.

    python bench/compile.py [--stages 100] [--width 100] [--repeat 7]

Builds a layered pipeline (stages x width actions; every action produces an artifact, consumes
one from the previous stage and references a namespace there), then measures, in the same
process and interleaved so machine noise hits both alike:

- declare: building the ``Pipeline``, which validates every rule;
- compile: ``pipeline.compile()``;
- baseline: ``networkx.DiGraph`` built from the final node and edge lists alone.

It prints the best of ``--repeat`` runs for each, per action, and the ratio of declare+compile to
the baseline. The goal is at most 3x.
"""

from __future__ import annotations

import argparse
import gc
import time

import networkx as nx

import pipelinekit as pk


def declare(stages: int, width: int) -> pk.Pipeline:
    """The layered benchmark pipeline."""
    stage_list = []
    for s in range(stages):
        actions = []
        for w in range(width):
            command = f"make part-{w}"
            inputs: list[str] = []
            if s:
                inputs = [f"a{s - 1}_{w}"]
                command += f" VERSION=#{{N{s - 1}_{w}.Version}}"
            actions.append(
                pk.Action(
                    f"Part{w}",
                    pk.shell(command, output_variables=["Version"]),
                    inputs=inputs,
                    outputs=[f"a{s}_{w}"],
                    namespace=f"N{s}_{w}",
                )
            )
        stage_list.append(pk.Stage(f"Stage{s}", actions))
    return pk.Pipeline("bench", stage_list)


def best_of(repeat: int, fn) -> float:  # noqa: ANN001 - any zero-argument callable
    """The shortest of ``repeat`` timings of ``fn()``, in seconds."""
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=100)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    actions = args.stages * args.width

    pipeline = declare(args.stages, args.width)
    plan = pipeline.compile()
    nodes = list(plan.graph.nodes(data=True))
    edges = list(plan.graph.edges)

    def baseline() -> None:
        graph = nx.DiGraph()
        graph.add_nodes_from(nodes)
        graph.add_edges_from(edges)

    # The declaration objects are built outside the timing: that is the person's own code.
    stages = list(pipeline.stages)
    declare_s = compile_s = baseline_s = float("inf")
    for _ in range(args.repeat):
        baseline_s = min(baseline_s, best_of(1, baseline))
        declare_s = min(declare_s, best_of(1, lambda: pk.Pipeline("bench", stages)))
        compile_s = min(compile_s, best_of(1, pipeline.compile))

    def per_action(seconds: float) -> str:
        return f"{seconds / actions * 1e6:7.2f} us/action  ({seconds * 1e3:8.2f} ms)"

    total = declare_s + compile_s
    print(
        f"{actions} actions ({args.stages} stages x {args.width}), "
        f"{len(nodes)} nodes, {len(edges)} edges, best of {args.repeat}"
    )
    print(f"  networkx build (baseline) {per_action(baseline_s)}")
    print(f"  validate (Pipeline(...))  {per_action(declare_s)}")
    print(f"  compile()                 {per_action(compile_s)}")
    print(f"  validate + compile        {per_action(total)}")
    print(
        f"  ratio to baseline: compile {compile_s / baseline_s:.2f}x, "
        f"validate + compile {total / baseline_s:.2f}x (goal: at most 3x)"
    )


if __name__ == "__main__":
    main()
