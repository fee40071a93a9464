"""``directory check`` at the scale of real tenants: time and peak memory (run by hand).

    nice -n 10 .venv/bin/python -m bench.directory_check --users 10000,100000

For each size it starts a private slapd (scripts/slapd in a temporary folder, nosync:
seeding speed only; the check itself only reads), seeds it with ldapadd — N Entra-shaped
users (every tenth has a manager), ``--groups`` groups of which ``--big`` hold
``--big-size`` members each (at most N) and the rest ``--small`` each — and plants drift
by hand: a member naming no entry in 20 small and 2 big groups, 10 managers naming no
entry, 5 users disabled without the ppolicy lock. Then, each in a fresh process (so its
peak resident memory is the check's alone, next to the app's baseline):

* the dry run (``check.run`` as the CLI calls it): wall time, LDAP operations, peak RSS
  (VmHWM) and the RSS after start-up, and whether it found exactly what was planted;
* the repair run (the same, with ``repair``), then a second dry run that must be clean.

Results: a table on stdout and bench/results/directory_check.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ldap3 import MODIFY_ADD, MODIFY_REPLACE

from bench.groups_scale import connect
from bench.stack import ROOT, start_slapd

RESULTS = ROOT / "bench" / "results" / "directory_check.json"
#: What the seeding plants, by kind (the check must find exactly this).
PLANTED = {"dangling-member": 22, "dangling-manager": 10, "disabled-not-locked": 5}


def name(i: int) -> str:
    return f"user{i:07d}@bench.example"


def ldif_users(base: str, n: int) -> Any:
    for i in range(n):
        manager = f"manager: uid={name(i // 10)},ou=People,{base}\n" if i % 10 == 9 else ""
        yield (f"dn: uid={name(i)},ou=People,{base}\nobjectClass: top\nobjectClass: person\n"
               "objectClass: organizationalPerson\nobjectClass: inetOrgPerson\n"
               f"objectClass: scimResource\nuid: {name(i)}\nscimExternalId: x{i:07d}\n"
               f"scimActive: TRUE\ndisplayName: User {i}\ncn: User {i}\nsn: user{i:07d}\n"
               f"givenName: Bench\nmail: {name(i)}\ntitle: Engineer\n"
               f"employeeNumber: {i}\n{manager}\n")


def ldif_groups(base: str, n: int, groups: int, big: int, big_size: int,
                small: int) -> Any:
    for g in range(groups):
        size = min(n, big_size) if g < big else min(n, small)
        start = (g * small) % n
        members = "".join(f"member: uid={name((start + k) % n)},ou=People,{base}\n"
                          for k in range(size))
        yield (f"dn: cn=Group {g:05d},ou=Groups,{base}\nobjectClass: top\n"
               f"objectClass: groupOfNames\nobjectClass: scimResource\n"
               f"cn: Group {g:05d}\n{members}\n")


def ldapadd(env: dict[str, str], records: Any) -> None:
    proc = subprocess.Popen([shutil.which("ldapadd") or "ldapadd", "-x", "-H", env["LDAP_URL"],
                             "-D", env["LDAP_BIND_DN"], "-w", env["LDAP_BIND_PASSWORD"]],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert proc.stdin is not None
    for record in records:
        proc.stdin.write(record.encode())
    proc.stdin.close()
    if proc.wait():
        raise RuntimeError("ldapadd failed")


def seed(env: dict[str, str], args: argparse.Namespace, n: int) -> dict[str, float]:
    base = env["LDAP_BASE_DN"]
    started = time.perf_counter()
    ldapadd(env, ldif_users(base, n))
    users_s = time.perf_counter() - started
    started = time.perf_counter()
    ldapadd(env, ldif_groups(base, n, args.groups, args.big, args.big_size, args.small))
    groups_s = time.perf_counter() - started
    conn = connect(env)
    people = f"ou=People,{base}"
    for g in [0, 1, *range(args.big, args.big + 20)]:
        conn.modify(f"cn=Group {g:05d},ou=Groups,{base}",
                    {"member": [(MODIFY_ADD, [f"uid=ghost{g}@bench.example,{people}"])]})
    for i in range(10):
        conn.modify(f"uid={name(i * 7 + 1)},{people}",
                    {"manager": [(MODIFY_REPLACE, [f"uid=gone{i}@bench.example,{people}"])]})
    for i in range(5):
        conn.modify(f"uid={name(i * 11 + 3)},{people}",
                    {"scimActive": [(MODIFY_REPLACE, ["FALSE"])]})
    conn.unbind()
    return {"users_s": round(users_s, 1), "groups_s": round(groups_s, 1)}


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(repair: bool) -> None:
    """One check in this process; prints its figures as JSON (environment: LDAP_*)."""
    from config import load_settings
    from directory.repository import Repository
    from scim.factory import create_app, default_tenant
    from scim.service import check

    settings = load_settings(dict(os.environ))
    app = create_app(settings)
    ext = app.extensions["scim_bridge"]
    with ext.pool.connection() as conn:
        repo = Repository(conn, default_tenant(settings))
        baseline = _status("VmRSS")
        started = time.perf_counter()
        report = check.run(repo, ext.mapping, repair=repair,
                           ppolicy_lock=settings.LDAP_PPOLICY_LOCK, audit=None)
        seconds = time.perf_counter() - started
    outcomes: dict[str, int] = {}
    for fix in report.fixes:
        outcomes[fix.outcome] = outcomes.get(fix.outcome, 0) + 1
    print(json.dumps({
        "seconds": round(seconds, 2), "ldap_ops": repo.ops, "baseline_kib": baseline,
        "peak_kib": _status("VmHWM"), "counts": report.scan.counts,
        "scanned": {"users": report.scan.users, "groups": report.scan.groups,
                    "member_values": report.scan.member_values},
        "fixes": outcomes}))


def measure(env: dict[str, str], repair: bool) -> dict[str, Any]:
    full = {**{k: v for k, v in os.environ.items() if not k.startswith(("LDAP_", "SCIM_"))},
            **env, "LDAP_TIMEOUT": "60", "LOG_LEVEL": "WARNING"}
    out = subprocess.run([sys.executable, "-m", "bench.directory_check", "--child",
                          *(["--repair"] if repair else [])], cwd=ROOT, env=full,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", default="10000", help="comma-separated user counts")
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--big", type=int, default=10, help="groups with --big-size members")
    parser.add_argument("--big-size", type=int, default=20000)
    parser.add_argument("--small", type=int, default=100, help="members of the other groups")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repair", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.repair)
        return 0
    rows = []
    for n in (int(s) for s in args.users.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            slapd = start_slapd(Path(tmp) / "slapd", nosync=True)
            try:
                seeded = seed(slapd.env, args, n)
                print(f"{n:,} users: seeded {seeded}", file=sys.stderr)
                dry = measure(slapd.env, repair=False)
                repaired = measure(slapd.env, repair=True)
                after = measure(slapd.env, repair=False)
            finally:
                slapd.stop()
        rows.append({"users": n, "seed": seeded, "dry": dry, "repair": repaired,
                     "after": after, "found_planted": dry["counts"] == PLANTED,
                     "clean_after": not after["counts"]})
    print("| users | groups | member values | dry run s | LDAP ops | peak RSS MiB "
          "(baseline) | repair run s | fixes | found = planted | clean after |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|---|---|")
    for r in rows:
        d = r["dry"]
        print(f"| {r['users']:,} | {d['scanned']['groups']:,} | "
              f"{d['scanned']['member_values']:,} | {d['seconds']} | {d['ldap_ops']:,} | "
              f"{d['peak_kib'] / 1024:.0f} ({d['baseline_kib'] / 1024:.0f}) | "
              f"{r['repair']['seconds']} | {r['repair']['fixes']} | {r['found_planted']} | "
              f"{r['clean_after']} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: v for k, v in vars(args).items()
                                             if k not in ("child", "repair", "out")},
                                    "results": rows}, indent=2) + "\n")
    print(f"\nwritten to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
