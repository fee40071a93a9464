"""Soak: the rename + member load that crashed slapd in issue 15, for minutes (run by hand).

    .venv/bin/python -m bench.slapd_soak                      # plain LDAP, 3 minutes
    .venv/bin/python -m bench.slapd_soak --via scim --minutes 3 --workers 4
    .venv/bin/python -m bench.slapd_soak --multival "member 100,20"   # the old config: dies

It starts a private slapd (scripts/slapd, shipped cn=config; ``--multival`` sets
olcDbMultival offline first) with 3 groups of 150 members whose users are named
``José.Müller.N``, and drives, until the time is up or slapd dies:

* ``--via ldap``: tests/member_load.py — modrdn of members between the NFC and NFD spelling
  of their uid, Permissive Modify re-adds of members in the other spelling, churn of extra
  members; afterwards the groups must hold exactly the expected members (read back, compared
  with slapd's matching rule) and no value may name a missing entry;
* ``--via scim``: the bridge under gunicorn over HTTP — PATCH userName between the NFC and NFD
  spelling, PATCH add/remove of extra members; afterwards the LDAP member counts and dangling
  values are printed (the bridge's rename protocol is issue 15's second bullet; this soak
  is about slapd staying up).

Every ``--report`` seconds it prints operations done and whether slapd is alive; exit status 1
when slapd died.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import tempfile
import threading
import time
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

from bench.stack import Gunicorn, start_slapd
from tests.member_load import Layout, Load, membership_problems, opened, seed
from tests.slapd_instance import SlapdInstance

TOKEN = "bench-token-" + "x" * 32
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def watch(slapd: SlapdInstance, pid: int | None, seconds: float, report: float,
          counts: Counter[str], stop: threading.Event) -> float | None:
    """Print progress until ``seconds`` pass or slapd dies; seconds survived when it died."""
    start = time.monotonic()
    next_report = start + report
    while (now := time.monotonic()) - start < seconds:
        if slapd.pid != pid:
            stop.set()
            return now - start
        if now >= next_report:
            print(f"  {now - start:6.0f} s  slapd alive  {dict(counts)}", flush=True)
            next_report += report
        time.sleep(0.2)
    stop.set()
    return None


# --- plain LDAP --------------------------------------------------------------------------


def soak_ldap(slapd: SlapdInstance, seconds: float, report: float) -> int:
    layout = Layout(slapd.env["LDAP_BASE_DN"])
    with opened(slapd.env) as conn:
        seed(conn, layout)
    load = Load(slapd.env, layout)
    stop = threading.Event()
    runner = threading.Thread(target=load.run, args=(seconds,))
    runner.start()
    died = watch(slapd, slapd.pid, seconds, report, load.counts, stop)
    runner.join()
    print(f"operations: {dict(load.counts)}; errors: {dict(load.errors) or 'none'}")
    if died is not None:
        print(f"slapd DIED after {died:.0f} s")
        return 1
    with opened(slapd.env) as conn:
        problems = membership_problems(conn, load)
    print(f"slapd alive after {seconds:.0f} s; memberships "
          + ("exact" if not problems else "WRONG:\n  " + "\n  ".join(problems)))
    return 1 if problems else 0


# --- the bridge over HTTP ------------------------------------------------------------------


class Scim:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {TOKEN}",
                        "Content-Type": "application/scim+json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        self.conn.request(method, "/scim/v2" + path,
                          body=json.dumps(body) if body is not None else None,
                          headers=self.headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw else None)


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def soak_scim(slapd: SlapdInstance, seconds: float, report: float, workers: int) -> int:
    groups, members, extras = 3, 150, 24
    server = Gunicorn({**slapd.env, "SCIM_BEARER_TOKEN": TOKEN}, workers, 4)
    try:
        client = Scim(server.port)

        def create(name: str) -> str:
            status, body = client.call("POST", "/Users", {"schemas": [USER], "userName": name,
                                                          "active": True})
            if status != 201:
                raise RuntimeError(f"POST /Users {name}: {status} {body}")
            return str(body["id"])

        users = [create(f"José.Müller.{i}@example.org") for i in range(groups * members)]
        extra = [create(f"Zoë.Ægir.{i}@example.org") for i in range(groups * extras)]
        group_ids = []
        for g in range(groups):
            body = {"schemas": [GROUP], "displayName": f"soak-{g}",
                    "members": [{"value": u} for u in users[g * members:(g + 1) * members]]}
            status, created = client.call("POST", "/Groups", body)
            if status != 201:
                raise RuntimeError(f"POST /Groups: {status} {created}")
            group_ids.append(str(created["id"]))
        print(f"seeded {len(users) + len(extra)} users, {groups} groups of {members}")

        counts: Counter[str] = Counter()
        lock = threading.Lock()
        stop = threading.Event()

        def count(kind: str, status: int) -> None:
            with lock:
                counts[kind if status in (200, 204) else f"{kind} {status}"] += 1

        def renamer(seed_value: int) -> None:
            rng, scim = random.Random(seed_value), Scim(server.port)
            while not stop.is_set():
                i = rng.randrange(len(users))
                form = "NFD" if rng.random() < 0.5 else "NFC"
                name = unicodedata.normalize(form, f"José.Müller.{i}@example.org")
                try:
                    status, _ = scim.call("PATCH", f"/Users/{users[i]}", patch(
                        {"op": "Replace", "path": "userName", "value": name}))
                except OSError:
                    status = 0
                count("rename", status)

        def member_worker(seed_value: int) -> None:
            rng, scim = random.Random(seed_value), Scim(server.port)
            while not stop.is_set():
                g = rng.randrange(groups)
                user = extra[g * extras + rng.randrange(extras)]
                if rng.random() < 0.5:
                    op = {"op": "Add", "path": "members", "value": [{"value": user}]}
                    kind = "member add"
                else:
                    op = {"op": "Remove", "path": f'members[value eq "{user}"]'}
                    kind = "member remove"
                try:
                    status, _ = scim.call("PATCH", f"/Groups/{group_ids[g]}", patch(op))
                except OSError:
                    status = 0
                count(kind, status)

        threads = [threading.Thread(target=renamer, args=(n,)) for n in range(3)]
        threads += [threading.Thread(target=member_worker, args=(100 + n,)) for n in range(3)]
        for thread in threads:
            thread.start()
        died = watch(slapd, slapd.pid, seconds, report, counts, stop)
        for thread in threads:
            thread.join()
    finally:
        server.stop()
    print(f"operations: {dict(counts)}")
    if died is not None:
        print(f"slapd DIED after {died:.0f} s")
        return 1
    print(f"slapd alive after {seconds:.0f} s")
    with opened(slapd.env) as conn:
        for g in range(groups):
            conn.search(f"ou=Groups,{slapd.env['LDAP_BASE_DN']}", f"(cn=soak-{g})",
                        attributes=["member"])
            values = [str(v) for v in conn.entries[0]["member"].values]
            dangling = sum(1 for v in values if not conn.search(v, "(objectClass=*)", "BASE",
                                                                 attributes=["1.1"]))
            print(f"  group soak-{g}: {len(values)} member values, {dangling} dangling")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--via", choices=("ldap", "scim"), default="ldap")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--report", type=float, default=30.0, help="seconds between lines")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (--via scim)")
    parser.add_argument("--multival", help='olcDbMultival to run with, e.g. "member 100,20"')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slapd-soak-") as tmp:
        slapd = start_slapd(Path(tmp) / "slapd", nosync=True, multival=args.multival)
        try:
            print(f"slapd pid {slapd.pid}, olcDbMultival: {args.multival or 'none (shipped)'}; "
                  f"{args.minutes:g} min via {args.via}", flush=True)
            seconds = args.minutes * 60
            if args.via == "ldap":
                return soak_ldap(slapd, seconds, args.report)
            return soak_scim(slapd, seconds, args.report, args.workers)
        finally:
            slapd.stop()


if __name__ == "__main__":
    sys.exit(main())
