"""Entra-shaped writes through two app instances, against one provider and against the
replicated topology (two multi-providers and a consumer), with a provider SIGKILLed.

    nice -n 10 .venv/bin/python bench/ha_workload.py [--seconds 8] [--threads 4]

Runs, each on fresh servers: ``one``: one private slapd, both app instances on it;
``two``: `scripts/slapd topology`, both app instances with LDAP_URL = both providers;
``two+kill``: the same, provider1 SIGKILLed a third of the way through (and not restarted).
Each client thread loops create user → add to its group → PATCH displayName → delete,
alternating between the two instances (gunicorn, 2 workers × 4 threads each). Prints
throughput (successful requests/s), p50/p99 latency of successful requests, failed
requests, and for ``two+kill`` the fail-over time: from the kill to the first success of
each instance after it (the longest of the two). Nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stack import Gunicorn, start_slapd  # noqa: E402
from tests import entra  # noqa: E402
from tests.reliability.support import call, scim_path  # noqa: E402
from tests.topology import Topology  # noqa: E402

TOKEN = "bench-token-" + "x" * 32
APP_ENV = {"SCIM_BEARER_TOKEN": TOKEN, "LDAP_TIMEOUT": "1", "LDAP_CONNECT_TIMEOUT": "0.5",
           "SCIM_RETRY_AFTER": "1"}


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def client(ports: list[int], t: int, stop: threading.Event,
           log: list[tuple[float, int, int, float]]) -> None:
    """One thread's loop; ``log`` gets (end time, instance, status, seconds)."""
    def send(i: int, method: str, path: str, body: Any = None) -> Any:
        port = ports[i % len(ports)]
        started = time.monotonic()
        try:
            reply = call(port, method, scim_path(path), body, token=TOKEN, timeout=20)
            status, payload = reply.status, reply.body
        except OSError:
            status, payload = -1, None
        log.append((time.monotonic(), i % len(ports), status, time.monotonic() - started))
        return status, payload

    status, body = send(t, "POST", "/Groups", entra.group(f"HA{t}"))
    while status != 201:
        status, body = send(t, "POST", "/Groups", entra.group(f"HA{t}"))
    gid, n = body["id"], 0
    while not stop.is_set():
        n += 1
        status, body = send(n, "POST", "/Users", entra.minimal_user(f"ha{t}-{n}@x.org"))
        if status != 201:
            continue
        uid = body["id"]
        send(n + 1, "PATCH", f"/Groups/{gid}", entra.patch(
            {"op": "Add", "path": "members", "value": [{"value": uid}]}))
        send(n, "PATCH", f"/Users/{uid}", entra.patch(
            {"op": "Replace", "path": "displayName", "value": f"HA {t} {n}"}))
        send(n + 1, "DELETE", f"/Users/{uid}")


def run(kind: str, seconds: float, threads: int) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix=f"ha-bench-{kind}-"))
    topo = slapd = None
    if kind == "one":
        slapd = start_slapd(scratch / "slapd", nosync=True)  # as the topology's members
        env = dict(slapd.env)
    else:
        topo = Topology(scratch / "topology")
        env = {k: v for k, v in topo.start().items() if k != "LDAP_CONSUMER_URL"}
    apps = [Gunicorn({**env, **APP_ENV}, workers=2, threads=4) for _ in range(2)]
    log: list[tuple[float, int, int, float]] = []
    stop = threading.Event()
    workers = [threading.Thread(target=client, args=([a.port for a in apps], t, stop, log))
               for t in range(threads)]
    began = time.monotonic()
    killed_at = None
    try:
        for w in workers:
            w.start()
        if kind == "two+kill":
            time.sleep(seconds / 3)
            assert topo is not None
            killed_at = time.monotonic()
            topo.kill("provider1")
            time.sleep(seconds * 2 / 3)
        else:
            time.sleep(seconds)
        stop.set()
        for w in workers:
            w.join(timeout=60)
        elapsed = time.monotonic() - began
    finally:
        for app in apps:
            app.stop()
        if topo is not None:
            topo.stop()
        if slapd is not None:
            slapd.stop()
    ok = sorted(s for _, _, status, s in log if 200 <= status < 300)
    failed = [status for _, _, status, _ in log if not 200 <= status < 300]
    result: dict[str, Any] = {
        "kind": kind, "requests_per_s": round(len(ok) / elapsed, 1),
        "p50_ms": round(percentile(ok, 0.5) * 1000, 1),
        "p99_ms": round(percentile(ok, 0.99) * 1000, 1),
        "ok": len(ok), "failed": len(failed),
        "failed_statuses": sorted(set(failed))}
    if killed_at is not None:
        firsts = [min((end for end, inst, status, _ in log
                       if inst == i and end > killed_at and 200 <= status < 300),
                      default=float("inf")) for i in range(2)]
        result["failover_ms"] = round((max(firsts) - killed_at) * 1000, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--kinds", default="one,two,two+kill")
    args = parser.parse_args()
    results = [run(kind, args.seconds, args.threads) for kind in args.kinds.split(",")]
    print(f"{'setup':10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7} failover")
    for r in results:
        print(f"{r['kind']:10} {r['requests_per_s']:8} {r['p50_ms']:8} {r['p99_ms']:8} "
              f"{r['failed']:7} {r.get('failover_ms', '-')}")
    base = results[0]["requests_per_s"]
    for r in results[1:]:
        print(f"{r['kind']} / {results[0]['kind']}: {r['requests_per_s'] / base:.2f}x throughput")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
