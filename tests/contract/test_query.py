"""Filters, paging, sorting, projection and discovery against real slapd."""

from __future__ import annotations

import json
import subprocess
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


@pytest.fixture
def teams(scim):
    ids = {}
    for name, external in (("R&D (Ops)", "G-1"), ("Sales, EMEA", "G-2"), ("#general", "g-3"),
                           ("sales*", "G-4")):
        body = {**entra.group(name), "externalId": external}
        r = scim.post("/Groups", body)
        assert r.status_code == 201, r.json
        ids[name] = r.json["id"]
    return ids


@pytest.mark.parametrize(("flt", "expected"), [
    ('displayName eq "r&d (ops)"', ["R&D (Ops)"]),  # caseExact false
    ('displayName ne "R&D (Ops)"', ["#general", "Sales, EMEA", "sales*"]),
    ('displayName co ", EM"', ["Sales, EMEA"]),
    ('displayName sw "SALES"', ["Sales, EMEA", "sales*"]),
    ('displayName ew "*"', ["sales*"]),
    ('displayName eq "sales*"', ["sales*"]),
    ('displayName sw "#"', ["#general"]),
    ("displayName pr", ["#general", "R&D (Ops)", "Sales, EMEA", "sales*"]),
    ('externalId eq "g-3"', ["#general"]),
    ('externalId eq "G-3"', []),  # caseExact true
    ('externalId gt "G-2"', ["#general", "sales*"]),
    ('externalId ge "G-2"', ["#general", "Sales, EMEA", "sales*"]),
    ('externalId lt "G-2"', ["R&D (Ops)"]),
    ('externalId le "G-2"', ["R&D (Ops)", "Sales, EMEA"]),
    ('meta.created ge "2000-01-01T00:00:00Z"', ["#general", "R&D (Ops)", "Sales, EMEA",
                                                 "sales*"]),
    ('not (displayName sw "s") and externalId pr', ["#general", "R&D (Ops)"]),
    ('displayName sw "s" and (externalId eq "G-2" or externalId eq "G-4")',
     ["Sales, EMEA", "sales*"]),
    ("members pr", []),
])
def test_group_filter_operators(scim, teams, flt, expected):
    assert names(scim, flt, "Groups", "displayName") == sorted(expected)


def test_id_filters(scim, crowd, teams):
    assert names(scim, f'id eq "{crowd["bob"]}"') == ["bob"]
    assert names(scim, f'id eq "{crowd["bob"].upper()}"') == ["bob"]
    assert names(scim, f'id ne "{crowd["bob"]}" and userName sw "a"') == ["ann"]
    assert names(scim, f'id eq "{teams["#general"]}"', "Groups", "displayName") == [
        "#general"]
    assert names(scim, 'id eq "not-a-uuid"') == []


def test_value_path_matches_one_element_not_two(scim, crowd):
    # ann has a work address at x.org and a home one at home.net: no single element
    # is both "work" and "@home.net"
    assert names(scim, 'emails[type eq "work" and value co "@home.net"]') == []
    assert names(scim, 'emails[type eq "home" and value co "@home.net"]') == ["ann"]
    assert names(scim, 'emails[type eq "work" or value co "@home.net"]') == ["ann", "bob"]


@pytest.mark.parametrize("flt", [
    'userName eq "x" extra', 'userName xx "y"', 'emails[type eq "work"]]', 'userName eq "x',
    'userName eq "a" and or userName eq "b"', "not userName eq \"x\"", "userName eq x",
    '"x" eq userName', "()", "[", 'emails[type eq "work"][value eq "x"]',
    'emails[type eq "w" and types[x eq "y"]]', "userName eq 1e999", "userName eq \"\\q\"",
    "userName eq \"\\ud800\"", "userName\u0000 eq \"x\"", "   ", "userName pr pr",
    'urn:ietf:params:scim:schemas:core:2.0:User eq "x"', "name.familyName.x eq \"y\"",
])
def test_malformed_filters_are_400_never_500(scim, flt):
    for resource in ("Users", "Groups"):
        r = scim.get(f"/{resource}?filter={q(flt)}")
        assert (r.status_code, r.json.get("scimType")) == (400, "invalidFilter"), (flt, r.json)
    r = scim.post("/Users/.search", {"schemas": [SEARCH], "filter": flt})
    assert (r.status_code, r.json.get("scimType")) == (400, "invalidFilter"), (flt, r.json)


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


