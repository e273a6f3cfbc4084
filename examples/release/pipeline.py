"""Release a Python library from its sdist: the recipe of docs/recipes.md.

    pipelinekit run examples/release/pipeline.py --var sdist=dist/mylib-1.2.3.tar.gz \\
        --var index=/srv/simple

Unpack the sdist, build a wheel, test the wheel on every Python listed in ``RELEASE_PYTHONS``
(in parallel), lint, check the wheel's metadata, wait for a person to approve, publish to a
package index folder (PEP 503 layout, served by any static file server or used with
``--find-links``), then install what was published and read its installed version.

The suite runs this very file on a small package its test makes (tests/test_recipes.py).
"""

from __future__ import annotations

import os
import re
import zipfile
from email.parser import HeaderParser

import pipelinekit as pk

#: The Pythons to test on, one parallel action each: RELEASE_PYTHONS="python3.11 python3.12".
PYTHONS = os.environ.get("RELEASE_PYTHONS", "python3").split()
#: Python must not write bytecode into the shared sources, and pip must not ask the network
#: for anything the release does not name.
QUIET = {"PYTHONDONTWRITEBYTECODE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@pk.action(inputs=["wheel"], namespace="Meta", output_variables=["Name", "Version"])
def check_metadata(ctx: pk.ActionContext) -> dict[str, str]:
    """What ``twine check`` looks at: one wheel whose METADATA names, versions and describes it."""
    wheels = sorted(ctx.inputs["wheel"].glob("*.whl"))
    if len(wheels) != 1:
        msg = f"expected one wheel, found {[wheel.name for wheel in wheels]}"
        raise pk.ActionFailed(msg)
    with zipfile.ZipFile(wheels[0]) as wheel:
        [metadata] = [name for name in wheel.namelist() if name.endswith(".dist-info/METADATA")]
        fields = HeaderParser().parsestr(wheel.read(metadata).decode())
    missing = [field for field in ("Name", "Version", "Summary") if not fields.get(field)]
    if missing:
        msg = f"{wheels[0].name}: METADATA has no {', '.join(missing)}"
        raise pk.ActionFailed(msg)
    if not re.fullmatch(r"\d+(\.\d+)*([abc]|rc)?\d*", fields["Version"]):
        msg = f"{wheels[0].name}: version {fields['Version']!r} is not a release version"
        raise pk.ActionFailed(msg)
    return {"Name": fields["Name"], "Version": fields["Version"]}


def test_on(python: str, index: int) -> pk.Action:
    """Install the built wheel (not the sources) for ``python`` and run the sdist's tests on it."""
    return pk.Action(
        f"Py{index}",
        pk.shell(
            'python=$(command -v "$PYTHON")',
            '"$python" -m pip install -q --no-deps --target site "$PK_INPUT_wheel"/*.whl',
            'PYTHONPATH="$PWD/site" "$python" -m pytest -q -p no:cacheprovider'
            ' --junitxml=junit.xml "$PK_INPUT_src/tests"',
            env={"PYTHON": python, **QUIET},
            reports=["junit.xml"],
        ),
        inputs=["src", "wheel"],
    )


pipeline = pk.Pipeline(
    "release",
    variables=[
        pk.Variable("sdist", description="the source distribution to release (.tar.gz)"),
        pk.Variable("index", description="the package index folder to publish to"),
    ],
    stages=[
        pk.Stage(
            "Source",
            [
                pk.Action(
                    "Unpack",
                    pk.ArchiveSource("#{variables.sdist}", strip_components=1),
                    outputs=["src"],
                    namespace="Src",
                ),
            ],
        ),
        pk.Stage(
            "Build",
            [
                pk.Action(
                    "Wheel",
                    # Building in the source tree writes build/ and *.egg-info beside the sources:
                    # the action gets its own writable copy, the shared artifact stays as sealed.
                    pk.shell(
                        "python -m pip wheel -q --no-deps --no-build-isolation"
                        ' -w "$PK_OUTPUT_wheel" "$PK_INPUT_src"',
                        env=QUIET,
                    ),
                    inputs=["src"],
                    outputs=["wheel"],
                    writable_inputs=True,
                ),
            ],
        ),
        pk.Stage(
            "Check",
            [
                *(test_on(python, index) for index, python in enumerate(PYTHONS, start=1)),
                pk.Action(
                    "Lint",
                    pk.shell('python -m ruff check --no-cache -q "$PK_INPUT_src"', env=QUIET),
                    inputs=["src"],
                ),
                check_metadata,
            ],
        ),
        pk.Stage(
            "Approve",
            [
                pk.Action(
                    "Release",
                    pk.ManualApproval(custom_data="Publish #{Meta.Name} #{Meta.Version}?"),
                ),
            ],
        ),
        pk.Stage(
            "Publish",
            [
                pk.Action(
                    "Upload",
                    # PEP 503: one folder per normalized project name, holding its files.
                    pk.shell(
                        'folder="$INDEX/$(echo "$NAME" | tr "A-Z_." "a-z--")"',
                        'mkdir -p "$folder"',
                        'if [ -e "$folder/$(basename "$PK_INPUT_wheel"/*.whl)" ]; then'
                        ' echo "$NAME $VERSION is already published" >&2; exit 1; fi',
                        'cp "$PK_INPUT_wheel"/*.whl "$folder/"',
                        env={
                            "INDEX": "#{variables.index}",
                            "NAME": "#{Meta.Name}",
                            "VERSION": "#{Meta.Version}",
                        },
                    ),
                    inputs=["wheel"],
                ),
                pk.Action(
                    "Smoke",
                    pk.shell(
                        'python -m pip install -q --no-index --find-links "$INDEX/$(echo "$NAME"'
                        ' | tr "A-Z_." "a-z--")" --target smoke "$NAME==$VERSION"',
                        'PYTHONPATH=smoke python -c "import importlib.metadata as m, sys;'
                        ' print(sys.argv[1], m.version(sys.argv[1]))" "$NAME"',
                        env={
                            "INDEX": "#{variables.index}",
                            "NAME": "#{Meta.Name}",
                            "VERSION": "#{Meta.Version}",
                            **QUIET,
                        },
                    ),
                    run_order=2,
                ),
            ],
        ),
    ],
)
