"""BER encoding of the LDAP requests the bridge sends (RFC 4511 §4, RFC 4515 filters).

ldap3 builds every request as a tree of pyasn1 objects, runs its RFC 4515 parser on the
filter and then pyasn1's generic encoder: ~0.4 ms of CPU per search with our attribute
list, about as long as slapd takes to answer it. These functions write the same bytes
directly (tests compare them with ldap3's encoding). Responses are still decoded by
ldap3 (see :mod:`directory.wire`).

Values are ``str`` (sent as UTF-8) or ``bytes``; filters are RFC 4515 strings such as
:mod:`directory.ldapfilter` and the repository build, with values escaped as ``\\XX``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from ldap3.core.results import RESULT_CODES

#: A control as ldap3 takes it: (OID, criticality, encoded value or None).
Control = tuple[str, bool, bytes | None]

SEQUENCE = 0x30
SET = 0x31
OCTET_STRING = 0x04
INTEGER = 0x02
ENUMERATED = 0x0A
BOOLEAN = 0x01

# Application tags of the protocol operations (constructed unless noted).
SEARCH_REQUEST = 0x63
MODIFY_REQUEST = 0x66
ADD_REQUEST = 0x68
DEL_REQUEST = 0x4A  # primitive: the DN itself
MODIFY_DN_REQUEST = 0x6C
COMPARE_REQUEST = 0x6E

#: ldap3's MODIFY_* constants → RFC 4511 operation codes.
MODIFY_OPERATIONS = {"MODIFY_ADD": 0, "MODIFY_DELETE": 1, "MODIFY_REPLACE": 2,
                     "MODIFY_INCREMENT": 3}
SCOPES = {"BASE": 0, "LEVEL": 1, "SUBTREE": 2}


class FilterSyntaxError(ValueError):
    """The text is not an RFC 4515 filter."""


def length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + length(len(content)) + content


def octets(value: str | bytes, tag: int = OCTET_STRING) -> bytes:
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return tlv(tag, data)


def integer(n: int, tag: int = INTEGER) -> bytes:
    return tlv(tag, n.to_bytes(n.bit_length() // 8 + 1, "big", signed=True))


def boolean(flag: bool) -> bytes:
    return b"\x01\x01\xff" if flag else b"\x01\x01\x00"


def sequence(parts: Iterable[bytes], tag: int = SEQUENCE) -> bytes:
    return tlv(tag, b"".join(parts))


# --- filters (RFC 4511 §4.5.1.7 from RFC 4515 text) -------------------------------------


@lru_cache(maxsize=4096)
def filter_ber(text: str) -> bytes:
    """The BER encoding of an RFC 4515 filter string."""
    encoded, end = _filter(text, 0)
    if end != len(text):
        raise FilterSyntaxError(f"unexpected text after the filter at {end}: {text!r}")
    return encoded


def _filter(text: str, pos: int) -> tuple[bytes, int]:
    if pos >= len(text) or text[pos] != "(":
        raise FilterSyntaxError(f"expected '(' at {pos}: {text!r}")
    pos += 1
    head = text[pos:pos + 1]
    if head in ("&", "|"):
        parts = []
        pos += 1
        while pos < len(text) and text[pos] == "(":
            part, pos = _filter(text, pos)
            parts.append(part)
        body = tlv(0xA0 if head == "&" else 0xA1, b"".join(parts))
    elif head == "!":
        part, pos = _filter(text, pos + 1)
        body = tlv(0xA2, part)
    else:
        end = text.find(")", pos)
        if end < 0:
            raise FilterSyntaxError(f"unbalanced parentheses: {text!r}")
        body = _item(text[pos:end])
        pos = end
    if pos >= len(text) or text[pos] != ")":
        raise FilterSyntaxError(f"expected ')' at {pos}: {text!r}")
    return body, pos + 1


def _item(item: str) -> bytes:
    eq = item.find("=")
    if eq <= 0:
        raise FilterSyntaxError(f"not an attribute assertion: {item!r}")
    attr, value = item[:eq], item[eq + 1:]
    last = attr[-1]
    if last in "<>~":
        tag = {">": 0xA5, "<": 0xA6, "~": 0xA8}[last]
        return tlv(tag, octets(attr[:-1]) + octets(_unescape(value)))
    if last == ":":
        return _extensible(attr[:-1], value)
    if value == "*":
        return octets(attr, 0x87)
    if "*" in value:
        return tlv(0xA4, octets(attr) + _substrings(value))
    return tlv(0xA3, octets(attr) + octets(_unescape(value)))


def _substrings(value: str) -> bytes:
    pieces = value.split("*")
    parts = []
    for index, piece in enumerate(pieces):
        if not piece:
            continue
        tag = 0x80 if index == 0 else 0x82 if index == len(pieces) - 1 else 0x81
        parts.append(octets(_unescape(piece), tag))
    return sequence(parts)


def _extensible(spec: str, value: str) -> bytes:
    """``attr[:dn][:rule]:=value`` (the final ':' already removed)."""
    names = spec.split(":")
    attr, rest = names[0], names[1:]
    dn_attributes = "dn" in (n.lower() for n in rest)
    rules = [n for n in rest if n.lower() != "dn"]
    parts = []
    if rules:
        parts.append(octets(rules[0], 0x81))
    if attr:
        parts.append(octets(attr, 0x82))
    parts.append(octets(_unescape(value), 0x83))
    if dn_attributes:
        parts.append(b"\x84\x01\xff")
    return tlv(0xA9, b"".join(parts))


def _unescape(value: str) -> bytes:
    """RFC 4515 ``\\XX`` escapes → bytes; everything else as UTF-8."""
    if "\\" not in value:
        return value.encode("utf-8")
    out = bytearray()
    pos = 0
    while True:
        slash = value.find("\\", pos)
        if slash < 0:
            out += value[pos:].encode("utf-8")
            return bytes(out)
        out += value[pos:slash].encode("utf-8")
        pair = value[slash + 1:slash + 3]
        try:
            out.append(int(pair, 16))
        except ValueError:
            raise FilterSyntaxError(f"bad escape \\{pair!r} in {value!r}") from None
        if len(pair) != 2:
            raise FilterSyntaxError(f"bad escape \\{pair!r} in {value!r}")
        pos = slash + 3


# --- requests -------------------------------------------------------------------------


def _values(values: Iterable[str | bytes]) -> bytes:
    return sequence((octets(v) for v in values), SET)


def search_request(base: str, scope: int, ldap_filter: str, attributes: Sequence[str],
                   size_limit: int = 0, time_limit: int = 0, deref: int = 0) -> bytes:
    return sequence((
        octets(base), integer(scope, ENUMERATED), integer(deref, ENUMERATED),
        integer(size_limit), integer(time_limit), boolean(False), filter_ber(ldap_filter),
        _selection(tuple(attributes or ("1.1",))),
    ), SEARCH_REQUEST)


@lru_cache(maxsize=256)
def _selection(attributes: tuple[str, ...]) -> bytes:
    """The attribute list of a search: a few fixed lists recur (our read sets)."""
    return sequence(octets(a) for a in attributes)


def add_request(dn: str, attributes: dict[str, Sequence[str | bytes]]) -> bytes:
    return sequence((octets(dn), sequence(
        sequence((octets(name), _values(values))) for name, values in attributes.items()
    )), ADD_REQUEST)


def modify_request(dn: str, changes: dict[str, list[tuple[str, Sequence[str | bytes]]]]
                   ) -> bytes:
    """``changes`` as ldap3 takes them: attribute → [(MODIFY_…, values), …]."""
    items = []
    for name, operations in changes.items():
        for operation, values in operations:
            items.append(sequence((
                integer(MODIFY_OPERATIONS[operation], ENUMERATED),
                sequence((octets(name), _values(values))),
            )))
    return sequence((octets(dn), sequence(items)), MODIFY_REQUEST)


def delete_request(dn: str) -> bytes:
    return octets(dn, DEL_REQUEST)


def modify_dn_request(dn: str, new_rdn: str, delete_old: bool = True) -> bytes:
    return sequence((octets(dn), octets(new_rdn), boolean(delete_old)), MODIFY_DN_REQUEST)


def compare_request(dn: str, attribute: str, value: str | bytes) -> bytes:
    return sequence((octets(dn), sequence((octets(attribute), octets(value)))),
                    COMPARE_REQUEST)


def control(oid: str, critical: bool, value: bytes | None) -> bytes:
    parts = [octets(oid)]
    if critical:
        parts.append(boolean(True))
    if value is not None:
        parts.append(octets(value))
    return sequence(parts)


def message(message_id: int, operation: bytes, controls: Sequence[Control] = ()) -> bytes:
    """An LDAPMessage: id, operation and optional controls ([0] SEQUENCE OF Control)."""
    parts = [integer(message_id), operation]
    if controls:
        parts.append(sequence((control(*c) for c in controls), 0xA0))
    return sequence(parts)


# --- control values -------------------------------------------------------------------


def assertion_value(ldap_filter: str) -> bytes:
    """RFC 4528: the control value is the filter itself."""
    return filter_ber(ldap_filter)


def attribute_list(attributes: Sequence[str]) -> bytes:
    """RFC 4527 pre/post-read control value: a SEQUENCE OF AttributeDescription."""
    return sequence(octets(a) for a in attributes)


def paged_value(size: int, cookie: bytes | None) -> bytes:
    """RFC 2696 realSearchControlValue."""
    return sequence((integer(size), octets(cookie or b"")))


# --- responses (RFC 4511 §4.1.9, §4.5.2) ----------------------------------------------

#: Protocol-op tags of the responses we decode → ldap3's names for them.
RESPONSE_TYPES = {
    0x61: "bindResponse", 0x65: "searchResDone", 0x67: "modifyResponse",
    0x69: "addResponse", 0x6B: "delResponse", 0x6D: "modDNResponse",
    0x6F: "compareResponse", 0x78: "extendedResp", 0x79: "intermediateResponse",
}
SEARCH_RESULT_ENTRY = 0x64
SEARCH_RESULT_REFERENCE = 0x73
PAGED_RESPONSE_OID = "1.2.840.113556.1.4.319"
READ_ENTRY_OIDS = ("1.3.6.1.1.13.1", "1.3.6.1.1.13.2")


class DecodeError(ValueError):
    """The bytes are not an LDAP message we understand."""


def _header(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, first content byte, end of content) of the TLV starting at ``pos``."""
    try:
        tag, first = data[pos], data[pos + 1]
    except IndexError:
        raise DecodeError("truncated message") from None
    if first < 0x80:
        start = pos + 2
        end = start + first
    else:
        start = pos + 2 + (first & 0x7F)
        end = start + int.from_bytes(data[pos + 2:start], "big")
    if end > len(data):
        raise DecodeError("truncated message")
    return tag, start, end


