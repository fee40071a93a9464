"""The admin dashboard in a real browser: Debian's headless Chromium driven by selenium,
against the app served on a loopback port, on the session slapd.

An operator signs in, creates a token and sees it once, Entra (here: urllib with that
token) provisions a user and a group, and the operator finds them on the Users and
Groups pages, runs the readiness check, looks at the Activity page and signs out. Each
page is saved to artifacts/screenshots/ for a person to look at.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from ldap3.core.exceptions import LDAPNoSuchObjectResult
from werkzeug.serving import make_server

from config import load_settings
from scim.factory import create_app
from tests.admin_support import ADMIN_LOGIN, ADMIN_PASSWORD, make_admins, wipe_tokens
from tests.slapd_instance import free_port

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
MISSING = ("Chromium is not installed: run 'apt-get install -y chromium chromium-driver' "
           "as root to run the admin dashboard's browser tests")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--window-size=1366,900"]
WAIT = 10
pytestmark = pytest.mark.e2e


@pytest.fixture
def served(slapd: Any, ldap: Any, base_dn: str,
           tmp_path: Path) -> Iterator[tuple[str, Flask]]:
    """The app on 127.0.0.1:<port> in a thread, with an admin in the directory."""
    wipe_tokens(ldap, base_dn)
    make_admins(ldap, base_dn)
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    app = create_app(load_settings({**slapd.env, "ADMIN_COOKIE_SECURE": "false",
                                    "SCIM_PUBLIC_URL": root,
                                    "AUDIT_LOG": str(tmp_path / "audit.jsonl")}))
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, app
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        app.extensions["scim_bridge"].pool.close()
        wipe_tokens(ldap, base_dn)


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Any]:
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI"):
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    browser.implicitly_wait(0)
    try:
        yield browser
    finally:
        browser.quit()


class Page:
    """A few verbs on the driver, so the test reads as what a person does."""

    def __init__(self, driver: Any, root: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        self.d, self.root, self.by, self.ec = driver, root, By, ec
        self.wait = WebDriverWait(driver, WAIT)
        SHOTS.mkdir(parents=True, exist_ok=True)

    def open(self, path: str) -> None:
        self.d.get(self.root + path)

    def find(self, css: str) -> Any:
        return self.wait.until(self.ec.presence_of_element_located((self.by.CSS_SELECTOR, css)))

    def all(self, css: str) -> list[Any]:
        return self.d.find_elements(self.by.CSS_SELECTOR, css)

    def type(self, css: str, text: str) -> None:
        field = self.find(css)
        field.clear()
        field.send_keys(text)

    def _navigating(self, element: Any) -> None:
        """Click ``element`` and wait until the next page has replaced this one."""
        old = self.d.find_element(self.by.TAG_NAME, "html")
        element.click()
        self.wait.until(self.ec.staleness_of(old))

    def click(self, css: str) -> None:
        """Click a button or link that loads another page."""
        self._navigating(self.find(css))

    def press(self, css: str) -> None:
        """Click a button that stays on the page (a script acts on it)."""
        self.find(css).click()

    def link(self, text: str) -> None:
        self._navigating(
            self.wait.until(self.ec.element_to_be_clickable((self.by.LINK_TEXT, text))))

    def heading(self) -> str:
        return self.find("h1").text

    def text(self) -> str:
        return self.find("body").text

    def shot(self, name: str) -> Path:
        """A screenshot of the whole page (the window grows to the page's height)."""
        height = self.d.execute_script("return document.documentElement.scrollHeight")
        self.d.set_window_size(1366, max(900, min(int(height) + 140, 4000)))
        path = SHOTS / f"{name}.png"
        self.d.save_screenshot(str(path))
        self.d.set_window_size(1366, 900)
        return path


def scim(root: str, token: str, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{root}/scim/v2{path}", data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/scim+json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    return json.loads(raw) if raw else {}


def test_an_admin_connects_entra_and_sees_what_it_provisioned(served, driver, base_dn):
    root, app = served
    page = Page(driver, root)

    # sign in (the dashboard sends a signed-out visitor to the sign-in page)
    page.open("/admin/users")
    assert page.heading() == "Sign in"
    page.shot("01-sign-in")
    page.type("#username", ADMIN_LOGIN)
    page.type("#password", "not the password")
    page.click("#sign-in")
    assert "Wrong username or password." in page.find("#login-error").text
    page.type("#username", ADMIN_LOGIN)
    page.type("#password", ADMIN_PASSWORD)
    page.click("#sign-in")
    assert page.heading() == "Users"  # back where it was going
    page.link("Connector")
    assert page.heading() == "Connector"
    assert page.find("#endpoint-value").get_attribute("value") == f"{root}/scim/v2"
    assert page.find("#no-tokens")

    # create a token: shown once, with a copy button
    page.type("#token-name", "entra-e2e")
    page.click("#create-token button[type=submit]")
    token = page.find("#token-value").get_attribute("value")
    assert token.startswith("scim_")
    page.press("[data-copy=token-value]")
    page.wait.until(lambda d: "Copied" in page.find("[data-copy=token-value]").text)
    page.shot("02-connector-new-token")
    page.open("/admin/connector")
    assert not page.all("#token-value") and token not in driver.page_source
    assert "entra-e2e" in page.find("#tokens").text

    # Entra provisions a user and a group with that token
    user = scim(root, token, "POST", "/Users", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "grace@example.org", "displayName": "Grace Hopper",
        "name": {"givenName": "Grace", "familyName": "Hopper"},
        "emails": [{"type": "work", "value": "grace@navy.example", "primary": True}]})
    group = scim(root, token, "POST", "/Groups", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Compiler Team", "members": [{"value": user["id"]}]})

    # the readiness check
    page.click("#run-check")
    assert page.find("#checks").text.count("pass") == 2
    page.shot("03-connector-check")

    # Users: search, then the user's page with its DN
    page.link("Users")
    page.type("#q", "hopper")
    page.click("#user-search button[type=submit]")
    table = page.find("#users").text
    assert "grace@example.org" in table and "Compiler Team" in table and "active" in table
    page.shot("04-users")
    page.link("grace@example.org")
    assert page.find("#user-dn").text == f"uid=grace@example.org,ou=People,{base_dn}"
    assert "grace@navy.example" in page.find("#attributes").text
    page.shot("05-user")

    # Groups: the member count, then the group's members
    page.link("Groups")
    row = next(r for r in page.all("#groups tbody tr") if "Compiler Team" in r.text)
    assert row.find_element(page.by.CSS_SELECTOR, "td.num").text == "1"
    page.shot("06-groups")
    page.link("Compiler Team")
    assert page.find("#group-dn").text == f"cn=Compiler Team,ou=Groups,{base_dn}"
    assert "grace@example.org" in page.find("#members").text
    page.shot("07-group")
    assert group["id"] in driver.current_url

    # Activity: Entra's two creates and the dashboard's token, in the table and the chart
    page.link("Activity")
    assert page.heading() == "Activity"
    rows = [r.text for r in page.all("#activity tbody tr")]
    assert len(rows) == 3
    assert "entra-e2e" in rows[0] and "create" in rows[0] and "Group" in rows[0]
    assert "User" in rows[1] and user["id"] in rows[1] and "201" in rows[1]
    assert "Token" in rows[2] and f"admin:{ADMIN_LOGIN}" in rows[2]
    assert page.find("#stat-total").text == "3"
    assert len(page.all("#chart rect[fill='#3e7bfa']")) == 1  # this hour's bar
    page.shot("08-activity")

    # sign out
    page.click("#sign-out")
    assert "You are signed out." in page.find("#login-notice").text
    page.open("/admin/connector")
    assert page.heading() == "Sign in"


def test_an_admin_runs_the_directory_check_and_repairs(served, driver, ldap, base_dn):
    from directory.check import result_dn

    root, _ = served
    people = f"ou=People,{base_dn}"
    group_dn = f"cn=Drifted Team,ou=Groups,{base_dn}"
    with contextlib.suppress(LDAPNoSuchObjectResult):  # no last check of an earlier test
        ldap.delete(result_dn(base_dn, "default"))
    assert ldap.add(f"uid=ada,{people}", ["inetOrgPerson", "scimResource"],
                    {"uid": "ada", "cn": "Ada", "sn": "Lovelace"})
    assert ldap.add(group_dn, ["groupOfNames", "scimResource"], {"cn": "Drifted Team",
                    "member": [f"uid=ada,{people}", f"uid=ghost,{people}"]})
    page = Page(driver, root)
    page.open("/admin/check")
    page.type("#username", ADMIN_LOGIN)
    page.type("#password", ADMIN_PASSWORD)
    page.click("#sign-in")
    assert page.heading() == "Directory check"
    page.click("#run-directory-check")
    assert "drift found" in page.find("#check-verdict").text  # the page reloads until then
    assert "dangling-member" in page.find("#check-findings").text
    page.shot("09-directory-check")
    button = page.find("#run-directory-repair")
    old = driver.find_element(page.by.TAG_NAME, "html")
    button.click()
    driver.switch_to.alert.accept()  # the confirmation
    page.wait.until(page.ec.staleness_of(old))
    assert "removed 1 dangling member value(s)" in page.find("#check-fixes").text
    page.shot("10-directory-check-repaired")
    ldap.search(group_dn, "(objectClass=*)", "BASE", attributes=["member"])
    assert [str(v) for v in ldap.response[0]["attributes"]["member"]] == [f"uid=ada,{people}"]


# --- every page at two widths, the directory down, what an operator acts on --------------

WIDTHS = (1280, 390)  # a laptop and a phone
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def _sized_shot(page: Page, name: str, width: int) -> Path:
    """A screenshot of the whole page at ``width`` CSS pixels."""
    page.d.set_window_size(width, 900)
    height = page.d.execute_script("return document.documentElement.scrollHeight")
    page.d.set_window_size(width, max(900, min(int(height) + 140, 6000)))
    path = SHOTS / f"{name}-{width}.png"
    page.d.save_screenshot(str(path))
    page.d.set_window_size(width, 900)
    return path


def _inner_width(page: Page) -> int:
    return int(page.d.execute_script("return document.documentElement.clientWidth"))


def _overflows(page: Page) -> bool:
    """Whether the page scrolls sideways (something wider than the window)."""
    return bool(page.d.execute_script(
        "return document.documentElement.scrollWidth > document.documentElement.clientWidth"))


def _too_wide(page: Page) -> list[str]:
    """The outermost elements that stick out of the window (for the failure message)."""
    return page.d.execute_script("""
        const width = document.documentElement.clientWidth, out = [];
        for (const el of document.body.querySelectorAll('*')) {
          if (el.getBoundingClientRect().right > width + 1 &&
              !(el.parentElement && el.parentElement.getBoundingClientRect().right > width + 1))
            out.push(el.tagName + '.' + el.className + '#' + el.id);
        }
        return out.slice(0, 5);""")


def _buttons_visible(page: Page, css: str) -> list[dict[str, float]]:
    """Each matching button's box, and whether it lies inside the window and inside
    every scrolling container (not behind a horizontal scroll)."""
    return page.d.execute_script("""
        const out = [];
        for (const el of document.querySelectorAll(arguments[0])) {
          const r = el.getBoundingClientRect();
          let inside = r.left >= 0 && r.right <= document.documentElement.clientWidth;
          for (let p = el.parentElement; p; p = p.parentElement) {
            const box = p.getBoundingClientRect();
            if (p.scrollWidth > p.clientWidth + 1 && getComputedStyle(p).overflowX !== 'visible'
                && (r.right > box.right + 1 || r.left < box.left - 1)) inside = false;
          }
          out.push({right: r.right, inside: inside});
        }
        return out;""", css)


def _scim_failing(root: str, token: str, path: str, body: dict) -> dict:
    try:
        scim(root, token, "POST", path, body)
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())
    raise AssertionError("the request was expected to fail")


def test_every_page_at_two_widths_with_failures_and_the_directory_down(served, driver, slapd):
    root, app = served
    page = Page(driver, root)
    page.open("/admin/login")
    page.type("#username", ADMIN_LOGIN)
    page.type("#password", ADMIN_PASSWORD)
    page.click("#sign-in")
    page.open("/admin/connector")
    for name in ("entra-production-connector", "entra-staging"):
        page.type("#token-name", name)
        page.click("#create-token button[type=submit]")
    token = page.find("#token-value").get_attribute("value")
    old_id = page.find("#tokens tbody tr td.mono").text  # the first listed token
    page.open("/admin/connector")
    rotate = next(b for b in page.all("#tokens form.inline") if old_id in
                  b.get_attribute("action") and "rotate" in b.get_attribute("action"))
    rotate.find_element(page.by.CSS_SELECTOR, "button").click()
    page.d.switch_to.alert.accept()
    page.wait.until(lambda d: page.all("#token-value"))

    boss = scim(root, token, "POST", "/Users", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "userName": "ada.lovelace@example.org", "displayName": "Ada Lovelace",
        "title": "Chief Analyst", ENTERPRISE: {"department": "Analytical Engines"}})
    worker = scim(root, token, "POST", "/Users", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "userName": "charles.babbage@example.org", "displayName": "Charles Babbage",
        "title": "Engineer", "emails": [{"type": "work", "value": "cb@example.org",
                                         "primary": True}],
        ENTERPRISE: {"department": "Difference Engines", "employeeNumber": "1791",
                     "manager": {"value": boss["id"]}}})
    group = scim(root, token, "POST", "/Groups", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Engine Builders", "members": [{"value": worker["id"]}]})
    duplicate = _scim_failing(root, token, "/Users", {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "ada.lovelace@example.org"})
    assert duplicate["scimType"] == "uniqueness"
    scim(root, token, "PATCH", f"/Users/{worker['id']}", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}]})
    try:
        scim(root, "wrong-token", "GET", "/Users")
    except urllib.error.HTTPError as exc:
        assert exc.code == 401

    pages = {
        "connector": "/admin/connector",
        "users": "/admin/users",
        "user": f"/admin/users/{worker['id']}?tenant=default",
        "groups": "/admin/groups",
        "group": f"/admin/groups/{group['id']}?tenant=default",
        "activity": "/admin/activity",
        "activity-failures": "/admin/activity?result=failure",
    }
    for width in (*WIDTHS, 1920):
        page.d.set_window_size(width, 900)
        for name, path in pages.items():
            if width == 1920 and name != "connector":
                continue
            page.open(path)
            page.find("h1")
            assert not _overflows(page), f"{name} scrolls sideways at {width} px: " \
                f"{_too_wide(page)}"
            _sized_shot(page, f"10-{name}", width)
        if width == 390:
            continue
        page.open("/admin/connector")
        boxes = _buttons_visible(page, "#tokens button")
        assert boxes and all(b["inside"] for b in boxes), (width, boxes)
        labels = [b.text for b in page.all("#tokens button")]
        # the rotated token offers no Rotate; its replacement and the other token do
        assert labels.count("Rotate") == 2 and labels.count("Revoke") == 3

    # what an operator acts on: the failed create, by name, with scimType and detail
    page.d.set_window_size(1280, 900)
    page.open("/admin/activity?result=failure")
    row = next(r for r in page.all("#activity tbody tr") if "uniqueness" in r.text)
    assert "ada.lovelace@example.org" in row.text and "409" in row.text
    assert duplicate["detail"] in row.text
    contacts = page.find("#contacts").text
    assert "entra-staging" in contacts
    assert "127.0.0.1" in page.find("#last-auth-failure").text
    # the user page: labels, manager link, what the MDM reads, its history
    page.open(f"/admin/users/{worker['id']}?tenant=default")
    assert "Department" in page.find("#attributes").text
    assert "2.0." not in page.text()
    assert "Ada Lovelace" in page.find("#user-manager").text
    assert "pwdAccountLockedTime" in page.find("#user-lock").text
    assert "entra-staging" in page.find("#user-disabled").text
    assert len(page.all("#user-history tbody tr")) == 2
    page.link("Ada Lovelace")
    assert "Charles Babbage" in page.find("#reports").text

    # the directory goes away: Activity and the Connector's health still answer
    dead = create_app(load_settings({
        **slapd.env,
        "LDAP_URL": f"ldap://127.0.0.1:{free_port()}", "LDAP_CONNECT_TIMEOUT": "0.3",
        "ADMIN_SECRET_KEY": app.secret_key, "ADMIN_COOKIE_SECURE": "false",
        "AUDIT_LOG": app.extensions["scim_observability"].audit.path,
        "SCIM_PUBLIC_URL": root}))
    port = free_port()
    server = make_server("127.0.0.1", port, dead, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cookie = driver.get_cookie("scim_admin")
        down = Page(driver, f"http://127.0.0.1:{port}")
        down.open("/admin/login")
        driver.add_cookie({"name": "scim_admin", "value": cookie["value"], "path": "/admin"})
        for width in WIDTHS:
            driver.set_window_size(width, 900)
            down.open("/admin/activity?tenant=*")
            assert "does not answer" in down.find("#directory-down").text
            assert "uniqueness" in down.find("#activity").text
            _sized_shot(down, "11-directory-down-activity", width)
            down.open("/admin/connector")
            health = down.find("#health-directory").text
            assert "nothing answered at ldap://127.0.0.1:" in health and "LDAP_URL" in health
            assert "entra-staging" in down.find("#health-contact").text
            _sized_shot(down, "11-directory-down-connector", width)
            down.open("/admin/users")
            assert down.heading() == "Directory unavailable (503)"
            assert "nothing answered at" in down.text()
            _sized_shot(down, "11-directory-down-users", width)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        dead.extensions["scim_bridge"].pool.close()
