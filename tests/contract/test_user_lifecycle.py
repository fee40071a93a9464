"""Entra's user lifecycle on real slapd: every request form of docs/entra.md, each
checked in the response AND in the LDAP entry read back with a plain ldap3 search."""

from __future__ import annotations

import json
import threading
from urllib.parse import quote

import pytest
from ldap3 import BASE, SUBTREE, Connection, Server

from tests import entra
from tests.entra import ENTERPRISE, patch

PEOPLE = "ou=People,{base}"


def entry(ldap, base_dn, user_name, attrs=("*", "+")):
    ldap.search(f"ou=People,{base_dn}", f"(uid={user_name})", SUBTREE, attributes=list(attrs))
    assert len(ldap.entries) == 1, f"expected one entry for {user_name}"
    return ldap.entries[0]


def snapshot(ldap, dn):
    ldap.search(dn, "(objectClass=*)", BASE, attributes=["*", "+"])
    return {k: sorted(v) for k, v in ldap.response[0]["raw_attributes"].items()}


def eq(attr, value):
    """A URL-encoded filter with the value as a JSON string literal (escapes included)."""
    return quote(f"{attr} eq {json.dumps(value)}", safe="")


# --- create --------------------------------------------------------------------------


def test_entra_create_round_trips_every_default_mapping(scim, ldap, base_dn, adele):
    sent = entra.user()
    got = scim.get(f"/Users/{adele['id']}").json
    for key in ("userName", "externalId", "active", "displayName", "title",
                "preferredLanguage", "name", "emails", "phoneNumbers"):
        assert got[key] == sent[key], key
    assert got["addresses"] == sent["addresses"]
    assert got[ENTERPRISE] == sent[ENTERPRISE]
    assert "roles" not in got and "password" not in got
    e = entry(ldap, base_dn, "Adele.Vance@contoso.com")
    assert e.entryUUID.value == adele["id"]
    assert (e.mail.value, e.mobile.value, e.telephoneNumber.value) == (
        "adele@contoso.com", "+1 425 555 0110", "+1 425 555 0109")
    assert (e.street.value, e.l.value, e.st.value, e.postalCode.value) == (
        "1 Microsoft Way", "Redmond", "WA", "98052")
    assert (e.cn.value, e.sn.value, e.givenName.value) == ("Adele Vance", "Vance", "Adele")
    assert (e.employeeNumber.value, e.departmentNumber.value) == ("100042", "Retail")
    assert e.scimActive.value is True or str(e.scimActive.value).upper() == "TRUE"
    assert set(e.scimPrimary.values) == {"emails=work", "addresses=work"}


def test_create_response_has_201_location_etag_meta(scim, adele):
    r = scim.get(f"/Users/{adele['id']}")
    meta = r.json["meta"]
    assert meta["resourceType"] == "User"
    assert meta["location"].endswith(f"/scim/v2/Users/{adele['id']}")
    assert meta["created"].endswith("Z") and meta["lastModified"].endswith("Z")
    assert r.headers["ETag"] == meta["version"]


@pytest.mark.parametrize(("sent", "stored", "returned"), [
    (True, "TRUE", True), ("True", "TRUE", True), ("False", "FALSE", False),
    ("false", "FALSE", False), (False, "FALSE", False)])
def test_active_accepts_entra_strings_and_returns_booleans(scim, ldap, base_dn, sent, stored,
                                                           returned):
    r = scim.post("/Users", {**entra.minimal_user("act@x.org"), "active": sent})
    assert r.status_code == 201
    assert r.json["active"] is returned
    assert str(entry(ldap, base_dn, "act@x.org").scimActive.value).upper() == stored


def test_nulls_and_empty_lists_are_unassigned(scim, ldap, base_dn):
    r = scim.post("/Users", {**entra.minimal_user("nulls@x.org"), "title": None,
                             "addresses": None, "roles": [], "name": {"givenName": None}})
    assert r.status_code == 201
    assert "title" not in r.json and "addresses" not in r.json
    assert "title" not in entry(ldap, base_dn, "nulls@x.org").entry_attributes_as_dict


