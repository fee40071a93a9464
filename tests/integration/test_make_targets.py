"""The Makefile's promises: `make clean` stops the private slapd before deleting var/,
and `make test` names what to install in one line instead of passing with skips."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.slapd_instance import free_port, process_alive, run_script

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slapd


def test_make_clean_stops_the_private_slapd_before_deleting_var(slapd, tmp_path):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "scripts").symlink_to(ROOT / "scripts")
    var = checkout / "var" / "slapd"
    run_script("start", "--dir", str(var), "--port", str(free_port()), "--nosync")
    pid = int((var / "run" / "slapd.pid").read_text().strip())
    assert process_alive(pid)
    try:
        done = subprocess.run(["make", "-f", str(ROOT / "Makefile"), "clean",
                               f"VENV={checkout / 'no-venv'}"], cwd=checkout,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert not (checkout / "var").exists()
        assert not process_alive(pid)
        assert run_script("status", "--dir", str(var), check=False).returncode != 0
    finally:
        if var.exists():
            run_script("stop", "--dir", str(var), check=False)
        if process_alive(pid):  # var/ went while it ran: the defect this test is about
            os.kill(pid, signal.SIGTERM)


def test_missing_test_tools_are_named_in_one_line():
    """Without ldap-utils, nginx or Chromium (here: a PATH without them) and without
    root, `make test` stops at once saying what to install."""
    tools = Path(tempfile.mkdtemp(prefix="scim-prereq-"))  # readable by the other user
    tools.chmod(0o755)
    try:
        _check_missing_tools(tools)
    finally:
        shutil.rmtree(tools)


def _check_missing_tools(tools: Path) -> None:
    for name in ("bash", "id", "env"):
        (tools / name).symlink_to(shutil.which(name) or f"/usr/bin/{name}")
    command = [str(ROOT / "scripts" / "test-prerequisites")]
    if os.getuid() == 0:  # as root the script would install them: be somebody else
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    done = subprocess.run(command, env={"PATH": str(tools)}, capture_output=True, text=True,
                          timeout=60, executable=shutil.which(command[0]))
    missing = [pkg for pkg, probe in (("ldap-utils", "ldapadd"), ("nginx", "nginx"),
                                      ("chromium", "chromium"),
                                      ("chromium-driver", "chromedriver"))
               if not shutil.which(probe, path=f"{tools}:/usr/sbin")]
    assert missing  # the PATH hides at least ldapadd and chromium
    assert done.returncode == 2
    listed = " ".join(missing)
    assert done.stderr.splitlines() == [
        f"make test: {listed} not installed; run 'sudo apt-get install -y {listed}' "
        "(every test runs; none is skipped)"]
