"""The private slapd survives the load that crashed it in issue 15, with exact memberships.

With ``olcDbMultival: member 100,20`` (the config before issue 15) back-mdb 2.5.13 stores a
Permissive Modify add of a member DN that the group already holds in an equal spelling of
another byte length (NFC vs NFD) in its multi-value table anyway; the group's values are
then corrupt and slapd dies at the next such modify (docs/directory.md, "slapd crash under
renames"). These tests run that load on a slapd built from directory/schema/ and read the
groups back; restoring the olcDbMultival line in slapd-config.ldif.tmpl makes them fail.
"""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.member_load import (
    PERMISSIVE_MODIFY,
    Layout,
    Load,
    membership_problems,
    opened,
    seed,
    spelling,
)
from tests.slapd_instance import NOT_INSTALLED_REASON, SlapdInstance, run_script, slapd_available

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from ldap3 import BASE, MODIFY_ADD, Connection

pytestmark = pytest.mark.slapd

SLAPMODIFY = "/usr/sbin/slapmodify"
LOAD_SECONDS = 8.0


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[SlapdInstance]:
    if not slapd_available():
        pytest.skip(NOT_INSTALLED_REASON)
    slapd = SlapdInstance()
    slapd.start(tmp_path / "slapd")
    try:
        yield slapd
    finally:
        slapd.stop()


def test_rename_and_member_load_keeps_slapd_up_and_memberships_exact(
        instance: SlapdInstance) -> None:
    pid = instance.pid
    layout = Layout(instance.env["LDAP_BASE_DN"])
    with opened(instance.env) as conn:
        seed(conn, layout)

    load = Load(instance.env, layout)
    load.run(LOAD_SECONDS)

    assert instance.pid == pid, "slapd died under the load"
    assert not load.lost_connection
    assert load.counts["modrdn"] > 50 and load.counts["re-add"] > 50, load.counts
    assert load.counts["add"] > 20 and load.counts["delete"] > 20, load.counts
    # Only refint's background rewrite may be refused (its add meets an equal value); every
    # operation the workers sent succeeds.
    assert not load.errors, load.errors
    with opened(instance.env) as conn:
        assert membership_problems(conn, load) == []
        renamed = _uid(conn, layout.user_dn(layout.user_name(0)))
    assert renamed in (spelling(layout.user_name(0), False), spelling(layout.user_name(0), True))


def _uid(conn: Connection, dn: str) -> str:
    assert conn.search(dn, "(objectClass=*)", BASE, attributes=["uid"])
    return str(conn.entries[0]["uid"].value)


def _set_multival(instance: SlapdInstance, value: str | None) -> None:
    """olcDbMultival of the (stopped) instance's database, offline."""
    ldif = "dn: olcDatabase={1}mdb,cn=config\nchangetype: modify\nreplace: olcDbMultival\n"
    ldif += (f"olcDbMultival: {value}\n" if value else "") + "-\n"
    folder = instance.dir
    assert folder is not None
    subprocess.run([SLAPMODIFY, "-n0", "-F", str(folder / "slapd.d"), "-l", "/dev/stdin"],
                   input=ldif, text=True, check=True, capture_output=True)


def _config_text(folder: Path) -> str:
    return (folder / "slapd.d" / "cn=config" / "olcDatabase={1}mdb.ldif").read_text()


def test_start_upgrades_an_instance_built_with_multival(instance: SlapdInstance) -> None:
    """An instance from before issue 15 (olcDbMultival, no config.version) is upgraded by
    ``start``: the setting goes and its large groups are stored again without the multi-value
    table, so the crashing sequence is harmless on the groups it already held."""
    folder = instance.dir
    assert folder is not None
    assert "olcDbMultival" not in _config_text(folder)
    assert (folder / "config.version").read_text().strip() == "2"

    instance.stop()
    _set_multival(instance, "member 100,20")
    instance.start(folder)  # config.version still says 2: slapd runs with multival
    layout = Layout(instance.env["LDAP_BASE_DN"], groups=1, extras=0)
    with opened(instance.env) as conn:
        seed(conn, layout)
        assert conn.search(layout.group_dn(0), "(objectClass=*)", BASE, attributes=["entryUUID"])
        group_uuid = str(conn.entries[0]["entryUUID"].value)
    instance.stop()

    (folder / "config.version").unlink()  # what an instance made before the stamp looks like
    started = run_script("start", "--dir", str(folder))
    assert "upgraded cn=config" in started.stderr
    instance.start(folder)
    assert "olcDbMultival" not in _config_text(folder)
    assert (folder / "config.version").read_text().strip() == "2"
    assert "upgraded" not in run_script("start", "--dir", str(folder)).stderr  # once only

    pid = instance.pid
    first = layout.user_name(0)
    with opened(instance.env) as conn:
        assert conn.search(layout.group_dn(0), "(objectClass=*)", BASE,
                           attributes=["entryUUID"])
        assert str(conn.entries[0]["entryUUID"].value) == group_uuid
        for _ in range(3):  # the sequence that kills a group stored in the multi-value table
            conn.modify(layout.group_dn(0),
                        {"member": [(MODIFY_ADD, [layout.user_dn(first, True)])]},
                        controls=[PERMISSIVE_MODIFY])
    assert instance.pid == pid, "slapd died: the group kept its multi-value storage"
    with opened(instance.env) as conn:
        load = Load(instance.env, layout, renamers=0, movers=0, churners=0)
        assert membership_problems(conn, load) == []
