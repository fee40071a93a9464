"""Users on real slapd: disable/enable, PUT, DELETE, ETag/If-Match and request errors
(entra-scim.md §6.4 (h), §6.5, §8 and the checklist), each checked in LDAP."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests import entra
from tests.conftest import TOKEN, Scim
from tests.contract.users_support import (
    ABSENT_ID,
    ENTERPRISE,
    LOCKED,
    assert_error,
    by_id,
    by_name,
    can_bind,
    create,
    eq,
    group_members,
    ldap_of,
    people,
    placeholder,
    same_dn,
    snapshot,
    tree,
    user_count,
    without_meta,
)
from tests.entra import patch

PASSWORD = "Pa55word!-ünï"


@pytest.fixture
def adele(scim: Scim) -> dict[str, Any]:
    return create(scim, {**entra.user(), "password": PASSWORD})


def dn_of(base_dn: str, user_name: str) -> str:
    return f"uid={user_name},{people(base_dn)}"


def make_group(scim: Scim, name: str, members: list[str]) -> str:
    r = scim.post("/Groups", entra.group(name, members))
    assert r.status_code == 201, r.json
    return str(r.json["id"])


# --- active = false ---------------------------------------------------------------------------


def test_disable_locks_the_account_and_keeps_groups_then_enable_unlocks(scim, ldap, base_dn,
                                                                       slapd, adele):
    uid, dn = adele["id"], dn_of(base_dn, "Adele.Vance@contoso.com")
    gid = make_group(scim, "Sales Team", [uid])
    assert can_bind(slapd, dn, PASSWORD)

    r = scim.patch(f"/Users/{uid}", patch({"op": "Replace", "path": "active",
                                           "value": "False"}))
    assert r.status_code == 200 and r.json["active"] is False
    e = ldap_of(ldap, base_dn, uid)
    assert (e.get("scimActive"), e.get("pwdAccountLockedTime")) == (["FALSE"], [LOCKED])
    assert e.has("userPassword")
    assert not can_bind(slapd, dn, PASSWORD)
    assert [same_dn(m, dn) for m in group_members(ldap, base_dn, "Sales Team")] == [True]
    got = scim.get(f"/Users/{uid}").json
    assert got["active"] is False and [g["value"] for g in got["groups"]] == [gid]
    assert [m["value"] for m in scim.get(f"/Groups/{gid}").json["members"]] == [uid]

    r = scim.patch(f"/Users/{uid}", patch({"op": "Replace", "path": "active",
                                           "value": "True"}))
    assert r.status_code == 200 and r.json["active"] is True
    e = ldap_of(ldap, base_dn, uid)
    assert (e.get("scimActive"), e.get("pwdAccountLockedTime")) == (["TRUE"], [])
    assert can_bind(slapd, dn, PASSWORD)
    assert [g["value"] for g in r.json["groups"]] == [gid]


def test_created_disabled_cannot_bind_until_enabled(scim, ldap, base_dn, slapd):
    uid = create(scim, {**entra.user("off@contoso.com"), "active": "False",
                        "password": PASSWORD})["id"]
    dn = dn_of(base_dn, "off@contoso.com")
    assert ldap_of(ldap, base_dn, uid).get("pwdAccountLockedTime") == [LOCKED]
    assert not can_bind(slapd, dn, PASSWORD)
    r = scim.patch(f"/Users/{uid}", patch({"op": "replace", "path": "active", "value": True}))
    assert r.status_code == 200
    assert can_bind(slapd, dn, PASSWORD)


def test_password_patch_rehashes_and_other_patches_keep_it(scim, ldap, base_dn, slapd, adele):
    uid, dn = adele["id"], dn_of(base_dn, "Adele.Vance@contoso.com")
    before = ldap_of(ldap, base_dn, uid).get("userPassword")
    r = scim.patch(f"/Users/{uid}", patch({"op": "Replace", "path": "title", "value": "X"}))
    assert r.status_code == 200 and "password" not in r.json
    assert ldap_of(ldap, base_dn, uid).get("userPassword") == before
    r = scim.patch(f"/Users/{uid}", patch({"op": "Replace", "path": "password",
                                           "value": "N3w-secret"}))
    assert r.status_code == 200 and "password" not in r.json
    [hashed] = ldap_of(ldap, base_dn, uid).get("userPassword")
    assert hashed.startswith("{SSHA512}") and [hashed] != before
    assert can_bind(slapd, dn, "N3w-secret") and not can_bind(slapd, dn, PASSWORD)


# --- PUT ---------------------------------------------------------------------------------------


def test_put_replaces_writable_attributes_and_clears_absent_ones(scim, ldap, base_dn, slapd,
                                                                adele):
    uid = adele["id"]
    boss = create(scim, {**entra.minimal_user("boss@contoso.com"), "displayName": "Boss"})
    r = scim.patch(f"/Users/{uid}", patch({"op": "Add", "path": f"{ENTERPRISE}:manager",
                                           "value": boss["id"]}))
    assert r.status_code == 200
    body = {"schemas": [entra.CORE_USER], "userName": "Adele.Vance@contoso.com",
            "displayName": "Only Me", "active": True,
            "phoneNumbers": [{"type": "mobile", "value": "+41 79 000 00 00"}]}
    r = scim.put(f"/Users/{uid}", body)
    assert r.status_code == 200, r.json
    assert r.headers["ETag"] == r.json["meta"]["version"]
    assert r.json["id"] == uid
    assert without_meta(r.json) == {"schemas": [entra.CORE_USER], "id": uid, **{
        k: v for k, v in body.items() if k != "schemas"}}
    assert scim.get(f"/Users/{uid}").json == r.json
    e = ldap_of(ldap, base_dn, uid)
    for gone in ("title", "mail", "telephoneNumber", "street", "l", "postalCode",
                 "employeeNumber", "departmentNumber", "manager", "scimExternalId",
                 "preferredLanguage", "givenName", "scimPrimary"):
        assert not e.has(gone), gone
    assert (e.get("displayName"), e.get("mobile"), e.get("cn"), e.get("sn")) == (
        ["Only Me"], ["+41 79 000 00 00"], ["Only Me"], ["Adele.Vance@contoso.com"])
    assert sorted(e.get("scimDerived")) == ["cn", "sn"]
    assert can_bind(slapd, dn_of(base_dn, "Adele.Vance@contoso.com"), PASSWORD)


def test_put_with_a_new_username_renames_and_keeps_id_and_groups(scim, ldap, base_dn, adele):
    gid = make_group(scim, "Movers", [adele["id"]])
    body = {**entra.user("Adele.Moved@contoso.com"), "title": "Moved"}
    r = scim.put(f"/Users/{adele['id']}", body)
    assert r.status_code == 200, r.json
    assert (r.json["id"], r.json["userName"], r.json["title"]) == (
        adele["id"], "Adele.Moved@contoso.com", "Moved")
    e = ldap_of(ldap, base_dn, adele["id"])
    assert same_dn(e.dn, dn_of(base_dn, "Adele.Moved@contoso.com"))
    assert e.get("title") == ["Moved"]
    assert [m["value"] for m in scim.get(f"/Groups/{gid}").json["members"]] == [adele["id"]]


def test_put_with_the_same_body_writes_nothing(scim, ldap, base_dn, adele):
    dn = ldap_of(ldap, base_dn, adele["id"]).dn
    before = snapshot(ldap, dn)
    r = scim.put(f"/Users/{adele['id']}", entra.user())
    assert r.status_code == 200
    assert snapshot(ldap, dn) == before
    assert r.json["meta"]["version"] == adele["meta"]["version"]


def test_put_ignores_read_only_attributes_and_keeps_the_id(scim, ldap, base_dn, adele):
    body = {**entra.user(), "id": ABSENT_ID, "groups": [{"value": ABSENT_ID}],
            "meta": {"created": "2000-01-01T00:00:00Z"}}
    r = scim.put(f"/Users/{adele['id']}", body)
    assert r.status_code == 200, r.json
    assert r.json["id"] == adele["id"] and "groups" not in r.json
    assert r.json["meta"]["created"] == adele["meta"]["created"]
    assert ldap_of(ldap, base_dn, adele["id"]).get("entryUUID") == [adele["id"]]


def test_put_errors_change_nothing(scim, ldap, base_dn, adele):
    other = create(scim, entra.minimal_user("taken@contoso.com"))
    before = tree(ldap, base_dn)
    assert_error(scim.put(f"/Users/{adele['id']}", {**entra.user("TAKEN@contoso.com")}),
                 409, "uniqueness")
    assert_error(scim.put(f"/Users/{adele['id']}", {"schemas": [entra.CORE_USER]}),
                 400, "invalidValue", "userName")
    assert_error(scim.put(f"/Users/{adele['id']}", {**entra.user(), "active": "maybe"}),
                 400, "invalidValue", "active")
    assert_error(scim.put(f"/Users/{ABSENT_ID}", entra.user()), 404, None)
    assert tree(ldap, base_dn) == before
    assert other["id"] != adele["id"]


# --- DELETE ------------------------------------------------------------------------------------


def test_delete_removes_the_entry_and_every_membership(scim, ldap, base_dn, adele):
    uid = adele["id"]
    alex = create(scim, entra.minimal_user("Alex.Wilber@contoso.com"))["id"]
    report = create(scim, {**entra.minimal_user("report@contoso.com"),
                           "schemas": [entra.CORE_USER, ENTERPRISE],
                           ENTERPRISE: {"manager": uid}})["id"]
    solo = make_group(scim, "Solo", [uid])
    shared = make_group(scim, "Shared", [uid, alex])
    make_group(scim, "Untouched", [alex])

    r = scim.delete(f"/Users/{uid}")
    assert r.status_code == 204
    assert r.get_data() == b""
    assert by_id(ldap, base_dn, uid) is None
    assert user_count(ldap, base_dn) == 2
    assert [m.lower() for m in group_members(ldap, base_dn, "Solo")] == [
        placeholder(base_dn).lower()]
    for name in ("Shared", "Untouched"):
        assert [m.lower() for m in group_members(ldap, base_dn, name)] == [
            dn_of(base_dn, "Alex.Wilber@contoso.com").lower()]
    assert scim.get(f"/Groups/{solo}").json.get("members", []) == []
    assert [m["value"] for m in scim.get(f"/Groups/{shared}").json["members"]] == [alex]
    assert ENTERPRISE not in scim.get(f"/Users/{report}").json
    assert ldap_of(ldap, base_dn, report).get("manager") == []
    time.sleep(0.3)  # refint works in the background: it must find nothing left to do
    assert ldap_of(ldap, base_dn, report).get("manager") == []

    assert_error(scim.get(f"/Users/{uid}"), 404, None)
    assert_error(scim.delete(f"/Users/{uid}"), 404, None)
    assert_error(scim.patch(f"/Users/{uid}", patch({"op": "Replace", "path": "title",
                                                    "value": "x"})), 404, None)
    found = scim.get(f"/Users?filter={eq('userName', 'Adele.Vance@contoso.com')}").json
    assert found["totalResults"] == 0 and found["Resources"] == []

    again = scim.post("/Users", entra.user())
    assert again.status_code == 201
    assert again.json["id"] != uid
    assert by_name(ldap, base_dn, "Adele.Vance@contoso.com").get("entryUUID") == [
        again.json["id"]]
    assert "groups" not in scim.get(f"/Users/{again.json['id']}").json


def test_delete_of_a_disabled_user(scim, ldap, base_dn, adele):
    r = scim.patch(f"/Users/{adele['id']}", patch({"op": "Replace", "path": "active",
                                                   "value": "False"}))
    assert r.status_code == 200
    assert scim.delete(f"/Users/{adele['id']}").status_code == 204
    assert by_id(ldap, base_dn, adele["id"]) is None


@pytest.mark.parametrize("bad", [ABSENT_ID, "nope", "x)(uid=*"])
def test_delete_of_unknown_id_is_404_and_deletes_nothing(scim, ldap, base_dn, adele, bad):
    before = tree(ldap, base_dn)
    assert_error(scim.delete(f"/Users/{bad}"), 404, None)
    assert tree(ldap, base_dn) == before


# --- ETag / If-Match ------------------------------------------------------------------------


def test_etag_changes_exactly_when_the_entry_changes(scim, adele):
    tag = scim.get(f"/Users/{adele['id']}").headers["ETag"]
    assert tag == adele["meta"]["version"]
    r = scim.patch(f"/Users/{adele['id']}", patch({"op": "Replace", "path": "title",
                                                   "value": "New"}))
    assert r.headers["ETag"] != tag
    assert scim.get(f"/Users/{adele['id']}").headers["ETag"] == r.headers["ETag"]


@pytest.mark.parametrize("method", ["patch", "put", "delete"])
def test_if_match_current_and_star_work(scim, ldap, base_dn, adele, method):
    uid = adele["id"]
    for tag in (adele["meta"]["version"], "*"):
        if method == "delete":
            assert scim.delete(f"/Users/{uid}", headers={"If-Match": tag}).status_code == 204
            assert by_id(ldap, base_dn, uid) is None
            uid = create(scim, entra.user())["id"]
            continue
        title = f"T-{tag}"
        call = scim.patch(f"/Users/{uid}", patch({"op": "Replace", "path": "title",
                                                  "value": title}), headers={"If-Match": tag}) \
            if method == "patch" else \
            scim.put(f"/Users/{uid}", {**entra.user(), "title": title},
                     headers={"If-Match": tag})
        assert call.status_code == 200, call.json
        assert ldap_of(ldap, base_dn, uid).get("title") == [title]


@pytest.mark.parametrize("method", ["patch", "put", "delete"])
def test_stale_if_match_is_412_and_nothing_changes(scim, ldap, base_dn, adele, method):
    uid = adele["id"]
    stale = adele["meta"]["version"]
    r = scim.patch(f"/Users/{uid}", patch({"op": "Replace", "path": "title", "value": "1"}))
    assert r.status_code == 200
    before = tree(ldap, base_dn)
    headers = {"If-Match": stale}
    if method == "patch":
        answer = scim.patch(f"/Users/{uid}", patch(
            {"op": "Replace", "path": "title", "value": "2"}), headers=headers)
    elif method == "put":
        answer = scim.put(f"/Users/{uid}", entra.user(), headers=headers)
    else:
        answer = scim.delete(f"/Users/{uid}", headers=headers)
    assert_error(answer, 412, None)
    assert tree(ldap, base_dn) == before
    r = scim.patch(f"/Users/{uid}", patch({"op": "Replace", "path": "title", "value": "3"}),
                   headers={"If-Match": f'{stale}, {r.headers["ETag"]}'})
    assert r.status_code == 200


# --- request errors: nothing is ever written ---------------------------------------------


@pytest.mark.parametrize(("body", "scim_type", "names"), [
    ({"userName": "x@x.org", "shoeSize": 42}, "invalidSyntax", ["shoeSize"]),
    ({"userName": "x@x.org", "name": {"nickName": "x"}}, "invalidSyntax", ["nickName"]),
    ({"userName": "x@x.org", ENTERPRISE: {"shoeSize": 1}}, "invalidSyntax", ["shoeSize"]),
    ({"userName": "x@x.org", "urn:example:ext:1.0:User": {"a": 1}}, "invalidSyntax",
     ["urn:example:ext:1.0:User"]),
    ({"userName": 42}, "invalidValue", ["userName"]),
    ({"userName": ["x@x.org"]}, "invalidValue", ["userName"]),
    ({"userName": "x@x.org", "active": "maybe"}, "invalidValue", ["active"]),
    ({"userName": "x@x.org", "active": 1}, "invalidValue", ["active"]),
    ({"userName": "x@x.org", "title": 7}, "invalidValue", ["title"]),
    ({"userName": "x@x.org", "name": "Adele Vance"}, "invalidValue", ["name"]),
    ({"userName": "x@x.org", "emails": "a@b.org"}, "invalidValue", ["emails"]),
    ({"userName": "x@x.org", "emails": ["a@b.org"]}, "invalidValue", ["emails"]),
    ({"userName": "x@x.org", "emails": [{"type": "work", "value": 5}]}, "invalidValue",
     ["emails", "value"]),
    ({"userName": "x@x.org", "emails": [{"type": "work", "value": "a@b", "primary": "yes"}]},
     "invalidValue", ["primary"]),
    ({"userName": "x@x.org", "emails": [{"type": "private", "value": "a@b"}]},
     "invalidValue", ["emails", "private"]),
    ({"userName": "x@x.org", "emails": [{"type": "work", "value": "a@b", "primary": True},
                                        {"type": "home", "value": "c@d", "primary": True}]},
     "invalidValue", ["emails", "primary", "one"]),
    ({"userName": "x@x.org", "emails": [{"value": f"e{i}@b"} for i in range(101)]},
     "invalidValue", ["emails", "100 values"]),
    ({"userName": "x@x.org", ENTERPRISE: {"manager": 5}}, "invalidValue", ["manager"]),
    ({"userName": "x@x.org", ENTERPRISE: "Retail"}, "invalidValue", [ENTERPRISE]),
    ({"displayName": "No Name"}, "invalidValue", ["userName"]),
    ({"userName": ""}, "invalidValue", ["userName"]),
    ({"userName": None}, "invalidValue", ["userName"]),
])
def test_invalid_body_is_400_naming_the_attribute(scim, ldap, base_dn, body, scim_type, names):
    before = tree(ldap, base_dn)
    r = scim.post("/Users", {"schemas": [entra.CORE_USER, ENTERPRISE], **body})
    assert_error(r, 400, scim_type, *names)
    assert tree(ldap, base_dn) == before


@pytest.mark.parametrize(("schemas", "scim_type", "name"), [
    (["urn:example:unknown:2.0:User"], "invalidValue", "urn:example:unknown:2.0:User"),
    ([entra.CORE_USER, "urn:example:unknown:2.0:User"], "invalidValue",
     "urn:example:unknown:2.0:User"),
    ([ENTERPRISE], "invalidValue", entra.CORE_USER),
    (None, "invalidSyntax", "schemas"),
    ("urn:ietf:params:scim:schemas:core:2.0:User", "invalidSyntax", "schemas"),
])
def test_bad_schemas_are_400(scim, ldap, base_dn, schemas, scim_type, name):
    before = tree(ldap, base_dn)
    body: dict[str, Any] = {"userName": "x@x.org"}
    if schemas is not None:
        body["schemas"] = schemas
    assert_error(scim.post("/Users", body), 400, scim_type, name)
    assert tree(ldap, base_dn) == before


def _raw(client: Any, method: str, path: str, data: bytes | str, content_type: str | None):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if content_type:
        headers["Content-Type"] = content_type
    return getattr(client, method)(f"/scim/v2{path}", data=data, headers=headers)


@pytest.mark.parametrize("method", ["post", "put", "patch"])
def test_malformed_json_and_wrong_media_type(client, scim, ldap, base_dn, method):
    uid = create(scim, entra.user())["id"]
    path = "/Users" if method == "post" else f"/Users/{uid}"
    before = tree(ldap, base_dn)
    assert_error(_raw(client, method, path, '{"userName": "x@x.org",', "application/scim+json"),
                 400, "invalidSyntax", "JSON")
    assert_error(_raw(client, method, path, b"\xff\xfe", "application/json"),
                 400, "invalidSyntax")
    assert_error(_raw(client, method, path, '{"userName": "x@x.org"}', "text/plain"),
                 415, None, "text/plain")
    assert_error(_raw(client, method, path, '{"userName": "x@x.org"}', None), 415, None)
    assert_error(_raw(client, method, path, '"just a string"', "application/json"),
                 400, "invalidSyntax")
    assert tree(ldap, base_dn) == before


@pytest.mark.parametrize("content_type", ["application/scim+json",
                                          "application/scim+json; charset=utf-8",
                                          "application/json",
                                          "application/json; charset=UTF-8"])
def test_accepted_media_types(client, ldap, base_dn, content_type):
    r = _raw(client, "post", "/Users",
             '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],'
             '"userName":"média@x.org"}'.encode(), content_type)
    assert r.status_code == 201, r.json
    assert by_name(ldap, base_dn, "média@x.org").get("uid") == ["média@x.org"]


@pytest.mark.parametrize(("extra", "name"), [
    ({"emails": [{"type": "work", "value": "zoë@exämple.org"}]}, 'emails[type eq "work"]'),
    ({"phoneNumbers": [{"type": "work", "value": "☎ 425"}]}, "phoneNumbers"),
    ({"phoneNumbers": [{"type": "fax", "value": "+1 425 #9"}]}, 'phoneNumbers[type eq "fax"]'),
])
def test_value_slapd_refuses_is_400_naming_the_scim_attribute(scim, ldap, base_dn, extra,
                                                              name):
    """mail is IA5String and the phone numbers PrintableString in slapd's schema."""
    before = tree(ldap, base_dn)
    assert_error(scim.post("/Users", {**entra.user(), **extra}), 400, "invalidValue", name)
    assert tree(ldap, base_dn) == before
    uid = create(scim, entra.user())["id"]
    before = tree(ldap, base_dn)
    [(attr, [element])] = extra.items()
    r = scim.patch(f"/Users/{uid}", patch(
        {"op": "Replace", "path": "displayName", "value": "Changed"},
        {"op": "Replace", "path": f'{attr}[type eq "{element["type"]}"].value',
         "value": element["value"]}))
    assert_error(r, 400, "invalidValue", name)
    assert tree(ldap, base_dn) == before


