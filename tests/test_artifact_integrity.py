"""Artifacts are verified: an action that changes an artifact after its producer sealed it fails
with an error naming the artifact, the action and the file; nothing starts on changed content;
pipelines that change nothing run as before. Real files, real tampering (these machines run the
tests as root, so the read-only bits alone protect nothing), and the same under the fake."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import anyio
import attrs
import pytest

import pipelinekit as pk
from pipelinekit._runtime import _artifacts as artifacts
from pipelinekit._runtime._artifacts import DiskWorkspace, MemoryWorkspace, snapshot
from pipelinekit._runtime._replay import replay
from pipelinekit.providers._sources import content_hash
from pipelinekit.testing import FakeExecutor, succeed

pytestmark = pytest.mark.anyio

FILES = {"app.txt": "v1\n", "lib/util.txt": "helper\n", "run.sh": "#!/bin/sh\n"}


def make_dist(ctx: pk.ActionContext) -> None:
    """The producer: a few files, one of them executable, one in a folder."""
    out = ctx.outputs["dist"]
    for relative, text in FILES.items():
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        (out / relative).write_text(text)
    (out / "run.sh").chmod(0o755)


def read_dist(ctx: pk.ActionContext) -> None:
    (ctx.inputs["dist"] / "app.txt").read_text()


# chmod u+w first, as a careful tamperer must when it is not root; root needs no chmod at all.
TAMPER = pk.shell('chmod u+w "$PK_INPUT_dist/app.txt"', 'echo evil >> "$PK_INPUT_dist/app.txt"')


@pk.provider("Custom", "Ship", category=pk.Category.DEPLOY)
@attrs.frozen(eq=False)
class Ship:
    """A deploy that records what it shipped."""

    shipped: list[str]

    async def run(self, ctx: pk.ActionContext) -> None:
        text = await anyio.Path(ctx.inputs["dist"] / "app.txt").read_text()
        self.shipped.append(text)


def build() -> pk.Stage:
    return pk.Stage("Build", [pk.Action("Make", pk.python(make_dist), outputs=["dist"])])


def deploy(shipped: list[str], **options: object) -> pk.Stage:
    return pk.Stage("Deploy", [pk.Action("Ship", Ship(shipped), inputs=["dist"])], **options)


def error_of(result: pk.RunResult, node: str) -> str:
    error = result.actions[node].error
    assert error is not None, f"{node} did not fail: {result.actions[node].status}"
    return error


async def events_of(store: pk.MemoryStore, result: pk.RunResult) -> list[pk.Event]:
    return list(await store.events(result.execution_id))


# -- the fault --------------------------------------------------------------------------------


async def test_an_action_that_changes_its_input_fails_and_the_deploy_never_runs(workdir):
    shipped: list[str] = []
    pipeline = pk.Pipeline(
        "p",
        [
            build(),
            pk.Stage("Test", [pk.Action("Tamper", TAMPER, inputs=["dist"])]),
            deploy(shipped),
        ],
    )
    store = pk.MemoryStore()
    result = await pk.arun(pipeline, workdir=workdir, store=store)
    assert result.status is pk.Status.FAILED
    error = error_of(result, "Test.Tamper")
    assert error.startswith("input artifact 'dist' changed while Test.Tamper ran: ")
    assert "app.txt: content changed" in error
    assert "Build.Make" in error  # who sealed it
    assert "\n" not in error
    assert result.actions["Deploy.Ship"].status is pk.Status.NOT_STARTED
    assert shipped == []
    failed = next(
        e
        for e in await events_of(store, result)
        if e.action == "Tamper" and e.state is pk.Status.FAILED
    )
    assert failed.detail["artifact_changed"] == {"dist": ["app.txt: content changed"]}


async def test_a_deploy_never_starts_on_an_artifact_changed_by_something_else(workdir):
    """The change is made by an action that does not take the artifact as input (it finds the
    folder itself) and succeeds: the deploy's own check before it starts refuses the content."""
    shipped: list[str] = []

    def meddle(ctx: pk.ActionContext) -> None:
        target = ctx.workdir_path.parent.parent / "artifacts" / "dist" / "lib" / "util.txt"
        target.chmod(0o644)
        target.write_text("patched\n")

    pipeline = pk.Pipeline(
        "p",
        [
            build(),
            pk.Stage("Meddle", [pk.Action("Patch", pk.python(meddle))]),
            deploy(shipped),
        ],
    )
    result = await pk.arun(pipeline, workdir=workdir)
    assert result.actions["Meddle.Patch"].status is pk.Status.SUCCEEDED
    error = error_of(result, "Deploy.Ship")
    assert error.startswith(
        "input artifact 'dist' changed after Build.Make sealed it, before Deploy.Ship started: "
        "lib/util.txt: content changed"
    )
    assert "Deploy.Ship did not run" in error
    assert shipped == []


