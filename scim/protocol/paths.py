"""PATCH paths (RFC 7644 §3.5.2, Figure 7) and ``attributes`` lists (RFC 7644 §3.4.2.5, §3.9).

``PATH = attrPath / valuePath [subAttr]`` is parsed with the filter tokenizer and parser of
``scim.protocol.filter``, so names, URNs and value filters follow exactly the same rules.

Representation of a PATCH path as ``PatchPath(attr, value_filter, sub)``:

* ``title`` → ``PatchPath(AttrPath(None, "title"), None, None)``
* ``name.givenName`` → ``PatchPath(AttrPath(None, "name", "givenName"), None, None)``: a dotted
  path without brackets keeps its sub-attribute in ``attr.sub``;
* ``emails[type eq "work"].value`` → ``PatchPath(AttrPath(None, "emails"), <filter>, "value")``:
  the sub-attribute after ``]`` is ``PatchPath.sub`` (then ``attr.sub`` is always None);
* ``urn:...:enterprise:2.0:User:manager.value`` → ``attr = AttrPath(<urn>, "manager", "value")``.

So at most one of ``attr.sub`` and ``sub`` is set. Bad paths raise ``InvalidPath`` (also for a
malformed filter inside the brackets) with detail ``invalid path at position N: <what>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from scim.protocol.errors import InvalidPath, InvalidValue
from scim.protocol.filter import (
    AttrPath,
    Expr,
    _attr_path,
    _check_text,
    _is_schema_urn,
    _Parser,
    _SyntaxError,
)

_SPACE = " \t\r\n"


@dataclass(frozen=True, slots=True)
class PatchPath:
    """A parsed PATCH ``path``; see the module docstring for which field holds what."""

    attr: AttrPath
    value_filter: Expr | None = None
    sub: str | None = None


def parse_patch_path(
    text: str, *, max_length: int = 4096, max_depth: int = 32, max_clauses: int = 256
) -> PatchPath:
    """Parse a PATCH operation ``path``; raise ``InvalidPath`` (and nothing else) if malformed."""
    try:
        _check_text(text, max_length, "path")
        return _patch_path(_Parser(text, "path", max_depth, max_clauses))
    except _SyntaxError as exc:
        raise InvalidPath(exc.detail("path")) from None


def _patch_path(parser: _Parser) -> PatchPath:
    token = parser.take()
    if token.kind == "eof":
        raise _SyntaxError(0, "path is empty")
    if token.kind != "word":
        raise _SyntaxError(token.pos, f"expected an attribute path, got {parser.got(token)}")
    attr = parser.attr_path(token)
    if parser.peek().kind != "[":
        parser.expect_end("'[' or ")
        return PatchPath(attr)
    value_filter = parser.bracket_filter(attr)
    sub = parser.sub_attr().text if parser.peek().kind == "." else None
    parser.expect_end("'.subAttribute' or " if sub is None else "")
    return PatchPath(attr, value_filter, sub)


def parse_attribute_list(text: str, *, max_length: int = 4096) -> list[AttrPath]:
    """Parse ``attributes`` / ``excludedAttributes``: comma-separated attribute paths.

    Items may be ``name``, ``name.sub``, URN-qualified (``urn:...:User:manager``) or a bare
    schema URN (``urn:...:enterprise:2.0:User``), which means the whole extension and is
    returned as ``AttrPath(urn=<urn>, attr="", sub=None)``. Spaces around items are ignored;
    blank text gives ``[]``. Bad items raise ``InvalidValue`` with the item's position.
    """
    try:
        _check_text(text, max_length, "attribute list")
        return [_list_item(item, pos) for item, pos in _items(text)] if text.strip() else []
    except _SyntaxError as exc:
        raise InvalidValue(exc.detail("attribute list")) from None


def _items(text: str) -> list[tuple[str, int]]:
    items: list[tuple[str, int]] = []
    pos = 0
    for part in text.split(","):
        items.append((part.strip(_SPACE), pos + len(part) - len(part.lstrip(_SPACE))))
        pos += len(part) + 1
    return items


def _list_item(item: str, pos: int) -> AttrPath:
    if not item:
        raise _SyntaxError(pos, "empty attribute name (stray ',')")
    if _is_schema_urn(item):
        return AttrPath(item, "")
    return _attr_path(item, pos)
