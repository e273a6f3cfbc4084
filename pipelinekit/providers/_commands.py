"""The ``Commands`` provider declaration: shell commands, like CodePipeline's Commands action."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import anyio
import attrs

from pipelinekit._model._declarations import ActionTypeId, Category, Owner, to_duration
from pipelinekit._model._frozendict import FrozenDict, to_frozendict, to_tuple
from pipelinekit._model._limits import MAX_TIMEOUT, MAX_VALUE_BYTES, duration_problem
from pipelinekit._model._variables import Reference, resolve
from pipelinekit.exceptions import ActionFailed
from pipelinekit.providers._action_files import FileRead, read_regular
from pipelinekit.providers._failure import CommandFailed, CommandFailure
from pipelinekit.providers._junit import TestReport, pattern_problem, read_reports
from pipelinekit.providers._reference_variables import PREFIX as _RESERVED_PREFIX

if TYPE_CHECKING:
    from pipelinekit._model._pipeline import Pipeline
    from pipelinekit.providers._context import ActionContext
    from pipelinekit.providers._shell_text import SafeCommands

__all__ = ["MAX_ARGUMENT_BYTES", "Commands", "reference_notes", "shell"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
#: The starts of the shell variable names pipelinekit uses: no output variable may have one.
_OWN_PREFIXES = ("__pk_", "PK_")
#: The longest one argument (the script) or one environment entry may be: Linux's
#: MAX_ARG_STRLEN (32 pages of 4 KiB), the tightest of the common systems. It is applied on every
#: system, so commands that pass here also start on a Linux runner.
MAX_ARGUMENT_BYTES = 32 * 4096


def _argument_space() -> int:
    """What a command's arguments and environment may take together on this system."""
    try:
        return os.sysconf("SC_ARG_MAX")
    except (AttributeError, ValueError, OSError):  # no sysconf, or no such name here
        return 256 * 1024  # POSIX's smallest ARG_MAX is 4096; real systems give 256 KiB or more


_ARGUMENT_SPACE = _argument_space()


