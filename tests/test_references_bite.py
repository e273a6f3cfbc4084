"""``#{Namespace.Name}`` references, pinned where mutants of ``_model/_variables.py`` survived.

Each test states the whole answer (every reference found, its exact text and reason), so a
parser that stops early, drops a character from the name pattern or loses the fragment fails.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

import pipelinekit as pk
from pipelinekit._model import _variables
from pipelinekit._model._variables import (
    MalformedReference,
    Reference,
    find_references,
    iter_strings,
    resolve,
    resolve_value,
    well_formed_references,
)

UNCLOSED = "is not closed with '}'"
EMPTY = "is empty; write '#{Namespace.Name}'"
NO_DOT = "needs a namespace and a name separated by '.', e.g. '#{Build.Version}'"
BAD_CHARS = (
    "is not '#{Namespace.Name}' with a namespace of letters, digits, '@', '_', '-' "
    "and a name of the same characters"
)


def test_a_malformed_reference_after_a_well_formed_one_is_reported():
    assert list(find_references("#{Build.Version} #{oops")) == [
        Reference("Build", "Version"),
        MalformedReference("#{oops", UNCLOSED),
    ]


def test_every_reference_after_an_unclosed_one_is_still_checked():
    assert list(find_references("#{a #{B.c} #{} #{D} #{E.f}")) == [
        MalformedReference("#{a ", UNCLOSED),
        Reference("B", "c"),
        MalformedReference("#{}", EMPTY),
        MalformedReference("#{D}", NO_DOT),
        Reference("E", "f"),
    ]


def test_an_unclosed_fragment_is_cut_at_40_characters():
    text = "#{" + "x" * 60
    assert list(find_references(text)) == [MalformedReference(text[:40], UNCLOSED)]


def test_a_brace_before_the_reference_does_not_close_it():
    assert list(find_references("echo } #{ is not here { }")) == [
        MalformedReference("#{ is not here { }", NO_DOT)
    ]
    assert list(find_references("plain text {}")) == []


@pytest.mark.parametrize("part", ["Build", "b9", "9", "a@b", "a-b", "a_b", "@-_", "AZaz09"])
def test_every_allowed_character_makes_a_well_formed_name(part):
    for text, expected in [
        (f"#{{{part}.Version}}", Reference(part, "Version")),
        (f"#{{Build.{part}}}", Reference("Build", part)),
    ]:
        assert list(find_references(text)) == [expected]
        assert well_formed_references(text) == [(expected.namespace, expected.name)]
        assert expected.text == text


@pytest.mark.parametrize(
    "text", ["#{.Version}", "#{Build.}", "#{.}", "#{Bu ild.x}", "#{Build.Ver.sion}", "#{a$.b}"]
)
def test_a_reference_missing_or_misspelling_a_part_is_malformed(text):
    assert list(find_references(text)) == [MalformedReference(text, BAD_CHARS)]
    assert well_formed_references(text) is None


def test_well_formed_references_lists_them_all_or_refuses():
    assert well_formed_references("#{A.b}-#{C.d}#{A.b}") == [("A", "b"), ("C", "d"), ("A", "b")]
    assert well_formed_references("no references") == []
    assert well_formed_references("#{A.b} #{C}") is None


def test_the_validator_quotes_the_malformed_fragment():
    with pytest.raises(pk.PipelineDefinitionError) as caught:
        pk.Pipeline(
            "p",
            [
                pk.Stage("One", [pk.Action("A", pk.shell("true"), namespace="Build")]),
                pk.Stage("Two", [pk.Action("B", pk.shell("echo #{Build.Version} #{oops"))]),
            ],
        )
    messages = [problem.message for problem in caught.value.problems]
    assert f"reference '#{{oops' {UNCLOSED}" in messages, messages


def test_resolve_replaces_each_reference_once():
    values = {"A.b": "#{C.d}", "C.d": "never"}
    assert resolve("x #{A.b} #{C.d}!", lambda r: values[f"{r.namespace}.{r.name}"]) == (
        "x #{C.d} never!"
    )
    assert resolve("#{broken", lambda r: "x") == "#{broken"


@attrs.frozen
class _Holder:
    text: str
    items: tuple[str, ...]
    env: dict[str, str]
    count: int = 0


def test_resolve_value_rebuilds_only_what_changed():
    same = _Holder("plain", ("a",), {"K": "v"})
    assert resolve_value(same, lambda r: "x") is same
    changed = resolve_value(_Holder("#{A.b}", ("#{A.b}", "c"), {"K": "#{A.b}"}), lambda r: "x")
    assert changed == _Holder("x", ("x", "c"), {"K": "x"})
    assert type(changed.items) is tuple
    items = ["#{A.b}"]
    assert resolve_value(items, lambda r: "y") == ["y"]


def test_iter_strings_names_each_path():
    holder = _Holder("#{A.b}", ("no", "#{C.d}"), {"K": "#{E.f}"})
    assert list(iter_strings(holder, "#{")) == [
        ("text", "#{A.b}"),
        ("items[1]", "#{C.d}"),
        ("env['K']", "#{E.f}"),
    ]
    assert [path for path, _ in iter_strings(holder)] == [
        "text",
        "items[0]",
        "items[1]",
        "env['K']",
    ]


def test_iter_strings_walks_nested_sequences_and_skips_what_holds_no_text():
    nested = [["#{A.b}", 3], (None, {"k": ["#{C.d}"]}), Path("#{E.f}"), 2.5, b"#{G.h}"]
    assert list(iter_strings(nested, "#{")) == [
        ("[0][0]", "#{A.b}"),
        ("[1][1]['k'][0]", "#{C.d}"),
    ]
    assert list(iter_strings(7)) == []
    assert list(iter_strings(Path("x"))) == []
    assert list(iter_strings("#{A.b}", "#{")) == [("", "#{A.b}")]
    assert list(iter_strings("plain", "#{")) == []


def test_iter_strings_filters_attrs_fields_by_what_they_contain():
    holder = _Holder("plain", (), {}, count=3)
    assert list(iter_strings(holder, "#{")) == []
    assert list(iter_strings([holder], "")) == [("[0].text", "plain")]


def test_references_after_the_first_character_and_in_a_row_are_all_found():
    assert list(find_references(" #{A.b}#{C.d} #{E.f}")) == [
        Reference("A", "b"),
        Reference("C", "d"),
        Reference("E", "f"),
    ]


@attrs.frozen
class _WithDerived:
    derived: str = attrs.field(init=False, default="#{A.b}")
    text: str = "#{A.b}"


def test_resolve_value_skips_fields_set_outside_init_and_goes_on():
    resolved = resolve_value(_WithDerived(), lambda r: "x")
    assert (resolved.derived, resolved.text) == ("#{A.b}", "x")


def test_every_exported_name_exists():
    assert len(set(_variables.__all__)) == 9
    for name in _variables.__all__:
        assert hasattr(_variables, name), name


def test_run_metadata_references_need_no_declaration():
    pk.Pipeline(
        "p",
        [
            pk.Stage(
                "S",
                [
                    pk.Action(
                        "A",
                        pk.shell(
                            "echo #{pipeline.name} #{pipeline.execution_id} "
                            "#{codepipeline.PipelineExecutionId}"
                        ),
                    )
                ],
            )
        ],
    )
