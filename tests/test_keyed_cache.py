"""pk.Cache: folders kept between executions under a key, restored by links (no copy), at a
new execution's folder, never corrupted by a run that writes in place."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import attrs
import pytest

import pipelinekit as pk
from pipelinekit.testing import FakeExecutor, succeed

# A tools venv as a build makes one: a real venv, and a console script whose shebang names
# the venv's python by its absolute path (as pip writes them).
BUILD_VENV = (
    f"test -d .venv || {sys.executable} -m venv --without-pip .venv",
    (
        'test -f .venv/bin/tool || printf "#!%s/.venv/bin/python\\nimport sys\\n'
        'print(sys.prefix)\\n" "$PWD" > .venv/bin/tool'
    ),
    "chmod +x .venv/bin/tool",
    (
        "test -f .venv/blob.bin || "
        "{ head -c 200000 /dev/urandom > .venv/blob.bin; echo built >> $MARKER; }"
    ),
)


def pipeline(source, marker, *, commands=BUILD_VENV, writable=False, restore_keys=("tools-",)):
    return pk.Pipeline(
        "keyed",
        [
            pk.Stage("Source", [pk.Action("Get", pk.LocalSource(source), outputs=["src"])]),
            pk.Stage(
                "Build",
                [
                    pk.Action(
                        "Tools",
                        pk.shell(
                            *(command.replace("$MARKER", str(marker)) for command in commands),
                            './.venv/bin/tool > "$PK_OUTPUT_out/prefix"',
                        ),
                        inputs=["src"],
                        outputs=["out"],
                        caches=[
                            pk.Cache(
                                key="tools-{os}-{arch}-{python}-#{variables.flavour}-"
                                "{hash:src/requirements*.txt}",
                                paths=[".venv"],
                                restore_keys=list(restore_keys),
                                writable=writable,
                            )
                        ],
                    )
                ],
            ),
        ],
        variables=[pk.Variable("flavour", default="plain")],
    )


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "requirements.txt").write_text("attrs\n")
    return folder


def caches_of(store, result):
    events = anyio.run(store.events, result.execution_id)
    ended = [e for e in events if e.action == "Tools" and e.state.value in {"Succeeded", "Failed"}]
    return ended[-1].detail["caches"]


def test_a_venv_is_restored_by_links_and_works_at_the_new_execution_s_folder(tmp_path, source):
    """The cut: a copied venv's console scripts named the first execution's folder."""
    marker = tmp_path / "built"
    store = pk.SQLiteStore(tmp_path / "state.db")
    first = pk.run(pipeline(source, marker), workdir=tmp_path / "wd", store=store)
    second = pk.run(pipeline(source, marker), workdir=tmp_path / "wd", store=store)
    assert first.succeeded, first.actions["Build.Tools"].error
    assert second.succeeded, second.actions["Build.Tools"].error
    assert [c["outcome"] for c in caches_of(store, first)] == ["miss"]
    hit = caches_of(store, second)[0]
    assert hit["outcome"] == "hit"
    assert "saved" not in hit  # an exact hit is never saved again: entries never change
    assert marker.read_text().count("built") == 1
    # The script ran the restored venv at the second execution's own folder.
    prefix = (second.actions["Build.Tools"].outputs["out"] / "prefix").read_text().strip()
    assert second.execution_id in prefix
    assert first.execution_id not in prefix
    # No copy: the big file is a hard link into the cache folder (only the script rewritten).
    venv = second.workdir / "work" / "Build.Tools" / ".venv"
    assert (venv / "blob.bin").stat().st_nlink >= 3  # the blob, the first run's, this one
    # Only the few files naming the venv's folder were rewritten (scripts, pyvenv.cfg).
    assert 0 < hit["bytes_written"] < 20000 < hit["bytes"]
    assert first.execution_id not in (venv / "bin" / "tool").read_text()


def test_a_changed_key_restores_the_newest_prefix_match_and_saves_the_new_key(tmp_path, source):
    marker = tmp_path / "built"
    store = pk.SQLiteStore(tmp_path / "state.db")
    pk.run(pipeline(source, marker), workdir=tmp_path / "wd", store=store)
    (source / "requirements.txt").write_text("attrs\nhttpx\n")
    second = pk.run(pipeline(source, marker), workdir=tmp_path / "wd", store=store)
    detail = caches_of(store, second)[0]
    assert detail["outcome"] == "partial"
    assert detail["restored_key"] != detail["key"]
    assert detail["saved"] is True
    entries = anyio.run(store.saved_caches, "tools-")
    assert [entry.key for entry in entries] == [detail["key"], detail["restored_key"]]
    assert marker.read_text().count("built") == 1  # it ran on the restored venv, no rebuild


def test_variables_and_the_key_s_parts_are_filled_in(tmp_path, source):
    marker = tmp_path / "built"
    store = pk.SQLiteStore(tmp_path / "state.db")
    result = pk.run(
        pipeline(source, marker),
        workdir=tmp_path / "wd",
        store=store,
        variables={"flavour": "spicy"},
    )
    key = caches_of(store, result)[0]["key"]
    major, minor = sys.version_info[:2]
    assert key.startswith(f"tools-{sys.platform}-")
    assert f"-{major}.{minor}-spicy-" in key
    assert "{" not in key


def test_a_blob_written_in_place_is_never_restored_again(tmp_path, source):
    """Root ignores read-only modes: a tool writing a restored file in place changes the
    cache's blob. It is evicted when the action ends; the next run misses and builds again."""
    marker = tmp_path / "built"
    corrupt = (*BUILD_VENV, "echo corrupted > .venv/blob.bin")
    store = pk.SQLiteStore(tmp_path / "state.db")
    first = pk.run(pipeline(source, marker), workdir=tmp_path / "wd", store=store)
    blob = first.workdir / "work" / "Build.Tools" / ".venv" / "blob.bin"
    original = blob.read_bytes()
    pk.run(pipeline(source, marker, commands=corrupt), workdir=tmp_path / "wd", store=store)
    third = pk.run(pipeline(source, marker), workdir=tmp_path / "wd", store=store)
    assert caches_of(store, third)[0]["outcome"] == "miss"
    restored = third.workdir / "work" / "Build.Tools" / ".venv" / "blob.bin"
    assert restored.read_bytes() != b"corrupted\n"
    assert len(original) == 200000


