"""The directory check use case: scan a tenant for drift, repair what is safe, audit each
repair, and keep the outcome where every worker and instance sees it.

The scanning and the LDAP writes are in :mod:`directory.check`; this module decides what
a run is (dry run or repair), what each repair's audit record says, and what is kept of
a run (``cn=<tenant>,ou=Checks,ou=Service,<root base>``, see :func:`directory.check.
save_result`): counts per kind, the first :data:`KEPT` findings and repairs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from directory import check as dc
from directory.mapping import Mapping
from directory.repository import Repository

#: Findings and repairs kept in the stored record (the counts stay exact).
KEPT = 200
#: The audit record's ``token`` of a run from the command line.
CLI_ACTOR = "cli:directory-check"

AuditWrite = Callable[..., Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Report:
    """One run over one tenant."""

    tenant: str
    base_dn: str
    started: str
    repair: bool
    by: str
    scan: dc.Scan = field(default_factory=dc.Scan)
    fixes: list[dc.Fix] = field(default_factory=list)
    finished: str = ""
    seconds: float = 0.0
    ignored: list[str] = field(default_factory=list)

    @property
    def drift(self) -> bool:
        """Whether the scan found drift (before any repair)."""
        return bool(self.scan.counts)

    @property
    def repairable(self) -> int:
        return sum(n for k, n in self.scan.counts.items() if k in dc.REPAIRABLE)

    def as_dict(self, limit: int | None = None) -> dict[str, Any]:
        findings = self.scan.findings if limit is None else self.scan.findings[:limit]
        fixes = self.fixes if limit is None else self.fixes[:limit]
        outcomes: dict[str, int] = {}
        for fix in self.fixes:
            outcomes[fix.outcome] = outcomes.get(fix.outcome, 0) + 1
        return {
            "tenant": self.tenant, "base_dn": self.base_dn, "started": self.started,
            "finished": self.finished, "seconds": round(self.seconds, 3),
            "repair": self.repair, "by": self.by, "drift": self.drift,
            "ignored": self.ignored,
            "scanned": {"users": self.scan.users, "groups": self.scan.groups,
                        "member_values": self.scan.member_values,
                        "other_entries": self.scan.others},
            "counts": dict(sorted(self.scan.counts.items())),
            "findings": [f.as_dict() for f in findings],
            "findings_left_out": len(self.scan.findings) - len(findings) + self.scan.truncated,
            "repairs": outcomes,
            "fixes": [f.as_dict() for f in fixes],
        }


def run(repo: Repository, mapping: Mapping, *, repair: bool, by: str = CLI_ACTOR,
        ppolicy_lock: bool = True, audit: AuditWrite | None = None,
        ignore: frozenset[str] = frozenset()) -> Report:
    """Check ``repo``'s tenant; with ``repair``, fix what is safe, one audited write each.

    ``ignore``: kinds left out of the report (neither reported nor repaired)."""
    tenant = repo.tenant
    report = Report(tenant.name, tenant.base_dn, _now(), repair, by, ignored=sorted(ignore))
    started = time.perf_counter()
    checker = dc.Checker(repo, mapping, ppolicy_lock)
    report.scan = checker.scan()
    if ignore:
        report.scan.findings = [f for f in report.scan.findings if f.kind not in ignore]
        report.scan.counts = {k: n for k, n in report.scan.counts.items() if k not in ignore}
    if repair:
        def done(fix: dc.Fix) -> None:
            if audit is not None and fix.outcome != "skipped":  # skipped: nothing written
                _audit(audit, by, tenant.name, fix)

        report.fixes = checker.repair(report.scan.findings, done)
    report.seconds = time.perf_counter() - started
    report.finished = _now()
    return report


def _audit(write: AuditWrite, by: str, tenant: str, fix: dc.Fix) -> None:
    """One record per repair write, in the shape of the SCIM records (scim/audit.py)."""
    status = 200 if fix.outcome == "fixed" else 500
    resource = "Group" if fix.kind in (dc.DANGLING_MEMBER, dc.PLACEHOLDER_BESIDE_MEMBERS,
                                       dc.EMPTY_GROUP) else "User"
    write(token=by, tenant=tenant, operation="repair", method="CHECK", resource=resource,
          resource_id=fix.dn, drift=fix.kind, outcome=fix.outcome, detail=fix.detail,
          attributes=fix.attributes, status=status)


# -- the stored record: the last run, and a run in progress ------------------------------


def stored(repo: Repository, root_base: str, tenant: str) -> dict[str, Any]:
    """``{"last": <report dict>, "running": {"started", "by", "repair"}, "failed": {"at",
    "by", "error"}}``, each None when absent."""
    record = dc.load_result(repo, root_base, tenant) or {}
    return {k: record.get(k) for k in ("last", "running", "failed")}


def mark_running(repo: Repository, root_base: str, tenant: str, by: str,
                 repair: bool) -> None:
    record = stored(repo, root_base, tenant)
    record["running"] = {"started": _now(), "by": by, "repair": repair}
    dc.save_result(repo, root_base, tenant, record)


def keep(repo: Repository, root_base: str, report: Report) -> None:
    """Store ``report`` as the tenant's last run (and end the run in progress)."""
    dc.save_result(repo, root_base, report.tenant,
                   {"last": report.as_dict(KEPT), "running": None})


def keep_failure(repo: Repository, root_base: str, tenant: str, by: str,
                 error: str) -> None:
    """End the run in progress with the error that stopped it (the last run stays)."""
    record = stored(repo, root_base, tenant)
    record["running"] = None
    record["failed"] = {"at": _now(), "by": by, "error": error}
    dc.save_result(repo, root_base, tenant, record)
