"""The sizes pipelinekit accepts, in one place, so that every check and every message agrees.

Each limit is generous for a release script yet far below what would fill a disk or a stack:
CodePipeline's own limits (a resolved action configuration of at most 100 KB, an approval of at
most 60 days) are the guide where it has one.
"""

from __future__ import annotations

from datetime import timedelta

__all__ = [
    "MAX_DEFINITION_BYTES",
    "MAX_NESTING",
    "MAX_TIMEOUT",
    "MAX_VALUE_BYTES",
    "MIN_SECRET_LENGTH",
]

#: One string anywhere in a declaration (a configuration value, an env value, a variable's
#: default or given value), in UTF-8 bytes. CodePipeline caps a resolved configuration at 100 KB.
MAX_VALUE_BYTES = 100 * 1024
#: The whole definition, as the plan's JSON that every execution keeps in the store.
MAX_DEFINITION_BYTES = 5 * 1024 * 1024
#: Nesting of mappings and lists inside a configuration.
MAX_NESTING = 32
#: The longest timeout of an action or an approval: CodePipeline's approval maximum (86400 min).
MAX_TIMEOUT = timedelta(days=60)
#: A secret shorter than this is refused: masking every "a" or "ab" in logs would corrupt them,
#: and so short a value protects nothing.
MIN_SECRET_LENGTH = 4
