"""Where the state of executions lives: the ``Store`` protocol and its implementations."""

from pipelinekit.stores._memory import MemoryStore as MemoryStore
from pipelinekit.stores._protocol import Store as Store

__all__ = ["MemoryStore", "Store"]
