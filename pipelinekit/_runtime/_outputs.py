"""Holding a provider to the output variables it declares, once it has succeeded.

Validation refuses a reference to a name the producing provider does not declare; this is the
other half: a provider that succeeds without setting a required output variable, or setting one
it does not declare, fails its attempt here, with the name and the fix, rather than leaving a
later action to fail on a reference with no value (after the tests and the approval). An optional
output variable left unset is a warning in the action's log. Providers that declare nothing are
not checked.

An optional one left unset becomes ``""``, as ``Commands`` makes it, so that a reference to it
(which validation accepted) resolves the same whichever provider set it.

It runs after every provider, the fake's scripted outcomes included, so that a fake run refuses
what a real one refuses. ``Commands`` checks its own while it runs (it fails on a required one the
commands did not export, and sets an optional one to ``""`` with its own warning), so for it the
check here finds nothing to say: nothing is reported twice, and no provider is special-cased.
"""

from __future__ import annotations

from pipelinekit._model._names import did_you_mean
from pipelinekit._model._output_variables import declared_outputs
from pipelinekit.exceptions import ActionFailed
from pipelinekit.providers._context import ActionContext

__all__ = ["unkept_declaration"]


def _names(names: list[str]) -> str:
    return ", ".join(map(repr, names))


def unkept_declaration(provider: object, ctx: ActionContext) -> ActionFailed | None:
    """The failure of a provider that succeeded but broke its declaration, else ``None``.

    Each optional output variable left unset is set to ``""``, with a warning in the action's
    log.
    """
    declared = declared_outputs(provider)
    if declared is None:
        return None
    was_set = ctx.output_variables
    names = declared.names
    undeclared = sorted(name for name in was_set if name not in names)
    if undeclared:
        hint = did_you_mean(undeclared[0], names) if names else ""
        fix = (
            "set only those"
            if declared.fixed
            else "declare it in output_variables (or optional_output_variables), or do not set it"
        )
        return ActionFailed(
            f"set output variable{'s' if len(undeclared) > 1 else ''} {_names(undeclared)}, "
            f"which its provider does not declare (it declares {declared.describe()}){hint}; " + fix
        )
    unset = sorted(name for name in declared.required if name not in was_set)
    if unset:
        return ActionFailed(
            f"did not set required output variable{'s' if len(unset) > 1 else ''} "
            f"{_names(unset)}; set {'them' if len(unset) > 1 else 'it'} "
            "(ctx.set_variable, or return it in the function's mapping), or declare "
            f"{'them' if len(unset) > 1 else 'it'} in optional_output_variables if "
            f"{'they' if len(unset) > 1 else 'it'} may be left unset"
        )
    for name in declared.optional:
        if name not in was_set:
            ctx.log.warning("optional output variable not set; it is empty", name=name)
            ctx.set_variable(name, "")
    return None
