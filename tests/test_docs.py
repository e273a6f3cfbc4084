"""Every Python example of the testing guide runs, against the example pipeline."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "testing.md"


def blocks():
    return re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)


@pytest.fixture(scope="module")
def example_pipeline():
    sys.path.insert(0, str(ROOT / "examples" / "webapp"))
    try:
        from pipeline import pipeline  # noqa: PLC0415 - the example lives outside the package
    finally:
        sys.path.remove(str(ROOT / "examples" / "webapp"))
    return pipeline


@pytest.mark.parametrize("index", range(len(blocks())))
def test_the_guides_examples_pass(index, example_pipeline):
    import pipelinekit as pk  # noqa: PLC0415 - the examples expect it in their namespace

    namespace = {"pipeline": example_pipeline, "pk": pk}
    exec(compile(blocks()[index], f"{GUIDE}:block{index}", "exec"), namespace)  # noqa: S102 - our own guide
    tests = [value for name, value in namespace.items() if name.startswith("test_")]
    assert tests, "each example block defines a test"
    for test in tests:
        test()
