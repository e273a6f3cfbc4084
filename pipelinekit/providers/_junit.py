"""Test reports: the counts and failed test names of JUnit XML files an action wrote.

``pk.shell(..., reports=["junit.xml"])`` names JUnit XML files (globs relative to the action's
working folder); once its commands end, failed or not, each file is read here into a
``TestReport`` that the result, the events, the live view and the summary show.

The files are written by the commands, so they are read as untrusted input: a file over
``MAX_REPORT_BYTES`` is not read; a document type declaration (where entities, and so the
"billion laughs" and external entities, are declared) is refused, as defusedxml does (it is not
a dependency); only counts and a bounded number of names are kept. A report that cannot be read
is a warning on the result, never the action's failure: the commands' status says whether it
failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import attrs

from pipelinekit.providers._action_files import read_regular
from pipelinekit.providers._failure import cut_at

__all__ = [
    "MAX_FAILED_NAMES",
    "MAX_REPORT_BYTES",
    "MAX_REPORT_FILES",
    "TestReport",
    "pattern_problem",
    "read_reports",
]

#: The largest report file that is read.
MAX_REPORT_BYTES = 32 * 1024 * 1024
#: How many files one action's patterns may name; more are left unread, with a warning.
MAX_REPORT_FILES = 100
#: How many failed tests a report names (its counts count them all).
MAX_FAILED_NAMES = 20
_MAX_NAME = 300
_CHUNK = 1 << 16


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class TestReport:
    """What one JUnit XML file says: counts, and the first failed tests' names.

    ``path`` is relative to the action's working folder (or the pattern that matched nothing);
    ``failed`` names failed and erroring tests (``classname.name``), at most
    ``MAX_FAILED_NAMES``; ``problem`` says why the file could not be read (then the counts are
    0).
    """

    __test__ = False  # not a pytest test class, whatever its name says

    path: str
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    failed: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    problem: str | None = None

    @property
    def passed(self) -> int:
        """Tests that neither failed, erred nor were skipped."""
        return max(0, self.tests - self.failures - self.errors - self.skipped)

    def describe(self) -> str:
        """``"junit.xml: 765 tests, 2 failed, 0 errors, 3 skipped"`` (or why it was not read)."""
        if self.problem is not None:
            return f"{self.path}: {self.problem}"
        return (
            f"{self.path}: {self.tests} tests, {self.failures} failed, {self.errors} errors, "
            f"{self.skipped} skipped"
        )

    def masked(self, mask: Callable[[str], str]) -> TestReport:
        """This report with ``mask`` applied to its text (the run's ``Masker.mask``).

        The path too: the commands name the files (``report-$TOKEN.xml``).
        """
        return attrs.evolve(
            self,
            path=mask(self.path),
            failed=tuple(mask(name) for name in self.failed),
            problem=mask(self.problem) if self.problem is not None else None,
        )

    def to_detail(self) -> dict[str, Any]:
        """A JSON-ready form, for events and the store."""
        detail: dict[str, Any] = {
            "path": self.path,
            "tests": self.tests,
            "failures": self.failures,
            "errors": self.errors,
            "skipped": self.skipped,
            "failed": list(self.failed),
        }
        if self.problem is not None:
            detail["problem"] = self.problem
        return detail

    @classmethod
    def from_detail(cls, detail: object) -> TestReport | None:
        """Read back what ``to_detail`` wrote (``None`` for anything else)."""
        if not isinstance(detail, Mapping) or not isinstance(detail.get("path"), str):
            return None

        def number(key: str) -> int:
            value = detail.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        failed = detail.get("failed")
        problem = detail.get("problem")
        return cls(
            detail["path"],
            number("tests"),
            number("failures"),
            number("errors"),
            number("skipped"),
            tuple(str(name) for name in failed) if isinstance(failed, list | tuple) else (),
            problem if isinstance(problem, str) else None,
        )


def pattern_problem(pattern: object) -> str | None:
    """Why ``pattern`` cannot name report files in the working folder (``None``: it can)."""
    if not isinstance(pattern, str) or not pattern.strip():
        return "must be a non-empty glob such as 'junit.xml' or 'reports/*.xml'"
    if "\0" in pattern:
        return f"{pattern!r} contains a NUL character"
    path = PurePosixPath(pattern)
    if path.is_absolute() or pattern.startswith("~"):
        return f"{pattern!r} must be relative to the action's working folder"
    if ".." in path.parts:
        return f"{pattern!r} must stay inside the action's working folder (no '..')"
    return None


def read_reports(
    workdir: Path, patterns: Sequence[str], mask: Callable[[str], str] = str
) -> list[TestReport]:
    """Read the reports ``patterns`` name in ``workdir`` (blocking: call it from a thread).

    A pattern that matches nothing gives a report with a ``problem``, as does a file that
    cannot be read; each file is read once, in the order the patterns find them. ``mask``
    (the run's ``Masker.mask``) is applied to each name before it is cut, and to the reports.
    """
    reports: list[TestReport] = []
    seen: set[Path] = set()
    for pattern in patterns:
        matches = sorted(path for path in workdir.glob(pattern) if path not in seen)
        if not matches:
            reports.append(TestReport(pattern, problem="no file matches this pattern"))
            continue
        for path in matches:
            seen.add(path)
            name = path.relative_to(workdir).as_posix()
            if len(seen) > MAX_REPORT_FILES:
                reports.append(
                    TestReport(name, problem=f"not read: at most {MAX_REPORT_FILES} reports")
                )
                return [report.masked(mask) for report in reports]
            reports.append(_read(path, name, mask))
    return [report.masked(mask) for report in reports]


def _read(path: Path, name: str, mask: Callable[[str], str]) -> TestReport:
    # Loaded when a report is read: most programs that import pipelinekit never read one.
    from xml.parsers import expat  # noqa: PLC0415

    # Opened without blocking and checked once open: a FIFO (or a file swapped for one after
    # the glob) never blocks the thread, which nothing could then interrupt.
    read = read_regular(path, MAX_REPORT_BYTES, follow=True, whole=True)
    if read.data is None:
        return TestReport(name, problem=read.problem or "cannot be read: it is gone")
    data = read.data
    try:
        counts = _Counts(mask)
        counts.parse(data[start : start + _CHUNK] for start in range(0, len(data), _CHUNK))
    except _Refused as refused:
        return TestReport(name, problem=str(refused))
    except expat.ExpatError as error:
        return TestReport(name, problem=f"not JUnit XML: {error}")
    return counts.report(name)


class _Refused(Exception):  # noqa: N818 - a reason, not an error of pipelinekit's
    """A report holds what is never parsed (a document type declaration)."""


class _Counts:
    """Counts of one JUnit XML document, from expat's events (no tree is built)."""

    def __init__(self, mask: Callable[[str], str]) -> None:
        self.mask = mask
        self.tests = self.failures = self.errors = self.skipped = 0
        self.failed: list[str] = []
        self.case: str | None = None
        self.outcome = ""
        self.depth = 0
        # When a report has no <testcase>, the counts its root (or its suites) declare.
        self.declared: list[dict[str, int]] = []

    def parse(self, chunks: Iterable[bytes]) -> None:
        # Plain expat with its declarations refused: no DTD, so no entity (internal or
        # external) is ever defined, expanded or fetched.
        from xml.parsers import expat  # noqa: PLC0415 - see _read

        parser = expat.ParserCreate()
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = self._refuse_doctype
        parser.EntityDeclHandler = self._refuse_entity
        parser.ExternalEntityRefHandler = self._refuse_external
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        for chunk in chunks:
            if not chunk:
                break
            parser.Parse(chunk, False)  # noqa: FBT003 - expat's signature
        parser.Parse(b"", True)  # noqa: FBT003

    @staticmethod
    def _refuse_doctype(*_: object) -> None:
        msg = "not read: it has a document type declaration (<!DOCTYPE>), which reports need not"
        raise _Refused(msg)

    @staticmethod
    def _refuse_entity(*_: object) -> None:
        msg = "not read: it declares or refers to an entity, which reports need not"
        raise _Refused(msg)

    @classmethod
    def _refuse_external(cls, *_: object) -> int:
        cls._refuse_entity()
        return 0

    def _start(self, tag: str, attributes: dict[str, str]) -> None:
        self.depth += 1
        if tag == "testcase":
            classname = attributes.get("classname", "")
            name = attributes.get("name", "?")
            self.case = f"{classname}.{name}" if classname else name
            self.outcome = ""
        elif tag in {"failure", "error", "skipped"} and self.case is not None:
            # A failure or an error outweighs a skip of the same case.
            if self.outcome in {"", "skipped"}:
                self.outcome = tag
        elif tag in {"testsuite", "testsuites"} and self.depth <= 2:  # noqa: PLR2004 - root or its children
            self.declared.append({key: _int(attributes.get(key)) for key in _DECLARED})

    def _end(self, tag: str) -> None:
        self.depth -= 1
        if tag != "testcase" or self.case is None:
            return
        self.tests += 1
        if self.outcome == "failure":
            self.failures += 1
        elif self.outcome == "error":
            self.errors += 1
        elif self.outcome == "skipped":
            self.skipped += 1
        if self.outcome in {"failure", "error"} and len(self.failed) < MAX_FAILED_NAMES:
            # Masked before it is cut: cut first, a secret's start would be kept.
            name = self.mask(self.case)
            if len(name) > _MAX_NAME:
                name = name[: cut_at(name, _MAX_NAME)] + "…"
            self.failed.append(name)
        self.case = None

    def report(self, name: str) -> TestReport:
        if self.tests or not self.declared:
            return TestReport(
                name, self.tests, self.failures, self.errors, self.skipped, self.failed
            )
        # Only totals: those of the root when it has them, else the sum of its suites'.
        root, *suites = self.declared
        totals = root if root["tests"] or not suites else _sum(suites)
        return TestReport(
            name, totals["tests"], totals["failures"], totals["errors"], totals["skipped"]
        )


_DECLARED = ("tests", "failures", "errors", "skipped")


def _int(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


def _sum(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total = dict.fromkeys(_DECLARED, 0)
    for count in counts:
        for key in _DECLARED:
            total[key] += count[key]
    return total
