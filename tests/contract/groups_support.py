"""Helpers of the group contract tests (test_groups*.py): read LDAP back with plain ldap3."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from ldap3 import BASE, SUBTREE, Connection
from ldap3.core.exceptions import LDAPNoSuchObjectResult
from ldap3.utils.conv import escape_filter_chars

from directory.repository import Repository
from tests import entra
from tests.conftest import Scim

ABSENT = "2ceef03a-7f80-1041-899b-d98a394b6a36"
NAMES = ("ann", "bob", "cid", "dee", "eve")


def placeholder(base_dn: str) -> str:
    return f"cn=empty-group-placeholder,ou=service,{base_dn}".lower()


def udn(base_dn: str, name: str) -> str:
    """The (lower-cased) DN of user ``name``."""
    return f"uid={name},ou=people,{base_dn}".lower()


def gdn(base_dn: str, name: str) -> str:
    """The (lower-cased) DN of group ``name`` (no DN metacharacters in ``name``)."""
    return f"cn={name},ou=groups,{base_dn}".lower()


def eq(attr: str, value: str) -> str:
    """``attr eq "value"`` for a query string, percent-encoded."""
    return quote(f"{attr} eq {json.dumps(value)}", safe="")


@dataclass
class LdapGroup:
    """A group entry as slapd holds it (DN and member values lower-cased)."""

    dn: str
    cn: list[str]
    members: list[str]
    external_id: str | None
    uuid: str
    csn: str
    classes: set[str]


def group_entries(ldap: Connection, base_dn: str,
                  ldap_filter: str = "(objectClass=groupOfNames)") -> list[LdapGroup]:
    ldap.search(f"ou=Groups,{base_dn}", ldap_filter, SUBTREE,
                attributes=["cn", "member", "scimExternalId", "entryUUID", "entryCSN",
                            "objectClass"])
    out = []
    for r in ldap.response:
        if r.get("type") != "searchResEntry":
            continue
        a = r["attributes"]
        ext = a.get("scimExternalId")
        out.append(LdapGroup(
            dn=r["dn"].lower(), cn=list(a.get("cn", [])),
            members=sorted(m.lower() for m in a.get("member", [])),
            external_id=(ext[0] if ext else None) if isinstance(ext, list) else ext or None,
            uuid=a["entryUUID"], csn=a["entryCSN"][0] if isinstance(
                a["entryCSN"], list) else a["entryCSN"],
            classes={c.lower() for c in a.get("objectClass", [])}))
    return out


def group_by_id(ldap: Connection, base_dn: str, gid: str) -> LdapGroup | None:
    found = group_entries(ldap, base_dn, f"(entryUUID={escape_filter_chars(gid)})")
    assert len(found) <= 1
    return found[0] if found else None


def members_of(ldap: Connection, base_dn: str, gid: str) -> list[str]:
    """The group's member DNs in LDAP (sorted, lower-cased)."""
    group = group_by_id(ldap, base_dn, gid)
    assert group is not None, f"no group {gid} in LDAP"
    return group.members


def member_of(ldap: Connection, dn: str) -> list[str]:
    """``memberOf`` of an entry as slapd (dynlist) computes it, lower-cased and sorted."""
    ldap.search(dn, "(objectClass=*)", BASE, attributes=["memberOf"])
    values = ldap.response[0]["attributes"].get("memberOf", [])
    return sorted(v.lower() for v in values)


def entry_dn(ldap: Connection, dn: str) -> str | None:
    """The DN (lower-cased, in slapd's escaping) of the entry at ``dn``, None if none."""
    try:
        ldap.search(dn, "(objectClass=*)", BASE, attributes=["1.1"])
    except LDAPNoSuchObjectResult:
        return None
    found = [r["dn"] for r in ldap.response if r.get("type") == "searchResEntry"]
    return found[0].lower() if found else None


def referring(ldap: Connection, base_dn: str, dn: str) -> list[str]:
    """DNs of every entry whose ``member`` names ``dn`` (dangling references included)."""
    ldap.search(base_dn, f"(member={escape_filter_chars(dn)})", SUBTREE, attributes=["1.1"])
    return sorted(r["dn"].lower() for r in ldap.response if r.get("type") == "searchResEntry")


def assert_valid_membership(group: LdapGroup, base_dn: str) -> None:
    """groupOfNames is never empty and the placeholder never sits beside a real member."""
    assert group.members, f"{group.dn} has no member"
    if placeholder(base_dn) in group.members:
        assert group.members == [placeholder(base_dn)], group.members


def make_group(scim: Scim, name: str = "Sales Team", members: list[str] | None = None) -> str:
    r = scim.post("/Groups", entra.group(name, members))
    assert r.status_code == 201, r.json
    return str(r.json["id"])


def member_ids(resource: dict[str, Any]) -> list[str]:
    return sorted(m["value"] for m in resource["members"])


def assert_error(response: Any, status: int, scim_type: str | None = None) -> dict:
    assert response.status_code == status, response.json
    body = response.json
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == str(status)
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    assert response.headers["Content-Type"].startswith("application/scim+json")
    return dict(body)


def members_patch(op: str, *ids: str) -> dict[str, Any]:
    """Entra's default-mode member operation (``$ref: null`` on each value)."""
    return entra.patch({"op": op, "path": "members",
                        "value": [{"$ref": None, "value": i} for i in ids]})


@pytest.fixture(name="people")
def people_fixture(scim: Scim) -> dict[str, str]:
    """Five users (ann … eve): name → SCIM id."""
    ids = {}
    for name in NAMES:
        r = scim.post("/Users", {**entra.minimal_user(name), "displayName": name.title()})
        assert r.status_code == 201, r.json
        ids[name] = r.json["id"]
    return ids


def count_operations(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """LDAP operations the app makes from now on, by name (search, modify, …)."""
    counts: dict[str, int] = {}
    original = Repository._measure

    def counting(self: Repository, fn: Any, *args: Any, names: list[str] | None = None,
                 **kwargs: Any) -> Any:
        for name in names or [getattr(fn, "__name__", "call")]:
            counts[name] = counts.get(name, 0) + 1
        return original(self, fn, *args, names=names, **kwargs)

    monkeypatch.setattr(Repository, "_measure", counting)
    return counts
