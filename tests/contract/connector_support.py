"""Helpers of the connector tests (test_tokens.py, test_tenants.py, test_oauth.py).

Plain functions, not fixtures: each test module wraps the few it needs in its own
fixtures (tests/conftest.py stays untouched).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from ldap3 import SUBTREE, Connection
from ldap3.core.exceptions import LDAPNoSuchObjectResult

from config import load_settings
from directory.tokens import now
from scim.factory import create_app
from tests.conftest import TOKEN, Scim
from tests.slapd_instance import SlapdInstance

SECRET_LINE = re.compile(r"Bearer token \(Secret Token\): (\S+)")
ABSENT_ID = "2ceef03a-7f80-1041-899b-d98a394b6a36"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
#: What Entra's Test Connection asks (docs/entra-scim.md §4).
TEST_CONNECTION = "/Users?filter=userName+eq+%22b0f4c3e2-6a51-4b8e-9d62-2f0a8c1e7d33%22"


def build_app(slapd: SlapdInstance, static: bool = False, **env: str) -> Flask:
    """An app on the session slapd; only managed tokens unless ``static``."""
    values = {**slapd.env, "SCIM_TOKEN_CACHE_SECONDS": "1", **env}
    if static:
        values["SCIM_BEARER_TOKEN"] = TOKEN
    app = create_app(load_settings(values))
    app.config["TESTING"] = True
    return app


def wipe_registry(conn: Connection, base_dn: str) -> None:
    """Remove tokens, clients and tenants, and the subtrees of those tenants."""
    service = f"ou=Service,{base_dn}"
    bases: list[str] = []
    try:
        conn.search(f"ou=Tenants,{service}", "(objectClass=scimTenant)", SUBTREE,
                    attributes=["scimTenantBase"])
        bases = [str(e["attributes"]["scimTenantBase"]) for e in conn.response
                 if e.get("type") == "searchResEntry"]
    except LDAPNoSuchObjectResult:
        pass
    for top in [*bases, *(f"ou={ou},{service}" for ou in ("Tokens", "Clients", "Tenants"))]:
        try:
            conn.search(top, "(objectClass=*)", SUBTREE, attributes=["1.1"])
        except LDAPNoSuchObjectResult:
            continue
        dns = [e["dn"] for e in conn.response if e.get("type") == "searchResEntry"]
        for dn in sorted(dns, key=lambda d: -d.count(",")):
            conn.delete(dn)


class Cli:
    """``flask --app app …`` through Flask's test runner."""

    def __init__(self, app: Flask) -> None:
        self.runner = app.test_cli_runner()

    def __call__(self, *args: str) -> str:
        result = self.runner.invoke(args=list(args))
        assert result.exit_code == 0, result.output
        return result.output

    def fails(self, *args: str) -> str:
        result = self.runner.invoke(args=list(args))
        assert result.exit_code != 0, result.output
        return result.output

    def token(self, *args: str) -> str:
        """``token create``; returns the token it printed once."""
        out = self("token", "create", *args)
        assert "SCIM endpoint (Tenant URL): http://127.0.0.1:8000/scim/v2" in out
        return SECRET_LINE.search(out)[1]  # type: ignore[index]

    def client(self, *args: str) -> tuple[str, str]:
        """``client create``; returns (client id, client secret)."""
        out = self("client", "create", *args)
        client_id = re.search(r"Client Identifier: (\S+)", out)
        secret = re.search(r"Client Secret: (\S+)", out)
        assert client_id and secret, out
        return client_id[1], secret[1]


def bearer(app: Flask, token: str, **environ: Any) -> Scim:
    """A SCIM client that presents ``token`` (and ``environ``, e.g. REMOTE_ADDR)."""
    client = app.test_client()
    client.environ_base.update(environ)
    scim = Scim(client)
    scim.headers = {"Authorization": f"Bearer {token}"}
    return scim


def token_id(token: str) -> str:
    return token.split("_")[1]


def token_secret(token: str) -> str:
    return token.split("_", 2)[2]


class Clock:
    """A clock the test moves (the authenticator and the CLI read it).

    It stands still between moves, at a whole second: expiry times are stored to the
    second, so a clock that also followed real time would make "599 s later" land past
    the end whenever the test itself took a moment (it did on a loaded machine).
    """

    def __init__(self) -> None:
        self.start = now().replace(microsecond=0)
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return self.start + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


def use_clock(app: Flask) -> Clock:
    """Give the app a movable clock; verified tokens are forgotten so it takes effect."""
    clock = Clock()
    authenticator = app.extensions["scim_bridge"].authenticator
    authenticator.clock = clock
    authenticator.cache.clear()
    return clock


def forget(app: Flask) -> None:
    """Forget verified tokens, as a worker does after SCIM_TOKEN_CACHE_SECONDS."""
    app.extensions["scim_bridge"].authenticator.cache.clear()


def ldap_entry(conn: Connection, dn: str) -> dict[str, list[str]]:
    """All attributes of one entry, as text."""
    conn.search(dn, "(objectClass=*)", "BASE", attributes=["*", "+"])
    raw = conn.response[0]["raw_attributes"]
    return {k.lower(): [v.decode("utf-8", "replace") for v in vs] for k, vs in raw.items()}
