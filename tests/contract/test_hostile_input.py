"""Issue 17: hostile and unusual input on real slapd. Deeply nested JSON, lone surrogate
escapes and huge integers each get a clear 4xx, write nothing (LDAP is read back) and,
when they are authenticated writes, leave an audit record; startIndex past what LDAP's
VLV can address is an empty page; a 415 says what was missing; a group PATCH's 204
carries the new ETag; path-less PATCH keys count against SCIM_MAX_OPERATIONS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from config import load_settings
from scim.audit import read_audit
from scim.factory import create_app
from scim.protocol.jsonvalue import MAX_JSON_DEPTH
from tests import entra
from tests.conftest import TOKEN, Scim
from tests.contract.users_support import tree
from tests.slapd_instance import SlapdInstance

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
#: One past VLV's offset (an LDAP INTEGER, at most 2^31 - 1).
PAST_VLV = 2**31


@pytest.fixture
def audit_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.log"


@pytest.fixture
def app(slapd: SlapdInstance, ldap: Any, audit_path: Path) -> Iterator[Flask]:
    application = create_app(load_settings({**slapd.env, "SCIM_BEARER_TOKEN": TOKEN,
                                            "AUDIT_LOG": str(audit_path)}))
    application.config["TESTING"] = True
    yield application
    application.extensions["scim_bridge"].pool.close()


@pytest.fixture
def scim(app: Flask) -> Scim:
    return Scim(app.test_client())


@pytest.fixture
def ids(scim: Scim) -> dict[str, str]:
    user = scim.post("/Users", entra.user()).json["id"]
    group = scim.post("/Groups", entra.group("Hostile", [user])).json["id"]
    return {"user": user, "group": group}


def raw(scim: Scim, method: str, path: str, data: bytes | str,
        content_type: str | None = "application/scim+json") -> Any:
    headers = {**scim.headers, **({"Content-Type": content_type} if content_type else {})}
    return getattr(scim.client, method)(scim.prefix + path, data=data, headers=headers)


def error(response: Any, status: int, scim_type: str | None, *words: str) -> dict:
    body = response.json
    assert response.status_code == status, body
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    assert body.get("scimType") == scim_type, body
    for word in words:
        assert word in body["detail"], body["detail"]
    return body


#: Audit records that are not a request's own record (a token's first use in a minute).
NOT_REQUESTS = {"contact", "authenticate"}


def requests_audited(path: Path) -> list[dict]:
    return [r for r in read_audit(path, 1000) if r.get("operation") not in NOT_REQUESTS]


def audited(path: Path, method: str, status: int) -> list[dict]:
    return [r for r in requests_audited(path) if r["method"] == method and r["status"] == status]


def writes(ids: dict[str, str]) -> list[tuple[str, str]]:
    """Every endpoint that takes a body and may change something."""
    return [("post", "/Users"), ("put", f"/Users/{ids['user']}"),
            ("patch", f"/Users/{ids['user']}"), ("post", "/Groups"),
            ("put", f"/Groups/{ids['group']}"), ("patch", f"/Groups/{ids['group']}")]


SEARCHES = ["/Users/.search", "/Groups/.search", "/.search"]


# --- nesting -----------------------------------------------------------------------------------


def nested_objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def nested_patch_value(depth: int) -> str:
    value = "[" * depth + "]" * depth
    return ('{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":'
            '[{"op":"replace","path":"displayName","value":' + value + "}]}")


@pytest.mark.parametrize("body", [nested_objects(50_000), nested_patch_value(5_000),
                                  nested_objects(MAX_JSON_DEPTH + 1)],
                         ids=["50000-objects", "5000-deep-patch-value", "one-too-deep"])
def test_deep_nesting_is_400_invalid_syntax_audited_and_writes_nothing(
        scim, ldap, base_dn, ids, audit_path, body):
    before = tree(ldap, base_dn)
    for method, path in writes(ids):
        error(raw(scim, method, path, body), 400, "invalidSyntax", "nests", "deep")
    for path in SEARCHES:
        error(raw(scim, "post", path, body), 400, "invalidSyntax", "nests", "deep")
    assert tree(ldap, base_dn) == before
    for method in ("POST", "PUT", "PATCH"):  # the writes are audited; .search reads
        records = audited(audit_path, method, 400)
        assert len(records) == 2 and all(r["result"] == "failure" for r in records), records
        assert all(r["attributes"] == [] for r in records)


def test_nesting_at_the_limit_is_parsed(scim, ids):
    """MAX_JSON_DEPTH levels are fine: the body gets the answer its content deserves."""
    body = json.loads(nested_objects(MAX_JSON_DEPTH - 1))
    r = scim.post("/Users", {**entra.minimal_user("deep@x.org"), "displayName": body})
    error(r, 400, "invalidValue", "displayName")


# --- lone surrogates -------------------------------------------------------------------------


def surrogate_bodies(ids: dict[str, str]) -> list[tuple[str, str, str, str]]:
    """(method, path, JSON text with a lone \\ud800 escape, the name the detail gives)."""
    user = json.dumps(entra.minimal_user("PLACE")).replace("PLACE", "x\\ud800y")
    display = json.dumps({**entra.minimal_user("s@x.org"), "displayName": "PLACE"})
    put = json.dumps({**entra.user(), "displayName": "PLACE"})
    password = json.dumps(entra.patch({"op": "replace", "path": "password", "value": "PLACE"}))
    pathless = json.dumps(entra.patch({"op": "replace", "value": {"password": "PLACE"}}))
    email = json.dumps({**entra.minimal_user("m@x.org"), "emails": [{"value": "PLACE"}]})
    group = json.dumps(entra.group("PLACE"))
    key = json.dumps({**entra.minimal_user("k@x.org"), "PLACE": 1})
    lone_low = "\\udc00"
    return [
        ("post", "/Users", user, "userName"),
        ("post", "/Users", display.replace("PLACE", "\\ud800"), "displayName"),
        ("put", f"/Users/{ids['user']}", put.replace("PLACE", lone_low), "displayName"),
        ("patch", f"/Users/{ids['user']}", password.replace("PLACE", "pw\\ud800"), "password"),
        ("patch", f"/Users/{ids['user']}", pathless.replace("PLACE", "pw\\ud800"),
         "password"),
        ("post", "/Users", email.replace("PLACE", "a\\ud800@x.org"), "emails[0].value"),
        ("post", "/Groups", group.replace("PLACE", "G\\ud800"), "displayName"),
        ("put", f"/Groups/{ids['group']}", group.replace("PLACE", "G\\udfff"), "displayName"),
        ("post", "/Users", key.replace("PLACE", "k\\ud800"), "k\ufffd"),
    ]


def test_lone_surrogate_is_400_invalid_value_naming_the_attribute(
        scim, ldap, base_dn, ids, audit_path):
    before = tree(ldap, base_dn)
    bodies = surrogate_bodies(ids)
    for method, path, body, name in bodies:
        detail = error(raw(scim, method, path, body), 400, "invalidValue", "surrogate")["detail"]
        assert detail.startswith(f"{name}: "), detail
    for path in SEARCHES:
        body = json.dumps({"schemas": [SEARCH], "filter": 'userName eq "PLACE"'})
        error(raw(scim, "post", path, body.replace("PLACE", "x\\ud800")), 400,
              "invalidValue", "filter", "surrogate")
    assert tree(ldap, base_dn) == before
    records = [r for r in requests_audited(audit_path) if r["status"] == 400]
    assert len(records) == len(bodies)  # every write, audited (the searches are reads)
    assert all(r["result"] == "failure" for r in records)


def test_a_lone_surrogate_in_a_query_string_filter_is_a_4xx(scim, ids):
    """In a GET the filter is text of the URL: a JSON-style escape of a lone surrogate in
    its string literal is a filter error; a percent-encoded one is not UTF-8 at all and
    decodes to U+FFFD, which matches nobody."""
    for escaped in ('userName eq "x\\ud800"', 'userName eq "\\udc00y"'):
        r = scim.get("/Users", query_string={"filter": escaped})
        error(r, 400, "invalidFilter", "surrogate")
    r = scim.get("/Users?filter=userName%20eq%20%22x%ED%A0%80%22")
    assert (r.status_code, r.json["totalResults"]) == (200, 0), r.json


def test_a_surrogate_pair_is_a_character(scim, ldap, base_dn):
    body = json.dumps(entra.minimal_user("PLACE@x.org")).replace("PLACE", "smile\\ud83d\\ude00")
    r = raw(scim, "post", "/Users", body)
    assert r.status_code == 201, r.json
    assert r.json["userName"] == "smile\U0001F600@x.org"
    ldap.search(f"ou=People,{base_dn}", "(uid=smile\U0001F600@x.org)", attributes=["uid"])
    assert len(ldap.entries) == 1


# --- huge integers ---------------------------------------------------------------------------


@pytest.fixture
def crowd(scim: Scim) -> list[str]:
    names = [f"crowd{i}@x.org" for i in range(3)]
    for name in names:
        assert scim.post("/Users", entra.minimal_user(name)).status_code == 201
    scim.post("/Groups", entra.group("Crowd"))
    return names


@pytest.mark.parametrize("start", [PAST_VLV, PAST_VLV - 1, 10**30])
@pytest.mark.parametrize("extra", ["", "&filter=userName%20sw%20%22crowd%22",
                                   "&sortBy=userName", "&sortBy=userName&count=2",
                                   "&filter=userName%20pr&sortBy=userName&sortOrder=descending",
                                   f"&count={10**30}"])
def test_start_index_past_what_ldap_can_page_is_an_empty_page(scim, crowd, start, extra):
    r = scim.get(f"/Users?startIndex={start}{extra}")
    assert r.status_code == 200, r.json
    assert (r.json["totalResults"], r.json["Resources"], r.json["startIndex"]) == (3, [], start)
    assert r.json["itemsPerPage"] == 0


def test_start_index_past_vlv_on_groups_and_searches(scim, crowd):
    assert scim.get(f"/Groups?startIndex={PAST_VLV}").json["totalResults"] == 1
    for path, total in (("/Users/.search", 3), ("/Groups/.search", 1), ("/.search", 4)):
        for extra in ({}, {"sortBy": "meta.created"}, {"filter": "meta.created pr"},
                      {"count": 10**30}):
            r = scim.post(path, {"schemas": [SEARCH], "startIndex": PAST_VLV, **extra})
            assert r.status_code == 200, (path, extra, r.json)
            assert (r.json["totalResults"], r.json["Resources"]) == (total, []), (path, extra)


def test_numbers_too_long_for_int_are_past_the_end(scim, crowd):
    """Over 4,300 digits Python's int() refuses: still a number, still past the end."""
    digits = "9" * 5000
    r = scim.get(f"/Users?startIndex={digits}&count={digits}")
    assert r.status_code == 200, r.json
    assert (r.json["totalResults"], r.json["Resources"]) == (3, [])
    r = scim.get(f"/Users?startIndex=-{digits}&count={digits}")
    assert (r.status_code, r.json["totalResults"], len(r.json["Resources"])) == (200, 3, 3)
    r = scim.get(f"/Users?count=-{digits}")
    assert (r.status_code, r.json["totalResults"], r.json["Resources"]) == (200, 3, [])
    error(scim.get("/Users?startIndex=12abc"), 400, None, "startIndex", "whole number")


