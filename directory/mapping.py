"""The SCIM <-> LDAP attribute mapping: data (``mapping.toml``) plus paired codecs.

LDAP attribute names of SCIM data appear only in the mapping table. ``to_ldap`` and
``from_ldap`` are inverse for every value the table can hold; anything a resource
carries that the table cannot hold is refused (never silently dropped).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scim.protocol.errors import InvalidValue
from scim.protocol.schema import (
    EXTERNAL_ID,
    GROUP,
    USER,
    Attribute,
    ResourceType,
    common_attribute,
)

DEFAULT_TABLE = Path(__file__).with_name("mapping.toml")
CODECS = ("string", "boolean", "password", "reference")
_PATH = re.compile(
    r"^(?:(?P<urn>urn:[^\s\[\]]+):)?(?P<attr>[A-Za-z][\w$-]*)"
    r'(?:\[type eq "(?P<type>[^"]+)"\])?(?:\.(?P<sub>[A-Za-z$][\w-]*))?$'
)
#: Sub-attributes of multi-valued elements that are structure, not stored values.
_STRUCTURAL = {"type", "primary", "display", "$ref"}


class MappingError(ValueError):
    """The mapping table is invalid (raised at start-up)."""


@dataclass(frozen=True)
class Locator:
    """Where a value lives in a SCIM resource (canonical names)."""

    urn: str | None
    attr: str
    type: str | None
    sub: str | None

    @property
    def text(self) -> str:
        base = f"{self.urn}:{self.attr}" if self.urn else self.attr
        if self.type:
            base += f'[type eq "{self.type}"]'
        return f"{base}.{self.sub}" if self.sub else base


@dataclass(frozen=True)
class Row:
    """One mapping row: a SCIM location stored in one LDAP attribute."""

    loc: Locator
    ldap: str
    codec: str
    definition: Attribute


def resolve_definition(rtype: ResourceType, urn: str | None,
                       attr: str) -> tuple[str | None, Attribute]:
    """The canonical container URN (None = core) and definition of ``attr``."""
    if urn is None or urn.lower() == rtype.schema.id.lower():
        found = rtype.schema.attribute(attr) or common_attribute(attr)
        return None, _need(found, attr)
    ext = rtype.extension(urn)
    if ext is None:
        raise MappingError(f"unknown schema {urn!r}")
    return ext.id, _need(ext.attribute(attr), attr)


def _need(found: Attribute | None, name: str) -> Attribute:
    if found is None:
        raise MappingError(f"unknown SCIM attribute {name!r}")
    return found


def parse_locator(text: str, rtype: ResourceType) -> tuple[Locator, Attribute]:
    """Parse a mapping-table path into a canonical locator and its definition."""
    m = _PATH.match(text)
    if not m:
        raise MappingError(f"bad SCIM path {text!r}")
    urn, attr = resolve_definition(rtype, m["urn"], m["attr"])
    leaf = attr
    sub = None
    if m["sub"]:
        found = attr.sub(m["sub"])
        if found is None:
            raise MappingError(f"unknown sub-attribute in {text!r}")
        sub, leaf = found.name, found
    if attr.multi_valued != bool(m["type"]):
        raise MappingError(f"{text!r}: multi-valued attributes need [type eq \"…\"], others not")
    return Locator(urn, attr.name, m["type"], sub), leaf


class ResourceMapping:
    """The mapping of one resource type."""

    def __init__(self, rtype: ResourceType, table: dict[str, Any]) -> None:
        self.rtype = rtype
        self.object_classes: list[str] = list(table.get("object_classes", []))
        rows: list[Row] = []
        for path, spec in table.get("attributes", {}).items():
            ldap, codec = (spec, "string") if isinstance(spec, str) else (
                spec.get("ldap"), spec.get("codec", "string"))
            if not isinstance(ldap, str) or codec not in CODECS:
                raise MappingError(f"{path!r}: need ldap = \"attr\" and codec in {CODECS}")
            loc, leaf = parse_locator(path, rtype)
            rows.append(Row(loc, ldap, codec, leaf))
        self.rows = tuple(rows)
        self.derived: dict[str, list[Locator]] = {
            ldap: [parse_locator(p, rtype)[0] for p in paths]
            for ldap, paths in table.get("derived", {}).items()
        }
        rdn_loc = parse_locator(table.get("rdn", ""), rtype)[0]
        self.rdn = self.row_for(rdn_loc)
        if not self.object_classes or self.rdn is None:
            raise MappingError(f"{rtype.name}: object_classes and a mapped rdn are required")

    def row_for(self, loc: Locator) -> Row | None:
        return next((r for r in self.rows if r.loc == loc), None)

    @property
    def references(self) -> list[Row]:
        """Rows whose LDAP value is the DN of another entry (e.g. the manager)."""
        return [r for r in self.rows if r.codec == "reference"]

    def row_for_attr(self, attr: str) -> Row | None:
        """The row of a simple core attribute (e.g. ``active``)."""
        return next((r for r in self.rows if r.loc.urn is None and r.loc.attr == attr
                     and r.loc.sub is None and r.loc.type is None), None)

    def rows_for(self, urn: str | None, attr: str) -> list[Row]:
        return [r for r in self.rows if r.loc.urn == urn and r.loc.attr.lower() == attr.lower()]

    @property
    def ldap_attributes(self) -> list[str]:
        """LDAP attributes to read for a full resource (never the password)."""
        names = [r.ldap for r in self.rows if r.codec != "password"]
        return [*dict.fromkeys([*names, "scimDerived", "scimPrimary"])]

    # -- SCIM -> LDAP ---------------------------------------------------------------

    def to_ldap(
        self, resource: dict[str, Any], password_scheme: str = "SSHA512"
    ) -> tuple[dict[str, list[str]], dict[str, str]]:
        """Attributes to store, and reference ids to resolve (ldap attr -> SCIM id)."""
        out: dict[str, list[str]] = {}
        refs: dict[str, str] = {}
        primary: list[str] = []
        for urn, attr, value in _leaves(resource, self.rtype):
            self._place(urn, attr, value, out, refs, primary, password_scheme)
        derived = []
        for ldap, sources in self.derived.items():
            if ldap in out:
                continue
            value = next((v for v in (_get(resource, s) for s in sources) if v), None)
            if value is None:
                raise InvalidValue(f"cannot derive LDAP {ldap!r}: none of its sources is set")
            out[ldap] = [str(value)]
            derived.append(ldap)
        if derived:
            out["scimDerived"] = derived
        if primary:
            out["scimPrimary"] = primary
        return out, refs

    def _place(self, urn, attr, value, out, refs, primary, scheme) -> None:
        rows = self.rows_for(urn, attr.name)
        if attr.multi_valued:
            self._place_multi(attr, value, out, primary)
            return
        if attr.type == "complex":
            for sub_name, sub_value in value.items():
                row = next((r for r in rows if r.loc.sub == sub_name), None)
                if row is None:
                    if (attr.sub(sub_name) or attr).mutability == "readOnly":
                        continue
                    raise InvalidValue(f"{_name(urn, attr.name)}.{sub_name} cannot be stored "
                                       "in this directory (not in the attribute mapping)")
                _encode(row, sub_value, out, refs, scheme)
            return
        row = next((r for r in rows if r.loc.sub is None), None)
        if row is None:
            raise InvalidValue(f"{_name(urn, attr.name)} cannot be stored in this directory "
                               "(not in the attribute mapping)")
        _encode(row, value, out, refs, scheme)

    def _place_multi(self, attr: Attribute, elements: list[Any], out, primary) -> None:
        rows = self.rows_for(None, attr.name)
        types = list(dict.fromkeys(r.loc.type for r in rows))
        seen: set[str] = set()
        for element in elements:
            etype = element.get("type") or next((t for t in types if t not in seen), None)
            if etype not in types:
                raise InvalidValue(
                    f"{attr.name} of type {element.get('type')!r} cannot be stored; "
                    f"supported types: {', '.join(str(t) for t in types)}")
            if etype in seen:
                raise InvalidValue(f"{attr.name}: at most one value of type {etype!r}")
            seen.add(etype)
            stored = False
            for sub_name, sub_value in element.items():
                if sub_name in _STRUCTURAL or sub_value is None:
                    continue
                row = next((r for r in rows if r.loc.type == etype and r.loc.sub == sub_name),
                           None)
                if row is None:
                    raise InvalidValue(f'{attr.name}[type eq "{etype}"].{sub_name} cannot be '
                                       "stored in this directory (not in the attribute mapping)")
                _encode(row, sub_value, out, {}, "")
                stored = stored or row.ldap in out
            # false is kept too (exact round trip); an element without values has no flag
            if stored and element.get("primary") is not None:
                flag = f"{attr.name}={etype}"
                primary.append(flag if element["primary"] else f"{flag}:false")

    # -- LDAP -> SCIM ---------------------------------------------------------------

    def from_ldap(
        self, attrs: dict[str, list[Any]], refs: dict[str, dict[str, str]] | None = None
    ) -> dict[str, Any]:
        """Build the SCIM resource (without id/meta) from lower-cased LDAP attributes."""
        resource: dict[str, Any] = {}
        derived = {d.lower() for d in attrs.get("scimderived", [])}
        for row in self.rows:
            values = attrs.get(row.ldap.lower())
            if not values or row.codec == "password" or row.ldap.lower() in derived:
                continue
            value = _decode(row, values[0], refs or {})
            if value is not None:
                _put(resource, row.loc, value)
        for flag in attrs.get("scimprimary", []):
            name, _, etype = str(flag).partition("=")
            etype, _, negative = etype.partition(":")
            for element in resource.get(name, []):
                if element.get("type") == etype:
                    element["primary"] = not negative
        return resource


def _name(urn: str | None, attr: str) -> str:
    return f"{urn}:{attr}" if urn else attr


def _leaves(resource: dict[str, Any], rtype: ResourceType):
    """(urn, definition, value) for every stored attribute of a validated resource."""
    for key, value in resource.items():
        ext = rtype.extension(key)
        if ext is not None:
            for sub_key, sub_value in value.items():
                definition = ext.attribute(sub_key)
                if definition is not None and definition.mutability != "readOnly":
                    yield ext.id, definition, sub_value
            continue
        definition = rtype.schema.attribute(key)
        if key in ("id", "meta", "schemas") or definition is None:
            continue
        if definition.mutability == "readOnly":
            continue
        yield None, definition, value
    ext_id = resource.get("externalId")
    if ext_id is not None:
        yield None, EXTERNAL_ID, ext_id


def _encode(row: Row, value: Any, out: dict[str, list[str]], refs: dict[str, str],
            scheme: str) -> None:
    if value is None or value == "":
        return
    if row.codec == "boolean":
        out[row.ldap] = ["TRUE" if value else "FALSE"]
    elif row.codec == "password":
        out[row.ldap] = [hash_password(str(value), scheme)]
    elif row.codec == "reference":
        refs[row.ldap] = str(value)
    else:
        out[row.ldap] = [str(value)]


def _decode(row: Row, raw: Any, refs: dict[str, dict[str, str]]) -> Any:
    if row.codec == "boolean":
        return str(raw).upper() == "TRUE"
    if row.codec == "reference":
        target = refs.get(str(raw))  # keyed by the value as stored (see reference_index)
        return target["id"] if target else None
    return raw if isinstance(raw, str) else str(raw)


def _get(resource: dict[str, Any], loc: Locator) -> Any:
    container = resource.get(loc.urn, {}) if loc.urn else resource
    value = container.get(loc.attr)
    if loc.type is not None:
        value = next((e for e in value or [] if e.get("type") == loc.type), None)
    if loc.sub is not None:
        value = value.get(loc.sub) if isinstance(value, dict) else None
    return value


def _put(resource: dict[str, Any], loc: Locator, value: Any) -> None:
    container = resource.setdefault(loc.urn, {}) if loc.urn else resource
    if loc.type is None:
        if loc.sub is None:
            container[loc.attr] = value
        else:
            container.setdefault(loc.attr, {})[loc.sub] = value
        return
    elements = container.setdefault(loc.attr, [])
    element = next((e for e in elements if e.get("type") == loc.type), None)
    if element is None:
        element = {"type": loc.type}
        elements.append(element)
    element[loc.sub or "value"] = value


def hash_password(password: str, scheme: str = "SSHA512") -> str:
    """RFC 2307-style salted hash that OpenLDAP verifies on bind."""
    salt = secrets.token_bytes(16)
    algo = hashlib.sha512 if scheme == "SSHA512" else hashlib.sha1
    digest = algo(password.encode("utf-8") + salt).digest()
    return "{" + scheme + "}" + base64.b64encode(digest + salt).decode("ascii")


@dataclass(frozen=True)
class Mapping:
    """Mappings of all resource types."""

    user: ResourceMapping
    group: ResourceMapping


def load_mapping(path: str | Path | None = None) -> Mapping:
    """Load and validate the table (the default, or an operator's replacement)."""
    source = Path(path) if path else DEFAULT_TABLE
    try:
        table = tomllib.loads(source.read_text(encoding="utf-8"))
        return Mapping(ResourceMapping(USER, table["user"]), ResourceMapping(GROUP, table["group"]))
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise MappingError(f"{source}: {exc}") from None
