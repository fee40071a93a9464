"""Connector management through Flask's CLI: ``flask --app app tenant|token|client …``,
and ``directory check``.

Secrets are printed once, at creation, and never again (``list`` shows no secret, and
nothing here logs one). Every change (create, rotate, revoke) is an audit record like
the dashboard's, with ``token: cli:<user>`` (the operating-system user), when
``AUDIT_LOG`` names a file; with the trail on standard output the CLI's own output stays
what it prints.
"""

from __future__ import annotations

import getpass
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from directory import check as dc
from directory.errors import DirectoryError
from directory.repository import Repository
from directory.tenant import Tenant
from directory.tokens import Store, TokenInfo
from scim import observability
from scim.service import check

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


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, no LOGNAME (a bare container)
        import os  # noqa: PLC0415

        return f"uid{os.getuid()}"


def audit(operation: str, resource: str, resource_id: str, tenant: str,
          status: int = 200) -> None:
    """An audit record of a CLI change (only to a file: see the module docstring)."""
    obs = current_app.extensions.get("scim_observability")
    if obs is None or not obs.audit.path:
        return
    obs.audit.record(token=f"cli:{_user()}", tenant=tenant, client="cli",
                     operation=operation, method="CLI", resource=resource,
                     resource_id=resource_id, status=status)


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
    audit("create", "Tenant", tenant.name, tenant.name, 201)
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
    audit("create", "Token", key, tenant.name, 201)
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
        tenant = next((t.tenant for t in s.tokens() if t.id == token_id), "")
        if not s.revoke_token(token_id):
            raise click.ClickException(f"no token {token_id!r}")
    audit("revoke", "Token", token_id, tenant, 204)
    click.echo(f"revoked {token_id}")


@token_cli.command("rotate")
@click.argument("token_id")
@click.option("--grace", default="24h", show_default=True,
              help="How long the old token keeps working (s, m, h or d).")
def token_rotate(token_id: str, grace: str) -> None:
    """Issue a replacement; the old token works for the grace period, then stops."""
    period = parse_duration(grace)
    with store() as s:
        tenant = next((t.tenant for t in s.tokens() if t.id == token_id), "")
        try:
            key, token = s.rotate(token_id, period)
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from None
        except ValueError as exc:
            audit("rotate", "Token", token_id, tenant, 409)
            raise click.ClickException(str(exc)) from None
        ends = s.clock() + period
    audit("rotate", "Token", token_id, tenant, 201)
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
    audit("create", "Client", client_id, tenant.name, 201)
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
        tenant = next((c.tenant for c in s.clients() if c.id == client_id), "")
        tokens = s.revoke_client(client_id)
    if tokens is None:
        raise click.ClickException(f"no client {client_id!r}")
    audit("revoke", "Client", client_id, tenant, 204)
    click.echo(f"revoked {client_id} and {tokens} access token(s) issued to it")



# --- directory check ----------------------------------------------------------------------

directory_cli = AppGroup("directory", help="The directory tree: find and repair drift.")
#: Exit statuses of ``directory check``.
CLEAN, DRIFT, ERROR = 0, 1, 2


def _tenants(s: Store, name: str | None, every: bool) -> list[Tenant]:
    if every:
        return list(s.tenants())
    return [_tenant(s, name or "default")]


def _print_report(report: check.Report) -> None:
    scan = report.scan
    click.echo(f"tenant {report.tenant} ({report.base_dn}): {scan.users} users, "
               f"{scan.groups} groups, {scan.member_values} member values, "
               f"{scan.others} other entries, {report.seconds:.1f} s")
    if scan.findings:
        click.echo(f"  {'KIND':<28}{'ENTRY':<48}DETAIL")
        for f in scan.findings:
            shown = f" ({', '.join(f.values[:3])}{', …' if f.count > 3 else ''})" \
                if f.values and f.kind not in (dc.NAME_COLLISION,) else ""
            click.echo(f"  {f.kind:<28}{f.dn[:47]:<48}{f.detail}{shown}")
        if scan.truncated:
            click.echo(f"  … and {scan.truncated} more findings (see the counts)")
    for fix in report.fixes:
        click.echo(f"  {fix.outcome.upper():<8}{fix.kind:<28}{fix.dn[:47]:<48}{fix.detail}")
    if not report.drift:
        click.echo("  clean: no drift")
        return
    counts = ", ".join(f"{k} {n}" for k, n in sorted(scan.counts.items()))
    click.echo(f"  drift: {counts}")
    if not report.repair and report.repairable:
        click.echo(f"  {report.repairable} repairable: run again with --repair")


def _keeping(store_it: Any, *args: Any) -> None:
    """Keep the result for the dashboard; a directory that refuses (no write access to
    ou=Service) costs the dashboard its view, not the check."""
    try:
        store_it(*args)
    except DirectoryError as exc:
        click.echo(f"warning: the result is not kept for the dashboard: {exc}", err=True)


@directory_cli.command("check")
@click.option("--tenant", "tenant_name", help="The tenant to check (default: 'default').")
@click.option("--all", "every", is_flag=True, help="Check every tenant.")
@click.option("--repair", is_flag=True,
              help="Fix what is safe (each fix one guarded, audited LDAP write).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--ignore", multiple=True, type=click.Choice(sorted(dc.KINDS)),
              help="Leave this kind out (e.g. not-scim-resource for admin accounts kept "
                   "in ou=People); repeatable.")
def directory_check(tenant_name: str | None, every: bool, repair: bool,
                    as_json: bool, ignore: tuple[str, ...]) -> None:
    """Find drift in a tenant's People and Groups (dry run unless --repair).

    Exit status: 0 clean, 1 drift found (repaired or not: run again to confirm),
    2 on errors.
    """
    if every and tenant_name:
        raise click.UsageError("give --tenant or --all, not both")
    ext = current_app.extensions["scim_bridge"]
    root = ext.settings.LDAP_BASE_DN
    audit = observability.current().audit.record
    reports: list[check.Report] = []
    try:
        with ext.pool.connection() as conn:
            for tenant in _tenants(ext.authenticator.store(conn), tenant_name, every):
                repo = Repository(conn, tenant)
                _keeping(check.mark_running, repo, root, tenant.name, check.CLI_ACTOR, repair)
                try:
                    report = check.run(repo, ext.mapping, repair=repair,
                                       ppolicy_lock=ext.options.ppolicy_lock, audit=audit,
                                       ignore=frozenset(ignore))
                except DirectoryError as exc:
                    _keeping(check.keep_failure, repo, root, tenant.name, check.CLI_ACTOR,
                             str(exc))
                    raise
                _keeping(check.keep, repo, root, report)
                reports.append(report)
    except (DirectoryError, click.ClickException) as exc:
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        click.echo(f"error: directory: {message}", err=True)
        raise SystemExit(ERROR) from None
    drift = any(r.drift for r in reports)
    if as_json:
        click.echo(json.dumps({"drift": drift, "tenants": [r.as_dict() for r in reports]},
                              ensure_ascii=False, indent=2))
    else:
        for report in reports:
            _print_report(report)
    raise SystemExit(DRIFT if drift else CLEAN)


COMMANDS = (tenant_cli, token_cli, client_cli, directory_cli)