def test_huge_integers_in_bodies_are_400_audited_and_write_nothing(scim, ldap, base_dn, ids,
                                                                   audit_path):
    before = tree(ldap, base_dn)
    digits = "9" * 5000
    user = json.dumps(entra.minimal_user("big@x.org"))[:-1] + ', "displayName": NUM}'
    ops = ('{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":'
           '[{"op":"replace","path":"displayName","value":NUM}]}')
    for method, path, body in (("post", "/Users", user), ("put", f"/Users/{ids['user']}", user),
                               ("patch", f"/Users/{ids['user']}", ops),
                               ("patch", f"/Groups/{ids['group']}", ops)):
        error(raw(scim, method, path, body.replace("NUM", digits)), 400, "invalidSyntax",
              "not valid JSON", "digits")
        for number in ("1" + "0" * 400, "1e999", "-1e999"):  # fits int(), or a float's inf
            r = raw(scim, method, path, body.replace("NUM", number))
            error(r, 400, "invalidValue", "displayName", "string")
    assert tree(ldap, base_dn) == before
    records = [r for r in requests_audited(audit_path) if r["status"] == 400]
    assert len(records) == 16 and {r["method"] for r in records} == {"POST", "PUT", "PATCH"}
    body = {"schemas": [SEARCH], "startIndex": int(digits[:4000]), "count": 10**400}
    r = scim.post("/Users/.search", body)
    assert (r.status_code, r.json["totalResults"], r.json["Resources"]) == (200, 1, []), r.json


