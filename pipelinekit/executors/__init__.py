"""Where actions run: the ``Executor`` protocol and the local executor."""

from pipelinekit.executors._local import LocalExecutor as LocalExecutor
from pipelinekit.executors._protocol import Executor as Executor

__all__ = ["Executor", "LocalExecutor"]
