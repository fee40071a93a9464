"""The bridge on a replicated directory (scripts/slapd topology): which provider it writes
to, fail-over when that provider dies, and that it stays there when the first comes back.

Where a write landed is read from the entry itself: entryCSN ends with the server id of
the provider that made the change (#001# provider1, #002# provider2)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, NONE, SUBTREE, Connection, Server

from config import load_settings
from directory.replication import lag_of
from scim.factory import create_app
from tests import entra
from tests.conftest import TOKEN, Scim
from tests.slapd_instance import NOT_INSTALLED_REASON, slapd_available
from tests.topology import Topology

pytestmark = pytest.mark.slapd
METRICS_TOKEN = "metrics-token-0123456789"


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    if not slapd_available():
        pytest.skip(NOT_INSTALLED_REASON)
    topo = Topology(Path(tmp_path_factory.mktemp("failover")))
    topo.start()
    yield topo
    topo.stop()


@pytest.fixture
def app(topology: Topology, tmp_path: Path) -> Iterator[Any]:
    settings = load_settings({
        **{k: v for k, v in topology.env.items() if k.startswith("LDAP_") and
           k != "LDAP_CONSUMER_URL"},
        "SCIM_BEARER_TOKEN": TOKEN, "LDAP_TIMEOUT": "2", "LDAP_CONNECT_TIMEOUT": "0.5",
        "METRICS_TOKEN": METRICS_TOKEN, "AUDIT_LOG": str(tmp_path / "audit.log")})
    application = create_app(settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["scim_bridge"].pool.close()


def written_by(topology: Topology, member: str, scim_id: str) -> str:
    """The server id in the entryCSN of the entry with entryUUID ``scim_id``."""
    conn = topology.connect(member)
    try:
        conn.search(topology.env["LDAP_BASE_DN"], f"(entryUUID={scim_id})", SUBTREE,
                    attributes=["entryCSN"])
        return str(conn.entries[0].entryCSN).split("#")[2]
    finally:
        conn.unbind()


def metric(app: Any, name: str) -> float:
    text = app.test_client().get(
        "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).get_data(as_text=True)
    found = re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return sum(float(v) for v in found)


def test_fail_over_to_the_second_provider_and_stay_there(topology: Topology, app: Any) -> None:
    web, scim = app.test_client(), Scim(app.test_client())
    ready = web.get("/readyz")
    assert ready.get_json() == {"status": "ready", "provider": 1, "lagging": False}
    first = scim.post("/Users", entra.user("ha.first@contoso.com")).get_json()["id"]
    assert written_by(topology, "provider1", first) == "001"
    assert metric(app, "scim_ldap_failovers_total") == 0

    topology.kill("provider1")
    try:
        # the pooled connection to provider1 is dead: the request that finds out may get a
        # 503 (Entra retries it); the next one reconnects, to provider2
        r = scim.get(f"/Users/{first}")
        if r.status_code == 503:
            r = scim.get(f"/Users/{first}")
        assert r.status_code == 200, r.get_json()
        second = scim.post("/Users", entra.user("ha.second@contoso.com")).get_json()["id"]
        assert written_by(topology, "provider2", second) == "002"
        assert web.get("/readyz").get_json()["provider"] == 2
        assert metric(app, "scim_ldap_failovers_total") == 1
    finally:
        topology.start()  # provider1 again; it catches up from provider2
    assert topology.wait_entry("provider1", topology_dn(topology, second)) is not None

    # provider1 answers again, but the bridge stays on provider2 (no flapping, and its
    # reads see its own writes), even on a new connection
    app.extensions["scim_bridge"].pool.close()
    third = scim.post("/Users", entra.user("ha.third@contoso.com")).get_json()["id"]
    assert written_by(topology, "provider2", third) == "002"
    assert web.get("/readyz").get_json() == {"status": "ready", "provider": 2,
                                             "lagging": False}
    assert metric(app, "scim_ldap_failovers_total") == 1
    assert metric(app, "scim_ldap_provider") == 2
    topology.wait_in_sync()


def topology_dn(topology: Topology, scim_id: str) -> str:
    conn = topology.connect("provider2")
    try:
        conn.search(topology.env["LDAP_BASE_DN"], f"(entryUUID={scim_id})", SUBTREE,
                    attributes=["1.1"])
        return str(conn.entries[0].entry_dn)
    finally:
        conn.unbind()


def test_readyz_exports_the_lag_and_names_no_host(topology: Topology, app: Any) -> None:
    body = app.test_client().get("/readyz").get_data(as_text=True)
    assert "127.0.0.1" not in body and str(topology.base) not in body
    assert metric(app, "scim_ldap_replication_lag_seconds") == 0


def test_lag_is_the_csn_time_difference_per_server_id() -> None:
    """Plumbing of the lag arithmetic (the real values come from the topology above)."""
    mine = ["20260101000000.000000Z#000000#001#000000",
            "20260101000000.000000Z#000000#002#000000"]
    ahead = ["20260101000000.000000Z#000000#001#000000",
             "20260101000002.500000Z#000000#002#000000"]
    assert lag_of(mine, [mine]).seconds == 0 and not lag_of(mine, [mine]).lagging
    assert lag_of(mine, [ahead]).seconds == 2.5 and lag_of(mine, [ahead]).lagging
    assert lag_of(ahead, [mine]).seconds == 0  # being ahead is not lagging
    assert lag_of(mine[:1], [ahead]).seconds == float("inf")  # never saw server 002
    assert lag_of(mine, []).seconds is None


def config_admin(topology: Topology, member: str) -> Connection:
    password = (topology.dir / "credentials.env").read_text().split("CONFIG_PASSWORD=")[1]
    return Connection(Server(topology.url(member), get_info=NONE), "cn=admin,cn=config",
                      password.split()[0], auto_bind=True, raise_exceptions=True)


def test_readyz_says_lagging_when_the_provider_misses_a_change(
        topology: Topology, app: Any) -> None:
    """provider1's replication from provider2 is switched off (cn=config) and a change is
    made on provider2: the bridge, writing to provider1, reports it lags; once replication
    is back, it does not."""
    web = app.test_client()
    assert web.get("/readyz").get_json()["provider"] == 1
    mdb = "olcDatabase={1}mdb,cn=config"
    config = config_admin(topology, "provider1")
    config.search(mdb, "(objectClass=*)", BASE, attributes=["olcSyncrepl"])
    stanzas = [str(v) for v in config.entries[0].olcSyncrepl.values]
    config.modify(mdb, {"olcSyncrepl": [(MODIFY_DELETE, [])]})
    try:
        dn = f"uid=lag.probe,ou=People,{topology.env['LDAP_BASE_DN']}"
        conn = topology.connect("provider2")
        assert conn.add(dn, ["inetOrgPerson"], {"uid": "lag.probe", "cn": "l", "sn": "l"})
        conn.unbind()
        body = web.get("/readyz").get_json()
        assert body == {"status": "ready", "provider": 1, "lagging": True}
        assert metric(app, "scim_ldap_replication_lag_seconds") > 0
    finally:
        config.modify(mdb, {"olcSyncrepl": [(MODIFY_ADD, stanzas)]})
        config.unbind()
    assert topology.wait_entry("provider1", dn) is not None
    topology.wait_in_sync()
    assert web.get("/readyz").get_json()["lagging"] is False
    assert metric(app, "scim_ldap_replication_lag_seconds") == 0
