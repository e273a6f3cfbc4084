"""Masking secret values in the free text pipelinekit writes: logs, errors, results, events.

A secret is replaced by ``****`` wherever it appears in free text, and so are the forms commands
commonly print it in: base64 (at any offset inside a larger blob, standard or URL-safe, with or
without padding), URL-encoded, JSON-escaped and hex. A multi-line secret is also masked line by
line, and a secret that is a JSON object or array masks each of its strings too.

Only free text is masked. Paths, names, ids, hashes, times and statuses in an event's detail are
what ``logs``, ``retry`` and ``resume`` read back: masking a secret that happens to read like one
of them would break the record for good (``STRUCTURAL_DETAIL``). A secret too short to mask
without masking ordinary text is refused where it is given (``secret_problem``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from pipelinekit._model._limits import MIN_SECRET_LENGTH

__all__ = [
    "MASK",
    "STRUCTURAL_DETAIL",
    "TEXT_DETAIL",
    "Masker",
    "secret_problem",
]

MASK = "****"

#: Event detail keys that hold structure: what the record is read back by (paths, names, ids,
#: hashes, times, statuses, identities compared against, flags and counts). Never masked; no
#: secret is put there (a secret variable's value only ever reaches free text).
STRUCTURAL_DETAIL = frozenset(
    {
        # the start of an execution
        "trigger",
        "triggered_by",
        "secrets_given",
        "masked_variables",  # also on an action's success: which output variables held one
        "source",
        "execution_mode",
        "definition_hash",
        "logs",
        "stages",
        "stage_fingerprints",  # compared by run --from --reuse: a masked one would never match
        "reused_from",
        "from_stage",
        # a new attempt of the execution, a resume, a stop
        "execution_attempt",
        "retry",
        "retry_mode",
        "actions",
        "resumed",
        "abandon",
        # an action's attempt
        "attempt",
        "action_type",
        "log_path",
        "artifacts",
        "cached",
        "interrupted",
        "previous_finished_at",  # when the failed attempt before a retry ended: its duration
        "caches",  # keys, paths and outcomes of pk.Cache folders (a key holding a secret fails)
        # an approval: who may decide and who did are compared against identities
        "approvers",
        "self_approval",
        "expires",
        "by",
        "timed_out",
    }
)
#: Event detail keys that hold free text, masked (values inside mappings and lists too, never
#: their keys, which are names). A key in neither set is masked as text: the safe side.
TEXT_DETAIL = frozenset(
    {
        "variables",
        "configuration",
        "provider",
        "error",
        "previous_error",
        "stop-execution-comments",
        "summary",
        "custom_data",
        "external_entity_link",
        # what changed in an artifact: files and how, shown to the person, never read back
        "artifact_changed",
        # why a command failed (its text and last lines of output) and what its test reports say
        "failure",
        "reports",
        "previous_failure",
        "previous_reports",
        "previous_summary",
    }
)

#: Up to this many needles, ``mask`` looks for each with ``in`` before using the pattern: a
#: substring search per needle is cheaper than the pattern's walk until about this many.
_FEW = 12

_URL_SAFE = str.maketrans("+/", "-_")
_PERCENT = re.compile(r"%[0-9A-F]{2}")


def secret_problem(value: object) -> str | None:
    """What makes ``value`` unfit to be a secret, or ``None`` when it is fit.

    The answer reads after the secret's name ("secret variable 'token' is empty; ...") and never
    shows the value.
    """
    if not isinstance(value, str):
        return f"must be a string (got {type(value).__name__})"
    if not value:
        return (
            f"is empty; a secret needs at least {MIN_SECRET_LENGTH} characters "
            "(give it its value, or do not declare it secret)"
        )
    if not value.strip():
        return (
            f"is only whitespace; a secret needs at least {MIN_SECRET_LENGTH} characters "
            "that are not all blank (masking blanks would garble every log)"
        )
    if len(value) < MIN_SECRET_LENGTH:
        plural = "" if len(value) == 1 else "s"
        return (
            f"is {len(value)} character{plural} long; a secret needs at least "
            f"{MIN_SECRET_LENGTH} characters (a shorter one cannot be masked without masking "
            "ordinary text, and protects nothing)"
        )
    return None


def _base64_inner(data: bytes) -> Iterator[str]:
    """The base64 characters ``data`` alone decides, at each of the three byte alignments.

    Inside a larger blob, the characters at the secret's edges also carry bits of its
    neighbours; those in between depend on the secret only, wherever it starts.
    """
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode("ascii")
        # Character j holds bits 6j..6j+5; keep those within the secret's bits.
        inner = encoded[-(-8 * offset // 6) : 8 * (offset + len(data)) // 6]
        yield inner
        yield inner.translate(_URL_SAFE)


#: What bash's printf %q escapes with a backslash.
_SHELL_SPECIAL = re.compile(r"[^A-Za-z0-9_./:@,+=%^\-\n\u0080-\U0010ffff]")
#: What bash escapes inside double quotes, as `declare -p` and `export -p` print values.
_DOUBLE_QUOTED = re.compile(r'[\\"$`]')


def _printed_forms(secret: str) -> set[str]:
    """``secret`` as commands commonly print it: raw, base64, URL, JSON and hex encoded."""
    try:
        # What a command prints of a value read from the environment: its original bytes.
        data = secret.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        data = secret.encode("utf-8", "surrogatepass")
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        data.hex(),
        data.hex().upper(),
        *_base64_inner(data),
    }
    for quoted in (quote(data, safe=""), quote(data), quote_plus(data)):
        forms.add(quoted)
        forms.add(_PERCENT.sub(lambda escape: escape[0].lower(), quoted))
    # As shells re-quote it when they show a command: bash's `set -x` and shlex.quote close a
    # single quote around each one ('\''), printf %q and ${x@Q} put a backslash before each
    # character special to the shell (not before letters beyond ASCII), declare -p and
    # export -p before each of \ " $ ` inside double quotes.
    forms.add(secret.replace("'", "'\\''"))
    forms.add(secret.replace("'", "'\"'\"'"))
    forms.add(_SHELL_SPECIAL.sub(r"\\\g<0>", secret))
    forms.add(_DOUBLE_QUOTED.sub(r"\\\g<0>", secret))
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def _json_strings(secret: str) -> Iterator[str]:
    """The strings inside ``secret`` when it is a JSON object or array (nested ones too)."""
    if secret.lstrip()[:1] not in ("{", "["):
        return
    try:
        value = json.loads(secret)
    except ValueError:
        return
    waiting = [value]
    while waiting:
        item = waiting.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            waiting.extend(item.values())
        elif isinstance(item, list):
            waiting.extend(item)


def _pattern(needles: Iterable[str]) -> re.Pattern[str]:
    """One pattern matching any of ``needles``, the longest where several start at one place.

    The regex engine tries the alternatives of an alternation one by one at each position of a
    line; grouped by their first character, a position costs one test per distinct first
    character instead of one per needle (5 secrets: ~1.6x the lines per second).
    """
    by_first: dict[str, list[str]] = {}
    for needle in needles:
        by_first.setdefault(needle[0], []).append(needle[1:])
    branches = []
    for first, rests in sorted(by_first.items()):
        # Longest first: a secret containing another (or a form of it) is masked whole.
        rests.sort(key=lambda rest: (-len(rest), rest))
        branches.append(f"{re.escape(first)}(?:{'|'.join(map(re.escape, rests))})")
    return re.compile("|".join(branches))


class Masker:
    """The secrets of one execution, and the masking of text that may contain them.

    Every form of every secret is one alternative of a single compiled pattern (longest first,
    so that a secret containing another is masked whole), rebuilt when a secret is added: a log
    line is scanned once, however many secrets there are.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        """Start with ``secrets`` registered (each must pass ``secret_problem``)."""
        self._secrets: set[str] = set()
        self._needles: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        #: The needles when they are few enough to look for one by one first (see ``mask``).
        self._few: tuple[str, ...] | None = None
        #: The length of the longest form of a secret (see ``mask_through``).
        self.longest = 0
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Register a secret value, with its printed forms.

        Raises ``ValueError`` when ``secret_problem`` finds it unfit (empty, blank, too short):
        callers check first, to say which secret it is.
        """
        problem = secret_problem(secret)
        if problem is not None:
            msg = f"a secret {problem}"
            raise ValueError(msg)
        if secret in self._secrets:
            return
        self._secrets.add(secret)
        needles = _printed_forms(secret)
        if "\n" in secret:
            # A key printed one line at a time. Lines too short are left: masking every "}" or
            # "-----" in the logs would hide more than it protects.
            needles.update(
                line.strip()
                for line in secret.splitlines()
                if len(line.strip()) >= MIN_SECRET_LENGTH
            )
        for member in _json_strings(secret):
            # Each value of a JSON secret is printed on its own; the short ones are skipped.
            if secret_problem(member) is None:
                needles |= _printed_forms(member)
        if needles <= self._needles:
            return
        self._needles |= needles
        self.longest = max(self.longest, *map(len, needles))
        self._pattern = _pattern(self._needles)
        self._few = tuple(self._needles) if len(self._needles) <= _FEW else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def mask(self, text: str) -> str:
        """``text`` with every registered secret, in any of its printed forms, replaced."""
        pattern = self._pattern
        if pattern is None:
            return text
        few = self._few
        if few is None:
            return pattern.sub(MASK, text)
        # Most lines hold no secret; a few substring searches (fast, in C) say so sooner than
        # the pattern's walk of every position.
        for needle in few:
            if needle in text:
                return pattern.sub(MASK, text)
        return text

    def mask_through(self, text: str, end: int) -> str:
        """``text[:end]`` masked, each secret starting before ``end`` masked whole.

        For a text read in part: a secret the read cut cannot be recognised, so the caller
        keeps only what ends ``longest`` characters before the read's end, where every secret
        that starts is whole in ``text``; this masks it without cutting a secret at ``end``.
        """
        pattern = self._pattern
        if pattern is None:
            return text[:end]
        pieces: list[str] = []
        at = 0
        for match in pattern.finditer(text):
            if match.start() >= end:
                break
            pieces.extend((text[at : match.start()], MASK))
            at = match.end()
        pieces.append(text[at:end])
        return "".join(pieces)

    def mask_value(self, value: Any) -> Any:  # noqa: ANN401 - masks whatever shape it is given
        """Mask strings, also inside mappings, lists and tuples (values, not keys)."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self._pattern.sub(MASK, value)
        if isinstance(value, Mapping):
            return {key: self.mask_value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.mask_value(item) for item in value)
        return value

    def mask_detail(self, detail: Mapping[str, Any]) -> dict[str, Any]:
        """An event's detail with its free text masked and its structure left alone.

        Keys in ``STRUCTURAL_DETAIL`` pass unchanged; every other key is masked as text. When
        masking changes values of ``variables``, their names are added as ``masked_variables``:
        a resume knows those values were not kept and asks for them again.
        """
        masked: dict[str, Any] = {}
        for key, value in detail.items():
            masked[key] = value if key in STRUCTURAL_DETAIL else self.mask_value(value)
        variables = detail.get("variables")
        if isinstance(variables, Mapping) and variables:
            changed = [
                name for name, value in variables.items() if masked["variables"][name] != value
            ]
            if changed:
                masked["masked_variables"] = changed
        return masked
