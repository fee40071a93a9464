"""Group state on real slapd: empty groups, nesting, rename, delete, PUT, If-Match.

(entra-scim.md §7, checklist 19, 22, 27, 28.) The hidden placeholder member keeps an
empty ``groupOfNames`` valid; it must never be visible over SCIM, never sit beside a
real member, and never be missing from a group without real members.
"""

from __future__ import annotations

from typing import Any

from directory.repository import Repository
from tests import entra
from tests.contract.groups_support import (
    ABSENT,
    assert_error,
    assert_valid_membership,
    count_operations,
    entry_dn,
    eq,
    gdn,
    group_by_id,
    group_entries,
    make_group,
    member_ids,
    member_of,
    members_of,
    members_patch,
    people_fixture,  # noqa: F401 - the people fixture
    placeholder,
    referring,
    udn,
)
from tests.entra import patch

# --- empty groups and the placeholder -------------------------------------------------------


def test_placeholder_follows_the_first_and_last_real_member(scim, ldap, base_dn, people):
    gid = make_group(scim, "Lifecycle")
    assert members_of(ldap, base_dn, gid) == [placeholder(base_dn)]
    assert scim.get(f"/Groups/{gid}").json["members"] == []

    assert scim.patch(f"/Groups/{gid}", members_patch("Add", people["ann"])).status_code == 204
    assert members_of(ldap, base_dn, gid) == [udn(base_dn, "ann")]
    assert scim.patch(f"/Groups/{gid}", members_patch("Add", people["bob"])).status_code == 204
    assert scim.patch(f"/Groups/{gid}", members_patch("Remove", people["ann"])).status_code \
        == 204
    assert members_of(ldap, base_dn, gid) == [udn(base_dn, "bob")]

    assert scim.patch(f"/Groups/{gid}", members_patch("Remove", people["bob"])).status_code \
        == 204
    assert members_of(ldap, base_dn, gid) == [placeholder(base_dn)]
    assert scim.get(f"/Groups/{gid}").json["members"] == []
    assert member_of(ldap, udn(base_dn, "bob")) == []


def test_removing_every_member_at_once_restores_the_placeholder(scim, ldap, base_dn, people):
    everyone = [people[n] for n in ("ann", "bob", "cid", "dee", "eve")]
    gid = make_group(scim, "Crowd", everyone)
    r = scim.patch(f"/Groups/{gid}", members_patch("Remove", *everyone, ABSENT))
    assert r.status_code == 204
    assert members_of(ldap, base_dn, gid) == [placeholder(base_dn)]


def test_swapping_the_only_member_in_one_request(scim, ldap, base_dn, people):
    gid = make_group(scim, "Swap", [people["ann"]])
    r = scim.patch(f"/Groups/{gid}", patch(
        {"op": "Remove", "path": "members", "value": [{"value": people["ann"]}]},
        {"op": "Add", "path": "members", "value": [{"value": people["bob"]}]}))
    assert r.status_code == 204
    assert members_of(ldap, base_dn, gid) == [udn(base_dn, "bob")]


def test_the_placeholder_is_never_listed_or_counted(scim, ldap, base_dn, people):
    empty = make_group(scim, "Empty")
    make_group(scim, "Full", [people["ann"]])
    listed = scim.get("/Groups").json
    assert listed["totalResults"] == 2
    assert {g["id"]: g["members"] for g in listed["Resources"]}[empty] == []
    assert "empty-group-placeholder" not in str(listed)
    assert scim.get("/Groups", query_string={"filter": "members pr"}).json["totalResults"] == 1
    assert scim.get("/Users").json["totalResults"] == 5
    for group in group_entries(ldap, base_dn):
        assert_valid_membership(group, base_dn)


# --- nested groups --------------------------------------------------------------------------


