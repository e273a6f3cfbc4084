"""Loading a pipeline from ``FILE[:NAME]``, with a clear error for every way it can go wrong."""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import importlib.util
import re
import sys
import traceback
from pathlib import Path
from types import CodeType, ModuleType

from pipelinekit._model._names import did_you_mean
from pipelinekit._model._pipeline import Pipeline
from pipelinekit.exceptions import PipelineDefinitionError, PipelineKitError

__all__ = ["LoadError", "load_pipeline", "source_of", "split_target"]

_ATTRIBUTE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class LoadError(PipelineKitError):
    """``FILE[:NAME]`` does not lead to a pipeline; the message says why and what to do."""


def split_target(target: str) -> tuple[Path, str | None]:
    """``"a/b.py:prod"`` -> (Path("a/b.py"), "prod"); ``"a/b.py"`` -> (Path("a/b.py"), None)."""
    path, colon, name = target.rpartition(":")
    # Only a Python identifier after the last colon is a NAME, so "C:\\x.py" stays a path.
    if colon and path and _ATTRIBUTE.fullmatch(name):
        return Path(path), name
    return Path(target), None


def load_pipeline(target: str) -> tuple[Pipeline, Path]:
    """The pipeline ``target`` names, and the file it came from (see ``source_of``).

    Without ``:NAME`` the file must define exactly one ``Pipeline`` at module level. Raises
    ``LoadError`` for a missing file, a syntax error, an exception while loading or a missing
    pipeline, and ``PipelineDefinitionError`` for an invalid one.
    """
    path, name = split_target(target)
    module = _load_module(path)
    found: dict[str, Pipeline] = {}
    for attribute, value in vars(module).items():
        if isinstance(value, Pipeline) and not attribute.startswith("_"):
            if any(value is seen for seen in found.values()):
                continue
            found[attribute] = value
    imported = _imported_pipelines(path, module)
    own = {attribute: value for attribute, value in found.items() if id(value) not in imported}
    # A file that only re-exports another module's pipeline still names it.
    found = own or found
    if name is not None:
        value = getattr(module, name, None)
        if isinstance(value, Pipeline):
            return value, path
        by_pipeline_name = [p for p in found.values() if p.name == name]
        if len(by_pipeline_name) == 1:
            return by_pipeline_name[0], path
        if value is not None:
            msg = f"{path}: {name!r} is a {type(value).__name__}, not a pk.Pipeline"
            raise LoadError(msg)
        msg = f"{path}: defines no pipeline called {name!r}{did_you_mean(name, found)}"
        if found:
            msg += f" (pipelines here: {', '.join(sorted(found))})"
        raise LoadError(msg)
    if len(found) == 1:
        return next(iter(found.values())), path
    if not found:
        msg = (
            f"{path}: defines no pk.Pipeline at module level; assign one to a module-level "
            "name, e.g. pipeline = pk.Pipeline(...)"
        )
        raise LoadError(msg)
    names = ", ".join(sorted(found))
    msg = f"{path}: defines {len(found)} pipelines ({names}); choose one with {path}:NAME"
    raise LoadError(msg)


def _imported_pipelines(path: Path, module: ModuleType) -> set[int]:
    """The ids of the pipelines that modules the file imports hold at module level.

    ``from base import pipeline as base`` puts another file's pipeline among this one's names;
    it is that file's, so it is not counted as one this file defines (a file that imports a
    pipeline to derive its own defines one pipeline, not two).
    """
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except (OSError, SyntaxError, ValueError):  # pragma: no cover - it was just loaded
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    held: set[int] = set()
    for name in names:
        other = sys.modules.get(name)
        if other is None or other is module:
            continue
        held.update(id(value) for value in vars(other).values() if isinstance(value, Pipeline))
    return held


class _FromSource(importlib.machinery.SourceFileLoader):
    """Compiles the pipeline file from its source each time, never from ``__pycache__``.

    Python trusts a cached ``.pyc`` whose source has the same size and modification time, so a
    file rewritten within the same second with as many bytes (a generated pipeline, a one-digit
    edit) would load as it was before. The file is small; its neighbours import as usual.
    """

    def get_code(self, fullname: str) -> CodeType:
        """The module's code, compiled from the file as it is now."""
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)


def _load_module(path: Path) -> ModuleType:
    if not path.exists():
        msg = f"{path}: no such file"
        raise LoadError(msg)
    if path.is_dir():
        msg = f"{path}: is a directory; give the Python file that defines the pipeline"
        raise LoadError(msg)
    if path.suffix != ".py":
        msg = f"{path}: is not a Python file (.py)"
        raise LoadError(msg)
    resolved = path.resolve()
    module_name = _module_name(resolved)
    spec = importlib.util.spec_from_file_location(
        module_name, resolved, loader=_FromSource(module_name, str(resolved))
    )
    if spec is None or spec.loader is None:  # pragma: no cover - only for odd files
        msg = f"{path}: cannot be loaded as a Python module"
        raise LoadError(msg)
    module = importlib.util.module_from_spec(spec)
    # The file's folder goes on sys.path so that it can import its neighbours, as `python FILE`
    # would; the module is registered because attrs and dataclasses look classes up there.
    sys.path.insert(0, str(resolved.parent))
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as error:
        msg = f"{error.filename or path}:{error.lineno}: syntax error: {error.msg}"
        raise LoadError(msg) from None
    except PipelineDefinitionError:
        raise
    except SystemExit as error:
        line = _line_in(error, resolved)
        where = f"{path}:{line}" if line else str(path)
        msg = (
            f"{where}: the file called sys.exit({error.code!r}) while being loaded; a pipeline "
            "file defines pipelines (keep scripts under `if __name__ == '__main__':`)"
        )
        raise LoadError(msg) from None
    except KeyboardInterrupt:
        raise  # a Ctrl-C while loading: the command says so
    except BaseException as error:  # noqa: BLE001 - any error in the person's file is reported
        line = _line_in(error, resolved)
        where = f"{path}:{line}" if line else str(path)
        msg = f"{where}: loading the file raised {type(error).__name__}: {error}"
        raise LoadError(msg) from None
    finally:
        sys.path.remove(str(resolved.parent))
    return module


def _line_in(error: BaseException, path: Path) -> int | None:
    """The last line of ``path`` on the error's traceback, to point the person at it."""
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if Path(frame.filename) == path:
            line = frame.lineno
    return line


def source_of(pipeline: Pipeline, path: Path) -> str:
    """``"/abs/path/file.py:name"``: where ``pipeline`` can be loaded from again."""
    module = sys.modules.get(_module_name(path.resolve()))
    for attribute, value in vars(module).items() if module else ():
        if value is pipeline and not attribute.startswith("_"):
            return f"{path.resolve()}:{attribute}"
    return str(path.resolve())


def _module_name(resolved: Path) -> str:
    return "_pipelinekit_user_" + hashlib.sha256(str(resolved).encode()).hexdigest()[:16]
