"""A value of the wrong type for a parameter of the public API is one documented error.

Today's cut: ``pk.Cache(key=3, paths=[".venv"])`` in an action raised a raw ``TypeError: expected
string or bytes-like object``, and ``pk.run(p, from_stage=3, reuse=...)`` one from ``difflib``.
Each parameter added with caches, reports, writable inputs and reuse is tried with values of
other types: declarations raise ``PipelineDefinitionError`` naming the field, runs
``ExecutionError`` naming the parameter; never a ``TypeError``, ``AttributeError`` or an
exception group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import pipelinekit as pk
from pipelinekit.testing import FakeExecutor

WRONG = [3, 1.5, b"bytes", {"a": 1}, [3], object()]


def body(ctx: pk.ActionContext) -> None:
    """A Python action that does nothing."""


def refused(make: Callable[[], Any]) -> pk.PipelineDefinitionError:
    with pytest.raises(pk.PipelineDefinitionError) as caught:
        make()
    return caught.value


def fields(error: pk.PipelineDefinitionError) -> set[str | None]:
    return {problem.field for problem in error.problems}


def cache(**fields: Any) -> pk.Action:
    options = {"key": "k", "paths": [".venv"], **fields}
    return pk.Action("A", pk.shell("true"), caches=[pk.Cache(**options)])


@pytest.mark.parametrize("value", [*WRONG, None, ["ok", 3], [""]])
@pytest.mark.parametrize("field", ["key", "restore_keys", "paths", "writable"])
def test_a_cache_field_of_the_wrong_type_is_a_definition_error(field, value):
    if field == "key" and isinstance(value, list):
        value = value[-1]  # a key is one string: its wrong forms are the others
    if (field, value) == ("restore_keys", None):
        value = [None]
    error = refused(lambda: cache(**{field: value}))
    assert fields(error) == {f"caches[0].{field}"}, error


def test_the_examples_of_the_review_name_their_field():
    (problem,) = refused(lambda: cache(key=3)).problems
    assert (problem.action, problem.field) == ("A", "caches[0].key")
    assert problem.message.startswith("must be a non-empty string (got 3")
    assert fields(refused(lambda: cache(restore_keys=[3]))) == {"caches[0].restore_keys"}
    # A bad key still lets the other caches be checked, with their {hash:...} inputs.
    error = refused(
        lambda: pk.Action(
            "A",
            pk.shell("true"),
            caches=[pk.Cache(key=3, paths=["x"]), pk.Cache(key="{hash:src/*.txt}", paths=["y"])],
        )
    )
    assert fields(error) == {"caches[0].key", "caches[1].key"}


@pytest.mark.parametrize("value", [*WRONG, "a", ["a"]])
def test_caches_of_the_wrong_type_is_a_definition_error(value):
    assert fields(refused(lambda: pk.Action("A", pk.shell("true"), caches=value))) == {"caches"}


@pytest.mark.parametrize("value", [*WRONG, "yes", None])
def test_writable_inputs_of_the_wrong_type_is_a_definition_error(value):
    error = refused(lambda: pk.Action("A", pk.shell("true"), inputs=["i"], writable_inputs=value))
    assert fields(error) == {"writable_inputs"}


@pytest.mark.parametrize("value", [*WRONG, [None], ["ok", 3]])
@pytest.mark.parametrize("field", ["reports", "output_variables", "optional_output_variables"])
def test_a_shell_list_of_the_wrong_type_is_a_definition_error(field, value):
    if field == "reports" and value == {"a": 1}:
        value = {"a": 1, "b": 2}  # one key would read as one report path
    error = refused(lambda: pk.Action("A", pk.shell("true", **{field: value})))
    assert any(str(name).startswith(f"provider.{field}") for name in fields(error)), error


@pytest.mark.parametrize("value", [*WRONG, "yes", None])
def test_shell_idempotent_of_the_wrong_type_is_a_definition_error(value):
    error = refused(lambda: pk.Action("A", pk.shell("true", idempotent=value)))
    assert fields(error) == {"provider.idempotent"}


@pytest.mark.parametrize("value", [*WRONG, "yes", None])
def test_python_idempotent_of_the_wrong_type_is_a_definition_error(value):
    error = refused(lambda: pk.Action("A", pk.python(body, idempotent=value)))
    assert fields(error) == {"provider.idempotent"}
    error = refused(lambda: pk.action(idempotent=value)(body))
    assert fields(error) == {"provider.idempotent"}


@pytest.mark.parametrize("value", [*WRONG, [None], ["ok", 3]])
@pytest.mark.parametrize("field", ["output_variables", "optional_output_variables"])
def test_python_output_variables_of_the_wrong_type_are_a_definition_error(field, value):
    error = refused(lambda: pk.Action("A", pk.python(body, **{field: value})))
    assert f"provider.{field}" in fields(error), error
    error = refused(lambda: pk.action(**{field: value})(body))
    assert f"provider.{field}" in fields(error), error


@pytest.fixture
def two_stages() -> pk.Pipeline:
    return pk.Pipeline(
        "p",
        [
            pk.Stage("Build", [pk.Action("Make", pk.shell("true"))]),
            pk.Stage("Test", [pk.Action("Unit", pk.shell("true"))]),
        ],
    )


@pytest.mark.parametrize("value", [3, 1.5, b"Test", ["Test"], object()])
def test_from_stage_of_the_wrong_type_is_an_execution_error(tmp_path, two_stages, value):
    first = pk.run(two_stages, workdir=tmp_path)
    with pytest.raises(pk.ExecutionError, match=r"from_stage must be a stage name.*got"):
        pk.run(two_stages, workdir=tmp_path, from_stage=value, reuse=first.execution_id)


@pytest.mark.parametrize("value", [3, 1.5, b"id", ["id"], object()])
def test_reuse_of_the_wrong_type_is_an_execution_error(tmp_path, two_stages, value):
    with pytest.raises(pk.ExecutionError, match=r"reuse must be an execution id.*got"):
        pk.run(two_stages, workdir=tmp_path, from_stage="Test", reuse=value)


@pytest.mark.parametrize("value", [3, "no", None, b"", [False]])
def test_use_cache_of_the_wrong_type_is_an_execution_error(tmp_path, two_stages, value):
    with pytest.raises(pk.ExecutionError, match=r"use_cache must be True or False"):
        pk.run(two_stages, workdir=tmp_path, use_cache=value)
    with pytest.raises(pk.ExecutionError, match=r"use_cache must be True or False"):
        FakeExecutor(use_cache=value).run(two_stages)
