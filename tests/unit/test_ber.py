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
