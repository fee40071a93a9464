"""High availability end to end: two app instances (gunicorn each) behind one nginx
upstream, on a replicated directory (scripts/slapd topology: two multi-providers and a
read-only consumer).

An Entra-shaped burst (creates, member adds and removes, manager changes, deletes; a
rename on the side) runs through nginx while provider1 is SIGKILLed and later restarted,
and while one app instance is stopped. Afterwards the three servers hold the same tree,
entry by entry with entryUUIDs, and that tree is what the acknowledged requests allow
(the burst's model); every failed request is one Entra retries (5xx or 429), and the
retries (the replay) reach the intended state on every server. The one exception let
through, as an xfail, is a change provider1 acknowledged just before its SIGKILL and
then lost to provider2's newer version of the entry (docs/directory.md, "Replication").
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import entra
from tests.e2e.test_nginx import (
    MAX_BODY,
    NGINX,
    _group_members,
    _main_config,
    _make_certificate,
    _stop,
    _wait_port,
    render_site,
)
from tests.reliability.burst import EXPECTED, LOST, SKIPPED, Burst, Setup
from tests.reliability.support import (
    Gunicorn,
    admin,
    call,
    scim_path,
    seed_group,
    seed_user,
    snapshot,
)
from tests.slapd_instance import NOT_INSTALLED_REASON, free_port, slapd_available
from tests.topology import MEMBERS, Topology

pytestmark = [pytest.mark.e2e, pytest.mark.slapd]
THREADS = 3
APP_ENV = {"LDAP_TIMEOUT": "1", "LDAP_CONNECT_TIMEOUT": "0.5", "LDAP_POOL_WAIT": "1",
           "SCIM_RETRY_AFTER": "1", "SCIM_TRUSTED_PROXIES": "1"}


def retried_by_entra(status: int) -> bool:
    return status >= 500 or status == 429


def http_site(port: int) -> str:
    """A plain-HTTP loopback server on the rendered site's upstream (the burst's client
    speaks HTTP; the upstream, its fail-over and the headers are deploy/nginx.conf's)."""
    return f"""
server {{
    listen 127.0.0.1:{port};
    location / {{
        proxy_pass http://scim_bridge;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_connect_timeout 5s;
        proxy_read_timeout 30s;
    }}
}}
"""


@pytest.fixture
def ha(tmp_path: Path) -> Iterator[tuple[Topology, list[Gunicorn], int]]:
    if not slapd_available():
        pytest.skip(NOT_INSTALLED_REASON)
    if not NGINX.exists() or shutil.which("openssl") is None:
        message = "nginx or openssl is not installed: apt-get install nginx openssl"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    topo = Topology(tmp_path / "topology")
    scratch = Path(tempfile.mkdtemp(prefix="scim-e2e-ha-"))
    scratch.chmod(0o755)
    apps: list[Gunicorn] = []
    nginx: subprocess.Popen[bytes] | None = None
    try:
        env = {k: v for k, v in topo.start().items() if k != "LDAP_CONSUMER_URL"}
        apps = [Gunicorn({**env, **APP_ENV}, tmp_path / f"app{i}.log", workers=2, threads=4)
                for i in range(2)]
        cert, key = _make_certificate(scratch)
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (scratch / "tmp" / kind).mkdir(parents=True)
        http_port, https_port = free_port(), free_port()
        upstream = f"127.0.0.1:{apps[0].port}; server 127.0.0.1:{apps[1].port}"
        site = render_site({
            "SERVER_NAME": "127.0.0.1", "PUBLIC_HOST": f"127.0.0.1:{https_port}",
            "HTTP_LISTEN": f"127.0.0.1:{free_port()}", "HTTPS_LISTEN": f"127.0.0.1:{https_port}",
            "UPSTREAM": upstream, "TLS_CERT": str(cert), "TLS_KEY": str(key),
            "MAX_BODY_BYTES": str(MAX_BODY), "LOG_DIR": str(scratch)})
        (scratch / "site.conf").write_text(site + http_site(http_port))
        (scratch / "nginx.conf").write_text(_main_config(scratch))
        argv = [str(NGINX), "-e", str(scratch / "nginx-error.log"), "-p", str(scratch),
                "-c", str(scratch / "nginx.conf"), "-g", "daemon off;"]
        nginx = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        _wait_port(http_port, nginx, scratch / "nginx-error.log")
        yield topo, apps, http_port
    finally:
        if nginx is not None:
            _stop(nginx, signal.SIGQUIT)
            assert not _group_members(nginx.pid)
        for app in apps:
            app.stop()
        topo.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def provider_env(topo: Topology, member: str) -> dict[str, str]:
    return {**topo.env, "LDAP_URL": topo.url(member)}


