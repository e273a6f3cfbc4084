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
unquoted backslash or a ``$``, inside ``$'...'`` (``sh`` and ``bash`` read it differently), in a
here-document whose delimiter is quoted (nothing is expanded there), in a here-document's
delimiter, and wherever bash evaluates a value instead of passing it on. There quotes do not
help: bash runs the command substitution in a value such as ``a[$(touch pwned)]``, because it
evaluates an array subscript it finds in the value. So the lexer also follows each simple
command far enough to see, as bash will:

- arithmetic: ``$((...))``, ``((...))``, ``for ((...))``, ``$[...]``; an array subscript in
  ``${name[...]}`` and in an assignment (``a[...]=``, also as an argument of ``declare``,
  ``typeset``, ``local``, ``readonly``, ``export``, and ``[...]=`` in ``name=(...)``); the offset
  and length of ``${name:offset:length}``; the arguments of ``let``; the operands of ``-eq``,
  ``-ne``, ``-lt``, ``-le``, ``-gt``, ``-ge`` in ``[[ ]]``; a value assigned with ``declare -i``
  (``local -i``, ``typeset -i``) or to bash's integer variables (``RANDOM``, ``OPTIND``...), and
  one assigned (``n=``, ``n+=``, ``n[...]=``, ``n=(...)``, ``declare n=``) to a name that
  ``declare -i`` (``typeset``, ``local``, combined flags such as ``-ia``) names anywhere in the
  text, before or after: a loop may run the ``declare`` first;
- a variable name: the operand of ``-v`` (``[[ ]]``, ``test``, ``[``), the name in an argument of
  ``declare`` and the others above, a value assigned with ``declare -n``, or assigned to a name
  ``declare -n`` names anywhere in the text, the arguments of ``unset``, the names ``read``
  assigns, the operand of ``printf -v``.

What no reading of the text can see is documented instead: a variable given the integer or
nameref attribute outside the text (a sourced file) or through an expansion (``declare -i "$x"``),
a value reaching such a variable otherwise than by assignment (``read n``, ``for n in``,
``printf -v n``), and programs that run their argument as code (``eval``, ``sh -c``, ``trap``).

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
from pipelinekit.providers._reference_variables import variable_name

__all__ = [
    "Passage",
    "Quoting",
    "SafeCommands",
    "Scan",
    "Site",
    "note_groups",
    "pass_as_data",
    "scan",
]

#: The same pattern ``_model._variables.resolve`` substitutes, so every reference it would
#: resolve is found here (tests compare the two).
_REFERENCE = re.compile(r"#\{([A-Za-z0-9@_\-]+)\.([A-Za-z0-9@_\-]+)\}")
#: Unquoted characters that end a word (and so may start a comment after them).
_BREAKS = frozenset(" \t\n;&|()<>")
#: What a backslash escapes inside double quotes and unquoted here-documents.
_DQ_ESCAPES = frozenset('$`"\\\n')
_HERE_ESCAPES = frozenset("$`\\\n")
#: What follows ``${``: an optional ``#`` (length) or ``!`` (indirection), then a name, a position
#: or a special one.
_PARAMETER_NAME = re.compile(r"[#!]?(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])")
#: A variable's name.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Characters that mean nothing to the lexer: in code and ``${...}``, and in double quotes or
#: here-documents (a line end is read alone: a here-document's delimiter may follow it).
_PLAIN = re.compile(r"[A-Za-z0-9_./:,+%@^~-]+")
_PLAIN_QUOTED = re.compile(r"[^\\\"$`=#\n]+")
_QUOTES = re.compile(r"""\\(.)|["']""", re.DOTALL)
#: The commands whose arguments bash may evaluate (see ``_Lexer._argument``).
_EVALUATING = frozenset({"let", "unset", "read", "printf", "test", "[", "function"})
#: What stands before the ``=`` of an assignment: ``name``, ``name[...]``, with ``+`` for ``+=``.
_ASSIGNED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[.*\])?\+?", re.DOTALL)
#: Words after which the next word is a command's name again.
_RESERVED_WORDS = frozenset(
    {
        "!",
        "{",
        "}",
        "if",
        "then",
        "else",
        "elif",
        "fi",
        "do",
        "done",
        "while",
        "until",
        "esac",
        "time",
    }
)
#: Builtins that run the builtin named next (after their options).
_WRAPPERS = frozenset({"builtin", "command"})
#: Builtins whose arguments are assignments: bash evaluates an array subscript in their names.
_DECLARATIONS = frozenset({"declare", "typeset", "local", "readonly", "export"})
#: The operators of ``[[ ]]`` whose operands bash evaluates as arithmetic.
_ARITHMETIC_OPERATORS = frozenset({"-eq", "-ne", "-lt", "-le", "-gt", "-ge"})
#: bash's own variables with the integer attribute: a value assigned to one is evaluated.
_INTEGER_VARIABLES = frozenset({"RANDOM", "SRANDOM", "OPTIND", "HISTCMD"})
#: The words that open a compound command, and those that close one.
_OPENERS = frozenset({"if", "while", "until", "for", "select", "case", "{"})
_CLOSERS = frozenset({"fi", "done", "esac", "}"})
#: The options of ``read`` that take an argument.
_READ_ARGUMENTS = frozenset("adinNptu")


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
    VARIABLE_NAME = "where bash reads a variable name"
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
        Quoting.VARIABLE_NAME,
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


