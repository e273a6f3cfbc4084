"""Source providers: a local directory (``LocalSource``) and a git repository (``GitSource``)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import anyio
import attrs

from pipelinekit._model._declarations import ActionTypeId, Category, Owner
from pipelinekit._model._frozendict import to_tuple
from pipelinekit.exceptions import ActionFailed

if TYPE_CHECKING:
    from pipelinekit.providers._context import ActionContext

__all__ = ["GitSource", "LocalSource", "content_hash"]

DEFAULT_EXCLUDE = (".git", "__pycache__", "*.pyc", ".pipelinekit", ".venv", ".nox")


def _single_output(ctx: ActionContext, kind: str) -> Path:
    if len(ctx.outputs) != 1:
        msg = f"{kind} writes exactly one output artifact; declare outputs=['name']"
        raise ActionFailed(msg)
    return next(iter(ctx.outputs.values()))


def content_hash(root: Path) -> str:
    """A SHA-256 over the relative paths, modes and contents of every file below ``root``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        relative = path.relative_to(root).as_posix()
        digest.update(relative.encode() + b"\0")
        if path.is_symlink():
            digest.update(b"link:" + str(path.readlink()).encode() + b"\0")
            continue
        digest.update(b"x" if os.access(path, os.X_OK) else b"-")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def _to_path_text(value: object) -> object:
    return str(value) if isinstance(value, os.PathLike) else value


@attrs.frozen
class LocalSource:
    """Copy a local directory into the action's output artifact.

    Files matching ``exclude`` (glob patterns, default: ``.git``, ``__pycache__``, ``*.pyc``,
    ``.pipelinekit``, ``.venv``, ``.nox``) are left out. Sets the output variable ``ContentHash``
    (SHA-256 of the copied tree) so later actions and caching can tell revisions apart.
    """

    action_type: ClassVar[ActionTypeId] = ActionTypeId(
        Category.SOURCE, Owner.CUSTOM, "LocalSource", "1"
    )
    idempotent: ClassVar[bool] = True
    input_artifacts: ClassVar[tuple[int, int]] = (0, 0)
    output_artifacts: ClassVar[tuple[int, int]] = (1, 1)
    #: The output variables it sets.
    output_variables: ClassVar[tuple[str, ...]] = ("ContentHash",)

    path: str = attrs.field(converter=_to_path_text)
    exclude: tuple[str, ...] = attrs.field(
        default=DEFAULT_EXCLUDE, converter=to_tuple, kw_only=True
    )

    async def run(self, ctx: ActionContext) -> None:
        """Copy the directory and hash it."""
        target = _single_output(ctx, "LocalSource")
        ctx.log.info("copying", source=self.path)
        await anyio.to_thread.run_sync(self._copy, Path(self.path), target)
        ctx.set_variable("ContentHash", await anyio.to_thread.run_sync(content_hash, target))

    def _copy(self, source: Path, target: Path) -> None:
        source = source.expanduser()
        if not source.is_dir():
            msg = f"LocalSource path {self.path!r} is not a directory"
            raise ActionFailed(msg)
        shutil.copytree(
            source,
            target,
            symlinks=True,
            ignore=shutil.ignore_patterns(*self.exclude),
            dirs_exist_ok=True,
        )

    def problems(self) -> Iterable[tuple[str, str]]:
        """Broken rules of this declaration, as (field, message) pairs."""
        if not isinstance(self.path, str) or not self.path:
            yield "path", "must be the path of a directory"


_COMMIT = re.compile(r"[0-9a-fA-F]{4,64}")
_BRANCH_BAD = re.compile(r"^-|\.\.|[\x00-\x20~^:?*\[\\]|@\{|\.lock$|/$|^/")


@attrs.frozen
class GitSource:
    """Clone a git repository at a branch or commit, with the ``git`` command.

    ``url`` is a local path or a ``file://`` or ``https://`` URL.

    Output variables, named as CodePipeline names them: ``CommitId``, ``BranchName``,
    ``AuthorDate``, ``CommitterDate``, ``CommitMessage``, ``RepositoryName``. The ``.git``
    folder is removed from the artifact unless ``keep_git=True``.
    """

    action_type: ClassVar[ActionTypeId] = ActionTypeId(
        Category.SOURCE, Owner.CUSTOM, "GitSource", "1"
    )
    idempotent: ClassVar[bool] = True
    input_artifacts: ClassVar[tuple[int, int]] = (0, 0)
    output_artifacts: ClassVar[tuple[int, int]] = (1, 1)
    #: The output variables it sets.
    output_variables: ClassVar[tuple[str, ...]] = (
        "CommitId",
        "BranchName",
        "AuthorDate",
        "CommitterDate",
        "CommitMessage",
        "RepositoryName",
    )

    url: str = attrs.field(converter=_to_path_text)
    branch: str | None = attrs.field(default=None, kw_only=True)
    commit: str | None = attrs.field(default=None, kw_only=True)
    keep_git: bool = attrs.field(default=False, kw_only=True)

    async def run(self, ctx: ActionContext) -> None:
        """Clone, check out, read the commit's details."""
        target = _single_output(ctx, "GitSource")
        clone = ["git", "clone", "--quiet"]
        if self.branch:
            # --branch=X rather than --branch X: a value can never be read as an option.
            clone.append(f"--branch={self.branch}")
        await ctx.run_command([*clone, "--", self.url, str(target)])
        git = ["git", "-C", str(target)]
        if self.commit:
            await ctx.run_command([*git, "checkout", "--quiet", "--detach", self.commit, "--"])
        shown = await ctx.run_command(
            [*git, "log", "-1", "--format=%H%x00%aI%x00%cI%x00%B"], capture=True
        )
        commit_id, author_date, committer_date, message = (shown.stdout or "").split("\0", 3)
        branch = self.branch
        if not branch:
            head = await ctx.run_command([*git, "rev-parse", "--abbrev-ref", "HEAD"], capture=True)
            branch = (head.stdout or "").strip()
        ctx.set_variable("CommitId", commit_id.strip())
        ctx.set_variable("BranchName", branch)
        ctx.set_variable("AuthorDate", author_date.strip())
        ctx.set_variable("CommitterDate", committer_date.strip())
        ctx.set_variable("CommitMessage", message.strip())
        ctx.set_variable("RepositoryName", _repository_name(self.url))
        if not self.keep_git:
            await anyio.to_thread.run_sync(shutil.rmtree, target / ".git")

    def problems(self) -> Iterable[tuple[str, str]]:
        """Broken rules of this declaration, as (field, message) pairs."""
        if not isinstance(self.url, str) or not self.url or self.url.startswith("-"):
            yield "url", "must be a repository path or URL (not starting with '-')"
        if self.branch is not None and (
            not isinstance(self.branch, str) or _BRANCH_BAD.search(self.branch)
        ):
            yield "branch", f"{self.branch!r} is not a valid git branch name"
        if self.commit is not None and (
            not isinstance(self.commit, str) or not _COMMIT.fullmatch(self.commit)
        ):
            yield "commit", f"{self.commit!r} must be a commit hash (4 to 64 hex digits)"


def _repository_name(url: str) -> str:
    name = url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    if name in {"", "."}:
        name = Path(url).resolve().name
    return name
