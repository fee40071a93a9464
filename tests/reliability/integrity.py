"""Reference integrity, read back two ways, for the model-based and crash tests.

:class:`Entra` sends requests the way Entra's provisioning service does: a 5xx or a lost
answer is retried (the same request, after a short pause) until an answer below 500
arrives; every 5xx is recorded. :class:`Expected` is what the acknowledged requests imply
(users, groups, exact memberships, managers). :func:`ldap_problems` compares it with the
raw tree read by a plain admin connection, resolving every ``member``/``manager`` value on
the server (a base search per distinct DN), so equality of DNs is decided by slapd's
matching rules and never by Python's; :func:`scim_problems` compares it with what
``GET /Users`` and ``GET /Groups`` show.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ldap3 import BASE, SUBTREE, Connection
from ldap3.core.exceptions import LDAPException, LDAPNoSuchObjectResult

from tests.reliability.support import ROOT, Gunicorn, Reply, call, scim_path

#: How long one logical request is retried through 5xx and lost answers.
RETRY_DEADLINE = 40.0
#: Entra honours Retry-After (minutes); tests wait at most this long between attempts.
RETRY_PAUSE_CAP = 0.25


# --- Entra's client ---------------------------------------------------------------------------


@dataclass
class Failure:
    """One attempt that Entra would retry: a 5xx answer or no answer at all."""

    method: str
    path: str
    status: int  # -1: no answer (transport failure)
    detail: str


class Entra:
    """Requests as Entra sends them, retried after 5xx and lost answers."""

    def __init__(self, server: Gunicorn, deadline: float = RETRY_DEADLINE) -> None:
        self.server = server
        self.deadline = deadline
        self.failures: list[Failure] = []
        self._lock = threading.Lock()

    def send(self, method: str, path: str, body: Any = None) -> tuple[Reply, bool]:
        """The first answer below 500, and whether an earlier attempt failed (so the
        request may have been applied already: a POST may then see 409, a DELETE 404)."""
        retried = False
        give_up = time.monotonic() + self.deadline
        while True:
            pause = 0.05
            try:
                reply = call(self.server, method, scim_path(path), body, timeout=20)
            except OSError as exc:
                self._record(Failure(method, path, -1, str(exc)))
            else:
                if reply.status < 500:
                    return reply, retried
                detail = reply.body.get("detail", "") if isinstance(reply.body, dict) else ""
                self._record(Failure(method, path, reply.status, str(detail)[:300]))
                pause = float(reply.headers.get("retry-after", "0.05") or 0.05)
            retried = True
            if time.monotonic() > give_up:
                raise AssertionError(f"{method} {path}: no answer below 500 within "
                                     f"{self.deadline} s")
            time.sleep(min(pause, RETRY_PAUSE_CAP))

    def _record(self, failure: Failure) -> None:
        with self._lock:
            self.failures.append(failure)

    def find(self, resource: str, name: str) -> str | None:
        """Entra's lookup by userName or displayName (after a create whose answer it did
        not get)."""
        attr = "userName" if resource == "Users" else "displayName"
        reply, _ = self.send("GET", f"/{resource}?filter=" + quote(f'{attr} eq "{name}"'))
        found = reply.body.get("Resources", []) if reply.status == 200 else []
        return str(found[0]["id"]) if len(found) == 1 else None


# --- what the acknowledged requests imply -----------------------------------------------------


@dataclass
class Expected:
    """Users and groups by SCIM id; ``members[g]`` holds ids of users and groups."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → userName, manager…
    groups: dict[str, str] = field(default_factory=dict)  # id → displayName
    members: dict[str, set[str]] = field(default_factory=dict)

    def parents(self, member: str) -> set[str]:
        return {g for g, ms in self.members.items() if member in ms}


# --- the raw LDAP tree ------------------------------------------------------------------------


