"""The Activity page's data: audit records made uniform, filtered, and charted per hour.

An audit reader is ``reader(limit, result)`` returning the newest ``limit`` records,
newest first, each a dict with ``time`` (RFC 3339 text or epoch seconds), ``token``,
``tenant``, ``operation``, ``resource``, ``resource_id``, ``status`` (HTTP status) and
``duration_ms``. A record is a failure when its status is 400 or more. The chart is
plain SVG built here and drawn by the template: no script, no external resource.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from scim.audit import Reader

#: Records read for the chart (those of the last 24 hours among them are counted).
READ_LIMIT = 20_000
#: Rows shown in the table.
SHOWN = 200
HOURS = 24


@dataclass(frozen=True)
class Record:
    """One SCIM operation as the page shows it."""

    time: datetime | None
    token: str
    tenant: str
    operation: str
    resource: str
    resource_id: str
    status: int | None
    duration_ms: float | None

    @property
    def failed(self) -> bool:
        return self.status is not None and self.status >= 400


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def normalise(raw: dict[str, Any]) -> Record:
    status = _number(raw.get("status"))
    return Record(
        time=_time(raw.get("time")),
        token=str(raw.get("token") or ""),
        tenant=str(raw.get("tenant") or ""),
        operation=str(raw.get("operation") or ""),
        resource=str(raw.get("resource") or ""),
        resource_id=str(raw.get("resource_id") or ""),
        status=None if status is None else int(status),
        duration_ms=_number(raw.get("duration_ms")),
    )


def table(reader: Reader, result: str, order: str) -> list[Record]:
    """The table's rows: ``result`` all, failure or success; ``order`` newest, or
    failures first (the newest failures, then the newest of the rest)."""
    wanted = None if result == "all" else result
    rows = [normalise(r) for r in reader(SHOWN, wanted)]
    if wanted is not None:  # whatever the reader did with ``result``
        rows = [r for r in rows if r.failed == (wanted == "failure")]
    if order == "failures" and wanted is None:
        failures = [normalise(r) for r in reader(SHOWN, "failure")]
        rows = [r for r in failures if r.failed] + [r for r in rows if not r.failed]
    return rows[:SHOWN]


@dataclass(frozen=True)
class Summary:
    total: int
    failures: int
    slowest_ms: float | None


def summary(records: Iterable[Record], now: datetime) -> Summary:
    """Operations, failures and the slowest one in the last 24 hours."""
    since = now - timedelta(hours=HOURS)
    recent = [r for r in records if r.time is not None and r.time > since]
    durations = [r.duration_ms for r in recent if r.duration_ms is not None]
    return Summary(len(recent), sum(r.failed for r in recent),
                   max(durations) if durations else None)


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    ok_y: float
    ok_height: float
    fail_y: float
    fail_height: float
    title: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    top: int
    bottom: int
    left: int
    bars: list[Bar]
    labels: list[tuple[float, str]]  # (x, text) under the axis
    peak: int


def hourly_chart(records: Iterable[Record], now: datetime, width: int = 960,
                 height: int = 200) -> Chart:
    """Operations per hour over the last 24 hours, successes and failures stacked."""
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=HOURS)
    ok = [0] * HOURS
    bad = [0] * HOURS
    for r in records:
        if r.time is None or not start <= r.time < end:
            continue
        slot = int((r.time - start).total_seconds() // 3600)
        (bad if r.failed else ok)[slot] += 1
    left, top, bottom = 40, 10, 24
    plot_h = height - top - bottom
    slot_w = (width - left) / HOURS
    peak = max((a + b for a, b in zip(ok, bad, strict=True)), default=0)
    scale = plot_h / peak if peak else 0.0
    bars, labels = [], []
    for i in range(HOURS):
        hour = start + timedelta(hours=i)
        x = left + i * slot_w + 2
        fail_h = bad[i] * scale
        ok_h = ok[i] * scale
        base = top + plot_h
        bars.append(Bar(round(x, 1), round(slot_w - 4, 1),
                        round(base - fail_h - ok_h, 1), round(ok_h, 1),
                        round(base - fail_h, 1), round(fail_h, 1),
                        f"{hour:%H}:00–{hour:%H}:59 UTC: {ok[i] + bad[i]} operations, "
                        f"{bad[i]} failed"))
        if i % 3 == 0:
            labels.append((round(x + (slot_w - 4) / 2, 1), f"{hour:%H}:00"))
    return Chart(width, height, top, bottom, left, bars, labels, peak)