def _set_max_sort_keys(slapd, keys: int) -> None:
    ldif = ("dn: olcOverlay={3}sssvlv,olcDatabase={1}mdb,cn=config\nchangetype: modify\n"
            f"replace: olcSssVlvMaxKeys\nolcSssVlvMaxKeys: {keys}\n")
    uri = "ldapi://" + quote(str(slapd.dir / "run" / "ldapi"), safe="")
    subprocess.run(["ldapmodify", "-Q", "-Y", "EXTERNAL", "-H", uri], input=ldif, text=True,
                   check=True, capture_output=True, timeout=30)


def _pages(scim, query: str, size: int, total: int) -> list[dict]:
    seen: list[dict] = []
    for start in range(1, total + 1, size):
        r = scim.get(f"/Users?startIndex={start}&count={size}&{query}")
        assert r.status_code == 200, r.json
        assert r.json["totalResults"] == total
        seen += r.json["Resources"]
    return seen


def test_sort_ties_are_broken_by_id_on_every_page(scim, thousand):
    # 7 family names for 1,050 users: every page boundary falls inside a run of ties
    seen = _pages(scim, "sortBy=name.familyName&attributes=name.familyName", 100, thousand)
    keys = [(r["name"]["familyName"].casefold(), r["id"]) for r in seen]
    assert keys == sorted(keys) and len({r["id"] for r in seen}) == thousand
    seen = _pages(scim, "sortBy=name.familyName&sortOrder=descending&attributes=id", 300,
                  thousand)
    assert len({r["id"] for r in seen}) == thousand


def test_sorting_without_a_tiebreak_when_the_server_takes_one_key(scim, slapd, thousand,
                                                                    monkeypatch):
    from scim.service import query

    tries: list[bool] = []
    original = query._window_once

    def spy(*args, tiebreak):
        tries.append(tiebreak)
        return original(*args, tiebreak=tiebreak)

    monkeypatch.setattr(query, "_window_once", spy)
    _set_max_sort_keys(slapd, 1)
    try:
        seen = _pages(scim, "sortBy=name.familyName&attributes=name.familyName", 250,
                      thousand)
        names_ = [r["name"]["familyName"].casefold() for r in seen]
        assert names_ == sorted(names_) and len({r["id"] for r in seen}) == thousand
        assert tries[:2] == [True, False]  # refused with two keys, then one
        unsorted = _pages(scim, "attributes=id", 400, thousand)
        assert len({r["id"] for r in unsorted}) == thousand
    finally:
        _set_max_sort_keys(slapd, 4)


def test_every_sortable_attribute_sorts_on_slapd(scim, crowd, teams):
    from directory.mapping import load_mapping

    mapping = load_mapping()
    for resource, rows in (("Users", mapping.user.rows), ("Groups", mapping.group.rows)):
        paths = ["id", "meta.created", "meta.lastModified"] + [
            r.loc.text for r in rows if r.loc.type is None and r.codec == "string"]
        for path in paths:
            for order in ("ascending", "descending"):
                r = scim.get(f"/{resource}?sortBy={q(path)}&sortOrder={order}&count=3")
                assert r.status_code == 200, (resource, path, r.json)
                assert r.json["itemsPerPage"] == 3


def test_missing_values_sort_last_ascending_and_first_descending(scim, crowd):
    up = scim.get("/Users?sortBy=title&attributes=title,userName").json["Resources"]
    assert [x.get("title") for x in up] == ["Engineer", "Engineer (Lead)", "Manager", None,
                                            None]
    down = scim.get("/Users?sortBy=title&sortOrder=descending&attributes=title").json
    assert [x.get("title") for x in down["Resources"]] == [
        None, None, "Manager", "Engineer (Lead)", "Engineer"]
    by_external = scim.get("/Users?sortBy=externalId&attributes=externalId").json
    # caseExactOrderingMatch: upper case before lower case, as the server orders them
    assert [x["externalId"] for x in by_external["Resources"]] == [
        "E-1", "E-2", "E-4", "E-5", "e-3"]


