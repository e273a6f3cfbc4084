"""Declaring providers: the ``@provider`` decorator that gives a class its action type id."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from pipelinekit._model._declarations import ActionTypeId, Category, Owner
from pipelinekit._model._output_variables import declaration_problems
from pipelinekit.exceptions import PipelineDefinitionError, Problem

__all__ = ["provider"]

T = TypeVar("T", bound=type)


def provider(
    owner: Owner | str,
    name: str,
    *,
    category: Category | str,
    version: str = "1",
    output_variables: Iterable[str] | None = None,
    optional_output_variables: Iterable[str] | None = None,
) -> Callable[[T], T]:
    """Class decorator: mark a class as the provider of an action type.

    ``@pk.provider("Custom", "AcmeDeploy", category=pk.Category.DEPLOY)`` sets the class's
    ``action_type`` to ``ActionTypeId(Category.DEPLOY, Owner.CUSTOM, "AcmeDeploy", "1")``.
    ``output_variables=["Url"]`` (and ``optional_output_variables=``) declare the output
    variables every instance sets, as class attributes: references to other names are refused
    where a pipeline is written, and a run holds the provider to them.
    """
    action_type = ActionTypeId(category, owner, name, version)
    required = None if output_variables is None else tuple(output_variables)
    optional = None if optional_output_variables is None else tuple(optional_output_variables)
    problems = [
        Problem(f"@pk.provider({name!r}): {message}", field=field)
        for field, message in declaration_problems(required, optional)
    ]
    if problems:
        raise PipelineDefinitionError(problems)

    def decorate(cls: T) -> T:
        cls.action_type = action_type  # type: ignore[attr-defined]  # adding it is the point
        if required is not None:
            cls.output_variables = required  # type: ignore[attr-defined]
        if optional is not None:
            cls.optional_output_variables = optional  # type: ignore[attr-defined]
        return cls

    return decorate
