"""A tenant: the subtree a principal may see and change."""

from __future__ import annotations

from dataclasses import dataclass


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
