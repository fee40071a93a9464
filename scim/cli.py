"""Connector management through Flask's CLI: ``flask --app app tenant|token|client …``.

Secrets are printed once, at creation, and never again (``list`` shows no secret, and
nothing here logs one).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import click
from flask import current_app
from flask.cli import AppGroup

from directory.errors import DirectoryError
from directory.tenant import Tenant
from directory.tokens import Store, TokenInfo

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """``90d``, ``24h``, ``30m`` or ``45s``."""
    m = _DURATION.match(text.strip())
    if not m:
        raise click.BadParameter(f"{text!r}: use a number with s, m, h or d (e.g. 24h, 90d)")
    return timedelta(**{_UNITS[m[2]]: int(m[1])})


def parse_expiry(text: str | None, at: datetime) -> datetime | None:
    """A date or date-time (UTC unless it says otherwise), or a duration from ``at``."""
    if not text:
        return None
    if _DURATION.match(text.strip()):
        when = at + parse_duration(text)
    else:
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise click.BadParameter(
                f"{text!r}: a date (2027-01-01) or a duration (90d)") from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if when <= at:
        raise click.BadParameter(f"{text!r} is in the past")
    return when


@contextmanager
def store() -> Iterator[Store]:
    """The registry on a pooled connection; directory errors become one-line messages."""
    ext = current_app.extensions["scim_bridge"]
    try:
        with ext.pool.connection() as conn:
            yield ext.authenticator.store(conn)
    except DirectoryError as exc:
        raise click.ClickException(f"directory: {exc}") from None


def _public_url() -> str:
    return current_app.extensions["scim_bridge"].settings.SCIM_PUBLIC_URL.rstrip("/")


def endpoint() -> str:
    """What Entra calls the Tenant URL: the SCIM root."""
    return _public_url() + "/scim/v2"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def _table(rows: list[TokenInfo], at: datetime) -> None:
    click.echo(f"{'ID':<18}{'TENANT':<14}{'NAME':<24}{'STATE':<9}{'CREATED':<22}"
               f"{'ENDS':<22}LAST USED")
    for t in rows:
        click.echo(f"{t.id:<18}{t.tenant[:13]:<14}{t.name[:23]:<24}{t.state(at):<9}"
                   f"{_when(t.created):<22}{_when(t.ends):<22}{_when(t.last_used)}")


def _tenant(s: Store, name: str) -> Tenant:
    try:
        return s.tenant(name)
    except KeyError as exc:
        raise click.ClickException(str(exc.args[0])) from None


def _print_token(token: str) -> None:
    click.echo(f"SCIM endpoint (Tenant URL): {endpoint()}")
    click.echo(f"Bearer token (Secret Token): {token}")


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
            tenant = s.create_tenant(name, base_dn, protected=current_app.extensions[
                "scim_bridge"].settings.admin_dns())
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"tenant {tenant.name}: {tenant.base_dn}")
    click.echo(f"next: flask --app app token create --tenant {tenant.name} --name entra")


@tenant_cli.command("list")
def tenant_list() -> None:
    """Every tenant and its base DN ('default' is LDAP_BASE_DN)."""
    with store() as s:
        for tenant in s.tenants():
            click.echo(f"{tenant.name:<24}{tenant.base_dn}")


@token_cli.command("create")
@click.option("--tenant", "tenant_name", default="default", show_default=True)
@click.option("--name", required=True, help="What the token is for, e.g. 'entra-prod'.")
@click.option("--expires", help="A date (2027-01-01) or a duration (90d); default never.")
def token_create(tenant_name: str, name: str, expires: str | None) -> None:
    """Create a token and print it ONCE, with the endpoint to paste into Entra."""
    with store() as s:
        tenant = _tenant(s, tenant_name)
        key, token = s.create_token(tenant, name, parse_expiry(expires, s.clock()))
    _print_token(token)
    click.echo(f"token id {key} (tenant {tenant.name}); the token is not shown again.")


@token_cli.command("list")
@click.option("--tenant", "tenant_name", help="Only this tenant's tokens.")
@click.option("--oauth", is_flag=True, help="Include access tokens issued to OAuth clients.")
def token_list(tenant_name: str | None, oauth: bool) -> None:
    """Tokens with their state, expiry and last use (never a secret)."""
    with store() as s:
        _table(s.tokens(tenant=tenant_name, oauth=oauth), s.clock())


@token_cli.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Delete a token; running workers refuse it within SCIM_TOKEN_CACHE_SECONDS."""
    with store() as s:
        if not s.revoke_token(token_id):
            raise click.ClickException(f"no token {token_id!r}")
    click.echo(f"revoked {token_id}")


@token_cli.command("rotate")
@click.argument("token_id")
@click.option("--grace", default="24h", show_default=True,
              help="How long the old token keeps working (s, m, h or d).")
def token_rotate(token_id: str, grace: str) -> None:
    """Issue a replacement; the old token works for the grace period, then stops."""
    period = parse_duration(grace)
    with store() as s:
        try:
            key, token = s.rotate(token_id, period)
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from None
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        ends = s.clock() + period
    _print_token(token)
    click.echo(f"token id {key}; {token_id} keeps working until {_when(ends)}.")


@client_cli.command("create")
@click.option("--tenant", "tenant_name", default="default", show_default=True)
@click.option("--name", required=True)
def client_create(tenant_name: str, name: str) -> None:
    """Register an OAuth client; its secret is printed once."""
    with store() as s:
        tenant = _tenant(s, tenant_name)
        client_id, secret = s.create_client(tenant, name)
    click.echo(f"Tenant URL: {endpoint()}")
    click.echo(f"Token Endpoint: {_public_url()}/oauth/token")
    click.echo(f"Client Identifier: {client_id}")
    click.echo(f"Client Secret: {secret}")
    click.echo(f"(tenant {tenant.name}; the secret is not shown again)")


@client_cli.command("list")
def client_list() -> None:
    """OAuth clients (never a secret)."""
    with store() as s:
        _table(s.clients(), s.clock())


@client_cli.command("revoke")
@click.argument("client_id")
def client_revoke(client_id: str) -> None:
    """Delete a client and every access token issued to it."""
    with store() as s:
        tokens = s.revoke_client(client_id)
    if tokens is None:
        raise click.ClickException(f"no client {client_id!r}")
    click.echo(f"revoked {client_id} and {tokens} access token(s) issued to it")


COMMANDS = (tenant_cli, token_cli, client_cli)
