"""DN comparison the way the server does it for our attribute types."""

from __future__ import annotations

import re
from functools import lru_cache

from ldap3.utils.dn import parse_dn

#: Characters after which a DN needs the full RFC 4514 parser (escapes, quoting,
#: multi-valued RDNs, hex values, obsolete separators).
_SPECIAL = frozenset('\\"+#;<>\x00')
_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9-]*")


@lru_cache(maxsize=4096)
def normalise_dn(dn: str) -> str:
    """Lower-cased attribute types and values, separators tidied.

    Our RDN attributes (uid, cn, ou, dc) match case-insensitively, and slapd returns
    DNs in its own tidied form (dynlist even lower-cases ``memberOf``), so DNs from
    different sources are compared through this function only. Plain DNs (the usual
    case) are split here; anything with escapes or quoting goes through ldap3's
    parser. Results are cached: the same member and group DNs recur within a request.
    """
    if not _SPECIAL.intersection(dn) and dn.count("=") == dn.count(",") + 1:
        pairs = [part.partition("=") for part in dn.split(",")]
        if all(_TYPE.fullmatch(a.strip()) and v.strip() for a, _, v in pairs):
            return ",".join(f"{a.strip().lower()}={v.strip().lower()}" for a, _, v in pairs)
    try:
        parts = parse_dn(dn, escape=False, strip=True)
    except Exception:  # noqa: BLE001 - not a DN we can parse: compare it as text
        return dn.lower()
    return ",".join(f"{a.lower()}={v.lower()}" for a, v, _ in parts)


def same_dn(a: str, b: str) -> bool:
    return normalise_dn(a) == normalise_dn(b)