class Resolver:
    """DN → entryUUID (None: no such entry), asked of slapd once per distinct DN."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.cache: dict[str, str | None] = {}

    def __call__(self, dn: str) -> str | None:
        if dn not in self.cache:
            try:
                self.conn.search(dn, "(objectClass=*)", BASE, attributes=["entryUUID"])
                found = self.conn.response
                self.cache[dn] = str(found[0]["attributes"]["entryUUID"]) if found else None
            except LDAPNoSuchObjectResult:
                self.cache[dn] = None
            except LDAPException:  # a value that is no valid DN at all
                self.cache[dn] = None
        return self.cache[dn]


def read_tree(conn: Connection, base: str, ou: str, attributes: list[str],
              ) -> dict[str, dict[str, list[str]]]:
    """entryUUID → attributes (and ``dn``) of every entry below ``ou=<ou>,base``."""
    out: dict[str, dict[str, list[str]]] = {}
    try:
        conn.search(f"ou={ou},{base}", "(objectClass=*)", SUBTREE,
                    attributes=["entryUUID", "objectClass", *attributes])
    except LDAPNoSuchObjectResult:
        return out
    for e in conn.response:
        if e.get("type") != "searchResEntry" or "entryUUID" not in e["attributes"]:
            continue
        attrs = {k.lower(): [str(v) for v in (vals if isinstance(vals, list) else [vals])]
                 for k, vals in e["attributes"].items()}
        if len(attrs["objectclass"]) == 1 and attrs["objectclass"][0] == "organizationalUnit":
            continue
        attrs["dn"] = [e["dn"]]
        out[attrs["entryuuid"][0]] = attrs
    return out


def dangling(conn: Connection, base: str) -> list[str]:
    """Every ``member``/``manager`` value of the tenant that names no entry, every
    ``manager`` naming the placeholder or a non-user, every placeholder beside a member,
    every group with no member at all — with no model: what a crash test asserts."""
    resolve = Resolver(conn)
    placeholder = resolve(f"cn=empty-group-placeholder,ou=Service,{base}")
    people = read_tree(conn, base, "People", ["manager"])
    groups = read_tree(conn, base, "Groups", ["member"])
    problems = []
    for group in groups.values():
        values = group.get("member", [])
        resolved = [resolve(v) for v in values]
        problems += [f"group {group['dn'][0]}: member {v!r} names no entry"
                     for v, r in zip(values, resolved, strict=True) if r is None]
        if not values:
            problems.append(f"group {group['dn'][0]}: no member at all")
        if placeholder in resolved and len(values) > 1:
            problems.append(f"group {group['dn'][0]}: the placeholder beside members")
        if len(set(resolved)) != len(resolved):
            problems.append(f"group {group['dn'][0]}: one entry named twice {values}")
    for user in people.values():
        for value in user.get("manager", []):
            target = resolve(value)
            if target is None or target not in people:
                problems.append(f"user {user['dn'][0]}: manager {value!r} names no user")
    return problems


def ldap_problems(conn: Connection, base: str, want: Expected) -> list[str]:
    """The raw tree against ``want``: the same users and groups (by entryUUID), each
    user's ``uid`` holding the acknowledged userName, each group's ``member`` values
    naming exactly the expected entries (the placeholder alone when it has none), each
    manager naming the expected user — plus :func:`dangling`'s findings."""
    resolve = Resolver(conn)
    placeholder = resolve(f"cn=empty-group-placeholder,ou=Service,{base}")
    people = read_tree(conn, base, "People", ["uid", "manager", "displayName"])
    groups = read_tree(conn, base, "Groups", ["cn", "member"])
    problems = dangling(conn, base)
    for uuid in set(want.users) ^ set(people):
        where = "missing in LDAP" if uuid in want.users else "in LDAP, not expected"
        problems.append(f"user {uuid} ({want.users.get(uuid, {}).get('userName')}) {where}")
    for uuid in set(want.groups) ^ set(groups):
        where = "missing in LDAP" if uuid in want.groups else "in LDAP, not expected"
        problems.append(f"group {uuid} ({want.groups.get(uuid)}) {where}")
    for uuid, user in want.users.items():
        entry = people.get(uuid)
        if entry is None:
            continue
        if user["userName"] not in entry.get("uid", []):
            problems.append(f"user {uuid}: uid {entry.get('uid')} lacks {user['userName']!r}")
        managers = [resolve(v) for v in entry.get("manager", [])]
        wanted = [user["manager"]] if user.get("manager") else []
        if managers != wanted:
            problems.append(f"user {user['userName']!r}: manager {entry.get('manager')} "
                            f"resolves to {managers}, expected {wanted}")
    for uuid, name in want.groups.items():
        entry = groups.get(uuid)
        if entry is None:
            continue
        resolved = [resolve(v) for v in entry.get("member", [])]
        expected = want.members.get(uuid, set())
        got = set(resolved) - {None}
        if not expected:
            if resolved != [placeholder]:
                problems.append(f"group {name!r}: expected only the placeholder, has "
                                f"{entry.get('member')}")
            continue
        if got != expected:
            problems.append(f"group {name!r}: members {_names(want, got)} expected "
                            f"{_names(want, expected)}; missing "
                            f"{_names(want, expected - got)}, extra {_names(want, got - expected)}")
    return problems


def _names(want: Expected, ids: set[str | None]) -> list[str]:
    def name(i: str | None) -> str:
        if i in want.users:
            return str(want.users[i]["userName"])
        return want.groups.get(i or "", str(i))
    return sorted(name(i) for i in ids)


# --- the SCIM view --------------------------------------------------------------------------


def scim_list(entra: Entra, resource: str, extra: str = "") -> list[dict[str, Any]]:
    """Every resource of a list, page by page."""
    out: list[dict[str, Any]] = []
    start = 1
    while True:
        reply, _ = entra.send("GET", f"/{resource}?startIndex={start}&count=100{extra}")
        assert reply.status == 200, (resource, reply.status, reply.body)
        page = reply.body.get("Resources", [])
        out += page
        start += len(page)
        if not page or start > int(reply.body["totalResults"]):
            return out


