r"""Where each ``#{...}`` reference stands in shell text, and the text that passes it as data.

``scan`` is a small lexer for the quoting of ``sh``: single and double quotes, backslashes,
``$'...'``, comments, ``$(...)``, backquotes, ``${...}``, arithmetic and here-documents. It
answers one question per reference: in which quoting does it stand?

``pass_as_data`` then replaces each reference with the expansion of an environment variable
(``PK_REF_<namespace>_<name>``) quoted for where it stands, so the value is never part of the
text the shell parses:

- unquoted, also inside a word, ``$(...)``, backquotes or ``${...}``: ``"${PK_REF_x}"``;
- inside double quotes or in a here-document whose delimiter is unquoted: ``${PK_REF_x}``
  (after a lone backslash, which the shell keeps: ``\${PK_REF_x}``, so it stays a backslash);
- inside single quotes: ``'"${PK_REF_x}"'`` (the quotes close around the expansion); inside
  ``"${X:-'...'}"`` single quotes are characters, so there it is ``"${PK_REF_x}"``;
- in a comment: left as it is (it never runs).

Places where no quoting makes a value plain data are refused, each with the fix: right after an
unquoted backslash or a ``$``, inside ``$'...'`` (``sh`` and ``bash`` read it differently), in
arithmetic (``$((...))``, ``((...))``: the shell evaluates the value as an expression, and
bash runs commands found in array subscripts), in a here-document whose delimiter is quoted
(nothing is expanded there) and in a here-document's delimiter.

Whatever the lexer concludes, the rewritten text never contains a value: a mistake in it can
only make a value arrive split or quoted differently, never run as shell syntax.
"""

from __future__ import annotations

import bisect
import enum
import re
from collections.abc import Sequence

import attrs

from pipelinekit._model._variables import Reference

__all__ = ["Passage", "Quoting", "SafeCommands", "Scan", "Site", "pass_as_data", "scan"]

#: The same pattern ``_model._variables.resolve`` substitutes, so every reference it would
#: resolve is found here (tests compare the two).
_REFERENCE = re.compile(r"#\{([A-Za-z0-9@_\-]+)\.([A-Za-z0-9@_\-]+)\}")
#: Unquoted characters that end a word (and so may start a comment after them).
_BREAKS = frozenset(" \t\n;&|()<>")
#: What a backslash escapes inside double quotes and unquoted here-documents.
_DQ_ESCAPES = frozenset('$`"\\\n')
_HERE_ESCAPES = frozenset("$`\\\n")
_VARIABLE_PREFIX = "PK_REF_"
#: What follows ``${``: an optional ``#`` (length), then a name, a position or a special one.
_PARAMETER_NAME = re.compile(r"#?(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])")


class Quoting(enum.Enum):
    """Where a reference stands in shell text."""

    UNQUOTED = "unquoted"
    DOUBLE_QUOTED = "inside double quotes"
    SINGLE_QUOTED = "inside single quotes"
    HERE_DOCUMENT = "in a here-document"
    COMMENT = "in a comment"
    # No quoting passes a value as data here: refused.
    ESCAPED = "right after a backslash"
    AFTER_DOLLAR = "right after '$'"
    DOLLAR_SINGLE_QUOTED = "inside $'...'"
    ARITHMETIC = "inside an arithmetic expression"
    QUOTED_HERE_DOCUMENT = "in a here-document whose delimiter is quoted"
    HERE_DOCUMENT_DELIMITER = "in a here-document's delimiter"

    @property
    def refused(self) -> bool:
        """Whether no expansion can pass a value as data here."""
        return self in _REFUSED


_REFUSED = frozenset(
    {
        Quoting.ESCAPED,
        Quoting.AFTER_DOLLAR,
        Quoting.DOLLAR_SINGLE_QUOTED,
        Quoting.ARITHMETIC,
        Quoting.QUOTED_HERE_DOCUMENT,
        Quoting.HERE_DOCUMENT_DELIMITER,
    }
)


@attrs.frozen
class Site:
    """One reference in the text: ``text[start:end]``, and where it stands."""

    start: int
    end: int
    reference: Reference
    quoting: Quoting
    #: Right after a backslash that the shell keeps as a character (double quotes and
    #: here-documents, where ``\\#`` is two characters).
    after_backslash: bool = False


@attrs.frozen
class Scan:
    """The references of a text, in order, and what is still open at its end."""

    sites: tuple[Site, ...]
    #: ``(what, offset)`` of each quote or substitution the text never closes, outermost first.
    unclosed: tuple[tuple[str, int], ...] = ()


