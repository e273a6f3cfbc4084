"""Writable inputs: ``Action(writable_inputs=True)`` gives an action private writable copies of its
input artifacts, for tools that write beside what they read (pytest's cache, bytecode, in-tree
builds). The producer's artifact never changes, and read-only stays the default. Real tools,
real files; the fake agrees (a write to a read-only input fails as on disk, to a private copy
it succeeds)."""

from __future__ import annotations

import errno
import os
import shlex
import stat
import sys
from pathlib import Path

import pytest

import pipelinekit as pk
from pipelinekit._runtime import _clone
from pipelinekit._runtime import _private_inputs as private
from pipelinekit.providers._sources import content_hash
from pipelinekit.testing import FakeExecutor, succeed

pytestmark = pytest.mark.anyio

PYTHON = shlex.quote(sys.executable)

PACKAGE = {
    "pyproject.toml": '[project]\nname = "tiny"\nversion = "1.0"\n',
    "tiny/__init__.py": "def double(x):\n    return 2 * x\n",
    "tests/test_tiny.py": (
        "from tiny import double\n\n\ndef test_double():\n    assert double(2) == 4\n"
    ),
    "README": "a tiny package\n",
}


def make_src(ctx: pk.ActionContext) -> None:
    """The producer: a small package, sealed read-only when it ends."""
    out = ctx.outputs["src"]
    for relative, text in PACKAGE.items():
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_text(text)


def pipeline(*commands: str, writable: bool | None = None, **options: object) -> pk.Pipeline:
    extra: dict[str, object] = {} if writable is None else {"writable_inputs": writable}
    return pk.Pipeline(
        "p",
        [
            pk.Stage("Source", [pk.Action("Make", pk.python(make_src), outputs=["src"])]),
            pk.Stage(
                "Test",
                [
                    pk.Action(
                        "Run",
                        pk.shell('cd "$PK_INPUT_src"', *commands),
                        inputs=["src"],
                        **extra,  # type: ignore[arg-type]
                        **options,  # type: ignore[arg-type]
                    )
                ],
            ),
        ],
    )


PYTEST = f"{PYTHON} -m pytest -q -p no:randomly tests"
COMPILEALL = f"{PYTHON} -m compileall -q ."
IN_TREE = "mkdir -p build/lib && cp -r tiny build/lib/ && echo built > build/stamp"


def producer_unchanged(result: pk.RunResult, before: str) -> None:
    """The producer's folder holds what it wrote, hashed as it was sealed."""
    assert result.workdir is not None
    folder = result.workdir / "artifacts" / "src"
    assert content_hash(folder) == before
    names = {path.relative_to(folder).as_posix() for path in folder.rglob("*")}
    assert names == {"tiny", "tests", *PACKAGE}  # no .pytest_cache, __pycache__ or build/


def expected_hash(tmp_path: Path) -> str:
    folder = tmp_path / "expected"
    for relative, text in PACKAGE.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)
    return content_hash(folder)


# -- today's cut: read-only inputs break tools that write beside them ---------------------------


TOOLS = pytest.mark.parametrize(
    "command", [PYTEST, COMPILEALL, IN_TREE], ids=["pytest", "bytecode", "build"]
)


@TOOLS
def test_a_tool_writing_beside_a_read_only_input_fails_the_action(workdir, command):
    """The default stays read-only: the write is refused (or, for root, caught by the check)."""
    result = pk.run(pipeline(command), workdir=workdir)
    assert result.status is pk.Status.FAILED
    error = result.actions["Test.Run"].error or ""
    # Root writes anyway and the check after the action names the change; anyone else is
    # refused by the read-only bits and the tool fails.
    assert "input artifact 'src' changed while Test.Run ran" in error or "status" in error


# -- the fix --------------------------------------------------------------------------------------


@TOOLS
def test_with_writable_inputs_the_tool_writes_to_a_private_copy(workdir, tmp_path, command):
    result = pk.run(pipeline(command, writable=True), workdir=workdir)
    assert result.status is pk.Status.SUCCEEDED, result.actions["Test.Run"].error
    producer_unchanged(result, expected_hash(tmp_path))


def test_pytest_really_wrote_its_cache_and_bytecode_in_the_copy(workdir):
    result = pk.run(pipeline(PYTEST, COMPILEALL, IN_TREE, writable=True), workdir=workdir)
    assert result.status is pk.Status.SUCCEEDED, result.actions["Test.Run"].error
    assert result.workdir is not None
    copies = list(result.workdir.glob("work/Test.Run.inputs/src"))
    assert len(copies) == 1
    found = {path.relative_to(copies[0]).parts[0] for path in copies[0].rglob("*")}
    assert {".pytest_cache", "build", "tiny", "tests"} <= found
    assert list(copies[0].rglob("*.pyc"))


