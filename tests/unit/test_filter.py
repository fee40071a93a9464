"""Tests for the SCIM filter parser (RFC 7644 §3.4.2.2): valid corpus, malformed corpus,
limits, formatting and hypothesis properties."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scim.protocol.errors import InvalidFilter
from scim.protocol.filter import (
    OPERATORS,
    And,
    AttrPath,
    Compare,
    Expr,
    Not,
    Or,
    Present,
    Value,
    ValuePath,
    format_filter,
    parse_filter,
)

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def p(attr: str, sub: str | None = None, urn: str | None = None) -> AttrPath:
    return AttrPath(urn, attr, sub)


def eq(attr: str, value: Value, op: str = "eq") -> Compare:
    return Compare(p(attr), op, value)


def pr(attr: str) -> Present:
    return Present(p(attr))


VALID: list[tuple[str, Expr]] = [
    # every operator
    *[(f'title {op} "x"', Compare(p("title"), op, "x")) for op in sorted(OPERATORS)],
    ("title pr", pr("title")),
    # case-insensitive keywords, operators and literals
    ('userName EQ "x" AND title Pr', And((eq("userName", "x"), pr("title")))),
    ("a Gt 1 oR b lE 2", Or((eq("a", 1, "gt"), eq("b", 2, "le")))),
    ("NOT (a PR)", Not(pr("a"))),
    ("active eq TRUE", eq("active", True)),
    ("active eq False", eq("active", False)),
    ("title eq NULL", eq("title", None)),
    # precedence: not > and > or
    ("a eq 1 or b eq 2 and c eq 3", Or((eq("a", 1), And((eq("b", 2), eq("c", 3)))))),
    ("a eq 1 and b eq 2 or c eq 3", Or((And((eq("a", 1), eq("b", 2))), eq("c", 3)))),
    ("not (a pr) and b pr", And((Not(pr("a")), pr("b")))),
    ("not (a pr or b pr)", Not(Or((pr("a"), pr("b"))))),
    ("not (not (a pr))", Not(Not(pr("a")))),
    # parentheses and flattening
    ("(a eq 1 or b eq 2) and c eq 3", And((Or((eq("a", 1), eq("b", 2))), eq("c", 3)))),
    ("(a pr)", pr("a")),
    ("((a pr))", pr("a")),
    ("a pr and b pr and c pr", And((pr("a"), pr("b"), pr("c")))),
    ("a pr and (b pr and c pr)", And((pr("a"), pr("b"), pr("c")))),
    ("(a pr or b pr) or c pr", Or((pr("a"), pr("b"), pr("c")))),
    ("a pr or b pr or c pr", Or((pr("a"), pr("b"), pr("c")))),
    # whitespace is flexible
    ("  a pr  ", pr("a")),
    ("a\tpr\nand\r\nb pr", And((pr("a"), pr("b")))),
    ("(a pr)and(b pr)", And((pr("a"), pr("b")))),
    ('userName eq"x"', eq("userName", "x")),
    # sub-attributes, URNs, names
    ('name.familyName co "O\'Malley"', Compare(p("name", "familyName"), "co", "O'Malley")),
    (
        'meta.lastModified gt "2011-05-13T04:42:34Z"',
        Compare(p("meta", "lastModified"), "gt", "2011-05-13T04:42:34Z"),
    ),
    (
        f'{ENTERPRISE}:department eq "Sales"',
        Compare(p("department", urn=ENTERPRISE), "eq", "Sales"),
    ),
    (f'{ENTERPRISE}:manager.value eq "42"', Compare(p("manager", "value", ENTERPRISE), "eq", "42")),
    (f'{CORE_USER}:userName sw "J"', Compare(p("userName", urn=CORE_USER), "sw", "J")),
    (f"{CORE_USER}:name.givenName pr", Present(p("name", "givenName", CORE_USER))),
    ("members.$ref pr", Present(p("members", "$ref"))),
    ("$ref pr", pr("$ref")),
    ("x-ms_attr9 pr", pr("x-ms_attr9")),
    ("pr pr", pr("pr")),
    ('eq eq "eq"', eq("eq", "eq")),
    # value paths
    ('emails[type eq "work"]', ValuePath(p("emails"), eq("type", "work"))),
    (
        'emails[type eq "work" and value co "@x.org"]',
        ValuePath(p("emails"), And((eq("type", "work"), eq("value", "@x.org", "co")))),
    ),
    (
        'emails[type eq "work" or not (primary eq false)]',
        ValuePath(p("emails"), Or((eq("type", "work"), Not(eq("primary", False))))),
    ),
    ("emails[(value pr)]", ValuePath(p("emails"), pr("value"))),
    (
        f'{ENTERPRISE}:emails[type eq "w"]',
        ValuePath(p("emails", urn=ENTERPRISE), eq("type", "w")),
    ),
    (
        'userType eq "Employee" and emails[type eq "work" and value co "@example.com"]',
        And(
            (
                eq("userType", "Employee"),
                ValuePath(
                    p("emails"), And((eq("type", "work"), eq("value", "@example.com", "co")))
                ),
            )
        ),
    ),
    (
        'emails[type eq "work"] or ims[type eq "xmpp"]',
        Or((ValuePath(p("emails"), eq("type", "work")), ValuePath(p("ims"), eq("type", "xmpp")))),
    ),
    # Entra's non-RFC form: one element must match both conditions
    (
        'emails[type eq "work"].value eq "adele@contoso.com"',
        ValuePath(p("emails"), And((eq("type", "work"), eq("value", "adele@contoso.com")))),
    ),
    (
        'emails[type eq "work" and primary eq true].value co "@"',
        ValuePath(
            p("emails"), And((eq("type", "work"), eq("primary", True), eq("value", "@", "co")))
        ),
    ),
    (
        'emails[type eq "work" or type eq "home"].value pr',
        ValuePath(p("emails"), And((Or((eq("type", "work"), eq("type", "home"))), pr("value")))),
    ),
    (
        'emails [type eq "work"] . value eq "a"',
        ValuePath(p("emails"), And((eq("type", "work"), eq("value", "a")))),
    ),
    # Entra's usual filters
    ('userName eq "Adele.Vance@contoso.com"', eq("userName", "Adele.Vance@contoso.com")),
    ('externalId eq "x"', eq("externalId", "x")),
    ('displayName eq "R&D (Ops)"', eq("displayName", "R&D (Ops)")),
    ('displayName eq "a [b] and c or not (d)"', eq("displayName", "a [b] and c or not (d)")),
    # string literals
    ('userName eq ""', eq("userName", "")),
    ('userName eq "a\\"b"', eq("userName", 'a"b')),
    ('a eq "\\\\ \\/ \\b \\f \\n \\r \\t"', eq("a", "\\ / \b \f \n \r \t")),
    ('a eq "\\u00e9\\u00C9"', eq("a", "éÉ")),
    ('a eq "\\ud83d\\ude00"', eq("a", "\U0001f600")),
    ('a eq "é 😀 日本"', eq("a", "é 😀 日本")),
    ('a eq "\x7f"', eq("a", "\x7f")),
    # number literals
    ("a eq 0", eq("a", 0)),
    ("a eq -0", eq("a", 0)),
    ("a eq 42", eq("a", 42)),
    ("a eq -17", eq("a", -17)),
    ("a eq 1.5", eq("a", 1.5)),
    ("a eq -0.25", eq("a", -0.25)),
    ("a eq 1e3", eq("a", 1000.0)),
    ("a eq 2E-2", eq("a", 0.02)),
    ("a eq 1.5e+2", eq("a", 150.0)),
    ("a eq 12345678901234567890", eq("a", 12345678901234567890)),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[t for t, _ in VALID])
def test_valid_filters_parse(text: str, expected: Expr) -> None:
    result = parse_filter(text)
    assert result == expected
    assert repr(result) == repr(expected)  # also the value types (1 vs True vs 1.0)
    assert parse_filter(format_filter(result)) == result


def test_number_types() -> None:
    assert type(parse_filter("a eq 1").value) is int  # type: ignore[union-attr]
    assert type(parse_filter("a eq 1.0").value) is float  # type: ignore[union-attr]
    assert type(parse_filter("a eq true").value) is bool  # type: ignore[union-attr]


# (text, position in the detail, fragment of the detail)
MALFORMED: list[tuple[str, int, str]] = [
    ("", 0, "filter is empty"),
    ("   \t\n", 0, "filter is empty"),
    ("userName eq", 11, "expected a value"),
    ("a ne", 4, "got end of filter"),
    ('userName equals "x"', 9, "expected a comparison operator after 'userName', got 'equals'"),
    ('a "x"', 2, "comparison operator"),
    ("a", 1, "comparison operator"),
    ('userName eq "abc', 12, "unterminated string starting at position 12"),
    ('a eq "x\\', 5, "unterminated string"),
    ("(userName pr", 12, "')' to close '(' at position 0"),
    ("((a pr)", 7, "to close '(' at position 0"),
    ("userName pr)", 11, "unexpected ')'"),
    ('displayName eq "x") or (a pr', 18, "unexpected ')'"),
    ("()", 1, "expected an attribute path"),
    ("not userName pr", 4, "'not' must be followed by '('"),
    ("not", 3, "'not' must be followed by '('"),
    ("not ()", 5, "expected an attribute path"),
    ("userName pr xyz", 12, "unexpected 'xyz'"),
    ('title pr "x"', 9, "unexpected '\"x\"'"),
    ("a eq 1 2", 7, "unexpected '2'"),
    ('a eq "x"b pr', 8, "unexpected 'b'"),
    ("a pr .", 5, "unexpected '.'"),
    ("and", 0, "expected an attribute path, '(' or 'not', got 'and'"),
    ("or b pr", 0, "got 'or'"),
    ("a pr and", 8, "got end of filter"),
    ("a pr or or b pr", 8, "got 'or'"),
    ("[a pr]", 0, "got '['"),
    ('emails[type eq "work"', 21, "']' to close '[' at position 6"),
    ('emails[type eq "work"]]', 22, "unexpected ']'"),
    ("emails[]", 7, "expected an attribute path"),
    ('a[b[c eq "x"]]', 3, "cannot be nested"),
    ("name.givenName[x pr]", 14, "cannot follow sub-attribute path 'name.givenName'"),
    ("emails[x.y pr]", 7, "plain sub-attribute name, got 'x.y'"),
    (f"emails[{ENTERPRISE}:x pr]", 7, "plain sub-attribute name"),
    ('emails[type eq "w"].', 20, "expected a sub-attribute name after '.', got end of filter"),
    ('emails[type eq "w"].a.b eq 1', 20, "sub-attribute name"),
    ('emails[type eq "w"].value', 25, "comparison operator after 'value'"),
    ('emails[type eq "w"].value eq', 28, "expected a value"),
    ("a eq 01", 5, "invalid number '01'"),
    ("a eq 1.", 5, "invalid number '1.'"),
    ("a eq .5", 5, "got '.'"),
    ("a eq -", 5, "invalid number '-'"),
    ("a eq 1e", 5, "invalid number '1e'"),
    ("a eq 0x10", 5, "invalid number '0x10'"),
    ("a eq 1.2.3", 5, "invalid number"),
    ("a eq +1", 5, "unexpected character '+'"),
    ("a eq 1e999", 5, "out of range"),
    ("1abc eq 1", 0, "invalid number '1abc'"),
    ("a eq x", 5, "expected a value (string, number, true, false or null) after 'eq', got 'x'"),
    ("a eq (", 5, "expected a value"),
    ("a eq nul", 5, "expected a value"),
    ("a pr\x00", 4, "unexpected character '\\x00'"),
    ("a pr\u00a0and b pr", 4, "unexpected character '\\xa0'"),
    ("_a pr", 0, "unexpected character '_'"),
    ("#a pr", 0, "unexpected character '#'"),
    ('a eq "x\x01"', 7, "control character '\\x01'"),
    ('a eq "x\ny"', 7, "must be escaped"),
    ('a eq "\\q"', 6, "invalid escape '\\q'"),
    ('a eq "\\u12"', 6, "4 hex digits"),
    ('a eq "\\uZZZZ"', 6, "4 hex digits"),
    ('a eq "\\ud800"', 6, "high surrogate"),
    ('a eq "\\ud83d\\u0041"', 6, "high surrogate"),
    ('a eq "\\ud83dx"', 6, "high surrogate"),
    ('a eq "\\udc00"', 6, "low surrogate"),
    ("a..b pr", 0, "invalid attribute path 'a..b'"),
    ("a.b.c pr", 0, "invalid attribute path"),
    ("name. pr", 0, "invalid attribute path"),
    ("$foo pr", 0, "invalid attribute path"),
    ("a$ pr", 0, "invalid attribute path"),
    ("foo:bar pr", 0, "'foo' in 'foo:bar' is not a schema URN"),
    (f"{CORE_USER} pr", 0, "is a schema URN"),
    (f"{ENTERPRISE}: pr", 0, "invalid attribute path"),
    (f"{ENTERPRISE}:9x pr", 0, "invalid attribute path"),
]


@pytest.mark.parametrize(("text", "pos", "fragment"), MALFORMED, ids=[t for t, _, _ in MALFORMED])
def test_malformed_filters_are_rejected(text: str, pos: int, fragment: str) -> None:
    with pytest.raises(InvalidFilter) as info:
        parse_filter(text)
    detail = info.value.detail
    assert detail.startswith(f"invalid filter at position {pos}: "), detail
    assert fragment in detail
    assert info.value.to_body()["scimType"] == "invalidFilter"


def _reject(text: str, fragment: str, **limits: int) -> str:
    with pytest.raises(InvalidFilter) as info:
        parse_filter(text, **limits)
    assert fragment in info.value.detail, info.value.detail
    assert "at position " in info.value.detail
    return info.value.detail


def test_too_long() -> None:
    detail = _reject('a eq "' + "x" * 5000 + '"', "has 5007 characters, more than max_length=4096")
    assert "position 4096" in detail


def test_huge_input_rejected_fast() -> None:
    start = time.perf_counter()
    _reject("(" * 2_000_000, "max_length=4096")
    assert time.perf_counter() - start < 0.05


def test_exactly_max_length_is_accepted() -> None:
    text = 'a eq "' + "x" * (4096 - 7) + '"'
    assert len(text) == 4096
    assert parse_filter(text) == eq("a", "x" * 4089)


def test_deep_parentheses() -> None:
    detail = _reject("(" * 100 + "a pr" + ")" * 100, "max_depth=32")
    assert "position 32" in detail
    assert parse_filter("(" * 32 + "a pr" + ")" * 32) == pr("a")


def test_deep_not_chain() -> None:
    _reject("not (" * 100 + "a pr" + ")" * 100, "max_depth=32")


def test_brackets_count_toward_depth() -> None:
    _reject("(" * 32 + "e[v pr]" + ")" * 32, "max_depth=32")
    _reject("e[(v pr)]", "max_depth=1", max_depth=1)
    assert parse_filter("e[v pr]", max_depth=1) == ValuePath(p("e"), pr("v"))


def test_many_clauses() -> None:
    _reject(" or ".join(["a pr"] * 1000), "max_clauses=256", max_length=100_000)
    detail = _reject(" or ".join(["a pr"] * 300), "max_clauses=256")
    assert f"position {256 * 8}" in detail
    assert len(parse_filter(" or ".join(["a pr"] * 256)).items) == 256  # type: ignore[union-attr]


def test_entra_form_counts_both_clauses() -> None:
    _reject('e[t eq "w"].v eq "x"', "max_clauses=1", max_clauses=1)


def test_custom_limits() -> None:
    _reject("a pr", "max_length=3", max_length=3)
    _reject("((a pr))", "max_depth=1", max_depth=1)
    _reject("a pr and b pr", "max_clauses=1", max_clauses=1)


def test_huge_integer_beyond_int_conversion_limit() -> None:
    _reject("a eq " + "9" * 5000, "too many digits", max_length=10_000)


@pytest.mark.parametrize("bad", [None, b"a pr", 42, ["a pr"]])
def test_non_string_input(bad: object) -> None:
    _reject(bad, "filter must be a string")  # type: ignore[arg-type]


CANONICAL = [
    ('userName EQ "x" AND title Pr', 'userName eq "x" and title pr'),
    ("(a pr or b pr) and c pr", "(a pr or b pr) and c pr"),
    ("a pr or (b pr and c pr)", "a pr or b pr and c pr"),
    ("a pr or (b pr or c pr)", "a pr or b pr or c pr"),
    ("not(a pr)", "not (a pr)"),
    ('emails[type eq "work"].value eq "x"', 'emails[type eq "work" and value eq "x"]'),
    ('a eq "\\u00e9\\n\\"\\/"', 'a eq "é\\n\\"/"'),
    ("a eq 1E2", "a eq 100.0"),
    ("a eq -0.0", "a eq -0.0"),
    ("a eq TRUE or b eq Null", "a eq true or b eq null"),
    (f"{ENTERPRISE}:manager.value pr", f"{ENTERPRISE}:manager.value pr"),
]


@pytest.mark.parametrize(("text", "expected"), CANONICAL)
def test_format_filter_is_canonical(text: str, expected: str) -> None:
    assert format_filter(parse_filter(text)) == expected


def test_format_unflattened_ast() -> None:
    nested = And((And((pr("a"), pr("b"))), Or((pr("c"), And((pr("d"), pr("e")))))))
    text = format_filter(nested)
    assert text == "a pr and b pr and (c pr or d pr and e pr)"
    assert parse_filter(text) == And((pr("a"), pr("b"), Or((pr("c"), And((pr("d"), pr("e")))))))


def test_format_rejects_non_expressions() -> None:
    with pytest.raises(TypeError):
        format_filter(object())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "text", "key"),
    [
        (p("userName"), "userName", "username"),
        (p("name", "familyName"), "name.familyName", "name.familyname"),
        (p("department", urn=ENTERPRISE), f"{ENTERPRISE}:department", f"{ENTERPRISE}:department"),
        (p("manager", "value", ENTERPRISE), f"{ENTERPRISE}:manager.value", None),
        (p("", urn=ENTERPRISE), ENTERPRISE, ENTERPRISE),
    ],
)
def test_attr_path_text_and_key(path: AttrPath, text: str, key: str | None) -> None:
    assert str(path) == text
    assert path.key == (key or text).lower()


# --- hypothesis properties ---------------------------------------------------------------

FRAGMENTS = [
    "a", "b.c", "emails", "$ref", ENTERPRISE + ":x", "urn:x", "eq", "EQ", "co", "gt", "pr", "and",
    "AND", "or", "not", "true", "null", '"s"', '"\\u00e9"', '"\\', '"', "1", "-2.5e3", "01", "(",
    ")", "[", "]", ".", " ", "\t", "\x00", "&",
]  # fmt: skip


def _check_any(text: str) -> None:
    try:
        expr = parse_filter(text)
    except InvalidFilter as exc:
        assert exc.detail.startswith("invalid filter at position ")
        return
    assert parse_filter(format_filter(expr)) == expr


@settings(max_examples=300)
@given(st.text())
def test_any_text_parses_or_raises_invalid_filter(text: str) -> None:
    _check_any(text)


@settings(max_examples=500)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("".join))
def test_token_soup_parses_or_raises_invalid_filter(text: str) -> None:
    _check_any(text)


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=25).map(" ".join))
def test_spaced_token_soup_parses_or_raises_invalid_filter(text: str) -> None:
    _check_any(text)


_RESERVED = {"and", "or", "not"}
NAMES = st.one_of(
    st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,6}", fullmatch=True).filter(
        lambda n: n.lower() not in _RESERVED
    ),
    st.just("$ref"),
)
# a URN whose last segment is not a version, so "<urn>:<name>" is not a bare schema URN
URN_RE = r"urn:[a-z0-9]{1,4}(:[A-Za-z0-9._-]{1,4}){0,2}:[A-Za-z][A-Za-z0-9]{0,3}"
URNS = st.sampled_from([ENTERPRISE, CORE_USER]) | st.from_regex(URN_RE, fullmatch=True)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
OPS = st.sampled_from(sorted(OPERATORS))


def _flat(kind: type[And] | type[Or], items: list[Expr]) -> Expr:
    flat: list[Expr] = []
    for item in items:
        flat.extend(item.items if isinstance(item, kind) else (item,))
    return kind(tuple(flat))


def _leaves(paths: st.SearchStrategy[AttrPath]) -> st.SearchStrategy[Expr]:
    return st.one_of(st.builds(Compare, paths, OPS, VALUES), st.builds(Present, paths))


def _tree(leaf: st.SearchStrategy[Expr], depth: int) -> st.SearchStrategy[Expr]:
    if depth == 0:
        return leaf
    child = _tree(leaf, depth - 1)
    return st.one_of(
        leaf,
        st.builds(Not, child),
        st.lists(child, min_size=2, max_size=3).map(lambda xs: _flat(And, xs)),
        st.lists(child, min_size=2, max_size=3).map(lambda xs: _flat(Or, xs)),
    )


RELATIVE_PATHS = st.builds(AttrPath, st.none(), NAMES, st.none())
FULL_PATHS = st.builds(AttrPath, st.none() | URNS, NAMES, st.none() | NAMES)
VALUE_PATHS = st.builds(
    ValuePath,
    st.builds(AttrPath, st.none() | URNS, NAMES, st.none()),
    _tree(_leaves(RELATIVE_PATHS), 2),
)
EXPRS = _tree(st.one_of(_leaves(FULL_PATHS), VALUE_PATHS), 3)


@settings(max_examples=300)
@given(EXPRS)
def test_generated_asts_round_trip(expr: Expr) -> None:
    text = format_filter(expr)
    back = parse_filter(text, max_length=1_000_000, max_clauses=100_000)
    assert back == expr
    assert repr(back) == repr(expr)
    assert format_filter(back) == text
