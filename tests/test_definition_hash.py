"""The definition hash: a new value for every change that changes what a run does, the same
value for a change that does not.

Stores keep a pipeline's definition under ``(name, definition hash)`` and an execution recorded
before stage fingerprints existed is reused only while the hash matches, so a hash blind to a
field (``needs``, ``run_order``, ``namespace``...) would let a changed pipeline pass for the old
one. Pipelines are drawn as plain data (a spec), changed in one field, then built.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

import pipelinekit as pk
from pipelinekit.exceptions import PipelineDefinitionError


def run_tests(ctx):
    """A Python action's function (its code is not part of the hash, its type is)."""


@st.composite
def specs(draw):
    """Up to 4 stages of up to 3 actions, with artifacts, namespaces, run orders and needs."""
    stages = []
    produced: list[str] = []
    for s in range(draw(st.integers(1, 4))):
        earlier = [f"S{e}" for e in range(s)]
        needs = draw(st.one_of(st.none(), st.permutations(earlier))) if s else None
        actions = []
        made = []
        for a in range(draw(st.integers(1, 3))):
            inputs = (
                draw(st.lists(st.sampled_from(produced), unique=True, max_size=2))
                if (produced)
                else []
            )
            outputs = [f"o{s}{a}"] if draw(st.booleans()) else []
            made.extend(outputs)
            actions.append(
                {
                    "name": f"A{a}",
                    "kind": draw(st.sampled_from(["shell", "python"])),
                    "run_order": draw(st.integers(1, 2)),
                    "inputs": inputs,
                    "outputs": outputs,
                    "namespace": f"N{s}{a}" if draw(st.booleans()) else None,
                    "writable_inputs": bool(inputs) and draw(st.booleans()),
                }
            )
        produced.extend(made)
        stages.append({"name": f"S{s}", "needs": needs, "actions": actions})
    return stages


def build(spec):
    stages = []
    for stage in spec:
        actions = [
            pk.Action(
                action["name"],
                pk.shell("true") if action["kind"] == "shell" else pk.python(run_tests),
                run_order=action["run_order"],
                inputs=action["inputs"],
                outputs=action["outputs"],
                namespace=action["namespace"],
                writable_inputs=action["writable_inputs"],
            )
            for action in stage["actions"]
        ]
        stages.append(pk.Stage(stage["name"], actions, needs=stage["needs"]))
    return pk.Pipeline("hashed", stages)


def digest(spec):
    try:
        return build(spec).compile().definition_hash()
    except PipelineDefinitionError:
        # The change made the pipeline invalid (an input no longer certain to be produced
        # first, say): there is nothing to hash.
        reject()


def pick_action(spec, data):
    stage = data.draw(st.sampled_from(spec))
    return stage, data.draw(st.sampled_from(stage["actions"]))


def resolved_needs(spec, index):
    needs = spec[index]["needs"]
    if needs is None:
        return {spec[index - 1]["name"]} if index else set()
    return set(needs)


# -- changes that change behaviour ------------------------------------------------------------


def rename_action(spec, data):
    _, action = pick_action(spec, data)
    action["name"] += "x"


def rename_stage(spec, data):
    stage = data.draw(st.sampled_from(spec))
    old, stage["name"] = stage["name"], stage["name"] + "x"
    for other in spec:
        if other["needs"] is not None:
            other["needs"] = [stage["name"] if need == old else need for need in other["needs"]]


def change_run_order(spec, data):
    stage, action = pick_action(spec, data)
    if len(stage["actions"]) == 1:
        # A lone action's group number is still part of its gate's id and of the events.
        action["run_order"] = 2 if action["run_order"] == 1 else 1
        return
    action["run_order"] = data.draw(st.sampled_from([1, 2, 3]).filter(action["run_order"].__ne__))


def change_namespace(spec, data):
    _, action = pick_action(spec, data)
    action["namespace"] = None if action["namespace"] else "Fresh"


def change_inputs(spec, data):
    produced = [o for stage in spec[:-1] for action in stage["actions"] for o in action["outputs"]]
    stage, action = pick_action(spec, data)
    index = spec.index(stage)
    available = [
        o for s in spec[:index] for a in s["actions"] for o in a["outputs"] if o in produced
    ]
    unused = [o for o in available if o not in action["inputs"]]
    if action["inputs"] and (not unused or data.draw(st.booleans())):
        action["inputs"] = action["inputs"][:-1]
        action["writable_inputs"] = action["writable_inputs"] and bool(action["inputs"])
    elif unused:
        action["inputs"] = [*action["inputs"], data.draw(st.sampled_from(unused))]
    else:
        reject()


