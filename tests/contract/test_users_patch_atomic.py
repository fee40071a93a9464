"""PATCH /Users on real slapd: userName renames (entra-scim.md §6.4 (j)), atomicity of
several operations, no-ops and replays, operation errors and concurrent writers.

Each test checks the answer and the LDAP entries read back.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from directory.repository import Repository
from tests import entra
from tests.conftest import Scim
from tests.contract.users_support import (
    ABSENT_ID,
    ENTERPRISE,
    LOCKED,
    MANAGER,
    WORK_EMAIL,
    assert_error,
    create,
    group_members,
    ldap_of,
    ok,
    people,
    same_dn,
    snapshot,
    tree,
    without_meta,
)
from tests.entra import patch

# --- (j) rename -------------------------------------------------------------------------------


def test_j_rename_keeps_id_group_memberships_and_reports(scim, ldap, base_dn, adele, boss):
    report = create(scim, {**entra.minimal_user("report@contoso.com"),
                           "schemas": [entra.CORE_USER, ENTERPRISE],
                           ENTERPRISE: {"manager": adele["id"]}})
    gid = scim.post("/Groups", entra.group("Renamers", [adele["id"], boss["id"]])).json["id"]
    got = ok(scim, adele["id"], {"op": "Replace", "path": "userName",
                                 "value": "Adele.Renamed@contoso.com"})
    assert (got["id"], got["userName"]) == (adele["id"], "Adele.Renamed@contoso.com")
    new_dn = f"uid=Adele.Renamed@contoso.com,{people(base_dn)}"
    e = ldap_of(ldap, base_dn, adele["id"])
    assert same_dn(e.dn, new_dn)
    assert e.get("uid") == ["Adele.Renamed@contoso.com"]

    # moved in the same request (slapd's refint would do it later, in the background)
    members = group_members(ldap, base_dn, "Renamers")
    assert len(members) == 2
    assert any(same_dn(m, new_dn) for m in members)
    assert any(same_dn(m, f"uid=Megan.Bowen@contoso.com,{people(base_dn)}") for m in members)
    [manager] = ldap_of(ldap, base_dn, report["id"]).get("manager")
    assert same_dn(manager, new_dn)
    assert [g["value"] for g in got["groups"]] == [gid]
    assert [g["value"] for g in scim.get(f"/Users/{adele['id']}").json["groups"]] == [gid]
    members = scim.get(f"/Groups/{gid}").json["members"]
    assert sorted(m["value"] for m in members) == sorted([adele["id"], boss["id"]])
    assert scim.get(f"/Users/{report['id']}").json[ENTERPRISE]["manager"]["value"] == \
        adele["id"]
    assert scim.get(f"/Users/{adele['id']}").json["userName"] == "Adele.Renamed@contoso.com"


def test_j_rename_together_with_other_changes_is_one_result(scim, ldap, base_dn, adele):
    got = ok(scim, adele["id"],
             {"op": "Replace", "path": "userName", "value": "Adele.V2@contoso.com"},
             {"op": "Replace", "path": "displayName", "value": "Adele V2"},
             {"op": "Replace", "path": "active", "value": "False"})
    assert (got["userName"], got["displayName"], got["active"]) == (
        "Adele.V2@contoso.com", "Adele V2", False)
    e = ldap_of(ldap, base_dn, adele["id"])
    assert same_dn(e.dn, f"uid=Adele.V2@contoso.com,{people(base_dn)}")
    assert (e.get("displayName"), e.get("scimActive"), e.get("pwdAccountLockedTime")) == (
        ["Adele V2"], ["FALSE"], [LOCKED])


def test_j_case_only_rename(scim, ldap, base_dn, adele):
    got = ok(scim, adele["id"], {"op": "Replace", "path": "userName",
                                 "value": "ADELE.VANCE@contoso.com"})
    assert got["userName"] == "ADELE.VANCE@contoso.com"
    e = ldap_of(ldap, base_dn, adele["id"])
    assert e.get("uid") == ["ADELE.VANCE@contoso.com"]


def test_j_rename_of_a_username_with_dn_metacharacters(scim, ldap, base_dn):
    name = 'a,b+c="x"<y>;#\\ é@x'
    uid = create(scim, {**entra.minimal_user(name), "displayName": "Meta"})["id"]
    gid = scim.post("/Groups", entra.group("Meta", [uid])).json["id"]
    got = ok(scim, uid, {"op": "Replace", "path": "userName", "value": name + ",2"},
             {"op": "Replace", "path": "title", "value": "T"})
    assert (got["userName"], got["title"]) == (name + ",2", "T")
    got = ok(scim, uid, {"op": "Replace", "path": "userName", "value": "plain@x.org"},
             {"op": "Replace", "path": "title", "value": "U"})
    e = ldap_of(ldap, base_dn, uid)
    assert e.get("uid") == ["plain@x.org"] and e.get("title") == ["U"]
    [member] = group_members(ldap, base_dn, "Meta")
    assert same_dn(member, f"uid=plain@x.org,{people(base_dn)}")
    assert [g["value"] for g in got["groups"]] == [gid]


def test_j_rename_that_loses_a_race_for_the_name_is_409_and_undone(scim, ldap, base_dn,
                                                                   adele, boss, monkeypatch):
    """The name is taken between the uniqueness check and the rename: slapd refuses the
    rename (entryAlreadyExists) after the modify was applied, and the modify is undone."""
    real = Repository.find_one

    def blind(self: Repository, kind: str, attr: str, value: str, attrs: Any) -> Any:
        return None if value.lower() == "megan.bowen@contoso.com" else \
            real(self, kind, attr, value, attrs)

    monkeypatch.setattr(Repository, "find_one", blind)
    before = ldap_of(ldap, base_dn, adele["id"])
    r = scim.patch(f"/Users/{adele['id']}", patch(
        {"op": "Replace", "path": "userName", "value": "Megan.Bowen@contoso.com"},
        {"op": "Replace", "path": "title", "value": "Thief"},
        {"op": "Remove", "path": "phoneNumbers"},
        {"op": "Replace", "path": "active", "value": False}))
    assert_error(r, 409, "uniqueness")
    after = ldap_of(ldap, base_dn, adele["id"])
    meta = {"entrycsn", "modifytimestamp", "modifiersname"}
    assert {k: v for k, v in after.attrs.items() if k not in meta} == {
        k: v for k, v in before.attrs.items() if k not in meta}
    got = scim.get(f"/Users/{adele['id']}").json
    assert without_meta(got) == without_meta(adele)


def test_j_rename_to_a_username_too_long_for_the_directory_is_400(scim, ldap, base_dn,
                                                                  adele):
    before = tree(ldap, base_dn)
    r = scim.patch(f"/Users/{adele['id']}", patch(
        {"op": "Replace", "path": "title", "value": "Long"},
        {"op": "Replace", "path": "userName", "value": "x" * 300}))
    assert_error(r, 400, "invalidValue", "userName", "too long")
    assert tree(ldap, base_dn) == before


def test_j_rename_onto_another_users_name_is_409_and_nothing_changes(scim, ldap, base_dn,
                                                                     adele, boss):
    before = tree(ldap, base_dn)
    r = scim.patch(f"/Users/{adele['id']}", patch(
        {"op": "Replace", "path": "userName", "value": "MEGAN.bowen@contoso.com"},
        {"op": "Replace", "path": "title", "value": "Thief"}))
    assert_error(r, 409, "uniqueness", "MEGAN.bowen@contoso.com")
    assert tree(ldap, base_dn) == before


# --- atomicity, no-ops, replays ----------------------------------------------------------


@pytest.mark.parametrize("bad", [
    {"op": "Replace", "path": "active", "value": "maybe"},
    {"op": "Replace", "path": "title", "value": 42},
    {"op": "Replace", "path": "nosuch", "value": "x"},
    {"op": "Add", "path": 'emails[type eq "private"].value', "value": "p@x.org"},
    {"op": "Add", "path": MANAGER, "value": ABSENT_ID},
    {"op": "Replace", "path": "meta.lastModified", "value": "2020-01-01T00:00:00Z"},
    {"op": "Replace", "path": 'phoneNumbers[type eq "work"].value', "value": "☎ #1"},
])
def test_several_ops_are_atomic_one_bad_op_changes_nothing(scim, ldap, base_dn, adele, boss,
                                                           bad):
    gid = scim.post("/Groups", entra.group("Atomic", [adele["id"]])).json["id"]
    before = tree(ldap, base_dn)
    r = scim.patch(f"/Users/{adele['id']}", patch(
        {"op": "Replace", "path": "displayName", "value": "Changed"},
        {"op": "Add", "path": MANAGER, "value": boss["id"]},
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Replace", "path": "userName", "value": "moved@contoso.com"},
        bad,
        {"op": "Remove", "path": "preferredLanguage"}))
    assert r.status_code == 400, r.json
    assert r.json["scimType"] in ("invalidValue", "mutability", "invalidSyntax"), r.json
    assert tree(ldap, base_dn) == before
    got = scim.get(f"/Users/{adele['id']}").json
    assert without_meta(got) == without_meta(adele)
    assert [g["value"] for g in got["groups"]] == [gid]


def test_patch_that_changes_nothing_is_200_and_writes_nothing(scim, ldap, base_dn, adele):
    e = ldap_of(ldap, base_dn, adele["id"])
    before = snapshot(ldap, e.dn)
    got = ok(scim, adele["id"],
             {"op": "Replace", "path": "title", "value": "Retail Manager"},
             {"op": "Replace", "path": "active", "value": "True"},
             {"op": "Add", "path": WORK_EMAIL, "value": "adele@contoso.com"},
             {"op": "Remove", "path": "nickName"},
             {"op": "Replace", "path": "userName", "value": "Adele.Vance@contoso.com"})
    assert snapshot(ldap, e.dn) == before
    assert without_meta(got) == without_meta(adele)
    assert got["meta"]["version"] == adele["meta"]["version"]


def test_replayed_disable_is_a_no_op(scim, ldap, base_dn, adele, boss):
    body = ({"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": MANAGER, "value": boss["id"]})
    first = ok(scim, adele["id"], *body)
    e = ldap_of(ldap, base_dn, adele["id"])
    before = snapshot(ldap, e.dn)
    second = ok(scim, adele["id"], *body)
    assert snapshot(ldap, e.dn) == before
    assert second == first


def test_removing_username_is_400_and_nothing_changes(scim, ldap, base_dn, adele):
    e = ldap_of(ldap, base_dn, adele["id"])
    before = snapshot(ldap, e.dn)
    for op in ({"op": "Remove", "path": "userName"},
               {"op": "Replace", "path": "userName", "value": None},
               {"op": "Replace", "path": "userName", "value": ""},
               {"op": "replace", "value": {"userName": None}}):
        r = scim.patch(f"/Users/{adele['id']}", patch(op))
        assert_error(r, 400, "invalidValue", "userName")
    assert snapshot(ldap, e.dn) == before


@pytest.mark.parametrize(("op", "scim_type", "name"), [
    ({"op": "Replace", "path": "id", "value": ABSENT_ID}, "mutability", "id"),
    ({"op": "Replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"},
     "mutability", "meta.created"),
    ({"op": "Add", "path": "groups", "value": [{"value": ABSENT_ID}]}, "mutability", "groups"),
    ({"op": "Remove", "path": "groups"}, "mutability", "groups"),
    ({"op": "replace", "value": {"id": ABSENT_ID}}, "mutability", "id"),
    ({"op": "Replace", "path": f"{MANAGER}.displayName", "value": "x"}, "mutability",
     "displayName"),
    ({"op": "Replace", "path": "shoeSize", "value": "x"}, "invalidValue", "shoeSize"),
    ({"op": "replace", "value": {"name.nickName": "x"}}, "invalidValue", "nickName"),
    ({"op": "Replace", "path": "urn:example:nope:1.0:User:x", "value": "x"}, "invalidValue",
     "urn:example:nope"),
    ({"op": "Replace", "path": 'emails[type eq "work"', "value": "x"}, "invalidPath",
     "path"),
    ({"op": "Replace", "path": "emails[type zz \"work\"].value", "value": "x"}, "invalidPath",
     "path"),
    ({"op": "Remove"}, "noTarget", "path"),
    ({"op": "Replace", "path": 'emails[type ne "work"].value', "value": "x"}, "noTarget",
     "emails"),
    ({"op": "Frobnicate", "path": "title", "value": "x"}, "invalidSyntax", "op"),
    ({"path": "title", "value": "x"}, "invalidSyntax", "op"),
    ({"op": "Add", "path": "title"}, "invalidSyntax", "value"),
    ({"op": "Replace", "value": "not an object"}, "invalidSyntax", "value"),
    ({"op": "Replace", "path": "title", "value": ["a", "b"]}, "invalidValue", "title"),
    ({"op": "Replace", "path": "name", "value": "flat"}, "invalidValue", "name"),
    ({"op": "Replace", "path": "emails", "value": [{"type": "work", "value": 7}]},
     "invalidValue", "emails"),
])
def test_bad_operation_is_400_with_scim_type_and_nothing_changes(scim, ldap, base_dn, adele,
                                                                 op, scim_type, name):
    e = ldap_of(ldap, base_dn, adele["id"])
    before = snapshot(ldap, e.dn)
    r = scim.patch(f"/Users/{adele['id']}", patch(op))
    assert_error(r, 400, scim_type, name)
    assert snapshot(ldap, e.dn) == before


@pytest.mark.parametrize("body", [
    {"Operations": [{"op": "Replace", "path": "title", "value": "x"}]},
    {"schemas": [entra.CORE_USER], "Operations": [{"op": "Replace", "path": "title",
                                                   "value": "x"}]},
    {"schemas": [entra.PATCH_OP]},
    {"schemas": [entra.PATCH_OP], "Operations": []},
    {"schemas": [entra.PATCH_OP], "Operations": {"op": "Replace"}},
    [{"op": "Replace", "path": "title", "value": "x"}],
])
def test_malformed_patch_request_is_400_invalid_syntax(scim, ldap, base_dn, adele, body):
    e = ldap_of(ldap, base_dn, adele["id"])
    before = snapshot(ldap, e.dn)
    r = scim.patch(f"/Users/{adele['id']}", body)
    assert_error(r, 400, "invalidSyntax")
    assert snapshot(ldap, e.dn) == before


def test_patch_of_unknown_id_is_404(scim, ldap, base_dn):
    before = tree(ldap, base_dn)
    for bad in (ABSENT_ID, "nope"):
        r = scim.patch(f"/Users/{bad}", patch({"op": "Replace", "path": "title",
                                               "value": "x"}))
        assert_error(r, 404, None)
    assert tree(ldap, base_dn) == before


def test_concurrent_patches_of_one_user_lose_no_update(app, ldap, base_dn, adele):
    """Five writers at once, each on its own attribute: the entryCSN guard and re-apply
    keep every change (a lost update would leave one of them missing)."""
    changes = [("title", "T"), ("nickName", "N"), ("displayName", "D"),
               ("preferredLanguage", "fr-FR"), (f"{ENTERPRISE}:department", "Dept")]
    barrier = threading.Barrier(len(changes))
    codes: list[int] = []

    def write(path: str, value: str) -> None:
        client = Scim(app.test_client())
        barrier.wait()
        r = client.patch(f"/Users/{adele['id']}", patch(
            {"op": "Replace", "path": path, "value": value}))
        codes.append(r.status_code)

    threads = [threading.Thread(target=write, args=c) for c in changes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * len(changes)
    e = ldap_of(ldap, base_dn, adele["id"])
    assert (e.get("title"), e.get("scimNickName"), e.get("displayName"),
            e.get("preferredLanguage"), e.get("departmentNumber")) == (
        ["T"], ["N"], ["D"], ["fr-FR"], ["Dept"])


def test_concurrent_rename_and_attribute_patch(app, ldap, base_dn, adele):
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def write(op: dict[str, Any]) -> None:
        client = Scim(app.test_client())
        barrier.wait()
        codes.append(client.patch(f"/Users/{adele['id']}", patch(op)).status_code)

    ops = [{"op": "Replace", "path": "userName", "value": "raced@contoso.com"},
           {"op": "Replace", "path": "title", "value": "Raced"}]
    threads = [threading.Thread(target=write, args=(op,)) for op in ops]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200, 200]
    e = ldap_of(ldap, base_dn, adele["id"])
    assert same_dn(e.dn, f"uid=raced@contoso.com,{people(base_dn)}")
    assert (e.get("uid"), e.get("title")) == (["raced@contoso.com"], ["Raced"])