# -- the lexer ------------------------------------------------------------------------------------


class _Kind(enum.Enum):
    TOP = "the script"
    COMMAND = "a $(...) command substitution"
    BACKQUOTE = "a `...` command substitution"
    PARAMETER = "a ${...} expansion"
    ARITHMETIC = "an arithmetic expression"
    DOUBLE = "a double-quoted string"
    SINGLE = "a single-quoted string"
    DOLLAR_SINGLE = "a $'...' string"
    HERE = "a here-document"


_CODE = frozenset({_Kind.TOP, _Kind.COMMAND, _Kind.BACKQUOTE})


@attrs.define
class _Frame:
    kind: _Kind
    start: int
    depth: int = 0
    #: Here-documents: the delimiter and whether leading tabs are stripped (``<<-``).
    delimiter: str = ""
    strip_tabs: bool = False
    #: ``${...}`` inside double quotes (or a here-document): there a single quote is a
    #: character, except in the pattern of ``#``, ``%`` and ``/`` (sh and bash agree).
    literal_single_quotes: bool = False


@attrs.frozen
class _HereDocument:
    delimiter: str
    strip_tabs: bool
    quoted: bool


class _Lexer:
    """One pass over ``text`` with a stack of quoting frames (local state only)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.matches = {match.start(): match for match in _REFERENCE.finditer(text)}
        self.starts = sorted(self.matches)
        self.stack = [_Frame(_Kind.TOP, 0)]
        self.sites: list[Site] = []
        self.word_start = True
        self.lone_backslash = -2  # offset of the last backslash kept as a character
        self.pending: list[_HereDocument] = []  # here-documents whose body is still to come
        self.bodies: list[_HereDocument] = []  # here-documents whose bodies come next

    def run(self) -> Scan:
        text, size = self.text, len(self.text)
        at = 0
        while at < size:
            frame = self.stack[-1]
            if frame.kind is _Kind.HERE and (at == frame.start or text[at - 1] == "\n"):
                ended = self._end_of_body(at, frame)
                if ended is not None:
                    at = ended
                    continue
            match = self.matches.get(at)
            if match is not None:
                at = self._reference(match, frame)
                continue
            if frame.kind in _CODE or frame.kind is _Kind.PARAMETER:
                at = self._code(at, frame)
            elif frame.kind is _Kind.ARITHMETIC:
                at = self._arithmetic(at, frame)
            elif frame.kind is _Kind.DOLLAR_SINGLE:
                at = self._dollar_single(at)
            else:  # double quotes, here-document bodies
                at = self._double(at, frame)
        unclosed = tuple(
            (frame.kind.value, frame.start)
            for frame in self.stack[1:]
            if frame.kind is not _Kind.HERE
        )
        return Scan(tuple(self.sites), unclosed)

    # Each handler takes the offset of the character to read and returns the next offset.

    def _site(
        self, match: re.Match[str], quoting: Quoting, *, after_backslash: bool = False
    ) -> int:
        if not quoting.refused and any(f.kind is _Kind.ARITHMETIC for f in self.stack):
            quoting = Quoting.ARITHMETIC
        reference = Reference(match[1], match[2])
        self.sites.append(Site(match.start(), match.end(), reference, quoting, after_backslash))
        return match.end()

    def _skip(self, start: int, end: int, quoting: Quoting) -> None:
        """Text the lexer passes over whole: references in it stand in ``quoting``."""
        index = bisect.bisect_left(self.starts, start)
        while index < len(self.starts) and self.starts[index] < end:
            self._site(self.matches[self.starts[index]], quoting)
            index += 1

    def _reference(self, match: re.Match[str], frame: _Frame) -> int:
        self.word_start = False
        if frame.kind is _Kind.DOLLAR_SINGLE:
            return self._site(match, Quoting.DOLLAR_SINGLE_QUOTED)
        if frame.kind in (_Kind.DOUBLE, _Kind.HERE):
            quoting = Quoting.DOUBLE_QUOTED if frame.kind is _Kind.DOUBLE else Quoting.HERE_DOCUMENT
            kept = self.lone_backslash == match.start() - 1
            return self._site(match, quoting, after_backslash=kept)
        return self._site(match, Quoting.UNQUOTED)

    def _push(self, kind: _Kind, start: int) -> None:
        self.stack.append(_Frame(kind, start))
        self.word_start = kind in _CODE

    def _pop(self) -> None:
        self.stack.pop()
        self.word_start = False  # what closed is part of a word

    def _code(self, at: int, frame: _Frame) -> int:  # noqa: C901, PLR0911, PLR0912 - one branch per character class
        text = self.text
        char = text[at]
        if char == "\\":
            return self._escaped(at)
        if char == "'" and not frame.literal_single_quotes:
            end = text.find("'", at + 1)
            end = len(text) if end == -1 else end
            self._skip(at + 1, end, Quoting.SINGLE_QUOTED)
            if end == len(text):
                self.stack.append(_Frame(_Kind.SINGLE, at))  # reported as unclosed
            self.word_start = False
            return end + 1
        if char == '"':
            self._push(_Kind.DOUBLE, at)
            return at + 1
        if char == "`":
            if frame.kind is _Kind.BACKQUOTE:
                self._pop()
            else:
                self._push(_Kind.BACKQUOTE, at)
            return at + 1
        if char == "$":
            return self._dollar(at, code=True)
        if frame.kind is _Kind.PARAMETER:
            if char == "{":
                frame.depth += 1
            elif char == "}":
                if frame.depth == 0:
                    self._pop()
                    return at + 1
                frame.depth -= 1
            return at + 1
        if char == "#" and self.word_start:
            end = text.find("\n", at)
            end = len(text) if end == -1 else end
            self._skip(at, end, Quoting.COMMENT)
            return end
        if char == "(" and self.word_start and text.startswith("((", at):
            # bash's arithmetic command; in sh two subshells, where a value is data either way.
            self._push(_Kind.ARITHMETIC, at)
            return at + 2
        if char == "<" and text.startswith("<<", at) and not text.startswith("<<<", at):
            return self._here_operator(at)
        if frame.kind is _Kind.COMMAND and char in "()":
            if char == "(":
                frame.depth += 1
            elif frame.depth == 0:
                self._pop()
                return at + 1
            else:
                frame.depth -= 1
        self.word_start = char in _BREAKS
        if char == "\n" and self.pending:
            self.bodies, self.pending = self.pending, []
            return self._next_body(at + 1)
        return at + 1

    def _escaped(self, at: int) -> int:
        """An unquoted backslash: it quotes the next character."""
        match = self.matches.get(at + 1)
        if match is not None:
            self.word_start = False
            return self._site(match, Quoting.ESCAPED)
        if self.text[at + 1 : at + 2] != "\n":  # a line continuation leaves the word as it was
            self.word_start = False
        return at + 2

    def _dollar(self, at: int, *, code: bool) -> int:
        text = self.text
        self.word_start = False
        match = self.matches.get(at + 1)
        if match is not None:
            return self._site(match, Quoting.AFTER_DOLLAR)
        if text.startswith("$((", at):
            self._push(_Kind.ARITHMETIC, at)
            return at + 3
        following = text[at + 1 : at + 2]
        if following == "(":
            self._push(_Kind.COMMAND, at)
            return at + 2
        if following == "{":
            enclosing = self.stack[-1]
            quoted = enclosing.kind in (_Kind.DOUBLE, _Kind.HERE) or (
                enclosing.kind is _Kind.PARAMETER and enclosing.literal_single_quotes
            )
            name = _PARAMETER_NAME.match(text, at + 2)
            operator = text[name.end() : name.end() + 1] if name else ""
            self._push(_Kind.PARAMETER, at)
            self.stack[-1].literal_single_quotes = quoted and operator not in ("#", "%", "/")
            return at + 2
        if following == "'" and code:
            self._push(_Kind.DOLLAR_SINGLE, at)
            return at + 2
        return at + 1

    def _arithmetic(self, at: int, frame: _Frame) -> int:
        char = self.text[at]
        if char == "(":
            frame.depth += 1
        elif char == ")":
            if frame.depth > 0:
                frame.depth -= 1
            else:
                self._pop()
                return at + 2 if self.text.startswith("))", at) else at + 1
        elif char in "\\'\"`$":
            return self._code(at, frame)
        return at + 1

    def _dollar_single(self, at: int) -> int:
        char = self.text[at]
        if char == "\\":
            match = self.matches.get(at + 1)
            if match is not None:
                return self._site(match, Quoting.DOLLAR_SINGLE_QUOTED)
            return at + 2
        if char == "'":
            self._pop()
        return at + 1

    def _double(self, at: int, frame: _Frame) -> int:
        """Inside double quotes, or the body of a here-document whose delimiter is unquoted."""
        text = self.text
        char = text[at]
        if char == "\\":
            escapes = _DQ_ESCAPES if frame.kind is _Kind.DOUBLE else _HERE_ESCAPES
            if at + 1 < len(text) and text[at + 1] in escapes:
                return at + 2
            self.lone_backslash = at
            return at + 1
        if char == '"' and frame.kind is _Kind.DOUBLE:
            self._pop()
            return at + 1
        if char == "$":
            return self._dollar(at, code=False)
        if char == "`":
            self._push(_Kind.BACKQUOTE, at)
            return at + 1
        return at + 1

    # -- here-documents

    def _here_operator(self, at: int) -> int:
        """``<<WORD`` or ``<<-WORD``: note the here-document whose body follows the line."""
        text, size = self.text, len(self.text)
        cursor = at + 2
        strip_tabs = text.startswith("-", cursor)
        cursor += strip_tabs
        while cursor < size and text[cursor] in " \t":
            cursor += 1
        word: list[str] = []
        quoted = False
        while cursor < size and text[cursor] not in _BREAKS:
            match = self.matches.get(cursor)
            if match is not None:
                word.append(match[0])
                cursor = self._site(match, Quoting.HERE_DOCUMENT_DELIMITER)
                continue
            char = text[cursor]
            if char == "\\":
                quoted = True
                word.append(text[cursor + 1 : cursor + 2])
                cursor += 2
            elif char in "'\"":
                quoted = True
                end = text.find(char, cursor + 1)
                end = size if end == -1 else end
                self._skip(cursor + 1, end, Quoting.HERE_DOCUMENT_DELIMITER)
                inner = text[cursor + 1 : end]
                word.append(inner if char == "'" else inner.replace("\\", ""))
                cursor = end + 1
            else:
                word.append(char)
                cursor += 1
        if word:
            self.pending.append(_HereDocument("".join(word), strip_tabs, quoted))
        self.word_start = False
        return cursor

    def _next_body(self, at: int) -> int:
        """Start the next here-document body at ``at``; quoted ones are passed over whole."""
        while self.bodies:
            document = self.bodies.pop(0)
            if not document.quoted:
                self.stack.append(
                    _Frame(
                        _Kind.HERE, at, delimiter=document.delimiter, strip_tabs=document.strip_tabs
                    )
                )
                return at
            end = self._body_end(at, document.delimiter, strip_tabs=document.strip_tabs)
            self._skip(at, end[0], Quoting.QUOTED_HERE_DOCUMENT)
            at = end[1]
        self.word_start = True
        return at

    def _body_end(self, at: int, delimiter: str, *, strip_tabs: bool) -> tuple[int, int]:
        """Where the body starting at ``at`` ends, and where the line after its delimiter starts."""
        text, size = self.text, len(self.text)
        line = at
        while line < size:
            end = text.find("\n", line)
            end = size if end == -1 else end
            content = text[line:end]
            if (content.lstrip("\t") if strip_tabs else content) == delimiter:
                return line, min(end + 1, size)
            line = end + 1
        return size, size

    def _end_of_body(self, at: int, frame: _Frame) -> int | None:
        """At a line start in a here-document: past its delimiter line if this is it."""
        text = self.text
        end = text.find("\n", at)
        end = len(text) if end == -1 else end
        content = text[at:end]
        if (content.lstrip("\t") if frame.strip_tabs else content) != frame.delimiter:
            return None
        self.stack.pop()
        return self._next_body(min(end + 1, len(text)))


def scan(text: str) -> Scan:
    """Every ``#{...}`` reference in the shell text ``text``, with where it stands."""
    return _Lexer(text).run()


