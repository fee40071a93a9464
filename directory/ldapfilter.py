"""SCIM filter AST + mapping table → RFC 4515 LDAP filter.

Every value goes through ``escape_filter_chars``; attribute names come only from the
mapping table. A path that cannot be mapped, or an operator the LDAP attribute
cannot evaluate, raises ``InvalidFilter`` naming it: a clause is never dropped
(dropping one would widen the search).

Translation keeps constant truth values while it works (``True``/``False``), e.g.
``emails[type eq "home"]`` checked against the ``work`` row is ``False``; they fold
away before the string is built.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ldap3.utils.conv import escape_filter_chars

from directory.mapping import MappingError, ResourceMapping, Row, resolve_definition
from directory.sort import has_ordering
from scim.protocol.errors import InvalidFilter
from scim.protocol.filter import And, AttrPath, Compare, Expr, Not, Or, Present, ValuePath
from scim.protocol.patch import compare_values
from scim.protocol.schema import Attribute

Part = str | bool
#: Resolves a referenced SCIM id (manager, member, group) to a DN, or None.
Resolver = Callable[[str], "str | None"]

META = {"created": "createTimestamp", "lastmodified": "modifyTimestamp"}
_SUBSTRING = {"co": "*{}*", "sw": "{}*", "ew": "*{}"}


class UnknownAttribute(InvalidFilter):
    """The filter names an attribute that the resource type does not define."""


class Translator:
    """Translate filters for one resource type.

    ``unknown_is_false`` is for searches across resource types (``POST /.search``): a
    clause on an attribute this type does not define (``userName`` for Groups) is false
    here instead of an error, and its path is recorded in ``unknown``.
    """

    def __init__(self, mapping: ResourceMapping, object_class: str,
                 resolve: Resolver | None = None, hidden_member: str | None = None, *,
                 unknown_is_false: bool = False) -> None:
        self.mapping = mapping
        self.object_class = object_class
        self.resolve = resolve
        #: the empty-group placeholder: never a member as far as SCIM can tell
        self.hidden_member = hidden_member
        self.unknown_is_false = unknown_is_false
        self.unknown: set[str] = set()
        self.derived = {
            ldap.lower() for ldap in mapping.derived
        }

    def translate(self, expr: Expr) -> str:
        """The complete LDAP filter, ANDed with the resource's object class."""
        body = self._expr(expr)
        if body is True:
            return f"(objectClass={self.object_class})"
        if body is False:
            return "(!(objectClass=*))"
        return f"(&(objectClass={self.object_class}){body})"

    # -- structure ------------------------------------------------------------------

    def _expr(self, expr: Expr) -> Part:
        if isinstance(expr, And):
            return _and([self._expr(e) for e in expr.items])
        if isinstance(expr, Or):
            return _or([self._expr(e) for e in expr.items])
        if isinstance(expr, Not):
            return _not(self._expr(expr.expr))
        try:
            if isinstance(expr, ValuePath):
                return self._value_path(expr)
            return self._leaf(expr)
        except UnknownAttribute:
            if not self.unknown_is_false:
                raise
            self.unknown.add(_text(expr.path))
            return False

    def _leaf(self, expr: Compare | Present) -> Part:
        path = expr.path
        attr = path.attr.lower()
        if path.urn is None and attr == "id" and not path.sub:
            return self._compare("entryUUID", expr, "string", "id")
        if path.urn is None and attr == "meta":
            ldap = META.get((path.sub or "").lower())
            if ldap is None:
                raise InvalidFilter(f"meta.{path.sub} cannot be filtered")
            return self._compare(ldap, expr, "datetime", f"meta.{path.sub}")
        definition = self._definition(path)
        if definition.multi_valued:
            sub = path.sub or "value"
            inner = _relative(expr, sub)
            return _or([self._element(row_type, inner, definition.name, path)
                        for row_type in self._types(definition.name)])
        rows = self._rows(path)
        return _or([self._on_row(r, expr) for r in rows])

    def _value_path(self, expr: ValuePath) -> Part:
        definition = self._definition(expr.path)
        if not definition.multi_valued:
            raise InvalidFilter(f"{expr.path.attr!r} is not multi-valued; [filter] needs a list")
        return _or([self._element(t, expr.filter, definition.name, expr.path)
                    for t in self._types(definition.name)])

    # -- multi-valued elements ------------------------------------------------------

    def _types(self, attr: str) -> list[str]:
        types = [r.loc.type for r in self.mapping.rows if r.loc.attr == attr and r.loc.type]
        if not types:
            if attr in ("members", "groups"):
                return ["*"]
            raise InvalidFilter(f"{attr!r} cannot be filtered in this directory")
        return list(dict.fromkeys(t for t in types if t))

    def _element(self, etype: str, expr: Expr, attr: str, path: AttrPath) -> Part:
        """Truth of ``expr`` for the element of type ``etype`` (one LDAP attribute set)."""
        if isinstance(expr, And):
            return _and([self._element(etype, e, attr, path) for e in expr.items])
        if isinstance(expr, Or):
            return _or([self._element(etype, e, attr, path) for e in expr.items])
        if isinstance(expr, Not):
            return _not(self._element(etype, expr.expr, attr, path))
        if isinstance(expr, ValuePath):
            raise InvalidFilter("nested [filters] are not allowed")
        sub = (expr.path.sub or expr.path.attr).lower()
        if attr in ("members", "groups"):
            return self._reference_element(attr, sub, expr)
        if sub == "type":
            return self._static_type(etype, expr, attr)
        if sub == "primary":
            return self._primary(etype, expr, attr)
        definition = self._definition(AttrPath(None, attr, None))
        if definition.sub(sub) is None:
            raise InvalidFilter(f"{attr} has no sub-attribute {sub!r}")
        row = next((r for r in self.mapping.rows if r.loc.attr == attr and
                    r.loc.type == etype and (r.loc.sub or "").lower() == sub), None)
        negated = isinstance(expr, Compare) and expr.op == "ne"
        if row is None:  # a sub-attribute this directory never stores: no element has it
            return self._exists(etype, attr) if negated else False
        part = self._on_row(row, expr)
        # eq/co/… on the row already implies the element exists; ne does not
        return _and([self._exists(etype, attr), part]) if negated else part

    def _exists(self, etype: str, attr: str) -> Part:
        rows = [r for r in self.mapping.rows if r.loc.attr == attr and r.loc.type == etype]
        return _or([f"({r.ldap}=*)" for r in rows])

    def _static_type(self, etype: str, expr: Compare | Present, attr: str) -> Part:
        if isinstance(expr, Present):
            return self._exists(etype, attr)
        if not isinstance(expr.value, str):
            raise InvalidFilter(f"{attr}.type must be compared with a string")
        return _and([self._exists(etype, attr), compare_values(expr.op, etype, expr.value, False)])

    def _primary(self, etype: str, expr: Compare | Present, attr: str) -> Part:
        flag = f"(scimPrimary={escape_filter_chars(f'{attr}={etype}')})"
        if isinstance(expr, Present):
            return flag
        if expr.op not in ("eq", "ne") or not isinstance(expr.value, bool):
            raise InvalidFilter(f"{attr}.primary supports only eq/ne with true or false")
        truth = expr.value == (expr.op == "eq")
        return _and([self._exists(etype, attr), flag if truth else _not(flag)])

    def _reference_element(self, attr: str, sub: str, expr: Compare | Present) -> Part:
        ldap = "member" if attr == "members" else "memberOf"
        if sub != "value":
            raise InvalidFilter(f"{attr}.{sub} cannot be filtered; use {attr}.value")
        return self._reference(ldap, expr, attr)

    # -- leaves ---------------------------------------------------------------------

    def _definition(self, path: AttrPath) -> Attribute:
        try:
            return resolve_definition(self.mapping.rtype, path.urn, path.attr)[1]
        except MappingError:
            raise UnknownAttribute(f"unknown attribute {_text(path)!r} in filter") from None

    def _rows(self, path: AttrPath) -> list[Row]:
        urn = None
        if path.urn and path.urn.lower() != self.mapping.rtype.schema.id.lower():
            ext = self.mapping.rtype.extension(path.urn)
            urn = ext.id if ext else path.urn
        rows = [r for r in self.mapping.rows if r.loc.urn == urn
                and r.loc.attr.lower() == path.attr.lower()
                and (r.loc.sub or "").lower() == (path.sub or "").lower()
                and r.codec != "password"]
        if not rows and path.sub is None:
            rows = [r for r in self.mapping.rows if r.loc.urn == urn
                    and r.loc.attr.lower() == path.attr.lower() and r.codec == "reference"]
        if not rows:
            raise InvalidFilter(f"{_text(path)!r} cannot be filtered in this directory")
        return rows

    def _on_row(self, row: Row, expr: Compare | Present) -> Part:
        if row.codec == "reference":
            return self._reference(row.ldap, expr, row.loc.text)
        part = self._compare(row.ldap, expr, row.codec, row.loc.text)
        if row.ldap.lower() in self.derived and part is not False:
            return _and([part, f"(!(scimDerived={row.ldap}))"])
        return part

    def _reference(self, ldap: str, expr: Compare | Present, name: str) -> Part:
        if isinstance(expr, Present):
            if ldap == "member" and self.hidden_member:
                hidden = escape_filter_chars(self.hidden_member)
                return f"(&(member=*)(!(member={hidden})))"
            return f"({ldap}=*)"
        if expr.op not in ("eq", "ne") or not isinstance(expr.value, str):
            raise InvalidFilter(f"{name} supports only eq/ne with an id (a string)")
        dn = self.resolve(expr.value) if self.resolve else None
        part: Part = f"({ldap}={escape_filter_chars(dn)})" if dn else False
        return part if expr.op == "eq" else _not(part)

    def _compare(self, ldap: str, expr: Compare | Present, codec: str, name: str) -> Part:
        """``ldap`` compared as ``expr`` says; ``name`` is the SCIM path for errors."""
        if isinstance(expr, Present):
            return f"({ldap}=*)"
        op, value = expr.op, expr.value
        if value is None:
            if op in ("eq", "ne"):
                return _not(f"({ldap}=*)") if op == "eq" else f"({ldap}=*)"
            raise InvalidFilter(f"{name} {op} null: only eq and ne compare with null")
        text = self._literal(value, codec, op, name)
        if op in _SUBSTRING:
            if codec != "string" or ldap.lower() == "entryuuid":
                raise InvalidFilter(f"{name} {op}: {op} needs a string attribute; "
                                    f"{name} is not one")
            if not text:  # every value contains "" (and "**" is no LDAP substring filter)
                return f"({ldap}=*)"
            return f"({ldap}={_SUBSTRING[op].format(text)})"
        if not text and codec == "string":  # an LDAP string is never empty (RFC 4517)
            return op == "ne"
        if op == "eq":
            return f"({ldap}={text})"
        if op == "ne":
            return f"(!({ldap}={text}))"
        if not has_ordering(ldap):
            raise InvalidFilter(f"{name} {op}: {name} has no ordering in the directory, so "
                                "gt/ge/lt/le cannot be evaluated; use eq, ne, co, sw, ew or pr")
        return {"ge": f"({ldap}>={text})", "le": f"({ldap}<={text})",
                "gt": f"(&({ldap}>={text})(!({ldap}={text})))",
                "lt": f"(&({ldap}<={text})(!({ldap}={text})))"}[op]

    @staticmethod
    def _literal(value: object, codec: str, op: str, name: str) -> str:
        if codec == "boolean":
            if not isinstance(value, bool) or op not in ("eq", "ne"):
                raise InvalidFilter(f"{name} {op}: {name} is a boolean; it supports only eq "
                                    "and ne with true or false")
            return "TRUE" if value else "FALSE"
        if codec == "datetime":
            return _generalized_time(value, name)
        if isinstance(value, bool):
            raise InvalidFilter(f"{name} holds strings; compare it with a string")
        return escape_filter_chars(str(value))


