"""Tenants on real slapd: a token for tenant A can never read or write tenant B.

Every probe from B gets exactly what a non-existent id or value gets: 404 with the
same detail, empty lists, unchanged counts, 400 invalidValue with the same message.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from ldap3 import MODIFY_ADD, Connection

from tests import entra
from tests.conftest import Scim
from tests.contract.connector_support import (
    ABSENT_ID,
    Cli,
    bearer,
    build_app,
    ldap_entry,
    wipe_registry,
)
from tests.slapd_instance import SlapdInstance

MANAGER = f"{entra.ENTERPRISE}:manager"


@pytest.fixture
def app(slapd: SlapdInstance, ldap: Connection, base_dn: str) -> Iterator[Flask]:
    wipe_registry(ldap, base_dn)
    application = build_app(slapd, static=True)
    yield application
    application.extensions["scim_bridge"].pool.close()
    wipe_registry(ldap, base_dn)


@pytest.fixture
def cli(app: Flask) -> Cli:
    return Cli(app)


@dataclass
class Side:
    """One tenant as seen through its own token, with the ids it created."""

    scim: Scim
    user: str
    other_user: str
    group: str


def make_side(scim: Scim, tag: str) -> Side:
    user = scim.post("/Users", {**entra.user(f"alice@{tag}.example"), "externalId": f"ext-{tag}"})
    assert user.status_code == 201, user.json
    other = scim.post("/Users", entra.minimal_user(f"bob@{tag}.example"))
    group = scim.post("/Groups", {**entra.group(f"Team {tag}", [user.json["id"]]),
                                  "externalId": f"grp-{tag}"})
    assert group.status_code == 201, group.json
    return Side(scim, user.json["id"], other.json["id"], group.json["id"])


@pytest.fixture
def sides(app: Flask, cli: Cli) -> tuple[Side, Side]:
    cli("tenant", "create", "acme")
    cli("tenant", "create", "globex")
    a = make_side(bearer(app, cli.token("--tenant", "acme", "--name", "a")), "acme")
    b = make_side(bearer(app, cli.token("--tenant", "globex", "--name", "b")), "globex")
    return a, b


def same_answer(got: Any, unknown: Any, probed: str) -> None:
    """B's id gets what an id that exists nowhere gets (status, scimType, detail)."""
    assert got.status_code == unknown.status_code, got.json
    if got.status_code == 204:
        return
    assert got.json.get("scimType") == unknown.json.get("scimType")
    assert got.json["detail"].replace(probed, "X") == unknown.json["detail"].replace(ABSENT_ID, "X")


# --- registry -----------------------------------------------------------------------------


def test_tenant_create_makes_the_subtree_and_the_registry_entry(app, cli, ldap, base_dn):
    out = cli("tenant", "create", "acme")
    assert f"tenant acme: o=acme,{base_dn}" in out
    for dn in (f"o=acme,{base_dn}", f"ou=People,o=acme,{base_dn}", f"ou=Groups,o=acme,{base_dn}"):
        assert ldap_entry(ldap, dn)
    registry = ldap_entry(ldap, f"cn=acme,ou=Tenants,ou=Service,{base_dn}")
    assert "scimTenant" in registry["objectclass"]
    assert registry["scimtenantbase"][0].lower() == f"o=acme,{base_dn}".lower()
    custom = f"ou=globex,{base_dn}"
    assert custom in cli("tenant", "create", "globex", "--base-dn", custom)
    listed = cli("tenant", "list").splitlines()
    assert [line.split()[0] for line in listed] == ["default", "acme", "globex"]
    assert listed[0].split()[1] == base_dn


@pytest.mark.parametrize(("args", "message"), [
    (["acme"], "already exists"),
    (["default"], "always exists"),
    (["bad name"], "tenant name"),
    (["x,y"], "tenant name"),
    (["evil", "--base-dn", "ou=x,ou=People,{base}"], "must not overlap"),
    (["evil", "--base-dn", "ou=Groups,{base}"], "must not overlap"),
    (["evil", "--base-dn", "ou=x,ou=Service,{base}"], "must not overlap"),
    (["evil", "--base-dn", "o=acme,{base}"], "already the base DN"),
    (["evil", "--base-dn", "ou=y,ou=People,o=acme,{base}"], "must not overlap"),
    (["evil", "--base-dn", "{base}"], "already the base DN"),
    (["evil", "--base-dn", "ou=a,ou=missing,{base}"], "parent entry does not exist"),
    (["evil", "--base-dn", "not a dn"], "not a DN"),
])
def test_tenant_create_refuses(app, cli, base_dn, args, message):
    cli("tenant", "create", "acme")
    out = cli.fails("tenant", "create", *[a.format(base=base_dn) for a in args])
    assert message in out
    assert "evil" not in cli("tenant", "list")


