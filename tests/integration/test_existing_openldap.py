"""The access rules the README gives for an existing OpenLDAP, applied as printed to a
slapd, with the bridge bound as ``cn=scim`` (not the rootDN, whom no rule limits): SCIM
writes, the ppolicy lock, the registry, admins and readers all work, and a reader reads
its tenant only."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from config import load_settings
from directory.mapping import hash_password
from scim.factory import create_app
from tests import entra
from tests.conftest import TOKEN, Scim, admin_connection
from tests.slapd_instance import REPO, SlapdInstance

BRIDGE = "cn=scim,dc=example,dc=org"
RULES = re.compile(r"<!-- tested: existing-openldap-acl -->\n\s*```\n(.*?)\n\s*```", re.S)


def readme_rules(base: str) -> list[str]:
    block = RULES.search((REPO / "README.md").read_text())[1]
    return [line.strip().replace("dc=example,dc=org", base) for line in block.splitlines()
            if line.strip()]


@pytest.fixture(scope="module")
def directory(slapd: SlapdInstance, tmp_path_factory: pytest.TempPathFactory,
              ) -> Iterator[dict[str, Any]]:
    """A slapd of its own with the README's rules and a bind user cn=scim."""
    instance = SlapdInstance()
    env = instance.start(tmp_path_factory.mktemp("existing-openldap"))
    base = env["LDAP_BASE_DN"]
    root = admin_connection(env)
    bridge_dn, password = BRIDGE.replace("dc=example,dc=org", base), "bridge-password-1"
    root.add(bridge_dn, ["applicationProcess", "simpleSecurityObject"],
             {"cn": "scim", "userPassword": hash_password(password)})
    root.unbind()
    folder = instance._folder()
    config_password = re.search(r"CONFIG_PASSWORD=(\S+)",
                                (folder / "credentials.env").read_text())[1]
    ldif = ("dn: olcDatabase={1}mdb,cn=config\nchangetype: modify\nreplace: olcAccess\n"
            + "".join(line.removeprefix("olcAccess: ").join(["olcAccess: ", "\n"])
                      for line in readme_rules(base)) + "-\n")
    subprocess.run(["ldapmodify", "-x", "-H", env["LDAP_URL"], "-D", "cn=admin,cn=config",
                    "-w", config_password], input=ldif, text=True, capture_output=True,
                   check=True, timeout=30)
    yield {"env": env, "base": base, "bridge": {**env, "LDAP_BIND_DN": bridge_dn,
                                                 "LDAP_BIND_PASSWORD": password}}
    instance.stop()


def ldapsearch(env: dict[str, str], dn: str, password: str, base: str,
               *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ldapsearch", "-x", "-LLL", "-H", env["LDAP_URL"], "-D", dn,
                           "-w", password, "-b", base, *args], capture_output=True,
                          text=True, timeout=30, check=False)


def test_the_rules_are_the_templates_plus_the_bridge():
    template = (REPO / "directory" / "schema" / "slapd-config.ldif.tmpl").read_text()
    mdb = template[template.index("olcDatabase: {1}mdb"):]
    wanted = [line for line in mdb.splitlines() if line.startswith("olcAccess:")]
    clause = f'by dn.exact="{BRIDGE}" manage '
    assert [line.replace(clause, "") for line in readme_rules("dc=example,dc=org")] == wanted


def test_the_bridge_works_as_cn_scim_under_the_documented_rules(directory):
    app = create_app(load_settings({**directory["bridge"], "SCIM_BEARER_TOKEN": TOKEN,
                                    "ADMIN_COOKIE_SECURE": "false"}))
    app.config["TESTING"] = True
    base, env = directory["base"], directory["env"]
    try:
        scim = Scim(app.test_client())
        ada = scim.post("/Users", {**entra.minimal_user("ada@example.org"),
                                   "password": "Ada-Password-1"})
        assert ada.status_code == 201, ada.json
        group = scim.post("/Groups", {**entra.group("Sales"),
                                      "members": [{"value": ada.json["id"]}]})
        assert group.status_code == 201, group.json
        locked = scim.patch(f"/Users/{ada.json['id']}", entra.patch(
            {"op": "Replace", "path": "active", "value": "False"}))
        assert locked.status_code == 200, locked.json
        assert ldapsearch(env, f"uid=ada@example.org,ou=People,{base}", "Ada-Password-1",
                          base).returncode == 49  # locked by ppolicy
        runner = app.test_cli_runner()
        outputs = []
        for args in (["tenant", "create", "other"],
                     ["token", "create", "--tenant", "other", "--name", "x"],
                     ["admin", "create", "ops"], ["reader", "create", "mdm"]):
            result = runner.invoke(args=args)
            assert result.exit_code == 0, (args, result.output)
            outputs.append(result.output)
        reader_password = re.search(r"^Password: (\S+)$", outputs[3], re.M)[1]
        admin_password = re.search(r"^password: (\S+)$", outputs[2], re.M)[1]
        browser = app.test_client()
        login = browser.get("/admin/login").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login)[1]
        signed_in = browser.post("/admin/login", data={"username": "ops", "csrf_token": csrf,
                                                       "password": admin_password})
        assert signed_in.status_code == 302, signed_in.get_data(as_text=True)
        assert browser.get("/admin/connector").status_code == 200
        reader = f"cn=mdm,ou=Readers,ou=Service,{base}"
        people = ldapsearch(env, reader, reader_password, f"ou=People,{base}", "uid")
        assert people.returncode == 0 and "uid: ada@example.org" in people.stdout
        assert "userPassword" not in ldapsearch(env, reader, reader_password,
                                                f"ou=People,{base}", "*").stdout
        for hidden in (f"ou=Service,{base}", f"ou=People,o=other,{base}"):
            found = ldapsearch(env, reader, reader_password, hidden)
            assert found.returncode == 32 and found.stdout == "", hidden
        assert scim.delete(f"/Users/{ada.json['id']}").status_code == 204
    finally:
        app.extensions["scim_bridge"].pool.close()
