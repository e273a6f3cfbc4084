r"""Name rules for everything a person names in a pipeline, from CodePipeline's limits.

All patterns are ASCII-only on purpose (never ``\\w``), so that look-alike letters from other
scripts, control characters, path separators and shell metacharacters are all rejected.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

import attrs

__all__ = ["ARTIFACT", "NAMESPACE", "STAGE_OR_ACTION", "VARIABLE", "NameRule", "did_you_mean"]


@attrs.frozen
class NameRule:
    """A pattern and a maximum length, with the text that explains them."""

    what: str
    pattern: re.Pattern[str]
    max_length: int
    allowed: str
    _many: re.Pattern[str] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        # One regex over all names joined by newlines (never allowed in a name) checks a whole
        # list in C; validation falls back to one name at a time only to explain a failure.
        one = f"(?=[^\n]{{1,{self.max_length}}}(?:\n|$)){self.pattern.pattern}"
        object.__setattr__(self, "_many", re.compile(f"{one}(?:\n{one})*"))

    def all_valid(self, names: list[object]) -> bool:
        """Whether every name in ``names`` follows the rule (fast, no explanation)."""
        if not names:
            return True
        try:
            joined = "\n".join(names)  # type: ignore[arg-type]  # a non-string fails the join
        except TypeError:
            return False
        # A name holding a newline would pass as two names; the count catches it.
        if joined.count("\n") != len(names) - 1:
            return False
        return self._many.fullmatch(joined) is not None

    def problem(self, name: object) -> str | None:
        """Why ``name`` breaks the rule, or ``None`` if it is fine."""
        if not isinstance(name, str):
            return f"{self.what} must be a string (got {name!r}, a {type(name).__name__})"
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
