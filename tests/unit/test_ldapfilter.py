"""SCIM filter AST → RFC 4515 strings: operators, value paths, escaping, refusals.

These pin the exact LDAP text; tests/contract/test_query.py checks the same filters'
results on a real slapd.
"""

from __future__ import annotations

import json

import pytest

from directory.ldapfilter import Translator
from directory.mapping import load_mapping
from scim.protocol.errors import InvalidFilter
from scim.protocol.filter import parse_filter

MAPPING = load_mapping()
HIDDEN = "cn=empty-group-placeholder,ou=Service,dc=x"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER_CLASS = "(objectClass=inetOrgPerson)"
GROUP_CLASS = "(objectClass=groupOfNames)"
NOTHING = "(!(objectClass=*))"


def _resolve(scim_id: str) -> str | None:
    return None if scim_id == "gone" else f"entryUUID={scim_id},ou=X,dc=x"


def users(text: str) -> str:
    return Translator(MAPPING.user, "inetOrgPerson", _resolve, HIDDEN).translate(
        parse_filter(text))


def groups(text: str) -> str:
    return Translator(MAPPING.group, "groupOfNames", _resolve, HIDDEN).translate(
        parse_filter(text))


def body(full: str, object_class: str = USER_CLASS) -> str:
    """The part after the object-class guard: ``(&(objectClass=…)X)`` → ``X``."""
    prefix = f"(&{object_class}"
    assert full.startswith(prefix) and full.endswith(")"), full
    return full[len(prefix):-1]


# --- every operator -----------------------------------------------------------------------


@pytest.mark.parametrize(("scim", "ldap"), [
    # caseIgnore string (uid): no ORDERING rule, so no gt/ge/lt/le (see refusals below)
    ('userName eq "bob"', "(uid=bob)"),
    ('userName ne "bob"', "(!(uid=bob))"),
    ('userName co "ob"', "(uid=*ob*)"),
    ('userName sw "b"', "(uid=b*)"),
    ('userName ew "b"', "(uid=*b)"),
    ("userName pr", "(uid=*)"),
    # caseExact string with caseExactOrderingMatch: all nine operators
    ('externalId eq "A"', "(scimExternalId=A)"),
    ('externalId ne "A"', "(!(scimExternalId=A))"),
    ('externalId co "A"', "(scimExternalId=*A*)"),
    ('externalId sw "A"', "(scimExternalId=A*)"),
    ('externalId ew "A"', "(scimExternalId=*A)"),
    ('externalId gt "a"', "(&(scimExternalId>=a)(!(scimExternalId=a)))"),
    ('externalId ge "a"', "(scimExternalId>=a)"),
    ('externalId lt "a"', "(&(scimExternalId<=a)(!(scimExternalId=a)))"),
    ('externalId le "a"', "(scimExternalId<=a)"),
    ("externalId pr", "(scimExternalId=*)"),
    # scimString subtypes inherit caseIgnoreOrderingMatch
    ('nickName gt "m"', "(&(scimNickName>=m)(!(scimNickName=m)))"),
    ('urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter le "9"',
     "(scimCostCenter<=9)"),
    # boolean
    ("active eq true", "(scimActive=TRUE)"),
    ("active eq false", "(scimActive=FALSE)"),
    ("active ne false", "(!(scimActive=FALSE))"),
    ("active pr", "(scimActive=*)"),
    # null
    ("title eq null", "(!(title=*))"),
    ("title ne null", "(title=*)"),
    # id → entryUUID
    ('id eq "1e464e3a-7f75-1041-8844-fb4c54a6a058"',
     "(entryUUID=1e464e3a-7f75-1041-8844-fb4c54a6a058)"),
    ('id ne "x"', "(!(entryUUID=x))"),
    ('id ge "1e464e3a-7f75-1041-8844-fb4c54a6a058"',  # UUIDOrderingMatch (RFC 4530)
     "(entryUUID>=1e464e3a-7f75-1041-8844-fb4c54a6a058)"),
    # meta dates → GeneralizedTime in UTC, every ordering operator
    ('meta.created eq "2026-01-05T10:00:00Z"', "(createTimestamp=20260105100000Z)"),
    ('meta.created ge "2026-01-05T10:00:00+01:00"', "(createTimestamp>=20260105090000Z)"),
    ('meta.lastModified gt "2026-01-05T10:00:00Z"',
     "(&(modifyTimestamp>=20260105100000Z)(!(modifyTimestamp=20260105100000Z)))"),
    ('meta.lastModified lt "2026-01-05T10:00:00Z"',
     "(&(modifyTimestamp<=20260105100000Z)(!(modifyTimestamp=20260105100000Z)))"),
    ('meta.lastModified le "2026-01-05T10:00:00.5Z"', "(modifyTimestamp<=20260105100000Z)"),
    ("meta.created pr", "(createTimestamp=*)"),
    # numbers are compared as their text
    ("title eq 42", "(title=42)"),
    # attribute names and operators are case-insensitive (RFC 7644 §3.4.2.2)
    ('USERNAME EQ "bob"', "(uid=bob)"),
    ('Name.FamilyName Pr', "(&(sn=*)(!(scimDerived=sn)))"),
])
def test_every_operator(scim, ldap):
    assert users(scim) == f"(&{USER_CLASS}{ldap})"