def change_outputs(spec, data):
    _, action = pick_action(spec, data)
    consumed = {i for stage in spec for a in stage["actions"] for i in a["inputs"]}
    if action["outputs"] and action["outputs"][0] not in consumed:
        action["outputs"] = []
    else:
        action["outputs"] = [*action["outputs"], "fresh"]


def change_action_type(spec, data):
    _, action = pick_action(spec, data)
    action["kind"] = "python" if action["kind"] == "shell" else "shell"


def change_writable_inputs(spec, data):
    with_inputs = [a for stage in spec for a in stage["actions"] if a["inputs"]]
    if not with_inputs:
        reject()
    action = data.draw(st.sampled_from(with_inputs))
    action["writable_inputs"] = not action["writable_inputs"]


def change_needs(spec, data):
    if len(spec) < 2:
        reject()
    index = data.draw(st.integers(1, len(spec) - 1))
    earlier = [stage["name"] for stage in spec[:index]]
    needs = data.draw(st.lists(st.sampled_from(earlier), unique=True))
    if set(needs) == resolved_needs(spec, index):
        reject()
    spec[index]["needs"] = needs


CHANGES = [
    rename_action,
    rename_stage,
    change_run_order,
    change_namespace,
    change_inputs,
    change_outputs,
    change_action_type,
    change_writable_inputs,
    change_needs,
]


@pytest.mark.parametrize("change", CHANGES, ids=lambda change: change.__name__)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), data=st.data())
def test_a_change_that_changes_behaviour_changes_the_hash(change, spec, data):
    before = digest(spec)
    changed = copy.deepcopy(spec)
    change(changed, data)
    assert changed != spec
    assert digest(changed) != before


# -- changes that do not ---------------------------------------------------------------------


def reorder_needs(spec, data):
    written = [(i, s) for i, s in enumerate(spec) if s["needs"] is not None and len(s["needs"]) > 1]
    if not written:
        reject()
    _, stage = data.draw(st.sampled_from(written))
    order = list(data.draw(st.permutations(stage["needs"])))
    # Reversed when the draw kept the order: the change is certain without filtering draws.
    stage["needs"] = order if order != stage["needs"] else order[::-1]


def spell_out_default_needs(spec, data):
    index = data.draw(st.integers(0, len(spec) - 1))
    stage = spec[index]
    resolved = resolved_needs(spec, index)
    if stage["needs"] is None:
        stage["needs"] = sorted(resolved)
    elif resolved == ({spec[index - 1]["name"]} if index else set()):
        stage["needs"] = None
    else:
        reject()


@pytest.mark.parametrize(
    "change", [reorder_needs, spell_out_default_needs], ids=lambda change: change.__name__
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), data=st.data())
def test_a_change_that_changes_nothing_keeps_the_hash(change, spec, data):
    before = digest(spec)
    changed = copy.deepcopy(spec)
    change(changed, data)
    assert changed != spec
    assert digest(changed) == before


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs())
def test_the_same_definition_built_twice_has_the_same_hash(spec):
    assert (
        build(spec).compile().definition_hash()
        == build(copy.deepcopy(spec)).compile().definition_hash()
    )


def test_the_hash_of_a_definition_does_not_change_between_versions():
    # Stores keep definitions under this value and old executions are compared with it: a new
    # release that hashed the same pipeline differently would orphan every stored definition.
    spec = [
        {
            "name": "Build",
            "needs": None,
            "actions": [
                {
                    "name": "Compile",
                    "kind": "shell",
                    "run_order": 1,
                    "inputs": [],
                    "outputs": ["dist"],
                    "namespace": "B",
                    "writable_inputs": False,
                }
            ],
        },
        {
            "name": "Test",
            "needs": ["Build"],
            "actions": [
                {
                    "name": "Unit",
                    "kind": "python",
                    "run_order": 2,
                    "inputs": ["dist"],
                    "outputs": [],
                    "namespace": None,
                    "writable_inputs": True,
                }
            ],
        },
    ]
    assert digest(spec) == "5b095e924bb237762c8a0a326cb0689eaa5772a66f60e68f5b117d9536c2be3d"
