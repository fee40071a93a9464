"""slapd SIGKILLed (or SIGSTOPped longer than the bridge's LDAP timeout) during bursts of
renames and of deletes, each racing member adds from other client threads, through
gunicorn with several workers on a slapd of this module alone; and the same races with
no fault (``none``), where no repair runs: the protocol alone must keep every reference.

Every client retries its request the way Entra does (after a 5xx or a lost answer, the
same request again) until it gets a final answer: 2xx, or 404 for a DELETE that may have
been applied already. Then ``flask --app app directory check --repair`` runs, as an
operator runs it after a crash; then the tree is read back with a plain admin connection:
no ``member``/``manager`` value names a missing entry or the placeholder, every group has
exactly the members the acknowledged requests imply, every manager names the right user,
and a userName re-created after its user's delete starts with no memberships.
"""

from __future__ import annotations

import random
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests import entra as bodies
from tests.reliability.conftest import StartGunicorn
from tests.reliability.integrity import (
    Entra,
    Expected,
    dangling,
    directory_check,
    ldap_problems,
    scim_problems,
)
from tests.reliability.model import USER_STEMS, spelled
from tests.reliability.support import Gunicorn, admin
from tests.slapd_instance import SlapdInstance

ENV = {"LDAP_TIMEOUT": "1.0", "LDAP_CONNECT_TIMEOUT": "0.5", "LDAP_POOL_WAIT": "1",
       "SCIM_RETRY_AFTER": "1"}
USERS = 24
BURST = 3.5  # seconds of load; the fault comes after FAULT_AT
FAULT_AT = 0.8


@dataclass
class Stack:
    server: Gunicorn
    instance: SlapdInstance
    entra: Entra
    want: Expected = field(default_factory=Expected)
    names: dict[str, str] = field(default_factory=dict)  # id → userName now
    core: list[str] = field(default_factory=list)  # groups holding every user
    late: list[str] = field(default_factory=list)  # groups the burst adds members to
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, problem: str) -> None:
        with self.lock:
            self.unexpected.append(problem)


def _stack(instance: SlapdInstance, gunicorn: StartGunicorn) -> Stack:
    server = gunicorn({**instance.env, **ENV}, workers=3, threads=4)
    stack = Stack(server, instance, Entra(server, deadline=60))
    ids = []
    for i in range(USERS):
        name = spelled(USER_STEMS[i % len(USER_STEMS)], i)
        reply, _ = stack.entra.send("POST", "/Users", bodies.minimal_user(name))
        assert reply.status == 201, reply.body
        ids.append(reply.body["id"])
        stack.names[reply.body["id"]] = name
        stack.want.users[reply.body["id"]] = {"userName": name, "manager": None}
    for i in range(1, USERS, 2):  # every odd user is managed by the one before
        reply, _ = stack.entra.send("PATCH", f"/Users/{ids[i]}", bodies.patch(
            {"op": "Replace", "path": f"{bodies.ENTERPRISE}:manager", "value": ids[i - 1]}))
        assert reply.status == 200, reply.body
        stack.want.users[ids[i]]["manager"] = ids[i - 1]
    for name in ("Kern Ä", "Kern B", "Kern C", "Spät 0", "Spät 1", "Spät 2"):
        members = ids if name.startswith("Kern") else None
        reply, _ = stack.entra.send("POST", "/Groups", bodies.group(name, members))
        assert reply.status == 201, reply.body
        gid = reply.body["id"]
        (stack.core if members else stack.late).append(gid)
        stack.want.groups[gid] = name
        stack.want.members[gid] = set(members or [])
    return stack


def _fault(instance: SlapdInstance, kind: str) -> Callable[[], None]:
    def kill() -> None:
        time.sleep(FAULT_AT)
        instance.kill()
        time.sleep(0.6)
        instance.start(instance._folder(), instance.port, instance.nosync)

    def stop() -> None:
        time.sleep(FAULT_AT)
        instance.pause()
        try:
            time.sleep(2.0)  # twice LDAP_TIMEOUT: requests in flight time out
        finally:
            instance.resume()

    return {"kill": kill, "stop": stop, "none": lambda: None}[kind]


