"""Helpers of the reliability tests: gunicorn in a subprocess, a plain HTTP client, and
a reader that checks the directory's invariants with a plain admin connection."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ldap3 import BASE, SUBTREE, Connection, Server
from ldap3.core.exceptions import LDAPNoSuchObjectResult
from ldap3.utils.conv import escape_filter_chars

from directory.dn import normalise_dn
from tests import entra
from tests.conftest import TOKEN
from tests.slapd_instance import free_port

ROOT = Path(__file__).resolve().parents[2]
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


# --- gunicorn ---------------------------------------------------------------------------------


class Gunicorn:
    """gunicorn serving ``app:app`` with deploy/gunicorn.conf.py on a loopback port.

    Like bench/stack.py's, but its output (error log, access log, app logs) goes to
    ``log`` so tests can read it, and its workers can be listed and killed.
    """

    def __init__(self, env: dict[str, str], log: Path, *, workers: int = 2,
                 threads: int = 4) -> None:
        self.port = free_port()
        self.log = log
        full = {k: v for k, v in os.environ.items() if not k.startswith(("LDAP_", "SCIM_"))}
        full.update({"BIND": f"127.0.0.1:{self.port}", "WEB_CONCURRENCY": str(workers),
                     "GUNICORN_THREADS": str(threads), "LOG_LEVEL": "INFO",
                     "SCIM_BEARER_TOKEN": TOKEN})
        full.update(env)
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", "deploy/gunicorn.conf.py",
                 "app:app"], cwd=ROOT, env=full, start_new_session=True,
                stdout=out, stderr=subprocess.STDOUT)
        self.workers = workers
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {log.read_text(errors='replace')[-2000:]}")
            if len(self.worker_pids()) == workers:
                try:
                    call(self, "GET", "/scim/v2/ServiceProviderConfig", token=None, timeout=2)
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("gunicorn did not start")

    def worker_pids(self) -> list[int]:
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def kill_worker(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)

    def wait_workers(self, timeout: float = 20) -> None:
        """Until the master has replaced killed workers and they answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.worker_pids()) == self.workers:
                try:
                    call(self, "GET", "/scim/v2/ServiceProviderConfig", timeout=2)
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        raise AssertionError("gunicorn did not replace its workers")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# --- HTTP -------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any
    elapsed: float
    raw: bytes = b""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def call(server: Gunicorn | int, method: str, path: str, body: Any = None, *,
         token: str | None = TOKEN, headers: dict[str, str] | None = None,
         timeout: float = 15, raw: bytes | None = None) -> Reply:
    """One request on a fresh connection; raises OSError (incl. http.client's) on a
    transport failure, e.g. a killed worker."""
    port = server if isinstance(server, int) else server.port
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/scim+json")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        payload = response.read()
    except http.client.HTTPException as exc:  # RemoteDisconnected & co: a transport failure
        raise ConnectionError(str(exc)) from exc
    finally:
        conn.close()
    elapsed = time.monotonic() - started
    try:
        parsed = json.loads(payload) if payload else None
    except ValueError:
        parsed = payload.decode(errors="replace")
    return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, parsed,
                 elapsed, payload)


def scim_path(path: str) -> str:
    return "/scim/v2" + path


def is_scim_error(reply: Reply, status: int) -> bool:
    body = reply.body
    return (reply.status == status and isinstance(body, dict) and body.get("schemas") == [ERROR]
            and body.get("status") == str(status) and bool(body.get("detail")))


def is_retryable(reply: Reply) -> bool:
    """A 503 the way Entra needs it: SCIM error body and a Retry-After."""
    return is_scim_error(reply, 503) and int(reply.headers.get("retry-after", "0")) >= 1


# --- the directory, read back -----------------------------------------------------------------


def admin(env: dict[str, str]) -> Connection:
    host, port = env["LDAP_URL"].removeprefix("ldap://").split(":")
    return Connection(Server(host, int(port), connect_timeout=5), env["LDAP_BIND_DN"],
                      env["LDAP_BIND_PASSWORD"], auto_bind=True, raise_exceptions=True,
                      receive_timeout=10)


@dataclass
class Snapshot:
    """People and groups of one tenant, by normalised DN."""

    base: str
    users: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    groups: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @property
    def placeholder(self) -> str:
        return normalise_dn(f"cn=empty-group-placeholder,ou=Service,{self.base}")

    def user_by_name(self, user_name: str) -> dict[str, list[str]] | None:
        wanted = user_name.lower()
        return next((u for u in self.users.values()
                     if any(v.lower() == wanted for v in u.get("uid", []))), None)

    def members(self, group_dn: str) -> set[str]:
        return {normalise_dn(m) for m in self.groups[normalise_dn(group_dn)].get("member", [])}

    def violations(self) -> list[str]:
        """Every broken invariant: an empty group, the placeholder beside a real member,
        a member or manager that does not exist."""
        problems = []
        everything = set(self.users) | set(self.groups)
        for dn, group in self.groups.items():
            members = {normalise_dn(m) for m in group.get("member", [])}
            if not members:
                problems.append(f"{dn}: no member at all")
            if self.placeholder in members and len(members) > 1:
                problems.append(f"{dn}: the placeholder beside real members")
            for m in members - {self.placeholder} - everything:
                problems.append(f"{dn}: member {m} does not exist")
        for dn, user in self.users.items():
            for m in user.get("manager", []):
                if normalise_dn(m) not in self.users:
                    problems.append(f"{dn}: manager {m} does not exist")
        return problems


