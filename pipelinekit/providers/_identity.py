"""Who decides an approval: the rule on names, in a module that loads nothing else.

``ManualApproval`` checks its ``approvers`` with it when a pipeline is declared, which must not
load the stores (``import pipelinekit`` stays light); the engine checks who decides with it.
"""

from __future__ import annotations

from pipelinekit.exceptions import ExecutionError

__all__ = ["TIMED_OUT", "check_identity"]

#: ``Decision.by`` of what a request's timeout keeps: no person's name is blank, so it can
#: never be mistaken for one.
TIMED_OUT = ""


def check_identity(by: object) -> str:
    """``by`` if it names who decides; ``ExecutionError`` for a blank or malformed name.

    Spaces around a name or control characters in it are refused rather than trimmed: a name
    compares exactly with the approvers and with who started the execution.
    """
    if not isinstance(by, str) or not by.strip():
        msg = f"an approval decision needs the name of who decides (by=...); got {by!r}"
        raise ExecutionError(msg)
    if by != by.strip() or not by.isprintable():
        msg = (
            f"{by!r} cannot name who decides an approval: no spaces around it or control "
            "characters in it"
        )
        raise ExecutionError(msg)
    return by
