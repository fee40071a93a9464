"""Sort and VLV controls (BER), and which attributes the directory can order."""

from __future__ import annotations

from pyasn1.codec.ber import decoder

from directory.mapping import load_mapping
from directory.sort import (
    CASE_IGNORE_ORDERING,
    SORT_OID,
    VLV_OID,
    _SortKeyList,
    _VlvRequest,
    has_ordering,
    sort_control,
    vlv_control,
)


def keys(control: tuple[str, bool, bytes]) -> list[tuple[str, str | None, bool]]:
    oid, critical, value = control
    assert (oid, critical) == (SORT_OID, True)
    decoded, rest = decoder.decode(value, asn1Spec=_SortKeyList())
    assert rest == b""
    return [(str(k["attributeType"]),
             str(k["orderingRule"]) if k["orderingRule"].isValue else None,
             bool(k["reverseOrder"])) for k in decoded]


def test_attributes_without_ordering_name_case_ignore_ordering_and_get_a_tiebreak():
    assert keys(sort_control("uid")) == [("uid", CASE_IGNORE_ORDERING, False),
                                         ("entryUUID", None, False)]
    assert keys(sort_control("displayName", descending=True)) == [
        ("displayName", CASE_IGNORE_ORDERING, True), ("entryUUID", None, False)]


def test_attributes_with_their_own_ordering_keep_it():
    # scimExternalId is caseExactOrderingMatch: naming caseIgnore would change the order
    assert keys(sort_control("scimExternalId")) == [("scimExternalId", None, False),
                                                    ("entryUUID", None, False)]
    assert keys(sort_control("createTimestamp", True))[0] == ("createTimestamp", None, True)


def test_single_key_forms():
    assert keys(sort_control("uid", tiebreak=False)) == [("uid", CASE_IGNORE_ORDERING, False)]
    assert keys(sort_control("entryUUID")) == [("entryUUID", None, False)]


def test_ordering_comes_from_the_schema_ldif():
    assert has_ordering("scimExternalId") and has_ordering("SCIMNICKNAME")  # SUP scimString
    assert has_ordering("entryUUID") and has_ordering("modifyTimestamp")
    for name in ("uid", "cn", "sn", "mail", "title", "displayName", "scimActive",
                 "scimPrimary", "scimDerived", "employeeNumber"):
        assert not has_ordering(name), name


def test_every_mapped_scim_attribute_of_the_extension_schema_is_ordered():
    # every scim* string attribute we map inherits caseIgnoreOrderingMatch from scimString
    mapping = load_mapping()
    for row in (*mapping.user.rows, *mapping.group.rows):
        if row.ldap.lower().startswith("scim") and row.codec == "string":
            assert has_ordering(row.ldap), row.ldap


def test_vlv_request_encodes_a_window_by_offset():
    oid, critical, value = vlv_control(offset=201, count=100)
    assert (oid, critical) == (VLV_OID, True)
    decoded, _ = decoder.decode(value, asn1Spec=_VlvRequest())
    assert (int(decoded["beforeCount"]), int(decoded["afterCount"])) == (0, 99)
    target = decoded["target"].getComponentByName("byOffset")
    assert (int(target["offset"]), int(target["contentCount"])) == (201, 0)
