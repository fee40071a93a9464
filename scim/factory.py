"""The composition root: ``create_app(settings)`` wires everything together."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from config import Settings, load_settings
from directory import Pool, Tenant, load_mapping, placeholder_for
from scim import (
    admin,
    discovery,  # noqa: F401 - registers the discovery views on the blueprint
    oauth,
    observability,
)
from scim.api import Extension, bp
from scim.auth import Authenticator, make_auth
from scim.cli import COMMANDS
from scim.cli_accounts import COMMANDS as ACCOUNT_COMMANDS
from scim.errors import register_error_handlers
from scim.logs import configure_logging
from scim.service.common import Options
from scim.web import security_headers


def default_tenant(settings: Settings) -> Tenant:
    """The tenant of the static token: the configured base DN."""
    return Tenant("default", settings.LDAP_BASE_DN, placeholder_for(settings.LDAP_BASE_DN))


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app; nothing connects to LDAP until the first request (after fork)."""
    settings = settings or load_settings()
    configure_logging(settings.LOG_LEVEL)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.SCIM_MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    options = Options(
        password_scheme=settings.LDAP_PASSWORD_SCHEME,
        ppolicy_lock=settings.LDAP_PPOLICY_LOCK,
        retry_after=settings.SCIM_RETRY_AFTER,
        max_members_per_patch=settings.SCIM_MAX_MEMBERS_PER_PATCH,
        max_operations=settings.SCIM_MAX_OPERATIONS,
        max_page_size=settings.SCIM_MAX_PAGE_SIZE,
        max_filter_length=settings.SCIM_MAX_FILTER_LENGTH,
        max_filter_depth=settings.SCIM_MAX_FILTER_DEPTH,
        max_filter_clauses=settings.SCIM_MAX_FILTER_CLAUSES,
    )
    pool = Pool(settings)
    authenticator = Authenticator(
        settings.SCIM_BEARER_TOKEN, default_tenant(settings), pool,
        settings.SCIM_TOKEN_CACHE_SECONDS, settings.SCIM_AUTH_FAILURES_PER_MINUTE)
    app.extensions["scim_bridge"] = Extension(
        pool=pool,
        mapping=load_mapping(settings.SCIM_MAPPING_FILE or None),
        options=options,
        auth=make_auth(authenticator),
        settings=settings,
        authenticator=authenticator,
    )
    if settings.SCIM_TRUSTED_PROXIES:
        # The one place forwarded headers are believed (deploy/gunicorn.conf.py makes
        # gunicorn ignore them): the client address for the limiter and the logs, and
        # scheme, host and port for request.url_root, hence Location and meta.location.
        hops = settings.SCIM_TRUSTED_PROXIES
        proxied = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
        app.wsgi_app = proxied  # type: ignore[method-assign]
    obs = observability.init_app(app, settings, pool, default_tenant(settings))
    app.register_blueprint(bp)
    app.register_blueprint(oauth.bp)
    admin.init_app(app, settings, obs.audit.reader(), obs.audit.record)
    for command in (*COMMANDS, *ACCOUNT_COMMANDS):
        app.cli.add_command(command)
    register_error_handlers(app, settings.SCIM_RETRY_AFTER)
    app.after_request(security_headers)
    return app
