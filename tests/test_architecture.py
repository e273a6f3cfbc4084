"""The package's layers: imports point one way, and no module imports itself back.

cli, testing -> runtime -> executors -> providers -> stores -> compiler -> model. A module may
import its own layer or the layers below it, never one above; and no set of modules may import
each other in a circle, at module level or inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

import pipelinekit

ROOT = Path(pipelinekit.__file__).parent

#: Lowest first. A module's layer is that of the longest prefix listed.
LAYERS = [
    ("pipelinekit.exceptions", "pipelinekit._version", "pipelinekit._thread"),
    ("pipelinekit._model",),
    ("pipelinekit._compiler",),
    ("pipelinekit.stores",),
    ("pipelinekit.providers",),
    ("pipelinekit.executors",),
    ("pipelinekit.hooks",),
    ("pipelinekit._runtime",),
    ("pipelinekit.testing",),
    ("pipelinekit.cli", "pipelinekit.pytest_plugin"),
    ("pipelinekit.__init__", "pipelinekit.__main__"),
]

#: Imports made inside a function that go up a layer, each with its reason.
UPWARD_CALLS = {
    # Pipeline.compile() is the public API's way to a plan: the model calls the compiler
    # when asked, so `import pipelinekit` need not load the compiler (nor networkx).
    ("pipelinekit._model._pipeline", "pipelinekit._compiler._plan"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts)


def layer(module: str) -> int:
    best, rank = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    assert rank >= 0, f"{module} belongs to no layer; add it to LAYERS"
    return rank


def imports() -> list[tuple[str, str, str]]:
    """``(importer, imported, when)`` for every import of a pipelinekit module.

    ``when`` is ``"load"`` (at module level), ``"typing"`` (under ``if TYPE_CHECKING:``, for
    annotations only) or ``"call"`` (inside a function).
    """
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        importer = module_name(path)
        tree = ast.parse(path.read_text(), str(path))
        when = {id(node): "load" for node in tree.body}
        when |= {
            id(child): "typing"
            for node in tree.body
            if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
            for child in node.body
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module]
                # `from pipelinekit import stores` imports the package stores.
                targets += [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for name in targets:
                target = "pipelinekit.__init__" if name == "pipelinekit" else name
                if target.startswith("pipelinekit") and _exists(target):
                    found.append((importer, target, when.get(id(node), "call")))
    return found


def _exists(module: str) -> bool:
    if module == "pipelinekit.__init__":
        return True
    relative = Path(*module.split(".")[1:])
    return (ROOT / relative).with_suffix(".py").exists() or (ROOT / relative).is_dir()


def _package_of(module: str) -> str:
    return module.removesuffix(".__init__")


def test_every_import_points_down_the_layers() -> None:
    """No module imports a layer above its own (outside the documented upward calls)."""
    wrong = [
        f"{importer} imports {imported}"
        for importer, imported, _ in imports()
        if layer(imported) > layer(importer) and (importer, imported) not in UPWARD_CALLS
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_circles() -> None:
    """No modules import each other in a circle, whether at import time or when called.

    Imports for annotations only (``if TYPE_CHECKING:``) may close a circle: nothing runs them.
    """
    graph = nx.DiGraph()
    for importer, imported, when in imports():
        if (importer, imported) in UPWARD_CALLS or when == "typing":
            continue
        source, target = _package_of(importer), _package_of(imported)
        if source != target and not source.startswith(target + "."):
            # A module importing its own package's __init__ is how packages re-export.
            graph.add_edge(source, target)
    cycles = list(nx.simple_cycles(graph, length_bound=6))
    assert not cycles, "\n".join(" -> ".join([*c, c[0]]) for c in cycles[:10])


def test_the_checks_see_the_imports() -> None:
    """The import scan finds the imports it is meant to judge (or the tests above prove nothing)."""
    found = imports()
    assert ("pipelinekit._runtime._engine", "pipelinekit.stores", "load") in found
    assert ("pipelinekit._model._pipeline", "pipelinekit._compiler._plan", "call") in found
    assert ("pipelinekit._model._validate", "pipelinekit._model._pipeline", "typing") in found
    assert layer("pipelinekit._runtime._scheduler") > layer("pipelinekit.stores._sqlite")
