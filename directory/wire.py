"""Requests and responses of the hot path, encoded and decoded by us on ldap3's socket.

ldap3 stays the client: it opens, binds and secures the connection and numbers the
messages. What it spends per operation on top of the wire — pyasn1 objects and its
filter parser for the request, a generic BER walk, case-insensitive dicts and value
formatting for the answer — cost more CPU than slapd's own work on an indexed search
(measured: ~0.4 ms to build a search with our attribute list, ~0.15 ms to decode one
entry). :mod:`directory.ber` does both directly. Errors are raised as the same ldap3
exceptions (``LDAPOperationResult`` by result code, ``LDAPSocket…Error`` for the
transport), so :func:`directory.errors.translate` sees what ldap3 would have raised, and
``conn.result``/``conn.response`` hold the same shapes. Connections whose strategy is
not ldap3's plain synchronous one (the mock server in unit tests, SASL signing) go
through ldap3's public methods instead, with the same arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ldap3 import Connection
from ldap3.core.exceptions import (
    LDAPOperationResult,
    LDAPSessionTerminatedByServerError,
    LDAPSocketOpenError,
    LDAPSocketReceiveError,
    LDAPSocketSendError,
)
from ldap3.core.results import DO_NOT_RAISE_EXCEPTIONS
from ldap3.strategy.sync import SyncStrategy

from directory import ber


def fast(conn: Connection) -> bool:
    """Whether ``conn`` takes pre-encoded requests (plain SYNC, no SASL signing)."""
    return type(conn.strategy) is SyncStrategy and not conn.sasl_mechanism and not conn.usage


def _send(conn: Connection, kind: str, operation: bytes,
          controls: Sequence[ber.Control] | None, request: dict[str, Any]) -> list[dict]:
    """Send one request and wait for its answer (entries, then the result).

    Leaves ``conn.result`` and ``conn.response`` as ldap3's methods do, and raises
    ``LDAPOperationResult`` for the result codes ldap3 raises for.
    """
    with conn.connection_lock:
        if not conn.listening:
            conn.last_error = "unable to send message, socket is not open"
            raise LDAPSocketOpenError(conn.last_error)
        message_id = conn.server.next_message_id()
        conn.request = {"type": kind, "controls": controls, **request}
        try:
            conn.socket.sendall(ber.message(message_id, operation, controls or ()))
        except OSError as exc:
            conn.last_error = "socket sending error" + str(exc)
            raise LDAPSocketSendError(conn.last_error) from exc
        entries, result = _receive(conn, message_id)
        conn.result = result
        conn.response = entries
        if result["result"] not in DO_NOT_RAISE_EXCEPTIONS:
            raise LDAPOperationResult(result=result["result"],
                                      description=result["description"], dn=result["dn"],
                                      message=result["message"], response_type=result["type"])
        return entries


def _receive(conn: Connection, message_id: int) -> tuple[list[dict], dict[str, Any]]:
    """Read messages until the one that ends operation ``message_id``."""
    sock = conn.socket
    size = getattr(conn.strategy, "socket_size", None) or 65536
    buffer = bytearray()
    pos = 0
    entries: list[dict] = []
    while True:
        length = ber.message_size(buffer, pos)
        if length < 0 or len(buffer) - pos < length:
            if pos:
                del buffer[:pos]  # keep the buffer to what is not decoded yet
                pos = 0
            try:
                data = sock.recv(size)
            except OSError as exc:
                conn.last_error = "error receiving data: " + str(exc)
                raise LDAPSocketReceiveError(conn.last_error) from exc
            if not data:
                conn.last_error = "session terminated by server"
                raise LDAPSessionTerminatedByServerError(conn.last_error)
            buffer += data
            continue
        try:
            got, response = ber.decode_message(bytes(buffer[pos:pos + length]))
        except ber.DecodeError as exc:
            conn.last_error = f"undecodable answer: {exc}"
            raise LDAPSocketReceiveError(conn.last_error) from exc
        pos += length
        if got == message_id:
            if response["type"] in ("searchResEntry", "searchResRef"):
                entries.append(response)
                continue
            return entries, response
        # message id 0 is an unsolicited notification: a notice of disconnection
        conn.last_error = ("session terminated by server" if got == 0
                           else f"answer to message {got} while waiting for {message_id}")
        if got == 0:
            raise LDAPSessionTerminatedByServerError(conn.last_error)
        raise LDAPSocketReceiveError(conn.last_error)


def _plain_controls(controls: Sequence[ber.Control] | None) -> list[Any] | None:
    return list(controls) if controls else None


def search(conn: Connection, base: str, scope: str, ldap_filter: str,
           attributes: Sequence[str], *, size_limit: int = 0,
           controls: Sequence[ber.Control] | None = None) -> None:
    """A search (scope: ldap3's BASE/LEVEL/SUBTREE); entries in ``conn.response``, the
    result in ``conn.result``."""
    if not fast(conn):
        conn.search(base, ldap_filter, scope, attributes=list(attributes) or
                    ["1.1"], size_limit=size_limit, controls=_plain_controls(controls))
        return
    operation = ber.search_request(base, ber.SCOPES[scope], ldap_filter, attributes,
                                   size_limit)
    _send(conn, "searchRequest", operation, controls,
          {"base": base, "scope": scope, "filter": ldap_filter,
           "attributes": list(attributes), "sizeLimit": size_limit})


def add(conn: Connection, dn: str, attributes: dict[str, Sequence[str]],
        controls: Sequence[ber.Control] | None = None) -> None:
    """An add; ``attributes`` includes objectClass."""
    if not fast(conn):
        classes = attributes.get("objectClass")
        rest = {k: list(v) for k, v in attributes.items() if k != "objectClass"}
        conn.add(dn, list(classes or []), rest, controls=_plain_controls(controls))
        return
    _send(conn, "addRequest", ber.add_request(dn, attributes), controls,
          {"entry": dn, "attributes": attributes})


def modify(conn: Connection, dn: str, changes: dict[str, list[tuple[str, Sequence[str]]]],
           controls: Sequence[ber.Control] | None = None) -> None:
    if not fast(conn):
        conn.modify(dn, changes, controls=_plain_controls(controls))
        return
    _send(conn, "modifyRequest", ber.modify_request(dn, changes), controls,
          {"entry": dn, "changes": changes})


def modify_dn(conn: Connection, dn: str, new_rdn: str,
              controls: Sequence[ber.Control] | None = None) -> None:
    if not fast(conn):
        conn.modify_dn(dn, new_rdn, delete_old_dn=True, controls=_plain_controls(controls))
        return
    _send(conn, "modDNRequest", ber.modify_dn_request(dn, new_rdn), controls,
          {"entry": dn, "newRdn": new_rdn, "deleteOldRdn": True})


def delete(conn: Connection, dn: str) -> None:
    if not fast(conn):
        conn.delete(dn)
        return
    _send(conn, "delRequest", ber.delete_request(dn), None, {"entry": dn})


def compare(conn: Connection, dn: str, attribute: str, value: str) -> None:
    if not fast(conn):
        conn.compare(dn, attribute, value)
        return
    _send(conn, "compareRequest", ber.compare_request(dn, attribute, value), None,
          {"entry": dn, "attribute": attribute, "value": value})

