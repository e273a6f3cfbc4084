"""The rules a pipeline declaration must follow, checked all at once.

``analyse()`` walks a pipeline once, collects every broken rule as a ``Problem`` naming the
pipeline, stage, action and field at fault with a fix, and raises them together. What it learns on
the way (the graph of stages, who produces which artifact and namespace) is handed to the
compiler so that nothing is computed twice. It runs in time linear in the size of the pipeline,
except for reachability questions between stages, which networkx answers per distinct pair.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeGuard

import attrs
import networkx as nx

from pipelinekit._model._declarations import (
    Action,
    ActionTypeId,
    BeforeEntry,
    Category,
    Condition,
    ExecutionMode,
    OnFailure,
    OnSuccess,
    Owner,
    Result,
    Retry,
    RetryMode,
    Rule,
    Stage,
    Variable,
)
from pipelinekit._model._names import ARTIFACT, NAMESPACE, STAGE_OR_ACTION, VARIABLE, did_you_mean
from pipelinekit._model._variables import (
    RESERVED_NAMESPACES,
    RUN_METADATA,
    MalformedReference,
    Reference,
    collect_strings,
    find_references,
    render_path,
    well_formed_references,
)
from pipelinekit.exceptions import PipelineDefinitionError, Problem

if TYPE_CHECKING:
    from pipelinekit._model._pipeline import Pipeline

__all__ = ["Analysis", "analyse"]

#: Reports one problem: (message, field).
Report = Callable[[str, str], None]

_PROVIDER_NAME = re.compile(r"[0-9A-Za-z_\-]{1,35}")
_VERSION = re.compile(r"[0-9A-Za-z_\-]{1,9}")
_ROLE_ARN = re.compile(r"arn:aws(-[A-Za-z0-9_]+)*:iam::[0-9]{12}:role/[\x21-\x7e]*")
_MAX_RUN_ORDER = 999
_MAX_CONFIG_KEY = 50
_MAX_VARIABLE_DEFAULT = 1000
_MAX_RULES = 5
_MAX_ROLE_ARN = 1024


@attrs.frozen
class Producer:
    """Where an artifact or namespace comes from."""

    stage: str
    action: str
    run_order: int

    @property
    def node(self) -> str:
        """The producing action's node id."""
        return f"{self.stage}.{self.action}"


@attrs.frozen(eq=False)
class Analysis:
    """What validation learned, for the compiler."""

    #: One node per stage; an edge P -> S when S needs P (directly).
    stage_graph: Any
    #: artifact name -> producer
    artifacts: Mapping[str, Producer]
    #: namespace -> producer
    namespaces: Mapping[str, Producer]
    #: "Stage.Action" of every action whose configuration or provider holds a reference
    referencing: frozenset[str] = frozenset()


def analyse(pipeline: Pipeline) -> Analysis:
    """Check every rule; raise ``PipelineDefinitionError`` listing all problems, or return facts."""
    checker = _Checker(pipeline)
    analysis = checker.run()
    if checker.problems:
        raise PipelineDefinitionError(checker.problems)
    return analysis


