"""Tenants, bearer tokens and OAuth clients, stored in the directory.

Everything lives under ``ou=Service,<root base>`` so every instance behind a load
balancer sees the same tokens. Secrets are 256-bit random values shown once; only
their SHA-256 is stored (a fast hash is right for high-entropy secrets: nothing to
brute-force). A token reads ``scim_<id>_<secret>``: the id names its entry, so
verifying it is one base-scope read.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ldap3 import BASE, LEVEL, MODIFY_REPLACE, Connection
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from directory.errors import EntryExists, NoSuchEntry, translate
from directory.tenant import Tenant, placeholder_for

PREFIX = "scim_"
DEFAULT_TENANT = "default"


def now() -> datetime:
    return datetime.now(UTC)


def gtime(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


def parse_gtime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.strptime(str(value)[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)


def digest(key: str, secret: str) -> str:
    return hashlib.sha256(f"{key}:{secret}".encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed (never its secret)."""

    id: str
    name: str
    tenant: str
    created: datetime | None
    expires: datetime | None
    last_used: datetime | None
    kind: str = "token"


@dataclass(frozen=True)
class Verified:
    """A successful verification: who and for which tenant."""

    id: str
    name: str
    tenant: Tenant
    last_used: datetime | None


class Store:
    """Registry operations on one connection, under the deployment's root base DN."""

    def __init__(self, conn: Connection, root_base: str) -> None:
        self.conn = conn
        self.root = root_base
        self.service = f"ou=Service,{root_base}"

    # -- plumbing ---------------------------------------------------------------------

    def _do(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            fn(*args, **kwargs)
        except Exception as exc:
            raise translate(exc) from exc
        return self.conn.response

    def _ensure(self, dn: str, classes: list[str], attrs: dict[str, Any]) -> None:
        try:
            self._do(self.conn.add, dn, classes, attrs)
        except EntryExists:
            pass

    def _ou(self, name: str) -> str:
        dn = f"ou={name},{self.service}"
        self._ensure(dn, ["organizationalUnit"], {"ou": name})
        return dn

    def _read(self, dn: str, attrs: list[str]) -> dict[str, list[Any]] | None:
        try:
            rows = self._do(self.conn.search, dn, "(objectClass=*)", BASE, attributes=attrs)
        except NoSuchEntry:
            return None
        return {k.lower(): v if isinstance(v, list) else [v]
                for k, v in rows[0]["attributes"].items()} if rows else None

    def _list(self, ou: str, flt: str, attrs: list[str]) -> list[dict[str, list[Any]]]:
        try:
            rows = self._do(self.conn.search, f"ou={ou},{self.service}", flt, LEVEL,
                            attributes=attrs)
        except NoSuchEntry:
            return []
        return [{k.lower(): v if isinstance(v, list) else [v]
                 for k, v in r["attributes"].items()} for r in rows
                if r.get("type") == "searchResEntry"]

    # -- tenants ----------------------------------------------------------------------

    def default_tenant(self) -> Tenant:
        return Tenant(DEFAULT_TENANT, self.root, placeholder_for(self.root))

    def create_tenant(self, name: str, base_dn: str | None = None) -> Tenant:
        """Register a tenant and create its subtree (idempotent for the subtree)."""
        if name.lower() == DEFAULT_TENANT:
            raise ValueError("'default' is the tenant of LDAP_BASE_DN and always exists")
        base = base_dn or f"o={escape_rdn(name)},{self.root}"
        dn = f"cn={escape_rdn(name)},{self._ou('Tenants')}"
        if self._read(dn, ["cn"]) is not None:
            raise ValueError(f"tenant {name!r} already exists")
        top = base.split(",", 1)[0]
        attr, _, value = top.partition("=")
        self._ensure(base, ["organization"] if attr.lower() == "o" else ["organizationalUnit"],
                     {attr: value})
        for ou in ("People", "Groups"):
            self._ensure(f"ou={ou},{base}", ["organizationalUnit"], {"ou": ou})
        self._do(self.conn.add, dn, ["scimTenant"], {"cn": name, "scimTenantBase": base})
        return Tenant(name, base, placeholder_for(self.root))

    def tenants(self) -> list[Tenant]:
        found = [self.default_tenant()]
        for row in self._list("Tenants", "(objectClass=scimTenant)", ["cn", "scimTenantBase"]):
            found.append(Tenant(str(row["cn"][0]), str(row["scimtenantbase"][0]),
                                placeholder_for(self.root)))
        return found

    def tenant(self, name: str) -> Tenant:
        for tenant in self.tenants():
            if tenant.name.lower() == name.lower():
                return tenant
        raise KeyError(f"no tenant {name!r}; create it with 'flask --app app tenant create'")

    # -- tokens -----------------------------------------------------------------------

    def create_token(self, tenant: Tenant, name: str, expires: datetime | None = None,
                     kind: str = "Tokens") -> tuple[str, str]:
        """A new token: (its id, the secret to show ONCE)."""
        key = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        attrs: dict[str, Any] = {"cn": key, "scimSecretHash": digest(key, secret),
                                 "scimTenantBase": tenant.base_dn,
                                 "scimTenantName": tenant.name, "scimName": name}
        if expires is not None:
            attrs["scimExpires"] = gtime(expires)
        classes = ["scimToken"] if kind == "Tokens" else ["scimOAuthClient"]
        self._do(self.conn.add, f"cn={key},{self._ou(kind)}", classes, attrs)
        if kind == "Tokens":
            return key, f"{PREFIX}{key}_{secret}"
        return key, secret

    def verify(self, presented: str, kind: str = "Tokens",
               key: str | None = None) -> Verified | None:
        """Check a presented token (or client secret for ``key``) in constant time."""
        if key is None:
            if not presented.startswith(PREFIX) or presented.count("_") < 2:
                return None
            key, _, secret = presented[len(PREFIX):].partition("_")
        else:
            secret = presented
        if not key or not all(c in "0123456789abcdef" for c in key):
            return None
        row = self._read(f"cn={key},ou={kind},{self.service}",
                         ["scimSecretHash", "scimTenantBase", "scimTenantName", "scimName",
                          "scimExpires", "scimLastUsed"])
        if row is None or "scimsecrethash" not in row:
            return None
        if not hmac.compare_digest(str(row["scimsecrethash"][0]), digest(key, secret)):
            return None
        expires = parse_gtime((row.get("scimexpires") or [None])[0])
        if expires is not None and expires <= now():
            return None
        tenant = Tenant(str(row["scimtenantname"][0]), str(row["scimtenantbase"][0]),
                        placeholder_for(self.root))
        return Verified(key, str((row.get("scimname") or [""])[0]), tenant,
                        parse_gtime((row.get("scimlastused") or [None])[0]))

    def touch(self, key: str, kind: str = "Tokens") -> None:
        """Record use (callers limit this to once a minute per token)."""
        try:
            self._do(self.conn.modify, f"cn={key},ou={kind},{self.service}",
                     {"scimLastUsed": [(MODIFY_REPLACE, [gtime(now())])]})
        except NoSuchEntry:
            pass

    def tokens(self, kind: str = "Tokens", tenant: str | None = None) -> list[TokenInfo]:
        flt = "(objectClass=*)"
        if tenant:
            flt = f"(scimTenantName={escape_filter_chars(tenant)})"
        rows = self._list(kind, flt, ["cn", "scimName", "scimTenantName", "createTimestamp",
                                      "scimExpires", "scimLastUsed"])
        out = []
        for r in rows:
            if "cn" not in r:
                continue
            out.append(TokenInfo(
                str(r["cn"][0]), str((r.get("scimname") or [""])[0]),
                str((r.get("scimtenantname") or [""])[0]),
                parse_gtime((r.get("createtimestamp") or [None])[0]),
                parse_gtime((r.get("scimexpires") or [None])[0]),
                parse_gtime((r.get("scimlastused") or [None])[0]),
                "token" if kind == "Tokens" else "client"))
        return sorted(out, key=lambda t: (t.tenant, t.name, t.id))

    def revoke(self, key: str, kind: str = "Tokens") -> bool:
        try:
            self._do(self.conn.delete, f"cn={escape_rdn(key)},ou={kind},{self.service}")
        except NoSuchEntry:
            return False
        return True

    def rotate(self, key: str, grace: timedelta) -> tuple[str, str]:
        """A new token like ``key``; ``key`` stays valid for ``grace`` more, then stops."""
        row = self._read(f"cn={escape_rdn(key)},ou=Tokens,{self.service}",
                         ["scimTenantBase", "scimTenantName", "scimName", "scimExpires"])
        if row is None:
            raise KeyError(f"no token {key!r}")
        tenant = Tenant(str(row["scimtenantname"][0]), str(row["scimtenantbase"][0]),
                        placeholder_for(self.root))
        expires = parse_gtime((row.get("scimexpires") or [None])[0])
        new = self.create_token(tenant, str((row.get("scimname") or [""])[0]), expires)
        ends = now() + grace
        if expires is None or ends < expires:
            self._do(self.conn.modify, f"cn={escape_rdn(key)},ou=Tokens,{self.service}",
                     {"scimExpires": [(MODIFY_REPLACE, [gtime(ends)])]})
        return new

    def purge_expired(self, limit: int = 50) -> int:
        """Delete up to ``limit`` expired tokens (OAuth access tokens pile up)."""
        flt = f"(scimExpires<={gtime(now() - timedelta(minutes=5))})"
        gone = 0
        for r in self._list("Tokens", flt, ["cn"])[:limit]:
            gone += self.revoke(str(r["cn"][0]))
        return gone
