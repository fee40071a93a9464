"""Entra's group flows on real slapd, each checked against the LDAP entries read back."""

from __future__ import annotations

import json
import threading
from urllib.parse import quote

import pytest
from ldap3 import BASE, SUBTREE

from tests import entra
from tests.entra import patch

ABSENT = "2ceef03a-7f80-1041-899b-d98a394b6a36"


def members_in_ldap(ldap, base_dn, name):
    ldap.search(f"ou=Groups,{base_dn}", f"(cn={name})", SUBTREE, attributes=["member"])
    assert len(ldap.entries) == 1
    return sorted(m.lower() for m in ldap.entries[0].member.values)


def placeholder(base_dn):
    return f"cn=empty-group-placeholder,ou=service,{base_dn}".lower()


def udn(base_dn, name):
    return f"uid={name},ou=people,{base_dn}".lower()


def eq(attr, value):
    return quote(f"{attr} eq {json.dumps(value)}", safe="")


@pytest.fixture
def people(scim):
    ids = {}
    for name in ("ann", "bob", "cid", "dee", "eve"):
        r = scim.post("/Users", {**entra.minimal_user(name), "displayName": name.title()})
        assert r.status_code == 201
        ids[name] = r.json["id"]
    return ids


def make_group(scim, name="Sales Team", members=None):
    r = scim.post("/Groups", entra.group(name, members))
    assert r.status_code == 201, r.json
    return r.json["id"]


def test_entra_create_is_empty_with_placeholder(scim, ldap, base_dn):
    r = scim.post("/Groups", entra.group())
    assert r.status_code == 201
    assert r.json["members"] == []
    assert r.json["externalId"] == "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"
    assert r.headers["Location"].endswith(f"/Groups/{r.json['id']}")
    ldap.search(f"ou=Groups,{base_dn}", "(objectClass=groupOfNames)", SUBTREE,
                attributes=["member", "entryUUID", "objectClass"])
    assert len(ldap.entries) == 1
    assert ldap.entries[0].entryUUID.value == r.json["id"]
    assert members_in_ldap(ldap, base_dn, "Sales Team") == [placeholder(base_dn)]


def test_create_with_members_and_duplicate_name(scim, ldap, base_dn, people):
    gid = make_group(scim, "Dup", [people["ann"]])
    got = scim.get(f"/Groups/{gid}").json
    assert got["members"] == [{"value": people["ann"], "type": "User",
                               "$ref": f"http://localhost/scim/v2/Users/{people['ann']}"}]
    r = scim.post("/Groups", entra.group("DUP"))
    assert (r.status_code, r.json["scimType"]) == (409, "uniqueness")
    assert members_in_ldap(ldap, base_dn, "Dup") == [udn(base_dn, "ann")]


def test_create_with_unknown_member_is_400_and_nothing_written(scim, ldap, base_dn):
    r = scim.post("/Groups", entra.group("Ghosts", [ABSENT]))
    assert (r.status_code, r.json["scimType"]) == (400, "invalidValue")
    assert ABSENT in r.json["detail"]
    assert not ldap.search(f"ou=Groups,{base_dn}", "(cn=Ghosts)")


def test_excluded_members_on_get_and_on_the_entra_match_query(scim, people):
    gid = make_group(scim, "Sales Team", [people["ann"]])
    assert "members" not in scim.get(f"/Groups/{gid}?excludedAttributes=members").json
    assert set(scim.get(f"/Groups/{gid}?attributes=displayName").json) == {
        "schemas", "id", "displayName"}
    for query in (f"excludedAttributes=members&filter={eq('displayName', 'sales team')}",
                  f"filter={eq('displayName', 'Sales Team')}&excludedAttributes=members"):
        found = scim.get(f"/Groups?{query}").json
        assert found["totalResults"] == 1
        assert found["Resources"][0]["id"] == gid
        assert "members" not in found["Resources"][0]
    assert scim.get(f"/Groups?filter={eq('displayName', 'Other')}").json["totalResults"] == 0


