"""attributes / excludedAttributes (RFC 7644 §3.4.2.5) and ``returned`` (RFC 7643 §7)."""

from __future__ import annotations

import pytest

from scim.protocol.paths import parse_attribute_list
from scim.protocol.projection import Projection, project, wants
from scim.protocol.schema import (
    CORE_USER,
    ENTERPRISE_USER,
    GROUP,
    USER,
    Attribute,
    ResourceType,
    Schema,
)

EXT = "urn:example:params:scim:schemas:extension:test:2.0:Thing"
THING = ResourceType(
    "Thing", "/Things", "test", Schema(
        "urn:example:params:scim:schemas:core:2.0:Thing", "Thing", "test", (
            Attribute("name"),
            Attribute("secret", returned="never"),
            Attribute("audit", returned="request"),
            Attribute("kind", returned="always"),
            Attribute("parts", type="complex", multi_valued=True, sub_attributes=(
                Attribute("value"),
                Attribute("hidden", returned="never"),
                Attribute("detail", returned="request"),
                Attribute("key", returned="always"),
            )),
        )),
    (Schema(EXT, "Ext", "test", (Attribute("color"), Attribute("size"))),),
)
RESOURCE = {
    "schemas": [THING.schema.id, EXT], "id": "1", "name": "n", "secret": "s",
    "audit": "a", "kind": "k",
    "parts": [{"value": "v", "hidden": "h", "detail": "d", "key": "K"}],
    EXT: {"color": "red", "size": "L"},
    "meta": {"created": "c", "lastModified": "m", "location": "l"},
}


def shown(attributes: str = "", excluded: str = "", rtype: ResourceType = THING,
          resource: dict | None = None) -> dict:
    projection = Projection(tuple(parse_attribute_list(attributes)),
                            tuple(parse_attribute_list(excluded)))
    return project(resource or RESOURCE, rtype, projection)


def test_default_set_hides_never_and_request():
    got = shown()
    assert "secret" not in got and "audit" not in got
    assert got["parts"] == [{"value": "v", "key": "K"}]
    assert got["kind"] == "k" and got[EXT] == {"color": "red", "size": "L"}


def test_attributes_selects_and_always_stays():
    assert shown("name") == {"schemas": RESOURCE["schemas"], "id": "1", "name": "n",
                             "kind": "k"}
    assert shown("audit")["audit"] == "a"  # request: only when asked for
    assert "secret" not in shown("secret")  # never: not even when asked for


def test_sub_attributes():
    assert shown("parts.value")["parts"] == [{"value": "v", "key": "K"}]
    assert shown("parts.detail")["parts"] == [{"detail": "d", "key": "K"}]
    assert shown("parts")["parts"] == [{"value": "v", "detail": "d", "key": "K"}]
    assert shown("parts.hidden")["parts"] == [{"key": "K"}]
    assert shown(excluded="parts.value")["parts"] == [{"key": "K"}]
    assert shown("meta.created")["meta"] == {"created": "c"}
    assert shown(excluded="meta.created,meta.location")["meta"] == {"lastModified": "m"}


def test_names_are_case_insensitive():
    assert shown("NAME,Parts.VALUE") == {"schemas": RESOURCE["schemas"], "id": "1",
                                         "name": "n", "kind": "k",
                                         "parts": [{"value": "v", "key": "K"}]}


def test_urn_qualified_names():
    assert shown(f"{EXT}:color")[EXT] == {"color": "red"}
    assert shown(EXT)[EXT] == {"color": "red", "size": "L"}
    assert EXT not in shown(excluded=EXT)
    assert shown(excluded=f"{EXT}:size")[EXT] == {"color": "red"}
    assert shown(f"{THING.schema.id}:name")["name"] == "n"
    assert EXT not in shown("name")


def test_excluded_attributes_and_always():
    got = shown(excluded="name,id,kind,parts")
    assert got["id"] == "1" and got["kind"] == "k"  # always
    assert "name" not in got and "parts" not in got


def test_emptied_objects_are_dropped():
    resource = {**RESOURCE, "parts": [{"value": "v"}], EXT: {"size": "L"}}
    got = shown(excluded=f"parts.value,{EXT}:size", resource=resource)
    assert "parts" not in got and EXT not in got


def test_real_types():
    user = {"schemas": [CORE_USER], "id": "u", "userName": "a", "password": "p",
            "groups": [{"value": "g"}], ENTERPRISE_USER: {"manager": {"value": "m"}}}
    assert shown(rtype=USER, resource=user) == {k: v for k, v in user.items()
                                                if k != "password"}
    assert shown(f"{ENTERPRISE_USER}:manager.value", rtype=USER, resource=user) == {
        "schemas": [CORE_USER], "id": "u", ENTERPRISE_USER: {"manager": {"value": "m"}}}


@pytest.mark.parametrize(("attributes", "excluded", "expected"), [
    ("", "", True),
    ("", "members", False),
    ("", "MEMBERS", False),
    ("", "members.value", True),  # still needs the members to show the rest
    ("displayName", "", False),
    ("members.value", "", True),
    ("urn:ietf:params:scim:schemas:core:2.0:Group:members", "", True),
])
def test_wants_tells_whether_members_are_read(attributes, excluded, expected):
    projection = Projection(tuple(parse_attribute_list(attributes)),
                            tuple(parse_attribute_list(excluded)))
    assert wants(GROUP, projection, "members") is expected


def test_wants_follows_returned():
    assert wants(THING, Projection(), "audit") is False
    assert wants(THING, Projection((parse_attribute_list("audit")[0],)), "audit") is True
    assert wants(THING, Projection((parse_attribute_list("name")[0],)), "kind") is True
    assert wants(THING, Projection(), "secret") is False


def test_values_that_were_empty_stay():
    resource = {"schemas": [GROUP.schema.id], "id": "g", "displayName": "d", "members": []}
    assert shown(rtype=GROUP, resource=resource) == resource
    assert shown("members", rtype=GROUP, resource=resource)["members"] == []
