"""SCIM 2.0 service (RFC 7643/7644) for Microsoft Entra ID provisioning."""