def test_a_blob_changed_behind_the_cache_s_back_is_a_miss(tmp_path, source):
    marker = tmp_path / "built"
    store = pk.SQLiteStore(tmp_path / "state.db")
    first = pk.run(pipeline(source, marker), workdir=tmp_path / "wd", store=store)
    kept = first.workdir / "work" / "Build.Tools" / ".venv" / "blob.bin"
    kept.chmod(0o644)
    with kept.open("r+b") as handle:  # the same inode as the blob: as root can
        handle.write(b"X")
    second = pk.run(pipeline(source, marker), workdir=tmp_path / "wd", store=store)
    assert second.succeeded
    assert caches_of(store, second)[0]["outcome"] == "miss"
    assert marker.read_text().count("built") == 2


def test_writable_restores_private_copies(tmp_path, source):
    marker = tmp_path / "built"
    store = pk.SQLiteStore(tmp_path / "state.db")
    pk.run(pipeline(source, marker, writable=True), workdir=tmp_path / "wd", store=store)
    second = pk.run(pipeline(source, marker, writable=True), workdir=tmp_path / "wd", store=store)
    blob = second.workdir / "work" / "Build.Tools" / ".venv" / "blob.bin"
    assert blob.stat().st_nlink == 1
    assert os.access(blob, os.W_OK)
    assert caches_of(store, second)[0]["outcome"] == "hit"


