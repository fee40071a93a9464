"""``attributes`` / ``excludedAttributes`` (RFC 7644 §3.4.2.5), honouring ``returned``.

``schemas``, ``id`` and every ``returned: always`` attribute are always kept;
``returned: never`` is never shown. :func:`wants` tells the directory layer whether
an expensive attribute (``members``, ``groups``) is needed at all, so that it is
not even read from LDAP when excluded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scim.protocol.filter import AttrPath
from scim.protocol.schema import COMMON, ResourceType


@dataclass(frozen=True)
class Projection:
    """Parsed query parameters; both empty means the default set."""

    attributes: tuple[AttrPath, ...] = ()
    excluded: tuple[AttrPath, ...] = ()


def _container(path: AttrPath, rtype: ResourceType) -> str | None | bool:
    """None for core, the extension URN, or False when the URN is unknown."""
    if not path.urn or path.urn.lower() == rtype.schema.id.lower():
        return None
    ext = rtype.extension(path.urn)
    return ext.id if ext else False


def _always(rtype: ResourceType) -> set[str]:
    attrs = (*COMMON, *rtype.schema.attributes)
    return {"schemas"} | {a.name.lower() for a in attrs if a.returned == "always"}


def _matches(path: AttrPath, container: str | None, name: str) -> bool:
    if path.attr == "":  # a bare schema URN: the whole extension
        return container is not None and path.urn is not None and \
            path.urn.lower() == container.lower()
    return path.attr.lower() == name.lower()


def wants(rtype: ResourceType, projection: Projection, name: str) -> bool:
    """Whether the core attribute ``name`` will appear in the response."""
    lowered = name.lower()
    if lowered in _always(rtype):
        return True
    core = [p for p in projection.attributes if _container(p, rtype) is None]
    if projection.attributes:
        return any(p.attr.lower() == lowered for p in core)
    return not any(_container(p, rtype) is None and p.attr.lower() == lowered and not p.sub
                   for p in projection.excluded)


def project(resource: dict[str, Any], rtype: ResourceType, projection: Projection) -> dict:
    """Return the resource reduced to what the client asked for."""
    if not projection.attributes and not projection.excluded:
        return resource
    always = _always(rtype)
    out: dict[str, Any] = {}
    for key, value in resource.items():
        container = rtype.extension(key)
        if container is not None:
            kept = _project_extension(value, container.id, projection, rtype)
            if kept:
                out[key] = kept
        elif key.lower() in always:
            out[key] = value
        else:
            kept = _project_attr(key, value, None, projection, rtype)
            if kept is not None:
                out[key] = kept
    return out


def _project_extension(value: dict, urn: str, projection: Projection,
                       rtype: ResourceType) -> dict:
    kept = {}
    for name, sub_value in value.items():
        got = _project_attr(name, sub_value, urn, projection, rtype)
        if got is not None:
            kept[name] = got
    return kept


def _selected(paths: tuple[AttrPath, ...], container: str | None, name: str,
              rtype: ResourceType) -> list[AttrPath]:
    return [p for p in paths if _container(p, rtype) == container and _matches(p, container,
                                                                            name)] + \
        [p for p in paths if p.attr == "" and container is not None and p.urn and
         p.urn.lower() == container.lower()]


def _project_attr(name: str, value: Any, container: str | None, projection: Projection,
                  rtype: ResourceType) -> Any:
    if projection.attributes:
        hits = _selected(projection.attributes, container, name, rtype)
        if not hits:
            return None
        if any(p.sub is None for p in hits):
            return value
        return _only_subs(value, {p.sub.lower() for p in hits if p.sub})
    hits = _selected(projection.excluded, container, name, rtype)
    if any(p.sub is None for p in hits):
        return None
    if hits:
        return _drop_subs(value, {p.sub.lower() for p in hits if p.sub})
    return value


def _only_subs(value: Any, subs: set[str]) -> Any:
    if isinstance(value, list):
        kept = [_only_subs(v, subs) for v in value]
        return [v for v in kept if v] or None
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k.lower() in subs} or None
    return value


def _drop_subs(value: Any, subs: set[str]) -> Any:
    if isinstance(value, list):
        return [_drop_subs(v, subs) for v in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k.lower() not in subs}
    return value
