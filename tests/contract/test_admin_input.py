"""Issue 17 on the dashboard: a sign-in target with control characters is an invalid
target (the default page), and a page number far past the end is an empty page — never
a 500. Fixtures and helpers are test_admin.py's."""

from __future__ import annotations

import pytest

from tests.contract.test_admin import (  # noqa: F401 - fixtures
    _user_names,
    admins,
    app,
    browser,
    directory,
    sign_in,
    signed_in,
    text,
)

HUGE = ["100000000", "99999999999999999999", str(2**31), "-5", "x"]


@pytest.mark.parametrize("target", ["/admin/users\r\nSet-Cookie: a=b", "/admin/users\n",
                                    "/admin/users\r", "/admin/\x00users", "/admin/\tusers",
                                    "/admin/users\x7f", "/admin/users\u2028"])
def test_a_target_with_control_characters_goes_to_the_default_page(browser, target):  # noqa: F811
    response = sign_in(browser, next=target)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/connector"
    again = browser.get("/admin/login", query_string={"next": target})  # signed in already
    assert again.status_code == 302 and again.headers["Location"] == "/admin/connector"


def test_a_good_target_still_works(browser):  # noqa: F811
    response = sign_in(browser, next="/admin/users?q=a%20b")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/users?q=a%20b"


@pytest.mark.parametrize("page", HUGE)
def test_a_page_far_past_the_end_is_empty(signed_in, directory, page):  # noqa: F811
    for path in ("/admin/users", "/admin/groups", f"/admin/groups/{directory['big']}"):
        response = signed_in.get(path, query_string={"page": page, "tenant": "default"})
        assert response.status_code == 200, (path, page, text(response)[:300])
    users = text(signed_in.get("/admin/users", query_string={"page": page}))
    if page.isdigit() and int(page) > 2:
        assert _user_names(users) == []
    else:  # not a page number, or below 1: the first page
        assert len(_user_names(users)) == 25