def test_add_members_entra_form_is_additive_and_idempotent(scim, ldap, base_dn, people):
    gid = make_group(scim)
    r = scim.patch(f"/Groups/{gid}", patch({"op": "Add", "path": "members", "value": [
        {"$ref": None, "value": people["ann"]}, {"value": people["bob"]}]}))
    assert r.status_code == 204 and r.data == b""
    assert members_in_ldap(ldap, base_dn, "Sales Team") == sorted(
        [udn(base_dn, "ann"), udn(base_dn, "bob")])
    again = patch({"op": "Add", "path": "members", "value": [{"value": people["ann"]}]},
                  {"op": "add", "path": "members", "value": [{"value": people["cid"]}]})
    assert scim.patch(f"/Groups/{gid}", again).status_code == 204
    assert scim.patch(f"/Groups/{gid}", again).status_code == 204
    assert members_in_ldap(ldap, base_dn, "Sales Team") == sorted(
        udn(base_dn, n) for n in ("ann", "bob", "cid"))


def test_remove_forms_remove_exactly_the_named_members(scim, ldap, base_dn, people):
    gid = make_group(scim, "Sales Team", [people[n] for n in ("ann", "bob", "cid", "dee")])
    assert scim.patch(f"/Groups/{gid}", patch({"op": "Remove", "path": "members", "value": [
        {"$ref": None, "value": people["ann"]}]})).status_code == 204
    assert scim.patch(f"/Groups/{gid}", patch({
        "op": "remove", "path": f'members[value eq "{people["bob"]}"]'})).status_code == 204
    assert scim.patch(f"/Groups/{gid}", patch({"op": "Remove", "path": "members", "value": [
        {"value": people["eve"]}, {"value": ABSENT}]})).status_code == 204
    assert members_in_ldap(ldap, base_dn, "Sales Team") == sorted(
        [udn(base_dn, "cid"), udn(base_dn, "dee")])


def test_last_member_out_restores_placeholder_first_in_drops_it(scim, ldap, base_dn, people):
    gid = make_group(scim, "Sales Team", [people["ann"]])
    scim.patch(f"/Groups/{gid}", patch({"op": "Remove", "path": "members",
                                        "value": [{"value": people["ann"]}]}))
    assert members_in_ldap(ldap, base_dn, "Sales Team") == [placeholder(base_dn)]
    assert scim.get(f"/Groups/{gid}").json["members"] == []
    scim.patch(f"/Groups/{gid}", patch({"op": "Add", "path": "members",
                                        "value": [{"value": people["bob"]}]}))
    assert members_in_ldap(ldap, base_dn, "Sales Team") == [udn(base_dn, "bob")]


def test_remove_all_and_replace_members(scim, ldap, base_dn, people):
    gid = make_group(scim, "Sales Team", [people["ann"], people["bob"]])
    assert scim.patch(f"/Groups/{gid}", patch(
        {"op": "Remove", "path": "members"})).status_code == 204
    assert members_in_ldap(ldap, base_dn, "Sales Team") == [placeholder(base_dn)]
    assert scim.patch(f"/Groups/{gid}", patch({"op": "Replace", "path": "members", "value": [
        {"value": people["cid"]}, {"value": people["dee"]}]})).status_code == 204
    assert members_in_ldap(ldap, base_dn, "Sales Team") == sorted(
        [udn(base_dn, "cid"), udn(base_dn, "dee")])
    assert scim.patch(f"/Groups/{gid}", patch(
        {"op": "Replace", "path": "members", "value": []})).status_code == 204
    assert members_in_ldap(ldap, base_dn, "Sales Team") == [placeholder(base_dn)]


