"""Groups on real slapd: create, read, Entra's match query (entra-scim.md §7, checklist 23–24).

Every test checks the HTTP answer and the group entry read back with the plain admin
connection. PATCH is in test_groups_patch.py; empty groups, nesting, rename, delete,
PUT and If-Match in test_groups_lifecycle.py; concurrent writers in
test_groups_concurrency.py.
"""

from __future__ import annotations

import pytest

from directory.repository import BATCH, Repository
from tests import entra
from tests.contract.groups_support import (
    ABSENT,
    assert_error,
    count_operations,
    eq,
    gdn,
    group_by_id,
    group_entries,
    make_group,
    member_ids,
    member_of,
    members_patch,
    people_fixture,  # noqa: F401 - the people fixture
    placeholder,
    udn,
)

MS_GROUP_SCHEMA = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
EXTERNAL_ID = "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"


# --- create ---------------------------------------------------------------------------------


def test_entra_create_body_makes_an_empty_group_holding_only_the_placeholder(
        scim, ldap, base_dn):
    body = entra.group("Sales Team")
    assert MS_GROUP_SCHEMA in body["schemas"]
    r = scim.post("/Groups", body)
    assert r.status_code == 201, r.json
    assert r.headers["Content-Type"] == "application/scim+json"
    got = r.json
    assert got["displayName"] == "Sales Team"
    assert got["externalId"] == EXTERNAL_ID
    assert got["members"] == []
    assert got["schemas"] == [entra.CORE_GROUP]
    assert got["meta"]["resourceType"] == "Group"
    assert got["meta"]["location"] == r.headers["Location"]
    assert r.headers["Location"].endswith(f"/scim/v2/Groups/{got['id']}")
    assert r.headers["ETag"] == got["meta"]["version"]

    [group] = group_entries(ldap, base_dn)
    assert group.dn == gdn(base_dn, "sales team")
    assert group.uuid == got["id"]
    assert group.cn == ["Sales Team"]
    assert group.external_id == EXTERNAL_ID
    assert {"groupofnames", "scimresource"} <= group.classes
    assert group.members == [placeholder(base_dn)]


def test_create_with_members_writes_their_dns(scim, ldap, base_dn, people):
    inner = make_group(scim, "Inner")
    r = scim.post("/Groups", entra.group("Team", [people["ann"], people["bob"], inner]))
    assert r.status_code == 201, r.json
    by_id = {m["value"]: m for m in r.json["members"]}
    assert set(by_id) == {people["ann"], people["bob"], inner}
    assert by_id[people["ann"]] == {
        "value": people["ann"], "type": "User",
        "$ref": f"http://localhost/scim/v2/Users/{people['ann']}"}
    assert by_id[inner]["type"] == "Group"
    assert by_id[inner]["$ref"] == f"http://localhost/scim/v2/Groups/{inner}"

    group = group_by_id(ldap, base_dn, r.json["id"])
    assert group is not None
    assert group.members == sorted(
        [udn(base_dn, "ann"), udn(base_dn, "bob"), gdn(base_dn, "inner")])
    assert member_of(ldap, udn(base_dn, "ann")) == [gdn(base_dn, "team")]


def test_create_with_the_same_member_twice_stores_it_once(scim, ldap, base_dn, people):
    ann = people["ann"]
    r = scim.post("/Groups", entra.group("Twice", [ann, ann, ann.upper()]))
    assert r.status_code == 201, r.json
    assert member_ids(r.json) == [ann]
    assert group_by_id(ldap, base_dn, r.json["id"]).members == [udn(base_dn, "ann")]


def test_duplicate_display_name_in_another_case_is_409_and_writes_nothing(
        scim, ldap, base_dn, people):
    gid = make_group(scim, "Sales Team", [people["ann"]])
    for name in ("Sales Team", "SALES TEAM", "sales team"):
        r = scim.post("/Groups", entra.group(name, [people["bob"]]))
        body = assert_error(r, 409, "uniqueness")
        assert "Sales Team" in body["detail"] or name in body["detail"]
    [group] = group_entries(ldap, base_dn)
    assert (group.uuid, group.cn, group.members) == (gid, ["Sales Team"], [udn(base_dn, "ann")])


def test_create_with_an_unknown_member_is_400_naming_it_and_writes_nothing(
        scim, ldap, base_dn, people):
    for bad in (ABSENT, "not-a-uuid"):
        r = scim.post("/Groups", entra.group("Ghosts", [people["ann"], bad]))
        assert bad in assert_error(r, 400, "invalidValue")["detail"]
    assert group_entries(ldap, base_dn) == []


