"""The dashboard's pages: Connector, Users, Groups, Activity.

Users and groups are read through the SCIM services (``scim.service.query``, ``users``,
``groups``) with filters built as SCIM filter text — search words become JSON string
literals, never LDAP filter text — so paging, tenant scoping and the placeholder rules
are exactly those of the SCIM API. Only the Connector's token buttons write (to
``ou=Tokens``); every other page only reads.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import (
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, NotFound

from directory import Repository, Tenant
from directory import login as ldap_login
from directory.errors import DirectoryBusy, DirectoryError, DirectoryUnavailable
from directory.tokens import Store, TokenInfo
from scim import observability
from scim.admin import activity, bp, state
from scim.admin.session import connection
from scim.protocol.errors import ScimError
from scim.protocol.paths import parse_attribute_list
from scim.protocol.projection import Projection
from scim.service import groups, query, users
from scim.service.common import Context, directory_errors

log = logging.getLogger("scim.admin")
PAGE_SIZE = 25
#: Longest search text accepted (the SCIM filter repeats it once per attribute).
MAX_SEARCH = 200
#: The attributes a user search looks in.
USER_SEARCH = ("userName", "displayName", "name.formatted", "name.givenName",
               "name.familyName", "emails.value", "title",
               "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department")
#: The Users table's sortable columns: ``?sort=`` value → SCIM sortBy.
USER_SORTS = {"userName": "userName", "name": "displayName", "title": "title",
              "department": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:"
                            "department"}
EXPIRY_CHOICES = {"": None, "30d": timedelta(days=30), "90d": timedelta(days=90),
                  "365d": timedelta(days=365)}
GRACE_CHOICES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24),
                 "7d": timedelta(days=7)}
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
EVERYTHING = Projection()
MEMBER_ROW = Projection(tuple(parse_attribute_list(
    "userName,displayName,name.formatted,name.givenName,name.familyName,emails,active")))


# --- plumbing ----------------------------------------------------------------------------


def _ext() -> Any:
    return current_app.extensions["scim_bridge"]


def _store() -> Store:
    return _ext().authenticator.store(connection())


def endpoint() -> str:
    """The SCIM endpoint to paste into Entra (``SCIM_PUBLIC_URL`` + ``/scim/v2``)."""
    return state().settings.SCIM_PUBLIC_URL.rstrip("/") + "/scim/v2"


def _tenant() -> Tenant:
    """The tenant named by ``?tenant=`` (or the form), default ``default``; 404 if unknown."""
    name = request.values.get("tenant", "default") or "default"
    try:
        return _store().tenant(name)
    except KeyError:
        raise NotFound(f"There is no tenant {name!r}.") from None


def _context(tenant: Tenant) -> Context:
    repo = Repository(connection(), tenant)
    g.admin_repo = repo
    return Context(repo, _ext().mapping, endpoint(), _ext().options)


#: Past any real result (25 a page): a larger page number is answered as this one, an
#: empty page, instead of a startIndex no directory can page to.
MAX_PAGE = 10**8


def _page() -> int:
    try:
        return min(max(1, int(request.args.get("page", "1"))), MAX_PAGE)
    except ValueError:
        return 1


def literal(text: str) -> str:
    """``text`` as a SCIM filter string literal (JSON string syntax, RFC 7644 §3.4.2.2)."""
    return json.dumps(text, ensure_ascii=False)


@dataclass(frozen=True)
class Pager:
    """Where a page sits in a result: 1-based page number, size and total."""

    page: int
    size: int
    total: int

    @property
    def start(self) -> int:
        return (self.page - 1) * self.size + 1

    @property
    def first(self) -> int:
        return min(self.start, self.total)

    @property
    def last(self) -> int:
        return min(self.start + self.size - 1, self.total)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    def link(self, page: int) -> str:
        args = {**request.args.to_dict(), "page": str(page)}
        return url_for(str(request.endpoint), **(request.view_args or {}), **args)


def _search(ctx: Context, kind: str, flt: str | None, page: int, *, sort_by: str | None,
            projection: Projection = EVERYTHING, size: int = PAGE_SIZE,
            descending: bool = False) -> tuple[Pager, list]:
    q = query.Query(flt, (page - 1) * size + 1, size, projection, sort_by, descending)
    result = query.search(ctx, kind, q)
    return Pager(page, size, int(result["totalResults"])), result["Resources"]


@bp.after_request
def headers(response: Response) -> Response:
    """Pages are private and may show a token once: never cached, never framed."""
    if request.endpoint == "admin.static":
        return response  # revalidated by ETag (Flask's default for static files)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "connect-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    return response


def _error_page(status: int, title: str, message: str) -> Response:
    page = render_template("admin/error.html", status=status, title=title, message=message)
    return Response(page, status=status)


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException) -> Response:
    return _error_page(error.code or 500, error.name, error.description or "")


@bp.errorhandler(ScimError)
def scim_error(error: ScimError) -> Response:
    return _error_page(error.status, "The request could not be answered", error.detail)


@bp.errorhandler(DirectoryUnavailable)
def unavailable(error: DirectoryUnavailable) -> Response:
    g.admin_broken = True
    log.warning("directory unavailable: %s", error)
    return _error_page(503, "Directory unavailable",
                       f"This page needs the directory, which does not answer: {error}. "
                       "The Connector and Activity pages work meanwhile (they read the "
                       "audit file).")


@bp.errorhandler(DirectoryError)
def directory_error(error: DirectoryError) -> Response:
    if isinstance(error, DirectoryBusy):
        return _error_page(503, "Directory busy", f"{error}; try again in a moment.")
    log.warning("directory error on %s: %s", request.path, error)
    return _error_page(500, "Directory error", str(error))


@bp.errorhandler(Exception)
def unexpected(error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _error_page(500, "Internal error", "Something went wrong; it has been logged.")


@bp.context_processor
def page_globals() -> dict[str, Any]:
    return {"signed_in": g.get("admin_user"), "fmt_time": fmt_time, "short_time": short_time}


def short_time(value: datetime | None) -> str:
    """``2026-01-31 14:05`` (UTC, said in the column's heading); ``-`` when absent."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def fmt_time(value: Any, seconds: bool = False) -> str:
    """A datetime or RFC 3339 text as ``2026-01-31 14:05 UTC``; ``-`` when absent."""
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")
    return str(value)


# --- Connector ---------------------------------------------------------------------------


@bp.get("/")
def index() -> ResponseReturnValue:
    return redirect(url_for("admin.connector"))


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def readiness(tenant: Tenant) -> list[Check]:
    """Directory reachable (a pooled connection answers), then the readiness check of
    ``/readyz`` for this tenant: base entries, the placeholder and the schema present.

    Each runs on a connection of its own, so an unreachable directory is reported as a
    failed check, not as an error page.
    """
    settings = state().settings
    pool = _ext().pool
    started = time.perf_counter()
    try:
        with pool.connection() as conn:  # checkout binds; one read proves it answers
            ldap_login.missing_entries(conn, [tenant.base_dn])
    except DirectoryError as exc:
        return [Check("Directory reachable", False,
                      f"{settings.LDAP_URL}: {exc or type(exc).__name__}"),
                Check("Base entries and schema present", False,
                      "not checked: no directory connection")]
    elapsed = (time.perf_counter() - started) * 1000
    checks = [Check("Directory reachable", True,
                    f"{settings.LDAP_URL} answered and accepted the service's bind "
                    f"({elapsed:.0f} ms)")]
    problem = observability.directory_problem(pool, tenant)
    checked = (f"{tenant.people_dn}, {tenant.groups_dn}, {tenant.placeholder_dn} and the "
               "scimResource object class")
    checks.append(Check("Base entries and schema present", problem is None,
                        problem or checked))
    return checks


@dataclass(frozen=True)
class Health:
    """What the Connector's health panel shows; read from the audit file and one
    connection attempt, so it answers while the directory is down."""

    directory_ok: bool
    directory_error: str
    last_contact: activity.Contact | None
    auth_failure: activity.Record | None
    audit_file: bool


def directory_state() -> str | None:
    """The directory's current problem in words (what to fix), or None when it answers."""
    down = g.get("directory_down")
    if down is not None:
        return str(down) or type(down).__name__
    try:
        with _ext().pool.connection() as conn:
            ldap_login.missing_entries(conn, [state().settings.LDAP_BASE_DN])
    except DirectoryError as exc:
        return str(exc) or type(exc).__name__
    return None


def health(tenant_name: str | None = None) -> Health:
    records = recent_records()
    contacts = [c for c in activity.last_contacts(records, _now())
                if tenant_name is None or c.tenant == tenant_name]
    problem = directory_state()
    return Health(problem is None, problem or "", contacts[0] if contacts else None,
                  activity.last_auth_failure(records), state().audit is not None)


#: Session keys of a secret shown once after a redirect (POST, redirect, GET).
SHOWN = "shown_secret"


def _show_once(tenant: Tenant, secret: str, note: str) -> ResponseReturnValue:
    """Redirect to the Connector, which shows ``secret`` once: a reload does not resubmit
    the form, and the secret leaves the (signed, HttpOnly) session as it is shown."""
    session[SHOWN] = {"secret": secret, "note": note, "tenant": tenant.name}
    return redirect(url_for("admin.connector", tenant=tenant.name), 303)


def _connector(tenant: Tenant | None, name: str, *, checks: list[Check] | None = None,
               status: int = 200) -> Response:
    shown = session.pop(SHOWN, None)
    if not isinstance(shown, dict) or shown.get("tenant") != name:
        shown = {}
    panel = health(name)
    tokens: list[TokenInfo] = []
    clients: list[TokenInfo] = []
    tenants: list[Tenant] = []
    unavailable = ""
    now = datetime.now(UTC)
    if tenant is not None:
        try:
            store = _store()
            now = store.clock()
            tokens = store.tokens(tenant=tenant.name)
            clients = [c for c in store.clients() if c.tenant == tenant.name]
            tenants = store.tenants()
        except DirectoryError as exc:
            g.admin_broken = True
            unavailable = str(exc) or type(exc).__name__
    else:
        unavailable = panel.directory_error or "the directory did not answer"
    page = render_template(
        "admin/connector.html", active="connector", tenant=tenant or Tenant(name, "", ""),
        tenants=tenants, endpoint=endpoint(), tokens=tokens, clients=clients, now=now,
        secret=shown.get("secret"), secret_note=shown.get("note", ""), checks=checks,
        health=panel, unavailable=unavailable, expiry_choices=list(EXPIRY_CHOICES),
        grace_choices=list(GRACE_CHOICES),
        static_token=bool(state().settings.SCIM_BEARER_TOKEN) and name == "default")
    return Response(page, status=status)


def _connector_tenant() -> tuple[Tenant | None, str]:
    """The Connector's tenant, or None (and its name) when the directory is down."""
    name = request.values.get("tenant", "default") or "default"
    if g.get("directory_down") is not None:
        return None, name
    try:
        return _tenant(), name
    except DirectoryError as exc:
        g.directory_down = exc
        g.admin_broken = True
        return None, name


@bp.get("/connector")
def connector() -> ResponseReturnValue:
    tenant, name = _connector_tenant()
    checks = readiness(tenant) if tenant is not None and request.args.get("check") else None
    return _connector(tenant, name, checks=checks)


@bp.post("/connector/check")
def connector_check() -> ResponseReturnValue:
    tenant = _tenant()
    return redirect(url_for("admin.connector", tenant=tenant.name, check="1"), 303)


def _audit_token(action: str, token_id: str, tenant: Tenant, status: int) -> None:
    """Record a dashboard token write in the audit trail (when there is one)."""
    write = state().audit_write
    if write is None:
        return
    try:
        write(token=f"admin:{g.admin_user['login']}", tenant=tenant.name,
              client=request.remote_addr, operation=action, method=request.method,
              resource="Token", resource_id=token_id, status=status,
              admin=g.admin_user["dn"])
    except Exception:  # noqa: BLE001 - the audit trail must not break the dashboard
        log.exception("could not write the audit record for token %s %s", action, token_id)


@bp.post("/connector/tokens")
def token_create() -> ResponseReturnValue:
    tenant = _tenant()
    name = request.form.get("name", "").strip()[:64]
    expiry = request.form.get("expires", "")
    if not name or expiry not in EXPIRY_CHOICES:
        flash("Give the token a name (what it is for, e.g. entra-prod).", "error")
        return redirect(url_for("admin.connector", tenant=tenant.name))
    store = _store()
    lifetime = EXPIRY_CHOICES[expiry]
    key, token = store.create_token(tenant, name, store.clock() + lifetime if lifetime else None)
    log.info("admin %s created token %s (%s) for tenant %s", g.admin_user["dn"], key, name,
             tenant.name)
    _audit_token("create", key, tenant, 201)
    return _show_once(tenant, token, f"New token {name!r} ({key}).")


@bp.post("/connector/tokens/<token_id>/rotate")
def token_rotate(token_id: str) -> ResponseReturnValue:
    tenant = _tenant()
    grace = GRACE_CHOICES.get(request.form.get("grace", "24h"), GRACE_CHOICES["24h"])
    store = _store()
    try:
        key, token = store.rotate(token_id, grace)
    except KeyError:
        raise NotFound(f"There is no token {token_id!r}.") from None
    except ValueError as exc:
        flash(f"{exc}.", "error")
        return redirect(url_for("admin.connector", tenant=tenant.name), 303)
    ends = store.clock() + grace
    log.info("admin %s rotated token %s into %s", g.admin_user["dn"], token_id, key)
    _audit_token("rotate", token_id, tenant, 201)
    return _show_once(tenant, token, f"Replacement for {token_id} (new id {key}). The old "
                                     f"token keeps working until {fmt_time(ends)}.")


@bp.post("/connector/tokens/<token_id>/revoke")
def token_revoke(token_id: str) -> ResponseReturnValue:
    tenant = _tenant()
    if not _store().revoke_token(token_id):
        raise NotFound(f"There is no token {token_id!r}.")
    log.info("admin %s revoked token %s", g.admin_user["dn"], token_id)
    _audit_token("revoke", token_id, tenant, 204)
    seconds = state().settings.SCIM_TOKEN_CACHE_SECONDS
    flash(f"Token {token_id} revoked. Running workers refuse it within {seconds} seconds.",
          "ok")
    return redirect(url_for("admin.connector", tenant=tenant.name))


# --- Users -------------------------------------------------------------------------------


def user_filter(text: str, status: str) -> str | None:
    """The SCIM filter for the Users page: words in any name or email, and a status."""
    parts = []
    if text:
        value = literal(text)
        parts.append("(" + " or ".join(f"{a} co {value}" for a in USER_SEARCH) + ")")
    if status == "active":
        parts.append("not (active eq false)")
    elif status == "disabled":
        parts.append("active eq false")
    return " and ".join(parts) or None


def _search_text() -> str:
    return request.args.get("q", "").strip()[:MAX_SEARCH]


@bp.get("/users")
def users_page() -> ResponseReturnValue:
    tenant = _tenant()
    text = _search_text()
    status = request.args.get("status", "all")
    status = status if status in ("all", "active", "disabled") else "all"
    sort = request.args.get("sort", "userName")
    sort = sort if sort in USER_SORTS else "userName"
    descending = request.args.get("order") == "desc"
    ctx = _context(tenant)
    pager, found = _search(ctx, "User", user_filter(text, status), _page(),
                           sort_by=USER_SORTS[sort], descending=descending)
    rows = [user_row(u) for u in found]
    return render_template("admin/users.html", active="users", tenant=tenant,
                           tenants=_store().tenants(), q=text, status=status, pager=pager,
                           users=rows, sort=sort, descending=descending)


def user_row(user: dict) -> dict:
    """What a table row shows of a SCIM User."""
    emails = user.get("emails") or []
    primary = next((e for e in emails if e.get("primary")), emails[0] if emails else {})
    name = user.get("name") or {}
    parts = " ".join(n for n in (name.get("givenName"), name.get("familyName")) if n)
    enterprise = user.get(ENTERPRISE) or {}
    return {
        "id": user["id"],
        "userName": user.get("userName", ""),
        "display": user.get("displayName") or name.get("formatted") or parts,
        "email": primary.get("value", ""),
        "active": user.get("active") is not False,
        "groups": user.get("groups") or [],
        "title": user.get("title", ""),
        "department": enterprise.get("department", ""),
        "manager": enterprise.get("manager") or None,
    }


#: Labels of the attributes a user page shows (path as ``flatten`` writes it).
LABELS = {
    "userName": "User name", "displayName": "Display name", "nickName": "Nickname",
    "name.formatted": "Full name", "name.givenName": "Given name",
    "name.familyName": "Family name", "name.middleName": "Middle name",
    "name.honorificPrefix": "Prefix", "name.honorificSuffix": "Suffix",
    "title": "Job title", "userType": "User type", "preferredLanguage": "Language",
    "locale": "Locale", "timezone": "Time zone", "active": "Active",
    "externalId": "External id (Entra objectId)", "profileUrl": "Profile URL",
    "enterprise.employeeNumber": "Employee number", "enterprise.costCenter": "Cost center",
    "enterprise.organization": "Organization", "enterprise.division": "Division",
    "enterprise.department": "Department",
}
#: What an MDM reading LDAP sees of a user besides the mapped attributes.
MDM_ATTRIBUTES = ["memberOf", "pwdAccountLockedTime", "scimActive", "objectClass"]
#: A user page lists this many direct reports at most.
REPORTS_SHOWN = 50


def manager_filter(user_id: str) -> str:
    return f"{ENTERPRISE}:manager.value eq {literal(user_id)}"


def _no_tenant_given() -> bool:
    return "tenant" not in request.values


def _find_anywhere(kind: str, scim_id: str) -> str | None:
    """The tenant of the resource ``scim_id`` when the URL names none (an old link, a
    pasted id): the default tenant first, then the others."""
    store = _store()
    finder = users.find if kind == "User" else groups.find
    for tenant in store.tenants():
        try:
            finder(_context(tenant), scim_id)
        except ScimError:
            continue
        return tenant.name
    return None


@bp.get("/users/<scim_id>")
def user_page(scim_id: str) -> ResponseReturnValue:
    if _no_tenant_given():
        found = _find_anywhere("User", scim_id)
        if found is None:
            raise NotFound(f"There is no user {scim_id!r} in any tenant.")
        return redirect(url_for("admin.user_page", scim_id=scim_id, tenant=found))
    tenant = _tenant()
    ctx = _context(tenant)
    with directory_errors(ctx.options.retry_after):
        entry = users.find(ctx, scim_id)
        resource = users.render(ctx, entry, users.reference_index(ctx, [entry], True))
        mdm = ctx.repo.read(entry.dn, MDM_ATTRIBUTES)
    _, reports = _search(ctx, "User", manager_filter(scim_id), 1, sort_by="userName",
                         projection=MEMBER_ROW, size=REPORTS_SHOWN)
    manager = (resource.get(ENTERPRISE) or {}).get("manager") or None
    events = history(scim_id)
    disabled = next((e for e in events or [] if e.change == "disable" and not e.failed), None)
    lock = mdm.first("pwdAccountLockedTime") if mdm else None
    return render_template(
        "admin/user.html", active="users", tenant=tenant, tenants=_store().tenants(),
        user=user_row(resource), resource=resource, dn=entry.dn,
        attributes=labelled(flatten(resource)), manager=manager,
        reports=[user_row(r) for r in reports], member_of=sorted(
            str(v) for v in (mdm.values("memberOf") if mdm else [])),
        locked=lock is not None, lock_time=str(lock) if lock else "",
        ldap_active=str(mdm.first("scimActive")) if mdm and mdm.first("scimActive") else "",
        disabled=disabled, events=events,
        raw=json.dumps(resource, indent=2, ensure_ascii=False))


def labelled(rows: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(label, path, value): a person's word for each attribute, its SCIM path kept for
    the tooltip; the manager is shown apart (as a link)."""
    out = []
    for path, value in rows:
        if path.startswith("enterprise.manager"):
            continue
        label = LABELS.get(path)
        if label is None:
            head, _, rest = path.partition("[")
            base = LABELS.get(head, head)
            label = f"{base} ({rest.rstrip(']').replace('].', ', ')})" if rest else base
        out.append((label, path, value))
    return out


def flatten(resource: dict) -> list[tuple[str, str]]:
    """SCIM attributes as (path, value) rows; ``schemas``, ``id``, ``meta`` and
    ``groups`` are shown elsewhere on the page. An extension's attributes are prefixed
    with its short name (``enterprise.department``)."""
    rows: list[tuple[str, str]] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if key == "$ref":
                    continue
                parts = key.split(":")
                short = parts[-3].lower() if key.startswith("urn:") and len(parts) > 3 \
                    else key
                walk(inner, f"{path}.{short}" if path else short)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict) and "type" in item:
                    rest = {k: v for k, v in item.items() if k != "type"}
                    walk(rest, f"{path}[{item['type']}]")
                else:
                    walk(item, path)
        else:
            text = json.dumps(value) if isinstance(value, bool) else str(value)
            rows.append((path, text))

    walk({k: v for k, v in resource.items()
          if k not in ("schemas", "id", "meta", "groups")}, "")
    return rows


# --- Groups ------------------------------------------------------------------------------


def member_filter(group_id: str) -> str:
    """Users whose groups include ``group_id`` (direct members)."""
    return f"groups.value eq {literal(group_id)}"


@bp.get("/groups")
def groups_page() -> ResponseReturnValue:
    tenant = _tenant()
    text = _search_text()
    ctx = _context(tenant)
    flt = f"displayName co {literal(text)}" if text else None
    light = Projection(excluded=tuple(parse_attribute_list("members")))
    pager, found = _search(ctx, "Group", flt, _page(), sort_by="displayName", projection=light)
    counts = groups.user_counts(ctx, [grp["id"] for grp in found])
    rows = [{"id": grp["id"], "displayName": grp.get("displayName", ""),
             "externalId": grp.get("externalId", ""),
             "users": counts.get(grp["id"], 0),
             "modified": grp["meta"].get("lastModified")} for grp in found]
    return render_template("admin/groups.html", active="groups", tenant=tenant,
                           tenants=_store().tenants(), q=text, pager=pager, groups=rows)


@bp.get("/groups/<scim_id>")
def group_page(scim_id: str) -> ResponseReturnValue:
    if _no_tenant_given():
        found = _find_anywhere("Group", scim_id)
        if found is None:
            raise NotFound(f"There is no group {scim_id!r} in any tenant.")
        return redirect(url_for("admin.group_page", scim_id=scim_id, tenant=found))
    tenant = _tenant()
    ctx = _context(tenant)
    with directory_errors(ctx.options.retry_after):
        entry = groups.find(ctx, scim_id)
        resource = groups.render(ctx, entry, None)
    pager, members = _search(ctx, "User", member_filter(scim_id), _page(), sort_by="userName",
                             projection=MEMBER_ROW)
    return render_template("admin/group.html", active="groups", tenant=tenant,
                           tenants=_store().tenants(), group=resource, dn=entry.dn,
                           pager=pager, members=[user_row(m) for m in members],
                           events=history(scim_id))


# --- Activity ----------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.fromtimestamp(state().clock(), UTC)


def recent_records() -> list[activity.Record]:
    """The newest ``READ_LIMIT`` records of the trail (none without a file)."""
    reader = state().audit
    if reader is None:
        return []
    return [activity.normalise(r) for r in reader(activity.READ_LIMIT, None)]


def _activity_tenant() -> Tenant | None:
    """The dashboard's tenant for the navigation, from ``?tenant=`` without the
    directory (Activity must work while it is down)."""
    name = request.args.get("tenant", "")
    if not name or name == "*":
        return None
    return Tenant(name, "", "")


@bp.get("/activity")
def activity_page() -> ResponseReturnValue:
    filters = activity.Filters.from_args(request.args)
    reader = state().audit
    tenant = _activity_tenant()
    if reader is None:
        return render_template("admin/activity.html", active="activity", configured=False,
                               filters=filters, tenant=tenant)
    now = _now()
    day = recent_records()
    names = activity.known_names(day)
    page = activity.table(reader, filters, _page(), now, names)
    found = activity.cycles(day, now)
    reasons, reasons_height = activity.failure_reasons(day, now)
    return render_template(
        "admin/activity.html", active="activity", configured=True, filters=filters,
        tenant=tenant, page=page, rows=page.rows, chart=activity.hourly_chart(day, now),
        summary=activity.summary(day, now), truncated=len(day) >= activity.READ_LIMIT,
        read_limit=activity.READ_LIMIT, cycles=found[:activity.CYCLES_SHOWN],
        cycle_chart=activity.cycle_chart(found), kinds=activity.KINDS,
        kind_colours=activity.KIND_COLOURS, reasons=reasons, reasons_height=reasons_height,
        contacts=activity.last_contacts(day, now),
        auth_failure=activity.last_auth_failure(day),
        tenants=sorted({r.tenant for r in day if r.tenant}),
        ranges=list(activity.RANGES), resources=activity.RESOURCES,
        operations=activity.OPERATIONS, unchecked=g.get("membership_unchecked", False),
        activity_link=lambda **changes: url_for("admin.activity_page",
                                                **filters.args(**changes)))


@bp.get("/activity.csv")
def activity_csv() -> ResponseReturnValue:
    """The filtered records as CSV (at most ``EXPORT_LIMIT``), for a spreadsheet."""
    reader = state().audit
    if reader is None:
        raise NotFound("The audit trail goes to standard output: set AUDIT_LOG to a file.")
    filters = activity.Filters.from_args(request.args)
    names = activity.known_names(recent_records())
    body = activity.export_csv(reader, filters, _now(), names)
    stamp = _now().strftime("%Y%m%d-%H%M%S")
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="scim-activity-{stamp}.csv"'})


def history(scim_id: str, limit: int = 50) -> list[activity.Record] | None:
    """The audit records of one resource, newest first (None without an audit file)."""
    reader = state().audit
    if reader is None:
        return None
    filters = activity.Filters(resource_id=scim_id)
    return [activity.normalise(r) for r in reader(limit, None, where=filters.matches,
                                                    contains=scim_id)]
