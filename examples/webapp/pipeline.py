"""The example pipeline: build the webapp as a zipapp, test and lint it in parallel, deploy it to
a local ``staging/`` folder and smoke-test what was deployed.

    pipelinekit validate examples/webapp/pipeline.py
    pipelinekit graph examples/webapp/pipeline.py --format mermaid

Commands read their inputs and write their outputs through environment variables
(``$PK_INPUT_<artifact>``, ``$PK_OUTPUT_<artifact>``), and values that come from outside (the
staging folder) reach them as environment variables too, never spliced into shell text.
"""

from pathlib import Path

import pipelinekit as pk

HERE = Path(__file__).resolve().parent

pipeline = pk.Pipeline(
    "webapp",
    variables=[
        pk.Variable("staging_dir", default=str(HERE / "staging"), description="where to deploy"),
    ],
    stages=[
        pk.Stage(
            "Source",
            [
                pk.Action(
                    "Checkout",
                    pk.shell(
                        'cp -R "$APP_DIR/." "$PK_OUTPUT_src"', env={"APP_DIR": str(HERE / "app")}
                    ),
                    outputs=["src"],
                ),
            ],
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
                    pk.shell('cd "$PK_INPUT_src" && python -m unittest discover -s tests'),
                    inputs=["src"],
                ),
                pk.Action(
                    "Lint",
                    pk.shell('python -W error -m compileall -q "$PK_INPUT_src"'),
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
                        'mkdir -p "$STAGING" && cp "$PK_INPUT_dist/webapp.pyz" "$STAGING/"',
                        env={"STAGING": "#{variables.staging_dir}"},
                    ),
                    inputs=["dist"],
                ),
                pk.Action(
                    "Smoke",
                    pk.shell(
                        'python "$STAGING/webapp.pyz" --check',
                        env={"STAGING": "#{variables.staging_dir}"},
                    ),
                    run_order=2,
                ),
            ],
        ),
    ],
)
