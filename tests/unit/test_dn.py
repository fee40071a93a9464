"""normalise_dn: one spelling for every way a DN can be written (RFC 4514)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from directory.dn import _read, normalise_dn, same_dn


def slow(dn: str) -> str:
    """What normalise_dn gives without its plain-DN shortcut."""
    try:
        rdns = _read(dn)
    except ValueError:
        return dn.lower()
    return ",".join("+".join(sorted(f"{a.lower()}={v}" for a, v in rdn)) for rdn in rdns)


def spelling(value: str, hexed: bool) -> str:
    """A value with its special characters escaped as \\XX (UTF-8 bytes, as slapd
    writes them) or as \\c (as ldap3 and most clients do)."""
    out = []
    for i, ch in enumerate(value):
        special = ch in ',+"\\<>;=\x00' or (ch in " #" and i == 0) or \
            (ch == " " and i == len(value) - 1)
        if special and (hexed or ch == "\x00"):
            out.append("".join(f"\\{b:02X}" for b in ch.encode()))
        else:
            out.append("\\" + ch if special else ch)
    return "".join(out)


TYPES = st.sampled_from(["uid", "cn", "ou", "dc", "O", " cn ", "2.5.4.3", "c-n", "1x", "",
                         "a_b"])
VALUES = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8)
CLEAN = st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1,
                max_size=8)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.tuples(TYPES, VALUES), min_size=1, max_size=4))
def test_the_plain_dn_shortcut_agrees_with_the_full_reading(parts: list[tuple[str, str]]
                                                            ) -> None:
    dn = ",".join(f"{a}={v}" for a, v in parts)
    normalise_dn.cache_clear()
    assert normalise_dn(dn) == slow(dn)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["uid", "cn", "ou"]), CLEAN), min_size=1,
                max_size=3))
def test_every_spelling_of_a_dn_normalises_alike(parts: list[tuple[str, str]]) -> None:
    ldap3_form = ",".join(f"{a}={spelling(v, False)}" for a, v in parts)
    shouted = ["".join(c.upper() if c.isascii() else c for c in v) for _, v in parts]
    slapd_form = ",".join(f"{a.upper()}={spelling(v, True)}"
                          for (a, _), v in zip(parts, shouted, strict=True))
    all_hex = ",".join(f"{a}=" + "".join(f"\\{b:02x}" for b in v.encode()) for a, v in parts)
    assert normalise_dn(ldap3_form) == normalise_dn(slapd_form) == normalise_dn(all_hex)


@pytest.mark.parametrize(("a", "b"), [
    ("uid=Adele@Example.org,ou=People,dc=x", "UID=adele@example.org, ou=people ,DC=X"),
    ("cn=a\\2cb,ou=Groups,dc=x", "CN=A\\,B,ou=groups,dc=x"),
    ("cn=Sales+ou=x,dc=x", "ou=X+cn=sales,dc=x"),
    ('uid=a\\,b\\+c\\=\\"x\\"\\<y\\>\\;#\\\\ é@x,dc=x',
     "uid=a\\2Cb\\2Bc\\3D\\22x\\22\\3Cy\\3E\\3B#\\5C \\C3\\A9@x,dc=x"),
    ('cn="q,x";dc=y', "cn=q\\,x,dc=y"),
    ("cn=\\ lead\\ ,dc=y", "cn=\\20lead\\20 ,dc=y"),
])
def test_same_dn(a: str, b: str) -> None:
    assert same_dn(a, b)


@pytest.mark.parametrize(("a", "b"), [
    ("cn=\\#x,dc=y", "cn=#78,dc=y"),  # an escaped '#' is text; '#…' alone is a BER value
    ("cn=\\ x,dc=y", "cn=x,dc=y"),  # an escaped space belongs to the value
    ("cn=a,dc=y", "cn=a\\,dc=y"),
])
def test_different_dns(a: str, b: str) -> None:
    assert not same_dn(a, b)


def test_text_that_is_not_a_dn_compares_as_text() -> None:
    assert normalise_dn("Not A DN") == "not a dn"
    assert normalise_dn("cn=x\\") == "cn=x\\"


def test_an_escaped_comma_cannot_pass_for_a_separator() -> None:
    """Suffix tests on normalised DNs (is this entry in the tenant's People?) hold: a
    value holding ',ou=People' is not a level of the tree."""
    spoof = normalise_dn("uid=a\\,ou=People,o=t,dc=x")
    assert not spoof.endswith("," + normalise_dn("ou=People,o=t,dc=x"))
    assert spoof.split(",")[0] == "uid=a\\2cou\\3dpeople"
