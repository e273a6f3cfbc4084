"""Limits: every size, depth and duration pipelinekit accepts is checked where it is declared.

Each limit lives in ``pipelinekit/_model/_limits.py``. A declaration over one fails on the line that
wrote it (or, for the whole definition, where the ``Pipeline`` is built) with one line naming the
field, the limit and the value's size, never later at run time and never with a RecursionError,
an OverflowError or a message as large as the value.
"""

from __future__ import annotations

import textwrap
from datetime import timedelta

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pipelinekit as pk
from pipelinekit._model import _limits

MB = 1024 * 1024
DEEP = 10_000


def refused(make) -> pk.PipelineDefinitionError:
    with pytest.raises(pk.PipelineDefinitionError) as caught:
        make()
    return caught.value


def only_problem(make) -> pk.Problem:
    error = refused(make)
    assert len(error.problems) == 1, [str(p) for p in error.problems]
    return error.problems[0]


def one_clear_line(error: pk.PipelineDefinitionError) -> str:
    text = str(error)
    assert "\n" not in text
    assert len(text) < 400, text[:400]
    return text


@pk.provider("Custom", "Payload", category="Build")
@attrs.frozen
class Payload:
    """A provider of one's own that carries any data (a CloudFormation template, a JSON body)."""

    data: object = None

    async def run(self, ctx: object) -> None:
        """Nothing to do: only the declaration matters here."""


def nest(depth: int, kind: str = "list", leaf: object = "x") -> object:
    """``depth`` containers of ``kind`` around ``leaf``, built without recursion."""
    value = leaf
    for _ in range(depth):
        if kind == "list":
            value = [value]
        elif kind == "tuple":
            value = (value,)
        elif kind == "dict":
            value = {"k": value}
        else:
            value = Payload(value)
    return value


def act(name="A", provider=None, **options):
    return pk.Action(name, provider if provider is not None else pk.shell("true"), **options)


# -- one value ---------------------------------------------------------------------------------


def test_a_100_mb_configuration_value_is_refused_where_the_action_is_built():
    error = refused(lambda: act("Compile", configuration={"blob": "x" * (100 * MB)}))
    (problem,) = error.problems
    assert (problem.action, problem.field) == ("Compile", "configuration['blob']")
    assert "is 104,857,600 bytes" in problem.message
    assert "the limit is 102,400 bytes (MAX_VALUE_BYTES)" in problem.message
    assert "artifact" in problem.message
    one_clear_line(error)


