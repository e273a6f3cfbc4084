"""What the compiler's own tests left unpinned, found by its mutation run (docs/mutation.md).

Each test here kills a mutant of ``pipelinekit/_compiler/_plan.py`` that survived
``tests/test_compile.py``, ``tests/test_renderings.py`` and ``tests/test_definition_hash.py``.
"""

from __future__ import annotations

import json

import pipelinekit as pk
from pipelinekit._compiler import _plan


def sh(name, command="true", **options):
    return pk.Action(name, pk.shell(command), **options)


def test_the_module_exports_exactly_its_public_names():
    assert _plan.__all__ == ["ACTION", "GATE", "Plan", "compile_pipeline", "gate_id"]
    for name in _plan.__all__:
        assert hasattr(_plan, name), name


def test_a_two_by_two_gate_is_drawn_as_direct_edges():
    # Two actions into a gate, two out of it: four direct edges cost no more than four edges
    # through a junction, so the picture keeps the simpler form (the tie goes to direct edges).
    plan = pk.Pipeline(
        "square",
        [pk.Stage("A", [sh("X"), sh("Y")]), pk.Stage("B", [sh("Z"), sh("W")])],
    ).compile()
    mermaid = plan.to_mermaid()
    assert "((" not in mermaid
    assert [line for line in mermaid.splitlines() if "-->" in line] == [
        "  n0 --> n2",
        "  n0 --> n3",
        "  n1 --> n2",
        "  n1 --> n3",
    ]
    dot = plan.to_dot()
    assert "shape=point" not in dot
    assert dot.count("->") == 4


def test_json_is_indented_by_two_spaces():
    # The text is what stores keep and what `pipelinekit graph` prints, not only its parsed value.
    plan = pk.Pipeline("p", [pk.Stage("S", [sh("A")])]).compile()
    text = plan.to_json()
    assert text == json.dumps(json.loads(text), indent=2)
    assert '\n  "pipeline": "p",' in text


def test_the_plan_knows_which_actions_hold_references():
    # A run records the resolved provider only for these actions, so the plan must carry them.
    plan = pk.Pipeline(
        "p",
        [
            pk.Stage(
                "S",
                [sh("Plain"), sh("Named", "echo #{pipeline.name}"), sh("Also", "true")],
            )
        ],
    ).compile()
    assert plan.referencing == frozenset({"S.Named"})