@attrs.frozen
class Commands:
    """Run shell commands, one after another, in the action's working directory.

    Maps to CodePipeline's ``Compute/AWS/Commands/1`` action. The commands run as one ``sh``
    script (``set -e``): ``[*shell, script]``.

    A ``#{...}`` reference in a command never becomes shell text: it is replaced with the
    expansion of an environment variable (``PK_REF_<namespace>_<name>``) that holds its value,
    quoted for where it stands (``"${PK_REF_x}"`` unquoted, ``${PK_REF_x}`` inside double quotes
    or a here-document, ``'"${PK_REF_x}"'`` inside single quotes), so any value runs as the same
    command. Where no quoting makes a value data the declaration is refused: after a backslash or
    a ``$``, inside ``$'...'``, in a here-document with a quoted delimiter, and where bash
    evaluates a value as arithmetic (``$((...))``, array subscripts, ``let``, ``[[ -eq ]]``...) or
    as a variable name (``[[ -v ]]``, ``unset``, ``read``...), since there it runs the commands
    in a value like ``a[$(...)]``. References in comments are left as they are. A program that
    reads its argument as code (``eval``, ``sh -c``, ``awk``) still reads the value as code, and
    so does bash where it evaluates a variable holding the value (``n=#{x}; echo $((n))``): pass
    such values through checks.

    ``env`` entries become environment variables of the commands, their references resolved (the
    values are data already). ``output_variables`` names shell variables whose values at the end
    become the action's output variables: one the commands did not set fails the action, unless
    it is among ``optional_output_variables`` (then it is ``""``, with a warning). On timeout or
    cancellation the whole process group gets SIGTERM, then SIGKILL after ``grace_period``.

    When a command fails, the action fails with ``CommandFailed``: which command (its text and
    ``commands[index]``), its exit status or the signal that killed it, and the last lines of
    stdout and stderr as they came, the command shown as declared. Before each command the
    script notes its index in a file of the working folder, keeping ``$?`` and ``$_`` as the
    command before left them, so the commands see what they would see without it; a note goes
    only where the commands so far form a complete program (commands inside one quote,
    here-document, compound command or array, or continued by ``&&``, ``|`` or a backslash, count as
    one). Output variables are handed over from an EXIT trap, so ``exit`` anywhere keeps them.

    ``reports`` names JUnit XML files (globs relative to the working folder) read when the
    commands end, failed or not: their counts and failed tests go into the result and events.
    A Markdown summary written to ``$PK_SUMMARY`` shows in the run's summary.
    ``idempotent=True`` says running the commands again is safe: a resumed execution runs an
    action interrupted by a crash again instead of failing it.

    Sizes are checked where it is declared: the script may be at most 131,071 bytes (one argument
    of a command on Linux, ``MAX_ARGUMENT_BYTES`` with its NUL), each command and each ``env``
    value at most ``MAX_VALUE_BYTES``; a NUL character is refused in commands and in ``env``.
    Values known only at run time are checked when the action starts.
    """

    action_type: ClassVar[ActionTypeId] = ActionTypeId(Category.COMPUTE, Owner.AWS, "Commands", "1")

    commands: tuple[str, ...] = attrs.field(converter=to_tuple)
    output_variables: tuple[str, ...] = attrs.field(default=(), converter=to_tuple, kw_only=True)
    #: Output variables the commands may leave unset (they are ``""`` then, with a warning).
    optional_output_variables: tuple[str, ...] = attrs.field(
        default=(), converter=to_tuple, kw_only=True
    )
    env: FrozenDict = attrs.field(factory=FrozenDict, converter=to_frozendict, kw_only=True)
    grace_period: timedelta = attrs.field(
        default=timedelta(seconds=10), converter=to_duration, kw_only=True
    )
    #: The shell that runs the commands: ``[*shell, script]``.
    shell: tuple[str, ...] = attrs.field(
        default=("/bin/sh", "-c"), converter=to_tuple, kw_only=True
    )
    #: JUnit XML files the commands write (globs relative to the working folder).
    reports: tuple[str, ...] = attrs.field(default=(), converter=to_tuple, kw_only=True)
    #: Whether running the commands again after a crash is safe (a resume runs them again).
    idempotent: bool = attrs.field(default=False, kw_only=True)

    async def run(self, ctx: ActionContext) -> None:
        """Run the commands in one shell session; stop at the first that fails."""
        variables_file = ctx.workdir_path / _VARIABLES_FILE
        command_file = ctx.workdir_path / _COMMAND_FILE
        env = dict(self.env)
        env["PK_VARIABLES_FILE"] = str(variables_file)
        env["PK_COMMAND_FILE"] = str(command_file)
        script, groups = _instrumented(self.commands, self._exported())
        argv = [*self.shell, script]
        try:
            result = await ctx.run_command(
                argv, env=env, grace_period=self.grace_period.total_seconds(), check=False
            )
        except OSError as error:
            if error.errno != errno.E2BIG:
                raise
            size = _entries_size(argv) + _entries_size(
                f"{key}={value}" for key, value in {**os.environ, **env}.items()
            )
            msg = (
                f"the commands could not start: their arguments and environment take {size:,} "
                f"bytes with the inherited environment, over this system's {_ARGUMENT_SPACE:,} "
                "(SC_ARG_MAX); make the environment or the values passed smaller"
            )
            raise ActionFailed(msg) from None
        exported = self._exported()
        failed = result.returncode != 0
        # One trip to the log's thread for the small files the commands left: the note of
        # the failing command, the output variables, and the summary (kept by the context).
        note, variables = await ctx.read_with_summary(
            partial(
                _left_files,
                command_file if failed else None,
                variables_file if exported else None,
            )
        )
        reports: list[TestReport] = []
        if self.reports:  # up to 100 files of 32 MiB: anyio's pool, not the log's thread
            reports = await anyio.to_thread.run_sync(
                read_reports, ctx.workdir_path, self.reports, ctx.masker.mask
            )
        failure = None
        if failed:
            failure = self._failure(result.returncode, result.output_tail, note, groups, ctx)
        if self.reports:
            self._log_reports(ctx, reports)
        if failure is not None:
            raise CommandFailed(failure)
        if exported:
            self._set_variables(ctx, variables)

    def _exported(self) -> tuple[str, ...]:
        required = self.output_variables
        return required + tuple(n for n in self.optional_output_variables if n not in required)

    def _failure(
        self,
        returncode: int,
        tail: tuple[str, ...],
        note: FileRead,
        groups: list[tuple[int, int]],
        ctx: ActionContext,
    ) -> CommandFailure:
        """Which command failed (from the index the script noted), how, and the output's end.

        The command is shown as it was declared (``#{...}`` references as written), masked.
        """
        if note.problem is not None:
            ctx.log.warning("command notes not read", path=_COMMAND_FILE, why=note.problem)
        try:
            text = (note.data or b"").decode("utf-8", "replace")
            group = int(text.split("\n", 1)[0])  # the last note (see _PRELUDE)
        except ValueError:
            group = -1  # the shell never got to the first command (or the file was removed)
        count = len(self.commands)
        mask = ctx.masker.mask
        if not 0 <= group < len(groups):
            return CommandFailure.of_returncode(
                returncode, from_shell=True, output_tail=tail, mask=mask
            )
        first, last = groups[group]
        declared = ctx.declared_provider
        written = (
            declared.commands
            if isinstance(declared, Commands) and len(declared.commands) == count
            else self.commands
        )
        return CommandFailure.of_returncode(
            returncode,
            from_shell=True,
            output_tail=tail,
            command="\n".join(written[first : last + 1]),
            index=first,
            count=count,
            mask=mask,
        )

    @staticmethod
    def _log_reports(ctx: ActionContext, reports: list[TestReport]) -> None:
        ctx.reports.extend(reports)
        for report in reports:
            if report.problem is not None:
                ctx.log.warning("test report not read", report=report.path, why=report.problem)
            else:
                ctx.log.info("test report", report=report.describe())

    def _set_variables(self, ctx: ActionContext, read: FileRead) -> None:
        if read.problem is not None:
            ctx.log.warning("output variables not read", path=_VARIABLES_FILE, why=read.problem)
        raw = read.data or b""  # none: the commands set none of them (written on the first)
        exported = dict(
            item.split("=", 1) for item in raw.decode("utf-8", "replace").split("\0") if "=" in item
        )
        missing = [name for name in self.output_variables if name not in exported]
        if missing:
            names = ", ".join(repr(name) for name in missing)
            example = missing[0]
            many = len(missing) > 1
            msg = (
                f"the commands did not set the output variable{'s' if many else ''} "
                f"{names}: set {'them' if many else 'it'} in a command "
                f"(`{example}=...` or `export {example}=...`), or declare "
                f"{'them' if many else 'it'} optional "
                f"(optional_output_variables=[{', '.join(repr(name) for name in missing)}]); "
                "or the commands replaced the EXIT trap / ran exec (pipelinekit hands the "
                "variables over from its EXIT trap)"
            )
            if read.problem is not None:
                msg += f"; the file of output variables was not read: {read.problem}"
            raise ActionFailed(msg)
        for name in self._exported():
            if name not in exported:
                ctx.log.warning("optional output variable not set by the commands", name=name)
            ctx.set_variable(name, exported.get(name, ""))

    def script(self) -> str:
        """The shell script: ``set -e``, the commands, then the export of output variables.

        Before each command it notes the command's index in ``$PK_COMMAND_FILE`` (see the
        class's docstring).
        """
        return _instrumented(self.commands, self._exported())[0]

    def resolve_references(self, lookup: Callable[[Reference], str]) -> Commands:
        """The commands to run: each reference in them an environment variable holding its value.

        References in ``env`` and ``shell`` are replaced by their values (both are data: the
        values of environment variables and the arguments of the shell).
        """
        safe = _pass_as_data(self.commands)
        if safe.problems:  # refused where declared; here for one built another way
            index, message = safe.problems[0]
            msg = f"commands[{index}]: {message}"
            raise ActionFailed(msg)
        env = {key: resolve(value, lookup) for key, value in self.env.items()}
        carried = {name: reference.text for name, reference in safe.variables}
        for name, reference in safe.variables:
            env[name] = lookup(reference)
        for key, value in env.items():
            # What is known only now is checked now, naming what the person wrote.
            what = f"the value of {carried[key]}" if key in carried else f"env[{key!r}]"
            if "\0" in value:
                msg = f"{what} holds a NUL character, which no environment variable can"
                raise ActionFailed(msg)
            if (size := _bytes(f"{key}={value}")) >= MAX_ARGUMENT_BYTES:
                msg = (
                    f"{what} is {size:,} bytes as an environment variable; one may be at most "
                    f"{MAX_ARGUMENT_BYTES - 1:,} bytes (Linux's MAX_ARG_STRLEN): pass large "
                    "values in a file or an artifact"
                )
                raise ActionFailed(msg)
        return attrs.evolve(
            self,
            commands=safe.commands,
            env=env,
            shell=tuple(resolve(part, lookup) for part in self.shell),
        )

    def problems(self) -> Iterable[tuple[str, str]]:
        """Broken rules of this declaration, as (field, message) pairs."""
        if self._plainly_valid():
            return
        if isinstance(self.commands, str) or not isinstance(self.commands, tuple):
            yield "commands", "must be a list of command strings, e.g. Commands(['make build'])"
            return
        if not self.commands:
            yield "commands", "needs at least one command"
        commands_valid = True
        for index, command in enumerate(self.commands):
            if isinstance(command, list | tuple):
                listed = ", ".join(repr(item) for item in command[:3])
                more = ", ..." if len(command) > 3 else ""  # noqa: PLR2004 - a short example
                message = (
                    f"is a list; pass commands as separate arguments: pk.shell({listed}{more}) "
                    "(or pk.shell(*commands))"
                )
                yield f"commands[{index}]", message
                commands_valid = False
            elif not isinstance(command, str) or not command.strip():
                yield f"commands[{index}]", "must be a non-empty string"
                commands_valid = False
            elif "\x00" in command:
                yield f"commands[{index}]", "contains a NUL character, which no shell accepts"
                commands_valid = False
        names_valid = yield from self._check_options()
        env_valid = isinstance(self.env, Mapping)
        if not env_valid:
            yield "env", "must be a mapping of environment variable names to values"
        else:
            env_valid = yield from _check_names("env", tuple(self.env), reserved=True)
            env_valid = (yield from _check_env(self.env)) and env_valid
        grace = duration_problem(self.grace_period, zero=True)
        if grace is not None:
            yield "grace_period", grace
        shell_valid = isinstance(self.shell, tuple) and bool(self.shell)
        if not shell_valid:
            yield "shell", "must be a non-empty list such as ['/bin/sh', '-c']"
        if commands_valid and names_valid:
            yield from self._check_text(check_space=env_valid and shell_valid)

    def _check_options(self) -> Generator[tuple[str, str], None, bool]:
        """Problems of the output variables, reports and idempotent; whether the names are valid."""
        names_valid = yield from _check_names("output_variables", self.output_variables)
        if self.optional_output_variables != ():  # most declare none: nothing to check
            names_valid = (
                yield from _check_names("optional_output_variables", self.optional_output_variables)
            ) and names_valid
        if names_valid and self.optional_output_variables:
            both = sorted(set(self.output_variables) & set(self.optional_output_variables))
            if both:
                message = (
                    f"{', '.join(map(repr, both))} also in output_variables: a variable is "
                    "either required (output_variables) or optional, not both"
                )
                yield "optional_output_variables", message
        if not isinstance(self.reports, tuple):
            yield "reports", "must be a list of globs such as ['junit.xml', 'reports/*.xml']"
        else:
            for index, pattern in enumerate(self.reports):
                if (problem := pattern_problem(pattern)) is not None:
                    yield f"reports[{index}]", problem
        if not isinstance(self.idempotent, bool):
            yield "idempotent", f"must be True or False (got {self.idempotent!r})"
        return names_valid

    def _check_text(self, *, check_space: bool) -> Iterable[tuple[str, str]]:
        """References the shell cannot get as data, and the sizes the system allows."""
        commands = self.commands
        oversized = False
        sizes = [_bytes(command) for command in commands]
        for index, size in enumerate(sizes):
            if size > MAX_VALUE_BYTES:
                oversized = True
                message = (
                    f"is {size:,} bytes; the limit is {MAX_VALUE_BYTES:,} bytes "
                    "(MAX_VALUE_BYTES): put the commands in a script file and run that"
                )
                yield f"commands[{index}]", message
        if oversized:
            return  # the script's size would say the same again
        if any("#{" in command for command in commands):
            safe = _pass_as_data(commands)
            for index, message in safe.problems:
                yield f"commands[{index}]", message
            commands = safe.commands
            sizes = [_bytes(command) for command in commands]
        exported = self._exported()
        # Building the script costs more than all the other checks of a plain declaration:
        # a bound on its size settles the common case; the script is built only near a limit.
        bound = _script_bound(sizes, exported)
        if bound < MAX_ARGUMENT_BYTES and not (
            check_space and self._space_needed(bound) > _ARGUMENT_SPACE
        ):
            return
        script = _bytes(_instrumented(commands, exported)[0])
        if script >= MAX_ARGUMENT_BYTES:  # the terminating NUL counts too
            message = (
                f"the script is {script:,} bytes; one argument of a command may be at most "
                f"{MAX_ARGUMENT_BYTES - 1:,} bytes (Linux's MAX_ARG_STRLEN, "
                f"{MAX_ARGUMENT_BYTES:,} with its NUL): put the commands in a script file and "
                "run that"
            )
            yield "commands", message
        elif check_space and (size := self._space_needed(script)) > _ARGUMENT_SPACE:
            message = (
                f"the commands and env take {size:,} bytes; a command's arguments and "
                f"environment may take {_ARGUMENT_SPACE:,} bytes together on this system "
                "(SC_ARG_MAX): pass large values in files or artifacts"
            )
            yield "env", message

    def _space_needed(self, script: int) -> int:
        """What the arguments and environment take with a script of ``script`` bytes."""
        entries = [*self.shell, "x" * script]
        entries.extend(f"{key}={value}" for key, value in self.env.items())
        return _entries_size(entries)

    def _plainly_valid(self) -> bool:
        # The common shape, checked quickly; anything else gets the full, explaining checks.
        commands, env = self.commands, self.env
        if not (
            type(commands) is tuple
            and commands
            and not self.output_variables
            and not self.optional_output_variables
            and not self.reports
            and type(self.idempotent) is bool
            and type(env) is FrozenDict
            and not env
            and type(self.grace_period) is timedelta
            and timedelta(0) <= self.grace_period <= MAX_TIMEOUT
            and type(self.shell) is tuple
            and self.shell
        ):
            return False
        size = 0
        for command in commands:
            if (
                type(command) is not str
                or "\x00" in command
                or "#{" in command
                or not command.strip()
            ):
                return False
            size += len(command) + 1
        # Four bytes per character at most: well under the limit, no need to encode.
        return 4 * size < MAX_ARGUMENT_BYTES - 4096


