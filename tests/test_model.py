"""The declaration model: frozen, hashable values with converters that reshape input."""

from __future__ import annotations

import random
from datetime import timedelta

import attrs
import pytest

import pipelinekit as pk


def simple(**options):
    return pk.Pipeline(
        "p",
        [pk.Stage("Build", [pk.Action("Compile", pk.shell("make"), outputs=["dist"])])],
        **options,
    )


def test_model_objects_are_frozen():
    built = simple()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.name = "other"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.stages[0].actions[0].run_order = 2  # type: ignore[misc]


def test_equal_declarations_are_equal_and_hash_alike():
    assert simple() == simple()
    assert hash(simple()) == hash(simple())
    assert len({simple(), simple()}) == 1


def test_hooks_do_not_change_identity():
    assert simple(hooks=[print]) == simple()


def test_evolve_validates_the_variant():
    built = simple()
    renamed = attrs.evolve(built, name="q")
    assert renamed.name == "q"
    with pytest.raises(pk.PipelineDefinitionError):
        attrs.evolve(built, name="no spaces")


def test_lists_become_tuples_and_dicts_become_frozen():
    action = pk.Action(
        "A", pk.shell("x", env={"K": "v"}), inputs=["a"], configuration={"Key": "Value"}
    )
    assert action.inputs == ("a",)
    assert action.configuration == {"Key": "Value"}
    assert hash(action) == hash(
        pk.Action("A", pk.shell("x", env={"K": "v"}), inputs=("a",), configuration={"Key": "Value"})
    )
    with pytest.raises(TypeError):
        action.configuration["Key"] = "changed"  # type: ignore[index]


def test_enum_values_are_spelled_as_codepipeline_spells_them():
    assert pk.Status.IN_PROGRESS == "InProgress"
    assert pk.Status.NOT_STARTED == "NotStarted"
    assert pk.Status.WAITING_FOR_APPROVAL == "WaitingForApproval"
    assert pk.Status.CANCELLED == "Cancelled"
    assert pk.Category.SOURCE == "Source"
    assert pk.Owner.THIRD_PARTY == "ThirdParty"
    assert pk.ExecutionMode.SUPERSEDED == "SUPERSEDED"
    assert {s.value for s in pk.Status} >= {
        "InProgress", "Succeeded", "Failed", "Stopped", "Stopping", "Superseded", "Abandoned",
        "Skipped",
    }  # fmt: skip


def test_action_type_id_coerces_strings_and_numbers():
    type_id = pk.ActionTypeId("Deploy", "Custom", "Acme", 1)
    assert type_id.category is pk.Category.DEPLOY
    assert type_id.owner is pk.Owner.CUSTOM
    assert type_id.version == "1"
    assert str(type_id) == "Deploy/Custom/Acme/1"


def test_shell_is_codepipelines_commands_action():
    provider = pk.shell("make", "make test", env={"A": "1"}, output_variables=["VERSION"])
    assert provider.commands == ("make", "make test")
    assert provider.action_type == pk.ActionTypeId("Compute", "AWS", "Commands", "1")
    assert provider.grace_period == timedelta(seconds=10)
    assert pk.Commands(["make"]) == pk.shell("make")


def test_provider_decorator_sets_the_action_type():
    @pk.provider("Custom", "AcmeDeploy", category=pk.Category.DEPLOY)
    @attrs.frozen
    class AcmeDeploy:
        cluster: str

    action = pk.Action("Ship", AcmeDeploy("prod"))
    assert action.action_type == pk.ActionTypeId("Deploy", "Custom", "AcmeDeploy", "1")
    assert isinstance(AcmeDeploy("x"), pk.providers.PythonFunction) is False


def test_action_decorator_names_the_action_after_the_function():
    @pk.action(outputs=["report"], namespace="Scan")
    async def scan(ctx):
        pass

    assert isinstance(scan, pk.Action)
    assert scan.name == "scan"
    assert scan.outputs == ("report",)
    assert scan.provider.is_async
    assert pk.Stage("Check", [scan]).actions[0] is scan


def test_bare_action_decorator_and_explicit_name():
    @pk.action
    def plain(ctx):
        pass

    @pk.action(name="Renamed", idempotent=True)
    def other(ctx):
        pass

    assert plain.name == "plain"
    assert not plain.provider.is_async
    assert other.name == "Renamed"
    assert other.provider.idempotent is True


def test_python_makes_a_provider_of_a_function():
    def build(ctx):
        pass

    provider = pk.python(build)
    assert provider.fn is build
    assert provider.action_type.provider == "PythonFunction"


def test_retry_waits_grow_by_backoff_and_stop_at_max_delay():
    retry = pk.Retry(5, backoff=2.0, delay=timedelta(seconds=1), max_delay=3, jitter=0)
    waits = [retry.delay_before(n).total_seconds() for n in range(1, 6)]
    assert waits == [0, 1, 2, 3, 3]


def test_retry_jitter_stays_within_its_fraction():
    retry = pk.Retry(3, delay=10, jitter=0.5)
    rng = random.Random(7)
    for _ in range(100):
        assert 10 <= retry.delay_before(2, rng).total_seconds() <= 15


def test_retry_on_limits_which_errors_are_retried():
    retry = pk.Retry(3, retry_on=[TimeoutError])
    assert retry.retries(TimeoutError())
    assert not retry.retries(ValueError())
    assert pk.Retry(3).retries(ValueError())


def test_on_failure_presets_and_shorthands():
    assert pk.OnFailure.ROLLBACK.result is pk.Result.ROLLBACK
    assert pk.OnFailure.RETRY.retry_mode is pk.RetryMode.FAILED_ACTIONS
    stage = pk.Stage("S", [pk.Action("A", pk.shell("x"))], on_failure=pk.Result.RETRY)
    assert stage.on_failure == pk.OnFailure(pk.Result.RETRY)
    rule = pk.Rule("Check", "VariableCheck", configuration={"Operator": "EQ"})
    assert rule.rule_type == pk.ActionTypeId("Rule", "AWS", "VariableCheck", "1")
    gated = pk.Stage(
        "S", [pk.Action("A", pk.shell("x"))], before_entry=pk.Condition("SKIP", [rule])
    )
    assert gated.before_entry == pk.BeforeEntry((pk.Condition(pk.Result.SKIP, (rule,)),))


def test_stage_groups_are_sorted_by_run_order():
    actions = [
        pk.Action("C", pk.shell("x"), run_order=3),
        pk.Action("A", pk.shell("x")),
        pk.Action("B", pk.shell("x"), run_order=3),
    ]
    groups = pk.Stage("S", actions).groups()
    assert [(order, [a.name for a in group]) for order, group in groups] == [
        (1, ["A"]),
        (3, ["C", "B"]),
    ]


def test_pipeline_stage_lookup():
    built = simple()
    assert built.stage("Build").name == "Build"
    with pytest.raises(KeyError):
        built.stage("Nope")