def test_whitespace_only_username_is_400_and_not_stored(scim, ldap, base_dn):
    r = scim.post("/Users", entra.minimal_user("   "))
    assert_error(r, 400, "invalidValue")
    assert user_count(ldap, base_dn) == 0


# --- entries made outside SCIM ------------------------------------------------------------


def test_an_entry_made_outside_scim_is_matched_and_patched_without_losing_values(
        scim, ldap, base_dn):
    dn = dn_of(base_dn, "legacy")
    ldap.add(dn, ["inetOrgPerson"], {"uid": "legacy", "cn": ["Legacy One", "L. One"],
                                     "sn": "One", "telephoneNumber": ["+1 1", "+1 2"]})
    found = scim.get(f"/Users?filter={eq('userName', 'LEGACY')}").json
    assert found["totalResults"] == 1
    user = found["Resources"][0]
    assert user["name"] == {"formatted": "Legacy One", "familyName": "One"}
    # every value of a phone type's attribute is a phone number of that type
    assert user["phoneNumbers"] == [{"type": "work", "value": "+1 1"},
                                    {"type": "work", "value": "+1 2"}]

    r = scim.patch(f"/Users/{user['id']}", patch(
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Add", "path": "title", "value": "Adopted"}))
    assert r.status_code == 200, r.json
    e = ldap_of(ldap, base_dn, user["id"])
    assert "scimresource" in {c.lower() for c in e.get("objectClass")}
    assert (e.get("scimActive"), e.get("pwdAccountLockedTime"), e.get("title")) == (
        ["FALSE"], [LOCKED], ["Adopted"])
    assert sorted(e.get("cn")) == ["L. One", "Legacy One"]
    assert sorted(e.get("telephoneNumber")) == ["+1 1", "+1 2"]

    r = scim.patch(f"/Users/{user['id']}", patch(
        {"op": "Replace", "path": 'phoneNumbers[type eq "work"].value', "value": "+1 3"}))
    assert r.status_code == 200
    assert ldap_of(ldap, base_dn, user["id"]).get("telephoneNumber") == ["+1 3"]
