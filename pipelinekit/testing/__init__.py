"""Testing pipelines: scripted outcomes in virtual time, and checks for providers.

A fake executor with scripted outcomes, virtual time, questions about what ran, a recording hook,
and conformance checks for providers and stores.

::

    from pipelinekit.testing import FakeExecutor, fail, succeed

    def test_failed_unit_tests_block_deploy():
        fake = FakeExecutor({"Test.Unit": fail("3 tests failed")}, default=succeed())
        result = fake.run(pipeline)
        assert result.stages["Deploy"].status is pk.Status.NOT_STARTED
        assert fake.never_ran("Deploy.Ship")
"""

from pipelinekit.testing._conformance import check_provider, check_store
from pipelinekit.testing._fake import (
    Approve,
    Call,
    Fail,
    FakeExecutor,
    Hang,
    Reject,
    ScriptedExecutor,
    Succeed,
    approve,
    fail,
    hang,
    reject,
    succeed,
)
from pipelinekit.testing._timeline import (
    RecordingHook,
    Verdict,
    never_ran,
    ran_before,
    ran_in_parallel,
    timeline,
)
from pipelinekit.testing._virtual_clock import DEFAULT_START, StuckRunError, VirtualClock

__all__ = [
    "DEFAULT_START",
    "Approve",
    "Call",
    "Fail",
    "FakeExecutor",
    "Hang",
    "RecordingHook",
    "Reject",
    "ScriptedExecutor",
    "StuckRunError",
    "Succeed",
    "Verdict",
    "VirtualClock",
    "approve",
    "check_provider",
    "check_store",
    "fail",
    "hang",
    "never_ran",
    "ran_before",
    "ran_in_parallel",
    "reject",
    "succeed",
    "timeline",
]
