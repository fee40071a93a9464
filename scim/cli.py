"""Connector management through Flask's CLI: ``flask --app app tenant|token|client …``.

Secrets are printed once, at creation, and never again (``list`` shows no secret).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import click
from flask import current_app
from flask.cli import AppGroup

from directory.tokens import Store, TokenInfo, now

_DURATION = re.compile(r"^(\d+)([mhd])$")


def parse_duration(text: str) -> timedelta:
    m = _DURATION.match(text.strip())
    if not m:
        raise click.BadParameter(f"{text!r}: use a number with m, h or d (e.g. 24h, 90d)")
    amount, unit = int(m[1]), m[2]
    return {"m": timedelta(minutes=amount), "h": timedelta(hours=amount),
            "d": timedelta(days=amount)}[unit]


def parse_expiry(text: str | None) -> datetime | None:
    if not text:
        return None
    if _DURATION.match(text.strip()):
        return now() + parse_duration(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: a date (2027-01-01) or a duration (90d)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@contextmanager
def store() -> Iterator[Store]:
    ext = current_app.extensions["scim_bridge"]
    with ext.pool.connection() as conn:
        yield Store(conn, ext.settings.LDAP_BASE_DN)


def endpoint() -> str:
    return current_app.extensions["scim_bridge"].settings.SCIM_PUBLIC_URL.rstrip("/") + \
        "/scim/v2"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def _table(rows: list[TokenInfo]) -> None:
    click.echo(f"{'ID':<18}{'TENANT':<14}{'NAME':<24}{'CREATED':<22}{'EXPIRES':<22}LAST USED")
    for t in rows:
        click.echo(f"{t.id:<18}{t.tenant:<14}{t.name[:23]:<24}{_when(t.created):<22}"
                   f"{_when(t.expires):<22}{_when(t.last_used)}")


tenant_cli = AppGroup("tenant", help="Directory tenants (each has its own People and Groups).")
token_cli = AppGroup("token", help="SCIM bearer tokens (paste one into Entra).")
client_cli = AppGroup("client", help="OAuth 2.0 clients (client credentials grant).")


@tenant_cli.command("create")
@click.argument("name")
@click.option("--base-dn", help="Where its subtree goes (default: o=NAME,<LDAP_BASE_DN>).")
def tenant_create(name: str, base_dn: str | None) -> None:
    """Register a tenant and create its ou=People and ou=Groups."""
    with store() as s:
        try:
            tenant = s.create_tenant(name, base_dn)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"tenant {tenant.name}: {tenant.base_dn}")


@tenant_cli.command("list")
def tenant_list() -> None:
    with store() as s:
        for tenant in s.tenants():
            click.echo(f"{tenant.name:<20}{tenant.base_dn}")


@token_cli.command("create")
@click.option("--tenant", "tenant_name", default="default", show_default=True)
@click.option("--name", required=True, help="What the token is for, e.g. 'entra-prod'.")
@click.option("--expires", help="A date (2027-01-01) or a duration (90d); default never.")
def token_create(tenant_name: str, name: str, expires: str | None) -> None:
    """Create a token and print it ONCE, with the endpoint to paste into Entra."""
    with store() as s:
        try:
            tenant = s.tenant(tenant_name)
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from None
        key, secret = s.create_token(tenant, name, parse_expiry(expires))
    click.echo(f"SCIM endpoint (Tenant URL): {endpoint()}")
    click.echo(f"Bearer token (Secret Token): {secret}")
    click.echo(f"token id {key} (tenant {tenant.name}); the token is not shown again.")


@token_cli.command("list")
@click.option("--tenant", "tenant_name")
def token_list(tenant_name: str | None) -> None:
    with store() as s:
        _table(s.tokens(tenant=tenant_name))


@token_cli.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Stop accepting a token (within SCIM_TOKEN_CACHE_SECONDS on running workers)."""
    with store() as s:
        if not s.revoke(token_id):
            raise click.ClickException(f"no token {token_id!r}")
    click.echo(f"revoked {token_id}")


@token_cli.command("rotate")
@click.argument("token_id")
@click.option("--grace", default="24h", show_default=True,
              help="How long the old token keeps working (m, h or d).")
def token_rotate(token_id: str, grace: str) -> None:
    """Issue a replacement; the old token works for the grace period, then stops."""
    with store() as s:
        try:
            key, secret = s.rotate(token_id, parse_duration(grace))
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from None
    click.echo(f"SCIM endpoint (Tenant URL): {endpoint()}")
    click.echo(f"Bearer token (Secret Token): {secret}")
    click.echo(f"token id {key}; {token_id} stops working in {grace}.")


@client_cli.command("create")
@click.option("--tenant", "tenant_name", default="default", show_default=True)
@click.option("--name", required=True)
def client_create(tenant_name: str, name: str) -> None:
    """Register an OAuth client; its secret is printed once."""
    with store() as s:
        try:
            tenant = s.tenant(tenant_name)
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from None
        client_id, secret = s.create_token(tenant, name, kind="Clients")
    base = current_app.extensions["scim_bridge"].settings.SCIM_PUBLIC_URL.rstrip("/")
    click.echo(f"Token Endpoint: {base}/oauth/token")
    click.echo(f"Client Identifier: {client_id}")
    click.echo(f"Client Secret: {secret}")
    click.echo(f"SCIM endpoint (Tenant URL): {endpoint()}")


@client_cli.command("list")
def client_list() -> None:
    with store() as s:
        _table(s.tokens(kind="Clients"))


@client_cli.command("revoke")
@click.argument("client_id")
def client_revoke(client_id: str) -> None:
    with store() as s:
        if not s.revoke(client_id, kind="Clients"):
            raise click.ClickException(f"no client {client_id!r}")
    click.echo(f"revoked {client_id}")


COMMANDS = (tenant_cli, token_cli, client_cli)
