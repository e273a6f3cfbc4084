"""Every definition rule: a declaration that breaks it raises PipelineDefinitionError naming the
pipeline, stage, action and field at fault, and says how to fix it.

A rule about one object (an action's run_order, a stage's name) is broken where that object is
built, so its problems name the action or stage and the field but no pipeline yet; a rule between
objects (inputs, namespaces, needs) is broken when the ``Pipeline`` is built. Both happen inside
the lambdas below, so the tests hold either way; where a problem's place differs, they say so."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

import pipelinekit as pk


def act(name="A", *, command="true", sets=(), **options):
    return pk.Action(name, pk.shell(command, output_variables=sets), **options)


def problems_of(make) -> list[pk.Problem]:
    with pytest.raises(pk.PipelineDefinitionError) as caught:
        make()
    return list(caught.value.problems)


def only_problem(make) -> pk.Problem:
    found = problems_of(make)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


def pipeline(*stages, **options):
    return pk.Pipeline("p", list(stages), **options)


def two_stages(first_actions, second_actions, **second_options):
    return pipeline(
        pk.Stage("One", first_actions),
        pk.Stage("Two", second_actions, **second_options),
    )


HOSTILE_NAMES = [
    "",
    "a" * 101,
    "has space",
    "../etc",
    "a/b",
    "nul\x00byte",
    "new\nline",
    "$(rm -rf /)",
    "a;b",
    "a|b",
    "`x`",
    "a'b",
    "\u202eevil",
    "B\u0443ild",  # Cyrillic u
    "\uff22uild",  # fullwidth B
    "caf\u00e9",
]


# -- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_pipeline_names_are_rejected(name):
    problem = only_problem(lambda: pk.Pipeline(name, [pk.Stage("S", [act()])]))
    assert problem.field == "name"
    assert "pipeline name" in problem.message


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_stage_names_are_rejected(name):
    # Refused by pk.Stage itself, which knows neither its pipeline nor its place in it.
    problem = only_problem(lambda: pipeline(pk.Stage(name, [act()])))
    assert problem.field == "name"
    assert problem.stage is None  # the name is what is wrong; the message shows it safely
    assert "stage name" in problem.message


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_action_names_are_rejected(name):
    # Refused by pk.Action itself, before there is a stage.
    problem = only_problem(lambda: pipeline(pk.Stage("S", [act(name)])))
    assert (problem.stage, problem.action) == (None, None)
    assert problem.field == "name"
    assert "action name" in problem.message


def test_names_at_the_limits_are_accepted():
    name = "A.b@c-d_" + "x" * 92
    assert len(name) == 100
    built = pk.Pipeline(name, [pk.Stage(name, [act(name)])])
    assert built.name == name


def test_bad_characters_are_named_in_the_message():
    problem = only_problem(lambda: pipeline(pk.Stage("S", [act("evil\u202ename")])))
    assert "U+202E" in problem.message
    assert "letters A-Z a-z, digits and . @ - _" in problem.message


def test_too_long_name_says_the_limit():
    problem = only_problem(lambda: pipeline(pk.Stage("S" * 101, [act()])))
    assert "101 characters long; the limit is 100" in problem.message


@pytest.mark.parametrize("name", ["dot.ted", "at@sign", "", "x" * 101, "sp ace", "Ärger"])
def test_artifact_names_follow_their_rule(name):
    problem = only_problem(lambda: pipeline(pk.Stage("S", [act(outputs=[name])])))
    assert problem.field == "outputs"
    assert problem.action == "A"


def test_artifact_name_rule_accepts_dash_and_underscore():
    built = pipeline(pk.Stage("S", [act(outputs=["my-art_1"])]))
    assert built.stages[0].actions[0].outputs == ("my-art_1",)


@pytest.mark.parametrize("name", ["dot.ted", "", "x" * 101, "a b", "../x"])
def test_namespace_names_follow_their_rule(name):
    problem = only_problem(lambda: pipeline(pk.Stage("S", [act(namespace=name)])))
    assert problem.field == "namespace"


@pytest.mark.parametrize("name", ["dot.ted", "", "x" * 129, "a b", "a$b"])
def test_variable_names_follow_their_rule(name):
    problem = only_problem(lambda: pipeline(pk.Stage("S", [act()]), variables=[pk.Variable(name)]))
    assert problem.field == "name"  # refused by pk.Variable itself
    assert "variable name" in problem.message


def test_variable_names_may_be_128_characters():
    built = pipeline(pk.Stage("S", [act()]), variables=[pk.Variable("v" * 128)])
    assert built.variables[0].name == "v" * 128


def test_variable_names_are_unique():
    problem = only_problem(
        lambda: pipeline(pk.Stage("S", [act()]), variables=[pk.Variable("v"), pk.Variable("v")])
    )
    assert "declared twice" in problem.message
    assert problem.field == "variables[1]"


def test_namespaces_are_unique():
    problem = only_problem(
        lambda: pipeline(pk.Stage("S", [act("A", namespace="N"), act("B", namespace="N")]))
    )
    assert problem.action == "B"
    assert "'S.A'" in problem.message


def test_namespace_must_differ_from_artifact_names():
    problem = only_problem(
        lambda: pipeline(pk.Stage("S", [act("A", outputs=["out"]), act("B", namespace="out")]))
    )
    assert problem.action == "B"
    assert "also the name of an artifact" in problem.message


@pytest.mark.parametrize("reserved", ["variables", "codepipeline", "pipeline"])
def test_reserved_namespaces_are_refused(reserved):
    problem = only_problem(lambda: pipeline(pk.Stage("S", [act(namespace=reserved)])))
    assert "reserved" in problem.message


# -- structure ---------------------------------------------------------------------------------


def test_a_pipeline_needs_a_stage():
    problem = only_problem(lambda: pk.Pipeline("p", []))
    assert problem.field == "stages"
    assert "at least one stage" in problem.message


def test_a_stage_needs_an_action():
    problem = only_problem(lambda: pipeline(pk.Stage("Empty", [])))
    assert problem.stage == "Empty"
    assert "at least one action" in problem.message


def test_stage_names_are_unique():
    problem = only_problem(lambda: pipeline(pk.Stage("S", [act()]), pk.Stage("S", [act()])))
    assert "used by stages 0 and 1" in problem.message


def test_action_names_are_unique_within_a_stage():
    problem = only_problem(lambda: pipeline(pk.Stage("S", [act("A"), act("A")])))
    assert problem.action == "A"
    assert "unique within a stage" in problem.message


def test_action_names_may_repeat_across_stages():
    built = pipeline(pk.Stage("S", [act("A")]), pk.Stage("T", [act("A")]))
    assert [s.actions[0].name for s in built.stages] == ["A", "A"]


def test_node_ids_must_not_collide():
    problem = only_problem(
        lambda: pipeline(pk.Stage("A.B", [act("C")]), pk.Stage("A", [act("B.C")]))
    )
    assert "'A.B.C'" in problem.message


@pytest.mark.parametrize("run_order", [0, 1000, -1, 1.5, True, "1"])
def test_run_order_is_1_to_999(run_order):
    problem = only_problem(lambda: pipeline(pk.Stage("S", [act(run_order=run_order)])))
    assert problem.field == "run_order"
    assert "1 to 999" in problem.message


def test_run_order_999_is_fine():
    assert pipeline(pk.Stage("S", [act(run_order=999)])).stages[0].actions[0].run_order == 999


def test_a_provider_must_declare_its_action_type():
    problem = only_problem(lambda: pipeline(pk.Stage("S", [pk.Action("A", "make build")])))
    assert problem.field == "provider"
    assert "@pk.provider" in problem.message


def test_a_string_for_a_list_of_artifacts_is_explained():
    problem = only_problem(lambda: pipeline(pk.Stage("S", [act(outputs="dist")])))
    assert "outputs=['src']" in problem.message


def test_non_stage_in_stages_is_reported():
    problem = only_problem(lambda: pk.Pipeline("p", [pk.Stage("S", [act()]), "Deploy"]))
    assert problem.field == "stages[1]"


# -- artifacts -------------------------------------------------------------------------------


def test_output_artifact_names_are_unique_in_the_pipeline():
    problem = only_problem(
        lambda: two_stages([act("A", outputs=["dist"])], [act("B", outputs=["dist"])])
    )
    assert problem.stage == "Two"
    assert "also produced by 'One.A'" in problem.message


def test_an_input_must_be_produced_and_near_misses_are_suggested():
    problem = only_problem(
        lambda: two_stages([act("A", outputs=["src"])], [act("B", inputs=["srd"])])
    )
    assert (problem.stage, problem.action, problem.field) == ("Two", "B", "inputs")
    assert "not produced by any action; did you mean 'src'?" in problem.message


def test_an_input_from_an_earlier_stage_is_fine():
    built = two_stages([act("A", outputs=["src"])], [act("B", inputs=["src"])])
    assert built.stages[1].actions[0].inputs == ("src",)


def test_an_input_from_an_earlier_run_order_group_is_fine():
    built = pipeline(pk.Stage("S", [act("A", outputs=["x"]), act("B", inputs=["x"], run_order=3)]))
    assert len(built.stages[0].actions) == 2


def test_an_input_from_the_same_group_is_refused():
    problem = only_problem(
        lambda: pipeline(pk.Stage("S", [act("A", outputs=["x"]), act("B", inputs=["x"])]))
    )
    assert "same run_order group" in problem.message
    assert "higher run_order" in problem.message


def test_an_input_from_a_later_group_is_refused():
    problem = only_problem(
        lambda: pipeline(
            pk.Stage("S", [act("A", outputs=["x"], run_order=2), act("B", inputs=["x"])])
        )
    )
    assert "runs later in the stage" in problem.message


def test_an_input_from_a_later_stage_is_refused():
    problem = only_problem(
        lambda: two_stages([act("A", inputs=["late"])], [act("B", outputs=["late"])])
    )
    assert problem.stage == "One"
    assert "runs after stage 'One'" in problem.message


def test_an_input_from_a_parallel_branch_is_refused_with_a_needs_fix():
    problem = only_problem(
        lambda: pipeline(
            pk.Stage("Root", [act()]),
            pk.Stage("Left", [act(outputs=["l"])], needs=["Root"]),
            pk.Stage("Right", [act(inputs=["l"])], needs=["Root"]),
        )
    )
    assert problem.stage == "Right"
    assert "add 'Left' to the needs of 'Right'" in problem.message


def test_an_input_through_a_chain_of_needs_is_fine():
    built = pipeline(
        pk.Stage("A", [act(outputs=["a"])], needs=[]),
        pk.Stage("X", [act()], needs=[]),
        pk.Stage("B", [act()], needs=["A", "X"]),
        pk.Stage("C", [act(inputs=["a"])], needs=["B"]),
    )
    assert built.compile().order()[-1] == ["C.A"]


# -- variables and references ---------------------------------------------------------------


def test_namespace_reference_must_name_a_declared_namespace():
    problem = only_problem(
        lambda: two_stages(
            [act("A", namespace="Build")], [act("B", command="echo #{Biuld.Version}")]
        )
    )
    assert problem.field == "provider.commands[0]"
    assert "no action declares; did you mean 'Build'?" in problem.message


def test_namespace_reference_from_an_earlier_stage_is_fine():
    built = two_stages(
        [act("A", namespace="Build", sets=["Version"])], [act("B", command="echo #{Build.Version}")]
    )
    assert built.stages[1].actions[0].provider.commands == ("echo #{Build.Version}",)


def test_namespace_reference_to_a_later_stage_is_refused():
    problem = only_problem(
        lambda: two_stages(
            [act("A", command="echo #{Later.x}")], [act("B", namespace="Later", sets=["x"])]
        )
    )
    assert "comes from 'Two.B'" in problem.message


def test_namespace_reference_within_the_same_group_is_refused():
    problem = only_problem(
        lambda: pipeline(
            pk.Stage("S", [act("A", namespace="N", sets=["x"]), act("B", command="#{N.x}")])
        )
    )
    assert "same run_order group" in problem.message


def test_an_action_cannot_reference_its_own_namespace():
    problem = only_problem(lambda: pipeline(pk.Stage("S", [act(namespace="N", command="#{N.x}")])))
    assert "own namespace" in problem.message


def test_pipeline_variable_references_must_be_declared():
    problem = only_problem(
        lambda: pipeline(
            pk.Stage("S", [act(configuration={"Env": "#{variables.evn}"})]),
            variables=[pk.Variable("env")],
        )
    )
    assert problem.field == "configuration['Env']"
    assert "did you mean 'env'?" in problem.message
    assert "pk.Variable('evn')" in problem.message


def test_declared_pipeline_variables_and_run_metadata_are_fine():
    command = "deploy #{variables.env} #{codepipeline.PipelineExecutionId} #{pipeline.execution_id}"
    built = pipeline(pk.Stage("S", [act(command=command)]), variables=[pk.Variable("env")])
    assert built.variables[0].name == "env"


def test_unknown_run_metadata_is_refused():
    problem = only_problem(lambda: pipeline(pk.Stage("S", [act(command="#{codepipeline.Foo}")])))
    assert "PipelineExecutionId" in problem.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("echo #{Build.", "not closed"),
        ("echo #{}", "is empty"),
        ("echo #{Build}", "namespace and a name"),
        ("echo #{Bu ild.x}", "is not '#{Namespace.Name}'"),
        ("#{#{Build.x}}", "not closed"),
    ],
)
def test_malformed_references_are_errors(text, expected):
    found = problems_of(lambda: pipeline(pk.Stage("S", [act(command=text)])))
    assert any(expected in p.message for p in found), [str(p) for p in found]


def test_references_in_environment_values_are_checked():
    problem = only_problem(
        lambda: pipeline(pk.Stage("S", [pk.Action("A", pk.shell("x", env={"E": "#{Nope.x}"}))]))
    )
    assert problem.field == "provider.env['E']"


def test_references_in_condition_rules_are_checked():
    rule = pk.Rule("Check", "VariableCheck", configuration={"Variable": "#{variables.nope}"})
    problem = only_problem(
        lambda: pipeline(pk.Stage("S", [act()], before_entry=pk.Condition(pk.Result.FAIL, [rule])))
    )
    assert problem.field == "before_entry.conditions[0].rules[0].configuration['Variable']"


# -- needs and cycles -------------------------------------------------------------------------


def test_needs_must_name_existing_stages():
    problem = only_problem(
        lambda: pipeline(pk.Stage("Build", [act()]), pk.Stage("Test", [act()], needs=["Biuld"]))
    )
    assert problem.stage == "Test"
    assert "did you mean 'Build'?" in problem.message


def test_a_cycle_through_needs_is_shown():
    problem = only_problem(
        lambda: pipeline(
            pk.Stage("A", [act()], needs=["B"]),
            pk.Stage("B", [act()], needs=["A"]),
        )
    )
    assert "A -> B -> A" in problem.message
    assert problem.field == "needs"


def test_a_stage_needing_itself_is_a_cycle():
    problem = only_problem(lambda: pipeline(pk.Stage("A", [act()], needs=["A"])))
    assert "A -> A" in problem.message


def test_a_longer_cycle_is_shown_in_order():
    problem = only_problem(
        lambda: pipeline(
            pk.Stage("Start", [act()], needs=[]),
            pk.Stage("A", [act()], needs=["C", "Start"]),
            pk.Stage("B", [act()], needs=["A"]),
            pk.Stage("C", [act()], needs=["B"]),
        )
    )
    assert "A -> B -> C -> A" in problem.message


# -- timeouts, retries, conditions --------------------------------------------------------------


@pytest.mark.parametrize("timeout", [0, -5, math.inf, math.nan, timedelta(0), "10m"])
def test_timeouts_must_be_positive_and_finite(timeout):
    problem = only_problem(lambda: pipeline(pk.Stage("S", [act(timeout=timeout)])))
    assert problem.field == "timeout"


def test_timeout_in_seconds_becomes_a_timedelta():
    built = pipeline(pk.Stage("S", [act(timeout=90)]))
    assert built.stages[0].actions[0].timeout == timedelta(seconds=90)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"attempts": 0}, "retry.attempts"),
        ({"attempts": 2.5}, "retry.attempts"),
        ({"backoff": 0.5}, "retry.backoff"),
        ({"backoff": math.inf}, "retry.backoff"),
        ({"jitter": 2}, "retry.jitter"),
        ({"delay": -1}, "retry.delay"),
        ({"retry_on": [ValueError, "Timeout"]}, "retry.retry_on"),
    ],
)
def test_retry_rules(options, field):
    # pk.Retry refuses itself when built, so it is built inside the lambda.
    problem = only_problem(lambda: pipeline(pk.Stage("S", [act(retry=pk.Retry(**options))])))
    assert problem.field == field


def test_before_entry_allows_only_fail_or_skip():
    rule = pk.Rule("Window", "DeploymentWindow", configuration={"Cron": "* * 9-17 ? * MON-FRI"})
    problem = only_problem(
        lambda: pipeline(
            pk.Stage("S", [act()], before_entry=pk.Condition(pk.Result.ROLLBACK, [rule]))
        )
    )
    assert problem.field == "before_entry.conditions[0].result"
    assert "FAIL or SKIP" in problem.message


def test_rollback_is_refused_in_parallel_mode():
    problem = only_problem(
        lambda: pipeline(
            pk.Stage("S", [act()], on_failure=pk.OnFailure.ROLLBACK),
            execution_mode=pk.ExecutionMode.PARALLEL,
        )
    )
    assert problem.field == "on_failure"
    assert "PARALLEL" in problem.message


def test_a_condition_needs_one_to_five_rules():
    problem = only_problem(
        lambda: pipeline(pk.Stage("S", [act()], on_success=pk.Condition(pk.Result.FAIL, [])))
    )
    assert "1 to 5" in problem.message


def test_retry_mode_without_retry_is_refused():
    problem = only_problem(
        lambda: pk.OnFailure(pk.Result.ROLLBACK, retry_mode=pk.RetryMode.ALL_ACTIONS)
    )
    assert problem.field == "on_failure.retry_mode"


def test_unknown_execution_mode_lists_the_choices():
    problem = only_problem(lambda: pipeline(pk.Stage("S", [act()]), execution_mode="FASTEST"))
    assert "'SUPERSEDED', 'QUEUED', 'PARALLEL'" in problem.message


def test_execution_mode_may_be_given_as_its_string():
    assert pipeline(pk.Stage("S", [act()]), execution_mode="QUEUED").execution_mode is (
        pk.ExecutionMode.QUEUED
    )


# -- providers -------------------------------------------------------------------------------


def test_commands_need_at_least_one_command():
    problem = only_problem(lambda: pipeline(pk.Stage("S", [pk.Action("A", pk.Commands([]))])))
    assert problem.field == "provider.commands"


def test_commands_refuse_nul_bytes():
    problem = only_problem(lambda: pipeline(pk.Stage("S", [act(command="echo \x00")])))
    assert problem.field == "provider.commands[0]"


def test_environment_names_are_checked():
    problem = only_problem(
        lambda: pipeline(pk.Stage("S", [pk.Action("A", pk.shell("x", env={"1BAD": "v"}))]))
    )
    assert problem.field == "provider.env"


def test_bad_action_type_fields_are_reported():
    @pk.provider("Nobody", "Bad Name", category="Building")
    class Odd:
        pass

    found = problems_of(lambda: pipeline(pk.Stage("S", [pk.Action("A", Odd())])))
    messages = " ".join(p.message for p in found)
    assert "category 'Building'" in messages
    assert "owner 'Nobody'" in messages
    assert "provider name 'Bad Name'" in messages


def test_configuration_values_must_be_strings():
    problem = only_problem(lambda: pipeline(pk.Stage("S", [act(configuration={"Poll": True})])))
    assert "'true' rather than True" in problem.message


def test_role_arn_must_look_like_one():
    problem = only_problem(lambda: pipeline(pk.Stage("S", [act(role_arn="admin")])))
    assert problem.field == "role_arn"


# -- reporting ---------------------------------------------------------------------------------


def test_every_problem_of_a_pipeline_is_reported_at_once():
    # The objects are valid on their own; what is wrong is the pipeline and how they connect.
    with pytest.raises(pk.PipelineDefinitionError) as caught:
        pk.Pipeline(
            "bad name",
            [
                pk.Stage("Build", [act("Compile", outputs=["dist"], namespace="B")]),
                pk.Stage("Test", [act("Unit", inputs=["dst"], namespace="B")], needs=["Biuld"]),
                pk.Stage("Test", [act("Lint")]),
            ],
            execution_mode="FASTEST",
        )
    error = caught.value
    assert len(error.problems) == 6
    text = str(error)
    assert text.startswith("6 problems in the pipeline definition:")
    assert "did you mean 'dist'?" in text
    assert "did you mean 'Build'?" in text
    assert "namespace 'B' is also used by 'Build.Compile'" in text
    assert "used by stages 1 and 2" in text
    assert error.pipeline == "bad name"


def test_every_problem_of_one_action_is_reported_at_once():
    # Before issue 9 these came with the pipeline's other problems; now the action refuses
    # itself where it is built, with all of its own problems.
    found = problems_of(lambda: act("Unit", inputs=["dst", "dst"], run_order=0, timeout=-1))
    assert [p.field for p in found] == ["run_order", "inputs", "timeout"]
    assert {p.action for p in found} == {"Unit"}


def test_the_error_carries_where_the_first_problem_is():
    with pytest.raises(pk.PipelineDefinitionError) as caught:
        two_stages([act("A")], [act("B", inputs=["nothing"])])
    error = caught.value
    assert (error.pipeline, error.stage, error.action) == ("p", "Two", "B")
    assert str(error).startswith("pipeline 'p', stage 'Two', action 'B', field 'inputs': ")
    assert isinstance(error, pk.PipelineKitError)


def test_a_huge_number_of_problems_is_summarised_in_the_message():
    with pytest.raises(pk.PipelineDefinitionError) as caught:
        pipeline(pk.Stage("S", [act(f"A{i}", inputs=[f"none{i}"]) for i in range(120)]))
    error = caught.value
    assert len(error.problems) == 120
    text = str(error)
    assert text.count("\n  - ") == pk.PipelineDefinitionError.SHOWN
    assert text.endswith("... and 70 more (all are in .problems)")
