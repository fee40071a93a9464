"""Tenants, bearer tokens and OAuth clients, stored in the directory.

Everything lives under ``ou=Service,<root base>``, so every instance behind a load
balancer sees the same registry:

- ``cn=<name>,ou=Tenants``: a tenant (``scimTenant``) and the base DN of its subtree;
- ``cn=<id>,ou=Tokens``: a bearer token (``scimToken``): managed tokens, and the
  short-lived access tokens that ``/oauth/token`` issues (they carry ``scimClientId``);
- ``cn=<id>,ou=Clients``: an OAuth client (``scimOAuthClient``).

The three ``ou`` entries are created on first use, so directories set up before they
existed work too. Secrets are 256-bit random values shown once; only SHA-256 over the
entry id and the secret is stored. A fast hash is right for high-entropy secrets (there
is nothing to brute-force) and keeps verification cheap. A token reads
``scim_<id>_<secret>``: the id names its entry, so verifying it is one base-scope read
by DN, with no search and no index, and a constant-time compare of the digests.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ldap3 import BASE, LEVEL, MODIFY_REPLACE, Connection
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn, parse_dn

from directory.dn import normalise_dn
from directory.errors import EntryExists, InvalidData, NoSuchEntry, translate
from directory.tenant import Tenant, placeholder_for, trust_conflict

PREFIX = "scim_"
DEFAULT_TENANT = "default"
TOKENS, CLIENTS, TENANTS = "Tokens", "Clients", "Tenants"
#: Tenant names: short and plain, so they fit in an RDN and a shell command unchanged.
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX_ID = re.compile(r"[0-9a-f]{16}")
#: Expired OAuth access tokens stay listed this long before they are purged.
PURGE_AFTER = timedelta(minutes=5)
_STRUCTURAL = {"o": ["organization"], "ou": ["organizationalUnit"], "dc": ["domain"]}
_TOKEN_ATTRS = ["cn", "scimSecretHash", "scimTenantBase", "scimTenantName", "scimName",
                "scimExpires", "scimNotAfter", "scimLastUsed", "scimClientId",
                "createTimestamp"]

Clock = Callable[[], datetime]


def now() -> datetime:
    return datetime.now(UTC)


def gtime(when: datetime) -> str:
    """LDAP GeneralizedTime (whole seconds, UTC)."""
    return when.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")


def parse_gtime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.strptime(str(value)[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)


def digest(key: str, secret: str) -> str:
    """What is stored for a secret; the id is hashed in so digests cannot be swapped."""
    return hashlib.sha256(f"{key}:{secret}".encode()).hexdigest()


def split_token(presented: str) -> tuple[str, str] | None:
    """``scim_<id>_<secret>`` → (id, secret), or None when it is not shaped like one."""
    if not presented.startswith(PREFIX):
        return None
    key, sep, secret = presented[len(PREFIX):].partition("_")
    if not sep or not secret or not _HEX_ID.fullmatch(key):
        return None
    return key, secret


def _first(row: dict[str, list[Any]], name: str) -> Any:
    values = row.get(name.lower()) or [None]
    return values[0]


def _earliest(*times: datetime | None) -> datetime | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


@dataclass(frozen=True)
class TokenInfo:
    """A token or client as listed (never its secret)."""

    id: str
    name: str
    tenant: str
    created: datetime | None
    expires: datetime | None
    not_after: datetime | None  # end of a rotation grace period
    last_used: datetime | None
    client_id: str = ""  # set on OAuth access tokens

    @property
    def ends(self) -> datetime | None:
        """When it stops being accepted (expiry or end of grace), None for never."""
        return _earliest(self.expires, self.not_after)

    def state(self, at: datetime) -> str:
        ends = self.ends
        if ends is not None and ends <= at:
            return "expired"
        if self.not_after is not None:
            return "rotated"
        return "active"


@dataclass(frozen=True)
class Verified:
    """A successful verification: who, for which tenant, and until when."""

    id: str
    name: str
    tenant: Tenant
    last_used: datetime | None
    ends: datetime | None


class Store:
    """Registry operations on one connection, under the deployment's root base DN.

    ``clock`` gives the current time (tests move it instead of sleeping).
    """

    def __init__(self, conn: Connection, root_base: str, clock: Clock = now) -> None:
        self.conn = conn
        self.root = root_base
        self.service = f"ou=Service,{root_base}"
        self.clock = clock

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
        """``ou=<name>,ou=Service,<root>``, created if it is missing (idempotent)."""
        dn = f"ou={name},{self.service}"
        try:
            self._ensure(dn, ["organizationalUnit"], {"ou": name})
        except NoSuchEntry:  # a directory without ou=Service yet
            self._ensure(self.service, ["organizationalUnit"], {"ou": "Service"})
            self._ensure(dn, ["organizationalUnit"], {"ou": name})
        return dn

    def _dn(self, kind: str, key: str) -> str:
        return f"cn={escape_rdn(key)},ou={kind},{self.service}"

    def _read(self, dn: str, attrs: list[str]) -> dict[str, list[Any]] | None:
        try:
            rows = self._do(self.conn.search, dn, "(objectClass=*)", BASE, attributes=attrs)
        except NoSuchEntry:
            return None
        rows = [r for r in rows or [] if r.get("type") == "searchResEntry"]
        return self._lower(rows[0]["attributes"]) if rows else None

    @staticmethod
    def _lower(attributes: Any) -> dict[str, list[Any]]:
        return {k.lower(): v if isinstance(v, list) else [v]
                for k, v in dict(attributes).items()}

    def _list(self, kind: str, flt: str, attrs: list[str]) -> list[dict[str, list[Any]]]:
        try:
            rows = self._do(self.conn.search, f"ou={kind},{self.service}", flt, LEVEL,
                            attributes=attrs)
        except NoSuchEntry:
            return []
        return [self._lower(r["attributes"]) for r in rows or []
                if r.get("type") == "searchResEntry"]

    def _delete(self, kind: str, key: str) -> bool:
        try:
            self._do(self.conn.delete, self._dn(kind, key))
        except NoSuchEntry:
            return False
        return True

    def _new_entry(self, kind: str, classes: list[str], attrs: dict[str, Any]) -> tuple[str, str]:
        """Add an entry with a fresh id and secret; returns (id, secret)."""
        parent = self._ou(kind)
        for _ in range(3):  # 64-bit ids: a collision is a freak, but never an overwrite
            key, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
            entry = {**attrs, "cn": key, "scimSecretHash": digest(key, secret)}
            try:
                self._do(self.conn.add, f"cn={key},{parent}", classes, entry)
            except EntryExists:
                continue
            return key, secret
        raise EntryExists("could not find a free id")

    def _check(self, kind: str, key: str, secret: str) -> dict[str, list[Any]] | None:
        """The entry when ``secret`` is its secret (constant-time compare), else None."""
        row = self._read(self._dn(kind, key), _TOKEN_ATTRS)
        if row is None or _first(row, "scimSecretHash") is None:
            return None
        if not hmac.compare_digest(str(_first(row, "scimSecretHash")).encode(),
                                   digest(key, secret).encode()):
            return None
        return row

    def _tenant_of(self, row: dict[str, list[Any]]) -> Tenant:
        return Tenant(str(_first(row, "scimTenantName")), str(_first(row, "scimTenantBase")),
                      placeholder_for(self.root))

    def touch(self, kind: str, key: str) -> None:
        """Record use now (callers keep this to about once a minute per entry)."""
        try:
            self._do(self.conn.modify, self._dn(kind, key),
                     {"scimLastUsed": [(MODIFY_REPLACE, [gtime(self.clock())])]})
        except NoSuchEntry:
            pass

    # -- tenants ----------------------------------------------------------------------

    def default_tenant(self) -> Tenant:
        return Tenant(DEFAULT_TENANT, self.root, placeholder_for(self.root))

    def tenants(self) -> list[Tenant]:
        found = [self.default_tenant()]
        rows = self._list(TENANTS, "(objectClass=scimTenant)", ["cn", "scimTenantBase"])
        found += sorted((Tenant(str(_first(r, "cn")), str(_first(r, "scimTenantBase")),
                                placeholder_for(self.root)) for r in rows),
                        key=lambda t: t.name.lower())
        return found

    def tenant(self, name: str) -> Tenant:
        if name.lower() == DEFAULT_TENANT:
            return self.default_tenant()
        row = None
        if TENANT_NAME.fullmatch(name):
            row = self._read(self._dn(TENANTS, name), ["cn", "scimTenantBase"])
        if row is None:
            raise KeyError(f"no tenant {name!r}; create it with 'flask --app app tenant create'")
        return Tenant(str(_first(row, "cn")), str(_first(row, "scimTenantBase")),
                      placeholder_for(self.root))

    def create_tenant(self, name: str, base_dn: str | None = None,
                      protected: dict[str, str] | None = None) -> Tenant:
        """Register a tenant and create its subtree (existing entries are kept).

        The subtree must not overlap another tenant's people or groups: a base inside
        another tenant's ``ou=People`` would make its users visible there. Nor may its
        people or groups hold one of ``protected`` (setting name → DN: the dashboard's
        admin base and group), which its SCIM token could then write.
        """
        if not TENANT_NAME.fullmatch(name):
            raise ValueError(f"tenant name {name!r}: use letters, digits, '.', '_' or '-' "
                             "(at most 64, starting with a letter or digit)")
        if name.lower() == DEFAULT_TENANT:
            raise ValueError("'default' is the tenant of LDAP_BASE_DN and always exists")
        base = base_dn or f"o={name},{self.root}"
        try:
            rdns = parse_dn(base, escape=False, strip=True)
        except Exception:  # noqa: BLE001 - ldap3 raises several kinds for a bad DN
            raise ValueError(f"{base!r} is not a DN") from None
        base = ",".join(f"{attr}={value}" for attr, value, _ in rdns)  # spaces tidied
        if self._read(self._dn(TENANTS, name), ["1.1"]) is not None:
            raise ValueError(f"tenant {name!r} already exists")
        self._check_overlap(base)
        for setting, dn in (protected or {}).items():
            problem = trust_conflict(setting, dn, [Tenant(name, base, placeholder_for(self.root))])
            if problem:
                raise ValueError(problem)
        attr, value = rdns[0][0], rdns[0][1]
        try:
            if self._read(base, ["1.1"]) is None:
                classes = _STRUCTURAL.get(attr.lower())
                if classes is None:
                    raise ValueError(f"cannot create {base}: a new base DN must start with "
                                     "o=, ou= or dc= (or exist already)")
                self._do(self.conn.add, base, classes, {attr: value})
            for ou in ("People", "Groups"):
                self._ensure(f"ou={ou},{base}", ["organizationalUnit"], {"ou": ou})
            self._do(self.conn.add, f"cn={name},{self._ou(TENANTS)}", ["scimTenant"],
                     {"cn": name, "scimTenantBase": base})
        except NoSuchEntry:
            raise ValueError(f"cannot create {base}: its parent entry does not exist") from None
        except EntryExists:
            raise ValueError(f"tenant {name!r} already exists") from None
        except InvalidData as exc:
            raise ValueError(f"cannot create {base}: {exc}") from None
        return Tenant(name, base, placeholder_for(self.root))

    def _check_overlap(self, base: str) -> None:
        new = normalise_dn(base)

        def inside(dn: str, container: str) -> bool:
            outer = normalise_dn(container)
            return dn == outer or dn.endswith("," + outer)

        for tenant in self.tenants():
            if new == normalise_dn(tenant.base_dn):
                raise ValueError(f"{base} is already the base DN of tenant {tenant.name!r}")
            areas = [tenant.people_dn, tenant.groups_dn]
            if tenant.name == DEFAULT_TENANT:
                areas.append(self.service)
            for area in areas:
                if inside(new, area):
                    raise ValueError(f"{base} lies inside {area} (tenant {tenant.name!r}); "
                                     "tenant subtrees must not overlap")
            for area in (f"ou=People,{base}", f"ou=Groups,{base}"):
                if inside(normalise_dn(tenant.base_dn), area):
                    raise ValueError(f"tenant {tenant.name!r} lies inside {area}; "
                                     "tenant subtrees must not overlap")

    # -- tokens -----------------------------------------------------------------------

    def create_token(self, tenant: Tenant, name: str, expires: datetime | None = None,
                     client_id: str | None = None) -> tuple[str, str]:
        """A new bearer token: (its id, the token to show ONCE)."""
        attrs: dict[str, Any] = {"scimTenantBase": tenant.base_dn,
                                 "scimTenantName": tenant.name, "scimName": name}
        if expires is not None:
            attrs["scimExpires"] = gtime(expires)
        if client_id:
            attrs["scimClientId"] = client_id
        key, secret = self._new_entry(TOKENS, ["scimToken"], attrs)
        return key, f"{PREFIX}{key}_{secret}"

    def verify_token(self, presented: str) -> Verified | None:
        """The token's identity if ``presented`` is a valid, unexpired token, else None."""
        parts = split_token(presented)
        if parts is None:
            return None
        row = self._check(TOKENS, *parts)
        if row is None:
            return None
        ends = _earliest(parse_gtime(_first(row, "scimExpires")),
                         parse_gtime(_first(row, "scimNotAfter")))
        if ends is not None and ends <= self.clock():
            return None
        return Verified(parts[0], str(_first(row, "scimName") or ""), self._tenant_of(row),
                        parse_gtime(_first(row, "scimLastUsed")), ends)

    def tokens(self, tenant: str | None = None, oauth: bool = False) -> list[TokenInfo]:
        """Managed tokens (with ``oauth``, also the access tokens of OAuth clients)."""
        flt = "(objectClass=scimToken)"
        if not oauth:
            flt = f"(&{flt}(!(scimClientId=*)))"
        if tenant:
            flt = f"(&{flt}(scimTenantName={escape_filter_chars(tenant)}))"
        return self._infos(TOKENS, flt)

    def _infos(self, kind: str, flt: str) -> list[TokenInfo]:
        out = []
        for r in self._list(kind, flt, _TOKEN_ATTRS):
            if _first(r, "cn") is None:
                continue
            out.append(TokenInfo(
                str(_first(r, "cn")), str(_first(r, "scimName") or ""),
                str(_first(r, "scimTenantName") or ""),
                parse_gtime(_first(r, "createTimestamp")),
                parse_gtime(_first(r, "scimExpires")), parse_gtime(_first(r, "scimNotAfter")),
                parse_gtime(_first(r, "scimLastUsed")), str(_first(r, "scimClientId") or "")))
        return sorted(out, key=lambda t: (t.tenant.lower(), t.name.lower(), t.id))

    def revoke_token(self, key: str) -> bool:
        return _HEX_ID.fullmatch(key) is not None and self._delete(TOKENS, key)

    def rotate(self, key: str, grace: timedelta) -> tuple[str, str]:
        """A new token like ``key`` (same tenant, name and expiry); ``key`` is accepted
        until ``grace`` from now (``scimNotAfter``), then refused.

        KeyError: no such token; ValueError: it has already stopped working.
        """
        row = self._read(self._dn(TOKENS, key), _TOKEN_ATTRS) if _HEX_ID.fullmatch(key) else None
        if row is None or _first(row, "scimClientId"):
            raise KeyError(f"no token {key!r}")
        expires = parse_gtime(_first(row, "scimExpires"))
        ends = _earliest(expires, parse_gtime(_first(row, "scimNotAfter")))
        if ends is not None and ends <= self.clock():
            raise ValueError(f"token {key} has expired; create a new one instead")
        new = self.create_token(self._tenant_of(row), str(_first(row, "scimName") or ""),
                                expires)
        grace_ends = self.clock() + grace
        current = parse_gtime(_first(row, "scimNotAfter"))
        if current is None or grace_ends < current:
            self._do(self.conn.modify, self._dn(TOKENS, key),
                     {"scimNotAfter": [(MODIFY_REPLACE, [gtime(grace_ends)])]})
        return new

    def purge_expired(self, limit: int = 50) -> int:
        """Delete up to ``limit`` OAuth access tokens that expired a while ago.

        Managed tokens are left for the admin to see as expired and revoke.
        """
        cutoff = gtime(self.clock() - PURGE_AFTER)
        flt = f"(&(objectClass=scimToken)(scimClientId=*)(scimExpires<={cutoff}))"
        gone = 0
        for r in self._list(TOKENS, flt, ["cn"])[:limit]:
            gone += self._delete(TOKENS, str(_first(r, "cn")))
        return gone

    # -- OAuth clients ----------------------------------------------------------------

    def create_client(self, tenant: Tenant, name: str) -> tuple[str, str]:
        """A new OAuth client: (client_id, client_secret to show ONCE)."""
        return self._new_entry(CLIENTS, ["scimOAuthClient"], {
            "scimTenantBase": tenant.base_dn, "scimTenantName": tenant.name,
            "scimName": name})

    def verify_client(self, client_id: str, secret: str) -> Verified | None:
        if not _HEX_ID.fullmatch(client_id) or not secret:
            return None
        row = self._check(CLIENTS, client_id, secret)
        if row is None:
            return None
        return Verified(client_id, str(_first(row, "scimName") or ""), self._tenant_of(row),
                        parse_gtime(_first(row, "scimLastUsed")), None)

    def clients(self) -> list[TokenInfo]:
        return self._infos(CLIENTS, "(objectClass=scimOAuthClient)")

    def revoke_client(self, client_id: str) -> int | None:
        """Delete a client and the access tokens issued to it; None when unknown.

        Returns how many access tokens were deleted.
        """
        if not _HEX_ID.fullmatch(client_id) or not self._delete(CLIENTS, client_id):
            return None
        issued = self._list(TOKENS, f"(scimClientId={client_id})", ["cn"])
        return sum(self._delete(TOKENS, str(_first(r, "cn"))) for r in issued)
