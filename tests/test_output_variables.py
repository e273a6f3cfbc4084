"""Output variables: references checked against what the producing provider declares, and
providers held to their declarations when they run (in the real engine and in the fake)."""

from __future__ import annotations

import os
import sys
import textwrap
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pipelinekit as pk
from pipelinekit._model._loader import load_pipeline
from pipelinekit.testing import FakeExecutor, succeed


def problems_of(make) -> list[pk.Problem]:
    with pytest.raises(pk.PipelineDefinitionError) as caught:
        make()
    return list(caught.value.problems)


def only_problem(make) -> pk.Problem:
    found = problems_of(make)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


def producer_and_user(provider, command="echo #{Build.Versoin}", **options):
    return pk.Pipeline(
        "p",
        stages=[
            pk.Stage("Build", [pk.Action("B", provider, namespace="Build")]),
            pk.Stage("Use", [pk.Action("U", pk.shell(command), **options)]),
        ],
    )


# -- at definition time ---------------------------------------------------------------------------


def test_a_typo_in_a_shell_output_variable_is_refused_with_did_you_mean():
    """The cut: #{Build.Versoin} passed pk.Pipeline() and failed only at run time."""
    problem = only_problem(
        lambda: producer_and_user(pk.shell("echo", output_variables=["Version"]))
    )
    assert (problem.stage, problem.action, problem.field) == ("Use", "U", "provider.commands[0]")
    message = str(problem)
    assert "'#{Build.Versoin}'" in message
    assert "'Build.B'" in message
    assert "declares 'Version'" in message
    assert "did you mean 'Version'?" in message
    assert "output_variables" in message  # the fix


def test_a_declared_shell_output_variable_is_accepted():
    pipeline = producer_and_user(
        pk.shell("echo", output_variables=["Version"]), "echo #{Build.Version}"
    )
    assert pipeline.name == "p"


def test_a_shell_action_without_output_variables_has_none_to_refer_to():
    problem = only_problem(lambda: producer_and_user(pk.shell("echo"), "echo #{Build.Version}"))
    assert "declares no output variables" in str(problem)


def test_references_in_configuration_and_stage_conditions_are_checked_too():
    build = pk.Action("B", pk.shell("echo", output_variables=["Version"]), namespace="Build")
    rule = pk.Rule(
        "Check",
        "VariableCheck",
        configuration={"Variable": "#{Build.Verison}", "Value": "1", "Operator": "EQ"},
    )
    found = problems_of(
        lambda: pk.Pipeline(
            "p",
            [
                pk.Stage("Build", [build]),
                pk.Stage(
                    "Use",
                    [pk.Action("U", pk.shell("true"), configuration={"v": "#{Build.Vresion}"})],
                    before_entry=pk.Condition(pk.Result.FAIL, [rule]),
                ),
            ],
        )
    )
    assert sorted(p.field for p in found) == [
        "before_entry.conditions[0].rules[0].configuration['Variable']",
        "configuration['v']",
    ]
    assert all("did you mean 'Version'?" in str(p) for p in found)


def test_a_built_in_providers_declared_names_are_the_only_ones_and_cannot_be_added_to():
    problem = only_problem(
        lambda: producer_and_user(pk.ManualApproval(), "echo #{Build.ApprovedBy} #{Build.Sumary}")
    )
    message = str(problem)
    assert "'#{Build.Sumary}'" in message
    assert "did you mean 'Summary'?" in message
    assert "use one of the names it declares" in message


