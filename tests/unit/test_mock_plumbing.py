"""Plumbing on ldap3's MOCK_SYNC loaded with our real schema (no slapd needed).

Only what the mock does faithfully is checked here: that mapped values survive
ldap3's encoding into an add and back out of a search, that the repository builds
escaped DNs and filters the schema accepts, and that ldap3 validates our schema's
attribute names client-side. Semantics (entryUUID, uniqueness, memberOf, atomic
modify, case rules) are tested on real slapd only: the mock differs there (see
docs/directory.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ldap3 import MOCK_SYNC, Connection, Server
from ldap3.core.exceptions import LDAPAttributeError

from directory.mapping import load_mapping
from directory.repository import Repository
from directory.tenant import Tenant, placeholder_for
from scim.protocol.schema import USER
from scim.schemas import load_resource
from tests import entra

DATA = Path(__file__).resolve().parents[1] / "data" / "ldap"
BASE = "dc=scimbridge,dc=local"
ADMIN = f"cn=admin,{BASE}"


@pytest.fixture
def conn() -> Connection:
    server = Server.from_definition("mock", str(DATA / "info.json"), str(DATA / "schema.json"))
    c = Connection(server, ADMIN, "secret", client_strategy=MOCK_SYNC, raise_exceptions=True)
    c.strategy.add_entry(ADMIN, {"objectClass": ["organizationalRole"], "cn": "admin",
                                 "userPassword": "secret"})
    c.bind()
    for dn, attrs in ((BASE, {"objectClass": ["dcObject", "organization"], "dc": "scimbridge",
                             "o": "scimbridge"}),
                      (f"ou=People,{BASE}", {"objectClass": ["organizationalUnit"],
                                             "ou": "People"})):
        c.strategy.add_entry(dn, attrs)
    return c


def test_mapped_user_survives_ldap3_encoding_both_ways(conn):
    mapping = load_mapping()
    resource = load_resource(entra.user('Zoë "Q" O\'Neil, Jr.@x.org'), USER)
    attrs, refs = mapping.user.to_ldap(resource)
    assert refs == {}
    repo = Repository(conn, Tenant("default", BASE, placeholder_for(BASE)))
    dn = repo.user_dn("uid", resource["userName"])
    assert dn.endswith(f",ou=People,{BASE}") and "\\," in dn and '\\"' in dn
    repo.add(dn, mapping.user.object_classes, attrs)
    found = repo.find_one("User", "uid", resource["userName"], mapping.user.ldap_attributes)
    assert found is not None
    back = mapping.user.from_ldap(found.attrs)
    for key in ("userName", "displayName", "emails", "phoneNumbers", "addresses", "name",
                entra.ENTERPRISE):
        assert back[key] == resource[key], key


def test_filter_values_are_escaped_for_the_wire(conn):
    repo = Repository(conn, Tenant("default", BASE, placeholder_for(BASE)))
    assert repo.find_one("User", "uid", "*)(uid=*", ["uid"]) is None


def test_ldap3_checks_our_schema_names_client_side(conn):
    assert "scimExternalId" in conn.server.schema.attribute_types
    assert "scimResource" in conn.server.schema.object_classes
    with pytest.raises(LDAPAttributeError):
        conn.add(f"uid=x,ou=People,{BASE}", ["inetOrgPerson"],
                 {"uid": "x", "cn": "x", "sn": "x", "scimShoeSize": "42"})


def test_committed_schema_json_matches_our_ldif():
    """tests/data/ldap/schema.json must be regenerated (scripts/dump-ldap-schema) when
    directory/schema/scimbridge.ldif changes."""
    import re

    ldif = (Path(__file__).resolve().parents[2] / "directory" / "schema" /
            "scimbridge.ldif").read_text()
    names = set(re.findall(r"NAME '([^']+)'", ldif))
    dumped = (DATA / "schema.json").read_text()
    missing = sorted(n for n in names if f'"{n}"' not in dumped and f"'{n}'" not in dumped)
    assert not missing, f"schema.json lacks {missing}: run scripts/dump-ldap-schema"
