"""Dashboard admins and their sessions, kept outside every SCIM-managed subtree.

An admin is ``uid=<login>,<admin base>`` (default ``ou=Admins,ou=Service,<LDAP_BASE_DN>``),
an ``inetOrgPerson`` with a hashed ``userPassword``, made by ``flask --app app admin
create``. The sign-in builds that DN from the login (escaped, no search), so no entry a
SCIM client can create (under a tenant's ``ou=People``/``ou=Groups``) is ever looked at.

A dashboard session is an entry ``cn=<sha256 of the session id>,<admin DN>`` (an
``organizationalRole``), created at sign-in and deleted at sign-out. Every request checks
that it still exists, so sign-out and ``admin remove`` (which deletes the admin with its
sessions) end it on every worker and instance at once, whatever a saved cookie says. Only
the digest is stored: the directory never holds what a cookie carries. Sessions left by a
closed browser are purged at later sign-ins once they have been idle long enough.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ldap3 import BASE, LEVEL, MODIFY_REPLACE, SUBTREE, Connection
from ldap3.utils.dn import escape_rdn

from directory.errors import EntryExists, NoSuchEntry, entries_of
from directory.tenant import inside
from directory.tokens import gtime, parse_gtime

#: Logins an admin may have: short and plain (they become an RDN and a shell argument).
ADMIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
SESSION_CLASS = "organizationalRole"

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def _one(value: Any) -> Any:
    """The first value of an ldap3 attribute (a list, a scalar, or nothing)."""
    if isinstance(value, list):
        return value[0] if value else None
    return value or None


def session_key(sid: str) -> str:
    """The RDN value of a session entry: the session id's SHA-256."""
    return hashlib.sha256(sid.encode()).hexdigest()


@dataclass(frozen=True)
class AdminInfo:
    login: str
    dn: str
    created: datetime | None
    sessions: int


