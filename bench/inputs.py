"""What private writable inputs cost: ``copy_private`` next to ``cp -r`` in the same run.

    python bench/inputs.py [--repeat 5] [--dir DIR ...] [--quick]

An action declared with ``writable_inputs=True`` gets a private copy of each input artifact
(``pipelinekit/_runtime/_private_inputs.py``): copy-on-write clones (``FICLONE``) where the file
system can make them, else real copies. Two inputs of ~100 MB are copied, read-only as sealed
artifacts are:

1. ``big``: 100 files of 1 MB (a wheel cache, data files);
2. ``venv``: 4,000 files of 25 KB in 40 folders (a virtual environment's shape).

Contenders, interleaved rounds, best time and median ratio to ``cp -r`` printed:

- ``pipelinekit``: ``copy_private`` (what the action gets);
- ``cp -r``: the baseline (GNU cp copies data; newer coreutils may clone by default);
- ``cp --reflink=auto -r``: what the copy aims to match;
- ``copytree``: ``shutil.copytree`` (what a copy in Python would be without clones).

Each ``--dir`` is benchmarked (default: the system's temporary folder); give a folder on a
file system that can clone (btrfs, XFS made with reflink=1) to see clones, e.g. a loop mount:
``truncate -s 1500M x.img && mkfs.xfs -m reflink=1 x.img && mount -o loop x.img /mnt/x``.
``--quick``: 10 MB inputs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from runtime import ms, ratio_text, ratios, rounds

from pipelinekit._runtime._artifacts import _make_read_only, _remove_tree
from pipelinekit._runtime._private_inputs import Copied, copy_private


def make_input(root: Path, files: int, size: int, folders: int) -> Path:
    """``files`` files of ``size`` bytes spread over ``folders`` folders, read-only."""
    block = os.urandom(size)
    for index in range(files):
        folder = root / f"d{index % folders:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        # Distinct contents: a file system that deduplicates must not flatter anyone.
        (folder / f"f{index:05d}.bin").write_bytes(index.to_bytes(8, "little") + block[8:])
    _make_read_only(root)
    return root


def file_system(path: Path) -> str:
    """The type of the file system ``path`` is on (``df``'s answer)."""
    command = ["df", "--output=fstype", str(path)]
    found = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    return found.stdout.split()[-1] if found.returncode == 0 else "?"


def contenders(
    source: Path, scratch: Path, last: dict[str, Copied]
) -> dict[str, Callable[[], object]]:
    """Each contender: one copy of ``source`` into ``scratch`` (its earlier copy removed)."""

    def fresh(name: str) -> Path:
        target = scratch / name
        _remove_tree(target)
        return target

    def ours() -> None:
        target = fresh("ours")
        last["copy"] = copy_private(source, target)

    def cp(*options: str) -> Callable[[], None]:
        def run() -> None:
            target = fresh("cp" + "".join(options))
            command = ["cp", "-r", *options, str(source), str(target)]
            subprocess.run(command, check=True)  # noqa: S603 - the system's cp, our paths

        return run

    def copytree() -> None:
        shutil.copytree(source, fresh("copytree"), symlinks=True)

    return {
        "pipelinekit": ours,
        "cp -r": cp(),
        "cp --reflink=auto -r": cp("--reflink=auto"),
        "copytree": copytree,
    }


def bench(folder: Path, shapes: dict[str, tuple[int, int, int]], repeat: int) -> None:
    """Print a table of the contenders on each input shape, in ``folder``."""
    print(f"\n## {folder} ({file_system(folder)})\n")
    print(f"| input | {'contender':<21} | best | vs cp -r (median) | files cloned / copied |")
    print(f"|---|{'-' * 23}|---:|---:|---|")
    for shape, (files, size, folders) in shapes.items():
        with tempfile.TemporaryDirectory(dir=folder) as scratch_name:
            scratch = Path(scratch_name)
            source = make_input(scratch / "source", files, size, folders)
            last: dict[str, Copied] = {}
            times = rounds(contenders(source, scratch, last), repeat)
            label = f"{shape} ({files * size / 1e6:.0f} MB, {files} files)"
            for name, seconds in times.items():
                best, median = ratios(seconds, times["cp -r"])
                done = last["copy"]
                counts = f"{done.cloned} / {done.copied}" if name == "pipelinekit" else ""
                print(
                    f"| {label} | {name:<21} | {ms(min(seconds))} | "
                    f"{ratio_text(best, median)} | {counts} |"
                )
            for path in scratch.iterdir():
                _remove_tree(path)
    sys.stdout.flush()


def main() -> None:
    """Parse the options and run the benchmark in each folder."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", type=Path, action="append", default=[])
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    scale = 10 if options.quick else 1
    shapes = {
        "big": (100 // scale, 1 << 20, 1),
        "venv": (4000 // scale, 25_000, 40),
    }
    for folder in options.dir or [Path(tempfile.gettempdir())]:
        bench(folder, shapes, options.repeat)


if __name__ == "__main__":
    main()
