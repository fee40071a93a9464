"""OAuth 2.0 client credentials (RFC 6749 §4.4) for Entra's newer provisioning screen.

``POST /oauth/token`` with ``grant_type=client_credentials`` and the client's id and
secret by HTTP Basic (§2.3.1) or in the form body, never in the query string and never
both. The access token is a managed token entry with a short expiry that names its
client (``scimClientId``), rather than a signed self-contained token: the SCIM API then
accepts it exactly like any bearer token, every instance sees it, and revoking the
client revokes its access tokens at once (within the token cache TTL), with no signing
key to keep, share and rotate. It costs one directory write per issued token, about one
an hour per client.
"""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta
from urllib.parse import unquote_plus

from flask import Blueprint, Response, current_app, jsonify, request

from directory.tokens import CLIENTS
from scim.observability import audit_auth_failure

bp = Blueprint("oauth", __name__, url_prefix="/oauth")
_CREDENTIALS = ("client_id", "client_secret")


@bp.after_request
def audit(response: Response) -> Response:
    """Failed client authentications go to the audit trail like SCIM's (401, 429)."""
    if response.status_code in (401, 429):
        audit_auth_failure(response.status_code)
    return response


def _error(code: str, description: str, status: int = 400) -> Response:
    """An RFC 6749 §5.2 error response."""
    response = jsonify({"error": code, "error_description": description})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    if code == "invalid_client":
        response.headers["WWW-Authenticate"] = 'Basic realm="scim-bridge oauth"'
    return response


class BadRequest(Exception):
    """An invalid_request with its description."""


def _credentials() -> tuple[str, str] | None:
    """(client_id, client_secret) from Basic or the form; None if absent or unreadable."""
    header = request.headers.get("Authorization", "")
    in_form = any(k in request.form for k in _CREDENTIALS)
    if header:
        if in_form:
            raise BadRequest("use one client authentication method, not Basic and the form")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, sep, secret = decoded.partition(":")
        return (unquote_plus(client_id), unquote_plus(secret)) if sep else None
    client_id, secret = request.form.get("client_id"), request.form.get("client_secret")
    return (client_id, secret) if client_id and secret else None


@bp.post("/token")
def token() -> Response:
    ext = current_app.extensions["scim_bridge"]
    authenticator = ext.authenticator
    wait = authenticator.limiter.blocked(request.remote_addr or "unknown")
    if wait:
        response = _error("invalid_request", "too many failed attempts; retry later", 429)
        response.headers["Retry-After"] = str(wait)
        return response
    if any(k in request.args for k in (*_CREDENTIALS, "grant_type")):
        return _error("invalid_request", "parameters are not accepted in the query string")
    if request.mimetype != "application/x-www-form-urlencoded":
        return _error("invalid_request", "send an application/x-www-form-urlencoded body")
    if any(len(request.form.getlist(k)) > 1 for k in request.form):
        return _error("invalid_request", "a parameter was sent more than once")
    if "grant_type" not in request.form:
        return _error("invalid_request", "grant_type is required")
    if request.form["grant_type"] != "client_credentials":
        return _error("unsupported_grant_type", "only grant_type=client_credentials")
    try:
        credentials = _credentials()
    except BadRequest as exc:
        return _error("invalid_request", str(exc))
    if credentials is None:
        authenticator.failed("no client credentials")
        return _error("invalid_client", "client authentication failed", 401)
    lifetime = ext.settings.SCIM_OAUTH_TOKEN_SECONDS
    with ext.pool.connection() as conn:
        store = authenticator.store(conn)
        client = store.verify_client(*credentials)
        if client is None:
            authenticator.failed("unknown client or wrong client secret")
            return _error("invalid_client", "client authentication failed", 401)
        _, access = store.create_token(client.tenant, f"oauth:{client.name or client.id}",
                                       store.clock() + timedelta(seconds=lifetime),
                                       client_id=client.id)
        store.touch(CLIENTS, client.id)
        store.purge_expired()
    response = jsonify({"access_token": access, "token_type": "Bearer",
                        "expires_in": lifetime})
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
