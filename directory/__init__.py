"""The directory layer: ldap3 connections, the SCIM↔LDAP mapping, repositories."""

from directory.connection import Pool
from directory.mapping import Mapping, MappingError, load_mapping
from directory.repository import Repository
from directory.tenant import Tenant, placeholder_for

__all__ = ["Mapping", "MappingError", "Pool", "Repository", "Tenant", "load_mapping",
           "placeholder_for"]
