"""Races across processes: gunicorn with three workers on the session slapd."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from ldap3 import SUBTREE

from tests import entra
from tests.reliability.conftest import StartGunicorn
from tests.reliability.support import (
    Gunicorn,
    Reply,
    call,
    is_scim_error,
    scim_path,
    seed_group,
    seed_user,
    snapshot,
)

WORKERS = 3


@pytest.fixture
def server(slapd, ldap, gunicorn: StartGunicorn) -> Gunicorn:
    return gunicorn({**slapd.env, "LDAP_TIMEOUT": "5"}, workers=WORKERS, threads=4)


def together(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Run the jobs in threads released at the same instant; their results in order."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = jobs[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_same_username_in_different_case_is_created_once(server, ldap, base_dn):
    spellings = ["Race.User@Example.org", "race.user@example.org", "RACE.USER@EXAMPLE.ORG",
                 "rAcE.uSeR@eXaMpLe.OrG"]
    for round_ in range(5):
        names = [s.replace("@", f"{round_}@") for s in spellings * 3]
        replies: list[Reply] = together([
            lambda n=n: call(server, "POST", scim_path("/Users"), entra.minimal_user(n))
            for n in names])
        statuses = Counter(r.status for r in replies)
        assert statuses == {201: 1, 409: len(names) - 1}, statuses
        assert all(is_scim_error(r, 409) and r.body["scimType"] == "uniqueness"
                   for r in replies if r.status == 409)
        ldap.search(f"ou=People,{base_dn}", f"(uid=race.user{round_}@example.org)", SUBTREE)
        assert len(ldap.response) == 1


def test_concurrent_member_patches_give_the_exact_final_set(server, ldap, base_dn):
    users = [seed_user(server, f"p{i}@x.org") for i in range(36)]
    initial, added, churn = users[:12], users[12:24], users[24:36]
    big = seed_group(server, "Big", initial)
    empty = seed_group(server, "Empty")
    flip = seed_group(server, "Flip")

    def patch(gid: str, op: str, ids: list[str]) -> int:
        return call(server, "PATCH", scim_path(f"/Groups/{gid}"), entra.patch(
            {"op": op, "path": "members", "value": [{"value": i} for i in ids]})).status

    def worker(i: int) -> list[int]:
        # Big: add one new member, remove one initial member; Empty: in then out again
        # (its placeholder comes and goes under everyone's feet); Flip: keep even ones.
        out = [patch(big, "Add", [added[i]]), patch(big, "Remove", [initial[i]])]
        out += [patch(empty, "Add", [churn[i]]), patch(empty, "Remove", [churn[i]])]
        out.append(patch(flip, "Add", [churn[i]]))
        if i % 2:
            out.append(patch(flip, "Remove", [churn[i]]))
        return out

    for statuses in together([lambda i=i: worker(i) for i in range(12)]):
        assert set(statuses) == {204}, statuses
    shot = snapshot(ldap, base_dn)
    assert shot.violations() == []
    ids = {dn: u["entryuuid"][0] for dn, u in shot.users.items()}
    by_name = {g["cn"][0]: {ids.get(m) for m in shot.members(dn)}
               for dn, g in shot.groups.items()}
    assert by_name["Big"] == set(added)
    assert by_name["Empty"] == {None}  # only the placeholder, which is no user
    assert by_name["Flip"] == set(churn[0::2])
    for gid, expected in ((big, set(added)), (empty, set()), (flip, set(churn[0::2]))):
        body = call(server, "GET", scim_path(f"/Groups/{gid}")).body
        assert {m["value"] for m in body.get("members", [])} == expected


def test_stale_if_match_is_412_and_one_of_many_wins(server, ldap):
    uid = seed_user(server, "etag@x.org")
    first = call(server, "GET", scim_path(f"/Users/{uid}"))
    etag = first.headers["etag"]
    ok = call(server, "PATCH", scim_path(f"/Users/{uid}"),
              entra.patch({"op": "Replace", "path": "displayName", "value": "one"}),
              headers={"If-Match": etag})
    assert ok.status == 200 and ok.headers["etag"] != etag
    stale = call(server, "PATCH", scim_path(f"/Users/{uid}"),
                 entra.patch({"op": "Replace", "path": "displayName", "value": "two"}),
                 headers={"If-Match": etag})
    assert is_scim_error(stale, 412)
    assert call(server, "GET", scim_path(f"/Users/{uid}")).body["displayName"] == "one"

    current = ok.headers["etag"]
    replies = together([lambda i=i: call(
        server, "PATCH", scim_path(f"/Users/{uid}"),
        entra.patch({"op": "Replace", "path": "displayName", "value": f"racer{i}"}),
        headers={"If-Match": current}) for i in range(9)])
    assert Counter(r.status for r in replies) == {200: 1, 412: 8}
    winner = next(r for r in replies if r.status == 200).body["displayName"]
    assert call(server, "GET", scim_path(f"/Users/{uid}")).body["displayName"] == winner

    gid = seed_group(server, "Versioned")
    version = call(server, "GET", scim_path(f"/Groups/{gid}")).headers["etag"]
    members = [seed_user(server, f"v{i}@x.org") for i in range(6)]
    replies = together([lambda m=m: call(
        server, "PATCH", scim_path(f"/Groups/{gid}"),
        entra.patch({"op": "Add", "path": "members", "value": [{"value": m}]}),
        headers={"If-Match": version}) for m in members])
    assert Counter(r.status for r in replies) == {204: 1, 412: 5}
    body = call(server, "GET", scim_path(f"/Groups/{gid}")).body
    assert len(body["members"]) == 1

