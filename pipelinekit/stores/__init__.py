"""Where the state of executions lives: the ``Store`` protocol and its implementations."""

from pipelinekit.stores._memory import ExecutionSummary as ExecutionSummary
from pipelinekit.stores._memory import MemoryStore as MemoryStore
from pipelinekit.stores._protocol import Store as Store
from pipelinekit.stores._sqlite import SQLiteStore as SQLiteStore

__all__ = ["ExecutionSummary", "MemoryStore", "SQLiteStore", "Store"]
