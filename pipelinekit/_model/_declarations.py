"""The declaration model: stages, actions and the values they hold.

Everything here is a frozen attrs value: hashable, comparable, changed with ``attrs.evolve``. The
model holds everything a CodePipeline declaration holds, so that importing and exporting
CodePipeline definitions loses nothing. It knows nothing of running pipelines.

Converters only reshape input (lists to tuples, dicts to frozen maps, numbers to timedeltas); they
never raise. The rules live in ``_validate`` and run when a ``Pipeline`` is built, so one attempt
reports every problem with the pipeline, stage, action and field at fault.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs

from pipelinekit._model._frozendict import FrozenDict, to_frozendict, to_tuple

__all__ = [
    "Action",
    "ActionTypeId",
    "BeforeEntry",
    "Category",
    "Condition",
    "ExecutionMode",
    "OnFailure",
    "OnSuccess",
    "Owner",
    "ProviderDeclaration",
    "Result",
    "Retry",
    "RetryMode",
    "Rule",
    "Stage",
    "Status",
    "Variable",
]


class Category(enum.StrEnum):
    """What kind of work an action does, as CodePipeline spells it."""

    SOURCE = "Source"
    BUILD = "Build"
    TEST = "Test"
    DEPLOY = "Deploy"
    INVOKE = "Invoke"
    APPROVAL = "Approval"
    COMPUTE = "Compute"
    #: The category of stage-condition rules (``ruleTypeId.category``).
    RULE = "Rule"


class Owner(enum.StrEnum):
    """Who provides an action type, as CodePipeline spells it."""

    AWS = "AWS"
    THIRD_PARTY = "ThirdParty"
    CUSTOM = "Custom"


class ExecutionMode(enum.StrEnum):
    """How several executions of one pipeline share its stages."""

    SUPERSEDED = "SUPERSEDED"
    QUEUED = "QUEUED"
    PARALLEL = "PARALLEL"


class Status(enum.StrEnum):
    """The state of an execution, a stage or an action.

    CodePipeline's spelling where it has one; ``NotStarted``, ``Skipped`` and
    ``WaitingForApproval`` are pipelinekit's own, for what CodePipeline simply does not show.
    """

    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STOPPED = "Stopped"
    STOPPING = "Stopping"
    SUPERSEDED = "Superseded"
    CANCELLED = "Cancelled"
    ABANDONED = "Abandoned"
    NOT_STARTED = "NotStarted"
    SKIPPED = "Skipped"
    WAITING_FOR_APPROVAL = "WaitingForApproval"


#: States after which an execution, stage or action never changes again.
TERMINAL = frozenset(
    {
        Status.SUCCEEDED,
        Status.FAILED,
        Status.STOPPED,
        Status.SUPERSEDED,
        Status.CANCELLED,
        Status.ABANDONED,
        Status.SKIPPED,
    }
)


class Result(enum.StrEnum):
    """What a stage condition does when one of its rules fails."""

    FAIL = "FAIL"
    SKIP = "SKIP"
    RETRY = "RETRY"
    ROLLBACK = "ROLLBACK"


class RetryMode(enum.StrEnum):
    """Which actions a stage retry runs again."""

    FAILED_ACTIONS = "FAILED_ACTIONS"
    ALL_ACTIONS = "ALL_ACTIONS"


def _enum_or_raw(enum_type: type[enum.StrEnum], value: object) -> object:
    if isinstance(value, str) and not isinstance(value, enum_type):
        try:
            return enum_type(value)
        except ValueError:
            return value  # reported by validation, with the allowed values
    return value


def _to_category(value: object) -> object:
    return _enum_or_raw(Category, value)


def _to_owner(value: object) -> object:
    return _enum_or_raw(Owner, value)


def _to_result(value: object) -> object:
    return _enum_or_raw(Result, value)


def _to_retry_mode(value: object) -> object:
    return _enum_or_raw(RetryMode, value)


def _to_version(value: object) -> object:
    # CloudFormation templates often write `Version: 1`.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def to_duration(value: object) -> object:
    """Seconds as a number become a timedelta; anything else is kept for validation to judge."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and math.isfinite(value) and abs(value) < 1e15:  # noqa: PLR2004 - past this timedelta overflows
        return timedelta(seconds=value)
    return value


@attrs.frozen
class ActionTypeId:
    """Identifies an action type: ``category``, ``owner``, ``provider`` and ``version``.

    The same four fields as CodePipeline's ``actionTypeId``. Versions are strings; a number is
    converted (CloudFormation templates often write ``Version: 1``).
    """

    category: Category = attrs.field(converter=_to_category)
    owner: Owner = attrs.field(converter=_to_owner)
    provider: str
    version: str = attrs.field(default="1", converter=_to_version)

    def __str__(self) -> str:
        return f"{self.category}/{self.owner}/{self.provider}/{self.version}"


