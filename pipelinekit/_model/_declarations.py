"""The declaration model: stages, actions and the values they hold.

Everything here is a frozen attrs value: hashable, comparable, changed with ``attrs.evolve``. The
model holds everything a CodePipeline declaration holds, so that importing and exporting
CodePipeline definitions loses nothing. It knows nothing of running pipelines.

Converters only reshape input (lists to tuples, dicts to frozen maps, numbers to timedeltas); they
never raise. Each class then checks its own fields as it is built (``__attrs_post_init__``, so
``attrs.evolve`` checks the variant too) and raises ``PipelineDefinitionError`` with every problem
of that one object at once, naming the action or stage and the field: ``pk.Action("x", 3)`` fails
on the line that wrote it. The checks first try the common, valid shape with a few type tests and
explain only what fails, so building a large pipeline stays cheap. Rules between objects
(artifacts, namespaces, ``#{...}`` references, ``needs``, unique names) are ``_validate``'s and
run when a ``Pipeline`` is built.
"""

from __future__ import annotations

import enum
import math
import random
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any, ClassVar, Protocol, TypeGuard, runtime_checkable

import attrs

from pipelinekit._model._cache import Cache
from pipelinekit._model._frozendict import FrozenDict, to_frozendict, to_tuple
from pipelinekit._model._limits import (
    MAX_ATTEMPTS,
    MAX_BACKOFF,
    MAX_TIMEOUT,
    MAX_VALUE_BYTES,
    MAX_VARIABLE_DEFAULT,
    NESTING_PROBLEM,
    duration_problem,
    limit_problems,
    measure,
    nul_problem,
    shown,
    size_problem,
    utf8_size,
)
from pipelinekit._model._names import ARTIFACT, NAMESPACE, STAGE_OR_ACTION, VARIABLE
from pipelinekit._model._secrets import secret_problem
from pipelinekit._model._variables import RESERVED_NAMESPACES
from pipelinekit.exceptions import PipelineDefinitionError, Problem

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


#: The most seconds a timedelta holds (whole days, so that no rounding reaches past it).
_TIMEDELTA_SECONDS = timedelta.max.days * 86400


