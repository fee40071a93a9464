"""Sign-in, sign-out, CSRF and the idle timeout of the admin dashboard.

- **Sign-in**: the login names one DN, ``uid=<login>,<admin base>`` (directory/admins.py;
  no search, so no entry under a tenant's People or Groups is ever considered), the
  password is checked by binding as that DN on a fresh connection, and, when
  ``ADMIN_GROUP_DN`` is set, the DN must be a ``member`` of it. Failures are counted per
  client address (``FailureLimiter``, ``SCIM_AUTH_FAILURES_PER_MINUTE``) and logged with
  the address and login, never the password.
- **Session**: a signed cookie holding the DN, the login, a session id, the CSRF token
  and the time of the last request; it is replaced whole at sign-in (no fixation),
  cleared at sign-out and after ``ADMIN_IDLE_MINUTES`` without a request. The session id
  names an entry under the admin's own entry (created at sign-in, deleted at sign-out and
  with the admin), checked on every request: a copy of the cookie is worthless once the
  session ended, on every worker. Group membership is checked again on every request
  too.
- **CSRF**: every POST must carry the session's token (``csrf_token`` form field),
  compared in constant time; otherwise 400.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from directory import login as ldap_login
from directory.admins import Admins
from directory.errors import CONNECTION_ERRORS, DirectoryUnavailable
from directory.tenant import trust_conflict
from directory.tokens import Store
from scim.admin import bp, state

log = logging.getLogger("scim.admin")
#: Endpoints a signed-out visitor may reach.
PUBLIC = {"admin.login", "admin.static"}


def csrf_token() -> str:
    """The session's CSRF token (created on first use)."""
    token = session.get("csrf")
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def check_csrf() -> None:
    """400 unless the form's ``csrf_token`` equals the session's (constant time)."""
    expected = session.get("csrf")
    sent = request.form.get("csrf_token", "")
    if not isinstance(expected, str) or not expected or \
            not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, "The form has expired or did not come from this site: reload the page "
                   "and try again. (Over plain HTTP the session cookie is only kept with "
                   "ADMIN_COOKIE_SECURE=false.)")


def connection() -> Any:
    """This request's directory connection (checked out once, returned at teardown)."""
    if "admin_conn" not in g:
        g.admin_conn = current_app.extensions["scim_bridge"].pool.checkout()
    return g.admin_conn


def admins() -> Admins:
    """The admin accounts and sessions, on this request's connection."""
    admin = state()
    return Admins(connection(), admin.settings.admin_base_dn,
                  lambda: datetime.fromtimestamp(admin.clock(), UTC))


def _touch_every() -> float:
    """Seconds between writes of a session's last activity (a third of the idle time)."""
    return state().settings.ADMIN_IDLE_MINUTES * 20


@bp.teardown_request
def release(exc: BaseException | None) -> None:
    conn = g.pop("admin_conn", None)
    repo = g.pop("admin_repo", None)
    if conn is not None:
        broken = g.pop("admin_broken", False) or bool(repo and repo.broken) or isinstance(
            exc, (*CONNECTION_ERRORS, DirectoryUnavailable))
        current_app.extensions["scim_bridge"].pool.checkin(conn, broken=bool(broken))


