"""Two tenants on the session slapd with the same hostile names in both, for the
hypothesis tests (Flask test client: fast). Tenant B exists to be invisible from A."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import Flask
from ldap3 import LEVEL, SUBTREE, Connection
from ldap3.core.exceptions import LDAPNoSuchObjectResult

from config import load_settings
from directory.dn import normalise_dn
from directory.tenant import Tenant
from directory.tokens import Store
from scim.factory import create_app
from tests import entra
from tests.conftest import TOKEN, Scim
from tests.reliability.support import admin
from tests.slapd_instance import SlapdInstance

#: userNames made of what LDAP filters and DNs treat specially (and some Unicode).
NAMES = [
    "plain@x.org", "Plain2@x.org", "star*user@x.org", "*", "a*", "paren(1)@x.org", "(", ")",
    "back\\slash@x.org", "\\", "\\2a", "comma,plus+@x.org", 'quote"d@x.org', "semi;colon@x.org",
    "eq=al@x.org", "lt<gt>@x.org", "#hash@x.org", "x)(uid=*", "*)(|(uid=*", "ünïcödé@x.org",
    "ÜNÏCÖDÉ2@x.org", "日本語@x.org", "emoji😀@x.org", "uid=admin,dc=scimbridge,dc=local",
]
TENANT_NAMES = ("rel-a", "rel-b")


@dataclass
class Person:
    id: str
    user_name: str
    display_name: str
    external_id: str

    def attribute(self, name: str) -> str:
        return {"username": self.user_name, "displayname": self.display_name,
                "externalid": self.external_id}[name.lower()]


class World:
    """Not a dataclass: hypothesis prints its test's arguments, and this one is big."""

    def __init__(self, app: Flask, conn: Connection, root: str, tenants: dict[str, Tenant],
                 clients: dict[str, Scim]) -> None:
        self.app, self.conn, self.root = app, conn, root
        self.tenants, self.clients = tenants, clients
        self.people: dict[str, list[Person]] = {}
        self.groups: dict[str, list[str]] = {}

    def __repr__(self) -> str:  # hypothesis prints its arguments
        return "World(rel-a, rel-b)"

    def ids(self, tenant: str) -> set[str]:
        return {p.id for p in self.people[tenant]} | set(self.groups[tenant])

    def count(self, tenant: str, ou: str) -> int:
        self.conn.search(f"ou={ou},{self.tenants[tenant].base_dn}", "(objectClass=*)", LEVEL,
                         attributes=["1.1"])
        return len(self.conn.response)

    def dn_of(self, scim_id: str) -> str | None:
        """The DN of the entry with that id anywhere in the directory."""
        self.conn.search(self.root, f"(entryUUID={scim_id})", SUBTREE, attributes=["1.1"])
        return self.conn.response[0]["dn"] if self.conn.response else None

    def parent_is(self, scim_id: str, tenant: str, ou: str) -> bool:
        dn = self.dn_of(scim_id)
        want = normalise_dn(f"ou={ou},{self.tenants[tenant].base_dn}")
        parent = normalise_dn(dn or "").split(",", 1)
        return dn is not None and len(parent) == 2 and parent[1] == want \
            and normalise_dn(dn).count(",") == want.count(",") + 1


def build(slapd: SlapdInstance) -> Iterator[World]:
    """Create the tenants, their tokens and the hostile data set; remove it all after."""
    conn = admin(slapd.env)
    root = slapd.env["LDAP_BASE_DN"]
    _remove(conn, root)
    store = Store(conn, root)
    tenants = {name: store.create_tenant(name) for name in TENANT_NAMES}
    app = create_app(load_settings({**slapd.env, "SCIM_BEARER_TOKEN": TOKEN,
                                    "SCIM_TOKEN_CACHE_SECONDS": "3600"}))
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a bug answers 500 (asserted), not a raise
    clients = {}
    for name, tenant in tenants.items():
        _, token = store.create_token(tenant, f"reliability-{name}")
        client = Scim(app.test_client())
        client.headers = {"Authorization": f"Bearer {token}"}
        clients[name] = client
    world = World(app, conn, root, tenants, clients)
    for name, client in clients.items():
        world.people[name] = []
        for i, user_name in enumerate(NAMES):
            body = {**entra.minimal_user(user_name), "displayName": f"D-{user_name}",
                    "externalId": f"E{i % 5}-{user_name.upper()}"}
            created = client.post("/Users", body)
            assert created.status_code == 201, (user_name, created.json)
            world.people[name].append(Person(created.json["id"], user_name,
                                             body["displayName"], body["externalId"]))
        first = [p.id for p in world.people[name][:4]]
        world.groups[name] = [
            client.post("/Groups", entra.group(display, members)).json["id"]
            for display, members in (("g*(1)", first), ("g\\,2", []), ("g=3+x", first[:1]))]
    try:
        yield world
    finally:
        app.extensions["scim_bridge"].pool.close()
        _remove(conn, root)
        conn.unbind()


def _remove(conn: Connection, root: str) -> None:
    """The tenants' subtrees, registry entries and tokens (from this run or a crashed one)."""
    for name in TENANT_NAMES:
        bases = [f"o={name},{root}", f"cn={name},ou=Tenants,ou=Service,{root}"]
        for base in bases:
            try:
                conn.search(base, "(objectClass=*)", SUBTREE, attributes=["1.1"])
            except LDAPNoSuchObjectResult:
                continue
            for dn in sorted((e["dn"] for e in conn.response), key=lambda d: -d.count(",")):
                conn.delete(dn)
        try:
            conn.search(f"ou=Tokens,ou=Service,{root}", f"(scimTenantName={name})", LEVEL,
                        attributes=["1.1"])
        except LDAPNoSuchObjectResult:
            continue
        for entry in list(conn.response):
            conn.delete(entry["dn"])


def is_error(response: Any, *statuses: int) -> bool:
    """A SCIM error body with one of ``statuses``."""
    body = response.json
    return (response.status_code in statuses and isinstance(body, dict)
            and body.get("schemas") == ["urn:ietf:params:scim:api:messages:2.0:Error"]
            and body.get("status") == str(response.status_code)
            and isinstance(body.get("detail"), str))


def literal(value: Any, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)