def to_duration(value: object) -> object:
    """Seconds as a number become a timedelta; anything else is kept for validation to judge."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and math.isfinite(value) and abs(value) < _TIMEDELTA_SECONDS:
        return timedelta(seconds=value)
    return value


class _Found(list[tuple[str, str]]):
    """The broken rules of one object, as (field, message) pairs."""

    __slots__ = ()

    def add(self, field: str, message: str) -> None:
        """Note that ``field`` breaks a rule; ``message`` says which, and how to fix it."""
        self.append((field, message))

    def refuse(self, *, stage: str | None = None, action: str | None = None) -> None:
        """Raise every problem noted, together; return if there is none."""
        if self:
            raise PipelineDefinitionError(
                Problem(message, stage=stage, action=action, field=field) for field, message in self
            )


_ZERO = timedelta(0)
_MAX_RUN_ORDER = 999
_MAX_CONFIG_KEY = 50
_MAX_RULES = 5
_MAX_ROLE_ARN = 1024
_PROVIDER_NAME = re.compile(r"[0-9A-Za-z_\-]{1,35}")
_VERSION = re.compile(r"[0-9A-Za-z_\-]{1,9}")
_ROLE_ARN = re.compile(r"arn:aws(-[A-Za-z0-9_]+)*:iam::[0-9]{12}:role/[\x21-\x7e]*")
_REGION = re.compile(r"[A-Za-z0-9\-]{4,30}")


def enum_choices(enum_type: Iterable[Any]) -> str:
    """``'A', 'B', 'C'``: the values of an enum, for messages."""
    return ", ".join(repr(member.value) for member in enum_type)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _name_or_none(name: object) -> str | None:
    """``name`` to place a problem with, unless the name itself is what is wrong."""
    return name if isinstance(name, str) and STAGE_OR_ACTION.problem(name) is None else None


def _timeout_problem(timeout: object) -> str | None:
    """Why ``timeout`` is not a positive duration of at most ``MAX_TIMEOUT`` (``None`` is fine)."""
    if timeout is None or (type(timeout) is timedelta and _ZERO < timeout <= MAX_TIMEOUT):
        return None
    return duration_problem(timeout)


def region_problem(region: object) -> str | None:
    """Why ``region`` is not an AWS region name (``None``, no region, is fine)."""
    if region is None or (isinstance(region, str) and _REGION.fullmatch(region)):
        return None
    return (
        f"must be an AWS region name of 4 to 30 letters, digits and '-', like 'eu-west-1' "
        f"(got {shown(region)})"
    )


def configuration_problems(configuration: object, field: str) -> list[tuple[str, str]]:
    """Why ``configuration`` is not a map of strings to strings within the limits.

    A value over a limit is named ``field['key']``; anything else names ``field``. A value that
    is not a string is not walked into (it may be nested ever so deep).
    """
    if not isinstance(configuration, Mapping):
        return [(field, f"must be a mapping of strings to strings (got {shown(configuration)})")]
    found = []
    for key, value in configuration.items():
        if not isinstance(key, str) or not 1 <= len(key) <= _MAX_CONFIG_KEY:
            found.append((field, f"key {shown(key)} must be a string of 1 to 50 characters"))
        elif "\x00" in key:
            found.append((field, f"key {shown(key)} {nul_problem(key)}"))
        if not isinstance(value, str):
            found.append(
                (
                    field,
                    (
                        f"value of {shown(key)} must be a string (got {shown(value)}); "
                        "CodePipeline configuration values are strings, e.g. 'true' rather "
                        "than True"
                    ),
                )
            )
            continue
        where = f"{field}[{shown(key)}]"
        if (size := utf8_size(value)) > MAX_VALUE_BYTES:
            found.append((where, size_problem(size)))
        if "\x00" in value:
            found.append((where, nul_problem(value)))
    return found


def configuration_size(configuration: FrozenDict) -> int | None:
    """The bytes of a plainly valid configuration, or ``None`` for one to explain.

    Plainly valid is strings to strings within the limits; ``configuration_problems`` explains
    anything else.
    """
    total = 0
    for key, value in configuration.items():
        if (
            type(key) is not str
            or type(value) is not str
            or not 0 < len(key) <= _MAX_CONFIG_KEY
            or "\x00" in key
            or "\x00" in value
        ):
            return None
        size = len(value) if value.isascii() else utf8_size(value)
        if size > MAX_VALUE_BYTES:
            return None
        total += utf8_size(key) + size
    return total


def role_arn_problem(role_arn: object) -> str | None:
    """Why ``role_arn`` is not an IAM role ARN, or ``None``."""
    if (
        isinstance(role_arn, str)
        and len(role_arn) <= _MAX_ROLE_ARN
        and _ROLE_ARN.fullmatch(role_arn)
    ):
        return None
    return (
        f"role_arn {shown(role_arn)} is not an IAM role ARN like "
        "'arn:aws:iam::123456789012:role/name'"
    )


#: Action types found valid: a pipeline uses a handful, each checked once.
_GOOD_TYPES: set[ActionTypeId] = set()


def _action_type_problems(type_id: ActionTypeId) -> list[str]:
    """Why the four fields of ``type_id`` break CodePipeline's rules (empty when they do not)."""
    try:
        if type_id in _GOOD_TYPES:
            return []
        hashable = True
    except TypeError:  # a field holds something unhashable, explained below
        hashable = False
    category: object = type_id.category
    owner: object = type_id.owner
    provider: object = type_id.provider
    version: object = type_id.version
    found = []
    if not isinstance(category, Category):
        found.append(f"category {shown(category)} is not one of {enum_choices(Category)}")
    if not isinstance(owner, Owner):
        found.append(f"owner {shown(owner)} is not one of {enum_choices(Owner)}")
    if not isinstance(provider, str) or not _PROVIDER_NAME.fullmatch(provider):
        found.append(f"provider name {shown(provider)} must be 1-35 letters, digits, '_' or '-'")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        found.append(f"version {shown(version)} must be 1-9 letters, digits, '_' or '-'")
    if not found and hashable and len(_GOOD_TYPES) < 1024:  # noqa: PLR2004 - a bound on memory
        _GOOD_TYPES.add(type_id)
    return found


