"""The production stack on loopback: real nginx (TLS) → gunicorn (2 workers) → real slapd.

nginx runs from a scratch folder with deploy/nginx.conf rendered for loopback ports and a
self-signed certificate made here; gunicorn runs ``app:app`` with deploy/gunicorn.conf.py.
An Entra-shaped session goes over HTTPS; URLs in answers must be the public ``https://``
ones. Every process started here is stopped, and checked gone, even when a test fails.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import grp
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ldap3 import BASE

from tests import entra
from tests.conftest import TOKEN
from tests.slapd_instance import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
NGINX = Path("/usr/sbin/nginx")
METRICS_TOKEN = "e2e-metrics-token-0123456789"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
MAX_BODY = 4 * 1024 * 1024
SITE_VARS = ("SERVER_NAME", "PUBLIC_HOST", "HTTP_LISTEN", "HTTPS_LISTEN", "UPSTREAM",
             "TLS_CERT", "TLS_KEY", "MAX_BODY_BYTES", "LOG_DIR")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw) if self.raw else None


@dataclass
class Stack:
    dir: Path
    cert: Path
    https_port: int
    http_port: int
    app_port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def audit(self) -> Path:
        return self.dir / "audit.log"

    def tls(self, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.cert))
        if maximum is not None:
            ctx.maximum_version = maximum
        return ctx

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             *, token: str | None = TOKEN, raw: bytes | None = None,
             ctx: ssl.SSLContext | None = None) -> Reply:
        conn = http.client.HTTPSConnection("127.0.0.1", self.https_port, timeout=20,
                                           context=ctx or self.tls())
        return _exchange(conn, method, path, body, headers, token, raw)


def _exchange(conn: http.client.HTTPConnection, method: str, path: str, body: Any,
              headers: dict[str, str] | None, token: str | None, raw: bytes | None) -> Reply:
    sent = dict(headers or {})
    if token:
        sent.setdefault("Authorization", f"Bearer {token}")
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        sent.setdefault("Content-Type", "application/scim+json")
    try:
        conn.request(method, path, body=data, headers=sent)
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


# --- processes ------------------------------------------------------------------------------


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                out.append(int(entry.name))
    return out


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
                if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
                    out.append(int(entry.name))
    return out


def _stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Ask the master to stop; kill the whole group if it is slow; wait until all gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    deadline = time.monotonic() + 10
    while _group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(nothing)"


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port} after {START_TIMEOUT:.0f} s:\n{_tail(log)}")


# --- configuration --------------------------------------------------------------------------


def render_site(values: dict[str, str]) -> str:
    """deploy/nginx.conf with its ${NAME} placeholders filled, as envsubst would."""
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    for name in SITE_VARS:
        assert f"${{{name}}}" in text, f"deploy/nginx.conf no longer uses ${{{name}}}"
        text = text.replace(f"${{{name}}}", values[name])
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    leftover = re.search(r"\$\{[A-Z_]+\}", code)
    assert leftover is None, f"unrendered placeholder {leftover.group()}"
    return text


def _main_config(scratch: Path) -> str:
    user = ""
    if os.geteuid() == 0:  # the master stays root; workers drop to nobody
        nobody = pwd.getpwnam("nobody")
        user = f"user {nobody.pw_name} {grp.getgrgid(nobody.pw_gid).gr_name};"
        for sub in (scratch / "tmp").iterdir():
            os.chown(sub, nobody.pw_uid, nobody.pw_gid)
    temp = "\n".join(f"    {kind}_temp_path {scratch}/tmp/{kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}
worker_processes 1;
pid {scratch}/nginx.pid;
error_log {scratch}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    default_type application/octet-stream;
{temp}
    include {scratch}/site.conf;
}}
"""


def _make_certificate(scratch: Path) -> tuple[Path, Path]:
    cert, key = scratch / "cert.pem", scratch / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    key.chmod(0o600)
    return cert, key


