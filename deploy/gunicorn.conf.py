"""gunicorn settings for production, read from the environment.

    gunicorn -c deploy/gunicorn.conf.py app:app        (Procfile, systemd unit, Dockerfile)

Environment (all optional):

- ``BIND``: address to listen on (default ``127.0.0.1:8000``: nginx on the same host is
  the only client). ``PORT`` alone means ``0.0.0.0:$PORT`` (platform convention).
- ``WEB_CONCURRENCY``: worker processes (default 2 × usable CPUs, at most 8). ldap3 is
  pure Python, so throughput grows with processes.
- ``GUNICORN_THREADS``: threads per worker (default 4), which overlap LDAP round trips;
  keep ``LDAP_POOL_SIZE`` (connections per worker) at least this.
- ``GUNICORN_TIMEOUT`` (30 s), ``GUNICORN_GRACEFUL_TIMEOUT`` (20 s),
  ``GUNICORN_KEEPALIVE`` (75 s), ``LOG_LEVEL`` (info).
- ``PROMETHEUS_MULTIPROC_DIR``: where workers keep their metric values (wiped at start);
  default a private temporary folder, removed at exit.
- ``FORWARDED_ALLOW_IPS``: gunicorn's own trust of ``X-Forwarded-Proto`` (default none:
  the app's ``SCIM_TRUSTED_PROXIES`` is the one switch for forwarded headers).

The app is loaded once in the master (``preload_app``): a bad setting stops start-up
with one line instead of workers failing in a loop. The LDAP pool is created lazily in
each worker after fork (directory/connection.py checks the pid), so no socket is shared.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _bind() -> str:
    if os.environ.get("BIND"):
        return os.environ["BIND"]
    if os.environ.get("PORT"):
        return f"0.0.0.0:{os.environ['PORT']}"
    return "127.0.0.1:8000"


bind = _bind()
workers = int(os.environ.get("WEB_CONCURRENCY") or min(2 * _cpus(), 8))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS") or 4)
# Entra gives up on a request after about 30 s; LDAP_TIMEOUT (5 s per operation) and
# nginx's proxy_read_timeout (30 s) bound a request long before this heartbeat timeout.
timeout = int(os.environ.get("GUNICORN_TIMEOUT") or 30)
# SIGTERM: stop accepting, finish requests in flight for up to this long, then exit.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT") or 20)
# Longer than nginx's upstream keepalive_timeout (60 s), so nginx never reuses a
# connection gunicorn has just closed (that would be a 502).
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE") or 75)
preload_app = True
# gunicorn's largest request line (default 4094): a GET whose filter is as long as
# SCIM_MAX_FILTER_LENGTH (4096 plain characters) fits once percent-encoded. Longer or
# non-ASCII filters: POST …/.search, which carries any filter the limits allow.
limit_request_line = 8190
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "")
# gunicorn ≥ 25.1 would open a control socket in $XDG_RUNTIME_DIR or ~/.gunicorn, one
# path shared by every instance of a user; nothing here uses gunicornc.
control_socket_disable = True
if Path("/dev/shm").is_dir():
    worker_tmp_dir = "/dev/shm"  # heartbeat files off a possibly slow or read-only disk

loglevel = os.environ.get("LOG_LEVEL", "info").lower()
accesslog = "-"
errorlog = "-"
# JSON lines: access log on stdout, gunicorn's and the app's messages on stderr.
logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "scim.logs.JsonFormatter"}},
    "handlers": {
        "stderr": {"class": "scim.logs.StderrHandler", "formatter": "json"},
        "stdout": {"class": "logging.StreamHandler", "formatter": "json",
                   "stream": "ext://sys.stdout"},
    },
    "root": {"level": loglevel.upper(), "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": loglevel.upper(), "handlers": ["stderr"],
                           "propagate": False, "qualname": "gunicorn.error"},
        "gunicorn.access": {"level": "INFO", "handlers": ["stdout"],
                            "propagate": False, "qualname": "gunicorn.access"},
    },
}

_METRICS_READY = "SCIM_BRIDGE_METRICS_PREPARED_BY"


def _prepare_metrics_dir() -> None:
    """Choose and empty the metrics folder once per master, before the app (and so
    prometheus_client, which reads the variable on import) is loaded. A reload (HUP)
    runs this file again and must not wipe the values of running workers."""
    if os.environ.get(_METRICS_READY) == str(os.getpid()):
        return
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own = tempfile.mkdtemp(prefix="scim-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own
        atexit.register(_remove_own, own, os.getpid())
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ[_METRICS_READY] = str(os.getpid())


def _remove_own(folder: str, master: int) -> None:
    """At the master's exit, however it ends (workers inherit the hook: not theirs)."""
    if os.getpid() == master:
        shutil.rmtree(folder, ignore_errors=True)


_prepare_metrics_dir()


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: its live gauges go (its counters stay in the totals)."""
    from scim.metrics import mark_process_dead

    mark_process_dead(worker.pid)


def _exit_now(*_: Any) -> None:
    os._exit(0)


def post_worker_init(worker: Any) -> None:
    """Ctrl-C (SIGINT) or SIGQUIT: gunicorn's *quick* shutdown. The worker exits at once.

    gunicorn's own handler is not used for these: the gthread worker's ``handle_quit``
    shuts its thread pool down under a lock that a second signal arriving meanwhile (the
    SIGINT of Ctrl-C to the whole process group, then the master's SIGQUIT) waits for
    forever, so the worker hung until the master's ``graceful_timeout`` and a SIGKILL
    ("Perhaps out of memory?"; seen in 1 Ctrl-C of 3 right after a request, py-spy
    showed ``handle_quit`` inside ``handle_quit``). Nothing is flushed first, for the same
    reason: every log line is written whole as it is made. SIGTERM (systemd, Docker)
    stays gunicorn's graceful stop: requests in flight are finished.
    """
    import signal

    for sig in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, _exit_now)


def post_fork(server: Any, worker: Any) -> None:
    """Until the worker installs its own handlers (while it loads), it still has the
    master's, which only queue a signal: a Ctrl-C then would leave it running until the
    master's ``graceful_timeout`` and a SIGKILL. Exit on SIGINT/SIGQUIT from the start."""
    import signal

    for sig in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, _exit_now)
