"""Each declaration object checks its own fields when it is built.

``pk.Action("x", 3)`` raises ``PipelineDefinitionError`` on the line that wrote it, with every
problem of that object at once, each naming the action or stage and the field, and saying what
would fix it. The pipeline is not known yet, so problems name none. Rules between objects are
checked when the ``Pipeline`` is built (``test_validate.py``).
"""

from __future__ import annotations

import pickle
from datetime import timedelta

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pipelinekit as pk
from pipelinekit._model import _names
from pipelinekit._model._declarations import _Found
from pipelinekit._model._names import ARTIFACT, NAMESPACE, STAGE_OR_ACTION, VARIABLE


def refused(make) -> pk.PipelineDefinitionError:
    with pytest.raises(pk.PipelineDefinitionError) as caught:
        make()
    return caught.value


def act(name="A", **options):
    return pk.Action(name, pk.shell("true"), **options)


# -- the examples of the issue ------------------------------------------------------------------


def test_an_action_without_a_provider_is_refused_where_it_is_built():
    error = refused(lambda: pk.Action("x", 3))
    (problem,) = error.problems
    assert (problem.pipeline, problem.stage, problem.action, problem.field) == (
        None,
        None,
        "x",
        "provider",
    )
    assert "3 is not a provider" in problem.message
    assert "decorate your class with @pk.provider(...)" in problem.message
    assert str(error).startswith("action 'x', field 'provider': 3 is not a provider")


def test_a_bad_action_name_is_refused_with_the_characters_allowed():
    (problem,) = refused(lambda: pk.Action("bad name!", pk.shell("true"))).problems
    assert problem.field == "name"
    assert problem.action is None  # the name is what is wrong; the message shows it
    assert "action name 'bad name!' contains ' ', '!'" in problem.message
    assert "use only letters A-Z a-z, digits and . @ - _" in problem.message


def test_an_empty_stage_is_refused():
    error = refused(lambda: pk.Stage("S", []))
    (problem,) = error.problems
    assert (error.stage, problem.field) == ("S", "actions")
    assert "a stage needs at least one action: pass [pk.Action(...), ...]" in problem.message


def test_a_retry_without_attempts_is_refused():
    (problem,) = refused(lambda: pk.Retry(attempts=0)).problems
    assert problem.field == "retry.attempts"
    assert problem.message == "attempts must be a whole number >= 1 (got 0)"


@pytest.mark.parametrize("run_order", [0, 1000, -1, 1.5, True, "1", None])
def test_run_order_out_of_range_is_refused(run_order):
    (problem,) = refused(lambda: act(run_order=run_order)).problems
    assert (problem.action, problem.field) == ("A", "run_order")
    assert f"run_order must be a whole number from 1 to 999 (got {run_order!r})" in str(problem)


# -- all of one object's problems at once ---------------------------------------------------------


def test_every_problem_of_an_action_comes_together():
    error = refused(
        lambda: pk.Action(
            "A",
            3,
            run_order=0,
            timeout=-1,
            outputs=["a b", "ok", "ok"],
            namespace="variables",
            retry="twice",
            cache="yes",
            configuration={"Poll": True},
            region="x",
            role_arn="admin",
        )
    )
    fields = [p.field for p in error.problems]
    assert sorted(fields) == sorted(
        [
            "run_order",
            "outputs",
            "outputs",
            "namespace",
            "timeout",
            "retry",
            "cache",
            "configuration",
            "region",
            "role_arn",
            "provider",
        ]
    )
    assert {p.action for p in error.problems} == {"A"}
    assert str(error).startswith(f"{len(fields)} problems in the pipeline definition:")


def test_every_problem_of_a_provider_comes_with_the_action():
    @pk.provider("Nobody", "Bad Name", category="Building")
    class Odd:
        input_artifacts = (1, 1)

    error = refused(lambda: pk.Action("A", Odd(), run_order=0))
    assert [p.field for p in error.problems] == [
        "run_order",
        "provider.action_type",
        "provider.action_type",
        "provider.action_type",
        "inputs",
    ]
    assert "Odd takes exactly 1 input artifact (got 0)" in str(error)


