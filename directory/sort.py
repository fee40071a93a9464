"""Server-side sort control (RFC 2891), which ldap3 has no helper for.

slapd's sssvlv overlay sorts in the server, also across Simple Paged Results pages.
Attributes without an ORDERING rule (uid, cn, sn, mail, displayName…) are sorted
with caseIgnoreOrderingMatch named in the key, as RFC 2891 §1.1 allows; entryUUID is
always the last key, so equal values keep one order across pages.
"""

from __future__ import annotations

from pyasn1.codec.ber import encoder
from pyasn1.type import namedtype, tag, univ

SORT_OID = "1.2.840.113556.1.4.473"
CASE_IGNORE_ORDERING = "2.5.13.3"
#: LDAP attributes whose own ORDERING rule sorts them (no rule named in the key).
_ORDERED = {"createtimestamp", "modifytimestamp", "entryuuid"}


class _SortKey(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("attributeType", univ.OctetString()),
        namedtype.OptionalNamedType("orderingRule", univ.OctetString().subtype(
            implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatSimple, 0))),
        namedtype.DefaultedNamedType("reverseOrder", univ.Boolean(False).subtype(
            implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatSimple, 1))),
    )


class _SortKeyList(univ.SequenceOf):
    componentType = _SortKey()


def sort_control(attribute: str, descending: bool = False) -> tuple[str, bool, bytes]:
    """A critical sort control on ``attribute`` (then entryUUID as a tiebreak)."""
    keys = _SortKeyList()
    for i, (name, reverse) in enumerate(((attribute, descending), ("entryUUID", False))):
        key = _SortKey()
        key["attributeType"] = name
        lowered = name.lower()
        if lowered not in _ORDERED and not lowered.startswith("scim"):
            key["orderingRule"] = CASE_IGNORE_ORDERING
        if reverse:
            key["reverseOrder"] = True
        keys[i] = key
    return (SORT_OID, True, encoder.encode(keys))