def _start_gunicorn(stack: Stack, slapd_env: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LDAP_", "SCIM_", "PROMETHEUS_", "GUNICORN_", "AUDIT_"))}
    env.update(slapd_env)
    env.update(
        SCIM_BEARER_TOKEN=TOKEN, METRICS_TOKEN=METRICS_TOKEN, AUDIT_LOG=str(stack.audit),
        SCIM_TRUSTED_PROXIES="1", BIND=f"127.0.0.1:{stack.app_port}", WEB_CONCURRENCY="2",
        GUNICORN_THREADS="4", PROMETHEUS_MULTIPROC_DIR=str(stack.dir / "metrics"),
        SCIM_MAX_BODY_BYTES=str(MAX_BODY), LDAP_TIMEOUT="2", SCIM_RETRY_AFTER="3",
        LOG_LEVEL="INFO")
    with (stack.dir / "gunicorn.out").open("wb") as out, \
            (stack.dir / "gunicorn.err").open("wb") as err:
        stack.procs["gunicorn"] = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "app:app"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            start_new_session=True)
    _wait_port(stack.app_port, stack.procs["gunicorn"], stack.dir / "gunicorn.err")


def _start_nginx(stack: Stack, key: Path) -> None:
    scratch = stack.dir
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (scratch / "tmp" / kind).mkdir(parents=True)
    (scratch / "site.conf").write_text(render_site({
        "SERVER_NAME": "127.0.0.1", "PUBLIC_HOST": f"127.0.0.1:{stack.https_port}",
        "HTTP_LISTEN": f"127.0.0.1:{stack.http_port}",
        "HTTPS_LISTEN": f"127.0.0.1:{stack.https_port}",
        "UPSTREAM": f"127.0.0.1:{stack.app_port}", "TLS_CERT": str(stack.cert),
        "TLS_KEY": str(key), "MAX_BODY_BYTES": str(MAX_BODY), "LOG_DIR": str(scratch)}))
    (scratch / "nginx.conf").write_text(_main_config(scratch))
    argv = [str(NGINX), "-e", str(scratch / "nginx-error.log"), "-p", str(scratch),
            "-c", str(scratch / "nginx.conf")]
    check = subprocess.run([*argv, "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, f"nginx -t:\n{check.stderr}"
    stack.procs["nginx"] = subprocess.Popen(
        [*argv, "-g", "daemon off;"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_port(stack.https_port, stack.procs["nginx"], scratch / "nginx-error.log")


@pytest.fixture(scope="module")
def stack(slapd: Any) -> Iterator[Stack]:
    if not NGINX.exists() or shutil.which("openssl") is None:
        message = "nginx or openssl is not installed: apt-get install nginx openssl"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # Outside pytest's private tmp tree: nginx's workers (nobody) must reach tmp/.
    scratch = Path(tempfile.mkdtemp(prefix="scim-e2e-nginx-"))
    scratch.chmod(0o755)
    stack = Stack(scratch, scratch / "cert.pem", https_port=free_port(),
                  http_port=free_port(), app_port=free_port())
    try:
        _, key = _make_certificate(scratch)
        _start_gunicorn(stack, slapd.env)
        _start_nginx(stack, key)
        yield stack
    finally:
        for name, sig in (("nginx", signal.SIGQUIT), ("gunicorn", signal.SIGTERM)):
            if name in stack.procs:
                _stop(stack.procs[name], sig)
        leftovers = {name: _group_members(p.pid) for name, p in stack.procs.items()}
        shutil.rmtree(scratch, ignore_errors=True)
        assert not any(leftovers.values()), f"processes left behind: {leftovers}"


# --- the tests ------------------------------------------------------------------------------


def _entry(ldap: Any, dn: str, attrs: list[str]) -> dict[str, Any] | None:
    try:
        ldap.search(dn, "(objectClass=*)", BASE, attributes=attrs)
    except Exception:  # noqa: BLE001 - ldap3 raises noSuchObject for a missing entry
        return None
    return dict(ldap.response[0]["attributes"]) if ldap.response else None


def test_entra_session_over_https_through_nginx(stack, ldap, base_dn):
    users = "/scim/v2/Users"
    probe = stack.call("GET", f"{users}?filter=" + _q(f'userName eq "{uuid.uuid4()}"'))
    assert (probe.status, probe.json["totalResults"]) == (200, 0)

    created = stack.call("POST", users, entra.user("e2e.user@contoso.com"))
    assert created.status == 201, created.raw
    uid = created.json["id"]
    location = f"{stack.origin}/scim/v2/Users/{uid}"
    assert created.headers["location"] == location == created.json["meta"]["location"]
    dn = f"uid=e2e.user@contoso.com,ou=People,{base_dn}"
    assert _entry(ldap, dn, ["uid"]) is not None

    matched = stack.call("GET", f"{users}?filter=" + _q('userName eq "e2e.user@contoso.com"'))
    assert matched.json["totalResults"] == 1
    assert matched.json["Resources"][0]["meta"]["location"] == location

    disabled = stack.call("PATCH", f"{users}/{uid}", entra.patch(
        {"op": "Replace", "path": "active", "value": "False"}))
    assert (disabled.status, disabled.json["active"]) == (200, False)
    assert disabled.json["meta"]["location"] == location
    assert str(_entry(ldap, dn, ["scimActive"])["scimActive"]).upper() == "FALSE"

    group = stack.call("POST", "/scim/v2/Groups", entra.group("E2E Team"))
    assert group.status == 201, group.raw
    gid = group.json["id"]
    group_location = f"{stack.origin}/scim/v2/Groups/{gid}"
    assert group.headers["location"] == group_location == group.json["meta"]["location"]

    added = stack.call("PATCH", f"/scim/v2/Groups/{gid}", entra.patch(
        {"op": "Add", "path": "members", "value": [{"value": uid}]}))
    assert added.status == 204
    group_dn = f"cn=E2E Team,ou=Groups,{base_dn}"
    members = [m.lower() for m in _entry(ldap, group_dn, ["member"])["member"]]
    assert dn.lower() in members

    fetched = stack.call("GET", f"/scim/v2/Groups/{gid}?excludedAttributes=members")
    assert fetched.status == 200 and "members" not in fetched.json
    assert fetched.json["meta"]["location"] == group_location

    assert stack.call("DELETE", f"{users}/{uid}").status == 204
    assert stack.call("DELETE", f"/scim/v2/Groups/{gid}").status == 204
    assert _entry(ldap, dn, ["uid"]) is None and _entry(ldap, group_dn, ["cn"]) is None

    replies = [created, disabled, group, added]
    records = [json.loads(line) for line in stack.audit.read_text().splitlines()]
    by_id = {r["request_id"]: r for r in records}
    assert [by_id[r.headers["x-request-id"]]["operation"] for r in replies] == \
        ["create", "update", "create", "update"]
    assert all(r["client"] == "127.0.0.1" and r["token"] == "static" for r in records)
    assert TOKEN not in stack.audit.read_text()


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(text)


def test_plain_http_redirects_to_https(stack):
    conn = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=10)
    reply = _exchange(conn, "GET", "/scim/v2/Users?count=1", None, None, None, None)
    assert reply.status == 301
    assert reply.headers["location"] == f"{stack.origin}/scim/v2/Users?count=1"


def test_tls_is_1_2_or_1_3_with_hsts(stack):
    conn = http.client.HTTPSConnection("127.0.0.1", stack.https_port, timeout=10,
                                       context=stack.tls())
    conn.connect()
    assert conn.sock.version() in ("TLSv1.2", "TLSv1.3")
    conn.close()
    reply = stack.call("GET", "/healthz", token=None, ctx=stack.tls(ssl.TLSVersion.TLSv1_2))
    assert reply.status == 200
    assert reply.headers["strict-transport-security"].startswith("max-age=")
    assert "nginx/" not in reply.headers.get("server", "")


def test_tls_1_1_is_refused(stack):
    ctx = stack.tls()
    try:
        with warnings.catch_warnings():  # offering TLS 1.1 is deprecated: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot offer TLS 1.1 at all")
    with pytest.raises(ssl.SSLError) as refused:
        stack.call("GET", "/healthz", token=None, ctx=ctx)
    assert "PROTOCOL_VERSION" in str(refused.value).upper(), refused.value


def test_request_ids_pass_through_nginx(stack):
    own = stack.call("GET", "/healthz", token=None, headers={"X-Request-ID": "e2e-rid-1"})
    assert own.headers["x-request-id"] == "e2e-rid-1"
    made = stack.call("GET", "/healthz", token=None)
    rid = made.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)  # nginx's $request_id, adopted by the app
    deadline = time.monotonic() + 5
    while rid not in (stack.dir / "scim-bridge.access.log").read_text():
        assert time.monotonic() < deadline, "nginx's access log lacks the request id"
        time.sleep(0.05)
    line = next(json.loads(raw) for raw in
                (stack.dir / "scim-bridge.access.log").read_text().splitlines() if rid in raw)
    assert (line["request_id"], line["status"], line["tls"]) == (rid, 200, line["tls"])
    assert line["tls"] in ("TLSv1.2", "TLSv1.3")


def test_health_endpoints_need_no_token_and_metrics_do(stack):
    assert stack.call("GET", "/healthz", token=None).status == 200
    assert stack.call("GET", "/readyz", token=None).json == {
        "status": "ready", "provider": 1, "lagging": False}
    assert stack.call("GET", "/metrics", token=None).status == 401
    assert stack.call("GET", "/metrics", token=TOKEN).status == 401
    scraped = stack.call("GET", "/metrics", token=METRICS_TOKEN)
    assert scraped.status == 200 and b"scim_http_requests_total" in scraped.raw


def test_bodies_over_the_limit_get_a_scim_413_from_nginx(stack, ldap):
    assert stack.call("GET", "/healthz", token=None).status == 200
    too_big = b" " * (MAX_BODY + 1)
    reply = stack.call("POST", "/scim/v2/Users", raw=too_big)
    assert reply.status == 413
    assert reply.headers["content-type"].startswith("application/scim+json")
    assert reply.json["status"] == "413"
    access = (stack.dir / "gunicorn.out").read_text()  # gunicorn's JSON access log
    assert '"status": 200' in access and '"status": 413' not in access  # nginx answered


def test_a_large_member_patch_reaches_the_app(stack, ldap):
    user = stack.call("POST", "/scim/v2/Users", entra.minimal_user("big.patch@example.org"))
    group = stack.call("POST", "/scim/v2/Groups", entra.group("Big Patch"))
    real = {"value": user.json["id"]}
    unknown = [{"value": str(uuid.uuid4())} for _ in range(9000)]  # ≈ 450 KB
    body = entra.patch({"op": "Add", "path": "members", "value": [real]},
                       {"op": "Remove", "path": "members", "value": unknown})
    assert len(json.dumps(body)) > 400_000
    reply = stack.call("PATCH", f"/scim/v2/Groups/{group.json['id']}", body)
    assert reply.status == 204, reply.raw
    members = stack.call("GET", f"/scim/v2/Groups/{group.json['id']}").json["members"]
    assert [m["value"] for m in members] == [user.json["id"]]


#: Stalled sockets: more than gunicorn's 2 workers × 4 threads could serve at once.
STALLED = 40
#: deploy/nginx.conf's client_header_timeout.
HEADER_TIMEOUT = 10.0


def _stall(stack: Stack) -> ssl.SSLSocket:
    """A TLS connection that sends a request line and one header, then nothing."""
    raw = socket.create_connection(("127.0.0.1", stack.https_port), timeout=10)
    sock = stack.tls().wrap_socket(raw, server_hostname="127.0.0.1")
    sock.sendall(b"GET /scim/v2/Users HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    return sock


def _timed(stack: Stack, method: str, path: str, token: str | None) -> tuple[Reply, float]:
    started = time.monotonic()
    conn = http.client.HTTPSConnection("127.0.0.1", stack.https_port, timeout=5,
                                       context=stack.tls())
    reply = _exchange(conn, method, path, None, None, token, None)
    return reply, time.monotonic() - started


def test_stalled_partial_requests_never_reach_gunicorn(stack):
    """Issue 17: gunicorn reached directly is starved by a few sockets that send a
    request line and one header and stop (each holds a worker thread). Through nginx the
    same 40 sockets hold nothing of gunicorn's: SCIM and /healthz answer at once (each
    within a 5 s bound), gunicorn logs none of them, and nginx drops them by itself
    after client_header_timeout."""
    served_before = (stack.dir / "gunicorn.out").read_text().count("\n")
    attack = [_stall(stack) for _ in range(STALLED)]
    started = time.monotonic()
    try:
        time.sleep(1.0)  # every stalled request is in nginx's hands
        for _ in range(3):
            health, took = _timed(stack, "GET", "/healthz", None)
            assert (health.status, health.json) == (200, {"status": "ok"})
            assert took < 5.0
            listed, took = _timed(stack, "GET", "/scim/v2/Users?count=1", TOKEN)
            assert listed.status == 200 and "totalResults" in listed.json
            assert took < 5.0
        # the attack stops by itself: nginx closes every stalled socket
        for sock in attack:
            sock.settimeout(max(HEADER_TIMEOUT + 10 - (time.monotonic() - started), 0.1))
            try:
                assert sock.recv(1024) == b""
            except (ConnectionResetError, ssl.SSLError):
                pass  # closed, less politely: as good
        assert time.monotonic() - started < HEADER_TIMEOUT + 10
    finally:
        for sock in attack:
            with contextlib.suppress(OSError):
                sock.close()
    lines = (stack.dir / "gunicorn.out").read_text().splitlines()[served_before:]
    access = [json.loads(line) for line in lines if line.startswith("{")]
    seen = sorted((line["path"], line.get("query")) for line in access)
    # the six probes, and none of the stalled requests
    assert seen == [("/healthz", None)] * 3 + [("/scim/v2/Users", "count=1")] * 3, seen


def _ldap_sockets(pid: int, port: int) -> set[int]:
    """Inodes of the TCP sockets process ``pid`` holds to 127.0.0.1:``port``."""
    wanted = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                cols = row.split()
                if int(cols[2].rsplit(":", 1)[1], 16) == port and cols[3] == "01":
                    wanted.add(int(cols[9]))
    held = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    held.add(int(target[8:-1]))
    return held & wanted


def test_each_worker_has_its_own_ldap_connections(stack, slapd):
    master = stack.procs["gunicorn"].pid
    workers = _children(master)
    assert len(workers) == 2
    port = slapd.port
    before = _scrape(stack)
    sent = 0
    deadline = time.monotonic() + 30
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        while not all(_ldap_sockets(w, port) for w in workers):
            assert time.monotonic() < deadline, "requests never reached both workers"
            replies = list(pool.map(lambda _: stack.call("GET", "/readyz", token=None),
                                    range(32)))
            assert all(r.status == 200 for r in replies)
            sent += len(replies)
    held = {w: _ldap_sockets(w, port) for w in workers}
    assert not _ldap_sockets(master, port), "the master must never open LDAP connections"
    assert held[workers[0]] and held[workers[1]]
    assert not held[workers[0]] & held[workers[1]], "a connection is shared across workers"
    # prometheus_client's multiprocess mode: a scrape of either worker counts both.
    after = _scrape(stack)
    key = 'scim_http_requests_total{endpoint="/readyz",method="GET",status="200"}'
    assert after.get(key, 0) - before.get(key, 0) == sent


def _scrape(stack: Stack) -> dict[str, float]:
    text = stack.call("GET", "/metrics", token=METRICS_TOKEN).raw.decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out
