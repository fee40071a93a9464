"""What the largest allowed path-less PATCH costs (run by hand; issue 17).

    nice -n 10 .venv/bin/python -m bench.patch_cost [--keys 125,250,500,1000] [--no-http]

Two tables; each row doubles the size, so linear growth shows as a ratio near 2.0
(quadratic would be 4.0; before issue 17, 1,000 keys took ~2 s and 4,000 keys 43 s).

1. The PATCH engine alone (parse, apply, validate) on a user holding the most e-mails
   allowed (100), with N path-less keys of the hostile shape
   ``emails[value eq "eK@x.org" and type ne "xN"].type`` — each key a distinct filter
   that scans the whole list. N = SCIM_MAX_OPERATIONS (1,000) is the largest allowed.
2. Through the WSGI app on a private slapd (the real request path: JSON parsing, the
   depth and surrogate walk, the engine, LDAP): path-less PATCHes of ``N`` keys whose
   filter values are padded so that the largest body is at SCIM_MAX_BODY_BYTES (4 MiB),
   i.e. the largest PATCH the limits allow, at both limits at once.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
MAX_BODY = 4 * 1024 * 1024
EMAILS = [{"type": "work", "value": f"e{i}@x.org"} for i in range(100)]


#: A PATCH path is at most this long (scim.protocol.paths).
MAX_PATH = 4096


def hostile_keys(n: int, pad: int = 0) -> dict[str, str]:
    filler = "p" * pad
    return {f'emails[value eq "e{i % 100}@x.org" and type ne "x{i}{filler}"].type': "work"
            for i in range(n)}


def body_of(n: int, pad: int = 0, fill: int = 0) -> dict:
    """N keys: N - 1 hostile ones (padded) and a displayName of ``fill`` characters."""
    value: dict[str, str] = hostile_keys(n - 1, pad) if fill else hostile_keys(n, pad)
    if fill:
        value["displayName"] = "d" * fill
    return {"schemas": [PATCH_OP], "Operations": [{"op": "add", "value": value}]}


def median_seconds(run, repeat: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def table(title: str, rows: list[tuple[int, int, float]]) -> None:
    print(f"\n{title}")
    print(f"  {'keys':>6} {'body bytes':>11} {'ms':>9} {'µs/key':>8} {'ratio':>6}")
    previous = None
    for keys, size, seconds in rows:
        ratio = f"{seconds / previous:.2f}" if previous else "-"
        print(f"  {keys:>6} {size:>11} {seconds * 1000:>9.1f} {seconds * 1e6 / keys:>8.1f} "
              f"{ratio:>6}")
        previous = seconds


def engine(sizes: list[int]) -> None:
    from scim.protocol import patch
    from scim.protocol.schema import USER
    from scim.schemas import load_resource

    rows = []
    for n in sizes:
        body = body_of(n)

        def run(body: dict = body) -> None:
            ops = patch.parse_patch_request(body, max_operations=max(sizes))
            done = patch.apply({"schemas": [CORE_USER], "userName": "u", "emails": EMAILS},
                               ops, USER)
            load_resource(done, USER, check_schemas=False)

        rows.append((n, len(json.dumps(body)), median_seconds(run, 5)))
    table("PATCH engine, user with 100 e-mails, N hostile path-less keys", rows)


def through_app(sizes: list[int]) -> None:
    from bench.stack import start_slapd
    from config import load_settings
    from scim.factory import create_app

    largest = max(sizes)
    # pad every key as far as a path may be long, and fill the rest of the largest body
    # with one long displayName: it is then exactly at the body limit
    longest_key = max(len(k) for k in hostile_keys(largest))
    pad = MAX_PATH - longest_key
    bare = len(json.dumps(body_of(largest, pad, 1)))
    fill = MAX_BODY - bare + 1
    with tempfile.TemporaryDirectory() as tmp:
        slapd = start_slapd(Path(tmp) / "slapd", nosync=True)
        try:
            app = create_app(load_settings({**slapd.env, "SCIM_BEARER_TOKEN": "t",
                                            "SCIM_MAX_OPERATIONS": str(largest),
                                            "SCIM_MAX_BODY_BYTES": str(MAX_BODY),
                                            "AUDIT_LOG": str(Path(tmp) / "audit.log")}))
            client = app.test_client()
            headers = {"Authorization": "Bearer t", "Content-Type": "application/scim+json"}
            made = client.post("/scim/v2/Users", headers=headers, data=json.dumps(
                {"schemas": [CORE_USER], "userName": "bench@x.org", "emails": EMAILS}))
            assert made.status_code == 201, made.json
            path = f"/scim/v2/Users/{made.json['id']}"
            rows = []
            for n in sizes:
                data = json.dumps(body_of(n, pad, max(fill * n // largest, 1))).encode()
                assert len(data) <= MAX_BODY

                def run(data: bytes = data) -> None:
                    r = client.patch(path, headers=headers, data=data)
                    assert r.status_code == 200, r.json

                rows.append((n, len(data), median_seconds(run, 3)))
            table(f"Through the app on slapd: keys padded by {pad} bytes, a displayName of "
                  f"up to {fill} (the last row: {largest} operations in a {MAX_BODY}-byte "
                  "body, both limits)", rows)
            app.extensions["scim_bridge"].pool.close()
        finally:
            slapd.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", default="125,250,500,1000")
    parser.add_argument("--no-http", action="store_true", help="only the engine table")
    args = parser.parse_args()
    sizes = [int(x) for x in args.keys.split(",")]
    engine(sizes)
    if not args.no_http:
        through_app(sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
