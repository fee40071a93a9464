"""Managed bearer tokens on real slapd: the CLI lifecycle, 401s, expiry, rotation,
revocation delay, last-used, the failure limiter, and no secret in any log."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from ldap3 import Connection

from tests import entra
from tests.conftest import TOKEN, Scim
from tests.contract.connector_support import (
    ERROR,
    TEST_CONNECTION,
    Cli,
    bearer,
    build_app,
    forget,
    ldap_entry,
    token_id,
    token_secret,
    use_clock,
    wipe_registry,
)
from tests.slapd_instance import SlapdInstance

SCIM_JSON = "application/scim+json"


@pytest.fixture
def app(slapd: SlapdInstance, ldap: Connection, base_dn: str) -> Iterator[Flask]:
    """Managed tokens and the static token; verified tokens are cached for 1 s."""
    wipe_registry(ldap, base_dn)
    application = build_app(slapd, static=True, SCIM_AUTH_FAILURES_PER_MINUTE="5")
    yield application
    application.extensions["scim_bridge"].pool.close()
    wipe_registry(ldap, base_dn)


@pytest.fixture
def cli(app: Flask) -> Cli:
    return Cli(app)


def token_dn(base_dn: str, token: str) -> str:
    return f"cn={token_id(token)},ou=Tokens,ou=Service,{base_dn}"


def test_token_lifecycle_through_the_cli(app, cli, ldap, base_dn):
    out = cli("token", "create", "--name", "entra-prod")
    token = re.search(r"Bearer token \(Secret Token\): (\S+)", out)[1]
    assert "SCIM endpoint (Tenant URL): http://127.0.0.1:8000/scim/v2" in out
    assert out.count(token) == 1 and "not shown again" in out
    # scim_<64-bit id in hex>_<256-bit secret, base64url>
    assert re.fullmatch(r"scim_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", token)
    scim = bearer(app, token)
    r = scim.get(TEST_CONNECTION)
    assert r.status_code == 200 and r.json["totalResults"] == 0 and r.json["Resources"] == []
    assert scim.get("/Groups").status_code == 200
    # only the digest is stored, under ou=Tokens,ou=Service
    stored = ldap_entry(ldap, token_dn(base_dn, token))
    expected = hashlib.sha256(f"{token_id(token)}:{token_secret(token)}".encode()).hexdigest()
    assert stored["scimsecrethash"] == [expected]
    assert stored["scimname"] == ["entra-prod"] and stored["scimtenantname"] == ["default"]
    assert stored["scimtenantbase"][0].lower() == base_dn.lower()
    assert token_secret(token) not in str(stored)
    assert stored["scimlastused"]  # the first use is recorded
    listed = cli("token", "list")
    assert token_id(token) in listed and "entra-prod" in listed and "active" in listed
    assert token_secret(token) not in listed
    # revoked: refused once this worker's cache entry (1 s here) has lapsed
    assert f"revoked {token_id(token)}" in cli("token", "revoke", token_id(token))
    assert token_id(token) not in cli("token", "list")
    assert scim.get("/Users").status_code == 200  # still cached: the documented delay
    time.sleep(1.1)
    assert scim.get("/Users").status_code == 401
    assert "no token" in cli.fails("token", "revoke", token_id(token))


def test_the_static_token_acts_on_the_default_tenant(app, cli, ldap, base_dn):
    static = Scim(app.test_client())
    created = static.post("/Users", entra.minimal_user("static.user"))
    assert created.status_code == 201
    managed = bearer(app, cli.token("--name", "d"))
    assert managed.get(f"/Users/{created.json['id']}").status_code == 200
    ldap.search(f"ou=People,{base_dn}", "(uid=static.user)", attributes=["uid"])
    assert len(ldap.entries) == 1


@pytest.mark.parametrize("header", [
    None, "Bearer", "Bearer ", "Bearer nope", "Bearer scim_zz_x", "Bearer scim_0123_x",
    "Bearer scim_0123456789abcdef_wrong", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}",
    "Basic Zm9vOmJhcg==", f"Token {TOKEN}",
])
@pytest.mark.parametrize("path", ["/scim/v2/Users", "/scim/v2/ServiceProviderConfig",
                                  "/scim/v2/Groups/" + "0" * 36])
def test_missing_or_bad_credentials_are_401(app, header, path):
    headers = {"Authorization": header} if header is not None else {}
    r = app.test_client().get(path, headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.mimetype == SCIM_JSON
    assert r.json["schemas"] == [ERROR] and r.json["status"] == "401"


def test_a_token_in_the_query_string_is_not_accepted(app, cli):
    token = cli.token("--name", "q")
    client = app.test_client()
    for name in ("access_token", "token", "bearer"):
        assert client.get(f"/scim/v2/Users?{name}={token}").status_code == 401


def test_a_wrong_secret_for_a_real_id_is_refused(app, cli):
    token = cli.token("--name", "real")
    forged = f"scim_{token_id(token)}_{'A' * 43}"
    assert bearer(app, forged).get("/Users").status_code == 401
    assert bearer(app, token).get("/Users").status_code == 200


def test_expired_tokens_are_refused(app, cli, ldap, base_dn):
    clock = use_clock(app)
    token = cli.token("--name", "short", "--expires", "1h")
    stored = ldap_entry(ldap, token_dn(base_dn, token))
    assert stored["scimexpires"]
    scim = bearer(app, token)
    assert scim.get("/Users").status_code == 200
    clock.advance(minutes=61)
    forget(app)
    assert scim.get("/Users").status_code == 401
    listed = cli("token", "list")
    assert token_id(token) in listed and "expired" in listed


def test_an_expiring_token_is_not_cached_past_its_expiry(slapd, ldap, base_dn):
    """The cache TTL is 30 s here, the token lives 2 s: expiry wins."""
    wipe_registry(ldap, base_dn)
    app = build_app(slapd, SCIM_TOKEN_CACHE_SECONDS="30")
    try:
        token = Cli(app).token("--name", "brief", "--expires", "2s")
        scim = bearer(app, token)
        assert scim.get("/Users").status_code == 200
        time.sleep(2.5)
        assert scim.get("/Users").status_code == 401
    finally:
        app.extensions["scim_bridge"].pool.close()
        wipe_registry(ldap, base_dn)


def test_expiry_dates_and_bad_options(app, cli, ldap, base_dn):
    token = cli.token("--name", "dated", "--expires", "2099-01-01")
    assert ldap_entry(ldap, token_dn(base_dn, token))["scimexpires"] == ["20990101000000Z"]
    assert "in the past" in cli.fails("token", "create", "--name", "x", "--expires", "2001-01-01")
    assert "duration" in cli.fails("token", "create", "--name", "x", "--expires", "soon")
    assert "no tenant" in cli.fails("token", "create", "--name", "x", "--tenant", "nowhere")
    assert "no token" in cli.fails("token", "rotate", "0123456789abcdef")
    assert "no token" in cli.fails("token", "revoke", "not-an-id")


def test_rotation_keeps_the_old_token_for_the_grace_period(app, cli, ldap, base_dn):
    clock = use_clock(app)
    old = cli.token("--name", "rotating", "--expires", "90d")
    out = cli("token", "rotate", token_id(old), "--grace", "24h")
    new = re.search(r"Bearer token \(Secret Token\): (\S+)", out)[1]
    assert new != old and "keeps working until" in out
    old_entry = ldap_entry(ldap, token_dn(base_dn, old))
    new_entry = ldap_entry(ldap, token_dn(base_dn, new))
    assert old_entry["scimnotafter"] and old_entry["scimexpires"] == new_entry["scimexpires"]
    assert new_entry["scimname"] == ["rotating"]
    assert "rotated" in cli("token", "list")
    for token in (old, new):
        assert bearer(app, token).get("/Users").status_code == 200
    clock.advance(hours=23)
    forget(app)
    assert bearer(app, old).get("/Users").status_code == 200
    clock.advance(hours=2)
    forget(app)
    assert bearer(app, old).get("/Users").status_code == 401
    assert bearer(app, new).get("/Users").status_code == 200
    assert "has expired" in cli.fails("token", "rotate", token_id(old))


def test_last_used_is_written_at_most_once_a_minute(app, cli, ldap, base_dn):
    clock = use_clock(app)
    authenticator = app.extensions["scim_bridge"].authenticator
    token = cli.token("--name", "busy")
    scim = bearer(app, token)

    def last_used() -> str:
        return ldap_entry(ldap, token_dn(base_dn, token)).get("scimlastused", ["-"])[0]

    assert last_used() == "-"
    assert scim.get("/Users").status_code == 200
    first = last_used()
    assert first != "-"
    for _ in range(5):  # cached or not, no further write within the minute
        forget(app)
        assert scim.get("/Users").status_code == 200
    assert last_used() == first
    authenticator._touched.clear()  # as if another worker verified it
    clock.advance(seconds=30)
    forget(app)
    scim.get("/Users")
    assert last_used() == first  # the stored value is recent: still no write
    authenticator._touched.clear()
    clock.advance(seconds=31)
    forget(app)
    scim.get("/Users")
    assert last_used() > first


def test_repeated_failures_are_slowed_per_address(app, cli):
    good = cli.token("--name", "ok")
    attacker = bearer(app, "guess", REMOTE_ADDR="192.0.2.7")
    for _ in range(5):
        assert attacker.get("/Users").status_code == 401
    victim_on_same_address = bearer(app, good, REMOTE_ADDR="192.0.2.7")
    r = victim_on_same_address.get("/Users")
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    assert r.json["status"] == "429"
    assert bearer(app, good, REMOTE_ADDR="192.0.2.8").get("/Users").status_code == 200
    assert Scim(app.test_client()).get("/Users").status_code == 200  # static, 127.0.0.1


def test_behind_a_trusted_proxy_the_limiter_sees_the_client(slapd, ldap, base_dn):
    app = build_app(slapd, static=True, SCIM_AUTH_FAILURES_PER_MINUTE="3",
                    SCIM_TRUSTED_PROXIES="1")
    try:
        proxy = {"REMOTE_ADDR": "10.0.0.1"}
        for _ in range(3):
            r = app.test_client().get("/scim/v2/Users", environ_base=proxy, headers={
                "Authorization": "Bearer guess", "X-Forwarded-For": "198.51.100.1"})
            assert r.status_code == 401
        ok = {"Authorization": f"Bearer {TOKEN}"}
        r = app.test_client().get("/scim/v2/Users", environ_base=proxy,
                                  headers={**ok, "X-Forwarded-For": "198.51.100.1"})
        assert r.status_code == 429
        r = app.test_client().get("/scim/v2/Users", environ_base=proxy,
                                  headers={**ok, "X-Forwarded-For": "198.51.100.2"})
        assert r.status_code == 200
    finally:
        app.extensions["scim_bridge"].pool.close()


def test_no_secret_ever_reaches_the_logs(app, cli, caplog, slapd):
    with caplog.at_level(logging.DEBUG):
        cli("tenant", "create", "logged")
        token = cli.token("--tenant", "logged", "--name", "logged")
        client_id, secret = cli.client("--tenant", "logged", "--name", "c")
        form = {"grant_type": "client_credentials", "client_id": client_id}
        c = app.test_client()
        access = c.post("/oauth/token", data={**form, "client_secret": secret}).json[
            "access_token"]
        c.post("/oauth/token", data={**form, "client_secret": secret + "x"})
        scim = bearer(app, token)
        user = scim.post("/Users", {**entra.minimal_user("pw"), "password": "Sup3r-Secret!"})
        scim.patch(f"/Users/{user.json['id']}", entra.patch(
            {"op": "replace", "path": "password", "value": "An0ther-Secret!"}))
        bearer(app, access).get("/Users")
        bearer(app, token + "x").get("/Users")
        bearer(app, f"scim_{token_id(token)}_{secret}").get("/Users")
        app.test_client().get("/scim/v2/Users", query_string={"access_token": token})
        rotated = re.search(r"Secret Token\): (\S+)", cli("token", "rotate", token_id(token)))[1]
        cli("token", "list", "--oauth")
        cli("client", "list")
        cli("token", "revoke", token_id(token))
        cli("client", "revoke", client_id)
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "authentication failed from 127.0.0.1" in text
    needles = [token, token_secret(token), secret, access, token_secret(access), rotated,
               "Sup3r-Secret!", "An0ther-Secret!", slapd.env["LDAP_BIND_PASSWORD"]]
    for needle in needles:
        assert needle not in text


def test_cli_changes_are_audited_and_a_rotated_token_is_not_rotated_again(
        slapd, ldap, base_dn, tmp_path):
    import getpass
    import json

    trail = tmp_path / "audit.jsonl"
    wipe_registry(ldap, base_dn)
    app = build_app(slapd, static=True, AUDIT_LOG=str(trail))
    try:
        cli = Cli(app)
        cli("tenant", "create", "auditco")
        old = cli.token("--name", "audited", "--tenant", "auditco")
        out = cli("token", "rotate", token_id(old))
        new = re.search(r"Bearer token \(Secret Token\): (\S+)", out)[1]
        refused = cli.fails("token", "rotate", token_id(old))
        assert f"token {token_id(old)} was already rotated" in refused
        assert "rotate its replacement" in refused
        assert len([line for line in cli("token", "list").splitlines()
                    if "audited" in line]) == 2  # no third token was made
        client_id, secret = cli.client("--name", "audited-client")
        cli("client", "revoke", client_id)
        cli("token", "revoke", token_id(new))
        records = [json.loads(line) for line in trail.read_text().splitlines()]
        assert [(r["operation"], r["resource"], r["resource_id"], r["tenant"], r["status"])
                for r in records] == [
            ("create", "Tenant", "auditco", "auditco", 201),
            ("create", "Token", token_id(old), "auditco", 201),
            ("rotate", "Token", token_id(old), "auditco", 201),
            ("rotate", "Token", token_id(old), "auditco", 409),
            ("create", "Client", client_id, "default", 201),
            ("revoke", "Client", client_id, "default", 204),
            ("revoke", "Token", token_id(new), "auditco", 204)]
        assert {r["token"] for r in records} == {f"cli:{getpass.getuser()}"}
        text = trail.read_text()
        assert all(token_secret(t) not in text for t in (old, new)) and secret not in text
    finally:
        app.extensions["scim_bridge"].pool.close()
        wipe_registry(ldap, base_dn)
