"""`scripts/slapd topology`: two multi-provider slapds and a read-only consumer, for real."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, NONE, Connection, Server

from tests.slapd_instance import NOT_INSTALLED_REASON, slapd_available
from tests.topology import MEMBERS, Topology

pytestmark = pytest.mark.slapd
UNWILLING_TO_PERFORM = 53


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    if not slapd_available():
        pytest.skip(NOT_INSTALLED_REASON)
    topo = Topology(Path(tmp_path_factory.mktemp("topology")))
    topo.start()
    yield topo
    topo.stop()


def person(topo: Topology, member: str) -> str:
    name = f"u{uuid.uuid4().hex[:10]}"
    dn = f"uid={name},ou=People,{topo.env['LDAP_BASE_DN']}"
    conn = topo.connect(member)
    assert conn.add(dn, ["inetOrgPerson"], {"uid": name, "cn": name, "sn": name,
                                            "userPassword": "secret-" + name}), conn.result
    conn.unbind()
    return dn


def test_start_prints_both_providers_and_the_consumer(topology: Topology) -> None:
    env = topology.env
    assert env["LDAP_URL"].split() == [topology.url("provider1"), topology.url("provider2")]
    assert env["LDAP_CONSUMER_URL"] == topology.url("consumer")
    code, out = topology.status()
    assert code == 0, out
    assert [line.split("\t")[0] for line in out.splitlines()] == list(MEMBERS)
    assert all("\tin sync\t" in line and "#001#" in line for line in out.splitlines())


def test_every_member_starts_with_the_same_base_entries(topology: Topology) -> None:
    trees = [topology.tree(member) for member in MEMBERS]
    assert trees[0] == trees[1] == trees[2]
    assert f"cn=empty-group-placeholder,ou=service,{topology.env['LDAP_BASE_DN']}" in trees[0]


@pytest.mark.parametrize(("writer", "readers"), [
    ("provider1", ("provider2", "consumer")),
    ("provider2", ("provider1", "consumer")),
])
def test_a_write_on_either_provider_reaches_the_others(
        topology: Topology, writer: str, readers: tuple[str, ...]) -> None:
    dn = person(topology, writer)
    written = topology.wait_entry(writer, dn)
    assert written is not None
    for reader in readers:
        copy = topology.wait_entry(reader, dn, timeout=15)
        assert copy is not None, f"{dn} never reached {reader}"
        # the same entry, not a look-alike: entryUUID and entryCSN travel with it
        assert copy["entryUUID"] == written["entryUUID"]
        assert copy["entryCSN"] == written["entryCSN"]
    # userPassword too (the replica must be able to authenticate the same people)
    assert topology.tree(readers[0])[dn.lower()]["userpassword"] == \
        topology.tree(writer)[dn.lower()]["userpassword"]
    topology.wait_in_sync()


def test_the_consumer_refuses_writes(topology: Topology) -> None:
    conn = topology.connect("consumer")
    dn = f"uid=nope,ou=People,{topology.env['LDAP_BASE_DN']}"
    assert not conn.add(dn, ["inetOrgPerson"], {"uid": "nope", "cn": "n", "sn": "n"})
    assert conn.result["result"] == UNWILLING_TO_PERFORM
    conn.unbind()
    assert topology.wait_entry("provider1", dn, timeout=0.5) is None


def test_a_killed_provider_catches_up_and_status_says_who_lags(topology: Topology) -> None:
    topology.kill("provider1")
    code, out = topology.status()
    assert code == 1
    assert out.splitlines()[0].split("\t")[2] == "not answering"
    dn = person(topology, "provider2")
    # the consumer pulls from provider1 only: it waits for it
    assert topology.wait_entry("consumer", dn, timeout=1) is None
    states = [line.split("\t")[2] for line in topology.status()[1].splitlines()]
    assert states == ["not answering", "in sync", "lagging (server 002)"]
    topology.start()  # starts what is stopped, leaves the others running
    assert topology.wait_entry("provider1", dn) is not None
    assert topology.wait_entry("consumer", dn) is not None
    topology.wait_in_sync()
    trees = [topology.tree(member) for member in MEMBERS]
    assert trees[0] == trees[1] == trees[2]


def test_status_says_which_member_lags(topology: Topology) -> None:
    """provider1 stops replicating from provider2 (its olcSyncrepl removed through
    cn=config) and provider2 takes a change: status names provider1 (and the consumer,
    which replicates from provider1) as lagging behind server 002 and exits 1; with
    replication back, all are in sync again."""
    password = (topology.dir / "credentials.env").read_text().split("CONFIG_PASSWORD=")[1]
    config = Connection(Server(topology.url("provider1"), get_info=NONE), "cn=admin,cn=config",
                        password.split()[0], auto_bind=True, raise_exceptions=True)
    mdb = "olcDatabase={1}mdb,cn=config"
    config.search(mdb, "(objectClass=*)", BASE, attributes=["olcSyncrepl"])
    stanzas = [str(v) for v in config.entries[0].olcSyncrepl.values]
    config.modify(mdb, {"olcSyncrepl": [(MODIFY_DELETE, [])]})
    try:
        person(topology, "provider2")
        code, out = topology.status()
        lines = {line.split("\t")[0]: line.split("\t")[2] for line in out.splitlines()}
        assert code == 1, out
        assert lines == {"provider1": "lagging (server 002)", "provider2": "in sync",
                         "consumer": "lagging (server 002)"}, out  # it pulls from provider1
    finally:
        config.modify(mdb, {"olcSyncrepl": [(MODIFY_ADD, stanzas)]})
        config.unbind()
    topology.wait_in_sync()


def test_status_of_a_stopped_topology(tmp_path: Path, topology: Topology) -> None:
    other = Topology(tmp_path / "never-started")
    assert other.status()[0] == 3
