"""Users on real slapd: create, uniqueness, read and match (docs entra-scim.md §5, §6.1–6.3).

Every test checks the HTTP answer and the LDAP entry read back with the plain admin
connection. PATCH is in test_users_patch.py; disable, PUT, DELETE, ETags and request
errors are in test_users_state.py.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote

import pytest

from tests import entra
from tests.conftest import Scim
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
    parent_of,
    people,
    rdn_value,
    same_dn,
    tree,
    user_count,
    user_entries,
    without_meta,
)

UUID_CHARS = set("0123456789abcdef-")


def full_entra_user(user_name: str = "Adele.Vance@contoso.com",
                    manager: Any = None) -> dict[str, Any]:
    """Every attribute of Entra's default user mapping (entra-scim.md §5), in GET order."""
    body: dict[str, Any] = {
        "schemas": [entra.CORE_USER, ENTERPRISE],
        "externalId": "AdeleV",
        "userName": user_name,
        "active": True,
        "displayName": "Adele Vance",
        "title": "Retail Manager",
        "preferredLanguage": "en-US",
        "name": {"formatted": "Adele Vance", "familyName": "Vance", "givenName": "Adele"},
        "emails": [{"type": "work", "value": "adele@contoso.com", "primary": True},
                   {"type": "other", "value": "smtp:AdeleV@contoso.onmicrosoft.com"}],
        "phoneNumbers": [{"type": "work", "value": "+1 425 555 0109"},
                         {"type": "mobile", "value": "+1 425 555 0110"},
                         {"type": "fax", "value": "+1 425 555 0111"}],
        "addresses": [{"type": "work", "streetAddress": "1 Microsoft Way",
                       "locality": "Redmond", "region": "WA", "postalCode": "98052",
                       "country": "US", "primary": True},
                      {"type": "other", "formatted": "Building 92 / 1061"}],
        ENTERPRISE: {"employeeNumber": "100042", "department": "Retail"},
        "meta": {"resourceType": "User"},
        "roles": [],
    }
    if manager is not None:
        body[ENTERPRISE]["manager"] = manager
    return body


# --- POST: Entra's body -------------------------------------------------------------------


def test_post_entra_body_answers_201_with_location_etag_and_full_resource(scim, ldap, base_dn):
    r = scim.post("/Users", entra.user())
    assert r.status_code == 201, r.json
    assert r.headers["Content-Type"] == "application/scim+json"
    body = r.json
    uid = body["id"]
    assert set(uid) <= UUID_CHARS and len(uid) == 36
    assert r.headers["Location"] == body["meta"]["location"]
    assert r.headers["Location"].endswith(f"/scim/v2/Users/{uid}")
    assert r.headers["ETag"] == body["meta"]["version"]
    assert r.headers["ETag"].startswith('W/"')
    assert body["schemas"] == [entra.CORE_USER, ENTERPRISE]
    meta = body["meta"]
    assert meta["resourceType"] == "User"
    assert meta["created"].endswith("Z") and meta["lastModified"].endswith("Z")
    assert "password" not in body and "roles" not in body and "groups" not in body
    assert None not in body.values()

    got = scim.get(f"/Users/{uid}")
    assert got.status_code == 200
    assert without_meta(got.json) == without_meta(body)
    assert got.json["meta"] == meta
    assert got.headers["ETag"] == r.headers["ETag"]

    e = by_name(ldap, base_dn, "Adele.Vance@contoso.com")
    assert e.one("entryUUID") == uid
    assert same_dn(e.dn, f"uid=Adele.Vance@contoso.com,{people(base_dn)}")
    assert {c.lower() for c in e.get("objectClass")} >= {
        "inetorgperson", "organizationalperson", "person", "scimresource"}
    assert e.one("uid") == "Adele.Vance@contoso.com"
    assert e.one("scimActive") == "TRUE"
    assert not e.has("pwdAccountLockedTime")


