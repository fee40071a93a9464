"""The Connector page beyond tokens: OAuth clients listed per tenant, and the tenant
kept when moving between pages (Activity included)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from tests.admin_support import make_admins, wipe_tokens
from tests.contract.connector_support import wipe_registry
from tests.contract.test_admin import build, sign_in, text


@pytest.fixture
def app(slapd: Any, ldap: Any, base_dn: str) -> Iterator[Flask]:
    wipe_registry(ldap, base_dn)
    wipe_tokens(ldap, base_dn)
    make_admins(ldap, base_dn)
    application = build(slapd)
    yield application
    application.extensions["scim_bridge"].pool.close()
    wipe_registry(ldap, base_dn)


def test_oauth_clients_are_listed_with_their_tenant_never_their_secret(app):
    with app.app_context():
        with app.extensions["scim_bridge"].pool.connection() as conn:
            store = app.extensions["scim_bridge"].authenticator.store(conn)
            tenant = store.create_tenant("oauthco")
            client_id, secret = store.create_client(tenant, "entra-oauth")
            other_id, _ = store.create_client(store.tenant("default"), "default-client")
    admin = app.test_client()
    assert sign_in(admin).status_code == 302
    page = text(admin.get("/admin/connector?tenant=oauthco"))
    clients = page[page.index('id="clients"'):]
    assert "entra-oauth" in clients and client_id in clients
    assert other_id not in clients and secret not in page
    default = text(admin.get("/admin/connector?tenant=default"))
    assert other_id in default and client_id not in default


def test_the_selected_tenant_is_kept_across_pages(app):
    with app.app_context():
        with app.extensions["scim_bridge"].pool.connection() as conn:
            app.extensions["scim_bridge"].authenticator.store(conn).create_tenant("keptco")
    admin = app.test_client()
    assert sign_in(admin).status_code == 302
    for path in ("/admin/connector?tenant=keptco", "/admin/users?tenant=keptco",
                 "/admin/groups?tenant=keptco", "/admin/activity?tenant=keptco"):
        page = text(admin.get(path))
        nav = page[page.index('class="nav"'):page.index("</nav>")]
        links = re.findall(r'href="([^"]+)"', nav)
        assert len(links) == 5 and all(link.endswith("tenant=keptco") for link in links), \
            (path, links)
