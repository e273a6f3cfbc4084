"""Declaring providers: the ``@provider`` decorator that gives a class its action type id."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pipelinekit._model._declarations import ActionTypeId, Category, Owner

__all__ = ["provider"]

T = TypeVar("T", bound=type)


def provider(
    owner: Owner | str,
    name: str,
    *,
    category: Category | str,
    version: str = "1",
) -> Callable[[T], T]:
    """Class decorator: mark a class as the provider of an action type.

    ``@pk.provider("Custom", "AcmeDeploy", category=pk.Category.DEPLOY)`` sets the class's
    ``action_type`` to ``ActionTypeId(Category.DEPLOY, Owner.CUSTOM, "AcmeDeploy", "1")``.
    """
    action_type = ActionTypeId(category, owner, name, version)

    def decorate(cls: T) -> T:
        cls.action_type = action_type  # type: ignore[attr-defined]  # adding it is the point
        return cls

    return decorate