def snapshot(conn: Connection, base: str, people_base: str | None = None) -> Snapshot:
    """Read every user and group of the tenant at ``base`` (one search each)."""
    shot = Snapshot(people_base or base)
    for ou, into in (("ou=People", shot.users), ("ou=Groups", shot.groups)):
        try:
            conn.search(f"{ou},{base}", "(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))",
                        SUBTREE, attributes=["*", "entryUUID", "entryCSN"])
        except LDAPNoSuchObjectResult:
            continue
        for e in conn.response:
            if e.get("type") != "searchResEntry":
                continue
            into[normalise_dn(e["dn"])] = {
                k.lower(): [str(v) for v in (vals if isinstance(vals, list) else [vals])]
                for k, vals in e["attributes"].items()}
    return shot


def read_entry(conn: Connection, dn: str) -> dict[str, list[str]] | None:
    """All user and operational attributes of one entry (for before/after comparisons)."""
    try:
        conn.search(dn, "(objectClass=*)", BASE, attributes=["*", "+"])
    except LDAPNoSuchObjectResult:
        return None
    if not conn.response:
        return None
    return {k.lower(): sorted(str(v) for v in (vals if isinstance(vals, list) else [vals]))
            for k, vals in conn.response[0]["attributes"].items()}


def find_uid(conn: Connection, base: str, user_name: str) -> str | None:
    conn.search(f"ou=People,{base}", f"(uid={escape_filter_chars(user_name)})", SUBTREE,
                attributes=["entryUUID"])
    return str(conn.response[0]["attributes"]["entryUUID"]) if conn.response else None


def seed_user(server: Gunicorn | int, user_name: str, **extra: Any) -> str:
    reply = call(server, "POST", scim_path("/Users"), {**entra.minimal_user(user_name), **extra})
    assert reply.status == 201, reply.body
    return str(reply.body["id"])


def seed_group(server: Gunicorn | int, name: str, members: list[str] | None = None) -> str:
    reply = call(server, "POST", scim_path("/Groups"), entra.group(name, members))
    assert reply.status == 201, reply.body
    return str(reply.body["id"])


# --- load ---------------------------------------------------------------------------------


@dataclass
class Shot:
    kind: str
    status: int  # LOST_ANSWER: no HTTP answer (timeout, reset)
    elapsed: float
    retryable: bool
    started: float


LOST_ANSWER = -1
#: What the load sends: (kind, method, path) with weights; ``{id}`` is a seeded user's id.
LOAD_MIX = [
    ("page", "GET", "/Users?count=200&excludedAttributes=groups", 2),
    ("lookup", "GET", '/Users?filter=userName%20eq%20%22load{n}@x.org%22', 2),
    ("read", "GET", "/Users/{id}", 1),
]


def seed_people(conn: Connection, base: str, count: int) -> list[str]:
    """``count`` users written straight into LDAP (fast); their entryUUIDs."""
    ids = []
    for n in range(count):
        dn = f"uid=load{n}@x.org,ou=People,{base}"
        conn.add(dn, ["inetOrgPerson", "scimResource"],
                 {"uid": f"load{n}@x.org", "cn": f"Load {n}", "sn": "Load",
                  "displayName": f"Load {n}", "mail": f"load{n}@x.org"})
        conn.search(dn, "(objectClass=*)", BASE, attributes=["entryUUID"])
        ids.append(str(conn.response[0]["attributes"]["entryUUID"]))
    return ids


def load(port: int, ids: list[str], clients: int, duration: float,
         timeout: float = 15) -> list[Shot]:
    """``clients`` threads sending LOAD_MIX back to back for ``duration`` seconds."""
    import random
    import threading

    shots: list[Shot] = []
    lock = threading.Lock()
    deadline = time.monotonic() + duration
    weighted = [m for m in LOAD_MIX for _ in range(m[3])]

    def client(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            kind, method, path, _ = rng.choice(weighted)
            n = rng.randrange(len(ids))
            started = time.monotonic()
            try:
                reply = call(port, method, scim_path(path.format(n=n, id=ids[n])),
                             timeout=timeout)
                shot = Shot(kind, reply.status, reply.elapsed, is_retryable(reply), started)
            except OSError:
                shot = Shot(kind, LOST_ANSWER, time.monotonic() - started, False, started)
            with lock:
                shots.append(shot)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + timeout + 5)
    return shots
