"""gunicorn settings, read from the environment (Procfile: -c deploy/gunicorn.conf.py).

The LDAP pool is created lazily in each worker after fork (see directory/connection.py),
so nothing here needs a post_fork hook for it.
"""

import multiprocessing
import os

bind = os.environ.get("BIND") or f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Reads scale with processes (ldap3 is pure Python); threads overlap LDAP waits.
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count(), 8)))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Below Entra's (undocumented) request timeout; LDAP_TIMEOUT is far below this.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "20"))
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
