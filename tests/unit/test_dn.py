"""normalise_dn: the plain-DN fast path gives what ldap3's RFC 4514 parser gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ldap3.utils.dn import parse_dn

from directory.dn import normalise_dn, same_dn


def parsed(dn: str) -> str:
    try:
        parts = parse_dn(dn, escape=False, strip=True)
    except Exception:  # noqa: BLE001 - what normalise_dn does with an unparsable DN
        return dn.lower()
    return ",".join(f"{a.lower()}={v.lower()}" for a, v, _ in parts)


TYPES = st.sampled_from(["uid", "cn", "ou", "dc", "O", " cn ", "2.5.4.3", "c-n", "1x", "",
                         "a_b"])
VALUES = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.tuples(TYPES, VALUES), min_size=1, max_size=4))
def test_fast_path_agrees_with_the_parser(parts: list[tuple[str, str]]) -> None:
    dn = ",".join(f"{a}={v}" for a, v in parts)
    normalise_dn.cache_clear()
    assert normalise_dn(dn) == parsed(dn)


@pytest.mark.parametrize(("a", "b"), [
    ("uid=Adele@Example.org,ou=People,dc=x", "UID=adele@example.org, ou=people ,DC=X"),
    ("cn=a\\2cb,ou=Groups,dc=x", "CN=A\\2CB,ou=groups,dc=x"),
    ("cn=Sales+ou=x,dc=x", "cn=sales+ou=X,dc=x"),
])
def test_same_dn(a: str, b: str) -> None:
    assert same_dn(a, b)
    assert normalise_dn(a) == parsed(a)
