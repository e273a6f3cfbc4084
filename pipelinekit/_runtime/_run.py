"""``Run``: one execution being run, the state its parts share.

The graph walk (``_scheduler``) and the attempts of each action (``_attempts``) work on the same
execution: its state (an ``ExecutionState`` of replay, whose records also carry each action's
declaration), the values ``#{...}`` resolves to, the artifact folders made so far, the recorder
every change goes through, and whether a stop was asked for. ``Run`` holds these, with the seams
they reach through (executor, workspace, clock), and ``emit`` for the events.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import attrs

from pipelinekit._compiler._plan import Plan
from pipelinekit._model._declarations import Action, Status
from pipelinekit._model._events import Event, EventType
from pipelinekit._model._secrets import Masker
from pipelinekit._model._variables import Reference
from pipelinekit._runtime._artifacts import Workspace
from pipelinekit._runtime._recorder import Recorder
from pipelinekit._runtime._replay import ActionState, ExecutionState, StageState
from pipelinekit._runtime._results import ActionResult
from pipelinekit.exceptions import ActionFailed, ExecutionError
from pipelinekit.executors import Executor
from pipelinekit.providers import ProviderRegistry
from pipelinekit.providers._capabilities import Runnable
from pipelinekit.providers._clock import Clock
from pipelinekit.providers._decisions import Approvals
from pipelinekit.providers._host import ProcessRecord

__all__ = ["ActionRecord", "MissingValue", "Run", "StageRecord"]


@attrs.define(slots=True, eq=False)
class ActionRecord(ActionState):
    """An action's state in a running execution, with its declaration."""

    action: Action = attrs.field(kw_only=True)
    #: ``str(action.action_type)``, computed once per type.
    action_type: str = attrs.field(kw_only=True)

    def result(self, outputs: Mapping[str, Path]) -> ActionResult:
        """The action's ``ActionResult``."""
        return ActionResult(
            stage=self.stage,
            action=self.name,
            status=self.status,
            attempts=tuple(self.attempts),
            started_at=self.started_at,
            finished_at=self.finished_at,
            error=self.error,
            variables=dict(self.variables),
            outputs={name: outputs[name] for name in self.action.outputs if name in outputs},
            log_path=Path(self.log_path) if self.log_path else None,
            cached=self.cached,
            caches=tuple(self.caches),
        )


@attrs.define(slots=True, eq=False)
class StageRecord(StageState):
    """A stage's state in a running execution, with how many of its actions run now."""

    running: int = attrs.field(default=0, kw_only=True)


class MissingValue(ActionFailed):
    """A ``#{...}`` reference had no value when an action needed it."""


