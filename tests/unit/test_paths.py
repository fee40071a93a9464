"""Tests for PATCH paths (RFC 7644 §3.5.2) and attribute lists (RFC 7644 §3.4.2.5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scim.protocol.errors import InvalidPath, InvalidValue
from scim.protocol.filter import And, AttrPath, Compare, Or, Present
from scim.protocol.paths import PatchPath, parse_attribute_list, parse_patch_path

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def p(attr: str, sub: str | None = None, urn: str | None = None) -> AttrPath:
    return AttrPath(urn, attr, sub)


def eq(attr: str, value: str | bool) -> Compare:
    return Compare(p(attr), "eq", value)


VALID: list[tuple[str, PatchPath]] = [
    ("title", PatchPath(p("title"))),
    ("  title  ", PatchPath(p("title"))),
    ("name.givenName", PatchPath(p("name", "givenName"))),
    ("members", PatchPath(p("members"))),
    ("manager.$ref", PatchPath(p("manager", "$ref"))),
    ('emails[type eq "work"].value', PatchPath(p("emails"), eq("type", "work"), "value")),
    ('emails [ type eq "work" ] . value', PatchPath(p("emails"), eq("type", "work"), "value")),
    ('members[value eq "id"]', PatchPath(p("members"), eq("value", "id"))),
    (
        'members[value eq "a" or value eq "b"]',
        PatchPath(p("members"), Or((eq("value", "a"), eq("value", "b")))),
    ),
    (
        'emails[type eq "work" and primary eq true].display',
        PatchPath(p("emails"), And((eq("type", "work"), eq("primary", True))), "display"),
    ),
    ("emails[value pr]", PatchPath(p("emails"), Present(p("value")))),
    (
        'addresses[type eq "work"].postalCode',
        PatchPath(p("addresses"), eq("type", "work"), "postalCode"),
    ),
    (f"{ENTERPRISE}:manager", PatchPath(p("manager", urn=ENTERPRISE))),
    (f"{ENTERPRISE}:manager.value", PatchPath(p("manager", "value", ENTERPRISE))),
    (f"{ENTERPRISE}:department", PatchPath(p("department", urn=ENTERPRISE))),
    (f"{CORE_USER}:userName", PatchPath(p("userName", urn=CORE_USER))),
    (
        f'{CORE_USER}:emails[type eq "work"].value',
        PatchPath(p("emails", urn=CORE_USER), eq("type", "work"), "value"),
    ),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[t for t, _ in VALID])
def test_valid_paths(text: str, expected: PatchPath) -> None:
    assert parse_patch_path(text) == expected


# (text, position in the detail, fragment of the detail)
MALFORMED: list[tuple[str, int, str]] = [
    ("", 0, "path is empty"),
    ("   ", 0, "path is empty"),
    ("(title)", 0, "expected an attribute path, got '('"),
    ('"title"', 0, "expected an attribute path"),
    ("title extra", 6, "unexpected 'extra', expected '[' or end of path"),
    ("title pr", 6, "unexpected 'pr'"),
    ("a..b", 0, "invalid attribute path 'a..b'"),
    ("name.givenName.x", 0, "invalid attribute path"),
    ("_x", 0, "unexpected character '_'"),
    ("title\x00", 5, "unexpected character '\\x00'"),
    ('emails[type eq "work"', 21, "']' to close '[' at position 6"),
    ('emails[type eq "work"].', 23, "expected a sub-attribute name after '.', got end of path"),
    ('emails[type eq "work"].value.x', 23, "sub-attribute name"),
    ('emails[type eq "work"] value', 23, "expected '.subAttribute' or end of path"),
    ('emails[type eq "w"].value[x pr]', 25, "unexpected '[', expected end of path"),
    ('emails[type equals "x"]', 12, "comparison operator after 'type', got 'equals'"),
    ("emails[type eq ]", 15, "expected a value"),
    ('emails[type eq "x]', 15, "unterminated string"),
    ("emails[]", 7, "expected an attribute path"),
    ("emails[a[b pr]]", 8, "cannot be nested"),
    ('name.givenName[type eq "x"]', 14, "cannot follow sub-attribute path"),
    ("emails[a.b pr]", 7, "plain sub-attribute name"),
    (ENTERPRISE, 0, "is a schema URN"),
    ("foo:bar", 0, "is not a schema URN"),
]


@pytest.mark.parametrize(("text", "pos", "fragment"), MALFORMED, ids=[t for t, _, _ in MALFORMED])
def test_malformed_paths(text: str, pos: int, fragment: str) -> None:
    with pytest.raises(InvalidPath) as info:
        parse_patch_path(text)
    detail = info.value.detail
    assert detail.startswith(f"invalid path at position {pos}: "), detail
    assert fragment in detail
    assert info.value.to_body()["scimType"] == "invalidPath"


def test_path_limits() -> None:
    with pytest.raises(InvalidPath, match="max_length=4096"):
        parse_patch_path("a" * 5000)
    with pytest.raises(InvalidPath, match="max_depth=32"):
        parse_patch_path("e[" + "(" * 40 + "v pr" + ")" * 40 + "]")
    with pytest.raises(InvalidPath, match="max_clauses=2"):
        parse_patch_path("e[a pr or b pr or c pr]", max_clauses=2)
    with pytest.raises(InvalidPath, match="must be a string"):
        parse_patch_path(None)  # type: ignore[arg-type]


@given(st.text())
def test_any_text_gives_a_path_or_invalid_path(text: str) -> None:
    try:
        result = parse_patch_path(text)
    except InvalidPath as exc:
        assert exc.detail.startswith("invalid path at position ")
    else:
        assert isinstance(result, PatchPath)


ATTRIBUTE_LISTS: list[tuple[str, list[AttrPath]]] = [
    ("", []),
    ("   ", []),
    ("members", [p("members")]),
    ("name.familyName", [p("name", "familyName")]),
    ("userName,displayName", [p("userName"), p("displayName")]),
    (" userName , name.givenName ,\temails ", [p("userName"), p("name", "givenName"), p("emails")]),
    ("members.$ref", [p("members", "$ref")]),
    (f"{ENTERPRISE}:manager", [p("manager", urn=ENTERPRISE)]),
    (f"{ENTERPRISE}:manager.value", [p("manager", "value", ENTERPRISE)]),
    (ENTERPRISE, [p("", urn=ENTERPRISE)]),
    (f"userName,{ENTERPRISE}", [p("userName"), p("", urn=ENTERPRISE)]),
    (CORE_USER, [p("", urn=CORE_USER)]),
    (f"{CORE_USER}:userName", [p("userName", urn=CORE_USER)]),
]


@pytest.mark.parametrize(("text", "expected"), ATTRIBUTE_LISTS)
def test_attribute_lists(text: str, expected: list[AttrPath]) -> None:
    assert parse_attribute_list(text) == expected


BAD_ATTRIBUTE_LISTS: list[tuple[str, int, str]] = [
    ("a,,b", 2, "empty attribute name"),
    ("a,", 2, "empty attribute name"),
    (",a", 0, "empty attribute name"),
    ("a b", 0, "invalid attribute path 'a b'"),
    ("userName, name.x.y", 10, "invalid attribute path 'name.x.y'"),
    ("1abc", 0, "invalid attribute path"),
    ("foo:bar", 0, "is not a schema URN"),
    ('emails[type eq "work"]', 0, "invalid attribute path"),
    ("a\x00", 0, "invalid attribute path"),
]


@pytest.mark.parametrize(("text", "pos", "fragment"), BAD_ATTRIBUTE_LISTS)
def test_bad_attribute_lists(text: str, pos: int, fragment: str) -> None:
    with pytest.raises(InvalidValue) as info:
        parse_attribute_list(text)
    detail = info.value.detail
    assert detail.startswith(f"invalid attribute list at position {pos}: "), detail
    assert fragment in detail
    assert info.value.to_body()["scimType"] == "invalidValue"


def test_attribute_list_limits() -> None:
    with pytest.raises(InvalidValue, match="max_length=10"):
        parse_attribute_list("a" * 11, max_length=10)
    with pytest.raises(InvalidValue, match="must be a string"):
        parse_attribute_list(["a"])  # type: ignore[arg-type]


@given(st.text())
def test_any_text_gives_attributes_or_invalid_value(text: str) -> None:
    try:
        result = parse_attribute_list(text)
    except InvalidValue as exc:
        assert exc.detail.startswith("invalid attribute list at position ")
    else:
        assert all(isinstance(item, AttrPath) for item in result)
