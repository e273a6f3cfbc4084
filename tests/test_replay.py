"""Replay: an execution's state read back from its events agrees with what the run reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import pipelines

import pipelinekit as pk
from pipelinekit._runtime._replay import ExecutionState, replay
from pipelinekit.testing import FakeExecutor, approve, fail, hang, succeed

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(sequence, type_, state, stage=None, action=None, **detail):
    return pk.Event(
        type_,
        state,
        "p",
        "e1",
        T0 + timedelta(seconds=sequence),
        stage,
        action,
        detail,
        sequence,
    )


START = event(1, "pipeline", pk.Status.IN_PROGRESS, stages={"S": ["A", "B"], "T": ["C"]})


def test_shape_comes_from_the_first_event():
    state = replay([START])
    assert list(state.stages) == ["S", "T"]
    assert list(state.actions) == ["S.A", "S.B", "T.C"]
    assert all(a.status is pk.Status.NOT_STARTED for a in state.actions.values())
    assert state.status is pk.Status.IN_PROGRESS
    assert not state.ended


def test_attempts_open_and_close_in_order():
    state = replay(
        [
            START,
            event(2, "stage", pk.Status.IN_PROGRESS, "S"),
            event(3, "action", pk.Status.IN_PROGRESS, "S", "A", attempt=1),
            # A retried attempt's failure is recorded with the next attempt's start.
            event(4, "action", pk.Status.IN_PROGRESS, "S", "A", attempt=2, previous_error="boom"),
            event(5, "action", pk.Status.SUCCEEDED, "S", "A", attempt=2, variables={"v": "1"}),
        ]
    )
    action = state.actions["S.A"]
    assert [(a.number, a.status, a.error) for a in action.attempts] == [
        (1, pk.Status.FAILED, "boom"),
        (2, pk.Status.SUCCEEDED, None),
    ]
    assert action.status is pk.Status.SUCCEEDED
    assert action.error is None
    assert action.variables == {"v": "1"}
    assert action.started_at == T0 + timedelta(seconds=3)
    assert action.attempts[0].finished_at == T0 + timedelta(seconds=4)
    assert action.finished_at == T0 + timedelta(seconds=5)
    assert (action.first_start, action.last_end, action.first_success) == (3, 5, 5)
    assert state.stages["S"].failed is False  # a retried failure does not fail the stage
    assert state.variable_values() == {"S.A.v": "1"}


def test_a_failed_action_marks_its_stage_and_a_failed_stage_stays_known():
    state = replay(
        [
            START,
            event(2, "stage", pk.Status.IN_PROGRESS, "S"),
            event(3, "action", pk.Status.IN_PROGRESS, "S", "A", attempt=1),
            event(4, "action", pk.Status.FAILED, "S", "A", attempt=1, error="boom"),
            event(5, "stage", pk.Status.FAILED, "S"),
            event(6, "pipeline", pk.Status.FAILED),
        ]
    )
    assert state.stages["S"].status is pk.Status.FAILED
    assert state.stages["S"].ever_failed
    assert state.ended
    assert state.finished_at == T0 + timedelta(seconds=6)


def test_a_stage_retry_reopens_the_listed_actions_and_counts_the_attempt():
    events = [
        START,
        event(2, "stage", pk.Status.IN_PROGRESS, "S"),
        event(3, "action", pk.Status.IN_PROGRESS, "S", "A", attempt=1),
        event(4, "action", pk.Status.SUCCEEDED, "S", "A", attempt=1),
        event(5, "action", pk.Status.IN_PROGRESS, "S", "B", attempt=1),
        event(6, "action", pk.Status.FAILED, "S", "B", attempt=1, error="x"),
        event(7, "stage", pk.Status.FAILED, "S"),
        event(8, "pipeline", pk.Status.FAILED),
        event(
            9,
            "pipeline",
            pk.Status.IN_PROGRESS,
            retry="S",
            actions=["S.B"],
            execution_attempt=2,
        ),
    ]
    state = replay(events)
    assert state.attempt == 2
    assert state.status is pk.Status.IN_PROGRESS
    assert state.stages["S"].status is pk.Status.NOT_STARTED
    assert not state.stages["S"].failed
    assert state.stages["S"].ever_failed
    assert state.actions["S.A"].status is pk.Status.SUCCEEDED
    assert state.actions["S.B"].status is pk.Status.NOT_STARTED
    assert state.actions["S.B"].error is None
    assert len(state.actions["S.B"].attempts) == 1  # the earlier attempt stays in the history


def test_an_approval_token_is_the_sequence_of_its_request():
    state = replay(
        [
            START,
            event(2, "action", pk.Status.IN_PROGRESS, "S", "A", attempt=1),
            event(3, "approval", pk.Status.WAITING_FOR_APPROVAL, "S", "A", approvers=["bob"]),
        ]
    )
    request = state.actions["S.A"].approval
    assert request is not None
    assert (request.status, request.token, request.detail["approvers"]) == (
        pk.Status.WAITING_FOR_APPROVAL,
        3,
        ["bob"],
    )
    assert state.actions["S.A"].status is pk.Status.WAITING_FOR_APPROVAL
    assert state.waiting_for_approval() == ["S.A"]
    state.apply(event(4, "approval", pk.Status.SUCCEEDED, "S", "A", by="bob"))
    assert state.actions["S.A"].approval.token == 3
    assert state.actions["S.A"].status is pk.Status.IN_PROGRESS
    assert state.waiting_for_approval() == []


def test_events_of_undeclared_subjects_add_them():
    state = replay([event(1, "pipeline", pk.Status.IN_PROGRESS)])
    state.apply(event(2, "action", pk.Status.IN_PROGRESS, "X", "Y", attempt=1))
    assert list(state.actions) == ["X.Y"]
    assert list(state.stages) == ["X"]


def test_an_empty_record_is_refused():
    with pytest.raises(ValueError, match="needs the events"):
        replay([])


def test_replaying_into_a_state_continues_it():
    state = ExecutionState.of(START)
    replay([START, event(2, "stage", pk.Status.IN_PROGRESS, "S")], into=state)
    replay([event(3, "stage", pk.Status.SUCCEEDED, "S")], into=state)
    assert state.stages["S"].status is pk.Status.SUCCEEDED
    assert state.last_sequence == 3


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines(outputs=False), st.data())
def test_replay_agrees_with_the_result_of_any_run(pipeline, data):
    """For random pipelines and outcomes, the replayed state is what the run reported."""
    nodes = list(pipeline.compile().actions)
    outcomes = data.draw(
        st.dictionaries(
            st.sampled_from(nodes),
            st.sampled_from([fail("no"), succeed(variables={"k": "v"}), [fail("once"), succeed()]]),
            max_size=len(nodes),
        )
    )
    fake = FakeExecutor(outcomes)
    result = fake.run(pipeline)
    state = replay(fake.events)
    assert state.status is result.status
    assert state.started_at == result.started_at
    for name, stage in result.stages.items():
        assert state.stages[name].status is stage.status, name
    for node, action in result.actions.items():
        replayed = state.actions[node]
        assert replayed.status is action.status, node
        assert tuple(replayed.attempts) == action.attempts, node
        assert replayed.variables == dict(action.variables), node
        assert replayed.error == action.error, node
    # Folding one event at a time gives the same state as folding them all.
    stepwise = ExecutionState.of(fake.events[0])
    for one in fake.events:
        stepwise.apply(one)
    assert {n: a.status for n, a in stepwise.actions.items()} == {
        n: a.status for n, a in state.actions.items()
    }


def test_replay_of_a_hung_then_stopped_fake_run():
    pipeline = pk.Pipeline(
        "p",
        [
            pk.Stage(
                "S",
                [
                    pk.Action("Slow", pk.shell("true"), timeout=timedelta(minutes=5)),
                    pk.Action("Gate", pk.ManualApproval()),
                ],
            )
        ],
    )
    fake = FakeExecutor({"S.Slow": hang(), "S.Gate": approve(by="bob", after=60)})
    result = fake.run(pipeline)
    state = replay(fake.events)
    assert state.actions["S.Slow"].status is pk.Status.FAILED is result.actions["S.Slow"].status
    assert state.actions["S.Gate"].approval.status is pk.Status.SUCCEEDED
    assert state.actions["S.Gate"].approval.detail["by"] == "bob"
