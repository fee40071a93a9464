"""scripts/slapd and the cn=config it builds, against the real OpenLDAP slapd."""

from __future__ import annotations

import base64
import hashlib
import importlib.machinery
import importlib.util
import os
import socket
import stat
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.slapd_instance import (
    NOT_INSTALLED_REASON,
    SLAPD_SCRIPT,
    SlapdInstance,
    parse_env,
    process_alive,
    run_script,
    slapd_available,
)

with warnings.catch_warnings():
    # ldap3 2.9.1 imports tagMap/typeMap, which pyasn1 >= 0.6.2 deprecates at import time.
    warnings.simplefilter("ignore", DeprecationWarning)
    from ldap3 import BASE, LEVEL, MODIFY_DELETE, MODIFY_REPLACE, NONE, SUBTREE, Connection, Server

pytestmark = pytest.mark.slapd

ENV_KEYS = ["LDAP_URL", "LDAP_BIND_DN", "LDAP_BIND_PASSWORD", "LDAP_BASE_DN"]
BASE_DN = "dc=scimbridge,dc=local"
PLACEHOLDER = f"cn=empty-group-placeholder,ou=Service,{BASE_DN}"
INVALID_CREDENTIALS = 49


def require_slapd() -> None:
    if not slapd_available():
        pytest.skip(NOT_INSTALLED_REASON)


def connect(env: dict[str, str], dn: str | None = None, password: str | None = None) -> Connection:
    server = Server(env["LDAP_URL"], get_info=NONE, connect_timeout=5)
    return Connection(
        server,
        dn or env["LDAP_BIND_DN"],
        password or env["LDAP_BIND_PASSWORD"],
        auto_bind=True,
        receive_timeout=10,
    )


