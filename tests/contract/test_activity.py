"""Activity (provisioning logs) against real slapd: what an audit record says about a SCIM
change or a failed authentication, and what the Activity page and the per-user and
per-group history make of it — names, scimType and detail, filters, paging past the first
page, CSV export, cycles, last contact — and that the page works while the directory is
down (it reads only the file)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from scim.admin import activity
from scim.audit import active_change, error_fields, read_audit, resource_name
from tests.conftest import Scim
from tests.contract.test_admin import activity_table, build, sign_in, text
from tests.slapd_instance import SlapdInstance, free_port

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SECRET_KEY = "k" * 40


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


@pytest.fixture
def app(slapd: SlapdInstance, admins: Any, trail: Path) -> Iterator[Flask]:
    application = build(slapd, AUDIT_LOG=str(trail), ADMIN_SECRET_KEY=SECRET_KEY)
    yield application
    application.extensions["scim_bridge"].pool.close()


@pytest.fixture
def admins(ldap: Any, base_dn: str) -> Iterator[Any]:
    from tests.admin_support import make_admins, wipe_tokens

    wipe_tokens(ldap, base_dn)
    yield make_admins(ldap, base_dn)
    wipe_tokens(ldap, base_dn)


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    client = app.test_client()
    assert sign_in(client).status_code == 302
    return client


def records(trail: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in trail.read_text().splitlines()]


def changes(trail: Path) -> list[dict[str, Any]]:
    return [r for r in records(trail) if r["operation"] not in ("contact", "authenticate")]


def test_a_failed_create_is_recorded_with_its_name_scim_type_and_detail(app, admin, trail):
    scim = Scim(app.test_client())
    assert scim.post("/Users", {"schemas": [CORE_USER], "userName": "dup@example.org"}
                     ).status_code == 201
    again = scim.post("/Users", {"schemas": [CORE_USER], "userName": "dup@example.org"})
    assert again.status_code == 409
    unknown = scim.post("/Users", {"schemas": [CORE_USER, ENTERPRISE],
                                   "userName": "orphan@example.org",
                                   ENTERPRISE: {"manager": {"value": "no-such-manager"}}})
    assert unknown.status_code == 400
    created, duplicate, orphan = changes(trail)
    assert created["name"] == "dup@example.org" and "scim_type" not in created
    assert duplicate["name"] == "dup@example.org" and duplicate["result"] == "failure"
    assert duplicate["scim_type"] == again.get_json()["scimType"] == "uniqueness"
    assert duplicate["detail"] == again.get_json()["detail"]
    assert orphan["name"] == "orphan@example.org"
    assert orphan["scim_type"] == unknown.get_json()["scimType"]
    assert orphan["detail"] == unknown.get_json()["detail"]

    table = activity_table(text(admin.get("/admin/activity?result=failure")))
    assert table.count("<tr class=\"row-bad\">") == 2
    assert "dup@example.org" in table and "uniqueness" in table
    assert again.get_json()["detail"] in table.replace("&#39;", "'").replace("&#34;", '"')
    assert "orphan@example.org" in table


def test_rows_link_to_the_user_and_name_what_a_patch_or_delete_only_ids(app, admin, trail):
    scim = Scim(app.test_client())
    user = scim.post("/Users", {"schemas": [CORE_USER], "userName": "linked@example.org"}
                     ).get_json()
    assert scim.patch(f"/Users/{user['id']}", {"schemas": [PATCH], "Operations": [
        {"op": "Replace", "path": "active", "value": "False"}]}).status_code == 200
    assert scim.patch(f"/Users/{user['id']}", {"schemas": [PATCH], "Operations": [
        {"op": "Replace", "value": {"active": True, "title": "Boss"}}]}).status_code == 200
    group = scim.post("/Groups", {"schemas": [CORE_GROUP], "displayName": "Linked Group"}
                      ).get_json()
    assert scim.delete(f"/Groups/{group['id']}").status_code == 204
    create, disable, enable, group_create, delete = changes(trail)
    assert disable["change"] == "disable" and disable["attributes"] == ["active"]
    assert enable["change"] == "enable"
    assert group_create["name"] == "Linked Group"
    assert "name" not in delete  # a DELETE carries only the id ...
    table = activity_table(text(admin.get("/admin/activity")))
    # ... and the page names it from the group's earlier records
    assert table.count("Linked Group") == 2
    assert f'href="/admin/users/{user["id"]}?tenant=default"' in table
    assert f'href="/admin/groups/{group["id"]}' in table  # the create links; ...
    assert table.count(f'href="/admin/groups/{group["id"]}') == 1  # ... the delete does not
    assert ">disable<" in table

    page = text(admin.get(f"/admin/users/{user['id']}?tenant=default"))
    history = page[page.index('id="user-history"'):]
    history = history[:history.index("</table>")]
    assert history.count("<tr") == 4  # header + create, disable, enable
    assert "disable" in history and "enable" in history


def test_passwords_never_reach_the_trail_even_through_an_error_detail(app, trail):
    scim = Scim(app.test_client())
    secret = "Hunter2-Secret!"
    assert scim.post("/Users", {"schemas": [CORE_USER], "userName": "pw@example.org",
                                "password": secret}).status_code == 201
    odd = scim.post("/Users", {"schemas": [CORE_USER], "userName": 42, "password": secret})
    assert odd.status_code == 400
    user_id = records(trail)[0]["resource_id"]
    scim.patch(f"/Users/{user_id}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "password", "value": secret}]})
    assert secret not in trail.read_text()
    assert [r.get("attributes") for r in changes(trail)][0] == ["userName", "password"]
    assert error_fields({"password": "s3cret"}, {"detail": "bad value s3cret"}) == {
        "detail": "bad value ***"}


def test_failed_authentications_are_recorded_with_the_client_address(slapd, admins, trail):
    app = build(slapd, AUDIT_LOG=str(trail), SCIM_AUTH_FAILURES_PER_MINUTE="2")
    try:
        client = app.test_client()
        bad = {"Authorization": "Bearer wrong-token"}
        statuses = [client.get("/scim/v2/Users", headers=bad,
                               environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code
                    for _ in range(5)]
        assert statuses == [401, 401, 429, 429, 429]
        assert client.post("/oauth/token", data={"grant_type": "client_credentials",
                                                 "client_id": "x", "client_secret": "y"},
                           environ_base={"REMOTE_ADDR": "198.51.100.8"}).status_code == 401
        auth = [r for r in records(trail) if r["operation"] == "authenticate"]
        assert [(r["status"], r["client"]) for r in auth] == [
            (401, "198.51.100.7"), (401, "198.51.100.7"), (429, "198.51.100.7"),
            (401, "198.51.100.8")]  # one 429 a minute, not one per refused request
        assert auth[0]["reason"] == "unknown, revoked or expired token"
        assert "wrong-token" not in trail.read_text()
        admin = app.test_client()
        assert sign_in(admin).status_code == 302
        page = text(admin.get("/admin/activity"))
        assert "198.51.100.8" in page[page.index('id="last-auth-failure"'):][:400]
        assert re.search(r'id="stat-auth">4<', page)
        shown = activity_table(text(admin.get("/admin/activity?operation=authenticate")))
        assert shown.count("198.51.100.7") == 3
    finally:
        app.extensions["scim_bridge"].pool.close()


def test_last_contact_per_token_is_recorded_once_a_minute(app, admin, trail):
    scim = Scim(app.test_client())
    for _ in range(3):
        assert scim.get("/Users?filter=userName%20eq%20%22x%22").status_code == 200
    contacts = [r for r in records(trail) if r["operation"] == "contact"]
    assert len(contacts) == 1 and contacts[0]["token"] == "static"
    assert contacts[0]["path"] == "/scim/v2/Users"
    page = text(admin.get("/admin/activity"))
    panel = page[page.index('id="contacts"'):page.index('id="auth-failures"')]
    assert "static" in panel and "in progress" in panel
    assert 'id="no-activity"' in page  # contacts are not operations: not in the table
    assert 'id="activity"' in text(admin.get("/admin/activity?operation=contact"))


def _write(trail: Path, rows: list[dict[str, Any]]) -> None:
    trail.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _record(when: datetime, **fields: Any) -> dict[str, Any]:
    base = {"time": when.isoformat().replace("+00:00", "Z"), "token": "entra",
            "token_id": "t1", "tenant": "default", "operation": "create", "method": "POST",
            "resource": "User", "status": 201, "result": "success", "duration_ms": 3.0}
    return {**base, **fields}


def test_the_table_pages_past_the_first_rows_and_filters(app, admin, trail):
    now = datetime.now(UTC)
    rows = [_record(now - timedelta(minutes=300 - i), resource_id=f"u{i}",
                    name=f"person{i:03d}@example.org") for i in range(250)]
    rows[10] = _record(now - timedelta(minutes=290), resource_id="u10", status=409,
                       result="failure", scim_type="uniqueness", name="person010@example.org",
                       detail="userName 'person010@example.org' is taken", tenant="contoso")
    _write(trail, rows)
    first = activity_table(text(admin.get("/admin/activity?tenant=*")))
    assert first.count("<tr") == 101 and "person249@" in first and "person149@" not in first
    third = text(admin.get("/admin/activity?tenant=*&page=3"))
    table = activity_table(third)
    assert table.count("<tr") == 51 and "person049@" in table and "person000@" in table
    assert 'rel="next"' not in third and 'rel="prev"' in third
    assert 'rel="next"' in text(admin.get("/admin/activity?tenant=*&page=2"))
    failed = activity_table(text(admin.get("/admin/activity?tenant=*&result=failure")))
    assert failed.count("<tr") == 2 and "is taken" in failed
    assert activity_table(text(admin.get("/admin/activity?tenant=contoso"))).count("<tr") == 2
    found = activity_table(text(admin.get("/admin/activity?tenant=*&q=PERSON12")))
    assert found.count("<tr") == 11  # person120..129
    recent = activity_table(text(admin.get("/admin/activity?tenant=*&range=1h")))
    assert recent.count("<tr") == 10  # the 9 of the last hour
    since = (now - timedelta(minutes=55, seconds=30)).strftime("%Y-%m-%dT%H:%M:%S")
    until = (now - timedelta(minutes=50, seconds=30)).strftime("%Y-%m-%dT%H:%M:%S")
    window = activity_table(text(admin.get(f"/admin/activity?tenant=*&from={since}&to={until}")))
    assert window.count("<tr") == 6
    assert 'id="no-activity"' in text(admin.get("/admin/activity?tenant=*&resource=Group"))


def test_csv_export_has_the_filtered_records_and_defuses_formulas(app, admin, trail):
    now = datetime.now(UTC)
    _write(trail, [_record(now, resource_id="u1", name="=HYPERLINK(\"x\")"),
                   _record(now, resource_id="u2", name="plain@example.org", status=400,
                           result="failure", scim_type="invalidValue", detail="bad",
                           attributes=["userName", "emails.value"])])
    response = admin.get("/admin/activity.csv?tenant=*")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["name"] for r in rows] == ["plain@example.org", "'=HYPERLINK(\"x\")"]
    assert rows[0]["scim_type"] == "invalidValue" and rows[0]["attributes"] == \
        "userName;emails.value"
    only = admin.get("/admin/activity.csv?tenant=*&result=failure").get_data(as_text=True)
    assert len(list(csv.DictReader(io.StringIO(only)))) == 1


def test_cycles_are_counted_per_token_by_kind(app, admin, trail):
    now = datetime.now(UTC)
    old = now - timedelta(minutes=45)
    rows = [_record(old + timedelta(seconds=i), resource_id=f"a{i}") for i in range(3)]
    rows += [_record(old + timedelta(seconds=10), operation="update", method="PATCH",
                     status=200, change="disable", resource_id="a0"),
             _record(old + timedelta(seconds=11), operation="delete", method="DELETE",
                     status=204, resource_id="a1")]
    rows += [_record(now - timedelta(minutes=1), operation="update", method="PATCH",
                     status=200, resource_id="a2"),
             _record(now - timedelta(seconds=30), status=409, result="failure",
                     scim_type="uniqueness", resource_id="a9")]
    _write(trail, rows)
    found = activity.cycles([activity.normalise(r) for r in rows], now)
    assert [(c.counts, c.in_progress) for c in found] == [
        ({"created": 0, "updated": 1, "disabled": 0, "deleted": 0, "failed": 1}, True),
        ({"created": 3, "updated": 0, "disabled": 1, "deleted": 1, "failed": 0}, False)]
    page = text(admin.get("/admin/activity"))
    cycles = page[page.index('id="cycle-table"'):]
    cycles = cycles[:cycles.index("</table>")]
    assert cycles.count("<tr") == 3 and cycles.count("in progress") == 1
    assert len(re.findall(r'data-kind="created"', page)) == 1  # the old cycle's bar
    reasons = page[page.index('id="reasons"'):]
    assert "uniqueness (409)" in reasons[:2000]


def test_activity_and_the_connector_health_work_while_the_directory_is_down(
        slapd, admin, trail):
    scim = Scim(admin.application.test_client())
    assert scim.post("/Users", {"schemas": [CORE_USER], "userName": "seen@example.org"}
                     ).status_code == 201
    assert scim.post("/Users", {"schemas": [CORE_USER], "userName": "seen@example.org"}
                     ).status_code == 409
    dead = build(slapd, AUDIT_LOG=str(trail), ADMIN_SECRET_KEY=SECRET_KEY,
                 LDAP_URL=f"ldap://127.0.0.1:{free_port()}", LDAP_CONNECT_TIMEOUT="0.3")
    try:
        client = dead.test_client()
        cookie = admin.get_cookie("scim_admin", path="/admin")
        assert cookie is not None
        client.set_cookie("scim_admin", cookie.value, path="/admin")
        page = client.get("/admin/activity?tenant=*")
        assert page.status_code == 200
        body = text(page)
        assert 'id="directory-down"' in body
        table = activity_table(body)
        assert "seen@example.org" in table and "uniqueness" in table
        connector = client.get("/admin/connector")
        assert connector.status_code == 200
        health = text(connector)
        panel = health[health.index('id="health"'):]
        assert "nothing answered at ldap://127.0.0.1:" in panel and "LDAP_URL" in panel
        assert "static" in panel  # last request from the SCIM client
        users = client.get("/admin/users")
        assert users.status_code == 503 and "nothing answered at" in text(users)
    finally:
        dead.extensions["scim_bridge"].pool.close()


def test_audit_helpers_name_the_resource_and_spot_a_disable():
    assert resource_name("User", None, {"userName": "a@b"}) == "a@b"
    assert resource_name("Group", {"displayName": "G"}, {"displayName": "old"}) == "G"
    assert resource_name("User", None, {"Operations": [
        {"op": "replace", "path": "userName", "value": "new@b"}]}) == "new@b"
    assert resource_name("User", None, None) is None
    assert active_change("PATCH", {"Operations": [{"op": "Replace", "path": "active",
                                                   "value": "False"}]}) == "disable"
    assert active_change("PATCH", {"Operations": [{"op": "replace",
                                                   "value": {"active": True}}]}) == "enable"
    assert active_change("PUT", {"userName": "x", "active": False}) == "disable"
    assert active_change("PATCH", {"Operations": [{"op": "replace", "path": "title",
                                                   "value": "False"}]}) is None


def test_read_audit_pages_and_filters(tmp_path):
    path = tmp_path / "a.jsonl"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    _write(path, [_record(start + timedelta(minutes=i), resource_id=str(i)) for i in range(10)])
    ids = [r["resource_id"] for r in read_audit(path, 3, offset=2)]
    assert ids == ["7", "6", "5"]
    odd = read_audit(path, 10, where=lambda r: int(r["resource_id"]) % 2 == 1)
    assert [r["resource_id"] for r in odd] == ["9", "7", "5", "3", "1"]
    window = read_audit(path, 10, since=start + timedelta(minutes=3),
                        until=start + timedelta(minutes=6))
    assert [r["resource_id"] for r in window] == ["5", "4", "3"]
    # ``contains`` skips lines before parsing them; ``where`` still decides
    seven = read_audit(path, 10, contains="7", where=lambda r: r["resource_id"] == "7")
    assert [r["resource_id"] for r in seven] == ["7"]
    assert read_audit(path, 10, contains="no such text") == []


# --- what the users pages show of a person ------------------------------------------------


def _person(scim: Scim, user_name: str, **extra: Any) -> dict[str, Any]:
    body = {"schemas": [CORE_USER, ENTERPRISE], "userName": user_name, **extra}
    response = scim.post("/Users", body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_user_page_labels_links_the_manager_lists_reports_and_what_the_mdm_reads(
        app, admin, trail, base_dn):
    scim = Scim(app.test_client())
    boss = _person(scim, "boss@example.org", displayName="Big Boss",
                   **{ENTERPRISE: {"department": "Engineering"}})
    worker = _person(scim, "worker@example.org", displayName="Busy Worker", title="Engineer",
                     **{ENTERPRISE: {"department": "Research", "employeeNumber": "42",
                                     "manager": {"value": boss["id"]}}})
    assert scim.patch(f"/Users/{worker['id']}", {"schemas": [PATCH], "Operations": [
        {"op": "Replace", "path": "active", "value": "False"}]}).status_code == 200
    page = text(admin.get(f"/admin/users/{worker['id']}?tenant=default"))
    attributes = page[page.index('id="attributes"'):page.index("</table>",
                                                               page.index('id="attributes"'))]
    assert ">Department</th><td>Research<" in attributes
    assert ">Employee number</th><td>42<" in attributes and ">Job title</th>" in attributes
    assert "2.0." not in page  # no `2.0.department` labels
    manager = page[page.index('id="user-manager"'):][:300]
    assert f'href="/admin/users/{boss["id"]}?tenant=default"' in manager and "Big Boss" in manager
    mdm = page[page.index('id="mdm"'):page.index('id="history"')]
    assert f"uid=worker@example.org,ou=People,{base_dn}" in mdm
    assert "locked" in mdm and "pwdAccountLockedTime 000001010000Z" in mdm
    disabled = mdm[mdm.index('id="user-disabled"'):][:300]
    assert "by token <strong>static</strong>" in disabled

    boss_page = text(admin.get(f"/admin/users/{boss['id']}?tenant=default"))
    reports = boss_page[boss_page.index('id="reports"'):][:500]
    assert f'/admin/users/{worker["id"]}?tenant=default' in reports and "Busy Worker" in reports
    assert "yes</span> (not locked)" in boss_page

    listed = text(admin.get("/admin/users?q=research"))  # search covers the department
    table = listed[listed.index('id="users"'):]
    assert "worker@example.org" in table and "boss@example.org" not in table
    assert "Engineer" in table and "Big Boss" in table  # title and manager columns
    by_department = text(admin.get("/admin/users?sort=department"))
    assert by_department.index("boss@example.org") < by_department.index("worker@example.org")
    reverse = text(admin.get("/admin/users?sort=department&order=desc"))
    assert reverse.index("worker@example.org") < reverse.index("boss@example.org")
