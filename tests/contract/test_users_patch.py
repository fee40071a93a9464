"""PATCH /Users on real slapd: the forms of entra-scim.md §6.4 (a)–(i).

Each test checks the 200 + resource answer and the LDAP entry read back. Renames (j),
atomicity, errors and concurrency are in test_users_patch_atomic.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests import entra
from tests.contract.users_support import (
    ABSENT_ID,
    ENTERPRISE,
    LOCKED,
    MANAGER,
    WORK_EMAIL,
    assert_error,
    create,
    ldap_of,
    ok,
    people,
    same_dn,
    snapshot,
)
from tests.entra import patch

# --- (a) (b) default mode: one op per attribute, capitalised ops -------------------------


def test_a_default_mode_filtered_value_and_sub_attribute_replace(scim, ldap, base_dn, adele):
    got = ok(scim, adele["id"],
             {"op": "Replace", "path": WORK_EMAIL, "value": "updatedEmail@contoso.com"},
             {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"})
    assert got["emails"] == [{"type": "work", "value": "updatedEmail@contoso.com",
                              "primary": True}]
    assert got["name"] == {"formatted": "Adele Vance", "familyName": "updatedFamilyName",
                           "givenName": "Adele"}
    e = ldap_of(ldap, base_dn, adele["id"])
    assert e.get("mail") == ["updatedEmail@contoso.com"]
    assert e.get("sn") == ["updatedFamilyName"]
    assert e.get("givenName") == ["Adele"] and e.get("cn") == ["Adele Vance"]
    assert e.get("scimPrimary") and "emails=work" in e.get("scimPrimary")


def test_b_default_mode_many_attributes_one_op_each(scim, ldap, base_dn, adele):
    got = ok(scim, adele["id"],
             {"op": "Replace", "path": "displayName", "value": "Pvlo"},
             {"op": "Replace", "path": WORK_EMAIL, "value": "TestBcwqnm@test.microsoft.com"},
             {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
             {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
             {"op": "Replace", "path": "externalId", "value": "Eqpj"},
             {"op": "Replace", "path": f"{ENTERPRISE}:employeeNumber", "value": "Eqpj"})
    assert (got["displayName"], got["externalId"], got[ENTERPRISE]["employeeNumber"]) == (
        "Pvlo", "Eqpj", "Eqpj")
    assert got[ENTERPRISE]["department"] == "Retail"
    e = ldap_of(ldap, base_dn, adele["id"])
    assert (e.get("displayName"), e.get("mail"), e.get("givenName"), e.get("sn"),
            e.get("scimExternalId"), e.get("employeeNumber")) == (
        ["Pvlo"], ["TestBcwqnm@test.microsoft.com"], ["Gtfd"], ["Pkqf"], ["Eqpj"], ["Eqpj"])
    assert e.get("departmentNumber") == ["Retail"] and e.get("title") == ["Retail Manager"]


@pytest.mark.parametrize("spelling", [
    ("add", "replace", "remove"), ("Add", "Replace", "Remove"),
    ("ADD", "REPLACE", "REMOVE"), ("aDd", "rEpLaCe", "rEmOvE")])
def test_op_is_matched_case_insensitively(scim, ldap, base_dn, adele, spelling):
    add, replace, remove = spelling
    got = ok(scim, adele["id"], {"op": add, "path": "nickName", "value": "Babs"},
             {"op": replace, "path": "title", "value": "Boss"},
             {"op": remove, "path": "preferredLanguage"})
    assert (got["nickName"], got["title"]) == ("Babs", "Boss")
    assert "preferredLanguage" not in got
    e = ldap_of(ldap, base_dn, adele["id"])
    assert (e.get("scimNickName"), e.get("title")) == (["Babs"], ["Boss"])
    assert not e.has("preferredLanguage")


def test_attribute_names_in_paths_are_case_insensitive(scim, ldap, base_dn, adele):
    got = ok(scim, adele["id"],
             {"op": "Replace", "path": 'EMAILS[TYPE eq "work"].VALUE', "value": "ci@x.org"},
             {"op": "Replace", "path": "NAME.GIVENNAME", "value": "Ci"},
             {"op": "Replace", "path": f"{ENTERPRISE.upper()}:DEPARTMENT", "value": "CI"})
    assert got["emails"][0]["value"] == "ci@x.org"
    assert got["name"]["givenName"] == "Ci" and got[ENTERPRISE]["department"] == "CI"
    e = ldap_of(ldap, base_dn, adele["id"])
    assert (e.get("mail"), e.get("givenName"), e.get("departmentNumber")) == (
        ["ci@x.org"], ["Ci"], ["CI"])


# --- (c) path-less replace with dotted and URN keys --------------------------------------


def test_c_pathless_replace_with_dotted_and_urn_keys_leaves_siblings(scim, ldap, base_dn,
                                                                      adele):
    before = ldap_of(ldap, base_dn, adele["id"])
    got = ok(scim, adele["id"],
             {"op": "replace", "path": WORK_EMAIL, "value": "TestMhvaes@test.microsoft.com"},
             {"op": "replace", "value": {
                 "displayName": "Bjfe", "name.givenName": "Kkom", "name.familyName": "Unua",
                 f"{ENTERPRISE}:employeeNumber": "Aklq"}})
    assert got["name"] == {"formatted": "Adele Vance", "givenName": "Kkom",
                           "familyName": "Unua"}
    assert got[ENTERPRISE] == {"employeeNumber": "Aklq", "department": "Retail"}
    assert got["emails"] == [{"type": "work", "value": "TestMhvaes@test.microsoft.com",
                              "primary": True}]
    for key in ("userName", "externalId", "title", "preferredLanguage", "phoneNumbers",
                "addresses", "active"):
        assert got[key] == adele[key], key
    e = ldap_of(ldap, base_dn, adele["id"])
    assert (e.get("displayName"), e.get("givenName"), e.get("sn"), e.get("employeeNumber"),
            e.get("mail")) == (["Bjfe"], ["Kkom"], ["Unua"], ["Aklq"],
                               ["TestMhvaes@test.microsoft.com"])
    changed = {"displayname", "givenname", "sn", "employeenumber", "mail", "entrycsn",
               "modifytimestamp", "modifiersname"}
    assert {k: v for k, v in e.attrs.items() if k not in changed} == {
        k: v for k, v in before.attrs.items() if k not in changed}
    assert not any("." in k for k in e.attrs)


def test_c_validator_pathless_replace_with_username_and_active(scim, ldap, base_dn, adele):
    got = ok(scim, adele["id"], {"op": "replace", "value": {
        "userName": "Validator.Renamed@contoso.com", "active": False,
        "name.familyName": "Renamed", "schemas": [entra.CORE_USER]}})
    assert (got["userName"], got["active"], got["name"]["familyName"]) == (
        "Validator.Renamed@contoso.com", False, "Renamed")
    e = ldap_of(ldap, base_dn, adele["id"])
    assert same_dn(e.dn, f"uid=Validator.Renamed@contoso.com,{people(base_dn)}")
    assert (e.get("scimActive"), e.get("pwdAccountLockedTime"), e.get("sn")) == (
        ["FALSE"], [LOCKED], ["Renamed"])


def test_c_pathless_whole_extension_object_and_nested_complex(scim, ldap, base_dn, adele):
    got = ok(scim, adele["id"], {"op": "Replace", "value": {
        ENTERPRISE: {"department": "Sales"}, "name": {"givenName": "Nested"}}})
    assert got[ENTERPRISE] == {"employeeNumber": "100042", "department": "Sales"}
    assert got["name"] == {"formatted": "Adele Vance", "familyName": "Vance",
                           "givenName": "Nested"}
    e = ldap_of(ldap, base_dn, adele["id"])
    assert (e.get("departmentNumber"), e.get("employeeNumber"), e.get("givenName"),
            e.get("sn")) == (["Sales"], ["100042"], ["Nested"], ["Vance"])


# --- (d) (e) add: single-valued, and through a filter that matches nothing --------------


def test_d_add_single_valued_attributes_that_were_empty(scim, ldap, base_dn):
    uid = create(scim, entra.minimal_user("add@contoso.com"))["id"]
    got = ok(scim, uid, {"op": "Add", "path": "title", "value": "Engineer"},
             {"op": "add", "path": "preferredLanguage", "value": "de-CH"},
             {"op": "Add", "path": "displayName", "value": "Add Me"},
             {"op": "Add", "path": "nickName", "value": "Babs"})
    assert (got["title"], got["preferredLanguage"], got["displayName"], got["nickName"]) == (
        "Engineer", "de-CH", "Add Me", "Babs")
    e = ldap_of(ldap, base_dn, uid)
    assert (e.get("title"), e.get("preferredLanguage"), e.get("displayName"),
            e.get("scimNickName")) == (["Engineer"], ["de-CH"], ["Add Me"], ["Babs"])
    assert e.get("cn") == ["Add Me"] and sorted(e.get("scimDerived")) == ["cn", "sn"]


def test_e_add_through_unmatched_filters_creates_the_elements(scim, ldap, base_dn):
    uid = create(scim, {**entra.minimal_user("seed@contoso.com"),
                        "phoneNumbers": [{"type": "work", "value": "+1 1"}]})["id"]
    got = ok(scim, uid,
             {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value',
              "value": "+1 206 555 0111"},
             {"op": "Add", "path": WORK_EMAIL, "value": "seed@contoso.com"},
             {"op": "Add", "path": 'addresses[type eq "work"].postalCode', "value": "98052"},
             {"op": "Add", "path": 'addresses[type eq "other"].formatted', "value": "B1"},
             {"op": "Add", "path": "name.givenName", "value": "Seed"},
             {"op": "Add", "path": "name.familyName", "value": "Ling"})
    assert got["phoneNumbers"] == [{"type": "work", "value": "+1 1"},
                                   {"type": "mobile", "value": "+1 206 555 0111"}]
    assert got["emails"] == [{"type": "work", "value": "seed@contoso.com"}]
    assert got["addresses"] == [{"type": "work", "postalCode": "98052"},
                                {"type": "other", "formatted": "B1"}]
    assert got["name"] == {"givenName": "Seed", "familyName": "Ling"}
    e = ldap_of(ldap, base_dn, uid)
    assert (e.get("telephoneNumber"), e.get("mobile"), e.get("mail"), e.get("postalCode"),
            e.get("physicalDeliveryOfficeName"), e.get("givenName"), e.get("sn")) == (
        ["+1 1"], ["+1 206 555 0111"], ["seed@contoso.com"], ["98052"], ["B1"], ["Seed"],
        ["Ling"])
    assert e.get("scimDerived") == ["cn"]


def test_replace_through_an_unmatched_type_filter_creates_the_element(scim, ldap, base_dn):
    uid = create(scim, entra.minimal_user("repl@contoso.com"))["id"]
    got = ok(scim, uid, {"op": "Replace", "path": WORK_EMAIL, "value": "repl@contoso.com"})
    assert got["emails"] == [{"type": "work", "value": "repl@contoso.com"}]
    assert ldap_of(ldap, base_dn, uid).get("mail") == ["repl@contoso.com"]


def test_add_through_a_matching_filter_updates_only_that_element(scim, ldap, base_dn, adele):
    got = ok(scim, adele["id"], {"op": "Add", "path": 'addresses[type eq "work"].locality',
                                 "value": "Bellevue"})
    assert got["addresses"] == [{**adele["addresses"][0], "locality": "Bellevue"}]
    e = ldap_of(ldap, base_dn, adele["id"])
    assert (e.get("l"), e.get("street"), e.get("postalCode")) == (
        ["Bellevue"], ["1 Microsoft Way"], ["98052"])


def test_replace_of_a_whole_filtered_element_keeps_its_type(scim, ldap, base_dn):
    uid = create(scim, {**entra.minimal_user("elem@contoso.com"), "emails": [
        {"type": "work", "value": "w@x.org"}, {"type": "other", "value": "o@x.org"}]})["id"]
    got = ok(scim, uid, {"op": "Replace", "path": 'emails[type eq "other"]',
                         "value": {"value": "o2@x.org"}})
    assert got["emails"] == [{"type": "work", "value": "w@x.org"},
                             {"type": "other", "value": "o2@x.org"}]
    e = ldap_of(ldap, base_dn, uid)
    assert (e.get("mail"), e.get("scimOtherEmail"), e.get("scimHomeEmail")) == (
        ["w@x.org"], ["o2@x.org"], [])


# --- (f) enterprise extension ---------------------------------------------------------------


def test_f_enterprise_attributes_by_urn_path(scim, ldap, base_dn, adele):
    got = ok(scim, adele["id"],
             {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Finance"},
             {"op": "Add", "path": f"{ENTERPRISE}:costCenter", "value": "CC-1"},
             {"op": "Remove", "path": f"{ENTERPRISE}:employeeNumber"})
    assert got[ENTERPRISE] == {"department": "Finance", "costCenter": "CC-1"}
    e = ldap_of(ldap, base_dn, adele["id"])
    assert (e.get("departmentNumber"), e.get("scimCostCenter"), e.get("employeeNumber")) == (
        ["Finance"], ["CC-1"], [])
    got = ok(scim, adele["id"], {"op": "Remove", "path": ENTERPRISE})
    assert ENTERPRISE not in got and got["schemas"] == [entra.CORE_USER]
    e = ldap_of(ldap, base_dn, adele["id"])
    assert not e.has("departmentNumber") and not e.has("scimCostCenter")


# --- (g) manager ------------------------------------------------------------------------------


def _manager_dn(ldap: Any, base_dn: str, uid: str) -> list[str]:
    return ldap_of(ldap, base_dn, uid).get("manager")


@pytest.mark.parametrize(("path", "value"), [
    (MANAGER, "bare"), (MANAGER, "object"), (MANAGER, "list"),
    (f"{MANAGER}.value", "bare"), ("manager", "list-with-ref"),
])
def test_g_manager_patch_in_every_form(scim, ldap, base_dn, adele, boss, path, value):
    sent = {"bare": boss["id"], "object": {"value": boss["id"]},
            "list": [{"value": boss["id"]}],
            "list-with-ref": [{"$ref": boss["meta"]["location"], "value": boss["id"]}]}[value]
    got = ok(scim, adele["id"], {"op": "Add", "path": path, "value": sent})
    assert got[ENTERPRISE]["manager"] == {"value": boss["id"], "$ref": boss["meta"]["location"],
                                          "displayName": "Megan Bowen"}
    assert got[ENTERPRISE]["department"] == "Retail"
    [dn] = _manager_dn(ldap, base_dn, adele["id"])
    assert same_dn(dn, f"uid=Megan.Bowen@contoso.com,{people(base_dn)}")


def test_g_manager_replace_then_remove(scim, ldap, base_dn, adele, boss):
    other = create(scim, {**entra.minimal_user("Other.Boss@contoso.com"),
                          "displayName": "Other"})
    ok(scim, adele["id"], {"op": "Add", "path": MANAGER, "value": boss["id"]})
    got = ok(scim, adele["id"], {"op": "Replace", "path": MANAGER, "value": other["id"]})
    assert got[ENTERPRISE]["manager"]["value"] == other["id"]
    [dn] = _manager_dn(ldap, base_dn, adele["id"])
    assert same_dn(dn, f"uid=Other.Boss@contoso.com,{people(base_dn)}")
    got = ok(scim, adele["id"], {"op": "Remove", "path": MANAGER})
    assert "manager" not in got[ENTERPRISE]
    assert _manager_dn(ldap, base_dn, adele["id"]) == []
    assert ldap_of(ldap, base_dn, adele["id"]).get("departmentNumber") == ["Retail"]
    again = ok(scim, adele["id"], {"op": "Remove", "path": MANAGER})
    assert again["meta"]["version"] == got["meta"]["version"]


def test_g_manager_remove_in_the_older_form_with_a_value_list(scim, ldap, base_dn, adele,
                                                              boss):
    ok(scim, adele["id"], {"op": "Add", "path": MANAGER, "value": boss["id"]})
    got = ok(scim, adele["id"], {"op": "Remove", "path": "manager",
                                 "value": [{"$ref": None, "value": boss["id"]}]})
    assert "manager" not in got[ENTERPRISE]
    assert _manager_dn(ldap, base_dn, adele["id"]) == []


def test_g_unknown_manager_in_patch_is_400_and_nothing_written(scim, ldap, base_dn, adele):
    e = ldap_of(ldap, base_dn, adele["id"])
    before = snapshot(ldap, e.dn)
    r = scim.patch(f"/Users/{adele['id']}", patch(
        {"op": "Replace", "path": "title", "value": "Changed"},
        {"op": "Add", "path": MANAGER, "value": ABSENT_ID}))
    assert_error(r, 400, "invalidValue", "manager")
    assert snapshot(ldap, e.dn) == before


# --- (h) active -------------------------------------------------------------------------------


@pytest.mark.parametrize(("off", "on"), [("False", "True"), (False, True),
                                         ("false", "true"), ("FALSE", "TRUE")])
def test_h_disable_and_enable_in_every_value_form(scim, ldap, base_dn, adele, off, on):
    got = ok(scim, adele["id"], {"op": "Replace", "path": "active", "value": off})
    assert got["active"] is False
    e = ldap_of(ldap, base_dn, adele["id"])
    assert (e.get("scimActive"), e.get("pwdAccountLockedTime")) == (["FALSE"], [LOCKED])
    got = ok(scim, adele["id"], {"op": "Replace", "path": "active", "value": on})
    assert got["active"] is True
    e = ldap_of(ldap, base_dn, adele["id"])
    assert (e.get("scimActive"), e.get("pwdAccountLockedTime")) == (["TRUE"], [])


# --- (i) remove and null ------------------------------------------------------------------


def test_i_remove_attribute_filtered_element_and_replace_with_null(scim, ldap, base_dn,
                                                                  adele):
    got = ok(scim, adele["id"], {"op": "Remove", "path": "title"},
             {"op": "Remove", "path": 'phoneNumbers[type eq "mobile"]'},
             {"op": "Replace", "path": "preferredLanguage", "value": None},
             {"op": "Replace", "path": "name.givenName", "value": None},
             {"op": "Remove", "path": 'addresses[type eq "work"].postalCode'})
    for gone in ("title", "preferredLanguage"):
        assert gone not in got
    assert got["phoneNumbers"] == [{"type": "work", "value": "+1 425 555 0109"}]
    assert got["name"] == {"formatted": "Adele Vance", "familyName": "Vance"}
    assert "postalCode" not in got["addresses"][0]
    e = ldap_of(ldap, base_dn, adele["id"])
    for gone in ("title", "mobile", "preferredLanguage", "givenName", "postalCode"):
        assert not e.has(gone), gone
    assert e.get("telephoneNumber") == ["+1 425 555 0109"] and e.get("l") == ["Redmond"]


def test_i_removing_the_last_value_of_an_element_drops_its_primary_flag(scim, ldap, base_dn,
                                                                        adele):
    got = ok(scim, adele["id"], {"op": "Remove", "path": WORK_EMAIL})
    assert "emails" not in got
    e = ldap_of(ldap, base_dn, adele["id"])
    assert not e.has("mail")
    assert e.get("scimPrimary") == ["addresses=work"]


def test_i_remove_of_a_whole_multi_valued_attribute_and_of_a_missing_element(scim, ldap,
                                                                             base_dn, adele):
    got = ok(scim, adele["id"], {"op": "Remove", "path": "phoneNumbers"},
             {"op": "Remove", "path": 'emails[type eq "home"]'},
             {"op": "remove", "path": "nickName"})
    assert "phoneNumbers" not in got and got["emails"] == adele["emails"]
    e = ldap_of(ldap, base_dn, adele["id"])
    assert not e.has("telephoneNumber") and not e.has("mobile")
    assert e.get("mail") == ["adele@contoso.com"]


def test_i_null_update_of_everything_optional(scim, ldap, base_dn, adele):
    got = ok(scim, adele["id"], {"op": "replace", "value": {
        "displayName": None, "title": None, "emails": None, "name": None,
        "phoneNumbers": None, "addresses": None, "externalId": None,
        "preferredLanguage": None, ENTERPRISE: None}})
    assert set(got) == {"schemas", "id", "userName", "active", "meta"}
    e = ldap_of(ldap, base_dn, adele["id"])
    for gone in ("displayName", "title", "mail", "givenName", "telephoneNumber", "street",
                 "scimExternalId", "employeeNumber", "scimPrimary"):
        assert not e.has(gone), gone
    assert e.get("cn") == ["Adele.Vance@contoso.com"]
    assert e.get("sn") == ["Adele.Vance@contoso.com"]
    assert sorted(e.get("scimDerived")) == ["cn", "sn"]