def test_nested_groups_and_user_groups_direct_and_indirect(scim, ldap, base_dn, people):
    inner = make_group(scim, "Inner", [people["ann"]])
    outer = make_group(scim, "Outer", [inner, people["bob"]])
    top = make_group(scim, "Top")
    assert scim.patch(f"/Groups/{top}", patch(
        {"op": "Add", "path": "members", "value": [{"value": outer, "type": "Group"}]}
    )).status_code == 204
    got = scim.get(f"/Groups/{outer}").json
    assert sorted((m["value"], m["type"]) for m in got["members"]) == sorted(
        [(inner, "Group"), (people["bob"], "User")])
    assert members_of(ldap, base_dn, top) == [gdn(base_dn, "outer")]

    groups = scim.get(f"/Users/{people['ann']}").json["groups"]
    assert {g["value"]: (g["type"], g["display"]) for g in groups} == {
        inner: ("direct", "Inner"), outer: ("indirect", "Outer"), top: ("indirect", "Top")}
    assert groups[0]["$ref"] == f"http://localhost/scim/v2/Groups/{inner}"
    bob = {g["value"]: g["type"] for g in scim.get(f"/Users/{people['bob']}").json["groups"]}
    assert bob == {outer: "direct", top: "indirect"}
    assert member_of(ldap, udn(base_dn, "ann")) == [gdn(base_dn, "inner")]
    excluded = scim.get(f"/Users/{people['ann']}?excludedAttributes=groups").json
    assert "groups" not in excluded


def test_membership_cycles_do_not_hang(scim, ldap, base_dn, people):
    a = make_group(scim, "Cycle A", [people["ann"]])
    b = make_group(scim, "Cycle B", [a])
    c = make_group(scim, "Cycle C", [b])
    assert scim.patch(f"/Groups/{a}", members_patch("Add", c)).status_code == 204
    assert scim.patch(f"/Groups/{b}", members_patch("Add", a)).status_code == 204  # 2-cycle
    assert members_of(ldap, base_dn, a) == sorted([gdn(base_dn, "cycle c"),
                                                  udn(base_dn, "ann")])
    groups = {g["value"]: g["type"] for g in scim.get(f"/Users/{people['ann']}").json["groups"]}
    assert groups == {a: "direct", b: "indirect", c: "indirect"}
    for gid in (a, b, c):
        assert scim.get(f"/Groups/{gid}").status_code == 200
    assert scim.get("/Groups").json["totalResults"] == 3
    assert scim.delete(f"/Groups/{b}").status_code == 204
    assert members_of(ldap, base_dn, c) == [placeholder(base_dn)]
    assert members_of(ldap, base_dn, a) == sorted([gdn(base_dn, "cycle c"),
                                                  udn(base_dn, "ann")])


# --- rename ---------------------------------------------------------------------------------


def test_rename_keeps_id_member_dns_and_member_of(scim, ldap, base_dn, people):
    gid = make_group(scim, "Before", [people["ann"], people["bob"]])
    parent = make_group(scim, "Parent", [gid])
    new = "After, Renamed"
    r = scim.patch(f"/Groups/{gid}", patch({"op": "Replace", "path": "displayName",
                                            "value": new}))
    assert r.status_code == 204
    new_dn = entry_dn(ldap, f"cn=After\\, Renamed,ou=Groups,{base_dn}")
    assert new_dn is not None
    assert entry_dn(ldap, f"cn=Before,ou=Groups,{base_dn}") is None
    group = group_by_id(ldap, base_dn, gid)
    assert (group.dn, group.cn) == (new_dn, [new])
    assert group.members == sorted([udn(base_dn, "ann"), udn(base_dn, "bob")])
    assert members_of(ldap, base_dn, parent) == [new_dn]  # the parent follows at once
    assert referring(ldap, base_dn, f"cn=Before,ou=Groups,{base_dn}") == []
    assert member_of(ldap, udn(base_dn, "ann")) == [new_dn]
    assert [m["value"] for m in scim.get(f"/Groups/{parent}").json["members"]] == [gid]
    groups = {g["value"]: g for g in scim.get(f"/Users/{people['ann']}").json["groups"]}
    assert (groups[gid]["display"], groups[gid]["type"]) == (new, "direct")
    assert groups[parent]["type"] == "indirect"


def test_renaming_a_member_user_keeps_its_memberships(scim, ldap, base_dn, people):
    gid = make_group(scim, "Team", [people["ann"], people["bob"]])
    r = scim.patch(f"/Users/{people['ann']}", patch(
        {"op": "Replace", "path": "userName", "value": "ann.renamed"}))
    assert r.status_code == 200, r.json
    assert members_of(ldap, base_dn, gid) == sorted([udn(base_dn, "ann.renamed"),
                                                    udn(base_dn, "bob")])
    assert member_ids(scim.get(f"/Groups/{gid}").json) == sorted([people["ann"], people["bob"]])
    assert member_of(ldap, udn(base_dn, "ann.renamed")) == [gdn(base_dn, "team")]


