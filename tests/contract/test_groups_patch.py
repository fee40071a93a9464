"""Group PATCH on real slapd in every form Entra sends (entra-scim.md §7, checklist 25–27).

Each test checks the 204 and the member DNs (and names) slapd holds afterwards.
"""

from __future__ import annotations

import pytest

from tests.contract.groups_support import (
    ABSENT,
    assert_error,
    entry_dn,
    eq,
    gdn,
    group_by_id,
    make_group,
    member_ids,
    member_of,
    members_of,
    members_patch,
    people_fixture,  # noqa: F401 - the people fixture
    placeholder,
    udn,
)
from tests.entra import patch


def dns(base_dn: str, *names: str) -> list[str]:
    return sorted(udn(base_dn, n) for n in names)


def no_content(response) -> None:
    assert response.status_code == 204, response.json
    assert response.data == b""


# --- Add ------------------------------------------------------------------------------------


def test_add_one_member_entra_form(scim, ldap, base_dn, people):
    gid = make_group(scim)
    no_content(scim.patch(f"/Groups/{gid}", members_patch("Add", people["ann"])))
    assert members_of(ldap, base_dn, gid) == dns(base_dn, "ann")
    assert member_of(ldap, udn(base_dn, "ann")) == [gdn(base_dn, "sales team")]


def test_add_many_values_and_several_ops_in_one_request(scim, ldap, base_dn, people):
    gid = make_group(scim)
    body = patch(
        {"op": "Add", "path": "members", "value": [
            {"$ref": None, "value": people["ann"]}, {"$ref": None, "value": people["bob"]}]},
        {"op": "add", "path": "members", "value": [{"value": people["cid"]}]},
        {"op": "ADD", "path": "members", "value": [{"value": people["dee"]},
                                                   {"value": people["eve"]}]})
    no_content(scim.patch(f"/Groups/{gid}", body))
    assert members_of(ldap, base_dn, gid) == dns(base_dn, "ann", "bob", "cid", "dee", "eve")


def test_re_adding_a_member_is_a_no_op(scim, ldap, base_dn, people):
    gid = make_group(scim, "Sales Team", [people["ann"]])
    body = members_patch("Add", people["ann"], people["bob"])
    for _ in range(3):  # Entra retries after a timeout: the same PATCH again
        no_content(scim.patch(f"/Groups/{gid}", body))
        assert members_of(ldap, base_dn, gid) == dns(base_dn, "ann", "bob")
    no_content(scim.patch(f"/Groups/{gid}", members_patch("Add", people["ann"].upper())))
    assert members_of(ldap, base_dn, gid) == dns(base_dn, "ann", "bob")


def test_adding_the_same_id_twice_in_one_request(scim, ldap, base_dn, people):
    gid = make_group(scim)
    ann = people["ann"]
    no_content(scim.patch(f"/Groups/{gid}", patch(
        {"op": "Add", "path": "members", "value": [{"value": ann}, {"value": ann.upper()}]},
        {"op": "Add", "path": "members", "value": [{"value": ann}]})))
    assert members_of(ldap, base_dn, gid) == dns(base_dn, "ann")


@pytest.mark.parametrize("bad", [ABSENT, "not-a-uuid"])
def test_adding_an_unknown_id_is_400_naming_it_and_changes_nothing(
        scim, ldap, base_dn, people, bad):
    gid = make_group(scim, "Sales Team", [people["ann"]])
    before = group_by_id(ldap, base_dn, gid)
    r = scim.patch(f"/Groups/{gid}", members_patch("Add", people["bob"], bad))
    assert bad in assert_error(r, 400, "invalidValue")["detail"]
    assert group_by_id(ldap, base_dn, gid) == before


def test_a_user_id_is_not_a_group_to_patch(scim, people):
    assert_error(scim.patch(f"/Groups/{people['ann']}", members_patch("Add", people["bob"])),
                 404)
    assert_error(scim.patch(f"/Groups/{ABSENT}", members_patch("Add", people["bob"])), 404)


