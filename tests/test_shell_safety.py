"""Safe by construction: a ``#{...}`` reference in a command's text reaches the shell as data.

Each reference becomes an environment variable of the commands, expanded with the quoting that is
right where it stands, so no value can change what the shell parses. The property tests run the
rewritten text in a real ``/bin/sh`` with values made to break out of every kind of quoting.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pipelinekit as pk
from pipelinekit._model._variables import Reference, resolve
from pipelinekit.providers._capabilities import ResolvesReferences, with_references_resolved
from pipelinekit.providers._shell_text import Quoting, pass_as_data, scan

pytestmark = pytest.mark.anyio


def one(action, **options):
    return pk.Pipeline("p", [pk.Stage("S", [action])], **options)


def refused(make) -> pk.PipelineDefinitionError:
    with pytest.raises(pk.PipelineDefinitionError) as caught:
        make()
    return caught.value


# -- the fault -----------------------------------------------------------------------------------


async def test_a_branch_name_in_command_text_is_data_not_a_command(workdir, tmp_path):
    marker = tmp_path / "pwned"
    branch = f"x; touch {marker} #"
    action = pk.Action(
        "Deploy",
        pk.shell(
            "printf '%s' #{variables.branch} > value.txt",
            'printf "[%s]" "#{variables.branch}" >> value.txt',
            "printf '<%s>' 'b=#{variables.branch}=e' >> value.txt",
            'cp value.txt "$PK_OUTPUT_out/"',
        ),
        outputs=["out"],
    )
    pipeline = one(action, variables=[pk.Variable("branch", default="main")])
    result = await pk.arun(pipeline, workdir=workdir, variables={"branch": branch})
    assert result.succeeded, result.actions["S.Deploy"].error
    assert not marker.exists()
    written = (result.actions["S.Deploy"].outputs["out"] / "value.txt").read_text()
    assert written == f"{branch}[{branch}]<b={branch}=e>"


# -- limits of a Commands declaration -----------------------------------------------------------


def test_commands_longer_than_one_argument_may_be_are_refused_where_they_are_declared():
    # Today each would fail at run time with "Argument list too long".
    error = refused(
        lambda: pk.Action("Build", pk.shell("echo " + "x" * 70_000, "echo " + "y" * 70_000))
    )
    (problem,) = error.problems
    assert problem.field == "provider.commands"
    script = pk.shell("echo " + "x" * 70_000, "echo " + "y" * 70_000).script()
    assert f"the script is {len(script):,} bytes" in problem.message
    assert "at most 131,071 bytes (Linux's MAX_ARG_STRLEN" in problem.message
    assert "\n" not in str(error)
    assert len(str(error)) < 400


def test_a_300_kb_command_is_refused_once_naming_it_and_the_value_limit():
    error = refused(lambda: pk.Action("Build", pk.shell("true", "echo " + "x" * 300_000)))
    (problem,) = error.problems
    assert problem.field == "provider.commands[1]"
    assert "is 300,005 bytes; the limit is 102,400 bytes (MAX_VALUE_BYTES)" in problem.message


def test_the_longest_script_accepted_is_the_platforms_limit():
    # What the script adds around two commands ("set -e", the notes of which command runs,
    # newlines), and the argument's NUL.
    overhead = len(pk.shell("x", "y").script()) - 2
    room = 131_072 - overhead - 60_000 - 1
    accepted = pk.shell("x" * 60_000, "y" * room)
    pk.Action("Build", accepted)
    assert len(accepted.script()) == 131_071
    refused(lambda: pk.Action("Build", pk.shell("x" * 60_000, "y" * (room + 1))))


def test_an_env_value_over_the_value_limit_is_refused_naming_the_key():
    error = refused(lambda: pk.Action("Build", pk.shell("true", env={"BLOB": "x" * 200_000})))
    (problem,) = error.problems
    assert problem.field == "provider.env['BLOB']"
    assert "200,000 bytes" in problem.message
    assert "MAX_VALUE_BYTES" in problem.message


def test_a_nul_in_an_env_name_or_value_is_refused_naming_the_key():
    error = refused(lambda: pk.Action("Build", pk.shell("true", env={"TOKEN": "a\0b"})))
    assert [p.field for p in error.problems] == ["provider.env['TOKEN']"]
    assert "NUL" in error.problems[0].message
    error = refused(lambda: pk.Action("Build", pk.shell("true", env={"TO\0KEN": "ab"})))
    assert [p.field for p in error.problems] == ["provider.env (a key)"]
    assert "NUL" in error.problems[0].message
    # The provider's own check names the key (the check of every declared value says it first).
    (own,) = pk.shell("true", env={"TO\0KEN": "ab"}).problems()
    assert own == (
        "env (a key)",
        "'TO\\x00KEN' contains a NUL character, which no variable name can hold",
    )


# -- where a reference stands, and what replaces it ----------------------------------------------


@pytest.mark.parametrize(
    ("command", "rewritten"),
    [
        ("./deploy.sh #{variables.branch}", './deploy.sh "${PK_REF_variables_branch}"'),
        ("echo a#{B.v}b", 'echo a"${PK_REF_B_v}"b'),
        ('echo "a #{B.v} b"', 'echo "a ${PK_REF_B_v} b"'),
        ("echo 'a #{B.v} b'", "echo 'a '\"${PK_REF_B_v}\"' b'"),
        ("echo $(git log #{B.v})", 'echo $(git log "${PK_REF_B_v}")'),
        ('echo "$(git log "#{B.v}")"', 'echo "$(git log "${PK_REF_B_v}")"'),
        ("echo `git log #{B.v}`", 'echo `git log "${PK_REF_B_v}"`'),
        ('echo "${X:-#{B.v}}"', 'echo "${X:-"${PK_REF_B_v}"}"'),
        ('echo "${X#prefix}" #{B.v}', 'echo "${X#prefix}" "${PK_REF_B_v}"'),
        ("echo $# #{B.v}", 'echo $# "${PK_REF_B_v}"'),
        ('echo "\\#{B.v}"', 'echo "\\\\${PK_REF_B_v}"'),
        ('echo "\\\\#{B.v}"', 'echo "\\\\${PK_REF_B_v}"'),
        ("cat <<EOF\nv=#{B.v}\nEOF", "cat <<EOF\nv=${PK_REF_B_v}\nEOF"),
        (
            "cat <<-EOF\n\tv=#{B.v}\n\tEOF\necho #{B.v}",
            'cat <<-EOF\n\tv=${PK_REF_B_v}\n\tEOF\necho "${PK_REF_B_v}"',
        ),
        (
            "cat <<A; cat <<B\n#{B.v}\nA\n'#{B.v}'\nB",
            "cat <<A; cat <<B\n${PK_REF_B_v}\nA\n'${PK_REF_B_v}'\nB",
        ),
        ("echo #{B.v} # deploys #{B.v}", 'echo "${PK_REF_B_v}" # deploys #{B.v}'),
        ("#{B.v}", '"${PK_REF_B_v}"'),  # at a word's start it is a reference, not a comment
        ("echo #{B.v}#{C.w}", 'echo "${PK_REF_B_v}""${PK_REF_C_w}"'),
        ("echo #{a-b.c} #{a_b.c}", 'echo "${PK_REF_a_b_c}" "${PK_REF_a_b_c_2}"'),
        ("echo '#{B.v}' \"'\" #{B.v}", 'echo \'\'"${PK_REF_B_v}"\'\' "\'" "${PK_REF_B_v}"'),
        # A here-string is no here-document: the next line is code.
        ("cat <<< #{B.v}\necho #{B.v}", 'cat <<< "${PK_REF_B_v}"\necho "${PK_REF_B_v}"'),
        # Where bash evaluates nothing: data, as anywhere else.
        (
            "[ #{B.v} -eq 1 ] && read -p #{B.v} x",
            '[ "${PK_REF_B_v}" -eq 1 ] && read -p "${PK_REF_B_v}" x',
        ),
        ("echo a[#{B.v}]=1 ${a[1]:-#{B.v}}", 'echo a["${PK_REF_B_v}"]=1 ${a[1]:-"${PK_REF_B_v}"}'),
        # Attributes that leave a value data: an integer or nameref elsewhere, export -n.
        ("declare -i n; m=#{B.v}", 'declare -i n; m="${PK_REF_B_v}"'),
        ("declare -n r; echo r=#{B.v}", 'declare -n r; echo r="${PK_REF_B_v}"'),
        ("export -n r; r=#{B.v}", 'export -n r; r="${PK_REF_B_v}"'),
        ('declare x=#{B.v} "y=#{B.v}"', 'declare x="${PK_REF_B_v}" "y=${PK_REF_B_v}"'),
    ],
)
def test_each_reference_becomes_a_variable_quoted_for_where_it_stands(command, rewritten):
    safe = pass_as_data([command])
    assert safe.problems == ()
    assert safe.commands == (rewritten,)


@pytest.mark.parametrize(
    ("command", "quoting"),
    [
        ("echo \\#{B.v}", Quoting.ESCAPED),
        ("echo $#{B.v}", Quoting.AFTER_DOLLAR),
        ('echo "$#{B.v}"', Quoting.AFTER_DOLLAR),
        ("echo $'a#{B.v}'", Quoting.DOLLAR_SINGLE_QUOTED),
        ("echo $((#{B.v} + 1))", Quoting.ARITHMETIC),
        ('echo "$(( 1 + "#{B.v}" ))"', Quoting.ARITHMETIC),
        ("(( #{B.v} > 1 )) && echo big", Quoting.ARITHMETIC),
        ("cat <<'EOF'\n#{B.v}\nEOF", Quoting.QUOTED_HERE_DOCUMENT),
        ('cat <<"EOF"\n#{B.v}\nEOF', Quoting.QUOTED_HERE_DOCUMENT),
        ("cat <<\\EOF\n#{B.v}\nEOF", Quoting.QUOTED_HERE_DOCUMENT),
        ("cat <<#{B.v}\nx\n#{B.v}", Quoting.HERE_DOCUMENT_DELIMITER),
        ("cat <<x\\#{B.v}\nx", Quoting.HERE_DOCUMENT_DELIMITER),
    ],
)
def test_where_no_quoting_makes_a_value_data_the_declaration_is_refused(command, quoting):
    (site,) = [site for site in scan(command).sites if site.quoting is not Quoting.COMMENT][:1]
    assert site.quoting is quoting
    assert quoting.refused
    error = refused(lambda: pk.Action("Deploy", pk.shell("true", command)))
    fields = [problem.field for problem in error.problems]
    assert fields[0] == "provider.commands[1]"
    message = error.problems[0].message
    assert message.startswith(f"#{{B.v}} stands {quoting.value}: ")
    assert "\n" not in message


def test_text_that_ends_inside_a_quote_is_refused_when_it_holds_a_reference():
    pk.Action("A", pk.shell("echo 'a", "b'"))  # no reference: the shell's business
    error = refused(lambda: pk.Action("A", pk.shell("echo #{variables.v} 'a", "b")))
    (problem,) = error.problems
    assert problem.field == "provider.commands[0]"
    assert "single-quoted string opened at character 21 of commands[0]" in problem.message


def test_a_quote_may_span_commands_they_run_as_one_script():
    safe = pass_as_data(["echo 'a", "#{B.v}' #{B.v}"])
    assert safe.commands == ("echo 'a", '\'"${PK_REF_B_v}"\'\' "${PK_REF_B_v}"')


def test_env_names_starting_with_pk_ref_are_pipelinekits():
    error = refused(lambda: pk.Action("A", pk.shell("true", env={"PK_REF_X": "1"})))
    assert [problem.field for problem in error.problems] == ["provider.env"]
    assert "PK_REF_" in error.problems[0].message


def test_the_scanner_finds_exactly_the_references_resolution_would_substitute():
    @given(st.text(alphabet="#{}.ab$'\"\\`()<-\n #;EOF[]=:v", max_size=60))
    @settings(max_examples=300, deadline=None)
    def check(text):
        found = scan(text)
        substituted = []
        resolve(text, lambda reference: substituted.append(reference) or "")
        assert [site.reference for site in found.sites] == substituted
        ends = [0, *[end for site in found.sites for end in (site.start, site.end)], len(text)]
        assert ends == sorted(ends)

    check()


# -- any value runs as the same command: real shells ---------------------------------------------

SHELLS = [shell for shell in ("/bin/sh", "/bin/bash") if Path(shell).exists()]

#: (command template, what it prints for a value); ``R`` stands for the reference. Each prints
#: its result followed by a NUL, so many run in one shell.
CONTEXTS = [
    ("printf '%s\\0' R", lambda v: v),
    ('printf "%s\\0" "R"', lambda v: v),
    ("printf '%s\\0' 'R'", lambda v: v),
    ("printf '%s\\0' a-R-b", lambda v: f"a-{v}-b"),
    ("printf '%s\\0' \"a R b\"", lambda v: f"a {v} b"),
    ("printf '%s\\0' 'a R b'", lambda v: f"a {v} b"),
    ("printf '%s\\0' x'a R'\"b R\"R", lambda v: f"xa {v}b {v}{v}"),
    ("printf '%s\\0' \"\\R\"", lambda v: f"\\{v}"),
    ("printf '%s\\0' \"$(printf '%s.' R)\"", lambda v: f"{v}."),
    ("printf '%s\\0' \"`printf '%s.' R`\"", lambda v: f"{v}."),
    ("printf '%s\\0' \"${PK_UNSET_X:-R}\"", lambda v: v),
    ("printf '%s\\0' ${PK_UNSET_X:-R}", lambda v: v),
    ("printf '%s\\0' \"${PK_UNSET_X:-'R'}\"", lambda v: f"'{v}'"),  # quotes are characters here
    (
        'P=R-tail; printf \'%s\\0\' "${P#\'R\'}" "${P#R}" "${P%-tail}"',
        lambda v: f"-tail\0-tail\0{v}",
    ),
    ("X=R; printf '%s\\0' \"$X\"", lambda v: v),
    ("cat <<EOF\nR\nEOF\nprintf '\\0'", lambda v: f"{v}\n"),
    ("cat <<-EOF\n\t<R>\n\tEOF\nprintf '\\0'", lambda v: f"<{v}>\n"),
    ("printf '%s\\0' R # and R in a comment", lambda v: v),
    ("printf '%s\\0' R#R", lambda v: f"{v}#{v}"),  # a '#' inside a word starts no comment
    ("printf '%s\\0' \\\nR", lambda v: v),  # after a line continuation
    ("x=$(cat <<EOF\nR\nEOF\n); printf '%s\\0' \"$x\"", lambda v: v.rstrip("\n")),
    ("cat <<EOF; printf '%s\\0' R\n<R>\nEOF", lambda v: f"<{v}>\n{v}"),
]

NASTY = [
    "",
    " ",
    "x; touch pwned #",
    "$(touch pwned)",
    "`touch pwned`",
    "'; touch pwned; '",
    '"; touch pwned; "',
    "\\",
    "\\'",
    '\\"',
    "a\nb",
    "\nEOF\ntouch pwned\n",
    "*",
    "${HOME}",
    "$PK_REF_variables_v0",
    "#{variables.v1}",
    "-n",
    "%s%d",
    "é ü 中 🎉",
    "\t",
    "}",
    "'\"'\"'",
    # Harmless as data; code where bash evaluates a value as arithmetic or as a variable name.
    "a[$(touch pwned)]",
    "a[`touch pwned`]",
    "1+a[$(touch pwned)]",
]

values = st.one_of(
    st.sampled_from(NASTY),
    st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\0"), max_size=20),
    st.lists(st.sampled_from(NASTY), max_size=4).map("".join),
)


#: bash's own syntax near where it evaluates values, with the reference where it is data.
BASH_CONTEXTS = [
    ("[[ R == R && \"R\" = 'R' ]] && printf '%s\\0' same", lambda v: "same"),
    ("[ R = \"R\" ] && printf '%s\\0' same", lambda v: "same"),
    ("declare x=R; printf '%s\\0' \"$x\"", lambda v: v),
    ('f() { local x="R" y=R; printf \'%s\\0\' "$x$y"; }; f', lambda v: v + v),
    ("export PK_X=R; printf '%s\\0' \"$PK_X\"", lambda v: v),
    ("a=(R 'R'); a[2]=R; printf '%s\\0' \"${a[1]}${a[2]}\"", lambda v: v + v),
    ("declare -A m=([k]=R); m[j]=R; printf '%s\\0' \"${m[k]}${m[j]}\"", lambda v: v + v),
    ("printf -v x '%s' R; printf '%s\\0' \"$x\"", lambda v: v),
    ("IFS= read -r -d '' -p R x <<< R || :; printf '%s\\0' \"$x\"", lambda v: f"{v}\n"),
    ("printf '%s\\0' x[R] \"${PK_UNSET_X:+R}${PK_UNSET_X[0]:-R}\"", lambda v: f"x[{v}]\0{v}"),
    ("a=(1 2); printf '%s\\0' \"${a[@]:1}$[1]\" R", lambda v: f"21\0{v}"),
    ("[[ -n R || -z R ]]; printf '%s\\0' R", lambda v: v),
]

#: Where bash evaluates a value as an arithmetic expression or reads it as a variable name; there
#: quotes do not stop ``a[$(...)]`` from running. ``a`` is an indexed array (see below).
BASH_EVALUATES = [
    ("echo $[R]", "ARITHMETIC"),
    ('echo $[ 1 + "R" ]', "ARITHMETIC"),
    ("x=abc; echo ${x:R}", "ARITHMETIC"),
    ('x=abc; echo "${x:1:R}"', "ARITHMETIC"),
    ("x=abc; echo ${x: -R}", "ARITHMETIC"),
    ("set -- 1 2; echo ${@:R}", "ARITHMETIC"),
    ("echo ${a[R]}", "ARITHMETIC"),
    ('echo "${a["R"]:-none}"', "ARITHMETIC"),
    ("echo ${#a[R]} ${!a[R]}", "ARITHMETIC"),
    ("a[R]=1", "ARITHMETIC"),
    ('a["R"]+=1', "ARITHMETIC"),
    ("x=1 a[R]=2 true", "ARITHMETIC"),
    ("a=([R]=1)", "ARITHMETIC"),
    ("declare a[R]=1", "ARITHMETIC"),
    ("typeset -l a[R]=1", "ARITHMETIC"),
    ("f() { local a[R]=1; }; f", "ARITHMETIC"),
    ("readonly a[R]=1", "ARITHMETIC"),
    ("export a[R]=1", "ARITHMETIC"),
    ("declare -a b=(1 [R]=2)", "ARITHMETIC"),
    ("let x=R", "ARITHMETIC"),
    ('let "x=R"', "ARITHMETIC"),
    ("let 'x=R'", "ARITHMETIC"),
    ("builtin let x=R", "ARITHMETIC"),
    ("let x=$(printf %s R)", "ARITHMETIC"),
    ("[[ 1 -eq R ]]", "ARITHMETIC"),
    ("[[ R -lt 1 ]]", "ARITHMETIC"),
    ('[[ -n x && "R" -ge 1 ]]', "ARITHMETIC"),
    ("if [[ 1 -ne R ]]; then :; fi", "ARITHMETIC"),
    ("[[ 1 -gt R || R -le 1 ]]", "ARITHMETIC"),
    ("declare -i x=R", "ARITHMETIC"),
    ("f() { local -i x=R; }; f", "ARITHMETIC"),
    ("OPTIND=R", "ARITHMETIC"),  # bash's own integer variables
    ("f() { local OPTIND=R; }; f", "ARITHMETIC"),
    ("for((i=0;i<R;i++)); do :; done", "ARITHMETIC"),
    # An assignment to a name given the integer attribute anywhere in the text: a loop may run
    # the declaration first.
    ("declare -i n; n=R", "ARITHMETIC"),
    ("typeset -ia n; n+=R", "ARITHMETIC"),
    ("declare -gi n=0 m; m=R", "ARITHMETIC"),
    ("f() { local -i n; n=R; }; f", "ARITHMETIC"),
    ("declare -i n; declare n=R", "ARITHMETIC"),
    ("declare -ai n; n=(1 R)", "ARITHMETIC"),
    ("declare -ai n; n[0]=R", "ARITHMETIC"),
    ("declare -i n; n=$(printf %s R)", "ARITHMETIC"),
    ("for i in 1 2; do [ $i = 2 ] && n=R; declare -i n; done", "ARITHMETIC"),
    ("\\\na[R]=1", "ARITHMETIC"),  # after a line continuation
    ("x=1 \\\n  OPT\\\nIND=R", "ARITHMETIC"),
    ("[[ -v R ]]", "VARIABLE_NAME"),
    ("[ -v R ]", "VARIABLE_NAME"),
    ("test -v R", "VARIABLE_NAME"),
    ("declare R=1", "VARIABLE_NAME"),
    ('declare -g "R=1"', "VARIABLE_NAME"),
    ("f() { local R=1; }; f", "VARIABLE_NAME"),
    ("declare -n r=R; echo $r", "VARIABLE_NAME"),
    ("declare -n r; r=R; echo $r", "VARIABLE_NAME"),
    ("f() { local -n r; r=R; echo $r; }; f", "VARIABLE_NAME"),
    ("declare -gn r; declare 'r=R'; echo $r", "VARIABLE_NAME"),
    ("for i in 1 2; do [ $i = 2 ] && r=R && echo $r; declare -n r; done", "VARIABLE_NAME"),
    ("unset R", "VARIABLE_NAME"),
    ("unset -v 'R'", "VARIABLE_NAME"),
    ("read R <<< x", "VARIABLE_NAME"),
    ("read -r -p prompt R <<< x", "VARIABLE_NAME"),
    ("read 2>/dev/null R <<< x", "VARIABLE_NAME"),
    ("printf -v R %s x", "VARIABLE_NAME"),
    ('printf -v "R" %s x', "VARIABLE_NAME"),
    ('printf "-v" R %s x', "VARIABLE_NAME"),
]


def run_resolved(shell, commands, values, cwd):
    """Run ``commands`` resolved as the engine does, in a real ``shell``: stdout as bytes."""
    declared = pk.Commands(commands)
    resolved = declared.resolve_references(lambda reference: values[reference.name])
    env = {"PATH": os.environ["PATH"], **resolved.env}
    done = subprocess.run(
        [shell, "-c", resolved.script()],
        env=env,
        cwd=cwd,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


@pytest.mark.parametrize("shell", SHELLS)
def test_any_value_in_any_quoting_runs_as_the_same_command(shell, tmp_path):
    contexts = CONTEXTS + BASH_CONTEXTS if shell.endswith("bash") else CONTEXTS

    @given(st.lists(values, min_size=1, max_size=8))
    @settings(max_examples=25, deadline=None)
    def check(drawn):
        named = {f"v{index}": value for index, value in enumerate(drawn)}
        commands, expected = [], []
        for index, value in enumerate(drawn):
            for template, prints in contexts:
                commands.append(template.replace("R", f"#{{variables.v{index}}}"))
                expected.extend(prints(value).split("\0"))
        output = run_resolved(shell, commands, named, tmp_path)
        assert output.decode().split("\0")[:-1] == expected
        assert list(tmp_path.iterdir()) == []  # nothing touched

    check()


@pytest.mark.skipif("/bin/bash" not in SHELLS, reason="bash is not installed")
def test_where_bash_evaluates_a_value_it_is_refused_or_runs_as_data(tmp_path):
    # The real shell judges: whatever the lexer lets through must not run a value's a[$(...)].
    hostile = ["a[$(touch pwned)]", "a[`touch pwned`]", "1+a[$(touch pwned)]"]

    @given(st.lists(values, max_size=3))
    @settings(max_examples=10, deadline=None)
    def check(drawn):
        named = {f"v{index}": value for index, value in enumerate([*hostile, *drawn])}
        commands = []
        for name in named:
            for template, _ in BASH_EVALUATES:
                command = template.replace("R", f"#{{variables.{name}}}")
                if not pass_as_data([command]).problems:
                    commands.append(f"(a=(1); {command}) </dev/null >/dev/null 2>&1 || :")
        if commands:
            run_resolved("/bin/bash", commands, named, tmp_path)
        assert list(tmp_path.iterdir()) == []  # nothing touched

    check()


@pytest.mark.parametrize(("template", "quoting"), BASH_EVALUATES)
def test_where_bash_evaluates_a_value_the_declaration_is_refused(template, quoting):
    command = template.replace("R", "#{B.v}")
    expected = getattr(Quoting, quoting)
    assert [site.quoting for site in scan(command).sites] == [expected] * command.count("#{B.v}")
    error = refused(lambda: pk.Action("Deploy", pk.shell(command)))
    message = error.problems[0].message
    assert error.problems[0].field == "provider.commands[0]"
    assert message.startswith(f"#{{B.v}} stands {expected.value}: ")
    assert "\n" not in message


def test_the_script_that_runs_never_holds_a_value():
    commands = [template.replace("R", "#{variables.v}") for template, _ in CONTEXTS]

    @given(values, values)
    @settings(max_examples=50, deadline=None)
    def check(one, other):
        declared = pk.Commands(commands)
        first = declared.resolve_references(lambda _: one)
        second = declared.resolve_references(lambda _: other)
        assert first.script() == second.script()
        assert first.env == {"PK_REF_variables_v": one}

    check()


# -- at run time ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("a\0b", "the value of #{M.v} holds a NUL character, which no environment variable can"),
        (
            "é" * 66_000,  # within an output variable's limit, too long for one environment entry
            (
                "the value of #{M.v} is 132,011 bytes as an environment variable; one may be at "
                "most 131,071 bytes (Linux's MAX_ARG_STRLEN): pass large values in a file or an "
                "artifact"
            ),
        ),
    ],
)
async def test_a_value_no_environment_can_hold_fails_the_action_naming_the_reference(
    workdir, value, error
):
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage("A", [pk.Action("Make", pk.python(lambda ctx: {"v": value}), namespace="M")]),
            pk.Stage("B", [pk.Action("Use", pk.shell("echo #{M.v}"))]),
        ],
    )
    result = await pk.arun(pipeline, workdir=workdir)
    assert result.actions["B.Use"].error == error


async def test_references_in_env_and_shell_are_substituted_they_are_data_already(workdir):
    action = pk.Action(
        "A",
        pk.Commands(  # noqa: S604 - the shell field is what this test is about
            ['printf "%s|%s|%s" "$V" "$W" #{variables.v} > "$PK_OUTPUT_out/x"'],
            env={"V": "<#{variables.v}>"},
            shell=["env", "W=#{variables.v}", "/bin/sh", "-c"],  # an argument: data too
        ),
        outputs=["out"],
    )
    pipeline = one(action, variables=[pk.Variable("v", default="a b;c")])
    result = await pk.arun(pipeline, workdir=workdir)
    assert result.succeeded, result.actions["S.A"].error
    assert (result.actions["S.A"].outputs["out"] / "x").read_text() == "<a b;c>|a b;c|a b;c"


def test_a_provider_that_resolves_its_own_references_is_asked_by_its_protocol():
    @attrs.frozen
    class Own:
        text: str

        async def run(self, ctx):
            pass

        def resolve_references(self, lookup):
            return Own(f"<{lookup(Reference('variables', 'v'))}>")

    @attrs.frozen
    class Plain:
        text: str

        async def run(self, ctx):
            pass

    values = {"variables.v": "1"}

    def lookup(reference):
        return values[f"{reference.namespace}.{reference.name}"]

    assert isinstance(Own("x"), ResolvesReferences)
    assert isinstance(pk.shell("x"), ResolvesReferences)
    assert not isinstance(Plain("x"), ResolvesReferences)
    assert with_references_resolved(Own("#{variables.v}"), lookup) == Own("<1>")
    assert with_references_resolved(Plain("a #{variables.v}"), lookup) == Plain("a 1")


# -- pipelinekit validate ------------------------------------------------------------------------

VALIDATED = """
import pipelinekit as pk

