"""An MDM reads the tree as a reader: every command of docs/consumers.md, run as written
with ldapsearch over the consumers' ldaps:// listener (``scripts/slapd --listen`` on the
loopback alias 127.0.0.2), on data Entra-style requests provisioned through gunicorn. And
what the reader, and a provisioned user with a password, must not read."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import entra
from tests.reliability.support import Gunicorn, call, scim_path
from tests.reliability.test_security import _port_pair
from tests.reliability.trust_support import ROOT, flask_cli, ldif_entries, printed
from tests.slapd_instance import SlapdInstance, parse_env, run_script

DOC = ROOT / "docs" / "consumers.md"
TESTED = re.compile(r"<!-- tested: ([a-z-]+) -->\n```sh\n(.*?)\n```", re.S)
VARIABLES = ("URI", "READER", "PEOPLE", "GROUPS", "LDAPTLS_CACERT")
ADA_PASSWORD = "Ada-Lovelace-1815"
LOCKED_PASSWORD = "Carol-Disabled-1"


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def documented() -> dict[str, str]:
    return dict((name, body) for name, body in TESTED.findall(DOC.read_text()))


@pytest.fixture(scope="module")
def tree(slapd: SlapdInstance, tmp_path_factory: pytest.TempPathFactory,
         ) -> Iterator[dict[str, Any]]:
    """A slapd with a consumer listener, users and groups provisioned over SCIM in the
    default tenant and in a rival tenant, and one reader of each."""
    folder = tmp_path_factory.mktemp("consumer-slapd")
    port, listen = _port_pair(), f"127.0.0.2:{_free_port('127.0.0.2')}"
    started = run_script("start", "--dir", str(folder), "--port", str(port), "--nosync",
                         "--listen", listen)
    env = parse_env(started.stdout)
    instance = SlapdInstance()
    instance.dir, instance.port, instance.env = folder, port, env
    base = env["LDAP_BASE_DN"]
    server = Gunicorn(env, folder / "gunicorn.log", workers=1)
    try:
        flask_cli(env, "tenant", "create", "rival")
        rival_token = printed(flask_cli(env, "token", "create", "--tenant", "rival",
                                        "--name", "x").stdout, "Bearer token (Secret Token)")

        def scim(method: str, path: str, body: Any = None, **kw: Any) -> Any:
            reply = call(server, method, scim_path(path), body, **kw)
            assert reply.ok, reply.body
            return reply.body

        bob = scim("POST", "/Users", {**entra.minimal_user("bob@example.org"),
                                      "name": {"givenName": "Bob", "familyName": "Babbage"}})
        ada = scim("POST", "/Users", {
            **entra.minimal_user("ada@example.org"), "password": ADA_PASSWORD,
            "displayName": "Ada Lovelace", "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"type": "work", "value": "ada@mail.example.org", "primary": True}],
            "phoneNumbers": [{"type": "mobile", "value": "+44 20 7946 0000"}],
            "schemas": [entra.CORE_USER, entra.ENTERPRISE],
            entra.ENTERPRISE: {"department": "Engines", "manager": {"value": bob["id"]}}})
        carol = scim("POST", "/Users", {**entra.minimal_user("carol@example.org"),
                                        "password": LOCKED_PASSWORD})
        scim("PATCH", f"/Users/{carol['id']}", entra.patch(
            {"op": "Replace", "path": "active", "value": "False"}))
        scim("POST", "/Groups", {**entra.group("Sales"), "externalId": "sales",
                                 "members": [{"value": ada["id"]}, {"value": bob["id"]}]})
        scim("POST", "/Groups", {**entra.group("Empty"), "externalId": "empty"})
        scim("POST", "/Users", {**entra.minimal_user("eve@rival.example"),
                                "password": "Eve-Rival-1"}, token=rival_token)
        readers = {}
        for tenant in ("default", "rival"):
            out = flask_cli(env, "reader", "create", f"mdm-{tenant}", "--tenant", tenant).stdout
            readers[tenant] = (printed(out, "Bind DN"), printed(out, "Password"))
        yield {"env": env, "base": base, "uri": f"ldaps://{listen}", "readers": readers,
               "ca": str(folder / "tls" / "ca.pem"), "rival_token": rival_token,
               "placeholder": f"cn=empty-group-placeholder,ou=Service,{base}"}
    finally:
        server.stop()
        instance.stop()


def ldapsearch(tree: dict[str, Any], bind: tuple[str, str], base: str, *args: str,
               tmp: Path) -> subprocess.CompletedProcess[str]:
    (tmp / "bind.pw").write_text(bind[1])
    return subprocess.run(
        ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", tree["uri"], "-D", bind[0],
         "-y", str(tmp / "bind.pw"), "-b", base, *args],
        capture_output=True, text=True, timeout=30, check=False,
        env={"PATH": "/usr/bin:/bin", "LDAPTLS_CACERT": tree["ca"]})


def run_documented(tree: dict[str, Any], name: str, tmp: Path,
                   reader: str = "default") -> subprocess.CompletedProcess[str]:
    """One command of docs/consumers.md, run by bash exactly as printed there."""
    base = tree["base"]
    (tmp / "reader.pw").write_text(tree["readers"][reader][1])
    (tmp / "ada.pw").write_text(ADA_PASSWORD)
    values = {"URI": tree["uri"], "READER": tree["readers"][reader][0],
              "PEOPLE": f"ou=People,{base}", "GROUPS": f"ou=Groups,{base}",
              "LDAPTLS_CACERT": tree["ca"]}
    return subprocess.run(["bash", "-euo", "pipefail", "-c", documented()[name]], cwd=tmp,
                          capture_output=True, text=True, timeout=30, check=False,
                          env={"PATH": "/usr/bin:/bin", **values})


def test_the_doc_names_the_variables_the_commands_use():
    text = DOC.read_text()
    assert set(documented()) == {"active-users", "group-members", "group-member-users",
                                 "user-groups", "user-bind"}
    settings = re.search(r"```sh\n(URI=.*?)```", text, re.S)[1]
    names = [re.match(r"(?:export )?([A-Z_]+)=", line) for line in settings.splitlines()]
    assert [m[1] for m in names if m] == list(VARIABLES)


def test_all_active_users(tree, tmp_path):
    result = run_documented(tree, "active-users", tmp_path)
    assert result.returncode == 0, result.stderr
    entries = ldif_entries(result.stdout)
    base = tree["base"]
    assert set(entries) == {f"uid=ada@example.org,ou=People,{base}",
                            f"uid=bob@example.org,ou=People,{base}"}  # carol is disabled
    ada = entries[f"uid=ada@example.org,ou=People,{base}"]
    assert ada["uid"] == ["ada@example.org"] and ada["mail"] == ["ada@mail.example.org"]
    assert ada["givenname"] == ["Ada"] and ada["sn"] == ["Lovelace"]
    assert ada["displayname"] == ["Ada Lovelace"] and ada["mobile"] == ["+44 20 7946 0000"]
    assert ada["departmentnumber"] == ["Engines"]
    assert ada["manager"] == [f"uid=bob@example.org,ou=People,{base}"]


def test_a_groups_members(tree, tmp_path):
    result = run_documented(tree, "group-members", tmp_path)
    assert result.returncode == 0, result.stderr
    base = tree["base"]
    assert ldif_entries(result.stdout) == {f"cn=Sales,ou=Groups,{base}": {"member": [
        f"uid=ada@example.org,ou=People,{base}", f"uid=bob@example.org,ou=People,{base}"]}}
    users = run_documented(tree, "group-member-users", tmp_path)
    assert users.returncode == 0, users.stderr
    assert {e["uid"][0] for e in ldif_entries(users.stdout).values()} == \
        {"ada@example.org", "bob@example.org"}


def test_an_empty_group_shows_only_the_placeholder_which_is_no_person(tree, tmp_path):
    reader = tree["readers"]["default"]
    found = ldapsearch(tree, reader, f"ou=Groups,{tree['base']}", "(cn=Empty)", "member",
                       tmp=tmp_path)
    assert found.returncode == 0, found.stderr
    [group] = ldif_entries(found.stdout).values()
    assert group["member"] == [tree["placeholder"]]
    as_entry = ldapsearch(tree, reader, tree["placeholder"], "-s", "base", tmp=tmp_path)
    assert as_entry.returncode == 32 and as_entry.stdout == ""


def test_a_users_groups(tree, tmp_path):
    result = run_documented(tree, "user-groups", tmp_path)
    assert result.returncode == 0, result.stderr
    [ada] = ldif_entries(result.stdout).values()
    assert [g.lower() for g in ada["memberof"]] == [f"cn=sales,ou=groups,{tree['base']}"]


def test_a_users_password_and_a_disabled_users_lock(tree, tmp_path):
    result = run_documented(tree, "user-bind", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"dn:uid=ada@example.org,ou=People,{tree['base']}"
    (tmp_path / "ada.pw").write_text(LOCKED_PASSWORD)  # carol's, but the script says ada
    script = documented()["user-bind"].replace("ada@example.org", "carol@example.org")
    locked = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=30, check=False,
                            env={"PATH": "/usr/bin:/bin", "URI": tree["uri"],
                                 "PEOPLE": f"ou=People,{tree['base']}",
                                 "LDAPTLS_CACERT": tree["ca"]})
    assert locked.returncode == 49, locked.stderr  # invalidCredentials: locked
    search = ldapsearch(tree, tree["readers"]["default"], f"ou=People,{tree['base']}",
                        "(uid=carol@example.org)", "scimActive", "pwdAccountLockedTime",
                        tmp=tmp_path)
    [carol] = ldif_entries(search.stdout).values()
    assert carol == {"scimactive": ["FALSE"], "pwdaccountlockedtime": ["000001010000Z"]}


def test_one_base_dn_for_everything_gives_the_tenant_only(tree, tmp_path):
    found = ldapsearch(tree, tree["readers"]["default"], tree["base"], "(objectClass=*)",
                       "1.1", tmp=tmp_path)
    assert found.returncode == 0, found.stderr
    dns = {dn.lower() for dn in ldif_entries(found.stdout)}
    base = tree["base"].lower()
    assert dns and all(dn.endswith((f"ou=people,{base}", f"ou=groups,{base}"))
                       for dn in dns), dns
    assert not any("rival" in dn or "ou=service" in dn for dn in dns)


def test_the_reader_reads_no_password_no_service_entry_and_no_other_tenant(tree, tmp_path):
    base, reader = tree["base"], tree["readers"]["default"]
    people = ldapsearch(tree, reader, f"ou=People,{base}", "(objectClass=*)", "*", "+",
                        tmp=tmp_path)
    assert people.returncode == 0 and "ada@example.org" in people.stdout
    lowered = people.stdout.lower()
    assert "userpassword" not in lowered and "pwdhistory" not in lowered
    assert "{ssha" not in lowered and "ADA_PASSWORD" not in people.stdout
    probe = ldapsearch(tree, reader, f"ou=People,{base}", "(userPassword=*)", "1.1",
                       tmp=tmp_path)
    assert probe.stdout.strip() == ""  # nor can it test for one in a filter
    for hidden in (f"ou=Service,{base}", f"ou=Tokens,ou=Service,{base}",
                   f"ou=Admins,ou=Service,{base}", f"ou=Readers,ou=Service,{base}",
                   f"ou=Tenants,ou=Service,{base}", f"ou=Policies,{base}",
                   f"ou=People,o=rival,{base}", f"o=rival,{base}"):
        found = ldapsearch(tree, reader, hidden, "(objectClass=*)", "*", tmp=tmp_path)
        assert found.stdout.strip() == "", (hidden, found.stdout)
        assert found.returncode == 32, (hidden, found.returncode, found.stderr)
    rival = ldapsearch(tree, tree["readers"]["rival"], f"ou=People,{base}", "(objectClass=*)",
                       tmp=tmp_path)
    assert rival.returncode == 32 and rival.stdout == ""
    own = ldapsearch(tree, tree["readers"]["rival"], f"ou=People,o=rival,{base}",
                     "(objectClass=inetOrgPerson)", "uid", tmp=tmp_path)
    assert [e["uid"] for e in ldif_entries(own.stdout).values()] == [["eve@rival.example"]]


def test_a_provisioned_user_with_a_password_reads_nothing(tree, tmp_path):
    base = tree["base"]
    ada = (f"uid=ada@example.org,ou=People,{base}", ADA_PASSWORD)
    for where in (base, f"ou=People,{base}", f"ou=Service,{base}", ada[0]):
        found = ldapsearch(tree, ada, where, "(objectClass=*)", tmp=tmp_path)
        assert found.stdout.strip() == "", (where, found.stdout)


def test_a_removed_reader_can_no_longer_bind(tree, tmp_path):
    out = flask_cli(tree["env"], "reader", "create", "short-lived").stdout
    bind = (printed(out, "Bind DN"), printed(out, "Password"))
    before = ldapsearch(tree, bind, f"ou=People,{tree['base']}", "(uid=bob@example.org)",
                        "uid", tmp=tmp_path)
    assert before.returncode == 0 and "bob@example.org" in before.stdout
    listed = flask_cli(tree["env"], "reader", "list").stdout
    assert re.search(r"^short-lived\s+default\s", listed, re.M), listed
    assert "removed reader short-lived" in flask_cli(tree["env"], "reader", "remove",
                                                     "short-lived").stdout
    after = ldapsearch(tree, bind, f"ou=People,{tree['base']}", "(uid=bob@example.org)",
                       "uid", tmp=tmp_path)
    assert after.returncode == 49