@attrs.frozen(cache_hash=True)
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


@attrs.frozen(repr=False)
class Variable:
    """A pipeline-level variable, referenced as ``#{variables.<name>}``.

    ``default`` is used unless a run overrides it; a variable without a default must be given a
    value when a run starts. ``secret`` values are masked in logs, events and the store, and in
    this object's ``repr`` (which a traceback or a debugger may print).
    """

    name: str
    default: str | None = attrs.field(default=None, kw_only=True)
    description: str = attrs.field(default="", kw_only=True)
    secret: bool = attrs.field(default=False, kw_only=True)

    def __repr__(self) -> str:
        default = "'****'" if self.secret and self.default is not None else repr(self.default)
        return (
            f"Variable(name={self.name!r}, default={default}, "
            f"description={self.description!r}, secret={self.secret!r})"
        )

    def __attrs_post_init__(self) -> None:
        default: object = self.default
        description: object = self.description
        # Secrets (see _secrets.py): a secret default too short to be masked is refused here.
        unfit = secret_problem(default) if self.secret and isinstance(default, str) else None
        if (
            unfit is None
            and VARIABLE.fits(self.name)
            and (
                default is None
                or (
                    type(default) is str
                    and len(default) <= MAX_VARIABLE_DEFAULT
                    and "\x00" not in default
                )
            )
            and type(description) is str
            and len(description) <= MAX_VALUE_BYTES // 4  # at most 4 UTF-8 bytes a character
        ):
            return
        found = _Found()
        if (bad := VARIABLE.problem(self.name)) is not None:
            found.add("name", bad)
        if default is not None:
            if not isinstance(default, str):
                found.add(
                    "default",
                    f"default of {shown(self.name)} must be a string of at most "
                    f"{MAX_VARIABLE_DEFAULT} characters (got {shown(default)})",
                )
            elif len(default) > MAX_VARIABLE_DEFAULT:
                found.add(
                    "default",
                    f"default of {shown(self.name)} must be a string of at most "
                    f"{MAX_VARIABLE_DEFAULT} characters (MAX_VARIABLE_DEFAULT); it is "
                    f"{len(default):,} characters: pass a long value as a file or an artifact",
                )
            elif "\x00" in default:
                found.add("default", f"default of {shown(self.name)} {nul_problem(default)}")
            if unfit is not None:  # secrets
                found.add("default", f"secret default of {shown(self.name)} {unfit}")
        if not isinstance(description, str):
            found.add("description", f"must be a string (got {shown(description)})")
        elif (size := utf8_size(description)) > MAX_VALUE_BYTES:
            found.add("description", size_problem(size))
        found.refuse()

    def definition_bytes(self) -> int:
        """The bytes of values this variable adds to the definition (``MAX_DEFINITION_BYTES``)."""
        size = utf8_size(self.description)
        return size if self.default is None else size + utf8_size(self.default)