# A tuple: ``in`` compares members by identity first, cheaper than an Enum's hash per character.
_CODE = (_Kind.TOP, _Kind.COMMAND, _Kind.BACKQUOTE)


@attrs.define
class _Command:
    """What a code frame has read of its simple command so far.

    Enough to tell the words bash evaluates (as arithmetic, or as a variable name) from those it
    passes on as data. Where it cannot tell, it errs towards refusing.
    """

    #: The command's name once read; ``None`` while the next word may be it or an assignment.
    name: str | None = None
    #: ``builtin`` or ``command`` was read: options may come before the name.
    wrapped: bool = False
    #: The number of arguments read, and the last one without its quotes.
    count: int = 0
    last: str = ""
    #: The word being read: where it starts (-1: none), its first site, its first ``=``.
    begin: int = -1
    first_site: int = 0
    equals: int = -1
    #: The next word is a redirection's target, or an option's argument.
    redirect: bool = False
    option_argument: bool = False
    #: Inside ``[[ ]]``: the previous word's sites, and how the next operand is read.
    conditional: bool = False
    previous: range = range(0)
    operand: Quoting | None = None
    #: Inside ``name=(...)``, and the name assigned.
    compound: bool = False
    compound_name: str | None = None
    #: ``declare -i`` / ``declare -n``: the values assigned are arithmetic / variable names.
    integer: bool = False
    nameref: bool = False


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
    quoted: bool = False
    literal_single_quotes: bool = False
    #: ``${...}``: from the ``:`` of a substring on, offset and length are arithmetic.
    arithmetic: bool = False
    #: Arithmetic: what closes it, ``)`` (``$((...))``, ``((...))``) or ``]`` (a subscript,
    #: ``$[...]``); and whether it is the subscript of a ``${name[...]}``.
    closer: str = ")"
    parameter_subscript: bool = False
    #: The script, ``$(...)`` and backquotes: the simple command being read.
    command: _Command = attrs.Factory(_Command)
    #: Where a complete command ends (see ``note_groups``): the compound commands open (their
    #: first word, ``(`` for a subshell); inside a ``case`` where a pattern comes; after ``&&``,
    #: ``||`` or ``|``; after ``f()`` whose body is still to come.
    blocks: list[str] = attrs.Factory(list)
    pattern: bool = False
    continued: bool = False
    function_paren: bool = False
    pending_body: bool = False

    def complete(self) -> bool:
        """Whether the commands read so far in this frame form a complete program."""
        command = self.command
        return not (
            self.blocks
            or self.pattern
            or self.continued
            or self.function_paren
            or self.pending_body
            or command.compound
            or command.conditional
        )


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
        # Names ``declare -i`` / ``declare -n`` gives the attribute anywhere in the text, and
        # every assignment's name and value sites: a value assigned to such a name is evaluated
        # even by an assignment read before the ``declare`` (a loop may run the declare first).
        self.attributes: dict[str, Quoting] = {}
        self.assignments: list[tuple[str, range]] = []
        # The line ends to look at (see ``note_groups``), and those where the script so far is
        # a complete program.
        self.boundaries: frozenset[int] = frozenset()
        self.complete: set[int] = set()

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
        for frame in reversed(self.stack):
            if frame.kind in _CODE:
                self._end_word(frame, size)
        for name, sites in self.assignments:
            quoting = self.attributes.get(name)
            if quoting is not None:
                self._mark(sites, quoting)
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
        if _runs(quoting) and any(f.kind is _Kind.ARITHMETIC or f.arithmetic for f in self.stack):
            quoting = Quoting.ARITHMETIC
        reference = Reference(match[1], match[2])
        self.sites.append(Site(match.start(), match.end(), reference, quoting, after_backslash))
        return match.end()

    def _mark(self, sites: range, quoting: Quoting) -> None:
        """Bash evaluates the words of ``sites``: each reference in them (that runs) is refused."""
        for index in sites:
            site = self.sites[index]
            if _runs(site.quoting):
                self.sites[index] = attrs.evolve(site, quoting=quoting)

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
        if frame.kind in _CODE and frame.command.begin < 0:
            self._begin_word(frame.command, match.start())
        return self._site(match, Quoting.UNQUOTED)

    def _push(self, kind: _Kind, start: int, *, closer: str = ")") -> None:
        self.stack.append(_Frame(kind, start, closer=closer))
        self.word_start = kind in _CODE

    def _pop(self) -> None:
        self.stack.pop()
        self.word_start = False  # what closed is part of a word

    def _code(self, at: int, frame: _Frame) -> int:  # noqa: C901, PLR0911, PLR0912, PLR0915 - one branch per character class
        text = self.text
        char = text[at]
        command = frame.command
        if (
            frame.kind in _CODE
            and command.begin < 0
            and char not in _BREAKS
            and not (char == "#" and self.word_start)
            and not text.startswith("\\\n", at)  # a line continuation is not there for sh
        ):
            self._begin_word(command, at)
        plain = _PLAIN.match(text, at)
        if plain is not None:
            self.word_start = False
            return plain.end()
        if char == "\\":
            return self._escaped(at)
        if char == "'" and not frame.literal_single_quotes:
            end = text.find("'", at + 1)
            end = len(text) if end == -1 else end
            self._skip(at + 1, end, Quoting.SINGLE_QUOTED)
            if end == len(text):
                self.stack.append(_Frame(_Kind.SINGLE, at))  # reported as unclosed
            elif frame.kind in _CODE:
                self._equals(command, text.find("=", at + 1, end))
            self.word_start = False
            return end + 1
        if char == '"':
            self._push(_Kind.DOUBLE, at)
            return at + 1
        if char == "`":
            if frame.kind is _Kind.BACKQUOTE:
                self._end_word(frame, at)
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
        # What is left is read in the script, $(...) or backquotes.
        if char == "#" and self.word_start:
            end = text.find("\n", at)
            end = len(text) if end == -1 else end
            self._skip(at, end, Quoting.COMMENT)
            return end
        if char == "[" and self._subscript(command, at):
            self._push(_Kind.ARITHMETIC, at, closer="]")
            return at + 1
        if (
            char == "("
            and text.startswith("((", at)
            and (self.word_start or _joined(text[command.begin : at]) == "for")
        ):
            # bash's arithmetic command (also for((...))); in sh two subshells, where a value is
            # data either way.
            self._end_word(frame, at)
            self._push(_Kind.ARITHMETIC, at)
            return at + 2
        if char == "<" and text.startswith("<<", at):
            self._end_word(frame, at)
            if text.startswith("<<<", at):  # a here-string: its word is data
                self._break(frame, at)
                self.word_start = True
                return at + 3
            return self._here_operator(at)
        if (
            frame.kind is _Kind.COMMAND
            and char in "()"
            and not (char == ")" and frame.pattern and frame.depth == 0)  # `a)` in a case
        ):
            if char == "(":
                frame.depth += 1
            elif frame.depth == 0:
                self._end_word(frame, at)
                self._pop()
                return at + 1
            else:
                frame.depth -= 1
        self.word_start = char in _BREAKS
        if char in _BREAKS:
            self._break(frame, at)
        elif char == "=":
            self._equals(command, at)
        if char == "\n" and frame.kind is _Kind.TOP:
            self._record(at)
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

    def _dollar(self, at: int, *, code: bool) -> int:  # noqa: PLR0911 - one return per construct
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
        if following == "[":  # bash's old $[...] arithmetic
            self._push(_Kind.ARITHMETIC, at, closer="]")
            return at + 2
        if following == "{":
            enclosing = self.stack[-1]
            self._push(_Kind.PARAMETER, at)
            frame = self.stack[-1]
            frame.quoted = enclosing.kind in (_Kind.DOUBLE, _Kind.HERE) or (
                enclosing.kind is _Kind.PARAMETER and enclosing.literal_single_quotes
            )
            operator = at + 2
            name = _PARAMETER_NAME.match(text, operator)
            if name is not None:
                # The name holds no reference (a '#' there may start one): pass over it.
                index = bisect.bisect_left(self.starts, operator)
                if index == len(self.starts) or self.starts[index] >= name.end():
                    operator = name.end()
            return self._operator(frame, operator)
        if following == "'" and code:
            self._push(_Kind.DOLLAR_SINGLE, at)
            return at + 2
        return at + 1

    def _operator(self, frame: _Frame, at: int) -> int:
        """What follows the name of a ``${...}``: a subscript, a substring or another operator."""
        text = self.text
        operator = text[at : at + 1]
        frame.literal_single_quotes = frame.quoted and operator not in ("#", "%", "/")
        if operator == "[":
            self._push(_Kind.ARITHMETIC, at, closer="]")
            self.stack[-1].parameter_subscript = True
            return at + 1
        if operator == ":" and text[at + 1 : at + 2] not in ("-", "=", "?", "+"):
            frame.arithmetic = True  # ${name:offset:length}
        return at

    def _arithmetic(self, at: int, frame: _Frame) -> int:
        char = self.text[at]
        opening = "[" if frame.closer == "]" else "("
        if char == opening:
            frame.depth += 1
        elif char == frame.closer:
            if frame.depth > 0:
                frame.depth -= 1
            else:
                self._pop()
                if frame.parameter_subscript:
                    return self._operator(self.stack[-1], at + 1)
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

    def _double(self, at: int, frame: _Frame) -> int:  # noqa: PLR0911 - one return per character class
        """Inside double quotes, or the body of a here-document whose delimiter is unquoted."""
        text = self.text
        plain = _PLAIN_QUOTED.match(text, at)
        if plain is not None:
            return plain.end()
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
        if char == "=" and frame.kind is _Kind.DOUBLE and self.stack[-2].kind in _CODE:
            self._equals(self.stack[-2].command, at)  # declare "name=value"
        return at + 1

    # -- the words of simple commands: which of them bash evaluates

    def _begin_word(self, command: _Command, at: int) -> None:
        command.begin, command.first_site, command.equals = at, len(self.sites), -1

    @staticmethod
    def _equals(command: _Command, at: int) -> None:
        """An ``=`` at ``at`` (-1: none) in the word being read, outside any substitution."""
        if at >= 0 and command.begin >= 0 and command.equals < 0:
            command.equals = at

    def _subscript(self, command: _Command, at: int) -> bool:
        """Whether the ``[`` at ``at`` opens the subscript of an assignment (it is arithmetic)."""
        if command.begin < 0 or command.redirect or command.conditional:
            return False
        before = _joined(self.text[command.begin : at])
        if command.compound:
            return not before  # name=([subscript]=value)
        return (command.name is None or command.name in _DECLARATIONS) and bool(
            _NAME.fullmatch(before)
        )

    def _break(self, frame: _Frame, at: int) -> None:
        """An unquoted blank or operator character: it ends the word, maybe the command."""
        text, command = self.text, frame.command
        char = text[at]
        compound = (
            char == "("
            and command.begin >= 0
            and command.equals >= 0
            and text[at - 1] == "="
            and not command.conditional
        )
        name = _declared(text[command.begin : at - 1]) if compound else None
        named = command.begin >= 0 or command.name is not None  # `f(` or `f (`: a function
        self._end_word(frame, at)
        command = frame.command  # a word may start a command again (``function name``)
        if compound:
            command.compound, command.compound_name = True, name
            return
        if not command.conditional:
            self._structure(frame, at, named=named)
        if char in " \t" or command.conditional:  # [[ ]] reads && || ( ) < > and newlines
            return
        before, after = text[at - 1 : at], text[at + 1 : at + 2]
        if (
            char in "<>"
            or (char == "&" and (before in ("<", ">") or after == ">"))
            or (char == "|" and before == ">")
        ):
            command.redirect = True
        elif char == ")" and command.compound:
            command.compound = False
        elif not command.compound:
            frame.command = _Command()

    def _structure(self, frame: _Frame, at: int, *, named: bool) -> None:  # noqa: PLR0912 - one branch per operator
        """An operator character outside ``[[ ]]``: what it opens, closes or continues."""
        text = self.text
        char = text[at]
        if char in " \t\n":
            return  # a line end after `&&` goes on to the next line
        before, after = text[at - 1 : at], text[at + 1 : at + 2]
        if char == "|":
            frame.continued = before != ">" and not frame.pattern  # `>|` is a redirection
            return
        if char == "&":
            if before in ("<", ">") or after == ">":
                return  # a redirection: >&2, &>file
            frame.continued = after == "&" or before in ("&", "|")  # a lone `&`: background
            return
        frame.continued = False
        if char == ";":
            if frame.blocks[-1:] == ["case"] and (after in (";", "&") or before == ";"):
                frame.pattern = True  # ;; ;& ;;& end a case item: a pattern comes next
        elif char == "(":
            if before in ("<", ">"):
                frame.blocks.append("(")  # bash's process substitution <(...)
            elif frame.pattern:
                return  # (pattern)
            elif named:
                frame.function_paren = True
            else:
                frame.blocks.append("(")
        elif char == ")":
            if frame.pattern:
                frame.pattern = False
            elif frame.function_paren:
                frame.function_paren, frame.pending_body = False, True
            elif frame.blocks[-1:] == ["("]:
                frame.blocks.pop()

    @staticmethod
    def _keyword(frame: _Frame, command: _Command, raw: str) -> bool:
        """A word where a command's name goes: whether it opens or closes a compound command.

        In a ``case``, where a pattern goes, the word is a pattern (``esac`` closes it).
        """
        if frame.pattern:
            if raw == "esac" and frame.blocks[-1:] == ["case"]:
                frame.blocks.pop()
                frame.pattern = False
            command.name = raw  # a pattern: none of its words is a command
            return True
        if raw in _OPENERS:
            frame.blocks.append(raw)
            if raw in ("case", "for", "select"):
                command.name = raw  # what follows is their arguments, not commands
                frame.pattern = raw == "case"
            return True
        if raw in _CLOSERS:
            if frame.blocks and (raw != "esac" or frame.blocks[-1] == "case"):
                frame.blocks.pop()
            return True
        return False

    def _end_word(self, frame: _Frame, at: int) -> None:  # noqa: C901, PLR0912 - one branch per state
        """The word being read in ``frame`` ends at ``at``: see how bash reads it."""
        command = frame.command
        if command.begin < 0:
            return
        begin, raw = command.begin, self.text[command.begin : at]
        command.begin = -1
        if not _joined(raw):
            return  # only a line continuation
        frame.continued = frame.pending_body = False
        if raw.isdigit() and self.text[at : at + 1] in ("<", ">"):
            return  # the file descriptor of a redirection (2>file)
        if (
            command.name is not None
            and command.name not in _EVALUATING
            and command.name not in _DECLARATIONS
            and not (command.redirect or command.conditional or command.compound)
        ):
            return  # an argument of a command that evaluates none
        sites = range(command.first_site, len(self.sites))
        equals = command.equals - begin if command.equals >= 0 else -1
        word = _unquoted(raw)
        if command.redirect:
            command.redirect = False
        elif command.conditional:
            self._condition(command, raw, word, sites)
        elif command.compound:
            if command.integer:
                self._mark(sites, Quoting.ARITHMETIC)
            elif command.compound_name is not None:
                self.assignments.append((command.compound_name, sites))
        elif command.name is None:
            if self._keyword(frame, command, raw):
                return
            assigned = _assigned(raw, equals)
            if assigned is not None:
                value = self._value(sites, begin + equals)
                if assigned in _INTEGER_VARIABLES:
                    self._mark(value, Quoting.ARITHMETIC)
                self.assignments.append((assigned, value))
            elif word in _WRAPPERS:
                command.wrapped = True
            elif word not in _RESERVED_WORDS and not (command.wrapped and word.startswith("-")):
                command.name = word
                command.conditional = word == "[["
        else:
            self._argument(frame, word, sites, (begin, equals))
            command.count += 1
            command.last = word

    def _value(self, sites: range, equals: int) -> range:
        """The sites of ``sites`` after the ``=`` at ``equals``."""
        value = next((index for index in sites if self.sites[index].start > equals), sites.stop)
        return range(value, sites.stop)

    def _argument(  # noqa: C901, PLR0912 - one branch per builtin
        self, frame: _Frame, word: str, sites: range, where: tuple[int, int]
    ) -> None:
        """An argument (``word``: without quotes) of the command being read.

        ``where``: where the word starts, and its ``=`` in it (-1: none).
        """
        command = frame.command
        name = command.name
        if name == "let":
            self._mark(sites, Quoting.ARITHMETIC)
        elif name in _DECLARATIONS:
            self._declaration(command, word, sites, where)
        elif name == "unset":
            if not word.startswith("-"):
                self._mark(sites, Quoting.VARIABLE_NAME)
        elif name == "read":
            if command.option_argument:
                command.option_argument = False
            elif word.startswith("-"):
                for offset, letter in enumerate(word[1:], 1):
                    if letter in _READ_ARGUMENTS:  # the rest of the word, or the next one
                        command.option_argument = offset == len(word) - 1
                        break
            else:
                self._mark(sites, Quoting.VARIABLE_NAME)
        elif name == "printf":
            if command.option_argument:
                command.option_argument = False
                self._mark(sites, Quoting.VARIABLE_NAME)
            elif command.count == 0 and word.startswith("-v"):
                command.option_argument = word == "-v"
                self._mark(sites, Quoting.VARIABLE_NAME)
        elif name in ("test", "["):
            if command.last == "-v":
                self._mark(sites, Quoting.VARIABLE_NAME)
        elif name == "function":
            frame.command = _Command()  # its body follows: a command again
            frame.pending_body = True

    def _declaration(
        self, command: _Command, word: str, sites: range, where: tuple[int, int]
    ) -> None:
        """An argument of ``declare`` and the like: options, or ``name[=value]``."""
        if word[:1] in ("-", "+"):
            if word[0] == "-" and command.name in ("declare", "typeset", "local"):
                command.integer = command.integer or "i" in word
                command.nameref = command.nameref or "n" in word
            return
        begin, equals = where
        name = _declared(word if equals < 0 else self.text[begin : begin + equals])
        if name is not None and (command.integer or command.nameref):
            self.attributes[name] = Quoting.ARITHMETIC if command.integer else Quoting.VARIABLE_NAME
        if equals < 0:
            self._mark(sites, Quoting.VARIABLE_NAME)
            return
        value = self._value(sites, begin + equals)
        self._mark(range(sites.start, value.start), Quoting.VARIABLE_NAME)
        if command.integer or name in _INTEGER_VARIABLES:
            self._mark(value, Quoting.ARITHMETIC)
        elif command.nameref:
            self._mark(value, Quoting.VARIABLE_NAME)
        elif name is not None:
            self.assignments.append((name, value))

    def _condition(self, command: _Command, raw: str, word: str, sites: range) -> None:
        """A word of ``[[ ]]``: arithmetic operators make both operands arithmetic."""
        if raw == "]]":
            command.conditional = False
        elif word in _ARITHMETIC_OPERATORS:
            self._mark(command.previous, Quoting.ARITHMETIC)
            command.operand = Quoting.ARITHMETIC
        elif word == "-v":
            command.operand = Quoting.VARIABLE_NAME
        elif command.operand is not None:
            self._mark(sites, command.operand)
            command.operand = None
        command.previous = sites

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
                if cursor + 1 in self.matches:  # found by the loop, not passed over
                    cursor += 1
                    continue
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
        if len(self.stack) == 1:
            self._record(at - 1)  # the line end after the last delimiter
        return at

    def _record(self, newline: int) -> None:
        """At a line end of the script: note it if it ends a complete program."""
        if newline in self.boundaries and not self.pending and self.stack[-1].complete():
            self.complete.add(newline)

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