def test_every_default_mapping_attribute_round_trips_exactly(scim, ldap, base_dn, boss):
    sent = full_entra_user(manager=boss["id"])
    created = create(scim, sent)
    got = scim.get(f"/Users/{created['id']}").json
    expected = {k: v for k, v in sent.items() if k not in ("meta", "roles")}
    expected[ENTERPRISE] = {**sent[ENTERPRISE], "manager": {
        "value": boss["id"], "$ref": boss["meta"]["location"], "displayName": "Megan Bowen"}}
    assert without_meta(got) == {"id": created["id"], **expected}
    assert without_meta(created) == without_meta(got)

    e = by_name(ldap, base_dn, "Adele.Vance@contoso.com")
    stored = {name: e.get(name) for name in (
        "uid", "scimExternalId", "scimActive", "displayName", "title", "preferredLanguage",
        "cn", "sn", "givenName", "mail", "scimOtherEmail", "telephoneNumber", "mobile",
        "facsimileTelephoneNumber", "street", "l", "st", "postalCode", "scimWorkCountry",
        "physicalDeliveryOfficeName", "employeeNumber", "departmentNumber")}
    assert stored == {
        "uid": ["Adele.Vance@contoso.com"], "scimExternalId": ["AdeleV"],
        "scimActive": ["TRUE"], "displayName": ["Adele Vance"], "title": ["Retail Manager"],
        "preferredLanguage": ["en-US"], "cn": ["Adele Vance"], "sn": ["Vance"],
        "givenName": ["Adele"], "mail": ["adele@contoso.com"],
        "scimOtherEmail": ["smtp:AdeleV@contoso.onmicrosoft.com"],
        "telephoneNumber": ["+1 425 555 0109"], "mobile": ["+1 425 555 0110"],
        "facsimileTelephoneNumber": ["+1 425 555 0111"], "street": ["1 Microsoft Way"],
        "l": ["Redmond"], "st": ["WA"], "postalCode": ["98052"], "scimWorkCountry": ["US"],
        "physicalDeliveryOfficeName": ["Building 92 / 1061"], "employeeNumber": ["100042"],
        "departmentNumber": ["Retail"]}
    assert same_dn(e.one("manager") or "", f"uid=Megan.Bowen@contoso.com,{people(base_dn)}")
    assert sorted(e.get("scimPrimary")) == ["addresses=work", "emails=work"]
    assert not e.has("scimDerived")
    assert not e.has("userPassword")


def test_values_are_stored_and_returned_as_sent_without_reformatting(scim, ldap, base_dn):
    sent = {**entra.minimal_user("Fmt@contoso.com"), "displayName": "  two  spaces ",
            "phoneNumbers": [{"type": "work", "value": "(425) 555-0109 ext. 12"}],
            "title": "VP, R&D (Ops) = \"lead\""}
    got = create(scim, sent)
    assert got["displayName"] == "  two  spaces "
    assert got["phoneNumbers"] == sent["phoneNumbers"]
    assert got["title"] == sent["title"]
    e = by_id(ldap, base_dn, got["id"])
    assert e is not None
    assert e.get("telephoneNumber") == ["(425) 555-0109 ext. 12"]
    assert e.get("title") == ['VP, R&D (Ops) = "lead"']


@pytest.mark.parametrize(("sent", "stored", "returned"), [
    (True, "TRUE", True), (False, "FALSE", False), ("True", "TRUE", True),
    ("False", "FALSE", False), ("true", "TRUE", True), ("false", "FALSE", False)])
def test_post_active_in_every_entra_form(scim, ldap, base_dn, sent, stored, returned):
    r = scim.post("/Users", {**entra.user("act@contoso.com"), "active": sent})
    assert r.status_code == 201, r.json
    assert r.json["active"] is returned
    assert scim.get(f"/Users/{r.json['id']}").json["active"] is returned
    e = by_name(ldap, base_dn, "act@contoso.com")
    assert e.get("scimActive") == [stored]
    assert e.get("pwdAccountLockedTime") == ([] if returned else [LOCKED])


