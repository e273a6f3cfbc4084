"""pipelinekit: declare CI/CD pipelines in typed Python and run them anywhere.

``import pipelinekit as pk``; see ``pk.Pipeline``, ``pk.Stage`` and ``pk.Action``. Importing the
package has no side effects: it configures no logging, touches no file and starts no event loop.
It is also quick, so that a file that only declares a pipeline loads fast: the engine, the
stores (with asyncio and sqlite3), ``ActionContext`` and the compiler (networkx, behind
``pk.Plan``) are imported when a program first uses them, as attrs and structlog serve
``__version__``.
"""

from __future__ import annotations

import typing as _typing

from pipelinekit import exceptions as exceptions
from pipelinekit import executors as executors
from pipelinekit import hooks as hooks
from pipelinekit import providers as providers
from pipelinekit._model._cache import Cache as Cache
from pipelinekit._model._declarations import Action as Action
from pipelinekit._model._declarations import ActionTypeId as ActionTypeId
from pipelinekit._model._declarations import BeforeEntry as BeforeEntry
from pipelinekit._model._declarations import Category as Category
from pipelinekit._model._declarations import Condition as Condition
from pipelinekit._model._declarations import ExecutionMode as ExecutionMode
from pipelinekit._model._declarations import OnFailure as OnFailure
from pipelinekit._model._declarations import OnSuccess as OnSuccess
from pipelinekit._model._declarations import Owner as Owner
from pipelinekit._model._declarations import Result as Result
from pipelinekit._model._declarations import Retry as Retry
from pipelinekit._model._declarations import RetryMode as RetryMode
from pipelinekit._model._declarations import Rule as Rule
from pipelinekit._model._declarations import Stage as Stage
from pipelinekit._model._declarations import Status as Status
from pipelinekit._model._declarations import Variable as Variable
from pipelinekit._model._events import Event as Event
from pipelinekit._model._pipeline import Pipeline as Pipeline
from pipelinekit._runtime._results import ActionResult as ActionResult
from pipelinekit._runtime._results import Attempt as Attempt
from pipelinekit._runtime._results import HookError as HookError
from pipelinekit._runtime._results import RunResult as RunResult
from pipelinekit._runtime._results import StageResult as StageResult
from pipelinekit._version import __version__ as __version__
from pipelinekit.exceptions import ActionFailed as ActionFailed
from pipelinekit.exceptions import ActionTimeout as ActionTimeout
from pipelinekit.exceptions import ArtifactChanged as ArtifactChanged
from pipelinekit.exceptions import ExecutionError as ExecutionError
from pipelinekit.exceptions import PipelineDefinitionError as PipelineDefinitionError
from pipelinekit.exceptions import PipelineKitError as PipelineKitError
from pipelinekit.exceptions import Problem as Problem
from pipelinekit.exceptions import StoreError as StoreError
from pipelinekit.executors import Executor as Executor
from pipelinekit.executors import LocalExecutor as LocalExecutor
from pipelinekit.providers import ArchiveSource as ArchiveSource
from pipelinekit.providers import Commands as Commands
from pipelinekit.providers import GitSource as GitSource
from pipelinekit.providers import HttpRequest as HttpRequest
from pipelinekit.providers import LocalSource as LocalSource
from pipelinekit.providers import ManualApproval as ManualApproval
from pipelinekit.providers import Provider as Provider
from pipelinekit.providers import ProviderRegistry as ProviderRegistry
from pipelinekit.providers import PythonFunction as PythonFunction
from pipelinekit.providers import Wait as Wait
from pipelinekit.providers import action as action
from pipelinekit.providers import provider as provider
from pipelinekit.providers import python as python
from pipelinekit.providers import shell as shell
from pipelinekit.providers._failure import CommandFailed as CommandFailed
from pipelinekit.providers._failure import CommandFailure as CommandFailure
from pipelinekit.providers._junit import TestReport as TestReport

