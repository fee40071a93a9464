"""What only a real server shows: outage → 503 + Retry-After, then recovery; fail-over."""

from __future__ import annotations

import time

from config import load_settings
from scim.factory import create_app
from tests import entra
from tests.conftest import TOKEN, Scim


def test_slapd_down_gives_503_fast_and_recovers_without_restart(scim, slapd, ldap):
    created = scim.post("/Users", entra.minimal_user("before@x.org"))
    assert created.status_code == 201
    slapd.stop()
    try:
        started = time.monotonic()
        down = scim.get(f"/Users/{created.json['id']}")
        elapsed = time.monotonic() - started
        assert down.status_code == 503
        assert down.headers["Retry-After"] == "3"
        assert down.json["status"] == "503"
        assert "directory" in down.json["detail"]
        assert elapsed < 1.0
        assert scim.post("/Users", entra.minimal_user("during@x.org")).status_code == 503
    finally:
        slapd.start(slapd._folder(), slapd.port, slapd.nosync)
    again = scim.get(f"/Users/{created.json['id']}")
    assert again.status_code == 200
    assert again.json["userName"] == "before@x.org"
    assert scim.post("/Users", entra.minimal_user("after@x.org")).status_code == 201


def test_stale_pooled_connections_are_replaced_after_a_restart(scim, slapd, ldap):
    for i in range(4):  # fill the pool with several idle connections
        assert scim.post("/Users", entra.minimal_user(f"u{i}@x.org")).status_code == 201
    slapd.restart()
    for i in range(8):
        assert scim.get(f"/Users?filter=userName eq \"u{i % 4}@x.org\"").status_code == 200


def test_fail_over_to_the_next_url(slapd, ldap):
    env = {**slapd.env, "SCIM_BEARER_TOKEN": TOKEN,
           "LDAP_URL": f"ldap://127.0.0.1:1 {slapd.env['LDAP_URL']}",
           "LDAP_CONNECT_TIMEOUT": "0.5"}
    app = create_app(load_settings(env))
    scim = Scim(app.test_client())
    created = scim.post("/Users", entra.minimal_user("failover@x.org"))
    assert created.status_code == 201
    app.extensions["scim_bridge"].pool.close()
