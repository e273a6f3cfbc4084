"""The compiler: graph shape, gates, parallel order and the three renderings."""

from __future__ import annotations

import json

import networkx as nx

import pipelinekit as pk


def sh(name, **options):
    return pk.Action(name, pk.shell("true"), **options)


def webapp():
    return pk.Pipeline(
        "webapp",
        [
            pk.Stage("Source", [sh("Checkout", outputs=["src"], namespace="Src")]),
            pk.Stage("Build", [sh("Compile", inputs=["src"], outputs=["dist"])]),
            pk.Stage(
                "Test",
                [
                    sh("Unit", inputs=["dist"]),
                    sh("Lint", inputs=["src"]),
                    sh("Smoke", inputs=["dist"], run_order=2),
                ],
            ),
            pk.Stage("Deploy", [sh("Ship", inputs=["dist"])]),
        ],
    )


def layered(width, depth):
    return pk.Pipeline(
        "layered",
        [pk.Stage(f"S{d}", [sh(f"A{w}") for w in range(width)]) for d in range(depth)],
    )


def test_nodes_are_stage_dot_action_and_hold_their_action():
    plan = webapp().compile()
    assert list(plan.actions) == [
        "Source.Checkout",
        "Build.Compile",
        "Test.Unit",
        "Test.Lint",
        "Test.Smoke",
        "Deploy.Ship",
    ]
    data = plan.graph.nodes["Test.Unit"]
    assert data["kind"] == "action"
    assert data["action"] == webapp().stages[2].actions[0]
    assert data["stage"] == "Test"
    assert data["run_order"] == 1


def test_order_gives_the_parallel_groups():
    assert webapp().compile().order() == [
        ["Source.Checkout"],
        ["Build.Compile"],
        ["Test.Unit", "Test.Lint"],
        ["Test.Smoke"],
        ["Deploy.Ship"],
    ]
    assert pk.compile(webapp()).order() == webapp().compile().order()


def test_dependencies_see_through_gates():
    plan = webapp().compile()
    assert sorted(plan.dependencies("Test.Smoke")) == ["Test.Lint", "Test.Unit"]
    assert plan.dependencies("Source.Checkout") == []
    assert plan.dependencies("Deploy.Ship") == ["Test.Smoke"]


def test_the_graph_is_a_dag_with_one_gate_per_group():
    plan = webapp().compile()
    assert nx.is_directed_acyclic_graph(plan.graph)
    gates = [n for n, d in plan.graph.nodes(data=True) if d["kind"] == "gate"]
    assert gates == ["Source#1", "Build#1", "Test#1", "Test#2", "Deploy#1"]
    assert plan.exit_gates["Test"] == "Test#2"


def test_stage_boundaries_cost_linear_edges():
    width, depth = 100, 5
    plan = layered(width, depth).compile()
    # each action points to its gate, and each non-first stage's actions hang off one gate
    assert plan.graph.number_of_edges() == width * depth + width * (depth - 1)
    assert plan.graph.number_of_nodes() == width * depth + depth


def test_needs_form_a_dag_of_stages():
    plan = pk.Pipeline(
        "regions",
        [
            pk.Stage("Build", [sh("Compile")]),
            pk.Stage("Approve", [sh("Gate")]),
            pk.Stage("East", [sh("Deploy")], needs=["Approve"]),
            pk.Stage("West", [sh("Deploy"), sh("Verify", run_order=2)], needs=["Approve"]),
            pk.Stage("Report", [sh("Send")], needs=["East", "West"]),
            pk.Stage("Docs", [sh("Publish")], needs=[]),
        ],
    ).compile()
    assert plan.order() == [
        ["Build.Compile", "Docs.Publish"],
        ["Approve.Gate"],
        ["East.Deploy", "West.Deploy"],
        ["West.Verify"],
        ["Report.Send"],
    ]
    assert set(plan.stage_graph.predecessors("Report")) == {"East", "West"}
    assert sorted(plan.dependencies("Report.Send")) == ["East.Deploy", "West.Verify"]


def test_json_describes_stages_nodes_edges_and_order():
    document = json.loads(webapp().compile().to_json())
    assert document["pipeline"] == "webapp"
    assert document["execution_mode"] == "SUPERSEDED"
    assert document["stages"][1] == {
        "name": "Build",
        "needs": ["Source"],
        "actions": ["Build.Compile"],
    }
    nodes = {node["id"]: node for node in document["nodes"]}
    assert nodes["Source.Checkout"]["action_type"] == "Compute/AWS/Commands/1"
    assert nodes["Source.Checkout"]["namespace"] == "Src"
    assert nodes["Test#1"]["kind"] == "gate"
    assert ["Test.Unit", "Test#1"] in document["edges"]
    assert document["order"][2] == ["Test.Unit", "Test.Lint"]


def test_mermaid_draws_stages_as_subgraphs_and_collapses_simple_gates():
    text = webapp().compile().to_mermaid()
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    assert '  subgraph s2["Test"]' in lines
    assert '    n2["Unit"]' in lines
    assert "  n1 --> n2" in lines  # Build.Compile -> Test.Unit, no gate in between
    assert "((" not in text


def test_wide_boundaries_are_drawn_through_a_junction():
    text = layered(3, 2).compile().to_mermaid()
    assert text.count("-->") == 6  # 3 into the junction, 3 out of it, instead of 9
    assert 'j0((" "))' in text
    dot = layered(3, 2).compile().to_dot()
    assert '"S0#1" [shape=point' in dot
    assert dot.count("->") == 6


def test_dot_has_a_cluster_per_stage_and_quoted_ids():
    text = webapp().compile().to_dot()
    assert text.startswith('digraph "webapp" {')
    assert "subgraph cluster_2 {" in text
    assert 'label="Test";' in text
    assert '"Test.Unit" -> "Test.Smoke";' in text
    assert text.rstrip().endswith("}")
