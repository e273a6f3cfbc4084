"""Property-based tests of the compiler: random valid pipelines compile to a DAG whose order()
respects every dependency and is deterministic; random cycles in needs are always reported."""

from __future__ import annotations

import itertools
import re

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import pipelines

import pipelinekit as pk


def expected_dependencies(pipeline: pk.Pipeline) -> dict[str, set[str]]:
    """The action-level dependencies, worked out directly from the declaration's semantics."""
    names = [stage.name for stage in pipeline.stages]
    last_group: dict[str, list[str]] = {}
    deps: dict[str, set[str]] = {}
    for index, stage in enumerate(pipeline.stages):
        groups = stage.groups()
        default = [names[index - 1]] if index else []
        needed = default if stage.needs is None else list(stage.needs)
        previous = [node for need in needed for node in last_group[need]]
        for _, actions in groups:
            ids = [f"{stage.name}.{action.name}" for action in actions]
            for node in ids:
                deps[node] = set(previous)
            previous = ids
        last_group[stage.name] = previous
    return deps


@settings(max_examples=150, deadline=None)
@given(pipelines())
def test_order_respects_every_dependency(pipeline):
    plan = pipeline.compile()
    assert nx.is_directed_acyclic_graph(plan.graph)
    order = plan.order()
    flat = [node for group in order for node in group]
    assert sorted(flat) == sorted(plan.actions)
    step = {node: i for i, group in enumerate(order) for node in group}
    expected = expected_dependencies(pipeline)
    for node, deps in expected.items():
        assert set(plan.dependencies(node)) == deps
        for dep in deps:
            assert step[dep] < step[node]
        # as early as possible: one step after the latest dependency
        assert step[node] == (max((step[d] for d in deps), default=-1) + 1)


@settings(max_examples=50, deadline=None)
@given(pipelines())
def test_compiling_is_deterministic(pipeline):
    rebuilt = pk.Pipeline(pipeline.name, list(pipeline.stages))
    assert pipeline.compile().order() == rebuilt.compile().order()
    assert pipeline.compile().to_json() == rebuilt.compile().to_json()
    assert pipeline.compile().to_mermaid() == rebuilt.compile().to_mermaid()


@st.composite
def cyclic_pipelines(draw):
    count = draw(st.integers(1, 6))
    names = [f"S{i}" for i in range(count)]
    needs: dict[str, set[str]] = {name: set() for name in names}
    cycle = draw(st.permutations(names))
    length = draw(st.integers(1, count))
    loop = list(cycle[:length])
    for i, name in enumerate(loop):
        needs[loop[(i + 1) % length]].add(name)
    for _ in range(draw(st.integers(0, 5))):
        a, b = draw(st.sampled_from(names)), draw(st.sampled_from(names))
        needs[b].add(a)
    stages = [
        pk.Stage(name, [pk.Action("A", pk.shell("true"))], needs=sorted(needs[name]))
        for name in names
    ]
    return stages, needs


@settings(max_examples=150, deadline=None)
@given(cyclic_pipelines())
def test_cycles_in_needs_are_rejected_with_a_real_cycle(case):
    stages, needs = case
    try:
        pk.Pipeline("cyclic", stages)
    except pk.PipelineDefinitionError as error:
        cycles = [p for p in error.problems if "cycle" in p.message]
        assert cycles
        for problem in cycles:
            path = re.search(r"cycle: (.*?);", problem.message)
            assert path is not None
            hops = path.group(1).split(" -> ")
            assert hops[0] == hops[-1]
            for before, after in itertools.pairwise(hops):
                assert before in needs[after], (before, after, problem.message)
    else:
        raise AssertionError("a pipeline with a cycle in needs was accepted")
