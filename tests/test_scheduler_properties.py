"""Property-based tests of the scheduler: for random DAGs and random failing actions, nothing
starts before its dependencies succeeded, nothing runs more often than its retry policy allows,
and everything downstream of a failure never starts."""

from __future__ import annotations

import tempfile

import anyio
import networkx as nx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import pipelines

import pipelinekit as pk

LOG: list[tuple[str, str, int]] = []
FAILURES: dict[str, int] = {}


async def scripted(ctx: pk.ActionContext) -> None:
    node = f"{ctx.stage}.{ctx.action}"
    LOG.append(("start", node, ctx.attempt))
    await anyio.lowlevel.checkpoint()
    if ctx.attempt <= FAILURES.get(node, 0):
        LOG.append(("fail", node, ctx.attempt))
        msg = f"scripted failure {ctx.attempt}"
        raise pk.ActionFailed(msg)
    LOG.append(("end", node, ctx.attempt))


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(pipelines(provider=pk.python(scripted)), st.data())
def test_scheduler_invariants(pipeline, data):
    plan = pipeline.compile()
    nodes = list(plan.actions)
    failures = data.draw(
        st.dictionaries(st.sampled_from(nodes), st.integers(1, 4), max_size=len(nodes))
    )
    LOG.clear()
    FAILURES.clear()
    FAILURES.update(failures)
    with tempfile.TemporaryDirectory() as workdir:
        result = pk.run(pipeline, workdir=workdir)

    position = {(kind, node, attempt): i for i, (kind, node, attempt) in enumerate(LOG)}
    succeeded_at = {node: i for (kind, node, _), i in position.items() if kind == "end"}
    failed = set()
    for node in nodes:
        action = result.actions[node]
        allowed = plan.actions[node].retry.attempts
        starts = [entry for entry in LOG if entry[0] == "start" and entry[1] == node]
        assert len(starts) <= allowed
        assert len(starts) == len(action.attempts)
        if starts:
            first_start = position[starts[0]]
            for dependency in plan.dependencies(node):
                assert dependency in succeeded_at, (dependency, node)
                assert succeeded_at[dependency] < first_start
        if action.status is pk.Status.FAILED:
            failed.add(node)
            assert len(starts) == min(allowed, failures.get(node, 0))
        elif action.status is pk.Status.SUCCEEDED:
            assert failures.get(node, 0) < allowed
    downstream = set()
    for node in failed:
        downstream |= {d for d in nx.descendants(plan.graph, node) if d in plan.actions}
    for node in downstream:
        assert result.actions[node].status is pk.Status.NOT_STARTED, node
    for node in set(nodes) - downstream - failed:
        assert result.actions[node].status is pk.Status.SUCCEEDED, node
    assert result.status is (pk.Status.FAILED if failed else pk.Status.SUCCEEDED)
    for name, stage in result.stages.items():
        members = [f"{name}.{a.name}" for a in pipeline.stage(name).actions]
        statuses = {result.actions[m].status for m in members}
        if pk.Status.FAILED in statuses:
            assert stage.status is pk.Status.FAILED
        elif statuses == {pk.Status.SUCCEEDED}:
            assert stage.status is pk.Status.SUCCEEDED
        elif statuses == {pk.Status.NOT_STARTED}:
            assert stage.status is pk.Status.NOT_STARTED
