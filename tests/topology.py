"""Drive `scripts/slapd topology` from tests: two providers and a consumer, replicating."""

from __future__ import annotations

import os
import signal
import socket
import time
import warnings
from pathlib import Path
from typing import Any

from tests.slapd_instance import SlapdError, parse_env, process_alive, run_script, wait_gone

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from ldap3 import BASE, NONE, SUBTREE, Connection, Server

MEMBERS = ("provider1", "provider2", "consumer")
#: What a tree comparison reads: every user attribute and the ones replication must carry.
COMPARED = ["*", "entryUUID", "entryCSN", "createTimestamp", "modifyTimestamp"]


def free_base_port() -> int:
    """A port P with P, P+2 and P+4 free on loopback (the members' ports)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = int(sock.getsockname()[1])
        if base + 5 >= 65536:
            continue
        try:
            for offset in (2, 4):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise SlapdError("no three free loopback ports found")


class Topology:
    def __init__(self, folder: Path) -> None:
        self.dir = folder
        self.env: dict[str, str] = {}
        self.base = 0

    def start(self, base: int | None = None) -> dict[str, str]:
        args = ["topology", "start", "--dir", str(self.dir), "--nosync"]
        if base or not self.base:
            self.base = base or free_base_port()
            args += ["--port", str(self.base)]
        self.env = parse_env(run_script(*args).stdout)
        return dict(self.env)

    def stop(self) -> None:
        run_script("topology", "stop", "--dir", str(self.dir), check=False)

    def status(self) -> tuple[int, str]:
        result = run_script("topology", "status", "--dir", str(self.dir), check=False)
        return result.returncode, result.stdout

    def port(self, member: str) -> int:
        return self.base + 2 * MEMBERS.index(member)

    def url(self, member: str) -> str:
        return f"ldap://127.0.0.1:{self.port(member)}"

    def pid(self, member: str) -> int | None:
        try:
            pid = int((self.dir / member / "run" / "slapd.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if process_alive(pid) else None

    def kill(self, member: str) -> None:
        """SIGKILL one member, as a host loss would."""
        pid = self.pid(member)
        if pid is None:
            raise SlapdError(f"{member} is not running")
        os.kill(pid, signal.SIGKILL)
        if not wait_gone(pid):
            raise SlapdError(f"{member} pid {pid} survived SIGKILL")

    def connect(self, member: str) -> Connection:
        return Connection(Server(self.url(member), get_info=NONE, connect_timeout=5),
                          self.env["LDAP_BIND_DN"], self.env["LDAP_BIND_PASSWORD"],
                          auto_bind=True, receive_timeout=10)

    def tree(self, member: str) -> dict[str, dict[str, Any]]:
        """Every entry of the member's suffix, by lower-cased DN, with sorted values."""
        conn = self.connect(member)
        try:
            entries = conn.extend.standard.paged_search(
                self.env["LDAP_BASE_DN"], "(objectClass=*)", SUBTREE, attributes=COMPARED,
                paged_size=500, generator=False)
            return {entry["dn"].lower(): {
                name.lower(): sorted(v.decode("utf-8", "replace") for v in values)
                for name, values in entry["raw_attributes"].items()}
                    for entry in entries if entry.get("type") == "searchResEntry"}
        finally:
            conn.unbind()

    def wait_entry(self, member: str, dn: str, timeout: float = 15.0) -> dict[str, Any] | None:
        conn = self.connect(member)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if conn.search(dn, "(objectClass=*)", BASE, attributes=COMPARED):
                    return dict(conn.entries[0].entry_attributes_as_dict)
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.05)
        except Exception:  # noqa: BLE001 - the entry's parent may not be there yet
            return None
        finally:
            conn.unbind()

    def wait_in_sync(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            code, out = self.status()
            if code == 0:
                return out
            if time.monotonic() > deadline:
                raise SlapdError(f"the topology did not converge in {timeout:.0f} s:\n{out}")
            time.sleep(0.2)
