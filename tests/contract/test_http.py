"""HTTP-level behaviour: auth, media types, SCIM error bodies for every failure."""

from __future__ import annotations

import logging

import pytest

from tests import entra


def test_missing_or_bad_token_gives_401_with_scim_body(client):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}):
        r = client.get("/scim/v2/Users", headers=headers)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.headers["Content-Type"] == "application/scim+json"
        assert r.json["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        assert r.json["status"] == "401"


def test_discovery_needs_the_token_too(client, scim):
    assert client.get("/scim/v2/ServiceProviderConfig").status_code == 401
    assert scim.get("/ServiceProviderConfig").status_code == 200


@pytest.mark.parametrize("ctype", ["application/json", "application/scim+json",
                                   "application/scim+json; charset=utf-8"])
def test_both_json_media_types_are_accepted(scim, ctype):
    r = scim.post("/Users", entra.minimal_user(f"{ctype[12:16]}@x.org"),
                  headers={"Content-Type": ctype})
    assert r.status_code == 201, r.json


def test_other_media_type_is_415(scim, ldap, base_dn):
    r = scim.client.post("/scim/v2/Users", data="userName=x", headers={
        **scim.headers, "Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.json["status"] == "415"
    assert ldap.search(f"ou=People,{base_dn}", "(uid=*)") is False


def test_malformed_json_is_400_invalid_syntax(scim):
    r = scim.client.post("/scim/v2/Users", data="{nope", headers={
        **scim.headers, "Content-Type": "application/scim+json"})
    assert r.status_code == 400
    assert r.json["scimType"] == "invalidSyntax"


def test_unknown_endpoint_and_method_are_scim_errors(scim):
    r = scim.get("/Nope")
    assert (r.status_code, r.json["status"]) == (404, "404")
    assert r.headers["Content-Type"] == "application/scim+json"
    r = scim.client.post("/scim/v2/ServiceProviderConfig", headers=scim.headers)
    assert (r.status_code, r.json["status"]) == (405, "405")


def test_unexpected_error_is_500_without_internals(app, scim, caplog, monkeypatch):
    from scim.service import users

    def boom(*args, **kwargs):
        raise RuntimeError("secret internal detail cn=admin")

    monkeypatch.setattr(users, "get", boom)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    with caplog.at_level(logging.ERROR):
        r = scim.get("/Users/2ceef03a-7f80-1041-899b-d98a394b6a36")
    assert r.status_code == 500
    assert r.json == {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                      "status": "500", "detail": "internal error; it has been logged"}
    assert "secret internal detail" in caplog.text


def test_body_too_large_is_413(scim, app):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    r = scim.post("/Users", {**entra.minimal_user("big@x.org"), "displayName": "x" * 2000})
    assert r.status_code == 413
    assert r.json["status"] == "413"