@attrs.frozen
class Retry:
    """How often an action is tried and how long to wait between tries.

    ``attempts`` counts every try, the first included (``attempts=1`` means no retry; at most
    ``MAX_ATTEMPTS``). The wait before try *n* (n >= 2) is ``delay * backoff ** (n - 2)``, capped
    at ``max_delay`` (which must be at least ``delay``), plus up to ``jitter`` times that at
    random. ``backoff`` is from 1 to ``MAX_BACKOFF``; delays are at most ``MAX_TIMEOUT``.
    ``retry_on`` limits retries to those exception types (and their subclasses); empty means any
    failure is retried.
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

    def __attrs_post_init__(self) -> None:
        # Fields are named as an action's ``retry=`` shows them: ``retry.attempts``.
        found = _Found()
        attempts: object = self.attempts
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            found.add(
                "retry.attempts", f"attempts must be a whole number >= 1 (got {shown(attempts)})"
            )
        elif attempts > MAX_ATTEMPTS:
            found.add(
                "retry.attempts",
                f"attempts is {attempts:,}; the limit is {MAX_ATTEMPTS} (MAX_ATTEMPTS): poll "
                "inside the action, or retry the stage, rather than retrying more",
            )
        backoff: object = self.backoff
        if not _is_number(backoff) or not math.isfinite(backoff) or backoff < 1:
            found.add(
                "retry.backoff",
                "backoff must be a finite number >= 1, the factor between waits "
                f"(got {shown(backoff)})",
            )
        elif backoff > MAX_BACKOFF:
            found.add(
                "retry.backoff",
                f"backoff is {backoff:g}; the limit is {MAX_BACKOFF:g} (MAX_BACKOFF), the "
                "factor between one wait and the next",
            )
        delays_fine = True
        for name in ("delay", "max_delay"):
            if (bad := duration_problem(getattr(self, name), zero=True)) is not None:
                found.add(f"retry.{name}", f"{name} {bad}")
                delays_fine = False
        if delays_fine and self.max_delay < self.delay:
            found.add(
                "retry.max_delay",
                f"max_delay {self.max_delay} is shorter than delay {self.delay}; max_delay caps "
                "every wait, so make it at least delay",
            )
        jitter: object = self.jitter
        if not _is_number(jitter) or not 0 <= jitter <= 1:
            found.add(
                "retry.jitter", f"jitter must be a fraction from 0 to 1 (got {shown(jitter)})"
            )
        retry_on: object = self.retry_on
        if not isinstance(retry_on, tuple) or not all(
            isinstance(kind, type) and issubclass(kind, BaseException) for kind in retry_on
        ):
            found.add(
                "retry.retry_on",
                f"retry_on must be a list of exception classes (got {shown(retry_on)})",
            )
        found.refuse()

    def delay_before(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        """The wait before try number ``attempt`` (2 for the first retry)."""
        if attempt < 2:  # noqa: PLR2004 - the first try never waits
            return timedelta(0)
        try:
            base = self.delay.total_seconds() * self.backoff ** (attempt - 2)
        except OverflowError:  # an attempt past MAX_ATTEMPTS: max_delay caps it anyway
            base = math.inf
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
    ``run_order`` run in parallel; groups run in ascending order. Inputs are read-only; with
    ``writable_inputs=True`` the action gets private writable copies of them instead (for tools
    that write beside what they read: pytest's cache, bytecode, in-tree builds).
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
    #: Private writable copies of the inputs (for tools that write beside what they read),
    #: instead of the producers' read-only folders.
    writable_inputs: bool = attrs.field(default=False, kw_only=True)
    #: Folders kept between executions under a key (``pk.Cache``), restored before it runs.
    caches: tuple[Cache, ...] = attrs.field(default=(), converter=to_tuple, kw_only=True)
    configuration: FrozenDict = attrs.field(
        factory=FrozenDict, converter=to_frozendict, kw_only=True
    )
    region: str | None = attrs.field(default=None, kw_only=True)
    role_arn: str | None = attrs.field(default=None, kw_only=True)
    #: The bytes of its configuration's and provider's values (``MAX_DEFINITION_BYTES``),
    #: measured while it was checked so that the pipeline need not walk it again.
    _definition_bytes: int = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # The common shape first, in a few type tests and one walk of the provider's values;
        # anything else gets the explaining checks, which find the same problems (or none) and
        # say what they are.
        configuration: object = self.configuration
        if type(configuration) is FrozenDict and self._plainly_valid():
            size = configuration_size(configuration) if configuration else 0
            if size is not None:
                provider_bytes = measure(self.provider)
                if provider_bytes is not None and self._provider_plainly_valid():
                    object.__setattr__(self, "_definition_bytes", size + provider_bytes)
                    return
        found = _Found()
        self._check_own_fields(found)
        provider_bytes = self._check_provider(found)
        found.refuse(action=_name_or_none(self.name))
        size = configuration_size(self.configuration) or 0
        object.__setattr__(self, "_definition_bytes", size + provider_bytes)

    def definition_bytes(self) -> int:
        """The bytes of values this action adds to the definition (``MAX_DEFINITION_BYTES``)."""
        return self._definition_bytes

    def _plainly_valid(self) -> bool:
        run_order: object = self.run_order
        inputs: object = self.inputs
        outputs: object = self.outputs
        namespace: object = self.namespace
        timeout: object = self.timeout
        retry: object = self.retry
        cache: object = self.cache
        writable_inputs: object = self.writable_inputs
        return (
            STAGE_OR_ACTION.fits(self.name)
            and type(run_order) is int
            and 0 < run_order <= _MAX_RUN_ORDER
            and type(inputs) is tuple
            and type(outputs) is tuple
            and all(map(ARTIFACT.fits, inputs))
            and all(map(ARTIFACT.fits, outputs))
            and (len(inputs) < 2 or len(set(inputs)) == len(inputs))  # noqa: PLR2004 - a pair
            and (len(outputs) < 2 or len(set(outputs)) == len(outputs))  # noqa: PLR2004 - a pair
            and (
                namespace is None
                or (NAMESPACE.fits(namespace) and namespace not in RESERVED_NAMESPACES)
            )
            and (timeout is None or (type(timeout) is timedelta and _ZERO < timeout <= MAX_TIMEOUT))
            and (retry is None or type(retry) is Retry)
            and type(cache) is bool
            and type(writable_inputs) is bool
            and self.caches == ()
            and self.region is None
            and self.role_arn is None
        )

    def _check_own_fields(self, found: _Found) -> None:
        if (bad := STAGE_OR_ACTION.problem(self.name)) is not None:
            found.add("name", f"action {bad}")
        run_order: object = self.run_order
        if type(run_order) is not int or not 1 <= run_order <= _MAX_RUN_ORDER:
            found.add(
                "run_order",
                f"run_order must be a whole number from 1 to 999 (got {shown(run_order)})",
            )
        self._check_artifacts(found)
        namespace: object = self.namespace
        if namespace is not None:
            if (bad := NAMESPACE.problem(namespace)) is not None:
                found.add("namespace", bad)
            elif namespace in RESERVED_NAMESPACES:
                found.add(
                    "namespace",
                    f"namespace {namespace!r} is reserved for pipelinekit's own variables; "
                    "choose another name",
                )
        if (bad := _timeout_problem(self.timeout)) is not None:
            found.add("timeout", bad)
        retry: object = self.retry
        if retry is not None and not isinstance(retry, Retry):
            found.add("retry", f"must be a pk.Retry (got {shown(retry)})")
        cache: object = self.cache
        if type(cache) is not bool:
            found.add("cache", f"must be True or False (got {shown(cache)})")
        writable_inputs: object = self.writable_inputs
        if type(writable_inputs) is not bool:
            found.add(
                "writable_inputs",
                "must be True (private writable copies of the inputs) or False (read-only "
                f"inputs, the default) (got {shown(writable_inputs)})",
            )
        self._check_caches(found)
        self._check_placement(found)

    def _check_caches(self, found: _Found) -> None:
        """Each ``pk.Cache``'s own rules, and that its ``{hash:...}`` looks in an input."""
        caches: object = self.caches
        if not isinstance(caches, tuple) or not all(isinstance(c, Cache) for c in caches):
            found.add("caches", f"must be a list of pk.Cache(...) (got {shown(caches)})")
            return
        for index, cache in enumerate(caches):
            for field, message in cache.problems():
                found.add(f"caches[{index}].{field}", message)
            declared: object = self.inputs
            inputs = declared if isinstance(declared, tuple) else ()
            for artifact in sorted(cache.artifacts() - set(inputs)):
                if ARTIFACT.problem(artifact) is None:
                    found.add(
                        f"caches[{index}].key",
                        f"{{hash:{artifact}/...}} looks in {artifact!r}, which is not an input "
                        f"of the action; add inputs=[{artifact!r}] or hash another artifact",
                    )

    def _check_artifacts(self, found: _Found) -> None:
        for field in ("inputs", "outputs"):
            names: object = getattr(self, field)
            if not isinstance(names, tuple):
                found.add(
                    field,
                    f"must be a list of artifact names, e.g. {field}=['src'] (got {shown(names)})",
                )
                continue
            strings = [name for name in names if isinstance(name, str)]
            if len(set(strings)) != len(strings):
                found.add(field, f"lists the same artifact more than once: {shown(list(names))}")
            for name in names:
                if (bad := ARTIFACT.problem(name)) is not None:
                    found.add(field, bad)

    def _check_placement(self, found: _Found) -> None:
        """Configuration, region and role: where and how CodePipeline would run the action."""
        for field, message in configuration_problems(self.configuration, "configuration"):
            found.add(field, message)
        if (bad := region_problem(self.region)) is not None:
            found.add("region", bad)
        if self.role_arn is not None and (bad := role_arn_problem(self.role_arn)) is not None:
            found.add("role_arn", bad)

    def _provider_plainly_valid(self) -> bool:
        provider = self.provider
        action_type = getattr(provider, "action_type", None)
        if type(action_type) is not ActionTypeId or action_type not in _GOOD_TYPES:
            return False
        problems = getattr(provider, "problems", None)
        if callable(problems):
            for _ in problems():
                return False
        bounds = getattr(provider, "input_artifacts", None)
        if bounds is not None and not bounds[0] <= len(self.inputs) <= bounds[1]:
            return False
        bounds = getattr(provider, "output_artifacts", None)
        return bounds is None or bounds[0] <= len(self.outputs) <= bounds[1]

    def _check_provider(self, found: _Found) -> int:
        """The provider: an action type, its values' limits, its ``problems()``, its artifacts.

        Returns the bytes its values hold.
        """
        provider = self.provider
        action_type = getattr(provider, "action_type", None)
        if not isinstance(action_type, ActionTypeId):
            found.add(
                "provider",
                f"{shown(provider)} is not a provider: use one of pipelinekit's (pk.shell(...), "
                "pk.python(fn), ...) or decorate your class with @pk.provider(...)",
            )
            return 0
        for bad in _action_type_problems(action_type):
            found.add("provider.action_type", bad)
        # The limits first: a provider's own checks may show (repr) or walk a value, which for
        # one nested too deep is a RecursionError. A field over a limit is reported once.
        over, size = limit_problems(provider, ("provider",))
        for field, message in over:
            found.add(field, message)
        problems = getattr(provider, "problems", None)
        if callable(problems) and not any(message == NESTING_PROBLEM for _, message in over):
            reported = {field for field, _ in over}
            for field, message in problems():
                if f"provider.{field}" not in reported:
                    found.add(f"provider.{field}", message)
        for field, bounds in (
            ("inputs", getattr(provider, "input_artifacts", None)),
            ("outputs", getattr(provider, "output_artifacts", None)),
        ):
            names = getattr(self, field)
            if bounds is None or not isinstance(names, tuple):
                continue
            low, high = bounds
            if not low <= len(names) <= high:
                wanted = f"exactly {low}" if low == high else f"{low} to {high}"
                found.add(
                    field,
                    f"{type(provider).__name__} takes {wanted} {field[:-1]} artifact"
                    f"{'' if high == 1 else 's'} (got {len(names)})",
                )
        return size

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

    def __attrs_post_init__(self) -> None:
        found = _Found()
        if (bad := STAGE_OR_ACTION.problem(self.name)) is not None:
            found.add("name", f"rule {bad}")
        rule_type: object = self.rule_type
        if not isinstance(rule_type, ActionTypeId):
            found.add(
                "rule_type",
                "rule_type must be a rule provider name or an ActionTypeId "
                f"(got {shown(rule_type)})",
            )
        else:
            for bad in _action_type_problems(rule_type):
                found.add("rule_type", bad)
        for field, message in configuration_problems(self.configuration, "configuration"):
            found.add(field, message)
        self._check_commands(found)
        inputs: object = self.inputs
        if not isinstance(inputs, tuple):
            found.add("inputs", f"must be a list of artifact names (got {shown(inputs)})")
        else:
            for name in inputs:
                if (bad := ARTIFACT.problem(name)) is not None:
                    found.add("inputs", bad)
        if (bad := region_problem(self.region)) is not None:
            found.add("region", bad)
        if self.role_arn is not None and (bad := role_arn_problem(self.role_arn)) is not None:
            found.add("role_arn", bad)
        if (bad := _timeout_problem(self.timeout)) is not None:
            found.add("timeout", bad)
        found.refuse()

    def _check_commands(self, found: _Found) -> None:
        commands: object = self.commands
        if not isinstance(commands, tuple):
            found.add("commands", f"must be a list of command strings (got {shown(commands)})")
            return
        for index, command in enumerate(commands):
            if not isinstance(command, str):
                found.add(f"commands[{index}]", f"must be a string (got {shown(command)})")
                continue
            if (size := utf8_size(command)) > MAX_VALUE_BYTES:
                found.add(f"commands[{index}]", size_problem(size))
            if "\x00" in command:
                found.add(f"commands[{index}]", nul_problem(command))

    def definition_bytes(self) -> int:
        """The bytes of values this rule adds to the definition (``MAX_DEFINITION_BYTES``)."""
        size = configuration_size(self.configuration) or 0
        for command in self.commands:
            size += utf8_size(command)
        return size