def test_every_problem_of_a_stage_comes_together():
    error = refused(
        lambda: pk.Stage("S", [act(), "Deploy"], needs="Build", before_entry=3, on_failure="x")
    )
    assert [(p.stage, p.field) for p in error.problems] == [
        ("S", "actions[1]"),
        ("S", "needs"),
        ("S", "before_entry"),
        ("S", "on_failure"),
    ]
    assert "must be a pk.Action (got 'Deploy')" in str(error)
    assert "needs must be a list of stage names (got 'Build')" in str(error)


def test_every_problem_of_a_retry_comes_together():
    error = refused(lambda: pk.Retry(0, backoff=0.5, jitter=2, delay=-1, retry_on=["Timeout"]))
    assert [p.field for p in error.problems] == [
        "retry.attempts",
        "retry.backoff",
        "retry.delay",
        "retry.jitter",
        "retry.retry_on",
    ]


def test_a_variable_checks_its_name_and_default():
    error = refused(lambda: pk.Variable("a b", default="x" * 1001))
    assert [p.field for p in error.problems] == ["name", "default"]
    assert "variable name 'a b' contains ' '" in str(error)
    assert "must be a string of at most 1000 characters" in str(error)


def test_rules_and_conditions_check_themselves():
    rule_error = refused(lambda: pk.Rule("bad name", "Bad Provider!", timeout=0))
    assert [p.field for p in rule_error.problems] == ["name", "rule_type", "timeout"]
    assert "provider name 'Bad Provider!' must be 1-35 letters" in str(rule_error)

    condition_error = refused(lambda: pk.Condition("MAYBE", []))
    assert [p.field for p in condition_error.problems] == ["result", "rules"]
    assert "result 'MAYBE' is not one of 'FAIL', 'SKIP', 'RETRY', 'ROLLBACK'" in str(
        condition_error
    )

    rule = pk.Rule("Check", "VariableCheck")
    (twice,) = refused(lambda: pk.Condition(pk.Result.FAIL, [rule, rule])).problems
    assert twice.field == "rules[1].name"
    assert "used twice in one condition" in twice.message


def test_stage_conditions_check_which_results_they_allow():
    rule = pk.Rule("Window", "DeploymentWindow")
    (problem,) = refused(
        lambda: pk.Stage("S", [act()], on_success=pk.Condition(pk.Result.SKIP, [rule]))
    ).problems
    assert problem.field == "on_success.conditions[0].result"
    assert "use FAIL or ROLLBACK" in problem.message
    assert refused(lambda: pk.BeforeEntry([])).problems[0].message == (
        "needs at least one pk.Condition"
    )
    assert refused(pk.OnFailure).problems[0].message == (
        "needs a result (e.g. pk.OnFailure.ROLLBACK) or conditions"
    )
    assert refused(lambda: pk.OnFailure("NOPE")).problems[0].field == "on_failure.result"


# -- what keeps working ---------------------------------------------------------------------------


def test_evolve_checks_the_variant():
    action = act(outputs=["dist"])
    assert attrs.evolve(action, run_order=2).run_order == 2
    (problem,) = refused(lambda: attrs.evolve(action, run_order=1000)).problems
    assert problem.field == "run_order"
    stage = pk.Stage("S", [action])
    assert refused(lambda: attrs.evolve(stage, actions=[])).problems[0].field == "actions"
    assert refused(lambda: attrs.evolve(pk.Retry(), attempts=-1)).problems[0].field == (
        "retry.attempts"
    )


def test_a_provider_may_carry_its_action_type_itself():
    # As a definition imported from CodePipeline does: the type is data, not the class's.
    @attrs.frozen
    class Imported:
        action_type: pk.ActionTypeId
        configuration: dict[str, str] = attrs.field(factory=dict)

    deploy = pk.ActionTypeId("Deploy", "AWS", "CodeDeploy", 1)
    action = pk.Action("Deploy", Imported(deploy), inputs=["app"])
    assert action.action_type == deploy
    bad = pk.ActionTypeId("Deploy", "Amazon", "CodeDeploy")
    (problem,) = refused(lambda: pk.Action("Deploy", Imported(bad))).problems
    assert problem.field == "provider.action_type"
    assert "owner 'Amazon' is not one of 'AWS', 'ThirdParty', 'Custom'" in problem.message