async def test_a_parallel_reader_that_ran_during_the_change_fails_too(workdir):
    """A reader running while the artifact changed may have read changed bytes: it never
    succeeds silently. Its error names the action that was running on the artifact with it."""
    reading = threading.Event()
    wrote = threading.Event()
    read: list[str] = []

    def tamper(ctx: pk.ActionContext) -> None:
        assert reading.wait(30)  # the reader passed its check before the change
        target = ctx.inputs["dist"] / "app.txt"
        target.chmod(0o644)
        target.write_text("evil\n")
        wrote.set()

    def reader(ctx: pk.ActionContext) -> None:
        reading.set()
        assert wrote.wait(30)
        read.append((ctx.inputs["dist"] / "app.txt").read_text())

    shipped: list[str] = []
    pipeline = pk.Pipeline(
        "p",
        [
            build(),
            pk.Stage(
                "Test",
                [
                    pk.Action("Tamper", pk.python(tamper), inputs=["dist"]),
                    pk.Action("Read", pk.python(reader), inputs=["dist"]),
                ],
            ),
            deploy(shipped),
        ],
    )
    result = await pk.arun(pipeline, workdir=workdir)
    assert read == ["evil\n"]  # it did read the changed bytes ...
    tampered = error_of(result, "Test.Tamper")
    assert tampered.startswith("input artifact 'dist' changed while Test.Tamper ran")
    reader_error = error_of(result, "Test.Read")  # ... and is not a success
    assert reader_error.startswith("input artifact 'dist' changed while Test.Read ran")
    assert "Test.Tamper" in reader_error
    assert "app.txt: content changed" in reader_error
    assert shipped == []


async def test_a_reader_that_ended_before_the_change_succeeds(workdir):
    pipeline = pk.Pipeline(
        "p",
        [
            build(),
            pk.Stage(
                "Test",
                [
                    pk.Action("Read", pk.python(read_dist), inputs=["dist"]),
                    pk.Action("Tamper", TAMPER, inputs=["dist"], run_order=2),
                ],
            ),
        ],
    )
    result = await pk.arun(pipeline, workdir=workdir)
    assert result.actions["Test.Read"].status is pk.Status.SUCCEEDED
    assert result.actions["Test.Tamper"].status is pk.Status.FAILED


async def test_a_tampering_attempt_is_not_retried(workdir):
    tamper = pk.Action("Tamper", TAMPER, inputs=["dist"], retry=pk.Retry(3, delay=0))
    pipeline = pk.Pipeline("p", [build(), pk.Stage("Test", [tamper])])
    result = await pk.arun(pipeline, workdir=workdir)
    assert len(result.actions["Test.Tamper"].attempts) == 1


async def test_a_failing_action_that_changed_its_input_says_both(workdir):
    action = pk.Action(
        "Tamper",
        pk.shell('chmod u+w "$PK_INPUT_dist/app.txt"; echo x > "$PK_INPUT_dist/app.txt"; exit 3'),
        inputs=["dist"],
    )
    pipeline = pk.Pipeline("p", [build(), pk.Stage("Test", [action])])
    result = await pk.arun(pipeline, workdir=workdir)
    error = error_of(result, "Test.Tamper")
    assert error.startswith("input artifact 'dist' changed while Test.Tamper ran")
    assert "command exited with status 3" in error


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ('rm -f "$PK_INPUT_dist/app.txt"', "app.txt: removed"),
        ('touch "$PK_INPUT_dist/extra.txt"', "extra.txt: added"),
        ('chmod -x "$PK_INPUT_dist/run.sh"', "run.sh: executable bit changed"),
        (
            'rm "$PK_INPUT_dist/app.txt" && ln -s /etc/hostname "$PK_INPUT_dist/app.txt"',
            "app.txt: replaced by a symlink",
        ),
        # Same size, same mtime put back: the inode's change time still tells.
        (
            (
                'f="$PK_INPUT_dist/app.txt"; t=$(stat -c %y "$f"); printf \'v2\\n\' > "$f"; '
                'touch -d "$t" "$f"'
            ),
            "app.txt: content changed",
        ),
    ],
)
async def test_every_kind_of_change_is_named(workdir, change, expected):
    chmod = 'chmod -R u+w "$PK_INPUT_dist"'
    action = pk.Action("Tamper", pk.shell(chmod, change), inputs=["dist"])
    pipeline = pk.Pipeline("p", [build(), pk.Stage("Test", [action])])
    result = await pk.arun(pipeline, workdir=workdir)
    assert expected in error_of(result, "Test.Tamper")