def test_create_needs_a_display_name(scim, ldap, base_dn):
    for body in ({"schemas": [entra.CORE_GROUP]},
                 {"schemas": [entra.CORE_GROUP], "displayName": ""}):
        assert "displayName" in assert_error(scim.post("/Groups", body), 400)["detail"]
    assert group_entries(ldap, base_dn) == []


def test_display_names_with_dn_and_filter_metacharacters(scim, ldap, base_dn, people):
    names = ["R&D (Ops)", "#general", "Sales, EMEA", "a*b\\c", ' lead+"x"=y;<z> ']
    ids = {name: make_group(scim, name, [people["ann"]]) for name in names}
    for name, gid in ids.items():
        got = scim.get(f"/Groups/{gid}").json
        assert got["displayName"] == name
        found = scim.get(f"/Groups?filter={eq('displayName', name)}").json
        assert [g["id"] for g in found["Resources"]] == [gid]
        assert group_by_id(ldap, base_dn, gid).cn == [name]
    assert scim.get(f"/Groups?filter={eq('displayName', 'a*')}").json["totalResults"] == 0


# --- read -----------------------------------------------------------------------------------


def test_get_with_and_without_members(scim, ldap, base_dn, people):
    gid = make_group(scim, "Sales Team", [people["ann"], people["bob"]])
    full = scim.get(f"/Groups/{gid}")
    assert full.status_code == 200
    assert full.headers["ETag"] == full.json["meta"]["version"]
    assert member_ids(full.json) == sorted([people["ann"], people["bob"]])
    assert {m["type"] for m in full.json["members"]} == {"User"}

    slim = scim.get(f"/Groups/{gid}?excludedAttributes=members")
    assert slim.status_code == 200
    assert "members" not in slim.json
    assert {k: v for k, v in full.json.items() if k != "members"} == slim.json

    only = scim.get(f"/Groups/{gid}?attributes=displayName")
    assert only.json == {"schemas": [entra.CORE_GROUP], "id": gid, "displayName": "Sales Team"}
    with_members = scim.get(f"/Groups/{gid}?attributes=members").json
    assert set(with_members) == {"schemas", "id", "members"}


def test_get_of_unknown_malformed_or_user_id_is_404(scim, people):
    for gid in (ABSENT, "not-a-uuid", people["ann"]):
        assert_error(scim.get(f"/Groups/{gid}"), 404)


def test_members_outside_the_tenant_or_dangling_are_not_shown(scim, ldap, base_dn, people):
    gid = make_group(scim, "Mixed", [people["ann"]])
    dn = f"cn=Mixed,ou=Groups,{base_dn}"
    ldap.modify(dn, {"member": [("MODIFY_ADD", [f"uid=ghost,ou=People,{base_dn}",
                                                f"cn=admin,{base_dn}"])]})
    assert member_ids(scim.get(f"/Groups/{gid}").json) == [people["ann"]]


# --- Entra's match query --------------------------------------------------------------------


def test_entra_match_query_with_excluded_members_in_either_order(scim, people):
    gid = make_group(scim, "Sales Team", [people["ann"]])
    make_group(scim, "Sales Team 2", [people["bob"]])
    queries = [
        f"excludedAttributes=members&filter={eq('displayName', 'Sales Team')}",
        f"filter={eq('displayName', 'Sales Team')}&excludedAttributes=members",
        "filter=displayName+eq+%22sales+team%22&excludedAttributes=members",
        "excludedAttributes=members&filter=displayName%20eq%20%22SALES%20TEAM%22",
    ]
    for query in queries:
        r = scim.get(f"/Groups?{query}")
        assert r.status_code == 200, (query, r.json)
        assert r.json["totalResults"] == 1, query
        [found] = r.json["Resources"]
        assert found["id"] == gid
        assert found["displayName"] == "Sales Team"
        assert "members" not in found
    with_members = scim.get(f"/Groups?filter={eq('displayName', 'Sales Team')}").json
    assert member_ids(with_members["Resources"][0]) == [people["ann"]]


def test_match_query_without_a_hit_is_200_and_empty(scim):
    make_group(scim, "Sales Team")
    r = scim.get(f"/Groups?excludedAttributes=members&filter={eq('displayName', 'Nope')}")
    assert r.status_code == 200
    assert (r.json["totalResults"], r.json["Resources"]) == (0, [])


