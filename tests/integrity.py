"""Reference integrity read back from slapd itself: which entry each ``member`` and
``manager`` value names is asked of the server (its DN matching rules), never decided by
case-folding in Python, so a check here cannot agree with a bug in directory/dn.py."""

from __future__ import annotations

from dataclasses import dataclass

from ldap3 import BASE, SUBTREE, Connection
from ldap3.core.exceptions import LDAPNoSuchObjectResult
from ldap3.utils.conv import escape_filter_chars


@dataclass(frozen=True)
class Ref:
    """One reference value: who holds it, in which attribute, and what it names."""

    holder: str  # the holder's entryUUID
    attr: str
    value: str
    target: str | None  # entryUUID of the user or group it names; None: nothing


def _entries(conn: Connection, base: str, flt: str, attrs: list[str]) -> list[dict]:
    try:
        conn.search(base, flt, SUBTREE, attributes=attrs)
    except LDAPNoSuchObjectResult:
        return []
    return [e for e in conn.response if e.get("type") == "searchResEntry"]


def _one(value: object) -> str:
    return str(value[0] if isinstance(value, list) else value)


def names(conn: Connection, base: str, value: str) -> str | None:
    """entryUUID of the tenant user or group that ``value`` names, by the server."""
    people = [f"ou=People,{base}", f"ou=Groups,{base}"]
    for where in people:
        found = _entries(conn, where, f"(entryDN={escape_filter_chars(value)})", ["entryUUID"])
        if found:
            return _one(found[0]["attributes"]["entryUUID"])
    return None


def references(conn: Connection, base: str) -> list[Ref]:
    """Every member and manager value of the tenant with what it names."""
    out = []
    for ou, attr in (("ou=Groups", "member"), ("ou=People", "manager")):
        for e in _entries(conn, f"{ou},{base}", f"({attr}=*)", [attr, "entryUUID"]):
            holder = _one(e["attributes"]["entryUUID"])
            for value in e["attributes"].get(attr, []):
                out.append(Ref(holder, attr, str(value), names(conn, base, str(value))))
    return out


def placeholder(base: str) -> str:
    return f"cn=empty-group-placeholder,ou=Service,{base}"


def problems(conn: Connection, base: str) -> list[str]:
    """Every broken reference rule: a value naming nothing (other than the placeholder
    alone in an empty group), the placeholder beside a real member or as a manager, a
    group without members, a value not spelled exactly as its entry's DN."""
    out = []
    dns = {}
    for ou in ("ou=People", "ou=Groups"):
        for e in _entries(conn, f"{ou},{base}", "(objectClass=*)", ["entryUUID"]):
            if e["attributes"].get("entryUUID"):
                dns[_one(e["attributes"]["entryUUID"])] = e["dn"]
    held: dict[tuple[str, str], list[Ref]] = {}
    for ref in references(conn, base):
        held.setdefault((ref.holder, ref.attr), []).append(ref)
    names_placeholder = placeholder(base)
    for (holder, attr), refs in held.items():
        is_ph = [r for r in refs if _is(conn, r.value, names_placeholder)]
        for r in refs:
            if r in is_ph:
                if attr == "manager" or len(refs) > 1:
                    out.append(f"{dns.get(holder, holder)}: {attr} {r.value} (the placeholder "
                               f"{'as manager' if attr == 'manager' else 'beside members'})")
                continue
            if r.target is None:
                out.append(f"{dns.get(holder, holder)}: {attr} {r.value} names nothing")
            elif dns.get(r.target) != r.value:
                out.append(f"{dns.get(holder, holder)}: {attr} {r.value} spelled otherwise "
                           f"than {dns.get(r.target)}")
    for e in _entries(conn, f"ou=Groups,{base}", "(objectClass=groupOfNames)", ["member"]):
        if not e["attributes"].get("member"):
            out.append(f"{e['dn']}: no member")
    return out


def _is(conn: Connection, value: str, dn: str) -> bool:
    """Whether the server holds ``value`` and ``dn`` to be the same DN."""
    try:
        conn.search(dn, f"(entryDN={escape_filter_chars(value)})", BASE, attributes=["1.1"])
    except LDAPNoSuchObjectResult:
        return False
    return bool(conn.response)


def members(conn: Connection, base: str, group_uuid: str) -> list[str]:
    """entryUUIDs the group's member values name (None for values naming nothing),
    one per value, so a lost or doubled value shows."""
    found = _entries(conn, f"ou=Groups,{base}", f"(entryUUID={escape_filter_chars(group_uuid)})",
                     ["member"])
    assert len(found) == 1, found
    return [names(conn, base, str(v)) or "-" for v in found[0]["attributes"].get("member", [])]


def manager(conn: Connection, base: str, user_uuid: str) -> list[str]:
    """What the user's manager values name (entryUUIDs; '-' for a value naming nothing)."""
    found = _entries(conn, f"ou=People,{base}", f"(entryUUID={escape_filter_chars(user_uuid)})",
                     ["manager"])
    assert len(found) == 1, found
    return [names(conn, base, str(v)) or "-" for v in found[0]["attributes"].get("manager", [])]
