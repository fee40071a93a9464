"""Security: no secret in any log, the security headers on every answer, error bodies
that give nothing away, and TLS to the directory that never falls back to plaintext."""

from __future__ import annotations

import base64
import logging
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ldap3.core.exceptions import LDAPOperationResult

from config import load_settings
from directory import errors as de
from directory.tokens import Store, split_token
from scim.factory import create_app
from scim.web import API_CSP
from tests import entra
from tests.conftest import TOKEN, Scim
from tests.reliability.conftest import StartGunicorn
from tests.reliability.support import admin, call, scim_path
from tests.slapd_instance import SlapdInstance, parse_env, run_script

ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
#: What an error body must never contain: internals, versions, other subtrees.
LEAKS = ["Traceback", 'File "', "ldap3", "pyasn1", "werkzeug", "flask", "python",
         "gunicorn", "OpenLDAP", "slapd", "invalid per syntax", "value #", "(21)", "(53)",
         "dc=", "ou=People", "ou=Groups", "cn=admin", "unwillingToPerform", "Syntax"]
#: ssl.match_hostname, which ldap3 2.9.1 calls to check the server's name, is deprecated
#: in Python 3.11 (this suite turns warnings into errors; production only logs them).
MATCH_HOSTNAME = pytest.mark.filterwarnings("ignore:ssl.match_hostname:DeprecationWarning")


# --- logs ----------------------------------------------------------------------------------


def test_no_secret_reaches_any_log(own_slapd, own_ldap, gunicorn: StartGunicorn,
                                   tmp_path: Path):
    static = secrets.token_urlsafe(32)
    audit = tmp_path / "audit.log"
    store = Store(own_ldap, own_slapd.env["LDAP_BASE_DN"])
    tenant = store.create_tenant("sec")
    _, managed = store.create_token(tenant, "sec-token")
    client_id, client_secret = store.create_client(tenant, "sec-client")
    server = gunicorn({**own_slapd.env, "SCIM_BEARER_TOKEN": static, "LOG_LEVEL": "DEBUG",
                       "GUNICORN_ACCESS_LOG": "-", "AUDIT_LOG": str(audit),
                       "SCIM_RETRY_AFTER": "1", "LDAP_CONNECT_TIMEOUT": "0.5"}, workers=2)
    passwords = [f"Pw-{secrets.token_urlsafe(12)}" for _ in range(3)]
    wrong = f"scim_{managed.split('_')[1]}_{secrets.token_urlsafe(32)}"
    # the secret part alone (it may itself contain "_", so split as the server does)
    managed_parts = split_token(managed)
    assert managed_parts is not None
    secrets_used = [static, managed, managed_parts[1], client_secret, wrong,
                    own_slapd.env["LDAP_BIND_PASSWORD"], *passwords]

    uid = call(server, "POST", scim_path("/Users"), {
        **entra.minimal_user("secret@x.org"), "password": passwords[0]}, token=static).body["id"]
    call(server, "PATCH", scim_path(f"/Users/{uid}"), entra.patch(
        {"op": "replace", "path": "password", "value": passwords[1]}), token=static)
    call(server, "PATCH", scim_path(f"/Users/{uid}"), entra.patch(
        {"op": "replace", "value": {"password": passwords[2], "displayName": "x"}}),
        token=static)
    assert call(server, "GET", scim_path("/Users"), token=managed).status == 200
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    granted = call(server, "POST", "/oauth/token", token=None, raw=b"grant_type=client_credentials",
                   headers={**form, "Authorization": f"Basic {basic}"})
    assert granted.status == 200, granted.body
    access = granted.body["access_token"]
    secrets_used.append(access)
    assert call(server, "GET", scim_path("/Groups"), token=access).status == 200
    body = f"grant_type=client_credentials&client_id={client_id}&client_secret={client_secret}"
    assert call(server, "POST", "/oauth/token", token=None, raw=body.encode(),
                headers=form).status == 200
    assert call(server, "POST", "/oauth/token", token=None, raw=body.encode() + b"x",
                headers=form).status == 401
    in_query = secrets.token_urlsafe(24)  # a secret a client wrongly puts in a URL
    secrets_used.append(in_query)
    assert call(server, "GET", scim_path(f"/Users?access_token={managed}&count=1"),
                token=None).status == 401
    assert call(server, "GET", scim_path(f"/Groups?token={in_query}"), token=None
                ).status == 401
    assert call(server, "POST", f"/oauth/token?client_id={client_id}&client_secret="
                f"{client_secret}", token=None, raw=b"grant_type=client_credentials",
                headers=form).status in (400, 401)
    assert call(server, "POST", f"/oauth/token?client_secret={in_query}&password={in_query}"
                f"&code={in_query}", token=None, raw=b"grant_type=client_credentials",
                headers=form).status in (400, 401)
    assert call(server, "GET", scim_path("/Users"), token=wrong).status == 401
    assert call(server, "GET", scim_path("/Users"), token=static + "x").status == 401
    own_slapd.stop()  # directory errors get logged too
    try:
        down = call(server, "POST", scim_path("/Users"), {
            **entra.minimal_user("down@x.org"), "password": passwords[0]}, token=static)
        assert down.status == 503
    finally:
        own_slapd.start(own_slapd._folder(), own_slapd.port, own_slapd.nosync)
    assert call(server, "DELETE", scim_path(f"/Users/{uid}"), token=static).status == 204
    assert down.headers["server"] == "gunicorn"  # no version
    server.stop()

    logs = server.log.read_text(errors="replace")
    trail = audit.read_text()
    assert "authentication failed" in logs and "POST /scim/v2/Users" in logs
    assert '"query": "access_token=[redacted]&count=1"' in logs  # redacted, not dropped
    assert '"operation":"create"' in trail.replace(" ", "") and "password" in trail
    for secret in secrets_used:
        assert secret not in logs, "a secret is in the server's log"
        assert secret not in trail, "a secret is in the audit trail"


