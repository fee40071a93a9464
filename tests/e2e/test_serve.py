"""The README's first command (`make run` → scripts/serve) on a fresh folder:
private slapd set up by itself, endpoint and token printed (only once the settings, the
port and the directory have been checked), data and audit trail kept across restarts,
Ctrl-C stops at once; and the start-ups that must fail say why in one line."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.slapd_instance import free_port, run_script, slapd_available

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def _env(var: Path, slapd_port: int, http_port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LDAP_", "SCIM_", "AUDIT_", "GUNICORN_"))}
    env.update(SCIM_VAR_DIR=str(var), SLAPD_PORT=str(slapd_port),
               BIND=f"127.0.0.1:{http_port}", WEB_CONCURRENCY="2", **extra)
    return env


def _start(var: Path, slapd_port: int, http_port: int,
           banner: list[str] | None = None) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([str(ROOT / "scripts" / "serve")], cwd=ROOT,
                            env=_env(var, slapd_port, http_port),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(5)]
    if banner is not None:
        banner.extend(lines)
    endpoint, token_line = lines[0], lines[1]
    assert endpoint == f"SCIM endpoint (Tenant URL): http://127.0.0.1:{http_port}/scim/v2\n"
    token = token_line.split(": ", 1)[1].strip()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            _call("GET", f"http://127.0.0.1:{http_port}/scim/v2/ServiceProviderConfig", token)
            return proc, token
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("scripts/serve did not answer within 30 s")


def _call(method: str, url: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read() or b"{}")


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.mark.skipif(not slapd_available() and not os.environ.get("CI"),
                    reason="slapd is not installed: apt-get install slapd ldap-utils")
def test_serve_sets_up_slapd_prints_token_and_keeps_data(tmp_path):
    var = tmp_path / "var"
    slapd_port, http_port = free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}/scim/v2"
    try:
        banner: list[str] = []
        proc, token = _start(var, slapd_port, http_port, banner)
        try:
            status, user = _call("POST", f"{base}/Users", token, {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "kept@example.org"})
            assert status == 201
            # plain HTTP on loopback: the dashboard's cookie must come back from a browser
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/admin/login",
                                        timeout=10) as page:
                cookies = page.headers.get_all("Set-Cookie") or []
            assert cookies and not any("secure" in c.lower().split("; ") for c in cookies), \
                cookies
        finally:
            _stop(proc)
        root = f"http://127.0.0.1:{http_port}"
        assert banner[2] == (f"Admin dashboard: {root}/admin/ (to create the first admin, "
                             "see README, Admin dashboard)\n")
        assert banner[3] == f"Audit trail (Activity page): {var}/audit.log\n"
        assert f"scripts/slapd stop --dir {var}/slapd" in banner[4]
        trail = [json.loads(line) for line in (var / "audit.log").read_text().splitlines()]
        assert [(r["operation"], r.get("name")) for r in trail
                if r["operation"] != "contact"] == [("create", "kept@example.org")]
        assert (var / "slapd" / "data").is_dir()
        assert oct((var / "bearer-token").stat().st_mode)[-3:] == "600"

        proc, token_again = _start(var, slapd_port, http_port)
        try:
            assert token_again == token
            status, again = _call("GET", f"{base}/Users/{user['id']}", token)
            assert (status, again["userName"]) == (200, "kept@example.org")
        finally:
            _stop(proc)
    finally:
        run_script("stop", "--dir", str(var / "slapd"), check=False)


needs_slapd = pytest.mark.skipif(not slapd_available() and not os.environ.get("CI"),
                                 reason="slapd is not installed: apt-get install slapd ldap-utils")


def _fails(env: dict[str, str], timeout: float = 60) -> tuple[int, str, str]:
    """Run scripts/serve expecting it to stop by itself: (status, stdout, stderr)."""
    done = subprocess.run([str(ROOT / "scripts" / "serve")], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def _lines(text: str) -> list[str]:
    """stderr without slapd's own notes (``slapd: …`` from scripts/slapd start)."""
    return [line for line in text.splitlines() if line and not line.startswith("slapd")]


@needs_slapd
def test_a_taken_port_is_reported_in_one_line_before_any_banner(tmp_path):
    var = tmp_path / "var"
    slapd_port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        try:
            status, out, err = _fails(_env(var, slapd_port, port))
        finally:
            run_script("stop", "--dir", str(var / "slapd"), check=False)
    assert status == 2 and out == ""  # no endpoint or token for a start that fails
    assert _lines(err) == [f"serve: 127.0.0.1:{port} is already in use (another `make run`?):"
                           " stop that, or listen elsewhere with BIND=127.0.0.1:<port>"]


@needs_slapd
def test_a_wrong_or_missing_bind_password_names_the_url_dn_and_setting(slapd, tmp_path):
    url, dn = slapd.env["LDAP_URL"], slapd.env["LDAP_BIND_DN"]
    common = {**slapd.env, "SCIM_BEARER_TOKEN": "t" * 32}
    wrong = _env(tmp_path, 1, free_port(), **{**common, "LDAP_BIND_PASSWORD": "not-it"})
    status, out, err = _fails(wrong)
    assert status == 2 and out == ""
    assert _lines(err) == [f"directory: {url} refused the bind as {dn}: wrong password or no "
                           "such entry (check LDAP_BIND_PASSWORD and LDAP_BIND_DN)"]
    missing = _env(tmp_path, 1, free_port(), **{**common, "LDAP_BIND_PASSWORD": ""})
    status, out, err = _fails(missing)
    assert status == 2 and out == ""
    assert _lines(err) == [f"directory: LDAP_BIND_PASSWORD is empty: set it to the password "
                           f"of {dn} (LDAP_BIND_DN) at {url}"]


@needs_slapd
def test_a_public_url_ending_in_scim_v2_is_refused_in_one_line(slapd, tmp_path):
    env = _env(tmp_path, 1, free_port(), **slapd.env, SCIM_BEARER_TOKEN="t" * 32,
               SCIM_PUBLIC_URL="https://scim.example.com/scim/v2")
    status, out, err = _fails(env)
    assert status == 2 and out == ""
    assert _lines(err) == ["configuration error: SCIM_PUBLIC_URL: give the service's base "
                           "URL without /scim/v2 (the endpoint is <SCIM_PUBLIC_URL>/scim/v2), "
                           "got 'https://scim.example.com/scim/v2'"]


@needs_slapd
def test_ctrl_c_stops_within_two_seconds_with_idle_keep_alive_connections(slapd, tmp_path):
    port = free_port()
    env = _env(tmp_path, 1, port, **slapd.env, SCIM_BEARER_TOKEN="t" * 32)
    proc = subprocess.Popen([str(ROOT / "scripts" / "serve")], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith("SCIM endpoint")
        browser: Any = None
        deadline = time.monotonic() + 30
        while browser is None:
            try:
                browser = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                browser.request("GET", "/admin/login")  # what an open dashboard tab holds
                assert browser.getresponse().read()
            except OSError:
                browser = None
                assert time.monotonic() < deadline, "scripts/serve did not answer"
                time.sleep(0.2)
        # a browser also opens spare connections it has sent nothing on yet
        spare = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
        time.sleep(0.5)
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        proc.wait(timeout=30)
        took = time.monotonic() - started
        errors = proc.stderr.read()
        browser.close()
        for connection in spare:
            connection.close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert took < 2.0, f"Ctrl-C took {took:.1f} s"
    assert "SIGKILL" not in errors
