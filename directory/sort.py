"""Server-side sort (RFC 2891) and Virtual List View controls, which ldap3 has no helper for.

slapd's sssvlv overlay sorts in the server, also across Simple Paged Results pages.
Attributes without an ORDERING rule (uid, cn, sn, mail, displayName…) are sorted
with caseIgnoreOrderingMatch named in the key, as RFC 2891 §1.1 allows; entryUUID is
the last key when the server takes two (``olcSssVlvMaxKeys``), so equal values keep
one order across pages.

``has_ordering`` is also what the filter translator asks before it emits ``>=``/``<=``:
slapd evaluates an ordering filter on an attribute without ORDERING to Undefined,
i.e. silently nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

from ldap3.core.results import RESULT_CODES
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import namedtype, tag, univ

#: ldap3 2.9.1 does not know VLV's result code and raises KeyError on it.
RESULT_CODES.setdefault(76, "virtualListViewError")

SORT_OID = "1.2.840.113556.1.4.473"
CASE_IGNORE_ORDERING = "2.5.13.3"
TIEBREAK = "entryUUID"
#: What sssvlv says when a sort names more keys than olcSssVlvMaxKeys.
TOO_MANY_KEYS = "Too many sort keys"
#: Operational attributes with an ORDERING rule (RFC 4530 UUIDOrderingMatch, RFC 4512
#: generalizedTimeOrderingMatch). No string attribute of core/cosine/inetOrgPerson has one.
_OPERATIONAL_ORDERED = frozenset({"createtimestamp", "modifytimestamp", "entryuuid"})
_SCHEMA_LDIF = Path(__file__).with_name("schema") / "scimbridge.ldif"
_TYPE_RE = re.compile(r"olcAttributeTypes:\s*\((.*?)\)\s*$", re.S | re.M)


def _ordered_in(ldif: str) -> frozenset[str]:
    """Attribute types of an LDIF schema with an ORDERING rule, their own or inherited."""
    own: dict[str, bool] = {}
    parent: dict[str, str] = {}
    unfolded = re.sub(r"\n[ \t]", " ", ldif)
    for line in unfolded.splitlines():
        if not line.startswith("olcAttributeTypes:"):
            continue
        name = re.search(r"NAME\s+'([^']+)'", line)
        if name is None:
            continue
        key = name[1].lower()
        own[key] = re.search(r"\bORDERING\s", line) is not None
        sup = re.search(r"\bSUP\s+([\w-]+)", line)
        if sup:
            parent[key] = sup[1].lower()

    def ordered(key: str, depth: int = 0) -> bool:
        if own.get(key) or depth > 16:
            return bool(own.get(key))
        return key in parent and ordered(parent[key], depth + 1)

    return frozenset(k for k in own if ordered(k))


#: LDAP attributes (lower case) that an ORDERING rule compares: ``>=``/``<=`` filters
#: work, and a sort key needs no rule named. Derived from the schema slapd loads.
ORDERED = _OPERATIONAL_ORDERED | _ordered_in(_SCHEMA_LDIF.read_text(encoding="utf-8"))


def has_ordering(ldap: str) -> bool:
    """Whether the directory can evaluate ``>=``/``<=`` on ``ldap`` (its own ORDERING)."""
    return ldap.lower() in ORDERED


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


def sort_control(attribute: str, descending: bool = False,
                 tiebreak: bool = True) -> tuple[str, bool, bytes]:
    """A critical sort control on ``attribute``, then (``tiebreak``) entryUUID ascending.

    The tiebreak makes the order total, so a window of equal values is the same on every
    request; a server that takes one key only refuses two with ``TOO_MANY_KEYS``.
    """
    order = [(attribute, descending)]
    if tiebreak and attribute.lower() != TIEBREAK.lower():
        order.append((TIEBREAK, False))
    keys = _SortKeyList()
    for i, (name, reverse) in enumerate(order):
        key = _SortKey()
        key["attributeType"] = name
        if not has_ordering(name):
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
    control = (result.get("controls") or {}).get(VLV_RESPONSE_OID)
    raw = (control or {}).get("value")
    if not isinstance(raw, bytes | bytearray):
        return None
    decoded, _ = decoder.decode(raw, asn1Spec=_VlvResponse())
    if int(decoded["virtualListViewResult"]) != 0:
        return None
    return int(decoded["contentCount"])
