"""Every request limit is a setting, advertised where SCIM has a place for it, and answered
with a SCIM error that says which limit was hit (413 for the body, 400 for the rest)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from config import ConfigError, load_settings
from scim.factory import create_app
from tests import entra
from tests.conftest import TOKEN, Scim
from tests.reliability.conftest import StartGunicorn
from tests.reliability.support import call, is_scim_error, scim_path

LIMITS = {"SCIM_MAX_BODY_BYTES": "2048", "SCIM_MAX_OPERATIONS": "3",
          "SCIM_MAX_MEMBERS_PER_PATCH": "4", "SCIM_MAX_PAGE_SIZE": "5",
          "SCIM_MAX_FILTER_LENGTH": "120", "SCIM_MAX_FILTER_DEPTH": "3",
          "SCIM_MAX_FILTER_CLAUSES": "4"}
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


@pytest.fixture
def scim(slapd, ldap) -> Iterator[Scim]:
    app = create_app(load_settings({**slapd.env, "SCIM_BEARER_TOKEN": TOKEN, **LIMITS}))
    yield Scim(app.test_client())
    app.extensions["scim_bridge"].pool.close()


def error(response, status: int, scim_type: str | None, *words: str) -> None:
    """A SCIM error body with that status and type whose detail names the limit."""
    body = response.json
    assert response.status_code == status, body
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == str(status) and body.get("scimType") == scim_type
    for word in words:
        assert word in body["detail"], body["detail"]


def test_limits_are_settings_that_must_be_positive():
    for name in LIMITS:
        with pytest.raises(ConfigError, match=f"^{name}: must be greater than 0"):
            load_settings({name: "0"})
        assert getattr(load_settings({name: LIMITS[name]}), name) == int(LIMITS[name])


def test_limits_are_advertised(scim):
    config = scim.get("/ServiceProviderConfig").json
    assert config["filter"] == {"supported": True, "maxResults": 5}
    assert config["bulk"]["supported"] is False


def test_body_over_the_limit_is_413_and_writes_nothing(scim, ldap, base_dn):
    uid = scim.post("/Users", entra.minimal_user("small@x.org")).json["id"]
    padded = {**entra.minimal_user("big@x.org"), "displayName": "x" * 2048}
    error(scim.post("/Users", padded), 413, None, "2048 bytes")
    error(scim.put(f"/Users/{uid}", padded), 413, None, "2048 bytes")
    error(scim.patch(f"/Users/{uid}", entra.patch(
        {"op": "Replace", "path": "displayName", "value": "y" * 2048})), 413, None, "2048")
    ldap.search(f"ou=People,{base_dn}", "(objectClass=inetOrgPerson)", attributes=["uid"])
    assert [str(e.uid) for e in ldap.entries] == ["small@x.org"]
    body = json.dumps({**entra.minimal_user("fits@x.org"), "displayName": ""}).encode()
    exact = {**entra.minimal_user("fits@x.org"), "displayName": "x" * (2048 - len(body))}
    assert len(json.dumps(exact).encode()) == 2048
    assert scim.post("/Users", exact).status_code == 201


def test_patch_operations_over_the_limit(scim):
    uid = scim.post("/Users", entra.minimal_user("ops@x.org")).json["id"]
    gid = scim.post("/Groups", entra.group("Ops")).json["id"]
    op = {"op": "Replace", "path": "displayName", "value": "d"}
    for path in (f"/Users/{uid}", f"/Groups/{gid}"):
        error(scim.patch(path, entra.patch(*[op] * 4)), 400, "invalidValue", "4", "at most 3")
        assert scim.patch(path, entra.patch(*[op] * 3)).status_code in (200, 204)


def test_path_less_keys_count_as_operations(scim, ldap, base_dn):
    """Each key of a path-less value is one operation (issue 17: one op with thousands of
    keys escaped the limit); an extension's object counts its own keys."""
    uid = scim.post("/Users", entra.minimal_user("keys@x.org")).json["id"]
    gid = scim.post("/Groups", entra.group("Keys")).json["id"]
    dn = f"uid=keys@x.org,ou=People,{base_dn}"
    ldap.search(dn, "(objectClass=*)", attributes=["*", "+"])
    before = ldap.response[0]["raw_attributes"]
    four = {"displayName": "a", "title": "b", "nickName": "c", "userType": "d"}
    ext = {entra.ENTERPRISE: {"department": "x", "division": "y"}}
    for body in (entra.patch({"op": "Replace", "value": four}),
                 entra.patch({"op": "Add", "value": {"title": "b", "nickName": "c", **ext}}),
                 entra.patch({"op": "Replace", "path": "title", "value": "t"},
                             {"op": "Replace", "value": {"displayName": "a", "nickName": "c",
                                                         "userType": "d"}}),
                 entra.patch({"op": "Replace", "path": entra.ENTERPRISE,
                              "value": {"department": "x", "division": "y", "costCenter": "z",
                                        "organization": "o"}})):
        error(scim.patch(f"/Users/{uid}", body), 400, "invalidValue", "4", "at most 3",
              "path-less")
    ldap.search(dn, "(objectClass=*)", attributes=["*", "+"])
    assert ldap.response[0]["raw_attributes"] == before
    error(scim.patch(f"/Groups/{gid}", entra.patch(
        {"op": "Replace", "value": {"displayName": "K", "externalId": "e", "members": [],
                                    "x": 1}})), 400, "invalidValue", "4", "at most 3")
    three = {"displayName": "a", "title": "b", "nickName": "c"}
    assert scim.patch(f"/Users/{uid}", entra.patch({"op": "Replace", "value": three})
                      ).status_code == 200
    assert scim.patch(f"/Users/{uid}", entra.patch({"op": "Add", "value": {"title": "b", **{
        entra.ENTERPRISE: {"department": "x"}}}})).status_code == 200