@pytest.mark.parametrize(
    ("provider", "names"),
    [
        (pk.ManualApproval(), ["ApprovedBy", "Summary"]),
        (pk.LocalSource("."), ["ContentHash"]),
        (
            pk.GitSource("."),
            [
                "CommitId",
                "BranchName",
                "AuthorDate",
                "CommitterDate",
                "CommitMessage",
                "RepositoryName",
            ],
        ),
        (pk.HttpRequest("http://127.0.0.1/"), ["StatusCode", "ContentType", "Body"]),
    ],
)
def test_every_name_a_built_in_declares_can_be_referred_to(provider, names):
    outputs = ["src"] if isinstance(provider, pk.LocalSource | pk.GitSource) else []
    command = "echo " + " ".join(f"#{{Build.{name}}}" for name in names)
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage("Build", [pk.Action("B", provider, namespace="Build", outputs=outputs)]),
            pk.Stage("Use", [pk.Action("U", pk.shell(command))]),
        ],
    )
    assert pipeline.stages[1].actions[0].provider.commands == (command,)


def test_a_python_function_declaring_nothing_is_not_checked():
    pipeline = producer_and_user(pk.python(lambda ctx: {"Versoin": "1"}))
    assert pipeline.name == "p"


def test_a_python_function_declares_its_output_variables():
    problem = only_problem(
        lambda: producer_and_user(pk.python(lambda ctx: None, output_variables=["Version"]))
    )
    assert "did you mean 'Version'?" in str(problem)

    @pk.action(namespace="Build", output_variables=["Version"], optional_output_variables=["Tag"])
    def build(ctx):
        return {"Version": "1"}

    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage("Build", [build]),
            pk.Stage("Use", [pk.Action("U", pk.shell("echo #{Build.Version} #{Build.Tag}"))]),
        ],
    )
    assert pipeline.stages[0].actions[0].provider.output_variables == ("Version",)


def test_a_python_functions_declaration_is_checked_where_it_is_written():
    found = problems_of(
        lambda: pk.Action(
            "A",
            pk.python(
                lambda ctx: None,
                output_variables=["ok", "bad name"],
                optional_output_variables=["ok"],
            ),
        )
    )
    messages = {p.field: str(p) for p in found}
    assert "'bad name'" in messages["provider.output_variables"]
    assert "'ok'" in messages["provider.optional_output_variables"]


def test_a_custom_provider_declares_through_its_class():
    @pk.provider("Custom", "Builder", category=pk.Category.BUILD)
    class Builder:
        output_variables: ClassVar[tuple[str, ...]] = ("Version",)

        async def run(self, ctx):
            ctx.set_variable("Version", "1")

    problem = only_problem(lambda: producer_and_user(Builder()))
    assert "did you mean 'Version'?" in str(problem)


def test_the_provider_decorator_declares_output_variables_for_the_class():
    @pk.provider("Custom", "Deployer", category=pk.Category.DEPLOY, output_variables=["Url"])
    class Deployer:
        async def run(self, ctx):
            ctx.set_variable("Url", "http://127.0.0.1/")

    assert Deployer.output_variables == ("Url",)
    problem = only_problem(lambda: producer_and_user(Deployer(), "echo #{Build.Ulr}"))
    assert "did you mean 'Url'?" in str(problem)
    assert "use one of the names it declares" in str(problem)


def test_the_provider_decorator_refuses_a_bad_declaration():
    with pytest.raises(pk.PipelineDefinitionError, match="'a b'"):
        pk.provider("Custom", "Bad", category=pk.Category.BUILD, output_variables=["a b"])


def test_a_declaration_run_by_a_registry_provider_is_not_checked():
    """What a registry builds at run time is unknown where the pipeline is written."""

    @pk.provider("Custom", "Declared", category=pk.Category.BUILD)
    class Declared:  # no run(): the registry builds the provider
        output_variables: ClassVar[tuple[str, ...]] = ("Version",)

    pipeline = producer_and_user(Declared())
    assert pipeline.name == "p"


# -- at run time ----------------------------------------------------------------------------------


def run_python(fn, tmp_path, **declared):
    pipeline = pk.Pipeline(
        "p", [pk.Stage("S", [pk.Action("A", pk.python(fn, **declared), namespace="N")])]
    )
    return pk.run(pipeline, store=pk.MemoryStore(), workdir=tmp_path)