def ssha512(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.sha512(password.encode() + salt).digest()
    return "{SSHA512}" + base64.b64encode(digest + salt).decode()


def add_ok(conn: Connection, dn: str, attributes: dict[str, object]) -> None:
    assert conn.add(dn, attributes=attributes), conn.result


def add_user(conn: Connection, uid: str, **extra: object) -> str:
    dn = f"uid={uid},ou=People,{BASE_DN}"
    attrs: dict[str, object] = {
        "objectClass": ["inetOrgPerson"],
        "uid": uid,
        "cn": uid,
        "sn": uid,
    }
    attrs.update(extra)
    add_ok(conn, dn, attrs)
    return dn


def read(conn: Connection, dn: str, attributes: list[str]) -> dict[str, list[object]]:
    assert conn.search(dn, "(objectClass=*)", BASE, attributes=attributes), conn.result
    return {k: list(v) for k, v in conn.response[0]["raw_attributes"].items()}


def exists(conn: Connection, dn: str) -> bool:
    conn.search(dn, "(objectClass=*)", BASE, attributes=["1.1"])
    return bool(conn.response)


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    require_slapd()
    instance = SlapdInstance()
    env = instance.start(tmp_path_factory.mktemp("slapd") / "instance")
    try:
        yield env
    finally:
        instance.stop()


@pytest.fixture
def admin(directory: dict[str, str]) -> Iterator[Connection]:
    conn = connect(directory)
    yield conn
    conn.unbind()


@pytest.fixture
def make_instance() -> Iterator[Callable[[], SlapdInstance]]:
    """Fresh SlapdInstance objects that are stopped at teardown whatever state they are in."""
    require_slapd()
    made: list[SlapdInstance] = []

    def make() -> SlapdInstance:
        made.append(SlapdInstance())
        return made[-1]

    yield make
    for instance in made:
        instance.stop()


# --- the configuration -----------------------------------------------------------------------


def test_start_prints_credentials_and_base_entries(directory: dict[str, str]) -> None:
    assert list(directory) == ENV_KEYS
    assert directory["LDAP_BIND_DN"] == f"cn=admin,{BASE_DN}"
    assert directory["LDAP_BASE_DN"] == BASE_DN
    conn = connect(directory)
    assert conn.extend.standard.who_am_i() == f"dn:cn=admin,{BASE_DN}"
    conn.search(BASE_DN, "(objectClass=*)", SUBTREE, attributes=["1.1"])
    assert {entry["dn"] for entry in conn.response} == {
        BASE_DN,
        f"ou=People,{BASE_DN}",
        f"ou=Groups,{BASE_DN}",
        f"ou=Service,{BASE_DN}",
        PLACEHOLDER,
        f"ou=Policies,{BASE_DN}",
        f"cn=default,ou=Policies,{BASE_DN}",
    }
    top = read(conn, BASE_DN, ["dc", "o", "objectClass"])
    assert top["dc"] == [b"scimbridge"] and top["o"] == [b"scimbridge"]
    assert set(top["objectClass"]) == {b"dcObject", b"organization"}
    policy = read(conn, f"cn=default,ou=Policies,{BASE_DN}", ["pwdLockout", "pwdAttribute"])
    assert policy == {"pwdLockout": [b"TRUE"], "pwdAttribute": [b"userPassword"]}
    conn.unbind()


def test_root_dse_is_public_and_data_is_not(directory: dict[str, str]) -> None:
    anonymous = Connection(Server(directory["LDAP_URL"], get_info=NONE), auto_bind=True)
    anonymous.search("", "(objectClass=*)", BASE, attributes=["supportedControl", "+"])
    controls = set(anonymous.response[0]["raw_attributes"]["supportedControl"])
    assert b"1.2.840.113556.1.4.473" in controls  # server-side sort (sssvlv)
    assert b"2.16.840.1.113730.3.4.9" in controls  # VLV (sssvlv)
    assert b"1.3.6.1.4.1.42.2.27.8.5.1" in controls  # password policy
    assert anonymous.search("cn=Subschema", "(objectClass=*)", BASE, attributes=["objectClasses"])
    anonymous.search(BASE_DN, "(objectClass=*)", SUBTREE)
    assert anonymous.response == []
    anonymous.unbind()


def test_entry_uuid_and_timestamps_are_generated(admin: Connection) -> None:
    dn = add_user(admin, "uuid-user")
    attrs = read(admin, dn, ["entryUUID", "createTimestamp", "entryCSN"])
    assert uuid.UUID(attrs["entryUUID"][0].decode())
    assert attrs["createTimestamp"][0].endswith(b"Z")
    assert attrs["entryCSN"]


def test_dynlist_gives_members_of_groupofnames_a_memberof(admin: Connection) -> None:
    alice = add_user(admin, "dyn-alice")
    bob = add_user(admin, "dyn-bob")
    group = f"cn=Dyn Group,ou=Groups,{BASE_DN}"
    add_ok(admin, group, {"objectClass": ["groupOfNames"], "cn": "Dyn Group", "member": [alice]})

    # dynlist returns the normalised DN (lower case), not the group's own spelling.
    assert read(admin, alice, ["memberOf"])["memberOf"] == [group.lower().encode()]
    assert not read(admin, bob, ["memberOf"]).get("memberOf")
    admin.search(f"ou=People,{BASE_DN}", f"(memberOf={group})", LEVEL, attributes=["1.1"])
    assert [entry["dn"] for entry in admin.response] == [alice]


def test_refint_follows_renames_and_keeps_groupofnames_valid(admin: Connection) -> None:
    carol = add_user(admin, "ref-carol")
    dave = add_user(admin, "ref-dave")
    group = f"cn=ref-group,ou=Groups,{BASE_DN}"
    add_ok(admin, group, {"objectClass": ["groupOfNames"], "cn": "ref-group", "member": [carol]})
    erin = add_user(admin, "ref-erin", manager=dave)

    # refint rewrites references in a background task after the operation returns,
    # so each check waits (bounded) for it
    assert admin.modify_dn(carol, "uid=ref-carol2"), admin.result
    renamed = f"uid=ref-carol2,ou=People,{BASE_DN}"
    assert eventually(lambda: read(admin, group, ["member"])["member"] == [renamed.encode()])

    assert admin.modify_dn(dave, "uid=ref-dave2"), admin.result
    dave2 = [f"uid=ref-dave2,ou=People,{BASE_DN}".encode()]
    assert eventually(lambda: read(admin, erin, ["manager"])["manager"] == dave2)

    assert admin.delete(renamed), admin.result
    assert eventually(
        lambda: read(admin, group, ["member"])["member"] == [PLACEHOLDER.encode()])


def eventually(check: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_pwd_account_locked_time_blocks_bind_of_a_sha512_user(
    admin: Connection, directory: dict[str, str]
) -> None:
    password = "correct horse battery staple"
    dn = add_user(admin, "lock-frank", userPassword=ssha512(password))
    stored = read(admin, dn, ["userPassword"])["userPassword"]
    assert len(stored) == 1 and stored[0].startswith(b"{SSHA512}")  # not re-hashed

    user = connect(directory, dn, password)
    assert user.extend.standard.who_am_i() == f"dn:{dn}"
    user.unbind()

    lock = {"pwdAccountLockedTime": [(MODIFY_REPLACE, ["000001010000Z"])]}
    assert admin.modify(dn, lock), admin.result
    locked = Connection(Server(directory["LDAP_URL"], get_info=NONE), dn, password)
    assert not locked.bind()
    assert locked.result["result"] == INVALID_CREDENTIALS
    locked.unbind()

    assert admin.modify(dn, {"pwdAccountLockedTime": [(MODIFY_DELETE, [])]}), admin.result
    connect(directory, dn, password).unbind()


# --- the lifecycle ---------------------------------------------------------------------------


def test_data_survives_stop_and_start(
    make_instance: Callable[[], SlapdInstance], tmp_path: Path
) -> None:
    instance = make_instance()
    env = instance.start(tmp_path / "slapd")
    first_pid = instance.pid
    conn = connect(env)
    dn = add_user(conn, "persist")
    conn.unbind()

    instance.stop()
    assert instance.pid is None
    assert instance.restart() == env
    assert instance.pid not in (None, first_pid)
    conn = connect(env)
    assert exists(conn, dn)
    conn.unbind()


def test_two_instances_side_by_side(
    make_instance: Callable[[], SlapdInstance], tmp_path: Path
) -> None:
    one, two = make_instance(), make_instance()
    env_one = one.start(tmp_path / "one")
    env_two = two.start(tmp_path / "two")
    assert env_one["LDAP_URL"] != env_two["LDAP_URL"]
    assert env_one["LDAP_BIND_PASSWORD"] != env_two["LDAP_BIND_PASSWORD"]

    conn_one, conn_two = connect(env_one), connect(env_two)
    dn = add_user(conn_one, "only-in-one")
    assert exists(conn_one, dn)
    assert not exists(conn_two, dn)
    conn_one.unbind()
    conn_two.unbind()

    wrong = {**env_two, "LDAP_BIND_PASSWORD": env_one["LDAP_BIND_PASSWORD"]}
    stranger = Connection(
        Server(wrong["LDAP_URL"], get_info=NONE), wrong["LDAP_BIND_DN"], wrong["LDAP_BIND_PASSWORD"]
    )
    assert not stranger.bind()
    stranger.unbind()


def test_stop_leaves_no_process_and_is_idempotent(
    make_instance: Callable[[], SlapdInstance], tmp_path: Path
) -> None:
    folder = tmp_path / "slapd"
    instance = make_instance()
    instance.start(folder)
    pid = instance.pid
    assert pid is not None and process_alive(pid)

    assert run_script("stop", "--dir", str(folder)).returncode == 0
    assert not process_alive(pid)
    assert not (folder / "run" / "slapd.pid").exists()
    assert not (folder / "run" / "ldapi").exists()
    assert run_script("stop", "--dir", str(folder)).returncode == 0
    assert run_script("stop", "--dir", str(tmp_path / "never-made")).returncode == 0
    assert not (tmp_path / "never-made").exists()


def test_status_exit_codes(make_instance: Callable[[], SlapdInstance], tmp_path: Path) -> None:
    folder = tmp_path / "slapd"
    stopped = run_script("status", "--dir", str(folder), check=False)
    assert (stopped.returncode, stopped.stdout.strip()) == (3, "stopped")

    instance = make_instance()
    instance.start(folder)
    running = run_script("status", "--dir", str(folder), check=False)
    assert running.returncode == 0
    assert running.stdout.strip() == f"running (pid {instance.pid}, port {instance.port})"

    instance.pause()
    paused = run_script("status", "--dir", str(folder), check=False)
    assert paused.returncode == 1 and paused.stdout.startswith("not answering")
    instance.resume()
    assert run_script("status", "--dir", str(folder), check=False).returncode == 0

    instance.stop()
    assert run_script("status", "--dir", str(folder), check=False).returncode == 3


def test_stop_ends_a_paused_slapd(
    make_instance: Callable[[], SlapdInstance], tmp_path: Path
) -> None:
    instance = make_instance()
    instance.start(tmp_path / "slapd")
    pid = instance.pid
    assert pid is not None
    instance.pause()
    instance.stop()
    assert not process_alive(pid)


def test_start_after_kill_recovers(
    make_instance: Callable[[], SlapdInstance], tmp_path: Path
) -> None:
    folder = tmp_path / "slapd"
    instance = make_instance()
    env = instance.start(folder)
    conn = connect(env)
    dn = add_user(conn, "crash-survivor")
    conn.unbind()

    instance.kill()
    assert (folder / "run" / "slapd.pid").exists()  # stale, as after a crash
    assert run_script("status", "--dir", str(folder), check=False).returncode == 3
    assert instance.start(folder, instance.port) == env
    conn = connect(env)
    assert exists(conn, dn)
    conn.unbind()


def test_start_twice_reuses_the_running_instance(
    make_instance: Callable[[], SlapdInstance], tmp_path: Path
) -> None:
    folder = tmp_path / "slapd"
    instance = make_instance()
    env = instance.start(folder)
    pid = instance.pid
    again = run_script("start", "--dir", str(folder))
    assert parse_env(again.stdout) == env
    assert again.stdout.splitlines() == [f"{key}={env[key]}" for key in ENV_KEYS]
    assert instance.pid == pid


def test_settings_are_recorded_and_reused(
    make_instance: Callable[[], SlapdInstance], tmp_path: Path
) -> None:
    folder = tmp_path / "slapd"
    instance = make_instance()
    env = instance.start(folder)
    instance.stop()

    assert parse_env((folder / "instance.env").read_text()) == {
        "PORT": str(instance.port),
        "BASE_DN": BASE_DN,
        "NOSYNC": "1",
    }
    credentials = folder / "credentials.env"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert parse_env(credentials.read_text())["ADMIN_PASSWORD"] == env["LDAP_BIND_PASSWORD"]
    assert "olcDbNoSync: TRUE" in (folder / "config.ldif").read_text()

    assert parse_env(run_script("env", "--dir", str(folder)).stdout) == env
    assert parse_env(run_script("start", "--dir", str(folder)).stdout) == env
    assert instance.pid is not None


def test_custom_base_dn_without_nosync(
    make_instance: Callable[[], SlapdInstance], tmp_path: Path
) -> None:
    folder = tmp_path / "slapd"
    base = "dc=example,dc=org"
    env = make_instance().start(folder, nosync=False, base_dn=base)
    assert env["LDAP_BASE_DN"] == base and env["LDAP_BIND_DN"] == f"cn=admin,{base}"
    assert "olcDbNoSync" not in (folder / "config.ldif").read_text()
    conn = connect(env)
    assert read(conn, base, ["dc", "o"]) == {"dc": [b"example"], "o": [b"example"]}
    assert exists(conn, f"cn=default,ou=Policies,{base}")
    assert exists(conn, f"cn=empty-group-placeholder,ou=Service,{base}")
    conn.unbind()

    other = run_script("start", "--dir", str(folder), "--base-dn", BASE_DN, check=False)
    assert other.returncode == 1 and "reset --base-dn" in other.stderr


def test_bad_arguments_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    require_slapd()
    folder = tmp_path / "slapd"
    bad = (["--port", "0"], ["--port", "70000"], ["--base-dn", "o=x"], ["--base-dn", "dc=a,b"])
    for flags in bad:
        result = run_script("start", "--dir", str(folder), *flags, check=False)
        assert result.returncode == 1, flags
    assert not folder.exists()


def test_port_in_use_fails_with_the_log_tail(tmp_path: Path) -> None:
    require_slapd()
    folder = tmp_path / "slapd"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_script("start", "--dir", str(folder), "--port", str(port), check=False)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Address already in use" in result.stderr
    assert run_script("status", "--dir", str(folder), check=False).returncode == 3


def test_reset_wipes_data(make_instance: Callable[[], SlapdInstance], tmp_path: Path) -> None:
    folder = tmp_path / "slapd"
    instance = make_instance()
    env = instance.start(folder)
    conn = connect(env)
    dn = add_user(conn, "doomed")
    conn.unbind()

    reset = run_script("reset", "--dir", str(folder))  # running: it comes back up
    new_env = parse_env(reset.stdout)
    assert list(new_env) == ENV_KEYS
    assert new_env["LDAP_URL"] == env["LDAP_URL"]
    assert new_env["LDAP_BIND_PASSWORD"] != env["LDAP_BIND_PASSWORD"]
    conn = connect(new_env)
    assert not exists(conn, dn)
    assert exists(conn, PLACEHOLDER)
    conn.unbind()

    instance.stop()
    stopped_reset = run_script("reset", "--dir", str(folder))  # stopped: it stays stopped
    assert stopped_reset.stdout == ""
    assert run_script("status", "--dir", str(folder), check=False).returncode == 3
    assert (folder / "instance.env").exists()


def test_reset_refuses_a_folder_that_is_not_an_instance(tmp_path: Path) -> None:
    require_slapd()
    (tmp_path / "precious.txt").write_text("keep me")
    result = run_script("reset", "--dir", str(tmp_path), check=False)
    assert result.returncode == 1
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def load_script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("scripts_slapd", str(SLAPD_SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, loader.name, module)  # dataclasses look the module up
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no scripts/__pycache__
    loader.exec_module(module)
    return module


def test_missing_slapd_exits_2_with_one_clear_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    script = load_script(monkeypatch)
    monkeypatch.setattr(script, "SLAPD", tmp_path / "no-such-slapd")
    assert script.main(["start", "--dir", str(tmp_path / "slapd")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "slapd is not installed: run 'apt-get install slapd ldap-utils' as root (Debian/Ubuntu)\n"
    )
    assert not (tmp_path / "slapd").exists()