def test_huge_count_is_a_full_page(scim, crowd):
    r = scim.get(f"/Users?count={10**30}&startIndex=2")
    assert r.status_code == 200 and r.json["totalResults"] == 3
    assert len(r.json["Resources"]) == 2


# --- messages and headers --------------------------------------------------------------------


def test_a_body_without_content_type_is_415_saying_so(scim, ids):
    body = json.dumps(entra.minimal_user("ct@x.org"))
    detail = error(raw(scim, "post", "/Users", body, None), 415, None, "no Content-Type")["detail"]
    assert "not no" not in detail
    detail = error(raw(scim, "post", "/Users", body, "text/plain"), 415, None,
                   "not text/plain")["detail"]
    assert "application/scim+json" in detail


def test_group_patch_answers_204_with_the_new_etag(scim, ids, crowd):
    gid = ids["group"]
    before = scim.get(f"/Groups/{gid}").headers["ETag"]
    users = scim.get("/Users?filter=userName%20sw%20%22crowd%22").json["Resources"]
    cases = [  # members only, attributes only, both, and a rename
        entra.patch({"op": "add", "path": "members", "value": [{"value": users[0]["id"]}]}),
        entra.patch({"op": "replace", "path": "externalId", "value": "ext-1"}),
        entra.patch({"op": "remove", "path": f'members[value eq "{users[0]["id"]}"]'},
                    {"op": "replace", "path": "externalId", "value": "ext-2"}),
        entra.patch({"op": "replace", "path": "displayName", "value": "Hostile 2"}),
    ]
    seen = {before}
    for body in cases:
        r = scim.patch(f"/Groups/{gid}", body)
        assert r.status_code == 204 and r.get_data() == b""
        etag = r.headers.get("ETag")
        assert etag and etag.startswith('W/"'), r.headers
        assert etag == scim.get(f"/Groups/{gid}").headers["ETag"]  # the version written
        assert etag not in seen
        seen.add(etag)
    # it is the version: If-Match with it succeeds, with the one before it is refused
    assert scim.patch(f"/Groups/{gid}", cases[1], headers={"If-Match": before}).status_code == 412
    r = scim.patch(f"/Groups/{gid}", cases[1], headers={"If-Match": etag})
    assert r.status_code == 204


def test_a_group_patch_that_changes_nothing_keeps_its_etag(scim, ids):
    gid = ids["group"]
    before = scim.get(f"/Groups/{gid}").headers["ETag"]
    r = scim.patch(f"/Groups/{gid}", entra.patch(
        {"op": "replace", "path": "displayName", "value": "Hostile"}))
    assert (r.status_code, r.headers.get("ETag")) == (204, before)
