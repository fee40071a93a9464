"""The dashboard's *Directory check* page on real slapd: it shows the last check of a
tenant (whether the CLI or the dashboard ran it), runs one from a CSRF-protected form
(dry run, or with repair audited as ``admin:<login>``), and every worker shows the same
result because it is kept in the directory."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from ldap3 import MODIFY_ADD, Connection
from ldap3.core.exceptions import LDAPNoSuchObjectResult

from directory.check import result_dn
from tests.admin_support import ADMIN_LOGIN, make_admins, wipe_tokens
from tests.contract.test_admin import build, csrf_of, sign_in, text
from tests.contract.users_support import placeholder
from tests.slapd_instance import SlapdInstance

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


@pytest.fixture
def app(slapd: SlapdInstance, ldap: Connection, base_dn: str, trail: Path) -> Iterator[Flask]:
    wipe_tokens(ldap, base_dn)
    with suppress(LDAPNoSuchObjectResult):
        ldap.delete(result_dn(base_dn, "default"))  # no last check yet
    make_admins(ldap, base_dn)
    application = build(slapd, AUDIT_LOG=str(trail))
    yield application
    application.extensions["scim_bridge"].pool.close()


@pytest.fixture
def signed_in(app: Flask) -> FlaskClient:
    browser = app.test_client()
    assert sign_in(browser).status_code == 302
    return browser


def plant_dangling(ldap: Connection, base_dn: str) -> str:
    """A SCIM-made group holding a member DN that names no entry; the group's DN."""
    people = f"ou=People,{base_dn}"
    dn = f"cn=drifted,ou=Groups,{base_dn}"
    assert ldap.add(f"uid=real,{people}", ["inetOrgPerson", "scimResource"],
                    {"uid": "real", "cn": "real", "sn": "real"})
    assert ldap.add(dn, ["groupOfNames", "scimResource"],
                    {"cn": "drifted", "member": [f"uid=real,{people}"]})
    assert ldap.modify(dn, {"member": [(MODIFY_ADD, [f"uid=ghost,{people}"])]})
    return dn


def run(client: FlaskClient, repair: bool = False) -> str:
    """Press a button of the page; wait for the run to end; the page after it."""
    form: dict[str, str] = {"csrf_token": csrf_of(client.get("/admin/check"))}
    if repair:
        form["repair"] = "1"
    response = client.post("/admin/check", data=form)
    assert response.status_code == 302, text(response)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        page = text(client.get("/admin/check"))
        if 'id="check-running"' not in page:
            return page
        time.sleep(0.1)
    raise AssertionError("the check did not end")


def members(ldap: Connection, dn: str) -> set[str]:
    ldap.search(dn, "(objectClass=*)", "BASE", attributes=["member"])
    return {str(v).lower() for v in ldap.response[0]["attributes"]["member"]}


def test_the_page_says_when_no_check_ran(signed_in):
    page = text(signed_in.get("/admin/check"))
    assert 'id="no-check"' in page
    assert 'href="/admin/check?tenant=default"' in text(signed_in.get("/admin/connector"))


def test_running_needs_the_csrf_token(signed_in):
    assert signed_in.post("/admin/check", data={}).status_code == 400


def test_a_dry_run_shows_the_drift_and_writes_nothing(signed_in, ldap, base_dn, trail):
    dn = plant_dangling(ldap, base_dn)
    page = run(signed_in)
    assert 'id="check-verdict">drift found' in page
    assert "dangling-member" in page and dn in page
    assert "uid=ghost,ou=People" in page
    assert "not-scim-resource" in page  # the admin and its group are plain entries
    assert f"uid=ghost,ou=people,{base_dn}" in members(ldap, dn)
    assert not trail.exists() or not [line for line in trail.read_text().splitlines()
                                      if '"operation":"repair"' in line]


def test_repair_from_the_dashboard_is_audited_as_the_admin(signed_in, ldap, base_dn, trail):
    dn = plant_dangling(ldap, base_dn)
    page = run(signed_in, repair=True)
    assert 'id="check-fixes"' in page and "removed 1 dangling member value(s)" in page
    assert members(ldap, dn) == {f"uid=real,ou=people,{base_dn}"}
    records = [json.loads(line) for line in trail.read_text().splitlines()]
    repairs = [r for r in records if r.get("operation") == "repair"]
    assert [(r["token"], r["drift"], r["resource_id"]) for r in repairs] == [
        (f"admin:{ADMIN_LOGIN}", "dangling-member", dn)]


def test_a_cli_run_is_what_every_worker_shows(app, slapd, signed_in, ldap, base_dn):
    plant_dangling(ldap, base_dn)
    result = app.test_cli_runner().invoke(args=["directory", "check"])
    assert result.exit_code == 1, result.output
    other = build(slapd)  # another worker: its own process state, the same directory
    try:
        browser = other.test_client()
        assert sign_in(browser).status_code == 302
        page = text(browser.get("/admin/check"))
    finally:
        other.extensions["scim_bridge"].pool.close()
    assert "cli:directory-check" in page and "dangling-member" in page
    assert placeholder(base_dn) not in page


def test_an_unknown_tenant_is_404(signed_in: Any):
    assert signed_in.get("/admin/check?tenant=nope").status_code == 404