def _check_names(
    field: str, names: object, *, reserved: bool = False
) -> Generator[tuple[str, str], None, bool]:
    """Problems of environment variable ``names``; returns whether there were none."""
    if not isinstance(names, tuple):
        yield field, "must be a list of environment variable names"
        return False
    valid = True
    for name in names:
        if isinstance(name, str) and "\x00" in name:
            # Named as the check of every declared value names a key, so it is reported once.
            where = f"{field} (a key)" if reserved else field
            valid = False
            yield where, f"{name!r} contains a NUL character, which no variable name can hold"
            continue
        elif not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            message = (
                f"{name!r} is not an environment variable name: use letters, digits and '_', "
                "not starting with a digit, at most 128 characters"
            )
        elif not reserved and name.startswith(_OWN_PREFIXES):
            message = (
                f"{name!r}: names starting with __pk_ or PK_ are reserved (pipelinekit's own "
                "shell variables, such as $PK_SUMMARY and the script's __pk_ functions); "
                "choose another name"
            )
        elif reserved and name.startswith(_RESERVED_PREFIX):
            message = (
                f"{name!r}: names starting with {_RESERVED_PREFIX} are pipelinekit's (they carry "
                "the values of #{...} references in the commands); choose another name"
            )
        else:
            continue
        valid = False
        yield field, message
    return valid


