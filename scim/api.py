"""The SCIM blueprint at /scim/v2 (RFC 7644 §3): one short view per resource and method."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from directory import Mapping, Pool, Repository
from scim import observability
from scim.auth import Principal
from scim.protocol.errors import InvalidSyntax, InvalidValue
from scim.protocol.paths import parse_attribute_list
from scim.protocol.projection import Projection, project, wants
from scim.protocol.schema import GROUP, SEARCH_REQUEST, USER
from scim.service import groups, query, users
from scim.service.common import Context, Options
from scim.web import json_body, scim_response

bp = Blueprint("scim", __name__, url_prefix="/scim/v2")


@dataclass
class Extension:
    """What the views need, stored in ``app.extensions["scim_bridge"]``."""

    pool: Pool
    mapping: Mapping
    options: Options
    auth: Any
    settings: Any
    authenticator: Any


def ext() -> Extension:
    return current_app.extensions["scim_bridge"]


@bp.before_request
def authenticate() -> Response | None:
    """Every endpoint, discovery included, needs the bearer token."""
    ext().authenticator.check_rate()
    return ext().auth.login_required(lambda: None)()


def context() -> Context:
    """Check out a connection on first use in this request (returned at teardown)."""
    if "scim_ctx" not in g:
        principal: Principal = ext().auth.current_user()
        conn = ext().pool.checkout()
        g.scim_conn = conn
        repo = Repository(conn, principal.tenant)
        repo.observer = observability.ldap_observer()
        base_url = request.url_root.rstrip("/") + bp.url_prefix
        g.scim_ctx = Context(repo, ext().mapping, base_url, ext().options)
    return g.scim_ctx


@bp.after_request
def audit(response: Response) -> Response:
    """Every change made through SCIM goes to the audit trail (scim/audit.py)."""
    return observability.audit_change(response, ext().auth.current_user())


@bp.teardown_request
def release(exc: BaseException | None) -> None:
    conn = g.pop("scim_conn", None)
    ctx = g.pop("scim_ctx", None)
    if conn is not None:
        ext().pool.checkin(conn, broken=bool(ctx and ctx.repo.broken))


def projection() -> Projection:
    return Projection(
        tuple(parse_attribute_list(request.args.get("attributes", ""))),
        tuple(parse_attribute_list(request.args.get("excludedAttributes", ""))),
    )


def resource_response(resource: dict, rtype: Any, status: int = 200) -> Response:
    headers = {"ETag": resource["meta"]["version"]}
    if status == 201:
        headers["Location"] = resource["meta"]["location"]
    return scim_response(project(resource, rtype, projection()), status, headers)


# --- Users ------------------------------------------------------------------------------


@bp.post("/Users")
def create_user() -> Response:
    return resource_response(users.create(context(), json_body()), USER, 201)


@bp.get("/Users/<scim_id>")
def get_user(scim_id: str) -> Response:
    resource = users.get(context(), scim_id, wants(USER, projection(), "groups"))
    return resource_response(resource, USER)


@bp.put("/Users/<scim_id>")
def replace_user(scim_id: str) -> Response:
    resource = users.replace(context(), scim_id, json_body(), request.headers.get("If-Match"))
    return resource_response(resource, USER)


@bp.patch("/Users/<scim_id>")
def patch_user(scim_id: str) -> Response:
    resource = users.patch(context(), scim_id, json_body(), request.headers.get("If-Match"))
    return resource_response(resource, USER)


@bp.delete("/Users/<scim_id>")
def delete_user(scim_id: str) -> Response:
    users.delete(context(), scim_id, request.headers.get("If-Match"))
    return scim_response(status=204)


# --- Groups -----------------------------------------------------------------------------


@bp.post("/Groups")
def create_group() -> Response:
    return resource_response(groups.create(context(), json_body()), GROUP, 201)


@bp.get("/Groups/<scim_id>")
def get_group(scim_id: str) -> Response:
    resource = groups.get(context(), scim_id, wants(GROUP, projection(), "members"))
    return resource_response(resource, GROUP)


@bp.put("/Groups/<scim_id>")
def replace_group(scim_id: str) -> Response:
    resource = groups.replace(context(), scim_id, json_body(), request.headers.get("If-Match"))
    return resource_response(resource, GROUP)


@bp.patch("/Groups/<scim_id>")
def patch_group(scim_id: str) -> Response:
    version = groups.patch(context(), scim_id, json_body(), request.headers.get("If-Match"))
    return scim_response(status=204, headers={"ETag": version})


@bp.delete("/Groups/<scim_id>")
def delete_group(scim_id: str) -> Response:
    groups.delete(context(), scim_id, request.headers.get("If-Match"))
    return scim_response(status=204)


# --- Query ------------------------------------------------------------------------------


@bp.get("/Users")
def list_users() -> Response:
    return _list("User", request.args)


@bp.get("/Groups")
def list_groups() -> Response:
    return _list("Group", request.args)


def _list(kind: str, args: Any) -> Response:
    q = query.parse_query(args.get("filter"), args.get("startIndex"), args.get("count"),
                          projection(), args.get("sortBy"), args.get("sortOrder"))
    return scim_response(query.search(context(), kind, q))


@bp.post("/Users/.search")
def search_users() -> Response:
    return _search("User")


@bp.post("/Groups/.search")
def search_groups() -> Response:
    return _search("Group")


@bp.post("/.search")
def search_everything() -> Response:
    return _search(None)


def _search(kind: str | None) -> Response:
    """POST .search (RFC 7644 §3.4.3): the same parameters in a SearchRequest body."""
    body = json_body()
    if not isinstance(body, dict) or SEARCH_REQUEST not in (body.get("schemas") or []):
        raise InvalidSyntax(f"the body must be a SearchRequest ({SEARCH_REQUEST})")
    params = {k.lower(): v for k, v in body.items()}
    proj = Projection(
        tuple(parse_attribute_list(_joined(params.get("attributes")))),
        tuple(parse_attribute_list(_joined(params.get("excludedattributes")))),
    )
    q = query.parse_query(params.get("filter"), _str(params.get("startindex")),
                          _str(params.get("count")), proj, _str(params.get("sortby")),
                          _str(params.get("sortorder")))
    if kind is None:
        return scim_response(query.search_all(context(), q))
    return scim_response(query.search(context(), kind, q))


def _joined(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if isinstance(value, str):
        return value
    raise InvalidValue("attributes must be a list of attribute names")


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