class Admins:
    """Admin accounts and sessions under ``base_dn``, on one connection."""

    def __init__(self, conn: Connection, base_dn: str, clock: Clock = _now) -> None:
        self.conn = conn
        self.base = base_dn
        self.clock = clock

    def _do(self, fn: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return entries_of(self.conn, fn, *args, **kwargs)

    def dn(self, login: str) -> str | None:
        """The DN an admin called ``login`` has; None when no admin can be called that."""
        if not ADMIN_NAME.fullmatch(login):
            return None
        return f"uid={escape_rdn(login)},{self.base}"

    def _ensure_base(self) -> None:
        """Create the admin base (and ``ou=Service`` above it) when it is an ``ou=``."""
        try:
            self._do(self.conn.search, self.base, "(objectClass=*)", BASE, attributes=["1.1"])
            return
        except NoSuchEntry:
            pass
        rdn, _, parent = self.base.partition(",")
        attr, _, value = rdn.partition("=")
        if attr.strip().lower() != "ou":
            raise ValueError(f"the admin base {self.base} does not exist; create it first")
        try:
            self._do(self.conn.add, self.base, ["organizationalUnit"], {"ou": value})
        except NoSuchEntry:
            prdn = parent.partition(",")[0]
            pattr, _, pvalue = prdn.partition("=")
            if pattr.strip().lower() != "ou":
                raise ValueError(f"the parent of the admin base, {parent}, does not exist"
                                 ) from None
            self._do(self.conn.add, parent, ["organizationalUnit"], {"ou": pvalue})
            self._do(self.conn.add, self.base, ["organizationalUnit"], {"ou": value})
        except EntryExists:
            pass

    def create(self, login: str, password_hash: str) -> str:
        """Add an admin; its DN. ValueError when the login is not usable or taken."""
        dn = self.dn(login)
        if dn is None:
            raise ValueError(f"admin login {login!r}: use letters, digits, '.', '_', '@' or "
                             "'-' (at most 64, starting with a letter or digit)")
        self._ensure_base()
        try:
            self._do(self.conn.add, dn, ["inetOrgPerson"], {
                "uid": login, "cn": login, "sn": login, "userPassword": password_hash,
                "description": "scim-bridge dashboard admin"})
        except EntryExists:
            raise ValueError(f"admin {login!r} already exists") from None
        return dn

    def list(self) -> list[AdminInfo]:
        try:
            rows = self._do(self.conn.search, self.base, "(objectClass=inetOrgPerson)", LEVEL,
                            attributes=["uid", "createTimestamp"])
        except NoSuchEntry:
            return []
        out = []
        for row in rows:
            attrs = row["attributes"]
            uid = attrs.get("uid") or [""]
            login = uid[0] if isinstance(uid, list) else uid
            out.append(AdminInfo(str(login), row["dn"], parse_gtime(_one(
                attrs.get("createTimestamp"))), len(self._sessions(row["dn"]))))
        return sorted(out, key=lambda a: a.login.lower())

    def _sessions(self, dn: str) -> list[str]:
        try:
            rows = self._do(self.conn.search, dn, f"(objectClass={SESSION_CLASS})", LEVEL,
                            attributes=["1.1"])
        except NoSuchEntry:
            return []
        return [r["dn"] for r in rows]

    def remove(self, login: str) -> int | None:
        """Delete an admin and its sessions; how many sessions ended (None: no such admin)."""
        dn = self.dn(login)
        if dn is None:
            return None
        try:
            self._do(self.conn.search, dn, "(objectClass=*)", BASE, attributes=["1.1"])
        except NoSuchEntry:
            return None
        sessions = self._sessions(dn)
        for session in sessions:
            try:
                self._do(self.conn.delete, session)
            except NoSuchEntry:
                pass
        self._do(self.conn.delete, dn)
        return len(sessions)

    # -- sessions ----------------------------------------------------------------------

    def _session_dn(self, admin_dn: str, sid: str) -> str:
        return f"cn={session_key(sid)},{admin_dn}"

    def open_session(self, admin_dn: str) -> str:
        """A new session of ``admin_dn``: the id to put in the signed cookie."""
        sid = secrets.token_urlsafe(32)
        self._do(self.conn.add, self._session_dn(admin_dn, sid), [SESSION_CLASS], {
            "cn": session_key(sid), "description": gtime(self.clock())})
        return sid

    def session_alive(self, admin_dn: str, sid: str) -> bool:
        """Whether the session still exists (so its admin does too). One base read."""
        if not sid or not admin_dn or not inside(admin_dn, self.base):
            return False
        try:
            return bool(self._do(self.conn.search, self._session_dn(admin_dn, sid),
                                 f"(objectClass={SESSION_CLASS})", BASE, attributes=["1.1"]))
        except NoSuchEntry:
            return False

    def touch_session(self, admin_dn: str, sid: str) -> None:
        """Record activity (callers do it a few times per idle period, not per request)."""
        try:
            self._do(self.conn.modify, self._session_dn(admin_dn, sid),
                     {"description": [(MODIFY_REPLACE, [gtime(self.clock())])]})
        except NoSuchEntry:
            pass

    def end_session(self, admin_dn: str, sid: str) -> bool:
        try:
            self._do(self.conn.delete, self._session_dn(admin_dn, sid))
        except NoSuchEntry:
            return False
        return True

    def purge_sessions(self, idle: timedelta, limit: int = 100) -> int:
        """Delete up to ``limit`` sessions not touched for ``idle``; how many went."""
        cutoff = gtime(self.clock() - idle)
        flt = f"(&(objectClass={SESSION_CLASS})(modifyTimestamp<={cutoff}))"
        try:
            rows = self._do(self.conn.search, self.base, flt, SUBTREE, attributes=["1.1"])
        except NoSuchEntry:
            return 0
        gone = 0
        for row in rows[:limit]:
            try:
                self._do(self.conn.delete, row["dn"])
                gone += 1
            except NoSuchEntry:
                pass
        return gone
