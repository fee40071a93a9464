"""LDAP controls we send, encoded once here."""

from __future__ import annotations

from ldap3.utils.conv import escape_filter_chars

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


def matched_values(whole: list[str], attribute: str, values: list[str]) -> ber.Control:
    """RFC 3876 values return filter: every value of ``whole``, and of ``attribute`` only
    the given values. Not critical: a server without it returns every value."""
    items = [ber.filter_ber(f"({a}=*)") for a in whole]
    items += [ber.filter_ber(f"({attribute}={escape_filter_chars(v)})") for v in values]
    return ("1.2.826.0.1.3344810.2.3", False, ber.sequence(items))