def test_a_tenant_above_another_one_is_fine(app, cli, base_dn, ldap):
    cli("tenant", "create", "parent", "--base-dn", f"ou=parent,{base_dn}")
    cli("tenant", "create", "child", "--base-dn", f"ou=child,ou=parent,{base_dn}")
    parent = bearer(app, cli.token("--tenant", "parent", "--name", "p"))
    child = bearer(app, cli.token("--tenant", "child", "--name", "c"))
    kid = child.post("/Users", entra.minimal_user("kid")).json["id"]
    assert parent.get(f"/Users/{kid}").status_code == 404
    assert parent.get("/Users").json["totalResults"] == 0


def test_registry_entries_are_created_on_demand(app, cli, ldap, base_dn):
    """A directory set up before the registry existed (no ou=Tokens/Tenants/Clients)."""
    for ou in ("Tokens", "Tenants", "Clients"):
        ldap.search(f"ou=Service,{base_dn}", f"(ou={ou})", "LEVEL", attributes=["1.1"])
        assert ldap.entries == []
    assert cli("token", "list").splitlines()[1:] == []
    assert cli("tenant", "list").split() == ["default", base_dn]
    cli("tenant", "create", "acme")
    cli.token("--tenant", "acme", "--name", "a")
    cli.client("--name", "c")
    for ou in ("Tokens", "Tenants", "Clients"):
        assert ldap_entry(ldap, f"ou={ou},ou=Service,{base_dn}")


# --- isolation ----------------------------------------------------------------------------


def test_ids_of_another_tenant_behave_as_unknown(sides):
    a, b = sides
    for kind, probed in (("Users", a.user), ("Groups", a.group)):
        path, unknown = f"/{kind}/{probed}", f"/{kind}/{ABSENT_ID}"
        same_answer(b.scim.get(path), b.scim.get(unknown), probed)
        body = entra.patch({"op": "replace", "path": "displayName", "value": "pwned"})
        same_answer(b.scim.patch(path, body), b.scim.patch(unknown, body), probed)
        put = entra.minimal_user("pwned") if kind == "Users" else entra.group("pwned")
        same_answer(b.scim.put(path, put), b.scim.put(unknown, put), probed)
        same_answer(b.scim.delete(path), b.scim.delete(unknown), probed)
    # A's resources are untouched
    assert a.scim.get(f"/Users/{a.user}").json["displayName"] == "Adele Vance"
    assert a.scim.get(f"/Groups/{a.group}").json["displayName"] == "Team acme"
    assert [m["value"] for m in a.scim.get(f"/Groups/{a.group}").json["members"]] == [a.user]


