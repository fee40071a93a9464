"""The only code that builds ldap3 ``Server``/``Connection`` objects.

A :class:`Pool` belongs to one worker process: it is created lazily, after
gunicorn forks, and re-created if the process id changes, so no socket is ever
shared across a fork. It hands out exclusive SYNC connections; a request holds one
at a time. A connection that fails at the transport level is discarded, and the
next checkout reconnects (trying every ``LDAP_URL`` in order).
"""

from __future__ import annotations

import math
import os
import select
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from ldap3 import NONE, SYNC, Connection, Server, Tls

from config import Settings
from directory.diagnose import explain
from directory.errors import CONNECTION_ERRORS, DirectoryBusy, DirectoryUnavailable

SOCKET_READ_SIZE = 65536


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
    last: BaseException | None = None
    last_url = ""
    for url in urls or settings.ldap_urls:
        last_url = url
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
            return conn
        except Exception as exc:  # noqa: BLE001 - unreachable, TLS failure or refused bind
            last = exc
            _close_quietly(conn)
    raise DirectoryUnavailable(explain(last, last_url, settings))


class Pool:
    """Per-process pool of exclusive, bound LDAP connections."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._free: list[Connection] = []
        self._slots = threading.BoundedSemaphore(settings.LDAP_POOL_SIZE)
        self._pid = os.getpid()

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:  # inherited from the master: never reuse
            with self._lock:
                self._free = []
                self._slots = threading.BoundedSemaphore(self._settings.LDAP_POOL_SIZE)
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
                    return open_connection(self._settings)
                if _alive(conn):
                    return conn
                self._discard(conn)
        except BaseException:
            self._slots.release()
            raise

    def checkin(self, conn: Connection, broken: bool = False) -> None:
        """Return a connection; a broken one is dropped and replaced on next use."""
        if broken:
            self._discard(conn)
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

    @staticmethod
    def _discard(conn: Connection | None) -> None:
        if conn is not None:
            _close_quietly(conn)

    def close(self) -> None:
        """Unbind every idle connection (shutdown, tests)."""
        with self._lock:
            free, self._free = self._free, []
        for conn in free:
            self._discard(conn)


def _close_quietly(conn: Connection) -> None:
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
