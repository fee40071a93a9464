"""Start and stop the real stack for benchmarks: private slapd and gunicorn on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.slapd_instance import SlapdInstance, free_port  # noqa: E402


def start_slapd(folder: Path, nosync: bool, multival: str | None = None) -> SlapdInstance:
    """A private slapd; ``multival`` (e.g. "member 100,20", the config before issue 15) sets
    olcDbMultival offline before slapd serves, to compare against the shipped config."""
    instance = SlapdInstance()
    instance.start(folder, nosync=nosync)
    if multival:
        instance.stop()
        ldif = ("dn: olcDatabase={1}mdb,cn=config\nchangetype: modify\n"
                f"replace: olcDbMultival\nolcDbMultival: {multival}\n-\n")
        subprocess.run(["/usr/sbin/slapmodify", "-n0", "-F", str(folder / "slapd.d"), "-l",
                        "/dev/stdin"], input=ldif, text=True, check=True, capture_output=True)
        instance.start(folder, nosync=nosync)
    return instance


class Gunicorn:
    """gunicorn serving app:app with the production config, on a free loopback port."""

    def __init__(self, env: dict[str, str], workers: int, threads: int) -> None:
        self.port = free_port()
        full = {k: v for k, v in os.environ.items() if not k.startswith(("LDAP_", "SCIM_"))}
        full.update(env, BIND=f"127.0.0.1:{self.port}", WEB_CONCURRENCY=str(workers),
                    GUNICORN_THREADS=str(threads), GUNICORN_ACCESS_LOG="/dev/null",
                    LOG_LEVEL="WARNING")
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", "deploy/gunicorn.conf.py",
             "app:app"], cwd=ROOT, env=full, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}/scim/v2"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1)
            except urllib.error.HTTPError:
                return  # any HTTP answer means it is serving
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("gunicorn did not start")

    def rss_kib(self, field: str = "VmRSS") -> dict[int, int]:
        """Resident memory of each worker (KiB); ``VmHWM`` for its peak so far."""
        out: dict[int, int] = {}
        for child in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text(
        ).split():
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    out[int(child)] = int(line.split()[1])
        return out

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
