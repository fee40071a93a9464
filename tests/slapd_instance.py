"""Drive scripts/slapd from tests: one private slapd per instance folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parent.parent
SLAPD_SCRIPT = REPO / "scripts" / "slapd"
SLAPD_TOOLS = tuple(
    Path("/usr/sbin") / name for name in ("slapd", "slapadd", "slapmodify", "slappasswd")
)
NOT_INSTALLED_REASON = "slapd is not installed: run 'apt-get install slapd ldap-utils' as root"
SCRIPT_TIMEOUT = 60.0


class SlapdError(RuntimeError):
    pass


def slapd_available() -> bool:
    return all(os.access(tool, os.X_OK) for tool in SLAPD_TOOLS)


def free_port() -> int:
    """A loopback port that is free together with the next one: an instance started with
    ``--tls`` (or ``--listen``, which implies it) also serves ldaps:// on PORT+1, and other
    slapds, gunicorns and nginxs of a parallel run take ports at random."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as upper:
                try:
                    upper.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise OSError("no two consecutive free loopback ports")


def run_script(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(SLAPD_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )
    if check and result.returncode != 0:
        raise SlapdError(
            f"scripts/slapd {' '.join(args)} exited with {result.returncode}:\n{result.stderr}"
        )
    return result


def parse_env(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            env[key] = value
    return env


def process_alive(pid: int) -> bool:
    """False once the process is gone or a zombie: slapd is re-parented when scripts/slapd
    exits, and PID 1 may reap it late."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class SlapdInstance:
    def __init__(self) -> None:
        self.dir: Path | None = None
        self.port: int | None = None
        self.nosync = True
        self.env: dict[str, str] = {}

    def start(
        self,
        dir: Path,
        port: int | None = None,
        nosync: bool = True,
        base_dn: str | None = None,
    ) -> dict[str, str]:
        """Start (setting up on first use) and return the LDAP_* settings it printed."""
        port = port or free_port()
        args = ["start", "--dir", str(dir), "--port", str(port)]
        if nosync:
            args.append("--nosync")
        if base_dn:
            args += ["--base-dn", base_dn]
        self.env = parse_env(run_script(*args).stdout)
        self.dir, self.port, self.nosync = Path(dir), port, nosync
        return dict(self.env)

    def _folder(self) -> Path:
        if self.dir is None:
            raise SlapdError("this SlapdInstance was never started")
        return self.dir

    @property
    def pid(self) -> int | None:
        """Pid of the live slapd, None when it is not running."""
        try:
            pid = int((self._folder() / "run" / "slapd.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if process_alive(pid) else None

    def _signal(self, sig: signal.Signals) -> int:
        pid = self.pid
        if pid is None:
            raise SlapdError(f"slapd in {self.dir} is not running")
        os.kill(pid, sig)
        return pid

    def stop(self) -> None:
        if self.dir is not None:
            run_script("stop", "--dir", str(self.dir))

    def kill(self) -> None:
        """SIGKILL, as a crash would: the pid file and ldapi socket stay behind."""
        pid = self._signal(signal.SIGKILL)
        if not wait_gone(pid):
            raise SlapdError(f"slapd pid {pid} survived SIGKILL")

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def restart(self) -> dict[str, str]:
        self.stop()
        return self.start(self._folder(), self.port, self.nosync)

    def __enter__(self) -> SlapdInstance:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
