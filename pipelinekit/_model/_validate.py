"""The rules between the objects of a pipeline declaration, checked all at once.

Each ``Action``, ``Stage``, ``Variable``, ``Retry``, ``Rule`` and ``Condition`` checks its own
fields when it is built (``_declarations``), so what a ``Pipeline`` holds is valid piece by piece.
``analyse()`` checks what only the whole pipeline can tell: the pipeline's own fields, that stage,
action, variable, artifact and namespace names are unique, that every input artifact and
``#{...}`` reference comes from something certain to finish first, and that ``needs`` name
existing stages without a cycle. It collects every broken rule as a ``Problem`` naming the
pipeline, stage, action and field at fault with a fix, and raises them together. What it learns on
the way (the graph of stages, who produces which artifact and namespace) is handed to the
compiler so that nothing is computed twice. It runs in time linear in the size of the pipeline,
except for reachability questions between stages, answered once per stage by ``StageGraph``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

import attrs

from pipelinekit._model._declarations import (
    Action,
    ExecutionMode,
    OnFailure,
    Result,
    Stage,
    Variable,
    enum_choices,
    role_arn_problem,
)
from pipelinekit._model._limits import MAX_DEFINITION_BYTES, NESTING_PROBLEM, limit_problems
from pipelinekit._model._names import STAGE_OR_ACTION, did_you_mean
from pipelinekit._model._output_variables import DeclaredOutputs, declared_outputs
from pipelinekit._model._stage_graph import StageGraph
from pipelinekit._model._variables import (
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

_MAX_RUN_ORDER = 999


class Producer(NamedTuple):
    """Where an artifact or namespace comes from (a tuple: one is made per action)."""

    stage: str
    action: str
    run_order: int
    #: The output variables its provider declares (``None``: it declares none, so references
    #: to its namespace are not checked by name).
    outputs: DeclaredOutputs | None = None

    @property
    def node(self) -> str:
        """The producing action's node id."""
        return f"{self.stage}.{self.action}"