def test_match_by_external_id_is_case_exact(scim):
    gid = make_group(scim, "Sales Team")
    hit = scim.get(f"/Groups?excludedAttributes=members&filter={eq('externalId', EXTERNAL_ID)}")
    assert [g["id"] for g in hit.json["Resources"]] == [gid]
    miss = scim.get(f"/Groups?filter={eq('externalId', EXTERNAL_ID.upper())}")
    assert miss.json["totalResults"] == 0


def test_member_filters_and_counts_never_see_the_placeholder(scim, base_dn, people):
    empty = make_group(scim, "Empty")
    full = make_group(scim, "Full", [people["ann"]])
    ann = people["ann"]
    cases = {
        "members pr": [full],
        "not (members pr)": [empty],
        f'members.value eq "{ann}"': [full],
        f'members[value eq "{ann}"]': [full],
        f'members eq "{ann}"': [full],
        'members.value eq "' + ABSENT + '"': [],
    }
    for flt, expected in cases.items():
        r = scim.get("/Groups", query_string={"filter": flt})
        assert r.status_code == 200, (flt, r.json)
        assert sorted(g["id"] for g in r.json["Resources"]) == sorted(expected), flt
        assert r.json["totalResults"] == len(expected), flt
        counted = scim.get("/Groups", query_string={"filter": flt, "count": "0"}).json
        assert counted["totalResults"] == len(expected), flt
    listed = {g["id"]: g for g in scim.get("/Groups").json["Resources"]}
    assert listed[empty]["members"] == []
    assert member_ids(listed[full]) == [ann]
    assert placeholder(base_dn) not in str(scim.get("/Groups").json).lower()


# --- a full GET of a big group --------------------------------------------------------------


@pytest.mark.parametrize("deref", [True, False], ids=["deref", "batched"])
def test_full_get_of_a_big_group_takes_a_few_searches(scim, ldap, base_dn, monkeypatch,
                                                      deref):
    n = 450
    for i in range(n):
        ldap.add(f"uid=big{i:04d},ou=People,{base_dn}", ["inetOrgPerson", "scimResource"],
                 {"uid": f"big{i:04d}", "cn": f"Big {i}", "sn": "Big"})
    ldap.search(f"ou=People,{base_dn}", "(uid=big*)", attributes=["entryUUID"])
    ids = sorted(str(e.entryUUID.value) for e in ldap.entries)
    inner = make_group(scim, "Inner")
    gid = make_group(scim, "Big", [*ids, inner])
    dn = f"cn=Big,ou=Groups,{base_dn}"
    ldap.modify(dn, {"member": [("MODIFY_ADD", [f"uid=ghost,ou=People,{base_dn}",
                                                f"cn=admin,{base_dn}"])]})
    if not deref:
        monkeypatch.setattr(Repository, "_derefs", lambda self: False)
    scim.get(f"/Groups/{inner}")  # the server's controls are known from here on
    counts = count_operations(monkeypatch)
    r = scim.get(f"/Groups/{gid}")
    assert r.status_code == 200
    assert sorted(m["value"] for m in r.json["members"]) == sorted([*ids, inner])
    assert {m["value"]: m["type"] for m in r.json["members"]}[inner] == "Group"
    assert set(counts) == {"search"}
    # batched: a value not spelled like any entry's DN (the ghost) is asked on its own,
    # so the server, not Python, says whether it names an entry
    assert counts["search"] == (2 if deref else 2 + -(-(n + 3) // BATCH) + 1)
    assert len(group_by_id(ldap, base_dn, gid).members) == n + 3


def test_member_patch_is_one_search_one_modify_and_one_check(scim, people, monkeypatch):
    """The group and the members a PATCH names are found by ONE search, then the write,
    then ONE search checking the added DNs still name those members, and ONE looking
    the removed members up again (a member renamed meanwhile is removed under its new
    DN too; docs/directory.md, "References")."""
    ann, bob, cat = (people[n] for n in sorted(people)[:3])
    gid = make_group(scim, "Ops", [ann])
    counts = count_operations(monkeypatch)
    body = members_patch("Add", bob, cat)
    body["Operations"] += members_patch("Remove", ann)["Operations"]
    assert scim.patch(f"/Groups/{gid}", body).status_code == 204
    assert counts == {"search": 3, "modify": 1}
    assert sorted(member_ids(scim.get(f"/Groups/{gid}").json)) == sorted([bob, cat])
    counts.clear()
    assert scim.patch(f"/Groups/{gid}", members_patch("Remove", cat)).status_code == 204
    assert counts == {"search": 2, "modify": 1}
    counts.clear()
    r = scim.patch(f"/Groups/{gid}", members_patch("Add", gid))
    assert r.status_code == 400  # itself: refused after the one search, nothing written
    assert counts == {"search": 1}