def test_use_cache_false_restores_nothing(tmp_path, source):
    marker = tmp_path / "built"
    store = pk.SQLiteStore(tmp_path / "state.db")
    pk.run(pipeline(source, marker), workdir=tmp_path / "wd", store=store)
    again = pk.run(pipeline(source, marker), workdir=tmp_path / "wd", store=store, use_cache=False)
    assert caches_of(store, again)[0]["outcome"] == "off"
    assert marker.read_text().count("built") == 2


def test_a_glob_matching_nothing_fails_the_action_naming_the_files(tmp_path, source):
    bad = pipeline(source, tmp_path / "m")
    action = bad.stages[1].actions[0]
    cache = pk.Cache(key="t-{hash:src/requirments.txt}", paths=[".venv"])
    stage = pk.Stage("Build", [pk.Action("Tools", action.provider, inputs=["src"], caches=[cache])])
    result = pk.run(pk.Pipeline("keyed", [bad.stages[0], stage]), workdir=tmp_path / "wd")
    error = result.actions["Build.Tools"].error
    assert "{hash:src/requirments.txt} matches no file" in error
    assert "requirements.txt" in error


@pytest.mark.parametrize(
    ("cache", "message"),
    [
        (pk.Cache(key="a-{oss}", paths=[".venv"]), "unknown placeholder '{oss}'"),
        (pk.Cache(key="a-{", paths=[".venv"]), "unmatched '{'"),
        (pk.Cache(key="a", paths=["/abs"]), "must be relative to the action's working folder"),
        (pk.Cache(key="a", paths=["../up"]), "must be relative"),
        (pk.Cache(key="a", paths=[]), "non-empty list"),
        (pk.Cache(key="a", paths=["x", "x/y"]), "'x/y' is inside 'x'"),
        (pk.Cache(key="a-{hash:other/*.txt}", paths=["x"]), "'other', which is not an input"),
    ],
)
def test_a_wrong_declaration_is_refused_naming_the_field(cache, message):
    with pytest.raises(pk.PipelineDefinitionError, match="caches\\[0\\]") as caught:
        pk.Action("A", pk.shell("true"), inputs=["src"], caches=[cache])
    assert message in str(caught.value)


def test_a_reference_in_a_key_is_checked_when_the_pipeline_is_validated(tmp_path, source):
    cache = pk.Cache(key="t-#{variables.flavor}", paths=[".venv"])
    with pytest.raises(pk.PipelineDefinitionError, match="flavor"):
        pk.Pipeline(
            "p",
            [pk.Stage("S", [pk.Action("A", pk.shell("true"), caches=[cache])])],
            variables=[pk.Variable("flavour", default="x")],
        ).compile()


def test_the_fake_hits_and_misses_as_the_disk_does():
    store = pk.MemoryStore()
    cache = pk.Cache(key="t-{hash:src/req.txt}", paths=[".venv"], restore_keys=["t-"])
    p = pk.Pipeline(
        "p",
        [
            pk.Stage("Source", [pk.Action("Get", pk.shell("true"), outputs=["src"])]),
            pk.Stage("B", [pk.Action("A", pk.shell("true"), inputs=["src"], caches=[cache])]),
        ],
    )

    def outcome(requirements):
        fake = FakeExecutor(
            {"Source.Get": succeed(outputs={"src": {"req.txt": requirements}})}, store=store
        )
        fake.run(p)
        done = [e for e in fake.events if e.action == "A" and e.state is pk.Status.SUCCEEDED]
        return done[0].detail["caches"][0]["outcome"]

    assert outcome(b"a") == "miss"
    assert outcome(b"a") == "hit"
    assert outcome(b"b") == "partial"
    assert outcome(b"b") == "hit"


