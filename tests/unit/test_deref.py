"""BER of the Dereference control (directory/deref.py), checked against pyasn1."""

from __future__ import annotations

import pytest
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import namedtype, tag, univ

from directory import deref


class AttributeList(univ.SequenceOf):
    componentType = univ.OctetString()


class DerefSpec(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("derefAttr", univ.OctetString()),
        namedtype.NamedType("attributes", AttributeList()))


class DerefSpecs(univ.SequenceOf):
    componentType = DerefSpec()


class Values(univ.SetOf):
    componentType = univ.OctetString()


class PartialAttribute(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("type", univ.OctetString()),
        namedtype.NamedType("vals", Values()))


class PartialAttributeList(univ.SequenceOf):
    componentType = PartialAttribute()
    tagSet = univ.SequenceOf.tagSet.tagImplicitly(
        tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, 0))


class DerefRes(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("derefAttr", univ.OctetString()),
        namedtype.NamedType("derefVal", univ.OctetString()),
        namedtype.OptionalNamedType("attrVals", PartialAttributeList()))


class DerefResponse(univ.SequenceOf):
    componentType = DerefRes()


def response(*items: tuple[str, dict[str, list[str]] | None]) -> bytes:
    out = DerefResponse()
    for i, (dn, attrs) in enumerate(items):
        res = DerefRes()
        res["derefAttr"] = "member"
        res["derefVal"] = dn.encode()
        if attrs is not None:
            parts = res["attrVals"]
            for j, (name, values) in enumerate(attrs.items()):
                part = PartialAttribute()
                part["type"] = name
                for k, v in enumerate(values):
                    part["vals"][k] = v.encode()
                parts[j] = part
        out[i] = res
    return bytes(encoder.encode(out))


def test_control_is_a_deref_spec_list():
    oid, critical, value = deref.control("member", ["entryUUID", "structuralObjectClass"])
    assert (oid, critical) == ("1.3.6.1.4.1.4203.666.5.16", False)
    specs, rest = decoder.decode(value, asn1Spec=DerefSpecs())
    assert rest == b""
    assert str(specs[0]["derefAttr"]) == "member"
    assert [str(a) for a in specs[0]["attributes"]] == ["entryUUID", "structuralObjectClass"]


def test_parse_values_with_and_without_an_entry():
    long_dn = "cn=" + "x" * 300 + ",ou=Groups,dc=example,dc=org"  # long-form lengths
    raw = response(
        ("uid=ann,ou=People,dc=example,dc=org",
         {"entryUUID": ["1e46-ann"], "structuralObjectClass": ["inetOrgPerson"]}),
        ("uid=ghost,ou=People,dc=example,dc=org", None),
        (long_dn, {"entryUUID": ["1e46-grp"], "structuralObjectClass": ["groupOfNames"]}),
        ("cn=Équipe,ou=Groups,dc=example,dc=org", {"entryUUID": ["1e46-eq"]}),
    )
    assert deref.parse(raw) == [
        ("uid=ann,ou=People,dc=example,dc=org",
         {"entryuuid": ["1e46-ann"], "structuralobjectclass": ["inetOrgPerson"]}),
        ("uid=ghost,ou=People,dc=example,dc=org", {}),
        (long_dn, {"entryuuid": ["1e46-grp"], "structuralobjectclass": ["groupOfNames"]}),
        ("cn=Équipe,ou=Groups,dc=example,dc=org", {"entryuuid": ["1e46-eq"]}),
    ]


def test_parse_many_values():
    items = [(f"uid=u{i},ou=People,dc=x", {"entryUUID": [f"id-{i}"]}) for i in range(3000)]
    parsed = deref.parse(response(*items))
    assert [dn for dn, _ in parsed] == [dn for dn, _ in items]
    assert parsed[-1][1] == {"entryuuid": ["id-2999"]}


def test_parse_of_an_empty_list():
    assert deref.parse(response()) == []


@pytest.mark.parametrize("raw", [b"", b"\x30", b"\x30\x05\x30\x03\x04\x01", b"\x04\x00",
                                 b"\x30\x84\xff\xff\xff\xff"])
def test_malformed_replies_raise_value_error(raw):
    with pytest.raises(ValueError):
        deref.parse(raw)
