"""Per-stage fingerprints: a hash of each stage's definition, compared by ``run --reuse``.

A stage's fingerprint covers its needs and, for each action, its name, type, run order,
inputs, outputs, namespace, configuration and provider (by its declared fields; a function by
its qualified name). The plan computes them once (``Plan.stage_fingerprints``): an engine runs
one shared plan per pipeline, and each execution records them at its start.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from pipelinekit._model._pipeline import Pipeline

__all__ = ["canonical", "stage_fingerprints"]

# The encoder json.dumps(sort_keys=True, default=str) makes at each call, made once.
_ENCODER = json.JSONEncoder(sort_keys=True, default=str)
_PLAIN = frozenset({str, int, float, bool, type(None)})


@functools.cache
def _field_names(cls: type) -> tuple[str, ...] | None:
    # Per class, once: attrs.has and attrs.fields cost more than the rest of a rendering.
    return tuple(field.name for field in attrs.fields(cls)) if attrs.has(cls) else None


def canonical(value: Any) -> Any:  # noqa: ANN401, PLR0911 - any declaration; one return per kind
    """A JSON-ready rendering of a declaration (attrs objects become dicts with their type).

    Recorded fingerprints and the keys of ``cache=True`` entries (``_runtime._cache.cache_key``,
    which uses this one) were made with it: it must not change. The exact built-in classes
    are tried first only because they are the most common and the cheapest to recognise.
    """
    cls: Any = type(value)  # a class is hashable, whatever mypy infers of type[Any]
    if cls in _PLAIN:
        return value
    names = _field_names(cls)
    if names is not None:
        return {
            "__type__": f"{cls.__module__}.{cls.__qualname__}",
            **{name: canonical(getattr(value, name)) for name in names},
        }
    if cls is tuple or cls is list:
        return [canonical(item) for item in value]
    if cls is dict or isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [canonical(item) for item in value]
    if isinstance(value, str | int | float | bool):
        return value
    # Functions and other objects: their qualified name (code changes are not seen).
    return f"{cls.__qualname__}:{getattr(value, '__qualname__', repr(value))}"


def stage_fingerprints(
    pipeline: Pipeline, stage_needs: Mapping[str, tuple[str, ...]]
) -> dict[str, str]:
    """A hash of each stage's definition: its needs, actions, wiring and providers."""
    found: dict[str, str] = {}
    encode = _ENCODER.encode
    for stage in pipeline.stages:
        digest = hashlib.sha256()
        needs = ",".join(sorted(stage_needs[stage.name]))
        digest.update(f"stage {stage.name} needs {needs}\n".encode())
        for action in stage.actions:
            document = [
                action.name,
                str(action.action_type),
                action.run_order,
                list(action.inputs),
                list(action.outputs),
                action.namespace,
                canonical(dict(action.configuration)),
                canonical(action.provider),
            ]
            digest.update(encode(document).encode() + b"\n")
        found[stage.name] = digest.hexdigest()[:32]
    return found