def test_the_script_of_a_restored_venv_runs_directly(tmp_path, source):
    marker = tmp_path / "built"
    store = pk.SQLiteStore(tmp_path / "state.db")
    pk.run(pipeline(source, marker), workdir=tmp_path / "wd", store=store)
    second = pk.run(pipeline(source, marker), workdir=tmp_path / "wd", store=store)
    venv = second.workdir / "work" / "Build.Tools" / ".venv"
    out = subprocess.run([venv / "bin" / "tool"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(venv)


def test_a_key_holding_a_secret_fails_the_action_and_reaches_no_store(tmp_path):
    store = pk.SQLiteStore(tmp_path / "state.db")
    cache = pk.Cache(key="t-#{variables.token}", paths=[".venv"])
    p = pk.Pipeline(
        "p",
        [pk.Stage("S", [pk.Action("A", pk.shell("mkdir -p .venv"), caches=[cache])])],
        variables=[pk.Variable("token", secret=True)],
    )
    result = pk.run(p, workdir=tmp_path / "wd", store=store, variables={"token": "hunter22"})
    assert "holds the value of a secret variable" in result.actions["S.A"].error
    assert anyio.run(store.saved_caches) == []
    assert "hunter22" not in (tmp_path / "state.db").read_bytes().decode("latin-1")


def test_a_cache_path_through_a_symlink_never_touches_what_it_points_at(tmp_path):
    """The cut: an action made ``lnk -> outside``; ``paths=["lnk/victim"]`` made the files
    outside read-only hard links into the cache, and the next restore deleted and refilled
    ``outside/victim`` (a file added there in between was lost). A path through a link is
    neither saved nor restored; the link itself (``paths=["lnk"]``) is kept as a link."""
    outside = tmp_path / "outside"
    (outside / "victim").mkdir(parents=True)
    (outside / "victim" / "keep.txt").write_text("keep\n")
    store = pk.SQLiteStore(tmp_path / "state.db")
    nest = pk.Pipeline(
        "c1",
        [
            pk.Stage(
                "S",
                [
                    pk.Action(
                        "Nest",
                        pk.shell(f"test -e lnk || ln -s {outside} lnk", "mkdir -p lnk/victim"),
                        caches=[
                            pk.Cache(key="one", paths=["lnk"]),
                            pk.Cache(key="two", paths=["lnk/victim"]),
                        ],
                    )
                ],
            )
        ],
    )
    first = pk.run(nest, workdir=tmp_path / "wd", store=store)
    assert first.succeeded, first.actions["S.Nest"].error
    kept = outside / "victim" / "keep.txt"
    assert kept.stat().st_nlink == 1
    assert kept.stat().st_mode & 0o777 == 0o644
    (outside / "victim" / "added.txt").write_text("mine\n")
    second = pk.run(nest, workdir=tmp_path / "wd", store=store)
    assert second.succeeded, second.actions["S.Nest"].error
    assert sorted(path.name for path in (outside / "victim").iterdir()) == [
        "added.txt",
        "keep.txt",
    ]
    assert kept.stat().st_nlink == 1
    assert kept.stat().st_mode & 0o777 == 0o644
    one, two = caches_of_action(store, second, "Nest")
    assert one["outcome"] == "hit"  # the link itself, restored as a link
    assert (second.workdir / "work" / "S.Nest" / "lnk").readlink() == outside
    assert two["outcome"] == "miss"
    assert "skipped" in two
    assert "saved" not in two
    assert [entry.key for entry in anyio.run(store.saved_caches)] == ["one"]
    log = Path(second.actions["S.Nest"].log_path).read_text()
    assert "'lnk' is a symbolic link" in log


def caches_of_action(store, result, action):
    events = anyio.run(store.events, result.execution_id)
    ended = [e for e in events if e.action == action and e.state.value in {"Succeeded", "Failed"}]
    return ended[-1].detail["caches"]


SNEAKY = (
    "import os; p = 'd/data.txt'; st = os.stat(p); os.chmod(p, 0o644); "
    "f = open(p, 'r+'); f.write('CORRUPTED-CONTNT\\n'); f.close(); "
    "os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))"
)


def sneaky_pipeline(*, sneaky):
    write = f'{sys.executable} -c "{SNEAKY}"' if sneaky else "true"
    return pk.Pipeline(
        "c2",
        [
            pk.Stage(
                "S",
                [
                    pk.Action(
                        "A",
                        pk.shell(
                            "test -e d/data.txt || "
                            "{ mkdir -p d; echo ORIGINAL-CONTENT > d/data.txt; }",
                            'cat d/data.txt > "$PK_OUTPUT_out/seen"',
                            write,
                        ),
                        outputs=["out"],
                        caches=[pk.Cache(key="k", paths=["d"])],
                    )
                ],
            )
        ],
    )


def test_a_same_size_write_keeping_the_mtime_is_evicted_when_the_action_ends(tmp_path):
    """The cut: a write in place of as many bytes, with the mtime set back, left the blob's
    size and mtime as recorded: later hits restored the corrupted bytes. The inode's change
    time gives it away; the blob is hashed again and evicted."""
    store = pk.SQLiteStore(tmp_path / "state.db")
    pk.run(sneaky_pipeline(sneaky=False), workdir=tmp_path / "wd", store=store)
    sneaky = pk.run(sneaky_pipeline(sneaky=True), workdir=tmp_path / "wd", store=store)
    assert caches_of_action(store, sneaky, "A")[0]["evicted"] == 1
    after = pk.run(sneaky_pipeline(sneaky=False), workdir=tmp_path / "wd", store=store)
    assert caches_of_action(store, after, "A")[0]["outcome"] == "miss"
    assert (after.actions["S.A"].outputs["out"] / "seen").read_text() == "ORIGINAL-CONTENT\n"
    again = pk.run(sneaky_pipeline(sneaky=False), workdir=tmp_path / "wd", store=store)
    assert caches_of_action(store, again, "A")[0]["outcome"] == "hit"
    assert (again.actions["S.A"].outputs["out"] / "seen").read_text() == "ORIGINAL-CONTENT\n"


def test_a_same_size_write_behind_the_cache_s_back_is_a_miss(tmp_path):
    """A write through a link the cache cannot watch (the saving execution's own folder),
    same size and mtime set back: the next restore sees the blob's change time moved since
    it was last checked, hashes it, and misses rather than restore it."""
    store = pk.SQLiteStore(tmp_path / "state.db")
    first = pk.run(sneaky_pipeline(sneaky=False), workdir=tmp_path / "wd", store=store)
    workdir = first.workdir / "work" / "S.A"
    subprocess.run([sys.executable, "-c", SNEAKY], cwd=workdir, check=True)
    assert (workdir / "d" / "data.txt").stat().st_nlink == 2  # the blob's inode
    second = pk.run(sneaky_pipeline(sneaky=False), workdir=tmp_path / "wd", store=store)
    assert caches_of_action(store, second, "A")[0]["outcome"] == "miss"
    assert (second.actions["S.A"].outputs["out"] / "seen").read_text() == "ORIGINAL-CONTENT\n"


def test_a_file_hard_linked_from_outside_is_copied_into_the_cache_never_changed(tmp_path):
    """A tool's own cache hard-links its files into a venv (uv does): keeping the venv must
    neither make that shared inode read-only nor make it a blob that later writes reach."""
    outside = tmp_path / "tool-cache" / "lib.py"
    outside.parent.mkdir()
    outside.write_text("shared\n")
    store = pk.SQLiteStore(tmp_path / "state.db")
    linking = pk.Pipeline(
        "p",
        [
            pk.Stage(
                "S",
                [
                    pk.Action(
                        "A",
                        pk.shell(f"mkdir -p .venv && ln -f {outside} .venv/lib.py"),
                        caches=[pk.Cache(key="k", paths=[".venv"])],
                    )
                ],
            )
        ],
    )
    first = pk.run(linking, workdir=tmp_path / "wd", store=store)
    assert caches_of_action(store, first, "A")[0]["saved"] is True
    assert outside.stat().st_mode & 0o777 == 0o644
    kept = first.workdir / "work" / "S.A" / ".venv" / "lib.py"
    assert kept.stat().st_ino != outside.stat().st_ino  # replaced by a link to the copy
    outside.write_text("SHARED\n")  # the tool's cache changes: the entry does not
    second = pk.run(
        attrs.evolve(
            linking,
            stages=[
                pk.Stage(
                    "S",
                    [
                        pk.Action(
                            "A",
                            pk.shell("cat .venv/lib.py > $PK_OUTPUT_o/seen"),
                            outputs=["o"],
                            caches=[pk.Cache(key="k", paths=[".venv"])],
                        )
                    ],
                )
            ],
        ),
        workdir=tmp_path / "wd",
        store=store,
    )
    assert caches_of_action(store, second, "A")[0]["outcome"] == "hit"
    assert (second.actions["S.A"].outputs["o"] / "seen").read_text() == "shared\n"


def test_a_blob_swept_during_a_restore_is_a_miss_with_a_warning(tmp_path, source, monkeypatch):
    """A `cache prune` sweeping a blob between the restore's check and its link: the action
    runs on an empty folder (not a half-restored one), and its log says why."""
    from pipelinekit._runtime._blobs import CacheFolder  # noqa: PLC0415

    marker = tmp_path / "built"
    store = pk.SQLiteStore(tmp_path / "state.db")
    pk.run(pipeline(source, marker), workdir=tmp_path / "wd", store=store)
    checked = CacheFolder._checked

    def swept_meanwhile(self, files, seen):
        found = checked(self, files, seen)
        Path(found[-1][0]).unlink()  # the last blob: the others are linked first
        return found

    monkeypatch.setattr(CacheFolder, "_checked", swept_meanwhile)
    second = pk.run(pipeline(source, marker), workdir=tmp_path / "wd", store=store)
    assert second.succeeded, second.actions["Build.Tools"].error
    detail = caches_of(store, second)[0]
    assert detail["outcome"] == "miss"
    assert "FileNotFoundError" in detail["error"]
    assert marker.read_text().count("built") == 2  # built again, from an empty folder
    log = Path(second.actions["Build.Tools"].log_path).read_text()
    assert "cache not restored" in log


def test_a_restore_that_hits_a_file_error_leaves_no_half_restored_folder(tmp_path, monkeypatch):
    from pipelinekit._runtime._blobs import CacheFolder  # noqa: PLC0415

    folder = tmp_path / "work" / ".venv"
    (folder / "bin").mkdir(parents=True)
    for name in ("a", "b", "c"):
        (folder / "bin" / name).write_text(name)
    cache = CacheFolder(tmp_path / "cache")
    kept = cache.keep(folder)
    checked = CacheFolder._checked

    def swept_meanwhile(self, files, seen):
        found = checked(self, files, seen)
        Path(found[-1][0]).unlink()
        return found

    monkeypatch.setattr(CacheFolder, "_checked", swept_meanwhile)
    target = tmp_path / "again" / ".venv"
    with pytest.raises(FileNotFoundError):
        cache.unpack(kept.tree, target)
    assert not target.exists()


def test_keeping_a_tree_again_makes_it_young_so_a_prune_before_the_save_keeps_it(tmp_path):
    from pipelinekit._runtime._blobs import CacheFolder  # noqa: PLC0415

    folder = tmp_path / "work" / ".venv"
    folder.mkdir(parents=True)
    (folder / "a").write_text("a")
    cache = CacheFolder(tmp_path / "cache")
    kept = cache.keep(folder)
    tree = cache.trees / f"{kept.tree}.json"
    os.utime(tree, (0, 0))  # kept long ago, its entry since pruned
    assert cache.keep(folder).tree == kept.tree
    cache.sweep(set())  # a prune before the new entry is saved: no entry names the tree yet
    assert tree.exists()
    assert cache.unpack(kept.tree, tmp_path / "again") is not None
