"""Events: every state change of an execution, its stages and its actions.

An ``Event`` is written to the store (which gives it its sequence number) before it is announced
to hooks and to ``execution.events()`` readers. ``to_eventbridge()`` renders it in the shape of
CodePipeline's EventBridge events, so that tools written for those can read ours.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import attrs

from pipelinekit._model._declarations import Status

__all__ = ["Event", "EventType"]

EventType = Literal["pipeline", "stage", "action", "approval"]

_DETAIL_TYPES = {
    "pipeline": "CodePipeline Pipeline Execution State Change",
    "stage": "CodePipeline Stage Execution State Change",
    "action": "CodePipeline Action Execution State Change",
    "approval": "CodePipeline Action Execution State Change",
}

#: CodePipeline's EventBridge states; pipelinekit's own statuses get names in the same style.
_EVENTBRIDGE_STATES = {
    Status.IN_PROGRESS: "STARTED",
    Status.SUCCEEDED: "SUCCEEDED",
    Status.FAILED: "FAILED",
    Status.STOPPED: "STOPPED",
    Status.STOPPING: "STOPPING",
    Status.SUPERSEDED: "SUPERSEDED",
    Status.CANCELLED: "CANCELED",
    Status.ABANDONED: "ABANDONED",
    Status.NOT_STARTED: "NOT_STARTED",
    Status.SKIPPED: "SKIPPED",
    Status.WAITING_FOR_APPROVAL: "WAITING_FOR_APPROVAL",
}


def _freeze_detail(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    # The scheduler hands over a fresh dict each time; only foreign mappings are copied.
    if type(value) is dict:
        return value
    return dict(value) if value else {}


@attrs.frozen
class Event:
    """A state change of an execution (``type="pipeline"``), a stage or an action.

    ``sequence`` numbers the events of one execution from 1 without gaps; the store assigns it.
    ``detail`` holds what the change carries: the attempt number, the error, the trigger, output
    variables. Secrets are masked before an event is built.
    """

    type: EventType
    state: Status
    pipeline: str
    execution_id: str
    time: datetime
    stage: str | None = None
    action: str | None = None
    detail: Mapping[str, Any] = attrs.field(factory=dict, converter=_freeze_detail, hash=False)
    sequence: int = 0

    @property
    def node(self) -> str | None:
        """``"Stage.Action"`` for action events, else ``None``."""
        if self.stage is not None and self.action is not None:
            return f"{self.stage}.{self.action}"
        return None

    def __str__(self) -> str:
        subject = self.node or self.stage or self.pipeline
        extra = ""
        if "attempt" in self.detail and self.type == "action":
            extra = f" (attempt {self.detail['attempt']})"
        if self.type == "approval" and self.detail.get("by"):
            extra = f" by {self.detail['by']}"
            if self.detail.get("summary"):
                extra += f": {self.detail['summary']}"
        if self.detail.get("error"):
            extra += f": {self.detail['error']}"
        return f"{self.type} {subject} {self.state}{extra}"

    def to_eventbridge(
        self, *, region: str = "local", account: str = "000000000000"
    ) -> dict[str, Any]:
        """This event in the shape of a CodePipeline EventBridge event."""
        detail: dict[str, Any] = {
            "pipeline": self.pipeline,
            "execution-id": self.execution_id,
            "state": _EVENTBRIDGE_STATES[self.state],
            "version": 1,
            "pipeline-execution-attempt": self.detail.get("execution_attempt", 1),
        }
        if self.stage is not None:
            detail["stage"] = self.stage
        if self.action is not None:
            detail["action"] = self.action
            detail["region"] = region
            action_type = self.detail.get("action_type")
            if action_type:
                category, owner, provider, version = str(action_type).split("/")
                detail["type"] = {
                    "owner": owner,
                    "provider": provider,
                    "category": category,
                    "version": version,
                }
            if self.detail.get("error"):
                detail["execution-result"] = {
                    "external-execution-summary": self.detail["error"],
                    "error-code": "JobFailed",
                }
        if self.type == "pipeline" and "trigger" in self.detail:
            detail["execution-trigger"] = {
                "trigger-type": "StartPipelineExecution",
                "trigger-detail": self.detail["trigger"],
            }
        arn = f"arn:aws:codepipeline:{region}:{account}:{self.pipeline}"
        return {
            "version": "0",
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.execution_id}/{self.sequence}")),
            "detail-type": _DETAIL_TYPES[self.type],
            "source": "aws.codepipeline",
            "account": account,
            "time": self.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region,
            "resources": [arn],
            "detail": detail,
        }
