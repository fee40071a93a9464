"""slapd 2.5 drops dynlist's memberOf from searches that carry the sort control; lists
that are sorted, or paged through VLV, must still show each user's groups."""

from __future__ import annotations

import pytest

from tests import entra


@pytest.mark.parametrize("query", ["/Users?sortBy=userName", "/Users",
                                   "/Users?sortBy=userName&startIndex=2&count=1",
                                   "/Users?filter=userName+sw+%22m%22&sortBy=userName"])
def test_listed_users_show_their_groups(scim, query):
    ids = [scim.post("/Users", entra.minimal_user(name)).json["id"] for name in ("ma", "mb")]
    gid = scim.post("/Groups", entra.group("Listed", ids)).json["id"]
    listed = scim.get(query).json["Resources"]
    assert listed
    for user in listed:
        assert [g["value"] for g in user["groups"]] == [gid], user["userName"]
