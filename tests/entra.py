"""Request bodies in the shapes Microsoft Entra ID sends (see docs/entra.md)."""

from __future__ import annotations

from typing import Any

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def user(user_name: str = "Adele.Vance@contoso.com", **extra: Any) -> dict[str, Any]:
    """Entra's create-user body (tutorial example)."""
    body: dict[str, Any] = {
        "schemas": [CORE_USER, ENTERPRISE],
        "externalId": "AdeleV",
        "userName": user_name,
        "active": True,
        "displayName": "Adele Vance",
        "title": "Retail Manager",
        "preferredLanguage": "en-US",
        "emails": [{"primary": True, "type": "work", "value": "adele@contoso.com"}],
        "phoneNumbers": [{"type": "work", "value": "+1 425 555 0109"},
                         {"type": "mobile", "value": "+1 425 555 0110"}],
        "addresses": [{"type": "work", "streetAddress": "1 Microsoft Way",
                       "locality": "Redmond", "region": "WA", "postalCode": "98052",
                       "country": "US", "primary": True}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Adele Vance", "familyName": "Vance", "givenName": "Adele"},
        "roles": [],
        ENTERPRISE: {"employeeNumber": "100042", "department": "Retail"},
    }
    body.update(extra)
    return body


def minimal_user(user_name: str) -> dict[str, Any]:
    return {"schemas": [CORE_USER], "userName": user_name}


def group(name: str = "Sales Team", members: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemas": [CORE_GROUP,
                    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": name,
        "meta": {"resourceType": "Group"},
    }
    if members is not None:
        body["members"] = [{"value": m} for m in members]
    return body


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}
