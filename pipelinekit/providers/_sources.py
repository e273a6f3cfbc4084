"""Source providers: a directory, a git repository, an archive (local or downloaded).

``LocalSource`` copies a directory, ``GitSource`` clones with ``git``, ``ArchiveSource`` unpacks
a tar or zip archive, refusing members that would land outside its folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, ClassVar

import anyio
import attrs

from pipelinekit._model._declarations import ActionTypeId, Category, Owner
from pipelinekit._model._frozendict import to_tuple
from pipelinekit.exceptions import ActionFailed
from pipelinekit.providers._files import feed, sha256_file

if TYPE_CHECKING:
    from pipelinekit.providers._context import ActionContext

__all__ = ["ArchiveSource", "GitSource", "LocalSource", "content_hash"]

DEFAULT_EXCLUDE = (".git", "__pycache__", "*.pyc", ".pipelinekit", ".venv", ".nox")


def _single_output(ctx: ActionContext, kind: str) -> Path:
    if len(ctx.outputs) != 1:
        msg = f"{kind} writes exactly one output artifact; declare outputs=['name']"
        raise ActionFailed(msg)
    return next(iter(ctx.outputs.values()))


def _hash_and_write(digest: hashlib._Hash, handle: IO[bytes], block: bytes) -> None:
    """Feed ``block`` to ``digest`` and write it (a download's block, in a worker thread)."""
    digest.update(block)
    handle.write(block)


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
        feed(path, digest)
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


# -- archives ---------------------------------------------------------------------------------

#: Default limits of ``ArchiveSource``: what an sdist or a source zip never comes near.
DEFAULT_MAX_BYTES = 1 << 30
DEFAULT_MAX_MEMBERS = 100_000
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar", ".zip")


def _is_url(location: str) -> bool:
    return "://" in location


def _archive_name(location: str) -> str:
    if _is_url(location):
        return httpx_path(location).rsplit("/", 1)[-1]
    return Path(location).name


def httpx_path(url: str) -> str:
    """The path of ``url`` without query or fragment (no httpx needed to read it)."""
    rest = url.split("://", 1)[1]
    path = rest.split("/", 1)[1] if "/" in rest else ""
    return "/" + path.split("?", 1)[0].split("#", 1)[0]


def _shown_url(url: str) -> str:
    """``url`` without its user and password, query and fragment, for logs and errors.

    A query often carries a token (``?token=...``, a signed URL's signature): never shown.
    """
    scheme, rest = url.split("://", 1)
    rest = rest.split("#", 1)[0].split("?", 1)[0]
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host.rsplit('@', 1)[-1]}{slash}{path}"


def _without_url(text: str, url: str) -> str:
    """``text`` (an httpx error) with ``url``'s secret parts (password, query) taken out."""
    text = text.replace(url, _shown_url(url))
    for secret in (url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[0], _query(url)):
        if secret:
            text = text.replace(secret, "...")
    return text


def _query(url: str) -> str:
    rest = url.split("://", 1)[1]
    return rest.split("?", 1)[1] if "?" in rest else ""


#: Seconds a download may go without receiving a byte, by default.
DEFAULT_IDLE_TIMEOUT = 60.0


