"""Operations surface: /healthz, /readyz, /metrics, request ids, JSON logs, the audit trail."""

from __future__ import annotations

import json
import logging
import multiprocessing
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ldap3 import BASE
from prometheus_client.parser import text_string_to_metric_families

from config import Settings, load_settings
from scim import observability
from scim.audit import AuditLog, changed_attributes, read_audit
from scim.factory import create_app
from scim.logs import JsonFormatter, valid_request_id
from tests import entra
from tests.conftest import TOKEN, Scim

METRICS_TOKEN = "metrics-token-0123456789abcdef"
SECRET = "Sup3r-Secret-Pässwort!"
INTERNAL = re.compile(r"dc=|ou=|cn=|127\.0\.0\.1|localhost|slapd|openldap|ldap", re.I)


def _settings(slapd: Any, tmp_path: Path, **extra: str) -> Settings:
    return load_settings({
        **slapd.env, "SCIM_BEARER_TOKEN": TOKEN, "LDAP_TIMEOUT": "2",
        "LDAP_CONNECT_TIMEOUT": "0.5", "SCIM_RETRY_AFTER": "3",
        "METRICS_TOKEN": METRICS_TOKEN, "AUDIT_LOG": str(tmp_path / "audit.log"), **extra})


def _app(settings: Settings) -> Iterator[Any]:
    application = create_app(settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["scim_bridge"].pool.close()


@pytest.fixture
def obs_app(slapd: Any, ldap: Any, tmp_path: Path) -> Iterator[Any]:
    yield from _app(_settings(slapd, tmp_path))


@pytest.fixture
def web(obs_app: Any) -> Any:
    return obs_app.test_client()


@pytest.fixture
def api(web: Any) -> Scim:
    return Scim(web)


@pytest.fixture
def audit_file(tmp_path: Path) -> Path:
    return tmp_path / "audit.log"


def _audit(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _samples(web: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    r = web.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert r.status_code == 200
    out = {}
    for family in text_string_to_metric_families(r.get_data(as_text=True)):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


# --- health -------------------------------------------------------------------------------


def test_healthz_answers_without_auth_and_says_nothing_internal(web):
    r = web.get("/healthz")
    assert r.status_code == 200
    assert r.get_json() == {"status": "ok"}
    assert r.headers["Cache-Control"] == "no-store"
    assert not INTERNAL.search(r.get_data(as_text=True))


def test_readyz_checks_the_directory_and_schema(web):
    r = web.get("/readyz")
    assert r.status_code == 200
    assert r.get_json() == {"status": "ready", "provider": 1, "lagging": False}
    assert not INTERNAL.search(r.get_data(as_text=True))


def test_readyz_is_503_while_slapd_is_stopped_and_recovers(web, slapd):
    assert web.get("/readyz").status_code == 200  # a pooled connection exists now
    slapd.stop()
    try:
        r = web.get("/readyz")
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "3"
        assert r.get_json() == {"status": "unavailable"}
        assert not INTERNAL.search(r.get_data(as_text=True))
        assert web.get("/healthz").status_code == 200  # alive, just not ready
    finally:
        slapd.start(slapd._folder(), slapd.port, slapd.nosync)
    assert web.get("/readyz").status_code == 200


def test_readyz_is_503_when_the_base_entries_are_missing(slapd, ldap, tmp_path):
    missing = f"o=nowhere,{slapd.env['LDAP_BASE_DN']}"
    for app in _app(_settings(slapd, tmp_path, LDAP_BASE_DN=missing)):
        r = app.test_client().get("/readyz")
        assert r.status_code == 503
        assert "nowhere" not in r.get_data(as_text=True)


def test_readyz_is_503_when_our_object_class_is_not_in_the_schema(web, monkeypatch):
    monkeypatch.setattr(observability, "_SCIM_RESOURCE", re.compile("NAME 'scimNoSuchClass'"))
    assert web.get("/readyz").status_code == 503


def test_readyz_reads_the_subschema_our_check_relies_on(ldap):
    ldap.search("", "(objectClass=*)", BASE, attributes=["subschemaSubentry"])
    subschema = ldap.response[0]["attributes"]["subschemaSubentry"]
    ldap.search(subschema, "(objectClass=*)", BASE, attributes=["objectClasses"])
    classes = ldap.response[0]["attributes"]["objectClasses"]
    assert any(observability._SCIM_RESOURCE.search(c) for c in classes)


# --- metrics ------------------------------------------------------------------------------


def test_metrics_are_off_without_a_metrics_token(client):
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


@pytest.mark.parametrize("authorization", [None, f"Bearer {TOKEN}", "Bearer wrong",
                                           f"Basic {METRICS_TOKEN}"])
def test_metrics_need_the_metrics_token(web, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    r = web.get("/metrics", headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert "scim_" not in r.get_data(as_text=True)


def test_metrics_text_format(web):
    r = web.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=")
    for name in ("scim_http_requests", "scim_http_request_duration_seconds",
                 "scim_ldap_operations", "scim_ldap_operation_duration_seconds",
                 "scim_auth_failures", "scim_audit_write_failures"):
        assert f"# TYPE {name}" in r.get_data(as_text=True)


def test_counters_move_after_requests(web, api):
    before = _samples(web)
    created = api.post("/Users", entra.minimal_user("metrics@example.org"))
    assert created.status_code == 201
    assert api.get(f"/Users/{created.json['id']}").status_code == 200
    bad = web.get("/scim/v2/Users", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    after = _samples(web)

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert moved("scim_http_requests_total", endpoint="/scim/v2/Users", method="POST",
                 status="201") == 1
    assert moved("scim_http_requests_total", endpoint="/scim/v2/Users/<scim_id>",
                 method="GET", status="200") == 1
    assert moved("scim_http_request_duration_seconds_count", endpoint="/scim/v2/Users",
                 method="POST") == 1
    assert moved("scim_http_requests_total", endpoint="/scim/v2/Users", method="GET",
                 status="401") == 1
    assert moved("scim_auth_failures_total", endpoint="/scim/v2/Users") == 1
    assert moved("scim_ldap_operations_total", operation="add", result="success") == 1
    assert moved("scim_ldap_operations_total", operation="search", result="success") >= 2
    assert moved("scim_ldap_operation_duration_seconds_count", operation="add") == 1
    assert not any(created.json["id"] in str(key) for key in after)  # no raw paths


def test_unknown_paths_and_methods_share_one_label(web):
    before = _samples(web)
    web.get("/no/such/thing/1")
    web.get("/no/such/thing/2")
    web.open("/healthz", method="BREW")
    after = _samples(web)
    key = ("scim_http_requests_total",
           frozenset({"endpoint": "unmatched", "method": "GET", "status": "404"}.items()))
    assert after[key] - before.get(key, 0) == 2
    assert not any("BREW" in str(k) or "/no/such" in str(k) for k in after)


def test_ldap_errors_are_counted_by_class(web, api, slapd):
    api.get("/Users?count=1")  # a pooled connection, which a paused slapd keeps open
    before = _samples(web)
    slapd.pause()
    try:
        assert api.get("/Users?count=1").status_code == 503  # the search times out
    finally:
        slapd.resume()
    after = _samples(web)
    failed = {dict(k[1])["operation"]: v - before.get(k, 0) for k, v in after.items()
              if k[0] == "scim_ldap_operations_total"
              and ("result", "DirectoryUnavailable") in k[1]}
    assert sum(failed.values()) == 1, failed  # the operation that timed out


def test_an_ldap_answer_other_than_success_is_counted_by_class(slapd, ldap, tmp_path):
    missing = f"o=nowhere,{slapd.env['LDAP_BASE_DN']}"
    for app in _app(_settings(slapd, tmp_path, LDAP_BASE_DN=missing)):
        web = app.test_client()
        assert web.get("/readyz").status_code == 503
        assert _value(_samples(web), "scim_ldap_operations_total", operation="search",
                      result="NoSuchEntry") == 1


# --- request ids and logs -----------------------------------------------------------------


def test_request_id_is_generated_when_absent(web):
    first = web.get("/healthz").headers["X-Request-ID"]
    second = web.get("/healthz").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second


@pytest.mark.parametrize("incoming", ["3f2c9a6e0b5d4c1e8f7a6b5c4d3e2f1a",
                                      "b8e0c3c5-6c8a-4e0f-9a59-2f3d0d0a4e11", "req.1:2-3_x"])
def test_a_wellformed_request_id_is_echoed(api, incoming):
    r = api.get("/Users?count=1", headers={"X-Request-ID": incoming})
    assert r.headers["X-Request-ID"] == incoming


@pytest.mark.parametrize("incoming", ["x" * 129, "two words", "<script>", "a\u00e9b", "-dash",
                                      ""])
def test_a_malformed_request_id_is_replaced(web, incoming):
    r = web.get("/healthz", headers={"X-Request-ID": incoming})
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-ID"])
    assert not valid_request_id(incoming)


def test_error_responses_carry_the_request_id_too(web):
    r = web.get("/scim/v2/Users", headers={"X-Request-ID": "abc-123"})
    assert (r.status_code, r.headers["X-Request-ID"]) == (401, "abc-123")


def _json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def test_logs_are_json_lines_with_the_request_id(web, capsys):
    capsys.readouterr()
    r = web.get("/scim/v2/Users", headers={"Authorization": "Bearer wrong",
                                           "X-Request-ID": "log-test-1"})
    assert r.status_code == 401
    lines = [rec for rec in _json_lines(capsys.readouterr().err)
             if rec.get("request_id") == "log-test-1"]
    assert lines, "no JSON log line carried the request id"
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    assert lines[0]["level"] == "WARNING"
    assert "wrong" not in json.dumps(lines)  # never the token


def test_log_level_comes_from_the_settings(slapd, ldap, tmp_path, capsys):
    root = logging.getLogger()
    level = root.level
    try:
        for app in _app(_settings(slapd, tmp_path, LOG_LEVEL="ERROR")):
            capsys.readouterr()
            app.test_client().get("/scim/v2/Users", headers={"Authorization": "Bearer no",
                                                             "X-Request-ID": "quiet-1"})
            assert not [rec for rec in _json_lines(capsys.readouterr().err)
                        if rec.get("request_id") == "quiet-1"]
    finally:
        root.setLevel(level)


def test_gunicorn_access_records_become_json():
    atoms = {"h": "127.0.0.1", "m": "PATCH", "U": "/scim/v2/Users/1", "q": "", "s": "200",
             "B": 12, "D": 1500, "a": 'Entra "SCIM"', "{x-request-id}o": "rid-1",
             "{x-forwarded-for}i": "203.0.113.9"}

    class SafeAtoms(dict):  # what gunicorn hands its access logger
        def __getitem__(self, key: str) -> Any:
            return super().__getitem__(key) if key in self else "-"

    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(h)s",
                               None, None)
    record.args = SafeAtoms({k: v.replace('"', '\\"') if isinstance(v, str) else v
                             for k, v in atoms.items()})
    out = json.loads(JsonFormatter().format(record))
    assert out["status"] == 200 and out["method"] == "PATCH"
    assert out["request_id"] == "rid-1" and out["forwarded_for"] == "203.0.113.9"
    assert out["duration_ms"] == 1.5 and out["user_agent"] == 'Entra "SCIM"'


# --- forwarded headers (ProxyFix) ---------------------------------------------------------

FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "scim.example.com", "X-Forwarded-Port": "443"}


def test_behind_one_proxy_urls_are_public_https(slapd, ldap, tmp_path, audit_file):
    for app in _app(_settings(slapd, tmp_path, SCIM_TRUSTED_PROXIES="1")):
        r = Scim(app.test_client()).post("/Users", entra.minimal_user("proxied@example.org"),
                                         headers=FORWARDED)
        url = f"https://scim.example.com/scim/v2/Users/{r.json['id']}"
        assert (r.status_code, r.headers["Location"], r.json["meta"]["location"]) == \
            (201, url, url)
        assert _audit(audit_file)[-1]["client"] == "203.0.113.9"


def test_without_trusted_proxies_forwarded_headers_are_ignored(api, audit_file):
    r = api.post("/Users", entra.minimal_user("direct@example.org"), headers=FORWARDED)
    assert r.headers["Location"].startswith("http://localhost/scim/v2/Users/")
    assert _audit(audit_file)[-1]["client"] == "127.0.0.1"


# --- audit trail --------------------------------------------------------------------------


def test_create_patch_delete_are_audited_without_secret_values(web, api, audit_file):
    created = api.post("/Users", {**entra.user("audit@contoso.com"), "password": SECRET},
                       headers={"X-Request-ID": "create-1"})
    assert created.status_code == 201
    uid = created.json["id"]
    assert api.patch(f"/Users/{uid}", entra.patch(
        {"op": "replace", "path": "password", "value": SECRET},
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "a@contoso.com"},
    )).status_code == 200
    assert api.patch(f"/Users/{uid}", entra.patch(
        {"op": "Replace", "value": {"password": SECRET, "displayName": "A"}})).status_code \
        == 200
    assert api.delete(f"/Users/{uid}").status_code == 204

    text = audit_file.read_text()
    assert SECRET not in text and TOKEN not in text
    create, patch1, patch2, delete = _audit(audit_file)
    assert create["operation"] == "create" and create["resource"] == "User"
    assert create["resource_id"] == uid and create["request_id"] == "create-1"
    assert {"userName", "password", "emails", "active",
            f"{entra.ENTERPRISE}:department"} <= set(create["attributes"])
    assert "schemas" not in create["attributes"] and "meta" not in create["attributes"]
    assert (create["token"], create["token_id"], create["tenant"]) == \
        ("static", "static", "default")
    assert (create["status"], create["result"]) == (201, "success")
    assert create["duration_ms"] > 0
    assert datetime.fromisoformat(create["time"]) > datetime.now(UTC) - timedelta(minutes=1)
    assert patch1["operation"] == "update" and patch1["resource_id"] == uid
    assert patch1["attributes"] == ["password", "active", "emails.value"]
    assert patch2["attributes"] == ["password", "displayName"]
    assert delete["operation"] == "delete" and delete["status"] == 204
    assert delete["attributes"] == []


def test_group_changes_and_failures_are_audited(api, audit_file):
    user = api.post("/Users", entra.minimal_user("member@example.org")).json["id"]
    group = api.post("/Groups", entra.group("Audited")).json["id"]
    api.patch(f"/Groups/{group}", entra.patch(
        {"op": "Add", "path": "members", "value": [{"value": user}]}))
    duplicate = api.post("/Users", entra.minimal_user("member@example.org"))
    assert duplicate.status_code == 409
    records = _audit(audit_file)
    assert [(r["operation"], r["resource"], r["status"]) for r in records] == [
        ("create", "User", 201), ("create", "Group", 201), ("update", "Group", 204),
        ("create", "User", 409)]
    assert records[2]["attributes"] == ["members"] and user not in json.dumps(records[2])
    assert records[3]["result"] == "failure" and records[3]["resource_id"] is None


def test_reads_and_searches_are_one_contact_and_a_refused_change_is_no_change(
        web, api, audit_file):
    """Reads change nothing: they only mark the token's last contact (once a minute);
    an unauthenticated POST is a failed authentication, not a change, and records
    neither the token it sent nor its body."""
    api.get("/Users")
    api.post("/Users/.search", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]})
    web.post("/scim/v2/Users", json=entra.minimal_user("nobody@example.org"),
             headers={"Authorization": "Bearer wrong"})
    contact, refused = _audit(audit_file)
    assert (contact["operation"], contact["token"], contact["path"]) == (
        "contact", "static", "/scim/v2/Users")
    assert (refused["operation"], refused["status"], refused["client"]) == (
        "authenticate", 401, "127.0.0.1")
    assert "nobody@example.org" not in audit_file.read_text()
    assert "wrong" not in audit_file.read_text()  # the token it sent


def test_read_audit_filters_newest_first(tmp_path):
    path = tmp_path / "audit.log"
    log = AuditLog(str(path))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(10):
        when = (start + timedelta(minutes=i)).isoformat().replace("+00:00", "Z")
        log.write({"time": when, "n": i, "status": 500 if i % 3 == 0 else 200,
                   "result": "failure" if i % 3 == 0 else "success"})
    with path.open("a") as handle:
        handle.write("not json\n")
    assert [r["n"] for r in read_audit(path, 3)] == [9, 8, 7]
    assert [r["n"] for r in read_audit(path, 10, result="failure")] == [9, 6, 3, 0]
    since = start + timedelta(minutes=7)
    assert [r["n"] for r in read_audit(path, 10, since=since)] == [9, 8, 7]
    assert [r["n"] for r in read_audit(str(path), 10, result="success",
                                       since="2026-01-01T00:04:00Z")] == [8, 7, 5, 4]
    assert read_audit(tmp_path / "missing.log", 5) == []
    assert read_audit(path, 0) == []


def test_read_audit_reads_backwards_across_blocks(tmp_path):
    path = tmp_path / "audit.log"
    log = AuditLog(str(path))
    for i in range(3000):
        log.write({"time": "2026-01-01T00:00:00Z", "n": i, "pad": "x" * 100})
    records = read_audit(path, 3000)
    assert [r["n"] for r in records] == list(range(2999, -1, -1))


def test_the_admin_dashboard_writes_through_the_same_trail(tmp_path):
    path = tmp_path / "audit.log"
    log = AuditLog(str(path))
    log.record(operation="admin.token.revoke", resource="Token", resource_id="t1",
               tenant="default", status=204, token="admin:ada")
    [record] = log.reader()(5, None)  # type: ignore[misc]
    assert record["result"] == "success" and record["operation"] == "admin.token.revoke"
    assert AuditLog("").reader() is None


def test_a_failed_audit_write_is_logged_and_counted(tmp_path, caplog):
    failures = []
    blocked = tmp_path / "file"
    blocked.write_text("")
    log = AuditLog(str(blocked / "audit.log"), lambda: failures.append(1))
    with caplog.at_level(logging.ERROR, logger="scim.audit"):
        assert log.write({"time": "2026-01-01T00:00:00Z"}) is False
    assert failures == [1] and "audit record not written" in caplog.text


def test_changed_attributes_caps_and_ignores_junk():
    assert changed_attributes("PATCH", {"Operations": "nope"}) == []
    assert changed_attributes("PATCH", [1, 2]) == []
    many = {f"attr{i}": 1 for i in range(80)}
    assert len(changed_attributes("POST", many)) == 50
    assert changed_attributes("PUT", {"x" * 500: 1}) == ["x" * 120]
    assert changed_attributes("PATCH", {"operations": [
        {"op": "remove", "path": 'members[value eq "1"]'}, "junk", {"op": "add"}]}) == \
        ["members"]


def _write_many(path: str, worker: int, count: int) -> None:
    log = AuditLog(path)
    for i in range(count):
        # every other record is larger than a page and than PIPE_BUF
        log.write({"time": "2026-01-01T00:00:00Z", "worker": worker, "n": i,
                   "pad": "y" * (5000 if i % 2 else 200)})


def test_concurrent_writers_lose_nothing_and_never_interleave(tmp_path):
    path = str(tmp_path / "audit.log")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(path, w, 500)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = Path(path).read_bytes().split(b"\n")
    assert lines.pop() == b""
    records = [json.loads(line) for line in lines]  # every line is one whole record
    assert len(records) == 2000
    assert {(r["worker"], r["n"]) for r in records} == {(w, i) for w in range(4)
                                                        for i in range(500)}


def test_the_placeholder_probe_is_counted_apart_from_ldap_errors(web, api):
    """Entra creates every group empty; its first member makes the bridge's conditional
    modify "(!(member=placeholder))" miss, as designed. That miss must not look like an
    LDAP error to an alert on scim_ldap_operations_total{result!="success"}."""
    user = api.post("/Users", entra.minimal_user("probe@example.org")).json
    group = api.post("/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                 "displayName": "Probed"}).json
    before = _samples(web)
    assert api.patch(f"/Groups/{group['id']}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Add", "path": "members",
                        "value": [{"value": user["id"]}]}]}).status_code in (200, 204)
    after = _samples(web)

    def moved(result: str) -> float:
        return _value(after, "scim_ldap_operations_total", operation="modify",
                      result=result) - _value(before, "scim_ldap_operations_total",
                                              operation="modify", result=result)

    assert moved("ConditionNotMet") == 1
    assert moved("AssertionFailed") == 0
    assert moved("success") == 1
