"""The admin dashboard at ``/admin``: server-rendered pages for people who run the bridge.

Sign-in is an LDAP bind as an admin account under the admin base (``ADMIN_BASE_DN``,
outside every tenant's People and Groups; ``flask --app app admin create``), optionally
also a ``member`` of ``ADMIN_GROUP_DN``; SCIM bearer tokens never open it, and a
dashboard session never opens SCIM. The session lives in a signed cookie
(``ADMIN_SECRET_KEY``) scoped to ``/admin`` and in an entry of the directory that
sign-out and ``admin remove`` delete; every form carries a session-bound CSRF token.
Pages:

- *Connector*: the SCIM endpoint and a tenant's tokens (create, rotate, revoke), and a
  readiness check of the directory;
- *Users* and *Groups*: search through the SCIM query service, read only;
- *Activity*: recent SCIM operations from the audit trail, with a chart per hour.

``init_app`` wires it into an app; the views are in ``views.py`` and the sign-in,
CSRF and idle-timeout rules in ``session.py``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Blueprint, Flask, current_app

from config import Settings
from scim.audit import Reader
from scim.auth import FailureLimiter

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates",
               static_folder="static")


@dataclass
class AdminState:
    """What the dashboard keeps per worker: its settings, limiter, audit source, clock."""

    settings: Settings
    limiter: FailureLimiter
    #: ``reader(limit, result)``: newest audit records first (scim/audit.py)
    audit: Reader | None = None
    #: writes an audit record for a dashboard action (token create/rotate/revoke)
    audit_write: Callable[..., None] | None = None
    clock: Callable[[], float] = field(default=time.time)


def state() -> AdminState:
    return current_app.extensions["scim_admin"]


def init_app(app: Flask, settings: Settings, audit: Reader | None = None,
             audit_write: Callable[..., None] | None = None) -> None:
    """Register the blueprint and the session cookie settings on ``app``."""
    app.secret_key = settings.ADMIN_SECRET_KEY or secrets.token_hex(32)
    app.config.update(
        SESSION_COOKIE_NAME="scim_admin",
        SESSION_COOKIE_PATH="/admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=settings.ADMIN_COOKIE_SECURE,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.extensions["scim_admin"] = AdminState(
        settings, FailureLimiter(settings.SCIM_AUTH_FAILURES_PER_MINUTE), audit, audit_write)
    app.register_blueprint(bp)


from scim.admin import session, views  # noqa: E402, F401 - register the views on bp
