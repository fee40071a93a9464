"""A tenant: the subtree a principal may see and change."""

from __future__ import annotations

from dataclasses import dataclass

from directory.dn import normalise_dn


@dataclass(frozen=True)
class Tenant:
    """People and groups of one directory tenant live under ``base_dn``.

    ``placeholder_dn`` is the deployment's hidden member of empty ``groupOfNames``
    groups (see docs/directory.md); it is never shown over SCIM.
    """

    name: str
    base_dn: str
    placeholder_dn: str

    @property
    def people_dn(self) -> str:
        return f"ou=People,{self.base_dn}"

    @property
    def groups_dn(self) -> str:
        return f"ou=Groups,{self.base_dn}"


def placeholder_for(root_base_dn: str) -> str:
    """The placeholder member's DN under the deployment's root base DN."""
    return f"cn=empty-group-placeholder,ou=Service,{root_base_dn}"


def inside(dn: str, container: str) -> bool:
    """Whether ``dn`` is ``container`` or below it (normalised comparison)."""
    inner, outer = normalise_dn(dn), normalise_dn(container)
    return inner == outer or inner.endswith("," + outer)


def trust_conflict(name: str, dn: str, tenants: list[Tenant]) -> str | None:
    """Why ``dn`` (the setting ``name``) may not be where it is, or None.

    Admins and their group must lie outside every tenant's ``ou=People`` and
    ``ou=Groups`` (and contain none): whatever is there, a SCIM token can create, change
    or join.
    """
    for tenant in tenants:
        for area in (tenant.people_dn, tenant.groups_dn):
            if inside(dn, area) or inside(area, dn):
                where = "lies inside" if inside(dn, area) else "contains"
                return (f"{name}: {dn} {where} {area} (tenant {tenant.name!r}), which SCIM "
                        f"clients manage; put it outside every tenant's ou=People and "
                        f"ou=Groups, e.g. under ou=Service (or leave {name} empty for the "
                        f"default)")
    return None
