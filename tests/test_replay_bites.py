"""The replay's rules, each pinned by a hand-written record (issue 12: tests that bite).

Each test states what one rule of the fold gives for a small record of events, so that a
wrong version of ``_runtime/_replay.py`` (a mutant) fails one of them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pipelinekit as pk
from pipelinekit._runtime import _replay
from pipelinekit._runtime._replay import RUNNING, ExecutionState, replay

T0 = datetime(2026, 1, 1, tzinfo=UTC)
S = pk.Status


def at(seconds):
    return T0 + timedelta(seconds=seconds)


def event(sequence, type_, state, stage=None, action=None, **detail):
    return pk.Event(type_, state, "p", "e1", at(sequence), stage, action, detail, sequence)


START = event(1, "pipeline", S.IN_PROGRESS, stages={"S": ["A", "B"], "T": ["C"]})


def test_running_means_in_progress_or_waiting_for_approval():
    assert frozenset({S.IN_PROGRESS, S.WAITING_FOR_APPROVAL}) == RUNNING
    state = replay([START, event(2, "action", S.IN_PROGRESS, "S", "A")])
    assert state.actions["S.A"].running
    assert not state.actions["S.B"].running


def test_a_success_keeps_what_its_event_told():
    state = replay(
        [
            START,
            event(2, "action", S.IN_PROGRESS, "S", "A", attempt=1, execution_attempt=3),
            event(
                3,
                "action",
                S.SUCCEEDED,
                "S",
                "A",
                execution_attempt=3,
                variables={"v": "***"},
                masked_variables=["v"],
                log_path="logs/a.log",
                artifacts={"out": "abc"},
                cached=True,
                reused_from="e0",
                caches=[{"key": "k", "outcome": "hit"}],
                summary="## ok",
                reports=[{"path": "junit.xml", "tests": 2}, "junk"],
            ),
        ]
    )
    action = state.actions["S.A"]
    assert action.node == "S.A"
    assert action.variables == {"v": "***"}
    assert action.masked_variables == frozenset({"v"})
    assert action.log_path == "logs/a.log"
    assert action.artifacts == {"out": "abc"}
    assert action.cached is True
    assert action.reused_from == "e0"
    assert action.caches == [{"key": "k", "outcome": "hit"}]
    assert action.execution_attempt == 3
    assert action.changed_at == at(3)
    assert action.finished_at == at(3)
    (attempt,) = action.attempts
    assert (attempt.number, attempt.status, attempt.started_at, attempt.finished_at) == (
        1,
        S.SUCCEEDED,
        at(2),
        at(3),
    )
    assert attempt.summary == "## ok"
    assert [report.path for report in attempt.reports] == ["junit.xml"]
    assert attempt.reports[0].tests == 2
    assert attempt.failure is None


def test_a_success_without_details_has_empty_defaults():
    state = replay(
        [
            START,
            event(2, "action", S.IN_PROGRESS, "S", "A"),
            event(3, "action", S.SUCCEEDED, "S", "A", summary=7, reports="junit.xml"),
        ]
    )
    action = state.actions["S.A"]
    assert action.variables == {}
    assert action.masked_variables == frozenset()
    assert action.log_path is None
    assert action.artifacts == {}
    assert action.cached is False
    assert action.reused_from is None
    assert action.caches == []
    assert action.execution_attempt == 1
    # Without ``attempt`` in the detail, the attempt is numbered after those before it.
    assert action.attempts[0].number == 1
    assert action.attempts[0].summary is None
    assert action.attempts[0].reports == ()


def test_a_failure_records_its_error_command_caches_and_log_but_not_variables():
    state = replay(
        [
            START,
            event(2, "action", S.IN_PROGRESS, "S", "A"),
            event(
                3,
                "action",
                S.FAILED,
                "S",
                "A",
                error="exit 3",
                failure={"exit_status": 3, "command": "make"},
                caches=[{"key": "k", "outcome": "miss"}],
                log_path="logs/a.log",
                variables={"v": "1"},
                artifacts={"out": "abc"},
                cached=True,
            ),
        ]
    )
    action = state.actions["S.A"]
    assert action.status is S.FAILED
    assert action.error == "exit 3"
    assert action.caches == [{"key": "k", "outcome": "miss"}]
    assert action.log_path == "logs/a.log"
    assert action.variables == {}
    assert action.artifacts == {}
    assert action.cached is False
    assert (action.last_end, action.first_success) == (3, None)
    (attempt,) = action.attempts
    assert (attempt.status, attempt.error, attempt.finished_at) == (S.FAILED, "exit 3", at(3))
    assert attempt.failure is not None
    assert (attempt.failure.exit_status, attempt.failure.command) == (3, "make")
    assert state.stages["S"].failed


def test_a_skipped_action_keeps_its_caches_and_a_later_log_only_replaces_a_given_one():
    state = replay(
        [
            START,
            event(2, "action", S.IN_PROGRESS, "S", "A"),
            event(3, "action", S.FAILED, "S", "A", caches=[{"key": "k"}], log_path="one.log"),
            event(4, "action", S.IN_PROGRESS, "S", "A"),
            # An attempt that logged nothing leaves the log the earlier one wrote.
            event(5, "action", S.SUCCEEDED, "S", "A"),
            event(6, "action", S.SKIPPED, "S", "A", caches=[{"key": "other"}]),
        ]
    )
    action = state.actions["S.A"]
    assert action.log_path == "one.log"
    assert action.caches == []  # the success's (none); a skip does not replace them
    assert action.status is S.SKIPPED
    assert action.first_success == 5
    assert action.last_end == 6
    assert action.first_start == 2
    assert action.started_at == at(2)


def test_only_a_terminal_state_is_an_end():
    # A non-terminal end state (not started again) leaves ``last_end`` alone.
    state = replay([START, event(2, "action", S.NOT_STARTED, "S", "A", error="held")])
    action = state.actions["S.A"]
    assert action.last_end is None
    assert action.error == "held"
    assert action.finished_at == at(2)
    assert action.attempts == []


def test_a_retry_ends_the_previous_attempt_when_it_says_and_with_what_it_told():
    state = replay(
        [
            START,
            event(2, "action", S.IN_PROGRESS, "S", "A", attempt=1),
            event(
                10,
                "action",
                S.IN_PROGRESS,
                "S",
                "A",
                attempt=2,
                previous_finished_at=at(4).isoformat(),
                previous_error="boom",
                previous_failure={"exit_status": 1},
                previous_summary="## first",
                previous_reports=[{"path": "r.xml"}],
                error="not mine",
            ),
        ]
    )
    action = state.actions["S.A"]
    first, second = action.attempts
    assert (first.status, first.finished_at, first.error) == (S.FAILED, at(4), "boom")
    assert first.failure is not None
    assert first.failure.exit_status == 1
    assert first.summary == "## first"
    assert [report.path for report in first.reports] == ["r.xml"]
    assert (second.number, second.status, second.started_at) == (2, S.IN_PROGRESS, at(10))
    assert action.started_at == at(2)
    assert action.first_start == 2
    assert action.error is None
    assert action.finished_at is None


def test_a_restart_after_an_end_opens_a_new_attempt_without_touching_the_ended_one():
    state = replay(
        [
            START,
            event(2, "action", S.IN_PROGRESS, "S", "A"),
            event(3, "action", S.FAILED, "S", "A", error="x"),
            event(4, "action", S.IN_PROGRESS, "S", "A", previous_error="not this one"),
        ]
    )
    action = state.actions["S.A"]
    first, second = action.attempts
    assert (first.status, first.error, first.finished_at) == (S.FAILED, "x", at(3))
    assert (second.number, second.status) == (2, S.IN_PROGRESS)
    assert (action.error, action.finished_at) == (None, None)


def test_an_approval_wait_between_start_and_end_closes_the_same_attempt():
    state = replay(
        [
            START,
            event(2, "action", S.IN_PROGRESS, "S", "A"),
            event(3, "action", S.WAITING_FOR_APPROVAL, "S", "A"),
            event(4, "action", S.IN_PROGRESS, "S", "A", attempt=2),
        ]
    )
    action = state.actions["S.A"]
    # The wait is not an end: it keeps no finish time; the start after it fails the attempt.
    assert [a.status for a in action.attempts] == [S.FAILED, S.IN_PROGRESS]
    assert action.attempts[0].finished_at == at(4)
    state.apply(event(5, "action", S.WAITING_FOR_APPROVAL, "S", "A"))
    state.apply(event(6, "action", S.SUCCEEDED, "S", "A"))
    assert [a.status for a in action.attempts] == [S.FAILED, S.SUCCEEDED]


def test_a_stage_records_its_first_start_and_its_end():
    state = replay(
        [
            START,
            event(2, "stage", S.IN_PROGRESS, "S"),
            event(3, "stage", S.IN_PROGRESS, "S"),
            event(4, "stage", S.SUCCEEDED, "S"),
            event(5, "stage", S.IN_PROGRESS, "U"),
        ]
    )
    stage = state.stages["S"]
    assert (stage.status, stage.started_at, stage.finished_at) == (S.SUCCEEDED, at(2), at(4))
    assert not stage.failed
    assert not stage.ever_failed
    assert list(state.stages) == ["S", "T", "U"]
    assert state.stages["U"].started_at == at(5)
    assert state.stages["U"].finished_at is None


def test_ever_failed_outlives_a_later_success_and_reopen_clears_the_attempt():
    state = replay(
        [
            START,
            event(2, "stage", S.IN_PROGRESS, "S"),
            event(3, "stage", S.FAILED, "S"),
            event(4, "pipeline", S.FAILED),
            event(5, "pipeline", S.IN_PROGRESS, retry="S", actions=["S.A", "X.Y"]),
        ]
    )
    stage = state.stages["S"]
    assert (stage.status, stage.started_at, stage.finished_at, stage.failed) == (
        S.NOT_STARTED,
        None,
        None,
        False,
    )
    assert stage.ever_failed
    state.apply(event(6, "stage", S.IN_PROGRESS, "S"))
    state.apply(event(7, "stage", S.SUCCEEDED, "S"))
    assert stage.ever_failed
    assert not stage.failed
    assert stage.started_at == at(6)


def test_a_retry_reopens_only_the_listed_actions_and_clears_their_end():
    state = replay(
        [
            START,
            event(2, "action", S.IN_PROGRESS, "S", "A"),
            event(3, "action", S.FAILED, "S", "A", error="x"),
            event(4, "action", S.IN_PROGRESS, "S", "B"),
            event(5, "action", S.FAILED, "S", "B", error="y"),
            event(6, "pipeline", S.FAILED),
            event(7, "pipeline", S.IN_PROGRESS, retry="S", actions=["S.A"], execution_attempt=2),
        ]
    )
    reopened, kept = state.actions["S.A"], state.actions["S.B"]
    assert (reopened.status, reopened.error, reopened.finished_at) == (S.NOT_STARTED, None, None)
    assert (kept.status, kept.error, kept.finished_at) == (S.FAILED, "y", at(5))
    assert state.attempt == 2
    # A retry of a stage the record never named still adds it, not started.
    state.apply(event(8, "pipeline", S.IN_PROGRESS, retry="Z"))
    assert state.stages["Z"].status is S.NOT_STARTED
    assert state.run_kinds == ["start", "retry S", "retry Z"]


def test_the_execution_attempt_only_grows():
    state = replay(
        [
            START,
            event(2, "pipeline", S.IN_PROGRESS, resumed=True, execution_attempt=3),
            event(3, "pipeline", S.IN_PROGRESS, resumed=True, execution_attempt=2),
        ]
    )
    assert state.attempt == 3


def test_runs_their_kinds_and_active_seconds():
    state = replay(
        [
            START,  # run 1 starts at 1
            event(2, "stage", S.IN_PROGRESS, "S"),
            event(4, "pipeline", S.FAILED),  # run 1 ends at 4
            event(10, "pipeline", S.IN_PROGRESS, retry="S", execution_attempt=2),
            event(12, "stage", S.IN_PROGRESS, "S"),
            # The retry's process died after 12; a resume takes it up at 20.
            event(20, "pipeline", S.IN_PROGRESS, resumed=True),
            event(25, "pipeline", S.SUCCEEDED),
        ]
    )
    assert state.run_kinds == ["start", "retry S", "resume"]
    assert state.runs == [[at(1), at(4)], [at(10), at(12)], [at(20), at(25)]]
    assert state.active_seconds() == 3 + 2 + 5
    assert state.status is S.SUCCEEDED
    assert state.finished_at == at(25)
    assert state.started_at == at(1)
    assert state.start == START.detail
    assert state.ended


def test_a_pipeline_event_that_is_neither_retry_nor_resume_opens_no_run():
    state = replay(
        [
            START,
            event(2, "pipeline", S.IN_PROGRESS, resumed=False),
            event(3, "pipeline", S.IN_PROGRESS, retry=None),
            event(4, "pipeline", S.STOPPING),
        ]
    )
    assert state.runs == [[at(1)]]
    assert state.run_kinds == ["start"]
    assert state.status is S.STOPPING
    assert state.finished_at is None
    assert state.start == START.detail


def test_a_restart_clears_the_finish_time():
    state = replay(
        [START, event(2, "pipeline", S.FAILED), event(3, "pipeline", S.IN_PROGRESS, resumed=True)]
    )
    assert state.finished_at is None
    assert not state.ended
    assert state.runs == [[at(1), at(2)], [at(3)]]


def test_active_seconds_of_a_running_execution_counts_to_now_or_its_last_event():
    state = replay([START, event(5, "stage", S.IN_PROGRESS, "S")])
    assert state.active_seconds() == 4
    assert state.active_seconds(at(30)) == 29
    # A run still open that is not the last counts to the last event only.
    state.apply(event(9, "pipeline", S.IN_PROGRESS, resumed=True))
    assert state.runs == [[at(1), at(5)], [at(9)]]
    assert state.active_seconds(at(11)) == 4 + 2
    state.runs[-1:] = [[at(9)], [at(10)]]
    assert state.active_seconds(at(20)) == (5 - 1) + (9 - 9) + (20 - 10)
    # Never negative: a clock that went back counts zero.
    assert ExecutionState("e", "p", runs=[[at(5), at(1)]]).active_seconds() == 0
    assert ExecutionState("e", "p", runs=[[at(5)]]).active_seconds() == 0
    assert ExecutionState("e", "p", runs=[[at(5)]]).active_seconds(at(8)) == 3


def test_sequence_and_times_of_the_last_events():
    state = replay([START, event(5, "stage", S.IN_PROGRESS, "S")])
    state.apply(event(3, "stage", S.SUCCEEDED, "S"))  # an older event read late
    assert state.last_sequence == 5
    assert (state.previous_time, state.last_time) == (at(5), at(3))
    state.apply(event(7, "stage", S.SUCCEEDED, "S"))
    assert state.last_sequence == 7


def test_events_without_a_stage_or_action_change_nothing_but_the_clock():
    state = replay([START])
    state.apply(event(2, "stage", S.IN_PROGRESS))
    state.apply(event(3, "action", S.FAILED, "S"))
    assert all(stage.status is S.NOT_STARTED for stage in state.stages.values())
    assert all(action.status is S.NOT_STARTED for action in state.actions.values())
    assert not state.stages["S"].failed
    state.apply(event(4, "log", S.FAILED, "S", "A"))
    assert state.actions["S.A"].status is S.FAILED  # any other type is an action's
    assert state.last_sequence == 4


def test_an_action_of_an_unknown_stage_adds_the_stage_and_keeps_existing_ones():
    state = replay([START, event(2, "stage", S.IN_PROGRESS, "S")])
    state.apply(event(3, "action", S.IN_PROGRESS, "S", "Z"))
    assert state.stages["S"].status is S.IN_PROGRESS
    assert list(state.actions) == ["S.A", "S.B", "T.C", "S.Z"]
    state.apply(event(4, "action", S.FAILED, "Q", "R"))
    assert state.stages["Q"].failed


def test_a_new_approval_request_takes_a_new_token_and_a_decision_keeps_it():
    state = replay(
        [
            START,
            event(2, "action", S.IN_PROGRESS, "S", "A"),
            event(3, "approval", S.WAITING_FOR_APPROVAL, "S", "A"),
            event(4, "approval", S.FAILED, "S", "A", by="bob"),
            event(5, "approval", S.WAITING_FOR_APPROVAL, "S", "A"),
        ]
    )
    action = state.actions["S.A"]
    assert action.approval is not None
    assert (action.approval.token, action.approval.time) == (5, at(5))
    state.apply(event(6, "approval", S.SUCCEEDED, "S", "A"))
    assert (action.approval.token, action.approval.status) == (5, S.SUCCEEDED)
    # A decision with no request on record takes its own sequence number.
    state.apply(event(7, "approval", S.SUCCEEDED, "T", "C"))
    assert state.actions["T.C"].approval.token == 7
    # A decision on an action not waiting leaves its status alone.
    assert state.actions["T.C"].status is S.NOT_STARTED
    assert state.waiting_for_approval() == []


def test_waiting_for_approval_is_sorted():
    state = replay(
        [
            START,
            event(2, "approval", S.WAITING_FOR_APPROVAL, "T", "C"),
            event(3, "approval", S.WAITING_FOR_APPROVAL, "S", "B"),
        ]
    )
    assert state.waiting_for_approval() == ["S.B", "T.C"]


def test_retryable_stages_are_the_failed_and_stopped_ones_in_order():
    state = replay(
        [
            START,
            event(2, "stage", S.STOPPED, "T"),
            event(3, "stage", S.SUCCEEDED, "S"),
            event(4, "stage", S.FAILED, "U"),
        ]
    )
    assert state.retryable_stages() == ["T", "U"]
    assert state.stages["T"].failed is False


def test_the_shape_comes_only_from_the_first_event():
    state = ExecutionState.of(event(1, "pipeline", S.IN_PROGRESS))
    assert (state.execution_id, state.pipeline, state.stages, state.actions) == ("e1", "p", {}, {})
    assert state.actions == {}
    state = replay([START, event(2, "pipeline", S.IN_PROGRESS, stages={"Z": ["Q"]})])
    assert list(state.stages) == ["S", "T"]
    assert state.start == START.detail


def test_the_module_exports_its_public_names():
    assert sorted(_replay.__all__) == [
        "ActionState",
        "ApprovalRequest",
        "ExecutionState",
        "StageState",
        "detail_time",
        "replay",
    ]


def test_fresh_records_start_empty():
    action = ExecutionState.of(START).actions["S.A"]
    assert (action.stage, action.name, action.status) == ("S", "A", S.NOT_STARTED)
    assert (action.started_at, action.finished_at, action.error, action.log_path) == (
        None,
        None,
        None,
        None,
    )
    assert action.masked_variables == frozenset()
    assert action.execution_attempt == 1
    assert (action.first_start, action.last_end, action.first_success) == (None, None, None)
    assert (action.approval, action.changed_at, action.reused_from) == (None, None, None)
    assert (action.attempts, action.variables, action.artifacts, action.caches) == ([], {}, {}, [])
    assert action.cached is False
    state = ExecutionState("e", "p")
    assert state.start == {}
    assert (state.status, state.attempt, state.last_sequence) == (S.IN_PROGRESS, 1, 0)
    assert (state.started_at, state.finished_at, state.last_time, state.previous_time) == (
        None,
        None,
        None,
        None,
    )
    assert (state.runs, state.run_kinds) == ([], [])


def test_records_added_by_events_carry_their_names():
    state = replay([event(1, "pipeline", S.IN_PROGRESS)])
    state.apply(event(2, "stage", S.IN_PROGRESS, "S"))
    state.apply(event(3, "action", S.IN_PROGRESS, "T", "C"))
    assert state.stages["S"].name == "S"
    assert state.stages["T"].name == "T"
    assert (state.actions["T.C"].stage, state.actions["T.C"].name) == ("T", "C")
    assert state.actions["T.C"].node == "T.C"


def test_an_attempt_takes_the_number_its_start_event_gives():
    # A resume's first start continues the numbering of attempts made before the process died.
    state = replay([START, event(2, "action", S.IN_PROGRESS, "S", "A", attempt=4)])
    assert [attempt.number for attempt in state.actions["S.A"].attempts] == [4]