@pytest.mark.parametrize("form", ["path", "pathless"])
def test_rename_keeps_id_and_members(scim, ldap, base_dn, people, form):
    gid = make_group(scim, "Old Name", [people["ann"]])
    op = ({"op": "Replace", "path": "displayName", "value": "New, Name (R&D)"} if form == "path"
          else {"op": "replace", "value": {"displayName": "New, Name (R&D)"}})
    assert scim.patch(f"/Groups/{gid}", patch(op)).status_code == 204
    got = scim.get(f"/Groups/{gid}").json
    assert (got["id"], got["displayName"]) == (gid, "New, Name (R&D)")
    assert [m["value"] for m in got["members"]] == [people["ann"]]
    ldap.search(f"ou=Groups,{base_dn}", "(objectClass=groupOfNames)", SUBTREE,
                attributes=["cn", "entryUUID"])
    assert [(e.cn.value, e.entryUUID.value) for e in ldap.entries] == [("New, Name (R&D)", gid)]
    user = scim.get(f"/Users/{people['ann']}").json
    assert user["groups"][0]["display"] == "New, Name (R&D)"


def test_rename_onto_another_group_is_409_and_nothing_changes(scim, ldap, base_dn, people):
    make_group(scim, "Taken")
    gid = make_group(scim, "Mine")
    r = scim.patch(f"/Groups/{gid}", patch(
        {"op": "Add", "path": "members", "value": [{"value": people["ann"]}]},
        {"op": "Replace", "path": "displayName", "value": "TAKEN"}))
    assert (r.status_code, r.json["scimType"]) == (409, "uniqueness")
    assert members_in_ldap(ldap, base_dn, "Mine") == [placeholder(base_dn)]


def test_several_ops_are_atomic_unknown_member_changes_nothing(scim, ldap, base_dn, people):
    gid = make_group(scim, "Atomic", [people["ann"]])
    r = scim.patch(f"/Groups/{gid}", patch(
        {"op": "Replace", "path": "displayName", "value": "Renamed"},
        {"op": "Add", "path": "members", "value": [{"value": people["bob"]}]},
        {"op": "Add", "path": "members", "value": [{"value": ABSENT}]}))
    assert (r.status_code, r.json["scimType"]) == (400, "invalidValue")
    assert ABSENT in r.json["detail"]
    assert members_in_ldap(ldap, base_dn, "Atomic") == [udn(base_dn, "ann")]
    assert scim.get(f"/Groups/{gid}").json["displayName"] == "Atomic"


def test_nested_groups_direct_and_indirect_and_cycles(scim, ldap, base_dn, people):
    inner = make_group(scim, "Inner", [people["ann"]])
    outer = make_group(scim, "Outer", [inner])
    top = make_group(scim, "Top", [outer])
    scim.patch(f"/Groups/{inner}", patch({"op": "Add", "path": "members",
                                          "value": [{"value": top}]}))  # a cycle
    got = scim.get(f"/Groups/{outer}").json
    assert [(m["value"], m["type"]) for m in got["members"]] == [(inner, "Group")]
    groups = {g["value"]: g["type"] for g in scim.get(f"/Users/{people['ann']}").json["groups"]}
    assert groups == {inner: "direct", outer: "indirect", top: "indirect"}
    r = scim.patch(f"/Groups/{inner}", patch({"op": "Add", "path": "members",
                                              "value": [{"value": inner}]}))
    assert (r.status_code, r.json["scimType"]) == (400, "invalidValue")


def test_deleting_a_member_user_and_a_group_cascades(scim, ldap, base_dn, people):
    inner = make_group(scim, "Inner", [people["ann"]])
    outer = make_group(scim, "Outer", [inner, people["bob"]])
    assert scim.delete(f"/Users/{people['ann']}").status_code == 204
    assert members_in_ldap(ldap, base_dn, "Inner") == [placeholder(base_dn)]
    assert scim.delete(f"/Groups/{inner}").status_code == 204
    assert members_in_ldap(ldap, base_dn, "Outer") == [udn(base_dn, "bob")]
    ldap.search(f"uid=bob,ou=People,{base_dn}", "(objectClass=*)", BASE,
                attributes=["memberOf"])
    assert [m.lower() for m in ldap.entries[0].memberOf.values] == [
        f"cn=outer,ou=groups,{base_dn}".lower()]
    assert scim.delete(f"/Groups/{inner}").status_code == 404
    assert scim.delete(f"/Groups/{outer}").status_code == 204
    assert scim.get(f"/Users/{people['bob']}").json.get("groups") is None