def test_rename_and_member_change_in_one_request(scim, ldap, base_dn, people):
    gid = make_group(scim, "Both", [people["ann"]])
    r = scim.patch(f"/Groups/{gid}", patch(
        {"op": "replace", "value": {"displayName": "Both 2", "externalId": "e2"}},
        {"op": "Remove", "path": "members", "value": [{"value": people["ann"]}]},
        {"op": "Add", "path": "members", "value": [{"value": people["cid"]}]}))
    assert r.status_code == 204
    group = group_by_id(ldap, base_dn, gid)
    assert (group.cn, group.external_id, group.members) == (
        ["Both 2"], "e2", [udn(base_dn, "cid")])


# --- delete ---------------------------------------------------------------------------------


def test_deleting_a_user_removes_it_from_every_group(scim, ldap, base_dn, people):
    only = make_group(scim, "Only Ann", [people["ann"]])
    shared = make_group(scim, "Shared", [people["ann"], people["bob"]])
    untouched = make_group(scim, "Untouched", [people["cid"]])
    assert scim.delete(f"/Users/{people['ann']}").status_code == 204
    assert members_of(ldap, base_dn, only) == [placeholder(base_dn)]
    assert members_of(ldap, base_dn, shared) == [udn(base_dn, "bob")]
    assert members_of(ldap, base_dn, untouched) == [udn(base_dn, "cid")]
    assert referring(ldap, base_dn, udn(base_dn, "ann")) == []  # no dangling DN anywhere
    assert scim.get(f"/Groups/{only}").json["members"] == []
    assert member_ids(scim.get(f"/Groups/{shared}").json) == [people["bob"]]
    assert_error(scim.delete(f"/Users/{people['ann']}"), 404)
    for group in group_entries(ldap, base_dn):
        assert_valid_membership(group, base_dn)


def test_deleting_a_group_leaves_parents_and_members_memberof(scim, ldap, base_dn, people):
    inner = make_group(scim, "Inner", [people["ann"], people["bob"]])
    sole_parent = make_group(scim, "Sole Parent", [inner])
    parent = make_group(scim, "Parent", [inner, people["cid"]])
    assert scim.delete(f"/Groups/{inner}").status_code == 204
    assert group_by_id(ldap, base_dn, inner) is None
    assert members_of(ldap, base_dn, sole_parent) == [placeholder(base_dn)]
    assert members_of(ldap, base_dn, parent) == [udn(base_dn, "cid")]
    assert referring(ldap, base_dn, gdn(base_dn, "inner")) == []
    assert member_of(ldap, udn(base_dn, "ann")) == []
    for name in ("ann", "bob"):  # the member users themselves are untouched
        user = scim.get(f"/Users/{people[name]}")
        assert user.status_code == 200
        assert "groups" not in user.json
    assert_error(scim.get(f"/Groups/{inner}"), 404)
    assert_error(scim.delete(f"/Groups/{inner}"), 404)
    found = scim.get(f"/Groups?filter={eq('displayName', 'Inner')}").json
    assert found["totalResults"] == 0
    assert member_ids(scim.get(f"/Groups/{parent}").json) == [people["cid"]]


def test_a_deleted_name_can_be_created_again(scim, ldap, base_dn, people):
    first = make_group(scim, "Reborn", [people["ann"]])
    assert scim.delete(f"/Groups/{first}").status_code == 204
    second = make_group(scim, "reborn")
    assert second != first
    assert members_of(ldap, base_dn, second) == [placeholder(base_dn)]


# --- PUT ------------------------------------------------------------------------------------