def same_tree_everywhere(topo: Topology) -> dict[str, dict[str, Any]]:
    topo.wait_in_sync(timeout=60)
    trees = {member: topo.tree(member) for member in MEMBERS}
    reference = trees["provider1"]
    for member in MEMBERS[1:]:
        missing = reference.keys() - trees[member].keys()
        extra = trees[member].keys() - reference.keys()
        assert not missing and not extra, f"{member}: missing {missing}, extra {extra}"
        differ = [dn for dn in reference if reference[dn] != trees[member][dn]]
        assert differ == [], f"{member} differs from provider1 at {differ[:3]}"
    return reference


def test_burst_through_two_app_instances_while_a_provider_dies(ha: Any) -> None:
    topo, apps, port = ha
    managers = [(f"m{t}@x.org", seed_user(port, f"m{t}@x.org")) for t in range(THREADS)]
    seeds = [seed_user(port, f"s{i}@x.org") for i in range(2)]
    groups = [seed_group(port, f"G{t}", seeds) for t in range(THREADS)]
    burst = Burst(port, Setup(groups, seed_group(port, "E"), managers), pause_after_503=0.2)
    renamed = seed_user(port, "before.rename@x.org")
    renames: list[int] = []

    def rename() -> None:  # Entra retries a 5xx
        for _ in range(50):
            reply = call(port, "PATCH", scim_path(f"/Users/{renamed}"), entra.patch(
                {"op": "Replace", "path": "userName", "value": "after.rename@x.org"}))
            renames.append(reply.status)
            if not retried_by_entra(reply.status):
                return
            time.sleep(0.2)

    def fault() -> None:
        time.sleep(1.0)
        topo.kill("provider1")
        side = threading.Thread(target=rename)
        side.start()
        time.sleep(1.0)
        apps[1].stop()  # one app instance goes away; nginx sends everything to the other
        time.sleep(1.5)
        topo.start()  # provider1 comes back and catches up
        side.join()

    burst.run(fault, duration=7.0)
    outcomes = [(k, s) for units in burst.units for u in units for k, s in u.outcomes]
    assert not [o for o in outcomes if o[1] == LOST], "a request got no HTTP answer"
    refused = [o for o in outcomes if o[1] not in (SKIPPED, EXPECTED[o[0]])
               and not retried_by_entra(o[1])]
    assert refused == [], f"answers Entra would not retry: {refused[:5]}"
    assert sum(1 for k, s in outcomes if k == "create" and s == 201) > 10, burst.statuses()
    assert renames and renames[-1] == 200, renames

    tree = same_tree_everywhere(topo)
    # the bridge failed over: changes made by provider2 (server id 002 in entryCSN)
    assert any("#002#" in csn for e in tree.values() for csn in e.get("entrycsn", []))
    print("burst statuses:", dict(burst.statuses()), "renames:", renames)
    conn, base = admin(provider_env(topo, "provider2")), topo.env["LDAP_BASE_DN"]
    try:
        shot = snapshot(conn, base)
        by_uuid = {group["entryuuid"][0]: dn for dn, group in shot.groups.items()}
        group_dns = [by_uuid[g] for g in groups]
        shared_dn = by_uuid[burst.setup.shared]
        assert shot.violations() == []
        lost = off_model(burst.actual(shot, group_dns, shared_dn), burst.allowed())
        assert shot.user_by_name("after.rename@x.org") is not None
        assert shot.user_by_name("before.rename@x.org") is None
        assert any(v == renamed for e in tree.values() for v in e.get("entryuuid", []))

        assert burst.replay() == []  # Entra's retries, through nginx again
        same_tree_everywhere(topo)
        shot = snapshot(conn, base)
        assert shot.violations() == []
        wrong = off_model(burst.actual(shot, group_dns, shared_dn),
                          burst.allowed(intended=True))
    finally:
        conn.unbind()
    # Whole-entry replication can drop a change provider1 acknowledged just before its
    # SIGKILL and had not sent on, when provider2 then changed the same entry (its newer
    # entry wins): docs/directory.md, "Replication". That, and only that, is let through
    # as an expected failure; anything else off the model fails the test.
    assert wrong <= lost, f"off the model after the replay: {sorted(wrong - lost)[:5]}"
    if lost:
        pytest.xfail(f"known limit of entry-level syncrepl: {len(lost)} acknowledged "
                     f"change(s) lost at provider1's SIGKILL: {sorted(lost)[:3]}")


def off_model(actual: dict[tuple[str, str], Any],
              allowed: dict[tuple[str, str], set[Any]]) -> set[tuple[str, str]]:
    """The facts whose value the acknowledged requests do not allow."""
    return {key for key, value in actual.items() if value not in allowed[key]}
