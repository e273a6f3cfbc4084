"""Execution ids for humans: printed at the start, and named by a prefix or ``latest``."""

from __future__ import annotations

import textwrap

import anyio

import pipelinekit as pk

PIPELINES = """
import pipelinekit as pk
one = pk.Pipeline("one", [pk.Stage("S", [pk.Action("A", pk.shell("echo one"))])])
two = pk.Pipeline("two", [pk.Stage("S", [pk.Action("A", pk.shell("echo two"))])])
"""


def executions(store_path):
    store = pk.SQLiteStore(store_path)
    try:
        return anyio.run(store.executions)
    finally:
        store.close()


def test_ids_are_printed_and_named_by_prefix_or_latest(tmp_path, cli):
    (tmp_path / "p.py").write_text(textwrap.dedent(PIPELINES))
    store = str(tmp_path / "wd" / "state.db")
    status, out, _ = cli("run", f"{tmp_path / 'p.py'}:one", "--store", str(tmp_path / "wd"))
    assert status == 0
    (first,) = executions(store)
    assert f"  execution {first.id}" in out.splitlines()[:3]
    status, _, _ = cli("run", f"{tmp_path / 'p.py'}:two", "--store", str(tmp_path / "wd"))
    assert status == 0
    newest = executions(store)[0]
    for name, expected in ((first.id[:8], first.id), ("latest", newest.id),
                           ("latest:one", first.id), ("latest:two", newest.id)):  # fmt: skip
        status, out, err = cli("status", name, "--store", store)
        assert status == 0, err
        assert f"(execution {expected})" in out
        status, out, err = cli("logs", name, "S.A", "--store", store)
        assert status == 0, err
        assert ("one" if expected == first.id else "two") in out


def test_an_unknown_short_or_ambiguous_name_is_one_clear_line(tmp_path, cli):
    (tmp_path / "p.py").write_text(textwrap.dedent(PIPELINES))
    store = str(tmp_path / "wd" / "state.db")
    for _ in range(2):
        cli("run", f"{tmp_path / 'p.py'}:one", "--store", str(tmp_path / "wd"))
    status, _, err = cli("status", "abc", "--store", store)
    assert status == 2
    assert "a prefix of at least 4 characters" in err
    status, _, err = cli("status", "zzzzzzzz", "--store", store)
    assert status == 2
    assert "no execution 'zzzzzzzz'" in err
    status, _, err = cli("status", "latest:nope", "--store", store)
    assert status == 2
    assert "no execution of pipeline 'nope'" in err
    ids = [summary.id for summary in executions(store)]
    common = next(
        (ids[0][:n] for n in range(len(ids[0]), 3, -1) if ids[1].startswith(ids[0][:n])), None
    )
    if common is not None:  # two random ids rarely share four characters
        status, _, err = cli("status", common, "--store", store)
        assert status == 2
        assert "several executions" in err


def test_a_prefix_of_several_ids_is_refused_naming_them():
    from datetime import UTC, datetime  # noqa: PLC0415

    import pytest  # noqa: PLC0415

    from pipelinekit.cli._ids import UnknownExecutionError, resolve_execution  # noqa: PLC0415

    store = pk.MemoryStore()
    for execution in ("abcd1111", "abcd2222", "ffff0000"):
        event = pk.Event(
            "pipeline", pk.Status.IN_PROGRESS, "p", execution, datetime.now(UTC), None, None, {}, 1
        )
        anyio.run(store.record, [event])
    assert resolve_execution(store, "abcd1") == "abcd1111"
    assert resolve_execution(store, "ffff") == "ffff0000"
    with pytest.raises(UnknownExecutionError, match="several executions"):
        resolve_execution(store, "abcd")
