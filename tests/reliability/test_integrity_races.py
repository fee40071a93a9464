"""Races of issue 15 that tests/reliability/test_reference_races.py does not play: a
member removal racing the member's rename, and a user PATCH that does not touch the
manager racing the manager's rename or delete. Each as Entra sends them (parallel
requests on different objects), through gunicorn with several workers, with no fault:
every answer as for a sequential run, and afterwards no ``member``/``manager`` value naming
a missing entry and exactly the memberships and managers the acknowledged requests
imply — read back from LDAP (each value resolved by slapd) and through SCIM.

A race needs the requests to overlap at the right moment, so each test runs ROUNDS
rounds of VICTIMS victims in parallel; a defect that shows in one trial of a few dozen
fails the test. ``SCIM_RACE_ROUNDS`` raises the number of rounds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from tests import entra as bodies
from tests.reliability.integrity import Entra, Expected, ldap_problems, scim_problems
from tests.reliability.support import Gunicorn, Reply
from tests.reliability.test_races import together

ROUNDS = int(os.environ.get("SCIM_RACE_ROUNDS", "12"))
VICTIMS = 4


@pytest.fixture
def server(shared_gunicorn: Gunicorn, ldap) -> Gunicorn:
    """The module's gunicorn, after ``ldap`` emptied the tree."""
    return shared_gunicorn


class Run:
    """Requests through :class:`Entra` and the model of what their answers imply."""

    def __init__(self, server: Gunicorn) -> None:
        self.entra = Entra(server)
        self.want = Expected()

    def user(self, name: str, manager: str | None = None) -> str:
        body: dict[str, Any] = bodies.minimal_user(name)
        if manager:
            body[bodies.ENTERPRISE] = {"manager": {"value": manager}}
        reply, _ = self.entra.send("POST", "/Users", body)
        assert reply.status == 201, reply.body
        self.want.users[reply.body["id"]] = {"userName": name, "manager": manager}
        return str(reply.body["id"])

    def group(self, name: str, members: list[str]) -> str:
        reply, _ = self.entra.send("POST", "/Groups", bodies.group(name, members))
        assert reply.status == 201, reply.body
        self.want.groups[reply.body["id"]] = name
        self.want.members[reply.body["id"]] = set(members)
        return str(reply.body["id"])

    def rename(self, uid: str, name: str) -> Callable[[], Reply]:
        return lambda: self.entra.send("PATCH", f"/Users/{uid}", bodies.patch(
            {"op": "Replace", "path": "userName", "value": name}))[0]

    def members(self, gid: str, op: str, uid: str) -> Callable[[], Reply]:
        return lambda: self.entra.send("PATCH", f"/Groups/{gid}", bodies.patch(
            {"op": op, "path": "members", "value": [{"$ref": None, "value": uid}]}))[0]

    def manager(self, uid: str, boss: str) -> Callable[[], Reply]:
        return lambda: self.entra.send("PATCH", f"/Users/{uid}", bodies.patch(
            {"op": "Replace", "path": f"{bodies.ENTERPRISE}:manager", "value": boss}))[0]

    def display(self, uid: str, value: str) -> Callable[[], Reply]:
        return lambda: self.entra.send("PATCH", f"/Users/{uid}", bodies.patch(
            {"op": "Replace", "path": "displayName", "value": value}))[0]

    def delete(self, uid: str) -> Callable[[], Reply]:
        return lambda: self.entra.send("DELETE", f"/Users/{uid}")[0]

    def deleted(self, uid: str) -> None:
        self.want.users.pop(uid)
        for members in self.want.members.values():
            members.discard(uid)
        for user in self.want.users.values():
            if user.get("manager") == uid:
                user["manager"] = None

    def verify(self, ldap, base_dn: str, answers: list[str]) -> None:
        problems = answers + ldap_problems(ldap, base_dn, self.want)
        problems += [f"{f.status} to {f.method} {f.path}: {f.detail}"
                     for f in self.entra.failures if f.status != 503]
        assert problems == [], "\n".join(problems[:30])
        problems = scim_problems(self.entra, self.want)
        assert problems == [], "\n".join(problems[:30])


def _new_name(t: int, i: int) -> str:
    """Every fourth rename is case-only, the others are to a new name (NFD spelled)."""
    return f"V{t}-{i}@X.ORG" if (t + i) % 4 == 0 else f"Jose\u0301-{t}-{i}@x.org"


def _expect(answers: list[str], what: str, reply: Reply, *statuses: int) -> bool:
    if reply.status in statuses:
        return True
    answers.append(f"{what}: {reply.status} {reply.body}")
    return False


def test_member_removals_racing_the_members_renames_are_not_lost(server, ldap, base_dn):
    run, answers = Run(server), []
    for t in range(2 * ROUNDS):  # the window is narrow: about 1 trial in 25 hits it
        victims = [run.user(f"v{t}-{i}@x.org") for i in range(VICTIMS)]
        gid = run.group(f"G{t}", [*victims, run.user(f"o{t}@x.org")])
        jobs = []
        for i, uid in enumerate(victims):
            jobs += [run.rename(uid, _new_name(t, i)), run.members(gid, "Remove", uid)]
        replies = together(jobs)
        for i, uid in enumerate(victims):
            if _expect(answers, f"rename {uid}", replies[2 * i], 200):
                run.want.users[uid]["userName"] = _new_name(t, i)
            if _expect(answers, f"remove {uid}", replies[2 * i + 1], 204):
                run.want.members[gid].discard(uid)
    run.verify(ldap, base_dn, answers)


@pytest.mark.parametrize("fate", ["rename", "delete"])
def test_user_patches_racing_their_managers_rename_or_delete(server, ldap, base_dn, fate):
    """A displayName PATCH and a manager set, each racing the rename or delete of the
    (old or new) manager: both answer as alone; the manager is kept, follows the
    rename, or is gone with the deleted user."""
    run, answers = Run(server), []
    for t in range(ROUNDS):
        bosses = [run.user(f"b{t}-{i}@x.org") for i in range(VICTIMS)]
        staff = [run.user(f"s{t}-{i}@x.org", manager=b) for i, b in enumerate(bosses)]
        newbies = [run.user(f"n{t}-{i}@x.org") for i in range(VICTIMS)]
        jobs = []
        for i, (boss, uid, newbie) in enumerate(zip(bosses, staff, newbies, strict=True)):
            change = run.rename(boss, _new_name(t, i)) if fate == "rename" else run.delete(boss)
            jobs += [change, run.display(uid, f"Staff {t}-{i}"), run.manager(newbie, boss)]
        replies = together(jobs)
        for i, (boss, uid, newbie) in enumerate(zip(bosses, staff, newbies, strict=True)):
            changed, shown, managed = replies[i * 3:(i + 1) * 3]
            if fate == "rename":
                if _expect(answers, f"rename {boss}", changed, 200):
                    run.want.users[boss]["userName"] = _new_name(t, i)
                if _expect(answers, f"manager of {newbie}", managed, 200):
                    run.want.users[newbie]["manager"] = boss
            else:
                _expect(answers, f"delete {boss}", changed, 204)
                if _expect(answers, f"manager of {newbie}", managed, 200, 400):
                    run.want.users[newbie]["manager"] = boss
                run.deleted(boss)
            if _expect(answers, f"displayName of {uid}", shown, 200):
                run.want.users[uid]["displayName"] = f"Staff {t}-{i}"
    run.verify(ldap, base_dn, answers)