def _check_env(env: Mapping[str, object]) -> Generator[tuple[str, str], None, bool]:
    """Problems of the values of ``env``; returns whether there were none."""
    valid = True
    for key, value in env.items():
        field = f"env[{key!r}]"
        if not isinstance(value, str):
            yield field, f"must be a string (got {type(value).__name__})"
        elif "\x00" in value:
            yield field, "contains a NUL character, which no environment variable can hold"
        elif (size := _bytes(value)) > MAX_VALUE_BYTES:
            message = (
                f"is {size:,} bytes; the limit is {MAX_VALUE_BYTES:,} bytes (MAX_VALUE_BYTES): "
                "pass large data in a file or an artifact"
            )
            yield field, message
        else:
            continue
        valid = False
    return valid


#: The file in the working folder where the script notes the index of the running command.
_COMMAND_FILE = ".pk-command"
#: The file the EXIT trap hands the output variables over in (``name=value``, NUL-separated).
_VARIABLES_FILE = ".pk-output-variables"
#: The most of that file that is read: the values' limit, with room for names and separators.
_MAX_VARIABLES_BYTES = 2 * 122_880 + 64 * 1024


def _left_files(
    command_file: Path | None, variables_file: Path | None
) -> tuple[FileRead, FileRead]:
    """Read what the commands left (blocking, never for long): the last note, the variables.

    Only regular files are read, without blocking (see ``_action_files``): the commands may
    have left a FIFO at either path.
    """
    none = FileRead(None)
    note = read_regular(command_file, 64) if command_file is not None else none
    if variables_file is None:
        return note, none
    return note, read_regular(variables_file, _MAX_VARIABLES_BYTES)