def test_derived_cn_and_sn_are_stored_but_never_returned(scim, ldap, base_dn):
    r = scim.post("/Users", entra.minimal_user("bare@x.org"))
    assert "name" not in r.json and "displayName" not in r.json
    e = entry(ldap, base_dn, "bare@x.org")
    assert (e.cn.value, e.sn.value) == ("bare@x.org", "bare@x.org")
    assert set(e.scimDerived.values) == {"cn", "sn"}


@pytest.mark.parametrize("form", ["string", "object", "list"])
def test_manager_in_any_entra_form_is_stored_as_dn_and_returned_complex(
        scim, ldap, base_dn, adele, form):
    value = {"string": adele["id"], "object": {"value": adele["id"]},
             "list": [{"$ref": None, "value": adele["id"]}]}[form]
    body = {**entra.minimal_user("report@x.org"), "schemas": [entra.CORE_USER, ENTERPRISE],
            ENTERPRISE: {"manager": value}}
    r = scim.post("/Users", body)
    assert r.status_code == 201, r.json
    manager = scim.get(f"/Users/{r.json['id']}").json[ENTERPRISE]["manager"]
    assert manager["value"] == adele["id"]
    assert manager["displayName"] == "Adele Vance"
    assert manager["$ref"].endswith(f"/Users/{adele['id']}")
    e = entry(ldap, base_dn, "report@x.org")
    assert e.manager.value.lower() == f"uid=adele.vance@contoso.com,ou=people,{base_dn}".lower()


def test_unknown_manager_is_400_and_nothing_written(scim, ldap, base_dn):
    body = {**entra.minimal_user("orphan@x.org"), ENTERPRISE: {
        "manager": "2ceef03a-7f80-1041-899b-d98a394b6a36"}}
    r = scim.post("/Users", body)
    assert (r.status_code, r.json["scimType"]) == (400, "invalidValue")
    assert "manager" in r.json["detail"]
    assert not ldap.search(f"ou=People,{base_dn}", "(uid=orphan@x.org)")


def test_password_is_hashed_never_returned_and_binds(scim, ldap, base_dn, slapd):
    r = scim.post("/Users", {**entra.minimal_user("pw@x.org"), "password": "S3cret!pass"})
    assert r.status_code == 201
    assert "password" not in r.json
    e = entry(ldap, base_dn, "pw@x.org", ["userPassword"])
    assert e.userPassword.value.startswith(b"{SSHA512}")
    host, port = slapd.env["LDAP_URL"].removeprefix("ldap://").split(":")
    user = Connection(Server(host, int(port)), f"uid=pw@x.org,ou=People,{base_dn}",
                      "S3cret!pass")
    assert user.bind()
    user.unbind()


def test_dn_metacharacters_and_unicode_round_trip_inside_people(scim, ldap, base_dn):
    name = 'a,b+c="x"<y>;#\\ é@x.org '.strip()
    r = scim.post("/Users", {**entra.minimal_user(name), "displayName": "Zoë ☃"})
    assert r.status_code == 201, r.json
    got = scim.get(f"/Users/{r.json['id']}").json
    assert (got["userName"], got["displayName"]) == (name, "Zoë ☃")
    ldap.search(f"ou=People,{base_dn}", "(objectClass=inetOrgPerson)", SUBTREE,
                attributes=["uid"])
    dns = [x.entry_dn for x in ldap.entries]
    assert len(dns) == 1 and dns[0].lower().endswith(f",ou=people,{base_dn}".lower())
    assert scim.get(f"/Users?filter={eq('userName', name)}").json["totalResults"] == 1


# --- uniqueness ------------------------------------------------------------------------


def test_duplicate_username_in_another_case_is_409(scim, ldap, base_dn, adele):
    r = scim.post("/Users", entra.user("ADELE.vance@CONTOSO.com"))
    assert (r.status_code, r.json["scimType"]) == (409, "uniqueness")
    assert "already" in r.json["detail"]
    assert len(ldap.search(f"ou=People,{base_dn}", "(uid=*)") and ldap.entries) == 1


