"""gc: retention of executions (the newest N per pipeline, anything younger than an age), never
an unfinished or leased one; cache list and prune; cache=True outputs kept once on disk."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta

import anyio
import anyio.from_thread
import attrs
import pytest

import pipelinekit as pk
from pipelinekit._runtime._blobs import CacheFolder
from pipelinekit.cli import main
from pipelinekit.cli._maintenance import collect, parse_age, prune_caches


def started(execution_id, when, pipeline="p"):
    return pk.Event(
        "pipeline", pk.Status.IN_PROGRESS, pipeline, execution_id, when, None, None, {}, 1
    )


def ended(execution_id, when, pipeline="p"):
    return pk.Event(
        "pipeline", pk.Status.SUCCEEDED, pipeline, execution_id, when, None, None, {}, 2
    )


NOW = datetime(2026, 6, 1, tzinfo=UTC)
pytestmark = pytest.mark.anyio


async def fill(store, home, count, *, pipeline="p", running=(), leased=()):
    for index in range(count):
        execution_id = f"{pipeline}-{index:04d}"
        when = NOW - timedelta(days=count - index)
        events = [started(execution_id, when, pipeline)]
        if index not in running:
            events.append(ended(execution_id, when + timedelta(minutes=1), pipeline))
        await store.record(events)
        if index in leased:
            await store.acquire(execution_id, "other", until=NOW.timestamp() + 60, now=0)
        (home / "executions" / execution_id / "logs").mkdir(parents=True)
        (home / "executions" / execution_id / "logs" / "a.log").write_text("x" * 100)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_gc_keeps_the_newest_and_the_young_and_deletes_the_rest_with_folders(tmp_path, kind):
    store = pk.MemoryStore() if kind == "memory" else pk.SQLiteStore(tmp_path / "state.db")
    await fill(store, tmp_path, 10)
    report = await collect(store, tmp_path, keep=3, older_than=timedelta(days=5), now=NOW)
    left = sorted(summary.id for summary in await store.executions(limit=100))
    # Newest 3 kept, and everything younger than 5 days (the last 4): p-0006..p-0009.
    assert left == [f"p-{i:04d}" for i in range(6, 10)]
    assert sorted(report.executions) == [f"p-{i:04d}" for i in range(6)]
    assert sorted(path.name for path in (tmp_path / "executions").iterdir()) == left
    assert await store.events("p-0000") == []


async def test_gc_never_deletes_an_unfinished_or_leased_execution(tmp_path):
    store = pk.MemoryStore()
    await fill(store, tmp_path, 6, running={0}, leased={1})
    report = await collect(store, tmp_path, keep=0, older_than=timedelta(0), now=NOW)
    assert sorted(report.skipped_running) == ["p-0000", "p-0001"]
    left = sorted(summary.id for summary in await store.executions(limit=100))
    assert left == ["p-0000", "p-0001"]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_gc_keeps_an_execution_a_retry_takes_up_after_it_was_chosen(tmp_path, kind):
    """The lease and status are checked again in the delete's transaction: a retry that took
    the execution up between gc's choice and its delete keeps its events and its folder."""
    store = pk.MemoryStore() if kind == "memory" else pk.SQLiteStore(tmp_path / "state.db")
    await fill(store, tmp_path, 3)
    delete = store.delete_executions

    async def retried_meanwhile(ids, **kwargs):
        # A retry of p-0000 starts: it takes the lease and records that it runs again.
        await store.acquire("p-0000", "retry", until=NOW.timestamp() + 60, now=NOW.timestamp())
        again = started("p-0000", NOW, "p")
        await store.record([attrs.evolve(again, sequence=3, detail={"execution_attempt": 2})])
        return await delete(ids, **kwargs)

    store.delete_executions = retried_meanwhile
    report = await collect(store, tmp_path, keep=0, older_than=timedelta(0), now=NOW)
    assert sorted(report.executions) == ["p-0001", "p-0002"]
    assert report.skipped_running == ("p-0000",)
    assert len(await store.events("p-0000")) == 3
    assert await store.lease("p-0000") is not None
    assert sorted(path.name for path in (tmp_path / "executions").iterdir()) == ["p-0000"]


