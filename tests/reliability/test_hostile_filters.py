"""Hostile filters (hypothesis + a corpus): never a 5xx, never more than their literal
meaning, never anything of another tenant. Filters are compared with a Python
evaluation of the same expression over a data set of LDAP metacharacters and Unicode."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.reliability.world import NAMES, Person, World, build, is_error, literal

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
#: SCIM attribute → (spellings a client may use, caseExact)
ATTRS = {
    "userName": (["userName", "USERNAME", f"{CORE_USER}:userName"], False),
    "displayName": (["displayName", "displayname"], False),
    "externalId": (["externalId", "EXTERNALID"], True),
}
OPS = ["eq", "ne", "co", "sw", "ew", "pr", "EQ", "Co"]
ALPHABET = "aApPlLxX2*()\\,+\"<>;=#@.-ünÜÏ日😀\x00"
FRAGMENTS = sorted({n[i:j] for n in NAMES for i in range(len(n))
                    for j in range(i + 1, min(len(n), i + 5) + 1)})


@pytest.fixture(scope="module")
def world(slapd) -> Iterator[World]:
    yield from build(slapd)


# --- expressions and what they mean -----------------------------------------------------------


@dataclass(frozen=True)
class Clause:
    attr: str
    spelling: str
    op: str
    value: str

    def text(self, ascii_only: bool) -> str:
        if self.op == "pr":
            return f"{self.spelling} pr"
        return f"{self.spelling} {self.op} {literal(self.value, ascii_only)}"

    @property
    def undefined(self) -> bool:
        """A value the directory's string syntax cannot hold: LDAP evaluates the clause
        as Undefined, and ``not`` of Undefined stays Undefined (matches nothing)."""
        return self.op != "pr" and (self.value == "" or "\x00" in self.value)

    def holds(self, person: Person) -> bool:
        if self.op == "pr":
            return True
        exact = ATTRS[self.attr][1]
        have, want = fold(person.attribute(self.attr), exact), fold(self.value, exact)
        return {"eq": have == want, "ne": have != want, "co": want in have,
                "sw": have.startswith(want), "ew": have.endswith(want)}[self.op.lower()]


@dataclass(frozen=True)
class Node:
    kind: str  # "and", "or", "not"
    items: tuple[Expr, ...]


Expr = Clause | Node


def fold(text: str, exact: bool) -> str:
    """How LDAP's caseIgnore/caseExact matching prepares a string (RFC 4518, roughly)."""
    text = unicodedata.normalize("NFKC", text)
    return text if exact else text.casefold()


def render(expr: Expr, ascii_only: bool) -> str:
    if isinstance(expr, Clause):
        return expr.text(ascii_only)
    if expr.kind == "not":
        return f"not ({render(expr.items[0], ascii_only)})"
    return f" {expr.kind} ".join(f"({render(e, ascii_only)})" for e in expr.items)


def holds(expr: Expr, person: Person) -> bool:
    if isinstance(expr, Clause):
        return expr.holds(person)
    if expr.kind == "not":
        return not holds(expr.items[0], person)
    values = [holds(e, person) for e in expr.items]
    return all(values) if expr.kind == "and" else any(values)


def clauses(expr: Expr) -> list[Clause]:
    if isinstance(expr, Clause):
        return [expr]
    return [c for e in expr.items for c in clauses(e)]


@st.composite
def clause(draw: st.DrawFn) -> Clause:
    attr = draw(st.sampled_from(sorted(ATTRS)))
    value = draw(st.one_of(st.sampled_from(FRAGMENTS), st.sampled_from(NAMES),
                           st.sampled_from([f"D-{n}" for n in NAMES]),
                           st.text(alphabet=ALPHABET, max_size=6)))
    if draw(st.booleans()):
        value = value.upper() if draw(st.booleans()) else value.lower()
    return Clause(attr, draw(st.sampled_from(ATTRS[attr][0])), draw(st.sampled_from(OPS)), value)


expressions = st.recursive(
    clause(),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda t: Node("and", t)),
        st.tuples(inner, inner).map(lambda t: Node("or", t)),
        inner.map(lambda e: Node("not", (e,)))),
    max_leaves=4)


def found(world: World, tenant: str, text: str, post: bool) -> tuple[int, set[str], object]:
    client = world.clients[tenant]
    if post:
        r = client.post("/Users/.search", {"schemas": [SEARCH], "filter": text,
                                           "attributes": ["id"], "count": 1000})
    else:
        r = client.get("/Users", query_string={"filter": text, "attributes": "id",
                                               "count": "1000"})
    if r.status_code != 200:
        return r.status_code, set(), r
    ids = {x["id"] for x in r.json["Resources"]}
    assert r.json["totalResults"] == len(ids)
    return 200, ids, r


# --- properties -------------------------------------------------------------------------------


@SETTINGS
@given(expr=expressions, ascii_only=st.booleans(), post=st.booleans())
def test_a_filter_matches_exactly_its_literal_meaning(world, expr, ascii_only, post):
    text = render(expr, ascii_only)
    status, ids, response = found(world, "rel-a", text, post)
    assert status == 200, (text, getattr(response, "json", None))
    people = world.people["rel-a"]
    expected = {p.id for p in people if holds(expr, p)}
    event("matches: none" if not expected else
          "matches: all" if len(expected) == len(people) else "matches: some")
    by_id = {p.id: p.user_name for p in people}
    extra = {by_id.get(i, i) for i in ids - expected}
    assert not extra, (text, extra)  # never more than it says
    if not any(c.undefined for c in clauses(expr)):
        missing = {by_id[i] for i in expected - ids}
        assert not missing, (text, missing)


