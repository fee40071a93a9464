"""Overload, bounded (loopback, under 20 s): many times what a tiny LDAP pool serves.
Beyond ``LDAP_POOL_WAIT`` a request is answered 503 + Retry-After instead of queueing;
nothing else fails, nothing waits past the timeout, and the service recovers at once.
The long form is ``bench/overload.py``."""

from __future__ import annotations

import statistics
import time
from collections import Counter

from tests.reliability.conftest import StartGunicorn
from tests.reliability.support import LOST_ANSWER, call, load, scim_path, seed_people

POOL_WAIT = 0.2
WORKERS, THREADS, POOL = 2, 8, 1  # 16 request threads share 2 LDAP connections
CLIENTS = 32
DURATION = 8.0


def test_overload_is_answered_503_and_recovers(own_slapd, own_ldap, gunicorn: StartGunicorn):
    ids = seed_people(own_ldap, own_slapd.env["LDAP_BASE_DN"], 300)
    server = gunicorn({**own_slapd.env, "LDAP_POOL_SIZE": str(POOL),
                       "LDAP_POOL_WAIT": str(POOL_WAIT), "SCIM_RETRY_AFTER": "1",
                       "GUNICORN_ACCESS_LOG": "/dev/null"}, workers=WORKERS, threads=THREADS)
    started = time.monotonic()
    shots = load(server.port, ids, CLIENTS, DURATION)
    statuses = Counter(s.status for s in shots)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[LOST_ANSWER] == 0
    assert statuses[503] > 0 and statuses[200] > 0, statuses  # the bound engaged; work got done
    assert all(s.retryable for s in shots if s.status == 503)
    assert max(s.elapsed for s in shots) < 10.0  # well inside any client's timeout
    refused = [s.elapsed for s in shots if s.status == 503]
    assert statistics.median(refused) < POOL_WAIT + 1.0  # refused quickly, not after a queue
    assert time.monotonic() - started < DURATION + 10

    for i in range(20):  # recovery: at once, every request served quickly
        reply = call(server, "GET", scim_path(f"/Users/{ids[i]}"))
        assert reply.status == 200 and reply.elapsed < 1.0, reply
