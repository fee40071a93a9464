"""Operations endpoints and per-request bookkeeping: request ids, metrics, audit trail.

- ``/healthz``: the process answers (no auth, no directory access). For liveness probes.
- ``/readyz``: the directory answers and holds what the service needs (the tenant's base
  entries, the empty-group placeholder, the ``scimResource`` class in the subschema);
  otherwise 503 with ``Retry-After``. For load balancers. Neither names a DN, host or
  version: the reason goes to the log. A ready answer says which ``LDAP_URL`` (by its
  1-based position, not its host) this worker writes to, and whether that provider lags
  behind another one (contextCSN, sampled by each probe and exported as a metric).
- ``/metrics``: Prometheus text format, only with ``Authorization: Bearer <METRICS_TOKEN>``;
  404 while ``METRICS_TOKEN`` is empty.

Every request gets an id (a valid incoming ``X-Request-ID``, else a new one), returned in
``X-Request-ID`` and carried by every log record meanwhile. Every change through the SCIM
blueprint is recorded by :func:`audit_change`, which ``scim/api.py`` calls from its
``after_request``.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, g, jsonify, request

from config import Settings
from directory import Pool, Repository, Tenant
from directory.errors import DirectoryError
from directory.replication import Lag, sample_lag
from scim.audit import (
    AuditLog,
    active_change,
    changed_attributes,
    error_fields,
    operation_of,
    resource_name,
)
from scim.logs import new_request_id, request_id, valid_request_id
from scim.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger("scim.observability")
bp = Blueprint("ops", __name__)
KEY = "scim_observability"
CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RESOURCE_TYPES = {"Users": "User", "Groups": "Group"}
_SCIM_RESOURCE = re.compile(r"NAME\s+(\(\s*)?'scimResource'", re.I)
#: A ``contact`` record per token, and a 429 record per address, at most this often
#: (per worker): enough to tell the last contact, never a flood.
CONTACT_EVERY = 60.0
MAX_REMEMBERED = 10_000


@dataclass
class Observability:
    """What the hooks and endpoints need, in ``app.extensions["scim_observability"]``."""

    metrics: Metrics
    audit: AuditLog
    metrics_token: bytes
    retry_after: int
    pool: Pool
    tenant: Tenant
    ready: bool | None = None  # this worker's last readiness answer (log changes only)
    #: monotonic time of the last ``contact`` record per token id, and 429 per address
    contacts: dict[str, float] = field(default_factory=dict)


def init_app(app: Flask, settings: Settings, pool: Pool, tenant: Tenant) -> Observability:
    """Register the hooks (before any other app-level hook) and the endpoints."""
    metrics = Metrics()
    pool.on_failover = lambda _old, _new: metrics.ldap_failovers.inc()
    obs = Observability(metrics, AuditLog(settings.AUDIT_LOG, metrics.audit_failures.inc),
                        settings.METRICS_TOKEN.encode(), settings.SCIM_RETRY_AFTER,
                        pool, tenant)
    app.extensions[KEY] = obs
    app.before_request(_begin)
    app.after_request(_finish)
    app.teardown_request(_end)
    app.register_blueprint(bp)
    return obs


def current() -> Observability:
    return current_app.extensions[KEY]  # type: ignore[no-any-return]


def ldap_observer() -> Any:
    """The callback a request's ``Repository`` reports its LDAP operations to."""
    return current().metrics.ldap


# --- per request --------------------------------------------------------------------------


def _begin() -> None:
    incoming = request.headers.get("X-Request-ID")
    g.request_id = incoming if incoming and valid_request_id(incoming) else new_request_id()
    g.request_started = time.perf_counter()
    request_id.set(g.request_id)


def _elapsed() -> float:
    started: float = g.get("request_started", time.perf_counter())
    return time.perf_counter() - started


