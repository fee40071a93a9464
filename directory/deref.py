"""The LDAP Dereference control (draft-masarati-ldap-deref; slapd's ``deref`` overlay).

Asked on a read of a group, slapd returns, for every ``member`` value, the attributes
of the entry that value names — a whole member list resolved in one round trip instead
of one filter term per DN. ldap3 does not know the control, so its value is encoded
and decoded here (plain BER: the reply for 100,000 members decodes in well under a
second, where pyasn1 would take many).
"""

from __future__ import annotations

from directory.ber import SEQUENCE as _SEQUENCE
from directory.ber import octets, sequence

OID = "1.3.6.1.4.1.4203.666.5.16"

_ATTR_VALS = 0xA0  # [0] PartialAttributeList OPTIONAL (implicitly tagged)


def control(attribute: str, wanted: list[str], critical: bool = False) -> tuple[str, bool, bytes]:
    """The request control: dereference ``attribute``, returning ``wanted`` of each entry.

    ``DerefSpecs ::= SEQUENCE OF SEQUENCE { derefAttr, attributes SEQUENCE OF attr }``
    """
    spec = sequence((octets(attribute), sequence(octets(a) for a in wanted)))
    return (OID, critical, sequence((spec,)))


def _content(buf: bytes, pos: int) -> tuple[int, int]:
    """Start and end of the content whose length octets begin at ``pos``."""
    size = buf[pos]
    if size < 0x80:
        return pos + 1, pos + 1 + size
    count = size & 0x7F
    if count == 0 or count > 4:  # indefinite or absurd lengths never occur in LDAP
        raise ValueError("unsupported BER length")
    start = pos + 1 + count
    return start, start + int.from_bytes(buf[pos + 1:start], "big")


def parse(value: bytes) -> list[tuple[str, dict[str, list[str]]]]:
    """The response control: one ``(dn, {attribute (lower-cased): values})`` per value.

    ``DerefRes ::= SEQUENCE { derefAttr, derefVal LDAPDN, attrVals [0] OPTIONAL }``;
    a value naming no (readable) entry comes back without attributes. Written for
    speed (a few µs per value): lengths are read inline and checked against the
    enclosing element once it is done; a malformed reply raises ValueError.
    """
    out: list[tuple[str, dict[str, list[str]]]] = []
    try:
        if value[0] != _SEQUENCE:
            raise ValueError("a deref response is a SEQUENCE")
        pos, end = _content(value, 1)
        if end > len(value):
            raise ValueError("truncated BER")
        while pos < end:
            start, res_end = _content(value, pos + 1)  # DerefRes
            if res_end > end:
                raise ValueError("truncated BER")
            _, attr_end = _content(value, start + 1)  # derefAttr
            dn_start, dn_end = _content(value, attr_end + 1)  # derefVal
            attrs: dict[str, list[str]] = {}
            at = dn_end
            while at < res_end:
                tag = value[at]
                start, stop = _content(value, at + 1)
                at = stop
                if tag != _ATTR_VALS:
                    continue
                while start < stop:  # PartialAttribute ::= SEQUENCE { type, vals SET OF }
                    part, part_end = _content(value, start + 1)
                    name_start, name_end = _content(value, part + 1)
                    val, vals_end = _content(value, name_end + 1)
                    values = []
                    while val < vals_end:
                        v_start, v_end = _content(value, val + 1)
                        values.append(value[v_start:v_end].decode())
                        val = v_end
                    if val != vals_end or vals_end != part_end:
                        raise ValueError("malformed attribute in a deref response")
                    attrs[value[name_start:name_end].decode().lower()] = values
                    start = part_end
                if start != stop:
                    raise ValueError("malformed attributes in a deref response")
            if at != res_end or dn_end > res_end:
                raise ValueError("malformed deref response")
            out.append((value[dn_start:dn_end].decode(), attrs))
            pos = res_end
        if pos != end:
            raise ValueError("malformed deref response")
    except IndexError:
        raise ValueError("truncated BER") from None
    return out
