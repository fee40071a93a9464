"""Read-only bind accounts for LDAP consumers (an MDM reading the tree).

A reader is ``cn=<name>,ou=Readers,ou=Service,<root base>`` (``applicationProcess`` +
``simpleSecurityObject``: a hashed ``userPassword``, nothing personal), made by ``flask
--app app reader create NAME --tenant T``. What it may read is decided by the directory's
access rules, not by the bridge: a reader is a ``member`` of ``cn=scim-readers,<tenant
base>``, and the rules (directory/schema/slapd-config.ldif.tmpl, README) let the members
of that group read the tenant's ``ou=People`` and ``ou=Groups`` and nothing else. The
group sits beside the tenant's containers, out of every SCIM client's reach. The reader's
tenant is also recorded on its entry (``ou`` = tenant name, ``seeAlso`` = tenant base), so
``reader list`` and ``reader remove`` need no search through the groups.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ldap3 import BASE, LEVEL, MODIFY_ADD, MODIFY_DELETE, Connection
from ldap3.utils.dn import escape_rdn

from directory.errors import (
    EntryExists,
    NoSuchAttribute,
    NoSuchEntry,
    ObjectClassViolation,
    entries_of,
)
from directory.tenant import Tenant
from directory.tokens import parse_gtime

READERS = "Readers"
#: The group, directly under each tenant's base DN, whose members read that tenant.
READER_GROUP = "scim-readers"
READER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def reader_group_dn(tenant: Tenant) -> str:
    return f"cn={READER_GROUP},{tenant.base_dn}"


def _one(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value or None


@dataclass(frozen=True)
class ReaderInfo:
    name: str
    dn: str
    tenant: str
    tenant_base: str
    created: datetime | None


class Readers:
    """Reader accounts under ``ou=Readers,ou=Service,<root_base>``, on one connection."""

    def __init__(self, conn: Connection, root_base: str) -> None:
        self.conn = conn
        self.service = f"ou=Service,{root_base}"
        self.base = f"ou={READERS},{self.service}"

    def _do(self, fn: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return entries_of(self.conn, fn, *args, **kwargs)

    def dn(self, name: str) -> str:
        return f"cn={escape_rdn(name)},{self.base}"

    def _ensure_base(self) -> None:
        try:
            self._do(self.conn.add, self.base, ["organizationalUnit"], {"ou": READERS})
        except EntryExists:
            pass
        except NoSuchEntry:  # no ou=Service yet
            self._do(self.conn.add, self.service, ["organizationalUnit"], {"ou": "Service"})
            self._do(self.conn.add, self.base, ["organizationalUnit"], {"ou": READERS})

    def create(self, name: str, tenant: Tenant, password_hash: str) -> str:
        """Add a reader of ``tenant``; its DN. ValueError for a bad or taken name."""
        if not READER_NAME.fullmatch(name):
            raise ValueError(f"reader name {name!r}: use letters, digits, '.', '_' or '-' "
                             "(at most 64, starting with a letter or digit)")
        self._ensure_base()
        dn = self.dn(name)
        try:
            self._do(self.conn.add, dn, ["applicationProcess", "simpleSecurityObject"], {
                "cn": name, "userPassword": password_hash, "ou": tenant.name,
                "seeAlso": tenant.base_dn,
                "description": f"scim-bridge reader of tenant {tenant.name}"})
        except EntryExists:
            raise ValueError(f"reader {name!r} already exists") from None
        group = reader_group_dn(tenant)
        try:
            self._do(self.conn.modify, group, {"member": [(MODIFY_ADD, [dn])]})
        except NoSuchEntry:
            try:
                self._do(self.conn.add, group, ["groupOfNames"], {
                    "cn": READER_GROUP, "member": [dn],
                    "description": "Readers of this tenant (flask --app app reader create)"})
            except BaseException:
                self._do(self.conn.delete, dn)
                raise
        return dn

    def list(self) -> list[ReaderInfo]:
        try:
            rows = self._do(self.conn.search, self.base, "(objectClass=applicationProcess)",
                            LEVEL, attributes=["cn", "ou", "seeAlso", "createTimestamp"])
        except NoSuchEntry:
            return []
        out = [ReaderInfo(str(_one(r["attributes"].get("cn"))), r["dn"],
                          str(_one(r["attributes"].get("ou")) or ""),
                          str(_one(r["attributes"].get("seeAlso")) or ""),
                          parse_gtime(_one(r["attributes"].get("createTimestamp"))))
               for r in rows]
        return sorted(out, key=lambda r: (r.tenant.lower(), r.name.lower()))

    def remove(self, name: str) -> bool:
        """Take the reader out of its tenant's group, then delete it; False if unknown."""
        if not READER_NAME.fullmatch(name):
            return False
        dn = self.dn(name)
        try:
            rows = self._do(self.conn.search, dn, "(objectClass=*)", BASE,
                            attributes=["seeAlso"])
        except NoSuchEntry:
            return False
        base = _one(rows[0]["attributes"].get("seeAlso")) if rows else None
        if base:
            group = f"cn={READER_GROUP},{base}"
            try:
                self._do(self.conn.modify, group, {"member": [(MODIFY_DELETE, [dn])]})
            except (NoSuchEntry, NoSuchAttribute):
                pass
            except ObjectClassViolation:  # it was the last member
                self._do(self.conn.delete, group)
        self._do(self.conn.delete, dn)
        return True
