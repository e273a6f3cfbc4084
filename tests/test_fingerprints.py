"""Per-stage fingerprints are computed once per plan, and are the ones executions recorded
before (the same canonical rendering and JSON as the cache's)."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import attrs

import pipelinekit as pk
from pipelinekit._compiler._fingerprints import canonical
from pipelinekit._runtime._reuse import stage_fingerprints


class Colour(enum.StrEnum):
    RED = "red"


@attrs.frozen
class Nested:
    weights: tuple[float, ...]
    table: dict[object, object]
    colour: Colour
    maybe: None = None


@pk.provider("Custom", "Nested", category=pk.Category.BUILD)
@attrs.frozen
class Odd:
    """A provider with nested attrs values, odd keys and non-plain values."""

    nested: Nested
    items: list[object]

    async def run(self, ctx):
        return pk.Result()


def step(ctx):
    return None


def canonical_before(value: Any) -> Any:
    """The rendering executions and cache keys used before issue 11 (``_runtime._cache`` at
    7c8b7df), held here so that the one the code uses now is compared with something fixed."""
    if attrs.has(type(value)):
        return {
            "__type__": f"{type(value).__module__}.{type(value).__qualname__}",
            **{f.name: canonical_before(getattr(value, f.name)) for f in attrs.fields(type(value))},
        }
    if isinstance(value, Mapping):
        return {
            str(k): canonical_before(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))
        }
    if isinstance(value, list | tuple):
        return [canonical_before(item) for item in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return f"{type(value).__qualname__}:{getattr(value, '__qualname__', repr(value))}"


def recorded_before(plan):
    """The fingerprints as executions recorded them before they were computed per plan."""
    found = {}
    for stage in plan.pipeline.stages:
        digest = hashlib.sha256()
        needs = ",".join(sorted(plan.stage_needs[stage.name]))
        digest.update(f"stage {stage.name} needs {needs}\n".encode())
        for action in stage.actions:
            document = [
                action.name,
                str(action.action_type),
                action.run_order,
                list(action.inputs),
                list(action.outputs),
                action.namespace,
                canonical_before(dict(action.configuration)),
                canonical_before(action.provider),
            ]
            digest.update(json.dumps(document, sort_keys=True, default=str).encode() + b"\n")
        found[stage.name] = digest.hexdigest()[:32]
    return found


def pipeline():
    odd = Odd(
        Nested((1.5, 2), {2: "two", "1": True, None: [1, (2, 3)]}, Colour.RED),
        [object, step, b"bytes", 3, None, {"k": Colour.RED}],
    )
    return pk.Pipeline(
        "p",
        [
            pk.Stage(
                "Build",
                [
                    pk.Action("Sh", pk.shell("echo a", "echo b"), outputs=["out"]),
                    pk.Action("Py", pk.python(step), namespace="Py", run_order=2),
                    pk.Action("Odd", odd, inputs=["out"], run_order=2),
                ],
            ),
            pk.Stage("Wait", [pk.Action("W", pk.Wait(duration=1))]),
        ],
    )


def test_the_renderings_and_fingerprints_are_the_ones_recorded_before():
    plan = pipeline().compile()
    for stage in plan.pipeline.stages:
        for action in stage.actions:
            assert canonical(action.provider) == canonical_before(action.provider)
    assert stage_fingerprints(plan) == recorded_before(plan)


def test_fingerprints_are_computed_once_per_plan_and_each_caller_gets_a_copy():
    plan = pipeline().compile()
    first = stage_fingerprints(plan)
    first["Build"] = "changed by a caller"
    assert plan.stage_fingerprints is plan.stage_fingerprints
    assert stage_fingerprints(plan) == recorded_before(plan)
    assert stage_fingerprints(pipeline().compile()) == recorded_before(plan)