def message_size(data: bytes | bytearray, pos: int = 0) -> int:
    """Bytes of the complete message starting at ``pos``, or -1 if its header is short."""
    available = len(data) - pos
    if available < 2:
        return -1
    first = data[pos + 1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    if available < 2 + n:
        return -1
    return 2 + n + int.from_bytes(data[pos + 2:pos + 2 + n], "big")


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    while start < end:
        item = _header(data, start)
        out.append(item)
        start = item[2]
    return out


def _text(raw: bytes) -> str | bytes:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _attributes(data: bytes, start: int, end: int) -> dict[str, list[Any]]:
    """PartialAttributeList → {type: [value, …]} (text where it is UTF-8)."""
    attrs: dict[str, list[Any]] = {}
    for _, s, _e in _children(data, start, end):
        _, ts, te = _header(data, s)
        _, vs, ve = _header(data, te)
        attrs[data[ts:te].decode("utf-8")] = [_text(data[a:b]) for _, a, b in
                                              _children(data, vs, ve)]
    return attrs


def _int(data: bytes, start: int, end: int) -> int:
    return int.from_bytes(data[start:end], "big", signed=True)


def _result(data: bytes, start: int, end: int) -> dict[str, Any]:
    parts = _children(data, start, end)
    if len(parts) < 3:
        raise DecodeError("short LDAPResult")
    code = _int(data, parts[0][1], parts[0][2])
    out: dict[str, Any] = {
        "result": code, "description": RESULT_CODES.get(code, "unknown"),
        "dn": data[parts[1][1]:parts[1][2]].decode("utf-8", "replace"),
        "message": data[parts[2][1]:parts[2][2]].decode("utf-8", "replace"),
        "referrals": None,
    }
    for tag, s, e in parts[3:]:
        if tag == 0xA3:
            out["referrals"] = [data[a:b].decode("utf-8", "replace")
                                for _, a, b in _children(data, s, e)]
        elif tag == 0x8A:
            out["responseName"] = data[s:e].decode("utf-8", "replace")
        elif tag == 0x8B:
            out["responseValue"] = data[s:e]
    return out


def _control(data: bytes, start: int, end: int) -> tuple[str, dict[str, Any]]:
    parts = _children(data, start, end)
    oid = data[parts[0][1]:parts[0][2]].decode("ascii", "replace")
    critical, value = False, None
    for tag, s, e in parts[1:]:
        if tag == BOOLEAN:
            critical = data[s:e] != b"\x00"
        elif tag == OCTET_STRING:
            value = data[s:e]
    decoded: Any = value
    if value is not None and oid == PAGED_RESPONSE_OID:
        _, s, e = _header(value, 0)
        size, cookie = _children(value, s, e)[:2]
        decoded = {"size": _int(value, size[1], size[2]), "cookie": value[cookie[1]:cookie[2]]}
    elif value is not None and oid in READ_ENTRY_OIDS:
        _, s, e = _header(value, 0)
        _, _, dn_end = _header(value, s)
        _, a, b = _header(value, dn_end)
        decoded = {"result": _attributes(value, a, b)}
    return oid, {"criticality": critical, "value": decoded}


def decode_message(data: bytes) -> tuple[int, dict[str, Any]]:
    """One complete LDAPMessage → (message id, response dict as ldap3 shapes it)."""
    _, start, end = _header(data, 0)
    _, s, e = _header(data, start)
    message_id = _int(data, s, e)
    tag, s, op_end = _header(data, e)
    if tag == SEARCH_RESULT_ENTRY:
        _, ds, de = _header(data, s)
        _, a, b = _header(data, de)
        response: dict[str, Any] = {"type": "searchResEntry",
                                    "dn": data[ds:de].decode("utf-8", "replace"),
                                    "attributes": _attributes(data, a, b)}
    elif tag == SEARCH_RESULT_REFERENCE:
        response = {"type": "searchResRef",
                    "uri": [data[a:b].decode("utf-8", "replace")
                            for _, a, b in _children(data, s, op_end)]}
    elif tag in RESPONSE_TYPES:
        response = {"type": RESPONSE_TYPES[tag], **_result(data, s, op_end)}
    else:
        raise DecodeError(f"unexpected protocol op 0x{tag:02x}")
    if op_end < end:
        ctag, cs, ce = _header(data, op_end)
        if ctag == 0xA0:
            response["controls"] = dict(_control(data, a, b)
                                        for _, a, b in _children(data, cs, ce))
    return message_id, response
