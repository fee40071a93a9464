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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Request:
    """One operation ready to send: its BER encoding, and what ldap3 would be called with
    (for connections that go through ldap3's methods)."""

    kind: str
    operation: bytes
    controls: Sequence[ber.Control] | None
    call: Callable[[Connection], Any]


Answer = tuple[list[dict], dict[str, Any]]


def _plain_controls(controls: Sequence[ber.Control] | None) -> list[Any] | None:
    return list(controls) if controls else None


def search_request(base: str, scope: str, ldap_filter: str, attributes: Sequence[str], *,
                   size_limit: int = 0,
                   controls: Sequence[ber.Control] | None = None) -> Request:
    """A search (scope: ldap3's BASE/LEVEL/SUBTREE)."""
    return Request("searchRequest", ber.search_request(
        base, ber.SCOPES[scope], ldap_filter, attributes, size_limit), controls,
        lambda conn: conn.search(base, ldap_filter, scope, attributes=list(attributes) or
                                 ["1.1"], size_limit=size_limit,
                                 controls=_plain_controls(controls)))


def modify_request(dn: str, changes: dict[str, list[tuple[str, Sequence[str]]]],
                   controls: Sequence[ber.Control] | None = None) -> Request:
    return Request("modifyRequest", ber.modify_request(dn, changes), controls,
                   lambda conn: conn.modify(dn, changes, controls=_plain_controls(controls)))


def check(answer: Answer) -> Answer:
    """Raise what ldap3 raises for an error result (``LDAPOperationResult`` by code)."""
    result = answer[1]
    if result["result"] not in DO_NOT_RAISE_EXCEPTIONS:
        raise LDAPOperationResult(result=result["result"], description=result["description"],
                                  dn=result["dn"], message=result["message"],
                                  response_type=result["type"])
    return answer


def exchange(conn: Connection, requests: Sequence[Request]) -> list[Answer]:
    """Send requests together, then read all their answers (in request order).

    For independent operations: slapd works on them at the same time and the client
    waits for one round trip instead of one each. Error results are returned, not
    raised (see :func:`check`); transport errors raise. ``conn.result`` and
    ``conn.response`` are left as the last request's.
    """
    if not fast(conn):
        answers = []
        for request in requests:
            try:
                request.call(conn)
            except LDAPOperationResult:
                pass  # conn.result holds it, as for the fast path
            answers.append((list(conn.response or []), dict(conn.result or {})))
        return answers
    with conn.connection_lock:
        if not conn.listening:
            conn.last_error = "unable to send message, socket is not open"
            raise LDAPSocketOpenError(conn.last_error)
        ids = [conn.server.next_message_id() for _ in requests]
        conn.request = {"type": requests[-1].kind}
        try:
            conn.socket.sendall(b"".join(ber.message(i, r.operation, r.controls or ())
                                         for i, r in zip(ids, requests, strict=True)))
        except OSError as exc:
            conn.last_error = "socket sending error" + str(exc)
            raise LDAPSocketSendError(conn.last_error) from exc
        answers = _receive(conn, ids)
        conn.response, conn.result = answers[ids[-1]]
        return [answers[i] for i in ids]


def run(conn: Connection, request: Request) -> list[dict]:
    """One request: ``conn.result``/``conn.response`` set and errors raised as ldap3
    does; returns the entries."""
    if not fast(conn):
        request.call(conn)
        return list(conn.response or [])
    return check(exchange(conn, [request])[0])[0]


def _receive(conn: Connection, ids: list[int]) -> dict[int, Answer]:
    """Read messages until every operation in ``ids`` has its final answer."""
    sock = conn.socket
    size = getattr(conn.strategy, "socket_size", None) or 65536
    buffer = bytearray()
    pos = 0
    entries: dict[int, list[dict]] = {i: [] for i in ids}
    done: dict[int, Answer] = {}
    while len(done) < len(ids):
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
        if got in entries and got not in done:
            if response["type"] in ("searchResEntry", "searchResRef"):
                entries[got].append(response)
            else:
                done[got] = (entries[got], response)
            continue
        # message id 0 is an unsolicited notification: a notice of disconnection
        conn.last_error = ("session terminated by server" if got == 0
                           else f"answer to message {got} while waiting for {ids}")
        if got == 0:
            raise LDAPSessionTerminatedByServerError(conn.last_error)
        raise LDAPSocketReceiveError(conn.last_error)
    return done


# --- one operation each ------------------------------------------------------------------


def search(conn: Connection, base: str, scope: str, ldap_filter: str,
           attributes: Sequence[str], *, size_limit: int = 0,
           controls: Sequence[ber.Control] | None = None) -> None:
    """A search; entries in ``conn.response``, the result in ``conn.result``."""
    run(conn, search_request(base, scope, ldap_filter, attributes, size_limit=size_limit,
                             controls=controls))


def add(conn: Connection, dn: str, attributes: dict[str, Sequence[str]],
        controls: Sequence[ber.Control] | None = None) -> None:
    """An add; ``attributes`` includes objectClass."""
    classes = list(attributes.get("objectClass") or [])
    rest = {k: list(v) for k, v in attributes.items() if k != "objectClass"}
    run(conn, Request("addRequest", ber.add_request(dn, attributes), controls,
                      lambda c: c.add(dn, classes, rest, controls=_plain_controls(controls))))


def modify(conn: Connection, dn: str, changes: dict[str, list[tuple[str, Sequence[str]]]],
           controls: Sequence[ber.Control] | None = None) -> None:
    run(conn, modify_request(dn, changes, controls))


def modify_dn(conn: Connection, dn: str, new_rdn: str,
              controls: Sequence[ber.Control] | None = None) -> None:
    run(conn, Request("modDNRequest", ber.modify_dn_request(dn, new_rdn), controls,
                      lambda c: c.modify_dn(dn, new_rdn, delete_old_dn=True,
                                            controls=_plain_controls(controls))))


def delete(conn: Connection, dn: str) -> None:
    run(conn, Request("delRequest", ber.delete_request(dn), None, lambda c: c.delete(dn)))


def compare(conn: Connection, dn: str, attribute: str, value: str) -> None:
    run(conn, Request("compareRequest", ber.compare_request(dn, attribute, value), None,
                      lambda c: c.compare(dn, attribute, value)))