@attrs.frozen
class Condition:
    """A stage condition: its ``rules`` are all evaluated; if any fails, ``result`` applies."""

    result: Result = attrs.field(converter=_to_result)
    rules: tuple[Rule, ...] = attrs.field(converter=to_tuple)

    def __attrs_post_init__(self) -> None:
        found = _Found()
        result: object = self.result
        if not isinstance(result, Result):
            found.add("result", f"result {shown(result)} is not one of {enum_choices(Result)}")
        rules: object = self.rules
        if not isinstance(rules, tuple) or not 1 <= len(rules) <= _MAX_RULES:
            found.add("rules", "a condition needs 1 to 5 pk.Rule")
            rules = ()
        names: set[str] = set()
        for index, rule in enumerate(rules):
            if not isinstance(rule, Rule):
                found.add(f"rules[{index}]", f"must be a pk.Rule (got {shown(rule)})")
            elif rule.name in names:
                found.add(
                    f"rules[{index}].name",
                    f"rule name {rule.name!r} is used twice in one condition",
                )
            else:
                names.add(rule.name)
        found.refuse()


def _to_conditions(value: object) -> object:
    if isinstance(value, Condition):
        return (value,)
    return to_tuple(value)


_ENTRY_RESULTS = frozenset({Result.FAIL, Result.SKIP})
_SUCCESS_RESULTS = frozenset({Result.ROLLBACK, Result.FAIL})


