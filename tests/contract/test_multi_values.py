"""Issue 17, the RFC forms other clients send, on real slapd (LDAP read back directly):

- several e-mails, phone numbers and addresses of one type (RFC 7643 §2.4 limits only
  ``primary`` to one): every value is stored and returned, the primary first; what an
  LDAP reader sees is ``mail`` with the primary work e-mail first;
- the RFC 7643 §2.4 sub-attributes a definition has (``display`` of group members) are
  accepted on every method; an unknown one is refused on every method, naming it;
- a PATCH that would grow a list past its maximum is refused, and applying one costs
  at most operations × that maximum (bench/patch_cost.py has the figures).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests import entra
from tests.contract.users_support import ldap_of, tree
from tests.entra import patch

WORK_HOME = [
    {"type": "work", "value": "second@x.org"},
    {"type": "home", "value": "home1@x.org"},
    {"type": "work", "value": "first@x.org", "primary": True},
    {"type": "home", "value": "home2@x.org", "primary": False},
    {"type": "other", "value": "other@x.org"},
]
PHONES = [{"type": "mobile", "value": "+1 555 0101"}, {"type": "mobile", "value": "+1 555 0102"},
          {"type": "other", "value": "+1 555 0103"}, {"type": "other", "value": "+1 555 0104"}]
ADDRESSES = [
    {"type": "work", "streetAddress": "1 Main St", "locality": "Paris", "country": "FR"},
    {"type": "work", "streetAddress": "2 Side St", "locality": "Paris", "primary": True},
    {"type": "home", "formatted": "At home", "locality": "Lyon"},
    {"type": "home", "formatted": "At home", "locality": "Lyon"},  # the same address twice
]


def created(scim: Any, name: str, **attrs: Any) -> dict:
    r = scim.post("/Users", {**entra.minimal_user(name), **attrs})
    assert r.status_code == 201, r.json
    return r.json


def without_type_order(elements: list[dict]) -> list[tuple]:
    return sorted(tuple(sorted(e.items())) for e in elements)


def test_every_email_of_a_type_is_stored_and_returned_primary_first(scim, ldap, base_dn):
    user = created(scim, "many@x.org", emails=WORK_HOME)
    e = ldap_of(ldap, base_dn, user["id"])
    assert e.get("mail") == ["first@x.org", "second@x.org"]  # an MDM reads the primary first
    assert e.get("scimHomeEmail") == ["home1@x.org", "home2@x.org"]
    assert e.get("scimOtherEmail") == ["other@x.org"]
    assert sorted(e.get("scimPrimary")) == ["emails=home#1:false", "emails=work"]
    for answer in (user, scim.get(f"/Users/{user['id']}").json):
        emails = answer["emails"]
        assert emails[0] == {"type": "work", "value": "first@x.org", "primary": True}
        assert without_type_order(emails) == without_type_order(WORK_HOME)
    found = scim.get('/Users?filter=emails.value%20eq%20%22second@x.org%22').json
    assert [u["id"] for u in found["Resources"]] == [user["id"]]


def test_every_phone_number_and_address_of_a_type_round_trips(scim, ldap, base_dn):
    user = created(scim, "phones@x.org", phoneNumbers=PHONES, addresses=ADDRESSES)
    e = ldap_of(ldap, base_dn, user["id"])
    assert e.get("mobile") == ["+1 555 0101", "+1 555 0102"]
    assert e.get("scimOtherPhone") == ["+1 555 0103", "+1 555 0104"]
    # the primary work address fills street, l, …; the others are JSON beside them
    assert (e.get("street"), e.get("l"), e.get("scimWorkCountry")) == (
        ["2 Side St"], ["Paris"], [])
    assert (e.get("scimHomeFormatted"), e.get("scimHomeLocality")) == (["At home"], ["Lyon"])
    extras = sorted((x["type"], x["index"], x["value"]) for x in map(json.loads,
                                                                     e.get("scimExtraValue")))
    assert [(t, i) for t, i, _ in extras] == [("home", 1), ("work", 1)]
    assert extras[1][2] == {"streetAddress": "1 Main St", "locality": "Paris", "country": "FR"}
    got = scim.get(f"/Users/{user['id']}").json
    assert without_type_order(got["phoneNumbers"]) == without_type_order(PHONES)
    assert without_type_order(got["addresses"]) == without_type_order(ADDRESSES)
    assert got["addresses"][0]["primary"] is True and got["addresses"][0]["locality"] == "Paris"


def test_put_and_patch_change_one_value_among_several(scim, ldap, base_dn):
    user = created(scim, "edit@x.org", emails=WORK_HOME, addresses=ADDRESSES)
    uid = user["id"]
    r = scim.patch(f"/Users/{uid}", patch(
        {"op": "Add", "path": "emails", "value": [{"type": "work", "value": "third@x.org"}]},
        {"op": "Remove", "path": 'emails[value eq "second@x.org"]'},
        {"op": "Replace", "path": 'emails[value eq "home2@x.org"].value',
         "value": "home3@x.org"},
        {"op": "Remove", "path": 'addresses[streetAddress eq "1 Main St"]'}))
    assert r.status_code == 200, r.json
    e = ldap_of(ldap, base_dn, uid)
    assert e.get("mail") == ["first@x.org", "third@x.org"]
    assert e.get("scimHomeEmail") == ["home1@x.org", "home3@x.org"]
    assert [json.loads(x)["type"] for x in e.get("scimExtraValue")] == ["home"]
    assert len(r.json["emails"]) == 5 and len(r.json["addresses"]) == 3
    # path-less, as Entra sends it: the primary moves to a home e-mail
    r = scim.patch(f"/Users/{uid}", patch({"op": "Replace", "value": {"emails": [
        {"type": "work", "value": "first@x.org"},
        {"type": "home", "value": "home3@x.org", "primary": True},
        {"type": "home", "value": "home1@x.org"}]}}))
    assert r.status_code == 200, r.json
    e = ldap_of(ldap, base_dn, uid)
    assert (e.get("mail"), e.get("scimHomeEmail")) == (["first@x.org"],
                                                       ["home3@x.org", "home1@x.org"])
    assert sorted(e.get("scimPrimary")) == ["addresses=work", "emails=home"]
    assert r.json["emails"][0] == {"type": "home", "value": "home3@x.org", "primary": True}
    put = {**entra.minimal_user("edit@x.org"), "emails": [
        {"type": "work", "value": "a@x.org"}, {"type": "work", "value": "b@x.org"}]}
    r = scim.put(f"/Users/{uid}", put)
    assert r.status_code == 200, r.json
    e = ldap_of(ldap, base_dn, uid)
    assert (e.get("mail"), e.get("scimHomeEmail"), e.get("scimExtraValue"),
            e.get("scimPrimary")) == (["a@x.org", "b@x.org"], [], [], [])


def test_limits_of_multi_valued_attributes(scim, ldap, base_dn):
    user = created(scim, "limits@x.org", emails=[{"type": "work", "value": "w@x.org"}])
    before = tree(ldap, base_dn)
    two_primaries = [{"type": "work", "value": "a@x.org", "primary": True},
                     {"type": "work", "value": "b@x.org", "primary": True}]
    r = scim.put(f"/Users/{user['id']}", {**entra.minimal_user("limits@x.org"),
                                          "emails": two_primaries})
    assert (r.status_code, r.json["scimType"]) == (400, "invalidValue")
    assert "at most one value may be primary" in r.json["detail"]
    many = {f'emails[value eq "e{i}@x.org"].type': "work" for i in range(100)}
    r = scim.patch(f"/Users/{user['id']}", patch({"op": "Add", "value": many}))
    assert (r.status_code, r.json["scimType"]) == (400, "invalidValue")
    assert "at most 100 values" in r.json["detail"] and "101" in r.json["detail"]
    assert tree(ldap, base_dn) == before
    ninety_nine = dict(list(many.items())[:99])
    r = scim.patch(f"/Users/{user['id']}", patch({"op": "Add", "value": ninety_nine}))
    assert r.status_code == 200, r.json
    assert len(ldap_of(ldap, base_dn, user["id"]).get("mail")) == 100


# --- sub-attributes ------------------------------------------------------------------------------


@pytest.fixture
def member(scim: Any) -> str:
    return created(scim, "member@x.org", displayName="Member One")["id"]


def test_member_display_is_accepted_on_every_method(scim, ldap, base_dn, member):
    rfc = [{"value": member, "display": "Member One", "type": "User",
            "$ref": f"https://x/scim/v2/Users/{member}"}]
    r = scim.post("/Groups", {**entra.group("Displayed"), "members": rfc})
    assert r.status_code == 201, r.json
    gid = r.json["id"]
    dn = f"cn=Displayed,ou=Groups,{base_dn}"
    member_dn = f"uid=member@x.org,ou=People,{base_dn}"

    def members() -> list[str]:
        ldap.search(dn, "(objectClass=*)", attributes=["member"])
        return [str(m).lower() for m in ldap.entries[0].member.values]

    assert members() == [member_dn.lower()]
    r = scim.put(f"/Groups/{gid}", {**entra.group("Displayed"), "members": rfc})
    assert r.status_code == 200 and members() == [member_dn.lower()]
    assert scim.patch(f"/Groups/{gid}", patch(
        {"op": "Remove", "path": "members", "value": rfc})).status_code == 204
    assert scim.patch(f"/Groups/{gid}", patch(
        {"op": "Add", "path": "members", "value": rfc})).status_code == 204
    assert members() == [member_dn.lower()]
    assert scim.patch(f"/Groups/{gid}", patch(
        {"op": "Replace", "value": {"members": rfc}})).status_code == 204
    assert members() == [member_dn.lower()]


def test_an_unknown_sub_attribute_is_refused_on_every_method(scim, ldap, base_dn, member):
    gid = scim.post("/Groups", entra.group("Strict", [member])).json["id"]
    uid = created(scim, "strict@x.org", emails=[{"type": "work", "value": "s@x.org"}])["id"]
    before = tree(ldap, base_dn)
    invented = [{"value": member, "colour": "blue"}]
    email = [{"type": "work", "value": "t@x.org", "colour": "blue"}]
    in_a_body = [  # the unknown name is inside a value: the body does not fit the schema
        scim.post("/Groups", {**entra.group("Strict 2"), "members": invented}),
        scim.put(f"/Groups/{gid}", {**entra.group("Strict"), "members": invented}),
        scim.patch(f"/Groups/{gid}", patch({"op": "Add", "path": "members", "value": invented})),
        scim.patch(f"/Groups/{gid}", patch({"op": "Replace", "value": {"members": invented}})),
        scim.post("/Users", {**entra.minimal_user("strict2@x.org"), "emails": email}),
        scim.put(f"/Users/{uid}", {**entra.minimal_user("strict@x.org"), "emails": email}),
        scim.patch(f"/Users/{uid}", patch({"op": "Add", "path": "emails", "value": email})),
        scim.patch(f"/Users/{uid}", patch({"op": "Replace", "value": {"emails": email}})),
    ]
    for r in in_a_body:
        assert (r.status_code, r.json["scimType"]) == (400, "invalidSyntax"), r.json
        assert "colour" in r.json["detail"] and "unknown attribute" in r.json["detail"]
    in_a_path = [  # the unknown name is a path: the path names nothing
        scim.patch(f"/Users/{uid}", patch({"op": "Replace", "path":
                                           'emails[type eq "work"].colour', "value": "x"})),
        scim.patch(f"/Users/{uid}", patch({"op": "Replace", "value": {
            'emails[type eq "work"].colour': "x"}})),
        scim.patch(f"/Users/{uid}", patch({"op": "Replace", "path": "name.colour",
                                           "value": "x"})),
    ]
    for r in in_a_path:
        assert (r.status_code, r.json["scimType"]) == (400, "invalidValue"), r.json
        assert "unknown sub-attribute 'colour'" in r.json["detail"]
    assert tree(ldap, base_dn) == before


def test_an_entry_made_outside_scim_with_more_values_stays_patchable(scim, ldap, base_dn):
    dn = f"uid=hoarder,ou=People,{base_dn}"
    mails = [f"m{i:03d}@x.org" for i in range(120)]
    ldap.add(dn, ["inetOrgPerson"], {"uid": "hoarder", "cn": "Hoarder", "sn": "H",
                                     "mail": mails})
    user = scim.get('/Users?filter=userName%20eq%20%22hoarder%22').json["Resources"][0]
    assert [e["value"] for e in user["emails"]] == mails
    uid = user["id"]
    r = scim.patch(f"/Users/{uid}", patch({"op": "Replace", "path": "title", "value": "T"}))
    assert r.status_code == 200, r.json
    r = scim.patch(f"/Users/{uid}", patch({"op": "Add", "path": "emails",
                                           "value": [{"type": "work", "value": "new@x.org"}]}))
    assert (r.status_code, r.json["scimType"]) == (400, "invalidValue")
    assert "at most 100 values" in r.json["detail"]
    r = scim.patch(f"/Users/{uid}", patch({"op": "Remove",
                                           "path": 'emails[value eq "m000@x.org"]'}))
    assert r.status_code == 200, r.json
    assert ldap_of(ldap, base_dn, uid).get("mail") == mails[1:]
    r = scim.put(f"/Users/{uid}", {**entra.minimal_user("hoarder"), "emails": user["emails"]})
    assert (r.status_code, r.json["scimType"]) == (400, "invalidValue")  # a client's body
    assert "more than 100 values" in r.json["detail"]