@pytest.mark.parametrize(("sent", "flag"), [("True", "emails=work"), ("false", "emails=work:false"),
                                          (False, "emails=work:false")])
def test_primary_sent_as_a_string_is_stored_and_returned_as_a_boolean(scim, ldap, base_dn,
                                                                      sent, flag):
    got = create(scim, {**entra.user("prim@contoso.com"), "addresses": [],
                        "emails": [{"type": "work", "value": "p@x.org", "primary": sent}]})
    assert got["emails"] == [{"type": "work", "value": "p@x.org", "primary": flag == "emails=work"}]
    assert by_name(ldap, base_dn, "prim@contoso.com").get("scimPrimary") == [flag]


def test_explicit_nulls_are_unassigned_and_never_stored(scim, ldap, base_dn):
    body = {**entra.minimal_user("nulls@contoso.com"),
            "schemas": [entra.CORE_USER, ENTERPRISE],
            "title": None, "addresses": None, "nickName": None, "active": None,
            "name": {"givenName": None, "familyName": "Null"},
            "emails": [{"type": "work", "value": None, "primary": None}],
            ENTERPRISE: {"manager": None, "department": None, "employeeNumber": "7"}}
    r = scim.post("/Users", body)
    assert r.status_code == 201, r.json
    for absent in ("title", "addresses", "nickName", "active", "emails"):
        assert absent not in r.json
    assert r.json["name"] == {"familyName": "Null"}
    assert r.json[ENTERPRISE] == {"employeeNumber": "7"}
    assert None not in r.json.values()
    e = by_name(ldap, base_dn, "nulls@contoso.com")
    for absent in ("title", "street", "scimNickName", "scimActive", "mail", "manager",
                   "departmentNumber", "givenName", "scimPrimary"):
        assert not e.has(absent), absent
    assert e.get("sn") == ["Null"] and e.get("employeeNumber") == ["7"]


def test_derived_cn_and_sn_are_stored_recorded_and_never_returned(scim, ldap, base_dn):
    got = create(scim, entra.minimal_user("bare@contoso.com"))
    assert set(got) == {"schemas", "id", "userName", "meta"}
    e = by_name(ldap, base_dn, "bare@contoso.com")
    assert e.get("cn") == ["bare@contoso.com"] and e.get("sn") == ["bare@contoso.com"]
    assert sorted(e.get("scimDerived")) == ["cn", "sn"]
    got = create(scim, {**entra.minimal_user("named@contoso.com"), "displayName": "Named"})
    assert "name" not in got
    e = by_name(ldap, base_dn, "named@contoso.com")
    assert e.get("cn") == ["Named"]


# --- POST: manager ----------------------------------------------------------------------


@pytest.mark.parametrize("form", ["bare id", "object", "list", "list with $ref"])
def test_manager_in_every_form_is_stored_as_a_dn_and_returned_complex(scim, ldap, base_dn,
                                                                     boss, form):
    value = {"bare id": boss["id"], "object": {"value": boss["id"]},
             "list": [{"value": boss["id"]}],
             "list with $ref": [{"$ref": boss["meta"]["location"], "value": boss["id"]}]}[form]
    r = scim.post("/Users", full_entra_user(manager=value))
    assert r.status_code == 201, r.json
    want = {"value": boss["id"], "$ref": boss["meta"]["location"], "displayName": "Megan Bowen"}
    assert r.json[ENTERPRISE]["manager"] == want
    assert scim.get(f"/Users/{r.json['id']}").json[ENTERPRISE]["manager"] == want
    e = by_id(ldap, base_dn, r.json["id"])
    assert e is not None
    assert e.get("manager") and same_dn(e.get("manager")[0],
                                        f"uid=Megan.Bowen@contoso.com,{people(base_dn)}")


def test_manager_without_display_name_is_returned_without_a_derived_one(scim, ldap, base_dn):
    plain = create(scim, entra.minimal_user("plain.boss@contoso.com"))
    r = scim.post("/Users", full_entra_user(manager=plain["id"]))
    assert r.status_code == 201, r.json
    assert r.json[ENTERPRISE]["manager"] == {"value": plain["id"],
                                             "$ref": plain["meta"]["location"]}


