"""OAuth 2.0 client credentials (RFC 6749 §4.4) for Entra's newer provisioning screen.

``POST /oauth/token`` with ``grant_type=client_credentials`` and the client's id and
secret by HTTP Basic (§2.3.1) or in the form body — never in the query string. The
access token is a managed token with a short expiry, so the SCIM API accepts it
exactly like any bearer token and every instance sees it.
"""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta
from urllib.parse import unquote

from flask import Blueprint, Response, current_app, jsonify, request

from directory.tokens import Store, now

bp = Blueprint("oauth", __name__, url_prefix="/oauth")


def _error(code: str, description: str, status: int = 400) -> Response:
    response = jsonify({"error": code, "error_description": description})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    if code == "invalid_client":
        response.headers["WWW-Authenticate"] = 'Basic realm="scim"'
    return response


def _credentials() -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, sep, secret = decoded.partition(":")
        return (unquote(client_id), unquote(secret)) if sep else None
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
    if any(k in request.args for k in ("client_id", "client_secret", "grant_type")):
        return _error("invalid_request", "credentials are not accepted in the query string")
    if request.mimetype != "application/x-www-form-urlencoded":
        return _error("invalid_request", "send application/x-www-form-urlencoded")
    if request.form.get("grant_type") != "client_credentials":
        return _error("unsupported_grant_type", "only grant_type=client_credentials")
    credentials = _credentials()
    if credentials is None:
        authenticator.failed()
        return _error("invalid_client", "client authentication failed", 401)
    client_id, secret = credentials
    lifetime = ext.settings.SCIM_OAUTH_TOKEN_SECONDS
    with ext.pool.connection() as conn:
        store = Store(conn, ext.settings.LDAP_BASE_DN)
        client = store.verify(secret, kind="Clients", key=client_id)
        if client is None:
            authenticator.failed()
            return _error("invalid_client", "client authentication failed", 401)
        _, access = store.create_token(client.tenant, f"oauth:{client.name or client.id}",
                                       now() + timedelta(seconds=lifetime))
        store.purge_expired()
    response = jsonify({"access_token": access, "token_type": "Bearer",
                        "expires_in": lifetime})
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