async def test_metadata_alone_is_no_change(workdir):
    """Touching an input or making it writable changes no byte: the action succeeds."""
    action = pk.Action(
        "Touch",
        pk.shell('chmod -R u+w "$PK_INPUT_dist"', 'touch "$PK_INPUT_dist/app.txt"'),
        inputs=["dist"],
    )
    shipped: list[str] = []
    pipeline = pk.Pipeline("p", [build(), pk.Stage("Test", [action]), deploy(shipped)])
    result = await pk.arun(pipeline, workdir=workdir)
    assert result.succeeded, result.actions["Test.Touch"].error
    assert shipped == ["v1\n"]


# -- untouched pipelines ----------------------------------------------------------------------


async def test_pipelines_that_change_nothing_run_as_before(workdir):
    shipped: list[str] = []
    consumers = [pk.Action(f"Read{n}", pk.python(read_dist), inputs=["dist"]) for n in range(3)]
    pipeline = pk.Pipeline("p", [build(), pk.Stage("Test", consumers), deploy(shipped)])
    store = pk.MemoryStore()
    result = await pk.arun(pipeline, workdir=workdir, store=store)
    assert result.succeeded
    assert shipped == ["v1\n"]
    events = await events_of(store, result)
    assert not any("artifact_changed" in e.detail for e in events)
    made = next(e for e in events if e.action == "Make" and e.state is pk.Status.SUCCEEDED)
    assert made.detail["artifacts"] == {
        "dist": content_hash(result.actions["Build.Make"].outputs["dist"])
    }


# -- where the full hash is taken -------------------------------------------------------------


class Counting(DiskWorkspace):
    """A disk workspace that notes which checks hash every file."""

    full: list[tuple[str, ...]]

    def __init__(self, root: Path, **options: object) -> None:
        super().__init__(root, **options)  # type: ignore[arg-type]
        self.full = FULL

    async def verify(self, artifacts, *, full):  # type: ignore[no-untyped-def]
        self.full.append((tuple(artifacts), full))
        return await super().verify(artifacts, full=full)


FULL: list[tuple[str, ...]] = []


async def test_a_deploy_is_checked_against_the_full_hash_and_others_by_their_manifest(workdir):
    FULL.clear()
    shipped: list[str] = []
    pipeline = pk.Pipeline(
        "p",
        [
            build(),
            pk.Stage("Test", [pk.Action("Read", pk.python(read_dist), inputs=["dist"])]),
            deploy(shipped),
        ],
    )
    async with pk.Engine(store=pk.MemoryStore(), workdir=workdir, workspaces=Counting) as engine:
        result = await (await engine.start(pipeline)).wait()
    assert result.succeeded
    # The reader: before and after, by the manifest; the deploy: before, by the full hash.
    assert FULL == [(("dist",), False), (("dist",), False), (("dist",), True), (("dist",), False)]


