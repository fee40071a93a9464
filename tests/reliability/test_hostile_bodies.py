"""Hostile request bodies (hypothesis): random JSON and mutated SCIM resources against
POST, PUT and PATCH of Users and Groups. Never a 5xx; an error writes nothing (the LDAP
entry is compared before and after); a success is a whole, correct write inside the
caller's tenant. DN metacharacters and Unicode in names round-trip."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from ldap3 import BASE
from ldap3.core.exceptions import LDAPNoSuchObjectResult

from directory.dn import normalise_dn
from tests import entra
from tests.reliability.support import snapshot
from tests.reliability.world import World, build, is_error

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
FRESH = "\x01fresh\x01"  # replaced by a new unique userName / displayName in the test
NAMES = count()
ENTERPRISE = entra.ENTERPRISE
USER_KEYS = ["schemas", "userName", "name", "displayName", "emails", "phoneNumbers",
             "addresses", "active", "externalId", "title", "password", "nickName", "userType",
             "preferredLanguage", "locale", "timezone", "roles", "groups", "meta", "id",
             ENTERPRISE, "ims", "photos", "x509Certificates"]
GROUP_KEYS = ["schemas", "displayName", "members", "externalId", "meta", "id", "owners"]
PATHS = ["userName", "displayName", "name.givenName", "name", 'emails[type eq "work"].value',
         'emails[type eq "home"]', "emails", 'emails[value co "@"]', "active", "externalId",
         'phoneNumbers[type eq "mobile"].value', "password", f"{ENTERPRISE}:manager",
         f"{ENTERPRISE}:department", ENTERPRISE, "members", "groups", "id", "meta.created",
         'addresses[type eq "work"].country', "roles", "title", 'members[value eq "x"]',
         "emails[type eq \"work\" and primary eq true].value", "x509Certificates"]
USER_PATHS = ["displayName", "userName", "name.givenName", 'emails[type eq "work"].value',
              "title", "externalId", "active", "nickName", f"{ENTERPRISE}:department",
              f"{ENTERPRISE}:manager"]
GROUP_PATHS = ["displayName", "externalId", "members", "members", "members"]
HOSTILE = ',+"\\<>;=#*()\x00\n é日😀 '

json_leaf = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats()
             | st.text(max_size=12) | st.text(alphabet=HOSTILE, max_size=6))
json_any = st.recursive(
    json_leaf,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=8)


@pytest.fixture(scope="module")
def world(slapd) -> Iterator[World]:
    yield from build(slapd)


# --- bodies -----------------------------------------------------------------------------------


def scim_value(ids: list[str]) -> st.SearchStrategy[Any]:
    """Values shaped like SCIM's: elements with type/value/primary, manager/member ids."""
    element = st.dictionaries(
        st.sampled_from(["type", "value", "primary", "display", "$ref", "TYPE", "Value"]),
        json_leaf | st.sampled_from(["work", "home", "mobile", *ids]), max_size=4)
    return st.one_of(json_any, st.lists(element, max_size=3), element,
                     st.sampled_from(ids), st.lists(st.sampled_from(ids), max_size=3))


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any], keys: list[str],
            ids: list[str]) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_any)  # anything at all
    body = dict(base)
    for key in draw(st.lists(st.sampled_from(keys), max_size=4, unique=True)):
        body.pop(key, None)
        if draw(st.booleans()):  # else: left out
            spelling = draw(st.sampled_from([key, key.upper(), key.lower()]))
            body[spelling] = draw(scim_value(ids))
    if draw(st.integers(0, 4)) == 0:
        body[draw(st.text(max_size=8))] = draw(json_any)
    return body


