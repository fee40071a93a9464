"""Bearer-token authentication (flask-httpauth) → a Principal bound to a tenant.

Accepted: the static ``SCIM_BEARER_TOKEN`` (default tenant), managed tokens stored in
the directory (``scim_<id>_<secret>``, see directory/tokens.py) and OAuth access tokens
(which are managed tokens with a short expiry). Verified managed tokens are cached for
``SCIM_TOKEN_CACHE_SECONDS``; revocation therefore takes effect within that time.
Failures are logged with the client address only, and an address that keeps failing
is answered 429 for a while (per worker process).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import timedelta

from flask import Response, request
from flask_httpauth import HTTPTokenAuth

from directory import Pool
from directory.tenant import Tenant
from directory.tokens import Store, now
from scim.protocol.errors import TooManyRequests, Unauthorized
from scim.web import scim_response

log = logging.getLogger("scim.auth")
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name and id, and the tenant it may see."""

    token_name: str
    tenant: Tenant
    token_id: str = ""


class FailureLimiter:
    """Sliding one-minute window of failed authentications per client address."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _window(self, address: str) -> deque[float]:
        window = self._seen.setdefault(address, deque())
        cutoff = time.monotonic() - 60
        while window and window[0] < cutoff:
            window.popleft()
        return window

    def blocked(self, address: str) -> int:
        """Seconds to wait, or 0 when the address may try."""
        with self._lock:
            window = self._window(address)
            if len(window) < self.per_minute:
                return 0
            return max(1, int(window[0] + 60 - time.monotonic()) + 1)

    def record(self, address: str) -> None:
        with self._lock:
            self._window(address).append(time.monotonic())
            if len(self._seen) > 10000:  # forget quiet addresses
                for key in [k for k, v in self._seen.items() if not v][:5000]:
                    del self._seen[key]


class TokenCache:
    """Verified managed tokens, keyed by the token's hash, for a short TTL."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._items: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def get(self, token: str) -> Principal | None:
        with self._lock:
            item = self._items.get(self.key(token))
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    def put(self, token: str, principal: Principal) -> None:
        with self._lock:
            if len(self._items) > 10000:
                self._items.clear()
            self._items[self.key(token)] = (time.monotonic() + self.ttl, principal)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class Authenticator:
    """The verify_token callback with its state (cache, limiter, touch times)."""

    def __init__(self, static_token: str, default_tenant: Tenant, pool: Pool,
                 cache_seconds: float, failures_per_minute: int) -> None:
        self.static = static_token.encode()
        self.default_tenant = default_tenant
        self.pool = pool
        self.cache = TokenCache(cache_seconds)
        self.limiter = FailureLimiter(failures_per_minute)
        self._touched: dict[str, float] = {}

    def verify(self, token: str) -> Principal | None:
        if token and self.static and hmac.compare_digest(token.encode(), self.static):
            return Principal("static", self.default_tenant, "static")
        principal = self.cache.get(token) if token else None
        if principal is None and token:
            principal = self._lookup(token)
        if principal is None:
            self.failed()
        return principal

    def _lookup(self, token: str) -> Principal | None:
        with self.pool.connection() as conn:
            store = Store(conn, self.default_tenant.base_dn)
            found = store.verify(token)
            if found is None:
                return None
            last = self._touched.get(found.id, 0.0)
            if time.monotonic() - last > TOUCH_EVERY.total_seconds() and (
                    found.last_used is None or now() - found.last_used > TOUCH_EVERY):
                store.touch(found.id)
                self._touched[found.id] = time.monotonic()
        principal = Principal(found.name, found.tenant, found.id)
        self.cache.put(token, principal)
        return principal

    def failed(self) -> None:
        address = request.remote_addr or "unknown"
        self.limiter.record(address)
        log.warning("authentication failed from %s", address)

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
