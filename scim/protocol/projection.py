"""``attributes`` / ``excludedAttributes`` (RFC 7644 §3.4.2.5), honouring ``returned``.

RFC 7643 §7 ``returned``, at every level (attributes and sub-attributes):

* ``always``: kept whatever the parameters say (``id``; ``schemas`` is always kept);
* ``never``: never shown (``password``), even when asked for;
* ``default``: shown unless ``attributes`` names others or ``excludedAttributes`` names it;
* ``request``: shown only when ``attributes`` names it (or its parent, for a sub-attribute).

:func:`wants` tells the directory layer whether an expensive attribute (``members``,
``groups``) will be shown at all, so that it is not even read from LDAP otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scim.protocol.filter import AttrPath
from scim.protocol.schema import Attribute, ResourceType, common_attribute


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


def _definition(rtype: ResourceType, container: str | None, name: str) -> Attribute | None:
    if container is None:
        return rtype.schema.attribute(name) or common_attribute(name)
    ext = rtype.extension(container)
    return ext.attribute(name) if ext else None


def _selected(paths: tuple[AttrPath, ...], container: str | None, name: str,
              rtype: ResourceType) -> list[AttrPath]:
    """The paths naming attribute ``name`` of ``container`` (or its whole extension)."""
    hits = []
    for p in paths:
        if p.attr == "":  # a bare schema URN: every attribute of that extension
            if container is not None and p.urn and p.urn.lower() == container.lower():
                hits.append(AttrPath(p.urn, name))
        elif _container(p, rtype) == container and p.attr.lower() == name.lower():
            hits.append(p)
    return hits


def wants(rtype: ResourceType, projection: Projection, name: str) -> bool:
    """Whether the core attribute ``name`` will appear in the response (if it has a value)."""
    definition = _definition(rtype, None, name)
    returned = definition.returned if definition else "default"
    if returned in ("always", "never"):
        return returned == "always"
    if projection.attributes:
        return bool(_selected(projection.attributes, None, name, rtype))
    if returned == "request":
        return False
    return not any(p.sub is None for p in _selected(projection.excluded, None, name, rtype))


def project(resource: dict[str, Any], rtype: ResourceType, projection: Projection) -> dict:
    """Return the resource reduced to what the client asked for and may see."""
    out: dict[str, Any] = {}
    for key, value in resource.items():
        if key == "schemas":
            out[key] = value
            continue
        ext = rtype.extension(key)
        if ext is not None and isinstance(value, dict):
            kept = {}
            for name, sub_value in value.items():
                got = _attribute(name, sub_value, ext.id, projection, rtype)
                if got is not None:
                    kept[name] = got
            if kept:
                out[key] = kept
            continue
        got = _attribute(key, value, None, projection, rtype)
        if got is not None:
            out[key] = got
    return out


def _attribute(name: str, value: Any, container: str | None, projection: Projection,
               rtype: ResourceType) -> Any:
    definition = _definition(rtype, container, name)
    subs = definition.sub_attributes if definition else ()
    returned = definition.returned if definition else "default"
    if returned == "never":
        return None
    if returned == "always":
        return _subs(value, subs, keep=None, drop=set(), whole=True)
    if projection.attributes:
        hits = _selected(projection.attributes, container, name, rtype)
        if not hits:
            return None
        if any(p.sub is None for p in hits):
            return _subs(value, subs, keep=None, drop=set(), whole=True)
        return _subs(value, subs, keep={p.sub.lower() for p in hits if p.sub}, drop=set(),
                     whole=False)
    if returned == "request":
        return None
    hits = _selected(projection.excluded, container, name, rtype)
    if any(p.sub is None for p in hits):
        return None
    return _subs(value, subs, keep=None, drop={p.sub.lower() for p in hits if p.sub},
                 whole=False)


def _subs(value: Any, subs: tuple[Attribute, ...], *, keep: set[str] | None, drop: set[str],
          whole: bool) -> Any:
    """Sub-attributes of a complex value (or of each element of a list) that are shown.

    ``keep`` names the requested ones (None: all by their defaults); ``whole`` means the
    parent itself was requested, which brings ``returned: request`` sub-attributes too.
    Elements or objects left empty by the selection are dropped; values that were
    empty already (``members: []``) are kept as they are.
    """
    if not value:
        return value
    if isinstance(value, list):
        kept = [_subs(v, subs, keep=keep, drop=drop, whole=whole) for v in value]
        kept = [v for v in kept if v not in (None, {})]
        return kept or None
    if not isinstance(value, dict):
        return value
    out = {}
    for key, sub_value in value.items():
        lowered = key.lower()
        definition = next((s for s in subs if s.name.lower() == lowered), None)
        returned = definition.returned if definition else "default"
        if returned == "never":
            continue
        if returned != "always":
            if keep is not None and lowered not in keep:
                continue
            if lowered in drop or (returned == "request" and not whole and keep is None):
                continue
        out[key] = sub_value
    return out or None