def test_put_replaces_display_name_external_id_and_members(scim, ldap, base_dn, people):
    gid = make_group(scim, "Put", [people["ann"], people["bob"]])
    r = scim.put(f"/Groups/{gid}", {"schemas": [entra.CORE_GROUP], "displayName": "Put 2",
                                    "externalId": "ext-put",
                                    "members": [{"value": people["bob"]},
                                                {"value": people["cid"]}]})
    assert r.status_code == 200, r.json
    assert (r.json["id"], r.json["displayName"], r.json["externalId"]) == (
        gid, "Put 2", "ext-put")
    assert member_ids(r.json) == sorted([people["bob"], people["cid"]])
    group = group_by_id(ldap, base_dn, gid)
    assert (group.cn, group.external_id) == (["Put 2"], "ext-put")
    assert group.members == sorted([udn(base_dn, "bob"), udn(base_dn, "cid")])

    r = scim.put(f"/Groups/{gid}", {"schemas": [entra.CORE_GROUP], "displayName": "Put 2"})
    assert r.status_code == 200, r.json
    assert "externalId" not in r.json
    assert r.json["members"] == []
    group = group_by_id(ldap, base_dn, gid)
    assert (group.external_id, group.members) == (None, [placeholder(base_dn)])


def test_put_with_an_unknown_member_or_taken_name_changes_nothing(scim, ldap, base_dn, people):
    make_group(scim, "Taken")
    gid = make_group(scim, "Put", [people["ann"]])
    before = group_by_id(ldap, base_dn, gid)
    r = scim.put(f"/Groups/{gid}", {"schemas": [entra.CORE_GROUP], "displayName": "Put 3",
                                    "members": [{"value": ABSENT}]})
    assert ABSENT in assert_error(r, 400, "invalidValue")["detail"]
    r = scim.put(f"/Groups/{gid}", {"schemas": [entra.CORE_GROUP], "displayName": "TAKEN",
                                    "members": [{"value": people["bob"]}]})
    assert_error(r, 409, "uniqueness")
    assert group_by_id(ldap, base_dn, gid) == before
    assert_error(scim.put(f"/Groups/{ABSENT}", {"schemas": [entra.CORE_GROUP],
                                                "displayName": "x"}), 404)


# --- If-Match -------------------------------------------------------------------------------


def test_stale_if_match_is_412_and_changes_nothing(scim, ldap, base_dn, people):
    gid = make_group(scim, "Tagged", [people["ann"]])
    stale = scim.get(f"/Groups/{gid}").headers["ETag"]
    assert scim.patch(f"/Groups/{gid}", members_patch("Add", people["bob"])).status_code == 204
    before = group_by_id(ldap, base_dn, gid)
    fresh = scim.get(f"/Groups/{gid}").headers["ETag"]
    assert fresh != stale
    attempts = [
        scim.patch(f"/Groups/{gid}", members_patch("Add", people["cid"]),
                   headers={"If-Match": stale}),
        scim.patch(f"/Groups/{gid}", members_patch("Remove", people["ann"]),
                   headers={"If-Match": stale}),
        scim.patch(f"/Groups/{gid}", patch({"op": "Replace", "path": "displayName",
                                            "value": "Stale"}), headers={"If-Match": stale}),
        scim.put(f"/Groups/{gid}", {"schemas": [entra.CORE_GROUP], "displayName": "Stale"},
                 headers={"If-Match": stale}),
        scim.delete(f"/Groups/{gid}", headers={"If-Match": stale}),
    ]
    for r in attempts:
        assert_error(r, 412)
    assert group_by_id(ldap, base_dn, gid) == before

    r = scim.patch(f"/Groups/{gid}", members_patch("Add", people["cid"]),
                   headers={"If-Match": fresh})
    assert r.status_code == 204
    assert members_of(ldap, base_dn, gid) == sorted(
        udn(base_dn, n) for n in ("ann", "bob", "cid"))
    current = scim.get(f"/Groups/{gid}").headers["ETag"]
    assert scim.delete(f"/Groups/{gid}", headers={"If-Match": current}).status_code == 204


