"""SCIM filter AST → RFC 4515 strings: operators, value paths, escaping, refusals."""

from __future__ import annotations

import pytest

from directory.ldapfilter import Translator
from directory.mapping import load_mapping
from scim.protocol.errors import InvalidFilter
from scim.protocol.filter import parse_filter

MAPPING = load_mapping()
HIDDEN = "cn=empty-group-placeholder,ou=Service,dc=x"


def users(text: str) -> str:
    return Translator(MAPPING.user, "inetOrgPerson", lambda i: f"uid={i},ou=People,dc=x",
                      HIDDEN).translate(parse_filter(text))


def groups(text: str) -> str:
    return Translator(MAPPING.group, "groupOfNames", lambda i: None,
                      HIDDEN).translate(parse_filter(text))


@pytest.mark.parametrize(("scim", "ldap"), [
    ('userName eq "bob"', "(uid=bob)"),
    ('userName ne "bob"', "(!(uid=bob))"),
    ('userName co "ob"', "(uid=*ob*)"),
    ('userName sw "b"', "(uid=b*)"),
    ('userName ew "b"', "(uid=*b)"),
    ("userName pr", "(uid=*)"),
    ('externalId gt "a"', "(&(scimExternalId>=a)(!(scimExternalId=a)))"),
    ('externalId lt "a"', "(&(scimExternalId<=a)(!(scimExternalId=a)))"),
    ('externalId ge "a"', "(scimExternalId>=a)"),
    ("active eq true", "(scimActive=TRUE)"),
    ("title eq null", "(!(title=*))"),
    ('id eq "1e464e3a-7f75-1041-8844-fb4c54a6a058"',
     "(entryUUID=1e464e3a-7f75-1041-8844-fb4c54a6a058)"),
    ('meta.created ge "2026-01-05T10:00:00+01:00"', "(createTimestamp>=20260105090000Z)"),
    ('name.familyName eq "x"', "(&(sn=x)(!(scimDerived=sn)))"),
    ('emails[type eq "work"].value eq "a@b"', "(&(mail=*)(mail=a@b))"),
    ('emails[type eq "home"]', "(scimHomeEmail=*)"),
    ('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager eq "m1"',
     "(manager=uid=m1,ou=People,dc=x)"),
    ('a eq "1" or userName eq "x" and title eq "y"', None),
])
def test_translation(scim, ldap):
    if ldap is None:
        with pytest.raises(InvalidFilter):
            users(scim)
        return
    assert users(scim) == f"(&(objectClass=inetOrgPerson){ldap})"


def test_precedence_and_not():
    assert users('title eq "a" or title eq "b" and userName eq "c"') == (
        "(&(objectClass=inetOrgPerson)(|(title=a)(&(title=b)(uid=c))))")
    assert users('not (title eq "a")') == "(&(objectClass=inetOrgPerson)(!(title=a)))"


@pytest.mark.parametrize(("value", "escaped"), [
    ("*)(uid=*", "\\2a\\29\\28uid=\\2a"),
    ("\\", "\\5c"),
    ("\u0000", "\\00"),
    ("é☃", "é☃"),
])
def test_values_are_escaped(value, escaped):
    import json

    assert users(f"userName eq {json.dumps(value)}") == (
        f"(&(objectClass=inetOrgPerson)(uid={escaped}))")


def test_members_presence_ignores_the_placeholder():
    assert groups("members pr") == (
        "(&(objectClass=groupOfNames)(&(member=*)(!(member="
        "cn=empty-group-placeholder,ou=Service,dc=x))))")
    assert groups('members.value eq "nope"') == "(!(objectClass=*))"


@pytest.mark.parametrize("text", ['userName gt "a"', 'nope eq "x"', 'password eq "x"',
                                  'active sw "t"', 'emails[type eq "work"].shoe eq "x"',
                                  'meta.version eq "x"', 'meta.created eq 5'])
def test_unmappable_or_unevaluable_clauses_are_refused(text):
    with pytest.raises(InvalidFilter):
        users(text)
