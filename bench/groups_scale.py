"""Group membership at the scale of real tenants (run by hand; nothing here runs in CI).

    .venv/bin/python -m bench.groups_scale                       # 1k and 10k members
    .venv/bin/python -m bench.groups_scale --sizes 1000,10000,100000 --nosync

For each size N it starts a private slapd (scripts/slapd, in a temporary folder), seeds
N users and one group holding all of them, and then measures through the Flask app's
test client (in process, so the figures are the bridge's own cost without HTTP):

* PATCH add one member / remove one member (Entra's default form): median ms over
  ``--runs`` requests and the LDAP operations per request, beside the raw ldap3 modify
  of the same value on the same group (with Permissive Modify, as the bridge sends it);
* Entra's match query ``GET /Groups?excludedAttributes=members&filter=displayName eq …``,
  checking that no LDAP search asked for ``member``;
* the full ``GET /Groups/{id}``: time and LDAP round trips, with the deref control (one
  read) and with the batched fallback (entryDN filters, BATCH DNs per search), beside
  the raw ldap3 read of the member values alone.

LDAP operations are counted by wrapping ``Repository._measure``, through which the
repository sends every operation. Results go to stdout (a table) and to
bench/results/groups_scale.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, SUBTREE, Connection, Server

from bench.stack import ROOT, start_slapd
from directory.controls import PERMISSIVE_MODIFY
from directory.repository import Repository

TOKEN = "bench-token-" + "x" * 32
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
GROUP = "Everyone"
EXTRA = "extra"  # users outside the group, added and removed by the runs
RESULTS = ROOT / "bench" / "results" / "groups_scale.json"


# --- seeding --------------------------------------------------------------------------------


def connect(env: dict[str, str]) -> Connection:
    host, port = env["LDAP_URL"].removeprefix("ldap://").split(":")
    return Connection(Server(host, int(port)), env["LDAP_BIND_DN"], env["LDAP_BIND_PASSWORD"],
                      auto_bind=True, raise_exceptions=True)


def user_dn(base: str, name: str) -> str:
    return f"uid={name},ou=People,{base}"


def ldif_user(base: str, name: str) -> str:
    return (f"dn: {user_dn(base, name)}\nobjectClass: inetOrgPerson\nobjectClass: scimResource\n"
            f"uid: {name}\ncn: {name}\nsn: Bench\ndisplayName: {name}\n\n")


def _add_users(env: dict[str, str], names: list[str]) -> None:
    conn = connect(env)
    base = env["LDAP_BASE_DN"]
    for name in names:
        conn.add(user_dn(base, name), ["inetOrgPerson", "scimResource"],
                 {"uid": name, "cn": name, "sn": "Bench", "displayName": name})
    conn.unbind()


def seed_users(env: dict[str, str], names: list[str], workers: int) -> str:
    """Add the users over LDAP (overlays see them): the C ldapadd when installed, else
    ldap3 in ``workers`` processes. Returns the loader used."""
    ldapadd = shutil.which("ldapadd")
    if ldapadd:
        text = "".join(ldif_user(env["LDAP_BASE_DN"], n) for n in names)
        subprocess.run([ldapadd, "-x", "-H", env["LDAP_URL"], "-D", env["LDAP_BIND_DN"],
                        "-w", env["LDAP_BIND_PASSWORD"]], input=text.encode(), check=True,
                       stdout=subprocess.DEVNULL)
        return "ldapadd"
    chunks = [names[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_add_users, [env] * workers, chunks))
    return f"ldap3 x{workers}"


def seed(env: dict[str, str], n: int, extra: int, workers: int) -> dict[str, Any]:
    base = env["LDAP_BASE_DN"]
    members = [f"m{i:07d}" for i in range(n)]
    started = time.perf_counter()
    loader = seed_users(env, members + [f"{EXTRA}{i:03d}" for i in range(extra)], workers)
    users_s = time.perf_counter() - started
    conn = connect(env)
    started = time.perf_counter()
    conn.add(f"cn={GROUP},ou=Groups,{base}", ["groupOfNames", "scimResource"],
             {"cn": GROUP, "member": [user_dn(base, m) for m in members]})
    group_s = time.perf_counter() - started
    conn.unbind()
    return {"loader": loader, "users_s": round(users_s, 2), "group_add_s": round(group_s, 2)}


# --- measuring ------------------------------------------------------------------------------


class Operations:
    """Counts the LDAP operations the repository sends and the attributes searched."""

    def __init__(self) -> None:
        self.count = 0
        self.searched: list[list[str]] = []
        self._original = Repository._measure

    def install(self) -> None:
        original, ops = self._original, self

        def counting(repo: Repository, fn: Any, *args: Any, names: list[str] | None = None,
                     **kwargs: Any) -> Any:
            ops.count += len(names or [fn])
            if getattr(fn, "__name__", "") == "search":  # wire.search(conn, base, scope,
                ops.searched.append([str(a) for a in args[4]])  # filter, attributes)
            return original(repo, fn, *args, names=names, **kwargs)

        Repository._measure = counting  # type: ignore[method-assign]

    def uninstall(self) -> None:
        Repository._measure = self._original  # type: ignore[method-assign]

    @contextmanager
    def measuring(self) -> Iterator[dict[str, Any]]:
        self.count, self.searched = 0, []
        out: dict[str, Any] = {}
        started = time.perf_counter()
        yield out
        out["ms"] = 1000 * (time.perf_counter() - started)
        out["ops"] = self.count
        out["searched"] = list(self.searched)


def median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def timed_ms(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - started)


class Bridge:
    """The Flask app's test client speaking SCIM with the bench token."""

    def __init__(self, env: dict[str, str]) -> None:
        from config import load_settings
        from scim.factory import create_app

        self.app = create_app(load_settings({**env, "SCIM_BEARER_TOKEN": TOKEN,
                                             "LOG_LEVEL": "WARNING"}))
        self.client = self.app.test_client()
        self.headers = {"Authorization": f"Bearer {TOKEN}"}

    def call(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        kwargs: dict[str, Any] = {"headers": self.headers}
        if body is not None:
            kwargs["json"] = body
        r = getattr(self.client, method)(f"/scim/v2{path}", **kwargs)
        if r.status_code != status:
            raise RuntimeError(f"{method.upper()} {path}: {r.status_code} {r.get_data()[:300]!r}")
        return r

    def close(self) -> None:
        self.app.extensions["scim_bridge"].pool.close()


def member_patch(op: str, scim_id: str) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": [
        {"op": op, "path": "members", "value": [{"$ref": None, "value": scim_id}]}]}


