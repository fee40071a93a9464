"""Start-up checks of ``make run`` (scripts/serve), before anything is printed or served.

    python -m scim.preflight        (with the service's settings in the environment)

Checks, in order, and stops at the first failure with ONE line on standard error and
exit status 2: the settings load (``configuration error: …``); ``BIND`` is free
(another ``make run`` holds the port); the directory accepts the service's bind
(directory/diagnose.py says which URL, bind DN and setting); the default tenant's base
entry exists. Then it prints the banner on standard output: the SCIM endpoint, the
token, and the dashboard's URL — so the banner never appears for a start that fails.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import time

from config import ConfigError, Settings, load_settings
from directory.connection import open_connection
from directory.errors import DirectoryError
from directory.login import missing_entries

#: How long a directory that refuses connections is waited for (a slapd just started).
DIRECTORY_WAIT = 5.0


class Failed(Exception):
    """A check failed; the message is the one line to print."""


def check_bind(bind: str) -> None:
    """``bind`` (host:port) can be listened on now: nothing else holds it."""
    host, _, port = bind.rpartition(":")
    if not port.isdigit():
        return  # unix:… and the like: gunicorn reports those itself
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
        try:
            probe.bind((host, int(port)))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise Failed(f"serve: {bind} is already in use (another `make run`?): stop "
                             f"that, or listen elsewhere with BIND=127.0.0.1:<port>") from None
            raise Failed(f"serve: cannot listen on {bind} (BIND): {exc.strerror}") from None


def check_directory(settings: Settings, wait: float = DIRECTORY_WAIT) -> None:
    """The service's bind works, and ``LDAP_BASE_DN`` exists."""
    deadline = time.monotonic() + wait
    while True:
        try:
            conn = open_connection(settings)
            break
        except DirectoryError as exc:
            if "nothing answered" not in str(exc) or time.monotonic() >= deadline:
                raise Failed(f"directory: {exc}") from None
            time.sleep(0.2)
    try:
        if missing_entries(conn, [settings.LDAP_BASE_DN]):
            raise Failed(f"directory: {settings.LDAP_BASE_DN} (LDAP_BASE_DN) does not exist "
                         f"in {settings.LDAP_URL}: load the base entries (README, Using an "
                         "existing OpenLDAP) or fix LDAP_BASE_DN")
    except DirectoryError as exc:
        raise Failed(f"directory: reading {settings.LDAP_BASE_DN} failed: {exc}") from None
    finally:
        conn.unbind()


def banner(settings: Settings, slapd_dir: str = "") -> str:
    base = settings.SCIM_PUBLIC_URL.rstrip("/")
    lines = [f"SCIM endpoint (Tenant URL): {base}/scim/v2"]
    if settings.SCIM_BEARER_TOKEN:
        lines.append(f"Bearer token (Secret Token): {settings.SCIM_BEARER_TOKEN}")
    lines.append(f"Admin dashboard: {base}/admin/ (to create the first admin, see README, "
                 "Admin dashboard)")
    if settings.AUDIT_LOG:
        lines.append(f"Audit trail (Activity page): {settings.AUDIT_LOG}")
    lines.append("Stop with Ctrl-C." + (
        f" The private slapd keeps running; stop it with: scripts/slapd stop --dir "
        f"{slapd_dir}" if slapd_dir else ""))
    return "\n".join(lines)


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        check_bind(os.environ.get("BIND") or "127.0.0.1:8000")
        check_directory(settings)
    except Failed as exc:
        print(exc, file=sys.stderr)
        return 2
    print(banner(settings, os.environ.get("SERVE_SLAPD_DIR", "")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