def _runs(quoting: Quoting) -> bool:
    """Whether a reference standing in ``quoting`` is rewritten and run: not refused, no comment."""
    return not quoting.refused and quoting is not Quoting.COMMENT


def _joined(text: str) -> str:
    """``text`` without its line continuations, as the shell reads it."""
    return text.replace("\\\n", "")


def _unquoted(word: str) -> str:
    """``word`` without quotes and backslashes: how bash reads a command's name or an operator."""
    plain = _joined(word).replace("$'", "'").replace('$"', '"')
    return _QUOTES.sub(lambda match: match[1] or "", plain)


def _assigned(word: str, equals: int) -> str | None:
    """The name ``word`` assigns, if it is an assignment whose ``=`` is at ``equals`` (-1: none)."""
    if equals < 0:
        return None
    match = _ASSIGNED.fullmatch(_joined(word[:equals]))
    return None if match is None else match[1]


def _declared(word: str) -> str | None:
    """The name an argument of ``declare`` (up to its ``=``, if any) declares or assigns."""
    match = _ASSIGNED.fullmatch(_unquoted(word))
    return None if match is None else match[1]


def scan(text: str) -> Scan:
    """Every ``#{...}`` reference in the shell text ``text``, with where it stands."""
    return _Lexer(text).run()