# --- Remove ---------------------------------------------------------------------------------


def test_remove_with_a_value_list_removes_exactly_those(scim, ldap, base_dn, people):
    gid = make_group(scim, "Sales Team", [people[n] for n in ("ann", "bob", "cid", "dee")])
    no_content(scim.patch(f"/Groups/{gid}", members_patch("Remove", people["ann"],
                                                          people["cid"])))
    assert members_of(ldap, base_dn, gid) == dns(base_dn, "bob", "dee")
    assert member_of(ldap, udn(base_dn, "ann")) == []


def test_remove_with_a_value_filter_path(scim, ldap, base_dn, people):
    gid = make_group(scim, "Sales Team", [people[n] for n in ("ann", "bob", "cid")])
    no_content(scim.patch(f"/Groups/{gid}", patch(
        {"op": "remove", "path": f'members[value eq "{people["bob"]}"]'})))
    assert members_of(ldap, base_dn, gid) == dns(base_dn, "ann", "cid")
    both = f'members[value eq "{people["ann"]}" or value eq "{people["cid"]}"]'
    no_content(scim.patch(f"/Groups/{gid}", patch({"op": "remove", "path": both})))
    assert members_of(ldap, base_dn, gid) == [placeholder(base_dn)]


def test_removing_non_members_is_a_no_op(scim, ldap, base_dn, people):
    gid = make_group(scim, "Sales Team", [people["ann"], people["bob"]])
    before = group_by_id(ldap, base_dn, gid)
    for body in (members_patch("Remove", people["eve"]),
                 members_patch("Remove", ABSENT, "not-a-uuid"),
                 patch({"op": "remove", "path": f'members[value eq "{people["cid"]}"]'})):
        no_content(scim.patch(f"/Groups/{gid}", body))
    assert group_by_id(ldap, base_dn, gid).members == before.members
    no_content(scim.patch(f"/Groups/{gid}", members_patch("Remove", people["ann"],
                                                          people["eve"])))
    assert members_of(ldap, base_dn, gid) == dns(base_dn, "bob")


def test_removing_the_same_member_twice_is_a_no_op(scim, ldap, base_dn, people):
    gid = make_group(scim, "Sales Team", [people["ann"], people["bob"]])
    body = members_patch("Remove", people["ann"])
    no_content(scim.patch(f"/Groups/{gid}", body))
    no_content(scim.patch(f"/Groups/{gid}", body))
    assert members_of(ldap, base_dn, gid) == dns(base_dn, "bob")


def test_remove_members_without_a_value_removes_all(scim, ldap, base_dn, people):
    gid = make_group(scim, "Sales Team", [people[n] for n in ("ann", "bob", "cid")])
    no_content(scim.patch(f"/Groups/{gid}", patch({"op": "Remove", "path": "members"})))
    assert members_of(ldap, base_dn, gid) == [placeholder(base_dn)]
    assert scim.get(f"/Groups/{gid}").json["members"] == []
    no_content(scim.patch(f"/Groups/{gid}", patch({"op": "Remove", "path": "members"})))
    assert members_of(ldap, base_dn, gid) == [placeholder(base_dn)]


# --- Replace --------------------------------------------------------------------------------


def test_replace_members(scim, ldap, base_dn, people):
    gid = make_group(scim, "Sales Team", [people["ann"], people["bob"]])
    no_content(scim.patch(f"/Groups/{gid}", patch(
        {"op": "Replace", "path": "members",
         "value": [{"value": people["bob"]}, {"value": people["cid"]}]})))
    assert members_of(ldap, base_dn, gid) == dns(base_dn, "bob", "cid")
    no_content(scim.patch(f"/Groups/{gid}", patch(
        {"op": "replace", "path": "members", "value": []})))
    assert members_of(ldap, base_dn, gid) == [placeholder(base_dn)]
    no_content(scim.patch(f"/Groups/{gid}", patch(
        {"op": "replace", "value": {"members": [{"value": people["dee"]}]}})))
    assert members_of(ldap, base_dn, gid) == dns(base_dn, "dee")


