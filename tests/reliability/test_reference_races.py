"""Renames and deletes racing the writes that name the renamed or deleted entry, through
gunicorn with several workers (docs/directory.md, "References").

Each scenario runs many trials, its requests released together from threads so that
different workers interleave them. After each trial the tree is read back from slapd,
which is asked what every ``member``/``manager`` value names (tests/integrity.py): no
value may name nothing, every acknowledged add must be there, a deleted user's name
reused must start without groups.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests import entra, integrity
from tests.reliability.conftest import StartGunicorn
from tests.reliability.support import (
    Gunicorn,
    Reply,
    call,
    is_retryable,
    scim_path,
    seed_group,
    seed_user,
)
from tests.reliability.test_races import together

WORKERS = 3
TRIALS = 10


@pytest.fixture
def server(slapd, ldap, gunicorn: StartGunicorn) -> Gunicorn:
    return gunicorn({**slapd.env, "LDAP_TIMEOUT": "5"}, workers=WORKERS, threads=4)


def add_member(server: Gunicorn, gid: str, uid: str) -> Reply:
    return call(server, "PATCH", scim_path(f"/Groups/{gid}"), entra.patch(
        {"op": "Add", "path": "members", "value": [{"value": uid}]}))


def patch_user(server: Gunicorn, uid: str, path: str, value: Any) -> Reply:
    return call(server, "PATCH", scim_path(f"/Users/{uid}"), entra.patch(
        {"op": "Replace", "path": path, "value": value}))


def rename_group(server: Gunicorn, gid: str, name: str) -> Reply:
    return call(server, "PATCH", scim_path(f"/Groups/{gid}"), entra.patch(
        {"op": "Replace", "path": "displayName", "value": name}))


def delete(server: Gunicorn, kind: str, scim_id: str) -> Reply:
    return call(server, "DELETE", scim_path(f"/{kind}/{scim_id}"))


def clean(ldap, base_dn: str) -> None:
    assert integrity.problems(ldap, base_dn) == []


def statuses(replies: list[Reply]) -> list[int]:
    return [r.status for r in replies]


@pytest.mark.parametrize("equal", [False, True], ids=["new-name", "case-only"])
def test_rename_racing_member_adds_keeps_every_add(server, ldap, base_dn, equal):
    def trial(t: int) -> None:
        uid = seed_user(server, f"mover{t}@x.org")
        groups = [seed_group(server, f"R{t}-{g}", [seed_user(server, f"m{t}-{g}@x.org")])
                  for g in range(4)]
        new = f"MOVER{t}@X.ORG" if equal else f"moved{t}@x.org"
        replies = together([lambda: patch_user(server, uid, "userName", new),
                            *[lambda g=g: add_member(server, g, uid) for g in groups]])
        assert statuses(replies) == [200, 204, 204, 204, 204], [r.body for r in replies]
        clean(ldap, base_dn)
        for gid in groups:
            assert uid in integrity.members(ldap, base_dn, gid), (t, gid)

    for t in range(TRIALS):
        trial(t)


def test_delete_racing_member_adds_leaves_nothing_for_a_new_user(server, ldap, base_dn):
    def trial(t: int) -> None:
        name = f"doomed{t}@x.org"
        uid = seed_user(server, name)
        groups = [seed_group(server, f"D{t}-{g}", [seed_user(server, f"d{t}-{g}@x.org")])
                  for g in range(4)]
        replies = together([lambda: delete(server, "Users", uid),
                            *[lambda g=g: add_member(server, g, uid) for g in groups]])
        assert replies[0].status == 204
        assert set(statuses(replies[1:])) <= {204, 400}, [r.body for r in replies]
        clean(ldap, base_dn)
        again = seed_user(server, name)
        body = call(server, "GET", scim_path(f"/Users/{again}")).body
        assert "groups" not in body, (t, body)
        assert all(again not in integrity.members(ldap, base_dn, g) for g in groups)

    for t in range(TRIALS):
        trial(t)


def test_manager_set_racing_the_managers_delete(server, ldap, base_dn):
    path = f"{entra.ENTERPRISE}:manager"
    def trial(t: int) -> None:
        boss = seed_user(server, f"boss{t}@x.org")
        reports = [seed_user(server, f"rep{t}-{i}@x.org") for i in range(3)]
        replies = together([lambda: delete(server, "Users", boss),
                            *[lambda r=r: patch_user(server, r, path, boss) for r in reports]])
        assert replies[0].status == 204
        assert set(statuses(replies[1:])) <= {200, 400}, [r.body for r in replies]
        clean(ldap, base_dn)
        for r in reports:
            assert integrity.manager(ldap, base_dn, r) == [], (t, r)

    for t in range(TRIALS):
        trial(t)


def test_user_rename_racing_renames_of_its_groups(server, ldap, base_dn):
    def trial(t: int) -> None:
        uid = seed_user(server, f"u{t}@x.org")
        groups = [seed_group(server, f"G{t}-{g}", [uid]) for g in range(4)]
        parent = seed_group(server, f"P{t}", [groups[0], seed_user(server, f"o{t}@x.org")])
        replies = together([lambda: patch_user(server, uid, "userName", f"v{t}@x.org"),
                            *[lambda g=g, i=i: rename_group(server, g, f"H{t}-{i}")
                              for i, g in enumerate(groups)]])
        assert statuses(replies) == [200, 204, 204, 204, 204], [r.body for r in replies]
        clean(ldap, base_dn)
        for gid in groups:
            assert integrity.members(ldap, base_dn, gid) == [uid]
        assert groups[0] in integrity.members(ldap, base_dn, parent)

    for t in range(TRIALS):
        trial(t)


def test_user_delete_racing_a_rename_of_its_group(server, ldap, base_dn):
    def trial(t: int) -> None:
        uid = seed_user(server, f"x{t}@x.org")
        keep = seed_user(server, f"k{t}@x.org")
        gid = seed_group(server, f"X{t}", [uid, keep])
        sole = seed_group(server, f"S{t}", [uid])
        replies = together([lambda: delete(server, "Users", uid),
                            lambda: rename_group(server, gid, f"Y{t}"),
                            lambda: rename_group(server, sole, f"Z{t}")])
        assert statuses(replies) == [204, 204, 204], [r.body for r in replies]
        clean(ldap, base_dn)
        assert integrity.members(ldap, base_dn, gid) == [keep]

    for t in range(TRIALS):
        trial(t)


def test_user_patch_racing_a_rename_of_its_manager_keeps_the_manager(server, ldap, base_dn):
    path = f"{entra.ENTERPRISE}:manager"
    def trial(t: int) -> None:
        boss = seed_user(server, f"chief{t}@x.org")
        reports = [seed_user(server, f"staff{t}-{i}@x.org") for i in range(3)]
        for r in reports:
            assert patch_user(server, r, path, boss).status == 200
        replies = together([lambda: patch_user(server, boss, "userName", f"head{t}@x.org"),
                            *[lambda r=r: patch_user(server, r, "title", f"t{t}")
                              for r in reports]])
        assert statuses(replies) == [200, 200, 200, 200], [r.body for r in replies]
        clean(ldap, base_dn)
        for r in reports:
            assert integrity.manager(ldap, base_dn, r) == [boss], (t, r)

    for t in range(TRIALS):
        trial(t)


def test_a_burst_of_renames_and_member_adds_leaves_every_add_and_nothing_dangling(
        server, ldap, base_dn):
    """For a few seconds: renames of users and groups (new names, case-only and NFD/NFC
    ones) on some threads, member adds of those users and groups on others."""
    import random
    import threading
    import time

    people = [seed_user(server, f"burst{i}@x.org") for i in range(6)]
    inner = [seed_group(server, f"Inner{i}") for i in range(2)]
    outer = [seed_group(server, f"Outer{i}") for i in range(3)]
    added: set[tuple[str, str]] = set()
    retried: list[int] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 6
    failures: list[Any] = []

    def renamer(seed: int) -> None:
        rng = random.Random(seed)
        n = 0
        while time.monotonic() < deadline:
            n += 1
            if rng.random() < 0.7:
                i = rng.randrange(len(people))
                name = rng.choice([f"burst{i}@x.org", f"BURST{i}@X.ORG",
                                   f"Bu\u0308rst{i}-{seed}-{n}@x.org"])
                reply = patch_user(server, people[i], "userName", name)
            else:
                i = rng.randrange(len(inner))
                reply = rename_group(server, inner[i], rng.choice(
                    [f"Inner{i}", f"INNER{i}", f"In{i}-{seed}-{n}"]))
            if reply.status not in (200, 204, 409) and not is_retryable(reply):
                failures.append((reply.status, reply.body))

    def adder(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            holder = rng.choice([*inner, *outer])
            member = rng.choice([*people, *(inner if holder in outer else [])])
            reply = add_member(server, holder, member)
            if reply.status == 204:
                with lock:
                    added.add((holder, member))
            elif is_retryable(reply):  # a 503 with Retry-After: Entra sends it again
                retried.append(1)
            else:
                failures.append((reply.status, reply.body))

    threads = [threading.Thread(target=renamer, args=(i,)) for i in range(2)]
    threads += [threading.Thread(target=adder, args=(10 + i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    print(f"burst: {len(added)} distinct adds acknowledged, {len(retried)} answered 503")
    assert len(added) > len(retried)
    clean(ldap, base_dn)
    for holder, member in sorted(added):
        assert member in integrity.members(ldap, base_dn, holder), (holder, member)
