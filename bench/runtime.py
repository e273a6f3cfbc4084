"""Issue 9's "Faster, measured" figures, each next to a baseline measured in the same run.

    python bench/runtime.py [--only NAME] [--repeat 3] [--quick]

Only the public API is used (``import pipelinekit as pk``), so the script runs unchanged on any
layout of the package. Timed figures run their contenders in interleaved rounds (each round runs
all of them, close in time, which these noisy shared machines need) and print the best time of
each, the ratio of the best times, and the median of the per-round ratios. Goals on a ratio are
judged on the median ratio, goals in ms on the best time, goals in MB on one measurement. The
figures (``--only`` takes the name or the number):

1. ``scale``: 10,000 no-op Python actions, build (``pk.Pipeline(...)``) + compile + run on
   ``MemoryStore``, for a layered 100x100 pipeline, a chain of 10,000 one-action stages and a fan
   1 -> 9,998 -> 1, against the bare anyio baseline of ``bench/scheduler.py`` (one task per node
   of the same DAG, stage gates included, awaiting its predecessors' events) and Dask's threaded
   scheduler (``dask.threaded.get`` on the same DAG of no-op functions; skipped without dask).
   Goals: layered <= 1.2x anyio, chain and fan <= 1.5x anyio, none slower than Dask.
2. ``sqlite``: a chain of 1,000 one-action stages on ``SQLiteStore`` (one database for every
   round, as in ``bench/store.py``) against ``MemoryStore``. Goal: <= 2x.
3. ``startup``: wall time of ``pipelinekit run FILE --plain`` of a one-action pipeline
   (``pk.shell("true")``) and of ``python -c "import pipelinekit"``, each a subprocess, next to
   ``python -c pass``; and the 15 biggest cumulative times of ``python -X importtime``. Goals:
   the command <= 150 ms, the import <= 100 ms, both absolute wall times (at least 5 rounds).
4. ``shell``: 500 ``pk.shell("true")`` actions in one stage at ``max_concurrency=8`` against the
   ceiling: 500 ``/bin/sh -c true`` started with ``anyio.run_process`` under a
   ``CapacityLimiter(8)`` in this process. Goal: >= 0.8x the ceiling's throughput.
5. ``rss``: peak RSS (``ru_maxrss``) of a fresh process that builds, compiles and runs 10,000
   no-op actions, per shape, next to one that only imports pipelinekit. Goal: <= 80 MB.
6. ``silence``: ``pk.run`` of a one-action ``pk.shell("echo hi")`` pipeline in a subprocess with
   no logging configured. Goal: nothing on stdout or stderr; ``hi`` is in the action's log.

``--quick`` runs smaller sizes (1,000 actions; 200 stages; 100 processes) as a smoke test.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import importlib.util
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
from scheduler import baseline, chain, fan, layered

import pipelinekit as pk

SHAPES: dict[str, Callable[[int], pk.Pipeline]] = {
    "layered": layered,
    "chain": chain,
    "fan": fan,
}
FIGURES = ("scale", "sqlite", "startup", "shell", "rss", "silence")
MB = 1024 * 1024


@dataclass(frozen=True)
class Row:
    """One line of the summary: a measured value, its baseline, their ratio, and the goal."""

    figure: str
    what: str
    value: str
    baseline: str
    ratio: str
    goal: str
    met: bool | None  # None: not judged (skipped, or for information)


@dataclass(frozen=True)
class Sizes:
    """How big each figure's workload is."""

    actions: int  # figures 1 and 5
    sqlite_chain: int  # figure 2
    processes: int  # figure 4


FULL = Sizes(actions=10_000, sqlite_chain=1_000, processes=500)
QUICK = Sizes(actions=1_000, sqlite_chain=200, processes=100)


# --- measuring ---------------------------------------------------------------------------------


