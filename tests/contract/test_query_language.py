"""Filters, paging, sorting, projection and discovery against real slapd."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from config import load_settings
from scim.factory import create_app
from tests import entra
from tests.conftest import TOKEN, Scim
from tests.entra import ENTERPRISE

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def q(text: str) -> str:
    return quote(text, safe="")


def names(scim, flt, resource="Users", key="userName"):
    r = scim.get(f"/{resource}?filter={q(flt)}")
    assert r.status_code == 200, r.json
    return sorted(x[key] for x in r.json["Resources"])


@pytest.fixture
def crowd(scim):
    people = {
        "ann": {"externalId": "E-1", "title": "Engineer", "name": {"familyName": "Ames"},
                "emails": [{"type": "work", "value": "ann@x.org"},
                           {"type": "home", "value": "ann@home.net"}],
                ENTERPRISE: {"department": "R&D"}},
        "bob": {"externalId": "E-2", "title": "Manager", "active": False,
                "emails": [{"type": "work", "value": "bob@y.org", "primary": True}]},
        "cid": {"externalId": "e-3", "title": "Engineer (Lead)", "name": {"familyName": "Cox"}},
        "d*e": {"externalId": "E-4", "displayName": "Star"},
        "é\\f": {"externalId": "E-5", "displayName": "Back slash"},
    }
    ids = {}
    for name, extra in people.items():
        body = {**entra.minimal_user(name), **extra}
        body["schemas"] = [entra.CORE_USER, ENTERPRISE]
        r = scim.post("/Users", body)
        assert r.status_code == 201, r.json
        ids[name] = r.json["id"]
    return ids


@pytest.mark.parametrize(("flt", "expected"), [
    ('userName eq "ANN"', ["ann"]),
    ('userName ne "ann"', ["bob", "cid", "d*e", "é\\f"]),
    ('title co "gine"', ["ann", "cid"]),
    ('title sw "Eng"', ["ann", "cid"]),
    ('title ew "(Lead)"', ["cid"]),
    ("name.familyName pr", ["ann", "cid"]),
    ('externalId eq "E-3"', []),
    ('externalId eq "e-3"', ["cid"]),
    ('externalId gt "E-2"', ["d*e", "e-3", "é\\f"]),
    ('externalId ge "E-2"', ["bob", "d*e", "e-3", "é\\f"]),
    ('externalId lt "E-2"', ["ann"]),
    ('externalId le "E-2"', ["ann", "bob"]),
    ("active eq false", ["bob"]),
    ('title eq "Engineer" or title eq "Manager" and active eq true', ["ann"]),
    ('(title eq "Engineer" or title eq "Manager") and active eq false', ["bob"]),
    ('not (title pr) and userName sw "d"', ["d*e"]),
    ('emails[type eq "work" and value co "@x.org"]', ["ann"]),
    ('emails[type eq "home"]', ["ann"]),
    ('emails[type eq "work"].value eq "BOB@y.org"', ["bob"]),
    ('emails co "home.net"', ["ann"]),
    ('emails[primary eq true]', ["bob"]),
    (f'{ENTERPRISE}:department eq "R&D"', ["ann"]),
    ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bob"', ["bob"]),
    ('meta.lastModified gt "2000-01-01T00:00:00Z"', ["ann", "bob", "cid", "d*e", "é\\f"]),
    ('meta.created lt "2000-01-01T00:00:00Z"', []),
    ('displayName eq "Back slash"', ["é\\f"]),
])
def test_filter_operators(scim, crowd, flt, expected):
    got = scim.get(f"/Users?filter={q(flt)}")
    assert got.status_code == 200, got.json
    externals = {"ann": "ann", "bob": "bob", "cid": "cid", "d*e": "d*e", "é\\f": "é\\f"}
    result = sorted(r["userName"] for r in got.json["Resources"])
    want = sorted(externals[e] if e in externals else
                  {"e-3": "cid", "E-2": "bob"}.get(e, e) for e in expected)
    assert result == want


@pytest.mark.parametrize("value", ["*", "*)(uid=*", "ann)(|(uid=*", "\\", "a\\2a", "\u0000",
                                   "*ann*", "(", ")", "ann\u0000", "\\*"])
def test_injection_strings_match_literally_and_never_widen(scim, crowd, value):
    for op in ("eq", "co", "sw", "ew"):
        flt = f"userName {op} {json.dumps(value)}"
        r = scim.get(f"/Users?filter={q(flt)}")
        assert r.status_code in (200, 400), r.json
        if r.status_code == 200:
            got = [x["userName"] for x in r.json["Resources"]]
            literal = {"eq": lambda n: n.lower() == value.lower(),
                       "co": lambda n: value.lower() in n.lower(),
                       "sw": lambda n: n.lower().startswith(value.lower()),
                       "ew": lambda n: n.lower().endswith(value.lower())}[op]
            assert sorted(got) == sorted(n for n in crowd if literal(n)), (flt, got)
        else:
            assert r.json["scimType"] == "invalidFilter"


def test_literal_star_and_backslash_are_found(scim, crowd):
    assert names(scim, 'userName eq "d*e"') == ["d*e"]
    assert names(scim, 'userName co "*"') == ["d*e"]
    assert names(scim, 'userName eq "é\\\\f"') == ["é\\f"]


def test_group_and_membership_filters(scim, crowd):
    g = scim.post("/Groups", entra.group("Team (A)", [crowd["ann"], crowd["bob"]])).json["id"]
    scim.post("/Groups", entra.group("Empty"))
    assert names(scim, f'members.value eq "{crowd["ann"]}"', "Groups", "displayName") == [
        "Team (A)"]
    assert names(scim, "members pr", "Groups", "displayName") == ["Team (A)"]
    assert names(scim, "not (members pr)", "Groups", "displayName") == ["Empty"]
    assert names(scim, 'displayName sw "team"', "Groups", "displayName") == ["Team (A)"]
    assert names(scim, f'groups.value eq "{g}"') == ["ann", "bob"]
    assert names(scim, f'groups.value eq "{crowd["cid"]}"') == []
    assert names(scim, 'members.value eq "not-an-id"', "Groups", "displayName") == []


@pytest.mark.parametrize(("flt", "detail"), [
    ('shoeSize eq "42"', "shoeSize"),
    ('userName gt "a"', "ordering"),
    ('userName eq', "position"),
    ('userName eq "x" and', "position"),
    ('emails[type eq "work"', "position"),
    ('active co "t"', "boolean"),
    ('password eq "x"', "password"),
    ('name.shoe eq "x"', "name.shoe"),
    ("(" * 40 + 'userName eq "x"' + ")" * 40, "max_depth"),
    ('userName eq "x" or ' * 300 + 'userName eq "y"', "max_"),
    ('userName eq "' + "x" * 5000 + '"', "max_length"),
])
def test_bad_filters_are_400_invalid_filter(scim, crowd, flt, detail):
    r = scim.get(f"/Users?filter={q(flt)}")
    assert (r.status_code, r.json.get("scimType")) == (400, "invalidFilter"), r.json
    assert detail in r.json["detail"]


# --- paging and sorting ------------------------------------------------------------------


@pytest.fixture
def thousand(ldap, base_dn):
    for i in range(1050):
        ldap.add(f"uid=p{i:04d},ou=People,{base_dn}",
                 ["inetOrgPerson", "scimResource"],
                 {"uid": f"p{i:04d}", "cn": f"P {i}", "sn": f"S{i % 7}",
                  "displayName": f"Person {1049 - i:04d}"})
    return 1050


def test_paging_through_1050_users_is_complete_and_stable(scim, thousand):
    seen: list[str] = []
    start = 1
    while True:
        r = scim.get(f"/Users?startIndex={start}&count=100&attributes=userName").json
        assert r["totalResults"] == thousand
        assert r["startIndex"] == start
        assert r["itemsPerPage"] == len(r["Resources"])
        if not r["Resources"]:
            break
        seen += [x["userName"] for x in r["Resources"]]
        start += 100
    assert len(seen) == len(set(seen)) == thousand


def test_sorted_paging_is_in_order_across_pages(scim, thousand):
    seen: list[str] = []
    for start in range(1, thousand + 1, 250):
        r = scim.get(f"/Users?startIndex={start}&count=250&sortBy=displayName"
                     "&sortOrder=descending&attributes=displayName").json
        seen += [x["displayName"] for x in r["Resources"]]
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == thousand
    r = scim.get("/Users?sortBy=userName&count=3&filter=" + q('userName sw "p00"')).json
    assert [x["userName"] for x in r["Resources"]] == ["p0000", "p0001", "p0002"]
    assert r["totalResults"] == 100


def test_count_zero_start_below_one_and_bad_parameters(scim, thousand):
    r = scim.get("/Users?count=0").json
    assert (r["totalResults"], r["Resources"], r["itemsPerPage"]) == (thousand, [], 0)
    r = scim.get("/Users?startIndex=-5&count=2").json
    assert (r["startIndex"], len(r["Resources"])) == (1, 2)
    assert scim.get("/Users?startIndex=2000").json["Resources"] == []
    assert scim.get("/Users?count=abc").status_code == 400
    assert scim.get("/Users?sortBy=emails").json["scimType"] == "invalidValue"
    assert scim.get("/Users?sortBy=userName&sortOrder=sideways").status_code == 400


def test_max_page_size_is_enforced_and_advertised(slapd, ldap, thousand):
    app = create_app(load_settings({**slapd.env, "SCIM_BEARER_TOKEN": TOKEN,
                                    "SCIM_MAX_PAGE_SIZE": "50"}))
    scim = Scim(app.test_client())
    r = scim.get("/Users?count=500").json
    assert (r["itemsPerPage"], r["totalResults"]) == (50, thousand)
    assert scim.get("/ServiceProviderConfig").json["filter"]["maxResults"] == 50
    app.extensions["scim_bridge"].pool.close()


# --- projection ---------------------------------------------------------------------------


def test_attributes_and_excluded_attributes_everywhere(scim, crowd):
    uid = crowd["ann"]
    got = scim.get(f"/Users/{uid}?attributes=userName,name.familyName").json
    assert got == {"schemas": got["schemas"], "id": uid, "userName": "ann",
                   "name": {"familyName": "Ames"}}
    got = scim.get(f"/Users/{uid}?excludedAttributes=emails,meta,{ENTERPRISE}").json
    assert "emails" not in got and "meta" not in got and ENTERPRISE not in got
    assert got["id"] == uid
    got = scim.get(f"/Users/{uid}?attributes={ENTERPRISE}:department").json
    assert got[ENTERPRISE] == {"department": "R&D"}
    listed = scim.get("/Users?attributes=userName&filter=" + q('userName eq "ann"')).json
    assert set(listed["Resources"][0]) == {"schemas", "id", "userName"}
    created = scim.post("/Users?attributes=userName", entra.minimal_user("proj")).json
    assert set(created) == {"schemas", "id", "userName"}
    patched = scim.patch(f"/Users/{uid}?excludedAttributes=name", entra.patch(
        {"op": "replace", "path": "title", "value": "T"})).json
    assert "name" not in patched and patched["title"] == "T"
    assert "id" in scim.get(f"/Users/{uid}?excludedAttributes=id").json


def test_excluded_heavy_attributes_are_not_read_from_ldap(scim, crowd, monkeypatch):
    from directory.repository import Repository

    asked: list[list[str]] = []
    original = Repository.search

    def spy(self, base, flt, attributes, **kw):
        asked.append([a.lower() for a in attributes])
        return original(self, base, flt, attributes, **kw)

    gid = scim.post("/Groups", entra.group("Big", [crowd["ann"]])).json["id"]
    monkeypatch.setattr(Repository, "search", spy)
    scim.get("/Groups?excludedAttributes=members&filter=" + q('displayName eq "Big"'))
    scim.get(f"/Groups/{gid}?excludedAttributes=members")
    assert asked and not any("member" in a for a in asked)
    asked.clear()
    scim.get(f"/Users/{crowd['ann']}?excludedAttributes=groups")
    assert asked and not any("memberof" in a for a in asked)


# --- .search -------------------------------------------------------------------------------


def test_post_search_on_resources_and_root(scim, crowd, ldap):
    scim.post("/Groups", entra.group("ann"))
    body = {"schemas": [SEARCH], "filter": 'userName sw "a"', "attributes": ["userName"],
            "startIndex": 1, "count": 10}
    r = scim.post("/Users/.search", body)
    assert r.status_code == 200 and [x["userName"] for x in r.json["Resources"]] == ["ann"]
    r = scim.post("/Groups/.search", {"schemas": [SEARCH], "filter": 'displayName eq "ann"'})
    assert r.json["totalResults"] == 1
    r = scim.post("/.search", {"schemas": [SEARCH], "filter": 'externalId pr',
                               "count": 3, "sortBy": "id"})
    assert r.json["totalResults"] == 6 and r.json["itemsPerPage"] == 3
    assert scim.post("/.search", {"filter": "x"}).json["scimType"] == "invalidSyntax"


# --- discovery -----------------------------------------------------------------------------


def test_service_provider_config_tells_the_truth(scim):
    spc = scim.get("/ServiceProviderConfig").json
    assert spc["patch"]["supported"] and spc["filter"]["supported"]
    assert spc["sort"]["supported"] and spc["etag"]["supported"]
    assert spc["bulk"]["supported"] is False
    assert spc["authenticationSchemes"][0]["type"] == "oauthbearertoken"


def test_schemas_are_complete_and_cover_the_mapping(scim):
    from directory.mapping import load_mapping

    listed = scim.get("/Schemas").json
    by_id = {s["id"]: s for s in listed["Resources"]}
    assert set(by_id) == {entra.CORE_USER, ENTERPRISE, entra.CORE_GROUP}
    user = {a["name"]: a for a in by_id[entra.CORE_USER]["attributes"]}
    assert user["userName"]["caseExact"] is False and user["userName"]["required"] is True
    assert user["password"]["returned"] == "never"
    for attr in (a for s in listed["Resources"] for a in s["attributes"]):
        assert {"type", "multiValued", "required", "caseExact", "mutability", "returned",
                "uniqueness"} <= set(attr)
    for row in load_mapping().user.rows:
        schema = by_id[row.loc.urn or entra.CORE_USER]
        attr = next(a for a in schema["attributes"] if a["name"] == row.loc.attr)
        if row.loc.sub:
            assert row.loc.sub in {s["name"] for s in attr["subAttributes"]}
    one = scim.get(f"/Schemas/{ENTERPRISE}").json
    assert one["id"] == ENTERPRISE
    assert scim.get("/Schemas/urn:nope").status_code == 404


def test_resource_types(scim):
    types = {r["name"]: r for r in scim.get("/ResourceTypes").json["Resources"]}
    assert types["User"]["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]
    assert types["Group"]["endpoint"] == "/Groups"
    assert scim.get("/ResourceTypes/User").json["schema"] == entra.CORE_USER
    assert scim.get("/ResourceTypes/Nope").status_code == 404


