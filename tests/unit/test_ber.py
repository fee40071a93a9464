"""directory.ber writes the bytes ldap3 + pyasn1 would write for the same request."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ldap3 import BASE, DEREF_NEVER, MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, SUBTREE
from ldap3.operation.add import add_operation
from ldap3.operation.compare import compare_operation
from ldap3.operation.delete import delete_operation
from ldap3.operation.modify import modify_operation
from ldap3.operation.modifyDn import modify_dn_operation
from ldap3.operation.search import compile_filter, parse_filter, search_operation
from ldap3.protocol.convert import build_controls_list
from ldap3.protocol.rfc2696 import paged_search_control
from ldap3.protocol.rfc4511 import LDAPMessage, MessageID, ProtocolOp
from ldap3.utils.asn1 import encode
from ldap3.utils.conv import escape_filter_chars

from directory import ber
from directory.ldapfilter import Translator  # noqa: F401 - the filters we send come from here

BASE_DN = "ou=People,o=t,dc=example,dc=org"


def ldap3_message(kind: str, request: object, message_id: int = 7,
                  controls: list | None = None) -> bytes:
    message = LDAPMessage()
    message["messageID"] = MessageID(message_id)
    message["protocolOp"] = ProtocolOp().setComponentByName(kind, request)
    built = build_controls_list(controls)
    if built is not None:
        message["controls"] = built
    return encode(message)


def ldap3_filter(text: str) -> bytes:
    return encode(compile_filter(parse_filter(text, None, True, True, None, False).elements[0]))


FILTERS = [
    "(objectClass=*)",
    "(uid=adele@example.org)",
    "(&(objectClass=inetOrgPerson)(entryUUID=4bbc3050-7f9d-1041-8c95-fb5a160eb0d8))",
    "(|(member=uid=a\\2cb,ou=People,dc=x)(manager=uid=a\\2cb,ou=People,dc=x))",
    "(!(member=cn=empty-group-placeholder,ou=Service,dc=x))",
    "(&(entryCSN=20261128173131.842000Z#000000#000#000000)(!(member=cn=p,dc=x)))",
    "(cn=ad*)", "(cn=*le)", "(cn=a*d*e)", "(cn=*d*)", "(mail=*@example.org)",
    "(createTimestamp>=20260101000000Z)", "(modifyTimestamp<=20260101000000Z)",
    "(cn~=adele)", "(uid:caseExactMatch:=Adele)", "(cn:dn:2.5.13.5:=x)",
    "(displayName=Ren\\c3\\a9e \\28\\2a\\29 \\5c)", "(displayName=Renée)",
    "(&(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))(|(entryUUID=a)(entryUUID=b)))",
    "(uid=)", "(&(a=1)(!(|(b=2)(c=*))))",
]


@pytest.mark.parametrize("text", FILTERS)
def test_filters_match_ldap3(text: str) -> None:
    assert ber.filter_ber(text) == ldap3_filter(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_escaped_value_matches_ldap3(value: str) -> None:
    # ldap3's parser strips surrounding whitespace from values; ours keeps the value as
    # escaped (below), so compare on values without it.
    value = value.strip()
    text = f"(&(objectClass=inetOrgPerson)(uid={escape_filter_chars(value)}))"
    assert ber.filter_ber(text) == ldap3_filter(text)


def test_surrounding_spaces_are_kept() -> None:
    assert ber.filter_ber("(cn= a )") == b"\xa3\x09\x04\x02cn\x04\x03 a "


@pytest.mark.parametrize("text", ["", "uid=x", "(uid=x", "(uid=x))", "(=x)", "(uid=\\zz)",
                                  "(&(uid=x)", "(uid=\\4)"])
def test_malformed_filters_are_refused(text: str) -> None:
    with pytest.raises(ber.FilterSyntaxError):
        ber.filter_ber(text)


def test_search_request_matches_ldap3() -> None:
    attrs = ["uid", "cn", "memberOf", "entryUUID"]
    text = "(&(objectClass=inetOrgPerson)(uid=adele))"
    request = search_operation(BASE_DN, text, SUBTREE, DEREF_NEVER, attrs, 2, 0, False,
                               None, False)
    ours = ber.message(9, ber.search_request(BASE_DN, 2, text, attrs, size_limit=2))
    assert ours == ldap3_message("searchRequest", request, 9)


def test_search_with_controls_matches_ldap3() -> None:
    request = search_operation(BASE_DN, "(objectClass=*)", BASE, DEREF_NEVER, ["1.1"], 0, 0,
                               False, None, False)
    controls = [("1.3.6.1.4.1.4203.666.5.16", False, b"0\x03\x04\x01x"),
                ("1.2.840.113556.1.4.473", True, b"0\x00")]
    paged = paged_search_control(False, 200, b"cookie")
    ours = ber.message(300, ber.search_request(BASE_DN, 0, "(objectClass=*)", ["1.1"]),
                       [*controls, ("1.2.840.113556.1.4.319", False,
                                    ber.paged_value(200, b"cookie"))])
    assert ours == ldap3_message("searchRequest", request, 300, [*controls, paged])


def test_add_request_matches_ldap3() -> None:
    attrs = {"objectClass": ["top", "inetOrgPerson"], "uid": ["adele"], "cn": ["Adele V"],
             "description": ["ünïcödé", "two"]}
    request = add_operation("uid=adele," + BASE_DN, attrs, None, False)
    ours = ber.message(1, ber.add_request("uid=adele," + BASE_DN, attrs),
                       [("1.3.6.1.1.13.2", False, ber.attribute_list(["entryUUID"]))])
    assert ours == ldap3_message("addRequest", request, 1,
                                 [("1.3.6.1.1.13.2", False, ber.attribute_list(["entryUUID"]))])


def test_modify_request_matches_ldap3() -> None:
    changes = {"member": [(MODIFY_ADD, ["uid=a," + BASE_DN]), (MODIFY_DELETE, ["cn=p"])],
               "title": [(MODIFY_REPLACE, ["Engineer"])], "mobile": [(MODIFY_REPLACE, [])]}
    request = modify_operation("cn=g," + BASE_DN, changes, None, False)
    controls = [("1.3.6.1.1.12", True, ber.assertion_value("(!(member=cn=p))")),
                ("1.2.840.113556.1.4.1413", False, None)]
    ours = ber.message(128, ber.modify_request("cn=g," + BASE_DN, changes), controls)
    assert ours == ldap3_message("modifyRequest", request, 128, controls)


def test_delete_rename_compare_match_ldap3() -> None:
    dn = "uid=adele," + BASE_DN
    assert ber.message(2, ber.delete_request(dn)) == ldap3_message(
        "delRequest", delete_operation(dn), 2)
    assert ber.message(3, ber.modify_dn_request(dn, "uid=adv")) == ldap3_message(
        "modDNRequest", modify_dn_operation(dn, "uid=adv", True, None), 3)
    assert ber.message(4, ber.compare_request(dn, "member", "uid=x")) == ldap3_message(
        "compareRequest", compare_operation(dn, "member", "uid=x", None, False), 4)


@pytest.mark.parametrize("n", [0, 1, 127, 128, 255, 256, 65535, 65536, 2**31 - 1])
def test_integers_and_lengths_match_ldap3(n: int) -> None:
    request = search_operation("", "(a=*)", BASE, DEREF_NEVER, ["x" * (n % 300)], n, 0,
                               False, None, False)
    ours = ber.message(n or 1, ber.search_request("", 0, "(a=*)", ["x" * (n % 300)], n))
    assert ours == ldap3_message("searchRequest", request, n or 1)


# --- responses: decoded as ldap3 decodes them --------------------------------------------


def ldap3_decode(data: bytes) -> dict:
    from ldap3 import Connection, Server
    from ldap3.utils.asn1 import decode_message_fast

    conn = Connection(Server("localhost"), check_names=False)
    decoded = conn.strategy.decode_response_fast(decode_message_fast(data))
    if "attributes" in decoded:
        decoded["attributes"] = dict(decoded["attributes"])
    return decoded


def entry_message(message_id: int, dn: str, attrs: dict[str, list[bytes]],
                  controls: list | None = None) -> bytes:
    body = ber.sequence((ber.octets(dn), ber.sequence(
        ber.sequence((ber.octets(k), ber.sequence((ber.octets(v) for v in vs), ber.SET)))
        for k, vs in attrs.items())), 0x64)
    return ber.message(message_id, body, controls or [])


def result_message(message_id: int, tag: int, code: int, matched: str = "",
                   text: str = "", extra: bytes = b"", controls: list | None = None) -> bytes:
    body = ber.sequence((ber.integer(code, ber.ENUMERATED), ber.octets(matched),
                         ber.octets(text), extra), tag)
    return ber.message(message_id, body, controls or [])


def test_entry_decodes_as_ldap3_does() -> None:
    data = entry_message(12, "uid=adèle,ou=People,dc=x", {
        "uid": [b"ad\xc3\xa8le"], "cn": [b"Ad\xc3\xa8le", b"Second"],
        "jpegPhoto": [b"\xff\xd8\xff"], "entryUUID": [b"4bbc3050-7f9d-1041-8c95-fb5a160eb0d8"]})
    message_id, ours = ber.decode_message(data)
    theirs = ldap3_decode(data)
    assert message_id == 12
    assert ours["type"] == theirs["type"] == "searchResEntry"
    assert ours["dn"] == theirs["dn"]
    # ldap3 turns bytes that are not UTF-8 into latin-1 text; we keep them as bytes
    assert ours["attributes"].pop("jpegPhoto") == [b"\xff\xd8\xff"]
    theirs["attributes"].pop("jpegPhoto")
    assert ours["attributes"] == theirs["attributes"]


@pytest.mark.parametrize(("tag", "kind"), [(0x65, "searchResDone"), (0x67, "modifyResponse"),
                                           (0x69, "addResponse"), (0x6B, "delResponse"),
                                           (0x6D, "modDNResponse"), (0x6F, "compareResponse")])
@pytest.mark.parametrize("code", [0, 6, 16, 32, 65, 68, 122])
def test_results_decode_as_ldap3_does(tag: int, kind: str, code: int) -> None:
    data = result_message(3, tag, code, "ou=People,dc=x", "diagnostic text")
    _, ours = ber.decode_message(data)
    theirs = ldap3_decode(data)
    for key in ("type", "result", "description", "dn", "message"):
        assert ours[key] == theirs[key], key
    assert ours["type"] == kind


def test_referrals_and_extended_names() -> None:
    referral = ber.sequence((ber.octets("ldap://other/dc=x"),), 0xA3)
    _, ours = ber.decode_message(result_message(4, 0x65, 10, extra=referral))
    assert ours["referrals"] == ["ldap://other/dc=x"]
    notice = ber.octets("1.3.6.1.4.1.1466.20036", 0x8A)
    message_id, ours = ber.decode_message(result_message(0, 0x78, 52, extra=notice))
    assert (message_id, ours["type"], ours["responseName"]) == (
        0, "extendedResp", "1.3.6.1.4.1.1466.20036")


def test_response_controls_decode_as_ldap3_does() -> None:
    post_read = ber.sequence((ber.octets("uid=a,dc=x"), ber.sequence((
        ber.sequence((ber.octets("entryUUID"), ber.sequence((ber.octets("u-1"),), ber.SET))),
        ber.sequence((ber.octets("entryCSN"), ber.sequence((ber.octets("c#1"),), ber.SET))),
    ))))
    controls = [("1.3.6.1.1.13.2", False, post_read),
                ("1.2.840.113556.1.4.319", False, ber.paged_value(0, b"\x01\x02")),
                ("2.16.840.1.113730.3.4.10", True, b"0\x03\x02\x01\x05")]
    data = result_message(5, 0x67, 0, controls=controls)
    _, ours = ber.decode_message(data)
    theirs = ldap3_decode(data)
    for oid in ("1.3.6.1.1.13.2", "1.2.840.113556.1.4.319", "2.16.840.1.113730.3.4.10"):
        value = theirs["controls"][oid]["value"]
        if oid == "1.3.6.1.1.13.2":
            value = {"result": dict(value["result"])}
        assert ours["controls"][oid]["value"] == value
        assert ours["controls"][oid]["criticality"] == theirs["controls"][oid]["criticality"]


def test_entry_controls_keep_raw_values() -> None:
    data = entry_message(6, "cn=g,dc=x", {}, [("1.3.6.1.4.1.4203.666.5.16", False, b"0\x00")])
    _, ours = ber.decode_message(data)
    assert ours["attributes"] == {}
    assert ours["controls"]["1.3.6.1.4.1.4203.666.5.16"]["value"] == b"0\x00"


def test_message_size_and_truncation() -> None:
    data = entry_message(7, "cn=" + "x" * 300, {"cn": [b"y" * 300]})
    assert ber.message_size(data) == len(data)
    assert ber.message_size(data[:1]) == -1
    assert ber.message_size(data[:3]) == -1  # long-form length not all there yet
    assert ber.message_size(b"\x00" * 5 + data, 5) == len(data)
    with pytest.raises(ber.DecodeError):
        ber.decode_message(data[:-10])
    with pytest.raises(ber.DecodeError):
        ber.decode_message(ber.message(1, ber.octets("x", 0x42)))