# -- the rewrite ----------------------------------------------------------------------------------


@attrs.frozen
class Passage:
    """How one reference of command ``index`` reaches the shell."""

    index: int
    reference: Reference
    quoting: Quoting
    #: The environment variable holding the value (``None`` in a comment: it never runs).
    variable: str | None
    #: What replaces the reference in the text.
    expansion: str

    def describe(self) -> str:
        """``#{variables.branch} is passed as "${PK_REF_variables_branch}" (shell-safe)``."""
        if self.variable is None:
            return f"{self.reference.text} is in a comment: never run, left as it is"
        where = "" if self.quoting is Quoting.UNQUOTED else f" {self.quoting.value}"
        return f"{self.reference.text} is passed as {self.expansion}{where} (shell-safe)"


@attrs.frozen
class SafeCommands:
    """Commands rewritten so that each reference reaches the shell as an environment variable."""

    commands: tuple[str, ...]
    #: ``(name, reference)`` of each variable to set, in order of first use.
    variables: tuple[tuple[str, Reference], ...]
    passages: tuple[Passage, ...]
    #: ``(index, message)`` for each reference that cannot be passed as data, and for text that
    #: ends inside a quote (the index of the command where it opened).
    problems: tuple[tuple[int, str], ...]


def pass_as_data(commands: Sequence[str]) -> SafeCommands:
    """``commands`` (run as one script, joined by newlines) with every reference made data."""
    text = "\n".join(commands)
    offsets: list[int] = []
    position = 0
    for command in commands:
        offsets.append(position)
        position += len(command) + 1
    found = scan(text)
    names: dict[Reference, str] = {}
    passages: list[Passage] = []
    problems: list[tuple[int, str]] = []
    pieces: list[list[str]] = [[] for _ in commands]
    cursors = list(offsets)
    for site in found.sites:
        index = bisect.bisect_right(offsets, site.start) - 1
        if site.quoting.refused:
            problems.append((index, _refusal(site)))
            continue
        if site.quoting is Quoting.COMMENT:
            passages.append(Passage(index, site.reference, site.quoting, None, site.reference.text))
            continue
        name = names.get(site.reference)
        if name is None:
            name = names[site.reference] = _variable_name(site.reference, set(names.values()))
        expansion = _expansion(name, site)
        pieces[index].append(text[cursors[index] : site.start])
        pieces[index].append(expansion)
        cursors[index] = site.end
        passages.append(Passage(index, site.reference, site.quoting, name, expansion))
    for what, start in found.unclosed:
        index = bisect.bisect_right(offsets, start) - 1
        column = start - offsets[index] + 1
        message = (
            f"the commands end inside {what} opened at character {column} of "
            f"commands[{index}], so where each #{{...}} reference stands is unknown: close it"
        )
        problems.append((index, message))
    rewritten = tuple(
        "".join(pieces[index]) + command[cursors[index] - offsets[index] :]
        if pieces[index]
        else command
        for index, command in enumerate(commands)
    )
    variables = tuple((name, reference) for reference, name in names.items())
    return SafeCommands(rewritten, variables, tuple(passages), tuple(problems))


