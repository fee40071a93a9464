"""Admin dashboard sign-in checks: bind as an admin, check a group.

The admin's DN comes from its login (directory/admins.py). The password is checked by a
simple bind as that DN on a fresh connection of its own, so the pooled connections stay
bound as the service. ppolicy applies as for any bind: a locked account cannot sign in.
Nothing here writes to the directory.
"""

from __future__ import annotations

import math

from ldap3 import BASE, Connection
from ldap3.core.exceptions import LDAPException, LDAPNoSuchObjectResult
from ldap3.utils.conv import escape_filter_chars

from config import Settings
from directory.connection import build_server
from directory.errors import DirectoryUnavailable, translate


def password_ok(settings: Settings, dn: str, password: str) -> bool:
    """Whether a simple bind as ``dn`` with ``password`` succeeds (fresh connection).

    An empty password is refused here: LDAP would treat it as an unauthenticated bind,
    which succeeds without proving anything (RFC 4513 §5.1.2).
    """
    if not dn or not password:
        return False
    for url in settings.ldap_urls:
        conn = Connection(build_server(url, settings), user=dn, password=password,
                          auto_bind="NONE", raise_exceptions=False,
                          receive_timeout=max(1, math.ceil(settings.LDAP_TIMEOUT)))
        try:
            conn.open()
            if settings.LDAP_START_TLS and not url.startswith("ldaps"):
                conn.start_tls()
            return bool(conn.bind())
        except LDAPException:
            continue  # this server is unreachable: try the next URL
        finally:
            try:
                conn.unbind()
            except LDAPException:
                pass
    raise DirectoryUnavailable("no directory server answered the sign-in")


def is_member(conn: Connection, group_dn: str, dn: str) -> bool:
    """Whether ``dn`` is a direct ``member`` of ``group_dn`` (a missing group: no)."""
    flt = f"(member={escape_filter_chars(dn)})"
    try:
        conn.search(group_dn, flt, BASE, attributes=["1.1"])
    except LDAPNoSuchObjectResult:
        return False
    except LDAPException as exc:
        raise translate(exc) from exc
    return any(r.get("type") == "searchResEntry" for r in conn.response or [])


def missing_entries(conn: Connection, dns: list[str]) -> list[str]:
    """The DNs of ``dns`` that do not exist (base-scope reads)."""
    missing = []
    for dn in dns:
        try:
            conn.search(dn, "(objectClass=*)", BASE, attributes=["1.1"])
        except LDAPNoSuchObjectResult:
            missing.append(dn)
        except LDAPException as exc:
            raise translate(exc) from exc
    return missing
