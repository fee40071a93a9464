"""The dashboard's *Directory check* page: the last check of a tenant, and a button to run
one (dry run, or with repair).

A check of a large tenant takes longer than a request may (gunicorn's and nginx's 30 s),
so the button starts it in a thread of the worker that took the POST, on a pooled
connection of its own, and the page shows it as running until it ends. What the page
shows comes from the directory (``cn=<tenant>,ou=Checks,ou=Service,<root base>``, written
by the CLI and by the dashboard alike), so every worker and every instance shows the same
last check and the same run in progress. Repairs are audited as ``admin:<login>``.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, current_app, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from directory import Repository, Tenant
from directory import check as dc
from scim.admin import bp, state
from scim.admin.session import connection
from scim.admin.views import _store, _tenant
from scim.service import check

log = logging.getLogger("scim.admin")
#: A run marked as running for longer than this is taken as interrupted (its worker
#: died or restarted) and another may start.
STALE = timedelta(hours=2)
#: Runs of this worker process, by tenant name.
_RUNS: dict[str, threading.Thread] = {}
_RUNS_LOCK = threading.Lock()


def _root() -> str:
    return str(state().settings.LDAP_BASE_DN)


def _running(record: dict[str, Any]) -> dict[str, Any] | None:
    running = record.get("running")
    if not running:
        return None
    try:
        started = datetime.fromisoformat(str(running["started"]))
    except (KeyError, ValueError):
        return None
    return running if datetime.now(UTC) - started < STALE else None


@bp.get("/check")
def check_page() -> ResponseReturnValue:
    tenant = _tenant()
    record = check.stored(Repository(connection(), tenant), _root(), tenant.name)
    running = _running(record)
    return render_template("admin/check.html", active="check", tenant=tenant,
                           tenants=_store().tenants(), last=record["last"], running=running,
                           failed=record["failed"], kinds=dc.KINDS,
                           repairable=dc.REPAIRABLE)


@bp.post("/check")
def check_run() -> ResponseReturnValue:
    tenant = _tenant()
    repair = request.form.get("repair") == "1"
    actor = f"admin:{g.admin_user['login']}"
    repo = Repository(connection(), tenant)
    with _RUNS_LOCK:
        mine = _RUNS.get(tenant.name)
        if (mine is not None and mine.is_alive()) or \
                _running(check.stored(repo, _root(), tenant.name)):
            flash("A check of this tenant is already running; its result appears here "
                  "when it ends.", "error")
            return redirect(url_for("admin.check_page", tenant=tenant.name))
        check.mark_running(repo, _root(), tenant.name, actor, repair)
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        thread = threading.Thread(target=_run, args=(app, tenant, repair, actor),
                                  name=f"directory-check-{tenant.name}", daemon=True)
        _RUNS[tenant.name] = thread
        thread.start()
    log.info("%s started a directory check of tenant %s (repair: %s)", actor, tenant.name,
             repair)
    flash("Check started" + (" with repair" if repair else " (dry run)") + ".", "ok")
    return redirect(url_for("admin.check_page", tenant=tenant.name))


def _run(app: Flask, tenant: Tenant, repair: bool, actor: str) -> None:
    """The run itself, outside any request: its own app context and connection."""
    with app.app_context():
        ext = app.extensions["scim_bridge"]
        root = ext.settings.LDAP_BASE_DN
        try:
            with ext.pool.connection() as conn:
                repo = Repository(conn, tenant)
                try:
                    report = check.run(repo, ext.mapping, repair=repair, by=actor,
                                       ppolicy_lock=ext.options.ppolicy_lock,
                                       audit=app.extensions["scim_admin"].audit_write)
                except Exception as exc:
                    check.keep_failure(repo, root, tenant.name, actor,
                                       str(exc) or type(exc).__name__)
                    raise
                check.keep(repo, root, report)
        except Exception:  # noqa: BLE001 - a thread has nobody to raise to
            log.exception("directory check of tenant %s failed", tenant.name)