def test_replace_then_add_and_remove_in_one_request(scim, ldap, base_dn, people):
    gid = make_group(scim, "Sales Team", [people["ann"]])
    no_content(scim.patch(f"/Groups/{gid}", patch(
        {"op": "Remove", "path": "members"},
        {"op": "Add", "path": "members", "value": [{"value": people["bob"]},
                                                   {"value": people["cid"]}]},
        {"op": "Remove", "path": "members", "value": [{"value": people["cid"]}]})))
    assert members_of(ldap, base_dn, gid) == dns(base_dn, "bob")


def test_ops_apply_in_request_order(scim, ldap, base_dn, people):
    gid = make_group(scim, "Sales Team", [people["ann"]])
    ann, bob = people["ann"], people["bob"]
    no_content(scim.patch(f"/Groups/{gid}", patch(
        {"op": "Remove", "path": "members", "value": [{"value": ann}]},
        {"op": "Add", "path": "members", "value": [{"value": ann.upper()}, {"value": bob}]},
        {"op": "remove", "path": f'members[value eq "{bob.upper()}"]'})))
    assert members_of(ldap, base_dn, gid) == dns(base_dn, "ann")


@pytest.mark.parametrize("form", ["path", "pathless"])
def test_replace_display_name_keeps_id_and_members(scim, ldap, base_dn, people, form):
    gid = make_group(scim, "Old Name", [people["ann"], people["bob"]])
    new = "New, Name (R&D)"
    op = ({"op": "Replace", "path": "displayName", "value": new} if form == "path"
          else {"op": "replace", "value": {"displayName": new}})
    no_content(scim.patch(f"/Groups/{gid}", patch(op)))
    got = scim.get(f"/Groups/{gid}").json
    assert (got["id"], got["displayName"]) == (gid, new)
    assert member_ids(got) == sorted([people["ann"], people["bob"]])
    group = group_by_id(ldap, base_dn, gid)
    assert group.dn == entry_dn(ldap, f"cn=New\\, Name (R&D),ou=Groups,{base_dn}")
    assert group.cn == [new]
    assert group.members == dns(base_dn, "ann", "bob")
    assert member_of(ldap, udn(base_dn, "ann")) == [group.dn]
    found = scim.get(f"/Groups?excludedAttributes=members&filter={eq('displayName', new)}")
    assert [g["id"] for g in found.json["Resources"]] == [gid]
    assert scim.get(f"/Groups?filter={eq('displayName', 'Old Name')}").json[
        "totalResults"] == 0


def test_rename_changing_only_the_case(scim, ldap, base_dn, people):
    gid = make_group(scim, "Sales", [people["ann"]])
    no_content(scim.patch(f"/Groups/{gid}", patch(
        {"op": "Replace", "path": "displayName", "value": "SALES"})))
    assert scim.get(f"/Groups/{gid}").json["displayName"] == "SALES"
    group = group_by_id(ldap, base_dn, gid)
    assert group.cn == ["SALES"]
    assert group.members == dns(base_dn, "ann")


def test_rename_onto_another_group_is_409_and_nothing_changes(scim, ldap, base_dn, people):
    make_group(scim, "Taken")
    gid = make_group(scim, "Mine")
    before = group_by_id(ldap, base_dn, gid)
    r = scim.patch(f"/Groups/{gid}", patch(
        {"op": "Add", "path": "members", "value": [{"value": people["ann"]}]},
        {"op": "Replace", "path": "displayName", "value": "TAKEN"}))
    assert_error(r, 409, "uniqueness")
    assert group_by_id(ldap, base_dn, gid) == before


