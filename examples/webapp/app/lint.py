"""A small lint check for the example app: syntax, line length, whitespace, debugging leftovers.

python lint.py DIR        exits 1 and lists file:line: problem for each finding
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_LINE = 100


def lint(path: Path) -> list[str]:
    """Every finding in one file."""
    text = path.read_text(encoding="utf-8")
    findings = []
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as error:
        return [f"{path}:{error.lineno}: syntax error: {error.msg}"]
    for number, line in enumerate(text.splitlines(), start=1):
        if len(line) > MAX_LINE:
            findings.append(f"{path}:{number}: line longer than {MAX_LINE} characters")
        if line != line.rstrip():
            findings.append(f"{path}:{number}: trailing whitespace")
        if "\t" in line:
            findings.append(f"{path}:{number}: tab character")
    findings.extend(
        f"{path}:{node.lineno}: breakpoint() left in"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "breakpoint"
    )
    return findings


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    findings = [finding for path in sorted(root.rglob("*.py")) for finding in lint(path)]
    for finding in findings:
        print(finding)
    print(f"lint: {len(findings)} findings in {root}")
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