@pytest.mark.parametrize("manager", [ABSENT_ID, "not-a-uuid", "group"])
def test_unknown_manager_is_400_invalid_value_and_nothing_written(scim, ldap, base_dn,
                                                                  manager):
    if manager == "group":
        manager = scim.post("/Groups", entra.group("Managers")).json["id"]
    before = tree(ldap, base_dn)
    r = scim.post("/Users", full_entra_user(manager=manager))
    assert_error(r, 400, "invalidValue", "manager")
    assert tree(ldap, base_dn) == before
    assert user_count(ldap, base_dn) == 0


# --- POST: password -------------------------------------------------------------------------


def test_password_is_stored_as_ssha512_never_returned_and_binds(scim, ldap, base_dn, slapd):
    r = scim.post("/Users", {**entra.user("pw@contoso.com"), "password": "S3cret!pässwörd"})
    assert r.status_code == 201, r.json
    assert "password" not in r.json
    uid = r.json["id"]
    assert "password" not in scim.get(f"/Users/{uid}").json
    listed = scim.get(f"/Users?filter={eq('userName', 'pw@contoso.com')}").json
    assert "password" not in listed["Resources"][0]
    assert "password" not in scim.get(f"/Users/{uid}?attributes=password").json
    e = by_name(ldap, base_dn, "pw@contoso.com", ("userPassword",))
    [hashed] = e.get("userPassword")
    assert hashed.startswith("{SSHA512}")
    assert "S3cret" not in hashed
    dn = f"uid=pw@contoso.com,{people(base_dn)}"
    assert can_bind(slapd, dn, "S3cret!pässwörd")
    assert not can_bind(slapd, dn, "wrong")


# --- POST: Unicode and DN metacharacters ------------------------------------------------


@pytest.mark.parametrize("user_name", [
    'a,b+c="x"<y>;#\\ é@x',
    'a,b+c="x"<y>;#\\\\ é@x',
    "#hash@contoso.com",
    "ünïcødé.用户@例え.jp",
    "x)(uid=*",
    "cn=admin,dc=example",
])
def test_username_with_dn_metacharacters_and_unicode_round_trips(scim, ldap, base_dn,
                                                                 user_name):
    r = scim.post("/Users", {**entra.minimal_user(user_name), "displayName": "Zoë ☃ 🙂"})
    assert r.status_code == 201, r.json
    uid = r.json["id"]
    assert r.json["userName"] == user_name
    got = scim.get(f"/Users/{uid}").json
    assert (got["userName"], got["displayName"]) == (user_name, "Zoë ☃ 🙂")
    [e] = user_entries(ldap, base_dn)
    assert e.one("entryUUID") == uid
    assert e.get("uid") == [user_name]
    assert e.get("displayName") == ["Zoë ☃ 🙂"]
    assert rdn_value(e.dn) == user_name
    assert parent_of(e.dn) == parent_of(f"x=y,{people(base_dn)}")
    found = scim.get(f"/Users?filter={eq('userName', user_name)}").json
    assert [u["id"] for u in found["Resources"]] == [uid]


@pytest.mark.parametrize(("unit", "fits"), [("x", 241), (",", 80), ("é", 120), ("€", 80)])
def test_longest_username_the_directory_holds_and_one_more(scim, ldap, base_dn, unit, fits):
    """slapd's back-mdb holds an RDN of about 241 bytes (escaped); beyond that it answers
    'other', which must be a 400 naming userName, not a 500."""
    longest = unit * fits
    r = scim.post("/Users", {**entra.minimal_user(longest), "displayName": "Long"})
    assert r.status_code == 201, r.json
    assert by_id(ldap, base_dn, r.json["id"]) is not None
    assert scim.get(f"/Users/{r.json['id']}").json["userName"] == longest
    before = tree(ldap, base_dn)
    r = scim.post("/Users", {**entra.minimal_user(unit * (fits + 1)), "displayName": "Long"})
    assert_error(r, 400, "invalidValue", "userName", "too long")
    assert tree(ldap, base_dn) == before


