"""A Commands declaration checks its script's size against a bound and builds the script only
near a limit: the bound is never below the script's real size, so no check is weakened."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pipelinekit as pk
from pipelinekit.providers import _commands
from pipelinekit.providers._commands import _bytes, _instrumented, _script_bound

PIECES = [
    "make build",
    "echo é ✓",
    "cat <<EOF",
    "cat <<-'END'",
    "body",
    "EOF",
    "END",
    "case $x in",
    "a) echo a ;;",
    "esac",
    "foo \\",
    "bar &&",
    "baz ||",
    "qux |",
    "set +e",
    "x" * 300,
]


@settings(max_examples=300, deadline=None)
@given(
    commands=st.lists(st.sampled_from(PIECES), min_size=1, max_size=120),
    names=st.lists(st.sampled_from(["Version", "A", "LONG_NAME_1"]), unique=True, max_size=3),
)
def test_the_bound_is_never_below_the_script(commands, names):
    script = _bytes(_instrumented(commands, names)[0])
    assert _script_bound([_bytes(c) for c in commands], names) >= script


def test_a_declaration_far_from_the_limits_never_builds_the_script(monkeypatch):
    built = []
    real = _commands._instrumented

    def counting(*args):
        built.append(args)
        return real(*args)

    monkeypatch.setattr(_commands, "_instrumented", counting)
    pk.Action(
        "A", pk.shell("make #{B.Version}", "make test", output_variables=["V"]), namespace="N"
    )
    assert built == []
    # Near the limit it is built, and the exact size decides (tests/test_shell_safety.py
    # checks the exact boundary).
    with contextlib.suppress(pk.PipelineDefinitionError):
        pk.Action("A", pk.shell("x" * 60_000, "y" * 71_000))
    assert built


@pytest.mark.anyio
async def test_a_note_written_over_a_longer_one_still_names_the_failing_command(tmp_path):
    """Notes are written over the one before without truncating the file (a truncation costs
    an ext4 flush per note): what is left after the first line is not read."""
    commands = ['printf "123\\n" >"$PK_COMMAND_FILE"', "exit 4"]
    action = pk.Action("A", pk.shell(*commands))
    result = await pk.arun(pk.Pipeline("p", [pk.Stage("S", [action])]), workdir=tmp_path / "wd")
    failure = result.actions["S.A"].failure
    assert (failure.index, failure.exit_status, failure.command) == (1, 4, "exit 4")