def test_put_replaces_name_external_id_and_members(scim, ldap, base_dn, people):
    gid = make_group(scim, "Put", [people["ann"]])
    r = scim.put(f"/Groups/{gid}", {"schemas": [entra.CORE_GROUP], "displayName": "Put2",
                                    "members": [{"value": people["bob"]}]})
    assert r.status_code == 200
    assert "externalId" not in r.json
    assert [m["value"] for m in r.json["members"]] == [people["bob"]]
    assert members_in_ldap(ldap, base_dn, "Put2") == [udn(base_dn, "bob")]


def test_if_match_stale_is_412(scim, ldap, base_dn, people):
    gid = make_group(scim, "Tagged")
    etag = scim.get(f"/Groups/{gid}").headers["ETag"]
    scim.patch(f"/Groups/{gid}", patch({"op": "Add", "path": "members",
                                        "value": [{"value": people["ann"]}]}))
    r = scim.patch(f"/Groups/{gid}", patch({"op": "Add", "path": "members", "value": [
        {"value": people["bob"]}]}), headers={"If-Match": etag})
    assert r.status_code == 412
    assert members_in_ldap(ldap, base_dn, "Tagged") == [udn(base_dn, "ann")]


def test_concurrent_adds_and_removes_lose_nothing(app, ldap, base_dn):
    from tests.conftest import Scim

    scim = Scim(app.test_client())
    ids = [scim.post("/Users", entra.minimal_user(f"m{i}")).json["id"] for i in range(40)]
    gid = make_group(scim, "Busy", ids[:20])
    errors: list[str] = []

    def work(chunk: list[str], op: str) -> None:
        client = Scim(app.test_client())
        for member in chunk:
            r = client.patch(f"/Groups/{gid}", patch({"op": op, "path": "members",
                                                      "value": [{"value": member}]}))
            if r.status_code != 204:
                errors.append(f"{r.status_code} {r.json}")

    threads = [threading.Thread(target=work, args=(ids[i:i + 10], "Remove"))
               for i in (0, 10)]
    threads += [threading.Thread(target=work, args=(ids[i:i + 10], "Add")) for i in (20, 30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert members_in_ldap(ldap, base_dn, "Busy") == sorted(
        udn(base_dn, f"m{i}") for i in range(20, 40))


def test_race_last_member_out_against_a_member_in(app, ldap, base_dn):
    from tests.conftest import Scim

    scim = Scim(app.test_client())
    for round_ in range(6):
        a = scim.post("/Users", entra.minimal_user(f"a{round_}")).json["id"]
        b = scim.post("/Users", entra.minimal_user(f"b{round_}")).json["id"]
        gid = make_group(scim, f"Race {round_}", [a])
        barrier = threading.Barrier(2)
        codes: list[int] = []

        def run(op: str, member: str, group: str, gate: threading.Barrier,
                out: list[int]) -> None:
            client = Scim(app.test_client())
            gate.wait()
            out.append(client.patch(f"/Groups/{group}", patch(
                {"op": op, "path": "members", "value": [{"value": member}]})).status_code)

        threads = [threading.Thread(target=run, args=("Remove", a, gid, barrier, codes)),
                   threading.Thread(target=run, args=("Add", b, gid, barrier, codes))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes == [204, 204]
        assert members_in_ldap(ldap, base_dn, f"Race {round_}") == [udn(base_dn, f"b{round_}")]
