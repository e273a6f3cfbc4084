"""The errors pipelinekit raises, all under one base class.

The tree is shallow on purpose, so that ``except`` clauses stay simple::

    PipelineKitError
    ├── PipelineDefinitionError      a declaration breaks a rule (all problems at once)
    ├── ExecutionError               a run cannot start or go on (bad variables, unknown provider)
    ├── StoreError                   the store refused a change or cannot be used
    └── ActionFailed                 an action failed; providers raise it with the reason
        ├── ActionTimeout            an attempt ran out of time
        └── ArtifactChanged          an input artifact changed after its producer sealed it

Every error names the pipeline, stage, action and field at fault where it knows them, and says what
would fix it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

__all__ = [
    "ActionFailed",
    "ActionTimeout",
    "ArtifactChanged",
    "ExecutionError",
    "PipelineDefinitionError",
    "PipelineKitError",
    "Problem",
    "StoreError",
]


class PipelineKitError(Exception):
    """Base class of every error pipelinekit raises on purpose."""


@attrs.frozen
class Problem:
    """One broken rule in a pipeline declaration.

    ``where()`` renders the location (``pipeline 'p', stage 's', action 'a', field 'f'``);
    ``message`` says what is wrong and how to fix it.
    """

    message: str
    pipeline: str | None = None
    stage: str | None = None
    action: str | None = None
    field: str | None = None

    def where(self) -> str:
        """The location of the problem, from the pipeline down to the field."""
        parts = []
        for label, value in (
            ("pipeline", self.pipeline),
            ("stage", self.stage),
            ("action", self.action),
            ("field", self.field),
        ):
            if value is not None:
                parts.append(f"{label} {value!r}")
        return ", ".join(parts)

    def __str__(self) -> str:
        where = self.where()
        return f"{where}: {self.message}" if where else self.message


class PipelineDefinitionError(PipelineKitError):
    """A pipeline declaration breaks one or more rules.

    ``problems`` lists every broken rule found, so one attempt shows them all. ``pipeline``,
    ``stage`` and ``action`` are those of the first problem.
    """

    problems: tuple[Problem, ...]

    def __init__(self, problems: Problem | Iterable[Problem]) -> None:
        """Build the error from one problem or several (at least one)."""
        found = (problems,) if isinstance(problems, Problem) else tuple(problems)
        if not found:
            msg = "PipelineDefinitionError needs at least one Problem"
            raise ValueError(msg)
        self.problems = found
        super().__init__(self._render(found))

    @property
    def pipeline(self) -> str | None:
        """The pipeline of the first problem."""
        return self.problems[0].pipeline

    @property
    def stage(self) -> str | None:
        """The stage of the first problem."""
        return self.problems[0].stage

    @property
    def action(self) -> str | None:
        """The action of the first problem."""
        return self.problems[0].action

    #: How many problems the message lists; ``problems`` always holds them all.
    SHOWN = 50

    @classmethod
    def _render(cls, problems: Sequence[Problem]) -> str:
        if len(problems) == 1:
            return str(problems[0])
        lines = [f"{len(problems)} problems in the pipeline definition:"]
        lines.extend(f"  - {problem}" for problem in problems[: cls.SHOWN])
        if len(problems) > cls.SHOWN:
            lines.append(f"  ... and {len(problems) - cls.SHOWN} more (all are in .problems)")
        return "\n".join(lines)


class ExecutionError(PipelineKitError):
    """A run cannot start or go on: the message says what is wrong and how to fix it."""


class ActionFailed(PipelineKitError):  # noqa: N818 - the name says what happened, as the API shows
    """Raised by a provider to fail its action with a reason: ``raise pk.ActionFailed("why")``.

    The message is what the result, the events and the CLI show (with secrets masked).
    """


class ActionTimeout(ActionFailed):
    """An attempt of an action ran out of time and was cancelled."""


class ArtifactChanged(ActionFailed):
    """An input artifact changed after its producer sealed it; ``changes`` says what changed.

    ``changes`` maps each changed artifact to lines such as ``"app.txt: content changed"``.
    An attempt that fails with it is not retried: the artifact stays changed.
    """

    def __init__(self, message: str, changes: Mapping[str, Sequence[str]]) -> None:
        """The error, with what changed."""
        super().__init__(message)
        self.changes = {name: list(found) for name, found in changes.items()}


class StoreError(PipelineKitError):
    """The store refused a change (such as one after a terminal state) or cannot be used."""