# --- headers and error bodies ----------------------------------------------------------------


@pytest.fixture
def answers(app, scim, client, slapd, monkeypatch) -> Iterator[list[Any]]:
    """One response of every kind the service gives, from the Flask test client."""
    from scim.service import users

    app.config["PROPAGATE_EXCEPTIONS"] = False
    out: list[Any] = []
    uid = scim.post("/Users", entra.minimal_user("hdr@x.org")).json["id"]
    etag = scim.get(f"/Users/{uid}").headers["ETag"]
    out += [scim.get("/ServiceProviderConfig"), scim.get(f"/Users/{uid}"),
            scim.post("/Users", entra.minimal_user("hdr2@x.org")),
            scim.post("/Users", entra.minimal_user("hdr@x.org")),  # 409
            scim.post("/Users", {**entra.minimal_user("mail@x.org"),  # 400 refused by LDAP
                                 "emails": [{"type": "work", "value": "ünï@x.org"}]}),
            scim.get("/Users?filter=userName%20gt%20%22a%22"),
            scim.patch(f"/Users/{uid}", entra.patch(
                {"op": "replace", "path": "displayName", "value": "v"}),
                headers={"If-Match": etag}),
            scim.patch(f"/Users/{uid}", entra.patch(
                {"op": "replace", "path": "displayName", "value": "w"}),
                headers={"If-Match": etag}),  # 412
            scim.delete(f"/Users/{uid}"), scim.get(f"/Users/{uid}"),
            scim.get("/Nope"), client.get("/"), client.get("/healthz"),
            client.post("/scim/v2/ServiceProviderConfig", headers=scim.headers),
            client.get("/scim/v2/Users"),
            scim.client.post("/scim/v2/Users", data="x", headers={**scim.headers,
                                                                 "Content-Type": "text/plain"}),
            scim.post("/Users", {**entra.minimal_user("big@x.org"), "title": "x" * 5_000_000}),
            client.post("/oauth/token", data={"grant_type": "password"}),
            client.post("/oauth/token", data={"grant_type": "client_credentials",
                                              "client_id": "0" * 16, "client_secret": "x"})]

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"cn=admin,{slapd.env['LDAP_BASE_DN']} Traceback python")

    monkeypatch.setattr(users, "get", boom)
    out.append(scim.get(f"/Users/{uid}"))  # 500
    monkeypatch.undo()

    def unwilling(*args: Any, **kwargs: Any) -> Any:
        raise de.translate(LDAPOperationResult(
            result=53, description="unwillingToPerform",
            message=f"ou=People,{slapd.env['LDAP_BASE_DN']} is read-only (slapd internals)"))

    monkeypatch.setattr(users, "get", unwilling)
    out.append(scim.get(f"/Users/{uid}"))  # busy: 503
    monkeypatch.undo()
    down = create_app(load_settings({**slapd.env, "SCIM_BEARER_TOKEN": TOKEN,
                                     "LDAP_URL": "ldap://127.0.0.1:1",
                                     "LDAP_CONNECT_TIMEOUT": "0.2"}))
    out.append(Scim(down.test_client()).get("/Users"))  # unavailable: 503
    for _ in range(12):
        last = client.get("/scim/v2/Users", headers={"Authorization": "Bearer nope"})
    out.append(last)  # 429
    yield out
    down.extensions["scim_bridge"].pool.close()


