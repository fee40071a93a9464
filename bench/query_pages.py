"""What a list page costs as the directory grows (run by hand).

    .venv/bin/python -m bench.query_pages --users 10000,100000

Seeds N users straight into a private slapd (nosync), then times through the WSGI app:
an Entra lookup (userName eq), the first/middle/last page of an unfiltered list
(count=100), a sorted page, and count=0; median of 5 runs each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from ldap3 import Connection, Server

from bench.stack import start_slapd


def seed(env: dict[str, str], n: int) -> None:
    host, port = env["LDAP_URL"].removeprefix("ldap://").split(":")
    conn = Connection(Server(host, int(port)), env["LDAP_BIND_DN"], env["LDAP_BIND_PASSWORD"],
                      auto_bind=True)
    base = env["LDAP_BASE_DN"]
    for i in range(n):
        conn.add(f"uid=user{i:07d},ou=People,{base}", ["inetOrgPerson", "scimResource"],
                 {"uid": f"user{i:07d}", "cn": f"User {i}", "sn": "Bench",
                  "displayName": f"User {(i * 7919) % n:07d}", "mail": f"u{i}@bench.example"})
    conn.unbind()


def timed(client, path: str, headers: dict[str, str]) -> float:
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        r = client.get(path, headers=headers)
        runs.append(time.perf_counter() - started)
        assert r.status_code == 200, r.json
    return 1000 * statistics.median(runs)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", default="10000")
    args = parser.parse_args()
    from config import load_settings
    from scim.factory import create_app

    for n in (int(x) for x in args.users.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            slapd = start_slapd(Path(tmp) / "slapd", nosync=True)
            try:
                started = time.perf_counter()
                seed(slapd.env, n)
                seeded = time.perf_counter() - started
                app = create_app(load_settings({**slapd.env, "SCIM_BEARER_TOKEN": "t"}))
                c, h = app.test_client(), {"Authorization": "Bearer t"}
                eq = quote(f'userName eq "user{n // 2:07d}"')
                rows = {
                    "userName eq lookup": f"/scim/v2/Users?filter={eq}",
                    "page 1 (count=100)": "/scim/v2/Users?count=100",
                    "middle page": f"/scim/v2/Users?startIndex={n // 2}&count=100",
                    "last page": f"/scim/v2/Users?startIndex={n - 99}&count=100",
                    "sorted by displayName, page 1": "/scim/v2/Users?count=100&sortBy=displayName",
                    "count=0 (total only)": "/scim/v2/Users?count=0",
                }
                print(f"\n{n} users (seeded in {seeded:.0f} s)")
                for name, path in rows.items():
                    print(f"  {name:<32}{timed(c, path, h):>9.1f} ms")
                app.extensions["scim_bridge"].pool.close()
            finally:
                slapd.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
