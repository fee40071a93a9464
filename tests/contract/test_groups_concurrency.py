"""Concurrent member PATCHes to one group on real slapd (Entra sends batches in parallel).

Member deltas must commute: whatever the interleaving, the final member set is what
the operations imply, and at every moment the group is a valid ``groupOfNames`` —
never empty, never the placeholder beside a real member.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ldap3 import BASE

from tests.conftest import Scim, admin_connection
from tests.contract.groups_support import (
    gdn,
    group_by_id,
    make_group,
    members_of,
    members_patch,
    placeholder,
    udn,
)
from tests.entra import minimal_user, patch


def users(scim: Scim, prefix: str, count: int) -> list[str]:
    ids = []
    for i in range(count):
        r = scim.post("/Users", minimal_user(f"{prefix}{i:03d}"))
        assert r.status_code == 201, r.json
        ids.append(r.json["id"])
    return ids


class Watcher:
    """Reads the group over its own connection until stopped; records invalid states."""

    def __init__(self, slapd: Any, dn: str, base_dn: str) -> None:
        self.conn = admin_connection(slapd.env)
        self.dn, self.placeholder = dn, placeholder(base_dn)
        self.reads = 0
        self.bad: list[list[str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        while not self.stop.is_set():
            self.conn.search(self.dn, "(objectClass=*)", BASE, attributes=["member"])
            values = sorted(v.lower() for v in self.conn.response[0]["attributes"]["member"])
            self.reads += 1
            if not values or (self.placeholder in values and len(values) > 1):
                self.bad.append(values)

    def __enter__(self) -> Watcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.conn.unbind()


def run_threads(targets: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_four_threads_of_25_adds_and_removes(app, slapd, ldap, base_dn):
    scim = Scim(app.test_client())
    ids = users(scim, "m", 100)
    gid = make_group(scim, "Busy", ids[:50])
    errors: list[str] = []

    def worker(chunk: list[str], op: str) -> Callable[[], None]:
        def run() -> None:
            client = Scim(app.test_client())
            for member in chunk:
                r = client.patch(f"/Groups/{gid}", members_patch(op, member))
                if r.status_code != 204:
                    errors.append(f"{op} {member}: {r.status_code} {r.json}")
        return run

    with Watcher(slapd, f"cn=Busy,ou=Groups,{base_dn}", base_dn) as watcher:
        run_threads([worker(ids[0:25], "Remove"), worker(ids[25:50], "Remove"),
                     worker(ids[50:75], "Add"), worker(ids[75:100], "Add")])
    assert errors == []
    assert members_of(ldap, base_dn, gid) == sorted(udn(base_dn, f"m{i:03d}")
                                                    for i in range(50, 100))
    assert watcher.reads > 0 and watcher.bad == []


def test_threads_emptying_and_refilling_one_group(app, slapd, ldap, base_dn):
    """Each thread adds then removes its own members: the group keeps passing through
    'empty' while others add, so the placeholder comes and goes under contention."""
    scim = Scim(app.test_client())
    ids = users(scim, "p", 8)
    gid = make_group(scim, "Flicker")
    errors: list[str] = []

    def worker(mine: list[str]) -> Callable[[], None]:
        def run() -> None:
            client = Scim(app.test_client())
            for _ in range(12):
                for op in ("Add", "Remove"):
                    r = client.patch(f"/Groups/{gid}", members_patch(op, *mine))
                    if r.status_code != 204:
                        errors.append(f"{op}: {r.status_code} {r.json}")
        return run

    with Watcher(slapd, f"cn=Flicker,ou=Groups,{base_dn}", base_dn) as watcher:
        run_threads([worker(ids[i:i + 2]) for i in range(0, 8, 2)])
    assert errors == []
    assert members_of(ldap, base_dn, gid) == [placeholder(base_dn)]
    assert watcher.bad == []


def test_race_remove_last_member_against_add(app, ldap, base_dn):
    scim = Scim(app.test_client())
    for round_ in range(10):
        a, b = users(scim, f"r{round_}a", 1)[0], users(scim, f"r{round_}b", 1)[0]
        gid = make_group(scim, f"Race {round_}", [a])
        barrier = threading.Barrier(2)
        codes: list[int] = []

        def send(op: str, member: str, group: str = gid,
                 gate: threading.Barrier = barrier, out: list[int] = codes) -> Callable[[], None]:
            def run() -> None:
                client = Scim(app.test_client())
                gate.wait()
                out.append(client.patch(f"/Groups/{group}",
                                        members_patch(op, member)).status_code)
            return run

        run_threads([send("Remove", a), send("Add", b)])
        assert codes == [204, 204]
        assert members_of(ldap, base_dn, gid) == [udn(base_dn, f"r{round_}b000")]


def test_race_two_removals_of_the_last_two_members(app, ldap, base_dn):
    scim = Scim(app.test_client())
    for round_ in range(8):
        a, b = users(scim, f"t{round_}", 2)
        gid = make_group(scim, f"Pair {round_}", [a, b])
        barrier = threading.Barrier(2)
        codes: list[int] = []

        def send(member: str, group: str = gid, gate: threading.Barrier = barrier,
                 out: list[int] = codes) -> Callable[[], None]:
            def run() -> None:
                client = Scim(app.test_client())
                gate.wait()
                out.append(client.patch(f"/Groups/{group}",
                                        members_patch("Remove", member)).status_code)
            return run

        run_threads([send(a), send(b)])
        assert codes == [204, 204]
        assert members_of(ldap, base_dn, gid) == [placeholder(base_dn)]


def test_concurrent_member_changes_and_a_rename(app, ldap, base_dn):
    """A rename takes the group's DN away from under concurrent member PATCHes."""
    scim = Scim(app.test_client())
    ids = users(scim, "n", 30)
    gid = make_group(scim, "Moving")
    errors: list[str] = []

    def adder(chunk: list[str]) -> Callable[[], None]:
        def run() -> None:
            client = Scim(app.test_client())
            for member in chunk:
                r = client.patch(f"/Groups/{gid}", members_patch("Add", member))
                if r.status_code != 204:
                    errors.append(f"{r.status_code} {r.json}")
        return run

    def renamer() -> None:
        client = Scim(app.test_client())
        for i in range(6):
            r = client.patch(f"/Groups/{gid}", patch(
                {"op": "Replace", "path": "displayName", "value": f"Moving {i}"}))
            if r.status_code != 204:
                errors.append(f"rename: {r.status_code} {r.json}")

    run_threads([adder(ids[:15]), adder(ids[15:]), renamer()])
    assert errors == []
    group = group_by_id(ldap, base_dn, gid)
    assert group.dn == gdn(base_dn, "moving 5")
    assert group.members == sorted(udn(base_dn, f"n{i:03d}") for i in range(30))