def test_every_kind_of_answer_is_covered(answers):
    statuses = {r.status_code for r in answers}
    assert statuses >= {200, 201, 204, 400, 401, 404, 405, 409, 412, 413, 415, 429, 500, 503}


def test_security_headers_on_every_response(answers):
    for r in answers:
        h = r.headers
        assert h["X-Content-Type-Options"] == "nosniff", r
        assert h["X-Frame-Options"] == "DENY", r
        assert h["Referrer-Policy"] == "no-referrer", r
        assert "no-store" in h["Cache-Control"], r
        assert h["Content-Security-Policy"] == API_CSP, r


def test_a_page_with_its_own_policy_keeps_it(app, client):
    @app.get("/own-policy")
    def own_policy() -> Any:
        return "<p>x</p>", 200, {"Content-Security-Policy": "default-src 'self'",
                                 "Cache-Control": "max-age=60"}

    r = client.get("/own-policy")
    assert r.headers["Content-Security-Policy"] == "default-src 'self'"
    assert r.headers["Cache-Control"] == "max-age=60"
    assert r.headers["X-Frame-Options"] == "DENY"
    admin_page = client.get("/admin/")
    assert admin_page.headers["Content-Security-Policy"] != API_CSP
    assert "frame-ancestors 'none'" in admin_page.headers["Content-Security-Policy"]


def test_error_bodies_give_nothing_away(answers):
    errors = [r for r in answers if r.status_code >= 400]
    for r in errors:
        text = r.get_data(as_text=True)
        for leak in LEAKS:
            assert leak not in text, (r.status_code, text)
        body = r.json
        if r.request.path.startswith("/scim/"):
            assert body["schemas"] == [ERROR] and body["status"] == str(r.status_code)
    refused = next(r for r in answers if r.status_code == 400 and
                   "refused" in r.json.get("detail", ""))
    assert refused.json["detail"].startswith('emails[type eq "work"].value:')
    for r in (r for r in answers if r.status_code == 503):
        assert int(r.headers["Retry-After"]) >= 1
        assert r.json["detail"] in ("the directory is busy; retry later",
                                    "the directory is unavailable; retry later")


def test_the_server_text_is_logged_for_operators(app, scim, slapd, caplog, monkeypatch):
    from scim.service import users

    def unwilling(*args: Any, **kwargs: Any) -> Any:
        raise de.translate(LDAPOperationResult(result=53, description="unwillingToPerform",
                                               message="the real reason"))

    monkeypatch.setattr(users, "get", unwilling)
    with caplog.at_level(logging.WARNING):
        r = scim.get("/Users/2ceef03a-7f80-1041-899b-d98a394b6a36")
    assert r.status_code == 503 and "the real reason" not in r.get_data(as_text=True)
    assert "the real reason" in caplog.text


# --- TLS to the directory ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_slapd(slapd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdInstance]:
    """A slapd started by ``scripts/slapd --tls``: StartTLS on PORT, ldaps on PORT+1."""
    folder = tmp_path_factory.mktemp("tls-slapd")
    port = _port_pair()
    result = run_script("start", "--dir", str(folder), "--port", str(port), "--nosync", "--tls")
    instance = SlapdInstance()
    instance.dir, instance.port, instance.env = folder, port, parse_env(result.stdout)
    yield instance
    instance.stop()


def _port_pair() -> int:
    """A free loopback port whose successor is free too."""
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return int(port)
    raise RuntimeError("no two consecutive free ports")


def test_slapd_script_sets_up_tls(tls_slapd):
    env = tls_slapd.env
    assert list(env) == ["LDAP_URL", "LDAP_BIND_DN", "LDAP_BIND_PASSWORD", "LDAP_BASE_DN",
                         "LDAP_CA_FILE"]
    folder = tls_slapd._folder()
    assert Path(env["LDAP_CA_FILE"]) == folder / "tls" / "ca.pem"
    assert (folder / "tls" / "server.key").stat().st_mode & 0o077 == 0
    assert "TLS=1" in (folder / "instance.env").read_text()
    assert parse_env(run_script("env", "--dir", str(folder)).stdout) == env
    with socket.create_connection(("127.0.0.1", tls_slapd.port + 1), timeout=2):
        pass


