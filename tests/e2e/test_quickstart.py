"""The README's quick start, walked on a clean checkout (the tracked files only: no var/,
no bench/results/, no artifacts/): `make run` on the ports the quick start says how to
change, the README's own *Try it* commands, Ctrl-C, then the start-ups that must fail
(the port taken, a wrong bind password) and `make clean`.

The checkout shares this worktree's virtualenv (``VENV=…``): building one would
download packages, which is what `make venv` is for, not this test.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.slapd_instance import free_port, parse_env, process_alive, run_script

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv"
pytestmark = [pytest.mark.e2e, pytest.mark.slapd]


def _checkout(target: Path) -> Path:
    """The files git tracks, copied with their times (so make sees .venv as current)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _try_it(readme: str) -> str:
    """The shell block after "Try it:" in the quick start."""
    found = re.search(r"Try it:\n\n```sh\n(.*?)```", readme, re.S)
    assert found, "the README's quick start has no 'Try it' block"
    return found[1]


def _make(checkout: Path, target: str, env: dict[str, str], **kw: object) -> subprocess.Popen:
    return subprocess.Popen(["make", target, f"VENV={VENV}"], cwd=checkout, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)  # type: ignore[call-overload]


def test_the_quick_start_from_a_clean_checkout(slapd, tmp_path):
    """``slapd``: only so that a machine without slapd fails here rather than skips."""
    checkout = _checkout(tmp_path / "clone")
    assert not (checkout / "var").exists() and not (checkout / "bench" / "results").exists()
    http_port, slapd_port = free_port(), free_port()
    bind = f"127.0.0.1:{http_port}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LDAP_", "SCIM_", "AUDIT_", "GUNICORN_", "ADMIN_", "MAKE"))
           and k != "MFLAGS"}  # under `make test`: no "make[1]: Entering directory"
    env.update(BIND=bind, SLAPD_PORT=str(slapd_port), WEB_CONCURRENCY="2")
    readme = (checkout / "README.md").read_text()
    assert "BIND=127.0.0.1:8011 SLAPD_PORT=3891 make run" in readme
    run: subprocess.Popen | None = None
    try:
        run = _make(checkout, "run", env)
        assert run.stdout is not None and run.stderr is not None
        assert run.stdout.readline() == "scripts/serve\n"  # make echoes the command
        banner = [run.stdout.readline() for _ in range(5)]
        assert banner[0] == f"SCIM endpoint (Tenant URL): http://{bind}/scim/v2\n", banner
        token = banner[1].split(": ", 1)[1].strip()
        assert token == (checkout / "var" / "bearer-token").read_text().strip()
        assert banner[2].startswith(f"Admin dashboard: http://{bind}/admin/ ")
        assert "scripts/slapd stop --dir var/slapd" in banner[4]

        script = _try_it(readme).replace("127.0.0.1:8000", bind)
        deadline = time.monotonic() + 30
        while True:  # the banner comes before gunicorn listens: wait for it
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", http_port)) == 0:
                    break
            assert time.monotonic() < deadline, "make run did not listen within 30 s"
            time.sleep(0.2)
        tried = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=checkout,
                               capture_output=True, text=True, timeout=60)
        assert tried.returncode == 0, tried.stderr
        assert tried.stdout.count('"userName":"ada@example.org"') == 2  # created, found
        assert '"totalResults":1' in tried.stdout

        started = time.monotonic()
        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C
        run.wait(timeout=30)
        took = time.monotonic() - started
        errors = run.stderr.read()
        assert took < 2.0, (took, errors[-3000:])
        assert "SIGKILL" not in errors
        assert '"name":"ada@example.org"' in (checkout / "var" / "audit.log").read_text()

        # the private slapd kept running, as the banner says; the port taken ...
        assert run_script("status", "--dir", str(checkout / "var" / "slapd")).returncode == 0
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", http_port))
            holder.listen()
            taken = subprocess.run(["make", "run", f"VENV={VENV}"], cwd=checkout, env=env,
                                   capture_output=True, text=True, timeout=120)
        assert taken.returncode != 0 and "SCIM endpoint" not in taken.stdout
        assert f"serve: {bind} is already in use (another `make run`?)" in taken.stderr

        # ... and a wrong bind password, each in one line before any banner
        ldap = parse_env(run_script("env", "--dir", str(checkout / "var" / "slapd")).stdout)
        url, dn = ldap["LDAP_URL"], ldap["LDAP_BIND_DN"]
        assert url == f"ldap://127.0.0.1:{slapd_port}"
        wrong = {**env, **ldap, "LDAP_BIND_PASSWORD": "wrong"}
        refused = subprocess.run(["make", "run", f"VENV={VENV}"], cwd=checkout, env=wrong,
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0 and "SCIM endpoint" not in refused.stdout
        assert (f"directory: {url} refused the bind as {dn}: wrong password or no such "
                "entry (check LDAP_BIND_PASSWORD and LDAP_BIND_DN)") in refused.stderr
    finally:
        if run is not None:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
            for stream in (run.stdout, run.stderr):
                if stream is not None:
                    stream.close()
        pid_file = checkout / "var" / "slapd" / "run" / "slapd.pid"
        pid = int(pid_file.read_text().strip()) if pid_file.exists() else None
        cleaned = subprocess.run(["make", "clean", f"VENV={tmp_path / 'no-venv'}"],
                                 cwd=checkout, env=env, capture_output=True, text=True,
                                 timeout=120)
        if pid is not None and process_alive(pid):
            os.kill(pid, signal.SIGTERM)
    assert cleaned.returncode == 0, cleaned.stderr
    assert not (checkout / "var").exists()
    assert pid is not None and not process_alive(pid)
