"""Caching action results: the key of an attempt, and reusing an earlier one's outputs.

An action declared with ``cache=True`` is looked up by a key made of its action type, its
provider and configuration with every reference resolved, and the content hashes of its input
artifacts. An earlier successful attempt with the same key gives its output variables, and its
output artifacts are copied, instead of running the provider again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from pipelinekit.providers._sources import content_hash
from pipelinekit.stores._records import CacheEntry

__all__ = ["cache_key", "canonical", "copy_outputs"]


def canonical(value: Any) -> Any:  # noqa: ANN401 - any declaration
    """A JSON-ready rendering of a declaration (attrs objects become dicts with their type)."""
    if attrs.has(type(value)):
        return {
            "__type__": f"{type(value).__module__}.{type(value).__qualname__}",
            **{f.name: canonical(getattr(value, f.name)) for f in attrs.fields(type(value))},
        }
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [canonical(item) for item in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    # Functions and other objects: their qualified name (code changes are not seen).
    return f"{type(value).__qualname__}:{getattr(value, '__qualname__', repr(value))}"


def cache_key(
    action_type: str,
    provider: object,
    configuration: Mapping[str, str],
    inputs: Mapping[str, Path],
) -> str:
    """The key of an attempt (reads the input artifacts: call it from a worker thread)."""
    document = {
        "action_type": action_type,
        "provider": canonical(provider),
        "configuration": canonical(dict(configuration)),
        "inputs": {name: content_hash(path) for name, path in sorted(inputs.items())},
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def copy_outputs(entry: CacheEntry, outputs: Mapping[str, Path]) -> bool:
    """Copy a cached attempt's artifacts into ``outputs``; ``False`` if any is gone or changed.

    The copies are what is checked against the recorded hashes, after copying: a cached folder
    changed while it was copied cannot slip through between a check and the copy. On ``False``
    the outputs may hold partial copies (the caller empties them). Call it from a worker thread.
    """
    for name in outputs:
        if name not in entry.outputs or not Path(entry.outputs[name][0]).is_dir():
            return False
    for name, target in outputs.items():
        source, digest = entry.outputs[name]
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        if content_hash(target) != digest:
            return False
    return True
