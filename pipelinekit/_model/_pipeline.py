"""``Pipeline``: the root of a declaration, checked as a whole when it is built."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from pipelinekit._model._declarations import ExecutionMode, Stage, Variable
from pipelinekit._model._frozendict import to_tuple
from pipelinekit._model._validate import Analysis, analyse

if TYPE_CHECKING:
    from pipelinekit._compiler._plan import Plan

__all__ = ["Pipeline"]


def _to_execution_mode(value: object) -> object:
    if isinstance(value, str) and not isinstance(value, ExecutionMode):
        try:
            return ExecutionMode(value)
        except ValueError:
            return value  # reported by validation, with the allowed values
    return value


@attrs.frozen
class Pipeline:
    """A named, ordered set of stages, with its variables and execution mode.

    Its stages, actions and variables checked their own fields when they were built; building
    the pipeline checks its own fields and every rule between them (unique names, artifacts and
    ``#{...}`` references that come from something certain to finish first, ``needs`` without a
    cycle) and raises ``PipelineDefinitionError`` listing every problem found, each naming the
    stage, action and field at fault. A ``Pipeline`` that exists is therefore valid;
    ``compile()`` turns it into a ``Plan``.

    ``hooks`` are not part of the declaration's identity: two pipelines that differ only in hooks
    compare equal.
    """

    name: str
    stages: tuple[Stage, ...] = attrs.field(converter=to_tuple)
    variables: tuple[Variable, ...] = attrs.field(default=(), converter=to_tuple, kw_only=True)
    execution_mode: ExecutionMode = attrs.field(
        default=ExecutionMode.SUPERSEDED, converter=_to_execution_mode, kw_only=True
    )
    triggers: tuple[Any, ...] = attrs.field(default=(), converter=to_tuple, kw_only=True)
    hooks: tuple[Any, ...] = attrs.field(
        default=(), converter=to_tuple, kw_only=True, eq=False, repr=False
    )
    role_arn: str | None = attrs.field(default=None, kw_only=True)
    _analysis: Analysis = attrs.field(init=False, eq=False, repr=False)
    _plan: Plan | None = attrs.field(init=False, default=None, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # Frozen: the analysis is computed once, here, and kept for compile().
        object.__setattr__(self, "_analysis", analyse(self))

    def stage(self, name: str) -> Stage:
        """The stage called ``name`` (``KeyError`` if there is none)."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def compile(self) -> Plan:
        """The execution plan: a networkx DAG of actions, with run order and stage gates.

        Each call returns a new plan, yours to change.
        """
        return _compile(self)

    def shared_plan(self) -> Plan:
        """The plan engines run, compiled once per pipeline; never change it."""
        if self._plan is None:
            object.__setattr__(self, "_plan", _compile(self))
        assert self._plan is not None  # noqa: S101 - set above
        return self._plan


def _compile(pipeline: Pipeline) -> Plan:
    # The one call from the model up to the compiler, made when a plan is asked for: the
    # compiler builds on the model (and on networkx, which `import pipelinekit` then need not
    # load).
    from pipelinekit._compiler._plan import compile_pipeline  # noqa: PLC0415 - see above

    return compile_pipeline(pipeline)