async def test_a_change_the_manifest_cannot_see_is_caught_by_the_deploys_full_hash(workdir):
    """Bit rot, a file system that keeps no change time, a clock set back: the stat manifest
    would miss it; the deploy hashes every byte."""
    shipped: list[str] = []

    def rot(ctx: pk.ActionContext) -> None:
        target = ctx.workdir_path.parent.parent / "artifacts" / "dist" / "app.txt"
        before = target.stat()
        with target.open("r+b") as handle:  # as a disk error would: same size, no new times
            handle.write(b"V")
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))

    class Blind(DiskWorkspace):
        """Pretends the change times say nothing, as on such a file system."""

        async def verify(self, artifacts, *, full):  # type: ignore[no-untyped-def]
            if not full:
                return {}
            return await super().verify(artifacts, full=full)

    pipeline = pk.Pipeline(
        "p", [build(), pk.Stage("Rot", [pk.Action("Flip", pk.python(rot))]), deploy(shipped)]
    )
    async with pk.Engine(store=pk.MemoryStore(), workdir=workdir, workspaces=Blind) as engine:
        result = await (await engine.start(pipeline)).wait()
    assert "app.txt: content changed" in error_of(result, "Deploy.Ship")
    assert shipped == []


# -- a later process: the record's hash --------------------------------------------------------


async def test_a_retried_stage_checks_its_inputs_against_the_recorded_hash(workdir):
    """A stage retried later (another engine: no manifest in memory) still refuses an
    artifact changed since: the store kept its content hash."""
    shipped: list[str] = []
    attempts: list[int] = []

    @pk.provider("Custom", "Flaky", category=pk.Category.DEPLOY)
    @attrs.frozen(eq=False)
    class Flaky:
        async def run(self, ctx: pk.ActionContext) -> None:
            attempts.append(ctx.attempt)
            if len(attempts) == 1:
                raise pk.ActionFailed("not yet")
            shipped.append(await anyio.Path(ctx.inputs["dist"] / "app.txt").read_text())

    pipeline = pk.Pipeline(
        "p", [build(), pk.Stage("Deploy", [pk.Action("Ship", Flaky(), inputs=["dist"])])]
    )
    store = pk.MemoryStore()
    async with pk.Engine(store=store, workdir=workdir) as engine:
        first = await (await engine.start(pipeline)).wait()
    assert first.actions["Deploy.Ship"].status is pk.Status.FAILED
    target = first.actions["Build.Make"].outputs["dist"] / "app.txt"
    target.chmod(0o644)
    target.write_text("edited by hand\n")
    async with pk.Engine(store=store, workdir=workdir) as engine:
        execution = await engine.retry_stage(first.execution_id, "Deploy", pipeline=pipeline)
        again = await execution.wait()
    error = error_of(again, "Deploy.Ship")
    assert error.startswith("input artifact 'dist' changed after Build.Make sealed it")
    assert "content hash" in error
    assert shipped == []
    assert attempts == [1]


# -- the workspace, directly -------------------------------------------------------------------


def test_the_snapshot_hash_is_the_content_hash(tmp_path):
    root = tmp_path / "a"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)) * 5000)
    (root / "sub" / "deeper" / "x.sh").write_text("#!/bin/sh\n")
    (root / "sub" / "deeper" / "x.sh").chmod(0o755)
    (root / "empty").write_bytes(b"")
    (root / "link").symlink_to("a.txt")
    (root / "B.txt").write_text("upper case sorts first")
    (root / ".hidden").write_text("dot files count")
    (root / "dirlink").symlink_to("sub")  # a link to a folder is a link, never followed
    assert snapshot(root, clock=None).digest == content_hash(root)


