"""Prometheus metrics (prometheus_client), per app, summed over gunicorn workers.

Under gunicorn every worker is a process of its own. With ``PROMETHEUS_MULTIPROC_DIR``
set before prometheus_client is first imported (``deploy/gunicorn.conf.py`` does it),
each worker writes its values to files there and a scrape of any worker adds them all
up (prometheus_client's multiprocess mode); the master calls :func:`mark_process_dead`
when a worker exits. Without that variable (tests, ``flask run``) values live in this
process's own registry.

Labels stay few and bounded: the Flask URL rule (``/scim/v2/Users/<scim_id>``, never the
raw path), the method from a fixed set, the status code, the LDAP operation name and the
directory error class.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LDAP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The service's metrics; one instance per app (``app.extensions["scim_metrics"]``)."""

    def __init__(self) -> None:
        self.multiproc_dir = os.environ.get(MULTIPROC_ENV, "")
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "scim_http_requests", "HTTP requests answered, by URL rule, method and status.",
            ["endpoint", "method", "status"], registry=self.registry)
        self.latency = Histogram(
            "scim_http_request_duration_seconds",
            "Time to answer an HTTP request, by URL rule and method.",
            ["endpoint", "method"], buckets=HTTP_BUCKETS, registry=self.registry)
        self.auth_failures = Counter(
            "scim_auth_failures", "Requests answered 401 (missing, unknown, revoked or "
            "expired credentials), by URL rule.", ["endpoint"], registry=self.registry)
        self.ldap_operations = Counter(
            "scim_ldap_operations", "LDAP operations, by operation and result (`success` "
            "or the directory error, e.g. NoSuchEntry, DirectoryUnavailable).",
            ["operation", "result"], registry=self.registry)
        self.ldap_latency = Histogram(
            "scim_ldap_operation_duration_seconds", "Time of one LDAP operation.",
            ["operation"], buckets=LDAP_BUCKETS, registry=self.registry)
        self.audit_failures = Counter(
            "scim_audit_write_failures", "Audit records that could not be written.",
            registry=self.registry)

        self.ldap_failovers = Counter(
            "scim_ldap_failovers", "Times a worker moved to another LDAP_URL because the "
            "provider it wrote to stopped answering.", registry=self.registry)
        self.ldap_provider = Gauge(
            "scim_ldap_provider", "1-based position in LDAP_URL of the provider each worker "
            "writes to (set by /readyz).", registry=self.registry,
            multiprocess_mode="liveall")
        self.ldap_replication_lag = Gauge(
            "scim_ldap_replication_lag_seconds", "How far the provider the bridge writes to "
            "is behind the newest change another provider holds (contextCSN times, sampled "
            "by /readyz; absent when unknown).", registry=self.registry,
            multiprocess_mode="livemax")

    def provider(self, position: int, lag_seconds: float | None) -> None:
        self.ldap_provider.set(position)
        if lag_seconds is not None:
            self.ldap_replication_lag.set(lag_seconds)

    def request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "other"
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint, method).observe(seconds)
        if status == 401:
            self.auth_failures.labels(endpoint).inc()

    def ldap(self, operation: str, seconds: float, result: str) -> None:
        """Observer of ``directory.Repository``: one call per LDAP operation."""
        self.ldap_operations.labels(operation, result).inc()
        self.ldap_latency.labels(operation).observe(seconds)

    def exposition(self) -> bytes:
        """The text format (version 0.0.4) of every worker's values, or this process's."""
        if not self.multiproc_dir:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
            registry, path=self.multiproc_dir)
        return generate_latest(registry)


def mark_process_dead(pid: int) -> None:
    """gunicorn ``child_exit``: drop the live-gauge files of a worker that exited."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