# --- structure ------------------------------------------------------------------------------


def test_precedence_and_not():
    assert body(users('title eq "a" or title eq "b" and userName eq "c"')) == (
        "(|(title=a)(&(title=b)(uid=c)))")
    assert body(users('(title eq "a" or title eq "b") and userName eq "c"')) == (
        "(&(|(title=a)(title=b))(uid=c))")
    assert body(users('not (title eq "a")')) == "(!(title=a))"
    assert body(users('not (title eq "a" or not (userName pr))')) == (
        "(!(|(title=a)(!(uid=*))))")


def test_derived_attributes_never_match_their_derived_value():
    # sn/cn that the service filled in (scimDerived) are absent as far as SCIM knows
    assert body(users('name.familyName eq "x"')) == "(&(sn=x)(!(scimDerived=sn)))"
    assert body(users('name.formatted co "x"')) == "(&(cn=*x*)(!(scimDerived=cn)))"


# --- value paths (multi-valued complex attributes) -----------------------------------------


@pytest.mark.parametrize(("scim", "ldap"), [
    ('emails[type eq "work"].value eq "a@b"', "(&(mail=*)(mail=a@b))"),
    ('emails[type eq "work" and value co "@x.org"]', "(&(mail=*)(mail=*@x.org*))"),
    ('emails[type eq "home"]', "(scimHomeEmail=*)"),
    ('emails[type eq "WORK"]', "(mail=*)"),  # type is caseExact false (RFC 7643 §4.1.2)
    ('emails[type eq "pager"]', NOTHING),  # no such element type is stored
    ('emails[type eq "work" or type eq "home"]', "(|(mail=*)(scimHomeEmail=*))"),
    ('emails[type ne "work"]', "(|(scimHomeEmail=*)(scimOtherEmail=*))"),
    ('emails[value ew ".org"]', "(|(mail=*.org)(scimHomeEmail=*.org)(scimOtherEmail=*.org))"),
    ('emails.value eq "a@b"', "(|(mail=a@b)(scimHomeEmail=a@b)(scimOtherEmail=a@b))"),
    ('emails eq "a@b"', "(|(mail=a@b)(scimHomeEmail=a@b)(scimOtherEmail=a@b))"),
    ("emails pr", "(|(mail=*)(scimHomeEmail=*)(scimOtherEmail=*))"),
    ('emails[type eq "work" and not (value eq "a@b")]', "(&(mail=*)(!(mail=a@b)))"),
    ('emails[primary eq true]',
     "(|(&(mail=*)(scimPrimary=emails=work))(&(scimHomeEmail=*)(scimPrimary=emails=home))"
     "(&(scimOtherEmail=*)(scimPrimary=emails=other)))"),
    ('emails[type eq "home" and display eq "x"]', NOTHING),  # display is never stored
    ('phoneNumbers[type eq "mobile"].value sw "+49"', "(&(mobile=*)(mobile=+49*))"),
    ('addresses[type eq "work"].postalCode eq "10115"', "(&(|(street=*)(l=*)(st=*)"
     "(postalCode=*)(scimWorkCountry=*)(scimWorkFormatted=*))(postalCode=10115))"),
])
def test_value_paths(scim, ldap):
    full = users(scim)
    assert (full if ldap == NOTHING else body(full)) == ldap


