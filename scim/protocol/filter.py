"""SCIM filter parser (RFC 7644 §3.4.2.2) producing an immutable AST.

Grammar (RFC 7644 §3.4.2.2 Figure 1; names per RFC 7643 §2.1); ``not`` > ``and`` > ``or``::

    FILTER    = attrExp / logExp / valuePath / "not" "(" FILTER ")" / "(" FILTER ")"
    logExp    = FILTER SP ("and" / "or") SP FILTER
    valuePath = attrPath "[" valFilter "]" [ "." subAttrName (SP "pr" / SP compareOp SP compValue) ]
    attrExp   = attrPath SP "pr" / attrPath SP compareOp SP compValue
    compValue = "false" / "null" / "true" / JSON number / JSON string   (RFC 8259)
    attrPath  = [URI ":"] ATTRNAME *1subAttr          ATTRNAME = ALPHA *(nameChar) / "$ref"

Decisions beyond the RFC text:

* Keywords, operators and ``true``/``false``/``null`` are case-insensitive; ``and``/``or``/``not``
  are reserved (never attribute names in a filter).
* A URN-qualified path is split at its LAST colon; a bare schema URN (second-to-last segment is
  a version such as ``2.0``) is rejected here, since a filter needs an attribute.
* Inside ``[...]`` only plain sub-attribute names are allowed and brackets do not nest.
* Entra ID sends ``emails[type eq "work"].value eq "x"`` (the ``"."`` suffix of valuePath above,
  not in RFC 7644). It is parsed as ``ValuePath(emails, And((type eq "work", value eq "x")))``:
  ONE element must match both, exactly like ``emails[type eq "work" and value eq "x"]``, which
  is what ``format_filter`` prints.
* Same-kind ``and``/``or`` chains are flattened, also across parentheses.
* Whitespace is SP, HTAB, CR or LF and is optional between tokens.

Every failure is ``InvalidFilter`` with detail ``invalid filter at position N: <what>`` where N
is a 0-based character offset.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import NamedTuple

from scim.protocol.errors import InvalidFilter

OPERATORS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})
Value = str | int | float | bool | None

_NAME = r"(?:[A-Za-z][A-Za-z0-9_-]*|\$(?i:ref))"
_NAME_RE = re.compile(_NAME)
_PATH_RE = re.compile(rf"({_NAME})(?:\.({_NAME}))?")
_URN_RE = re.compile(r"(?i:urn)(?::[A-Za-z0-9._-]+){2,}")
_VERSION_RE = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_WORD_RE = re.compile(r"[A-Za-z$][A-Za-z0-9_.:$-]*")
_NUMBER_RUN_RE = re.compile(r"[-+.0-9A-Za-z_]+")
_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_PLAIN_RE = re.compile(r'[^"\\\x00-\x1f]*')
_HEX4_RE = re.compile(r"[0-9A-Fa-f]{4}")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_LITERALS: dict[str, Value] = {"true": True, "false": False, "null": None}
_SPACE = " \t\r\n"
_PUNCT = "()[]."


@dataclass(frozen=True, slots=True)
class AttrPath:
    """``[urn:]attr[.sub]`` in the client's spelling; ``attr == ""`` means a whole schema URN."""

    urn: str | None
    attr: str
    sub: str | None = None

    def __str__(self) -> str:
        text = self.attr if self.sub is None else f"{self.attr}.{self.sub}"
        if self.urn is None:
            return text
        return f"{self.urn}:{text}" if text else self.urn

    @property
    def key(self) -> str:
        """Lower-cased ``[urn:]attr[.sub]`` for case-insensitive lookup (RFC 7643 §2.1).

        E.g. ``"name.familyname"``, ``"urn:...:2.0:user:manager.value"``; a bare schema URN's
        key is the lower-cased URN. A core-URN-qualified path keeps its URN in the key.
        """
        return str(self).lower()


@dataclass(frozen=True, slots=True)
class Compare:
    """``path op value``; ``op`` is lower-case and in ``OPERATORS``."""

    path: AttrPath
    op: str
    value: Value


@dataclass(frozen=True, slots=True)
class Present:
    """``path pr``."""

    path: AttrPath


