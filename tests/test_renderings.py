"""The three renderings of a branching pipeline, compared whole.

The pipeline has what a straight line of stages lacks: stages with ``needs``, two stages that
need the same one, a stage that nothing needs before the last one (Notify: its exit gate has no
successor, and every edge drawn after it must still be drawn), parallel actions, a second
run_order group, a gate wide enough to be drawn as a junction, and a stage whose ``needs`` are
written in neither declaration nor alphabetical order.
"""

from __future__ import annotations

import json
import textwrap

import pytest

import pipelinekit as pk

SOURCE = textwrap.dedent(
    """
    import pipelinekit as pk


    def sh(name, **options):
        return pk.Action(name, pk.shell("true"), **options)


    pipeline = pk.Pipeline(
        "release",
        [
            pk.Stage("Source", [sh("Checkout", outputs=["src"], namespace="Src")]),
            pk.Stage(
                "Build",
                [sh("Compile", inputs=["src"], outputs=["dist"]), sh("Docs", inputs=["src"])],
            ),
            pk.Stage("Audit", [sh("Licenses", inputs=["src"])], needs=["Source"]),
            pk.Stage("Notify", [sh("Mail")], needs=["Source"]),
            pk.Stage(
                "Test",
                [
                    sh("Unit", inputs=["dist"]),
                    sh("Lint", inputs=["src"]),
                    sh("Smoke", inputs=["dist"], run_order=2, writable_inputs=True),
                ],
                needs=["Build"],
            ),
            pk.Stage("Deploy", [sh("Ship", inputs=["dist"])], needs=["Test", "Audit", "Build"]),
        ],
        variables=[pk.Variable("Token", default="s3cret", secret=True), pk.Variable("Env")],
    )
    """
)

MERMAID = """\
flowchart LR
  subgraph s0["Source"]
    n0["Checkout"]
  end
  subgraph s1["Build"]
    n1["Compile"]
    n2["Docs"]
  end
  subgraph s2["Audit"]
    n3["Licenses"]
  end
  subgraph s3["Notify"]
    n4["Mail"]
  end
  subgraph s4["Test"]
    n5["Unit"]
    n6["Lint"]
    n7["Smoke"]
  end
  subgraph s5["Deploy"]
    n8["Ship"]
  end
  j0((" "))
  n0 --> n1
  n0 --> n2
  n0 --> n3
  n0 --> n4
  n1 --> j0
  n2 --> j0
  j0 --> n5
  j0 --> n6
  j0 --> n8
  n3 --> n8
  n5 --> n7
  n6 --> n7
  n7 --> n8
"""

DOT = """\
digraph "release" {
  rankdir=LR;
  node [shape=box, style=rounded];
  subgraph cluster_0 {
    label="Source";
    "Source.Checkout" [label="Checkout"];
  }
  subgraph cluster_1 {
    label="Build";
    "Build.Compile" [label="Compile"];
    "Build.Docs" [label="Docs"];
  }
  subgraph cluster_2 {
    label="Audit";
    "Audit.Licenses" [label="Licenses"];
  }
  subgraph cluster_3 {
    label="Notify";
    "Notify.Mail" [label="Mail"];
  }
  subgraph cluster_4 {
    label="Test";
    "Test.Unit" [label="Unit"];
    "Test.Lint" [label="Lint"];
    "Test.Smoke" [label="Smoke"];
  }
  subgraph cluster_5 {
    label="Deploy";
    "Deploy.Ship" [label="Ship"];
  }
  "Build#1" [shape=point, width=0.08, label=""];
  "Source.Checkout" -> "Build.Compile";
  "Source.Checkout" -> "Build.Docs";
  "Source.Checkout" -> "Audit.Licenses";
  "Source.Checkout" -> "Notify.Mail";
  "Build.Compile" -> "Build#1";
  "Build.Docs" -> "Build#1";
  "Build#1" -> "Test.Unit";
  "Build#1" -> "Test.Lint";
  "Build#1" -> "Deploy.Ship";
  "Audit.Licenses" -> "Deploy.Ship";
  "Test.Unit" -> "Test.Smoke";
  "Test.Lint" -> "Test.Smoke";
  "Test.Smoke" -> "Deploy.Ship";
}
"""

SHELL = "Compute/AWS/Commands/1"


def action(node, run_order=1, inputs=(), outputs=(), namespace=None, **extra):
    stage, name = node.split(".")
    entry = {
        "id": node,
        "kind": "action",
        "stage": stage,
        "run_order": run_order,
        "action": name,
        "action_type": SHELL,
        "inputs": list(inputs),
        "outputs": list(outputs),
        "namespace": namespace,
    }
    return entry | extra


def gate(node):
    stage, run_order = node.split("#")
    return {"id": node, "kind": "gate", "stage": stage, "run_order": int(run_order)}


