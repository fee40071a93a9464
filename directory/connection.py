"""The only code that builds ldap3 ``Server``/``Connection`` objects.

A :class:`Pool` belongs to one worker process: it is created lazily, after
gunicorn forks, and re-created if the process id changes, so no socket is ever
shared across a fork. It hands out exclusive SYNC connections; a request holds one
at a time. A connection that fails at the transport level is discarded, and the
next checkout reconnects.

Fail-over between providers (several ``LDAP_URL``s, e.g. two OpenLDAP multi-providers):
a pool writes to one provider at a time, its *current* one (the first URL at start).
A new connection tries the current provider first, then the following URLs in order
(wrapping round). When it lands on another one, that becomes current (a fail-over:
counted, logged) and the pooled connections to the old one are dropped, so every
request of the worker sees the same server and so its own writes. The pool does *not*
go back to the first URL when that one answers again: it stays until the current one
fails. Going back would flap on a provider that comes and goes, and would read from a
provider that has just restarted and may not yet hold what was written meanwhile.
"""

from __future__ import annotations

import logging
import math
import os
import select
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from ldap3 import NONE, SYNC, Connection, Server, Tls

from config import Settings
from directory.diagnose import explain
from directory.errors import CONNECTION_ERRORS, DirectoryBusy, DirectoryUnavailable

SOCKET_READ_SIZE = 65536
log = logging.getLogger("directory.connection")


def build_server(url: str, settings: Settings) -> Server:
    """An ldap3 Server for one URL with our timeouts and TLS settings."""
    parts = urlsplit(url)
    tls = None
    if parts.scheme == "ldaps" or settings.LDAP_START_TLS:
        tls = Tls(
            validate=ssl.CERT_REQUIRED if settings.LDAP_TLS_VERIFY else ssl.CERT_NONE,
            ca_certs_file=settings.LDAP_CA_FILE or None,
            version=ssl.PROTOCOL_TLS_CLIENT,
        )
    if parts.scheme == "ldapi":
        return Server(url, get_info=NONE, connect_timeout=settings.LDAP_CONNECT_TIMEOUT)
    return Server(
        parts.hostname or "127.0.0.1",
        port=parts.port,
        use_ssl=parts.scheme == "ldaps",
        tls=tls,
        get_info=NONE,
        connect_timeout=settings.LDAP_CONNECT_TIMEOUT,
    )


def open_connection(settings: Settings, urls: list[str] | None = None) -> Connection:
    """Open and bind a connection, trying each URL in order (fail-over)."""
    return open_indexed(settings, urls or settings.ldap_urls)[0]


def open_indexed(settings: Settings, urls: list[str], first: int = 0) -> tuple[Connection, int]:
    """A bound connection and the index in ``urls`` of the server that took it, trying
    ``urls[first]`` first and then the next ones, wrapping round."""
    last: BaseException | None = None
    last_url = ""
    for index in [*range(first, len(urls)), *range(first)]:
        url = last_url = urls[index]
        conn = Connection(
            build_server(url, settings),
            user=settings.LDAP_BIND_DN,
            password=settings.LDAP_BIND_PASSWORD,
            client_strategy=SYNC,
            raise_exceptions=True,
            # ldap3 packs SO_RCVTIMEO as whole seconds
            receive_timeout=max(1, math.ceil(settings.LDAP_TIMEOUT)),
            return_empty_attributes=False,
            auto_bind="NONE",
        )
        try:
            conn.open()
            if settings.LDAP_START_TLS and not url.startswith("ldaps") and \
                    not conn.start_tls(read_server_info=False):
                raise DirectoryUnavailable("StartTLS failed")  # never bind in the clear
            conn.bind()
            # ldap3 reads 4 KiB at a time by default, and its receive loop gets
            # quadratically slower on large replies (a 100k-member group: 1.7 s vs 0.14 s
            # with 64 KiB reads); small replies do not care.
            conn.strategy.socket_size = SOCKET_READ_SIZE
            return conn, index
        except Exception as exc:  # noqa: BLE001 - unreachable, TLS failure or refused bind
            last = exc
            close_quietly(conn)
    raise DirectoryUnavailable(explain(last, last_url, settings))


