"""Testing pipelines: a fake executor with scripted outcomes, virtual time, questions about what
ran, a recording hook, and a conformance check for providers.

::

    from pipelinekit.testing import FakeExecutor, fail, succeed

    def test_failed_unit_tests_block_deploy():
        fake = FakeExecutor({"Test.Unit": fail("3 tests failed")}, default=succeed())
        result = fake.run(pipeline)
        assert result.stages["Deploy"].status is pk.Status.NOT_STARTED
        assert fake.never_ran("Deploy.Ship")
"""

from pipelinekit._conformance import check_provider as check_provider
from pipelinekit._fake import Approve as Approve
from pipelinekit._fake import Call as Call
from pipelinekit._fake import Fail as Fail
from pipelinekit._fake import FakeExecutor as FakeExecutor
from pipelinekit._fake import Hang as Hang
from pipelinekit._fake import Reject as Reject
from pipelinekit._fake import Succeed as Succeed
from pipelinekit._fake import approve as approve
from pipelinekit._fake import fail as fail
from pipelinekit._fake import hang as hang
from pipelinekit._fake import reject as reject
from pipelinekit._fake import succeed as succeed
from pipelinekit._timeline import RecordingHook as RecordingHook
from pipelinekit._timeline import Verdict as Verdict
from pipelinekit._timeline import never_ran as never_ran
from pipelinekit._timeline import ran_before as ran_before
from pipelinekit._timeline import ran_in_parallel as ran_in_parallel
from pipelinekit._timeline import timeline as timeline
from pipelinekit._virtual_clock import StuckRunError as StuckRunError
from pipelinekit._virtual_clock import VirtualClock as VirtualClock

__all__ = [
    "Approve",
    "Call",
    "Fail",
    "FakeExecutor",
    "Hang",
    "RecordingHook",
    "Reject",
    "StuckRunError",
    "Succeed",
    "Verdict",
    "VirtualClock",
    "approve",
    "check_provider",
    "fail",
    "hang",
    "never_ran",
    "ran_before",
    "ran_in_parallel",
    "reject",
    "succeed",
    "timeline",
]
