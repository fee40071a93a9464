"""Helpers shared by the Flask views: SCIM JSON responses and request bodies."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, request

from scim.protocol.errors import InvalidSyntax, UnsupportedMediaType

SCIM_JSON = "application/scim+json"
_ACCEPTED = ("application/scim+json", "application/json")


def scim_response(body: Any = None, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """A response with ``application/scim+json`` (also for errors and 204s)."""
    data = "" if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    response = Response(data, status=status, mimetype=SCIM_JSON, headers=headers)
    if status == 204:
        response.headers.pop("Content-Type", None)
    return response


def json_body() -> Any:
    """The request's JSON body: 415 for another media type, 400 if not JSON."""
    mimetype = (request.mimetype or "").lower()
    if mimetype not in _ACCEPTED:
        raise UnsupportedMediaType(
            f"send the body as application/scim+json or application/json, "
            f"not {request.content_type or 'no Content-Type'}"
        )
    raw = request.get_data(cache=True)
    try:
        return json.loads(raw.decode(request.mimetype_params.get("charset", "utf-8")))
    except (ValueError, LookupError) as exc:
        raise InvalidSyntax(f"the body is not valid JSON: {exc}") from None