async def test_keep_counts_per_pipeline(tmp_path):
    store = pk.MemoryStore()
    await fill(store, tmp_path, 4, pipeline="a")
    await fill(store, tmp_path, 4, pipeline="b")
    await collect(store, tmp_path, keep=2, older_than=timedelta(0), now=NOW)
    left = sorted(summary.id for summary in await store.executions(limit=100))
    assert left == ["a-0002", "a-0003", "b-0002", "b-0003"]


async def test_dry_run_changes_nothing(tmp_path):
    store = pk.MemoryStore()
    await fill(store, tmp_path, 5)
    report = await collect(store, tmp_path, keep=1, older_than=timedelta(0), dry_run=True, now=NOW)
    assert len(report.executions) == 4
    assert len(await store.executions(limit=100)) == 5
    assert len(list((tmp_path / "executions").iterdir())) == 5


async def test_a_failing_delete_leaves_every_execution_whole(tmp_path):
    """One transaction: an error in the middle deletes nothing (as a crash would)."""
    store = pk.SQLiteStore(tmp_path / "state.db")
    await fill(store, tmp_path, 3)
    store.close()
    with closing(sqlite3.connect(tmp_path / "state.db")) as connection:
        connection.execute(
            "CREATE TRIGGER refuse BEFORE DELETE ON executions WHEN old.id = 'p-0002' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        connection.commit()
    store = pk.SQLiteStore(tmp_path / "state.db")
    with pytest.raises(pk.StoreError):
        await store.delete_executions(["p-0000", "p-0001", "p-0002"], now=NOW.timestamp())
    assert len(await store.executions(limit=100)) == 3
    assert len(await store.events("p-0000")) == 2
    store.close()


@pytest.mark.parametrize(
    ("text", "seconds"), [("30d", 2592000), ("12h", 43200), ("90m", 5400), ("1d12h", 129600)]
)
def test_ages(text, seconds):
    assert parse_age(text).total_seconds() == seconds


def test_the_cli_gc_and_cache_commands(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.py").write_text(
        "import pipelinekit as pk\n"
        "pipeline = pk.Pipeline('p', [pk.Stage('S', [pk.Action('A', pk.shell(\n"
        "    'test -d .venv || { mkdir .venv && echo hi > .venv/x; }'),\n"
        "    caches=[pk.Cache(key='k-{os}', paths=['.venv'])])])])\n"
    )
    for _ in range(3):
        assert main(["run", "p.py", "--plain"]) == 0
    capsys.readouterr()
    assert main(["cache", "list"]) == 0
    listing = capsys.readouterr().out
    assert "k-linux" in listing
    assert "folder" in listing
    assert "S.A" in listing
    assert main(["gc", "--keep", "1", "--older-than", "0s"]) == 0
    assert "deleted 2 execution(s)" in capsys.readouterr().out
    assert main(["cache", "prune"]) == 2
    assert capsys.readouterr().err.startswith("pipelinekit: error: cache prune needs --older-than")
    assert main(["cache", "prune", "--all"]) == 0
    assert "forgot 1 cache entry" in capsys.readouterr().out
    assert main(["cache", "list"]) == 0
    assert "no cache entries" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        main(["gc", "--older-than", "soon"])
    assert exited.value.code == 2
    assert "'soon' is not an age" in capsys.readouterr().err


def test_a_gc_that_hits_a_busy_folder_names_it_and_says_the_next_gc_finishes(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.py").write_text(
        "import pipelinekit as pk\n"
        "pipeline = pk.Pipeline('p', [pk.Stage('S', [pk.Action('A', pk.shell('echo hi'))])])\n"
    )
    for _ in range(2):
        assert main(["run", "p.py", "--plain"]) == 0
    capsys.readouterr()
    unlink = os.unlink

    def busy(path, *args, **kwargs):
        if str(path).endswith(".log"):  # a mount point, a file a process holds on some OS
            raise OSError(16, "Device or resource busy", str(path))
        return unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", busy)
    assert main(["gc", "--keep", "0", "--older-than", "0s"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2  # one per execution folder, each swept as far as it could be
    for line in lines:
        assert line.startswith("pipelinekit: error: execution folder ")
        assert "/executions/" in line
        assert "Device or resource busy" in line
        assert "`pipelinekit gc` removes what is left" in line


async def test_prune_by_last_use_frees_the_files_of_forgotten_entries(tmp_path, monkeypatch):
    store = pk.MemoryStore()
    folder = CacheFolder(tmp_path / "cache")
    (tmp_path / "w" / ".venv").mkdir(parents=True)
    (tmp_path / "w" / ".venv" / "x").write_text("x" * 1000)
    kept = folder.keep(tmp_path / "w" / ".venv")
    old = NOW - timedelta(days=40)
    await store.save_cache(
        pk.stores.SavedCache(
            "k", (".venv",), {".venv": kept.tree}, 1000, 1, old, old, "e", "S.A", "/w"
        )
    )
    monkeypatch.setattr("pipelinekit._runtime._blobs._GRACE_SECONDS", 0.0)
    keys, freed = await prune_caches(
        store, folder, older_than=timedelta(days=30), dry_run=True, now=NOW
    )
    assert keys == ["k"]
    assert await store.saved_caches() != []
    (tmp_path / "w" / ".venv" / "x").unlink()  # only the cache holds it now
    keys, freed = await prune_caches(store, folder, older_than=timedelta(days=30), now=NOW)
    assert keys == ["k"]
    assert freed >= 1000  # the file, and its tree
    assert folder.size() == 0


def test_cache_true_outputs_are_stored_once_however_many_runs(tmp_path):
    """The cut: cache=True copied its outputs into each execution (3.2 GB after 19 runs)."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "in.txt").write_text("x")
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage("Source", [pk.Action("Get", pk.LocalSource(source), outputs=["src"])]),
            pk.Stage(
                "Build",
                [
                    pk.Action(
                        "Make",
                        pk.shell('head -c 1000000 /dev/urandom > "$PK_OUTPUT_out/big"'),
                        inputs=["src"],
                        outputs=["out"],
                        cache=True,
                    )
                ],
            ),
        ],
    )
    results = [pk.run(pipeline, workdir=tmp_path / "wd") for _ in range(5)]
    assert [r.actions["Build.Make"].cached for r in results] == [False] + [True] * 4
    inodes = {(r.actions["Build.Make"].outputs["out"] / "big").stat().st_ino for r in results}
    assert len(inodes) == 1  # one file on disk, linked from every execution and the cache
    total = 0
    seen = set()
    for path in (tmp_path / "wd").rglob("*"):
        if path.is_file() and not path.is_symlink():
            status = path.lstat()
            if status.st_ino not in seen:
                seen.add(status.st_ino)
                total += status.st_size
    assert total < 1_500_000  # 5 runs, one megabyte kept once
    contents = {(r.actions["Build.Make"].outputs["out"] / "big").read_bytes() for r in results}
    assert len(contents) == 1


@pytest.mark.parametrize("dry_run", [False, True])
async def test_gc_sweeps_read_only_trees_and_never_follows_links(tmp_path, dry_run):
    """Folders are swept on descriptors in batches: read-only (sealed) folders go, a link to a
    folder outside is removed without touching what it points at, a hard-linked file (kept by
    the cache) frees nothing, and a dry run counts the same bytes and removes nothing."""
    store = pk.MemoryStore()
    await fill(store, tmp_path, 2)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    sealed = tmp_path / "executions" / "p-0000" / "artifacts" / "S.A" / "deep"
    sealed.mkdir(parents=True)
    (sealed / "out.bin").write_bytes(b"y" * 1000)
    (sealed.parent / "linked").hardlink_to(outside / "keep.txt")
    (sealed.parent / "escape").symlink_to(outside)
    for folder in (sealed, sealed.parent, sealed.parent.parent):
        folder.chmod(0o555)
    (tmp_path / "executions" / "p-0001" / "stray").symlink_to(outside)
    report = await collect(
        store, tmp_path, keep=0, older_than=timedelta(0), dry_run=dry_run, now=NOW
    )
    assert report.folders == 2
    assert report.bytes == 2 * 100 + 1000
    assert (outside / "keep.txt").read_text() == "keep"
    left = sorted(path.name for path in (tmp_path / "executions").iterdir())
    assert left == ([] if not dry_run else ["p-0000", "p-0001"])
    if dry_run:
        assert (sealed / "out.bin").stat().st_size == 1000


def test_cache_true_outputs_of_a_miss_are_linked_to_the_content_already_kept(tmp_path):
    """The cut: outputs were linked to the cache only on a hit; a miss with the same bytes
    (another variable) kept them again: 5 MB, then 9.9 MB, then 15 MB."""
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage(
                "Build",
                [
                    pk.Action(
                        "Make",
                        pk.shell(
                            "head -c 1000000 /dev/zero | tr '\\0' 'a' > $PK_OUTPUT_out/big.bin",
                            "chmod +x $PK_OUTPUT_out/big.bin",
                            "echo #{variables.n} > $PK_OUTPUT_out/n.txt",
                        ),
                        outputs=["out"],
                        cache=True,
                    )
                ],
            )
        ],
        variables=[pk.Variable("n", default="0")],
    )
    results = [pk.run(pipeline, workdir=tmp_path / "wd", variables={"n": str(n)}) for n in range(3)]
    assert [r.actions["Build.Make"].cached for r in results] == [False] * 3
    outputs = [r.actions["Build.Make"].outputs["out"] for r in results]
    assert len({(out / "big.bin").stat().st_ino for out in outputs}) == 1
    assert all(os.access(out / "big.bin", os.X_OK) for out in outputs)
    assert [(out / "n.txt").read_text() for out in outputs] == ["0\n", "1\n", "2\n"]
    again = pk.run(pipeline, workdir=tmp_path / "wd", variables={"n": "1"})
    assert again.actions["Build.Make"].cached
    assert (again.actions["Build.Make"].outputs["out"] / "n.txt").read_text() == "1\n"


def test_a_damaged_blob_is_never_what_a_new_output_is_linked_to(tmp_path):
    """Linking a new file to the blob of its content trusts the blob's name only after its
    bytes are checked: a blob damaged since is replaced by the new file's bytes."""
    folder = CacheFolder(tmp_path / "cache")
    first = tmp_path / "one"
    first.mkdir()
    (first / "f").write_text("same bytes\n")
    folder.keep(first)
    blob = first / "f"
    blob.chmod(0o644)
    blob.write_text("SAME BYTES\n")  # in place: the blob's inode, as root can
    second = tmp_path / "two"
    second.mkdir()
    (second / "f").write_text("same bytes\n")
    folder.keep(second)
    assert (second / "f").read_text() == "same bytes\n"
    assert (second / "f").stat().st_nlink == 2  # linked to the blob made afresh


@pytest.mark.parametrize(
    "argv",
    [
        ["cache", "prune", "--older-than", "99999999999d"],
        ["gc", "--older-than", "10000000000000d"],
        ["gc", "--older-than", "9" * 400 + "s"],
    ],
)
def test_an_age_too_large_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--store", str(tmp_path / ".pipelinekit")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "too large" in err


def test_prune_refuses_an_empty_key_prefix(tmp_path, capsys, monkeypatch):
    """An unset $PREFIX in a script (``--key "$PREFIX"``) must not forget every entry."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.py").write_text(
        "import pipelinekit as pk\n"
        "pipeline = pk.Pipeline('p', [pk.Stage('S', [pk.Action('A', pk.shell(\n"
        "    'mkdir -p .venv && echo hi > .venv/x'),\n"
        "    caches=[pk.Cache(key='k', paths=['.venv'])])])])\n"
    )
    assert main(["run", "p.py", "--plain"]) == 0
    capsys.readouterr()
    assert main(["cache", "prune", "--key", ""]) == 2
    err = capsys.readouterr().err
    assert "--all" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["cache", "list"]) == 0
    assert "k " in capsys.readouterr().out


async def test_a_prune_is_cancellable_between_the_entries_it_sweeps(tmp_path, monkeypatch):
    """The sweep runs in a worker thread that checks for cancellation before each entry."""
    folder = CacheFolder(tmp_path / "cache")
    (tmp_path / "w").mkdir()
    for index in range(5):
        (tmp_path / "w" / f"f{index}").write_text(str(index))
    folder.keep(tmp_path / "w")
    (tmp_path / "w").rename(tmp_path / "gone")
    monkeypatch.setattr("pipelinekit._runtime._blobs._GRACE_SECONDS", 0.0)
    calls: list[None] = []

    class StoppedError(Exception):
        pass

    def checkpoint():
        calls.append(None)
        if len(calls) == 3:  # a few entries in
            raise StoppedError

    with pytest.raises(StoppedError):
        folder.sweep(set(), checkpoint=checkpoint)
    assert folder.size() > 0  # stopped before every blob went
    given = []
    monkeypatch.setattr(
        CacheFolder, "sweep", lambda self, keep, **options: given.append(options) or (0, 0)
    )
    await prune_caches(pk.MemoryStore(), folder, every=True)
    assert given[0]["checkpoint"] is anyio.from_thread.check_cancelled
