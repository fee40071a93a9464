"""Managed tokens, tenants, OAuth client credentials and the CLI, on real slapd."""

from __future__ import annotations

import base64
import logging
import re
import time
from datetime import timedelta

import pytest

from config import load_settings
from directory.tokens import Store
from scim.factory import create_app
from tests import entra
from tests.conftest import Scim

SECRET = re.compile(r"Bearer token \(Secret Token\): (\S+)")
ABSENT_ID = "2ceef03a-7f80-1041-899b-d98a394b6a36"


@pytest.fixture
def app(slapd, ldap):
    """An app with no static token: only managed tokens work; a short cache TTL."""
    application = create_app(load_settings({**slapd.env, "SCIM_TOKEN_CACHE_SECONDS": "1",
                                            "SCIM_AUTH_FAILURES_PER_MINUTE": "5"}))
    yield application
    application.extensions["scim_bridge"].pool.close()


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def run(*args: str) -> str:
        result = runner.invoke(args=list(args))
        assert result.exit_code == 0, result.output
        return result.output

    return run


@pytest.fixture(autouse=True)
def wipe_service(ldap, base_dn):
    """Tokens, clients and tenants from earlier tests must not leak into this one."""
    from ldap3 import SUBTREE
    from ldap3.core.exceptions import LDAPNoSuchObjectResult

    bases = [f"ou={ou},ou=Service,{base_dn}" for ou in ("Tokens", "Clients", "Tenants")]
    for base in [*bases, f"o=acme,{base_dn}", f"o=globex,{base_dn}"]:
        try:
            ldap.search(base, "(objectClass=*)", SUBTREE, attributes=["1.1"])
        except LDAPNoSuchObjectResult:
            continue
        for dn in sorted((e["dn"] for e in ldap.response), key=lambda d: -d.count(",")):
            ldap.delete(dn)


def bearer(app, token: str) -> Scim:
    client = Scim(app.test_client())
    client.headers = {"Authorization": f"Bearer {token}"}
    return client


def new_token(cli, *args: str) -> str:
    out = cli("token", "create", *args)
    assert "SCIM endpoint (Tenant URL): http://127.0.0.1:8000/scim/v2" in out
    return SECRET.search(out)[1]


def test_token_lifecycle_through_the_cli(app, cli, ldap, base_dn):
    token = new_token(cli, "--name", "entra-prod")
    assert re.fullmatch(r"scim_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", token)
    scim = bearer(app, token)
    assert scim.get("/Users?filter=userName+eq+%22x%22").json["totalResults"] == 0
    listed = cli("token", "list")
    token_id = token.split("_")[1]
    assert token_id in listed and "entra-prod" in listed and token.split("_", 2)[2] not in listed
    ldap.search(f"cn={token_id},ou=Tokens,ou=Service,{base_dn}", "(objectClass=*)",
                attributes=["*"])
    stored = str(ldap.entries[0].entry_attributes_as_dict)
    assert token.split("_", 2)[2] not in stored and "scimSecretHash" in stored
    time.sleep(0.01)
    assert "revoked" in cli("token", "revoke", token_id)
    time.sleep(1.1)  # the cache TTL of this app
    assert scim.get("/Users").status_code == 401


@pytest.mark.parametrize("header", [None, "Bearer ", "Bearer nope", "Bearer scim_zz_x",
                                    "Bearer scim_0123456789abcdef_wrong", "Basic Zm9vOmJhcg=="])
def test_bad_credentials_are_401(app, header):
    client = app.test_client()
    headers = {"Authorization": header} if header else {}
    r = client.get("/scim/v2/Users", headers=headers)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json["status"] == "401"


def test_expired_token_is_refused(app, cli, ldap, base_dn):
    token = new_token(cli, "--name", "short", "--expires", "1m")
    assert bearer(app, token).get("/ServiceProviderConfig").status_code == 200
    token_id = token.split("_")[1]
    from ldap3 import MODIFY_REPLACE

    ldap.modify(f"cn={token_id},ou=Tokens,ou=Service,{base_dn}",
                {"scimExpires": [(MODIFY_REPLACE, ["20000101000000Z"])]})
    time.sleep(1.1)
    assert bearer(app, token).get("/ServiceProviderConfig").status_code == 401


def test_rotation_keeps_the_old_token_for_the_grace_period(app, cli):
    old = new_token(cli, "--name", "rotating")
    out = cli("token", "rotate", old.split("_")[1], "--grace", "1m")
    new = SECRET.search(out)[1]
    assert new != old
    assert bearer(app, new).get("/ServiceProviderConfig").status_code == 200
    assert bearer(app, old).get("/ServiceProviderConfig").status_code == 200
    with app.app_context():
        ext = app.extensions["scim_bridge"]
        with ext.pool.connection() as conn:
            store = Store(conn, ext.settings.LDAP_BASE_DN)
            store.rotate(old.split("_")[1], timedelta(seconds=-1))  # grace over
    time.sleep(1.1)
    assert bearer(app, old).get("/ServiceProviderConfig").status_code == 401
    assert bearer(app, new).get("/ServiceProviderConfig").status_code == 200


