"""The compiler: graph shape, gates, parallel order and the three renderings."""

from __future__ import annotations

import json

import networkx as nx
import pytest

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


def stages(*pairs):
    return pk.Pipeline("p", list(pairs))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: stages(
                pk.Stage("Build", [sh("A")]), pk.Stage("Test", [sh("B")], needs=["Biuld"])
            ),
            (
                "pipeline 'p', stage 'Test', field 'needs': needs stage 'Biuld', which does not "
                "exist; did you mean 'Build'?"
            ),
        ),
        (
            lambda: stages(
                pk.Stage("A", [sh("X")], needs=["C"]),
                pk.Stage("B", [sh("Y")], needs=["A"]),
                pk.Stage("C", [sh("Z")], needs=["B"]),
            ),
            (
                "pipeline 'p', stage 'A', field 'needs': stages depend on each other in a cycle: "
                "A -> B -> C -> A; remove one of these from the others' needs"
            ),
        ),
        (
            lambda: stages(
                pk.Stage("Build", [sh("A", outputs=["dist"])]),
                pk.Stage("Test", [sh("B", inputs=["dsit"])]),
            ),
            (
                "pipeline 'p', stage 'Test', action 'B', field 'inputs': input artifact 'dsit' is "
                "not produced by any action; did you mean 'dist'?"
            ),
        ),
        (
            lambda: stages(
                pk.Stage("Build", [sh("A", outputs=["dist"]), sh("B", inputs=["dist"])])
            ),
            (
                "pipeline 'p', stage 'Build', action 'B', field 'inputs': input artifact 'dist' is "
                "produced by 'Build.A', which runs in the same run_order group (1); give the "
                "consumer a higher run_order"
            ),
        ),
        (
            lambda: stages(
                pk.Stage(
                    "Build", [sh("A", outputs=["dist"], run_order=2), sh("B", inputs=["dist"])]
                )
            ),
            (
                "pipeline 'p', stage 'Build', action 'B', field 'inputs': input artifact 'dist' is "
                "produced by 'Build.A', which runs later in the stage (run_order 2 > 1); give the "
                "consumer a higher run_order"
            ),
        ),
        (
            lambda: stages(
                pk.Stage("Build", [sh("A", outputs=["dist"])]),
                pk.Stage("Docs", [sh("D")], needs=[]),
                pk.Stage("Test", [sh("B", inputs=["dist"])], needs=["Docs"]),
            ),
            (
                "pipeline 'p', stage 'Test', action 'B', field 'inputs': input artifact 'dist' is "
                "produced by 'Build.A', whose stage 'Build' is not certain to finish before stage "
                "'Test' starts; add 'Build' to the needs of 'Test'"
            ),
        ),
        (
            lambda: stages(
                pk.Stage("Test", [sh("B", inputs=["dist"])]),
                pk.Stage("Build", [sh("A", outputs=["dist"])]),
            ),
            (
                "pipeline 'p', stage 'Test', action 'B', field 'inputs': input artifact 'dist' is "
                "produced by 'Build.A', whose stage 'Build' runs after stage 'Test'; move one of "
                "the two"
            ),
        ),
        (
            lambda: stages(pk.Stage("Build", [sh("A", namespace="N"), sh("B", namespace="N")])),
            (
                "pipeline 'p', stage 'Build', action 'B', field 'namespace': namespace 'N' is also "
                "used by 'Build.A'; namespaces are unique in a pipeline"
            ),
        ),
    ],
    ids=[
        "unknown need",
        "cycle",
        "unknown input",
        "same group",
        "later group",
        "not certain before",
        "later stage",
        "namespace twice",
    ],
)
def test_a_wiring_error_quotes_what_is_at_fault_and_the_fix(build, message):
    with pytest.raises(pk.PipelineDefinitionError) as caught:
        build()
    assert str(caught.value) == message
