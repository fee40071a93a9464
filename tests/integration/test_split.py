"""Both providers take writes: two bridges pointed at different providers of the topology
while replication between them is cut (a network split), then joined again.

A split is played as a partition would: provider2 is down while bridge A writes to
provider1; then provider1 is down and provider2 comes back alone (it cannot see A's
writes) while bridge B writes to it; then provider1 comes back and the two replicate.
What the tests assert is what OpenLDAP 2.5's syncrepl (entry-level, newest entryCSN wins)
does with it; docs/directory.md ("Replication") says what each guarantee becomes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ldap3 import SUBTREE

from config import load_settings
from directory.tokens import Store
from scim.factory import create_app
from tests import entra
from tests.conftest import TOKEN, Scim
from tests.slapd_instance import NOT_INSTALLED_REASON, run_script, slapd_available
from tests.topology import MEMBERS, Topology

pytestmark = pytest.mark.slapd


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    if not slapd_available():
        pytest.skip(NOT_INSTALLED_REASON)
    topo = Topology(tmp_path / "split")
    topo.start()
    yield topo
    topo.stop()


def bridge(topo: Topology, member: str, tmp_path: Path, **extra: str) -> Any:
    settings = load_settings({**extra,
        "LDAP_URL": topo.url(member), "LDAP_BIND_DN": topo.env["LDAP_BIND_DN"],
        "LDAP_BIND_PASSWORD": topo.env["LDAP_BIND_PASSWORD"],
        "LDAP_BASE_DN": topo.env["LDAP_BASE_DN"], "SCIM_BEARER_TOKEN": TOKEN,
        "LDAP_TIMEOUT": "2", "LDAP_CONNECT_TIMEOUT": "0.5",
        "AUDIT_LOG": str(tmp_path / f"audit-{member}.log")})
    app = create_app(settings)
    app.config["TESTING"] = True
    return app


def start_member(topo: Topology, member: str) -> None:
    run_script("start", "--dir", str(topo.dir / member))


def split(topo: Topology, a: Scim, b: Scim, write_a: Any, write_b: Any) -> tuple[Any, Any]:
    """Run ``write_a`` against provider1 alone, then ``write_b`` against provider2 alone,
    then join; returns their results once the topology has converged."""
    topo.kill("provider2")
    result_a = write_a(a)
    topo.kill("provider1")
    start_member(topo, "provider2")
    result_b = write_b(b)
    topo.start()
    topo.wait_in_sync(timeout=60)
    return result_a, result_b


def entries(topo: Topology, member: str, ldap_filter: str) -> list[dict[str, Any]]:
    conn = topo.connect(member)
    try:
        conn.search(topo.env["LDAP_BASE_DN"], ldap_filter, SUBTREE,
                    attributes=["entryUUID", "member", "uid", "entryCSN"])
        return [dict(e.entry_attributes_as_dict, dn=e.entry_dn) for e in conn.entries]
    finally:
        conn.unbind()


def same_everywhere(topo: Topology, ldap_filter: str) -> list[dict[str, Any]]:
    found = [sorted(entries(topo, m, ldap_filter), key=lambda e: e["dn"]) for m in MEMBERS]
    assert found[0] == found[1] == found[2]
    return found[0]


@pytest.fixture
def bridges(topology: Topology, tmp_path: Path) -> Iterator[tuple[Scim, Scim]]:
    apps = [bridge(topology, member, tmp_path) for member in ("provider1", "provider2")]
    yield Scim(apps[0].test_client()), Scim(apps[1].test_client())
    for app in apps:
        app.extensions["scim_bridge"].pool.close()


def test_the_same_username_created_on_both_sides_keeps_one_entry(
        topology: Topology, bridges: tuple[Scim, Scim]) -> None:
    """The DN is made of the userName, so both creates write the same DN: after the join
    one entry is left everywhere, the newer one, and the id A acknowledged is gone."""
    a, b = bridges
    created_a, created_b = split(
        topology, a, b,
        lambda s: s.post("/Users", entra.user("split@contoso.com")),
        lambda s: s.post("/Users", entra.user("split@contoso.com")))
    assert created_a.status_code == created_b.status_code == 201
    left = same_everywhere(topology, "(uid=split@contoso.com)")
    assert [e["entryUUID"] for e in left] == [[created_b.get_json()["id"]]]
    assert a.get(f"/Users/{created_a.get_json()['id']}").status_code == 404


def test_member_changes_on_both_sides_keep_the_newer_entry_only(
        topology: Topology, bridges: tuple[Scim, Scim]) -> None:
    """Replication copies whole entries: of two member changes made on different sides,
    the group keeps the newer one and the other is lost (here: A's add)."""
    a, b = bridges
    users = [a.post("/Users", entra.user(f"m{i}@contoso.com")).get_json()["id"]
             for i in range(3)]
    gid = a.post("/Groups", entra.group("Split Team", [users[0]])).get_json()["id"]
    topology.wait_in_sync()

    def add(member: str) -> Any:
        return lambda s: s.patch(f"/Groups/{gid}", entra.patch(
            {"op": "Add", "path": "members", "value": [{"value": member}]}))

    done_a, done_b = split(topology, a, b, add(users[1]), add(users[2]))
    assert done_a.status_code == done_b.status_code == 204
    group = same_everywhere(topology, "(cn=Split Team)")[0]
    members = {m.split(",")[0].lower() for m in group["member"]}
    assert members == {"uid=m0@contoso.com", "uid=m2@contoso.com"}  # m1's add is lost
    # a retry of A's PATCH (what the drift check cannot know about) restores it
    assert a.patch(f"/Groups/{gid}", entra.patch(
        {"op": "Add", "path": "members", "value": [{"value": users[1]}]})).status_code == 204


def test_last_member_removed_on_one_side_and_added_on_the_other(
        topology: Topology, bridges: tuple[Scim, Scim]) -> None:
    """A empties the group (placeholder in), B adds a member: the newer entry wins whole,
    so the placeholder never ends up beside a real member (nor does a group end empty)."""
    a, b = bridges
    users = [a.post("/Users", entra.user(f"p{i}@contoso.com")).get_json()["id"]
             for i in range(2)]
    gid = a.post("/Groups", entra.group("Split Empty", [users[0]])).get_json()["id"]
    topology.wait_in_sync()
    removed, added = split(
        topology, a, b,
        lambda s: s.patch(f"/Groups/{gid}", entra.patch(
            {"op": "Remove", "path": "members", "value": [{"value": users[0]}]})),
        lambda s: s.patch(f"/Groups/{gid}", entra.patch(
            {"op": "Add", "path": "members", "value": [{"value": users[1]}]})))
    assert removed.status_code == added.status_code == 204
    group = same_everywhere(topology, "(cn=Split Empty)")[0]
    members = {m.split(",")[0].lower() for m in group["member"]}
    assert members == {"uid=p0@contoso.com", "uid=p1@contoso.com"}  # B's entry won whole


def test_a_token_revoked_on_one_side_is_back_after_the_join_if_used_on_the_other(
        topology: Topology, tmp_path: Path) -> None:
    """The token registry replicates like the rest: a token made on provider1 works through
    a bridge on provider2. Revoked (deleted) on provider1 during a split, it keeps working
    through the bridge on provider2, which cannot see the revocation, and that use records
    itself on the token's entry (its last-use time). At the join that newer entry wins over
    the delete: the revoked token is back on every server and works again."""
    conn = topology.connect("provider1")
    conn.raise_exceptions = True
    store = Store(conn, topology.env["LDAP_BASE_DN"])
    token_id, token = store.create_token(store.create_tenant("split"), "split-token")
    conn.unbind()
    topology.wait_in_sync()
    apps = [bridge(topology, m, tmp_path, SCIM_TOKEN_CACHE_SECONDS="1")
            for m in ("provider1", "provider2")]
    a, b = Scim(apps[0].test_client()), Scim(apps[1].test_client())
    for side in (a, b):
        side.headers = {"Authorization": f"Bearer {token}"}

    def revoke(_: Scim) -> bool:
        revoker = topology.connect("provider1")
        revoker.raise_exceptions = True
        try:
            return Store(revoker, topology.env["LDAP_BASE_DN"]).revoke_token(token_id)
        finally:
            revoker.unbind()

    revoked, during = split(topology, a, b, revoke, lambda s: s.get("/Users").status_code)
    assert revoked and during == 200  # provider2 had not seen the revocation
    time.sleep(1.1)  # past SCIM_TOKEN_CACHE_SECONDS
    assert len(same_everywhere(topology, f"(cn={token_id})")) == 1  # the entry is back
    assert a.get("/Users").status_code == 200  # and the revoked token works again
    for app in apps:
        app.extensions["scim_bridge"].pool.close()


def test_a_token_revoked_on_one_side_and_unused_on_the_other_stays_revoked(
        topology: Topology, tmp_path: Path) -> None:
    conn = topology.connect("provider1")
    conn.raise_exceptions = True
    store = Store(conn, topology.env["LDAP_BASE_DN"])
    token_id, token = store.create_token(store.create_tenant("split2"), "split-token")
    conn.unbind()
    topology.wait_in_sync()
    app = bridge(topology, "provider2", tmp_path, SCIM_TOKEN_CACHE_SECONDS="1")
    b = Scim(app.test_client())
    b.headers = {"Authorization": f"Bearer {token}"}

    def revoke(_: Scim) -> bool:
        revoker = topology.connect("provider1")
        revoker.raise_exceptions = True
        try:
            return Store(revoker, topology.env["LDAP_BASE_DN"]).revoke_token(token_id)
        finally:
            revoker.unbind()

    revoked, _ = split(topology, b, b, revoke, lambda s: None)
    assert revoked
    assert same_everywhere(topology, f"(cn={token_id})") == []
    assert b.get("/Users").status_code == 401
    app.extensions["scim_bridge"].pool.close()