def test_a_value_is_measured_in_utf8_bytes_and_the_limit_itself_is_accepted():
    act(configuration={"k": "x" * _limits.MAX_VALUE_BYTES})
    act(configuration={"k": "é" * (_limits.MAX_VALUE_BYTES // 2)})
    problem = only_problem(
        lambda: act(configuration={"k": "é" * (_limits.MAX_VALUE_BYTES // 2 + 1)})
    )
    assert f"is {_limits.MAX_VALUE_BYTES + 2:,} bytes" in problem.message
    # A lone surrogate has no UTF-8 form; it is measured, not a UnicodeEncodeError.
    act(configuration={"k": "\ud800"})


@pytest.mark.parametrize(
    ("provider", "field"),
    [
        (Payload({"a": ["x", "y" * (_limits.MAX_VALUE_BYTES + 1)]}), "provider.data['a'][1]"),
        (Payload(Payload(("x" * (_limits.MAX_VALUE_BYTES + 1),))), "provider.data.data[0]"),
        (Payload({"y" * (_limits.MAX_VALUE_BYTES + 1): "key"}), "provider.data (a key)"),
        (
            pk.ManualApproval(custom_data="x" * (_limits.MAX_VALUE_BYTES + 1)),
            "provider.custom_data",
        ),
        (
            pk.HttpRequest("https://x.test", body="x" * (_limits.MAX_VALUE_BYTES + 1)),
            "provider.body",
        ),
    ],
)
def test_a_large_string_anywhere_in_a_provider_is_refused_with_its_path(provider, field):
    problem = only_problem(lambda: act("Deploy", provider))
    assert (problem.action, problem.field) == ("Deploy", field)
    assert f"is {_limits.MAX_VALUE_BYTES + 1:,} bytes" in problem.message
    assert "MAX_VALUE_BYTES" in problem.message


def test_a_variable_says_how_long_its_default_and_description_are():
    problem = only_problem(lambda: pk.Variable("v", default="x" * 1001))
    assert problem.field == "default"
    assert "at most 1000 characters (MAX_VARIABLE_DEFAULT); it is 1,001 characters" in (
        problem.message
    )
    problem = only_problem(
        lambda: pk.Variable("v", description="x" * (_limits.MAX_VALUE_BYTES + 1))
    )
    assert problem.field == "description"
    assert "MAX_VALUE_BYTES" in problem.message
    assert only_problem(lambda: pk.Variable("v", description=5)).field == "description"


def test_a_rule_checks_its_configuration_and_commands_like_an_action():
    big = "x" * (_limits.MAX_VALUE_BYTES + 1)
    assert only_problem(lambda: pk.Rule("R", "VariableCheck", configuration={"k": big})).field == (
        "configuration['k']"
    )
    assert only_problem(lambda: pk.Rule("R", "VariableCheck", configuration={"k": 3})).field == (
        "configuration"
    )
    assert only_problem(lambda: pk.Rule("R", "Commands", commands=[big])).field == "commands[0]"
    assert only_problem(lambda: pk.Rule("R", "Commands", commands="make")).field == "commands"
    assert only_problem(lambda: pk.Rule("R", "Commands", region="x")).field == "region"


def test_a_message_never_grows_with_the_value_it_shows():
    error = refused(lambda: act(region="r" * (10 * MB)))
    assert len(one_clear_line(error)) < 300
    error = refused(lambda: act(configuration={"k": ["x" * (10 * MB)]}))
    assert len(one_clear_line(error)) < 300


def test_a_pipelines_triggers_are_held_to_the_same_limits():
    stages = [pk.Stage("S", [act()])]
    pk.Pipeline("p", stages, triggers=[{"branch": "main"}])
    error = refused(lambda: pk.Pipeline("p", stages, triggers=[nest(DEEP, "dict")]))
    assert [p.field for p in error.problems] == ["triggers[0]['k']"]
    assert "MAX_NESTING" in one_clear_line(error)
    (problem,) = refused(lambda: pk.Pipeline("p", stages, triggers=["x\0"])).problems
    assert (problem.pipeline, problem.field) == ("p", "triggers[0]")


# -- the whole definition ----------------------------------------------------------------------


def test_the_whole_definition_is_limited_where_the_pipeline_is_built():
    value = "x" * _limits.MAX_VALUE_BYTES
    count = _limits.MAX_DEFINITION_BYTES // _limits.MAX_VALUE_BYTES + 1
    actions = [act(f"A{i}", configuration={"v": value}) for i in range(count)]
    error = refused(lambda: pk.Pipeline("big", [pk.Stage("Build", actions)]))
    (problem,) = error.problems
    assert problem.pipeline == "big"
    assert f"the limit is {_limits.MAX_DEFINITION_BYTES:,} bytes (MAX_DEFINITION_BYTES)" in (
        problem.message
    )
    assert "the largest is action 'Build.A0' (102,414 bytes)" in problem.message
    one_clear_line(error)
    fits = pk.Pipeline("big", [pk.Stage("Build", actions[: count - 2])])
    assert fits.compile().actions


def test_variables_and_stage_conditions_count_towards_the_definition():
    value = "x" * _limits.MAX_VALUE_BYTES
    count = _limits.MAX_DEFINITION_BYTES // _limits.MAX_VALUE_BYTES + 1
    rules = [pk.Rule(f"R{i}", "VariableCheck", configuration={"v": value}) for i in range(count)]
    conditions = [pk.Condition("FAIL", rules[i : i + 5]) for i in range(0, count, 5)]
    stage = pk.Stage("S", [act()], before_entry=pk.BeforeEntry(conditions))
    assert "MAX_DEFINITION_BYTES" in only_problem(lambda: pk.Pipeline("p", [stage])).message


# -- durations ----------------------------------------------------------------------------------


def duration_makers():
    return {
        "timeout": lambda v: act(timeout=v),
        "rule timeout": lambda v: pk.Rule("R", "VariableCheck", timeout=v),
        "approval": lambda v: act(provider=pk.ManualApproval(timeout=v)),
        "http": lambda v: act(provider=pk.HttpRequest("https://x.test", request_timeout=v)),
        "wait": lambda v: act(provider=pk.Wait(v)),
        "retry delay": lambda v: pk.Retry(delay=v, max_delay=v),
        "retry max_delay": lambda v: pk.Retry(max_delay=v),
    }


@pytest.mark.parametrize("where", sorted(duration_makers()))
@pytest.mark.parametrize("value", [10**12, timedelta.max, timedelta(days=61), 9e13, 1e300])
def test_a_duration_over_the_maximum_is_refused_with_the_limit(where, value):
    error = refused(lambda: duration_makers()[where](value))
    problem = error.problems[-1]
    assert "the limit is 60 days (MAX_TIMEOUT)" in problem.message, problem
    one_clear_line(error) if len(error.problems) == 1 else None


def test_a_duration_message_shows_its_size():
    problem = only_problem(lambda: act(timeout=10**12))
    assert problem.field == "timeout"
    assert "1,000,000,000,000 seconds" in problem.message
    assert "11,574,074 days" in problem.message


@pytest.mark.parametrize("where", sorted(duration_makers()))
def test_the_maximum_duration_itself_is_accepted(where):
    duration_makers()[where](_limits.MAX_TIMEOUT)
    duration_makers()[where](_limits.MAX_TIMEOUT.total_seconds())


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1, timedelta(seconds=-1)])
def test_a_duration_that_is_not_finite_and_positive_is_refused(value):
    for where, make in duration_makers().items():
        with pytest.raises(pk.PipelineDefinitionError):
            make(value)
        assert where


# -- retries ------------------------------------------------------------------------------------


def test_a_max_delay_shorter_than_the_delay_is_an_error_not_a_silent_cap():
    problem = only_problem(lambda: pk.Retry(delay=10, max_delay=5))
    assert problem.field == "retry.max_delay"
    assert "0:00:05" in problem.message
    assert "0:00:10" in problem.message
    pk.Retry(delay=5, max_delay=5)


def test_retry_attempts_and_backoff_are_bounded():
    problem = only_problem(lambda: pk.Retry(attempts=10**9))
    assert problem.field == "retry.attempts"
    assert f"the limit is {_limits.MAX_ATTEMPTS} (MAX_ATTEMPTS)" in problem.message
    problem = only_problem(lambda: pk.Retry(backoff=1e300))
    assert problem.field == "retry.backoff"
    assert "MAX_BACKOFF" in problem.message
    # Accepted before, and then the wait before a late attempt overflowed a float.
    with pytest.raises(pk.PipelineDefinitionError):
        pk.Retry(attempts=400, backoff=10).delay_before(400)


@settings(max_examples=200, deadline=None)
@given(
    attempts=st.integers(1, 100),
    backoff=st.floats(1, 10),
    delay=st.floats(0, 60 * 86400),
    extra=st.floats(0, 60 * 86400),
    jitter=st.floats(0, 1),
)
def test_every_wait_of_an_accepted_retry_is_a_duration_at_most_max_delay(
    attempts, backoff, delay, extra, jitter
):
    max_delay = min(delay + extra, 60 * 86400)
    retry = pk.Retry(
        min(attempts, _limits.MAX_ATTEMPTS),
        backoff=min(backoff, _limits.MAX_BACKOFF),
        delay=delay,
        max_delay=max_delay,
        jitter=jitter,
    )
    for attempt in (2, retry.attempts):
        wait = retry.delay_before(attempt)
        assert wait <= retry.max_delay * (1 + jitter) + timedelta(milliseconds=1)


# -- nesting ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["list", "tuple", "dict", "attrs"])
def test_a_10000_deep_provider_field_is_a_clear_error_not_a_recursion_error(kind):
    error = refused(lambda: act("Compile", Payload(nest(DEEP, kind))))
    (problem,) = error.problems
    # Named by its first two steps: the path to where it goes too deep would fill the screen.
    step = {"list": "[0]", "tuple": "[0]", "dict": "['k']", "attrs": ".data"}[kind]
    assert (problem.action, problem.field) == ("Compile", "provider.data" + step)
    assert f"the limit is {_limits.MAX_NESTING} levels (MAX_NESTING)" in problem.message
    one_clear_line(error)


def test_nesting_up_to_the_limit_is_accepted():
    act(provider=Payload(nest(_limits.MAX_NESTING)))
    act(provider=Payload(nest(_limits.MAX_NESTING - 1, "attrs")))
    problem = only_problem(lambda: act(provider=Payload(nest(_limits.MAX_NESTING + 1))))
    assert "MAX_NESTING" in problem.message


def test_a_pipeline_at_the_limits_compiles_and_resolves_its_references():
    from pipelinekit._model._variables import resolve_value  # noqa: PLC0415 - what a run calls

    deepest = Payload(nest(_limits.MAX_NESTING - 1, leaf="v=#{variables.v}"))
    pipeline = pk.Pipeline(
        "p", [pk.Stage("S", [act("A", deepest)])], variables=[pk.Variable("v", default="1")]
    )
    plan = pipeline.compile()
    assert plan.referencing == {"S.A"}
    assert '"S.A"' in plan.to_json()
    resolved = resolve_value(deepest, lambda ref: "1")
    assert "v=1" in repr(resolved)


def test_a_list_that_holds_itself_is_refused_as_too_deep():
    loop: list[object] = ["x"]
    loop.append(loop)
    assert "MAX_NESTING" in only_problem(lambda: act(provider=Payload(loop))).message


def test_a_10000_deep_configuration_is_a_clear_error_not_a_recursion_error():
    error = refused(lambda: act("Compile", configuration={"k": nest(DEEP, "dict")}))
    (problem,) = error.problems
    assert (problem.action, problem.field) == ("Compile", "configuration")
    assert "value of 'k' must be a string (got {'k': {'k': {'k': {...}}}})" in problem.message
    one_clear_line(error)
    error = refused(lambda: pk.Rule("R", "VariableCheck", configuration={"k": nest(DEEP)}))
    one_clear_line(error)


def test_a_10000_deep_env_value_is_a_clear_error_before_the_provider_looks_at_it():
    error = refused(lambda: act("Compile", pk.shell("true", env={"X": nest(DEEP)})))
    assert [p.field for p in error.problems] == ["provider.env['X']"]
    assert "MAX_NESTING" in one_clear_line(error)


@pytest.mark.parametrize(
    "make",
    [
        lambda deep: act(provider=deep),
        lambda deep: pk.Stage("S", [deep]),
        lambda deep: pk.Condition("FAIL", [deep]),
        lambda deep: act(retry=deep),
        lambda deep: act(timeout=deep),
    ],
)
def test_a_deep_value_in_the_wrong_place_is_shown_briefly(make):
    one_clear_line(refused(lambda: make(nest(DEEP))))


def test_a_provider_made_deep_after_its_action_was_built_is_caught_by_the_pipeline():
    @pk.provider("Custom", "Mutable", category="Build")
    @attrs.frozen
    class Mutable:
        items: list[object]

        async def run(self, ctx: object) -> None:
            """Nothing."""

    provider = Mutable(["#{variables.v}"])
    action = act("Compile", provider)
    provider.items.append(nest(DEEP))
    error = refused(
        lambda: pk.Pipeline("p", [pk.Stage("Build", [action])], variables=[pk.Variable("v")])
    )
    (problem,) = error.problems
    assert (problem.stage, problem.action, problem.field) == ("Build", "Compile", "provider")
    assert "MAX_NESTING" in one_clear_line(error)


def test_the_cli_reports_a_deep_declaration_in_one_line(tmp_path, cli):
    path = tmp_path / "deep.py"
    path.write_text(
        textwrap.dedent(
            """
            import attrs
            import pipelinekit as pk

            @pk.provider("Custom", "Payload", category="Build")
            @attrs.frozen
            class Payload:
                data: object

            deep = "x"
            for _ in range(10_000):
                deep = {"k": deep}

            pipeline = pk.Pipeline("p", [pk.Stage("Build", [pk.Action("Compile", Payload(deep))])])
            """
        )
    )
    status, out, err = cli("validate", str(path))
    assert status == 2
    assert out == ""
    assert "RecursionError" not in err
    assert "action 'Compile', field \"provider.data['k']\": is nested more than 32" in err
    assert "MAX_NESTING" in err
    assert len(err.splitlines()) <= 2


# -- NUL and what reaches the OS ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: pk.Variable("v", default="main\0x"), "default"),
        (lambda: act(provider=pk.shell("true", env={"X": "a\0"})), "provider.env['X']"),
        (lambda: act(configuration={"k": "a\0b"}), "configuration['k']"),
        (lambda: act(configuration={"k\0": "b"}), "configuration"),
        (lambda: act(provider=Payload("a\0b")), "provider.data"),
        (lambda: act(provider=pk.LocalSource("src\0")), "provider.path"),
        (lambda: act(provider=pk.HttpRequest("https://x.test/\0")), "provider.url"),
        (
            lambda: act(provider=pk.HttpRequest("https://x.test", headers={"X": "a\0"})),
            "provider.headers['X']",
        ),
        (lambda: pk.Rule("R", "Commands", commands=["make\0"]), "commands[0]"),
    ],
)
def test_a_nul_character_is_refused_where_it_is_declared(make, field):
    error = refused(make)
    assert field in [p.field for p in error.problems], [str(p) for p in error.problems]
    assert any("NUL" in p.message for p in error.problems)


def test_a_region_is_letters_digits_and_dashes():
    act(region="us-gov-west-1")
    for region in ("eu-\0west-1", "eu west 1", "eu-west-1\n"):
        assert only_problem(lambda r=region: act(region=r)).field == "region"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"headers": {"X-Token": "a\r\nX-Admin: yes"}}, "provider.headers['X-Token']"),
        ({"headers": {"Bad Name": "v"}}, "provider.headers"),
        ({"headers": {"X": 3}}, "provider.headers['X']"),
        ({"url": "https://x.test/a b"}, "provider.url"),
    ],
)
def test_http_headers_and_urls_are_checked_where_they_are_declared(options, field):
    url = options.pop("url", "https://x.test")
    error = refused(lambda: act(provider=pk.HttpRequest(url, **options)))
    assert [p.field for p in error.problems] == [field]


def test_references_in_http_headers_and_urls_are_still_accepted():
    provider = pk.HttpRequest(
        "#{variables.url}", headers={"Authorization": "Bearer #{variables.token}"}
    )
    act(provider=provider)


def test_a_deep_object_given_as_a_name_is_a_clear_error():
    deep: list = []
    inner = deep
    for _ in range(10_000):
        inner.append([])
        inner = inner[0]
    with pytest.raises(pk.PipelineDefinitionError, match="must be a string"):
        pk.Action(deep, pk.shell("true"))