def _generalized_time(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidFilter(f"{name} is a date-time: compare it with a string like "
                            "\"2026-01-05T10:00:00Z\"")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is not None:
            from datetime import UTC

            parsed = parsed.astimezone(UTC)  # OverflowError near year 1 or 9999
    except (ValueError, OverflowError):
        raise InvalidFilter(f"{name}: {value!r} is not an RFC 3339 date-time") from None
    return f"{parsed.year:04d}{parsed:%m%d%H%M%S}Z"  # %Y is not zero-padded below 1000


def _relative(expr: Compare | Present, sub: str) -> Compare | Present:
    rel = AttrPath(None, sub, None)
    if isinstance(expr, Present):
        return Present(rel)
    return Compare(rel, expr.op, expr.value)


def _text(path: AttrPath) -> str:
    base = f"{path.urn}:{path.attr}" if path.urn else path.attr
    return f"{base}.{path.sub}" if path.sub else base


def _and(parts: list[Part]) -> Part:
    if any(p is False for p in parts):
        return False
    rest = [p for p in parts if p is not True]
    if not rest:
        return True
    return rest[0] if len(rest) == 1 else "(&" + "".join(str(p) for p in rest) + ")"


def _or(parts: list[Part]) -> Part:
    if any(p is True for p in parts):
        return True
    rest = [p for p in parts if p is not False]
    if not rest:
        return False
    return rest[0] if len(rest) == 1 else "(|" + "".join(str(p) for p in rest) + ")"


def _not(part: Part) -> Part:
    if isinstance(part, bool):
        return not part
    return f"(!{part})"
