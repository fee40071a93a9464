"""The README's first command (`make run` → scripts/serve) on a fresh folder:
private slapd set up by itself, endpoint and token printed, data kept across restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.slapd_instance import free_port, run_script, slapd_available

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def _start(var: Path, slapd_port: int, http_port: int) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LDAP_", "SCIM_"))}
    env.update(SCIM_VAR_DIR=str(var), SLAPD_PORT=str(slapd_port),
               BIND=f"127.0.0.1:{http_port}", WEB_CONCURRENCY="2")
    proc = subprocess.Popen([str(ROOT / "scripts" / "serve")], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    endpoint = proc.stdout.readline()
    token_line = proc.stdout.readline()
    assert endpoint.startswith("SCIM endpoint (Tenant URL): http://127.0.0.1:")
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
        proc, token = _start(var, slapd_port, http_port)
        try:
            status, user = _call("POST", f"{base}/Users", token, {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "kept@example.org"})
            assert status == 201
        finally:
            _stop(proc)
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