@runtime_checkable
class ProviderDeclaration(Protocol):
    """What the model needs of a provider: the action type it implements.

    Providers are plain objects (usually frozen attrs classes) whose class carries an
    ``action_type``; ``@pk.provider`` sets it. Running them is the scheduler's business.
    """

    action_type: ClassVar[ActionTypeId]


@attrs.frozen
class Variable:
    """A pipeline-level variable, referenced as ``#{variables.<name>}``.

    ``default`` is used unless a run overrides it; a variable without a default must be given a
    value when a run starts. ``secret`` values are masked in logs, events and the store.
    """

    name: str
    default: str | None = attrs.field(default=None, kw_only=True)
    description: str = attrs.field(default="", kw_only=True)
    secret: bool = attrs.field(default=False, kw_only=True)


@attrs.frozen
class Retry:
    """How often an action is tried and how long to wait between tries.

    ``attempts`` counts every try, the first included (``attempts=1`` means no retry). The wait
    before try *n* (n >= 2) is ``delay * backoff ** (n - 2)``, capped at ``max_delay``, plus up to
    ``jitter`` times that at random. ``retry_on`` limits retries to those exception types (and
    their subclasses); empty means any failure is retried.
    """

    attempts: int = 3
    backoff: float = attrs.field(default=2.0, kw_only=True)
    delay: timedelta = attrs.field(
        default=timedelta(seconds=1), converter=to_duration, kw_only=True
    )
    max_delay: timedelta = attrs.field(
        default=timedelta(minutes=5), converter=to_duration, kw_only=True
    )
    jitter: float = attrs.field(default=0.1, kw_only=True)
    retry_on: tuple[type[BaseException], ...] = attrs.field(
        default=(), converter=to_tuple, kw_only=True
    )

    def delay_before(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        """The wait before try number ``attempt`` (2 for the first retry)."""
        if attempt < 2:  # noqa: PLR2004 - the first try never waits
            return timedelta(0)
        base = self.delay.total_seconds() * self.backoff ** (attempt - 2)
        base = min(base, self.max_delay.total_seconds())
        spread = (rng or random.Random()).uniform(0, self.jitter * base) if self.jitter else 0.0  # noqa: S311 - jitter, not cryptography
        return timedelta(seconds=base + spread)

    def retries(self, error: BaseException) -> bool:
        """Whether ``error`` is of a kind this policy retries."""
        return not self.retry_on or isinstance(error, self.retry_on)


@attrs.frozen
class Action:
    """One unit of work in a stage: a provider plus how it is wired into the pipeline.

    ``inputs`` name artifacts produced by actions certain to finish first; ``outputs`` name the
    artifacts this action produces (unique in the pipeline). ``namespace`` makes the action's
    output variables referable as ``#{namespace.Name}``. Actions of a stage with the same
    ``run_order`` run in parallel; groups run in ascending order.
    """

    name: str
    provider: Any
    inputs: tuple[str, ...] = attrs.field(default=(), converter=to_tuple, kw_only=True)
    outputs: tuple[str, ...] = attrs.field(default=(), converter=to_tuple, kw_only=True)
    namespace: str | None = attrs.field(default=None, kw_only=True)
    run_order: int = attrs.field(default=1, kw_only=True)
    timeout: timedelta | None = attrs.field(default=None, converter=to_duration, kw_only=True)
    retry: Retry | None = attrs.field(default=None, kw_only=True)
    cache: bool = attrs.field(default=False, kw_only=True)
    configuration: FrozenDict = attrs.field(
        factory=FrozenDict, converter=to_frozendict, kw_only=True
    )
    region: str | None = attrs.field(default=None, kw_only=True)
    role_arn: str | None = attrs.field(default=None, kw_only=True)

    @property
    def action_type(self) -> ActionTypeId | None:
        """The provider's action type id, or ``None`` if the provider declares none."""
        found = getattr(self.provider, "action_type", None)
        return found if isinstance(found, ActionTypeId) else None


def _to_rule_type(value: object) -> object:
    if isinstance(value, str):
        return ActionTypeId(Category.RULE, Owner.AWS, value)
    return value


@attrs.frozen
class Rule:
    """One rule of a stage condition, as CodePipeline declares it.

    ``rule_type`` is an ``ActionTypeId`` with category ``Rule``; a bare string names one of AWS's
    rule providers (``"VariableCheck"``, ``"DeploymentWindow"``, ``"Commands"``, ...).
    """

    name: str
    rule_type: ActionTypeId = attrs.field(converter=_to_rule_type)
    configuration: FrozenDict = attrs.field(
        factory=FrozenDict, converter=to_frozendict, kw_only=True
    )
    commands: tuple[str, ...] = attrs.field(default=(), converter=to_tuple, kw_only=True)
    inputs: tuple[str, ...] = attrs.field(default=(), converter=to_tuple, kw_only=True)
    region: str | None = attrs.field(default=None, kw_only=True)
    role_arn: str | None = attrs.field(default=None, kw_only=True)
    timeout: timedelta | None = attrs.field(default=None, converter=to_duration, kw_only=True)


@attrs.frozen
class Condition:
    """A stage condition: its ``rules`` are all evaluated; if any fails, ``result`` applies."""

    result: Result = attrs.field(converter=_to_result)
    rules: tuple[Rule, ...] = attrs.field(converter=to_tuple)


def _to_conditions(value: object) -> object:
    if isinstance(value, Condition):
        return (value,)
    return to_tuple(value)


@attrs.frozen
class BeforeEntry:
    """Conditions checked before a stage is entered (result ``FAIL`` or ``SKIP``)."""

    conditions: tuple[Condition, ...] = attrs.field(converter=_to_conditions)


@attrs.frozen
class OnSuccess:
    """Conditions checked after every action of a stage succeeded (``ROLLBACK`` or ``FAIL``)."""

    conditions: tuple[Condition, ...] = attrs.field(converter=_to_conditions)


@attrs.frozen
class OnFailure:
    """What happens when a stage fails: ``ROLLBACK``, ``RETRY`` (with a ``retry_mode``), ...

    ``OnFailure.ROLLBACK``, ``OnFailure.RETRY`` (failed actions), ``OnFailure.FAIL`` and
    ``OnFailure.SKIP`` are ready-made policies; pass ``conditions`` to apply the result only when
    a rule fails.
    """

    result: Result | None = attrs.field(default=None, converter=_to_result)
    retry_mode: RetryMode | None = attrs.field(default=None, converter=_to_retry_mode, kw_only=True)
    conditions: tuple[Condition, ...] = attrs.field(
        default=(), converter=_to_conditions, kw_only=True
    )

    ROLLBACK: ClassVar[OnFailure]
    RETRY: ClassVar[OnFailure]
    FAIL: ClassVar[OnFailure]
    SKIP: ClassVar[OnFailure]


OnFailure.ROLLBACK = OnFailure(Result.ROLLBACK)
OnFailure.RETRY = OnFailure(Result.RETRY, retry_mode=RetryMode.FAILED_ACTIONS)
OnFailure.FAIL = OnFailure(Result.FAIL)
OnFailure.SKIP = OnFailure(Result.SKIP)


def _to_before_entry(value: object) -> object:
    return BeforeEntry((value,)) if isinstance(value, Condition) else value


def _to_on_success(value: object) -> object:
    return OnSuccess((value,)) if isinstance(value, Condition) else value


def _to_on_failure(value: object) -> object:
    if isinstance(value, Result):
        return OnFailure(value)
    if isinstance(value, Condition):
        return OnFailure(conditions=(value,))
    return value


def _to_needs(value: object) -> object:
    if value is None:
        return None
    return to_tuple(value)


@attrs.frozen
class Stage:
    """A named group of actions that runs as a unit.

    ``needs=None`` (the default) means the stage runs after the previous one; ``needs=[]`` means
    it depends on no stage; ``needs=["A", "B"]`` means it runs once ``A`` and ``B`` succeeded.
    """

    name: str
    actions: tuple[Action, ...] = attrs.field(converter=to_tuple)
    needs: tuple[str, ...] | None = attrs.field(default=None, converter=_to_needs, kw_only=True)
    before_entry: BeforeEntry | None = attrs.field(
        default=None, converter=_to_before_entry, kw_only=True
    )
    on_success: OnSuccess | None = attrs.field(default=None, converter=_to_on_success, kw_only=True)
    on_failure: OnFailure | None = attrs.field(default=None, converter=_to_on_failure, kw_only=True)

    def groups(self) -> list[tuple[int, list[Action]]]:
        """The run_order groups of this stage, in ascending order."""
        by_order: dict[int, list[Action]] = {}
        for action in self.actions:
            by_order.setdefault(action.run_order, []).append(action)
        return sorted(by_order.items())


def iter_actions(stages: Iterable[Stage]) -> Iterable[tuple[Stage, Action]]:
    """Every (stage, action) pair, in declaration order."""
    for stage in stages:
        for action in stage.actions:
            yield stage, action
