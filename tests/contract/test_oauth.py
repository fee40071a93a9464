"""OAuth 2.0 client credentials (RFC 6749 §4.4) at POST /oauth/token, on real slapd."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from ldap3 import Connection

from tests import entra
from tests.contract.connector_support import (
    Cli,
    bearer,
    build_app,
    forget,
    ldap_entry,
    token_id,
    use_clock,
    wipe_registry,
)
from tests.slapd_instance import SlapdInstance

GRANT = {"grant_type": "client_credentials"}


@pytest.fixture
def app(slapd: SlapdInstance, ldap: Connection, base_dn: str) -> Iterator[Flask]:
    wipe_registry(ldap, base_dn)
    application = build_app(slapd, SCIM_OAUTH_TOKEN_SECONDS="600",
                            SCIM_AUTH_FAILURES_PER_MINUTE="20")
    yield application
    application.extensions["scim_bridge"].pool.close()
    wipe_registry(ldap, base_dn)


@pytest.fixture
def cli(app: Flask) -> Cli:
    return Cli(app)


@pytest.fixture
def client(cli: Cli) -> tuple[str, str]:
    return cli.client("--name", "entra-oauth")


def basic(client_id: str, secret: str) -> dict[str, str]:
    pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def post(app: Flask, data: Any = None, **kw: Any) -> Any:
    return app.test_client().post("/oauth/token", data=data, **kw)


def assert_error(r: Any, status: int, error: str) -> None:
    assert (r.status_code, r.json["error"]) == (status, error), r.json
    assert r.json["error_description"]
    assert r.headers["Cache-Control"] == "no-store"


def test_client_create_prints_what_entra_asks_for(cli, ldap, base_dn):
    out = cli("client", "create", "--name", "entra")
    assert "Tenant URL: http://127.0.0.1:8000/scim/v2" in out
    assert "Token Endpoint: http://127.0.0.1:8000/oauth/token" in out
    client_id = out.split("Client Identifier: ")[1].split()[0]
    secret = out.split("Client Secret: ")[1].split()[0]
    assert len(secret) >= 43 and out.count(secret) == 1
    stored = ldap_entry(ldap, f"cn={client_id},ou=Clients,ou=Service,{base_dn}")
    assert "scimOAuthClient" in stored["objectclass"] and secret not in str(stored)
    listed = cli("client", "list")
    assert client_id in listed and "entra" in listed and secret not in listed


@pytest.mark.parametrize("how", ["basic", "form"])
def test_client_credentials_give_a_bearer_token(app, client, how, ldap, base_dn):
    client_id, secret = client
    if how == "basic":
        r = post(app, GRANT, headers=basic(client_id, secret))
    else:
        r = post(app, {**GRANT, "client_id": client_id, "client_secret": secret})
    assert r.status_code == 200, r.json
    assert r.mimetype == "application/json"
    assert set(r.json) == {"access_token", "token_type", "expires_in"}
    assert r.json["token_type"] == "Bearer" and r.json["expires_in"] == 600
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Pragma"] == "no-cache"
    access = r.json["access_token"]
    scim = bearer(app, access)
    assert scim.get("/Users?filter=userName+eq+%22nobody%22").json["totalResults"] == 0
    stored = ldap_entry(ldap, f"cn={token_id(access)},ou=Tokens,ou=Service,{base_dn}")
    assert stored["scimclientid"] == [client_id] and stored["scimexpires"]
    assert ldap_entry(ldap, f"cn={client_id},ou=Clients,ou=Service,{base_dn}")["scimlastused"]


def test_access_tokens_act_on_the_clients_tenant(app, cli):
    cli("tenant", "create", "acme")
    client_id, secret = cli.client("--tenant", "acme", "--name", "acme-entra")
    access = post(app, GRANT, headers=basic(client_id, secret)).json["access_token"]
    managed = bearer(app, cli.token("--tenant", "acme", "--name", "m"))
    created = bearer(app, access).post("/Users", entra.minimal_user("via.oauth"))
    assert created.status_code == 201
    assert managed.get(f"/Users/{created.json['id']}").status_code == 200
    default = bearer(app, cli.token("--name", "d"))
    assert default.get(f"/Users/{created.json['id']}").status_code == 404


def test_access_tokens_expire(app, client):
    clock = use_clock(app)
    access = post(app, GRANT, headers=basic(*client)).json["access_token"]
    assert bearer(app, access).get("/Users").status_code == 200
    clock.advance(seconds=599)
    forget(app)
    assert bearer(app, access).get("/Users").status_code == 200
    clock.advance(seconds=2)
    forget(app)
    assert bearer(app, access).get("/Users").status_code == 401


def test_expired_access_tokens_are_purged(app, cli, client, ldap, base_dn):
    clock = use_clock(app)
    old = post(app, GRANT, headers=basic(*client)).json["access_token"]
    assert token_id(old) in cli("token", "list", "--oauth")
    assert token_id(old) not in cli("token", "list")  # managed tokens only by default
    clock.advance(minutes=16)  # 10 min lifetime + 5 min kept for the listing
    post(app, GRANT, headers=basic(*client))
    ldap.search(f"ou=Tokens,ou=Service,{base_dn}", f"(cn={token_id(old)})", attributes=["1.1"])
    assert ldap.entries == []


def test_revoking_a_client_revokes_its_access_tokens(app, cli, client, ldap, base_dn):
    access = post(app, GRANT, headers=basic(*client)).json["access_token"]
    unrelated = cli.token("--name", "keep")
    assert bearer(app, access).get("/Users").status_code == 200
    out = cli("client", "revoke", client[0])
    assert "1 access token" in out
    forget(app)
    assert bearer(app, access).get("/Users").status_code == 401
    assert bearer(app, unrelated).get("/Users").status_code == 200
    assert_error(post(app, GRANT, headers=basic(*client)), 401, "invalid_client")
    assert "no client" in cli.fails("client", "revoke", client[0])


def test_credentials_in_the_query_string_are_refused(app, client):
    client_id, secret = client
    r = post(app, GRANT, query_string={"client_id": client_id, "client_secret": secret})
    assert_error(r, 400, "invalid_request")
    r = post(app, {"client_id": client_id, "client_secret": secret},
             query_string={"grant_type": "client_credentials"})
    assert_error(r, 400, "invalid_request")


@pytest.mark.parametrize(("data", "headers", "status", "error"), [
    ({"client_id": "{id}", "client_secret": "{secret}"}, {}, 400, "invalid_request"),
    ({**GRANT, "grant_type": "password", "client_id": "{id}", "client_secret": "{secret}"},
     {}, 400, "unsupported_grant_type"),
    ({**GRANT, "grant_type": "authorization_code"}, "basic", 400, "unsupported_grant_type"),
    ({**GRANT, "client_id": "{id}", "client_secret": "wrong"}, {}, 401, "invalid_client"),
    ({**GRANT, "client_id": "0123456789abcdef", "client_secret": "{secret}"}, {}, 401,
     "invalid_client"),
    ({**GRANT, "client_id": "{id}"}, {}, 401, "invalid_client"),
    (GRANT, {}, 401, "invalid_client"),
    (GRANT, {"Authorization": "Basic !!!"}, 401, "invalid_client"),
    (GRANT, {"Authorization": "Bearer x"}, 401, "invalid_client"),
    ({**GRANT, "client_id": "{id}", "client_secret": "{secret}"}, "basic", 400,
     "invalid_request"),
])
def test_rfc6749_errors(app, client, data, headers, status, error):
    client_id, secret = client
    form = {k: v.format(id=client_id, secret=secret) for k, v in data.items()}
    if headers == "basic":
        headers = basic(client_id, secret)
    r = post(app, form, headers=headers)
    assert_error(r, status, error)
    if error == "invalid_client":
        assert r.headers["WWW-Authenticate"].startswith("Basic")


def test_only_a_form_post_is_accepted(app, client):
    client_id, secret = client
    r = app.test_client().post("/oauth/token", json={**GRANT, "client_id": client_id,
                                                     "client_secret": secret})
    assert_error(r, 400, "invalid_request")
    r = app.test_client().post(
        "/oauth/token", data=f"grant_type=client_credentials&grant_type=client_credentials"
        f"&client_id={client_id}&client_secret={secret}",
        content_type="application/x-www-form-urlencoded")
    assert_error(r, 400, "invalid_request")
    assert app.test_client().get("/oauth/token").status_code == 405


def test_failed_client_authentications_are_limited_per_address(slapd, ldap, base_dn):
    wipe_registry(ldap, base_dn)
    app = build_app(slapd, SCIM_AUTH_FAILURES_PER_MINUTE="3")
    try:
        client_id, secret = Cli(app).client("--name", "c")
        wrong = {**GRANT, "client_id": client_id, "client_secret": "guess"}
        for _ in range(3):
            r = post(app, wrong, environ_base={"REMOTE_ADDR": "192.0.2.9"})
            assert r.status_code == 401
        right = {**GRANT, "client_id": client_id, "client_secret": secret}
        r = post(app, right, environ_base={"REMOTE_ADDR": "192.0.2.9"})
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert post(app, right, environ_base={"REMOTE_ADDR": "192.0.2.10"}).status_code == 200
    finally:
        app.extensions["scim_bridge"].pool.close()
        wipe_registry(ldap, base_dn)
