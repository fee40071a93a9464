"""Fixtures of the reliability tests.

``own_slapd`` is a slapd of this module alone, in tmp: a test may SIGKILL or SIGSTOP it
without disturbing the session's. It depends on the session ``slapd`` fixture only for
its skip-or-fail logic (and so gets the ``slapd`` mark). ``gunicorn`` starts servers that
are stopped after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ldap3 import Connection

from tests.conftest import wipe
from tests.reliability.support import Gunicorn, admin
from tests.slapd_instance import SlapdInstance

StartGunicorn = Callable[..., Gunicorn]


@pytest.fixture(scope="module")
def own_slapd(slapd: SlapdInstance, tmp_path_factory: pytest.TempPathFactory,
              ) -> Iterator[SlapdInstance]:
    instance = SlapdInstance()
    instance.start(tmp_path_factory.mktemp("own-slapd"))
    yield instance
    if instance.pid is not None:
        instance.resume()
    instance.stop()


@pytest.fixture
def own_ldap(own_slapd: SlapdInstance) -> Iterator[Connection]:
    """An admin connection to ``own_slapd``, (re)started if needed, with an empty tree."""
    if own_slapd.pid is None:
        own_slapd.start(own_slapd._folder(), own_slapd.port, own_slapd.nosync)
    conn = admin(own_slapd.env)
    wipe(conn, own_slapd.env["LDAP_BASE_DN"])
    yield conn
    conn.unbind()


@pytest.fixture(scope="module")
def shared_gunicorn(slapd: SlapdInstance, tmp_path_factory: pytest.TempPathFactory,
                    ) -> Iterator[Gunicorn]:
    """One gunicorn (3 workers, 4 threads each) on the session slapd for a whole module:
    its tests wipe the tree (``ldap``) but need no fresh server."""
    server = Gunicorn({**slapd.env, "LDAP_TIMEOUT": "10"},
                      tmp_path_factory.mktemp("gunicorn") / "gunicorn.log", workers=3, threads=4)
    yield server
    server.stop()


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[StartGunicorn]:
    started: list[Gunicorn] = []

    def start(env: dict[str, str], **kw: int) -> Gunicorn:
        server = Gunicorn(env, tmp_path / f"gunicorn-{len(started)}.log", **kw)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