def ids_of(conn: Connection, base: str, prefix: str) -> list[str]:
    conn.search(f"ou=People,{base}", f"(uid={prefix}*)", SUBTREE, attributes=["entryUUID"])
    return [str(r["attributes"]["entryUUID"]) for r in sorted(
        (r for r in conn.response if r["type"] == "searchResEntry"), key=lambda r: r["dn"])]


def measure(env: dict[str, str], n: int, runs: int, get_runs: int,
            batched_limit: int) -> dict[str, Any]:
    base = env["LDAP_BASE_DN"]
    group_dn = f"cn={GROUP},ou=Groups,{base}"
    raw = connect(env)
    raw.strategy.socket_size = 1 << 20  # the same receive chunk as the bridge's big reads
    bridge = Bridge(env)
    ops = Operations()
    ops.install()
    rows: dict[str, Any] = {"members": n}
    try:
        extra = ids_of(raw, base, EXTRA)[:runs]
        found = bridge.call("get", "/Groups?excludedAttributes=members&filter="
                            + quote(f'displayName eq "{GROUP}"')).json
        gid = found["Resources"][0]["id"]
        bridge.call("get", f"/Groups/{gid}")  # warm-up: connection pool, server's controls

        # PATCH add / remove one member (the same values added, then removed again),
        # then the raw modify of the same values on the same group
        for op in ("Add", "Remove"):
            samples, counts = [], []
            for scim_id in extra:
                with ops.measuring() as m:
                    bridge.call("patch", f"/Groups/{gid}", member_patch(op, scim_id), 204)
                samples.append(m["ms"])
                counts.append(m["ops"])
            rows[f"patch_{op.lower()}"] = {"ms": median(samples), "ops": max(counts),
                                           "ops_min": min(counts), "runs": len(samples)}
        for op, raw_op in (("add", MODIFY_ADD), ("remove", MODIFY_DELETE)):
            raw_samples = []
            for i in range(len(extra)):
                value = user_dn(base, f"{EXTRA}{i:03d}")
                raw_samples.append(timed_ms(lambda v=value, o=raw_op: raw.modify(
                    group_dn, {"member": [(o, [v])]}, controls=[PERMISSIVE_MODIFY])))
            rows[f"patch_{op}"]["raw_ldap3_ms"] = median(raw_samples)

        # Entra's match query: the member values must not even be read
        path = ("/Groups?excludedAttributes=members&filter="
                + quote(f'displayName eq "{GROUP}"'))
        samples, counts, asked = [], [], []
        for _ in range(runs):
            with ops.measuring() as m:
                bridge.call("get", path)
            samples.append(m["ms"])
            counts.append(m["ops"])
            asked += [a.lower() for attrs in m["searched"] for a in attrs]
        if "member" in asked:
            raise AssertionError("the match query asked LDAP for member values")
        rows["match_query"] = {"ms": median(samples), "ops": max(counts),
                               "member_requested": "member" in asked}

        # full GET: deref (one read) and the batched fallback
        rows["full_get"] = full_get(bridge, ops, gid, n, get_runs)
        if n <= batched_limit:
            original = Repository._derefs
            Repository._derefs = lambda self: False  # type: ignore[method-assign]
            try:
                rows["full_get_batched"] = full_get(bridge, ops, gid, n, max(1, get_runs // 2))
            finally:
                Repository._derefs = original  # type: ignore[method-assign]
        raw_samples = [timed_ms(lambda: raw.search(group_dn, "(objectClass=*)", BASE,
                                                   attributes=["member"]))
                       for _ in range(get_runs)]
        rows["raw_read_member_values_ms"] = median(raw_samples)
    finally:
        ops.uninstall()
        bridge.close()
        raw.unbind()
    return rows


def full_get(bridge: Bridge, ops: Operations, gid: str, n: int, runs: int) -> dict[str, Any]:
    samples, counts = [], []
    for _ in range(runs):
        with ops.measuring() as m:
            r = bridge.call("get", f"/Groups/{gid}")
        samples.append(m["ms"])
        counts.append(m["ops"])
        if len(r.json["members"]) != n:
            raise AssertionError(f"GET returned {len(r.json['members'])} members, not {n}")
    return {"ms": median(samples), "ops": max(counts), "runs": runs}


# --- output ---------------------------------------------------------------------------------


def table(results: list[dict[str, Any]]) -> str:
    lines = [f"{'members':>9} | {'request':<34} | {'LDAP ops':>8} | {'median ms':>10} | "
             f"{'raw ldap3 ms':>12}"]
    lines.append("-" * len(lines[0]))
    for r in results:
        n = f"{r['members']:,}"
        for key, label in (("patch_add", "PATCH add 1 member"),
                           ("patch_remove", "PATCH remove 1 member")):
            row = r[key]
            lines.append(f"{n:>9} | {label:<34} | {row['ops']:>8} | {row['ms']:>10.2f} | "
                         f"{row['raw_ldap3_ms']:>12.2f}")
        row = r["match_query"]
        lines.append(f"{n:>9} | {'GET match query, members excluded':<34} | {row['ops']:>8} | "
                     f"{row['ms']:>10.2f} | {'':>12}")
        row = r["full_get"]
        lines.append(f"{n:>9} | {'full GET /Groups/{id} (deref)':<34} | {row['ops']:>8} | "
                     f"{row['ms']:>10.1f} | {r['raw_read_member_values_ms']:>12.1f}")
        if "full_get_batched" in r:
            row = r["full_get_batched"]
            lines.append(f"{n:>9} | {'full GET (batched, no deref)':<34} | {row['ops']:>8} | "
                         f"{row['ms']:>10.1f} | {'':>12}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000",
                        help="comma-separated member counts (default 1000,10000)")
    parser.add_argument("--runs", type=int, default=20, help="PATCH/query samples per row")
    parser.add_argument("--get-runs", type=int, default=5, help="full GET samples")
    parser.add_argument("--batched-limit", type=int, default=10000,
                        help="largest size that also times the batched fallback GET")
    parser.add_argument("--workers", type=int, default=2, help="seeding processes (ldap3)")
    parser.add_argument("--nosync", action="store_true", help="olcDbNoSync (no fsync)")
    parser.add_argument("--multival", help='olcDbMultival to compare with, e.g. "member 100,20" '
                        "(the private slapd's config before issue 15); default: shipped, none")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            slapd = start_slapd(Path(tmp) / "slapd", nosync=args.nosync, multival=args.multival)
            try:
                seeded = seed(slapd.env, n, args.runs, args.workers)
                print(f"{n:,} members: seeded in {seeded['users_s']} s ({seeded['loader']}), "
                      f"group add {seeded['group_add_s']} s", file=sys.stderr)
                row = measure(slapd.env, n, args.runs, args.get_runs, args.batched_limit)
                row["seed"] = seeded
                results.append(row)
            finally:
                slapd.stop()
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"nosync": args.nosync, "multival": args.multival,
                                    "runs": args.runs,
                                    "results": results}, indent=2) + "\n")
    print(f"\nwritten to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