def test_a_users_groups_cost_one_search_per_nesting_level(scim, ldap, base_dn, people,
                                                          monkeypatch):
    inner = make_group(scim, "Inner", [people["ann"]])
    make_group(scim, "Solo", [people["bob"]])
    counts = count_operations(monkeypatch)
    assert "groups" not in scim.get(f"/Users/{people['cid']}").json
    assert counts == {"search": 2}  # the user, then the groups listing it: none
    counts.clear()
    solo = scim.get(f"/Users/{people['bob']}").json["groups"]
    assert [g["type"] for g in solo] == ["direct"]
    assert counts == {"search": 3}  # the user, the groups listing it, theirs: none
    outer = make_group(scim, "Outer", [inner])
    counts.clear()
    groups = scim.get(f"/Users/{people['ann']}").json["groups"]
    assert {g["value"]: g["type"] for g in groups} == {inner: "direct", outer: "indirect"}
    assert counts == {"search": 4}  # one more level: Outer's own parents (none)


def test_a_users_groups_are_found_from_the_group_side(scim, ldap, base_dn, people,
                                                      monkeypatch):
    """memberOf is never asked for: slapd's dynlist computes it by going through every
    group of the directory, so its cost would grow with the number of groups."""
    make_group(scim, "Team", [people["ann"]])
    asked: list[str] = []
    original = Repository.search

    def recording(self: Repository, base: str, flt: str, attributes: Any,
                  **kwargs: Any) -> Any:
        attributes = list(attributes)
        asked.extend(str(a).lower() for a in attributes)
        return original(self, base, flt, attributes, **kwargs)

    monkeypatch.setattr(Repository, "search", recording)
    assert [g["display"] for g in scim.get(f"/Users/{people['ann']}").json["groups"]] == ["Team"]
    listed = scim.get("/Users?sortBy=userName&count=2").json["Resources"]
    assert [len(u.get("groups", [])) for u in listed] == [1, 0]
    patched = scim.patch(f"/Users/{people['ann']}", patch(
        {"op": "replace", "path": "title", "value": "Lead"})).json
    assert [g["display"] for g in patched["groups"]] == ["Team"]
    assert asked and "memberof" not in asked


def test_listing_users_does_not_search_per_user(scim, ldap, base_dn, people, monkeypatch):
    for name in ("ann", "bob", "cid", "dee"):
        make_group(scim, f"Team {name}", [people[name]])
    costs = []
    for count in (2, 4):
        counts = count_operations(monkeypatch)
        page = scim.get(f"/Users?count={count}&sortBy=userName").json["Resources"]
        assert all(len(u["groups"]) == 1 for u in page[:count])
        costs.append(dict(counts))
    assert costs[0] == costs[1]


def test_deleting_a_user_finds_groups_and_reports_in_one_search(scim, ldap, base_dn, people,
                                                                 monkeypatch):
    gid = make_group(scim, "Team", [people["ann"], people["bob"]])
    manager = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    assert scim.patch(f"/Users/{people['bob']}", patch(
        {"op": "add", "path": f"{manager}:manager", "value": people["ann"]})).status_code == 200
    counts = count_operations(monkeypatch)
    assert scim.delete(f"/Users/{people['ann']}").status_code == 204
    # find; the referrers; their two modifies; the delete; the referrers again (none
    # were written meanwhile)
    assert counts == {"search": 3, "modify": 2, "delete": 1}
    assert member_ids(scim.get(f"/Groups/{gid}").json) == [people["bob"]]
    assert "manager" not in scim.get(f"/Users/{people['bob']}").json.get(manager, {})


def test_a_user_patch_sends_the_write_and_the_groups_search_together(scim, people,
                                                                    monkeypatch):
    inner = make_group(scim, "Inner", [people["ann"]])
    outer = make_group(scim, "Outer", [inner])
    counts = count_operations(monkeypatch)
    r = scim.patch(f"/Users/{people['ann']}", patch(
        {"op": "replace", "path": "title", "value": "Captain"}))
    assert r.status_code == 200 and r.json["title"] == "Captain"
    assert {g["value"]: g["type"] for g in r.json["groups"]} == {inner: "direct",
                                                                 outer: "indirect"}
    # read; then the modify and the search for the groups listing Ann in one exchange;
    # then Inner's parents; then Outer's (none)
    assert counts == {"search": 4, "modify": 1}
    counts.clear()
    r = scim.patch(f"/Users/{people['bob']}", patch(
        {"op": "replace", "path": "title", "value": "Mate"}))
    assert r.status_code == 200 and "groups" not in r.json
    assert counts == {"search": 2, "modify": 1}  # read; the modify with its groups search
