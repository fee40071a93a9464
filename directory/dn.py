"""DN comparison the way the server does it for our attribute types."""

from __future__ import annotations

import re
from functools import lru_cache

#: Characters after which a DN needs the full RFC 4514 reading (escapes, quoting,
#: multi-valued RDNs, hex values, obsolete separators).
_SPECIAL = frozenset('\\"+#;<>\x00')
_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_HEX = frozenset("0123456789abcdefABCDEF")
_OID = re.compile(r"\d+(?:\.\d+)*")


@lru_cache(maxsize=4096)
def normalise_dn(dn: str) -> str:
    """One spelling of a DN: attribute types and values lower-cased, every value decoded
    and escaped again one way, separators tidied, the values of a multi-valued RDN in
    one order.

    Our RDN attributes (uid, cn, ou, dc) match case-insensitively, and a DN has many
    spellings: slapd returns its own (``\\2C`` where a client wrote ``\\,``, UTF-8 as
    is where a client wrote ``\\C3\\A9``; dynlist even lower-cases ``memberOf``), so
    DNs from different sources are compared through this function only. Plain DNs
    (the usual case) are split directly. Results are cached: the same member and group
    DNs recur within a request. Text that is not a DN is compared as lower-cased text.
    """
    if not _SPECIAL.intersection(dn) and dn.count("=") == dn.count(",") + 1:
        pairs = [part.partition("=") for part in dn.split(",")]
        if all(_TYPE.fullmatch(a.strip(" ")) and v.strip(" ") for a, _, v in pairs):
            return ",".join(f"{a.strip(' ').lower()}={v.strip(' ').lower()}"
                            for a, _, v in pairs)
    try:
        rdns = _read(dn)
    except ValueError:
        return dn.lower()
    return ",".join("+".join(sorted(f"{a.lower()}={v}" for a, v in rdn)) for rdn in rdns)


def _read(dn: str) -> list[list[tuple[str, str]]]:
    """RFC 4514 (with RFC 1779's quoting and ``;``): the RDNs, each a list of (type,
    value spelled one way). Raises ValueError on text that is not a DN."""
    rdns: list[list[tuple[str, str]]] = [[]]
    i, n = 0, len(dn)
    while True:
        eq = dn.find("=", i)
        if eq < 0:
            raise ValueError("no '=' in an RDN")
        attr = dn[i:eq].strip(" ")
        if not (_TYPE.fullmatch(attr) or _OID.fullmatch(attr)):
            raise ValueError(f"bad attribute type {attr!r}")
        value, i = _value(dn, eq + 1)
        rdns[-1].append((attr, value))
        if i >= n:
            return rdns
        if dn[i] in ",;":
            rdns.append([])
        i += 1


def _value(dn: str, i: int) -> tuple[str, int]:
    """The value starting at ``i``, spelled one way (decoded, lower-cased, escaped by
    :func:`_escaped`; a ``#``-hex BER value as written), and the index of
    the separator after it. Unescaped spaces around a value do not belong to it."""
    n = len(dn)
    while i < n and dn[i] == " ":
        i += 1
    if i < n and dn[i] == "#":  # RFC 4514 §2.4: a BER value in hex
        end = i + 1
        while end < n and dn[end] not in ",;+":
            end += 1
        return dn[i:end].strip(" ").lower(), end
    quoted = i < n and dn[i] == '"'
    i += quoted
    out: list[str] = []
    pending = bytearray()  # a run of \XX escapes: UTF-8 bytes
    kept = 0  # characters of ``out`` that are surely the value's (not trailing spaces)
    while i < n:
        ch = dn[i]
        if ch == "\\":
            pair = dn[i + 1:i + 3]
            if len(pair) == 2 and set(pair) <= _HEX:
                pending.append(int(pair, 16))
                i += 3
                continue
            if i + 1 >= n:
                raise ValueError("a DN cannot end in a backslash")
            _flush(out, pending)
            out.append(dn[i + 1])
            kept = len(out)
            i += 2
            continue
        kept = max(kept, _flush(out, pending))
        if quoted:
            if ch == '"':
                quoted = False
            else:
                out.append(ch)
            kept = len(out)
        elif ch in ",;+":
            break
        else:
            out.append(ch)
            if ch != " ":
                kept = len(out)
        i += 1
    if quoted:
        raise ValueError("an unclosed quote")
    kept = max(kept, _flush(out, pending))
    return _escaped("".join(out[:kept]).lower()), i


def _escaped(value: str) -> str:
    """RFC 4514 §2.4 escaping, one way: each special character, a leading space or '#'
    and a trailing space as ``\\XX`` (as slapd writes them). No value then holds a
    ',', '+' or '=', so a normalised DN splits at its commas and a suffix test on it
    cannot be fooled by an escaped comma."""
    last = len(value) - 1
    return "".join(
        f"\\{ord(ch):02x}" if ch in '\\,+"<>;=\x00' or (i == 0 and ch in " #")
        or (i == last and ch == " ") else ch
        for i, ch in enumerate(value))


def _flush(out: list[str], pending: bytearray) -> int:
    """Decode a run of hex escapes into ``out``; then the length of ``out`` (0 when
    there was none)."""
    if not pending:
        return 0
    out.append(bytes(pending).decode("utf-8", errors="surrogateescape"))
    pending.clear()
    return len(out)


def same_dn(a: str, b: str) -> bool:
    return normalise_dn(a) == normalise_dn(b)