def test_writing_an_existing_file_of_the_copy_leaves_the_producers_file_alone(workdir, tmp_path):
    """Never a hard link: appending to a file of the copy changes the copy only."""
    result = pk.run(
        pipeline('echo "patched" >> README', 'test "$(tail -n 1 README)" = patched', writable=True),
        workdir=workdir,
    )
    assert result.status is pk.Status.SUCCEEDED, result.actions["Test.Run"].error
    producer_unchanged(result, expected_hash(tmp_path))
    assert (result.workdir / "artifacts" / "src" / "README").read_text() == PACKAGE["README"]


def test_the_copies_are_writable_though_the_producers_files_are_not(workdir):
    modes: dict[str, int] = {}

    def look(ctx: pk.ActionContext) -> None:
        for path in [ctx.inputs["src"], *ctx.inputs["src"].rglob("*")]:
            modes[path.relative_to(ctx.inputs["src"]).as_posix()] = path.stat().st_mode

    result = pk.run(
        pk.Pipeline(
            "p",
            [
                pk.Stage("Source", [pk.Action("Make", pk.python(make_src), outputs=["src"])]),
                pk.Stage(
                    "Test",
                    [pk.Action("Look", pk.python(look), inputs=["src"], writable_inputs=True)],
                ),
            ],
        ),
        workdir=workdir,
    )
    assert result.status is pk.Status.SUCCEEDED, result.actions["Test.Look"].error
    assert modes
    assert all(mode & stat.S_IWUSR for mode in modes.values())
    original = result.workdir / "artifacts" / "src" / "README"
    assert not original.stat().st_mode & stat.S_IWUSR


def test_each_attempt_starts_from_fresh_copies(workdir):
    """A retry does not see what the failed attempt wrote to its copies."""
    script = (
        'if [ -e marker ]; then echo "stale copy" >&2; exit 3; fi',
        "touch marker",
        'test "$PK_ATTEMPT" = 2',
    )
    result = pk.run(
        pipeline(*script, writable=True, retry=pk.Retry(attempts=2, delay=0)), workdir=workdir
    )
    assert result.status is pk.Status.SUCCEEDED, result.actions["Test.Run"].error
    assert len(result.actions["Test.Run"].attempts) == 2


def test_a_parallel_reader_still_reads_the_producers_files(workdir):
    seen: list[str] = []

    def read(ctx: pk.ActionContext) -> None:
        seen.append((ctx.inputs["src"] / "README").read_text())

    result = pk.run(
        pk.Pipeline(
            "p",
            [
                pk.Stage("Source", [pk.Action("Make", pk.python(make_src), outputs=["src"])]),
                pk.Stage(
                    "Test",
                    [
                        pk.Action(
                            "Write",
                            pk.shell('echo changed > "$PK_INPUT_src/README"'),
                            inputs=["src"],
                            writable_inputs=True,
                        ),
                        pk.Action("Read", pk.python(read), inputs=["src"], run_order=2),
                    ],
                ),
            ],
        ),
        workdir=workdir,
    )
    assert result.status is pk.Status.SUCCEEDED
    assert seen == [PACKAGE["README"]]


def test_a_producer_changed_behind_the_copy_is_still_caught(workdir):
    """The seals checked are the producer's, not the copy's: tampering with the original while
    the action runs on its copy fails it as before."""

    def meddle(ctx: pk.ActionContext) -> None:
        original = ctx.workdir_path.parent.parent / "artifacts" / "src" / "README"
        original.chmod(0o644)
        original.write_text("tampered\n")

    result = pk.run(
        pk.Pipeline(
            "p",
            [
                pk.Stage("Source", [pk.Action("Make", pk.python(make_src), outputs=["src"])]),
                pk.Stage(
                    "Test",
                    [pk.Action("Meddle", pk.python(meddle), inputs=["src"], writable_inputs=True)],
                ),
            ],
        ),
        workdir=workdir,
    )
    error = result.actions["Test.Meddle"].error or ""
    assert error.startswith("input artifact 'src' changed while Test.Meddle ran: README")


# -- the copy itself ---------------------------------------------------------------------------


def tree(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("a")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o555)
    (root / "rel").symlink_to("sub/a.txt")
    (root / "abs").symlink_to(root / "sub" / "a.txt")
    (root / "outside").symlink_to("/etc/hostname")
    for path in [*root.rglob("*"), root]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222)