class Run:
    """One execution being run: its state, its values and the seams its parts go through."""

    def __init__(
        self,
        *,
        plan: Plan,
        execution_id: str,
        variables: Mapping[str, str],
        executor: Executor,
        recorder: Recorder,
        workspace: Workspace,
        masker: Masker,
        registry: Callable[[], ProviderRegistry],
        clock: Clock,
        trigger: Mapping[str, Any],
        approvals: Approvals,
        rng: random.Random,
        max_concurrency: int | None,
        used: Callable[[object], None] | None = None,
        processes: ProcessRecord | None = None,
    ) -> None:
        """Set up the state of a run of ``plan`` (every action not started).

        ``used`` hears of each provider object the run is about to use.
        """
        self.plan = plan
        self.pipeline = plan.pipeline.name
        self.execution_id = execution_id
        self.executor = executor
        self.recorder = recorder
        self.workspace = workspace
        self.masker = masker
        #: Where the commands of the run are put on record for a takeover.
        self.processes = processes
        self.registry = registry
        self.clock = clock
        self.trigger = dict(trigger)
        self.approvals = approvals
        self.rng = rng
        self.limiter = anyio.CapacityLimiter(max_concurrency) if max_concurrency else None
        #: Every value ``#{...}`` can resolve to, keyed ``"namespace.name"``.
        self.values: dict[str, str] = {f"variables.{k}": v for k, v in variables.items()}
        self.values["codepipeline.PipelineExecutionId"] = execution_id
        self.values["pipeline.execution_id"] = execution_id
        self.values["pipeline.name"] = self.pipeline
        self.run_variables = dict(variables)
        #: Output artifacts made so far, by name.
        self.artifact_paths: dict[str, Path] = {}
        #: 1, and one more for each retry of a stage.
        self.execution_attempt = 1
        nodes = plan.nodes
        type_names: dict[object, str] = {}
        self.actions: dict[str, ActionRecord] = {
            node: ActionRecord(
                nodes[node]["stage"],
                action.name,
                action=action,
                action_type=type_names.get(action.action_type)
                or type_names.setdefault(action.action_type, str(action.action_type)),
            )
            for node, action in plan.actions.items()
        }
        self.stages: dict[str, StageRecord] = {
            stage.name: StageRecord(stage.name) for stage in plan.pipeline.stages
        }
        self.state = ExecutionState(
            execution_id,
            self.pipeline,
            stages=dict(self.stages),
            actions=dict(self.actions),
        )
        self.namespaces = {
            action.namespace: node for node, action in plan.actions.items() if action.namespace
        }
        #: Set by a stop: nothing new starts, and the execution ends Stopped.
        self.stopping = False
        #: Set by a stop that abandons the running actions.
        self.abandoning = False
        #: The task group the actions run in, once running.
        self.tasks: anyio.abc.TaskGroup | None = None
        self._runnable_types: dict[type, bool] = {}
        self._used = used

    def emit(
        self,
        type_: EventType,
        state: Status,
        *,
        stage: str | None = None,
        action: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Queue an event for the recorder; return its sequence number."""
        # Free text only: paths, names and hashes in a detail are read back by logs, retry
        # and resume, and must stay as they are whatever a secret looks like.
        masked = self.masker.mask_detail(detail) if detail and self.masker else detail
        if self.execution_attempt != 1:
            masked = {**(masked or {}), "execution_attempt": self.execution_attempt}
        sequence = self.recorder.number()
        self.recorder.emit(
            Event(
                type_,
                state,
                self.pipeline,
                self.execution_id,
                self.clock.now(),
                stage,
                action,
                masked,
                sequence,
            )
        )
        return sequence

    def now(self) -> datetime:
        """The run's clock's time."""
        return self.clock.now()

    async def record_starts(self) -> None:
        """Put the attempts just opened on record, as the store requires, before they run."""
        if self.recorder.durable:
            await self.recorder.flush()  # on record before the providers run: crash-safe
        else:
            # The store forgets everything with the process: no crash can make the record
            # matter, so nothing waits for it. The starts are still written (and announced) at
            # once, by a background flush.
            assert self.tasks is not None  # noqa: S101 - actions run inside the task group
            self.recorder.flush_soon(self.tasks)

    def provider(self, action: Action) -> Runnable:
        """The provider that runs ``action``: its own, or one built for its action type."""
        provider = action.provider
        kind = type(provider)
        runnable = self._runnable_types.get(kind)
        if runnable is None:
            # A protocol check costs microseconds; a run asks it of thousands of actions.
            runnable = self._runnable_types[kind] = isinstance(provider, Runnable) and callable(
                getattr(kind, "run", None)
            )
        if not runnable:
            action_type = action.action_type
            if action_type is None:  # pragma: no cover - validation refuses such actions
                msg = f"{provider!r} has no action type"
                raise ExecutionError(msg)
            provider = self.registry().build(action_type, action.configuration)
        chosen: Runnable = provider
        return chosen

    def used(self, provider: object) -> None:
        """Tell the engine the run is about to run ``provider``.

        The engine closes those that hold resources when it closes.
        """
        if self._used is not None:
            self._used(provider)

    def lookup(self, reference: Reference) -> str:
        """The value of a ``#{...}`` reference, or ``MissingValue`` saying why there is none."""
        key = f"{reference.namespace}.{reference.name}"
        value = self.values.get(key)
        if value is not None:
            return value
        producer = self.namespaces.get(reference.namespace)
        if producer is None:
            msg = f"{reference.text} has no value in this run"
        else:
            msg = (
                f"{reference.text} has no value: {producer!r} (namespace "
                f"{reference.namespace!r}) did not set output variable {reference.name!r}"
            )
        raise MissingValue(msg)