JSON = {
    "pipeline": "release",
    "execution_mode": "SUPERSEDED",
    # The secret's default is masked: the JSON is kept in stores and printed by `graph`.
    "variables": [{"name": "Token", "default": "****"}, {"name": "Env", "default": None}],
    "stages": [
        {"name": "Source", "needs": [], "actions": ["Source.Checkout"]},
        {"name": "Build", "needs": ["Source"], "actions": ["Build.Compile", "Build.Docs"]},
        {"name": "Audit", "needs": ["Source"], "actions": ["Audit.Licenses"]},
        {"name": "Notify", "needs": ["Source"], "actions": ["Notify.Mail"]},
        {"name": "Test", "needs": ["Build"], "actions": ["Test.Unit", "Test.Lint", "Test.Smoke"]},
        # Written ["Test", "Audit", "Build"]: listed in the pipeline's declaration order, so
        # reordering a stage's needs (which changes nothing) leaves the JSON as it was.
        {"name": "Deploy", "needs": ["Build", "Audit", "Test"], "actions": ["Deploy.Ship"]},
    ],
    "nodes": [
        action("Source.Checkout", outputs=["src"], namespace="Src"),
        gate("Source#1"),
        action("Build.Compile", inputs=["src"], outputs=["dist"]),
        action("Build.Docs", inputs=["src"]),
        gate("Build#1"),
        action("Audit.Licenses", inputs=["src"]),
        gate("Audit#1"),
        action("Notify.Mail"),
        gate("Notify#1"),
        action("Test.Unit", inputs=["dist"]),
        action("Test.Lint", inputs=["src"]),
        gate("Test#1"),
        action("Test.Smoke", run_order=2, inputs=["dist"], writable_inputs=True),
        gate("Test#2"),
        action("Deploy.Ship", inputs=["dist"]),
        gate("Deploy#1"),
    ],
    "edges": [
        ["Source.Checkout", "Source#1"],
        ["Source#1", "Build.Compile"],
        ["Source#1", "Build.Docs"],
        ["Source#1", "Audit.Licenses"],
        ["Source#1", "Notify.Mail"],
        ["Build.Compile", "Build#1"],
        ["Build.Docs", "Build#1"],
        ["Build#1", "Test.Unit"],
        ["Build#1", "Test.Lint"],
        ["Build#1", "Deploy.Ship"],
        ["Audit.Licenses", "Audit#1"],
        ["Audit#1", "Deploy.Ship"],
        ["Notify.Mail", "Notify#1"],
        ["Test.Unit", "Test#1"],
        ["Test.Lint", "Test#1"],
        ["Test#1", "Test.Smoke"],
        ["Test.Smoke", "Test#2"],
        ["Test#2", "Deploy.Ship"],
        ["Deploy.Ship", "Deploy#1"],
    ],
    "order": [
        ["Source.Checkout"],
        ["Build.Compile", "Build.Docs", "Audit.Licenses", "Notify.Mail"],
        ["Test.Unit", "Test.Lint"],
        ["Test.Smoke"],
        ["Deploy.Ship"],
    ],
}


def release():
    namespace: dict[str, object] = {}
    exec(compile(SOURCE, "release.py", "exec"), namespace)  # noqa: S102 - our own source text
    pipeline = namespace["pipeline"]
    assert isinstance(pipeline, pk.Pipeline)
    return pipeline


def test_mermaid_is_drawn_whole():
    assert release().compile().to_mermaid() == MERMAID


def test_dot_is_drawn_whole():
    assert release().compile().to_dot() == DOT


def test_json_holds_the_whole_plan():
    text = release().compile().to_json()
    assert json.loads(text) == JSON
    # Key order is part of what a reader sees (and of what a store keeps).
    assert list(json.loads(text)) == list(JSON)
    assert "s3cret" not in text


def test_json_needs_follow_the_declaration_order_whatever_order_they_are_written_in():
    def deploy_needs(needs):
        text = SOURCE.replace('needs=["Test", "Audit", "Build"]', f"needs={needs!r}")
        assert text != SOURCE
        namespace: dict[str, object] = {}
        exec(compile(text, "release.py", "exec"), namespace)  # noqa: S102 - our own source text
        plan = namespace["pipeline"].compile()  # type: ignore[attr-defined]
        return json.loads(plan.to_json())["stages"][-1]["needs"]

    expected = ["Build", "Audit", "Test"]
    assert deploy_needs(["Audit", "Build", "Test"]) == expected  # alphabetical
    assert deploy_needs(["Build", "Test", "Audit"]) == expected
    assert deploy_needs(["Test", "Build", "Audit"]) == expected


@pytest.mark.parametrize(
    ("form", "expected"),
    [("mermaid", MERMAID), ("dot", DOT), ("json", JSON)],
)
def test_the_graph_command_prints_the_same_renderings(tmp_path, cli, form, expected):
    path = tmp_path / "release.py"
    path.write_text(SOURCE)
    status, out, err = cli("graph", str(path), "--format", form)
    assert (status, err) == (0, "")
    if form == "json":
        assert json.loads(out) == expected
    else:
        assert out == expected