def _run(jobs: list[Callable[[threading.Event], None]], fault: Callable[[], None]) -> None:
    """The jobs in threads until BURST seconds have passed (each finishes, with its
    retries, the request it is sending), the fault in the main thread meanwhile."""
    stop = threading.Event()
    threads = [threading.Thread(target=job, args=(stop,), daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    fault()
    time.sleep(max(0.0, BURST - (time.monotonic() - started)))
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a client thread hung"


def _adder(stack: Stack, pairs: list[tuple[str, str]], doomed: set[str]) -> Callable[..., None]:
    """Adds each (group, user) pair in turn: 204 (or 400/404 for a user being deleted)."""
    def job(stop: threading.Event) -> None:
        for gid, uid in pairs:
            if stop.is_set():
                return
            reply, _ = stack.entra.send("PATCH", f"/Groups/{gid}", bodies.patch(
                {"op": "Add", "path": "members", "value": [{"$ref": None, "value": uid}]}))
            if reply.status == 204:
                with stack.lock:
                    stack.want.members[gid].add(uid)
            elif not (uid in doomed and reply.status in (400, 404)):
                stack.note(f"add {stack.names[uid]!r} to {gid}: {reply.status} {reply.body}")
    return job


def _settle(stack: Stack, deleted: set[str], kind: str) -> list[str]:
    """Deleted users out of the model; after a fault, ``directory check --repair``; the
    dangling values found before it (for the failure message). Without a fault there is
    no repair: the protocol alone must leave no dangling value."""
    for uid in deleted:
        stack.want.users.pop(uid, None)
        for members in stack.want.members.values():
            members.discard(uid)
    for user in stack.want.users.values():
        if user["manager"] in deleted:
            user["manager"] = None
    conn = admin(stack.instance.env)
    base = stack.instance.env["LDAP_BASE_DN"]
    before = dangling(conn, base)
    conn.unbind()
    print(f"{kind}: {len(before)} dangling values before any repair: {before}")
    if kind == "none":
        return before
    result = directory_check(stack.instance.env, repair=True)
    assert result.returncode in (0, 1), (
        f"directory check --repair exited {result.returncode}: {result.stderr[-1500:]}\n"
        f"dangling before it: {before}")
    again = directory_check(stack.instance.env, repair=False)
    assert again.returncode == 0, (f"drift left after --repair:\n{again.stdout[-3000:]}"
                                   f"\n--repair said:\n{result.stdout[-3000:]}")
    return before


def _verify(stack: Stack, before: list[str], kind: str) -> None:
    conn = admin(stack.instance.env)
    base = stack.instance.env["LDAP_BASE_DN"]
    try:
        assert stack.unexpected == [], stack.unexpected[:10]
        when = "after the races (no repair)" if kind == "none" else "after --repair"
        assert dangling(conn, base) == [], f"{when}; before any repair: {before}"
        problems = ldap_problems(conn, base, stack.want)
        assert problems == [], "\n".join([*problems, f"dangling before any repair: {before}"])
        problems = scim_problems(stack.entra, stack.want)
        assert problems == [], "\n".join(problems)
    finally:
        conn.unbind()
    statuses = {f.status for f in stack.entra.failures}
    assert statuses <= {503}, [f for f in stack.entra.failures if f.status != 503][:5]
    assert kind == "none" or 503 in statuses, "the fault did not reach any request"


def _next_name(name: str, rng: random.Random, counter: list[int]) -> str:
    """Case-only, NFC↔NFD, or a new name (kept unique by ``counter``)."""
    roll = rng.random()
    if roll < 0.35:
        return name.swapcase()
    nfd = unicodedata.normalize("NFD", name)
    if roll < 0.7 and nfd != name:
        return nfd
    if roll < 0.7 and unicodedata.normalize("NFC", name) != name:
        return unicodedata.normalize("NFC", name)
    counter[0] += 1
    return spelled(rng.choice(USER_STEMS), 1000 + counter[0])


def _together(calls: list[Callable[[], Any]]) -> list[Any]:
    """The calls in threads released at the same instant (Entra's parallel requests)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def _member_patch(stack: Stack, op: str, gid: str, uid: str) -> Callable[[], Any]:
    return lambda: stack.entra.send("PATCH", f"/Groups/{gid}", bodies.patch(
        {"op": op, "path": "members", "value": [{"$ref": None, "value": uid}]}))[0]


def _manager_patch(stack: Stack, uid: str, boss: str) -> Callable[[], Any]:
    return lambda: stack.entra.send("PATCH", f"/Users/{uid}", bodies.patch(
        {"op": "Replace", "path": f"{bodies.ENTERPRISE}:manager", "value": boss}))[0]


@pytest.mark.parametrize("kind", ["none", "kill", "stop"])
def test_renames_racing_member_changes_survive_a_slapd_fault(
        own_slapd, own_ldap, gunicorn: StartGunicorn, kind: str):
    """Each round renames a user (case-only, NFC↔NFD or new) while, at the same instant,
    it is added to or removed from a group and made another user's manager; a fifth
    thread renames the groups every user is in."""
    stack = _stack(own_slapd, gunicorn)
    users = list(stack.names)
    rng = random.Random(15)
    counter = [0]
    lock = threading.Lock()

    def racer(owned: list[str]) -> Callable[[threading.Event], None]:
        def job(stop: threading.Event) -> None:
            while not stop.is_set():
                for i, uid in enumerate(owned):
                    other = owned[(i + 1) % len(owned)]
                    with lock:
                        new = _next_name(stack.names[uid], rng, counter)
                        gid = rng.choice(stack.late)
                        op = "Remove" if uid in stack.want.members[gid] else "Add"
                    rename = lambda uid=uid, new=new: stack.entra.send(  # noqa: E731
                        "PATCH", f"/Users/{uid}",
                        bodies.patch({"op": "Replace", "path": "userName", "value": new}))[0]
                    renamed, member, managed = _together([
                        rename, _member_patch(stack, op, gid, uid),
                        _manager_patch(stack, other, uid)])
                    with lock:
                        if renamed.status == 200:
                            stack.names[uid] = new
                            stack.want.users[uid]["userName"] = new
                        else:
                            stack.note(f"rename to {new!r}: {renamed.status} {renamed.body}")
                        if member.status == 204:
                            (stack.want.members[gid].add if op == "Add"
                             else stack.want.members[gid].discard)(uid)
                        else:
                            stack.note(f"{op} {new!r}: {member.status} {member.body}")
                        if managed.status == 200:
                            stack.want.users[other]["manager"] = uid
                        else:
                            stack.note(f"manager {new!r}: {managed.status} {managed.body}")
                    if stop.is_set():
                        return
        return job

    def group_renamer(stop: threading.Event) -> None:
        while not stop.is_set():
            for gid in stack.core:
                with lock:
                    new = _next_name(stack.want.groups[gid], rng, counter).replace(
                        "@example.org", "").replace("@EXAMPLE.ORG", "")
                reply, _ = stack.entra.send("PATCH", f"/Groups/{gid}", bodies.patch(
                    {"op": "Replace", "path": "displayName", "value": new}))
                with lock:
                    if reply.status in (200, 204):
                        stack.want.groups[gid] = new
                    else:
                        stack.note(f"group rename to {new!r}: {reply.status} {reply.body}")

    jobs = [racer(users[i::4]) for i in range(4)]
    jobs.append(group_renamer)
    _run(jobs, _fault(own_slapd, kind))
    before = _settle(stack, set(), kind)
    _verify(stack, before, kind)


@pytest.mark.parametrize("kind", ["none", "kill", "stop"])
def test_deletes_racing_member_adds_and_manager_sets_survive_a_slapd_fault(
        own_slapd, own_ldap, gunicorn: StartGunicorn, kind: str):
    """Each doomed user is deleted while, at the same instant, it is added to every late
    group and made a survivor's manager; afterwards its userName is created again."""
    stack = _stack(own_slapd, gunicorn)
    users = list(stack.names)
    rng = random.Random(16)
    doomed = rng.sample(users, USERS // 2)
    survivors = [u for u in users if u not in doomed]
    deleted: set[str] = set()
    lock = threading.Lock()

    def racer(owned: list[str]) -> Callable[[threading.Event], None]:
        def job(stop: threading.Event) -> None:
            for uid in owned:  # not stopped by BURST: every doomed user gets deleted
                boss_of = rng.choice(survivors)
                delete = lambda uid=uid: stack.entra.send("DELETE", f"/Users/{uid}")  # noqa: E731
                (gone, retried), *adds, managed = _together([
                    delete, *(_member_patch(stack, "Add", g, uid) for g in stack.late),
                    _manager_patch(stack, boss_of, uid)])
                with lock:
                    if gone.status == 204 or (retried and gone.status == 404):
                        deleted.add(uid)
                    else:
                        stack.note(f"delete {stack.names[uid]!r}: {gone.status} {gone.body}")
                    for gid, reply in zip(stack.late, adds, strict=True):
                        if reply.status == 204:
                            stack.want.members[gid].add(uid)
                        elif reply.status not in (400, 404):
                            stack.note(f"add {stack.names[uid]!r}: {reply.status} {reply.body}")
                    if managed.status == 200:
                        stack.want.users[boss_of]["manager"] = uid
                    elif managed.status != 400:
                        stack.note(f"manager: {managed.status} {managed.body}")
                time.sleep(0.3)  # spread over the fault
        return job

    jobs = [racer(doomed[i::3]) for i in range(3)]
    _run(jobs, _fault(own_slapd, kind))
    assert deleted == set(doomed), stack.unexpected[:5]
    before = _settle(stack, deleted, kind)
    for uid in sorted(deleted):  # the same userNames again: they start with nothing
        name = stack.names[uid]
        reply, _ = stack.entra.send("POST", "/Users", bodies.minimal_user(name))
        assert reply.status == 201, (name, reply.status, reply.body)
        stack.want.users[reply.body["id"]] = {"userName": name, "manager": None}
    _verify(stack, before, kind)