def test_membership_filters():
    assert body(users('groups.value eq "g1"')) == "(memberOf=entryUUID=g1,ou=X,dc=x)"
    assert body(users('groups[value eq "g1"]')) == "(memberOf=entryUUID=g1,ou=X,dc=x)"
    assert body(users('groups.value ne "g1"')) == "(!(memberOf=entryUUID=g1,ou=X,dc=x))"
    assert body(groups('members.value eq "u1"'), GROUP_CLASS) == (
        "(member=entryUUID=u1,ou=X,dc=x)")
    assert body(groups('members[value eq "u1"]'), GROUP_CLASS) == (
        "(member=entryUUID=u1,ou=X,dc=x)")
    # an id that resolves to nothing matches nothing (ne: everything)
    assert groups('members.value eq "gone"') == NOTHING
    assert groups('members.value ne "gone"') == GROUP_CLASS


def test_members_presence_ignores_the_placeholder():
    assert body(groups("members pr"), GROUP_CLASS) == (
        f"(&(member=*)(!(member={HIDDEN})))")
    assert body(groups("not (members pr)"), GROUP_CLASS) == (
        f"(!(&(member=*)(!(member={HIDDEN}))))")


def test_group_attributes():
    assert body(groups('displayName eq "R&D"'), GROUP_CLASS) == "(cn=R&D)"
    assert body(groups('displayName sw "R"'), GROUP_CLASS) == "(cn=R*)"
    assert body(groups('externalId ge "k"'), GROUP_CLASS) == "(scimExternalId>=k)"


# --- URN-qualified paths ------------------------------------------------------------------------


@pytest.mark.parametrize(("scim", "ldap"), [
    (f'{ENT}:department eq "R&D"', "(departmentNumber=R&D)"),
    (f'{ENT}:employeeNumber sw "7"', "(employeeNumber=7*)"),
    (f"{ENT}:organization pr", "(o=*)"),
    (f'{ENT}:manager eq "m1"', "(manager=entryUUID=m1,ou=X,dc=x)"),
    (f'{ENT}:manager.value eq "m1"', "(manager=entryUUID=m1,ou=X,dc=x)"),
    (f'{ENT.upper()}:DEPARTMENT eq "x"', "(departmentNumber=x)"),
    ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bob"', "(uid=bob)"),
    ('urn:ietf:params:scim:schemas:core:2.0:User:name.givenName eq "Bo"', "(givenName=Bo)"),
])
def test_urn_paths(scim, ldap):
    assert body(users(scim)) == ldap


