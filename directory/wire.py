"""Send our own BER-encoded requests on an ldap3 connection; ldap3 reads the answer.

ldap3 stays the client: it opens, binds and secures the socket, numbers messages,
receives and decodes responses, and raises its exceptions for error results (so
:func:`directory.errors.translate` sees exactly what it would see from ldap3's own
methods). Only request encoding is ours (:mod:`directory.ber`). Connections whose
strategy is not ldap3's plain synchronous one (the mock server in unit tests, SASL
signing) go through ldap3's public methods instead, with the same arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ldap3 import Connection
from ldap3.core.exceptions import LDAPSocketOpenError, LDAPSocketSendError
from ldap3.strategy.sync import SyncStrategy

from directory import ber


def fast(conn: Connection) -> bool:
    """Whether ``conn`` takes pre-encoded requests (plain SYNC, no SASL signing)."""
    return type(conn.strategy) is SyncStrategy and not conn.sasl_mechanism and not conn.usage


def _send(conn: Connection, kind: str, operation: bytes,
          controls: Sequence[ber.Control] | None, request: dict[str, Any]) -> list[dict]:
    """Send one request and return ldap3's decoded responses (entries, then the result).

    Mirrors ldap3's ``BaseStrategy.send`` + ``post_send_*``: the request is registered
    as outstanding under its message id, so ldap3's receive loop accepts the answer.
    """
    with conn.connection_lock:
        if not conn.listening:
            conn.last_error = "unable to send message, socket is not open"
            raise LDAPSocketOpenError(conn.last_error)
        strategy = conn.strategy
        message_id = conn.server.next_message_id()
        request = {"type": kind, "controls": controls, **request}
        conn.request = request
        strategy._outstanding[message_id] = request
        try:
            conn.socket.sendall(ber.message(message_id, operation, controls or ()))
        except OSError as exc:
            strategy._outstanding.pop(message_id, None)
            conn.last_error = "socket sending error" + str(exc)
            raise LDAPSocketSendError(conn.last_error) from exc
        responses, result = strategy.get_response(message_id)
        conn.result = result
        conn.response = list(responses)
        return responses


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

