"""``HttpRequest`` (one HTTP call with httpx, checked against the expected status) and ``Wait``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, ClassVar

import anyio
import attrs

from pipelinekit._model._declarations import ActionTypeId, Category, Owner, to_duration
from pipelinekit._model._frozendict import FrozenDict, to_frozendict, to_tuple
from pipelinekit.exceptions import ActionFailed

if TYPE_CHECKING:
    from pipelinekit.providers._context import ActionContext

__all__ = ["HttpRequest", "Wait"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: The longest response body kept as the ``Body`` variable.
BODY_LIMIT = 10_000


@attrs.frozen
class HttpRequest:
    """Send one HTTP request and check the answer.

    The action fails when the status is not in ``expected_status`` (default: any 2xx). Output
    variables: ``StatusCode``, ``ContentType`` and ``Body`` (the first 10,000 characters).
    Headers and body may hold ``#{...}`` references; put tokens in secret variables so they are
    masked.
    """

    action_type: ClassVar[ActionTypeId] = ActionTypeId(
        Category.INVOKE, Owner.CUSTOM, "HttpRequest", "1"
    )
    input_artifacts: ClassVar[tuple[int, int]] = (0, 0)
    #: The output variables it sets.
    output_variables: ClassVar[tuple[str, ...]] = ("StatusCode", "ContentType", "Body")

    url: str
    method: str = attrs.field(default="GET", kw_only=True)
    headers: FrozenDict = attrs.field(factory=FrozenDict, converter=to_frozendict, kw_only=True)
    body: str | None = attrs.field(default=None, kw_only=True)
    expected_status: tuple[int, ...] = attrs.field(default=(), converter=to_tuple, kw_only=True)
    request_timeout: timedelta = attrs.field(
        default=timedelta(seconds=30), converter=to_duration, kw_only=True
    )

    @property
    def idempotent(self) -> bool:
        """Whether sending the request again is harmless (by its HTTP method)."""
        return self.method.upper() in _SAFE_METHODS

    async def run(self, ctx: ActionContext) -> None:
        """Send the request and record the answer."""
        import httpx  # noqa: PLC0415 - only pipelines that call HTTP pay for importing it

        timeout = self.request_timeout.total_seconds()
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client:
            try:
                response = await client.request(
                    self.method.upper(),
                    self.url,
                    headers=dict(self.headers),
                    content=self.body.encode() if self.body is not None else None,
                )
            except httpx.HTTPError as error:
                msg = f"{self.method.upper()} {self.url} failed: {type(error).__name__}: {error}"
                raise ActionFailed(msg) from error
        status = response.status_code
        ctx.log.info("answered", method=self.method.upper(), url=self.url, status=status)
        ctx.set_variable("StatusCode", str(status))
        ctx.set_variable("ContentType", response.headers.get("content-type", ""))
        ctx.set_variable("Body", response.text[:BODY_LIMIT])
        expected = self.expected_status
        if (expected and status not in expected) or (not expected and not 200 <= status < 300):  # noqa: PLR2004 - HTTP's success range
            wanted = ", ".join(map(str, expected)) if expected else "2xx"
            msg = f"{self.method.upper()} {self.url} answered {status}, expected {wanted}"
            raise ActionFailed(msg)

    def problems(self) -> Iterable[tuple[str, str]]:
        """Broken rules of this declaration, as (field, message) pairs."""
        if not isinstance(self.url, str) or not (
            self.url.startswith(("http://", "https://")) or self.url.startswith("#{")
        ):
            yield "url", f"{self.url!r} must be an http:// or https:// URL"
        if not isinstance(self.method, str) or not self.method.isalpha():
            yield "method", f"{self.method!r} is not an HTTP method"
        if not all(isinstance(s, int) and 100 <= s <= 599 for s in self.expected_status):  # noqa: PLR2004 - HTTP status range
            yield "expected_status", "must list HTTP status codes (100-599)"
        if not isinstance(self.request_timeout, timedelta) or self.request_timeout <= timedelta(0):
            got = self.request_timeout
            yield (
                "request_timeout",
                f"must be a positive duration: a timedelta or seconds (got {got!r})",
            )


@attrs.frozen
class Wait:
    """Wait for ``duration`` (a timedelta or seconds), then succeed."""

    action_type: ClassVar[ActionTypeId] = ActionTypeId(Category.INVOKE, Owner.CUSTOM, "Wait", "1")
    idempotent: ClassVar[bool] = True
    input_artifacts: ClassVar[tuple[int, int]] = (0, 0)
    output_artifacts: ClassVar[tuple[int, int]] = (0, 0)

    duration: timedelta = attrs.field(converter=to_duration)

    async def run(self, ctx: ActionContext) -> None:
        """Sleep for the duration."""
        ctx.log.info("waiting", seconds=self.duration.total_seconds())
        await anyio.sleep(self.duration.total_seconds())

    def problems(self) -> Iterable[tuple[str, str]]:
        """Broken rules of this declaration, as (field, message) pairs."""
        if not isinstance(self.duration, timedelta) or self.duration < timedelta(0):
            yield "duration", "must be a duration of zero or more"
