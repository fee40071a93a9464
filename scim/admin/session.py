"""Sign-in, sign-out, CSRF and the idle timeout of the admin dashboard.

- **Sign-in**: the login is looked up by ``uid`` under ``LDAP_BASE_DN`` (escaped filter,
  exactly one match), the password is checked by binding as that DN on a fresh
  connection, and the DN must be a ``member`` of the admin group. Failures are counted
  per client address (``FailureLimiter``, ``SCIM_AUTH_FAILURES_PER_MINUTE``) and logged
  with the address and login, never the password.
- **Session**: a signed cookie holding the DN, the login, the CSRF token and the time of
  the last request; it is replaced whole at sign-in (no fixation), cleared at sign-out
  and after ``ADMIN_IDLE_MINUTES`` without a request. Membership of the admin group is
  checked again on every request, so removing someone from the group locks them out at
  once.
- **CSRF**: every POST must carry the session's token (``csrf_token`` form field),
  compared in constant time; otherwise 400.
"""

from __future__ import annotations

import hmac
import logging
import secrets
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
from directory.errors import CONNECTION_ERRORS, DirectoryError, DirectoryUnavailable
from scim.admin import bp, state

log = logging.getLogger("scim.admin")
#: Endpoints a signed-out visitor may reach.
PUBLIC = {"admin.login", "admin.static"}
#: Pages that read only the audit file (or say what is wrong): while the directory is
#: down they open for a live session whose membership cannot be checked.
DIRECTORY_OPTIONAL = {"admin.activity_page", "admin.activity_csv", "admin.connector"}


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
        session.clear()
        return redirect(url_for("admin.login", reason="idle"))
    if not _still_member(admin, user["dn"]):
        log.warning("admin session of %s ended: no longer in %s", user["dn"],
                    admin.settings.admin_group_dn)
        session.clear()
        return redirect(url_for("admin.login", reason="removed"))
    session["seen"] = now
    g.admin_user = user
    return None


def _still_member(admin: Any, dn: str) -> bool:
    """Whether ``dn`` is still in the admin group; on a page of ``DIRECTORY_OPTIONAL``
    a directory that cannot answer leaves the signed session trusted (noted in
    ``g.membership_unchecked``), so the operator can see what is wrong."""
    try:
        return ldap_login.is_member(connection(), admin.settings.admin_group_dn, dn)
    except DirectoryError as exc:
        if request.endpoint not in DIRECTORY_OPTIONAL:
            raise
        g.membership_unchecked = True
        g.directory_down = exc
        g.admin_broken = True  # a connection that failed is not given back for reuse
        return True


_REASONS = {
    "idle": "You were signed out after {minutes} minutes without activity.",
    "out": "You are signed out.",
    "removed": "Your account is no longer in the admin group.",
}


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
        if isinstance(session.get("user"), dict):
            return redirect(_safe_next(request.args.get("next")))
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
    dn = ldap_login.find_login(connection(), admin.settings.LDAP_BASE_DN, name)
    if dn is None or not ldap_login.password_ok(admin.settings, dn, password):
        admin.limiter.record(address)
        log.warning("admin sign-in failed from %s for %r: wrong username or password",
                    address, name[:64])
        return _login_page("Wrong username or password.", 401)
    if not ldap_login.is_member(connection(), admin.settings.admin_group_dn, dn):
        admin.limiter.record(address)
        log.warning("admin sign-in refused from %s for %s: not a member of %s", address, dn,
                    admin.settings.admin_group_dn)
        return _login_page("This account may not use the admin dashboard: it is not in "
                           "the admin group.", 403)
    target = _safe_next(request.form.get("next"))
    session.clear()
    session["user"] = {"dn": dn, "login": name}
    session["seen"] = admin.clock()
    csrf_token()
    log.info("admin sign-in from %s: %s", address, dn)
    return redirect(target)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    user = session.get("user")
    session.clear()
    if isinstance(user, dict):
        log.info("admin sign-out: %s", user.get("dn"))
    return redirect(url_for("admin.login", reason="out"))


@bp.context_processor
def template_globals() -> dict[str, Any]:
    return {"csrf_token": csrf_token}
