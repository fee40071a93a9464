"""ServiceProviderConfig, Schemas and ResourceTypes (RFC 7644 §4), generated from
``scim.protocol.schema`` — the same definitions validation uses."""

from __future__ import annotations

from flask import Response, request

from scim.api import bp, ext
from scim.protocol.errors import NotFound
from scim.protocol.schema import (
    COMMON,
    LIST_RESPONSE,
    RESOURCE_TYPES,
    ResourceType,
    Schema,
)
from scim.web import scim_response

SPC = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RT = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"


def _base() -> str:
    return request.url_root.rstrip("/") + (bp.url_prefix or "")


def _schemas() -> list[Schema]:
    seen: dict[str, Schema] = {}
    for rtype in RESOURCE_TYPES:
        for schema in (rtype.schema, *rtype.extensions):
            seen.setdefault(schema.id, schema)
    return list(seen.values())


def schema_json(schema: Schema, rtype_core: bool) -> dict:
    attrs = [*(a for a in COMMON if a.name == "externalId" and rtype_core), *schema.attributes]
    return {
        "schemas": [SCHEMA],
        "id": schema.id,
        "name": schema.name,
        "description": schema.description,
        "attributes": [a.to_json() for a in attrs],
        "meta": {"resourceType": "Schema", "location": f"{_base()}/Schemas/{schema.id}"},
    }


def resource_type_json(rtype: ResourceType) -> dict:
    return {
        "schemas": [RT],
        "id": rtype.name,
        "name": rtype.name,
        "endpoint": rtype.endpoint,
        "description": rtype.description,
        "schema": rtype.schema.id,
        "schemaExtensions": [{"schema": e.id, "required": False} for e in rtype.extensions],
        "meta": {"resourceType": "ResourceType",
                 "location": f"{_base()}/ResourceTypes/{rtype.name}"},
    }


def _list(resources: list[dict]) -> dict:
    return {"schemas": [LIST_RESPONSE], "totalResults": len(resources),
            "Resources": resources, "startIndex": 1, "itemsPerPage": len(resources)}


@bp.get("/ServiceProviderConfig")
def service_provider_config() -> Response:
    options = ext().options
    return scim_response({
        "schemas": [SPC],
        "documentationUri": "https://github.com/scim-ldap-bridge#readme",
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": options.max_page_size},
        "changePassword": {"supported": True},
        "sort": {"supported": True},
        "etag": {"supported": True},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token issued by this service.",
            "primary": True,
        }],
        "meta": {"resourceType": "ServiceProviderConfig",
                 "location": f"{_base()}/ServiceProviderConfig"},
    })


@bp.get("/Schemas")
def schemas() -> Response:
    core_ids = {r.schema.id for r in RESOURCE_TYPES}
    return scim_response(_list([schema_json(s, s.id in core_ids) for s in _schemas()]))


@bp.get("/Schemas/<path:urn>")
def schema(urn: str) -> Response:
    core_ids = {r.schema.id for r in RESOURCE_TYPES}
    for s in _schemas():
        if s.id.lower() == urn.lower():
            return scim_response(schema_json(s, s.id in core_ids))
    raise NotFound(f"no schema {urn!r}")


@bp.get("/ResourceTypes")
def resource_types() -> Response:
    return scim_response(_list([resource_type_json(r) for r in RESOURCE_TYPES]))


@bp.get("/ResourceTypes/<name>")
def resource_type(name: str) -> Response:
    for rtype in RESOURCE_TYPES:
        if rtype.name.lower() == name.lower():
            return scim_response(resource_type_json(rtype))
    raise NotFound(f"no resource type {name!r}")
