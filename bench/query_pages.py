"""What a list page costs as the directory grows (run by hand).

    .venv/bin/python -m bench.query_pages --users 10000,100000 [--window two-pass]

Seeds N users straight into a private slapd (nosync), then times through the WSGI app:
an Entra lookup (userName eq), the first/middle/last page of an unfiltered list
(count=100), a sorted page, and count=0; median of 5 runs each.

``--window two-pass`` measures the design VLV replaced: a first pass reads every
match's entryUUID (paged, 1,000 a page) to count and locate the window, a second
reads the window's entries by id.
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


def two_pass(ctx, plan, attrs, start, count, *, tiebreak):  # noqa: ANN001, ANN201
    """The window as computed before VLV (kept here to compare)."""
    from directory.sort import sort_control
    from scim.service.query import _cookie

    controls = [sort_control(plan.sort.ldap, plan.sort.descending, tiebreak)] if plan.sort \
        else []
    ids: list[str] = []
    cookie = None
    while True:
        page, result = ctx.repo.search(plan.base, plan.ldap_filter, ["entryUUID"],
                                       paged_size=1000, paged_cookie=cookie, controls=controls)
        ids += [e.uuid for e in page]
        cookie = _cookie(result)
        if not cookie:
            break
    wanted = ids[start - 1:start - 1 + count]
    found = ctx.repo.resolve_ids(wanted, attributes=attrs) if wanted else {}
    return len(ids), [found[i.lower()] for i in wanted if i.lower() in found]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", default="10000")
    parser.add_argument("--window", choices=("vlv", "two-pass"), default="vlv")
    args = parser.parse_args()
    from config import load_settings
    from scim.factory import create_app
    from scim.service import query

    if args.window == "two-pass":
        query._window_once = two_pass

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
                sw = quote('userName sw "user0000"')  # user0000000…user0000999
                rows = {
                    "userName eq lookup": f"/scim/v2/Users?filter={eq}",
                    "page 1 (count=100)": "/scim/v2/Users?count=100",
                    "middle page": f"/scim/v2/Users?startIndex={n // 2}&count=100",
                    "last page": f"/scim/v2/Users?startIndex={n - 99}&count=100",
                    "sorted by displayName, page 1": "/scim/v2/Users?count=100&sortBy=displayName",
                    "count=0 (total only)": "/scim/v2/Users?count=0",
                    "filter with 1,000 matches, page 2":
                        f"/scim/v2/Users?filter={sw}&startIndex=101&count=100",
                }
                print(f"\n{n} users, {args.window} (seeded in {seeded:.0f} s)")
                for name, path in rows.items():
                    print(f"  {name:<32}{timed(c, path, h):>9.1f} ms")
                app.extensions["scim_bridge"].pool.close()
            finally:
                slapd.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
