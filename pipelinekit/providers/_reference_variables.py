"""The environment variables that carry the values of ``#{...}`` references into commands.

Both the lexer (``_shell_text``, which names them) and ``Commands`` (which keeps ``env`` off their
names) use this, so the name is defined once; it is its own module so that declaring plain
commands does not load the lexer.
"""

from __future__ import annotations

import re

from pipelinekit._model._variables import Reference

__all__ = ["PREFIX", "variable_name"]

#: The start of their names, ``PK_REF_<namespace>_<name>``: pipelinekit's, ``env`` may not use it.
PREFIX = "PK_REF_"


def variable_name(reference: Reference, taken: set[str]) -> str:
    """``PK_REF_<namespace>_<name>``, made an environment variable name, unique in ``taken``."""
    base = PREFIX + re.sub(r"[^A-Za-z0-9_]", "_", f"{reference.namespace}_{reference.name}")
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}_{number}"
    return name