class _Checker:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.name = pipeline.name if isinstance(pipeline.name, str) else repr(pipeline.name)
        self.problems: list[Problem] = []
        self.stage_graph: Any = nx.DiGraph()
        self.artifacts: dict[str, Producer] = {}
        self.namespaces: dict[str, Producer] = {}
        self.stage_index: dict[str, int] = {}
        self.reach_cache: dict[tuple[str, str], bool] = {}
        self.acyclic = True
        self.variables: set[str] = set()
        self.node_ids: dict[str, tuple[str, str]] = {}
        self.good_types: set[ActionTypeId] = set()
        self.referencing: set[str] = set()

    def problem(
        self,
        message: str,
        *,
        stage: str | None = None,
        action: str | None = None,
        field: str | None = None,
    ) -> None:
        self.problems.append(
            Problem(message, pipeline=self.name, stage=stage, action=action, field=field)
        )

    # -- the walk ----------------------------------------------------------------------------

    def run(self) -> Analysis:
        pipeline = self.pipeline
        if (bad := STAGE_OR_ACTION.problem(pipeline.name)) is not None:
            self.problem(f"pipeline {bad}", field="name")
        if not isinstance(pipeline.execution_mode, ExecutionMode):
            self.problem(
                f"execution_mode {pipeline.execution_mode!r} is not one of "
                f"{_choices(ExecutionMode)}",
                field="execution_mode",
            )
        if pipeline.role_arn is not None:
            self.check_role_arn(pipeline.role_arn)
        self.check_variables(pipeline.variables)
        stages = self.check_stage_list(pipeline.stages)
        for stage in stages:
            self.check_stage(stage)
        self.check_namespace_artifact_clash()
        self.build_stage_graph(stages)
        for stage in stages:
            self.check_wiring(stage)
        return Analysis(
            self.stage_graph, self.artifacts, self.namespaces, frozenset(self.referencing)
        )

    def check_variables(self, variables: object) -> None:
        if not isinstance(variables, tuple):
            self.problem("must be a list of pk.Variable", field="variables")
            return
        for index, variable in enumerate(variables):
            field = f"variables[{index}]"
            if not isinstance(variable, Variable):
                self.problem(f"must be a pk.Variable (got {variable!r})", field=field)
                continue
            if (bad := VARIABLE.problem(variable.name)) is not None:
                self.problem(bad, field=field)
                continue
            if variable.name in self.variables:
                self.problem(
                    f"variable {variable.name!r} is declared twice; variable names are unique",
                    field=field,
                )
            self.variables.add(variable.name)
            default = variable.default
            if default is not None and (
                not isinstance(default, str) or len(default) > _MAX_VARIABLE_DEFAULT
            ):
                self.problem(
                    f"default of {variable.name!r} must be a string of at most "
                    f"{_MAX_VARIABLE_DEFAULT} characters",
                    field=f"{field}.default",
                )

    def check_stage_list(self, stages: object) -> list[Stage]:
        if not isinstance(stages, tuple) or not stages:
            self.problem(
                "a pipeline needs at least one stage: pass stages=[pk.Stage(...), ...]",
                field="stages",
            )
            return []
        good: list[Stage] = []
        for index, stage in enumerate(stages):
            if not isinstance(stage, Stage):
                self.problem(f"must be a pk.Stage (got {stage!r})", field=f"stages[{index}]")
                continue
            if (bad := STAGE_OR_ACTION.problem(stage.name)) is not None:
                self.problem(f"stage {bad}", field=f"stages[{index}].name")
                continue
            if stage.name in self.stage_index:
                self.problem(
                    f"stage name {stage.name!r} is used by stages "
                    f"{self.stage_index[stage.name]} and {index}; stage names are unique",
                    stage=stage.name,
                    field="name",
                )
                continue
            self.stage_index[stage.name] = index
            good.append(stage)
        return good

    def check_stage(self, stage: Stage) -> None:
        actions = stage.actions
        if not isinstance(actions, tuple) or not actions:
            self.problem(
                "a stage needs at least one action: pass [pk.Action(...), ...]",
                stage=stage.name,
                field="actions",
            )
            return
        # Checking all names of the stage in one go keeps large pipelines fast; a name is
        # checked on its own only when the batch says something is wrong.
        names_ok = STAGE_OR_ACTION.all_valid([getattr(a, "name", None) for a in actions])
        seen: set[str] = set()
        for index, action in enumerate(actions):
            if not isinstance(action, Action):
                self.problem(
                    f"must be a pk.Action (got {action!r})",
                    stage=stage.name,
                    field=f"actions[{index}]",
                )
                continue
            if not names_ok and (bad := STAGE_OR_ACTION.problem(action.name)) is not None:
                self.problem(f"action {bad}", stage=stage.name, field=f"actions[{index}].name")
                continue
            if action.name in seen:
                self.problem(
                    f"action name {action.name!r} is used twice in stage {stage.name!r}; "
                    "action names are unique within a stage",
                    stage=stage.name,
                    action=action.name,
                    field="name",
                )
                continue
            seen.add(action.name)
            node = f"{stage.name}.{action.name}"
            clash = self.node_ids.setdefault(node, (stage.name, action.name))
            if clash != (stage.name, action.name):
                self.problem(
                    f"is known as {node!r}, like action {clash[1]!r} of stage {clash[0]!r}; "
                    "rename one of them so 'Stage.Action' names are unique",
                    stage=stage.name,
                    action=action.name,
                    field="name",
                )
            self.check_action(stage, action)
        self.check_conditions(stage)

    def check_action(self, stage: Stage, action: Action) -> None:
        def report(message: str, field: str) -> None:
            self.problem(message, stage=stage.name, action=action.name, field=field)

        run_order = action.run_order
        run_order_ok = type(run_order) is int and 1 <= run_order <= _MAX_RUN_ORDER
        if not run_order_ok:
            report(
                f"run_order must be a whole number from 1 to 999 (got {run_order!r})", "run_order"
            )
        self.check_provider(action, report)
        producer = Producer(stage.name, action.name, run_order if run_order_ok else 0)
        inputs, outputs = action.inputs, action.outputs
        if (
            type(inputs) is tuple
            and type(outputs) is tuple
            and ARTIFACT.all_valid([*inputs, *outputs])
        ):
            # The common case: well-formed names; only uniqueness is left to check.
            if len(inputs) > 1 and len(set(inputs)) != len(inputs):
                report(f"lists the same artifact more than once: {list(inputs)!r}", "inputs")
            if len(outputs) > 1 and len(set(outputs)) != len(outputs):
                report(f"lists the same artifact more than once: {list(outputs)!r}", "outputs")
            for name in outputs:
                self.add_output(name, producer, report)
        else:
            self.check_artifact_lists(action, producer, report)
        if action.namespace is not None:
            self.add_namespace(action.namespace, producer, report)
        if action.timeout is not None:
            self.check_timeout(action.timeout, report, "timeout")
        if action.retry is not None:
            self.check_retry(action.retry, report)
        if type(action.cache) is not bool:
            report(f"must be True or False (got {action.cache!r})", "cache")
        self.check_placement(action, report)

    def check_placement(self, action: Action, report: Report) -> None:
        """Configuration, region and role: where and how CodePipeline would run the action."""
        if not isinstance(action.configuration, Mapping) or action.configuration:
            self.check_configuration(action.configuration, report)
        if action.region is not None and not (
            isinstance(action.region, str) and 4 <= len(action.region) <= 30  # noqa: PLR2004 - CodePipeline's limits
        ):
            report(
                f"must be an AWS region name of 4 to 30 characters (got {action.region!r})",
                "region",
            )
        if action.role_arn is not None:
            self.check_role_arn(action.role_arn, report)

    def check_artifact_lists(self, action: Action, producer: Producer, report: Report) -> None:
        for field in ("inputs", "outputs"):
            names = getattr(action, field)
            if not isinstance(names, tuple):
                report(
                    f"must be a list of artifact names, e.g. {field}=['src'] (got {names!r})", field
                )
                continue
            if len(set(names)) != len(names):
                report(f"lists the same artifact more than once: {list(names)!r}", field)
            for name in names:
                if (bad := ARTIFACT.problem(name)) is not None:
                    report(bad, field)
                elif field == "outputs":
                    self.add_output(name, producer, report)

    def check_provider(self, action: Action, report: Report) -> None:
        provider = action.provider
        action_type = getattr(provider, "action_type", None)
        if not isinstance(action_type, ActionTypeId):
            report(
                f"{provider!r} is not a provider: use one of pipelinekit's (pk.shell(...), "
                "pk.python(fn), ...) or decorate your class with @pk.provider(...)",
                "provider",
            )
            return
        if action_type not in self.good_types:
            before = len(self.problems)
            self.check_action_type(action_type, report, "provider.action_type")
            if len(self.problems) == before:
                self.good_types.add(action_type)
        problems = getattr(provider, "problems", None)
        if callable(problems):
            for field, message in problems():
                report(message, f"provider.{field}")
        for field, bounds_name in (("inputs", "input_artifacts"), ("outputs", "output_artifacts")):
            bounds = getattr(provider, bounds_name, None)
            names = getattr(action, field)
            if bounds is None or not isinstance(names, tuple):
                continue
            low, high = bounds
            if not low <= len(names) <= high:
                wanted = f"exactly {low}" if low == high else f"{low} to {high}"
                report(
                    f"{type(provider).__name__} takes {wanted} {field[:-1]} artifact"
                    f"{'' if high == 1 else 's'} (got {len(names)})",
                    field,
                )

    def check_action_type(self, type_id: ActionTypeId, report: Report, field: str) -> None:
        if not isinstance(type_id.category, Category):
            report(f"category {type_id.category!r} is not one of {_choices(Category)}", field)
        if not isinstance(type_id.owner, Owner):
            report(f"owner {type_id.owner!r} is not one of {_choices(Owner)}", field)
        if not isinstance(type_id.provider, str) or not _PROVIDER_NAME.fullmatch(type_id.provider):
            report(
                f"provider name {type_id.provider!r} must be 1-35 letters, digits, '_' or '-'",
                field,
            )
        if not isinstance(type_id.version, str) or not _VERSION.fullmatch(type_id.version):
            report(f"version {type_id.version!r} must be 1-9 letters, digits, '_' or '-'", field)

    def check_timeout(self, timeout: object, report: Report, field: str) -> None:
        if timeout is None:
            return
        if not isinstance(timeout, timedelta) or timeout <= timedelta(0):
            report(
                f"must be a positive, finite duration: a timedelta or seconds (got {timeout!r})",
                field,
            )

    def check_retry(self, retry: object, report: Report) -> None:
        if not isinstance(retry, Retry):
            report(f"must be a pk.Retry (got {retry!r})", "retry")
            return
        attempts = retry.attempts
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            report(f"attempts must be a whole number >= 1 (got {attempts!r})", "retry.attempts")
        backoff: object = retry.backoff
        if not _is_number(backoff) or not math.isfinite(backoff) or backoff < 1:
            report(
                f"backoff must be a finite number >= 1, the factor between waits (got {backoff!r})",
                "retry.backoff",
            )
        for name in ("delay", "max_delay"):
            value = getattr(retry, name)
            if not isinstance(value, timedelta) or value < timedelta(0):
                report(
                    f"{name} must be a duration of zero or more (got {value!r})", f"retry.{name}"
                )
        if not _is_number(retry.jitter) or not 0 <= retry.jitter <= 1:
            report(f"jitter must be a fraction from 0 to 1 (got {retry.jitter!r})", "retry.jitter")
        retry_on = retry.retry_on
        if not isinstance(retry_on, tuple) or not all(
            isinstance(kind, type) and issubclass(kind, BaseException) for kind in retry_on
        ):
            report(
                f"retry_on must be a list of exception classes (got {retry_on!r})",
                "retry.retry_on",
            )

    def check_configuration(self, configuration: object, report: Report) -> None:
        if not isinstance(configuration, Mapping):
            report(
                f"must be a mapping of strings to strings (got {configuration!r})", "configuration"
            )
            return
        for key, value in configuration.items():
            if not isinstance(key, str) or not 1 <= len(key) <= _MAX_CONFIG_KEY:
                report(f"key {key!r} must be a string of 1 to 50 characters", "configuration")
            if not isinstance(value, str):
                report(
                    f"value of {key!r} must be a string (got {value!r}); CodePipeline "
                    "configuration values are strings, e.g. 'true' rather than True",
                    "configuration",
                )

    def check_role_arn(self, role_arn: object, report: Report | None = None) -> None:
        if (
            not isinstance(role_arn, str)
            or len(role_arn) > _MAX_ROLE_ARN
            or not _ROLE_ARN.fullmatch(role_arn)
        ):
            message = (
                f"role_arn {role_arn!r} is not an IAM role ARN like "
                "'arn:aws:iam::123456789012:role/name'"
            )
            if report is None:
                self.problem(message, field="role_arn")
            else:
                report(message, "role_arn")

    def add_output(self, name: str, producer: Producer, report: Report) -> None:
        earlier = self.artifacts.get(name)
        if earlier is not None:
            report(
                f"output artifact {name!r} is also produced by {earlier.node!r}; output artifact "
                "names are unique in a pipeline, so rename one of them",
                "outputs",
            )
            return
        self.artifacts[name] = producer

    def add_namespace(self, namespace: str, producer: Producer, report: Report) -> None:
        fine = (
            type(namespace) is str
            and len(namespace) <= NAMESPACE.max_length
            and NAMESPACE.pattern.fullmatch(namespace)
        )
        if not fine and (bad := NAMESPACE.problem(namespace)) is not None:
            report(bad, "namespace")
            return
        if namespace in RESERVED_NAMESPACES:
            report(
                f"namespace {namespace!r} is reserved for pipelinekit's own variables; "
                "choose another name",
                "namespace",
            )
            return
        earlier = self.namespaces.get(namespace)
        if earlier is not None:
            report(
                f"namespace {namespace!r} is also used by {earlier.node!r}; namespaces are "
                "unique in a pipeline",
                "namespace",
            )
            return
        self.namespaces[namespace] = producer

    def check_namespace_artifact_clash(self) -> None:
        for namespace, producer in self.namespaces.items():
            if namespace in self.artifacts:
                self.problem(
                    f"namespace {namespace!r} is also the name of an artifact (produced by "
                    f"{self.artifacts[namespace].node!r}); a namespace must differ from every "
                    "artifact name",
                    stage=producer.stage,
                    action=producer.action,
                    field="namespace",
                )

    # -- conditions ---------------------------------------------------------------------------

    def check_conditions(self, stage: Stage) -> None:
        parallel = self.pipeline.execution_mode is ExecutionMode.PARALLEL
        for field, kind, value, allowed in (
            ("before_entry", BeforeEntry, stage.before_entry, {Result.FAIL, Result.SKIP}),
            ("on_success", OnSuccess, stage.on_success, {Result.ROLLBACK, Result.FAIL}),
            ("on_failure", OnFailure, stage.on_failure, set(Result)),
        ):
            if value is None:
                continue
            if not isinstance(value, kind):
                self.problem(
                    f"must be a pk.{kind.__name__} (got {value!r})", stage=stage.name, field=field
                )
                continue
            if isinstance(value, OnFailure):
                self.check_on_failure(stage, value)
            elif not value.conditions:
                self.problem("needs at least one pk.Condition", stage=stage.name, field=field)
            for index, condition in enumerate(value.conditions):
                self.check_condition(stage, condition, f"{field}.conditions[{index}]", allowed)
            results = {value.result} if isinstance(value, OnFailure) else set()
            results |= {c.result for c in value.conditions if isinstance(c, Condition)}
            if parallel and Result.ROLLBACK in results:
                self.problem(
                    "ROLLBACK cannot be used in a PARALLEL pipeline, whose executions have no "
                    "single last successful run to roll back to; use FAIL or RETRY, or another "
                    "execution_mode",
                    stage=stage.name,
                    field=field,
                )

    def check_on_failure(self, stage: Stage, policy: OnFailure) -> None:
        if policy.result is not None and not isinstance(policy.result, Result):
            self.problem(
                f"result {policy.result!r} is not one of {_choices(Result)}",
                stage=stage.name,
                field="on_failure.result",
            )
        if policy.retry_mode is not None:
            if not isinstance(policy.retry_mode, RetryMode):
                self.problem(
                    f"retry_mode {policy.retry_mode!r} is not one of {_choices(RetryMode)}",
                    stage=stage.name,
                    field="on_failure.retry_mode",
                )
            elif policy.result is not Result.RETRY:
                self.problem(
                    "retry_mode only applies when result is RETRY",
                    stage=stage.name,
                    field="on_failure.retry_mode",
                )
        if policy.result is None and not policy.conditions:
            self.problem(
                "needs a result (e.g. pk.OnFailure.ROLLBACK) or conditions",
                stage=stage.name,
                field="on_failure",
            )

    def check_condition(
        self, stage: Stage, condition: object, field: str, allowed: set[Result]
    ) -> None:
        if not isinstance(condition, Condition):
            self.problem(
                f"must be a pk.Condition (got {condition!r})", stage=stage.name, field=field
            )
            return
        if condition.result not in allowed:
            self.problem(
                f"result {condition.result!r} is not allowed here; use "
                + " or ".join(sorted(r.value for r in allowed)),
                stage=stage.name,
                field=f"{field}.result",
            )
        rules = condition.rules
        if not isinstance(rules, tuple) or not 1 <= len(rules) <= _MAX_RULES:
            self.problem(
                "a condition needs 1 to 5 pk.Rule", stage=stage.name, field=f"{field}.rules"
            )
            return
        names: set[str] = set()
        for index, rule in enumerate(rules):
            where = f"{field}.rules[{index}]"
            if not isinstance(rule, Rule):
                self.problem(f"must be a pk.Rule (got {rule!r})", stage=stage.name, field=where)
                continue
            if (bad := STAGE_OR_ACTION.problem(rule.name)) is not None:
                self.problem(f"rule {bad}", stage=stage.name, field=f"{where}.name")
            elif rule.name in names:
                self.problem(
                    f"rule name {rule.name!r} is used twice in one condition",
                    stage=stage.name,
                    field=f"{where}.name",
                )
            names.add(rule.name if isinstance(rule.name, str) else "")
            if not isinstance(rule.rule_type, ActionTypeId):
                self.problem(
                    "rule_type must be a rule provider name or an ActionTypeId "
                    f"(got {rule.rule_type!r})",
                    stage=stage.name,
                    field=f"{where}.rule_type",
                )
            else:
                self.check_action_type(
                    rule.rule_type,
                    lambda message, f: self.problem(message, stage=stage.name, field=f),
                    f"{where}.rule_type",
                )
            self.check_timeout(
                rule.timeout,
                lambda message, f: self.problem(message, stage=stage.name, field=f),
                f"{where}.timeout",
            )

    # -- the stage graph and what must finish first ---------------------------------------------

    def build_stage_graph(self, stages: list[Stage]) -> None:
        graph = self.stage_graph
        graph.add_nodes_from(stage.name for stage in stages)
        previous: str | None = None
        for stage in stages:
            if stage.needs is None:
                if previous is not None:
                    graph.add_edge(previous, stage.name)
            elif not isinstance(stage.needs, tuple):
                self.problem(
                    f"needs must be a list of stage names (got {stage.needs!r})",
                    stage=stage.name,
                    field="needs",
                )
            else:
                for need in stage.needs:
                    if need in self.stage_index:
                        graph.add_edge(need, stage.name)
                    else:
                        hint = did_you_mean(need, self.stage_index) if isinstance(need, str) else ""
                        self.problem(
                            f"needs stage {need!r}, which does not exist{hint}",
                            stage=stage.name,
                            field="needs",
                        )
            previous = stage.name
        for component in nx.strongly_connected_components(graph):
            first = next(iter(component))
            if len(component) == 1 and not graph.has_edge(first, first):
                continue
            self.acyclic = False
            # Start the cycle at the stage declared first, so the message is deterministic.
            start = min(component, key=self.stage_index.__getitem__)
            cycle = [u for u, _ in nx.find_cycle(graph.subgraph(component), source=start)]
            path = " -> ".join([*cycle, cycle[0]])
            self.problem(
                f"stages depend on each other in a cycle: {path}; remove one of these from "
                "the others' needs",
                stage=start,
                field="needs",
            )

    def certain_before(self, producer: Producer, stage: str, run_order: int) -> bool:
        """Whether the producer finishes before ``stage``'s group ``run_order`` starts."""
        if producer.stage == stage:
            return producer.run_order < run_order
        key = (producer.stage, stage)
        found = self.reach_cache.get(key)
        if found is None:
            found = nx.has_path(self.stage_graph, producer.stage, stage)
            self.reach_cache[key] = found
        return found

    def explain_order(self, producer: Producer, stage: str, run_order: int) -> str:
        if producer.stage == stage:
            if producer.run_order == run_order:
                return (
                    f"which runs in the same run_order group ({run_order}); give the consumer "
                    "a higher run_order"
                )
            return (
                f"which runs later in the stage (run_order {producer.run_order} > {run_order}); "
                "give the consumer a higher run_order"
            )
        if nx.has_path(self.stage_graph, stage, producer.stage):
            return f"whose stage {producer.stage!r} runs after stage {stage!r}; move one of the two"
        return (
            f"whose stage {producer.stage!r} is not certain to finish before stage {stage!r} "
            f"starts; add {producer.stage!r} to the needs of {stage!r}"
        )

    def check_wiring(self, stage: Stage) -> None:
        for action in stage.actions:
            if not isinstance(action, Action) or not isinstance(action.run_order, int):
                continue
            if isinstance(action.inputs, tuple):
                for name in action.inputs:
                    self.check_input(stage, action, name)
            self.check_references_in(stage, action)
        self.check_condition_references(stage)

    def check_input(self, stage: Stage, action: Action, name: str) -> None:
        if not isinstance(name, str):
            return
        producer = self.artifacts.get(name)
        if producer is None:
            hint = did_you_mean(name, self.artifacts)
            self.problem(
                f"input artifact {name!r} is not produced by any action{hint}",
                stage=stage.name,
                action=action.name,
                field="inputs",
            )
        elif self.acyclic and not self.certain_before(producer, stage.name, action.run_order):
            self.problem(
                f"input artifact {name!r} is produced by {producer.node!r}, "
                + self.explain_order(producer, stage.name, action.run_order),
                stage=stage.name,
                action=action.name,
                field="inputs",
            )

    def check_references_in(self, stage: Stage, action: Action) -> None:
        found: list[tuple[tuple[str, ...], str]] = []
        if action.configuration:
            collect_strings(action.configuration, "#{", ("configuration",), found)
        collect_strings(action.provider, "#{", ("provider",), found)
        if found:
            self.referencing.add(f"{stage.name}.{action.name}")
        for parts, text in found:
            self.check_text(text, parts, stage, action.name, action.run_order)

    def check_condition_references(self, stage: Stage) -> None:
        # Entry conditions run before any action of the stage; the others after all of them.
        for field in ("before_entry", "on_success", "on_failure"):
            value = getattr(stage, field)
            conditions = getattr(value, "conditions", ())
            run_order = 0 if field == "before_entry" else _MAX_RUN_ORDER + 1
            for c_index, condition in enumerate(
                conditions if isinstance(conditions, tuple) else ()
            ):
                for r_index, rule in enumerate(getattr(condition, "rules", ())):
                    if not isinstance(rule, Rule):
                        continue
                    base = f"{field}.conditions[{c_index}].rules[{r_index}].configuration"
                    found: list[tuple[tuple[str, ...], str]] = []
                    collect_strings(rule.configuration, "#{", (base,), found)
                    for parts, text in found:
                        self.check_text(text, parts, stage, None, run_order)

    def check_text(
        self, text: str, parts: tuple[str, ...], stage: Stage, action: str | None, run_order: int
    ) -> None:
        plain = well_formed_references(text)
        if plain is not None:
            # The common case, kept cheap: every reference resolves to something certain to
            # be there in time. Anything else is explained below.
            namespaces = self.namespaces
            for namespace, name in plain:
                producer = namespaces.get(namespace)
                if producer is not None:
                    elsewhere = producer.action != action or producer.stage != stage.name
                    if elsewhere and (
                        not self.acyclic or self.certain_before(producer, stage.name, run_order)
                    ):
                        continue
                elif namespace == "variables" and name in self.variables:
                    continue
                break
            else:
                return
        field = render_path(parts)
        for ref in find_references(text):
            message = self.reference_problem(ref, stage.name, action, run_order)
            if message is not None:
                self.problem(message, stage=stage.name, action=action, field=field)

    def reference_problem(  # noqa: PLR0911 - one answer per kind of reference
        self, ref: Reference | MalformedReference, stage: str, action: str | None, run_order: int
    ) -> str | None:
        if isinstance(ref, MalformedReference):
            return f"reference {ref.text!r} {ref.reason}"
        if ref.namespace == "variables":
            if ref.name in self.variables:
                return None
            hint = did_you_mean(ref.name, self.variables)
            return (
                f"{ref.text!r} names pipeline variable {ref.name!r}, which is not "
                f"declared{hint}; add pk.Variable({ref.name!r}) to the pipeline's variables"
            )
        if ref.namespace in RUN_METADATA:
            known = RUN_METADATA[ref.namespace]
            if ref.name in known:
                return None
            return (
                f"{ref.text!r} is not a known run variable; {ref.namespace!r} provides "
                + ", ".join(sorted(known))
            )
        producer = self.namespaces.get(ref.namespace)
        if producer is None:
            hint = did_you_mean(ref.namespace, self.namespaces)
            return (
                f"{ref.text!r} names namespace {ref.namespace!r}, which no action "
                f"declares{hint}; set namespace={ref.namespace!r} on the producing action"
            )
        if producer.stage == stage and producer.action == action:
            return f"{ref.text!r} refers to this action's own namespace"
        if self.acyclic and not self.certain_before(producer, stage, run_order):
            return f"{ref.text!r} comes from {producer.node!r}, " + self.explain_order(
                producer, stage, run_order
            )
        return None


def _choices(enum_type: Iterable[Any]) -> str:
    return ", ".join(repr(member.value) for member in enum_type)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
