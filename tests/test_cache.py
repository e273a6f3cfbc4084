"""Caching: an action with cache=True reuses an identical earlier attempt's outputs and
variables, and says so; anything that changes the inputs or the configuration runs it again."""

from __future__ import annotations

import enum
from datetime import timedelta
from pathlib import Path

import attrs

import pipelinekit as pk
from pipelinekit._runtime._cache import cache_key

#: What ``test_cache_keys_are_the_ones_recorded_before`` hashes to.
RECORDED_KEY = "696182966ea5b60a8d844b0cb8537e6a9f710a064dcd693b62c9a3e5ff5f230a"


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


class Tone(enum.StrEnum):
    LOUD = "loud"


def helper(ctx):
    return None


@attrs.frozen
class Inner:
    __module__ = "recorded"

    weights: tuple[float, ...]
    table: dict[object, object]
    tone: Tone
    nothing: None = None


@pk.provider("Custom", "KeyProbe", category=pk.Category.BUILD)
@attrs.frozen
class KeyProbe:
    """A provider with nested attrs values, odd keys, enums, functions and other objects."""

    __module__ = "recorded"

    inner: Inner
    items: list[object]
    wait: timedelta

    async def run(self, ctx):
        return pk.Result()


def test_cache_keys_are_the_ones_recorded_before(tmp_path):
    """The key of an attempt is what entries in existing stores were saved under: its
    rendering and hashing must not change (this digest was made by the first release)."""
    (tmp_path / "a.txt").write_text("hello\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"\0\1")
    provider = KeyProbe(
        Inner((1.5, 2), {2: "two", "1": True, None: [1, (2, 3)]}, Tone.LOUD),
        [helper, b"bytes", 3, None, {"k": Tone.LOUD}, Path("/x")],
        timedelta(seconds=10),
    )
    key = cache_key("Build", provider, {"b": "2", "a": "1"}, {"src": tmp_path})
    assert key == RECORDED_KEY


def test_a_cached_output_swept_during_its_restore_runs_the_action(tmp_path, monkeypatch):
    """A blob gone between the restore's check and its link (a concurrent `cache prune`):
    a miss with a warning, the outputs emptied, the action run; never a failed action."""
    from pipelinekit._runtime._blobs import CacheFolder  # noqa: PLC0415

    source = tmp_path / "src"
    source.mkdir()
    (source / "input.txt").write_text("one\n")
    marker = tmp_path / "runs"
    pk.run(pipeline(source, marker), workdir=tmp_path / "wd")
    checked = CacheFolder._checked

    def swept_meanwhile(self, files, seen):
        found = checked(self, files, seen)
        for blob, _ in found:
            Path(blob).unlink()
        return found

    monkeypatch.setattr(CacheFolder, "_checked", swept_meanwhile)
    second = pk.run(pipeline(source, marker), workdir=tmp_path / "wd")
    make = second.actions["Build.Make"]
    assert second.succeeded, make.error
    assert make.cached is False
    assert marker.read_text().count("ran") == 2
    assert (make.outputs["out"] / "greeting").read_text() == "hello\none\n"
    assert "cache not restored" in Path(make.log_path).read_text()