pipeline = pk.Pipeline("demo", [
    pk.Stage("Build", [pk.Action("Compile", pk.shell(
        "./deploy.sh #{variables.branch}",
        "echo 'on #{variables.branch}' # #{variables.branch}",
    ))]),
], variables=[pk.Variable("branch", default="main")])
"""


def test_validate_says_how_each_reference_reaches_the_shell(tmp_path, cli):
    path = tmp_path / "pipeline.py"
    path.write_text(VALIDATED)
    status, out, err = cli("validate", str(path))
    assert (status, err) == (0, "")
    first, second, third = out.splitlines()[1:]
    reference, name = "Build.Compile commands[{}]: #{{variables.branch}}", "PK_REF_variables_branch"
    assert first == f'{reference.format(0)} is passed as "${{{name}}}" (shell-safe)'
    assert (
        second
        == f"{reference.format(1)} is passed as '\"${{{name}}}\"' inside single quotes (shell-safe)"
    )
    assert third == f"{reference.format(1)} is in a comment: never run, left as it is"


def test_validate_states_the_rule_when_it_rewrites_nothing(tmp_path, cli):
    path = tmp_path / "pipeline.py"
    path.write_text(VALIDATED.replace("#{variables.branch}", "main"))
    status, out, _ = cli("validate", str(path))
    assert status == 0
    (rule,) = out.splitlines()[1:]
    assert rule.startswith("note: the commands hold no #{...} reference; ")
    assert "as data (an environment variable), never as shell text" in rule


def test_validate_refuses_where_bash_evaluates_a_value_it_never_calls_it_shell_safe(tmp_path, cli):
    path = tmp_path / "pipeline.py"
    path.write_text(
        VALIDATED.replace("./deploy.sh #{variables.branch}", "[[ #{variables.branch} -eq 1 ]]")
    )
    status, out, err = cli("validate", str(path))
    assert (status, out) == (2, "")
    assert "field 'provider.commands[0]'" in err
    assert "#{variables.branch} stands inside an arithmetic expression" in err
    assert "shell-safe" not in err


def test_validate_refuses_a_reference_no_quoting_can_pass_as_data(tmp_path, cli):
    path = tmp_path / "pipeline.py"
    path.write_text(
        VALIDATED.replace("./deploy.sh #{variables.branch}", "echo $((#{variables.branch}))")
    )
    status, out, err = cli("validate", str(path))
    assert (status, out) == (2, "")
    assert "field 'provider.commands[0]'" in err
    assert "#{variables.branch} stands inside an arithmetic expression" in err


async def test_an_environment_too_large_to_start_the_commands_is_a_clear_failure(
    workdir, monkeypatch
):
    # Under the limits where declared, but the inherited environment fills the rest.
    for index in range(os.sysconf("SC_ARG_MAX") // 100_000 + 1):
        monkeypatch.setenv(f"PK_TEST_FILLER_{index}", "x" * 100_000)
    result = await pk.arun(one(pk.Action("A", pk.shell("true"))), workdir=workdir)
    error = result.actions["S.A"].error
    assert error.startswith("the commands could not start: their arguments and environment take ")
    assert "(SC_ARG_MAX)" in error
    assert "Argument list too long" not in error


def test_commands_never_validated_still_refuse_to_run_what_cannot_be_data():
    # A declaration built outside an Action (the registry builds one from a configuration).
    commands = pk.Commands(["echo $((#{variables.n} + 1))"])
    with pytest.raises(pk.ActionFailed, match=r"commands\[0\]: #\{variables.n\} stands inside an"):
        commands.resolve_references(lambda _: "1")
