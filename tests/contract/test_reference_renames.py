"""Renames the server sees as no change of name keep every reference; DN equality is
the server's (docs/directory.md, "References").

slapd matches ``uid``/``cn`` with caseIgnoreMatch after Unicode preparation: a rename
changing only letter case, NFD to NFC, fullwidth to ASCII, ``İ`` to ``i`` or a ligature
to its letters gives a DN *equal* to the old one. Moving references as "add new, delete
old" deletes the one value then. Every check reads slapd back, and asks slapd which entry
a value names (tests/integrity.py).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests import entra, integrity
from tests.conftest import Scim
from tests.contract.groups_support import make_group, member_ids, members_patch
from tests.contract.users_support import create

#: (old name, new name) pairs slapd holds equal; the ids show in test names
EQUAL_NAMES = [
    ("casey@example.org", "CASEY@EXAMPLE.ORG"),
    ("Jose\u0301.Mu\u0308ller@example.org", "Jos\u00e9.M\u00fcller@example.org"),
    ("\uff46\uff55\uff4c\uff4c@example.org", "full@example.org"),
    ("\u0130lker@example.org", "ilker@example.org"),
    ("\ufb01sher@example.org", "fisher@example.org"),
]
IDS = ["case", "nfd-nfc", "fullwidth", "dotted-I", "ligature"]


def rename_user(scim: Scim, uid: str, name: str) -> dict[str, Any]:
    r = scim.patch(f"/Users/{uid}", entra.patch(
        {"op": "Replace", "path": "userName", "value": name}))
    assert r.status_code == 200, r.json
    return r.json


def rename_group(scim: Scim, gid: str, name: str) -> None:
    r = scim.patch(f"/Groups/{gid}", entra.patch(
        {"op": "Replace", "path": "displayName", "value": name}))
    assert r.status_code == 204, r.json


def user(scim: Scim, name: str) -> str:
    return str(create(scim, entra.minimal_user(name))["id"])


@pytest.mark.parametrize(("old", "new"), EQUAL_NAMES, ids=IDS)
@pytest.mark.parametrize("sole", [True, False], ids=["sole", "with-others"])
def test_equal_user_rename_keeps_groups_and_reports(scim, ldap, base_dn, old, new, sole):
    moved = user(scim, old)
    others = [] if sole else [user(scim, f"other{i}@example.org") for i in range(2)]
    gid = make_group(scim, "Team", [moved, *others])
    report = user(scim, "report@example.org")
    assert scim.patch(f"/Users/{report}", entra.patch(
        {"op": "Add", "path": f"{entra.ENTERPRISE}:manager", "value": moved})).status_code == 200

    body = rename_user(scim, moved, new)
    assert body["userName"] == new
    assert [g["value"] for g in body["groups"]] == [gid]
    assert sorted(integrity.members(ldap, base_dn, gid)) == sorted([moved, *others])
    assert integrity.manager(ldap, base_dn, report) == [moved]
    assert integrity.problems(ldap, base_dn) == []
    assert sorted(member_ids(scim.get(f"/Groups/{gid}").json)) == sorted([moved, *others])
    # and back again
    rename_user(scim, moved, old)
    assert sorted(integrity.members(ldap, base_dn, gid)) == sorted([moved, *others])
    assert integrity.manager(ldap, base_dn, report) == [moved]
    assert integrity.problems(ldap, base_dn) == []


@pytest.mark.parametrize(("old", "new"), EQUAL_NAMES[:2], ids=IDS[:2])
@pytest.mark.parametrize("sole", [True, False], ids=["sole", "with-others"])
def test_equal_group_rename_keeps_its_parents(scim, ldap, base_dn, old, new, sole):
    inner = make_group(scim, old, [user(scim, "ann@example.org")])
    others = [] if sole else [user(scim, "bob@example.org")]
    outer = make_group(scim, "Outer", [inner, *others])
    rename_group(scim, inner, new)
    assert scim.get(f"/Groups/{inner}").json["displayName"] == new
    assert sorted(integrity.members(ldap, base_dn, outer)) == sorted([inner, *others])
    assert integrity.problems(ldap, base_dn) == []
    r = scim.get(f"/Users/{integrity.members(ldap, base_dn, inner)[0]}")
    assert {g["value"]: g["type"] for g in r.json["groups"]} == {inner: "direct",
                                                                 outer: "indirect"}


def test_five_case_only_renames_in_a_big_group_keep_every_member(scim, ldap, base_dn):
    ids = [user(scim, f"m{i:03d}@example.org") for i in range(120)]
    gid = make_group(scim, "Big", ids)
    for i, uid in enumerate(ids[:5]):
        rename_user(scim, uid, f"M{i:03d}@EXAMPLE.ORG")
    assert sorted(integrity.members(ldap, base_dn, gid)) == sorted(ids)
    assert integrity.problems(ldap, base_dn) == []


def test_a_real_rename_moves_the_references(scim, ldap, base_dn):
    moved = user(scim, "before@example.org")
    gid = make_group(scim, "Team", [moved])
    report = user(scim, "report@example.org")
    scim.patch(f"/Users/{report}", entra.patch(
        {"op": "Add", "path": f"{entra.ENTERPRISE}:manager", "value": moved}))
    rename_user(scim, moved, "after@example.org")
    assert integrity.members(ldap, base_dn, gid) == [moved]
    assert integrity.manager(ldap, base_dn, report) == [moved]
    assert integrity.problems(ldap, base_dn) == []


# --- what slapd holds distinct stays distinct --------------------------------------------


def test_names_python_folds_together_are_two_users_everywhere(scim, ldap, base_dn):
    """``ß`` and ``ẞ`` fold together in Python (``'ẞ'.lower() == 'ß'``), not in slapd."""
    small = user(scim, "Straße-x")
    capital = user(scim, "Straẞe-x")
    both = make_group(scim, "Both", [small, capital])
    only = make_group(scim, "Only-capital", [capital])
    listed = scim.get("/Groups?filter=" + quote('displayName eq "Both"')).json
    assert sorted(member_ids(listed["Resources"][0])) == sorted([small, capital])
    assert sorted(member_ids(scim.get(f"/Groups/{both}").json)) == sorted([small, capital])
    found = scim.get("/Users?filter=" + quote('userName co "-x"')).json["Resources"]
    groups = {u["id"]: sorted(g["value"] for g in u.get("groups", [])) for u in found}
    assert groups == {small: [both], capital: sorted([both, only])}
    for uid, expected in ((small, [both]), (capital, sorted([both, only]))):
        assert sorted(g["value"] for g in scim.get(f"/Users/{uid}").json["groups"]) == expected
    # removing one leaves the other, and the placeholder logic decides by the server too
    assert scim.patch(f"/Groups/{both}", members_patch("Remove", small)).status_code == 204
    assert integrity.members(ldap, base_dn, both) == [capital]
    assert scim.patch(f"/Groups/{only}", members_patch("Remove", small)).status_code == 204
    assert integrity.members(ldap, base_dn, only) == [capital]
    assert integrity.problems(ldap, base_dn) == []


def test_a_manager_python_folds_together_is_changed(scim, ldap, base_dn):
    small = user(scim, "Straße-m")
    capital = user(scim, "Straẞe-m")
    report = user(scim, "report@example.org")
    for boss in (small, capital):
        r = scim.patch(f"/Users/{report}", entra.patch(
            {"op": "Replace", "path": f"{entra.ENTERPRISE}:manager", "value": boss}))
        assert r.status_code == 200 and r.json[entra.ENTERPRISE]["manager"]["value"] == boss
        assert integrity.manager(ldap, base_dn, report) == [boss]


def test_a_rename_answers_the_version_it_left(scim, ldap, base_dn):
    """The rename's last write (dropping the record of the old DN) is the version the
    answer carries, so an If-Match with it succeeds."""
    uid = user(scim, "versioned@example.org")
    r = scim.patch(f"/Users/{uid}", entra.patch(
        {"op": "Replace", "path": "userName", "value": "Versioned@Example.org"}))
    assert r.status_code == 200
    assert scim.get(f"/Users/{uid}").json["meta"]["version"] == r.json["meta"]["version"]
    again = scim.patch(f"/Users/{uid}", entra.patch(
        {"op": "Replace", "path": "title", "value": "t"}),
        headers={"If-Match": r.json["meta"]["version"]})
    assert again.status_code == 200
    ldap.search(f"ou=People,{base_dn}", "(scimRenamedFrom=*)", attributes=["1.1"])
    assert ldap.response == []  # no record left behind


def test_what_a_rename_costs(scim, monkeypatch):
    """A user in three groups and manager of one: the rename's LDAP operations."""
    from tests.contract.groups_support import count_operations

    uid = user(scim, "costly@example.org")
    for g in range(3):
        make_group(scim, f"C{g}", [uid])
    report = user(scim, "rep@example.org")
    scim.patch(f"/Users/{report}", entra.patch(
        {"op": "Add", "path": f"{entra.ENTERPRISE}:manager", "value": uid}))
    counts = count_operations(monkeypatch)
    rename_user(scim, uid, "cheap@example.org")
    # find, uniqueness; record + modDN; search referrers; drop the record; the answer's
    # groups (one search per level). When refint has not rewritten a value before the
    # search (it usually has, within the modDN), that value costs a rewrite, and the
    # round a read-back and a confirming search.
    assert counts["modify_dn"] == 1 and set(counts) == {"search", "modify", "modify_dn"}
    assert 2 <= counts["modify"] <= 2 + 4, counts
    assert counts["search"] in (5, 7), counts