#: The script starts with these, on the first command's line (so the shell's line numbers,
#: ``LINENO``, count from the first command). ``$_`` is kept after ``set -e`` (as a script
#: starting with ``set -e`` has it): each note hands it on.
#: ``__pk_at`` notes its argument in the file and returns the status it was called with ($? of
#: the command before), so the next command sees $? as it would without it; it is called as
#: `__pk_at N "$_" && : "$__pk_u"`, where a non-zero return stops nothing under `set -e` and
#: `$_` is left as the command before left it (the last argument of `:` or of `__pk_at`). Its
#: trace (`set -x`) goes to /dev/null with its stderr; a file it cannot write (a command removed
#: the folder) is not the commands' failure. The note is written over the one before (`1<>`:
#: opened without truncating it), not into a truncated file: truncating a written file makes
#: ext4 flush it when it is closed, which took ~0.2 ms a note, a third of the time of a `true`
#: action. The numbers only grow during a run, so a note covers the one before; the first line
#: is the last note (the rest is left over from an earlier attempt).
_PRELUDE = (
    "set -e; __pk_u=${_-}; __pk_f=$PK_COMMAND_FILE; "
    '__pk_at() { __pk_rc=$?; __pk_u=$2; printf \'%s\\n\' "$1" 1<>"$__pk_f" || :; '
    'return "$__pk_rc"; }; '
)
#: The output variables are handed over by an EXIT trap, installed before the commands run: a
#: command that calls `exit` (or fails under `set -e`) still hands them over. The shell's exit
#: status stays the commands' (a trap that does not call `exit` leaves it).
_TRAP = "trap '{ __pk_x; } 2>/dev/null' EXIT; "