# --- escaping -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "escaped"), [
    ("*)(uid=*", "\\2a\\29\\28uid=\\2a"),
    ("*", "\\2a"),
    ("ann)(|(uid=*", "ann\\29\\28|\\28uid=\\2a"),
    ("\\", "\\5c"),
    ("a\\2a", "a\\5c2a"),  # an escape sequence in the value is literal text, not an escape
    ("\u0000", "\\00"),
    ("R&D (Ops), #1", "R&D \\28Ops\\29, #1"),
    # RFC 4515 (UTFMB): non-ASCII is valid as is and goes to slapd as UTF-8
    ("é☃", "é☃"),
])
def test_values_are_escaped_for_every_operator(value, escaped):
    text = json.dumps(value)
    assert body(users(f"userName eq {text}")) == f"(uid={escaped})"
    assert body(users(f"userName co {text}")) == f"(uid=*{escaped}*)"
    assert body(users(f"userName sw {text}")) == f"(uid={escaped}*)"
    assert body(users(f"userName ew {text}")) == f"(uid=*{escaped})"
    assert body(users(f"externalId gt {text}")) == (
        f"(&(scimExternalId>={escaped})(!(scimExternalId={escaped})))")
    assert body(users(f'emails[type eq "work" and value eq {text}]')) == (
        f"(&(mail=*)(mail={escaped}))")


def test_reference_values_are_escaped_dns():
    translator = Translator(MAPPING.group, "groupOfNames", lambda _: "cn=a\\2C(b)*,dc=x")
    assert translator.translate(parse_filter('members.value eq "x"')) == (
        f"(&{GROUP_CLASS}(member=cn=a\\5c2C\\28b\\29\\2a,dc=x))")


# --- refusals: a clause is never dropped ---------------------------------------------


@pytest.mark.parametrize(("text", "named"), [
    # unknown or unmapped paths
    ('nope eq "x"', "nope"),
    ('x509Certificates eq "x"', "x509Certificates"),
    ('name.shoe eq "x"', "name.shoe"),
    ('name eq "x"', "name"),
    ('emails[type eq "work"].shoe eq "x"', "shoe"),
    ('emails[shoe eq "x"]', "shoe"),
    ('userName[value eq "x"]', "userName"),
    ('groups.display eq "x"', "groups.display"),
    ('meta.version eq "x"', "meta.version"),
    ('meta.location eq "x"', "meta.location"),
    (f'{ENT}:manager.displayName eq "x"', "manager.displayName"),
    ('department eq "x"', "department"),  # extension attributes need their URN
    ('urn:example:custom:2.0:User:shoe eq "x"', "shoe"),
    ('password eq "x"', "password"),
    # ordering on attributes without an ORDERING rule (slapd would say Undefined = nothing)
    ('userName gt "a"', "userName"),
    ('userName le "a"', "userName"),
    ('title lt "a"', "title"),
    ('displayName ge "a"', "displayName"),
    ('name.familyName gt "a"', "name.familyName"),
    ('emails[type eq "work"].value gt "a"', "emails"),
    ('phoneNumbers[type eq "work"].value ge "1"', "phoneNumbers"),
    (f'{ENT}:department lt "a"', "department"),
    ("active gt true", "active"),
    # operators the attribute cannot evaluate
    ('active sw "t"', "active"),
    ('active eq "true"', "active"),
    ('id co "1e46"', "id"),
    ('meta.created co "2026"', "meta.created"),
    ("meta.created eq 5", "meta.created"),
    ('meta.created gt "yesterday"', "meta.created"),
    ('title gt null', "title"),
    ('members.display eq "x"', "members.display"),
    ('members.value co "u"', "members"),
    ('groups.value sw "g"', "groups"),
    ("userName eq true", "userName"),
])
def test_unmappable_or_unevaluable_clauses_are_refused_naming_the_path(text, named):
    translate = groups if text.startswith("members") else users
    with pytest.raises(InvalidFilter) as caught:
        translate(text)
    assert named.lower() in str(caught.value.detail).lower(), caught.value.detail


def test_a_refused_clause_refuses_the_whole_filter():
    # never "(uid=a)" alone: dropping the bad clause of an and would widen the result
    for text in ('userName eq "a" and nope eq "x"', 'userName eq "a" or title gt "x"',
                 'not (nope pr)'):
        with pytest.raises(InvalidFilter):
            users(text)