def _finish(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id") or new_request_id()
    endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
    current().metrics.request(endpoint, request.method, response.status_code, _elapsed())
    return response


def _end(exc: BaseException | None) -> None:
    request_id.set("")


def audit_change(response: Response, principal: Any) -> Response:
    """Record a change made through SCIM (``after_request`` of the SCIM blueprint).

    Only authenticated requests that may change something are recorded (POST, PUT,
    PATCH, DELETE, except the read-only ``.search``), whatever their status.
    """
    rule = request.url_rule
    if principal is None:
        if response.status_code in (401, 429):
            audit_auth_failure(response.status_code)
        return response
    if request.method not in CHANGES or rule is None or rule.rule.endswith("/.search"):
        _contact(principal, response.status_code)
        return response
    parts = rule.rule.split("/")
    resource = RESOURCE_TYPES.get(parts[3], parts[3]) if len(parts) > 3 else ""
    body = _body(response)
    extra: dict[str, Any] = {}
    failed = response.status_code >= 400
    # The request names the resource (POST, PUT, a renaming PATCH); else a small answer
    # does. A large one (a PUT of a big group) is not parsed again just for its name.
    name = resource_name(resource, body)
    if name is None and not failed:
        name = resource_name(resource, _small_answer(response))
    if name:
        extra["name"] = name
    change = active_change(request.method, body) if resource == "User" else None
    if change:
        extra["change"] = change
    if failed:
        extra.update(error_fields(body, _small_answer(response)))
    current().audit.record(
        token=principal.token_name,
        token_id=principal.token_id,
        tenant=principal.tenant.name,
        client=request.remote_addr,
        operation=operation_of(request.method),
        method=request.method,
        resource=resource,
        resource_id=(request.view_args or {}).get("scim_id") or _created_id(response),
        attributes=changed_attributes(request.method, body),
        status=response.status_code,
        duration_ms=round(_elapsed() * 1000, 3),
        **extra,
    )
    return response


#: Answers read back for the audit record (a SCIM error body, a user) at most this big.
SMALL_ANSWER = 64 * 1024


def _small_answer(response: Response) -> Any:
    if response.status_code == 204 or response.is_streamed:
        return None
    length = response.content_length
    if length is None or length > SMALL_ANSWER:
        return None
    return response.get_json(silent=True)


def _due(key: str) -> bool:
    """Whether a rate-limited record for ``key`` may be written now (per worker)."""
    seen = current().contacts
    at = time.monotonic()
    if at - seen.get(key, float("-inf")) < CONTACT_EVERY:
        return False
    if len(seen) >= MAX_REMEMBERED:
        seen.clear()
    seen[key] = at
    return True


def _contact(principal: Any, status: int) -> None:
    """A ``contact`` record: this token reached the service (at most once a minute)."""
    if not _due(f"token:{principal.token_id}"):
        return
    current().audit.record(
        token=principal.token_name, token_id=principal.token_id,
        tenant=principal.tenant.name, client=request.remote_addr, operation="contact",
        method=request.method, resource="", path=request.path[:200], status=status)


def audit_auth_failure(status: int, reason: str = "") -> None:
    """A failed authentication (401) or a refused address (429, once a minute per
    address and worker): who knocked, from where, on what, never with what token."""
    address = request.remote_addr or "unknown"
    if status == 429 and not _due(f"429:{address}"):
        return
    if not reason:
        reason = "too many failed authentications" if status == 429 else \
            g.get("auth_failure") or "no valid bearer token"
    current().audit.record(
        token="", tenant="", client=address, operation="authenticate",
        method=request.method, resource="", path=request.path[:200], status=status,
        reason=reason)


def _created_id(response: Response) -> str | None:
    if response.status_code != 201:
        return None
    body = response.get_json(silent=True)
    return body.get("id") if isinstance(body, dict) else None


def _body(response: Response) -> Any:
    """The body the view parsed (``scim.web.json_body``), never parsed again here: a
    body it refused (too deep, not JSON, wrong media type) names no attributes."""
    if request.method == "DELETE":
        return None
    return g.get("scim_body")


# --- endpoints ------------------------------------------------------------------------------


def _plain(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(headers or {})
    return response


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: this process serves requests. Touches nothing else."""
    return _plain({"status": "ok"}, 200)


@bp.get("/readyz")
def readyz() -> Response:
    """Readiness: the directory answers and holds our base entries and schema."""
    obs = current()
    lag = Lag(None)
    problem = directory_problem(obs.pool, obs.tenant, lag)
    ready = problem is None
    if ready != obs.ready:
        if ready:
            log.info("ready: the directory answers and holds the schema")
        else:
            log.warning("not ready: %s", problem)
        obs.ready = ready
    if ready:
        provider = obs.pool.current + 1
        obs.metrics.provider(provider, lag.seconds)
        if lag.lagging:
            log.warning("the provider this worker writes to (LDAP_URL #%d) lags %.3f s "
                        "behind another one", provider, lag.seconds)
        return _plain({"status": "ready", "provider": provider, "lagging": lag.lagging}, 200)
    return _plain({"status": "unavailable"}, 503, {"Retry-After": str(obs.retry_after)})


def directory_problem(pool: Pool, tenant: Tenant, lag: Lag | None = None) -> str | None:
    """Why the directory cannot serve SCIM now (for the log), or None when it can.

    With ``lag``, also sample the replication lag of the provider the pool writes to
    (its ``seconds`` is set) when there are several ``LDAP_URL``s."""
    try:
        with pool.connection() as conn:
            repo = Repository(conn, tenant)
            repo.observer = ldap_observer()
            for dn in (tenant.people_dn, tenant.groups_dn, tenant.placeholder_dn):
                if repo.read(dn, ["1.1"]) is None:
                    return f"entry {dn} is missing"
            root = repo.read("", ["subschemaSubentry"])
            subschema = str(root.first("subschemaSubentry") or "") if root else ""
            entry = repo.read(subschema or "cn=Subschema", ["objectClasses"])
            classes = entry.values("objectClasses") if entry else []
            if not any(_SCIM_RESOURCE.search(str(c)) for c in classes):
                return "the scimResource object class is not in the directory's schema"
            if lag is not None and len(pool.urls) > 1:
                lag.seconds = sample_lag(pool.settings, conn, pool.current).seconds
    except DirectoryError as exc:
        return f"directory error: {type(exc).__name__}: {exc}"
    return None


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus scrape; needs ``Authorization: Bearer <METRICS_TOKEN>``."""
    obs = current()
    if not obs.metrics_token:
        abort(404)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(),
                                                             obs.metrics_token):
        return Response("a valid bearer token is required\n", 401, mimetype="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return Response(obs.metrics.exposition(), 200, content_type=CONTENT_TYPE,
                    headers={"Cache-Control": "no-store"})
