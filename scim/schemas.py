"""marshmallow schemas, generated from ``scim.protocol.schema`` definitions.

Loading a body canonicalises attribute names (RFC 7643 §2.1: case-insensitive),
drops ``null`` values (RFC 7643 §2.5: unassigned), ignores read-only attributes
(RFC 7643 §7), accepts Entra's dialect (``"True"``/``"False"`` booleans, ``manager``
as a bare id or a list) and rejects everything it cannot store. ``ValidationError``
is translated here, and only here, into SCIM errors.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, pre_load, validate

from scim.protocol.errors import InvalidSyntax, InvalidValue, ScimError
from scim.protocol.schema import (
    COMMON,
    IGNORED_SCHEMAS,
    Attribute,
    ResourceType,
)

UNKNOWN_FIELD = "Unknown field."


def coerce_boolean(value: Any) -> bool:
    """``true``/``false`` and Entra's ``"True"``/``"False"`` strings (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValidationError("must be a boolean (true or false)")


class ScimBoolean(fields.Field):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        return coerce_boolean(value)


class StrictString(fields.String):
    """A string; numbers and booleans are refused rather than silently converted."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str):
            raise ValidationError("must be a string")
        return super()._deserialize(value, attr, data, **kwargs)


class Manager(fields.Field):
    """RFC 7643 ``{"value": id}``, Entra's bare ``"id"`` and the older ``[{"value": id}]``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, list):
            if len(value) > 1:
                raise ValidationError("a user has at most one manager")
            value = value[0] if value else None
        if isinstance(value, dict):
            value = {k.lower(): v for k, v in value.items()}.get("value")
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ValidationError("must be the manager's id (a string)")
        return {"value": value}


def _field(attr: Attribute, nested: bool = False) -> fields.Field:
    if attr.type == "complex" and attr.name == "manager":
        return Manager(allow_none=True)
    if attr.type == "complex":
        inner: fields.Field = fields.Nested(_complex_schema(attr), allow_none=True)
    elif attr.type == "boolean":
        inner = ScimBoolean(allow_none=True)
    else:
        inner = StrictString(allow_none=True)
    if attr.multi_valued:
        return fields.List(inner, allow_none=True)
    return inner


class CanonicalSchema(Schema):
    """Base: canonical key case, nulls dropped, read-only attributes ignored."""

    class Meta:
        unknown = RAISE

    _readonly: frozenset[str] = frozenset()

    @pre_load
    def canonicalise(self, data: Any, **kwargs: Any) -> Any:
        if not isinstance(data, dict):
            return data
        names = {(f.data_key or n).lower(): f.data_key or n for n, f in self.fields.items()}
        out: dict[str, Any] = {}
        for key, value in data.items():
            name = names.get(str(key).lower(), key)
            if value is None or value == [] or name in self._readonly:
                continue
            out[name] = value
        return out


@cache
def _complex_schema(attr: Attribute) -> type[Schema]:
    readonly = frozenset(s.name for s in attr.sub_attributes if s.mutability == "readOnly")
    declared: dict[str, Any] = {s.name: _field(s, nested=True) for s in attr.sub_attributes}
    schema = type(f"{attr.name}Schema", (CanonicalSchema,), {**declared, "_readonly": readonly})
    return schema


@cache
def _extension_schema(urn: str, rtype: ResourceType) -> type[Schema]:
    ext = rtype.extension(urn)
    assert ext is not None
    declared = {a.name: _field(a) for a in ext.attributes}
    return type(f"{ext.name}Schema", (CanonicalSchema,), dict(declared))


@cache
def resource_schema(rtype: ResourceType) -> type[Schema]:
    """The request schema of a resource type (core + extensions)."""
    attrs = [a for a in (*COMMON, *rtype.schema.attributes)]
    readonly = frozenset(a.name for a in attrs if a.mutability == "readOnly") | {"schemas"}
    declared: dict[str, Any] = {}
    for a in attrs:
        f = _field(a)
        if a.required:
            f = StrictString(required=True, validate=validate.Regexp(
                r"(?s).*\S", error="must not be empty or blank"))
        declared[a.name] = f
    for i, ext in enumerate(rtype.extensions):
        # attribute names may not contain dots in marshmallow: the URN is the data_key
        declared[f"extension_{i}"] = fields.Nested(
            _extension_schema(ext.id, rtype), allow_none=True, data_key=ext.id)
    return type(f"{rtype.name}RequestSchema", (CanonicalSchema,),
                {**declared, "_readonly": readonly})


