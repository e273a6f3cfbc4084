"""Where the state of executions lives: the ``Store`` protocol, its records and implementations.

The records (``ExecutionSummary``, ``Decision``, ``CacheEntry``, ``SavedCache``) are public so
that a third party can implement and type a store of its own.
"""

from pipelinekit.stores._memory import MemoryStore as MemoryStore
from pipelinekit.stores._protocol import Store as Store
from pipelinekit.stores._records import CacheEntry as CacheEntry
from pipelinekit.stores._records import Decision as Decision
from pipelinekit.stores._records import ExecutionSummary as ExecutionSummary
from pipelinekit.stores._records import SavedCache as SavedCache
from pipelinekit.stores._sqlite import SQLiteStore as SQLiteStore

__all__ = [
    "CacheEntry",
    "Decision",
    "ExecutionSummary",
    "MemoryStore",
    "SQLiteStore",
    "SavedCache",
    "Store",
]