def _note(group: int, previous: str = '"${_-}"') -> str:
    """The note of group ``group``, handing on ``$_`` (``previous``: what it was)."""
    return f'{{ __pk_at {group} {previous} && : "$__pk_u"; }} 2>/dev/null'


def _exports(names: Sequence[str]) -> str:
    """The function the EXIT trap calls: it hands over each output variable the commands set."""
    # Names are checked to be environment variable names (not pipelinekit's), so they are
    # safe here.
    body = "".join(
        f'if [ "${{{name}+set}}" = set ]; then '
        f'printf "%s\\0" "{name}=${{{name}}}" >> "$PK_VARIABLES_FILE" || :; fi; '
        for name in names
    )
    return f"__pk_x() {{ {body}}}; "


def _prelude(output_variables: Sequence[str]) -> str:
    if not output_variables:
        return _PRELUDE
    return _PRELUDE + _exports(output_variables) + _TRAP


def _script_bound(sizes: Sequence[int], output_variables: Sequence[str]) -> int:
    """At least the UTF-8 size of the script of commands of ``sizes`` bytes (never less).

    As if each command were a group, each note as long as the last one's.
    """
    note = len(_note(len(sizes), '"$__pk_u"')) + 2  # and "; "
    return len(_prelude(output_variables)) + sum(sizes) + len(sizes) * (1 + note) + note + 1