def test_concurrent_creates_of_one_username_give_exactly_one_201(app, ldap, base_dn):
    from tests.conftest import Scim

    names = ["race@x.org", "RACE@x.org", "Race@X.org", "rAce@x.org"] * 2
    codes: list[int] = []
    barrier = threading.Barrier(len(names))

    def create(name: str) -> None:
        client = Scim(app.test_client())
        barrier.wait()
        codes.append(client.post("/Users", entra.minimal_user(name)).status_code)

    threads = [threading.Thread(target=create, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [201] + [409] * (len(names) - 1)
    ldap.search(f"ou=People,{base_dn}", "(uid=race@x.org)", SUBTREE)
    assert len(ldap.entries) == 1


# --- read and match ----------------------------------------------------------------------


def test_unknown_and_garbage_ids_are_404_with_scim_body(scim):
    for bad in ("2ceef03a-7f80-1041-899b-d98a394b6a36", "nope", "*", "x)(uid=*"):
        r = scim.get(f"/Users/{quote(bad, safe='')}")
        assert r.status_code == 404
        assert r.json["status"] == "404"


def test_matching_filters_entra_uses(scim, adele):
    def total(flt):
        r = scim.get(f"/Users?filter={flt}")
        assert r.status_code == 200
        return r.json["totalResults"]

    assert total(eq("userName", "adele.VANCE@contoso.com")) == 1
    assert total(eq("externalId", "AdeleV")) == 1
    assert total(eq("externalId", "adelev")) == 0
    assert total(quote('emails[type eq "work"].value eq "ADELE@contoso.com"', safe="")) == 1
    assert total("userName+eq+%22b0f4c3e2-6a51-4b8e-9d62-2f0a8c1e7d33%22") == 0


# --- PATCH ------------------------------------------------------------------------------


def test_patch_default_mode_many_ops(scim, ldap, base_dn, adele):
    r = scim.patch(f"/Users/{adele['id']}", patch(
        {"op": "Replace", "path": "displayName", "value": "Pvlo"},
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "t@test.com"},
        {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
        {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
        {"op": "Replace", "path": "externalId", "value": "Eqpj"},
        {"op": "Replace", "path": f"{ENTERPRISE}:employeeNumber", "value": "Eqpj"}))
    assert r.status_code == 200
    assert r.json["displayName"] == "Pvlo"
    assert r.json["emails"] == [{"type": "work", "value": "t@test.com", "primary": True}]
    e = entry(ldap, base_dn, "Adele.Vance@contoso.com")
    assert (e.displayName.value, e.mail.value, e.givenName.value, e.sn.value) == (
        "Pvlo", "t@test.com", "Gtfd", "Pkqf")
    assert (e.scimExternalId.value, e.employeeNumber.value) == ("Eqpj", "Eqpj")


def test_patch_pathless_dotted_keys_leave_siblings(scim, ldap, base_dn, adele):
    r = scim.patch(f"/Users/{adele['id']}", patch(
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "m@test.com"},
        {"op": "replace", "value": {"displayName": "Bjfe", "name.givenName": "Kkom",
                                    f"{ENTERPRISE}:employeeNumber": "Aklq", "active": False}}))
    assert r.status_code == 200
    assert r.json["name"] == {"formatted": "Adele Vance", "familyName": "Vance",
                              "givenName": "Kkom"}
    assert r.json["active"] is False
    e = entry(ldap, base_dn, "Adele.Vance@contoso.com")
    assert (e.givenName.value, e.sn.value, e.employeeNumber.value) == ("Kkom", "Vance", "Aklq")
    assert "name.givenName" not in str(e.entry_attributes_as_dict)


def test_patch_add_single_valued_and_through_unmatched_filter(scim, ldap, base_dn):
    uid = scim.post("/Users", entra.minimal_user("add@x.org")).json["id"]
    r = scim.patch(f"/Users/{uid}", patch(
        {"op": "Add", "path": "nickName", "value": "Babs"},
        {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 206 555"},
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "add@x.org"},
        {"op": "Add", "path": "name.givenName", "value": "Ad"}))
    assert r.status_code == 200
    assert r.json["phoneNumbers"] == [{"type": "mobile", "value": "+1 206 555"}]
    e = entry(ldap, base_dn, "add@x.org")
    assert (e.scimNickName.value, e.mobile.value, e.mail.value, e.givenName.value) == (
        "Babs", "+1 206 555", "add@x.org", "Ad")


def test_patch_manager_string_then_remove(scim, ldap, base_dn, adele):
    uid = scim.post("/Users", entra.minimal_user("rep@x.org")).json["id"]
    r = scim.patch(f"/Users/{uid}", patch({
        "op": "Add", "path": f"{ENTERPRISE}:manager", "value": adele["id"]}))
    assert r.json[ENTERPRISE]["manager"]["value"] == adele["id"]
    assert entry(ldap, base_dn, "rep@x.org").manager.value
    r = scim.patch(f"/Users/{uid}", patch({"op": "Remove", "path": f"{ENTERPRISE}:manager"}))
    assert r.status_code == 200
    assert ENTERPRISE not in r.json
    assert "manager" not in entry(ldap, base_dn, "rep@x.org").entry_attributes_as_dict


def test_patch_remove_attribute_filtered_element_and_null_replace(scim, ldap, base_dn, adele):
    r = scim.patch(f"/Users/{adele['id']}", patch(
        {"op": "Remove", "path": "title"},
        {"op": "Remove", "path": 'phoneNumbers[type eq "mobile"]'},
        {"op": "Replace", "path": "preferredLanguage", "value": None}))
    assert r.status_code == 200
    assert "title" not in r.json and "preferredLanguage" not in r.json
    assert r.json["phoneNumbers"] == [{"type": "work", "value": "+1 425 555 0109"}]
    attrs = entry(ldap, base_dn, "Adele.Vance@contoso.com").entry_attributes_as_dict
    assert "title" not in attrs and "mobile" not in attrs and "preferredLanguage" not in attrs


def test_rename_keeps_id_and_group_membership(scim, ldap, base_dn, adele):
    gid = scim.post("/Groups", entra.group("Renamers", [adele["id"]])).json["id"]
    r = scim.patch(f"/Users/{adele['id']}", patch(
        {"op": "Replace", "path": "userName", "value": "adele.new@contoso.com"}))
    assert r.status_code == 200
    assert (r.json["id"], r.json["userName"]) == (adele["id"], "adele.new@contoso.com")
    ldap.search(f"ou=Groups,{base_dn}", "(cn=Renamers)", SUBTREE, attributes=["member"])
    assert [m.lower() for m in ldap.entries[0].member.values] == [
        f"uid=adele.new@contoso.com,ou=people,{base_dn}".lower()]
    assert scim.get(f"/Users/{adele['id']}").json["groups"][0]["value"] == gid


def test_patch_is_atomic_one_bad_op_changes_nothing(scim, ldap, base_dn, adele):
    dn = f"uid=Adele.Vance@contoso.com,ou=People,{base_dn}"
    before = snapshot(ldap, dn)
    r = scim.patch(f"/Users/{adele['id']}", patch(
        {"op": "Replace", "path": "displayName", "value": "Changed"},
        {"op": "Replace", "path": "userName", "value": "other@x.org"},
        {"op": "Replace", "path": "active", "value": "maybe"}))
    assert (r.status_code, r.json["scimType"]) == (400, "invalidValue")
    assert "active" in r.json["detail"]
    assert snapshot(ldap, dn) == before


def test_patch_that_changes_nothing_is_200_and_writes_nothing(scim, ldap, base_dn, adele):
    dn = f"uid=Adele.Vance@contoso.com,ou=People,{base_dn}"
    before = snapshot(ldap, dn)
    r = scim.patch(f"/Users/{adele['id']}", patch(
        {"op": "Replace", "path": "title", "value": "Retail Manager"}))
    assert r.status_code == 200
    assert snapshot(ldap, dn) == before


def test_removing_username_is_400(scim, adele):
    r = scim.patch(f"/Users/{adele['id']}", patch({"op": "Remove", "path": "userName"}))
    assert r.status_code == 400
    assert "userName" in r.json["detail"]


@pytest.mark.parametrize(("op", "scim_type"), [
    ({"op": "Replace", "path": "id", "value": "x"}, "mutability"),
    ({"op": "Replace", "path": "meta.created", "value": "x"}, "mutability"),
    ({"op": "Add", "path": "groups", "value": [{"value": "x"}]}, "mutability"),
    ({"op": "Replace", "path": "nosuch", "value": "x"}, "invalidValue"),
    ({"op": "Replace", "path": "emails[type eq", "value": "x"}, "invalidPath"),
    ({"op": "Remove"}, "noTarget"),
    ({"op": "Frobnicate", "path": "title", "value": "x"}, "invalidSyntax"),
    ({"op": "Replace", "path": "title", "value": 5}, "invalidValue"),
])
def test_bad_patch_operations(scim, ldap, base_dn, adele, op, scim_type):
    dn = f"uid=Adele.Vance@contoso.com,ou=People,{base_dn}"
    before = snapshot(ldap, dn)
    r = scim.patch(f"/Users/{adele['id']}", patch(op))
    assert (r.status_code, r.json.get("scimType")) == (400, scim_type), r.json
    assert r.json["detail"]
    assert snapshot(ldap, dn) == before


def test_patch_unknown_id_is_404(scim):
    r = scim.patch("/Users/2ceef03a-7f80-1041-899b-d98a394b6a36",
                   patch({"op": "Replace", "path": "title", "value": "x"}))
    assert r.status_code == 404


# --- disable / enable ----------------------------------------------------------------------


def test_disable_locks_the_account_keeps_groups_and_enable_restores(scim, ldap, base_dn,
                                                                    slapd):
    uid = scim.post("/Users", {**entra.minimal_user("lock@x.org"),
                               "password": "Pa55word!"}).json["id"]
    gid = scim.post("/Groups", entra.group("Lockers", [uid])).json["id"]
    host, port = slapd.env["LDAP_URL"].removeprefix("ldap://").split(":")

    def can_bind():
        c = Connection(Server(host, int(port)), f"uid=lock@x.org,ou=People,{base_dn}",
                       "Pa55word!")
        ok = c.bind()
        c.unbind()
        return ok

    assert can_bind()
    r = scim.patch(f"/Users/{uid}", patch({"op": "Replace", "path": "active",
                                           "value": "False"}))
    assert r.json["active"] is False
    e = entry(ldap, base_dn, "lock@x.org", ["scimActive", "pwdAccountLockedTime"])
    assert str(e.scimActive.value).upper() == "FALSE"
    assert e.pwdAccountLockedTime.value
    assert not can_bind()
    assert scim.get(f"/Users/{uid}").json["groups"][0]["value"] == gid
    found = scim.get(f"/Users?filter={eq('userName', 'lock@x.org')}").json
    assert found["Resources"][0]["active"] is False
    r = scim.patch(f"/Users/{uid}", patch({"op": "replace", "path": "active", "value": True}))
    assert r.json["active"] is True
    assert not entry(ldap, base_dn, "lock@x.org",
                     ["pwdAccountLockedTime"]).entry_attributes_as_dict["pwdAccountLockedTime"]
    assert can_bind()


# --- PUT ----------------------------------------------------------------------------------


def test_put_replaces_writable_attributes_and_keeps_password(scim, ldap, base_dn, adele):
    scim.patch(f"/Users/{adele['id']}", patch({"op": "Add", "path": "password",
                                               "value": "Xx12345678!"}))
    r = scim.put(f"/Users/{adele['id']}", {**entra.minimal_user("Adele.Vance@contoso.com"),
                                           "displayName": "Only"})
    assert r.status_code == 200
    assert r.json["id"] == adele["id"]
    assert "title" not in r.json and "emails" not in r.json
    e = entry(ldap, base_dn, "Adele.Vance@contoso.com", ["*"])
    attrs = e.entry_attributes_as_dict
    assert "title" not in attrs and "mail" not in attrs and "employeeNumber" not in attrs
    assert attrs["displayName"] == ["Only"]
    assert attrs["userPassword"]


# --- DELETE ----------------------------------------------------------------------------------


def test_delete_removes_entry_and_memberships_then_404_and_recreate(scim, ldap, base_dn,
                                                                    adele):
    gid = scim.post("/Groups", entra.group("Leavers", [adele["id"]])).json["id"]
    assert scim.delete(f"/Users/{adele['id']}").status_code == 204
    assert not ldap.search(f"ou=People,{base_dn}", "(uid=Adele.Vance@contoso.com)")
    ldap.search(f"ou=Groups,{base_dn}", "(cn=Leavers)", SUBTREE, attributes=["member"])
    assert ldap.entries[0].member.values == [
        f"cn=empty-group-placeholder,ou=Service,{base_dn}"]
    assert scim.get(f"/Groups/{gid}").json["members"] == []
    assert scim.delete(f"/Users/{adele['id']}").status_code == 404
    assert scim.get(f"/Users/{adele['id']}").status_code == 404
    assert scim.post("/Users", entra.user()).status_code == 201


# --- ETag / If-Match ----------------------------------------------------------------------


def test_if_match(scim, ldap, base_dn, adele):
    etag = scim.get(f"/Users/{adele['id']}").headers["ETag"]
    body = patch({"op": "Replace", "path": "title", "value": "One"})
    assert scim.patch(f"/Users/{adele['id']}", body, headers={"If-Match": etag}).status_code \
        == 200
    stale = scim.patch(f"/Users/{adele['id']}", patch(
        {"op": "Replace", "path": "title", "value": "Two"}), headers={"If-Match": etag})
    assert stale.status_code == 412
    assert entry(ldap, base_dn, "Adele.Vance@contoso.com").title.value == "One"
    assert scim.put(f"/Users/{adele['id']}", entra.user(), headers={
        "If-Match": etag}).status_code == 412
    assert scim.delete(f"/Users/{adele['id']}", headers={"If-Match": etag}).status_code == 412
    assert scim.patch(f"/Users/{adele['id']}", body, headers={"If-Match": "*"}).status_code \
        == 200


# --- validation errors -------------------------------------------------------------------


@pytest.mark.parametrize(("body", "scim_type", "names"), [
    ({"schemas": [entra.CORE_USER], "userName": "x@x.org", "shoeSize": 42},
     "invalidSyntax", "shoeSize"),
    ({"schemas": [entra.CORE_USER], "userName": 42}, "invalidValue", "userName"),
    ({"schemas": [entra.CORE_USER], "userName": "x@x.org", "emails": "a@b"},
     "invalidValue", "emails"),
    ({"schemas": [entra.CORE_USER], "displayName": "x"}, "invalidValue", "userName"),
    ({"schemas": [entra.CORE_USER], "userName": ""}, "invalidValue", "userName"),
    ({"schemas": ["urn:nope"], "userName": "x@x.org"}, "invalidValue", "urn:nope"),
    ({"userName": "x@x.org"}, "invalidSyntax", "schemas"),
    ({"schemas": [entra.CORE_USER], "userName": "x@x.org",
      "emails": [{"type": "private", "value": "a@b"}]}, "invalidValue", "private"),
])
def test_invalid_bodies_are_400_naming_the_attribute(scim, ldap, base_dn, body, scim_type,
                                                     names):
    r = scim.post("/Users", body)
    assert (r.status_code, r.json.get("scimType")) == (400, scim_type), r.json
    assert names in r.json["detail"]
    assert not ldap.search(f"ou=People,{base_dn}", "(objectClass=inetOrgPerson)")