def test_unicode_values_round_trip_in_ldap_as_utf8(scim, ldap, base_dn):
    sent = {**entra.minimal_user("unicode@contoso.com"), "displayName": "Łukasz Żółć",
            "name": {"givenName": "Łukasz", "familyName": "Żółć"}, "title": "開発者",
            "addresses": [{"type": "work", "locality": "Zürich", "streetAddress": "Straße 1"}]}
    got = create(scim, sent)
    for key in ("displayName", "name", "title", "addresses"):
        assert got[key] == sent[key]
    e = by_name(ldap, base_dn, "unicode@contoso.com")
    assert (e.get("displayName"), e.get("sn"), e.get("title"), e.get("l"), e.get("street")) \
        == (["Łukasz Żółć"], ["Żółć"], ["開発者"], ["Zürich"], ["Straße 1"])


# --- uniqueness -----------------------------------------------------------------------------


@pytest.mark.parametrize("other_case", ["ADELE.VANCE@CONTOSO.COM", "adele.vance@contoso.com",
                                        "Adele.Vance@contoso.com"])
def test_duplicate_username_in_any_case_is_409_uniqueness(scim, ldap, base_dn, other_case):
    create(scim, entra.user())
    before = tree(ldap, base_dn)
    r = scim.post("/Users", {**entra.user(other_case), "externalId": "other"})
    assert_error(r, 409, "uniqueness", other_case)
    assert tree(ldap, base_dn) == before


def test_unicode_case_variant_of_username_is_409(scim, ldap, base_dn):
    create(scim, entra.minimal_user("émile@contoso.com"))
    r = scim.post("/Users", entra.minimal_user("ÉMILE@contoso.com"))
    assert_error(r, 409, "uniqueness")
    assert user_count(ldap, base_dn) == 1


def test_race_of_eight_creates_in_different_cases_gives_exactly_one_201(app, ldap, base_dn):
    names = ["race@contoso.com", "RACE@contoso.com", "Race@Contoso.com", "rAcE@contoso.com",
             "race@CONTOSO.com", "RACE@contoso.COM", "race@Contoso.Com", "RaCe@cOnToSo.CoM"]
    answers: list[tuple[int, Any]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(names))

    def post(name: str) -> None:
        client = Scim(app.test_client())
        barrier.wait()
        r = client.post("/Users", {**entra.user(name), "externalId": name})
        with lock:
            answers.append((r.status_code, r.json))

    threads = [threading.Thread(target=post, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(code for code, _ in answers)
    assert codes == [201] + [409] * 7, answers
    assert all(body["scimType"] == "uniqueness" for code, body in answers if code == 409)
    [winner] = [body for code, body in answers if code == 201]
    [e] = user_entries(ldap, base_dn)
    assert e.one("entryUUID") == winner["id"]
    assert e.get("scimExternalId") == [winner["userName"]]


# --- GET by id ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [ABSENT_ID, ABSENT_ID.upper(), "nope", "*", "x)(uid=*",
                                 "12345", "00000000-0000-0000-0000-00000000000g"])
def test_unknown_or_garbage_id_is_404_with_scim_error(scim, ldap, base_dn, bad):
    create(scim, entra.user())
    r = scim.get(f"/Users/{quote(bad, safe='')}")
    assert_error(r, 404, None)


def test_group_id_is_not_a_user(scim):
    gid = scim.post("/Groups", entra.group()).json["id"]
    assert_error(scim.get(f"/Users/{gid}"), 404, None)


def test_get_by_id_returns_every_stored_attribute(scim, ldap, base_dn):
    created = create(scim, full_entra_user())
    r = scim.get(f"/Users/{created['id']}")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/scim+json"
    assert r.headers["ETag"] == r.json["meta"]["version"]
    assert without_meta(r.json) == without_meta(created)
    e = by_id(ldap, base_dn, created["id"])
    assert e is not None and e.get("uid") == ["Adele.Vance@contoso.com"]