def test_filtered_sorted_windows_past_the_first_page(scim, thousand):
    flt = q('userName sw "p0"')  # p0000…p0999: 1,000 matches, more than one paged search
    r = scim.get(f"/Users?filter={flt}&sortBy=userName&sortOrder=descending&startIndex=991"
                 "&count=20&attributes=userName").json
    assert r["totalResults"] == 1000
    assert [x["userName"] for x in r["Resources"]] == [f"p{i:04d}" for i in range(9, -1, -1)]
    r = scim.get(f"/Users?filter={flt}&sortBy=userName&startIndex=5000").json
    assert (r["totalResults"], r["Resources"], r["startIndex"]) == (1000, [], 5000)


def test_concurrent_windows_do_not_exhaust_server_side_sorts(app, thousand):
    # sssvlv allows 16 sorts at once (olcSssVlvMax) and keeps VLV state per connection:
    # many overlapping list requests must neither fail nor see each other's state
    from concurrent.futures import ThreadPoolExecutor

    def page(i: int) -> tuple[int, int, list[str]]:
        r = Scim(app.test_client()).get(
            f"/Users?startIndex={201 + (i % 4) * 100}&count=50&sortBy=displayName"
            "&attributes=displayName")
        return r.status_code, r.json.get("totalResults", 0), [
            x["displayName"] for x in r.json.get("Resources", [])]

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(page, range(60)))
    assert {(status, total) for status, total, _ in results} == {(200, thousand)}
    for i, (_, _, shown) in enumerate(results):
        assert shown == results[i % 4][2] and shown == sorted(shown)


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


def test_projection_on_put_group_reads_and_never(scim, crowd):
    uid = crowd["cid"]
    body = {**entra.minimal_user("cid"), "title": "Boss", "externalId": "e-3"}
    put = scim.put(f"/Users/{uid}?attributes=title", body)
    assert put.status_code == 200 and set(put.json) == {"schemas", "id", "title"}
    assert "password" not in scim.get(f"/Users/{uid}?attributes=password").json
    gid = scim.post("/Groups?excludedAttributes=members",
                    entra.group("Proj", [crowd["ann"]])).json
    assert "members" not in gid and gid["displayName"] == "Proj"
    got = scim.get(f"/Groups/{gid['id']}?attributes=members.value").json
    assert got == {"schemas": got["schemas"], "id": gid["id"],
                   "members": [{"value": crowd["ann"]}]}
    listed = scim.get("/Groups?excludedAttributes=members,meta").json["Resources"]
    assert listed and all("members" not in g and "meta" not in g for g in listed)
    user = scim.get(f"/Users/{crowd['ann']}?attributes=groups.value").json
    assert user["groups"] == [{"value": gid["id"]}]


def test_lists_read_members_and_groups_only_when_shown(scim, crowd, monkeypatch):
    from directory.repository import Repository

    asked: list[tuple[str, list[str]]] = []
    original = Repository.search

    def spy(self, base, flt, attributes, **kw):
        asked.append((flt.lower(), [a.lower() for a in attributes]))
        return original(self, base, flt, attributes, **kw)

    scim.post("/Groups", entra.group("Spied", [crowd["ann"]]))
    monkeypatch.setattr(Repository, "search", spy)

    def reads(path: str, attribute: str) -> bool:
        asked.clear()
        assert scim.get(path).status_code == 200
        return any(attribute in attrs for _, attrs in asked)

    def finds_groups(path: str) -> bool:
        """A search for the groups that list the users (a user's groups are found from
        the group side: memberOf is never read)."""
        asked.clear()
        assert scim.get(path).status_code == 200
        assert not any("memberof" in attrs for _, attrs in asked)
        return any("(member=" in flt for flt, _ in asked)

    assert finds_groups("/Users")  # the default set shows groups
    assert not finds_groups("/Users?attributes=userName,emails")
    assert not finds_groups("/Users?excludedAttributes=groups")
    assert finds_groups("/Users?attributes=groups.value")
    assert reads("/Groups", "member")
    assert not reads("/Groups?attributes=displayName", "member")
    assert not reads("/Groups?excludedAttributes=members&filter=" + q('displayName eq "Spied"'),
                     "member")


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


