"""What the cache folder costs: restoring a venv-sized folder, and gc over many executions.

    python bench/cache.py [--repeat 5] [--quick]

1. ``restore``: a venv-like folder of 100 MB (3,000 files: many small .py files, a few large
   shared libraries, a bin/ of scripts naming the folder) is kept once, then restored into a
   new execution's folder (``CacheFolder.unpack``, which also checks every blob), against
   ``cp -r`` of the same folder (the baseline: what a copy per run costs). Bytes written by
   the restore are reported (the scripts rewritten for the new folder; everything else is a
   hard link). Then the same restore after the earlier restores were deleted (as ``gc``
   deletes executions): each unlink moved every blob's change time, so this restore hashes
   every blob again (the check that catches a write in place keeping size and mtime).
2. ``gc``: an SQLite store with 1,000 finished executions of 10 events each and their
   folders; ``pipelinekit gc --keep 0 --older-than 0s`` deletes them all (records in one
   transaction, then the folders). The baseline is ``rm -rf`` of the same folders alone.

``--quick`` uses 10 MB and 100 executions.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

import pipelinekit as pk
from pipelinekit._runtime._blobs import CacheFolder
from pipelinekit.cli._maintenance import collect

#: Events written per transaction while the store is filled.
BATCH = 1000


def make_venv(root: Path, megabytes: int) -> None:
    """A folder shaped like a venv: 2,900 small modules, 10 large libraries, 90 scripts."""
    (root / "bin").mkdir(parents=True)
    site = root / "lib" / "python3.11" / "site-packages"
    small_total = megabytes * (1 << 20) // 4
    for index in range(2900):
        package = site / f"pkg{index // 50}"
        package.mkdir(parents=True, exist_ok=True)
        (package / f"mod{index}.py").write_bytes(
            (f"# module {index}\n".encode() * 1000)[: small_total // 2900]
        )
    large = (megabytes * (1 << 20) - small_total) // 10
    for index in range(10):
        (site / f"_native{index}.so").write_bytes(bytes([index]) * large)
    for index in range(90):
        script = root / "bin" / f"tool{index}"
        script.write_text(f"#!{root}/bin/python\nimport sys\n")
        script.chmod(0o755)
    (root / "pyvenv.cfg").write_text(f"home = /usr/bin\ncommand = python -m venv {root}\n")


def restore_bench(repeat: int, megabytes: int) -> None:
    """Restore a venv-like folder against ``cp -r`` of it."""
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as temporary:
        base = Path(temporary)
        source = base / "executions" / "a" / "work" / ".venv"
        make_venv(source, megabytes)
        cache = CacheFolder(base / "cache")
        start = time.perf_counter()
        kept = cache.keep(source, mention=str(source.parent))
        keeping = time.perf_counter() - start
        if kept is None:
            raise SystemExit("nothing kept")
        restore_times, copy_times, written = [], [], 0
        for round_number in range(repeat):
            target = base / "executions" / f"r{round_number}" / "work" / ".venv"
            copy = base / "copies" / f"c{round_number}"
            copy.parent.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            unpacked = cache.unpack(
                kept.tree, target, moved=(str(source.parent), str(target.parent))
            )
            restore_times.append(time.perf_counter() - start)
            if unpacked is None:
                raise SystemExit("nothing restored")
            written = unpacked.written
            start = time.perf_counter()
            subprocess.run(["cp", "-r", str(source), str(copy)], check=True)  # noqa: S603, S607
            copy_times.append(time.perf_counter() - start)
        for round_number in range(repeat):
            shutil.rmtree(base / "executions" / f"r{round_number}")
        start = time.perf_counter()
        cache.unpack(kept.tree, base / "executions" / "z" / "work" / ".venv")
        rehashing = time.perf_counter() - start
        best_restore, best_copy = min(restore_times), min(copy_times)
        print(
            f"restore: {kept.files} files, {kept.size / (1 << 20):.0f} MB; kept once in "
            f"{keeping:.2f} s (hashing every byte)"
        )
        print(
            f"  restore {best_restore:.3f} s (median {statistics.median(restore_times):.3f}), "
            f"cp -r {best_copy:.3f} s (median {statistics.median(copy_times):.3f}); "
            f"restore/cp = {best_restore / best_copy:.2f}; bytes written by the restore: "
            f"{written:,} ({written / kept.size:.4%} of the folder), method {unpacked.method}"
        )
        print(
            f"  restore after the earlier restores were deleted (every blob hashed again): "
            f"{rehashing:.3f} s"
        )


async def _fill(store: pk.SQLiteStore, home: Path, count: int) -> None:
    then = datetime.now(UTC) - timedelta(days=100)
    batch = []
    for index in range(count):
        execution_id = f"e{index:05d}"
        events = [
            pk.Event("pipeline", pk.Status.IN_PROGRESS, "p", execution_id, then, None, None, {}, 1)
        ]
        events += [
            pk.Event(
                "action",
                pk.Status.IN_PROGRESS if n % 2 else pk.Status.SUCCEEDED,
                "p",
                execution_id,
                then,
                "S",
                f"A{(n - 1) // 2}",
                {"attempt": 1},
                n + 1,
            )
            for n in range(1, 9)
        ]
        events.append(
            pk.Event("pipeline", pk.Status.SUCCEEDED, "p", execution_id, then, None, None, {}, 10)
        )
        batch.extend(events)
        logs = home / "executions" / execution_id / "logs"
        logs.mkdir(parents=True)
        (logs / "S.A0.log").write_text("line\n" * 20)
        if len(batch) >= BATCH:
            await store.record(batch)
            batch = []
    if batch:
        await store.record(batch)


def gc_bench(repeat: int, count: int) -> None:
    """Delete ``count`` executions against removing their folders alone."""
    gc_times, rm_times = [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(dir=Path.cwd()) as temporary:
            home = Path(temporary)
            store = pk.SQLiteStore(home / "state.db")
            anyio.run(_fill, store, home, count)
            start = time.perf_counter()
            report = anyio.run(
                lambda: collect(store, home, keep=0, older_than=timedelta(0))  # noqa: B023
            )
            gc_times.append(time.perf_counter() - start)
            if len(report.executions) != count:
                raise SystemExit(f"gc deleted {len(report.executions)} of {count}")
            store.close()
        with tempfile.TemporaryDirectory(dir=Path.cwd()) as temporary:
            home = Path(temporary)
            for index in range(count):
                logs = home / "executions" / f"e{index:05d}" / "logs"
                logs.mkdir(parents=True)
                (logs / "S.A0.log").write_text("line\n" * 20)
            start = time.perf_counter()
            shutil.rmtree(home / "executions")
            rm_times.append(time.perf_counter() - start)
    best_gc, best_rm = min(gc_times), min(rm_times)
    print(
        f"gc: {count} executions (10 events each, a folder each): {best_gc:.3f} s "
        f"(median {statistics.median(gc_times):.3f}); removing the folders alone "
        f"{best_rm:.3f} s; gc/rm = {best_gc / best_rm:.1f}"
    )


def main() -> None:
    """Run both benchmarks."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    restore_bench(args.repeat, 10 if args.quick else 100)
    gc_bench(args.repeat, 100 if args.quick else 1000)


if __name__ == "__main__":
    main()