def _groups(commands: Sequence[str]) -> list[tuple[int, int]]:
    """The commands in groups that are complete programs (see ``note_groups``)."""
    if len(commands) == 1:
        return [(0, 0)]  # nothing to split: the lexer is not loaded for it
    # The lexer is loaded the first time several commands run or are checked.
    from pipelinekit.providers._shell_text import note_groups  # noqa: PLC0415

    return note_groups(commands)


def _instrumented(
    commands: Sequence[str], output_variables: Sequence[str]
) -> tuple[str, list[tuple[int, int]]]:
    r"""The script, and the commands each noted index stands for (first, last).

    A note goes before a command only where the commands before it form a complete program:
    not inside quotes, a here-document, a compound command (``if``, ``case``, ``{``, ``(``,
    loops, a function's body), an array, ``$(...)`` or ``[[ ]]``, nor after a command that
    goes on in the next one (``\``, ``&&``, ``||``, ``|``). There the commands count as one.
    The note goes on the line of the group's first command, so the shell's line numbers are
    the commands' own.
    """
    groups = _groups(commands)
    lines: list[str] = []
    for number, (first, last) in enumerate(groups):
        previous = '"$__pk_u"' if number == 0 else '"${_-}"'
        lines.append(f"{_note(number, previous)}; " + "\n".join(commands[first : last + 1]))
    if lines:
        lines[0] = _prelude(output_variables) + lines[0]
    # After the last command: the status it left is the script's (the note returns it).
    lines.append(_note(len(groups)))
    # A status noted after the last command (a failure under `set +e`) is the last group's.
    groups.append(groups[-1] if groups else (0, 0))
    return "\n".join(lines) + "\n", groups


def _pass_as_data(commands: Iterable[str]) -> SafeCommands:
    # The lexer is loaded the first time commands hold a reference: a file that only declares
    # a pipeline of plain commands does not pay for it.
    from pipelinekit.providers._shell_text import pass_as_data  # noqa: PLC0415

    return pass_as_data(tuple(commands))


def _bytes(text: str) -> int:
    """UTF-8 size of ``text`` (a lone surrogate counts as what the OS would get for it)."""
    return len(text.encode("utf-8", "surrogatepass"))


def _entries_size(entries: Iterable[str]) -> int:
    """What ``entries`` take of the argument space: each string, its NUL and its pointer."""
    return sum(_bytes(entry) + 1 + 8 for entry in entries)


def reference_notes(pipeline: Pipeline) -> list[str]:
    """For ``pipelinekit validate``: how each reference in commands reaches the shell.

    One line per reference, or one line with the rule when the commands hold none.
    """
    notes: list[str] = []
    has_commands = False
    for stage in pipeline.stages:
        for action in stage.actions:
            provider = action.provider
            if not isinstance(provider, Commands):
                continue
            has_commands = True
            if not any("#{" in command for command in provider.commands):
                continue
            notes.extend(
                f"{stage.name}.{action.name} commands[{passage.index}]: {passage.describe()}"
                for passage in _pass_as_data(provider.commands).passages
            )
    if not notes and has_commands:
        notes.append(
            "note: the commands hold no #{...} reference; one there would reach the shell as "
            "data (an environment variable), never as shell text"
        )
    return notes


def shell(
    *commands: str,
    env: Mapping[str, str] | None = None,
    output_variables: Iterable[str] = (),
    optional_output_variables: Iterable[str] = (),
    reports: Iterable[str] = (),
    idempotent: bool = False,
    grace_period: timedelta | float = timedelta(seconds=10),
) -> Commands:
    """A ``Commands`` provider running ``commands`` in order: ``pk.shell("make build")``.

    Each command is a separate argument: ``pk.shell("make", "make test")``.
    """
    return Commands(
        commands,
        env=env,
        output_variables=output_variables,
        optional_output_variables=optional_output_variables,
        reports=reports,
        idempotent=idempotent,
        grace_period=grace_period,
    )