@attrs.frozen
class ArchiveSource:
    """Unpack an archive into the action's output artifact: the source of a release pipeline.

    ``.tar.gz`` / ``.tgz`` / ``.tar`` (also ``.bz2``, ``.xz``) or ``.zip``: an sdist, a tarball.

    ``location`` is a local path or an ``http://``/``https://`` URL (downloaded with httpx,
    streamed, at most ``max_bytes``; a server that sends nothing for ``idle_timeout`` seconds
    fails it; its query and password are never shown). ``strip_components=1`` drops the top
    folder, as tar's option does (an sdist's ``name-1.0/``). ``sha256``, when given, must be the
    archive's.

    Safe with archives from anywhere: a member with an absolute path, a ``..``, a link (symbolic
    or hard) pointing out of the folder, a device file, or past ``max_members`` members or
    ``max_bytes`` uncompressed bytes is refused, naming the member, before anything is written
    (tar members also go through the standard library's ``data`` filter). So is a name given
    twice, both a file and a folder, or inside a file or a link of the archive. Members are
    unpacked into a staging folder moved into the artifact only when all are written: a
    failure midway (a zip member's CRC) or a cancellation leaves the artifact empty.

    Output variables: ``ArchiveHash`` (SHA-256 of the archive's bytes), ``ArchiveName`` (its
    file name) and ``ContentHash`` (of the unpacked tree, as ``LocalSource`` sets it).
    """

    action_type: ClassVar[ActionTypeId] = ActionTypeId(
        Category.SOURCE, Owner.CUSTOM, "ArchiveSource", "1"
    )
    idempotent: ClassVar[bool] = True
    input_artifacts: ClassVar[tuple[int, int]] = (0, 0)
    output_artifacts: ClassVar[tuple[int, int]] = (1, 1)
    #: The output variables it sets.
    output_variables: ClassVar[tuple[str, ...]] = ("ArchiveHash", "ArchiveName", "ContentHash")

    location: str = attrs.field(converter=_to_path_text)
    strip_components: int = attrs.field(default=0, kw_only=True)
    sha256: str | None = attrs.field(default=None, kw_only=True)
    max_bytes: int = attrs.field(default=DEFAULT_MAX_BYTES, kw_only=True)
    max_members: int = attrs.field(default=DEFAULT_MAX_MEMBERS, kw_only=True)
    idle_timeout: float = attrs.field(default=DEFAULT_IDLE_TIMEOUT, kw_only=True)

    async def run(self, ctx: ActionContext) -> None:
        """Fetch the archive if it is a URL, check it, unpack it, hash it."""
        target = _single_output(ctx, "ArchiveSource")
        location = self.location
        shown_location = _shown_url(location) if _is_url(location) else location
        # The work folder holds the download and the staging folder of the unpacking.
        folder = ctx.workdir_path
        await anyio.to_thread.run_sync(partial(folder.mkdir, parents=True, exist_ok=True))
        if _is_url(location):
            archive = folder / (_archive_name(location) or "archive")
            ctx.log.info("downloading", url=shown_location)
            digest = await self._download(ctx, location, archive, shown_location)
        else:
            archive = Path(location)
            digest = await anyio.to_thread.run_sync(self._hash_file, archive)
        if self.sha256 is not None and digest != self.sha256.lower():
            msg = (
                f"archive {shown_location!r} has SHA-256 {digest}, not the expected "
                f"{self.sha256.lower()} given as sha256=; nothing was unpacked"
            )
            raise ActionFailed(msg)
        ctx.log.info("unpacking", archive=shown_location)
        # Loaded when an archive is unpacked: importing pipelinekit does not load tarfile,
        # zipfile, bz2 and lzma.
        from pipelinekit.providers._unpack import Refused  # noqa: PLC0415

        try:
            await anyio.to_thread.run_sync(self._unpack, archive, target, folder)
        except Refused as refused:
            member = f"member {refused.member!r} " if refused.member else ""
            msg = (
                f"archive {shown_location!r} refused: {member}{refused.why}; nothing was "
                "unpacked (an archive from elsewhere must stay inside its folder and within "
                "max_bytes and max_members)"
            )
            raise ActionFailed(msg) from None
        ctx.set_variable("ArchiveHash", digest)
        ctx.set_variable("ArchiveName", archive.name)
        ctx.set_variable("ContentHash", await anyio.to_thread.run_sync(content_hash, target))

    def _hash_file(self, archive: Path) -> str:
        archive = archive.expanduser()
        if not archive.is_file():
            msg = f"ArchiveSource location {self.location!r} is not a file"
            raise ActionFailed(msg)
        return sha256_file(archive)

    async def _download(self, ctx: ActionContext, url: str, archive: Path, shown_url: str) -> str:
        import httpx  # noqa: PLC0415 - only pipelines that download pay for importing it

        digest = hashlib.sha256()
        size = 0
        # idle_timeout bounds each wait for the server (connecting, each read), not the whole
        # download: a large archive may take long, a server that stalls fails in that time.
        timeout = httpx.Timeout(self.idle_timeout)
        try:
            async with (
                httpx.AsyncClient(follow_redirects=True, timeout=timeout) as client,
                client.stream("GET", url) as response,
            ):
                final = str(response.url)
                if response.history and final != url:  # followed: say where it came from
                    ctx.log.info("redirected", url=_shown_url(final))
                if response.status_code != 200:  # noqa: PLR2004 - HTTP's OK
                    msg = f"downloading {shown_url!r} answered HTTP {response.status_code}"
                    raise ActionFailed(msg)
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    msg = (
                        f"archive {shown_url!r} is {declared} bytes, more than "
                        f"max_bytes={self.max_bytes}; nothing was downloaded"
                    )
                    raise ActionFailed(msg)
                async with await anyio.open_file(archive, "wb") as writing:
                    async for block in response.aiter_bytes(1 << 20):
                        size += len(block)
                        if size > self.max_bytes:
                            msg = (
                                f"archive {shown_url!r} is more than max_bytes="
                                f"{self.max_bytes} bytes; the download was stopped"
                            )
                            raise ActionFailed(msg)
                        # Hashed in the thread that writes it (one trip per block, as the
                        # write alone took): a 1 MB hash never holds the event loop.
                        await anyio.to_thread.run_sync(
                            _hash_and_write, digest, writing.wrapped, block
                        )
        except httpx.TimeoutException:
            msg = (
                f"downloading {shown_url!r} stalled: nothing came for {self.idle_timeout:g} s "
                "(idle_timeout=); the server may be down or overloaded, or raise idle_timeout"
            )
            raise ActionFailed(msg) from None
        except httpx.HTTPError as error:
            shown = _without_url(str(error), url)
            msg = f"downloading {shown_url!r} failed: {type(error).__name__}: {shown}"
            raise ActionFailed(msg) from None
        return digest.hexdigest()

    def _unpack(self, archive: Path, target: Path, staging: Path) -> None:
        from anyio.from_thread import check_cancelled  # noqa: PLC0415 - with _unpack

        from pipelinekit.providers._unpack import Limits, unpack  # noqa: PLC0415 - see Refused

        limits = Limits(self.max_bytes, self.max_members)
        unpack(
            archive.expanduser(),
            target,
            self.strip_components,
            limits,
            staging=staging,
            checkpoint=check_cancelled,  # a cancelled action stops between members
        )

    def problems(self) -> Iterable[tuple[str, str]]:
        """Broken rules of this declaration, as (field, message) pairs."""
        location: object = self.location
        if not isinstance(location, str) or not location:
            yield "location", "must be the path or http(s) URL of an archive"
        elif _is_url(location) and not location.startswith(("http://", "https://", "#{")):
            yield "location", f"{location!r}: only http:// and https:// URLs are fetched"
        elif not location.startswith("#{") and not location.lower().endswith(_ARCHIVE_SUFFIXES):
            suffixes = ", ".join(_ARCHIVE_SUFFIXES)
            if not (_is_url(location) and httpx_path(location).lower().endswith(_ARCHIVE_SUFFIXES)):
                yield "location", f"{location!r} must name an archive ({suffixes})"
        for field in ("strip_components", "max_bytes", "max_members"):
            value: object = getattr(self, field)
            low = 0 if field == "strip_components" else 1
            if type(value) is not int or value < low:
                yield field, f"must be a whole number of at least {low} (got {value!r})"
        idle: object = self.idle_timeout
        if type(idle) not in {int, float} or not 0 < idle < float("inf"):  # type: ignore[operator]
            yield "idle_timeout", f"must be a number of seconds above 0 (got {idle!r})"
        digest: object = self.sha256
        if digest is not None and (
            not isinstance(digest, str)
            or ("#{" not in digest and not re.fullmatch(r"[0-9a-fA-F]{64}", digest))
        ):
            yield "sha256", f"must be 64 hex digits (got {digest!r})"
