"""Entra-shaped benchmark: the bridge (HTTP → gunicorn → slapd) beside raw ldap3.

    .venv/bin/python bench/entra_workload.py --users 1000 --concurrency 4 [--nosync]
    .venv/bin/python bench/entra_workload.py --users 1000,10000 --concurrency 1,4

For each size it starts a private slapd and gunicorn with the production config, and
replays Entra's initial cycle (userName match + create per user; per group a
displayName match with excludedAttributes=members, an empty create and member PATCHes
in batches) and a delta cycle (attribute PATCHes, disables, member removals, deletes)
with C client threads. Then it replays the same LDAP operations with ldap3 directly at
the same concurrency on a second private slapd — the floor. It prints a table and writes
bench/results/entra_workload.json. Nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, SUBTREE, Connection, Server
from ldap3.core.exceptions import LDAPObjectClassViolationResult

from bench.stack import ROOT, Gunicorn, start_slapd
from directory.controls import PERMISSIVE_MODIFY, POST_READ_OID, post_read

TOKEN = "bench-token-" + "x" * 32
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_READ = ["uid", "scimExternalId", "scimActive", "displayName", "cn", "sn", "givenName",
             "mail", "telephoneNumber", "mobile", "title", "employeeNumber", "departmentNumber",
             "manager", "scimDerived", "scimPrimary", "objectClass", "pwdAccountLockedTime",
             "entryUUID", "entryCSN", "createTimestamp", "modifyTimestamp"]


class Recorder:
    """Latencies per request kind, safe across threads."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.lock = threading.Lock()
        self.errors: dict[str, int] = defaultdict(int)

    def timed(self, kind: str, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return fn()
        except Exception:
            with self.lock:
                self.errors[kind] += 1
            raise
        finally:
            elapsed = time.perf_counter() - started
            with self.lock:
                self.samples[kind].append(elapsed)


def _plan(n_users: int) -> dict[str, Any]:
    users = [f"user{i:07d}@bench.example" for i in range(n_users)]
    n_groups = max(2, n_users // 100)
    groups = {f"Group {g:05d}": [users[i] for i in range(g, n_users, n_groups)]
              for g in range(n_groups)}
    return {
        "users": users,
        "groups": groups,
        "patch": users[::10],
        "disable": users[1::20],
        "remove": [(g, m[0]) for g, m in groups.items() if m],
        "delete": users[3::50],
    }


def _user_body(name: str) -> dict[str, Any]:
    local = name.split("@")[0]
    return {"schemas": [CORE, ENT], "externalId": local, "userName": name, "active": True,
            "displayName": local.title(), "title": "Engineer",
            "emails": [{"primary": True, "type": "work", "value": name}],
            "phoneNumbers": [{"type": "work", "value": "+1 425 555 0109"}],
            "name": {"formatted": local.title(), "familyName": local, "givenName": "Bench"},
            ENT: {"employeeNumber": local[4:], "department": "R&D"}}


# --- the bridge over HTTP ---------------------------------------------------------------


class ScimClient:
    """One keep-alive HTTP connection (one per client thread)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {TOKEN}",
                        "Content-Type": "application/scim+json"}

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        data = json.dumps(body) if body is not None else None
        self.conn.request(method, "/scim/v2" + path, body=data, headers=self.headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        if resp.status != expect:
            raise RuntimeError(f"{method} {path}: {resp.status} {raw[:200]!r}")
        return json.loads(raw) if raw else None


def _eq(attr: str, value: str) -> str:
    """A URL-encoded `attr eq "value"` filter, as Entra sends it."""
    from urllib.parse import quote

    return quote(f'{attr} eq "{value}"', safe="")


def scim_run(port: int, plan: dict[str, Any], concurrency: int, rec: Recorder,
             after_phase: Callable[[str], None] | None = None) -> dict:
    ids: dict[str, str] = {}
    clients = threading.local()

    def client() -> ScimClient:
        if not hasattr(clients, "c"):
            clients.c = ScimClient(port)
        return clients.c

    def user(name: str) -> None:
        c = client()
        rec.timed("match_user", lambda: c.call(
            "GET", f"/Users?filter={_eq('userName', name)}"))
        ids[name] = rec.timed("create_user", lambda: c.call(
            "POST", "/Users", _user_body(name), 201))["id"]

    def group(item: tuple[str, list[str]], batch: int) -> None:
        name, members = item
        c = client()
        rec.timed("match_group", lambda: c.call(
            "GET", f"/Groups?excludedAttributes=members&filter={_eq('displayName', name)}"))
        gid = rec.timed("create_group", lambda: c.call("POST", "/Groups", {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": name}, 201))["id"]
        ids[name] = gid
        for i in range(0, len(members), batch):
            value = [{"value": ids[m]} for m in members[i:i + batch]]
            rec.timed("add_members", lambda v=value: c.call("PATCH", f"/Groups/{gid}", {
                "schemas": [PATCH], "Operations": [
                    {"op": "Add", "path": "members", "value": v}]}, 204))

    def delta(step: tuple[str, Any]) -> None:
        kind, arg = step
        c = client()
        if kind == "patch_user":
            rec.timed(kind, lambda: c.call("PATCH", f"/Users/{ids[arg]}", {
                "schemas": [PATCH], "Operations": [
                    {"op": "Replace", "path": "title", "value": "Senior Engineer"},
                    {"op": "Replace", "path": "name.givenName", "value": "Changed"},
                    {"op": "Replace", "path": f"{ENT}:department", "value": "Ops"}]}))
        elif kind == "disable_user":
            rec.timed(kind, lambda: c.call("PATCH", f"/Users/{ids[arg]}", {
                "schemas": [PATCH], "Operations": [
                    {"op": "Replace", "path": "active", "value": "False"}]}))
        elif kind == "remove_member":
            g, m = arg
            rec.timed(kind, lambda: c.call("PATCH", f"/Groups/{ids[g]}", {
                "schemas": [PATCH], "Operations": [
                    {"op": "Remove", "path": "members", "value": [{"value": ids[m]}]}]}, 204))
        else:
            rec.timed(kind, lambda: c.call("DELETE", f"/Users/{ids[arg]}", None, 204))

    return _phases(plan, concurrency, user, group, delta, after_phase=after_phase)


def _delta_steps(plan: dict[str, Any]) -> list[tuple[str, Any]]:
    deleted = set(plan["delete"])
    removed = {m for _, m in plan["remove"]}
    return ([("patch_user", u) for u in plan["patch"]]
            + [("disable_user", u) for u in plan["disable"]]
            + [("remove_member", r) for r in plan["remove"]]
            + [("delete_user", u) for u in plan["delete"] if u not in removed or u in deleted])


def _phases(plan: dict[str, Any], concurrency: int, user: Callable, group: Callable,
            delta: Callable, batch: int = 100,
            after_phase: Callable[[str], None] | None = None) -> dict[str, float]:
    walls: dict[str, float] = {}
    with ThreadPoolExecutor(concurrency) as pool:
        for phase, fn, items in (
            ("initial_users", user, plan["users"]),
            ("initial_groups", lambda g: group(g, batch), list(plan["groups"].items())),
            ("delta", delta, _delta_steps(plan)),
        ):
            started = time.perf_counter()
            list(pool.map(fn, items))
            walls[phase] = time.perf_counter() - started
            if after_phase is not None:
                after_phase(phase)
    return walls


# --- the floor: the same LDAP operations with ldap3 directly ----------------------------
#
# What any bridge must ask of the directory for each request, done with plain ldap3 on
# one connection per client: a lookup is one search; a create is one add (asking the
# server for the new entry's entryUUID, the SCIM id, with the post-read control); a
# request naming a SCIM id (PATCH, DELETE) must first find the entry by entryUUID — one
# search, which for a member PATCH also resolves the member ids — and then write.
# Nothing else: no uniqueness check, no reading back, no groups for the answer.


def ldap_run(env: dict[str, str], plan: dict[str, Any], concurrency: int,
             rec: Recorder) -> dict:
    base = env["LDAP_BASE_DN"]
    people, groups_dn = f"ou=People,{base}", f"ou=Groups,{base}"
    placeholder = f"cn=empty-group-placeholder,ou=Service,{base}"
    host, port = env["LDAP_URL"].removeprefix("ldap://").split(":")
    local = threading.local()
    ids: dict[str, str] = {}

    def conn() -> Connection:
        if not hasattr(local, "c"):
            local.c = Connection(Server(host, int(port)), env["LDAP_BIND_DN"],
                                 env["LDAP_BIND_PASSWORD"], auto_bind=True,
                                 raise_exceptions=True)
        return local.c

    def udn(name: str) -> str:
        from ldap3.utils.dn import escape_rdn

        return f"uid={escape_rdn(name)},{people}"

    def new_id(c: Connection) -> str:
        value = c.result["controls"][POST_READ_OID]["value"]["result"]["entryUUID"]
        return str(value[0] if isinstance(value, list) else value)

    def by_ids(c: Connection, *uuids: str) -> list[str]:
        """One search finding entries by entryUUID (what a SCIM id names): DNs only."""
        ors = "".join(f"(entryUUID={u})" for u in uuids)
        c.search(base, f"(|{ors})", SUBTREE, attributes=["1.1"])
        return [e["dn"] for e in c.response if e["type"] == "searchResEntry"]

    def user(name: str) -> None:
        c = conn()
        rec.timed("match_user", lambda: c.search(
            people, f"(&(objectClass=inetOrgPerson)(uid={name}))", SUBTREE,
            attributes=USER_READ))
        local_part = name.split("@")[0]
        rec.timed("create_user", lambda: c.add(udn(name), [
            "top", "person", "organizationalPerson", "inetOrgPerson", "scimResource"], {
            "uid": name, "scimExternalId": local_part, "scimActive": "TRUE",
            "displayName": local_part.title(), "title": "Engineer", "mail": name,
            "telephoneNumber": "+1 425 555 0109", "cn": local_part.title(),
            "sn": local_part, "givenName": "Bench", "employeeNumber": local_part[4:],
            "departmentNumber": "R&D", "scimPrimary": "emails=work"},
            controls=[post_read()]))
        ids[name] = new_id(c)

    def group(item: tuple[str, list[str]], batch: int) -> None:
        name, members = item
        c = conn()
        gdn = f"cn={name},{groups_dn}"
        rec.timed("match_group", lambda: c.search(
            groups_dn, f"(&(objectClass=groupOfNames)(cn={name}))", SUBTREE,
            attributes=["cn", "scimExternalId", "entryUUID", "entryCSN", "createTimestamp",
                        "modifyTimestamp"]))
        rec.timed("create_group", lambda: c.add(gdn, ["top", "groupOfNames", "scimResource"],
                                                  {"cn": name, "member": placeholder},
                                                  controls=[post_read()]))
        ids[name] = new_id(c)
        for i in range(0, len(members), batch):
            chunk = members[i:i + batch]

            def add(chunk: list[str] = chunk) -> None:
                by_ids(c, ids[name], *(ids[m] for m in chunk))
                c.modify(gdn, {"member": [(MODIFY_ADD, [udn(m) for m in chunk]),
                                          (MODIFY_DELETE, [placeholder])]},
                         controls=[PERMISSIVE_MODIFY])
            rec.timed("add_members", add)

    def delta(step: tuple[str, Any]) -> None:
        kind, arg = step
        c = conn()
        if kind == "patch_user":
            def patch() -> None:
                by_ids(c, ids[arg])
                c.modify(udn(arg), {
                    "title": [(MODIFY_REPLACE, ["Senior Engineer"])],
                    "givenName": [(MODIFY_REPLACE, ["Changed"])],
                    "departmentNumber": [(MODIFY_REPLACE, ["Ops"])]})
            rec.timed(kind, patch)
        elif kind == "disable_user":
            def disable() -> None:
                by_ids(c, ids[arg])
                c.modify(udn(arg), {
                    "scimActive": [(MODIFY_REPLACE, ["FALSE"])],
                    "pwdAccountLockedTime": [(MODIFY_REPLACE, ["000001010000Z"])]})
            rec.timed(kind, disable)
        elif kind == "remove_member":
            g, m = arg

            def remove() -> None:
                by_ids(c, ids[g], ids[m])
                c.modify(f"cn={g},{groups_dn}", {"member": [(MODIFY_DELETE, [udn(m)])]},
                         controls=[PERMISSIVE_MODIFY])
            rec.timed(kind, remove)
        else:
            def delete() -> None:
                by_ids(c, ids[arg])
                c.search(groups_dn, f"(member={udn(arg)})", SUBTREE, attributes=["1.1"])
                for g in [e["dn"] for e in c.response]:
                    try:
                        c.modify(g, {"member": [(MODIFY_DELETE, [udn(arg)])]},
                                 controls=[PERMISSIVE_MODIFY])
                    except LDAPObjectClassViolationResult:  # its last member: any
                        c.modify(g, {"member": [  # bridge must keep groupOfNames valid
                            (MODIFY_REPLACE, [placeholder])]})
                c.delete(udn(arg))
            rec.timed(kind, delete)

    return _phases(plan, concurrency, user, group, delta)


# --- LDAP operations per SCIM request (in-process calibration) ----------------------------


def ops_per_request(env: dict[str, str]) -> dict[str, float]:
    """Count LDAP operations per request kind through the WSGI app (no HTTP)."""
    from config import load_settings
    from directory.repository import Repository
    from scim.factory import create_app

    counts: dict[str, list[int]] = defaultdict(list)
    original = Repository._measure
    calls = [0]

    def counting(self: Repository, fn: Any, *a: Any, names: list[str] | None = None,
                 **kw: Any) -> Any:
        calls[0] += len(names or [fn])
        return original(self, fn, *a, names=names, **kw)

    Repository._measure = counting  # type: ignore[method-assign]
    try:
        app = create_app(load_settings({**env, "SCIM_BEARER_TOKEN": TOKEN,
                                        "AUDIT_LOG": os.devnull}))
        c = app.test_client()
        h = {"Authorization": f"Bearer {TOKEN}"}

        def run(kind: str, method: str, path: str, body: Any = None) -> Any:
            calls[0] = 0
            r = c.open("/scim/v2" + path, method=method, json=body, headers=h)
            counts[kind].append(calls[0])
            return r.json if r.data else None

        names = [f"calib{i}@bench.example" for i in range(5)]
        uids = []
        for n in names:
            run("match_user", "GET", f"/Users?filter={_eq('userName', n)}")
            uids.append(run("create_user", "POST", "/Users", _user_body(n))["id"])
        run("match_group", "GET", "/Groups?excludedAttributes=members&filter="
            + _eq("displayName", "calib"))
        gid = run("create_group", "POST", "/Groups", {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "calib"})["id"]
        for half in (uids[:2], uids[2:]):  # the first add also drops the placeholder
            run("add_members", "PATCH", f"/Groups/{gid}", {"schemas": [PATCH], "Operations": [
                {"op": "Add", "path": "members", "value": [{"value": u} for u in half]}]})
        run("patch_user", "PATCH", f"/Users/{uids[0]}", {"schemas": [PATCH], "Operations": [
            {"op": "Replace", "path": "title", "value": "x"}]})
        run("disable_user", "PATCH", f"/Users/{uids[1]}", {"schemas": [PATCH], "Operations": [
            {"op": "Replace", "path": "active", "value": "False"}]})
        run("remove_member", "PATCH", f"/Groups/{gid}", {"schemas": [PATCH], "Operations": [
            {"op": "Remove", "path": "members", "value": [{"value": uids[2]}]}]})
        run("delete_user", "DELETE", f"/Users/{uids[3]}")
        app.extensions["scim_bridge"].pool.close()
    finally:
        Repository._measure = original  # type: ignore[method-assign]
    return {k: statistics.mean(v) for k, v in counts.items()}


# --- reporting -----------------------------------------------------------------------------


def _stats(samples: list[float], concurrency: int) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(samples), "mean_ms": 1000 * statistics.mean(samples),
            "p50_ms": 1000 * pick(0.50), "p95_ms": 1000 * pick(0.95),
            "p99_ms": 1000 * pick(0.99),
            "req_per_s": concurrency * len(samples) / sum(samples)}


def run_size(users: int, concurrency: int, nosync: bool, workers: int) -> dict[str, Any]:
    plan = _plan(users)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        scim_slapd = start_slapd(Path(tmp) / "scim", nosync)
        raw_slapd = start_slapd(Path(tmp) / "raw", nosync)
        try:
            ops = ops_per_request(scim_slapd.env)
            server = Gunicorn({**scim_slapd.env, "SCIM_BEARER_TOKEN": TOKEN}, workers, 4)
            try:
                rss = {"start": server.rss_kib()}
                scim_rec = Recorder()
                scim_walls = scim_run(server.port, plan, concurrency, scim_rec,
                                      lambda phase: rss.update({phase: server.rss_kib()}))
                probe = Recorder()
                c = ScimClient(server.port)
                for name in plan["users"][: min(500, users)]:
                    probe.timed("lookup_probe", lambda n=name: c.call(
                        "GET", f"/Users?filter={_eq('userName', n)}"))
                rss["end"] = server.rss_kib()
                rss["peak"] = server.rss_kib("VmHWM")
            finally:
                server.stop()
            raw_rec = Recorder()
            raw_walls = ldap_run(raw_slapd.env, plan, concurrency, raw_rec)
        finally:
            scim_slapd.stop()
            raw_slapd.stop()
    kinds = {}
    for kind in scim_rec.samples:
        s, r = _stats(scim_rec.samples[kind], concurrency), _stats(raw_rec.samples[kind],
                                                                    concurrency)
        kinds[kind] = {"scim": s, "ldap": r, "ldap_ops_per_request": ops.get(kind),
                       "ratio": s["mean_ms"] / r["mean_ms"] if r else None}
    scim_total, raw_total = sum(scim_walls.values()), sum(raw_walls.values())
    return {"users": users, "concurrency": concurrency, "workers": workers, "nosync": nosync,
            "kinds": kinds, "phases": {"scim": scim_walls, "ldap": raw_walls},
            "overall_ratio": scim_total / raw_total,
            "lookup_p99_ms": _stats(probe.samples["lookup_probe"], 1)["p99_ms"],
            "errors": dict(scim_rec.errors), "raw_errors": dict(raw_rec.errors),
            "rss_kib": rss}


def print_result(result: dict[str, Any]) -> None:
    print(f"\n== {result['users']} users, {result['concurrency']} clients, "
          f"{result['workers']} gunicorn workers, nosync={result['nosync']} ==")
    print(f"{'kind':<14}{'n':>6}{'SCIM req/s':>12}{'p50':>8}{'p95':>8}{'p99':>8}"
          f"{'LDAP req/s':>12}{'ops/req':>9}{'ratio':>7}")
    for kind, row in result["kinds"].items():
        s, r = row["scim"], row["ldap"]
        print(f"{kind:<14}{s['n']:>6}{s['req_per_s']:>12.0f}{s['p50_ms']:>8.2f}"
              f"{s['p95_ms']:>8.2f}{s['p99_ms']:>8.2f}{r.get('req_per_s', 0):>12.0f}"
              f"{row['ldap_ops_per_request'] or 0:>9.1f}{row['ratio'] or 0:>7.2f}")
    print(f"overall SCIM/LDAP wall-time ratio: {result['overall_ratio']:.2f}; "
          f"userName-eq p99 {result['lookup_p99_ms']:.2f} ms; errors {result['errors']} "
          f"(raw floor {result['raw_errors']}); "
          f"worker RSS MiB by phase: " + "; ".join(
              f"{phase} " + "/".join(f"{v / 1024:.0f}" for v in sorted(kib.values()))
              for phase, kib in result["rss_kib"].items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="1000", help="comma-separated sizes")
    parser.add_argument("--concurrency", default="4", help="comma-separated client counts")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--nosync", action="store_true", help="slapd without fsync")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "entra_workload.json"))
    args = parser.parse_args()
    results = []
    for users in (int(x) for x in args.users.split(",")):
        for concurrency in (int(x) for x in args.concurrency.split(",")):
            result = run_size(users, concurrency, args.nosync, args.workers)
            print_result(result)
            results.append(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cores": os.cpu_count(), "results": results},
                              indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
