"""``flask --app app directory check`` on real slapd: drift planted by hand with raw
ldap3 writes (bypassing the bridge) is reported (table and JSON, exit 1), ``--repair``
fixes what is safe (read back directly; one audit line per fix; a second check exits 0),
what is only reported is left exactly as it was, and a clean tenant exits 0."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from ldap3 import BASE, MODIFY_ADD, MODIFY_REPLACE, SUBTREE, Connection

from config import load_settings
from directory.mapping import DEFAULT_TABLE
from scim.factory import create_app
from tests.conftest import TOKEN, Scim
from tests.contract.users_support import LOCKED, placeholder
from tests.slapd_instance import SlapdInstance

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
USER_CLASSES = ["inetOrgPerson", "scimResource"]
GROUP_CLASSES = ["groupOfNames", "scimResource"]


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


@pytest.fixture
def checked_app(slapd: SlapdInstance, ldap: Connection, trail: Path,
                tmp_path: Path) -> Iterator[Flask]:
    # The default mapping derives only cn and sn, which a person always holds; this one
    # also derives displayName, so that a marker naming an absent attribute can exist.
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(DEFAULT_TABLE.read_text().replace(
        'sn = ["userName"]', 'sn = ["userName"]\ndisplayName = ["userName"]'))
    app = create_app(load_settings({**slapd.env, "SCIM_BEARER_TOKEN": TOKEN,
                                    "AUDIT_LOG": str(trail),
                                    "SCIM_MAPPING_FILE": str(mapping)}))
    app.config["TESTING"] = True
    yield app
    app.extensions["scim_bridge"].pool.close()


@pytest.fixture
def scim(checked_app: Flask) -> Scim:
    return Scim(checked_app.test_client())


def check(app: Flask, *args: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["directory", "check", *args])
    return result.exit_code, result.output


def user(scim: Scim, name: str, **extra: Any) -> str:
    """Create a user over SCIM; its DN."""
    r = scim.post("/Users", {"schemas": [CORE_USER], "userName": name, **extra})
    assert r.status_code == 201, r.get_json()
    return f"uid={name},ou=People,{scim_base(scim)}"


def group(scim: Scim, name: str, *member_ids: str) -> str:
    r = scim.post("/Groups", {"schemas": [CORE_GROUP], "displayName": name,
                              "members": [{"value": m} for m in member_ids]})
    assert r.status_code == 201, r.get_json()
    return f"cn={name},ou=Groups,{scim_base(scim)}"


def scim_base(scim: Scim) -> str:
    return scim.client.application.extensions["scim_bridge"].settings.LDAP_BASE_DN


def uid_of(ldap: Connection, dn: str) -> str:
    ldap.search(dn, "(objectClass=*)", BASE, attributes=["entryUUID"])
    return str(ldap.response[0]["attributes"]["entryUUID"])


def read(ldap: Connection, dn: str, *attributes: str) -> dict[str, list[str]]:
    ldap.search(dn, "(objectClass=*)", BASE, attributes=list(attributes) or ["*", "+"])
    raw = ldap.response[0]["raw_attributes"]
    return {k.lower(): [v.decode() for v in vs] for k, vs in raw.items() if vs}


def members(ldap: Connection, dn: str) -> set[str]:
    return {v.lower() for v in read(ldap, dn, "member").get("member", [])}


def modify(ldap: Connection, dn: str, changes: dict[str, Any]) -> None:
    assert ldap.modify(dn, changes), ldap.result


def add(ldap: Connection, dn: str, classes: list[str], attrs: dict[str, Any]) -> None:
    assert ldap.add(dn, classes, attrs), ldap.result


def audit_repairs(trail: Path) -> list[dict[str, Any]]:
    if not trail.exists():
        return []
    records = [json.loads(line) for line in trail.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("operation") == "repair"]


@pytest.fixture
def planted(scim: Scim, ldap: Connection, base_dn: str) -> dict[str, str]:
    """Every repairable kind of drift, planted with raw writes; the DNs by name."""
    people = f"ou=People,{base_dn}"
    dns = {name: user(scim, name) for name in ("alice", "bob", "carol", "dave", "erin",
                                               "frank", "gina")}
    ids = {name: uid_of(ldap, dn) for name, dn in dns.items()}
    ghost = f"uid=ghost,{people}"
    # dangling member beside real members
    dns["g_dangling"] = group(scim, "with-ghost", ids["alice"], ids["bob"])
    modify(ldap, dns["g_dangling"], {"member": [(MODIFY_ADD, [ghost])]})
    # only dangling members: the repair must put the placeholder in
    dns["g_only_ghosts"] = f"cn=only-ghosts,ou=Groups,{base_dn}"
    add(ldap, dns["g_only_ghosts"], GROUP_CLASSES, {"cn": "only-ghosts", "member": [
        f"uid=ghost-a,{people}", f"uid=ghost-b,{people}"]})
    # the placeholder beside a real member
    dns["g_placeholder"] = group(scim, "with-placeholder", ids["carol"])
    modify(ldap, dns["g_placeholder"], {"member": [(MODIFY_ADD, [placeholder(base_dn)])]})
    # managers: dangling, and refint's filler
    modify(ldap, dns["dave"], {"manager": [(MODIFY_REPLACE, [f"uid=gone-boss,{people}"])]})
    modify(ldap, dns["erin"], {"manager": [(MODIFY_REPLACE, [placeholder(base_dn)])]})
    # scimActive and the ppolicy lock disagreeing, both ways
    modify(ldap, dns["frank"], {"scimActive": [(MODIFY_REPLACE, ["FALSE"])]})
    modify(ldap, dns["gina"], {"scimActive": [(MODIFY_REPLACE, ["TRUE"])],
                               "pwdAccountLockedTime": [(MODIFY_REPLACE, [LOCKED])]})
    return dns


REPAIRABLE = ["dangling-member", "placeholder-beside-members", "empty-group",
              "dangling-manager", "placeholder-manager", "disabled-not-locked",
              "locked-not-disabled"]


def test_a_clean_tenant_exits_0(scim, ldap, checked_app):
    alice = uid_of(ldap, user(scim, "alice"))
    group(scim, "team", alice)
    group(scim, "empty")
    code, out = check(checked_app)
    assert code == 0, out
    assert "clean: no drift" in out
    code, out = check(checked_app, "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["drift"] is False
    assert report["tenants"][0]["scanned"]["users"] == 1
    assert report["tenants"][0]["scanned"]["groups"] == 2


def test_each_repairable_kind_is_reported_in_the_table_and_in_json(planted, checked_app,
                                                                   trail):
    code, out = check(checked_app)
    assert code == 1, out
    for kind in REPAIRABLE:
        assert kind in out, kind
    assert "run again with --repair" in out
    code, out = check(checked_app, "--json")
    assert code == 1, out
    report = json.loads(out)["tenants"][0]
    assert set(report["counts"]) == set(REPAIRABLE)
    assert report["counts"]["dangling-member"] == 2  # two groups
    by_kind = {(f["kind"], f["dn"].lower()) for f in report["findings"]}
    assert ("dangling-member", planted["g_only_ghosts"].lower()) in by_kind
    assert ("empty-group", planted["g_only_ghosts"].lower()) in by_kind
    assert ("placeholder-beside-members", planted["g_placeholder"].lower()) in by_kind
    assert ("dangling-manager", planted["dave"].lower()) in by_kind
    assert ("placeholder-manager", planted["erin"].lower()) in by_kind
    assert ("disabled-not-locked", planted["frank"].lower()) in by_kind
    assert ("locked-not-disabled", planted["gina"].lower()) in by_kind
    assert audit_repairs(trail) == []  # a dry run writes nothing


def test_repair_fixes_each_kind_with_one_audited_write(planted, checked_app, ldap, base_dn,
                                                       trail):
    before = read(ldap, planted["alice"])["entrycsn"]
    code, out = check(checked_app, "--repair")
    assert code == 1, out  # drift was found (and repaired)
    assert "FIXED" in out
    people = f"ou=People,{base_dn}"
    assert members(ldap, planted["g_dangling"]) == {planted["alice"].lower(),
                                                   planted["bob"].lower()}
    assert members(ldap, planted["g_only_ghosts"]) == {placeholder(base_dn).lower()}
    assert members(ldap, planted["g_placeholder"]) == {planted["carol"].lower()}
    assert "manager" not in read(ldap, planted["dave"], "manager")
    assert "manager" not in read(ldap, planted["erin"], "manager")
    frank = read(ldap, planted["frank"], "scimActive", "pwdAccountLockedTime")
    assert frank == {"scimactive": ["FALSE"], "pwdaccountlockedtime": [LOCKED]}
    gina = read(ldap, planted["gina"], "scimActive", "pwdAccountLockedTime")
    assert gina == {"scimactive": ["FALSE"], "pwdaccountlockedtime": [LOCKED]}
    assert read(ldap, planted["alice"])["entrycsn"] == before  # untouched
    records = audit_repairs(trail)
    assert {r["token"] for r in records} == {"cli:directory-check"}
    assert {r["result"] for r in records} == {"success"}
    assert sorted((r["drift"], r["resource_id"].lower()) for r in records) == sorted([
        ("dangling-member", planted["g_dangling"].lower()),
        ("dangling-member", planted["g_only_ghosts"].lower()),
        ("placeholder-beside-members", planted["g_placeholder"].lower()),
        ("dangling-manager", planted["dave"].lower()),
        ("placeholder-manager", planted["erin"].lower()),
        ("disabled-not-locked", planted["frank"].lower()),
        ("locked-not-disabled", planted["gina"].lower())])
    assert f"uid=ghost,{people}".lower() not in members(ldap, planted["g_dangling"])
    code, out = check(checked_app)
    assert code == 0, out


REPORT_ONLY = ["outside-member", "outside-manager", "derived-absent", "derived-unknown",
               "primary-without-value", "naming-values", "name-collision",
               "not-scim-resource"]


def csns(ldap: Connection, base_dn: str) -> dict[str, str]:
    """entryCSN of every entry below People and Groups (what "untouched" means)."""
    out = {}
    for ou in ("People", "Groups"):
        ldap.search(f"ou={ou},{base_dn}", "(objectClass=*)", SUBTREE,
                    attributes=["entryCSN"])
        out.update((e["dn"].lower(), str(e["attributes"]["entryCSN"])) for e in ldap.response)
    return out


def test_reported_only_kinds_are_reported_and_never_touched(scim, ldap, base_dn,
                                                            checked_app, trail):
    people, groups = f"ou=People,{base_dn}", f"ou=Groups,{base_dn}"
    elsewhere = f"uid=someone,ou=People,o=elsewhere,{base_dn}"
    casey = user(scim, "casey@example.org")
    hank = user(scim, "hank", displayName="Hank")
    jose = user(scim, "José")
    strasse = user(scim, "Straße-x")
    fish = user(scim, "fish")
    iris = user(scim, "iris")
    ivy = user(scim, "ivy")
    team = group(scim, "Team", uid_of(ldap, casey))
    # outside the tenant: a member and a manager naming another tenant's entry
    outside_group = group(scim, "with-outsider", uid_of(ldap, hank))
    modify(ldap, outside_group, {"member": [(MODIFY_ADD, [elsewhere])]})
    modify(ldap, ivy, {"manager": [(MODIFY_REPLACE, [elsewhere])]})
    # scim* markers naming what the entry does not hold
    modify(ldap, ivy, {"displayName": [(MODIFY_REPLACE, [])],
                       "scimDerived": [(MODIFY_REPLACE, ["displayName", "title"])],
                       "scimPrimary": [(MODIFY_REPLACE, ['emails=work'])]})
    # a second uid equal (for the server: case) to another user's userName
    modify(ldap, hank, {"uid": [(MODIFY_ADD, ["CASEY@EXAMPLE.ORG"])]})
    # a deeper OU: NFD "José" collides with NFC "José"; "Straẞe-x" does not with
    # "Straße-x" (the server tells ß from ẞ); fullwidth "ＴＥＡＭ" collides with "Team"
    add(ldap, f"ou=Sub,{people}", ["organizationalUnit"], {"ou": "Sub"})
    nfd = unicodedata.normalize("NFD", "José")
    add(ldap, f"uid={nfd},ou=Sub,{people}", USER_CLASSES, {"uid": nfd, "cn": "j", "sn": "j"})
    add(ldap, f"uid=Straẞe-x,ou=Sub,{people}", USER_CLASSES,
        {"uid": "Straẞe-x", "cn": "s", "sn": "s"})
    for other in ("ﬁsh", "İris"):  # a ligature; a dotted capital I
        add(ldap, f"uid={other},ou=Sub,{people}", USER_CLASSES,
            {"uid": other, "cn": "o", "sn": "o"})
    add(ldap, f"ou=Sub,{groups}", ["organizationalUnit"], {"ou": "Sub"})
    add(ldap, f"cn=ＴＥＡＭ,ou=Sub,{groups}", GROUP_CLASSES,
        {"cn": "ＴＥＡＭ", "member": [placeholder(base_dn)]})
    # entries the bridge did not make
    add(ldap, f"uid=plain,{people}", ["inetOrgPerson"], {"uid": "plain", "cn": "p", "sn": "p"})
    add(ldap, f"cn=plain,{groups}", ["groupOfNames"], {"cn": "plain", "member": [elsewhere]})
    before = csns(ldap, base_dn)

    code, out = check(checked_app, "--json")
    assert code == 1, out
    report = json.loads(out)["tenants"][0]
    assert set(report["counts"]) == set(REPORT_ONLY), report["counts"]
    found = {(f["kind"], f["dn"].lower(), tuple(v.lower() for v in f["values"]))
             for f in report["findings"]}
    assert ("outside-member", outside_group.lower(), (elsewhere.lower(),)) in found
    assert ("outside-manager", ivy.lower(), (elsewhere.lower(),)) in found
    assert ("derived-absent", ivy.lower(), ("displayname",)) in found
    assert ("derived-unknown", ivy.lower(), ("title",)) in found
    assert ("primary-without-value", ivy.lower(), ("emails=work",)) in found
    assert report["counts"]["naming-values"] == 1
    collisions = {(f["dn"].lower(), f["values"][0].lower()) for f in report["findings"]
                  if f["kind"] == "name-collision"}
    assert collisions == {
        (hank.lower(), casey.lower()),
        (f"uid={nfd},ou=Sub,{people}".lower(), jose.lower()),
        (f"uid=ﬁsh,ou=Sub,{people}".lower(), fish.lower()),
        (f"uid=İris,ou=Sub,{people}".lower(), iris.lower()),
        (f"cn=ＴＥＡＭ,ou=Sub,{groups}".lower(), team.lower())}, collisions
    assert not any("straße" in dn for dn, _ in collisions) and strasse
    not_scim = {f["dn"].lower() for f in report["findings"] if f["kind"] == "not-scim-resource"}
    assert not_scim == {f"ou=sub,{people}".lower(), f"uid=plain,{people}".lower(),
                        f"ou=sub,{groups}".lower(), f"cn=plain,{groups}".lower()}
    code, table = check(checked_app)
    assert code == 1
    for kind in REPORT_ONLY:
        assert kind in table, kind

    code, out = check(checked_app, "--repair")
    assert code == 1, out
    assert csns(ldap, base_dn) == before  # nothing was written
    assert audit_repairs(trail) == []
    code, out = check(checked_app, "--json", *(f"--ignore={k}" for k in REPORT_ONLY))
    assert code == 0, out
    assert json.loads(out)["tenants"][0]["ignored"] == sorted(REPORT_ONLY)


def test_a_group_left_with_outsiders_only_gets_the_placeholder(scim, ldap, base_dn,
                                                               checked_app, trail):
    elsewhere = f"uid=someone,ou=People,o=elsewhere,{base_dn}"
    dn = f"cn=outsiders,ou=Groups,{base_dn}"
    add(ldap, dn, GROUP_CLASSES, {"cn": "outsiders", "member": [elsewhere]})
    code, out = check(checked_app, "--json")
    kinds = {f["kind"] for f in json.loads(out)["tenants"][0]["findings"]}
    assert code == 1 and kinds == {"empty-group", "outside-member"}
    code, out = check(checked_app, "--repair")
    assert code == 1, out
    assert members(ldap, dn) == {elsewhere.lower(), placeholder(base_dn).lower()}
    assert [r["drift"] for r in audit_repairs(trail)] == ["empty-group"]
    code, out = check(checked_app, "--json")
    assert set(json.loads(out)["tenants"][0]["counts"]) == {"outside-member"}


def test_errors_exit_2(checked_app):
    code, out = check(checked_app, "--tenant", "no-such-tenant")
    assert code == 2, out
    code, out = check(checked_app, "--tenant", "default", "--all")
    assert code == 2, out


def test_a_repair_never_clobbers_a_concurrent_change(scim, ldap, base_dn, checked_app,
                                                    trail, monkeypatch):
    """A member arrives between the repair's read of an empty group and its write: the
    write's entryCSN assertion fails, the group is read again, and the placeholder is
    not put beside the new member."""
    from directory.check import Checker

    elsewhere = f"uid=someone,ou=People,o=elsewhere,{base_dn}"
    dn = f"cn=racing,ou=Groups,{base_dn}"
    add(ldap, dn, GROUP_CLASSES, {"cn": "racing", "member": [elsewhere]})
    newcomer = user(scim, "newcomer")
    original = Checker.group_state
    reads = []

    def then_someone_adds(self: Checker, group_dn: str) -> Any:
        state = original(self, group_dn)
        reads.append(state)
        if len(reads) == 2:  # the repair's read (the first is the scan's)
            modify(ldap, dn, {"member": [(MODIFY_ADD, [newcomer])]})
        return state

    monkeypatch.setattr(Checker, "group_state", then_someone_adds)
    code, out = check(checked_app, "--repair")
    assert code == 1, out
    assert len(reads) == 3  # scan, repair, and the re-read after the failed assertion
    assert members(ldap, dn) == {elsewhere.lower(), newcomer.lower()}
    assert audit_repairs(trail) == []


def test_a_reference_whose_entry_reappears_before_the_repair_stays(scim, ldap, base_dn,
                                                                   checked_app, trail,
                                                                   monkeypatch):
    """Between the scan and the repair the missing entries are created (a user re-created
    and a manager set, as Entra may): the repair asks again and removes nothing."""
    from directory.check import Checker

    people = f"ou=People,{base_dn}"
    dave = user(scim, "dave")
    alice = user(scim, "alice")
    team = group(scim, "team", uid_of(ldap, alice))
    modify(ldap, dave, {"manager": [(MODIFY_REPLACE, [f"uid=boss,{people}"])]})
    modify(ldap, team, {"member": [(MODIFY_ADD, [f"uid=bob,{people}"])]})
    original = Checker.repair

    def entries_come_back(self: Checker, findings: Any, done: Any = None) -> Any:
        user(scim, "boss")
        user(scim, "bob")
        return original(self, findings, done)

    monkeypatch.setattr(Checker, "repair", entries_come_back)
    code, out = check(checked_app, "--repair")
    assert code == 1, out
    assert read(ldap, dave, "manager")["manager"] == [f"uid=boss,{people}"]
    assert members(ldap, team) == {alice.lower(), f"uid=bob,{people}".lower()}
    assert audit_repairs(trail) == []  # nothing was written
    assert "SKIPPED" in out


def test_all_checks_every_tenant_and_another_tenant_is_outside(scim, ldap, base_dn,
                                                               checked_app):
    from tests.contract.connector_support import wipe_registry

    runner = checked_app.test_cli_runner()
    try:
        assert runner.invoke(args=["tenant", "create", "contoso"]).exit_code == 0
        other = f"o=contoso,{base_dn}"
        stranger = f"uid=stranger,ou=People,{other}"
        add(ldap, stranger, USER_CLASSES, {"uid": "stranger", "cn": "s", "sn": "s"})
        theirs = f"cn=theirs,ou=Groups,{other}"
        add(ldap, theirs, GROUP_CLASSES, {"cn": "theirs", "member": [
            stranger, f"uid=ghost,ou=People,{other}"]})
        ours = group(scim, "ours", uid_of(ldap, user(scim, "alice")))
        modify(ldap, ours, {"member": [(MODIFY_ADD, [stranger])]})
        code, out = check(checked_app, "--all", "--json")
        assert code == 1, out
        reports = {r["tenant"]: r for r in json.loads(out)["tenants"]}
        assert set(reports) == {"default", "contoso"}
        assert reports["default"]["counts"] == {"outside-member": 1}
        assert reports["contoso"]["counts"] == {"dangling-member": 1}
        code, out = check(checked_app, "--tenant", "contoso", "--repair")
        assert code == 1, out
        assert members(ldap, theirs) == {stranger.lower()}
        assert check(checked_app, "--tenant", "contoso")[0] == 0
    finally:
        wipe_registry(ldap, base_dn)


def test_an_unreachable_directory_exits_2(slapd):
    from tests.slapd_instance import free_port

    app = create_app(load_settings({**slapd.env, "LDAP_URL": f"ldap://127.0.0.1:{free_port()}",
                                    "LDAP_CONNECT_TIMEOUT": "0.5"}))
    try:
        code, out = check(app)
    finally:
        app.extensions["scim_bridge"].pool.close()
    assert code == 2, out
    assert "error: directory" in out


def test_dangling_values_are_found_exactly_across_batches(ldap, base_dn, checked_app):
    """450 values, 7 naming no entry, spread over three batches of 200: the server's
    answers (counts, then halves) find exactly those 7, however they are spelt."""
    people = f"ou=People,{base_dn}"
    real = [f"uid=m{i:03d},{people}" for i in range(443)]
    for dn in real:
        name = dn.split(",")[0].removeprefix("uid=")
        add(ldap, dn, USER_CLASSES, {"uid": name, "cn": name, "sn": name})
    ghosts = [f"uid=ghost{i},{people}" for i in range(7)]
    values = real[:100] + ghosts[:3] + [d.upper() for d in real[100:300]] + ghosts[3:] + \
        real[300:]
    dn = f"cn=big,ou=Groups,{base_dn}"
    add(ldap, dn, GROUP_CLASSES, {"cn": "big", "member": values})
    code, out = check(checked_app, "--json")
    assert code == 1, out
    finding = next(f for f in json.loads(out)["tenants"][0]["findings"]
                   if f["kind"] == "dangling-member")
    assert finding["count"] == 7
    assert sorted(finding["values"]) == sorted(ghosts)
    assert json.loads(out)["tenants"][0]["scanned"]["member_values"] == 450


def test_a_rename_a_crash_cut_short_is_finished_not_removed(scim, ldap, base_dn,
                                                            checked_app, trail):
    """An entry still carrying scimRenamedFrom (the modDN done, the references not all
    moved: a crash in between) has its references re-pointed by --repair, before any
    dangling value of the former DN could be removed."""
    people = f"ou=People,{base_dn}"
    alice, hank = user(scim, "alice"), user(scim, "hank")
    old = f"uid=hank-before,{people}"
    modify(ldap, hank, {"scimRenamedFrom": [(MODIFY_ADD, [old])]})
    team = group(scim, "pending-rename", uid_of(ldap, alice))
    modify(ldap, team, {"member": [(MODIFY_ADD, [old])]})  # a value the move never reached
    code, out = check(checked_app, "--json")
    assert code == 1, out
    kinds = {f["kind"] for t in json.loads(out)["tenants"] for f in t["findings"]}
    assert {"unfinished-rename", "dangling-member"} <= kinds, kinds
    code, out = check(checked_app, "--repair")
    assert code == 1, out
    assert members(ldap, team) == {alice.lower(), hank.lower()}  # moved, not removed
    assert "scimrenamedfrom" not in read(ldap, hank, "scimRenamedFrom")
    assert ("unfinished-rename", hank.lower()) in {
        (r["drift"], r["resource_id"].lower()) for r in audit_repairs(trail)
        if r["result"] == "success"}
    code, out = check(checked_app)
    assert code == 0, out
