"""The fake executor and the local executor agree: the same pipelines, scripted the same way,
go through identical sequences of state changes; and random scripts keep every invariant."""

from __future__ import annotations

import tempfile

import anyio
import networkx as nx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import pipelines

import pipelinekit as pk
from pipelinekit.testing import FakeExecutor, fail, succeed

SCRIPT: dict[str, list[object]] = {}


async def scripted(ctx: pk.ActionContext) -> None:
    """A real Python action doing what the fake's script says, as the fake would."""
    await anyio.lowlevel.checkpoint()
    plan = SCRIPT.get(f"{ctx.stage}.{ctx.action}", [])
    outcome = plan[min(ctx.attempt, len(plan)) - 1] if plan else succeed()
    if isinstance(outcome, pk.testing.Fail):
        raise pk.ActionFailed(outcome.message)
    for name, value in outcome.variables.items():
        ctx.set_variable(name, value)


PROVIDER = pk.python(scripted)


def changes(events):
    return [(e.type, e.stage, e.action, e.state, e.detail.get("attempt")) for e in events]


def lifecycles(events):
    """Each subject's own sequence of state changes.

    Between concurrent actions the interleaving of a local run depends on thread timing (log
    files are written from worker threads), so parity is judged per execution, stage and action.
    """
    found = {}
    for event in events:
        key = (event.type if event.type == "pipeline" else "node", event.stage, event.action)
        found.setdefault(key, []).append((event.type, event.state, event.detail.get("attempt")))
    return found


def both(pipeline, script):
    SCRIPT.clear()
    SCRIPT.update(script)
    fake = FakeExecutor(script)
    fake_result = fake.run(pipeline)
    store = pk.MemoryStore()
    with tempfile.TemporaryDirectory() as workdir:
        local_result = pk.run(pipeline, store=store, workdir=workdir)
    local_events = anyio.run(store.events, local_result.execution_id)
    return fake, fake_result, local_events, local_result


def fixed_pipeline():
    def act(name, **options):
        return pk.Action(name, PROVIDER, retry=pk.Retry(2, delay=0), **options)

    return pk.Pipeline(
        "parity",
        [
            pk.Stage("Build", [act("Compile", namespace="B")]),
            pk.Stage("Test", [act("Unit"), act("Lint"), act("Smoke", run_order=2)]),
            pk.Stage("Deploy", [act("Ship")]),
            pk.Stage("Docs", [act("Publish")], needs=["Build"]),
        ],
    )


def test_green_runs_match_event_for_event():
    fake, fake_result, local_events, local_result = both(fixed_pipeline(), {})
    assert changes(fake.events) == changes(local_events)
    assert fake_result.status is local_result.status is pk.Status.SUCCEEDED


def test_failures_retries_and_variables_match():
    script = {
        "Build.Compile": [succeed(variables={"Version": "9"})],
        "Test.Unit": [fail("flaky"), succeed()],
        "Test.Lint": [fail("style"), fail("style")],
    }
    fake, fake_result, local_events, local_result = both(fixed_pipeline(), script)
    assert lifecycles(fake.events) == lifecycles(local_events)
    assert fake_result.variables == local_result.variables
    for node, action in fake_result.actions.items():
        other = local_result.actions[node]
        assert (action.status, action.error, len(action.attempts)) == (
            other.status,
            other.error,
            len(other.attempts),
        )


@st.composite
def scripts(draw, pipeline):
    nodes = list(pipeline.compile().actions)
    chosen = draw(st.lists(st.sampled_from(nodes), unique=True, max_size=len(nodes)))
    outcome = st.one_of(
        st.builds(fail, st.sampled_from(["boom", "flaky"])),
        st.builds(succeed),
    )
    return {node: draw(st.lists(outcome, min_size=1, max_size=3)) for node in chosen}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_random_scripts_agree_and_keep_the_invariants(data):
    pipeline = data.draw(pipelines(provider=PROVIDER, outputs=False))
    script = data.draw(scripts(pipeline))
    fake, fake_result, local_events, _local_result = both(pipeline, script)
    assert lifecycles(fake.events) == lifecycles(local_events)

    plan = pipeline.compile()
    events = fake.events
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    position = {}
    for event in events:
        if event.type == "action":
            position.setdefault((event.node, event.state), event.sequence)
    failed = {n for n, a in fake_result.actions.items() if a.status is pk.Status.FAILED}
    for node, action in fake_result.actions.items():
        assert len(action.attempts) <= plan.actions[node].retry.attempts
        assert [c.attempt for c in fake.calls if c == node] == list(
            range(1, len(action.attempts) + 1)
        )
        started = position.get((node, pk.Status.IN_PROGRESS))
        for dependency in plan.dependencies(node):
            if started is not None:
                assert position[(dependency, pk.Status.SUCCEEDED)] < started
    downstream = set()
    for node in failed:
        downstream |= {d for d in nx.descendants(plan.graph, node) if d in plan.actions}
    for node in downstream:
        assert fake_result.actions[node].status is pk.Status.NOT_STARTED
    assert fake_result.status is (pk.Status.FAILED if failed else pk.Status.SUCCEEDED)
