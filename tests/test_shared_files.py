"""The file chores the cache, private input copies, seals and sources share.

One clone (``_runtime/_clone.py``), one tree removal and one file hash (``providers/_files.py``):
where their copies disagreed, the behaviour kept is pinned here.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

import pytest

from pipelinekit._runtime import _blobs, _clone
from pipelinekit._runtime import _private_inputs as private
from pipelinekit._runtime._artifacts import snapshot
from pipelinekit._runtime._blobs import CacheFolder
from pipelinekit.providers import _files
from pipelinekit.providers._files import feed, remove_tree, sha256_file
from pipelinekit.providers._sources import content_hash


def refuse_clones(monkeypatch: pytest.MonkeyPatch, code: int) -> list[int]:
    tries: list[int] = []

    def refuse(fd: int, request: int, arg: int) -> int:
        tries.append(request)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(_clone, "SUPPORTED", True)
    monkeypatch.setattr(_blobs, "SUPPORTED", True)
    monkeypatch.setattr(_clone.fcntl, "ioctl", refuse)
    return tries


@pytest.mark.parametrize("code", sorted(_clone.NO_CLONE), ids=errno.errorcode.get)
def test_a_cache_restore_where_clones_are_refused_links_instead_and_is_no_miss(
    tmp_path, monkeypatch, code
):
    """EPERM included: it used to raise out of the restore (a miss, every time) here only."""
    kept_from = tmp_path / "w" / "out"
    kept_from.mkdir(parents=True)
    (kept_from / "a.txt").write_text("a")
    (kept_from / "b.txt").write_text("b")
    folder = CacheFolder(tmp_path / "cache")
    kept = folder.keep(kept_from)
    assert kept is not None
    tries = refuse_clones(monkeypatch, code)
    unpacked = folder.unpack(kept.tree, tmp_path / "restored")
    assert unpacked is not None
    assert unpacked.method == "link"
    assert tries == [_clone.FICLONE]  # refused once: not tried for the second file
    assert (tmp_path / "restored" / "b.txt").read_text() == "b"
    assert sorted(path.name for path in (tmp_path / "restored").iterdir()) == ["a.txt", "b.txt"]


@pytest.mark.parametrize("code", [errno.EPERM, errno.EOPNOTSUPP], ids=errno.errorcode.get)
def test_a_private_copy_where_clones_are_refused_copies_the_same_way(tmp_path, monkeypatch, code):
    source = tmp_path / "source"
    source.mkdir()
    (source / "a.txt").write_text("a")
    tries = refuse_clones(monkeypatch, code)
    copied = private.copy_private(source, tmp_path / "copy")
    assert (copied.cloned, copied.copied) == (0, 1)
    assert tries == [_clone.FICLONE]
    assert (tmp_path / "copy" / "a.txt").read_text() == "a"


def test_another_clone_error_is_raised_and_leaves_no_file(tmp_path, monkeypatch):
    refuse_clones(monkeypatch, errno.EIO)
    (tmp_path / "blob").write_text("x")
    with pytest.raises(OSError, match="Input/output"):
        _blobs._clone(str(tmp_path / "blob"), str(tmp_path / "target"))
    assert not (tmp_path / "target").exists()


def test_removing_a_tree_never_makes_a_file_writable(tmp_path, monkeypatch):
    """A file that resists removal gets its folder made writable, never its own mode changed.

    It may be a hard link to a cache blob (same inode): private copies' removal used to chmod
    it 0o700, making the blob writable. Root ignores modes, so the refusal is made up.
    """
    blob = tmp_path / "blob"
    blob.write_text("kept")
    blob.chmod(0o444)
    folder = tmp_path / "copies"
    (folder / "src").mkdir(parents=True)
    os.link(blob, folder / "src" / "linked")
    real_unlink = os.unlink
    refused: list[str] = []

    def unlink_refusing_once(path: str, *args: object, **kwargs: object) -> None:
        if Path(path).name == "linked" and not refused:
            refused.append(path)
            raise PermissionError(errno.EACCES, "Permission denied", path)
        real_unlink(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "unlink", unlink_refusing_once)
    private.make_copies("Test.Run", {}, folder)  # removes an earlier attempt's copies first
    assert refused
    assert not (folder / "src").exists()
    assert stat.S_IMODE(blob.stat().st_mode) == 0o444


def test_remove_tree_removes_a_symlink_without_following_it(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "keep.txt").write_text("k")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    remove_tree(tmp_path / "link")
    assert not (tmp_path / "link").is_symlink()
    assert (tmp_path / "real" / "keep.txt").read_text() == "k"


def test_remove_tree_of_read_only_folders(tmp_path):
    (tmp_path / "t" / "deep").mkdir(parents=True)
    (tmp_path / "t" / "deep" / "f").write_text("f")
    (tmp_path / "t" / "deep" / "f").chmod(0o444)
    (tmp_path / "t" / "deep").chmod(0o500)
    (tmp_path / "t").chmod(0o500)
    remove_tree(tmp_path / "t")
    remove_tree(tmp_path / "t")  # nothing there: nothing to do
    assert not (tmp_path / "t").exists()


def test_one_file_hash_for_sources_seals_and_the_cache(tmp_path, monkeypatch):
    """Blocks smaller than the file, a mention across a block's edge: every hash agrees."""
    monkeypatch.setattr(_files, "BLOCK", 7)
    data = b"0123456/home/w/out/abc" * 3 + b"tail"
    root = tmp_path / "root"
    root.mkdir()
    (root / "f.bin").write_bytes(data)
    (root / "run.sh").write_bytes(b"#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "to-f").symlink_to("f.bin")
    assert sha256_file(root / "f.bin") == hashlib.sha256(data).hexdigest()
    assert _blobs._hash_file(str(root / "f.bin"), b"/home/w/out") == (
        hashlib.sha256(data).hexdigest(),
        True,
    )
    assert _blobs._hash_file(str(root / "f.bin"), b"/home/w/gone")[1] is False
    assert content_hash(root) == snapshot(root, clock=None).digest
    seen: list[bytes] = []

    class Blocks:
        def update(self, data: bytes, /) -> None:
            seen.append(data)

    feed(root / "f.bin", Blocks())
    assert b"".join(seen) == data
    assert max(map(len, seen)) == 7
