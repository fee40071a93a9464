"""scim2-tester (RFC 7643/7644 compliance checks) against the app on real slapd.

It runs twice: in process through WSGI, and over real HTTP against the app served by
werkzeug on a loopback port (what a client on the network sees: sockets, headers,
URL encoding). Every check scim2-tester has is run (no tag is excluded), for Users
and Groups: discovery (ServiceProviderConfig, ResourceTypes, Schemas), create, read,
``attributes``/``excludedAttributes``, replace, PATCH add/replace/remove, delete and
unknown URLs. scim2-tester has no checks for filters, sorting, paging, ``.search``,
ETags or bulk (which we do not support: ``bulk.supported`` is false); our own tests
cover the others (tests/contract/test_query.py and friends).

Every check must succeed, except one disagreement kept on purpose:
``manager.displayName`` is read-only and filled by the server from the manager's
entry (RFC 7643 §8.7.2, and what Entra and admins expect to read); scim2-tester
expects a PATCHed manager to come back without it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("scim2_tester")

from scim2_client.engines.wsgi import WSGISCIMClient  # noqa: E402
from scim2_tester import CheckResult, Status, check_server  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from tests.conftest import TOKEN  # noqa: E402

pytestmark = pytest.mark.e2e
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
#: Statuses that are not a failure: MUST and SHOULD met, or a MAY taken reasonably.
PASSING = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE, Status.SKIPPED}


def _accepted(result: CheckResult) -> bool:
    reason = result.reason or ""
    return "manager" in reason and "display_name=None" in reason


def _check(client: Any) -> Counter[str]:
    results = check_server(client, raise_exceptions=False)
    statuses = Counter(r.status.name for r in results)
    failures = [f"{r.resource_type or '-'} {r.title}: {(r.reason or '')[:300]}"
                for r in results if r.status not in PASSING and not _accepted(r)]
    tags = Counter(tag for r in results for tag in r.tags)
    print(f"scim2-tester: {dict(statuses)}; by tag: {dict(sorted(tags.items()))}")
    assert failures == []
    assert statuses["SUCCESS"] >= 100
    assert {"User", "Group"} <= {r.resource_type for r in results}
    return statuses


def test_scim2_tester_in_process(app):
    _check(WSGISCIMClient(app, base_url="http://localhost/scim/v2", headers=HEADERS))


@pytest.fixture
def served(app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/scim/v2"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_scim2_tester_over_http(served):
    httpx2 = pytest.importorskip("httpx2")
    from scim2_client.engines.httpx2 import SyncSCIMClient

    with httpx2.Client(base_url=served, headers=HEADERS, timeout=30) as http:
        _check(SyncSCIMClient(http))
