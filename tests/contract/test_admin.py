"""The admin dashboard through Flask's test client, on real slapd: sign-in (LDAP bind as
an admin under ou=Admins,ou=Service; optional group), server-side sessions, rate limit,
CSRF, idle timeout, cookie flags, token buttons, the read-only pages (which must never
write to the directory) and the Activity page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import ldap3
import pytest
from flask import Flask
from flask.testing import FlaskClient
from ldap3 import MODIFY_REPLACE, Connection
from ldap3.core.exceptions import LDAPException

from config import load_settings
from directory.errors import DirectoryUnavailable
from scim.factory import create_app
from tests.admin_support import (
    ADMIN_LOGIN,
    ADMIN_PASSWORD,
    OTHER_LOGIN,
    OTHER_PASSWORD,
    add_admin,
    make_admins,
    wipe_admins,
    wipe_tokens,
)
from tests.conftest import TOKEN, Scim
from tests.slapd_instance import SlapdInstance

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SHOWN_TOKEN = re.compile(r'id="token-value"[^>]*value="(scim_[0-9a-f]{16}_[A-Za-z0-9_-]+)"')
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def build(slapd: SlapdInstance, **env: str) -> Flask:
    values = {**slapd.env, "SCIM_BEARER_TOKEN": TOKEN, "SCIM_AUTH_FAILURES_PER_MINUTE": "4",
              "SCIM_TOKEN_CACHE_SECONDS": "1", **env}
    app = create_app(load_settings(values))
    app.config["TESTING"] = True
    return app


@pytest.fixture
def admins(ldap: Connection, base_dn: str) -> Iterator[tuple[str, str]]:
    wipe_tokens(ldap, base_dn)
    yield make_admins(ldap, base_dn)
    wipe_tokens(ldap, base_dn)
    wipe_admins(ldap, base_dn)


@pytest.fixture
def app(slapd: SlapdInstance, admins: tuple[str, str]) -> Iterator[Flask]:
    application = build(slapd)
    yield application
    application.extensions["scim_bridge"].pool.close()


@pytest.fixture
def browser(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_of(page: Any) -> str:
    found = CSRF.search(page.get_data(as_text=True))
    assert found, "the page has no CSRF token"
    return found[1]


def sign_in(client: FlaskClient, login: str = ADMIN_LOGIN, password: str = ADMIN_PASSWORD,
            **extra: str) -> Any:
    token = csrf_of(client.get("/admin/login"))
    return client.post("/admin/login", data={"username": login, "password": password,
                                             "csrf_token": token, **extra})


@pytest.fixture
def signed_in(browser: FlaskClient) -> FlaskClient:
    assert sign_in(browser).status_code == 302
    return browser


def post(client: FlaskClient, path: str, page: str = "/admin/connector", **data: str) -> Any:
    """A form POST with the CSRF token of ``page`` (as a browser would send it)."""
    return client.post(path, data={"csrf_token": csrf_of(client.get(page)), **data})


def text(response: Any) -> str:
    return response.get_data(as_text=True)


# --- sign-in -----------------------------------------------------------------------------


def test_pages_need_a_sign_in(browser):
    for path in ("/admin/", "/admin/connector", "/admin/users", "/admin/groups",
                 "/admin/activity"):
        response = browser.get(path)
        assert response.status_code == 302
        if path != "/admin/":
            assert response.headers["Location"].startswith("/admin/login?next=")
    with browser.get("/admin/static/admin.css") as css:
        assert css.status_code == 200 and css.mimetype == "text/css"


def test_sign_in_lands_on_the_page_asked_for_and_sign_out_ends_the_session(browser):
    first = browser.get("/admin/users?q=x")
    target = first.headers["Location"]
    login_page = browser.get(target)
    response = browser.post(target.split("?")[0], data={
        "username": ADMIN_LOGIN, "password": ADMIN_PASSWORD, "csrf_token": csrf_of(login_page),
        "next": "/admin/users?q=x"})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/users?q=x"
    page = browser.get("/admin/connector")
    assert page.status_code == 200
    assert "http://127.0.0.1:8000/scim/v2" in text(page) and ADMIN_LOGIN in text(page)
    out = post(browser, "/admin/logout")
    assert out.status_code == 302 and "reason=out" in out.headers["Location"]
    assert browser.get("/admin/connector").status_code == 302


@pytest.mark.parametrize(("login", "password"), [
    (ADMIN_LOGIN, "wrong password"),
    ("nobody-here", ADMIN_PASSWORD),
    (ADMIN_LOGIN, ""),  # an empty password would be an unauthenticated bind: refused
    ("*", ADMIN_PASSWORD),  # a filter metacharacter is a literal uid, matching nobody
    (f"{ADMIN_LOGIN})(uid=*", ADMIN_PASSWORD),
])
def test_wrong_credentials_are_refused_alike(browser, login, password):
    response = sign_in(browser, login, password)
    assert response.status_code == 401
    assert "Wrong username or password." in text(response)
    assert browser.get("/admin/connector").status_code == 302


def test_a_person_of_the_directory_is_no_admin(browser):
    """A person with a password in ou=People (what a SCIM client can make) is not even
    looked at: the login names a DN under the admin base only."""
    response = sign_in(browser, OTHER_LOGIN, OTHER_PASSWORD)
    assert response.status_code == 401
    assert "Wrong username or password." in text(response)
    assert browser.get("/admin/connector").status_code == 302


@pytest.fixture
def dashboard_group(ldap: Connection, base_dn: str) -> Iterator[str]:
    """A second admin, alone in an admin group under ou=Service."""
    second = add_admin(ldap, base_dn, "second-admin", OTHER_PASSWORD)
    group = f"cn=dashboard,ou=Service,{base_dn}"
    with suppress(LDAPException):
        ldap.delete(group)
    ldap.add(group, ["groupOfNames"], {"cn": "dashboard", "member": [second]})
    yield group
    ldap.delete(group)


def test_a_configured_admin_group_restricts_the_admins(slapd, admins, dashboard_group):
    app = build(slapd, ADMIN_GROUP_DN=dashboard_group)
    try:
        client = app.test_client()
        refused = sign_in(client)
        assert refused.status_code == 403 and "not in the admin group" in text(refused)
        assert sign_in(client, "second-admin", OTHER_PASSWORD).status_code == 302
    finally:
        app.extensions["scim_bridge"].pool.close()


@pytest.mark.parametrize("setting", ["ADMIN_GROUP_DN", "ADMIN_BASE_DN"])
@pytest.mark.parametrize("where", ["cn=scim-admins,ou=Groups", "ou=Admins,ou=People",
                                   "ou=People", ""])
def test_the_service_refuses_an_admin_dn_in_scim_territory(slapd, base_dn, setting, where):
    from config import ConfigError

    dn = f"{where},{base_dn}" if where else base_dn
    with pytest.raises(ConfigError) as refused:
        load_settings({**slapd.env, setting: dn})
    message = str(refused.value)
    assert message.startswith(f"{setting}: ") and "\n" not in message
    assert "outside every tenant's ou=People and ou=Groups" in message


def test_failed_sign_ins_are_rate_limited_per_address(app, browser):
    for _ in range(4):
        assert sign_in(browser, ADMIN_LOGIN, "guess").status_code == 401
    blocked = sign_in(browser)  # even the right password waits now
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in text(blocked)
    other = app.test_client()
    token = csrf_of(other.get("/admin/login"))
    elsewhere = other.post("/admin/login", environ_base={"REMOTE_ADDR": "10.9.8.7"},
                           data={"username": ADMIN_LOGIN, "password": ADMIN_PASSWORD,
                                 "csrf_token": token})
    assert elsewhere.status_code == 302


def test_removal_from_the_admin_group_ends_the_session_at_once(slapd, ldap, admins,
                                                               dashboard_group):
    app = build(slapd, ADMIN_GROUP_DN=dashboard_group)
    try:
        client = app.test_client()
        assert sign_in(client, "second-admin", OTHER_PASSWORD).status_code == 302
        assert client.get("/admin/users").status_code == 200
        ldap.modify(dashboard_group, {"member": [(MODIFY_REPLACE, [admins[0]])]})
        response = client.get("/admin/users")
        assert response.status_code == 302 and "reason=removed" in response.headers["Location"]
    finally:
        app.extensions["scim_bridge"].pool.close()


def _saved_cookie(client: FlaskClient) -> str:
    return client.get_cookie("scim_admin", path="/admin").value


def _replay(app: Flask, cookie: str) -> Any:
    thief = app.test_client()
    thief.set_cookie("scim_admin", cookie, path="/admin")
    return thief.get("/admin/connector")


def _sessions(ldap: Connection, base_dn: str) -> list[str]:
    ldap.search(f"ou=Admins,ou=Service,{base_dn}", "(objectClass=organizationalRole)",
                ldap3.SUBTREE, attributes=["1.1"])
    return [e["dn"] for e in ldap.response if e.get("type") == "searchResEntry"]


def test_a_cookie_saved_before_sign_out_no_longer_opens_the_dashboard(app, signed_in, ldap,
                                                                      base_dn):
    saved = _saved_cookie(signed_in)
    assert _replay(app, saved).status_code == 200  # the copy works while the session lives
    assert len(_sessions(ldap, base_dn)) == 1
    assert post(signed_in, "/admin/logout").status_code == 302
    replayed = _replay(app, saved)
    assert replayed.status_code == 302 and "reason=ended" in replayed.headers["Location"]
    assert _sessions(ldap, base_dn) == []


def test_sessions_left_behind_are_purged_at_a_later_sign_in(app, signed_in, ldap, base_dn):
    second = app.test_client()
    assert sign_in(second).status_code == 302
    assert len(_sessions(ldap, base_dn)) == 2  # neither was signed out
    admin = app.extensions["scim_admin"]
    start = admin.clock()
    admin.clock = lambda: start + 29 * 60  # idle, but not twice ADMIN_IDLE_MINUTES yet
    assert sign_in(app.test_client()).status_code == 302
    assert len(_sessions(ldap, base_dn)) == 3
    admin.clock = lambda: start + 31 * 60  # all three were written (by slapd's clock) at start
    assert sign_in(app.test_client()).status_code == 302
    assert len(_sessions(ldap, base_dn)) == 1  # they went; the new one stays


def test_admin_remove_ends_its_sessions_at_once(app, signed_in, ldap, base_dn):
    saved = _saved_cookie(signed_in)
    result = app.test_cli_runner().invoke(args=["admin", "remove", ADMIN_LOGIN])
    assert result.exit_code == 0, result.output
    assert "1 session(s) ended" in result.output
    assert _replay(app, saved).status_code == 302
    assert signed_in.get("/admin/connector").status_code == 302
    assert sign_in(app.test_client()).status_code == 401


def test_admin_cli_creates_lists_and_removes(app, ldap, base_dn):
    runner = app.test_cli_runner()
    made = runner.invoke(args=["admin", "create", "cli-admin"])
    assert made.exit_code == 0, made.output
    password = re.search(r"^password: (\S+)$", made.output, re.M)[1]
    ldap.search(f"uid=cli-admin,ou=Admins,ou=Service,{base_dn}", "(objectClass=*)",
                ldap3.BASE, attributes=["userPassword"])
    stored = ldap.response[0]["attributes"]["userPassword"][0]
    assert stored.startswith(b"{SSHA512}") and password.encode() not in stored
    client = app.test_client()
    assert sign_in(client, "cli-admin", password).status_code == 302
    listed = runner.invoke(args=["admin", "list"]).output
    assert re.search(r"^cli-admin\s+\S+ \S+ UTC\s+1$", listed, re.M), listed
    assert runner.invoke(args=["admin", "create", "cli-admin"]).exit_code != 0  # taken
    assert runner.invoke(args=["admin", "remove", "cli-admin"]).exit_code == 0
    assert runner.invoke(args=["admin", "remove", "cli-admin"]).exit_code != 0
    assert client.get("/admin/connector").status_code == 302


def test_sign_in_refuses_an_admin_group_inside_a_registered_tenant(app, slapd, ldap, base_dn,
                                                                   admins):
    """A tenant registered before ADMIN_GROUP_DN was pointed into its ou=Groups."""
    assert app.test_cli_runner().invoke(args=["tenant", "create", "late"]).exit_code == 0
    group = f"cn=admins,ou=Groups,o=late,{base_dn}"
    misconfigured = build(slapd, ADMIN_GROUP_DN=group)
    try:
        response = sign_in(misconfigured.test_client())
        assert response.status_code == 503 and "misconfigured" in text(response)
    finally:
        misconfigured.extensions["scim_bridge"].pool.close()
        for dn in (f"ou=People,o=late,{base_dn}", f"ou=Groups,o=late,{base_dn}",
                   f"o=late,{base_dn}", f"cn=late,ou=Tenants,ou=Service,{base_dn}"):
            with suppress(LDAPException):
                ldap.delete(dn)


def test_tenant_create_refuses_to_enclose_the_admin_group(slapd, base_dn, admins):
    group = f"cn=admins,ou=Groups,o=grabby,{base_dn}"
    app = build(slapd, ADMIN_GROUP_DN=group)
    try:
        result = app.test_cli_runner().invoke(args=["tenant", "create", "grabby"])
        assert result.exit_code != 0
        assert f"ADMIN_GROUP_DN: {group} lies inside ou=Groups,o=grabby" in result.output
    finally:
        app.extensions["scim_bridge"].pool.close()


@pytest.mark.parametrize("target", ["//evil.example/admin/", "https://evil.example/",
                                    "/scim/v2/Users", "/\\evil.example"])
def test_sign_in_never_redirects_off_the_dashboard(browser, target):
    response = sign_in(browser, next=target)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/connector"


# --- session, CSRF, headers --------------------------------------------------------------


def test_csrf_token_is_required_on_every_post(signed_in):
    for path in ("/admin/logout", "/admin/connector/tokens", "/admin/connector/check",
                 "/admin/connector/tokens/0123456789abcdef/revoke"):
        assert signed_in.post(path, data={"name": "x"}).status_code == 400
        assert signed_in.post(path, data={"name": "x", "csrf_token": "forged"}).status_code == 400
    assert signed_in.get("/admin/connector").status_code == 200  # still signed in


def test_sign_in_form_needs_the_csrf_token_too(browser):
    browser.get("/admin/login")
    response = browser.post("/admin/login", data={"username": ADMIN_LOGIN,
                                                  "password": ADMIN_PASSWORD})
    assert response.status_code == 400
    assert browser.get("/admin/connector").status_code == 302


def test_the_csrf_token_of_another_session_is_refused(app, signed_in):
    stranger = app.test_client()
    foreign = csrf_of(stranger.get("/admin/login"))
    assert signed_in.post("/admin/logout", data={"csrf_token": foreign}).status_code == 400


def test_idle_sessions_are_signed_out(app, signed_in):
    admin = app.extensions["scim_admin"]
    start = admin.clock()
    admin.clock = lambda: start + 14 * 60
    assert signed_in.get("/admin/connector").status_code == 200  # activity: clock restarts
    admin.clock = lambda: start + 28 * 60
    assert signed_in.get("/admin/connector").status_code == 200
    admin.clock = lambda: start + 44 * 60
    response = signed_in.get("/admin/connector")
    assert response.status_code == 302 and "reason=idle" in response.headers["Location"]
    assert "15 minutes" in text(signed_in.get(response.headers["Location"]))
    admin.clock = lambda: start + 45 * 60
    assert signed_in.get("/admin/connector").status_code == 302  # the session is gone


def _session_cookie(response: Any) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("scim_admin=")]
    assert cookies, "no session cookie was set"
    return cookies[-1]


def test_session_cookie_flags(browser):
    cookie = _session_cookie(sign_in(browser))
    assert "; Secure" in cookie and "; HttpOnly" in cookie
    assert "; SameSite=Lax" in cookie and "; Path=/admin" in cookie
    assert "Expires" not in cookie  # a browser-session cookie


def test_session_cookie_may_drop_secure_for_local_http(slapd, admins):
    app = build(slapd, ADMIN_COOKIE_SECURE="false")
    try:
        cookie = _session_cookie(sign_in(app.test_client()))
        assert "; Secure" not in cookie and "; HttpOnly" in cookie
    finally:
        app.extensions["scim_bridge"].pool.close()


def test_a_fixed_secret_key_keeps_sessions_across_processes(slapd, admins):
    apps = [build(slapd, ADMIN_SECRET_KEY="k" * 40) for _ in range(2)]
    try:
        first = apps[0].test_client()
        assert sign_in(first).status_code == 302
        second = apps[1].test_client()
        second.set_cookie("scim_admin", first.get_cookie("scim_admin", path="/admin").value,
                          path="/admin")
        assert second.get("/admin/connector").status_code == 200
    finally:
        for app in apps:
            app.extensions["scim_bridge"].pool.close()


def test_pages_are_private_and_not_cached(signed_in):
    response = signed_in.get("/admin/connector")
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


def test_scim_tokens_do_not_open_the_dashboard(browser):
    response = browser.get("/admin/connector", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 302


# --- connector ---------------------------------------------------------------------------


def test_token_is_created_shown_once_and_works(app, signed_in):
    created = post(signed_in, "/admin/connector/tokens", name="entra-prod", expires="90d")
    assert created.status_code == 200
    token = SHOWN_TOKEN.search(text(created))[1]
    assert "shown <strong>only this once</strong>" in text(created)
    scim = Scim(app.test_client())
    scim.headers = {"Authorization": f"Bearer {token}"}
    assert scim.get("/Users").status_code == 200
    again = text(signed_in.get("/admin/connector"))
    assert token not in again and token.split("_", 2)[2] not in again
    key = token.split("_")[1]
    assert "entra-prod" in again and key in again
    assert created.headers["Cache-Control"] == "no-store"


def test_token_rotation_shows_the_replacement_once(app, signed_in):
    created = post(signed_in, "/admin/connector/tokens", name="rotating", expires="")
    old = SHOWN_TOKEN.search(text(created))[1]
    rotated = post(signed_in, f"/admin/connector/tokens/{old.split('_')[1]}/rotate", grace="1h")
    new = SHOWN_TOKEN.search(text(rotated))[1]
    assert new != old and "keeps working until" in text(rotated)
    page = text(signed_in.get("/admin/connector"))
    assert "rotated" in page and new.split("_")[1] in page and new not in page


def test_token_revocation(app, signed_in):
    created = post(signed_in, "/admin/connector/tokens", name="short-lived", expires="30d")
    key = SHOWN_TOKEN.search(text(created))[1].split("_")[1]
    revoked = post(signed_in, f"/admin/connector/tokens/{key}/revoke")
    assert revoked.status_code == 302
    page = text(signed_in.get(revoked.headers["Location"]))
    assert f"Token {key} revoked" in page and "short-lived" not in page
    missing = post(signed_in, f"/admin/connector/tokens/{key}/revoke")
    assert missing.status_code == 404 and "There is no token" in text(missing)


def test_a_token_needs_a_name(signed_in):
    response = post(signed_in, "/admin/connector/tokens", name="  ", expires="")
    assert response.status_code == 302
    assert "Give the token a name" in text(signed_in.get(response.headers["Location"]))


def test_check_reports_the_directory_and_base_entries(signed_in, base_dn):
    page = text(post(signed_in, "/admin/connector/check"))
    assert page.count("badge-ok\">pass") == 2
    assert f"ou=People,{base_dn}" in page


def test_check_reports_an_unreachable_directory(app, signed_in, monkeypatch):
    def unreachable() -> Any:
        raise DirectoryUnavailable("no directory server answered (LDAPSocketOpenError)")

    # the check opens a connection of its own; the page itself still has one
    monkeypatch.setattr(app.extensions["scim_bridge"].pool, "connection", unreachable)
    page = text(post(signed_in, "/admin/connector/check"))
    assert page.count("badge-bad\">fail") == 2
    assert "no directory server answered" in page


def test_each_tenant_has_its_own_tokens(app, signed_in, ldap, base_dn):
    with app.app_context():
        with app.extensions["scim_bridge"].pool.connection() as conn:
            app.extensions["scim_bridge"].authenticator.store(conn).create_tenant("dashco")
    try:
        page = text(signed_in.get("/admin/connector?tenant=dashco"))
        assert '<option value="dashco" selected>' in page  # the tenant picker
        created = post(signed_in, "/admin/connector/tokens?tenant=dashco",
                       "/admin/connector?tenant=dashco", name="dashco-entra", expires="")
        token = SHOWN_TOKEN.search(text(created))[1]
        assert "dashco-entra" in text(signed_in.get("/admin/connector?tenant=dashco"))
        assert "dashco-entra" not in text(signed_in.get("/admin/connector"))
        scim = Scim(app.test_client())
        scim.headers = {"Authorization": f"Bearer {token}"}
        made = scim.post("/Users", {"schemas": [CORE_USER], "userName": "tenant@dashco.example"})
        assert made.status_code == 201
        assert "tenant@dashco.example" in text(signed_in.get("/admin/users?tenant=dashco"))
        assert "tenant@dashco.example" not in text(signed_in.get("/admin/users"))
    finally:
        for dn in (f"uid=tenant@dashco.example,ou=People,o=dashco,{base_dn}",
                   f"ou=People,o=dashco,{base_dn}", f"ou=Groups,o=dashco,{base_dn}",
                   f"o=dashco,{base_dn}", f"cn=dashco,ou=Tenants,ou=Service,{base_dn}"):
            with suppress(LDAPException):
                ldap.delete(dn)


def test_unknown_tenant_is_404(signed_in):
    response = signed_in.get("/admin/connector?tenant=nope")
    assert response.status_code == 404 and "There is no tenant" in text(response)


# --- users and groups --------------------------------------------------------------------


@pytest.fixture
def directory(app: Flask) -> dict[str, Any]:
    """Users and groups provisioned through SCIM with the static token."""
    scim = Scim(app.test_client())
    ids: dict[str, Any] = {"users": {}}
    for i in range(30):
        body = {"schemas": [CORE_USER], "userName": f"member{i:02d}@example.org",
                "displayName": f"Member {i:02d}",
                "emails": [{"type": "work", "value": f"m{i:02d}@mail.example.org",
                            "primary": True}]}
        ids["users"][i] = scim.post("/Users", body).json["id"]
    ada = scim.post("/Users", {"schemas": [CORE_USER], "userName": "ada@example.org",
                               "name": {"givenName": "Ada", "familyName": "Lovelace"},
                               "emails": [{"type": "work", "value": "countess@engines.example"}],
                               "active": False}).json
    ids["ada"] = ada["id"]
    big = scim.post("/Groups", {"schemas": [CORE_GROUP], "displayName": "Everyone"}).json
    small = scim.post("/Groups", {"schemas": [CORE_GROUP], "displayName": "Analysts",
                                  "externalId": "ext-analysts"}).json
    ids["big"], ids["small"] = big["id"], small["id"]
    scim.patch(f"/Groups/{big['id']}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members",
                        "value": [{"value": v} for v in ids["users"].values()]}]})
    scim.patch(f"/Groups/{small['id']}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": ada["id"]}]}]})
    return ids


def _user_names(page: str) -> list[str]:
    return re.findall(r'/admin/users/[0-9a-f-]{36}\?tenant=default">([^<]+)</a>', page)


def test_users_page_searches_names_and_emails(signed_in, directory):
    page = text(signed_in.get("/admin/users"))
    assert "1–25 of 32 users" in page  # 30 members, Ada, and the person (admins are not users)
    by_name = text(signed_in.get("/admin/users?q=lovelace"))
    assert _user_names(by_name) == ["ada@example.org"]
    assert "disabled" in by_name and "Analysts" in by_name
    assert _user_names(text(signed_in.get("/admin/users?q=countess@engines"))) == \
        ["ada@example.org"]
    assert _user_names(text(signed_in.get("/admin/users?q=member07"))) == \
        ["member07@example.org"]
    assert _user_names(text(signed_in.get("/admin/users?status=disabled"))) == \
        ["ada@example.org"]
    assert "ada@example.org" not in _user_names(
        text(signed_in.get("/admin/users?q=example.org&status=active")))


@pytest.mark.parametrize("query", ['*', '")(uid=*', '\\', 'a" or userName pr or "', '(', 'ü'])
def test_search_text_is_data_never_filter_syntax(signed_in, directory, query):
    response = signed_in.get("/admin/users", query_string={"q": query})
    assert response.status_code == 200
    assert _user_names(text(response)) == []


def test_users_page_pages(signed_in, directory):
    second = text(signed_in.get("/admin/users?page=2"))
    assert "26–32 of 32 users" in second and len(_user_names(second)) == 7
    assert "Page 2 of 2" in second


def test_user_detail_shows_scim_attributes_and_the_dn(signed_in, directory, base_dn):
    page = text(signed_in.get(f"/admin/users/{directory['ada']}"))
    assert f"uid=ada@example.org,ou=People,{base_dn}" in page
    assert "name.givenName" in page and "Lovelace" in page
    assert "emails[work].value" in page and "countess@engines.example" in page
    assert "Analysts" in page and "disabled" in page
    missing = signed_in.get("/admin/users/2ceef03a-7f80-1041-899b-d98a394b6a36")
    assert missing.status_code == 404


def test_groups_page_counts_members_without_listing_them(signed_in, directory):
    page = text(signed_in.get("/admin/groups"))
    rows = re.findall(r'">([^<]+)</a></td>\s*<td class="mono small">[^<]*</td>\s*'
                      r'<td class="num">([\d,]+)</td>', page)
    assert dict(rows) == {"Analysts": "1", "Everyone": "30"}
    assert "ext-analysts" in page
    assert "Analysts" not in text(signed_in.get("/admin/groups?q=every"))


def test_groups_page_counts_users_not_nested_groups(app, signed_in, directory):
    scim = Scim(app.test_client())
    nest = scim.post("/Groups", {"schemas": [CORE_GROUP], "displayName": "Nest", "members": [
        {"value": directory["small"]}, {"value": directory["users"][0]}]})
    assert nest.status_code == 201
    page = text(signed_in.get("/admin/groups?q=nest"))
    rows = re.findall(r'">([^<]+)</a></td>\s*<td class="mono small">[^<]*</td>\s*'
                      r'<td class="num">([\d,]+)</td>', page)
    assert dict(rows) == {"Nest": "1"}


def test_group_members_are_paged(signed_in, directory, base_dn):
    first = text(signed_in.get(f"/admin/groups/{directory['big']}"))
    assert "1–25 of 30 members" in first and f"cn=Everyone,ou=Groups,{base_dn}" in first
    assert _user_names(first)[:2] == ["member00@example.org", "member01@example.org"]
    second = text(signed_in.get(f"/admin/groups/{directory['big']}?page=2"))
    assert _user_names(second) == [f"member{i}@example.org" for i in range(25, 30)]


def test_read_only_pages_never_write_to_the_directory(signed_in, directory, monkeypatch):
    writes: list[tuple[str, Any]] = []
    for name in ("add", "modify", "delete", "modify_dn"):
        original = getattr(ldap3.Connection, name)

        def record(self: Any, *args: Any, _name: str = name, _original: Any = original,
                   **kwargs: Any) -> Any:
            writes.append((_name, args[:1]))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(ldap3.Connection, name, record)
    pages = ["/admin/connector", "/admin/users", "/admin/users?q=ada&status=disabled",
             f"/admin/users/{directory['ada']}", "/admin/groups", "/admin/groups?q=a",
             f"/admin/groups/{directory['big']}", f"/admin/groups/{directory['big']}?page=2",
             "/admin/activity", "/admin/users?page=2"]
    for path in pages:
        assert signed_in.get(path).status_code == 200, path
    assert post(signed_in, "/admin/connector/check").status_code == 200
    assert writes == []


# --- activity ----------------------------------------------------------------------------


def test_activity_without_an_audit_file_says_so(signed_in):
    page = text(signed_in.get("/admin/activity"))  # AUDIT_LOG is empty: standard output
    assert 'id="no-audit"' in page and "AUDIT_LOG" in page


def test_scim_changes_and_token_buttons_reach_the_activity_page(slapd, admins, tmp_path):
    trail = tmp_path / "audit.jsonl"
    app = build(slapd, AUDIT_LOG=str(trail))
    try:
        client = app.test_client()
        assert sign_in(client).status_code == 302
        created = post(client, "/admin/connector/tokens", name="audited", expires="")
        secret = SHOWN_TOKEN.search(text(created))[1]
        key = secret.split("_")[1]
        scim = Scim(app.test_client())
        assert scim.post("/Users", {"schemas": [CORE_USER], "userName": "trail@example.org"}
                         ).status_code == 201
        assert scim.post("/Users", {"schemas": [CORE_USER], "userName": "trail@example.org"}
                         ).status_code == 409
        assert post(client, f"/admin/connector/tokens/{key}/revoke").status_code == 302
        records = [json.loads(line) for line in trail.read_text().splitlines()]
        tokens = [r for r in records if r["resource"] == "Token"]
        assert [(r["operation"], r["resource_id"], r["token"]) for r in tokens] == [
            ("create", key, f"admin:{ADMIN_LOGIN}"), ("revoke", key, f"admin:{ADMIN_LOGIN}")]
        assert secret.split("_", 2)[2] not in trail.read_text()
        page = text(client.get("/admin/activity"))
        assert page.count('<tr class="row-bad">') == 1  # the 409
        assert re.search(r'id="stat-total">4<', page)
        failures = text(client.get("/admin/activity?result=failure"))
        assert failures.count("<tr") == 2 and "409" in failures
    finally:
        app.extensions["scim_bridge"].pool.close()


def test_activity_lists_operations_filters_failures_and_charts_the_day(app, signed_in):
    now = datetime.now(UTC)

    def record(minutes_ago: int, status: int, op: str = "POST /Users") -> dict[str, Any]:
        return {"time": (now - timedelta(minutes=minutes_ago)).isoformat(), "token": "entra",
                "tenant": "default", "operation": op, "resource": "User",
                "resource_id": f"id-{minutes_ago}", "status": status,
                "duration_ms": 12.5 + minutes_ago}

    records = [record(1, 201), record(5, 409), record(70, 200, "GET /Users"),
               record(200, 500, "PATCH /Users"), record(60 * 30, 200)]
    calls: list[tuple[int, Any]] = []

    def reader(limit: int, result: str | None) -> list[dict[str, Any]]:
        calls.append((limit, result))
        failed = result == "failure"
        return [r for r in records if result is None or (r["status"] >= 400) == failed][:limit]

    app.extensions["scim_admin"].audit = reader
    page = text(signed_in.get("/admin/activity"))
    assert re.search(r'id="stat-total">4<', page) and re.search(r'id="stat-failures"[^>]*>2<',
                                                                 page)
    assert page.count("<tr class=\"row-bad\">") == 2 and "PATCH /Users" in page
    assert page.count("<rect") >= 24 + 2  # one slot per hour, and the bars
    assert "operations, 1 failed" in page
    failures = text(signed_in.get("/admin/activity?result=failure"))
    assert "id-5" in failures and "id-200" in failures and "id-1<" not in failures
    ordered = text(signed_in.get("/admin/activity?order=failures"))
    assert ordered.index("id-5") < ordered.index("id-1<") and \
        ordered.index("id-200") < ordered.index("id-70")
    assert calls and calls[0][0] >= 200