def test_replace_and_remove_external_id(scim, ldap, base_dn, people):
    gid = make_group(scim, "Sales Team", [people["ann"]])
    no_content(scim.patch(f"/Groups/{gid}", patch(
        {"op": "Replace", "path": "externalId", "value": "EXT-2"})))
    assert group_by_id(ldap, base_dn, gid).external_id == "EXT-2"
    assert scim.get(f"/Groups/{gid}").json["externalId"] == "EXT-2"
    no_content(scim.patch(f"/Groups/{gid}", patch({"op": "Remove", "path": "externalId"})))
    assert group_by_id(ldap, base_dn, gid).external_id is None
    assert "externalId" not in scim.get(f"/Groups/{gid}").json
    assert members_of(ldap, base_dn, gid) == dns(base_dn, "ann")


# --- atomicity and errors -------------------------------------------------------------------


def test_a_bad_id_in_the_last_op_changes_nothing_at_all(scim, ldap, base_dn, people):
    gid = make_group(scim, "Atomic", [people["ann"], people["bob"]])
    before = group_by_id(ldap, base_dn, gid)
    r = scim.patch(f"/Groups/{gid}", patch(
        {"op": "Replace", "path": "displayName", "value": "Renamed"},
        {"op": "Replace", "path": "externalId", "value": "changed"},
        {"op": "Remove", "path": "members", "value": [{"value": people["ann"]}]},
        {"op": "Add", "path": "members", "value": [{"value": people["cid"]}]},
        {"op": "Add", "path": "members", "value": [{"value": ABSENT}]}))
    detail = assert_error(r, 400, "invalidValue")["detail"]
    assert ABSENT in detail
    assert group_by_id(ldap, base_dn, gid) == before  # DN, name, members, externalId, CSN
    got = scim.get(f"/Groups/{gid}").json
    assert got["displayName"] == "Atomic"
    assert scim.get(f"/Groups?filter={eq('displayName', 'Renamed')}").json[
        "totalResults"] == 0


def test_a_group_cannot_contain_itself(scim, ldap, base_dn, people):
    gid = make_group(scim, "Selfish", [people["ann"]])
    before = group_by_id(ldap, base_dn, gid)
    for body in (members_patch("Add", gid),
                 patch({"op": "Replace", "path": "members", "value": [{"value": gid}]}),
                 members_patch("Add", people["bob"], gid.upper())):
        assert_error(scim.patch(f"/Groups/{gid}", body), 400, "invalidValue")
    assert group_by_id(ldap, base_dn, gid) == before


@pytest.mark.parametrize("body, scim_type", [
    ({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}, "invalidSyntax"),
    (patch({"op": "Merge", "path": "members", "value": []}), "invalidSyntax"),
    (patch({"op": "add", "path": 'members[value eq "x"]', "value": [{"value": "x"}]}),
     "invalidValue"),
    (patch({"op": "remove", "path": 'members[display eq "x"]'}), "invalidValue"),
    (patch({"op": "add", "path": "members", "value": [{"display": "no value"}]}),
     "invalidValue"),
    (patch({"op": "replace", "path": "displayName", "value": None}), "invalidValue"),
    (patch({"op": "replace", "path": "id", "value": ABSENT}), "mutability"),
])
def test_malformed_patches_are_400_and_change_nothing(scim, ldap, base_dn, people, body,
                                                      scim_type):
    gid = make_group(scim, "Sales Team", [people["ann"]])
    before = group_by_id(ldap, base_dn, gid)
    assert_error(scim.patch(f"/Groups/{gid}", body), 400, scim_type)
    assert group_by_id(ldap, base_dn, gid) == before


def test_patch_responses_carry_no_member_list(scim, people):
    gid = make_group(scim)
    r = scim.patch(f"/Groups/{gid}", members_patch("Add", people["ann"]))
    assert r.status_code == 204
    assert "members" not in r.get_data(as_text=True)