def test_root_search_spans_types_with_paging(scim, crowd, teams):
    flt = 'displayName sw "s"'  # users "Star", groups "Sales, EMEA" and "sales*"
    r = scim.post("/.search", {"schemas": [SEARCH], "filter": flt})
    assert r.status_code == 200, r.json
    got = [x.get("userName") or x["displayName"] for x in r.json["Resources"]]
    # unsorted: Users first, then Groups, each in the directory's order
    assert (r.json["totalResults"], got) == (3, ["d*e", "Sales, EMEA", "sales*"])
    pages = [scim.post("/.search", {"schemas": [SEARCH], "filter": flt, "startIndex": i,
                                    "count": 1}).json for i in (1, 2, 3, 4)]
    assert [p["totalResults"] for p in pages] == [3, 3, 3, 3]
    assert [len(p["Resources"]) for p in pages] == [1, 1, 1, 0]
    assert {p["Resources"][0]["id"] for p in pages[:3]} == {x["id"] for x in r.json["Resources"]}
    zero = scim.post("/.search", {"schemas": [SEARCH], "filter": flt, "count": 0}).json
    assert (zero["totalResults"], zero["Resources"]) == (3, [])


def test_root_search_sorts_across_types(scim, crowd, teams):
    body = {"schemas": [SEARCH], "filter": "displayName pr", "sortBy": "displayName",
            "attributes": ["displayName"]}
    r = scim.post("/.search", body).json
    shown = [x["displayName"] for x in r["Resources"]]
    assert shown == sorted(shown, key=str.casefold) and r["totalResults"] == 6
    r = scim.post("/.search", {**body, "sortOrder": "descending", "startIndex": 2,
                               "count": 3}).json
    assert [x["displayName"] for x in r["Resources"]] == sorted(
        shown, key=str.casefold, reverse=True)[1:4]
    # userName exists for Users only: Groups have no value and sort last
    r = scim.post("/.search", {"schemas": [SEARCH], "sortBy": "userName"}).json
    kinds = [x["meta"]["resourceType"] for x in r["Resources"]]
    assert kinds == ["User"] * 5 + ["Group"] * 4
    # deeper than a merge may go, but past the end: an empty page (RFC 7644 §3.4.2.4)
    deep = scim.post("/.search", {**body, "startIndex": 10**6})
    assert deep.status_code == 200, deep.json
    assert (deep.json["totalResults"], deep.json["Resources"]) == (6, [])


def test_root_search_filters_on_attributes_of_one_type(scim, crowd, teams):
    def root(flt: str) -> list[str]:
        r = scim.post("/.search", {"schemas": [SEARCH], "filter": flt})
        assert r.status_code == 200, r.json
        return sorted(x.get("userName") or x["displayName"] for x in r.json["Resources"])

    assert root('userName eq "ann"') == ["ann"]
    assert root('userName eq "ann" or displayName eq "#general"') == ["#general", "ann"]
    assert root(f'{ENTERPRISE}:department eq "R&D"') == ["ann"]
    assert root("members pr") == []
    assert len(root('not (userName eq "ann")')) == 8  # Groups have no userName
    bad = scim.post("/.search", {"schemas": [SEARCH], "filter": 'shoeSize eq "42"'})
    assert (bad.status_code, bad.json["scimType"]) == (400, "invalidFilter")
    assert "shoeSize" in bad.json["detail"]


def test_resource_search_bodies(scim, crowd):
    body = {"schemas": [SEARCH], "filter": 'emails[type eq "work" and value co "@x.org"]',
            "excludedAttributes": "emails,meta", "sortBy": "userName"}
    r = scim.post("/Users/.search", body).json
    assert [x["userName"] for x in r["Resources"]] == ["ann"]
    assert "emails" not in r["Resources"][0] and "meta" not in r["Resources"][0]
    r = scim.post("/Users/.search", {"schemas": [SEARCH], "startIndex": 2, "count": 2,
                                     "sortBy": "userName", "sortOrder": "descending"}).json
    assert [x["userName"] for x in r["Resources"]] == ["d*e", "cid"]
    assert scim.post("/Users/.search", {"schemas": [SEARCH], "count": "x"}).status_code == 400
    assert scim.post("/Groups/.search", {"schemas": [SEARCH],
                                         "filter": 'userName eq "x"'}).status_code == 400


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