def patch_ops(ids: list[str], sane_paths: list[str]) -> st.SearchStrategy[Any]:
    wild = st.fixed_dictionaries(
        {"op": st.sampled_from(["add", "replace", "remove", "Add", "Replace", "Remove",
                                "ADD", "delete", ""]) | json_leaf},
        optional={"path": st.sampled_from(PATHS) | st.text(max_size=16) | json_leaf,
                  "value": scim_value(ids)})
    sane = st.fixed_dictionaries({  # well formed, so that many PATCHes get written
        "op": st.sampled_from(["add", "replace", "remove", "Replace"]),
        "path": st.sampled_from(sane_paths),
        "value": st.one_of(st.text(alphabet=HOSTILE + "abc", min_size=1, max_size=8),
                           st.sampled_from(ids), st.booleans(),
                           st.lists(st.fixed_dictionaries({"value": st.sampled_from(ids)}),
                                    min_size=1, max_size=3))})
    operations = st.lists(mostly(sane, wild), min_size=1, max_size=3)
    body = st.fixed_dictionaries({
        "schemas": mostly(st.just([entra.PATCH_OP]), json_any),
        "Operations": mostly(operations, json_any)})
    return mostly(body, json_any)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` five times in six (one_of would not weigh a strategy named twice)."""
    return st.integers(0, 5).flatmap(lambda i: bad if i == 0 else good)


def ids_of(world: World) -> list[str]:
    """Ids a body may name: this tenant's users and groups, another tenant's, junk."""
    a, b = world.people["rel-a"], world.people["rel-b"]
    return [a[0].id, a[1].id, a[5].id, world.groups["rel-a"][1], b[0].id,
            world.groups["rel-b"][0], "2ceef03a-7f80-1041-899b-d98a394b6a36", "*", "x"]


def fresh(body: Any, prefix: str) -> Any:
    if isinstance(body, dict):
        return {k: (f"{prefix}{next(NAMES)}" if v == FRESH else v) for k, v in body.items()}
    return body


def send(client: Any, method: str, path: str, body: Any) -> Any:
    raw = json.dumps(body)  # NaN and Infinity included: Python's json reads them back
    return getattr(client.client, method)(
        "/scim/v2" + path, data=raw,
        headers={**client.headers, "Content-Type": "application/scim+json"})


def content(world: World, scim_id: str) -> dict[str, list[str]] | None:
    """What a client could have changed: every user attribute, and the ppolicy lock."""
    dn = world.dn_of(scim_id)
    if dn is None:
        return None
    try:
        world.conn.search(dn, "(objectClass=*)", BASE, attributes=["*", "pwdAccountLockedTime"])
    except LDAPNoSuchObjectResult:
        return None
    return {k.lower(): sorted(map(str, v if isinstance(v, list) else [v]))
            for k, v in world.conn.response[0]["attributes"].items()}


def tenant_is_sound(world: World) -> None:
    """Invariants of tenant A, and no reference leaving it."""
    shot = snapshot(world.conn, world.tenants["rel-a"].base_dn, world.root)
    assert shot.violations() == []
    inside = (normalise_dn(world.tenants["rel-a"].people_dn),
              normalise_dn(world.tenants["rel-a"].groups_dn))
    placeholder = normalise_dn(world.tenants["rel-a"].placeholder_dn)
    for group in shot.groups.values():
        for m in group.get("member", []):
            assert normalise_dn(m) == placeholder or normalise_dn(m).endswith(inside), m
    for user in shot.users.values():
        for m in user.get("manager", []):
            assert normalise_dn(m).endswith(inside[0]), m


def outcome(response: Any, allowed: tuple[int, ...]) -> None:
    assert response.status_code in allowed, (response.status_code, response.json)
    if response.status_code >= 400:
        assert is_error(response, response.status_code), response.json
    event(f"status {response.status_code}")


# --- Users ------------------------------------------------------------------------------------


USER = {**entra.user(FRESH), "userName": FRESH}


@SETTINGS
@given(data=st.data())
def test_post_users(world, data):
    client = world.clients["rel-a"]
    body = fresh(data.draw(mutated(USER, USER_KEYS, ids_of(world))), "fuzz")
    before = world.count("rel-a", "People")
    r = send(client, "post", "/Users", body)
    outcome(r, (201, 400, 409))
    if r.status_code != 201:
        assert world.count("rel-a", "People") == before
        return
    uid = r.json["id"]
    assert world.parent_is(uid, "rel-a", "People")
    assert client.get(f"/Users/{uid}").json == r.json
    tenant_is_sound(world)
    assert client.delete(f"/Users/{uid}").status_code == 204


@pytest.fixture(scope="module")
def target_user(world) -> str:
    body = {**entra.user("target@x.org"), ENTERPRISE: {"manager": {
        "value": world.people["rel-a"][0].id}, "department": "D"}}
    return world.clients["rel-a"].post("/Users", body).json["id"]


def _user_write(world: World, uid: str, method: str, body: Any) -> None:
    client = world.clients["rel-a"]
    before = content(world, uid)
    r = send(client, method, f"/Users/{uid}", body)
    outcome(r, (200, 400, 409))
    if r.status_code != 200:
        assert content(world, uid) == before
        return
    assert world.parent_is(uid, "rel-a", "People")
    assert client.get(f"/Users/{uid}").json == r.json
    tenant_is_sound(world)


@SETTINGS
@given(data=st.data())
def test_put_users(world, target_user, data):
    body = fresh(data.draw(mutated(USER, USER_KEYS, ids_of(world))), "put")
    _user_write(world, target_user, "put", body)


@SETTINGS
@given(data=st.data())
def test_patch_users(world, target_user, data):
    body = fresh(data.draw(patch_ops(ids_of(world), USER_PATHS)), "patch")
    _user_write(world, target_user, "patch", body)


# --- Groups -----------------------------------------------------------------------------------


GROUP = {**entra.group(FRESH), "displayName": FRESH}


def group_members(world: World, gid: str) -> set[str]:
    body = world.clients["rel-a"].get(f"/Groups/{gid}").json
    return {m["value"] for m in body.get("members", [])}


@SETTINGS
@given(data=st.data())
def test_post_groups(world, data):
    client = world.clients["rel-a"]
    ids = ids_of(world)
    body = data.draw(mutated(GROUP, GROUP_KEYS, ids))
    if isinstance(body, dict) and data.draw(st.booleans()):
        body["members"] = [{"value": i} for i in data.draw(st.lists(st.sampled_from(ids),
                                                                    max_size=4))]
    body = fresh(body, "grp")
    before = world.count("rel-a", "Groups")
    r = send(client, "post", "/Groups", body)
    outcome(r, (201, 400, 409))
    if r.status_code != 201:
        assert world.count("rel-a", "Groups") == before
        return
    gid = r.json["id"]
    assert world.parent_is(gid, "rel-a", "Groups")
    assert group_members(world, gid) <= world.ids("rel-a")
    tenant_is_sound(world)
    assert client.delete(f"/Groups/{gid}").status_code == 204


@pytest.fixture(scope="module")
def target_group(world) -> str:
    first = [p.id for p in world.people["rel-a"][:3]]
    return world.clients["rel-a"].post("/Groups", entra.group("target", first)).json["id"]


def _group_write(world: World, gid: str, method: str, body: Any) -> None:
    before = content(world, gid)
    r = send(world.clients["rel-a"], method, f"/Groups/{gid}", body)
    outcome(r, (200, 204, 400, 409))
    if r.status_code >= 400:
        assert content(world, gid) == before
        return
    assert world.parent_is(gid, "rel-a", "Groups")
    assert group_members(world, gid) <= world.ids("rel-a")
    tenant_is_sound(world)


@SETTINGS
@given(data=st.data())
def test_put_groups(world, target_group, data):
    ids = ids_of(world)
    body = data.draw(mutated(GROUP, GROUP_KEYS, ids))
    if isinstance(body, dict) and data.draw(st.booleans()):
        body["members"] = [{"value": i} for i in data.draw(st.lists(st.sampled_from(ids),
                                                                    max_size=4))]
    _group_write(world, target_group, "put", fresh(body, "putg"))


@SETTINGS
@given(data=st.data())
def test_patch_groups(world, target_group, data):
    ids = ids_of(world)
    paths = GROUP_PATHS + [f'members[value eq "{i}"]' for i in ids]
    _group_write(world, target_group, "patch", fresh(data.draw(patch_ops(ids, paths)), "pg"))


# --- poisoned bodies: a lone surrogate, or nesting past the limit (issue 17) ---------------


def _strings(value: Any, path: tuple = ()) -> list[tuple]:
    """Paths (key/index tuples) of every string value in a JSON value."""
    if isinstance(value, str):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _strings(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _strings(v, (*path, i))]
    return []


def _set(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _set(value[head], rest, new)
    return copy


LONE = ["\\ud800", "\\udbff", "\\udc00", "\\udfff"]


@SETTINGS
@given(data=st.data())
def test_a_lone_surrogate_anywhere_is_400_and_writes_nothing(world, target_user,
                                                             target_group, data):
    """Any string of any body may carry a lone surrogate escape: 400 invalidValue, never a
    500 (UnicodeEncodeError), and no endpoint writes anything."""
    ids = ids_of(world)
    method, path, body = data.draw(st.sampled_from([
        ("post", "/Users", mutated(USER, USER_KEYS, ids)),
        ("put", f"/Users/{target_user}", mutated(USER, USER_KEYS, ids)),
        ("patch", f"/Users/{target_user}", patch_ops(ids, USER_PATHS)),
        ("post", "/Groups", mutated(GROUP, GROUP_KEYS, ids)),
        ("put", f"/Groups/{target_group}", mutated(GROUP, GROUP_KEYS, ids)),
        ("patch", f"/Groups/{target_group}", patch_ops(ids, GROUP_PATHS)),
        ("post", "/Users/.search", st.fixed_dictionaries({
            "schemas": st.just(["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]),
            "filter": st.sampled_from(['userName eq "x"', 'displayName co "a"'])})),
    ]))
    body = fresh(data.draw(body), "lone")
    places = _strings(body)
    assume(places)
    place = data.draw(st.sampled_from(places))
    marker = "\x01poison\x01"
    old = body
    for part in place:
        old = old[part]
    cut = data.draw(st.integers(0, len(old)))
    body = _set(body, place, old[:cut] + marker + old[cut:])
    raw = json.dumps(body).replace(json.dumps(marker)[1:-1], data.draw(st.sampled_from(LONE)))
    before = (content(world, target_user), content(world, target_group),
              world.count("rel-a", "People"), world.count("rel-a", "Groups"))
    client = world.clients["rel-a"]
    r = getattr(client.client, method)(
        "/scim/v2" + path, data=raw,
        headers={**client.headers, "Content-Type": "application/scim+json"})
    assert r.status_code == 400 and r.json["scimType"] == "invalidValue", r.json
    assert "surrogate" in r.json["detail"]
    assert (content(world, target_user), content(world, target_group),
            world.count("rel-a", "People"), world.count("rel-a", "Groups")) == before


@SETTINGS
@given(data=st.data(), depth=st.integers(33, 3000))
def test_nesting_past_the_limit_is_400_and_writes_nothing(world, target_user, data, depth):
    """Any value of a body replaced by an array/object nest past MAX_JSON_DEPTH."""
    ids = ids_of(world)
    method, path, body = data.draw(st.sampled_from([
        ("post", "/Users", mutated(USER, USER_KEYS, ids)),
        ("put", f"/Users/{target_user}", mutated(USER, USER_KEYS, ids)),
        ("patch", f"/Users/{target_user}", patch_ops(ids, USER_PATHS)),
    ]))
    body = fresh(data.draw(body), "deep")
    places = [p for p in _strings(body) if p] or [()]
    opener = data.draw(st.sampled_from(['{"a":', "["]))
    closer = "}" if opener == "{" + '"a":' else "]"
    nest = opener * depth + "0" + closer * depth
    raw = json.dumps(_set(body, data.draw(st.sampled_from(places)), "\x02nest\x02"))
    raw = raw.replace(json.dumps("\x02nest\x02"), nest)
    before = content(world, target_user), world.count("rel-a", "People")
    client = world.clients["rel-a"]
    r = getattr(client.client, method)(
        "/scim/v2" + path, data=raw,
        headers={**client.headers, "Content-Type": "application/scim+json"})
    assert r.status_code == 400 and r.json["scimType"] == "invalidSyntax", r.json
    assert (content(world, target_user), world.count("rel-a", "People")) == before


# --- names: DN metacharacters and Unicode -------------------------------------------------


DN_CORPUS = [
    ",ou=People,o=rel-b,dc=scimbridge,dc=local", "x,ou=Groups", "a+cn=b", "uid=admin,",
    "#00", " leading", "trailing ", "  ", "=", "\\", "\\,", '"', "<script>", "a\x00b", "\n",
    "..", "../..", "cn=admin,dc=scimbridge,dc=local", "ou=People", "*", "a" * 300, "é" * 120,
    "\u202e", "\ufeff", "x\u0301", "😀" * 30,
]
names = st.one_of(
    st.sampled_from(DN_CORPUS),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30),
    st.text(alphabet=HOSTILE + "a", min_size=1, max_size=12),
)


@SETTINGS
@given(name=names, rename=names)
def test_user_names_round_trip_inside_the_tenant(world, name, rename):
    client = world.clients["rel-a"]
    before = world.count("rel-a", "People")
    r = client.post("/Users", entra.minimal_user(name))
    outcome(r, (201, 400, 409))
    if r.status_code != 201:
        assert world.count("rel-a", "People") == before
        return
    uid = r.json["id"]
    try:
        assert world.parent_is(uid, "rel-a", "People")
        assert client.get(f"/Users/{uid}").json["userName"] == name
        found = client.get("/Users", query_string={
            "filter": f"userName eq {json.dumps(name)}", "attributes": "id"}).json
        assert uid in {x["id"] for x in found["Resources"]} <= world.ids("rel-a") | {uid}
        renamed = client.patch(f"/Users/{uid}", entra.patch(
            {"op": "Replace", "path": "userName", "value": rename}))
        outcome(renamed, (200, 400, 409))
        assert world.parent_is(uid, "rel-a", "People")
        expected = rename if renamed.status_code == 200 else name
        assert client.get(f"/Users/{uid}").json["userName"] == expected
    finally:
        assert client.delete(f"/Users/{uid}").status_code == 204


@SETTINGS
@given(name=names, rename=names)
def test_group_names_round_trip_inside_the_tenant(world, name, rename):
    client = world.clients["rel-a"]
    before = world.count("rel-a", "Groups")
    r = client.post("/Groups", entra.group(name, [world.people["rel-a"][2].id]))
    outcome(r, (201, 400, 409))
    if r.status_code != 201:
        assert world.count("rel-a", "Groups") == before
        return
    gid = r.json["id"]
    try:
        assert world.parent_is(gid, "rel-a", "Groups")
        assert client.get(f"/Groups/{gid}").json["displayName"] == name
        renamed = client.patch(f"/Groups/{gid}", entra.patch(
            {"op": "Replace", "path": "displayName", "value": rename}))
        outcome(renamed, (204, 400, 409))
        assert world.parent_is(gid, "rel-a", "Groups")
        expected = rename if renamed.status_code == 204 else name
        assert client.get(f"/Groups/{gid}").json["displayName"] == expected
        assert group_members(world, gid) == {world.people["rel-a"][2].id}
    finally:
        assert client.delete(f"/Groups/{gid}").status_code == 204