def _check_schemas(body: dict[str, Any], rtype: ResourceType) -> None:
    schemas = next((v for k, v in body.items() if k.lower() == "schemas"), None)
    if not isinstance(schemas, list) or not all(isinstance(s, str) for s in schemas):
        raise InvalidSyntax("'schemas' must be a list of schema URIs")
    known = {s.lower() for s in rtype.schema_ids} | {s.lower() for s in IGNORED_SCHEMAS}
    for urn in schemas:
        if urn.lower() not in known:
            raise InvalidValue(f"unknown schema {urn!r} in 'schemas'; this endpoint takes "
                               f"{', '.join(rtype.schema_ids)}")
    if rtype.schema.id.lower() not in {s.lower() for s in schemas}:
        raise InvalidValue(f"'schemas' must contain {rtype.schema.id!r}")


def load_resource(body: Any, rtype: ResourceType, *, check_schemas: bool = True) -> dict:
    """Validate a POST/PUT body (or a patched resource) into canonical form."""
    if not isinstance(body, dict):
        raise InvalidSyntax(f"the request body must be a JSON object (a SCIM {rtype.name})")
    if check_schemas:
        _check_schemas(body, rtype)
    try:
        loaded = resource_schema(rtype)().load(body)
    except ValidationError as exc:
        raise translate(exc, rtype) from None
    for i, ext in enumerate(rtype.extensions):
        if f"extension_{i}" in loaded:
            loaded[ext.id] = loaded.pop(f"extension_{i}")
    if check_schemas:
        _check_counts(loaded, rtype)
    return _prune(loaded)


def _check_counts(loaded: dict, rtype: ResourceType) -> None:
    """A client's body holds at most ``max_values`` of a multi-valued attribute. (A
    patched resource is not checked here: the PATCH engine refuses growth past the limit,
    and an entry made outside SCIM with more values stays patchable.)"""
    for attr in rtype.schema.attributes:
        held = loaded.get(attr.name)
        if attr.max_values is not None and isinstance(held, list) \
                and len(held) > attr.max_values:
            raise InvalidValue(f"{attr.name!r} holds more than {attr.max_values} values "
                               f"({len(held)})")


def _prune(value: Any) -> Any:
    """Drop empty strings, lists and objects left by nulls (unassigned values)."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [v for v in (_prune(x) for x in value) if v not in (None, "", [], {})]
    return value


def _first_error(messages: Any, path: tuple[str, ...] = ()) -> tuple[tuple[str, ...], str]:
    if isinstance(messages, dict):
        key = next(iter(messages))
        return _first_error(messages[key], (*path, str(key)))
    if isinstance(messages, list) and messages:
        if isinstance(messages[0], str):
            return path, messages[0]
        return _first_error(messages[0], path)
    return path, str(messages)


def translate(exc: ValidationError, rtype: ResourceType) -> ScimError:
    """The one table from marshmallow messages to SCIM errors."""
    path, message = _first_error(exc.messages)
    name = ".".join(p for p in path if not p.isdigit()) or rtype.name
    if message == UNKNOWN_FIELD:
        return InvalidSyntax(f"unknown attribute {name!r} for a {rtype.name}")
    if message == "Missing data for required field.":
        return InvalidValue(f"{name!r} is required")
    if message == "Not a valid list.":
        return InvalidValue(f"{name!r} must be a list")
    if message.startswith("Invalid input type"):
        return InvalidValue(f"{name!r} must be an object")
    return InvalidValue(f"{name!r} {message}")


__all__ = ["EXCLUDE", "coerce_boolean", "load_resource", "resource_schema", "translate"]