if _typing.TYPE_CHECKING:  # imported when first used: see _LAZY
    from pipelinekit import stores as stores
    from pipelinekit._compiler._plan import Plan as Plan
    from pipelinekit._runtime._engine import Engine as Engine
    from pipelinekit._runtime._engine import Execution as Execution
    from pipelinekit._runtime._engine import arun as arun
    from pipelinekit._runtime._engine import run as run
    from pipelinekit.providers._context import ActionContext as ActionContext
    from pipelinekit.stores import ExecutionSummary as ExecutionSummary
    from pipelinekit.stores import MemoryStore as MemoryStore
    from pipelinekit.stores import SQLiteStore as SQLiteStore
    from pipelinekit.stores import Store as Store

__all__ = [
    "Action",
    "ActionContext",
    "ActionFailed",
    "ActionResult",
    "ActionTimeout",
    "ActionTypeId",
    "ArchiveSource",
    "ArtifactChanged",
    "Attempt",
    "BeforeEntry",
    "Cache",
    "Category",
    "CommandFailed",
    "CommandFailure",
    "Commands",
    "Condition",
    "Engine",
    "Event",
    "Execution",
    "ExecutionError",
    "ExecutionMode",
    "ExecutionSummary",
    "Executor",
    "GitSource",
    "HookError",
    "HttpRequest",
    "LocalExecutor",
    "LocalSource",
    "ManualApproval",
    "MemoryStore",
    "OnFailure",
    "OnSuccess",
    "Owner",
    "Pipeline",
    "PipelineDefinitionError",
    "PipelineKitError",
    "Plan",
    "Problem",
    "Provider",
    "ProviderRegistry",
    "PythonFunction",
    "Result",
    "Retry",
    "RetryMode",
    "Rule",
    "RunResult",
    "SQLiteStore",
    "Stage",
    "StageResult",
    "Status",
    "Store",
    "StoreError",
    "TestReport",
    "Variable",
    "Wait",
    "__version__",
    "action",
    "arun",
    "compile",
    "exceptions",
    "executors",
    "hooks",
    "provider",
    "providers",
    "python",
    "run",
    "shell",
    "stores",
]


#: Names imported when first asked for (see ``__getattr__``): name -> module, whose attribute
#: of that name it is (``"stores"`` is the module itself). Together they cost more than the rest
#: of ``import pipelinekit``.
_LAZY = {
    "ActionContext": "pipelinekit.providers._context",
    "Engine": "pipelinekit._runtime._engine",
    "Execution": "pipelinekit._runtime._engine",
    "ExecutionSummary": "pipelinekit.stores",
    "MemoryStore": "pipelinekit.stores",
    "Plan": "pipelinekit._compiler._plan",
    "SQLiteStore": "pipelinekit.stores",
    "Store": "pipelinekit.stores",
    "arun": "pipelinekit._runtime._engine",
    "run": "pipelinekit._runtime._engine",
    "stores": "pipelinekit.stores",
}

# Hidden from type checkers, which see the lazy names imported above: to them, a module with a
# __getattr__ has every attribute, and ``pk.Pipline`` would no longer be an error.
if not _typing.TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        """Import a costly name when it is first asked for, then keep it."""
        try:
            module_name = _LAZY[name]
        except KeyError:
            msg = f"module {__name__!r} has no attribute {name!r}"
            raise AttributeError(msg) from None
        import importlib  # noqa: PLC0415 - only for the lazy names

        module = importlib.import_module(module_name)
        value = module if name == "stores" else getattr(module, name)
        _rename(value)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        """Every name, including those imported when first asked for."""
        return sorted({*globals(), *_LAZY})


def compile(pipeline: Pipeline) -> Plan:  # noqa: A001 - the API is pk.compile(pipeline), like pipeline.compile()
    """Compile ``pipeline`` into a ``Plan`` (the same as ``pipeline.compile()``)."""
    return pipeline.compile()


def _rename(obj: object) -> None:
    # Reprs and docs say pipelinekit.Action, not pipelinekit._model._declarations.Action (as
    # trio does).
    if getattr(obj, "__module__", "").startswith("pipelinekit._"):
        obj.__module__ = __name__


def _set_module() -> None:
    for name in __all__:
        if name not in _LAZY:
            _rename(globals()[name])


_set_module()
del _set_module