class Pool:
    """Per-process pool of exclusive, bound LDAP connections."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._free: list[Connection] = []
        self._slots = threading.BoundedSemaphore(settings.LDAP_POOL_SIZE)
        self._pid = os.getpid()
        self._urls = settings.ldap_urls
        self._current = 0
        self._server_of: dict[int, int] = {}  # id(connection) -> index of its URL
        #: Called with (old index, new index) on each fail-over (metrics set it).
        self.on_failover: Callable[[int, int], None] | None = None

    @property
    def current(self) -> int:
        """Index in ``LDAP_URL`` of the provider this worker writes to (0 = the first)."""
        return self._current

    @property
    def urls(self) -> list[str]:
        return list(self._urls)

    @property
    def settings(self) -> Settings:
        return self._settings

    def _open(self) -> Connection:
        conn, index = open_indexed(self._settings, self._urls, self._current)
        moved = None
        with self._lock:
            self._server_of[id(conn)] = index
            if index != self._current:
                moved, self._current = self._current, index
                stale, self._free = self._free, []
            else:
                stale = []
        for old in stale:
            self._discard(old)
        if moved is not None:
            log.warning("directory fail-over: LDAP_URL #%d (%s) did not answer; writing to "
                        "#%d (%s) from now on", moved + 1, self._urls[moved], index + 1,
                        self._urls[index])
            if self.on_failover is not None:
                self.on_failover(moved, index)
        return conn

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:  # inherited from the master: never reuse
            with self._lock:
                self._free = []
                self._slots = threading.BoundedSemaphore(self._settings.LDAP_POOL_SIZE)
                self._server_of = {}
                self._pid = os.getpid()

    def checkout(self) -> Connection:
        """A bound connection for this thread; give it back with :meth:`checkin`."""
        self._check_fork()
        if not self._slots.acquire(timeout=self._settings.LDAP_POOL_WAIT):
            raise DirectoryBusy("all directory connections of this worker are busy")
        try:
            while True:
                with self._lock:
                    conn = self._free.pop() if self._free else None
                if conn is None:
                    return self._open()
                if _alive(conn) and self._server_of.get(id(conn)) == self._current:
                    return conn
                self._discard(conn)
        except BaseException:
            self._slots.release()
            raise

    def checkin(self, conn: Connection, broken: bool = False) -> None:
        """Return a connection; a broken one is dropped and replaced on next use."""
        if broken or self._server_of.get(id(conn)) != self._current:
            self._discard(conn)  # broken, or to a provider this worker left
        else:
            with self._lock:
                self._free.append(conn)
        self._slots.release()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """Check out a connection for the duration of the ``with`` block."""
        conn = self.checkout()
        broken = False
        try:
            yield conn
        except (*CONNECTION_ERRORS, DirectoryUnavailable):
            broken = True
            raise
        finally:
            self.checkin(conn, broken)

    def _discard(self, conn: Connection | None) -> None:
        if conn is not None:
            self._server_of.pop(id(conn), None)
            close_quietly(conn)

    def close(self) -> None:
        """Unbind every idle connection (shutdown, tests)."""
        with self._lock:
            free, self._free = self._free, []
        for conn in free:
            self._discard(conn)


def close_quietly(conn: Connection) -> None:
    try:
        conn.unbind()
    except Exception:  # noqa: BLE001, S110 - already broken
        pass
    sock = getattr(conn, "socket", None)
    if sock is not None:
        sock.close()


def _alive(conn: Connection) -> bool:
    """False when the server closed an idle connection (restart, idle timeout).

    An idle LDAP socket has nothing to read; if it is readable, the peer sent EOF
    (or a notice of disconnection), so the connection is dropped before use instead
    of failing the request that would have used it.
    """
    sock = getattr(conn, "socket", None)
    if conn.closed or sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def wait_until_reachable(settings: Settings, timeout: float) -> bool:
    """Poll until a bind succeeds (used by readiness checks and scripts)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            open_connection(settings).unbind()
            return True
        except DirectoryUnavailable:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
