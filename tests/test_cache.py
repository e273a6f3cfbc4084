"""Caching: an action with cache=True reuses an identical earlier attempt's outputs and
variables, and says so; anything that changes the inputs or the configuration runs it again."""

from __future__ import annotations

import pipelinekit as pk


def pipeline(source, marker, greeting="hello"):
    return pk.Pipeline(
        "cached",
        [
            pk.Stage("Source", [pk.Action("Get", pk.LocalSource(source), outputs=["src"])]),
            pk.Stage(
                "Build",
                [
                    pk.Action(
                        "Make",
                        pk.shell(
                            f"echo ran >> {marker}",
                            f'echo {greeting} > "$PK_OUTPUT_out/greeting"',
                            'cat "$PK_INPUT_src/input.txt" >> "$PK_OUTPUT_out/greeting"',
                            "VERSION=$(wc -l < $PK_OUTPUT_out/greeting)",
                            output_variables=["VERSION"],
                        ),
                        inputs=["src"],
                        outputs=["out"],
                        namespace="Make",
                        cache=True,
                    )
                ],
            ),
        ],
    )


def test_an_identical_attempt_is_reused(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "input.txt").write_text("one\n")
    marker = tmp_path / "runs"
    first = pk.run(pipeline(source, marker), workdir=tmp_path / "wd")
    second = pk.run(pipeline(source, marker), workdir=tmp_path / "wd")
    assert marker.read_text().count("ran") == 1
    make = second.actions["Build.Make"]
    assert make.cached is True
    assert first.actions["Build.Make"].cached is False
    assert make.variables == first.actions["Build.Make"].variables == {"VERSION": "2"}
    assert (make.outputs["out"] / "greeting").read_text() == "hello\none\n"
    assert make.outputs["out"] != first.actions["Build.Make"].outputs["out"]


def test_changed_inputs_or_configuration_run_again(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "input.txt").write_text("one\n")
    marker = tmp_path / "runs"
    pk.run(pipeline(source, marker), workdir=tmp_path / "wd")
    (source / "input.txt").write_text("two\n")
    changed_input = pk.run(pipeline(source, marker), workdir=tmp_path / "wd")
    assert changed_input.actions["Build.Make"].cached is False
    changed_config = pk.run(pipeline(source, marker, greeting="hi"), workdir=tmp_path / "wd")
    assert changed_config.actions["Build.Make"].cached is False
    assert marker.read_text().count("ran") == 3
    again = pk.run(pipeline(source, marker, greeting="hi"), workdir=tmp_path / "wd")
    assert again.actions["Build.Make"].cached is True


def test_the_event_says_cached_and_records_artifact_hashes(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "input.txt").write_text("one\n")
    store = pk.SQLiteStore(tmp_path / "state.db")
    marker = tmp_path / "runs"
    pk.run(pipeline(source, marker), workdir=tmp_path / "wd", store=store)
    second = pk.run(pipeline(source, marker), workdir=tmp_path / "wd", store=store)
    import anyio  # noqa: PLC0415

    events = anyio.run(store.events, second.execution_id)
    done = next(e for e in events if e.action == "Make" and e.state is pk.Status.SUCCEEDED)
    assert done.detail["cached"] is True
    assert len(done.detail["artifacts"]["out"]) == 64
