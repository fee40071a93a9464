"""LDAP controls we send, encoded once here."""

from __future__ import annotations

from directory import ber

#: Operational attributes that make SCIM ``id`` and ``meta``.
META_ATTRIBUTES = ["entryUUID", "entryCSN", "createTimestamp", "modifyTimestamp"]
#: LDAP Permissive Modify (MS-ADTS; accepted by slapd): adding a present value or
#: deleting an absent one succeeds, which makes Entra's retries harmless.
PERMISSIVE_MODIFY = ("1.2.840.113556.1.4.1413", False, None)
POST_READ_OID = "1.3.6.1.1.13.2"
PAGED_OID = "1.2.840.113556.1.4.319"

_POST_READ = (POST_READ_OID, False, ber.attribute_list(META_ATTRIBUTES))


def post_read() -> ber.Control:
    """RFC 4527 post-read control asking for the meta attributes (encoded once)."""
    return _POST_READ


def assertion(ldap_filter: str) -> ber.Control:
    """RFC 4528 assertion control: the operation applies only if the filter holds."""
    return ("1.3.6.1.1.12", True, ber.assertion_value(ldap_filter))


def paged(size: int, cookie: bytes | None) -> ber.Control:
    """RFC 2696 simple paged results, not critical (as ldap3 sends it)."""
    return (PAGED_OID, False, ber.paged_value(size, cookie))