def test_a_required_output_variable_left_unset_fails_the_action(tmp_path):
    result = run_python(lambda ctx: None, tmp_path, output_variables=["Version", "Tag"])
    action = result.actions["S.A"]
    assert action.status is pk.Status.FAILED
    assert "'Tag', 'Version'" in action.error
    assert "optional_output_variables" in action.error  # the fix


def test_an_optional_output_variable_left_unset_is_a_warning_in_the_log(tmp_path):
    result = run_python(
        lambda ctx: {"Version": "1"},
        tmp_path,
        output_variables=["Version"],
        optional_output_variables=["Tag"],
    )
    action = result.actions["S.A"]
    assert action.status is pk.Status.SUCCEEDED
    assert action.variables == {"Version": "1", "Tag": ""}  # empty, as pk.shell makes it
    log = action.log_path.read_text()
    assert "optional output variable not set" in log
    assert "Tag" in log


def test_an_undeclared_output_variable_fails_the_action(tmp_path):
    result = run_python(
        lambda ctx: {"Version": "1", "Versoin": "1"}, tmp_path, output_variables=["Version"]
    )
    action = result.actions["S.A"]
    assert action.status is pk.Status.FAILED
    assert "'Versoin'" in action.error
    assert "did you mean 'Version'?" in action.error


def test_a_custom_provider_class_is_held_to_its_declaration(tmp_path):
    @pk.provider("Custom", "Forgets", category=pk.Category.BUILD)
    class Forgets:
        output_variables: ClassVar[tuple[str, ...]] = ("Version",)

        async def run(self, ctx):
            ctx.log.info("built")

    pipeline = pk.Pipeline("p", [pk.Stage("S", [pk.Action("A", Forgets(), namespace="N")])])
    result = pk.run(pipeline, store=pk.MemoryStore(), workdir=tmp_path)
    assert result.actions["S.A"].status is pk.Status.FAILED
    assert "'Version'" in result.actions["S.A"].error


# -- in the fake ----------------------------------------------------------------------------------


def test_the_fake_makes_up_required_variables_and_leaves_optional_ones_empty():
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage(
                "S",
                [
                    pk.Action(
                        "A",
                        pk.python(
                            lambda ctx: None,
                            output_variables=["V"],
                            optional_output_variables=["O"],
                        ),
                        namespace="N",
                    )
                ],
            )
        ],
    )
    result = FakeExecutor().run(pipeline)
    assert result.actions["S.A"].variables == {"V": "fake-V", "O": ""}


def test_the_fake_refuses_what_the_real_run_refuses():
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage(
                "S",
                [
                    pk.Action(
                        "A", pk.python(lambda ctx: None, output_variables=["V"]), namespace="N"
                    )
                ],
            )
        ],
    )
    result = FakeExecutor({"S.A": succeed(variables={"W": "1"})}).run(pipeline)
    assert result.actions["S.A"].status is pk.Status.FAILED
    assert "'W'" in result.actions["S.A"].error


# -- properties -----------------------------------------------------------------------------------

#: Names a shell can export (environment variable names) and names only Python can set.
_SHELL_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}", fullmatch=True)
_ANY_NAMES = st.from_regex(r"[A-Za-z0-9@_\-]{1,12}", fullmatch=True)


@settings(max_examples=150, deadline=None)
@given(python=st.booleans(), data=st.data())
def test_references_validate_exactly_when_their_name_is_declared(python, data):
    """Every reference to a declared name validates; every other one is refused, by name."""
    names_of = _ANY_NAMES if python else _SHELL_NAMES
    declared = data.draw(st.lists(names_of, max_size=5, unique=True), "declared")
    optional: list[str] = []
    if python:
        optional = data.draw(st.lists(names_of, max_size=3, unique=True), "optional")
        optional = [name for name in optional if name not in declared]
        provider = pk.python(
            lambda ctx: None, output_variables=declared, optional_output_variables=optional
        )
    else:
        provider = pk.shell("true", output_variables=declared)
    names = set(declared) | set(optional)
    # References drawn from the declared names and from anywhere, so that both kinds occur.
    pool = st.sampled_from(sorted(names)) | names_of if names else names_of
    referenced = data.draw(st.lists(pool, min_size=1, max_size=6), "referenced")
    command = " ".join(f"echo #{{Build.{name}}};" for name in referenced)

    def make():
        return producer_and_user(provider, command)

    wrong = [name for name in referenced if name not in names]
    if not wrong:
        assert make().name == "p"
        return
    found = problems_of(make)
    assert len(found) == len(wrong)
    for problem, name in zip(found, wrong, strict=True):
        assert (problem.stage, problem.action) == ("Use", "U")
        assert f"names output variable {name!r}, which 'Build.B'" in str(problem)


