"""Trust boundaries through gunicorn (2 workers) on real slapd, tried as an attacker would:
a SCIM token must never reach the dashboard, no tenant can lock the admin out, and a
session ends on sign-out and on ``admin remove`` whatever copy of its cookie survives.

The escalation of issue 16 was: find the admin group over SCIM, create a user with a
password, add it to the group, sign in. Each step is refused here on its own.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import entra
from tests.reliability.support import Gunicorn, call, scim_path
from tests.reliability.trust_support import Browser, flask_cli, printed
from tests.slapd_instance import SlapdInstance

ADMIN = "ops-admin"


@pytest.fixture(scope="module")
def stack(own_slapd: SlapdInstance, tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[dict[str, Any]]:
    """gunicorn with a static token (default tenant), a second tenant with its own token,
    and the admin ops-admin made with the CLI."""
    env = {**own_slapd.env, "ADMIN_SECRET_KEY": secrets.token_hex(32),
           "ADMIN_COOKIE_SECURE": "false", "SCIM_AUTH_FAILURES_PER_MINUTE": "1000"}
    base = own_slapd.env["LDAP_BASE_DN"]
    made = flask_cli(env, "tenant", "create", "rival", check=False)
    assert made.returncode == 0 or "already exists" in made.stderr, made.stderr
    rival = printed(flask_cli(env, "token", "create", "--tenant", "rival", "--name", "x").stdout,
                    "Bearer token (Secret Token)")
    flask_cli(env, "admin", "remove", ADMIN, check=False)
    password = printed(flask_cli(env, "admin", "create", ADMIN).stdout, "password")
    server = Gunicorn(env, tmp_path_factory.mktemp("trust") / "gunicorn.log", workers=2)
    yield {"server": server, "env": env, "password": password, "rival": rival, "base": base}
    server.stop()


def _scim(stack: dict[str, Any], method: str, path: str, body: Any = None,
          token: str | None = None) -> Any:
    kwargs = {} if token is None else {"token": token}
    return call(stack["server"], method, scim_path(path), body, **kwargs)


def test_the_admins_are_out_of_scim_reach(stack, own_ldap):
    """Step 1 of the escalation: nothing of the dashboard is visible or reachable over
    SCIM, from either tenant."""
    for token in (None, stack["rival"]):
        for path in ('/Groups?filter=displayName%20eq%20%22scim-admins%22',
                     f'/Users?filter=userName%20eq%20%22{ADMIN}%22'):
            found = _scim(stack, "GET", path, token=token)
            assert found.status == 200 and found.body["totalResults"] == 0, found.body
        listed = _scim(stack, "GET", "/Users?count=1000", token=token)
        assert "ou=Admins" not in listed.raw.decode() and ADMIN not in listed.raw.decode()
    own_ldap.search(f"ou=Admins,ou=Service,{stack['base']}", f"(uid={ADMIN})",
                    attributes=["1.1"])
    assert len(own_ldap.response) == 1  # the admin is there, just not for SCIM


def test_a_scim_made_user_cannot_sign_in(stack, own_ldap):
    """Steps 2–4: a user made over SCIM with a password, even in a group called
    scim-admins, does not open the dashboard."""
    password = f"Pw-{secrets.token_urlsafe(12)}"
    made = _scim(stack, "POST", "/Users", {**entra.minimal_user("mallory"),
                                           "password": password})
    assert made.status == 201, made.body
    group = _scim(stack, "POST", "/Groups", {**entra.group("scim-admins"),
                                             "members": [{"value": made.body["id"]}]})
    assert group.status == 201, group.body
    browser = Browser(stack["server"])
    refused = browser.sign_in("mallory", password)
    assert refused.status == 401
    assert browser.request("GET", "/admin/connector").status == 302
    own_ldap.search(f"uid=mallory,ou=People,{stack['base']}", "(objectClass=*)",
                    attributes=["uid"])
    assert own_ldap.response  # the user exists and has the password; it is just no admin


def test_no_tenant_can_lock_the_admin_out(stack):
    """POST /Users {"userName": "ops-admin"} from either tenant leaves the real admin's
    sign-in alone, and the SCIM-set password opens nothing."""
    bogus = f"Pw-{secrets.token_urlsafe(12)}"
    for token in (stack["rival"], None):
        made = _scim(stack, "POST", "/Users", {**entra.minimal_user(ADMIN), "password": bogus},
                     token=token)
        assert made.status == 201, made.body
    assert Browser(stack["server"]).sign_in(ADMIN, bogus).status == 401
    browser = Browser(stack["server"])
    signed_in = browser.sign_in(ADMIN, stack["password"])
    assert signed_in.status == 302 and signed_in.headers["location"].endswith("/admin/connector")
    page = browser.request("GET", "/admin/connector")
    assert page.status == 200 and ADMIN in page.raw.decode()


def _opens(stack: dict[str, Any], cookie: str, times: int = 6) -> set[int]:
    """Statuses of /admin/connector for a replayed cookie, asked on fresh connections (so
    both workers answer)."""
    thief = Browser(stack["server"])
    return {thief.request("GET", "/admin/connector", cookie=cookie).status
            for _ in range(times)}


def test_a_cookie_saved_before_sign_out_opens_nothing_after(stack):
    browser = Browser(stack["server"])
    assert browser.sign_in(ADMIN, stack["password"]).status == 302
    saved = browser.cookie
    assert _opens(stack, saved) == {200}
    assert browser.sign_out().status == 302
    assert _opens(stack, saved) == {302}


def test_admin_remove_ends_the_sessions_at_once(stack):
    password = printed(flask_cli(stack["env"], "admin", "create", "leaver").stdout, "password")
    browser = Browser(stack["server"])
    assert browser.sign_in("leaver", password).status == 302
    saved = browser.cookie
    assert _opens(stack, saved) == {200}
    removed = flask_cli(stack["env"], "admin", "remove", "leaver").stdout
    assert "1 session(s) ended" in removed
    assert _opens(stack, saved) == {302}
    assert browser.sign_in("leaver", password).status == 401  # its login page is offered


def test_sign_in_and_session_secrets_stay_out_of_the_logs(stack):
    browser = Browser(stack["server"])
    assert browser.sign_in(ADMIN, stack["password"]).status == 302
    cookie = browser.cookie
    assert browser.sign_out().status == 302
    log = Path(stack["server"].log).read_text(errors="replace")
    assert "/admin/login" in log
    assert stack["password"] not in log and cookie not in log
