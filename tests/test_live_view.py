"""The live tree stays truthful: across retries, with attempt times, and while approvals wait.

Today's cuts (issue 11, items 5 and 9): after a stage retry the tree showed the actions that had
succeeded before as not started; times counted the waits between attempts; a waiting
``ManualApproval`` stayed at 0.0 s and its ``custom_data`` showed only in ``status --json``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import pipelinekit as pk
from pipelinekit.testing import FakeExecutor, fail, succeed

rich = pytest.importorskip("rich.console")
from pipelinekit.cli._view import LiveView  # noqa: E402 - rich is optional

BROKEN: set[str] = set()


async def work(ctx):
    if f"{ctx.stage}.{ctx.action}" in BROKEN:
        raise pk.ActionFailed("broken")


PIPELINE = pk.Pipeline(
    "release",
    [
        pk.Stage("Build", [pk.Action("Compile", pk.python(work))]),
        pk.Stage("Test", [pk.Action("Unit", pk.python(work)), pk.Action("Lint", pk.python(work))]),
    ],
)


def drawn(view: LiveView) -> str:
    console = rich.Console(record=True, width=200, color_system=None)
    console.print(view)
    return console.export_text()


def event(type_, state, action=None, at=None, stage="S", **detail):
    return pk.Event(type_, state, "p", "e1", at or datetime.now(UTC), stage, action, detail)


@pytest.mark.anyio
async def test_after_a_stage_retry_earlier_successes_stay_succeeded(tmp_path):
    BROKEN.add("Test.Unit")
    async with pk.Engine(workdir=tmp_path) as engine:
        first = await (await engine.start(PIPELINE)).wait()
        assert first.status is pk.Status.FAILED
        BROKEN.clear()
        execution = await engine.retry_stage(first.execution_id, "Test", pipeline=PIPELINE)
        view = LiveView(PIPELINE, rich.Console(color_system=None))
        view.catch_up(await engine.store.events(first.execution_id))
        await view.follow(execution)
        result = await execution.wait()
    tree = drawn(view)
    assert result.status is pk.Status.SUCCEEDED
    assert "✔      Compile" in tree  # not "·": it succeeded in the first attempt
    assert "✔      Lint" in tree
    assert "✔      Unit (attempt 2)" in tree


def test_times_count_attempts_not_the_wait_between_them():
    view = LiveView(pk.Pipeline("p", [pk.Stage("S", [pk.Action("A", pk.shell("x"))])]), None)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    view._apply(event("action", pk.Status.IN_PROGRESS, "A", t0, attempt=1))
    view._apply(
        event(
            "action",
            pk.Status.IN_PROGRESS,
            "A",
            t0 + timedelta(seconds=61),
            attempt=2,
            previous_error="boom",
            previous_finished_at=(t0 + timedelta(seconds=1)).isoformat(),
        )
    )
    view._apply(event("action", pk.Status.SUCCEEDED, "A", t0 + timedelta(seconds=63), attempt=2))
    assert view._elapsed("S.A") == "3.0s"  # 1 s, then 2 s; not the minute between


def test_the_result_s_duration_counts_attempts_not_the_wait_between_them():
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage(
                "S",
                [
                    pk.Action(
                        "Flaky",
                        pk.shell("x"),
                        retry=pk.Retry(2, delay=timedelta(minutes=1), jitter=0),
                    )
                ],
            )
        ],
    )
    result = FakeExecutor({"S.Flaky": [fail(after=10), succeed(after=5)]}).run(pipeline)
    flaky = result.actions["S.Flaky"]
    assert flaky.duration == timedelta(seconds=15)
    assert flaky.finished_at - flaky.started_at == timedelta(seconds=75)


def test_a_waiting_approval_s_timer_counts_and_its_custom_data_shows():
    pipeline = pk.Pipeline("p", [pk.Stage("S", [pk.Action("Prod", pk.ManualApproval())])])
    view = LiveView(pipeline, None)
    asked = datetime.now(UTC) - timedelta(minutes=5)
    view._apply(event("action", pk.Status.IN_PROGRESS, "Prod", asked, attempt=1))
    view._apply(
        event(
            "approval",
            pk.Status.WAITING_FOR_APPROVAL,
            "Prod",
            asked,
            custom_data="Release 2.1 [prod]: check the changelog\nsecond line",
            external_entity_link="https://example.test/changes/21",
        )
    )
    tree = drawn(view)
    assert view._elapsed("S.Prod").startswith("5m0")  # not 0.0s
    assert "Release 2.1 [prod]: check the changelog …" in tree  # markup-safe, one line
    assert "https://example.test/changes/21" in tree
    assert "?      Prod waiting for approval: pipelinekit approve e1 S.Prod" in tree
    view._apply(event("approval", pk.Status.SUCCEEDED, "Prod", by="bob"))
    view._apply(event("action", pk.Status.SUCCEEDED, "Prod", attempt=1))
    tree = drawn(view)
    assert "Release 2.1" not in tree
    assert "✔      Prod" in tree


def test_the_plain_view_prints_an_approval_s_custom_data_and_link():
    import io  # noqa: PLC0415

    from pipelinekit.cli._view import PlainView  # noqa: PLC0415

    out = io.StringIO()
    PlainView(out)._print(
        event(
            "approval",
            pk.Status.WAITING_FOR_APPROVAL,
            "Prod",
            custom_data="Release 2.1",
            external_entity_link="https://example.test/21",
        )
    )
    assert "  custom data: Release 2.1\n  link: https://example.test/21\n" in out.getvalue()
