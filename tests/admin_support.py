"""Helpers of the admin dashboard tests (contract/test_admin.py, e2e/test_admin_browser.py).

An admin is a plain ``inetOrgPerson`` with a password, and a member of the admin group
(``cn=scim-admins,ou=Groups,<base>`` by default); both are written directly with the
test's admin LDAP connection, as an operator would with ldapadd.
"""

from __future__ import annotations

from ldap3 import SUBTREE, Connection
from ldap3.core.exceptions import LDAPNoSuchObjectResult

ADMIN_LOGIN = "dash-admin"
ADMIN_PASSWORD = "correct horse battery staple"
OTHER_LOGIN = "dash-user"
OTHER_PASSWORD = "not an admin at all"


def person_dn(base_dn: str, login: str) -> str:
    return f"uid={login},ou=People,{base_dn}"


def admin_group_dn(base_dn: str) -> str:
    return f"cn=scim-admins,ou=Groups,{base_dn}"


def add_person(conn: Connection, base_dn: str, login: str, password: str) -> str:
    dn = person_dn(base_dn, login)
    conn.add(dn, ["inetOrgPerson"], {"uid": login, "cn": login, "sn": login,
                                     "userPassword": password})
    return dn


def make_admins(conn: Connection, base_dn: str) -> tuple[str, str]:
    """An admin (in the admin group) and another person (not in it); their DNs."""
    admin = add_person(conn, base_dn, ADMIN_LOGIN, ADMIN_PASSWORD)
    other = add_person(conn, base_dn, OTHER_LOGIN, OTHER_PASSWORD)
    conn.add(admin_group_dn(base_dn), ["groupOfNames"], {"cn": "scim-admins", "member": [admin]})
    return admin, other


def wipe_tokens(conn: Connection, base_dn: str) -> None:
    """Remove managed tokens (tests must not see each other's)."""
    try:
        conn.search(f"ou=Tokens,ou=Service,{base_dn}", "(objectClass=scimToken)", SUBTREE,
                    attributes=["1.1"])
    except LDAPNoSuchObjectResult:
        return
    for dn in [e["dn"] for e in conn.response if e.get("type") == "searchResEntry"]:
        conn.delete(dn)
