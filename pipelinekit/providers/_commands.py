"""The ``Commands`` provider declaration: shell commands, like CodePipeline's Commands action."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, ClassVar

import anyio
import attrs

from pipelinekit._model._declarations import ActionTypeId, Category, Owner, to_duration
from pipelinekit._model._frozendict import FrozenDict, to_frozendict, to_tuple

if TYPE_CHECKING:
    from pipelinekit.providers._context import ActionContext

__all__ = ["Commands", "shell"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


@attrs.frozen
class Commands:
    """Run shell commands, one after another, in the action's working directory.

    Maps to CodePipeline's ``Compute/AWS/Commands/1`` action. ``#{...}`` references in the
    commands are resolved before the action starts. Values that must not be read by a shell
    (user input, branch names from webhooks) belong in ``env``: each entry becomes an environment
    variable of the commands, its value resolved but never parsed as shell text, so commands read
    it as ``"$NAME"``. ``output_variables`` names environment variables whose values at the end
    become the action's output variables. On timeout or cancellation the whole process group
    gets SIGTERM, then SIGKILL after ``grace_period``.
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
        await ctx.run_command(
            [*self.shell, self.script()],
            env=env,
            grace_period=self.grace_period.total_seconds(),
        )
        if self.output_variables:
            raw = await anyio.Path(variables_file).read_bytes()
            exported = dict(
                item.split("=", 1) for item in raw.decode("utf-8", "replace").split("\0") if item
            )
            for name in self.output_variables:
                if name not in exported:
                    ctx.log.warning("output variable not set by the commands", name=name)
                ctx.set_variable(name, exported.get(name, ""))

    def script(self) -> str:
        """The shell script: ``set -e``, the commands, then the export of output variables."""
        lines = ["set -e", *self.commands]
        # Names are checked to be environment variable names, so they are safe here.
        lines.extend(
            f'if [ "${{{name}+set}}" = set ]; then '
            f'printf "%s\\0" "{name}=${{{name}}}" >> "$PK_VARIABLES_FILE"; fi'
            for name in self.output_variables
        )
        return "\n".join(lines) + "\n"

    def problems(self) -> Iterable[tuple[str, str]]:
        """Broken rules of this declaration, as (field, message) pairs."""
        if self._plainly_valid():
            return
        if isinstance(self.commands, str) or not isinstance(self.commands, tuple):
            yield "commands", "must be a list of command strings, e.g. Commands(['make build'])"
            return
        if not self.commands:
            yield "commands", "needs at least one command"
        for index, command in enumerate(self.commands):
            if not isinstance(command, str) or not command.strip():
                yield f"commands[{index}]", "must be a non-empty string"
            elif "\x00" in command:
                yield f"commands[{index}]", "contains a NUL character, which no shell accepts"
        yield from _check_names("output_variables", self.output_variables)
        if not isinstance(self.env, Mapping):
            yield "env", "must be a mapping of environment variable names to values"
        else:
            yield from _check_names("env", tuple(self.env))
            for key, value in self.env.items():
                if not isinstance(value, str):
                    yield f"env[{key!r}]", f"must be a string (got {value!r})"
        if not isinstance(self.grace_period, timedelta) or self.grace_period < timedelta(0):
            yield "grace_period", "must be a timedelta of zero or more"
        if not isinstance(self.shell, tuple) or not self.shell:
            yield "shell", "must be a non-empty list such as ['/bin/sh', '-c']"

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
            and self.grace_period >= timedelta(0)
            and type(self.shell) is tuple
            and self.shell
        ):
            return False
        for command in commands:
            if type(command) is not str or "\x00" in command or not command.strip():
                return False
        return True


def _check_names(field: str, names: object) -> Iterable[tuple[str, str]]:
    if not isinstance(names, tuple):
        yield field, "must be a list of environment variable names"
        return
    for name in names:
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            message = (
                f"{name!r} is not an environment variable name: use letters, digits and '_', "
                "not starting with a digit, at most 128 characters"
            )
            yield field, message


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
