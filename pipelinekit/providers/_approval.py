"""``ManualApproval``: wait until a person approves or rejects, or the approval times out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, ClassVar

import attrs

from pipelinekit._model._declarations import ActionTypeId, Category, Owner, Status, to_duration
from pipelinekit._model._frozendict import to_tuple
from pipelinekit._model._limits import duration_problem
from pipelinekit.exceptions import ActionFailed, ExecutionError
from pipelinekit.providers._identity import TIMED_OUT, check_identity

if TYPE_CHECKING:
    from pipelinekit.providers._context import ActionContext

__all__ = ["ManualApproval"]


@attrs.frozen
class ManualApproval:
    """CodePipeline's manual approval (``Approval/AWS/Manual/1``).

    The action waits (``WaitingForApproval``) until ``engine.approve(...)`` or
    ``engine.reject(...)`` decides it, or fails when ``timeout`` (default 7 days) passes first.
    ``approvers`` limits who may decide (anyone when empty); with ``allow_self_approval=False``
    the person who started the execution may not approve it. ``custom_data`` and
    ``external_entity_link`` are shown to the reviewer (in the approval event). Sets the output
    variables ``ApprovedBy`` and ``Summary``.
    """

    action_type: ClassVar[ActionTypeId] = ActionTypeId(Category.APPROVAL, Owner.AWS, "Manual", "1")
    idempotent: ClassVar[bool] = True
    input_artifacts: ClassVar[tuple[int, int]] = (0, 0)
    output_artifacts: ClassVar[tuple[int, int]] = (0, 0)
    #: The output variables it sets.
    output_variables: ClassVar[tuple[str, ...]] = ("ApprovedBy", "Summary")

    timeout: timedelta = attrs.field(default=timedelta(days=7), converter=to_duration, kw_only=True)
    approvers: tuple[str, ...] = attrs.field(default=(), converter=to_tuple, kw_only=True)
    allow_self_approval: bool = attrs.field(default=True, kw_only=True)
    custom_data: str = attrs.field(default="", kw_only=True)
    external_entity_link: str = attrs.field(default="", kw_only=True)

    async def run(self, ctx: ActionContext) -> None:
        """Wait for the decision: the first one kept in the store, a person's or the timeout's."""
        node = f"{ctx.stage}.{ctx.action}"
        barred = None if self.allow_self_approval else ctx.triggered_by
        pending = ctx.approvals.open(
            ctx.execution_id, node, approvers=self.approvers, barred=barred
        )
        try:
            # Who may decide goes on record too: a decision from another process is checked
            # against it before it is kept.
            pending.recorded(
                await ctx.report_approval(
                    Status.WAITING_FOR_APPROVAL,
                    custom_data=self.custom_data,
                    external_entity_link=self.external_entity_link,
                    expires=(ctx.clock.now() + self.timeout).isoformat(),
                    approvers=list(self.approvers),
                    self_approval=self.allow_self_approval,
                )
            )
            with ctx.clock.move_on_after(self.timeout.total_seconds()) as scope:
                decision = await pending.wait()
            if scope.cancelled_caught:
                # The timeout is kept like a decision: one kept a moment earlier (and not yet
                # heard here) stands instead, so nobody is told "approved" of a timed-out run.
                decision = await ctx.approvals.time_out(
                    ctx.execution_id, pending, after=self.timeout, now=ctx.clock.now()
                )
        finally:
            ctx.approvals.close(ctx.execution_id, node, pending)
        if decision.by == TIMED_OUT:
            await ctx.report_approval(Status.FAILED, timed_out=True)
            msg = f"approval timed out after {self.timeout}"
            raise ActionFailed(msg)
        state = Status.SUCCEEDED if decision.approved else Status.FAILED
        await ctx.report_approval(state, by=decision.by, summary=decision.summary)
        if not decision.approved:
            msg = f"rejected by {decision.by}" + (
                f": {decision.summary}" if decision.summary else ""
            )
            raise ActionFailed(msg)
        ctx.set_variable("ApprovedBy", decision.by)
        ctx.set_variable("Summary", decision.summary)

    def problems(self) -> Iterable[tuple[str, str]]:
        """Broken rules of this declaration, as (field, message) pairs."""
        if (bad := duration_problem(self.timeout)) is not None:
            yield "timeout", bad
        for name in self.approvers:
            try:
                check_identity(name)
            except ExecutionError:
                message = (
                    "must be a list of names, without blanks, spaces around a name or control "
                    f"characters (got {name!r})"
                )
                yield "approvers", message
                break