@dataclass(frozen=True, slots=True)
class And:
    """Conjunction of two or more expressions, none of them an ``And``."""

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Disjunction of two or more expressions, none of them an ``Or``."""

    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """``not (expr)``."""

    expr: Expr


@dataclass(frozen=True, slots=True)
class ValuePath:
    """``path[filter]``: one element of multi-valued ``path`` matches ``filter``, whose paths are
    sub-attribute names of ``path`` (``urn`` and ``sub`` are None)."""

    path: AttrPath
    filter: Expr


Expr = Compare | Present | And | Or | Not | ValuePath


class _SyntaxError(Exception):
    """Internal: turned into ``InvalidFilter`` / ``InvalidPath`` / ``InvalidValue`` by callers."""

    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos = pos
        self.message = message

    def detail(self, what: str) -> str:
        return f"invalid {what} at position {self.pos}: {self.message}"


class _Token(NamedTuple):
    kind: str  # "word", "string", "number", "eof" or one of _PUNCT
    text: str
    pos: int
    value: Value = None


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        if text[i] in _SPACE:
            i += 1
            continue
        token = _lex_one(text, i)
        tokens.append(token)
        i += len(token.text)
    tokens.append(_Token("eof", "", len(text)))
    return tokens


def _lex_one(text: str, i: int) -> _Token:
    ch = text[i]
    if ch in _PUNCT:
        return _Token(ch, ch, i)
    if ch == '"':
        value, end = _lex_string(text, i)
        return _Token("string", text[i:end], i, value)
    if ch == "-" or "0" <= ch <= "9":
        return _lex_number(text, i)
    word = _WORD_RE.match(text, i)
    if word is None:
        raise _SyntaxError(i, f"unexpected character {ch!r}")
    return _Token("word", word.group(), i)


def _end_of(pattern: re.Pattern[str], text: str, i: int) -> int:
    match = pattern.match(text, i)
    return i if match is None else match.end()


def _lex_number(text: str, i: int) -> _Token:
    raw = text[i : _end_of(_NUMBER_RUN_RE, text, i)]
    number = _NUMBER_RE.fullmatch(raw)
    if number is None:
        raise _SyntaxError(i, f"invalid number '{raw}' (JSON numbers only, e.g. 42, -1.5, 2e3)")
    if number.group(1) or number.group(2):
        value: Value = float(raw)
        if not math.isfinite(value):
            raise _SyntaxError(i, f"number '{raw}' is out of range")
    else:
        try:
            value = int(raw)
        except ValueError:
            raise _SyntaxError(i, "number has too many digits") from None
    return _Token("number", raw, i, value)


def _lex_string(text: str, start: int) -> tuple[str, int]:
    """Decode the JSON string (RFC 8259 §7) opening at ``start``; return (value, end)."""
    parts: list[str] = []
    i = start + 1
    while True:
        end = _end_of(_PLAIN_RE, text, i)
        parts.append(text[i:end])
        i = end
        if i >= len(text):
            raise _SyntaxError(start, f"unterminated string starting at position {start}")
        if text[i] == '"':
            return "".join(parts), i + 1
        if text[i] != "\\":
            raise _SyntaxError(i, f"control character {text[i]!r} in a string must be escaped")
        decoded, i = _lex_escape(text, i, start)
        parts.append(decoded)


def _lex_escape(text: str, i: int, start: int) -> tuple[str, int]:
    code = text[i + 1 : i + 2]
    if code in _ESCAPES:
        return _ESCAPES[code], i + 2
    if code == "":
        raise _SyntaxError(start, f"unterminated string starting at position {start}")
    if code != "u":
        raise _SyntaxError(i, f"invalid escape '\\{code}' in string")
    high = _hex4(text, i)
    if 0xDC00 <= high <= 0xDFFF:
        raise _SyntaxError(i, "unpaired low surrogate escape in string")
    if not 0xD800 <= high <= 0xDBFF:
        return chr(high), i + 6
    low = _hex4(text, i + 6) if text[i + 6 : i + 8] == "\\u" else 0
    if not 0xDC00 <= low <= 0xDFFF:
        raise _SyntaxError(i, "high surrogate escape not followed by a low surrogate escape")
    return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)), i + 12


def _hex4(text: str, i: int) -> int:
    digits = _HEX4_RE.match(text, i + 2)
    if digits is None:
        raise _SyntaxError(i, "'\\u' escape must be followed by 4 hex digits")
    return int(digits.group(), 16)


def _is_schema_urn(text: str) -> bool:
    """True for a bare schema URN like ``urn:...:2.0:User`` (second-to-last segment a version)."""
    segments = text.split(":")
    return _URN_RE.fullmatch(text) is not None and _VERSION_RE.fullmatch(segments[-2]) is not None


def _attr_path(text: str, pos: int) -> AttrPath:
    if _is_schema_urn(text):
        raise _SyntaxError(pos, f"'{text}' is a schema URN; expected '{text}:attributeName'")
    urn, _, rest = text.rpartition(":")
    if urn and _URN_RE.fullmatch(urn) is None:
        raise _SyntaxError(pos, f"'{urn}' in '{text}' is not a schema URN (urn:...)")
    names = _PATH_RE.fullmatch(rest)
    if names is None:
        raise _SyntaxError(
            pos,
            f"invalid attribute path '{text}': expected name or name.subAttr, a name being "
            "a letter followed by letters, digits, '-' or '_' (or '$ref')",
        )
    return AttrPath(urn or None, names[1], names[2])


def _check_text(text: object, max_length: int, what: str) -> str:
    if not isinstance(text, str):
        raise _SyntaxError(0, f"{what} must be a string, got {type(text).__name__}")
    if len(text) > max_length:
        message = f"{what} has {len(text)} characters, more than max_length={max_length}"
        raise _SyntaxError(max_length, message)
    return text


def _combine(kind: type[And] | type[Or], items: list[Expr]) -> Expr:
    if len(items) == 1:
        return items[0]
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return kind(tuple(flat))


def _is_word(token: _Token, *words: str) -> bool:
    return token.kind == "word" and token.text.lower() in words


class _Parser:
    """Recursive descent over the token list; ``paths.py`` reuses it for PATCH paths."""

    def __init__(self, text: str, what: str, max_depth: int, max_clauses: int) -> None:
        self._tokens = _tokenize(text)
        self._index = 0
        self._what = what
        self._max_depth = max_depth
        self._max_clauses = max_clauses
        self._depth = 0
        self._clauses = 0
        self._in_brackets = False

    def peek(self) -> _Token:
        return self._tokens[self._index]

    def take(self) -> _Token:
        token = self._tokens[self._index]
        if token.kind != "eof":
            self._index += 1
        return token

    def got(self, token: _Token) -> str:
        if token.kind == "eof":
            return f"end of {self._what}"
        return repr(token.text if len(token.text) <= 40 else token.text[:37] + "...")

    def expect_end(self, alternatives: str) -> None:
        token = self.peek()
        if token.kind != "eof":
            message = f"unexpected {self.got(token)}, expected {alternatives}end of {self._what}"
            raise _SyntaxError(token.pos, message)

    def parse(self) -> Expr:
        if self.peek().kind == "eof":
            raise _SyntaxError(0, f"{self._what} is empty")
        expr = self._or()
        self.expect_end("'and', 'or' or ")
        return expr

    def attr_path(self, token: _Token) -> AttrPath:
        path = _attr_path(token.text, token.pos)
        if self._in_brackets and (path.urn is not None or path.sub is not None):
            message = f"inside '[...]' expected a plain sub-attribute name, got {token.text!r}"
            raise _SyntaxError(token.pos, message)
        return path

    def bracket_filter(self, path: AttrPath) -> Expr:
        """Parse ``[valFilter]`` following ``path``; the next token is ``[``."""
        if self._in_brackets:
            raise _SyntaxError(self.peek().pos, "value filters '[...]' cannot be nested")
        if path.sub is not None:
            raise _SyntaxError(self.peek().pos, f"'[' cannot follow sub-attribute path '{path}'")
        self._in_brackets = True
        expr = self._nested("[", "]")
        self._in_brackets = False
        return expr

    def sub_attr(self) -> _Token:
        """Parse ``"." name`` after ``]``; the next token is ``.``."""
        self.take()
        token = self.take()
        if token.kind != "word" or _NAME_RE.fullmatch(token.text) is None:
            message = f"expected a sub-attribute name after '.', got {self.got(token)}"
            raise _SyntaxError(token.pos, message)
        return token

    def _or(self) -> Expr:
        items = [self._and()]
        while _is_word(self.peek(), "or"):
            self.take()
            items.append(self._and())
        return _combine(Or, items)

    def _and(self) -> Expr:
        items = [self._unary()]
        while _is_word(self.peek(), "and"):
            self.take()
            items.append(self._unary())
        return _combine(And, items)

    def _unary(self) -> Expr:
        token = self.peek()
        if _is_word(token, "not"):
            self.take()
            if self.peek().kind != "(":
                message = f"'not' must be followed by '(', got {self.got(self.peek())}"
                raise _SyntaxError(self.peek().pos, message)
            return Not(self._nested("(", ")"))
        if token.kind == "(":
            return self._nested("(", ")")
        return self._attr_exp()

    def _nested(self, opening: str, closing: str) -> Expr:
        start = self.take()
        self._depth += 1
        if self._depth > self._max_depth:
            raise _SyntaxError(start.pos, f"nesting exceeds max_depth={self._max_depth}")
        expr = self._or()
        token = self.take()
        if token.kind != closing:
            message = (
                f"expected 'and', 'or' or '{closing}' to close '{opening}' at position "
                f"{start.pos}, got {self.got(token)}"
            )
            raise _SyntaxError(token.pos, message)
        self._depth -= 1
        return expr

    def _attr_exp(self) -> Expr:
        token = self.take()
        if token.kind != "word" or _is_word(token, "and", "or"):
            message = f"expected an attribute path, '(' or 'not', got {self.got(token)}"
            raise _SyntaxError(token.pos, message)
        path = self.attr_path(token)
        if self.peek().kind != "[":
            return self._condition(path, token)
        inner = self.bracket_filter(path)
        if self.peek().kind != ".":
            return ValuePath(path, inner)
        sub = self.sub_attr()
        condition = self._condition(AttrPath(None, sub.text), sub)
        return ValuePath(path, _combine(And, [inner, condition]))

    def _condition(self, path: AttrPath, after: _Token) -> Expr:
        self._clauses += 1
        if self._clauses > self._max_clauses:
            message = f"more than max_clauses={self._max_clauses} comparisons"
            raise _SyntaxError(after.pos, message)
        token = self.take()
        op = token.text.lower() if token.kind == "word" else ""
        if op == "pr":
            return Present(path)
        if op not in OPERATORS:
            message = (
                f"expected a comparison operator after {after.text!r}, got {self.got(token)} "
                "(operators: eq ne co sw ew gt ge lt le pr)"
            )
            raise _SyntaxError(token.pos, message)
        return Compare(path, op, self._value(token))

    def _value(self, op: _Token) -> Value:
        token = self.take()
        if token.kind in ("string", "number"):
            return token.value
        if token.kind == "word" and token.text.lower() in _LITERALS:
            return _LITERALS[token.text.lower()]
        message = (
            f"expected a value (string, number, true, false or null) after {op.text!r}, "
            f"got {self.got(token)}"
        )
        raise _SyntaxError(token.pos, message)


def parse_filter(
    text: str, *, max_length: int = 4096, max_depth: int = 32, max_clauses: int = 256
) -> Expr:
    """Parse a SCIM filter; raise ``InvalidFilter`` (and nothing else) for any bad input."""
    try:
        _check_text(text, max_length, "filter")
        return _Parser(text, "filter", max_depth, max_clauses).parse()
    except _SyntaxError as exc:
        raise InvalidFilter(exc.detail("filter")) from None


def format_filter(expr: Expr) -> str:
    """Render ``expr`` as a canonical filter: ``parse_filter(format_filter(e)) == e``."""
    if isinstance(expr, Compare):
        return f"{expr.path} {expr.op} {_literal(expr.value)}"
    if isinstance(expr, Present):
        return f"{expr.path} pr"
    if isinstance(expr, Not):
        return f"not ({format_filter(expr.expr)})"
    if isinstance(expr, ValuePath):
        return f"{expr.path}[{format_filter(expr.filter)}]"
    if isinstance(expr, And):
        return " and ".join(_and_operand(item) for item in expr.items)
    if isinstance(expr, Or):
        return " or ".join(format_filter(item) for item in expr.items)
    raise TypeError(f"not a filter expression: {expr!r}")


def _literal(value: Value) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _and_operand(expr: Expr) -> str:
    return f"({format_filter(expr)})" if isinstance(expr, Or) else format_filter(expr)
