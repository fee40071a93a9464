"""DN comparison the way the server does it for our attribute types."""

from __future__ import annotations

from ldap3.utils.dn import parse_dn


def normalise_dn(dn: str) -> str:
    """Lower-cased attribute types and values, separators tidied.

    Our RDN attributes (uid, cn, ou, dc) match case-insensitively, and slapd returns
    DNs in its own tidied form (dynlist even lower-cases ``memberOf``), so DNs from
    different sources are compared through this function only.
    """
    try:
        parts = parse_dn(dn, escape=False, strip=True)
    except Exception:  # noqa: BLE001 - not a DN we can parse: compare it as text
        return dn.lower()
    return ",".join(f"{a.lower()}={v.lower()}" for a, v, _ in parts)


def same_dn(a: str, b: str) -> bool:
    return normalise_dn(a) == normalise_dn(b)
