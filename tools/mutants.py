# ruff: noqa: INP001, T201, S311 - a script, run by path, that prints its report and samples without secrecy
"""Sampled mutation testing of one module against the tests that should cover it.

    python tools/mutants.py pipelinekit/_model/_variables.py tests/test_validate.py [--max 150]

The mutants are mutmut 3's own (its operators, through ``create_mutations``), so a mutant here is
a mutant ``mutmut run`` would make. The driver exists because ``mutmut run`` cannot do what this
session needs: it has no sample size or time budget (it runs every mutant of every file in
``source_paths``), its module and test selection live in ``[tool.mutmut]`` (one fixed choice per
project, not per call), and it only mutates code inside functions, so module-level constants such
as a compiled regular expression are never mutated.

Each mutant is written into a fresh copy of the package, imported ahead of the editable install
through ``PYTHONPATH``, and the given tests run against it (``pytest -x``) in a subprocess, a few
at a time. A mutant is killed when the tests fail (or time out) and survives when they pass.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import difflib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "pipelinekit"


@dataclass(frozen=True)
class Mutant:
    """One mutated version of the module: its source and the line it changes."""

    index: int
    code: str
    line: int
    before: str
    after: str


def make_mutants(module: Path) -> list[Mutant]:
    """Every mutant mutmut's operators make of ``module``, module-level code included."""
    # Imported here: mutmut reads [tool.mutmut] from the current directory when first used.
    os.chdir(ROOT)
    from mutmut.mutation.file_mutation import create_mutations, deep_replace  # noqa: PLC0415

    source = module.read_text(encoding="utf-8")
    tree, mutations, _, _ = create_mutations(str(module), source)
    original = source.splitlines()
    mutants = []
    for index, mutation in enumerate(mutations):
        code = deep_replace(tree, mutation.original_node, mutation.mutated_node).code  # type: ignore[attr-defined]
        if code == source:
            continue
        changed = code.splitlines()
        opcodes = difflib.SequenceMatcher(a=original, b=changed).get_opcodes()
        first = next(op for op in opcodes if op[0] != "equal")
        before = " / ".join(line.strip() for line in original[first[1] : first[2]])
        after = " / ".join(line.strip() for line in changed[first[3] : first[4]])
        mutants.append(Mutant(index, code, first[1] + 1, before, after))
    return mutants


def run_tests(code: str | None, relative: Path, tests: list[str], timeout: float) -> str:
    """``"killed"``, ``"survived"`` or ``"timeout"``: the tests against ``code`` at ``relative``."""
    with tempfile.TemporaryDirectory(prefix="pk-mutant-") as scratch:
        shutil.copytree(
            ROOT / PACKAGE,
            Path(scratch) / PACKAGE,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        if code is not None:
            (Path(scratch) / relative).write_text(code, encoding="utf-8")
        env = {
            **os.environ,
            "PYTHONPATH": scratch,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        # -P: without it, `python -m` puts the checkout first on sys.path, ahead of the mutant.
        # -p no:randomly: the same mutant meets the tests in the same order on every run.
        command = [sys.executable, "-P", "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
        command += ["-p", "no:randomly"]
        try:
            done = subprocess.run(  # noqa: S603 - our own interpreter and arguments
                [*command, *tests],
                cwd=ROOT,
                env=env,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return "timeout"
        return "survived" if done.returncode == 0 else "killed"


def check_isolation() -> None:
    """Fail loudly if a test run would import the checkout instead of the mutant."""
    with tempfile.TemporaryDirectory(prefix="pk-mutant-") as scratch:
        shutil.copytree(ROOT / PACKAGE, Path(scratch) / PACKAGE)
        probe = f"import {PACKAGE}, sys; print({PACKAGE}.__file__)"
        found = subprocess.run(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-P", "-c", probe],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": scratch},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not found.startswith(scratch):
            sys.exit(f"mutants: {PACKAGE} is imported from {found}, not the mutant's copy")


def default_tests(module: Path) -> list[str]:
    """Test files that import the module by its dotted name, else the whole tests/ folder."""
    dotted = ".".join(module.with_suffix("").parts)
    stem = module.stem
    found = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").glob("test_*.py")
        if dotted in (text := path.read_text(encoding="utf-8")) or f"import {stem}" in text
    )
    return found or ["tests"]


def main(argv: list[str] | None = None) -> int:
    """Run a sample of mutants of one module; print the score and every survivor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", help="path of the module, e.g. pipelinekit/_model/_variables.py")
    parser.add_argument("tests", nargs="*", help="test files or node ids (default: importers)")
    parser.add_argument("--max", type=int, default=150, help="mutants sampled (default 150)")
    parser.add_argument("--seed", type=int, default=12, help="sampling seed (default 12)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--only", default="", help="comma-separated mutant numbers, e.g. last run's survivors"
    )
    parser.add_argument("--budget", type=float, default=900.0, help="seconds before stopping")
    args = parser.parse_args(argv)

    module = Path(args.module)
    if module.is_absolute():
        module = module.relative_to(ROOT)
    if not (ROOT / module).is_file() or module.parts[0] != PACKAGE:
        parser.error(f"{args.module}: not a file of {PACKAGE}/ (give its path from the checkout)")
    tests = args.tests or default_tests(module)

    check_isolation()
    started = time.monotonic()
    if run_tests(None, module, tests, timeout=args.budget) != "survived":
        sys.exit(f"mutants: the tests fail without any mutant: {' '.join(tests)}")
    baseline = time.monotonic() - started
    timeout = 10 * baseline + 10

    every = make_mutants(ROOT / module)
    if args.only:
        wanted = {int(number) for number in args.only.split(",")}
        sample = [mutant for mutant in every if mutant.index in wanted]
    else:
        sample = sorted(
            random.Random(args.seed).sample(every, min(args.max, len(every))),
            key=lambda m: m.index,
        )
    print(f"{module}: {len(sample)} of {len(every)} mutants, tests: {' '.join(tests)}")
    print(f"baseline {baseline:.1f} s; per-mutant timeout {timeout:.0f} s; {args.jobs} jobs")

    deadline = started + args.budget
    results: dict[int, str] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {
            pool.submit(
                lambda m: (
                    "skipped"
                    if time.monotonic() > deadline
                    else run_tests(m.code, module, tests, timeout)
                ),
                mutant,
            ): mutant
            for mutant in sample
        }
        for future in concurrent.futures.as_completed(futures):
            results[futures[future].index] = future.result()

    counted = [m for m in sample if results[m.index] != "skipped"]
    killed = [m for m in counted if results[m.index] in {"killed", "timeout"}]
    survivors = [m for m in counted if results[m.index] == "survived"]
    elapsed = time.monotonic() - started
    for mutant in survivors:
        print(f"survived #{mutant.index} line {mutant.line}: {mutant.before}", flush=True)
        print(f"{'':>14}-> {mutant.after}")
    timeouts = sum(results[m.index] == "timeout" for m in counted)
    score = 100 * len(killed) / len(counted) if counted else 0.0
    print(
        f"score {len(killed)}/{len(counted)} = {score:.0f} % killed "
        f"({timeouts} by timeout, {len(sample) - len(counted)} skipped by the budget) "
        f"in {elapsed:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
