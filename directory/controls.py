"""LDAP controls we send, encoded once here."""

from __future__ import annotations

from typing import Any

from ldap3.operation.search import compile_filter, parse_filter
from ldap3.protocol.rfc4527 import post_read_control
from pyasn1.codec.ber import encoder

#: Operational attributes that make SCIM ``id`` and ``meta``.
META_ATTRIBUTES = ["entryUUID", "entryCSN", "createTimestamp", "modifyTimestamp"]
#: LDAP Permissive Modify (MS-ADTS; accepted by slapd): adding a present value or
#: deleting an absent one succeeds, which makes Entra's retries harmless.
PERMISSIVE_MODIFY = ("1.2.840.113556.1.4.1413", False, None)
POST_READ_OID = "1.3.6.1.1.13.2"


_POST_READ = post_read_control(META_ATTRIBUTES, criticality=False)


def post_read() -> Any:
    """RFC 4527 post-read control asking for the meta attributes (encoded once)."""
    return _POST_READ


def assertion(ldap_filter: str) -> tuple[str, bool, bytes]:
    """RFC 4528 assertion control: the operation applies only if the filter holds."""
    node = parse_filter(ldap_filter, None, True, True, None, False)
    return ("1.3.6.1.1.12", True, encoder.encode(compile_filter(node.elements[0])))
