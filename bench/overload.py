"""Overload, the long form of tests/reliability/test_overload.py (run by hand).

    .venv/bin/python -m bench.overload [--clients 64] [--duration 60] [--workers 2]
        [--threads 8] [--pool 2] [--pool-wait 0.5] [--users 1000]

A private slapd (nosync) and gunicorn on loopback; ``--clients`` threads send the same
mix as the test (pages of 200 users, userName lookups, reads by id) back to back. It
prints, second by second, what was served and what was refused (503 + Retry-After), the
latency percentiles of each, anything else (which should never happen), and how long
the service takes to answer normally once the load stops.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stack import Gunicorn, start_slapd  # noqa: E402
from tests.conftest import TOKEN  # noqa: E402
from tests.reliability.support import (  # noqa: E402
    LOST_ANSWER,
    Shot,
    admin,
    call,
    load,
    scim_path,
    seed_people,
)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(shots: list[Shot], began: float) -> int:
    """Print the table; returns how many answers were neither 200 nor a proper 503."""
    by_second: dict[int, Counter[int]] = defaultdict(Counter)
    for s in shots:
        by_second[int(s.started - began)][s.status] += 1
    print("second  served  refused(503)  other")
    for second in sorted(by_second):
        c = by_second[second]
        other = sum(v for k, v in c.items() if k not in (200, 503))
        print(f"{second:6d}  {c[200]:6d}  {c[503]:12d}  {other:5d}")
    for label, status in (("served", 200), ("refused", 503)):
        times = [s.elapsed * 1000 for s in shots if s.status == status]
        if times:
            print(f"{label:8s} n={len(times):6d}  p50={percentile(times, .5):7.1f} ms  "
                  f"p99={percentile(times, .99):7.1f} ms  max={max(times):7.1f} ms")
    bad = [s for s in shots if s.status not in (200, 503) or (s.status == 503 and
                                                              not s.retryable)]
    lost = sum(1 for s in shots if s.status == LOST_ANSWER)
    print(f"other answers: {len(bad)} (no answer at all: {lost})")
    return len(bad)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--pool", type=int, default=2)
    parser.add_argument("--pool-wait", type=float, default=0.5)
    parser.add_argument("--users", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        slapd = start_slapd(Path(tmp) / "slapd", nosync=True)
        server = None
        try:
            conn = admin(slapd.env)
            ids = seed_people(conn, slapd.env["LDAP_BASE_DN"], args.users)
            conn.unbind()
            server = Gunicorn({**slapd.env, "SCIM_BEARER_TOKEN": TOKEN,
                               "LDAP_POOL_SIZE": str(args.pool),
                               "LDAP_POOL_WAIT": str(args.pool_wait),
                               "SCIM_RETRY_AFTER": "1"}, args.workers, args.threads)
            print(f"{args.clients} clients, {args.workers} workers x {args.threads} threads, "
                  f"{args.pool} LDAP connections per worker, LDAP_POOL_WAIT={args.pool_wait}s")
            began = time.monotonic()
            shots = load(server.port, ids, args.clients, args.duration)
            bad = report(shots, began)
            stopped = time.monotonic()
            while call(server.port, "GET", scim_path(f"/Users/{ids[0]}")).status != 200:
                time.sleep(0.05)
            quick = [call(server.port, "GET", scim_path(f"/Users/{i}")).elapsed * 1000
                     for i in ids[:50]]
            print(f"recovered after {1000 * (time.monotonic() - stopped):.0f} ms; next 50 "
                  f"reads p50={statistics.median(quick):.1f} ms max={max(quick):.1f} ms")
            return 1 if bad else 0
        finally:
            if server is not None:
                server.stop()
            slapd.stop()


if __name__ == "__main__":
    sys.exit(main())
