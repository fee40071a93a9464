"""Bearer-token authentication (flask-httpauth) → a Principal bound to a tenant.

Accepted: the static ``SCIM_BEARER_TOKEN`` (default tenant), managed tokens stored in
the directory (``scim_<id>_<secret>``, see directory/tokens.py) and OAuth access tokens
(managed tokens with a short expiry). A verified managed token is cached in this worker
for ``SCIM_TOKEN_CACHE_SECONDS`` (never past its expiry), so a request usually costs no
extra LDAP operation; a revoked token therefore keeps working for at most that long.
Failures are logged with the client address only, never the token, and an address that
keeps failing is answered 429 for a while. Cache and limiter live in each worker process.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Response, g, request
from flask_httpauth import HTTPTokenAuth

from directory import Pool
from directory.errors import DirectoryError, DirectoryUnavailable
from directory.tenant import Tenant
from directory.tokens import TOKENS, Clock, Store, now, split_token
from scim.protocol.errors import TooManyRequests, Unauthorized
from scim.web import scim_response

log = logging.getLogger("scim.auth")
#: last-used is written at most this often per token (never once per request).
TOUCH_EVERY = timedelta(minutes=1)
#: Bounds of the per-worker tables (an attacker must not grow them without limit).
MAX_ENTRIES = 10_000
WINDOW = 60.0


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name and id, and the tenant it may see."""

    token_name: str
    tenant: Tenant
    token_id: str = ""


class FailureLimiter:
    """Failed authentications per client address in a sliding one-minute window.

    An address with ``per_minute`` failures in the window is refused until the oldest
    of them is a minute old. Other addresses are not affected. State is per worker
    process, so with N workers an address may fail up to N × ``per_minute`` times.
    """

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _window(self, address: str, at: float) -> deque[float]:
        window = self._seen.setdefault(address, deque())
        while window and window[0] <= at - WINDOW:
            window.popleft()
        return window

    def blocked(self, address: str) -> int:
        """Seconds to wait, or 0 when the address may try."""
        at = time.monotonic()
        with self._lock:
            if address not in self._seen:
                return 0
            window = self._window(address, at)
            if len(window) < self.per_minute:
                return 0
            return max(1, int(window[0] + WINDOW - at + 0.999))

    def record(self, address: str) -> None:
        at = time.monotonic()
        with self._lock:
            self._window(address, at).append(at)
            if len(self._seen) > MAX_ENTRIES:
                self._forget(at)

    def _forget(self, at: float) -> None:
        """Drop quiet addresses; if all are busy, the least recently failing half."""
        for key in [k for k, w in self._seen.items() if not w or w[-1] <= at - WINDOW]:
            del self._seen[key]
        if len(self._seen) > MAX_ENTRIES:
            by_last = sorted(self._seen, key=lambda k: self._seen[k][-1])
            for key in by_last[: len(by_last) // 2]:
                del self._seen[key]


class TokenCache:
    """Verified managed tokens for a short TTL, keyed by SHA-256 of the token.

    Only the digest is kept, so the process memory holds no usable token.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._items: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def get(self, token: str) -> Principal | None:
        key = self.key(token)
        with self._lock:
            item = self._items.get(key)
            if item is not None and item[0] <= time.monotonic():
                del self._items[key]
                item = None
        return item[1] if item else None

    def put(self, token: str, principal: Principal, ttl: float) -> None:
        if ttl <= 0:
            return
        with self._lock:
            if len(self._items) >= MAX_ENTRIES:
                self._items.clear()
            self._items[self.key(token)] = (time.monotonic() + ttl, principal)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class Authenticator:
    """The verify_token callback and its per-worker state (cache, limiter, touches).

    ``clock`` gives the wall-clock time used for expiry (tests move it).
    """

    def __init__(self, static_token: str, default_tenant: Tenant, pool: Pool,
                 cache_seconds: float, failures_per_minute: int, clock: Clock = now) -> None:
        self.static = static_token.encode()
        self.default_tenant = default_tenant
        self.pool = pool
        self.cache = TokenCache(cache_seconds)
        self.limiter = FailureLimiter(failures_per_minute)
        self.clock = clock
        self._touched: dict[str, float] = {}

    def store(self, conn: Any) -> Store:
        """The token registry under the deployment's root base DN (the default tenant)."""
        return Store(conn, self.default_tenant.base_dn, self.clock)

    def verify(self, token: str) -> Principal | None:
        """flask-httpauth's verify_token: a Principal, or None (→ 401)."""
        if not token:
            self.failed("no bearer token")
            return None
        if self.static and hmac.compare_digest(token.encode(), self.static):
            return Principal("static", self.default_tenant, "static")
        principal = self.cache.get(token)
        if principal is None and split_token(token) is not None:  # else no LDAP needed
            principal = self._lookup(token)
        if principal is None:
            self.failed("unknown, revoked or expired token")
        return principal

    def _lookup(self, token: str) -> Principal | None:
        with self.pool.connection() as conn:
            store = self.store(conn)
            found = store.verify_token(token)
            if found is None:
                return None
            if self._due(found.id, found.last_used):
                try:
                    store.touch(TOKENS, found.id)
                except DirectoryUnavailable:
                    raise
                except DirectoryError as exc:  # last-used is informative: never fail on it
                    log.warning("could not record the use of token %s: %s", found.id, exc)
        principal = Principal(found.name, found.tenant, found.id)
        ttl = self.cache.ttl
        if found.ends is not None:
            ttl = min(ttl, (found.ends - self.clock()).total_seconds())
        self.cache.put(token, principal, ttl)
        return principal

    def _due(self, token_id: str, last_used: datetime | None) -> bool:
        """Whether last-used should be written now: at most once a minute per token,
        judged by this worker's memory and by the stored value (other workers)."""
        at = time.monotonic()
        if at - self._touched.get(token_id, float("-inf")) < TOUCH_EVERY.total_seconds():
            return False
        if last_used is not None and self.clock() - last_used < TOUCH_EVERY:
            return False
        if len(self._touched) >= MAX_ENTRIES:
            self._touched.clear()
        self._touched[token_id] = at
        return True

    def failed(self, reason: str) -> None:
        address = request.remote_addr or "unknown"
        self.limiter.record(address)
        g.auth_failure = reason  # for the audit record (scim/observability.py)
        log.warning("authentication failed from %s: %s", address, reason)

    def check_rate(self) -> None:
        wait = self.limiter.blocked(request.remote_addr or "unknown")
        if wait:
            raise TooManyRequests("too many failed authentications from this address; "
                                  "retry later", retry_after=wait)


def make_auth(authenticator: Authenticator) -> HTTPTokenAuth:
    """flask-httpauth token auth around the authenticator (constant-time compares)."""
    auth = HTTPTokenAuth(scheme="Bearer")
    auth.verify_token(authenticator.verify)

    @auth.error_handler
    def unauthorized(status: int) -> Response:
        error = Unauthorized("a valid bearer token is required (Authorization: Bearer …)")
        return scim_response(error.to_body(), 401)

    return auth
