"""Helpers of the user contract tests (test_users*.py): read LDAP back with plain ldap3."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from ldap3 import BASE, SUBTREE, Connection, Server
from ldap3.utils.conv import escape_filter_chars

from tests import entra
from tests.slapd_instance import SlapdInstance

ENTERPRISE = entra.ENTERPRISE
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
ABSENT_ID = "2ceef03a-7f80-1041-899b-d98a394b6a36"
LOCKED = "000001010000Z"


def people(base_dn: str) -> str:
    return f"ou=People,{base_dn}"


def placeholder(base_dn: str) -> str:
    return f"cn=empty-group-placeholder,ou=Service,{base_dn}"


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.hex()


def _as_dict(response_entry: dict[str, Any]) -> dict[str, list[str]]:
    raw = response_entry["raw_attributes"]
    return {k.lower(): [_text(v) for v in values] for k, values in raw.items()}


class LdapUser:
    """A user entry as slapd holds it: DN and lower-cased attributes, values as text."""

    def __init__(self, dn: str, attrs: dict[str, list[str]]) -> None:
        self.dn = dn
        self.attrs = attrs

    def get(self, name: str) -> list[str]:
        return self.attrs.get(name.lower(), [])

    def one(self, name: str) -> str | None:
        values = self.get(name)
        assert len(values) <= 1, f"{name} has several values: {values}"
        return values[0] if values else None

    def has(self, name: str) -> bool:
        return bool(self.get(name))


def user_entries(ldap: Connection, base_dn: str, ldap_filter: str = "(objectClass=*)",
                 attrs: tuple[str, ...] = ("*", "+")) -> list[LdapUser]:
    ldap.search(people(base_dn), f"(&(objectClass=inetOrgPerson){ldap_filter})", SUBTREE,
                attributes=list(attrs))
    return [LdapUser(r["dn"], _as_dict(r)) for r in ldap.response
            if r.get("type") == "searchResEntry"]


def by_id(ldap: Connection, base_dn: str, scim_id: str,
          attrs: tuple[str, ...] = ("*", "+")) -> LdapUser | None:
    found = user_entries(ldap, base_dn, f"(entryUUID={escape_filter_chars(scim_id)})", attrs)
    assert len(found) <= 1
    return found[0] if found else None


def by_name(ldap: Connection, base_dn: str, user_name: str,
            attrs: tuple[str, ...] = ("*", "+")) -> LdapUser:
    found = user_entries(ldap, base_dn, f"(uid={escape_filter_chars(user_name)})", attrs)
    assert len(found) == 1, f"expected one entry with uid={user_name!r}, got {len(found)}"
    return found[0]


def user_count(ldap: Connection, base_dn: str) -> int:
    return len(user_entries(ldap, base_dn, attrs=("1.1",)))


def snapshot(ldap: Connection, dn: str) -> dict[str, list[bytes]]:
    """Every user and operational attribute of one entry, byte for byte."""
    ldap.search(dn, "(objectClass=*)", BASE, attributes=["*", "+"])
    assert len(ldap.response) == 1
    return {k.lower(): sorted(v) for k, v in ldap.response[0]["raw_attributes"].items()}


def tree(ldap: Connection, base_dn: str) -> dict[str, dict[str, list[bytes]]]:
    """Snapshot of every entry under People and Groups (to prove nothing was written)."""
    out = {}
    for ou in ("ou=People", "ou=Groups"):
        ldap.search(f"{ou},{base_dn}", "(objectClass=*)", SUBTREE, attributes=["*", "+"])
        for r in ldap.response:
            if r.get("type") == "searchResEntry":
                out[r["dn"].lower()] = {k.lower(): sorted(v)
                                        for k, v in r["raw_attributes"].items()}
    return out


def group_members(ldap: Connection, base_dn: str, name: str) -> list[str]:
    ldap.search(f"ou=Groups,{base_dn}", f"(cn={escape_filter_chars(name)})", SUBTREE,
                attributes=["member"])
    assert len(ldap.response) == 1, f"group {name!r} not found"
    return [_text(m) for m in ldap.response[0]["raw_attributes"].get("member", [])]


def _rdns(dn: str) -> list[tuple[str, str]]:
    """Split a DN into (type, unescaped value) pairs (RFC 4514; ldap3's parse_dn refuses
    slapd's own output when a value holds an unescaped inner ``#``)."""
    out: list[tuple[str, str]] = []
    parts: list[bytearray] = [bytearray()]
    i = 0
    kind = ""
    while i < len(dn):
        c = dn[i]
        if c == "\\" and re.fullmatch(r"[0-9A-Fa-f]{2}", dn[i + 1:i + 3]):
            parts[-1].append(int(dn[i + 1:i + 3], 16))
            i += 3
            continue
        if c == "\\":
            parts[-1] += dn[i + 1].encode()
            i += 2
            continue
        if c == "=" and not kind:
            kind = parts[-1].decode().strip()
            parts[-1] = bytearray()
        elif c in ",+":
            out.append((kind.lower(), parts[-1].decode()))
            kind, parts[-1] = "", bytearray()
        else:
            parts[-1] += c.encode()
        i += 1
    out.append((kind.lower(), parts[-1].decode()))
    return out


def same_dn(a: str, b: str) -> bool:
    return [(t, v.lower()) for t, v in _rdns(a)] == [(t, v.lower()) for t, v in _rdns(b)]


def parent_of(dn: str) -> list[tuple[str, str]]:
    return [(t, v.lower()) for t, v in _rdns(dn)[1:]]


def rdn_value(dn: str) -> str:
    return _rdns(dn)[0][1]


def can_bind(slapd: SlapdInstance, dn: str, password: str) -> bool:
    host, port = slapd.env["LDAP_URL"].removeprefix("ldap://").split(":")
    conn = Connection(Server(host, int(port)), dn, password)
    try:
        return bool(conn.bind())
    finally:
        conn.unbind()


def eq(attr: str, value: str) -> str:
    """A URL-encoded ``attr eq "value"`` filter (value as a JSON string literal)."""
    return quote(f"{attr} eq {json.dumps(value)}", safe="")


def assert_error(response: Any, status: int, scim_type: str | None, *names: str) -> None:
    """A SCIM error body (RFC 7644 §3.12) whose detail names every one of ``names``."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("application/scim+json")
    body = response.json
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type, body
    assert body["detail"], body
    for name in names:
        assert name.lower() in body["detail"].lower(), (name, body["detail"])


WORK_EMAIL = 'emails[type eq "work"].value'
MANAGER = f"{ENTERPRISE}:manager"


def create(scim: Any, body: dict[str, Any]) -> dict[str, Any]:
    r = scim.post("/Users", body)
    assert r.status_code == 201, r.json
    return dict(r.json)


def without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("meta", "groups")}


def ok(scim: Any, uid: str, *ops: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """PATCH; assert 200 with the full resource, equal to a fresh GET."""
    r = scim.patch(f"/Users/{uid}", entra.patch(*ops), **kw)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["Content-Type"] == "application/scim+json"
    assert r.headers["ETag"] == r.json["meta"]["version"]
    got = scim.get(f"/Users/{uid}").json
    assert r.json == got
    assert r.json["id"] == uid
    return dict(r.json)


def ldap_of(ldap: Connection, base_dn: str, uid: str) -> LdapUser:
    e = by_id(ldap, base_dn, uid)
    assert e is not None, f"no entry with entryUUID {uid}"
    return e