# --- filters Entra matches with --------------------------------------------------------------


def _ids(scim: Scim, query: str) -> list[str]:
    r = scim.get(f"/Users?filter={query}")
    assert r.status_code == 200, r.json
    assert r.headers["Content-Type"] == "application/scim+json"
    body = r.json
    assert body["totalResults"] == len(body["Resources"])
    return [u["id"] for u in body["Resources"]]


@pytest.fixture
def two_users(scim: Scim) -> tuple[str, str]:
    adele = create(scim, entra.user())
    alex = create(scim, {**entra.user("Alex.Wilber@contoso.com"), "externalId": "AlexW",
                         "emails": [{"type": "work", "value": "alex@contoso.com"}]})
    return adele["id"], alex["id"]


def test_filter_username_eq_is_case_insensitive(scim, two_users):
    adele, _ = two_users
    assert _ids(scim, eq("userName", "Adele.Vance@contoso.com")) == [adele]
    assert _ids(scim, eq("userName", "ADELE.vance@CONTOSO.COM")) == [adele]
    assert _ids(scim, "userName+eq+%22adele.vance%40contoso.com%22") == [adele]
    assert _ids(scim, eq("USERNAME", "adele.vance@contoso.com")) == [adele]
    assert _ids(scim, eq("userName", "Adele.Vance")) == []
    assert _ids(scim, eq("userName", "Adele*")) == []
    empty = scim.get(f"/Users?filter={eq('userName', 'b0f4c3e2-6a51-4b8e-9d62-2f0a8c1e7d33')}")
    assert empty.json == {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                          "totalResults": 0, "Resources": [], "startIndex": 1,
                          "itemsPerPage": 0}


def test_filter_external_id_eq_is_case_exact(scim, two_users):
    adele, alex = two_users
    assert _ids(scim, eq("externalId", "AdeleV")) == [adele]
    assert _ids(scim, "externalId+eq+%22AlexW%22") == [alex]
    assert _ids(scim, eq("externalId", "adelev")) == []
    assert _ids(scim, eq("externalId", "ADELEV")) == []


def test_filter_work_email_value_eq(scim, two_users):
    adele, alex = two_users
    assert _ids(scim, quote('emails[type eq "work"].value eq "adele@contoso.com"',
                            safe="")) == [adele]
    assert _ids(scim, "emails%5Btype+eq+%22work%22%5D.value+eq+%22alex%40contoso.com%22") \
        == [alex]
    assert _ids(scim, quote('emails[type eq "home"].value eq "adele@contoso.com"',
                            safe="")) == []


def test_filter_username_and_external_id(scim, two_users):
    adele, _ = two_users
    both = quote('userName eq "adele.vance@contoso.com" and externalId eq "AdeleV"', safe="")
    assert _ids(scim, both) == [adele]
    wrong = quote('userName eq "adele.vance@contoso.com" and externalId eq "AlexW"', safe="")
    assert _ids(scim, wrong) == []


def test_soft_deleted_user_is_still_returned_by_id_and_every_filter(scim, ldap, base_dn,
                                                                    two_users):
    adele, _ = two_users
    r = scim.patch(f"/Users/{adele}", entra.patch(
        {"op": "Replace", "path": "active", "value": "False"}))
    assert r.status_code == 200, r.json
    e = by_id(ldap, base_dn, adele)
    assert e is not None and e.get("scimActive") == ["FALSE"]
    got = scim.get(f"/Users/{adele}")
    assert got.status_code == 200 and got.json["active"] is False
    for query in (eq("userName", "ADELE.VANCE@contoso.com"), eq("externalId", "AdeleV"),
                  quote('emails[type eq "work"].value eq "adele@contoso.com"', safe="")):
        r = scim.get(f"/Users?filter={query}")
        assert r.json["totalResults"] == 1
        assert r.json["Resources"][0]["id"] == adele
        assert r.json["Resources"][0]["active"] is False
