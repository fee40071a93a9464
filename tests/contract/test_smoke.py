"""One resource through every layer: bearer auth, validation, mapping, ldap3, slapd."""

from ldap3 import BASE

from tests import entra


def test_create_then_read_back_from_ldap(scim, ldap, base_dn):
    created = scim.post("/Users", entra.user())
    assert created.status_code == 201
    uid = created.json["id"]
    assert created.headers["Location"].endswith(f"/scim/v2/Users/{uid}")
    assert created.headers["Content-Type"] == "application/scim+json"

    got = scim.get(f"/Users/{uid}")
    assert got.status_code == 200
    assert got.json["userName"] == "Adele.Vance@contoso.com"
    assert got.headers["ETag"] == got.json["meta"]["version"]

    ldap.search(f"uid=Adele.Vance@contoso.com,ou=People,{base_dn}", "(objectClass=*)", BASE,
                attributes=["entryUUID", "mail", "sn", "cn", "scimExternalId", "objectClass"])
    entry = ldap.entries[0]
    assert entry.entryUUID.value == uid
    assert entry.mail.value == "adele@contoso.com"
    assert entry.scimExternalId.value == "AdeleV"
    assert "inetOrgPerson" in entry.objectClass.values
