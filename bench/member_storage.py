"""What dropping olcDbMultival costs: one-member modifies of a large group, A/B (run by hand).

    .venv/bin/python -m bench.member_storage                        # 10k and 100k members
    .venv/bin/python -m bench.member_storage --sizes 100000 --runs 50

For each size N it builds two private slapds side by side — the shipped config (no
olcDbMultival) and ``--multival`` (default "member 100,20", the config before issue 15) —
loads the same N+1 users and one group of N members into each offline with slapadd (which
honours olcDbMultival), and then alternates between them: a raw ldap3 modify adding one
member (Permissive Modify, as the bridge sends it), then one removing it. Alternating
makes both configs share the machine's load swings, so the ratio is what to read; the
SCIM-level figures are bench/groups_scale.py (``--multival`` there too).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ldap3 import MODIFY_ADD, MODIFY_DELETE, Connection, Server

from bench.stack import start_slapd
from tests.slapd_instance import SlapdInstance

PERMISSIVE_MODIFY = ("1.2.840.113556.1.4.1413", False, None)
SLAPADD = "/usr/sbin/slapadd"


def user_dn(i: int, base: str) -> str:
    return f"uid=user{i:06d}@example.org,ou=People,{base}"


def ldif(n: int, base: str) -> str:
    users = "".join(f"dn: {user_dn(i, base)}\nobjectClass: inetOrgPerson\n"
                    f"uid: user{i:06d}@example.org\ncn: user {i}\nsn: {i}\n\n"
                    for i in range(n + 1))
    members = "".join(f"member: {user_dn(i, base)}\n" for i in range(n))
    return users + f"dn: cn=big,ou=Groups,{base}\nobjectClass: groupOfNames\ncn: big\n{members}"


def loaded(folder: Path, n: int, multival: str | None) -> tuple[SlapdInstance, float]:
    slapd = start_slapd(folder, nosync=True, multival=multival)
    slapd.stop()
    started = time.monotonic()
    subprocess.run([SLAPADD, "-q", "-F", str(folder / "slapd.d"), "-b",
                    slapd.env["LDAP_BASE_DN"], "-l", "/dev/stdin"],
                   input=ldif(n, slapd.env["LDAP_BASE_DN"]), text=True, check=True,
                   capture_output=True)
    seconds = time.monotonic() - started
    slapd.start(folder)
    return slapd, seconds


def measure(n: int, runs: int, multival: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="member-storage-") as tmp:
        configs = {"none": None, "multival": multival}
        slapds, conns = {}, {}
        try:
            for name, value in configs.items():
                slapds[name], seconds = loaded(Path(tmp) / name, n, value)
                print(f"{n:,} members, {name}: slapadd {seconds:.1f} s", file=sys.stderr)
                env = slapds[name].env
                conns[name] = Connection(Server(env["LDAP_URL"]), env["LDAP_BIND_DN"],
                                         env["LDAP_BIND_PASSWORD"], auto_bind=True,
                                         raise_exceptions=True)
            samples: dict[str, list[float]] = {f"{c} {k}": [] for c in configs
                                               for k in ("add", "remove")}
            for _ in range(runs):
                for name, conn in conns.items():
                    base = slapds[name].env["LDAP_BASE_DN"]
                    group, dn = f"cn=big,ou=Groups,{base}", user_dn(n, base)
                    for kind, op in (("add", MODIFY_ADD), ("remove", MODIFY_DELETE)):
                        started = time.perf_counter()
                        conn.modify(group, {"member": [(op, [dn])]},
                                    controls=[PERMISSIVE_MODIFY])
                        samples[f"{name} {kind}"].append(time.perf_counter() - started)
        finally:
            for conn in conns.values():
                conn.unbind()
            for slapd in slapds.values():
                slapd.stop()
    return {key: statistics.median(values) * 1000 for key, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--runs", type=int, default=30, help="add+remove pairs per config")
    parser.add_argument("--multival", default="member 100,20")
    args = parser.parse_args()
    print(f"{'members':>9} | {'modify':<7} | {'no multival ms':>14} | "
          f"{args.multival + ' ms':>20} | ratio")
    for n in (int(s) for s in args.sizes.split(",")):
        m = measure(n, args.runs, args.multival)
        for kind in ("add", "remove"):
            none, multi = m[f"none {kind}"], m[f"multival {kind}"]
            print(f"{n:>9,} | {kind:<7} | {none:>14.1f} | {multi:>20.1f} | {none / multi:.2f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
