"""The compiler: a validated pipeline becomes a ``Plan``, a DAG of actions and gates.

Nodes are ``"Stage.Action"`` for actions and ``"Stage#<run_order>"`` for gates (``#`` is never part
of a name, so the two cannot collide). Each run_order group of a stage is followed by one gate that
every action of the group points to; the next group's actions, and the first group of every stage
that needs this one, hang off the gate of the last group. A boundary between two groups of W
actions therefore costs 2W edges, not W², and compiling stays linear in the size of the pipeline.

Every action-to-action dependency is exactly one gate long, so in networkx's topological
generations actions and gates alternate, and dropping the gates leaves the parallel groups.

The plan keeps its nodes and edges as plain lists and dictionaries, which is all a run needs
(successors, predecessor counts, kinds); the networkx graphs (``graph``, ``stage_graph``) are
built on first use, for the checks and exports that ask for them, so that running a pipeline
never imports networkx.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

from pipelinekit._compiler._fingerprints import stage_fingerprints
from pipelinekit._model._declarations import Action
from pipelinekit._model._secrets import MASK
from pipelinekit._model._stage_graph import StageGraph

if TYPE_CHECKING:
    from pipelinekit._model._pipeline import Pipeline

__all__ = ["ACTION", "GATE", "Plan", "compile_pipeline", "gate_id"]

ACTION: Literal["action"] = "action"
GATE: Literal["gate"] = "gate"


def gate_id(stage: str, run_order: int) -> str:
    """The node id of the gate after group ``run_order`` of ``stage``."""
    return f"{stage}#{run_order}"


@attrs.frozen(eq=False)
class Plan:
    """A compiled pipeline.

    ``graph`` is a ``networkx.DiGraph`` (built when first asked for). Action nodes are
    ``"Stage.Action"`` with attributes ``kind="action"``, ``stage``, ``action`` (the
    ``Action``), ``run_order`` and ``position`` (declaration order); gate nodes are
    ``"Stage#<run_order>"`` with ``kind="gate"``, ``stage`` and ``run_order``. An edge means
    "must finish before". ``stage_graph`` has one node per stage and an edge from each stage to
    those that need it. ``exit_gates`` maps each stage to the gate that closes it. ``nodes``
    and ``edges`` hold the same graph as plain data.
    """

    pipeline: Pipeline
    #: Each node with its attributes, in the order they were made.
    nodes: Mapping[str, Mapping[str, Any]]
    #: ``(before, after)`` pairs.
    edges: tuple[tuple[str, str], ...]
    #: Each stage's direct needs.
    stage_needs: Mapping[str, tuple[str, ...]]
    exit_gates: Mapping[str, str]
    actions: Mapping[str, Action]
    #: The actions whose configuration or provider holds ``#{...}`` references.
    referencing: frozenset[str] = frozenset()

    @functools.cached_property
    def graph(self) -> Any:  # noqa: ANN401 - networkx ships no types
        """The plan as a ``networkx.DiGraph`` (built on first use; yours to read, not change)."""
        import networkx as nx  # noqa: PLC0415 - only checks and exports need it

        graph = nx.DiGraph(pipeline=self.pipeline.name)
        graph.add_nodes_from(self.nodes.items())
        graph.add_edges_from(self.edges)
        return graph

    @functools.cached_property
    def stage_graph(self) -> Any:  # noqa: ANN401 - networkx ships no types
        """One node per stage, an edge from each stage to those that need it (networkx)."""
        import networkx as nx  # noqa: PLC0415 - only checks and exports need it

        graph = nx.DiGraph()
        graph.add_nodes_from(self.stage_needs)
        graph.add_edges_from(
            (before, after) for after, needs in self.stage_needs.items() for before in needs
        )
        return graph

    @functools.cached_property
    def in_degree(self) -> Mapping[str, int]:
        """How many nodes each node waits for."""
        counts = dict.fromkeys(self.nodes, 0)
        for _, after in self.edges:
            counts[after] += 1
        return counts

    @functools.cached_property
    def kinds(self) -> Mapping[str, str]:
        """Each node's kind: ``"action"`` or ``"gate"``."""
        return {node: data["kind"] for node, data in self.nodes.items()}

    def order(self) -> list[list[str]]:
        """The action ids in parallel groups, in the order they can run.

        Each group holds the actions whose dependencies all lie in earlier groups, sorted in
        declaration order, so the result is deterministic.
        """
        # Topological generations (Kahn's algorithm a layer at a time), on the plain data: a
        # run records the plan's JSON, which must not cost the import of networkx.
        nodes = self.nodes
        successors = self.successors
        waiting = dict(self.in_degree)
        generation = [node for node, count in waiting.items() if count == 0]
        groups: list[list[str]] = []
        while generation:
            actions = [n for n in generation if nodes[n]["kind"] == ACTION]
            if actions:
                actions.sort(key=lambda n: nodes[n]["position"])
                groups.append(actions)
            following = []
            for node in generation:
                for after in successors[node]:
                    waiting[after] -= 1
                    if waiting[after] == 0:
                        following.append(after)
            generation = following
        return groups

    @functools.cached_property
    def successors(self) -> Mapping[str, tuple[str, ...]]:
        """Each node's successors (what the scheduler walks: plain tuples, built once per plan)."""
        found: dict[str, list[str]] = {node: [] for node in self.nodes}
        for before, after in self.edges:
            found[before].append(after)
        return {node: tuple(after) for node, after in found.items()}

    def definition_hash(self) -> str:
        """A SHA-256 of the plan's JSON: two runs of the same definition share it."""
        return self._definition_hash

    @functools.cached_property
    def _definition_hash(self) -> str:
        # Computed once per plan (engines reuse one plan per pipeline), over the structure
        # only: cheap on large pipelines, and blind to hooks and provider code.
        digest = hashlib.sha256()
        for stage in self.pipeline.stages:
            needs = ",".join(sorted(self.stage_needs[stage.name]))
            digest.update(f"stage {stage.name} needs {needs}\n".encode())
            for action in stage.actions:
                # Said only when set, so that the hash of every other definition stays as it was.
                writable = " writable_inputs" if action.writable_inputs else ""
                digest.update(
                    f"action {action.name} {action.action_type} {action.run_order} "
                    f"in={','.join(action.inputs)} out={','.join(action.outputs)} "
                    f"ns={action.namespace}{writable}\n".encode()
                )
        return digest.hexdigest()

    @functools.cached_property
    def stage_fingerprints(self) -> Mapping[str, str]:
        """A hash of each stage's definition (see ``_fingerprints``), computed once per plan."""
        return stage_fingerprints(self.pipeline, self.stage_needs)

    def dependencies(self, node: str) -> list[str]:
        """The action ids that must succeed before ``node`` may start (through gates)."""
        found: list[str] = []
        for pred in self.graph.predecessors(node):
            if self.graph.nodes[pred]["kind"] == GATE:
                found.extend(self.graph.predecessors(pred))
            else:
                found.append(pred)
        return found

    # -- rendering ------------------------------------------------------------------------------

    def to_json(self) -> str:
        """The plan as JSON: stages, nodes, edges and the parallel order."""
        position = {stage.name: i for i, stage in enumerate(self.pipeline.stages)}
        stages = [
            {
                "name": stage.name,
                "needs": sorted(self.stage_needs[stage.name], key=position.__getitem__),
                "actions": [f"{stage.name}.{action.name}" for action in stage.actions],
            }
            for stage in self.pipeline.stages
        ]
        nodes = []
        for node, data in self.nodes.items():
            entry: dict[str, Any] = {
                "id": node,
                "kind": data["kind"],
                "stage": data["stage"],
                "run_order": data["run_order"],
            }
            if data["kind"] == ACTION:
                action: Action = data["action"]
                entry["action"] = action.name
                entry["action_type"] = str(action.action_type)
                entry["inputs"] = list(action.inputs)
                entry["outputs"] = list(action.outputs)
                entry["namespace"] = action.namespace
                if action.writable_inputs:
                    entry["writable_inputs"] = True
            nodes.append(entry)
        document = {
            "pipeline": self.pipeline.name,
            "execution_mode": str(self.pipeline.execution_mode),
            # A secret's default is a secret: the JSON is kept in stores and printed by `graph`.
            "variables": [
                {"name": v.name, "default": MASK if v.secret and v.default else v.default}
                for v in self.pipeline.variables
            ],
            "stages": stages,
            "nodes": nodes,
            "edges": [[u, v] for u in self.nodes for v in self.successors[u]],
            "order": self.order(),
        }
        return json.dumps(document, indent=2)

    def to_mermaid(self) -> str:
        """The plan as a Mermaid flowchart, one subgraph per stage."""
        ids = {node: f"n{i}" for i, node in enumerate(self.actions)}
        lines = ["flowchart LR"]
        for s_index, stage in enumerate(self.pipeline.stages):
            lines.append(f'  subgraph s{s_index}["{stage.name}"]')
            lines.extend(
                f'    {ids[f"{stage.name}.{action.name}"]}["{action.name}"]'
                for action in stage.actions
            )
            lines.append("  end")
        junctions, edges = self._display()
        for number, junction in enumerate(junctions):
            ids[junction] = f"j{number}"
            lines.append(f'  j{number}((" "))')
        lines.extend(f"  {ids[u]} --> {ids[v]}" for u, v in edges)
        return "\n".join(lines) + "\n"

    def to_dot(self) -> str:
        """The plan as Graphviz DOT, one cluster per stage."""
        lines = [
            f"digraph {_dot_quote(self.pipeline.name)} {{",
            "  rankdir=LR;",
            "  node [shape=box, style=rounded];",
        ]
        for s_index, stage in enumerate(self.pipeline.stages):
            lines.append(f"  subgraph cluster_{s_index} {{")
            lines.append(f"    label={_dot_quote(stage.name)};")
            lines.extend(
                f"    {_dot_quote(f'{stage.name}.{action.name}')} "
                f"[label={_dot_quote(action.name)}];"
                for action in stage.actions
            )
            lines.append("  }")
        junctions, edges = self._display()
        lines.extend(f'  {_dot_quote(j)} [shape=point, width=0.08, label=""];' for j in junctions)
        lines.extend(f"  {_dot_quote(u)} -> {_dot_quote(v)};" for u, v in edges)
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _display(self) -> tuple[list[str], list[tuple[str, str]]]:
        """Edges for a picture: a gate becomes direct edges unless that would multiply them."""
        junctions: list[str] = []
        edges: list[tuple[str, str]] = []
        graph = self.graph
        for node, data in graph.nodes(data=True):
            if data["kind"] != GATE:
                continue
            preds = list(graph.predecessors(node))
            succs = list(graph.successors(node))
            if not preds or not succs:
                continue
            if len(preds) * len(succs) <= len(preds) + len(succs):
                edges.extend((p, s) for p in preds for s in succs)
            else:
                junctions.append(node)
                edges.extend((p, node) for p in preds)
                edges.extend((node, s) for s in succs)
        return junctions, edges


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _stage_nodes(
    stage_name: str, groups: list[tuple[int, list[Action]]], position: Mapping[str, int]
) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, str]], list[str], str]:
    nodes: list[tuple[str, dict[str, Any]]] = []
    edges: list[tuple[str, str]] = []
    first: list[str] = []
    previous_gate: str | None = None
    gate = ""
    for run_order, actions in groups:
        ids = []
        for action in actions:
            node = f"{stage_name}.{action.name}"
            ids.append(node)
            nodes.append(
                (
                    node,
                    {
                        "kind": ACTION,
                        "stage": stage_name,
                        "action": action,
                        "run_order": run_order,
                        "position": position[node],
                    },
                )
            )
        if previous_gate is None:
            first = ids
        else:
            edges.extend((previous_gate, node) for node in ids)
        gate = gate_id(stage_name, run_order)
        nodes.append((gate, {"kind": GATE, "stage": stage_name, "run_order": run_order}))
        edges.extend((node, gate) for node in ids)
        previous_gate = gate
    return nodes, edges, first, gate