def _check_conditions(
    found: _Found, field: str, conditions: object, allowed: frozenset[Result], *, required: bool
) -> None:
    """The conditions of a stage condition (``field`` says which, as the stage shows it)."""
    if not isinstance(conditions, tuple) or (required and not conditions):
        found.add(field, "needs at least one pk.Condition")
        return
    for index, condition in enumerate(conditions):
        where = f"{field}.conditions[{index}]"
        if not isinstance(condition, Condition):
            found.add(where, f"must be a pk.Condition (got {shown(condition)})")
        elif condition.result not in allowed:
            found.add(
                f"{where}.result",
                f"result {shown(condition.result)} is not allowed here; use "
                + " or ".join(sorted(result.value for result in allowed)),
            )


@attrs.frozen
class BeforeEntry:
    """Conditions checked before a stage is entered (result ``FAIL`` or ``SKIP``)."""

    conditions: tuple[Condition, ...] = attrs.field(converter=_to_conditions)

    def __attrs_post_init__(self) -> None:
        # Fields are named as a stage shows them: ``before_entry.conditions[0]``.
        found = _Found()
        _check_conditions(found, "before_entry", self.conditions, _ENTRY_RESULTS, required=True)
        found.refuse()


@attrs.frozen
class OnSuccess:
    """Conditions checked after every action of a stage succeeded (``ROLLBACK`` or ``FAIL``)."""

    conditions: tuple[Condition, ...] = attrs.field(converter=_to_conditions)

    def __attrs_post_init__(self) -> None:
        found = _Found()
        _check_conditions(found, "on_success", self.conditions, _SUCCESS_RESULTS, required=True)
        found.refuse()


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

    def __attrs_post_init__(self) -> None:
        found = _Found()
        result: object = self.result
        if result is not None and not isinstance(result, Result):
            found.add(
                "on_failure.result", f"result {shown(result)} is not one of {enum_choices(Result)}"
            )
        retry_mode: object = self.retry_mode
        if retry_mode is not None:
            if not isinstance(retry_mode, RetryMode):
                found.add(
                    "on_failure.retry_mode",
                    f"retry_mode {shown(retry_mode)} is not one of {enum_choices(RetryMode)}",
                )
            elif result is not Result.RETRY:
                found.add("on_failure.retry_mode", "retry_mode only applies when result is RETRY")
        if result is None and not self.conditions:
            found.add("on_failure", "needs a result (e.g. pk.OnFailure.ROLLBACK) or conditions")
        _check_conditions(found, "on_failure", self.conditions, frozenset(Result), required=False)
        found.refuse()


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

    def __attrs_post_init__(self) -> None:
        if self._plainly_valid():
            return
        found = _Found()
        if (bad := STAGE_OR_ACTION.problem(self.name)) is not None:
            found.add("name", f"stage {bad}")
        actions: object = self.actions
        if not isinstance(actions, tuple) or not actions:
            found.add("actions", "a stage needs at least one action: pass [pk.Action(...), ...]")
        else:
            for index, action in enumerate(actions):
                if not isinstance(action, Action):
                    found.add(f"actions[{index}]", f"must be a pk.Action (got {shown(action)})")
        needs: object = self.needs
        if needs is not None and (
            not isinstance(needs, tuple) or not all(isinstance(need, str) for need in needs)
        ):
            found.add("needs", f"needs must be a list of stage names (got {shown(needs)})")
        for field, kind in (
            ("before_entry", BeforeEntry),
            ("on_success", OnSuccess),
            ("on_failure", OnFailure),
        ):
            value = getattr(self, field)
            if value is not None and not isinstance(value, kind):
                found.add(field, f"must be a pk.{kind.__name__} (got {shown(value)})")
        found.refuse(stage=_name_or_none(self.name))

    def _plainly_valid(self) -> bool:
        # The common shape, in a few type tests; anything else gets the explaining checks. The
        # actions checked themselves when they were built.
        actions: object = self.actions
        needs: object = self.needs
        return (
            STAGE_OR_ACTION.fits(self.name)
            and type(actions) is tuple
            and len(actions) > 0
            and all(type(action) is Action for action in actions)
            and (needs is None or (type(needs) is tuple and all(type(n) is str for n in needs)))
            and (self.before_entry is None or type(self.before_entry) is BeforeEntry)
            and (self.on_success is None or type(self.on_success) is OnSuccess)
            and (self.on_failure is None or type(self.on_failure) is OnFailure)
        )

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
