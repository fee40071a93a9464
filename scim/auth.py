"""Bearer-token authentication (flask-httpauth) → a Principal bound to a tenant."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

from flask import Response, request
from flask_httpauth import HTTPTokenAuth

from directory.tenant import Tenant
from scim.protocol.errors import Unauthorized
from scim.web import scim_response

log = logging.getLogger("scim.auth")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name and the tenant it may see."""

    token_name: str
    tenant: Tenant


def make_auth(static_token: str, default_tenant: Tenant) -> HTTPTokenAuth:
    """Token auth; tokens are compared in constant time (hmac.compare_digest)."""
    auth = HTTPTokenAuth(scheme="Bearer")
    expected = static_token.encode()

    @auth.verify_token
    def verify(token: str) -> Principal | None:
        if token and expected and hmac.compare_digest(token.encode(), expected):
            return Principal("static", default_tenant)
        if token or request.headers.get("Authorization"):
            log.warning("authentication failed from %s", request.remote_addr)
        return None

    @auth.error_handler
    def unauthorized(status: int) -> Response:
        error = Unauthorized("a valid bearer token is required (Authorization: Bearer …)")
        return scim_response(error.to_body(), 401)

    return auth