async def test_a_file_is_trusted_by_its_signature_only_once_the_clock_moved_past_it(
    tmp_path, monkeypatch
):
    """A write in the same tick of the file system's clock as the seal can leave every field of
    ``stat`` as it was: such a file is hashed at every check until the clock has moved on."""
    clock = [0]  # the file system's time, as the workspace reads it
    monkeypatch.setattr(artifacts, "_file_system_now", lambda _folder: clock[0])
    workspace = DiskWorkspace(tmp_path / "ws")
    outputs = {"out": workspace.artifact("out")}
    await workspace.prepare("S.A", outputs, again=False)
    for n in range(3):
        (outputs["out"] / f"{n}.txt").write_text(str(n))
    digest = (await workspace.seal(outputs))["out"][1]
    check = {"out": (outputs["out"], digest)}
    seal = workspace.seals["out"]
    assert not any(entry.confirmed for entry in seal.files.values())  # clock not past them
    # A write the signature cannot show (as in the same tick): hashed, so found.
    target = outputs["out"] / "0.txt"
    target.chmod(0o644)
    target.write_text("X")
    seal.files["0.txt"].signature = artifacts._signature(os.lstat(target))
    assert await workspace.verify(check, full=False) == {"out": ("0.txt: content changed",)}
    target.write_text("0")
    # The clock moves on: the next check hashes once more and then trusts the signatures.
    clock[0] = time.time_ns() + 10**9
    assert await workspace.verify(check, full=False) == {}
    assert all(entry.confirmed for entry in seal.files.values())
    hashed: list[Path] = []
    real = artifacts._file_seal
    monkeypatch.setattr(
        artifacts, "_file_seal", lambda path, *rest: hashed.append(path) or real(path, *rest)
    )
    assert await workspace.verify(check, full=False) == {}
    assert hashed == []  # nothing read: the manifest vouches for every file
    assert await workspace.verify(check, full=True) == {}
    assert len(hashed) == 3  # full: every file read
    # Any later write changes the signature (its ctime is past the clock): hashed, found.
    (outputs["out"] / "1.txt").chmod(0o644)
    (outputs["out"] / "1.txt").write_text("Y")
    assert await workspace.verify(check, full=False) == {"out": ("1.txt: content changed",)}


async def test_a_memory_workspace_given_the_fakes_files_seals_and_verifies_them(tmp_path):
    contents: dict[str, dict[str, bytes]] = {}
    workspace = MemoryWorkspace(tmp_path / "ws", contents=contents)
    outputs = {"out": workspace.artifact("out")}
    await workspace.prepare("S.A", outputs, again=False)
    contents["out"] = {"a.txt": b"a", "sub/b.txt": b"b"}
    hashes = await workspace.seal(outputs)
    disk = tmp_path / "disk"
    (disk / "sub").mkdir(parents=True)
    (disk / "a.txt").write_bytes(b"a")
    (disk / "sub" / "b.txt").write_bytes(b"b")
    assert hashes["out"][1] == content_hash(disk)  # the same bytes hash the same
    check = {"out": (outputs["out"], hashes["out"][1])}
    assert await workspace.verify(check, full=False) == {}
    contents["out"]["a.txt"] = b"changed"
    contents["out"]["c.txt"] = b"new"
    del contents["out"]["sub/b.txt"]
    assert await workspace.verify(check, full=False) == {
        "out": ("a.txt: content changed", "c.txt: added", "sub/b.txt: removed")
    }
    assert not (tmp_path / "ws").exists()


# -- the fake agrees ---------------------------------------------------------------------------


def fake_pipeline(shipped: list[str]) -> pk.Pipeline:
    return pk.Pipeline(
        "p",
        [
            build(),
            pk.Stage("Test", [pk.Action("Tamper", TAMPER, inputs=["dist"])]),
            deploy(shipped),
        ],
    )


def test_the_fake_reports_a_changed_input_as_a_real_run_does(workdir):
    def tamper(ctx: pk.ActionContext) -> object:
        fake.artifacts["dist"]["app.txt"] += b"evil\n"
        return succeed()

    files = {name: text.encode() for name, text in FILES.items()}
    fake = FakeExecutor({"Build.Make": succeed(outputs={"dist": files}), "Test.Tamper": tamper})
    result = fake.run(fake_pipeline([]))
    real = pk.run(fake_pipeline([]), workdir=workdir)
    assert error_of(result, "Test.Tamper") == error_of(real, "Test.Tamper")
    assert [(a, r.status) for a, r in result.actions.items()] == [
        (a, r.status) for a, r in real.actions.items()
    ]
    assert fake.never_ran("Deploy.Ship")
    failed = next(e for e in fake.events if e.action == "Tamper" and e.state is pk.Status.FAILED)
    assert failed.detail["artifact_changed"] == {"dist": ["app.txt: content changed"]}