def test_copy_keeps_links_and_modes_and_repoints_absolute_links_into_the_copy(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    tree(source)
    private.copy_private(source, target)
    assert content_hash(target) != content_hash(source)  # only the absolute link differs
    assert (target / "rel").readlink() == Path("sub/a.txt")
    assert (target / "abs").readlink() == target / "sub" / "a.txt"
    assert (target / "outside").readlink() == Path("/etc/hostname")
    assert (target / "run.sh").stat().st_mode & 0o777 == 0o755  # executable kept, writable
    assert (target / "sub").stat().st_mode & stat.S_IWUSR
    (target / "sub" / "a.txt").write_text("changed")
    assert (source / "sub" / "a.txt").read_text() == "a"


def test_an_absolute_link_through_a_symlinked_folder_is_repointed_into_the_copy(tmp_path):
    """The artifact reached by another path (a symlinked ancestor, macOS's /var, a leading
    ``//``) is still the artifact: real paths are compared, and the link goes to the copy."""
    real = tmp_path / "real"
    source = real / "artifact"
    (source / "sub").mkdir(parents=True)
    (source / "file").write_text("orig")
    (tmp_path / "alias").symlink_to(real)
    (source / "via-alias").symlink_to(tmp_path / "alias" / "artifact" / "file")
    (source / "slashes").symlink_to(f"/{source}/file")  # "//tmp/...": the same file
    (source / "sub" / "up").symlink_to(f"/{tmp_path}/alias/artifact/sub/../file")
    (source / "folder").symlink_to(tmp_path / "alias" / "artifact" / "sub")
    # The copy made from the artifact's other path, as the runtime may be given it.
    target = tmp_path / "target"
    private.copy_private(tmp_path / "alias" / "artifact", target)
    for name in ("via-alias", "slashes", "sub/up"):
        assert (target / name).readlink() == target / "file", name
        (target / name).write_text(f"through {name}")
    assert (target / "folder").readlink() == target / "sub"
    assert (source / "file").read_text() == "orig"  # the producer's file, never written
    real_target = tmp_path / "real-target"
    private.copy_private(source, real_target)  # from the real path, links through the alias
    assert (real_target / "via-alias").readlink() == real_target / "file"


def test_a_relative_link_climbing_out_and_back_in_is_kept_inside_the_copy(tmp_path):
    """``../artifact/file`` names the artifact's file from the artifact, another from the copy."""
    source, target = tmp_path / "artifact", tmp_path / "copies" / "deeper"
    source.mkdir()
    (source / "file").write_text("orig")
    (source / "back").symlink_to("../artifact/file")
    target.parent.mkdir()
    private.copy_private(source, target)
    assert (target / "back").readlink() == Path("file")
    (target / "back").write_text("changed")
    assert (source / "file").read_text() == "orig"


def test_a_pipe_of_an_artifact_is_left_out_of_the_copy_with_a_warning(workdir):
    """A pipe, socket or device is no artifact content (its hash leaves them out): not copied,
    and the action's log says so, naming it."""

    def make(ctx: pk.ActionContext) -> None:
        make_src(ctx)
        os.mkfifo(ctx.outputs["src"] / "tiny" / "events.fifo")

    result = pk.run(
        pk.Pipeline(
            "p",
            [
                pk.Stage("Source", [pk.Action("Make", pk.python(make), outputs=["src"])]),
                pk.Stage(
                    "Test",
                    [
                        pk.Action(
                            "Run",
                            pk.shell('test ! -e "$PK_INPUT_src/tiny/events.fifo"'),
                            inputs=["src"],
                            writable_inputs=True,
                        )
                    ],
                ),
            ],
        ),
        workdir=workdir,
    )
    assert result.status is pk.Status.SUCCEEDED, result.actions["Test.Run"].error
    log = Path(result.actions["Test.Run"].log_path or "").read_text()
    assert (
        "[warning] not in the private copy: a pipe, socket or device file is no artifact "
        "content artifact='src' path='tiny/events.fifo'"
    ) in log


def test_without_reflink_support_each_file_is_copied_and_the_clone_is_not_tried_again(
    tmp_path, monkeypatch
):
    source, target = tmp_path / "source", tmp_path / "target"
    tree(source)
    (source / "sub").chmod(0o755)
    (source / "sub" / "b.txt").write_text("b")
    tries: list[int] = []

    def refuse(fd: int, request: int, arg: int) -> int:
        tries.append(request)
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(_clone.fcntl, "ioctl", refuse)
    copied = private.copy_private(source, target)
    assert tries == [_clone.FICLONE]  # once: the file system said no
    assert copied.cloned == 0
    assert copied.copied == 3
    assert (target / "sub" / "b.txt").read_text() == "b"


def test_a_clone_is_used_where_the_file_system_can(tmp_path, monkeypatch):
    """Where FICLONE works, files are clones (the ioctl is what ``cp --reflink`` uses)."""
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    (source / "big.bin").write_bytes(b"x" * 4096)
    calls: list[tuple[int, int]] = []

    def clone(fd: int, request: int, arg: int) -> int:
        calls.append((request, arg))
        with open(f"/proc/self/fd/{arg}", "rb") as src:  # noqa: PTH123 - a descriptor
            os.write(fd, src.read())
        return 0

    monkeypatch.setattr(_clone.fcntl, "ioctl", clone)
    copied = private.copy_private(source, target)
    assert copied.cloned == 1
    assert copied.copied == 0
    assert [request for request, _ in calls] == [_clone.FICLONE]
    assert (target / "big.bin").read_bytes() == b"x" * 4096


# -- the model ----------------------------------------------------------------------------------


def test_writable_inputs_is_false_by_default_and_shown_in_the_repr():
    action = pk.Action("a", pk.shell("true"), inputs=["src"])
    assert action.writable_inputs is False
    assert "writable_inputs=True" in repr(pk.Action("a", pk.shell("true"), writable_inputs=True))


def test_a_bad_value_is_refused_naming_the_field():
    with pytest.raises(pk.PipelineDefinitionError) as caught:
        pk.Action("a", pk.shell("true"), writable_inputs="copy")  # type: ignore[arg-type]
    assert str(caught.value) == (
        "action 'a', field 'writable_inputs': must be True (private writable copies of the "
        "inputs) or False (read-only inputs, the default) (got 'copy')"
    )


def test_the_definition_json_and_hash_tell_the_modes_apart():
    read_only = pipeline("true", writable=False).compile()
    writable = pipeline("true", writable=True).compile()
    assert read_only.definition_hash() != writable.definition_hash()
    assert '"writable_inputs": true' in writable.to_json()


# -- the fake agrees -----------------------------------------------------------------------------


def fake_pipeline(*, writable: bool) -> pk.Pipeline:
    return pipeline("true", writable=writable)


FILES = {relative: text.encode() for relative, text in PACKAGE.items()}


def test_the_fake_fails_a_write_to_a_read_only_input_as_a_real_run_does(workdir):
    fake = FakeExecutor(
        {
            "Source.Make": succeed(outputs={"src": FILES}),
            "Test.Run": succeed(outputs={"src": {"README": b"patched\n"}}),
        }
    )
    result = fake.run(fake_pipeline(writable=False))
    real = pk.run(pipeline("chmod u+w README", "echo patched > README"), workdir=workdir)
    assert result.status is pk.Status.FAILED
    assert result.actions["Test.Run"].error == real.actions["Test.Run"].error
    assert result.actions["Test.Run"].error.startswith(
        "input artifact 'src' changed while Test.Run ran: README: content changed"
    )


def test_the_fake_lets_an_action_with_writable_inputs_write_to_its_copy():
    fake = FakeExecutor(
        {
            "Source.Make": succeed(outputs={"src": FILES}),
            "Test.Run": succeed(outputs={"src": {"README": b"patched\n", ".pytest_cache/x": b""}}),
        }
    )
    result = fake.run(fake_pipeline(writable=True))
    assert result.status is pk.Status.SUCCEEDED
    assert fake.artifacts["src"] == FILES  # the producer's files, untouched


async def test_the_private_copies_are_the_workspace_s_to_make(workdir):
    """The engine asks its workspace (no branch on which one it is): a workspace of one's own
    decides where the copies go, and the fake's in-memory one hands out paths only."""
    from pipelinekit._runtime._artifacts import DiskWorkspace  # noqa: PLC0415

    asked: list[tuple[str, list[str]]] = []

    class Noting(DiskWorkspace):
        async def private_copies(self, node, inputs):  # type: ignore[no-untyped-def]
            asked.append((node, sorted(inputs)))
            return await super().private_copies(node, inputs)

    async with pk.Engine(store=pk.MemoryStore(), workdir=workdir, workspaces=Noting) as engine:
        result = await (await engine.start(pipeline("touch written", writable=True))).wait()
    assert result.succeeded, result.actions["Test.Run"].error
    assert asked == [("Test.Run", ["src"])]
    assert (result.workdir / "work" / "Test.Run.inputs" / "src" / "written").exists()


def test_the_core_has_no_branch_for_the_fake_s_workspace():
    assert "MemoryWorkspace" not in Path(private.__file__).read_text()