def test_tenants_are_isolated(app, cli, base_dn, ldap):
    assert "o=acme" in cli("tenant", "create", "acme")
    cli("tenant", "create", "globex")
    assert "acme" in cli("tenant", "list")
    a = bearer(app, new_token(cli, "--tenant", "acme", "--name", "a"))
    b = bearer(app, new_token(cli, "--tenant", "globex", "--name", "b"))
    alice = a.post("/Users", {**entra.minimal_user("alice"), "externalId": "A"}).json["id"]
    team = a.post("/Groups", entra.group("Team", [alice])).json["id"]
    bob = b.post("/Users", entra.minimal_user("bob")).json["id"]
    # the same userName and group name may exist in both tenants
    assert b.post("/Users", entra.minimal_user("alice")).status_code == 201
    assert b.post("/Groups", entra.group("Team")).status_code == 201
    ldap.search(f"ou=People,o=acme,{base_dn}", "(uid=alice)")
    assert len(ldap.entries) == 1
    # B cannot read, change or delete A's resources by id: same answer as an unknown id
    for path in (f"/Users/{alice}", f"/Groups/{team}"):
        got, unknown = b.get(path), b.get(path.rsplit("/", 1)[0] + "/" + ABSENT_ID)
        assert got.status_code == unknown.status_code == 404
        assert got.json["detail"].replace(path.rsplit("/", 1)[1], "X") == \
            unknown.json["detail"].replace(ABSENT_ID, "X")
    assert b.patch(f"/Users/{alice}", entra.patch(
        {"op": "replace", "path": "title", "value": "x"})).status_code == 404
    assert b.delete(f"/Users/{alice}").status_code == 404
    assert a.get(f"/Users/{alice}").status_code == 200
    # filters, counts and listing see only B's own entries
    assert b.get(f'/Users?filter=id+eq+%22{alice}%22').json["totalResults"] == 0
    assert b.get('/Users?filter=externalId+eq+%22A%22').json["totalResults"] == 0
    assert b.get("/Users").json["totalResults"] == 2
    assert b.get(f'/Groups?filter=members.value+eq+%22{alice}%22').json["totalResults"] == 0
    # A's ids cannot be used as members or managers in B
    b_team = b.get('/Groups?filter=displayName+eq+%22Team%22').json["Resources"][0]["id"]
    r = b.patch(f"/Groups/{b_team}", entra.patch(
        {"op": "Add", "path": "members", "value": [{"value": alice}]}))
    assert (r.status_code, r.json["scimType"]) == (400, "invalidValue")
    r = b.patch(f"/Users/{bob}", entra.patch({"op": "Add", "path": (
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"), "value": alice}))
    assert (r.status_code, r.json["scimType"]) == (400, "invalidValue")
    # and the default tenant does not see the others either
    default = bearer(app, new_token(cli, "--name", "d"))
    assert default.get("/Users").json["totalResults"] == 0


def test_oauth_client_credentials(app, cli):
    out = cli("client", "create", "--name", "entra-oauth")
    client_id = re.search(r"Client Identifier: (\S+)", out)[1]
    secret = re.search(r"Client Secret: (\S+)", out)[1]
    assert "Token Endpoint: http://127.0.0.1:8000/oauth/token" in out
    c = app.test_client()
    form = {"grant_type": "client_credentials"}
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    r = c.post("/oauth/token", data=form, headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 200, r.json
    assert r.json["token_type"] == "Bearer" and r.json["expires_in"] == 3600
    assert r.headers["Cache-Control"] == "no-store"
    assert bearer(app, r.json["access_token"]).get("/Users").status_code == 200
    r = c.post("/oauth/token", data={**form, "client_id": client_id, "client_secret": secret})
    assert r.status_code == 200
    r = c.post("/oauth/token", data={**form, "client_id": client_id, "client_secret": "no"})
    assert (r.status_code, r.json["error"]) == (401, "invalid_client")
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    r = c.post(f"/oauth/token?client_id={client_id}&client_secret={secret}", data=form)
    assert (r.status_code, r.json["error"]) == (400, "invalid_request")
    r = c.post("/oauth/token", data={"grant_type": "password"})
    assert (r.status_code, r.json["error"]) == (400, "unsupported_grant_type")
    assert client_id in cli("client", "list") and secret not in cli("client", "list")
    cli("client", "revoke", client_id)
    r = c.post("/oauth/token", data={**form, "client_id": client_id, "client_secret": secret})
    assert r.status_code == 401


def test_repeated_failures_are_slowed_per_address(app, cli):
    good = new_token(cli, "--name", "ok")
    attacker = app.test_client()
    for _ in range(5):
        r = attacker.get("/scim/v2/Users", headers={"Authorization": "Bearer guess"},
                         environ_base={"REMOTE_ADDR": "192.0.2.7"})
        assert r.status_code == 401
    r = attacker.get("/scim/v2/Users", headers={"Authorization": f"Bearer {good}"},
                     environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    other = app.test_client().get("/scim/v2/Users", headers={"Authorization": f"Bearer {good}"},
                                  environ_base={"REMOTE_ADDR": "192.0.2.8"})
    assert other.status_code == 200


def test_no_secret_ever_reaches_the_logs(app, cli, caplog):
    with caplog.at_level(logging.DEBUG):
        token = new_token(cli, "--name", "logged")
        out = cli("client", "create", "--name", "c")
        secret = re.search(r"Client Secret: (\S+)", out)[1]
        client_id = re.search(r"Client Identifier: (\S+)", out)[1]
        scim = bearer(app, token)
        scim.post("/Users", {**entra.minimal_user("pw"), "password": "Sup3r-Secret!"})
        bearer(app, token + "x").get("/Users")
        app.test_client().post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": client_id,
            "client_secret": secret + "x"})
    text = caplog.text
    assert "authentication failed from" in text
    for needle in (token.split("_", 2)[2], secret, "Sup3r-Secret!"):
        assert needle not in text
