"""Helpers shared by the Flask views: SCIM JSON responses and request bodies."""

from __future__ import annotations

import io
import json
from typing import Any

from flask import Response, current_app, g, request
from werkzeug.exceptions import RequestEntityTooLarge

from scim.protocol.errors import UnsupportedMediaType
from scim.protocol.jsonvalue import parse_json

SCIM_JSON = "application/scim+json"
_ACCEPTED = ("application/scim+json", "application/json")
#: On every response: an API has nothing to sniff, frame or refer to.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
#: The API's answers are JSON: they may load nothing and be framed by nobody.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def security_headers(response: Response) -> Response:
    """``after_request`` of the whole app, the one place these headers are set.

    Pages that choose their own ``Content-Security-Policy`` or ``Cache-Control`` (the
    admin dashboard, its static files) keep them; everything else is never cached.
    """
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("Content-Security-Policy", API_CSP)
    return response


def _bound_chunked_body() -> None:
    """413 for a chunked body (no Content-Length) over the limit.

    werkzeug stops reading such a body at ``MAX_CONTENT_LENGTH`` without an error, so a
    view would see it cut short (invalid JSON at best). It is read here, at most one byte
    past the limit, and handed on with its length. Called by :func:`json_body`, i.e. only
    once the request is authenticated.
    """
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is None or request.content_length is not None or \
            "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
        return
    stream = request.environ["wsgi.input"]
    data = bytearray()
    while len(data) <= limit:
        chunk = stream.read(limit + 1 - len(data))
        if not chunk:
            break
        data += chunk
    if len(data) > limit:
        raise RequestEntityTooLarge()
    request.environ["wsgi.input"] = io.BytesIO(bytes(data))
    request.environ["CONTENT_LENGTH"] = str(len(data))


def scim_response(body: Any = None, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """A response with ``application/scim+json`` (also for errors and 204s)."""
    data = "" if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    response = Response(data, status=status, mimetype=SCIM_JSON, headers=headers)
    if status == 204:
        response.headers.pop("Content-Type", None)
    return response


def json_body() -> Any:
    """The request's JSON body: 415 for another media type, 400 if not JSON, nested too
    deeply or holding a lone surrogate (:func:`scim.protocol.jsonvalue.parse_json`).

    The parsed body is kept in ``g.scim_body`` for the audit trail, which must never
    parse a body again (a hostile one would fail there, and the record be lost).
    """
    mimetype = (request.mimetype or "").lower()
    if mimetype not in _ACCEPTED:
        sent = request.content_type
        raise UnsupportedMediaType(
            "send the body as application/scim+json or application/json"
            + (f", not {sent}" if sent else " (the request has no Content-Type header)")
        )
    _bound_chunked_body()
    raw = request.get_data(cache=True)
    body = parse_json(raw, request.mimetype_params.get("charset", "utf-8"))
    g.scim_body = body
    return body
