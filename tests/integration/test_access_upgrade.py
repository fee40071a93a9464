"""scripts/slapd start brings an existing instance's access rules (olcAccess) in line with
the template, and listens for consumers beyond loopback only when asked (``--listen``).

The instance is built from a copy of the repository whose template still has the old
rules (``to * by users read``): any person with a password could read ``ou=Service``.
Then the current template replaces it and ``start`` must close that, running or stopped.
"""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_schema_upgrade import LDAPMODIFY, Copy
from tests.slapd_instance import NOT_INSTALLED_REASON, REPO, parse_env, slapd_available

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from ldap3 import NONE, SUBTREE, Connection, Server

pytestmark = pytest.mark.slapd

TEMPLATE = REPO / "directory" / "schema" / "slapd-config.ldif.tmpl"
OLD_RULES = ("olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none\n"
             "olcAccess: {1}to * by users read by * none\n")


def old_template(text: str) -> str:
    """The current template with the mdb database's rules of before issue 16."""
    kept = [line for line in text.splitlines(keepends=True)
            if not (line.startswith("olcAccess: {") and "peercred" not in line
                    and "Subschema" not in line and 'dn.exact=""' not in line)]
    at = next(i for i, line in enumerate(kept) if line.startswith("olcDbIndex: employeeNumber"))
    return "".join(kept[:at + 1]) + OLD_RULES + "".join(kept[at + 1:])


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


def _template(copy: Copy) -> Path:
    return copy.root / "directory" / "schema" / "slapd-config.ldif.tmpl"


def _person_reads_service(env: dict[str, str]) -> bool:
    """Whether a plain person with a password can read ou=Service (the old hole)."""
    base = env["LDAP_BASE_DN"]
    root = Connection(Server(env["LDAP_URL"], get_info=NONE), env["LDAP_BIND_DN"],
                      env["LDAP_BIND_PASSWORD"], auto_bind=True)
    dn = f"uid=someone,ou=People,{base}"
    root.add(dn, ["inetOrgPerson"], {"uid": "someone", "cn": "s", "sn": "s",
                                     "userPassword": "pw-someone"})
    root.unbind()
    person = Connection(Server(env["LDAP_URL"], get_info=NONE), dn, "pw-someone",
                        auto_bind=True)
    person.search(f"ou=Service,{base}", "(objectClass=*)", SUBTREE, attributes=["1.1"])
    found = bool(person.response)
    person.unbind()
    return found


def _rules(copy: Copy) -> list[str]:
    text = (copy.dir / "slapd.d" / "cn=config" / "olcDatabase={1}mdb.ldif").read_text()
    return re.findall(r"(?m)^olcAccess: (.*(?:\n .*)*)", text)


def test_old_template_really_has_the_old_rules():
    old = old_template(TEMPLATE.read_text())
    rules = [line for line in old.splitlines() if line.startswith("olcAccess:")]
    assert OLD_RULES in old and not any("scim-readers" in r or "pwdHistory" in r for r in rules)


def test_start_updates_the_rules_of_a_running_and_a_stopped_instance(copy):
    current = _template(copy).read_text()
    _template(copy).write_text(old_template(current))
    env = parse_env(copy.run("start").stdout)
    assert _person_reads_service(env)  # the instance of before: the hole is there
    assert len(_rules(copy)) == 2
    _template(copy).write_text(current)
    started = copy.run("start")  # running: updated online
    assert "updated the access rules" in started.stderr
    assert not _person_reads_service(env)
    assert len(_rules(copy)) == 5
    assert "updated" not in copy.run("start").stderr  # in line: nothing to do
    copy.run("stop")
    _template(copy).write_text(old_template(current))
    copy.run("start")
    copy.run("stop")
    _template(copy).write_text(current)
    assert "updated the access rules" in copy.run("start").stderr  # stopped, then started


def _refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return True
    return False


def _free(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def test_consumers_listener_is_off_by_default_and_ldaps_when_on(copy):
    env = parse_env(copy.run("start").stdout)
    assert _refused("127.0.0.2", copy.port)  # loopback 127.0.0.1 only
    copy.run("stop")
    listen = _free("127.0.0.2")
    result = subprocess.run(
        [sys.executable, str(copy.root / "scripts" / "slapd"), "start", "--dir", str(copy.dir),
         "--listen", f"127.0.0.2:{listen}"], capture_output=True, text=True, timeout=60,
        check=False)
    assert result.returncode == 0, result.stderr
    env = parse_env(result.stdout)
    assert f"consumers: ldaps://127.0.0.2:{listen}" in result.stderr
    context = ssl.create_default_context(cafile=env["LDAP_CA_FILE"])
    with socket.create_connection(("127.0.0.2", listen), timeout=2) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.2") as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")  # the certificate names 127.0.0.2
    assert "LISTEN=127.0.0.2:" in (copy.dir / "instance.env").read_text()
    copy.run("stop")
    off = subprocess.run(
        [sys.executable, str(copy.root / "scripts" / "slapd"), "start", "--dir", str(copy.dir),
         "--listen", "off"], capture_output=True, text=True, timeout=60, check=False)
    assert off.returncode == 0, off.stderr
    assert _refused("127.0.0.2", listen)


def test_listen_with_a_certificate_of_ones_own(copy, tmp_path):
    cert, key = tmp_path / "own.pem", tmp_path / "own.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=ldap.example.test", "-addext",
                    "subjectAltName=IP:127.0.0.2,IP:127.0.0.1,DNS:ldap.example.test"],
                   check=True, capture_output=True, timeout=30)
    listen = _free("127.0.0.2")
    result = subprocess.run(
        [sys.executable, str(copy.root / "scripts" / "slapd"), "start", "--dir", str(copy.dir),
         "--port", str(copy.port), "--nosync", "--listen", f"127.0.0.2:{listen}",
         "--cert", str(cert), "--key", str(key)],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    context = ssl.create_default_context(cafile=str(cert))  # only the operator's cert
    with socket.create_connection(("127.0.0.2", listen), timeout=2) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.2") as tls:
        assert tls.getpeercert()["subject"] == ((("commonName", "ldap.example.test"),),)
    copy.run("stop")
    copy.run("start")  # kept on later starts, not replaced by the private CA's
    with socket.create_connection(("127.0.0.2", listen), timeout=2) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.2"):
        pass
