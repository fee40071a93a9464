"""scripts/slapd start upgrades the scimbridge schema of an instance made before a change.

The instance is built from a copy of the repository whose scimbridge.ldif predates the
connector (no token, tenant or client classes); then the current file replaces it and
``start`` must bring cn=config up to date, once, whether slapd is running or not.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.slapd_instance import (
    NOT_INSTALLED_REASON,
    REPO,
    free_port,
    parse_env,
    slapd_available,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from ldap3 import NONE, Connection, Server
    from ldap3.core.exceptions import LDAPOperationResult

pytestmark = pytest.mark.slapd

SCHEMA = REPO / "directory" / "schema" / "scimbridge.ldif"
LDAPMODIFY = Path("/usr/bin/ldapmodify")
#: Definitions the connector added (attribute types .1.50 and up, classes .2.2 and up).
NEW_DEFINITION = re.compile(r"\.1\.5\d\b|\.2\.[2-9]\b")


def old_schema(text: str) -> str:
    """The current schema without the connector's definitions, and scimResource without
    scimRenamedFrom (added later still; an upgrade changes the class in place)."""
    header, *records = re.split(r"(?m)^(?=olc)", text)
    kept = [r for r in records if not NEW_DEFINITION.search(r.splitlines()[0])]
    return (header + "".join(kept)).replace(" scimRenamedFrom $", "")


class Copy:
    """A copy of the repository's scripts/slapd and schema, with its own instance."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.schema = root / "directory" / "schema" / "scimbridge.ldif"
        self.dir = root / "instance"
        self.port = free_port()
        (root / "scripts").mkdir(parents=True)
        shutil.copy(REPO / "scripts" / "slapd", root / "scripts" / "slapd")
        shutil.copytree(REPO / "directory" / "schema", self.schema.parent)

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, str(self.root / "scripts" / "slapd"), command, "--dir",
             str(self.dir), "--port", str(self.port), "--nosync"],
            capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        return result


@pytest.fixture
def copy(tmp_path: Path) -> Iterator[Copy]:
    if not slapd_available():
        pytest.skip(NOT_INSTALLED_REASON)
    if not LDAPMODIFY.exists():
        pytest.skip("ldapmodify is not installed: apt-get install ldap-utils")
    made = Copy(tmp_path / "repo")
    yield made
    subprocess.run([sys.executable, str(made.root / "scripts" / "slapd"), "stop", "--dir",
                    str(made.dir)], capture_output=True, timeout=60, check=False)


def add_token_entry(env: dict[str, str], cn: str) -> None:
    base = env["LDAP_BASE_DN"]
    conn = Connection(Server(env["LDAP_URL"], get_info=NONE), env["LDAP_BIND_DN"],
                      env["LDAP_BIND_PASSWORD"], auto_bind=True, raise_exceptions=True)
    try:
        conn.add(f"cn={cn},ou=Service,{base}", ["scimToken"], {
            "scimSecretHash": "00", "scimTenantBase": base, "scimTenantName": "default",
            "scimNotAfter": "20990101000000Z", "scimClientId": "0123456789abcdef"})
    finally:
        conn.unbind()


def test_old_schema_really_lacks_the_classes():
    old = old_schema(SCHEMA.read_text(encoding="utf-8"))
    assert "scimResource" in old and "scimExternalId" in old
    for name in ("scimToken", "scimTenant", "scimOAuthClient", "scimSecretHash", "scimNotAfter"):
        assert f"'{name}'" not in old


def test_start_upgrades_a_running_and_a_stopped_instance(copy):
    copy.schema.write_text(old_schema(SCHEMA.read_text(encoding="utf-8")), encoding="utf-8")
    env = parse_env(copy.run("start").stdout)
    with pytest.raises(LDAPOperationResult):  # the server does not know the class
        add_token_entry(env, "before")

    copy.schema.write_text(SCHEMA.read_text(encoding="utf-8"), encoding="utf-8")
    started = copy.run("start")  # slapd is running: upgraded online
    assert "upgraded the schema" in started.stderr
    assert parse_env(started.stdout) == env
    add_token_entry(env, "after")
    assert "upgraded" not in copy.run("start").stderr  # recorded: nothing to do

    copy.run("stop")
    (copy.dir / "schema.sha256").unlink()  # an instance from before the stamp existed
    assert "upgraded the schema" in copy.run("start").stderr  # replace is idempotent
    add_token_entry(env, "again")
    assert "upgraded" not in copy.run("start").stderr


def test_a_new_instance_needs_no_upgrade(copy):
    first = copy.run("start")
    assert "upgraded" not in first.stderr
    assert (copy.dir / "schema.sha256").read_text().strip()
    add_token_entry(parse_env(first.stdout), "fresh")