def rounds(contenders: Mapping[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """Seconds each contender takes, ``repeat`` interleaved rounds of one call each."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, fn in contenders.items():
            gc.collect()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def ratios(ours: Sequence[float], theirs: Sequence[float]) -> tuple[float, float]:
    """The ratio of the best times and the median of the per-round ratios."""
    median = statistics.median(o / t for o, t in zip(ours, theirs, strict=True))
    return min(ours) / min(theirs), median


def ms(seconds: float) -> str:
    """Seconds as milliseconds, for a table."""
    return f"{seconds * 1e3:.1f} ms"


def ratio_text(best: float, median: float) -> str:
    """Both ratios: best-of first, median of the rounds in brackets."""
    return f"{best:.2f}x (med {median:.2f}x)"


def run_pk(
    pipeline: pk.Pipeline,
    workdir: str,
    *,
    store: pk.Store | None = None,
    max_concurrency: int | None = None,
) -> None:
    """``pk.run`` on a fresh ``MemoryStore`` unless a store is given; it must succeed.

    What it prints goes to ``TERMINAL`` instead (counted, then dropped): still formatted and
    written, as by default, but neither flooding this report nor timing a terminal.
    """
    with contextlib.redirect_stdout(TERMINAL), contextlib.redirect_stderr(TERMINAL):
        result = pk.run(
            pipeline,
            store=pk.MemoryStore() if store is None else store,
            workdir=workdir,
            max_concurrency=max_concurrency,
        )
    assert result.succeeded, result.status  # noqa: S101 - a benchmark of failures is no benchmark


class Counter(io.TextIOBase):
    """A text stream that counts what is written to it and keeps none of it."""

    def __init__(self) -> None:
        """Nothing written yet."""
        super().__init__()
        self.written = 0

    def writable(self) -> bool:
        """It is."""
        return True

    def write(self, text: str) -> int:
        """Count ``text``."""
        self.written += len(text)
        return len(text)


TERMINAL = Counter()


def printed_by_runs(before: int) -> None:
    """Say how much ``pk.run`` printed since ``TERMINAL`` had counted ``before``."""
    if TERMINAL.written > before:
        print(f"  (pk.run printed {TERMINAL.written - before:,} characters; counted, not shown)")


class Dag(dict[str, list[str]]):
    """A DAG as each node's predecessors, in topological order; ``baseline()`` reads it."""

    def predecessors(self, node: str) -> list[str]:
        """The nodes ``node`` waits for."""
        return self[node]


def dag(pipeline: pk.Pipeline) -> Dag:
    """The DAG a pipeline of sequential stages runs, built from its declaration only.

    Every action waits for the gate of the stage before; after each stage, one gate waits for
    all its actions (so a stage boundary costs 2W edges, not W squared, as pipelinekit compiles
    it). Built here rather than taken from the plan so the baseline stays the same DAG whatever
    the package does.
    """
    graph = Dag()
    gate: str | None = None
    for stage in pipeline.stages:
        names = [f"{stage.name}.{action.name}" for action in stage.actions]
        for name in names:
            graph[name] = [gate] if gate else []
        gate = f"{stage.name}#"
        graph[gate] = names
    return graph


def nothing(*_args: object) -> None:
    """A Dask task's work: nothing."""


def dask_get() -> Callable[[Dag], Callable[[], object]] | None:
    """Dask's threaded scheduler, if installed, as: DAG -> a call that runs it (no-op tasks).

    The task graph (a dict of ``(nothing, *predecessors)`` tuples) is built before the call, so
    the call is Dask's scheduler alone, as the anyio baseline is the walk alone.
    """
    if importlib.util.find_spec("dask") is None:
        return None
    import dask.threaded  # noqa: PLC0415 - optional, and not part of what is measured

    def prepare(graph: Dag) -> Callable[[], object]:
        tasks = {node: (nothing, *predecessors) for node, predecessors in graph.items()}
        waited_for = {p for predecessors in graph.values() for p in predecessors}
        sinks = [node for node in graph if node not in waited_for]
        return functools.partial(dask.threaded.get, tasks, sinks)

    return prepare


# --- the figures -------------------------------------------------------------------------------


def build_and_run(shape: Callable[[int], pk.Pipeline], actions: int, workdir: str) -> None:
    """Build a pipeline of ``actions`` no-op actions and run it (``pk.run`` compiles it)."""
    run_pk(shape(actions), workdir)


def scale(sizes: Sizes, repeat: int, workdir: str) -> Iterator[Row]:
    """Figure 1: build + compile + run against bare anyio and Dask's threaded scheduler."""
    get = dask_get()
    if get is None:
        print("dask is not installed: the Dask comparison is skipped (pip install dask)")
    for name, shape in SHAPES.items():
        graph = dag(shape(sizes.actions))
        plan = shape(sizes.actions).compile().graph
        actions = sum(1 for node in graph if "#" not in node)
        print(
            f"{name}: {actions} actions; baseline DAG {len(graph)} nodes "
            f"{sum(map(len, graph.values()))} edges; pipelinekit's plan "
            f"{plan.number_of_nodes()} nodes {plan.number_of_edges()} edges"
        )
        del plan
        contenders: dict[str, Callable[[], object]] = {
            "anyio": functools.partial(anyio.run, baseline, graph),
            "pipelinekit": functools.partial(build_and_run, shape, sizes.actions, workdir),
        }
        if get is not None:
            contenders["dask"] = get(graph)
        small = dag(shape(100))  # warm up: first-use imports, caches
        anyio.run(baseline, small)
        run_pk(shape(100), workdir)
        if get is not None:
            get(small)()
        times = rounds(contenders, repeat)
        ours = times["pipelinekit"]
        goal = 1.2 if name == "layered" else 1.5
        best, median = ratios(ours, times["anyio"])
        print(
            f"  pipelinekit {ms(min(ours))}, anyio {ms(min(times['anyio']))}, "
            f"{ratio_text(best, median)}"
        )
        yield Row(
            "1 scale",
            f"{name}: pk vs anyio",
            ms(min(ours)),
            ms(min(times["anyio"])),
            ratio_text(best, median),
            f"<= {goal}x",
            median <= goal,
        )
        if get is None:
            yield Row("1 scale", f"{name}: pk vs dask", ms(min(ours)), "-", "-", "<= 1x", None)
            continue
        best, median = ratios(ours, times["dask"])
        print(f"  dask {ms(min(times['dask']))}, {ratio_text(best, median)}")
        yield Row(
            "1 scale",
            f"{name}: pk vs dask threaded",
            ms(min(ours)),
            ms(min(times["dask"])),
            ratio_text(best, median),
            "<= 1x",
            median <= 1,
        )


def sqlite(sizes: Sizes, repeat: int, workdir: str) -> Iterator[Row]:
    """Figure 2: a chain on SQLiteStore against the same on MemoryStore."""
    pipeline = chain(sizes.sqlite_chain)
    database = Path(workdir) / "sqlite-figure.db"  # one for every round: history accumulates

    def on_sqlite() -> None:
        store = pk.SQLiteStore(database)
        try:
            run_pk(pipeline, workdir, store=store)
        finally:
            store.close()

    run_pk(chain(10), workdir)  # warm up
    times = rounds({"memory": lambda: run_pk(pipeline, workdir), "sqlite": on_sqlite}, repeat)
    best, median = ratios(times["sqlite"], times["memory"])
    yield Row(
        "2 sqlite",
        f"chain of {sizes.sqlite_chain}: SQLite vs memory",
        ms(min(times["sqlite"])),
        ms(min(times["memory"])),
        ratio_text(best, median),
        "<= 2x",
        median <= 2,  # noqa: PLR2004 - the goal
    )


def cached_bytecode(workdir: str) -> dict[str, str]:
    """This environment, with bytecode written and read under ``workdir`` (not the source tree).

    Users' imports read ``.pyc`` files; an environment with ``PYTHONDONTWRITEBYTECODE`` (as on
    these machines) would compile every module of a source checkout at each start instead.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(workdir) / "pycache")
    return env


def wall(command: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Seconds a command takes as a subprocess; it must succeed."""
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)  # noqa: S603
    return time.perf_counter() - start


def pipelinekit_command() -> list[str]:
    """The ``pipelinekit`` console script of this interpreter's environment."""
    beside = Path(sys.executable).with_name("pipelinekit")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("pipelinekit")
    if found is None:
        raise SystemExit("no pipelinekit command: pip install -e '.[cli]'")
    return [found]


ONE_ACTION = """\
import pipelinekit as pk

pipeline = pk.Pipeline("one", [pk.Stage("Only", [pk.Action("True", pk.shell("true"))])])
"""


def startup(_sizes: Sizes, repeat: int, workdir: str) -> Iterator[Row]:
    """Figure 3: the command line's and the import's wall times, next to a bare interpreter."""
    folder = Path(workdir) / "startup"
    folder.mkdir()
    (folder / "pipeline.py").write_text(ONE_ACTION)
    help_text = subprocess.run(  # noqa: S603
        [*pipelinekit_command(), "run", "--help"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    plain = ["--plain"] if "--plain" in help_text else []
    commands = {
        "pass": [sys.executable, "-c", "pass"],
        "import": [sys.executable, "-c", "import pipelinekit"],
        "cli": [*pipelinekit_command(), "run", "pipeline.py", *plain, "--workdir", "state"],
    }
    print("commands: " + "; ".join(" ".join(command) for command in commands.values()))
    env = cached_bytecode(workdir)
    contenders = {name: functools.partial(wall, c, folder, env) for name, c in commands.items()}
    if "PYTHONDONTWRITEBYTECODE" in os.environ:  # also as this environment imports
        contenders["import, no .pyc"] = functools.partial(wall, commands["import"], folder)
    for fn in contenders.values():  # warm up: file cache, .pyc files, the state database
        fn()
    times = rounds(contenders, repeat)
    bare = min(times["pass"])
    for name, what, goal in (
        ("cli", "`pipelinekit run` one action", 0.150),
        ("import", "`python -c 'import pipelinekit'`", 0.100),
        ("import, no .pyc", "the same, PYTHONDONTWRITEBYTECODE=1", None),
    ):
        if name not in times:
            continue
        best, median = ratios(times[name], times["pass"])
        ours = min(times[name])
        yield Row(
            "3 startup",
            what,
            f"{ms(ours)} (+{ms(ours - bare)})",
            ms(bare),
            ratio_text(best, median),
            "(information)" if goal is None else f"<= {goal * 1e3:.0f} ms",
            None if goal is None else ours <= goal,
        )
    importtime(folder, env)


def importtime(cwd: Path, env: dict[str, str], runs: int = 3, top: int = 15) -> None:
    """Print the modules with the biggest cumulative (and self) import times, best of ``runs``."""
    cumulative: dict[str, int] = {}
    own: dict[str, int] = {}
    for _ in range(runs):
        stderr = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import pipelinekit"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        for line in stderr.splitlines():
            fields = line.removeprefix("import time:").split("|")
            if len(fields) != 3 or not fields[0].strip().isdigit():  # noqa: PLR2004
                continue
            module = fields[2].rstrip()
            mine, total = int(fields[0]), int(fields[1])
            cumulative[module] = min(cumulative.get(module, total), total)
            own[module] = min(own.get(module, mine), mine)
    print(f"python -X importtime -c 'import pipelinekit', best of {runs}, top {top} cumulative:")
    for module in sorted(cumulative, key=cumulative.__getitem__, reverse=True)[:top]:
        print(f"  {cumulative[module] / 1e3:7.1f} ms  (self {own[module] / 1e3:5.1f} ms) {module}")
    print("top 10 by self time:")
    for module in sorted(own, key=own.__getitem__, reverse=True)[:10]:
        print(f"  {own[module] / 1e3:7.1f} ms  {module.strip()}")


async def ceiling(count: int, concurrency: int) -> None:
    """``count`` runs of ``/bin/sh -c true``, at most ``concurrency`` at once."""
    limiter = anyio.CapacityLimiter(concurrency)

    async def one() -> None:
        async with limiter:
            await anyio.run_process(["/bin/sh", "-c", "true"])

    async with anyio.create_task_group() as tasks:
        for _ in range(count):
            tasks.start_soon(one)


def shell(sizes: Sizes, repeat: int, workdir: str) -> Iterator[Row]:
    """Figure 4: processes per second through pipelinekit against the raw ceiling."""
    count, concurrency = sizes.processes, 8
    pipeline = pk.Pipeline(
        "shells",
        [pk.Stage("Many", [pk.Action(f"True{i}", pk.shell("true")) for i in range(count)])],
    )
    anyio.run(ceiling, 16, concurrency)  # warm up
    times = rounds(
        {
            "ceiling": lambda: anyio.run(ceiling, count, concurrency),
            "pipelinekit": lambda: run_pk(pipeline, workdir, max_concurrency=concurrency),
        },
        repeat,
    )
    best, median = ratios(times["ceiling"], times["pipelinekit"])  # throughput: inverse of time
    yield Row(
        "4 shell",
        f"{count} shell actions at max_concurrency={concurrency}: throughput",
        f"{count / min(times['pipelinekit']):.0f}/s",
        f"{count / min(times['ceiling']):.0f}/s",
        ratio_text(best, median),
        ">= 0.8x",
        median >= 0.8,  # noqa: PLR2004 - the goal
    )


# Peak RSS as VmHWM, the high-water mark of this process image. ru_maxrss is the fallback only:
# on Linux it keeps the peak of the process that spawned this one (exec records the old memory's
# high-water mark in what survives it), so a child of this big benchmark would report our size.
PRINT_PEAK = """
import re, resource
from pathlib import Path
status = Path("/proc/self/status")
hwm = re.search(r"VmHWM:\\s*(\\d+) kB", status.read_text()) if status.exists() else None
print(int(hwm[1]) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss(code: str, env: dict[str, str], cwd: str) -> int:
    """Peak RSS in bytes of ``python -c code``, which prints it (KiB) on its last line."""
    output = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout
    return int(output.split()[-1]) * 1024


def rss(sizes: Sizes, _repeat: int, workdir: str) -> Iterator[Row]:
    """Figure 5: peak RSS of a fresh process per shape, next to one that only imports."""
    env = cached_bytecode(workdir)
    peak_rss("import pipelinekit\n" + PRINT_PEAK, env, workdir)  # warm up: write .pyc files
    imported = peak_rss("import pipelinekit\n" + PRINT_PEAK, env, workdir)
    bench = str(Path(__file__).resolve().parent)
    for name in SHAPES:
        peak = peak_rss(
            f"import sys\nsys.path.insert(0, {bench!r})\nimport runtime\n"
            f"runtime.run_shape({name!r}, {sizes.actions})\n{PRINT_PEAK}",
            env,
            workdir,
        )
        yield Row(
            "5 rss",
            f"{name}: peak RSS, {sizes.actions} actions",
            f"{peak / MB:.1f} MB (+{(peak - imported) / MB:.1f})",
            f"{imported / MB:.1f} MB",
            f"{peak / imported:.2f}x",
            "<= 80 MB",
            peak <= 80 * MB,
        )


def run_shape(shape: str, actions: int) -> None:
    """Build, compile and run one shape (in the fresh process of figure 5)."""
    with tempfile.TemporaryDirectory(prefix="pk-bench-rss-") as workdir:
        run_pk(SHAPES[shape](actions), workdir)


QUIET = """\
import sys
import pipelinekit as pk

pipeline = pk.Pipeline("quiet", [pk.Stage("Say", [pk.Action("Hi", pk.shell("echo hi"))])])
result = pk.run(pipeline, store=pk.MemoryStore(), workdir=sys.argv[1])
with open(sys.argv[2], "w") as report:
    report.write(f"{result.status}\\n{result.actions['Say.Hi'].log_path}\\n")
"""


def silence(_sizes: Sizes, _repeat: int, workdir: str) -> Iterator[Row]:
    """Figure 6: ``pk.run`` prints nothing; the action's output goes to its log."""
    folder = Path(workdir) / "silence"
    folder.mkdir()
    report = folder / "report.txt"
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", QUIET, str(folder / "state"), str(report)],
        cwd=folder,
        capture_output=True,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("PIPELINEKIT")},
    )
    status, log_path = [*(report.read_text() if report.exists() else "").splitlines(), "?", ""][:2]
    logged = Path(log_path).read_text() if log_path and Path(log_path).is_file() else ""
    for name, output in (("stdout", done.stdout), ("stderr", done.stderr)):
        if output:
            print(f"{name} of the run ({len(output)} bytes):")
            print(textwrap.indent(output.decode(errors="replace")[:2000], "  | "))
    print(f"status {status}, exit code {done.returncode}, action log {log_path}: {logged!r}")
    yield Row(
        "6 silence",
        "pk.run of `echo hi`: terminal output",
        f"{len(done.stdout)} B out, {len(done.stderr)} B err",
        "0 B",
        "-",
        "nothing; hi in the log",
        not done.stdout and not done.stderr and "hi" in logged and done.returncode == 0,
    )


RUNNERS: dict[str, Callable[[Sizes, int, str], Iterator[Row]]] = {
    "scale": scale,
    "sqlite": sqlite,
    "startup": startup,
    "shell": shell,
    "rss": rss,
    "silence": silence,
}


def table(rows: Sequence[Row]) -> str:
    """The summary, one line per figure, columns aligned."""
    header = Row("figure", "measure", "value", "baseline", "ratio", "goal", None)
    lines = [header, *rows]
    cells = [
        [r.figure, r.what, r.value, r.baseline, r.ratio, r.goal, "met?" if r is header else ""]
        for r in lines
    ]
    for row, line in zip(rows, cells[1:], strict=True):
        line[-1] = "-" if row.met is None else ("yes" if row.met else "NO")
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=[*FIGURES, *map(str, range(1, len(FIGURES) + 1))])
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    only = FIGURES[int(args.only) - 1] if args.only and args.only.isdigit() else args.only
    print(f"pipelinekit {pk.__version__} from {Path(pk.__file__).parent}, python {sys.version}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="pk-bench-runtime-") as workdir:
        for name, runner in RUNNERS.items():
            if only and name != only:
                continue
            print(f"\n== {name}")
            repeat = max(args.repeat, 5) if name == "startup" else args.repeat
            before = TERMINAL.written
            for row in runner(sizes, repeat, workdir):
                rows.append(row)
                print(f"  {row.what}: {row.value} vs {row.baseline}: {row.ratio}")
            printed_by_runs(before)
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