def _safe_next(target: str | None) -> str:
    """A local dashboard path to return to after sign-in (never another site)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith("/admin/") \
                and not target.startswith("//") and "\\" not in target:
            return target
    return url_for("admin.connector")


@bp.before_request
def guard() -> ResponseReturnValue | None:
    """CSRF on every POST; a live session, of a current admin, on every private page."""
    if request.endpoint == "admin.static":
        return None
    if request.method == "POST":
        check_csrf()
    if request.endpoint in PUBLIC:
        return None
    user = session.get("user")
    if not isinstance(user, dict):
        return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
    admin = state()
    now = admin.clock()
    seen = session.get("seen")
    if not isinstance(seen, (int, float)) or now - seen > admin.settings.ADMIN_IDLE_MINUTES * 60:
        _end(user)
        return redirect(url_for("admin.login", reason="idle"))
    sid = session.get("sid")
    if not isinstance(sid, str) or not admins().session_alive(user["dn"], sid):
        log.warning("admin session of %s refused: it was ended (sign-out or admin removed)",
                    user["dn"])
        session.clear()
        return redirect(url_for("admin.login", reason="ended"))
    group = admin.settings.ADMIN_GROUP_DN
    if group and not ldap_login.is_member(connection(), group, user["dn"]):
        log.warning("admin session of %s ended: no longer in %s", user["dn"], group)
        _end(user)
        return redirect(url_for("admin.login", reason="removed"))
    touched = session.get("touched")
    if not isinstance(touched, (int, float)) or now - touched >= _touch_every():
        admins().touch_session(user["dn"], sid)
        session["touched"] = now
    session["seen"] = now
    g.admin_user = user
    return None


_REASONS = {
    "idle": "You were signed out after {minutes} minutes without activity.",
    "out": "You are signed out.",
    "removed": "Your account is no longer in the admin group.",
    "ended": "Your session has ended (signed out, or the account was removed).",
}


def _trust_problem() -> str | None:
    """Whether the admin base or group lies in a registered tenant's People or Groups
    (tenants registered before the setting changed; ``tenant create`` refuses new ones)."""
    settings = state().settings
    tenants = Store(connection(), settings.LDAP_BASE_DN).tenants()
    for name, dn in settings.admin_dns().items():
        problem = trust_conflict(name, dn, tenants)
        if problem:
            return problem
    return None


def _end(user: Any) -> None:
    """Delete the session's entry (best effort) and clear the cookie."""
    sid = session.get("sid")
    if isinstance(user, dict) and isinstance(sid, str):
        try:
            admins().end_session(str(user.get("dn", "")), sid)
        except (*CONNECTION_ERRORS, DirectoryUnavailable):
            g.admin_broken = True
            log.warning("admin session of %s: could not delete its entry", user.get("dn"))
    session.clear()


def _login_page(error: str | None = None, status: int = 200) -> Response:
    minutes = state().settings.ADMIN_IDLE_MINUTES
    notice = _REASONS.get(request.args.get("reason", ""), "").format(minutes=minutes) or None
    page = render_template("admin/login.html", error=error, notice=None if error else notice,
                           login=request.form.get("username", ""),
                           next=request.values.get("next", ""))
    return Response(page, status=status)


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if request.method == "GET":
        user, sid = session.get("user"), session.get("sid")
        if isinstance(user, dict) and isinstance(sid, str):
            if admins().session_alive(str(user.get("dn", "")), sid):
                return redirect(_safe_next(request.args.get("next")))
            session.clear()  # ended elsewhere (sign-out, admin remove): sign in afresh
        csrf_token()
        return _login_page()
    admin = state()
    address = request.remote_addr or "unknown"
    wait = admin.limiter.blocked(address)
    if wait:
        response = _login_page(f"Too many failed sign-ins from your address. Try again in "
                               f"{wait} seconds.", 429)
        response.headers["Retry-After"] = str(wait)
        return response
    name = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    problem = _trust_problem()
    if problem:
        log.error("admin sign-in refused: %s", problem)
        return _login_page("The dashboard is misconfigured (see the service's log).", 503)
    dn = admins().dn(name)
    if dn is None or not ldap_login.password_ok(admin.settings, dn, password):
        admin.limiter.record(address)
        log.warning("admin sign-in failed from %s for %r: wrong username or password",
                    address, name[:64])
        return _login_page("Wrong username or password.", 401)
    group = admin.settings.ADMIN_GROUP_DN
    if group and not ldap_login.is_member(connection(), group, dn):
        admin.limiter.record(address)
        log.warning("admin sign-in refused from %s for %s: not a member of %s", address, dn,
                    group)
        return _login_page("This account may not use the admin dashboard: it is not in "
                           "the admin group.", 403)
    target = _safe_next(request.form.get("next"))
    store = admins()
    store.purge_sessions(timedelta(minutes=2 * admin.settings.ADMIN_IDLE_MINUTES))
    sid = store.open_session(dn)
    session.clear()
    session["user"] = {"dn": dn, "login": name}
    session["sid"] = sid
    session["seen"] = session["touched"] = admin.clock()
    csrf_token()
    log.info("admin sign-in from %s: %s", address, dn)
    return redirect(target)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    user = session.get("user")
    _end(user)
    if isinstance(user, dict):
        log.info("admin sign-out: %s", user.get("dn"))
    return redirect(url_for("admin.login", reason="out"))


@bp.context_processor
def template_globals() -> dict[str, Any]:
    return {"csrf_token": csrf_token}