def scim_problems(entra: Entra, want: Expected, sample: list[str] | None = None) -> list[str]:
    """``GET /Users`` and ``GET /Groups`` against ``want``: ids, userNames and
    displayNames exactly as last written, managers, members, and each user's direct and
    indirect groups; then, for the users in ``sample``, a filtered list by userName (in
    another letter case too) and each group by a displayName filter, which must show the
    same members as the whole list."""
    from tests.entra import ENTERPRISE

    problems: list[str] = []
    users = {u["id"]: u for u in scim_list(entra, "Users")}
    groups = {g["id"]: g for g in scim_list(entra, "Groups")}
    for uid in set(want.users) ^ set(users):
        problems.append(f"SCIM user {uid} ({want.users.get(uid, {}).get('userName')}): "
                        + ("missing" if uid in want.users else "not expected"))
    for gid in set(want.groups) ^ set(groups):
        problems.append(f"SCIM group {gid} ({want.groups.get(gid)}): "
                        + ("missing" if gid in want.groups else "not expected"))
    for uid, expected in want.users.items():
        got = users.get(uid)
        if got is None:
            continue
        for attr in ("userName", "displayName", "title", "active"):
            if attr in expected and got.get(attr) != expected[attr]:
                problems.append(f"SCIM user {expected['userName']!r}: {attr} "
                                f"{got.get(attr)!r}, expected {expected[attr]!r}")
        manager = got.get(ENTERPRISE, {}).get("manager", {}).get("value")
        if manager != expected.get("manager"):
            problems.append(f"SCIM user {expected['userName']!r}: manager {manager}, "
                            f"expected {expected.get('manager')}")
        shown = {(g["value"], g.get("type")) for g in got.get("groups", [])}
        if shown != _memberships(want, uid):
            problems.append(f"SCIM user {expected['userName']!r}: groups {sorted(shown)}, "
                            f"expected {sorted(_memberships(want, uid))}")
    for gid, name in want.groups.items():
        got = groups.get(gid)
        if got is None:
            continue
        if got.get("displayName") != name:
            problems.append(f"SCIM group {name!r}: displayName {got.get('displayName')!r}")
        values = [m["value"] for m in got.get("members", [])]
        if len(values) != len(set(values)) or set(values) != want.members.get(gid, set()):
            problems.append(f"SCIM group {name!r}: members {_names(want, set(values))} "
                            f"({len(values)} values), expected "
                            f"{_names(want, want.members.get(gid, set()))}")
    for uid in sample or []:
        user_name = want.users[uid]["userName"]
        for spelling in (user_name, user_name.swapcase()):
            reply, _ = entra.send("GET", "/Users?filter=" + quote(f'userName eq "{spelling}"'))
            ids = [r["id"] for r in reply.body.get("Resources", [])]
            if ids != [uid]:
                problems.append(f"filter userName eq {spelling!r}: {ids}, expected [{uid}]")
    for gid, name in want.groups.items():
        reply, _ = entra.send("GET", "/Groups?filter=" + quote(f'displayName eq "{name}"'))
        found = reply.body.get("Resources", [])
        if [g["id"] for g in found] != [gid]:
            problems.append(f"filter displayName eq {name!r}: {[g['id'] for g in found]}")
            continue
        values = [m["value"] for m in found[0].get("members", [])]
        if len(values) != len(set(values)) or set(values) != want.members.get(gid, set()):
            problems.append(f"filtered group {name!r}: members {_names(want, set(values))}")
    return problems


def _memberships(want: Expected, member: str) -> set[tuple[str, str]]:
    direct = want.parents(member)
    seen, frontier, indirect = set(direct), set(direct), set()
    while frontier:
        upper = set().union(*(want.parents(g) for g in frontier)) - seen
        seen |= upper
        indirect |= upper
        frontier = upper
    return {(g, "direct") for g in direct} | {(g, "indirect") for g in indirect}


def server_errors(log: Path, seen: int = 0) -> tuple[list[str], int]:
    """The unhandled errors gunicorn's log holds after its first ``seen`` lines: each
    request line and the exception's last line (for a readable failure); and the count
    of lines read."""
    lines = log.read_text(errors="replace").splitlines()
    out = []
    for line in lines[seen:]:
        if '"scim.errors"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        last = str(record.get("exception", "")).strip().splitlines()[-1:] or [""]
        out.append(f"server: {record.get('message')}: {last[0][:300]}")
    return out, len(lines)


# --- the drift check ------------------------------------------------------------------------


def directory_check(env: dict[str, str], *, repair: bool) -> subprocess.CompletedProcess[str]:
    """``flask --app app directory check [--repair]`` on the directory of ``env`` (the
    LDAP_* settings of a slapd instance), as an operator runs it after a crash."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("LDAP_", "SCIM_"))}
    full.update(env)
    args = [str(ROOT / ".venv" / "bin" / "flask"), "--app", "app", "directory", "check",
            *(["--repair"] if repair else [])]
    return subprocess.run(args, cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=120, check=False)
