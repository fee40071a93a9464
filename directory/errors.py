"""Directory errors, and the one place ldap3 exceptions are translated."""

from __future__ import annotations

import re
from typing import Any

from ldap3.core import exceptions as lx


class DirectoryError(Exception):
    """Base of errors raised by the directory layer.

    ``from_server`` is set when the message quotes the directory (result code and its
    diagnostic text): that is for the logs, never for a client.
    """

    from_server = False


class DirectoryUnavailable(DirectoryError):
    """The directory cannot be reached, timed out, or refused our bind."""


class DirectoryBusy(DirectoryError):
    """No free connection in time, or the server said busy/unwilling/time limit."""


class EntryExists(DirectoryError):
    """LDAP result 68: the DN is taken."""


class NoSuchEntry(DirectoryError):
    """LDAP result 32: the entry (or its parent) does not exist."""


class ObjectClassViolation(DirectoryError):
    """LDAP result 65, e.g. removing the last member of a groupOfNames."""


class AssertionFailed(DirectoryError):
    """LDAP result 122: the entry changed since it was read (RFC 4528)."""


class VlvOutOfRange(DirectoryError):
    """LDAP result 76: a Virtual List View offset past the end of the result."""


class InvalidData(DirectoryError):
    """The server refused a value: bad syntax, constraint, unknown attribute…"""


class NoSuchAttribute(InvalidData):
    """LDAP result 16: deleting a value that is not there.

    slapd 2.5 honours Permissive Modify for adds only, so deletes must name present
    values (see Repository.change_members).
    """


_BY_CODE: dict[int, type[DirectoryError]] = {
    68: EntryExists,
    32: NoSuchEntry,
    65: ObjectClassViolation,
    122: AssertionFailed,
    76: VlvOutOfRange,
    16: NoSuchAttribute,
    17: InvalidData,  # undefinedAttributeType
    18: InvalidData,  # inappropriateMatching
    19: InvalidData,  # constraintViolation
    20: InvalidData,  # attributeOrValueExists
    21: InvalidData,  # invalidAttributeSyntax
    34: InvalidData,  # invalidDNSyntax
    64: InvalidData,  # namingViolation
    67: InvalidData,  # notAllowedOnRDN
    69: InvalidData,  # objectClassModsProhibited
    3: DirectoryBusy,  # timeLimitExceeded
    51: DirectoryBusy,  # busy
    52: DirectoryUnavailable,  # unavailable
    53: DirectoryBusy,  # unwillingToPerform
    49: DirectoryUnavailable,  # invalidCredentials (our own bind: misconfiguration)
    50: DirectoryUnavailable,  # insufficientAccessRights (our bind lacks an ACL)
}

#: Exceptions after which a connection cannot be trusted and must be dropped.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    lx.LDAPCommunicationError,
    lx.LDAPSocketOpenError,
    lx.LDAPSocketReceiveError,
    lx.LDAPSocketSendError,
    lx.LDAPSessionTerminatedByServerError,
    lx.LDAPResponseTimeoutError,
    lx.LDAPStartTLSError,
    lx.LDAPBindError,
    OSError,
)


def translate(exc: BaseException) -> DirectoryError:
    """Map an ldap3 (or socket) exception to a directory error."""
    if isinstance(exc, DirectoryError):
        return exc
    if isinstance(exc, CONNECTION_ERRORS):
        return DirectoryUnavailable(f"directory unreachable: {type(exc).__name__}")
    if isinstance(exc, lx.LDAPOperationResult):
        kind = _BY_CODE.get(exc.result or 0, DirectoryError)
        text = f"{exc.description or 'error'} ({exc.result})"
        if exc.message:
            text += f": {exc.message}"
        error = kind(text)
    elif isinstance(exc, lx.LDAPException):
        error = InvalidData(str(exc))
    else:
        error = DirectoryError(f"{type(exc).__name__}: {exc}")
    error.from_server = True
    return error


_REFUSED = (
    re.compile(r"\b([A-Za-z][\w-]*): value #\d+"),  # invalidAttributeSyntax, constraint
    re.compile(r"attribute '([A-Za-z][\w-]*)'"),  # objectClassViolation: not allowed
    re.compile(r"\b([A-Za-z][\w-]*): attribute type undefined"),
)


def refused_attribute(error: DirectoryError) -> str | None:
    """The LDAP attribute a refusal names, if any: the one detail a client may see."""
    for pattern in _REFUSED:
        found = pattern.search(str(error))
        if found:
            return found.group(1)
    return None


def entries_of(conn: Any, fn: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Call an ldap3 operation of ``conn`` with its errors translated; the search result
    entries of its response (none for a write)."""
    try:
        fn(*args, **kwargs)
    except Exception as exc:
        raise translate(exc) from exc
    return [r for r in conn.response or [] if r.get("type") == "searchResEntry"]
