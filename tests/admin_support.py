"""Helpers of the admin dashboard tests (contract/test_admin.py, e2e/test_admin_browser.py).

An admin is made as ``flask --app app admin create`` makes one: ``uid=<login>`` under the
admin base (``ou=Admins,ou=Service,<base>``), outside every SCIM-managed subtree. The
other person is a plain ``inetOrgPerson`` with a password in ``ou=People``, as a SCIM
client could create: it must never open the dashboard.
"""

from __future__ import annotations

from ldap3 import SUBTREE, Connection
from ldap3.core.exceptions import LDAPNoSuchObjectResult

from directory.admins import Admins
from directory.mapping import hash_password

ADMIN_LOGIN = "dash-admin"
ADMIN_PASSWORD = "correct horse battery staple"
OTHER_LOGIN = "dash-user"
OTHER_PASSWORD = "not an admin at all"


def person_dn(base_dn: str, login: str) -> str:
    return f"uid={login},ou=People,{base_dn}"


def admin_base(base_dn: str) -> str:
    return f"ou=Admins,ou=Service,{base_dn}"


def add_person(conn: Connection, base_dn: str, login: str, password: str) -> str:
    dn = person_dn(base_dn, login)
    conn.add(dn, ["inetOrgPerson"], {"uid": login, "cn": login, "sn": login,
                                     "userPassword": password})
    return dn


def add_admin(conn: Connection, base_dn: str, login: str, password: str) -> str:
    """An admin as the CLI makes it (removing one of that login first)."""
    admins = Admins(conn, admin_base(base_dn))
    admins.remove(login)
    return admins.create(login, hash_password(password))


def make_admins(conn: Connection, base_dn: str) -> tuple[str, str]:
    """An admin (under the admin base) and a person of ou=People; their DNs."""
    wipe_admins(conn, base_dn)
    admin = add_admin(conn, base_dn, ADMIN_LOGIN, ADMIN_PASSWORD)
    other = add_person(conn, base_dn, OTHER_LOGIN, OTHER_PASSWORD)
    return admin, other


def wipe_admins(conn: Connection, base_dn: str) -> None:
    """Remove every admin (and its sessions): tests must not see each other's."""
    admins = Admins(conn, admin_base(base_dn))
    for info in admins.list():
        admins.remove(info.login)


def wipe_tokens(conn: Connection, base_dn: str) -> None:
    """Remove managed tokens (tests must not see each other's)."""
    try:
        conn.search(f"ou=Tokens,ou=Service,{base_dn}", "(objectClass=scimToken)", SUBTREE,
                    attributes=["1.1"])
    except LDAPNoSuchObjectResult:
        return
    for dn in [e["dn"] for e in conn.response if e.get("type") == "searchResEntry"]:
        conn.delete(dn)
