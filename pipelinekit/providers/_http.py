"""``HttpRequest`` (one HTTP call with httpx, checked against the expected status) and ``Wait``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, ClassVar

import anyio
import attrs

from pipelinekit._model._declarations import ActionTypeId, Category, Owner, to_duration
from pipelinekit._model._frozendict import FrozenDict, to_frozendict, to_tuple
from pipelinekit._model._limits import duration_problem, shown
from pipelinekit.exceptions import ActionFailed

if TYPE_CHECKING:
    from pipelinekit.providers._context import ActionContext

__all__ = ["HttpRequest", "Wait"]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: The longest response body kept as the ``Body`` variable.
BODY_LIMIT = 10_000
#: A header name: an HTTP token (RFC 9110's tchar).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: What no header value may hold: a line break would start another header, a NUL ends it.
_HEADER_BREAK = re.compile(r"[\r\n\x00]")
#: What no URL may hold (they are percent-encoded when meant): spaces and control characters.
_URL_BAD = re.compile(r"[\x00-\x20\x7f]")


@attrs.frozen
class HttpRequest:
    """Send one HTTP request and check the answer.

    The action fails when the status is not in ``expected_status`` (default: any 2xx). Output
    variables: ``StatusCode``, ``ContentType`` and ``Body`` (the first 10,000 characters).
    Headers and body may hold ``#{...}`` references; put tokens in secret variables so they are
    masked. Header names are HTTP tokens; header values and the URL hold no line break, NUL or
    (in the URL) space, so that no value can add a header or change the request line.
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
        url: object = self.url
        if not isinstance(url, str) or not url.startswith(("http://", "https://", "#{")):
            yield "url", f"{shown(url)} must be an http:// or https:// URL"
        elif (bad := _URL_BAD.search(url)) is not None:
            yield (
                "url",
                (
                    f"holds {bad[0]!r} at index {bad.start()}; a URL holds no space or control "
                    "character (percent-encode it: a space is %20)"
                ),
            )
        if not isinstance(self.method, str) or not self.method.isalpha():
            yield "method", f"{shown(self.method)} is not an HTTP method"
        if not isinstance(self.expected_status, tuple) or not all(
            isinstance(s, int) and 100 <= s <= 599  # noqa: PLR2004 - HTTP status range
            for s in self.expected_status
        ):
            yield "expected_status", "must list HTTP status codes (100-599)"
        yield from self._header_problems()
        if (late := duration_problem(self.request_timeout)) is not None:
            yield "request_timeout", late

    def _header_problems(self) -> Iterable[tuple[str, str]]:
        headers: object = self.headers
        if not isinstance(headers, Mapping):
            yield "headers", f"must be a mapping of header names to values (got {shown(headers)})"
            return
        for name, value in headers.items():
            if not isinstance(name, str) or not _TOKEN.fullmatch(name):
                yield (
                    "headers",
                    (
                        f"{shown(name)} is not a header name: use letters, digits and "
                        "!#$%&'*+-.^_`|~ (no spaces or ':')"
                    ),
                )
                continue
            if not isinstance(value, str):
                yield f"headers[{name!r}]", f"must be a string (got {shown(value)})"
            elif (found := _HEADER_BREAK.search(value)) is not None:
                what = "a NUL character" if found[0] == "\x00" else "a line break"
                yield (
                    f"headers[{name!r}]",
                    (
                        f"holds {what} at index {found.start()}, which would end the header (or "
                        "start another); remove it"
                    ),
                )


@attrs.frozen
class Wait:
    """Wait for ``duration`` (a timedelta or seconds, at most ``MAX_TIMEOUT``), then succeed."""

    action_type: ClassVar[ActionTypeId] = ActionTypeId(Category.INVOKE, Owner.CUSTOM, "Wait", "1")
    idempotent: ClassVar[bool] = True
    #: It sets none: a reference to its namespace is refused when the pipeline is built.
    output_variables: ClassVar[tuple[str, ...]] = ()
    input_artifacts: ClassVar[tuple[int, int]] = (0, 0)
    output_artifacts: ClassVar[tuple[int, int]] = (0, 0)

    duration: timedelta = attrs.field(converter=to_duration)

    async def run(self, ctx: ActionContext) -> None:
        """Sleep for the duration."""
        ctx.log.info("waiting", seconds=self.duration.total_seconds())
        await anyio.sleep(self.duration.total_seconds())

    def problems(self) -> Iterable[tuple[str, str]]:
        """Broken rules of this declaration, as (field, message) pairs."""
        if (bad := duration_problem(self.duration, zero=True)) is not None:
            yield "duration", bad
