r"""Name rules for everything a person names in a pipeline, from CodePipeline's limits.

All patterns are ASCII-only on purpose (never ``\\w``), so that look-alike letters from other
scripts, control characters, path separators and shell metacharacters are all rejected.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

import attrs

from pipelinekit._model._limits import shown as shown_value

__all__ = ["ARTIFACT", "NAMESPACE", "STAGE_OR_ACTION", "VARIABLE", "NameRule", "did_you_mean"]

_KNOWN_AT_MOST = 65_536


@attrs.frozen
class NameRule:
    """A pattern and a maximum length, with the text that explains them."""

    what: str
    pattern: re.Pattern[str]
    max_length: int
    allowed: str
    #: Names found to follow the rule: most names are seen more than once (an artifact as an
    #: output, then as inputs; the same pipeline built again), and a set lookup is several times
    #: cheaper than the regex. Bounded, so that it never grows without end.
    _known: set[str] = attrs.field(init=False, factory=set, repr=False, eq=False)

    def fits(self, name: object) -> bool:
        """Whether ``name`` follows the rule (fast, no explanation; see ``problem``)."""
        if type(name) is not str:
            return False
        known = self._known
        if name in known:
            return True
        if not 0 < len(name) <= self.max_length or self.pattern.fullmatch(name) is None:
            return False
        if len(known) >= _KNOWN_AT_MOST:
            known.clear()
        known.add(name)
        return True

    def problem(self, name: object) -> str | None:
        """Why ``name`` breaks the rule, or ``None`` if it is fine."""
        if not isinstance(name, str):
            got = shown_value(name)  # cut short: a name may be any object, however deep
            return f"{self.what} must be a string (got {got}, a {type(name).__name__})"
        if not name:
            return f"{self.what} must not be empty"
        if len(name) > self.max_length:
            return (
                f"{self.what} {_show(name)} is {len(name)} characters long; "
                f"the limit is {self.max_length}"
            )
        if not self.pattern.fullmatch(name):
            bad = sorted({c for c in name if not self.pattern.fullmatch(c)})
            shown = ", ".join(_char(c) for c in bad[:5])
            return f"{self.what} {_show(name)} contains {shown}; use only {self.allowed}"
        return None


def _char(c: str) -> str:
    if c.isprintable() and c.isascii():
        return repr(c)
    return f"U+{ord(c):04X} ({c!r})"


def _show(name: str) -> str:
    # ascii() so that control characters, bidi overrides and look-alikes are visible in messages.
    shown = ascii(name)
    return shown if len(shown) <= 60 else shown[:57] + "...'"  # noqa: PLR2004 - display width


STAGE_OR_ACTION = NameRule(
    "name",
    re.compile(r"[A-Za-z0-9.@\-_]+"),
    100,
    "letters A-Z a-z, digits and . @ - _",
)
ARTIFACT = NameRule(
    "artifact name",
    re.compile(r"[A-Za-z0-9_\-]+"),
    100,
    "letters A-Z a-z, digits and _ -",
)
NAMESPACE = NameRule(
    "namespace",
    re.compile(r"[A-Za-z0-9@_\-]+"),
    100,
    "letters A-Z a-z, digits and @ _ -",
)
VARIABLE = NameRule(
    "variable name",
    re.compile(r"[A-Za-z0-9@\-_]+"),
    128,
    "letters A-Z a-z, digits and @ - _",
)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` did you mean 'x'?`` for the closest candidate, or an empty string."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
