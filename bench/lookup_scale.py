"""Entra's `userName eq` lookup through gunicorn as one directory grows (run by hand).

    .venv/bin/python -m bench.lookup_scale --sizes 1000,10000,100000 [--lookups 3000]

Each size gets its own private slapd (nosync: seeding speed only; lookups do not write),
seeded with ldap3 (Entra-shaped entries; one group per 100 users, every user in one, so
that each answer carries its groups and the cost of finding them is measured as the
number of groups grows), and its own gunicorn with the production config.
Then one client sends ``--lookups`` rounds of sequential `GET /Users?filter=userName eq
"…"`: per round and size, one for a random existing user (a hit: the user and its
groups) and one for a name not there (a miss: what Entra's first cycle asks before each
create), sizes in a shuffled order so that the machine's noise falls on every size alike.
Prints p50/p95/p99 and requests/s per size and kind, and each size's p99 over the first
size's (the issue's target: within 1.2× from 1k to 100k); JSON to
bench/results/lookup_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from ldap3 import Connection, Server

from bench.entra_workload import TOKEN, ScimClient, _eq
from bench.stack import ROOT, Gunicorn, start_slapd


def grow(env: dict[str, str], start: int, stop: int) -> None:
    host, port = env["LDAP_URL"].removeprefix("ldap://").split(":")
    conn = Connection(Server(host, int(port)), env["LDAP_BIND_DN"], env["LDAP_BIND_PASSWORD"],
                      auto_bind=True, raise_exceptions=True)
    people = f"ou=People,{env['LDAP_BASE_DN']}"
    for i in range(start, stop):
        name = f"user{i:07d}@bench.example"
        conn.add(f"uid={name},{people}", [
            "top", "person", "organizationalPerson", "inetOrgPerson", "scimResource"], {
            "uid": name, "scimExternalId": f"user{i:07d}", "scimActive": "TRUE",
            "displayName": f"User {i}", "title": "Engineer", "mail": name,
            "cn": f"User {i}", "sn": f"user{i:07d}", "givenName": "Bench",
            "employeeNumber": str(i), "departmentNumber": "R&D"})
    conn.unbind()


def group(env: dict[str, str], users: int) -> None:
    """One group per 100 users; user i in group i mod the number of groups."""
    host, port = env["LDAP_URL"].removeprefix("ldap://").split(":")
    conn = Connection(Server(host, int(port)), env["LDAP_BIND_DN"], env["LDAP_BIND_PASSWORD"],
                      auto_bind=True, raise_exceptions=True)
    base = env["LDAP_BASE_DN"]
    n = max(1, users // 100)
    for g in range(n):
        conn.add(f"cn=Group {g:05d},ou=Groups,{base}", ["top", "groupOfNames", "scimResource"],
                 {"cn": f"Group {g:05d}", "member": [
                     f"uid=user{i:07d}@bench.example,ou=People,{base}"
                     for i in range(g, users, n)]})
    conn.unbind()


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--lookups", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers per size "
                        "(4: the production default on 2 cores)")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, ExitStack() as stack:
        clients = {}
        for size in sizes:
            slapd = start_slapd(Path(tmp) / f"slapd{size}", nosync=True)
            stack.callback(slapd.stop)
            started = time.perf_counter()
            grow(slapd.env, 0, size)
            group(slapd.env, size)
            print(f"seeded {size} users and {max(1, size // 100)} groups in "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
            server = Gunicorn({**slapd.env, "SCIM_BEARER_TOKEN": TOKEN}, args.workers, 4)
            stack.callback(server.stop)
            clients[size] = ScimClient(server.port)
        samples: dict[tuple[int, str], list[float]] = {
            (size, kind): [] for size in sizes for kind in ("hit", "miss")}
        for round_ in range(args.lookups + 200):  # the first 200 rounds warm the caches
            order = [(size, kind) for size in sizes for kind in ("hit", "miss")]
            rng.shuffle(order)
            for size, kind in order:
                name = (f"user{rng.randrange(size):07d}@bench.example" if kind == "hit"
                        else f"new{round_:07d}@bench.example")
                t = time.perf_counter()
                found = clients[size].call("GET", f"/Users?filter={_eq('userName', name)}")
                if round_ >= 200:
                    samples[size, kind].append(time.perf_counter() - t)
                if kind == "hit":
                    assert found["totalResults"] == 1, name
                    assert len(found["Resources"][0]["groups"]) == 1, name
                else:
                    assert found["totalResults"] == 0, name
    rows = []
    for kind in ("hit", "miss"):
        first = None
        for size in sizes:
            ordered = sorted(samples[size, kind])
            row = {"users": size, "kind": kind, "lookups": len(ordered),
                   "p50_ms": 1000 * statistics.median(ordered),
                   "p95_ms": 1000 * percentile(ordered, 0.95),
                   "p99_ms": 1000 * percentile(ordered, 0.99),
                   "req_per_s": len(ordered) / sum(ordered)}
            first = first or row
            rows.append(row)
            print(f"{size:>7} users, {kind:<4}: p50 {row['p50_ms']:.2f} ms  p95 "
                  f"{row['p95_ms']:.2f}  p99 {row['p99_ms']:.2f}  ({row['req_per_s']:.0f}/s; "
                  f"p99 / first size {row['p99_ms'] / first['p99_ms']:.2f})", flush=True)
    out = ROOT / "bench" / "results" / "lookup_scale.json"
    out.parent.mkdir(parents=True, exist_ok=True)  # git keeps no bench/results/
    out.write_text(json.dumps({"cores": os.cpu_count(), "results": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