@pytest.mark.parametrize("query", [
    "id eq \"{user}\"",
    "userName eq \"alice@acme.example\"",
    "userName sw \"alice\"",
    "externalId eq \"ext-acme\"",
    "emails.value co \"contoso\"",
    "groups.value eq \"{group}\"",
    f"{MANAGER}.value eq \"{{user}}\"",
])
def test_user_filters_see_only_their_tenant(sides, query):
    a, b = sides
    text = query.format(user=a.user, group=a.group)
    own = b.scim.get(f"/Users?filter={quote(text)}").json
    assert all(r["id"] not in (a.user, a.other_user) for r in own["Resources"])
    assert own["totalResults"] == len(own["Resources"])
    searched = b.scim.post("/Users/.search", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": text})
    assert searched.json["totalResults"] == own["totalResults"]


@pytest.mark.parametrize("query", [
    "id eq \"{group}\"",
    "displayName eq \"Team acme\"",
    "externalId eq \"grp-acme\"",
    "members.value eq \"{user}\"",
    "members eq \"{user}\"",
])
def test_group_filters_see_only_their_tenant(sides, query):
    a, b = sides
    text = query.format(user=a.user, group=a.group)
    assert b.scim.get(f"/Groups?filter={quote(text)}").json["totalResults"] == 0
    assert a.scim.get(f"/Groups?filter={quote(text)}").json["totalResults"] == 1


def test_counts_and_listings_see_only_their_tenant(app, sides):
    a, b = sides
    static = Scim(app.test_client())  # the default tenant
    for scim, ids in ((a.scim, {a.user, a.other_user}), (b.scim, {b.user, b.other_user})):
        listed = scim.get("/Users?count=100").json
        assert listed["totalResults"] == 2
        assert {r["id"] for r in listed["Resources"]} == ids
        assert scim.get("/Groups").json["totalResults"] == 1
        assert scim.get("/Users?count=0").json["totalResults"] == 2
        root = scim.post("/.search", {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}).json
        assert root["totalResults"] == 3
    assert static.get("/Users").json["totalResults"] == 0
    assert static.get("/Groups").json["totalResults"] == 0


def test_the_same_names_may_exist_in_two_tenants(sides):
    a, b = sides
    again = b.scim.post("/Users", entra.minimal_user("alice@acme.example"))
    assert again.status_code == 201
    assert b.scim.post("/Groups", entra.group("Team acme")).status_code == 201
    assert a.scim.post("/Users", entra.minimal_user("alice@acme.example")).status_code == 409


def test_members_of_another_tenant_are_unknown_ids(sides):
    a, b = sides

    def add(member: str) -> Any:
        return b.scim.patch(f"/Groups/{b.group}", entra.patch(
            {"op": "Add", "path": "members", "value": [{"value": member}]}))

    def replace(member: str) -> Any:
        return b.scim.patch(f"/Groups/{b.group}", entra.patch(
            {"op": "replace", "path": "members", "value": [{"value": member}]}))

    def put(member: str) -> Any:
        return b.scim.put(f"/Groups/{b.group}", entra.group("Team globex", [member]))

    def create(member: str) -> Any:
        return b.scim.post("/Groups", entra.group(f"new {member[:4]}", [member]))

    for probed in (a.user, a.group):
        for call in (add, replace, put, create):
            got, unknown = call(probed), call(ABSENT_ID)
            assert (got.status_code, got.json["scimType"]) == (400, "invalidValue")
            same_answer(got, unknown, probed)
    assert [m["value"] for m in b.scim.get(f"/Groups/{b.group}").json["members"]] == [b.user]


def test_removing_another_tenants_member_changes_nothing(sides, ldap):
    a, b = sides
    r = b.scim.patch(f"/Groups/{b.group}", entra.patch(
        {"op": "Remove", "path": f"members[value eq \"{a.user}\"]"}))
    assert r.status_code in (204, 400)
    assert [m["value"] for m in a.scim.get(f"/Groups/{a.group}").json["members"]] == [a.user]


def test_managers_of_another_tenant_are_unknown_ids(sides):
    a, b = sides

    def patch(manager: str) -> Any:
        return b.scim.patch(f"/Users/{b.user}", entra.patch(
            {"op": "Add", "path": MANAGER, "value": manager}))

    def create(manager: str) -> Any:
        return b.scim.post("/Users", {**entra.minimal_user(f"m{manager[:4]}"),
                                      "schemas": [entra.CORE_USER, entra.ENTERPRISE],
                                      entra.ENTERPRISE: {"manager": {"value": manager}}})

    for call in (patch, create):
        got, unknown = call(a.user), call(ABSENT_ID)
        assert (got.status_code, got.json["scimType"]) == (400, "invalidValue")
        same_answer(got, unknown, a.user)
    assert entra.ENTERPRISE not in b.scim.get(f"/Users/{b.user}").json or \
        "manager" not in b.scim.get(f"/Users/{b.user}").json[entra.ENTERPRISE]


def test_references_planted_across_tenants_are_never_shown(sides, ldap, base_dn):
    """An LDAP admin links B's user into A's group and as A's manager: SCIM hides it."""
    a, b = sides
    a_user = a.scim.get(f"/Users/{a.user}").json
    b_user_dn = ldap_dn(ldap, base_dn, "globex", b.user)
    a_group_dn = ldap_dn(ldap, base_dn, "acme", a.group)
    a_user_dn = ldap_dn(ldap, base_dn, "acme", a.user)
    ldap.modify(a_group_dn, {"member": [(MODIFY_ADD, [b_user_dn])]})
    ldap.modify(a_user_dn, {"manager": [(MODIFY_ADD, [b_user_dn])]})
    members = a.scim.get(f"/Groups/{a.group}").json["members"]
    assert [m["value"] for m in members] == [a.user]
    seen = a.scim.get(f"/Users/{a.user}").json
    assert "manager" not in seen.get(entra.ENTERPRISE, {})
    assert seen.get("groups") == a_user.get("groups")
    assert all(g["value"] != a.group
               for g in b.scim.get(f"/Users/{b.user}").json.get("groups", []))
    text = quote(f"members.value eq \"{b.user}\"")
    assert a.scim.get(f"/Groups?filter={text}").json["totalResults"] == 0


def ldap_dn(conn: Connection, base_dn: str, tenant: str, scim_id: str) -> str:
    conn.search(f"o={tenant},{base_dn}", f"(entryUUID={scim_id})", attributes=["1.1"])
    return str(conn.response[0]["dn"])
