"""The only place where errors become HTTP responses (SCIM error JSON)."""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from directory.errors import DirectoryBusy, DirectoryUnavailable
from scim.protocol.errors import (
    InternalError,
    InvalidSyntax,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ScimError,
    ServiceUnavailable,
    UnsupportedMediaType,
)
from scim.service.common import busy_detail
from scim.web import scim_response

log = logging.getLogger("scim.errors")

_HTTP = {
    400: lambda e: InvalidSyntax(e.description or "bad request"),
    404: lambda e: NotFound(f"no such endpoint: {request.path}"),
    405: lambda e: MethodNotAllowed(f"{request.method} is not allowed on {request.path}"),
    413: lambda e: PayloadTooLarge(
        f"the request body is larger than {current_app.config['MAX_CONTENT_LENGTH']} bytes "
        "(SCIM_MAX_BODY_BYTES)"),
    415: lambda e: UnsupportedMediaType(e.description or "unsupported media type"),
}


def render(error: ScimError) -> Response:
    return scim_response(error.to_body(), error.status, error.headers)


def register_error_handlers(app: Flask, retry_after: int) -> None:
    """Handlers on the app (a blueprint never sees routing 404/405)."""

    @app.errorhandler(ScimError)
    def scim_error(error: ScimError) -> Response:
        return render(error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        make = _HTTP.get(error.code or 500)
        if make is None:
            scim = ScimError(error.description or "error")
            scim.status = error.code or 500
            return render(scim)
        return render(make(error))

    @app.errorhandler(DirectoryUnavailable)
    def unavailable(error: DirectoryUnavailable) -> Response:
        log.warning("directory unavailable: %s", error)
        return render(ServiceUnavailable("the directory is unavailable; retry later",
                                         retry_after=retry_after))

    @app.errorhandler(DirectoryBusy)
    def busy(error: DirectoryBusy) -> Response:
        """No free LDAP connection within LDAP_POOL_WAIT (or slapd said busy): 503, as for
        an unavailable directory; the client's own rate is not the cause."""
        log.warning("directory busy on %s %s: %s", request.method, request.path, error)
        return render(ServiceUnavailable(busy_detail(error), retry_after=retry_after))

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return render(InternalError("internal error; it has been logged"))