@pytest.fixture
def forget_module():
    """Modules a test's pipeline files import are dropped again, so none leaks into another."""
    names: list[str] = []
    yield names.append
    for name in names:
        sys.modules.pop(name, None)


def write_base_and_release(folder, module):
    (folder / f"{module}.py").write_text(
        textwrap.dedent(
            """
            import pipelinekit as pk
            pipeline = pk.Pipeline("base", [pk.Stage("S", [pk.Action("A", pk.shell("true"))])])
            """
        )
    )
    (folder / "release.py").write_text(
        textwrap.dedent(
            f"""
            import attrs
            import pipelinekit as pk
            from {module} import pipeline as base
            import {module}
            release = attrs.evolve(base, name="release")
            """
        )
    )
    return folder / "release.py"


def test_a_loaded_file_counts_only_its_own_pipelines(tmp_path, forget_module):
    """A file that imports another module's pipeline is not a file of two pipelines."""
    forget_module("h3_base_loaded")
    release = write_base_and_release(tmp_path, "h3_base_loaded")
    pipeline, _ = load_pipeline(str(release))
    assert pipeline.name == "release"
    # The imported one can still be chosen by name.
    chosen, _ = load_pipeline(f"{release}:base")
    assert chosen.name == "base"


def test_validate_names_the_files_own_pipeline_not_the_imported_one(tmp_path, cli, forget_module):
    forget_module("h3_base_validated")
    release = write_base_and_release(tmp_path, "h3_base_validated")
    status, out, err = cli("validate", str(release))
    assert (status, err) == (0, "")
    assert "pipeline 'release'" in out


def test_a_file_that_only_imports_a_pipeline_still_names_it(tmp_path, forget_module):
    forget_module("h3_base_reexported")
    write_base_and_release(tmp_path, "h3_base_reexported")
    (tmp_path / "again.py").write_text("from h3_base_reexported import pipeline\n")
    pipeline, _ = load_pipeline(str(tmp_path / "again.py"))
    assert pipeline.name == "base"


def test_a_reference_to_a_wait_namespace_is_refused_since_it_sets_none():
    with pytest.raises(pk.PipelineDefinitionError, match=r"#\{Pause\.Until\}"):
        pk.Pipeline(
            "p",
            [
                pk.Stage("A", [pk.Action("W", pk.Wait(0), namespace="Pause")]),
                pk.Stage("B", [pk.Action("U", pk.shell('echo "#{Pause.Until}"'))]),
            ],
        )


def test_a_pipeline_file_rewritten_in_the_same_second_loads_as_it_is_now(tmp_path, monkeypatch):
    # Python trusts a cached .pyc whose source has the same size and mtime: a generated file
    # (or a one-digit edit) rewritten within the same second loaded as it was before.
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    path = tmp_path / "gen.py"
    template = (
        "import pipelinekit as pk\n"
        "pipeline = pk.Pipeline('v{}', [pk.Stage('S', [pk.Action('A', pk.Wait(0))])])\n"
    )
    path.write_text(template.format(1))
    stamp = path.stat().st_mtime_ns
    assert load_pipeline(str(path))[0].name == "v1"
    path.write_text(template.format(2))
    os.utime(path, ns=(stamp, stamp))
    assert load_pipeline(str(path))[0].name == "v2"
    assert not (tmp_path / "__pycache__").exists()  # nothing left beside the person's file