filter_text = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=60),
    st.text(alphabet='aeu rmNsp"\\()[].:*!=<>tdfoq0123-\x00 \t', max_size=60),
    st.builds(lambda e, i, junk: (lambda t: t[:i] + junk + t[i:])(render(e, False)),
              expressions, st.integers(0, 40), st.text(alphabet='"()[]\\ .:', max_size=3)),
)


@SETTINGS
@given(text=filter_text, kind=st.sampled_from(["Users", "Groups"]))
def test_any_filter_text_is_400_invalid_filter_or_a_tenant_result(world, text, kind):
    r = world.clients["rel-a"].get(f"/{kind}", query_string={"filter": text,
                                                             "attributes": "id"})
    assert r.status_code in (200, 400), (text, r.status_code, r.json)
    if r.status_code == 400:
        assert is_error(r, 400) and r.json.get("scimType") in ("invalidFilter", "invalidValue"), \
            (text, r.json)
    else:
        assert {x["id"] for x in r.json["Resources"]} <= world.ids("rel-a"), text


# --- a corpus of classic attacks and limits ------------------------------------------------


def deep(n: int) -> str:
    return "(" * n + 'userName eq "a"' + ")" * n


CORPUS = [
    deep(33), deep(1000), "not (" * 200 + 'userName eq "a"' + ")" * 200,
    " or ".join(['userName eq "a"'] * 5000), 'userName eq "' + "a" * 100000 + '"',
    "\x00", 'userName eq "\x00"', 'userName eq "a" and', "userName eq", '"userName" eq "a"',
    'userName eq "\\ud800"', "userName eq 1e999", "userName eq 123456789012345678901234567890",
    "userName eq true", "userName eq null", "userName gt \"a\"", 'userName[value eq "a"]',
    'emails[value co "@"]]', "[", "]", "()", "not", "not ()", 'members.value eq "x"',
    'active eq "yes"', 'meta.created gt "0001-01-01T00:00:00+01:00"',
    'meta.created gt "9999-12-31T23:59:59-01:00"', 'meta.created gt "not a date"',
    'meta.lastModified ge "2020-01-01"', 'id eq "*"', 'id sw "0"', 'externalId gt "E2"',
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "*"',
    'groups.value eq "*"', 'groups eq "x"', 'userName eq "*" or not (userName pr)',
    "userName eq \"\\u0000\"", 'name.givenName co "\\\\"', 'emails[type eq "work"].value co "*"',
    'x.y.z eq "a"', "urn:a:b:c:userName eq \"a\"", 'userName eq "a")(uid=*', "&(uid=*)",
    "(|(uid=*))", "*", 'userName co ""', 'userName sw ""', 'userName eq ""',
]
EXACT = {
    'userName eq "*"': ["*"], 'userName eq "x)(uid=*"': ["x)(uid=*"],
    'userName eq "*)(|(uid=*"': ["*)(|(uid=*"], 'userName eq "\\\\"': ["\\"],
    'userName eq "\\\\2a"': ["\\2a"], 'userName eq "\\u002a"': ["*"],
    'userName sw "("': ["("], 'userName ew ")"': [")"],
    'userName eq "uid=admin,dc=scimbridge,dc=local"': ["uid=admin,dc=scimbridge,dc=local"],
    'userName co "*"': [n for n in NAMES if "*" in n],
    'displayName eq "d-*"': ["*"],
    'externalId eq "E3-*"': ["*"], 'externalId eq "e3-*"': [],
}


@pytest.mark.parametrize("text", CORPUS + list(EXACT))
def test_corpus_filter(world, text):
    for post in (False, True):
        status, ids, response = found(world, "rel-a", text, post)
        if status == 400:
            assert is_error(response, 400), (text, response.json)
            assert response.json.get("scimType") in ("invalidFilter", "invalidValue")
            assert text not in EXACT
            continue
        assert status == 200, (text, response.json)
        assert ids <= world.ids("rel-a")
        if text in EXACT:
            names = sorted(p.user_name for p in world.people["rel-a"] if p.id in ids)
            assert names == sorted(EXACT[text]), text


def test_references_to_another_tenant_match_nothing(world):
    b_user, b_group = world.people["rel-b"][0].id, world.groups["rel-b"][0]
    a = world.clients["rel-a"]
    for kind, text in (
        ("Users", f'id eq "{b_user}"'),
        ("Groups", f'id eq "{b_group}"'),
        ("Groups", f'members.value eq "{b_user}"'),
        ("Groups", f'members[value eq "{b_user}"]'),
        ("Users", f'groups.value eq "{b_group}"'),
        ("Users", f'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:'
                  f'manager.value eq "{b_user}"'),
        ("Users", f'not (id eq "{b_user}")'),
    ):
        r = a.get(f"/{kind}", query_string={"filter": text, "attributes": "id"})
        assert r.status_code == 200, (text, r.json)
        assert {x["id"] for x in r.json["Resources"]} <= world.ids("rel-a"), text
    assert a.get(f"/Users/{b_user}").status_code == 404
    assert a.get(f"/Groups/{b_group}").status_code == 404