def test_valid_objects_with_every_field_are_accepted():
    action = pk.Action(
        "Deploy-1.x@eu",
        pk.shell("./deploy.sh"),
        inputs=["dist", "config"],
        outputs=["report"],
        namespace="Deploy@eu",
        run_order=999,
        timeout=timedelta(minutes=5),
        retry=pk.Retry(2, retry_on=[TimeoutError]),
        cache=True,
        configuration={"Region": "eu-west-1"},
        region="eu-west-1",
        role_arn="arn:aws:iam::123456789012:role/deployer",
    )
    rule = pk.Rule("Window", "DeploymentWindow", timeout=60)
    stage = pk.Stage(
        "Ship",
        [action],
        needs=[],
        before_entry=pk.Condition(pk.Result.SKIP, [rule]),
        on_success=pk.Condition(pk.Result.ROLLBACK, [rule]),
        on_failure=pk.OnFailure.RETRY,
    )
    assert stage.actions == (action,)
    assert pk.Variable("v" * 128, default="x" * 1000).default == "x" * 1000


def test_checked_objects_survive_pickling():
    action = act(outputs=["dist"], retry=pk.Retry(2))
    copy = pickle.loads(pickle.dumps(action))  # noqa: S301 - our own bytes
    assert copy == action
    assert hash(copy) == hash(action)
    assert hash(pickle.loads(pickle.dumps(action.action_type))) == hash(action.action_type)  # noqa: S301


# -- the quick checks never let through what the explaining checks refuse -----------------------

NAMES = st.one_of(
    st.text(max_size=130),
    st.text(alphabet="Ab9.@-_ /\n\u00e9", max_size=8),
    st.sampled_from(["", "a" * 100, "a" * 101, "v" * 128, "v" * 129, "variables", "N@1"]),
)


@settings(max_examples=300, deadline=None)
@given(NAMES)
def test_name_rules_agree_with_their_explanations(name):
    for rule in (STAGE_OR_ACTION, ARTIFACT, NAMESPACE, VARIABLE):
        assert rule.fits(name) == (rule.problem(name) is None), (rule.what, name)
        assert rule.fits(name) == (rule.problem(name) is None)  # again, from memory


def test_name_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(_names, "_KNOWN_AT_MOST", 10)
    rule = _names.NameRule("test name", ARTIFACT.pattern, 100, "letters")
    for index in range(25):
        assert rule.fits(f"n{index}")
    assert len(rule._known) <= 10
    assert not rule.fits("n 1")


VALID_NAME = st.text(alphabet="Ab9-_", min_size=1, max_size=6)
#: For each field of an action: (valid values, values that may break a rule).
VALUES = {
    "name": (VALID_NAME, NAMES),
    "provider": (
        st.sampled_from([pk.shell("true"), pk.python(print)]),
        st.sampled_from([pk.LocalSource("."), 3, pk.Commands([]), pk.shell("a\x00")]),
    ),
    "inputs": (
        st.lists(VALID_NAME, max_size=3, unique=True),
        st.one_of(st.lists(NAMES, max_size=3), st.sampled_from(["src", 5, ["a", "a"]])),
    ),
    "outputs": (
        st.lists(VALID_NAME, max_size=3, unique=True),
        st.one_of(st.lists(NAMES, max_size=3), st.sampled_from(["src", ["a", "a"]])),
    ),
    "namespace": (
        st.one_of(st.none(), VALID_NAME),
        st.sampled_from(["variables", "codepipeline", "pipeline", "dot.ted", ""]) | NAMES,
    ),
    "run_order": (st.integers(1, 999), st.sampled_from([0, 1000, -1, True, 1.0, "1", None])),
    "timeout": (
        st.sampled_from([None, 1, 0.5, timedelta(hours=1)]),
        st.sampled_from([0, -1, float("inf"), float("nan"), timedelta(0), "10m"]),
    ),
    "retry": (st.sampled_from([None, pk.Retry()]), st.sampled_from(["twice", 3])),
    "cache": (st.booleans(), st.sampled_from([0, None, "yes"])),
    "configuration": (
        st.sampled_from([None, {}, {"A": "b"}]),
        st.sampled_from([{"A": True}, {"": "x"}, {"k" * 51: "x"}, "x", [("A", "b")]]),
    ),
    "region": (st.sampled_from([None, "eu-west-1"]), st.sampled_from(["x", 5, "r" * 31])),
    "role_arn": (
        st.sampled_from([None, "arn:aws:iam::123456789012:role/r"]),
        st.sampled_from(["admin", 5, "arn:aws:iam::1:role/r"]),
    ),
}