def _expansion(name: str, site: Site) -> str:
    if site.quoting is Quoting.SINGLE_QUOTED:
        return f"'\"${{{name}}}\"'"
    if site.quoting in (Quoting.DOUBLE_QUOTED, Quoting.HERE_DOCUMENT):
        # A backslash the shell keeps before '#' would escape the '$': double it.
        return ("\\" if site.after_backslash else "") + f"${{{name}}}"
    return f'"${{{name}}}"'


def _variable_name(reference: Reference, taken: set[str]) -> str:
    """``PK_REF_<namespace>_<name>``, made an environment variable name, unique in ``taken``."""
    base = _VARIABLE_PREFIX + re.sub(
        r"[^A-Za-z0-9_]", "_", f"{reference.namespace}_{reference.name}"
    )
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}_{number}"
    return name


def _refusal(site: Site) -> str:
    """The message for a reference that no quoting can pass as data, with the fix."""
    text = site.reference.text
    fixes = {
        Quoting.ESCAPED: "remove the backslash: the value is passed whole, as data, anyway",
        Quoting.AFTER_DOLLAR: (
            "a '$' before it would make the value part of a parameter name; separate them"
        ),
        Quoting.DOLLAR_SINGLE_QUOTED: (
            "sh and bash read $'...' differently; close the $'...' before the reference"
        ),
        Quoting.ARITHMETIC: (
            "the shell evaluates a value there as an expression (bash even runs commands "
            f"found in it); assign it first (n={text}), check it is a number "
            "(case $n in ''|*[!0-9]*) exit 1;; esac) and use $n"
        ),
        Quoting.QUOTED_HERE_DOCUMENT: (
            "nothing is expanded there, so no value can be passed as data; unquote the "
            "delimiter (<<EOF instead of <<'EOF') or pass the value in env"
        ),
        Quoting.HERE_DOCUMENT_DELIMITER: "write the delimiter out",
    }
    return f"{text} stands {site.quoting.value}: {fixes[site.quoting]}"