def test_a_fake_run_that_changes_nothing_records_the_same_hashes_as_a_real_one(workdir):
    files = {name: text.encode() for name, text in FILES.items()}
    files.pop("run.sh")  # the fake's files have no executable bit
    fake = FakeExecutor({"Build.Make": succeed(outputs={"dist": files})})

    def make(ctx: pk.ActionContext) -> None:
        for relative, content in files.items():
            (ctx.outputs["dist"] / relative).parent.mkdir(parents=True, exist_ok=True)
            (ctx.outputs["dist"] / relative).write_bytes(content)

    def pipeline(maker: object) -> pk.Pipeline:
        return pk.Pipeline(
            "p",
            [
                pk.Stage("Build", [pk.Action("Make", pk.python(maker), outputs=["dist"])]),
                pk.Stage("Test", [pk.Action("Read", pk.python(read_dist), inputs=["dist"])]),
            ],
        )

    fake_result = fake.run(pipeline(make))
    assert fake_result.succeeded
    store = pk.MemoryStore()
    real = pk.run(pipeline(make), workdir=workdir, store=store)
    real_events = anyio.run(store.events, real.execution_id)

    def made(events: list[pk.Event]) -> object:
        return next(
            e.detail["artifacts"]
            for e in events
            if e.action == "Make" and e.state is pk.Status.SUCCEEDED
        )

    assert made(fake.events) == made(real_events)


# -- the record folds -------------------------------------------------------------------------


async def test_replay_and_the_timeline_fold_a_changed_artifact(workdir):
    shipped: list[str] = []
    pipeline = pk.Pipeline(
        "p",
        [
            build(),
            pk.Stage("Test", [pk.Action("Tamper", TAMPER, inputs=["dist"])]),
            deploy(shipped),
        ],
    )
    store = pk.MemoryStore()
    result = await pk.arun(pipeline, workdir=workdir, store=store)
    events = await events_of(store, result)
    state = replay(events)
    assert state.status is pk.Status.FAILED
    assert state.actions["Test.Tamper"].status is pk.Status.FAILED
    assert state.actions["Test.Tamper"].error == result.actions["Test.Tamper"].error
    assert state.actions["Deploy.Ship"].status is pk.Status.NOT_STARTED
    made = next(e for e in events if e.action == "Make" and e.state is pk.Status.SUCCEEDED)
    assert state.actions["Build.Make"].artifacts == made.detail["artifacts"]
    # What the record keeps is what was sealed, not what the folder holds now.
    assert made.detail["artifacts"]["dist"] != content_hash(
        result.actions["Build.Make"].outputs["dist"]
    )
    assert pk.testing.never_ran(events, "Deploy.Ship")
    assert pk.testing.ran_before(events, "Build.Make", "Test.Tamper")


# -- the cache ---------------------------------------------------------------------------------


def test_a_cached_output_changed_since_is_made_again_not_reused(tmp_path):
    """The cache copies an earlier execution's outputs only if the copies hash as recorded."""
    runs = tmp_path / "runs"

    def make(ctx: pk.ActionContext) -> None:
        with runs.open("a") as handle:
            handle.write("ran\n")
        (ctx.outputs["dist"] / "app.txt").write_text("v1\n")

    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage(
                "Build",
                [pk.Action("Make", pk.python(make, idempotent=True), outputs=["dist"], cache=True)],
            ),
            pk.Stage("Test", [pk.Action("Read", pk.python(read_dist), inputs=["dist"])]),
        ],
    )
    store = pk.SQLiteStore(tmp_path / "state.db")
    first = pk.run(pipeline, workdir=tmp_path / "wd", store=store)
    cached = first.actions["Build.Make"].outputs["dist"] / "app.txt"
    cached.chmod(0o644)
    cached.write_text("edited\n")
    second = pk.run(pipeline, workdir=tmp_path / "wd", store=store)
    assert second.succeeded
    assert second.actions["Build.Make"].cached is False
    assert runs.read_text() == "ran\nran\n"
    assert (second.actions["Build.Make"].outputs["dist"] / "app.txt").read_text() == "v1\n"
    third = pk.run(pipeline, workdir=tmp_path / "wd", store=store)
    assert third.actions["Build.Make"].cached is True  # the second one's outputs, intact
    assert (third.actions["Build.Make"].outputs["dist"] / "app.txt").read_text() == "v1\n"
    store.close()


