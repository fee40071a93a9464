"""A rename cut short after its modDN (the bridge or slapd died before the references
were moved) is finished by Entra's retry of the same request (docs/directory.md,
"Crash points").

The crash is simulated at that exact point: the move step fails as an unreachable
directory would (503), after the old DN has been put back into the groups and the manager
attribute by hand — what is left when slapd dies before its refint task ran (refint's
queue lives in memory), or with no refint at all.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from directory import errors as de
from directory import references
from tests import entra, integrity
from tests.contract.groups_support import make_group
from tests.contract.users_support import create


def crash_after_moddn(monkeypatch: pytest.MonkeyPatch, ldap: Any, holders: list[tuple[str, str]]
                      ) -> list[str]:
    """Make the next ``references.move`` fail as a crash would, the old DN left in
    ``holders`` ((dn, attribute) pairs). Returns the old DNs it saw."""
    seen: list[str] = []
    real = references.move

    def crashed(repo: Any, uuid: str, old_dn: str, new_dn: str) -> str:
        monkeypatch.setattr(references, "move", real)
        seen.append(old_dn)
        time.sleep(0.3)  # let refint finish, then undo what it did
        for dn, attr in holders:
            op = "MODIFY_REPLACE" if attr == "manager" else "MODIFY_ADD"
            ldap.modify(dn, {attr: [(op, [old_dn])]})
        raise de.DirectoryUnavailable("slapd went away")

    monkeypatch.setattr(references, "move", crashed)
    return seen


def test_user_rename_cut_short_is_finished_by_the_retry(scim, ldap, base_dn, monkeypatch):
    uid = str(create(scim, entra.minimal_user("short@example.org"))["id"])
    other = str(create(scim, entra.minimal_user("other@example.org"))["id"])
    report = str(create(scim, entra.minimal_user("report@example.org"))["id"])
    sole = make_group(scim, "Sole", [uid])
    shared = make_group(scim, "Shared", [uid, other])
    assert scim.patch(f"/Users/{report}", entra.patch(
        {"op": "Add", "path": f"{entra.ENTERPRISE}:manager", "value": uid})).status_code == 200
    holders = [(f"cn=Sole,ou=Groups,{base_dn}", "member"),
               (f"cn=Shared,ou=Groups,{base_dn}", "member"),
               (f"uid=report@example.org,ou=People,{base_dn}", "manager")]
    seen = crash_after_moddn(monkeypatch, ldap, holders)
    rename = entra.patch({"op": "Replace", "path": "userName", "value": "long@example.org"})
    assert scim.patch(f"/Users/{uid}", rename).status_code == 503
    assert seen, "the crash point was not reached"
    assert integrity.problems(ldap, base_dn), "the crash left nothing to repair"

    r = scim.patch(f"/Users/{uid}", rename)  # Entra's retry
    assert r.status_code == 200 and r.json["userName"] == "long@example.org"
    assert integrity.problems(ldap, base_dn) == []
    assert integrity.members(ldap, base_dn, sole) == [uid]
    assert sorted(integrity.members(ldap, base_dn, shared)) == sorted([uid, other])
    assert integrity.manager(ldap, base_dn, report) == [uid]
    assert sorted(g["value"] for g in r.json["groups"]) == sorted([sole, shared])


def test_group_rename_cut_short_is_finished_by_the_retry(scim, ldap, base_dn, monkeypatch):
    uid = str(create(scim, entra.minimal_user("ann@example.org"))["id"])
    inner = make_group(scim, "Inner", [uid])
    outer = make_group(scim, "Outer", [inner])
    seen = crash_after_moddn(monkeypatch, ldap, [(f"cn=Outer,ou=Groups,{base_dn}", "member")])
    rename = entra.patch({"op": "Replace", "path": "displayName", "value": "Core"})
    assert scim.patch(f"/Groups/{inner}", rename).status_code == 503
    assert seen and integrity.problems(ldap, base_dn)
    assert scim.patch(f"/Groups/{inner}", rename).status_code == 204
    assert integrity.problems(ldap, base_dn) == []
    assert integrity.members(ldap, base_dn, outer) == [inner]


def test_a_delete_after_a_rename_cut_short_leaves_nothing(scim, ldap, base_dn, monkeypatch):
    uid = str(create(scim, entra.minimal_user("gone@example.org"))["id"])
    gid = make_group(scim, "Team", [uid, str(create(scim, entra.minimal_user("b@x.org"))["id"])])
    crash_after_moddn(monkeypatch, ldap, [(f"cn=Team,ou=Groups,{base_dn}", "member")])
    assert scim.patch(f"/Users/{uid}", entra.patch(
        {"op": "Replace", "path": "userName", "value": "went@example.org"})).status_code == 503
    assert scim.delete(f"/Users/{uid}").status_code == 204
    assert integrity.problems(ldap, base_dn) == []
    assert uid not in integrity.members(ldap, base_dn, gid)
