"""The ``Commands`` provider declaration: shell commands, like CodePipeline's Commands action."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Generator, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, ClassVar

import anyio
import attrs

from pipelinekit._model._declarations import ActionTypeId, Category, Owner, to_duration
from pipelinekit._model._frozendict import FrozenDict, to_frozendict, to_tuple
from pipelinekit._model._limits import MAX_TIMEOUT, MAX_VALUE_BYTES, duration_problem
from pipelinekit._model._variables import Reference, resolve
from pipelinekit.exceptions import ActionFailed
from pipelinekit.providers._reference_variables import PREFIX as _RESERVED_PREFIX

if TYPE_CHECKING:
    from pipelinekit._model._pipeline import Pipeline
    from pipelinekit.providers._context import ActionContext
    from pipelinekit.providers._shell_text import SafeCommands

__all__ = ["MAX_ARGUMENT_BYTES", "Commands", "reference_notes", "shell"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
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
    values are data already). ``output_variables`` names environment variables whose values at
    the end become the action's output variables. On timeout or cancellation the whole process
    group gets SIGTERM, then SIGKILL after ``grace_period``.

    Sizes are checked where it is declared: the script may be at most 131,071 bytes (one argument
    of a command on Linux, ``MAX_ARGUMENT_BYTES`` with its NUL), each command and each ``env``
    value at most ``MAX_VALUE_BYTES``; a NUL character is refused in commands and in ``env``.
    Values known only at run time are checked when the action starts.
    """

    action_type: ClassVar[ActionTypeId] = ActionTypeId(Category.COMPUTE, Owner.AWS, "Commands", "1")
    #: Running the same commands twice is not known to be safe.
    idempotent: ClassVar[bool] = False

    commands: tuple[str, ...] = attrs.field(converter=to_tuple)
    output_variables: tuple[str, ...] = attrs.field(default=(), converter=to_tuple, kw_only=True)
    env: FrozenDict = attrs.field(factory=FrozenDict, converter=to_frozendict, kw_only=True)
    grace_period: timedelta = attrs.field(
        default=timedelta(seconds=10), converter=to_duration, kw_only=True
    )
    #: The shell that runs the commands: ``[*shell, script]``.
    shell: tuple[str, ...] = attrs.field(
        default=("/bin/sh", "-c"), converter=to_tuple, kw_only=True
    )

    async def run(self, ctx: ActionContext) -> None:
        """Run the commands in one shell session; stop at the first that fails."""
        variables_file = ctx.workdir_path / ".pk-output-variables"
        env = dict(self.env)
        env["PK_VARIABLES_FILE"] = str(variables_file)
        argv = [*self.shell, self.script()]
        try:
            await ctx.run_command(argv, env=env, grace_period=self.grace_period.total_seconds())
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
        if self.output_variables:
            try:
                raw = await anyio.Path(variables_file).read_bytes()
            except FileNotFoundError:
                raw = b""  # the commands set none of them: the file is written on the first
            exported = dict(
                item.split("=", 1) for item in raw.decode("utf-8", "replace").split("\0") if item
            )
            for name in self.output_variables:
                if name not in exported:
                    ctx.log.warning("output variable not set by the commands", name=name)
                ctx.set_variable(name, exported.get(name, ""))

    def script(self) -> str:
        """The shell script: ``set -e``, the commands, then the export of output variables."""
        return _script(self.commands, self.output_variables)

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
            if not isinstance(command, str) or not command.strip():
                yield f"commands[{index}]", "must be a non-empty string"
                commands_valid = False
            elif "\x00" in command:
                yield f"commands[{index}]", "contains a NUL character, which no shell accepts"
                commands_valid = False
        names_valid = yield from _check_names("output_variables", self.output_variables)
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

    def _check_text(self, *, check_space: bool) -> Iterable[tuple[str, str]]:
        """References the shell cannot get as data, and the sizes the system allows."""
        commands = self.commands
        oversized = False
        for index, command in enumerate(commands):
            if (size := _bytes(command)) > MAX_VALUE_BYTES:
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
        script = _bytes(_script(commands, self.output_variables))
        if script >= MAX_ARGUMENT_BYTES:  # the terminating NUL counts too
            message = (
                f"the script is {script:,} bytes; one argument of a command may be at most "
                f"{MAX_ARGUMENT_BYTES - 1:,} bytes (Linux's MAX_ARG_STRLEN, "
                f"{MAX_ARGUMENT_BYTES:,} with its NUL): put the commands in a script file and "
                "run that"
            )
            yield "commands", message
        elif check_space:
            entries = [*self.shell, "x" * script]
            entries.extend(f"{key}={value}" for key, value in self.env.items())
            if (size := _entries_size(entries)) > _ARGUMENT_SPACE:
                message = (
                    f"the commands and env take {size:,} bytes; a command's arguments and "
                    f"environment may take {_ARGUMENT_SPACE:,} bytes together on this system "
                    "(SC_ARG_MAX): pass large values in files or artifacts"
                )
                yield "env", message

    def _plainly_valid(self) -> bool:
        # The common shape, checked quickly; anything else gets the full, explaining checks.
        commands, env = self.commands, self.env
        if not (
            type(commands) is tuple
            and commands
            and not self.output_variables
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


def _script(commands: Iterable[str], output_variables: Iterable[str]) -> str:
    lines = ["set -e", *commands]
    # Names are checked to be environment variable names, so they are safe here.
    lines.extend(
        f'if [ "${{{name}+set}}" = set ]; then '
        f'printf "%s\\0" "{name}=${{{name}}}" >> "$PK_VARIABLES_FILE"; fi'
        for name in output_variables
    )
    return "\n".join(lines) + "\n"


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
    grace_period: timedelta | float = timedelta(seconds=10),
) -> Commands:
    """A ``Commands`` provider running ``commands`` in order: ``pk.shell("make build")``."""
    return Commands(
        commands,
        env=env,
        output_variables=output_variables,
        grace_period=grace_period,
    )
