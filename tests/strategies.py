"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

from hypothesis import strategies as st

import pipelinekit as pk


@st.composite
def pipelines(draw, provider=None, *, outputs=True):
    """Random valid pipelines: up to 7 stages with random needs and run orders."""
    stage_count = draw(st.integers(1, 7))
    stages = []
    for s in range(stage_count):
        if s == 0:
            needs = draw(st.sampled_from([None, []]))
        else:
            needs = draw(
                st.one_of(
                    st.none(),
                    st.lists(st.integers(0, s - 1), unique=True, max_size=3).map(
                        lambda xs: [f"S{x}" for x in xs]
                    ),
                )
            )
        actions = []
        for a in range(draw(st.integers(1, 5))):
            run_order = draw(st.integers(1, 4))
            actions.append(
                pk.Action(
                    f"A{a}",
                    provider if provider is not None else pk.shell("true"),
                    run_order=run_order,
                    outputs=[f"s{s}a{a}"] if outputs else [],
                    retry=pk.Retry(draw(st.integers(1, 3)), delay=0),
                )
            )
        stages.append(pk.Stage(f"S{s}", actions, needs=needs))
    return pk.Pipeline("random", stages)