async def test_checks_run_in_worker_threads_never_on_the_event_loop(workdir, monkeypatch):
    threads: list[str] = []
    real = DiskWorkspace._verify

    def spy(self, *args):
        threads.append(threading.current_thread().name)
        return real(self, *args)

    monkeypatch.setattr(DiskWorkspace, "_verify", spy)

    def make(ctx: pk.ActionContext) -> None:
        (ctx.outputs["small"] / "one.txt").write_text("1")
        for n in range(artifacts.SMALL_FILES + 1):  # too many for the small-work thread
            (ctx.outputs["big"] / f"{n}.txt").write_text(str(n))

    async def use(ctx: pk.ActionContext) -> None:
        pass

    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage("Build", [pk.Action("Make", pk.python(make), outputs=["small", "big"])]),
            pk.Stage(
                "Test",
                [
                    pk.Action("Small", pk.python(use), inputs=["small"]),
                    pk.Action("Big", pk.python(use), inputs=["big"]),
                ],
            ),
        ],
    )
    result = await pk.arun(pipeline, workdir=workdir, store=pk.MemoryStore())
    assert result.succeeded
    assert len(threads) == 4  # each consumer: before and after
    assert threading.main_thread().name not in threads


async def test_every_changed_input_is_named(workdir):
    def make_both(ctx: pk.ActionContext) -> None:
        make_dist(ctx)
        for n in range(5):
            (ctx.outputs["docs"] / f"{n}.md").write_text("doc")

    def spoil(ctx: pk.ActionContext) -> None:
        for n in range(5):
            (ctx.inputs["docs"] / f"{n}.md").unlink()
        (ctx.inputs["dist"] / "app.txt").write_text("no\n")

    store = pk.MemoryStore()
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage("Build", [pk.Action("Make", pk.python(make_both), outputs=["dist", "docs"])]),
            pk.Stage("Test", [pk.Action("Spoil", pk.python(spoil), inputs=["docs", "dist"])]),
        ],
    )
    result = await pk.arun(pipeline, workdir=workdir, store=store)
    error = error_of(result, "Test.Spoil")
    assert error.startswith(
        "input artifact 'docs' changed while Test.Spoil ran: "
        "0.md: removed, 1.md: removed, 2.md: removed and 2 more ("
    )
    assert error.endswith("; input artifact 'dist' changed too")
    failed = next(
        e
        for e in await events_of(store, result)
        if e.action == "Spoil" and e.state is pk.Status.FAILED
    )
    assert failed.detail["artifact_changed"] == {
        "docs": [f"{n}.md: removed" for n in range(5)],
        "dist": ["app.txt: content changed"],
    }


def test_the_fake_refuses_to_start_a_deploy_on_changed_content_as_a_real_run_does(workdir):
    def meddle_on_disk(ctx: pk.ActionContext) -> None:
        target = ctx.workdir_path.parent.parent / "artifacts" / "dist" / "lib" / "util.txt"
        target.chmod(0o644)
        target.write_text("patched\n")

    def meddle_in_memory(ctx: pk.ActionContext) -> object:
        fake.artifacts["dist"]["lib/util.txt"] = b"patched\n"
        return succeed()

    def pipeline(shipped: list[str]) -> pk.Pipeline:
        return pk.Pipeline(
            "p",
            [
                build(),
                pk.Stage("Meddle", [pk.Action("Patch", pk.python(meddle_on_disk))]),
                deploy(shipped),
            ],
        )

    files = {name: text.encode() for name, text in FILES.items()}
    fake = FakeExecutor(
        {"Build.Make": succeed(outputs={"dist": files}), "Meddle.Patch": meddle_in_memory}
    )
    faked = fake.run(pipeline([]))
    shipped: list[str] = []
    real = pk.run(pipeline(shipped), workdir=workdir)
    assert error_of(faked, "Deploy.Ship") == error_of(real, "Deploy.Ship")
    assert faked.actions["Meddle.Patch"].status is real.actions["Meddle.Patch"].status
    assert shipped == []


async def test_actions_starting_together_share_one_check(workdir):
    """Three consumers launched together: one check before they start, not three."""
    FULL.clear()
    consumers = [pk.Action(f"Read{n}", pk.python(read_dist), inputs=["dist"]) for n in range(3)]
    pipeline = pk.Pipeline("p", [build(), pk.Stage("Test", consumers)])
    async with pk.Engine(store=pk.MemoryStore(), workdir=workdir, workspaces=Counting) as engine:
        result = await (await engine.start(pipeline)).wait()
    assert result.succeeded
    # One shared check before; after, each ends on its own thread (1 to 3 checks).
    assert 2 <= len(FULL) <= 4