@st.composite
def action_fields(draw):
    """Fields of an action: all valid, except (usually) one or two that may not be."""
    broken = draw(st.sets(st.sampled_from(sorted(VALUES)), max_size=2))
    return {
        field: draw(bad if field in broken else good)
        for field, (good, bad) in VALUES.items()
        if field in broken or draw(st.booleans())
    }


@settings(max_examples=500, deadline=None)
@given(action_fields())
def test_an_action_is_accepted_only_when_the_explaining_checks_find_nothing(fields):
    name = fields.pop("name", "A")
    provider = fields.pop("provider", pk.shell("true"))
    try:
        action = pk.Action(name, provider, **fields)
    except pk.PipelineDefinitionError as error:
        problems = error.problems
    else:
        problems = ()
    if problems:
        assert all(p.field and p.message for p in problems)
        return
    found = _Found()
    action._check_own_fields(found)
    action._check_provider(found)
    assert found == []


#: One value per rule an action's own fields can break.
BROKEN = [
    ("name", ""),
    ("name", "a" * 101),
    ("name", "new\nline"),
    ("name", 5),
    ("provider", 3),
    ("provider", pk.Commands([])),
    ("provider", pk.ManualApproval()),
    ("inputs", "src"),
    ("inputs", ["a", "a"]),
    ("inputs", ["a.b"]),
    ("inputs", ["a\nb"]),
    ("outputs", ["a", "a"]),
    ("outputs", [""]),
    ("outputs", [5]),
    ("namespace", "variables"),
    ("namespace", "a.b"),
    ("namespace", "x" * 101),
    ("namespace", 5),
    ("run_order", 0),
    ("run_order", 1000),
    ("run_order", True),
    ("run_order", 2.0),
    ("timeout", 0),
    ("timeout", timedelta(seconds=-1)),
    ("timeout", "10m"),
    ("retry", 3),
    ("cache", 1),
    ("configuration", {"A": True}),
    ("configuration", {"": "x"}),
    ("configuration", [("A", "b")]),
    ("region", "x"),
    ("role_arn", "admin"),
]


@pytest.mark.parametrize(("field", "value"), BROKEN)
def test_each_rule_of_an_action_is_enforced_when_all_else_is_fine(field, value):
    fine = {"name": "A", "provider": pk.shell("true"), "outputs": ["dist"]}
    pk.Action(**fine)  # the provider's type is known: the quick checks are the ones tried
    error = refused(lambda: pk.Action(**{**fine, field: value}))
    assert {p.field.split(".")[0] for p in error.problems} <= {field, "inputs", "outputs"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "a b"),
        ("name", None),
        ("actions", []),
        ("actions", "abc"),
        ("actions", [pk.Action("A", pk.shell("true")), "B"]),
        ("needs", "Build"),
        ("needs", [3]),
        ("before_entry", 3),
        ("on_success", "x"),
        ("on_failure", 3),
    ],
)
def test_each_rule_of_a_stage_is_enforced_when_all_else_is_fine(field, value):
    fine = {"name": "S", "actions": [act()]}
    (problem,) = refused(lambda: pk.Stage(**{**fine, field: value})).problems
    assert problem.field.startswith(field)


@pytest.mark.parametrize(
    ("field", "value"), [("name", ""), ("name", "a.b"), ("default", 3), ("default", "x" * 1001)]
)
def test_each_rule_of_a_variable_is_enforced_when_all_else_is_fine(field, value):
    (problem,) = refused(lambda: pk.Variable(**{"name": "v", field: value})).problems
    assert problem.field == field
