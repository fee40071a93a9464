"""Dashboard admins and directory readers through Flask's CLI: ``flask --app app admin|reader …``.

- ``admin create|list|remove``: accounts of the admin dashboard, under the admin base
  (``ADMIN_BASE_DN``, default ``ou=Admins,ou=Service,<LDAP_BASE_DN>``), outside every
  SCIM-managed subtree. ``remove`` deletes the account with its sessions, which ends them
  at once on every worker.
- ``reader create|list|remove``: read-only bind accounts for an LDAP consumer (an MDM),
  one tenant each; the directory's access rules decide what they read (directory/readers.py).

Passwords are generated (or prompted for with ``--password-prompt``), printed once, and
stored hashed with ``LDAP_PASSWORD_SCHEME``, as the bridge stores SCIM passwords.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from directory.admins import Admins
from directory.errors import DirectoryError
from directory.mapping import hash_password
from directory.readers import Readers, reader_group_dn
from directory.tenant import trust_conflict
from scim.cli import store

admin_cli = AppGroup("admin", help="Accounts of the admin dashboard (outside every tenant).")
reader_cli = AppGroup("reader", help="Read-only LDAP accounts for consumers such as an MDM.")


@contextmanager
def connection() -> Iterator[Any]:
    """A pooled connection; directory errors become one-line messages."""
    ext = current_app.extensions["scim_bridge"]
    try:
        with ext.pool.connection() as conn:
            yield conn
    except DirectoryError as exc:
        raise click.ClickException(f"directory: {exc}") from None


def _settings() -> Any:
    return current_app.extensions["scim_bridge"].settings


def _password(prompt: bool) -> tuple[str, bool]:
    """(password, whether it was generated and must be shown)."""
    if prompt:
        return click.prompt("Password", hide_input=True, confirmation_prompt=True), False
    return secrets.token_urlsafe(18), True


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


@admin_cli.command("create")
@click.argument("login")
@click.option("--password-prompt", is_flag=True,
              help="Ask for the password instead of generating one.")
def admin_create(login: str, password_prompt: bool) -> None:
    """Create a dashboard admin; a generated password is printed ONCE."""
    settings = _settings()
    with store() as registry:
        for name, dn in settings.admin_dns().items():
            problem = trust_conflict(name, dn, registry.tenants())
            if problem:
                raise click.ClickException(problem)
    password, show = _password(password_prompt)
    with connection() as conn:
        try:
            dn = Admins(conn, settings.admin_base_dn).create(
                login, hash_password(password, settings.LDAP_PASSWORD_SCHEME))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"admin {login}: {dn}")
    if show:
        click.echo(f"password: {password}")
        click.echo("(the password is not shown again)")
    if settings.ADMIN_GROUP_DN:
        click.echo(f"note: ADMIN_GROUP_DN is set; add {dn} as a member of "
                   f"{settings.ADMIN_GROUP_DN} too")


@admin_cli.command("list")
def admin_list() -> None:
    """Dashboard admins with their open sessions."""
    settings = _settings()
    with connection() as conn:
        rows = Admins(conn, settings.admin_base_dn).list()
    click.echo(f"{'LOGIN':<32}{'CREATED':<22}SESSIONS")
    for row in rows:
        click.echo(f"{row.login[:31]:<32}{_when(row.created):<22}{row.sessions}")


@admin_cli.command("remove")
@click.argument("login")
def admin_remove(login: str) -> None:
    """Delete an admin and end its sessions at once."""
    settings = _settings()
    with connection() as conn:
        ended = Admins(conn, settings.admin_base_dn).remove(login)
    if ended is None:
        raise click.ClickException(f"no admin {login!r}")
    click.echo(f"removed admin {login}; {ended} session(s) ended")


@reader_cli.command("create")
@click.argument("name")
@click.option("--tenant", "tenant_name", default="default", show_default=True)
@click.option("--password-prompt", is_flag=True,
              help="Ask for the password instead of generating one.")
def reader_create(name: str, tenant_name: str, password_prompt: bool) -> None:
    """Create a reader of one tenant's people and groups; its password is printed ONCE."""
    settings = _settings()
    with store() as registry:
        try:
            tenant = registry.tenant(tenant_name)
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from None
    password, show = _password(password_prompt)
    with connection() as conn:
        try:
            dn = Readers(conn, settings.LDAP_BASE_DN).create(
                name, tenant, hash_password(password, settings.LDAP_PASSWORD_SCHEME))
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"Bind DN: {dn}")
    if show:
        click.echo(f"Password: {password}")
    click.echo(f"Users base DN: {tenant.people_dn}")
    click.echo(f"Groups base DN: {tenant.groups_dn}")
    click.echo(f"(tenant {tenant.name}; member of {reader_group_dn(tenant)}; see "
               "docs/consumers.md" + ("; the password is not shown again)" if show else ")"))


@reader_cli.command("list")
def reader_list() -> None:
    """Readers and the tenant each may read (never a password)."""
    with connection() as conn:
        rows = Readers(conn, _settings().LDAP_BASE_DN).list()
    click.echo(f"{'NAME':<26}{'TENANT':<16}{'CREATED':<22}BIND DN")
    for row in rows:
        click.echo(f"{row.name[:25]:<26}{row.tenant[:15]:<16}{_when(row.created):<22}{row.dn}")


@reader_cli.command("remove")
@click.argument("name")
def reader_remove(name: str) -> None:
    """Delete a reader (it can no longer bind or read)."""
    with connection() as conn:
        if not Readers(conn, _settings().LDAP_BASE_DN).remove(name):
            raise click.ClickException(f"no reader {name!r}")
    click.echo(f"removed reader {name}")


COMMANDS = (admin_cli, reader_cli)
