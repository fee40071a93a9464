"""Shared fixtures: one real slapd per test session, a clean tree per test.

Tests that use ``slapd`` (directly or through ``app``/``client``/``ldap``) are marked
``slapd`` automatically. Without slapd installed they are skipped with a loud reason,
except under CI (``CI`` set), where a missing slapd fails the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from ldap3 import SUBTREE, Connection, Server

from config import Settings, load_settings
from scim.factory import create_app
from tests.slapd_instance import SlapdInstance, slapd_available

TOKEN = "test-token-0123456789abcdef"
SCIM_JSON = "application/scim+json"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "slapd" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slapd)


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdInstance]:
    if not slapd_available():
        message = "slapd is not installed: run 'apt-get install slapd ldap-utils' as root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    instance = SlapdInstance()
    instance.start(tmp_path_factory.mktemp("slapd"))
    yield instance
    instance.stop()


def admin_connection(env: dict[str, str]) -> Connection:
    host, port = env["LDAP_URL"].removeprefix("ldap://").split(":")
    return Connection(Server(host, int(port)), env["LDAP_BIND_DN"], env["LDAP_BIND_PASSWORD"],
                      auto_bind=True, raise_exceptions=True)


def wipe(conn: Connection, base: str) -> None:
    """Delete everything below ou=People and ou=Groups (deepest first)."""
    for ou in ("ou=Groups", "ou=People"):
        conn.search(f"{ou},{base}", "(objectClass=*)", SUBTREE, attributes=["1.1"])
        dns = [e["dn"] for e in conn.response if e["dn"].lower() != f"{ou},{base}".lower()]
        for dn in sorted(dns, key=lambda d: -d.count(",")):
            conn.delete(dn)


@pytest.fixture
def ldap(slapd: SlapdInstance) -> Iterator[Connection]:
    """A plain admin connection to read back what the service wrote."""
    if slapd.pid is None:  # a test stopped it
        slapd.start(slapd._folder(), slapd.port, slapd.nosync)
    conn = admin_connection(slapd.env)
    wipe(conn, slapd.env["LDAP_BASE_DN"])
    yield conn
    conn.unbind()


@pytest.fixture
def base_dn(slapd: SlapdInstance) -> str:
    return slapd.env["LDAP_BASE_DN"]


@pytest.fixture
def settings(slapd: SlapdInstance, ldap: Connection) -> Settings:
    return load_settings({**slapd.env, "SCIM_BEARER_TOKEN": TOKEN, "LDAP_TIMEOUT": "2",
                          "LDAP_CONNECT_TIMEOUT": "0.5", "SCIM_RETRY_AFTER": "3"})


@pytest.fixture
def app(settings: Settings) -> Iterator[Any]:
    application = create_app(settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["scim_bridge"].pool.close()


class Scim:
    """A test client that speaks SCIM with the bearer token."""

    def __init__(self, client: Any, prefix: str = "/scim/v2") -> None:
        self.client = client
        self.prefix = prefix
        self.headers = {"Authorization": f"Bearer {TOKEN}"}

    def _call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        headers = {**self.headers, **kw.pop("headers", {})}
        if body is not None:
            kw["json"] = body
            headers.setdefault("Content-Type", SCIM_JSON)
        return getattr(self.client, method)(self.prefix + path, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self._call("get", path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Any:
        return self._call("post", path, body, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Any:
        return self._call("put", path, body, **kw)

    def patch(self, path: str, body: Any, **kw: Any) -> Any:
        return self._call("patch", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self._call("delete", path, **kw)


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture
def scim(client: Any) -> Scim:
    return Scim(client)