def note_groups(commands: Sequence[str]) -> list[tuple[int, int]]:
    """``commands`` (one script, joined by newlines) in groups that are complete programs.

    ``(first, last)`` for each group, in order: a line between two groups ends a complete
    top-level program (outside quotes, here-documents, compound commands, ``$(...)``, arrays
    and ``[[ ]]``, after no ``&&``, ``||``, ``|`` or line continuation), so a command put there
    runs on its own and changes nothing the commands read. Where the lexer cannot tell, the
    commands stay in one group.
    """
    if len(commands) < 2:  # noqa: PLR2004 - one command is one group
        return [(0, 0)] if commands else []
    text = "\n".join(commands)
    lines: list[int] = []
    position = -1
    for command in commands[:-1]:
        position += len(command) + 1
        lines.append(position)
    lexer = _Lexer(text)
    lexer.boundaries = frozenset(lines)
    lexer.run()
    groups: list[tuple[int, int]] = []
    first = 0
    for index, line in enumerate(lines):
        if line in lexer.complete:
            groups.append((first, index))
            first = index + 1
    groups.append((first, len(commands) - 1))
    return groups


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
            name = names[site.reference] = variable_name(site.reference, set(names.values()))
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
            "the shell evaluates a value there as an expression, and bash runs the commands in "
            f"an array subscript in it (a[$(...)]); assign it first (n={text}), check it is a "
            "number (case $n in ''|*[!0-9]*) exit 1;; esac) and use $n (as the key of an "
            "associative array, $n needs no check)"
        ),
        Quoting.VARIABLE_NAME: (
            "bash runs the commands in an array subscript in a name (a[$(...)]); assign it "
            f"first (n={text}), check it is a plain name "
            "(case $n in ''|[0-9]*|*[!A-Za-z0-9_]*) exit 1;; esac) and use $n"
        ),
        Quoting.QUOTED_HERE_DOCUMENT: (
            "nothing is expanded there, so no value can be passed as data; unquote the "
            "delimiter (<<EOF instead of <<'EOF') or pass the value in env"
        ),
        Quoting.HERE_DOCUMENT_DELIMITER: "write the delimiter out",
    }
    return f"{text} stands {site.quoting.value}: {fixes[site.quoting]}"