def _app(env: dict[str, str], **extra: str) -> Any:
    application = create_app(load_settings({**env, "SCIM_BEARER_TOKEN": TOKEN,
                                            "LDAP_CONNECT_TIMEOUT": "1", "LDAP_TIMEOUT": "2",
                                            **extra}))
    application.config["TESTING"] = True
    return application


def _create(application: Any, name: str) -> Any:
    try:
        return Scim(application.test_client()).post("/Users", entra.minimal_user(name))
    finally:
        application.extensions["scim_bridge"].pool.close()


@MATCH_HOSTNAME
def test_ldaps_and_starttls_with_the_ca_file(tls_slapd):
    env = tls_slapd.env
    ldaps = f"ldaps://127.0.0.1:{tls_slapd.port + 1}"
    assert _create(_app(env, LDAP_URL=ldaps), "ldaps@x.org").status_code == 201
    assert _create(_app(env, LDAP_START_TLS="true"), "starttls@x.org").status_code == 201
    assert _create(_app(env, LDAP_URL=ldaps.replace("127.0.0.1", "localhost")),
                   "byname@x.org").status_code == 201


@MATCH_HOSTNAME
@pytest.mark.parametrize("start_tls", [False, True])
def test_a_certificate_that_does_not_verify_is_503_at_request_time(tls_slapd, tmp_path,
                                                                   start_tls):
    env = {k: v for k, v in tls_slapd.env.items() if k != "LDAP_CA_FILE"}
    url = {"LDAP_START_TLS": "true"} if start_tls else \
        {"LDAP_URL": f"ldaps://127.0.0.1:{tls_slapd.port + 1}"}
    other_ca = _other_ca(tmp_path)
    for extra in ({"LDAP_CA_FILE": str(other_ca)}, {}):  # a wrong CA; the system's CAs
        application = _app(env, **url, **extra)  # starts: nothing connects before a request
        r = _create(application, "nope@x.org")
        assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1, r.json
    assert _create(_app(env, **url, LDAP_TLS_VERIFY="false"), f"noverify{start_tls}@x.org"
                   ).status_code == 201


def _other_ca(folder: Path) -> Path:
    """A CA that signed nothing the server presents (from another scripts/slapd --tls)."""
    import subprocess

    pem = folder / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(folder / "k.pem"),
                    "-out", str(pem), "-days", "1", "-subj", "/CN=someone else"],
                   check=True, capture_output=True)
    return pem


class Sniffer:
    """A loopback TCP relay that records what the client sends (to see it in the clear)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.seen = bytearray()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True
                             ).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True
                             ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        try:
            while data := src.recv(65536):
                if record:
                    self.seen += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


@MATCH_HOSTNAME
def test_the_bind_password_never_crosses_the_wire_in_the_clear(tls_slapd, slapd, tmp_path):
    password = tls_slapd.env["LDAP_BIND_PASSWORD"].encode()
    cases = [  # (directory, settings, expected status)
        (tls_slapd, {"LDAP_START_TLS": "true"}, 201),
        (tls_slapd, {"LDAP_START_TLS": "true", "LDAP_CA_FILE": str(_other_ca(tmp_path))}, 503),
        (slapd, {"LDAP_START_TLS": "true", "LDAP_CA_FILE": tls_slapd.env["LDAP_CA_FILE"]},
         503),  # a directory that offers no StartTLS at all
    ]
    for i, (directory, extra, status) in enumerate(cases):
        sniffer = Sniffer(directory.port)
        try:
            env = {**directory.env, "LDAP_URL": f"ldap://127.0.0.1:{sniffer.port}", **extra}
            r = _create(_app(env), f"sniffed{i}@x.org")
            time.sleep(0.1)
            assert r.status_code == status, (extra, r.json)
            assert directory.env["LDAP_BIND_PASSWORD"].encode() not in sniffer.seen, extra
            assert len(sniffer.seen) > 0
        finally:
            sniffer.close()
    sniffer = Sniffer(tls_slapd.port)  # the control: without TLS the relay sees it
    try:
        env = {**tls_slapd.env, "LDAP_URL": f"ldap://127.0.0.1:{sniffer.port}"}
        assert _create(_app(env), "clear@x.org").status_code == 201
        assert password in sniffer.seen
    finally:
        sniffer.close()
    conn = admin(tls_slapd.env)
    conn.unbind()
