"""The example pipeline: build the webapp as a zipapp, test and lint it in parallel, deploy it to
a local ``staging/`` folder and smoke-test what was deployed.

    pipelinekit run examples/webapp/pipeline.py
    pipelinekit graph examples/webapp/pipeline.py --format mermaid

Commands find their input and output artifacts in ``$PK_INPUT_<name>`` and ``$PK_OUTPUT_<name>``.
Values that come from outside (the staging folder, a variable anyone may set with ``--var``) reach
commands as environment variables, never spliced into shell text.
"""

from pathlib import Path

import pipelinekit as pk

HERE = Path(__file__).resolve().parent
# Inputs are shared, read-only artifacts: keep Python from writing bytecode into them.
PYTHON_ENV = {"PYTHONDONTWRITEBYTECODE": "1"}

pipeline = pk.Pipeline(
    "webapp",
    variables=[
        pk.Variable("staging_dir", default=str(HERE / "staging"), description="where to deploy"),
    ],
    stages=[
        pk.Stage(
            "Source",
            [pk.Action("Checkout", pk.LocalSource(HERE / "app"), outputs=["src"], namespace="Src")],
        ),
        pk.Stage(
            "Build",
            [
                pk.Action(
                    "Package",
                    pk.shell(
                        'mkdir -p build && cp -R "$PK_INPUT_src/webapp" build/',
                        'python -m zipapp build -m "webapp.cli:main" '
                        '-o "$PK_OUTPUT_dist/webapp.pyz"',
                        env=PYTHON_ENV,
                    ),
                    inputs=["src"],
                    outputs=["dist"],
                ),
            ],
        ),
        pk.Stage(
            "Test",
            [
                pk.Action(
                    "Unit",
                    pk.shell(
                        'cd "$PK_INPUT_src" && python -m unittest discover -s tests',
                        env=PYTHON_ENV,
                    ),
                    inputs=["src"],
                ),
                pk.Action(
                    "Lint",
                    pk.shell('python "$PK_INPUT_src/lint.py" "$PK_INPUT_src"', env=PYTHON_ENV),
                    inputs=["src"],
                ),
            ],
        ),
        pk.Stage(
            "Deploy",
            [
                pk.Action(
                    "Staging",
                    pk.shell(
                        'mkdir -p "$STAGING"',
                        'cp "$PK_INPUT_dist/webapp.pyz" "$STAGING/webapp.pyz"',
                        'echo "deployed source #{Src.ContentHash}" > "$STAGING/REVISION"',
                        env={"STAGING": "#{variables.staging_dir}"},
                    ),
                    inputs=["dist"],
                ),
                pk.Action(
                    "Smoke",
                    pk.shell(
                        'python "$STAGING/webapp.pyz" --check',
                        env={"STAGING": "#{variables.staging_dir}", **PYTHON_ENV},
                    ),
                    run_order=2,
                    timeout=60,
                    retry=pk.Retry(2, delay=1),
                ),
            ],
        ),
    ],
)
