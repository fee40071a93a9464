"""Server-side sort control (RFC 2891), which ldap3 has no helper for.

slapd's sssvlv overlay sorts in the server, also across Simple Paged Results pages.
Attributes without an ORDERING rule (uid, cn, sn, mail, displayName…) are sorted
with caseIgnoreOrderingMatch named in the key, as RFC 2891 §1.1 allows; entryUUID is
always the last key, so equal values keep one order across pages.
"""

from __future__ import annotations

from ldap3.core.results import RESULT_CODES
from pyasn1.codec.ber import encoder
from pyasn1.type import namedtype, tag, univ

#: ldap3 2.9.1 does not know VLV's result code and raises KeyError on it.
RESULT_CODES.setdefault(76, "virtualListViewError")

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


VLV_OID = "2.16.840.1.113730.3.4.9"
VLV_RESPONSE_OID = "2.16.840.1.113730.3.4.10"


class _ByOffset(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("offset", univ.Integer()),
        namedtype.NamedType("contentCount", univ.Integer()),
    )


class _Target(univ.Choice):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("byOffset", _ByOffset().subtype(
            implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, 0))),
    )


class _VlvRequest(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("beforeCount", univ.Integer()),
        namedtype.NamedType("afterCount", univ.Integer()),
        namedtype.NamedType("target", _Target()),
    )


class _VlvResponse(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("targetPosition", univ.Integer()),
        namedtype.NamedType("contentCount", univ.Integer()),
        namedtype.NamedType("virtualListViewResult", univ.Enumerated()),
        namedtype.OptionalNamedType("contextID", univ.OctetString()),
    )


def vlv_control(offset: int, count: int) -> tuple[str, bool, bytes]:
    """Virtual List View (draft-ietf-ldapext-ldapv3-vlv): ``count`` entries from
    1-based ``offset`` of the sorted result, and the result's size, in one search."""
    request = _VlvRequest()
    request["beforeCount"] = 0
    request["afterCount"] = max(count - 1, 0)
    by_offset = request["target"].getComponentByName("byOffset")
    by_offset["offset"] = offset
    by_offset["contentCount"] = 0
    return (VLV_OID, True, encoder.encode(request))


def vlv_content_count(result: dict) -> int | None:
    """The server's count of matching entries from a VLV response, if any."""
    from pyasn1.codec.ber import decoder

    control = (result.get("controls") or {}).get(VLV_RESPONSE_OID)
    raw = (control or {}).get("value")
    if not isinstance(raw, bytes | bytearray):
        return None
    decoded, _ = decoder.decode(raw, asn1Spec=_VlvResponse())
    if int(decoded["virtualListViewResult"]) != 0:
        return None
    return int(decoded["contentCount"])
