"""The one SCIM error hierarchy (RFC 7644 §3.12).

Raise a subclass anywhere; only ``scim.errors`` turns one into a response.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimError(Exception):
    """Base of every error the service answers with a SCIM error body."""

    status: int = 400
    scim_type: str | None = None

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers: dict[str, str] = dict(headers or {})

    def to_body(self) -> dict[str, Any]:
        """Render the RFC 7644 §3.12 error body (``status`` is a string)."""
        body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status)}
        if self.scim_type:
            body["scimType"] = self.scim_type
        body["detail"] = self.detail
        return body


class InvalidFilter(ScimError):
    scim_type = "invalidFilter"


class TooMany(ScimError):
    scim_type = "tooMany"


class Uniqueness(ScimError):
    status = 409
    scim_type = "uniqueness"


class Mutability(ScimError):
    scim_type = "mutability"


class InvalidSyntax(ScimError):
    scim_type = "invalidSyntax"


class InvalidPath(ScimError):
    scim_type = "invalidPath"


class NoTarget(ScimError):
    scim_type = "noTarget"


class InvalidValue(ScimError):
    scim_type = "invalidValue"


class InvalidVersion(ScimError):
    scim_type = "invalidVers"


class Sensitive(ScimError):
    status = 403
    scim_type = "sensitive"


class BadRequest(ScimError):
    """A 400 with no more specific scimType (e.g. a bad query parameter)."""


class NotFound(ScimError):
    status = 404


class MethodNotAllowed(ScimError):
    status = 405


class Conflict(ScimError):
    status = 409


class PreconditionFailed(ScimError):
    status = 412


class PayloadTooLarge(ScimError):
    status = 413


class UnsupportedMediaType(ScimError):
    status = 415


class Unauthorized(ScimError):
    status = 401


class Forbidden(ScimError):
    status = 403


class TooManyRequests(ScimError):
    status = 429

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class InternalError(ScimError):
    status = 500


class ServiceUnavailable(ScimError):
    """503 + ``Retry-After``: Entra retries these (directory down, slow or busy)."""

    status = 503

    def __init__(self, detail: str, *, retry_after: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