CHARACTERISTICS = {"name", "type", "multiValued", "description", "required", "caseExact",
                   "mutability", "returned", "uniqueness"}
TYPES = {"string", "boolean", "decimal", "integer", "dateTime", "reference", "complex",
         "binary"}


def _walk(attributes: list[dict], prefix: str = ""):
    for attr in attributes:
        yield prefix + attr["name"], attr
        yield from _walk(attr.get("subAttributes", []), prefix + attr["name"] + ".")


def test_every_attribute_has_every_characteristic(scim):
    for schema in scim.get("/Schemas").json["Resources"]:
        for path, attr in _walk(schema["attributes"]):
            assert CHARACTERISTICS <= set(attr), (schema["id"], path)
            assert attr["type"] in TYPES, path
            assert attr["mutability"] in {"readOnly", "readWrite", "immutable", "writeOnly"}
            assert attr["returned"] in {"always", "never", "default", "request"}
            assert attr["uniqueness"] in {"none", "server", "global"}
            assert (attr["type"] == "complex") == bool(attr.get("subAttributes")), path
            if attr["type"] == "reference":
                assert attr["referenceTypes"], path


def test_schemas_are_generated_from_the_definitions(scim):
    from scim.protocol.schema import COMMON, RESOURCE_TYPES

    served = {s["id"]: s for s in scim.get("/Schemas").json["Resources"]}
    for rtype in RESOURCE_TYPES:
        external = [a.to_json() for a in COMMON if a.name == "externalId"]
        assert served[rtype.schema.id]["attributes"] == external + [
            a.to_json() for a in rtype.schema.attributes]
        for ext in rtype.extensions:
            assert served[ext.id]["attributes"] == [a.to_json() for a in ext.attributes]
        one = scim.get(f"/Schemas/{rtype.schema.id}").json
        assert one == served[rtype.schema.id]
        assert one["meta"]["location"].endswith(f"/Schemas/{rtype.schema.id}")
    user = {p: a for p, a in _walk(served[entra.CORE_USER]["attributes"])}
    assert user["userName"]["caseExact"] is False and user["userName"]["uniqueness"] == "server"
    assert user["externalId"]["caseExact"] is True
    assert user["emails.type"]["canonicalValues"] == ["work", "home", "other"]
    assert user["groups"]["mutability"] == "readOnly"


def test_every_mapped_attribute_path_is_discoverable(scim):
    from directory.mapping import load_mapping

    served = {s["id"]: {p.lower() for p, _ in _walk(s["attributes"])}
              for s in scim.get("/Schemas").json["Resources"]}
    mapping = load_mapping()
    for core, rows in ((entra.CORE_USER, mapping.user.rows),
                       (entra.CORE_GROUP, mapping.group.rows)):
        for row in rows:
            path = f"{row.loc.attr}.{row.loc.sub}" if row.loc.sub else row.loc.attr
            assert path.lower() in served[row.loc.urn or core], row.loc.text
            if row.loc.type:
                assert f"{row.loc.attr}.type".lower() in served[core], row.loc.text
    assert "members.value" in served[entra.CORE_GROUP]
    assert "groups.value" in served[entra.CORE_USER]


def test_resource_types_point_at_served_schemas(scim):
    listed = scim.get("/ResourceTypes").json
    assert listed["totalResults"] == len(listed["Resources"]) == 2
    served = {s["id"] for s in scim.get("/Schemas").json["Resources"]}
    for rtype in listed["Resources"]:
        assert rtype["schema"] in served
        assert all(e["schema"] in served for e in rtype["schemaExtensions"])
        assert rtype["meta"]["location"].endswith(f"/ResourceTypes/{rtype['name']}")
        assert scim.get(f"/ResourceTypes/{rtype['name'].lower()}").json == rtype