def test_members_over_the_limit_in_any_request(scim):
    ids = [scim.post("/Users", entra.minimal_user(f"m{i}@x.org")).json["id"] for i in range(5)]
    gid = scim.post("/Groups", entra.group("Members")).json["id"]

    def members(op: str, chosen: list[str]) -> dict:
        return {"op": op, "path": "members", "value": [{"value": i} for i in chosen]}

    too_many = [
        scim.patch(f"/Groups/{gid}", entra.patch(members("Add", ids))),
        scim.patch(f"/Groups/{gid}", entra.patch(members("Add", ids[:3]),
                                                 members("Remove", ids[3:]))),
        scim.patch(f"/Groups/{gid}", entra.patch(members("Replace", ids))),
        scim.post("/Groups", entra.group("Five", ids)),
        scim.put(f"/Groups/{gid}", entra.group("Members", ids)),
    ]
    for response in too_many:
        error(response, 400, "invalidValue", "5", "at most 4")
    assert "members" not in scim.get(f"/Groups/{gid}").json or \
        scim.get(f"/Groups/{gid}").json["members"] == []
    assert scim.patch(f"/Groups/{gid}", entra.patch(members("Add", ids[:4]))).status_code == 204
    assert scim.put(f"/Groups/{gid}", entra.group("Members", ids[1:])).status_code == 200


def test_count_above_the_maximum_returns_a_full_page(scim):
    """RFC 7644 §3.4.2.4: the provider MAY return fewer results than ``count``; it does,
    and says so (itemsPerPage), rather than refusing a client's page size."""
    for i in range(7):
        scim.post("/Users", entra.minimal_user(f"c{i}@x.org"))
    for query in ("?count=100", "", "?count=5&startIndex=6"):
        page = scim.get(f"/Users{query}").json
        assert page["totalResults"] == 7
        assert page["itemsPerPage"] == len(page["Resources"]) == (2 if "6" in query else 5)


def test_filter_length_depth_and_clauses(scim):
    def filtered(text: str):
        return scim.get(f"/Users?filter={quote(text)}")

    def searched(text: str):
        return scim.post("/Users/.search", {"schemas": [SEARCH], "filter": text})

    fits = 'userName eq "' + "a" * (120 - 14) + '"'
    assert len(fits) == 120
    for run in (filtered, searched):
        assert run(fits).status_code == 200
        error(run(fits[:-1] + 'a"'), 400, "invalidFilter", "121", "120")
        assert run('(((userName eq "a")))').status_code == 200
        error(run('((((userName eq "a"))))'), 400, "invalidFilter", "depth", "3")
        assert run(" or ".join(['userName eq "a"'] * 4)).status_code == 200
        error(run(" or ".join(['userName eq "a"'] * 5)), 400, "invalidFilter", "4")


def test_limits_over_real_http(slapd, ldap, gunicorn: StartGunicorn):
    """What only gunicorn shows: a chunked body (no Content-Length) over the limit, and a
    GET whose filter is as long as allowed (the request line must carry it)."""
    server = gunicorn({**slapd.env, "SCIM_MAX_BODY_BYTES": "32768"}, workers=1, threads=2)
    big = {**entra.minimal_user("chunked@x.org"), "displayName": "x" * 40000}
    status, answer = chunked(server.port, json.dumps(big).encode())
    assert status == 413 and "32768" in answer["detail"], answer
    assert call(server, "GET", scim_path("/Users?filter=userName%20eq%20%22chunked@x.org%22")
                ).body["totalResults"] == 0
    small = {**entra.minimal_user("chunked@x.org"), "displayName": "x" * 20000}
    status, answer = chunked(server.port, json.dumps(small).encode())
    assert status == 201 and answer["displayName"] == small["displayName"]

    longest = 'userName eq "' + "a" * (4096 - 14) + '"'
    reply = call(server, "GET", scim_path(f"/Users?filter={quote(longest)}"))
    assert reply.status == 200 and reply.body["totalResults"] == 0, reply
    reply = call(server, "GET", scim_path(f"/Users?filter={quote(longest + ' ')}"))
    assert is_scim_error(reply, 400) and reply.body["scimType"] == "invalidFilter"
    unicode = 'userName eq "' + "é" * (4096 - 14) + '"'  # 6 bytes each in a URL
    reply = call(server, "POST", scim_path("/Users/.search"), {"schemas": [SEARCH],
                                                               "filter": unicode})
    assert reply.status == 200 and reply.body["totalResults"] == 0, reply


def chunked(port: int, body: bytes) -> tuple[int, dict]:
    """POST /Users with Transfer-Encoding: chunked (no Content-Length)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("POST", scim_path("/Users"))
    conn.putheader("Authorization", f"Bearer {TOKEN}")
    conn.putheader("Content-Type", "application/scim+json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for i in range(0, len(body), 5000):
        conn.send(f"{len(body[i:i + 5000]):x}\r\n".encode() + body[i:i + 5000] + b"\r\n")
    conn.send(b"0\r\n\r\n")
    response = conn.getresponse()
    answer = json.loads(response.read())
    conn.close()
    return response.status, answer
