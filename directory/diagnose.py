"""What to fix when the service's own connection to the directory fails, in words.

``open_connection`` (directory/connection.py) raises ``DirectoryUnavailable`` with
:func:`explain`'s sentence, so the start-up check, the log and the dashboard all name the
URL, the bind DN and the setting to change instead of an ldap3 class name.
"""

from __future__ import annotations

from typing import Any

from ldap3.core import exceptions as lx


def explain(exc: BaseException | None, url: str, settings: Any) -> str:
    """One line: what went wrong with ``url`` and which setting to change."""
    dn = settings.LDAP_BIND_DN
    if isinstance(exc, lx.LDAPPasswordIsMandatoryError) or (
            exc is not None and not settings.LDAP_BIND_PASSWORD
            and isinstance(exc, lx.LDAPUnwillingToPerformResult)):
        return (f"LDAP_BIND_PASSWORD is empty: set it to the password of {dn} "
                f"(LDAP_BIND_DN) at {url}")
    if isinstance(exc, lx.LDAPInvalidCredentialsResult):
        return (f"{url} refused the bind as {dn}: wrong password or no such entry "
                "(check LDAP_BIND_PASSWORD and LDAP_BIND_DN)")
    if isinstance(exc, lx.LDAPInsufficientAccessRightsResult):
        return f"{url} does not let {dn} bind (LDAP_BIND_DN lacks access)"
    if isinstance(exc, lx.LDAPStartTLSError) or "ssl" in type(exc).__name__.lower() or \
            "certificate" in str(exc).lower():
        return (f"TLS with {url} failed ({_short(exc)}): check LDAP_CA_FILE, "
                "LDAP_TLS_VERIFY and LDAP_START_TLS")
    if isinstance(exc, (lx.LDAPSocketOpenError, lx.LDAPSocketReceiveError,
                        lx.LDAPSessionTerminatedByServerError, OSError)):
        return (f"nothing answered at {url} ({_short(exc)}): is the directory running? "
                "(LDAP_URL)")
    if isinstance(exc, lx.LDAPResponseTimeoutError):
        return f"{url} did not answer within LDAP_TIMEOUT ({settings.LDAP_TIMEOUT} s)"
    name = type(exc).__name__ if exc is not None else "no URL configured"
    return f"no directory server answered ({name}) at {url} (LDAP_URL)"


def _short(exc: BaseException | None) -> str:
    text = str(exc) if exc is not None else ""
    if "refused" in text.lower():
        return "connection refused"
    if "timed out" in text.lower() or "timeout" in text.lower():
        return "timed out"
    return (text or type(exc).__name__)[:120]
