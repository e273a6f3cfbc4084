"""Unit tests of the example pipeline's logic, in virtual time: no command runs, nothing sleeps.

Run with the project's tests (``nox -s tests``), or alone:
``pytest examples/webapp/test_pipeline.py``.
"""

from datetime import timedelta

from pipeline import pipeline

import pipelinekit as pk
from pipelinekit.testing import FakeExecutor, fail, hang, ran_before, ran_in_parallel, succeed


def test_the_happy_path_deploys_after_tests_and_lint():
    fake = FakeExecutor()
    result = fake.run(pipeline)
    assert result.succeeded
    assert fake.calls[0] == "Source.Checkout"
    assert ran_in_parallel(fake, "Test.Unit", "Test.Lint")
    assert ran_before(fake, "Test.Unit", "Deploy.Staging")
    assert ran_before(fake, "Test.Lint", "Deploy.Staging")
    assert ran_before(fake, "Deploy.Staging", "Deploy.Smoke")


def test_failing_unit_tests_block_the_deploy_but_lint_finishes():
    fake = FakeExecutor({"Test.Unit": fail("3 tests failed")})
    result = fake.run(pipeline)
    assert result.status is pk.Status.FAILED
    assert result.actions["Test.Unit"].error == "3 tests failed"
    assert result.actions["Test.Lint"].status is pk.Status.SUCCEEDED
    assert result.stages["Deploy"].status is pk.Status.NOT_STARTED
    assert fake.never_ran("Deploy.Staging")


def test_a_flaky_smoke_test_is_retried_once():
    fake = FakeExecutor({"Deploy.Smoke": [fail("connection refused"), succeed()]})
    result = fake.run(pipeline)
    assert result.succeeded
    smoke = result.actions["Deploy.Smoke"]
    assert [attempt.status for attempt in smoke.attempts] == [pk.Status.FAILED, pk.Status.SUCCEEDED]
    assert [call.attempt for call in fake.calls if call == "Deploy.Smoke"] == [1, 2]


def test_a_hung_smoke_test_times_out_after_a_minute_of_virtual_time():
    fake = FakeExecutor({"Deploy.Smoke": hang()})
    result = fake.run(pipeline)
    smoke = result.actions["Deploy.Smoke"]
    assert smoke.error == "timed out after 1m00s"
    assert all(a.duration == timedelta(seconds=60) for a in smoke.attempts)


def test_the_deploy_records_the_source_revision():
    seen = {}

    def staging(ctx):
        # As they run: each reference is an environment variable holding its value.
        seen["commands"], seen["env"] = ctx.provider.commands, ctx.provider.env
        return succeed()

    fake = FakeExecutor(
        {
            "Source.Checkout": succeed(variables={"ContentHash": "abc123"}),
            "Deploy.Staging": staging,
        }
    )
    assert fake.run(pipeline, variables={"staging_dir": "/srv/staging"}).succeeded
    revision = 'echo "deployed source ${PK_REF_Src_ContentHash}" > "$STAGING/REVISION"'
    assert revision in seen["commands"]
    assert seen["env"]["PK_REF_Src_ContentHash"] == "abc123"