@attrs.frozen(eq=False)
class Analysis:
    """What validation learned, for the compiler."""

    #: The stages and what each needs directly.
    stage_graph: StageGraph
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
        self.stage_graph = StageGraph(())
        self.artifacts: dict[str, Producer] = {}
        self.namespaces: dict[str, Producer] = {}
        self.stage_index: dict[str, int] = {}
        self.acyclic = True
        self.variables: set[str] = set()
        self.node_ids: dict[str, tuple[str, str]] = {}
        self.dotted = False
        self.referencing: set[str] = set()
        #: The definition's size so far (MAX_DEFINITION_BYTES), and its largest action.
        self.definition_bytes = 0
        self.largest: tuple[int, str] = (0, "")

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
        # The pipeline's own fields are checked here rather than on their own, so that they
        # are reported together with the rest.
        if (bad := STAGE_OR_ACTION.problem(pipeline.name)) is not None:
            self.problem(f"pipeline {bad}", field="name")
        if not isinstance(pipeline.execution_mode, ExecutionMode):
            self.problem(
                f"execution_mode {pipeline.execution_mode!r} is not one of "
                f"{enum_choices(ExecutionMode)}",
                field="execution_mode",
            )
        if pipeline.role_arn is not None and (bad := role_arn_problem(pipeline.role_arn)):
            self.problem(bad, field="role_arn")
        self.check_variables(pipeline.variables)
        if pipeline.triggers:
            # Kept with the definition but read by nothing yet: only the limits apply.
            over, size = limit_problems(pipeline.triggers, ("triggers",))
            for field, message in over:
                self.problem(message, field=field)
            self.definition_bytes += size
        stages = self.check_stage_list(pipeline.stages)
        self.dotted = any("." in name for name in self.stage_index)
        for stage in stages:
            self.check_stage(stage)
        self.check_namespace_artifact_clash()
        self.check_definition_size(stages)
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
            if variable.name in self.variables:
                self.problem(
                    f"variable {variable.name!r} is declared twice; variable names are unique",
                    field=field,
                )
            self.variables.add(variable.name)
            self.definition_bytes += variable.definition_bytes()

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
        stage_name = stage.name
        # Stage "A.B" with action "C" and stage "A" with action "B.C" are both "A.B.C"; such a
        # clash needs a stage name with a dot, so most pipelines need not look for one.
        node_ids = self.node_ids if self.dotted else None
        artifacts, namespaces = self.artifacts, self.namespaces
        seen: set[str] = set()
        size = 0
        largest = self.largest
        for action in stage.actions:
            name = action.name
            action_bytes = action.definition_bytes()
            size += action_bytes
            if action_bytes > largest[0]:
                largest = (action_bytes, f"{stage_name}.{name}")
            if name in seen:
                self.problem(
                    f"action name {name!r} is used twice in stage {stage_name!r}; "
                    "action names are unique within a stage",
                    stage=stage_name,
                    action=name,
                    field="name",
                )
                continue
            seen.add(name)
            if node_ids is not None:
                self.check_node_id(node_ids, stage_name, name)
            namespace = action.namespace
            # Only a namespace's producer is asked what it declares: most actions have none.
            outputs = declared_outputs(action.provider) if namespace is not None else None
            producer = Producer(stage_name, name, action.run_order, outputs)
            for output in action.outputs:
                if artifacts.setdefault(output, producer) is not producer:
                    self.problem(
                        f"output artifact {output!r} is also produced by "
                        f"{artifacts[output].node!r}; output artifact names are unique in a "
                        "pipeline, so rename one of them",
                        stage=stage_name,
                        action=name,
                        field="outputs",
                    )
            if namespace is not None and namespaces.setdefault(namespace, producer) is not producer:
                self.problem(
                    f"namespace {namespace!r} is also used by {namespaces[namespace].node!r}; "
                    "namespaces are unique in a pipeline",
                    stage=stage_name,
                    action=name,
                    field="namespace",
                )
        self.definition_bytes += size
        self.largest = largest
        if self.pipeline.execution_mode is ExecutionMode.PARALLEL:
            self.check_no_rollback(stage)

    def check_node_id(self, node_ids: dict[str, tuple[str, str]], stage: str, action: str) -> None:
        node = f"{stage}.{action}"
        clash = node_ids.setdefault(node, (stage, action))
        if clash[0] != stage:
            self.problem(
                f"is known as {node!r}, like action {clash[1]!r} of stage {clash[0]!r}; "
                "rename one of them so 'Stage.Action' names are unique",
                stage=stage,
                action=action,
                field="name",
            )

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

    def check_definition_size(self, stages: list[Stage]) -> None:
        """The whole definition within MAX_DEFINITION_BYTES (each value was checked alone)."""
        total = self.definition_bytes
        for stage in stages:
            for field in ("before_entry", "on_success", "on_failure"):
                value = getattr(stage, field)
                if value is not None:
                    for condition in value.conditions:
                        total += sum(rule.definition_bytes() for rule in condition.rules)
        if total > MAX_DEFINITION_BYTES:
            size, node = self.largest
            self.problem(
                f"the definition holds {total:,} bytes of values; the limit is "
                f"{MAX_DEFINITION_BYTES:,} bytes (MAX_DEFINITION_BYTES), and every run records "
                f"what its actions ran with: the largest is action {node!r} ({size:,} bytes); "
                "put large data in artifacts or files and pass their names"
            )

    def check_no_rollback(self, stage: Stage) -> None:
        """A PARALLEL pipeline's executions have no single last success to roll back to."""
        for field in ("before_entry", "on_success", "on_failure"):
            value = getattr(stage, field)
            if value is None:
                continue
            results = {condition.result for condition in value.conditions}
            if isinstance(value, OnFailure):
                results.add(value.result)
            if Result.ROLLBACK in results:
                self.problem(
                    "ROLLBACK cannot be used in a PARALLEL pipeline, whose executions have no "
                    "single last successful run to roll back to; use FAIL or RETRY, or another "
                    "execution_mode",
                    stage=stage.name,
                    field=field,
                )

    # -- the stage graph and what must finish first ---------------------------------------------

    def build_stage_graph(self, stages: list[Stage]) -> None:
        graph = self.stage_graph = StageGraph(stage.name for stage in stages)
        previous: str | None = None
        for stage in stages:
            if stage.needs is None:
                if previous is not None:
                    graph.add_need(previous, stage.name)
            else:
                for need in stage.needs:
                    if need in self.stage_index:
                        graph.add_need(need, stage.name)
                    else:
                        hint = did_you_mean(need, self.stage_index)
                        self.problem(
                            f"needs stage {need!r}, which does not exist{hint}",
                            stage=stage.name,
                            field="needs",
                        )
            previous = stage.name
        for cycle in graph.cycles():
            self.acyclic = False
            # Each cycle starts at its stage declared first, so the message is deterministic.
            start = cycle[0]
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
        return self.stage_graph.runs_before(producer.stage, stage)

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
        if self.acyclic and self.stage_graph.runs_before(stage, producer.stage):
            return f"whose stage {producer.stage!r} runs after stage {stage!r}; move one of the two"
        return (
            f"whose stage {producer.stage!r} is not certain to finish before stage {stage!r} "
            f"starts; add {producer.stage!r} to the needs of {stage!r}"
        )

    def check_wiring(self, stage: Stage) -> None:
        for action in stage.actions:
            for name in action.inputs:
                self.check_input(stage, action, name)
            self.check_references_in(stage, action)
        self.check_condition_references(stage)

    def check_input(self, stage: Stage, action: Action, name: str) -> None:
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
        if action.caches:  # pk.Cache keys: checked and ordered like the configuration
            collect_strings(action.caches, "#{", ("caches",), found)
        try:
            collect_strings(action.provider, "#{", ("provider",), found)
        except RecursionError:
            # The action measured its provider when it was built; a list inside it has grown
            # since. Walking it further (resolving, recording) would fail the same way.
            self.problem(
                f"{NESTING_PROBLEM} (it grew after the action was built)",
                stage=stage.name,
                action=action.name,
                field="provider",
            )
            return
        if found:
            self.referencing.add(f"{stage.name}.{action.name}")
        for parts, text in found:
            self.check_text(text, parts, stage, action.name, action.run_order)

    def check_condition_references(self, stage: Stage) -> None:
        # Entry conditions run before any action of the stage; the others after all of them.
        for field in ("before_entry", "on_success", "on_failure"):
            value = getattr(stage, field)
            if value is None:
                continue
            run_order = 0 if field == "before_entry" else _MAX_RUN_ORDER + 1
            for c_index, condition in enumerate(value.conditions):
                for r_index, rule in enumerate(condition.rules):
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
                    declared = producer.outputs is None or name in producer.outputs.names
                    if (
                        elsewhere
                        and declared
                        and (
                            not self.acyclic or self.certain_before(producer, stage.name, run_order)
                        )
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
        if producer.outputs is not None and ref.name not in producer.outputs.names:
            return _undeclared(ref, producer, producer.outputs)
        if self.acyclic and not self.certain_before(producer, stage, run_order):
            return f"{ref.text!r} comes from {producer.node!r}, " + self.explain_order(
                producer, stage, run_order
            )
        return None


def _undeclared(ref: Reference, producer: Producer, outputs: DeclaredOutputs) -> str:
    """A reference to an output variable the producing action's provider does not declare."""
    hint = did_you_mean(ref.name, outputs.names)
    message = (
        f"{ref.text!r} names output variable {ref.name!r}, which {producer.node!r} "
        f"(namespace {ref.namespace!r}) does not set: it declares {outputs.describe()}{hint}; "
    )
    if outputs.fixed:
        return message + "use one of the names it declares"
    return message + (
        f"fix the name, or declare {ref.name!r} in the output_variables (or "
        f"optional_output_variables) of the provider of {producer.node!r}"
    )