def compile_pipeline(pipeline: Pipeline) -> Plan:
    """Compile a (validated) pipeline into a ``Plan``."""
    stage_graph: StageGraph = pipeline._analysis.stage_graph  # noqa: SLF001 - computed by validation
    nodes: list[tuple[str, dict[str, Any]]] = []
    edges: list[tuple[str, str]] = []
    first_group: dict[str, list[str]] = {}
    exit_gates: dict[str, str] = {}
    # Positions follow declaration order, not run_order, so order() lists actions as the person
    # wrote them.
    declared: dict[str, int] = {}
    actions: dict[str, Action] = {}
    for stage in pipeline.stages:
        for action in stage.actions:
            node = f"{stage.name}.{action.name}"
            declared[node] = len(declared)
            actions[node] = action
        stage_nodes, stage_edges, first, exit_gate = _stage_nodes(
            stage.name, stage.groups(), declared
        )
        nodes.extend(stage_nodes)
        edges.extend(stage_edges)
        first_group[stage.name] = first
        exit_gates[stage.name] = exit_gate
    for before, after in stage_graph.edges:
        gate = exit_gates[before]
        edges.extend((gate, node) for node in first_group[after])
    return Plan(
        pipeline,
        dict(nodes),
        tuple(edges),
        stage_graph.as_mapping(),
        exit_gates,
        actions,
        pipeline._analysis.referencing,  # noqa: SLF001 - computed by validation for this
    )
