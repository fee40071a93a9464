"""The Activity page's data: audit records made uniform, filtered, paged, grouped into
Entra's provisioning cycles, and charted.

An audit reader is ``reader(limit, result, since=None, *, until=None, where=None,
offset=0)`` returning the newest matching records first (``scim.audit.read_audit`` bound
to the trail's path). Only the file is read, never the directory, so the page works while
the directory is down. A record is a failure when its status is 400 or more. Charts are
plain SVG built here and drawn by the template: no script, no external resource.

Entra provisions in *cycles* (an initial one, then one about every 40 minutes): a burst of
requests from one token. Records of one token less than ``CYCLE_GAP`` apart belong to one
cycle; a cycle whose last request is under ``IN_PROGRESS`` old looks in progress.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from scim.audit import Reader

#: Records read for the charts, cycles and summary.
READ_LIMIT = 20_000
#: Rows per page of the table.
PAGE_SIZE = 100
#: Rows of a CSV export at most.
EXPORT_LIMIT = 100_000
HOURS = 24
CYCLE_GAP = timedelta(minutes=10)
IN_PROGRESS = timedelta(minutes=5)
#: Cycles shown (newest first) and charted.
CYCLES_SHOWN = 12
#: Operations of the SCIM API (the rest: dashboard and CLI actions, authentication).
SCIM_OPERATIONS = ("create", "replace", "update", "delete")
KINDS = ("created", "updated", "disabled", "deleted", "failed")
KIND_COLOURS = {"created": "#3e7bfa", "updated": "#7c5cff", "disabled": "#f0a202",
                "deleted": "#616e7c", "failed": "#d64545"}
RANGES = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
          "30d": timedelta(days=30), "all": None}
OUTCOMES = ("all", "failure", "success")
RESOURCES = ("User", "Group", "Token", "Client", "Tenant")
OPERATIONS = ("create", "replace", "update", "delete", "authenticate", "rotate", "revoke",
              "contact")
MAX_TEXT = 200
ENTERPRISE_PREFIX = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:"
#: Columns of the CSV export (never a value other than the resource's name).
CSV_COLUMNS = ("time", "tenant", "token", "token_id", "client", "operation", "change",
               "method", "resource", "resource_id", "name", "attributes", "status",
               "result", "scim_type", "detail", "reason", "duration_ms", "request_id")


@dataclass(frozen=True)
class Record:
    """One audit record as the page shows it."""

    time: datetime | None
    token: str
    tenant: str
    operation: str
    resource: str
    resource_id: str
    status: int | None
    duration_ms: float | None
    token_id: str = ""
    client: str = ""
    method: str = ""
    name: str = ""
    attributes: tuple[str, ...] = ()
    scim_type: str = ""
    detail: str = ""
    change: str = ""
    reason: str = ""
    request_id: str = ""

    @property
    def failed(self) -> bool:
        return self.status is not None and self.status >= 400

    @property
    def attribute_names(self) -> list[str]:
        """``attributes`` with an extension's URN shortened (``enterprise:department``)."""
        return [a.replace(ENTERPRISE_PREFIX, "enterprise:") for a in self.attributes]

    @property
    def is_auth(self) -> bool:
        return self.operation == "authenticate"

    @property
    def is_contact(self) -> bool:
        return self.operation == "contact"

    @property
    def is_scim_change(self) -> bool:
        return self.operation in SCIM_OPERATIONS and self.resource in ("User", "Group")

    @property
    def kind(self) -> str | None:
        """What a SCIM change did, as counted per cycle (None for anything else)."""
        if not self.is_scim_change:
            return None
        if self.failed:
            return "failed"
        if self.operation == "create":
            return "created"
        if self.operation == "delete":
            return "deleted"
        return "disabled" if self.change == "disable" else "updated"

    @property
    def reason_label(self) -> str:
        """A failure's reason: its SCIM error type, else the HTTP status."""
        if self.is_auth:
            return f"authentication ({self.status})"
        if self.scim_type:
            return f"{self.scim_type} ({self.status})"
        return f"HTTP {self.status}" if self.status is not None else "unknown"

    @property
    def links_to(self) -> str | None:
        """``users`` or ``groups`` when the row can link to the resource's page."""
        if not self.resource_id or self.resource not in ("User", "Group"):
            return None
        if self.operation == "delete" and not self.failed:
            return None
        return "users" if self.resource == "User" else "groups"


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
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def normalise(raw: Mapping[str, Any]) -> Record:
    status = _number(raw.get("status"))
    attributes = raw.get("attributes")
    return Record(
        time=_time(raw.get("time")),
        token=_text(raw.get("token")),
        tenant=_text(raw.get("tenant")),
        operation=_text(raw.get("operation")),
        resource=_text(raw.get("resource")),
        resource_id=_text(raw.get("resource_id")),
        status=None if status is None else int(status),
        duration_ms=_number(raw.get("duration_ms")),
        token_id=_text(raw.get("token_id")),
        client=_text(raw.get("client")),
        method=_text(raw.get("method")),
        name=_text(raw.get("name")),
        attributes=tuple(str(a) for a in attributes) if isinstance(attributes, list) else (),
        scim_type=_text(raw.get("scim_type")),
        detail=_text(raw.get("detail")),
        change=_text(raw.get("change")),
        reason=_text(raw.get("reason")),
        request_id=_text(raw.get("request_id")),
    )


# --- filters and paging --------------------------------------------------------------------


def _when(text: str) -> datetime | None:
    """A time from a ``datetime-local`` field (UTC) or RFC 3339 text; None if unreadable."""
    if not text:
        return None
    return _time(text.strip())


@dataclass(frozen=True)
class Filters:
    """What the table shows; every field comes from the query string.

    ``tenant``: ``""`` every tenant, else that tenant and the records of no tenant
    (authentication failures). ``operation``: ``""`` every operation but ``contact``.
    """

    tenant: str = ""
    resource: str = ""
    operation: str = ""
    outcome: str = "all"
    range: str = "all"
    start: str = ""
    end: str = ""
    text: str = ""
    resource_id: str = ""

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> Filters:
        def pick(name: str, allowed: Iterable[str], default: str = "") -> str:
            value = args.get(name, default) or default
            return value if value in allowed else default

        tenant = args.get("tenant", "") or ""
        return cls(
            tenant="" if tenant == "*" else tenant[:64],
            resource=pick("resource", ("", *RESOURCES)),
            operation=pick("operation", ("", *OPERATIONS)),
            outcome=pick("result", OUTCOMES, "all"),
            range=pick("range", RANGES, "all"),
            start=(args.get("from") or "")[:32],
            end=(args.get("to") or "")[:32],
            text=(args.get("q") or "").strip()[:MAX_TEXT],
            resource_id=(args.get("id") or "")[:64],
        )

    def since(self, now: datetime) -> datetime | None:
        explicit = _when(self.start)
        lifetime = RANGES.get(self.range)
        relative = now - lifetime if lifetime is not None else None
        found = [t for t in (explicit, relative) if t is not None]
        return max(found) if found else None

    def until(self) -> datetime | None:
        return _when(self.end)

    def matches(self, raw: Mapping[str, Any]) -> bool:
        """Whether a raw record is one the table shows (time is the reader's job)."""
        operation = _text(raw.get("operation"))
        if self.operation and operation != self.operation:
            return False
        if not self.operation and operation == "contact":
            return False
        if self.tenant and _text(raw.get("tenant")) not in (self.tenant, ""):
            return False
        if self.resource and _text(raw.get("resource")) != self.resource:
            return False
        if self.resource_id and _text(raw.get("resource_id")) != self.resource_id:
            return False
        if self.outcome != "all":
            status = _number(raw.get("status"))
            failed = status is not None and status >= 400
            if failed != (self.outcome == "failure"):
                return False
        if self.text:
            words = self.text.lower()
            haystack = " ".join(_text(raw.get(k)) for k in (
                "name", "resource_id", "token", "token_id", "client", "detail", "scim_type",
                "reason", "request_id", "tenant", "path")).lower()
            attributes = raw.get("attributes")
            if isinstance(attributes, list):
                haystack += " " + " ".join(str(a) for a in attributes).lower()
            if words not in haystack:
                return False
        return True

    def args(self, **changes: str) -> dict[str, str]:
        """The query string of these filters (for links), with ``changes`` applied."""
        values = {"tenant": self.tenant or "*", "resource": self.resource,
                  "operation": self.operation, "result": self.outcome, "range": self.range,
                  "from": self.start, "to": self.end, "q": self.text, "id": self.resource_id}
        values.update(changes)
        return {k: v for k, v in values.items() if v and not (k == "result" and v == "all")
                and not (k == "range" and v == "all")}


@dataclass(frozen=True)
class Page:
    rows: list[Record]
    number: int
    size: int
    more: bool

    @property
    def first(self) -> int:
        return (self.number - 1) * self.size + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return (self.number - 1) * self.size + len(self.rows)


def _read(reader: Reader, filters: Filters, now: datetime, limit: int,
          offset: int = 0) -> list[dict[str, Any]]:
    return reader(limit, None, filters.since(now), until=filters.until(),
                  where=filters.matches, offset=offset)


def table(reader: Reader, filters: Filters, page: int, now: datetime,
          names: Mapping[str, str] | None = None) -> Page:
    """One page of the table, newest first; ``names`` fills in the name of records that
    lack one (a PATCH or DELETE names only the id) from other records of the trail."""
    page = max(1, page)
    raw = _read(reader, filters, now, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
    rows = [with_name(normalise(r), names) for r in raw[:PAGE_SIZE]]
    return Page(rows, page, PAGE_SIZE, len(raw) > PAGE_SIZE)


def with_name(record: Record, names: Mapping[str, str] | None) -> Record:
    if record.name or not names or record.resource_id not in names:
        return record
    return Record(**{**record.__dict__, "name": names[record.resource_id]})


def known_names(records: Iterable[Record]) -> dict[str, str]:
    """The newest name recorded for each resource id."""
    names: dict[str, str] = {}
    for r in records:  # newest first: the first name seen is the current one
        if r.resource_id and r.name and r.resource_id not in names:
            names[r.resource_id] = r.name
    return names


def export_csv(reader: Reader, filters: Filters, now: datetime,
               names: Mapping[str, str] | None = None) -> Iterator[str]:
    """The filtered records as CSV text (header first), newest first, in chunks.

    A cell that a spreadsheet would take for a formula (``=``, ``+``, ``-``, ``@``) is
    prefixed with ``'``: the trail holds names Entra sent, which anyone may choose.
    """
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(CSV_COLUMNS)
    for count, raw in enumerate(_read(reader, filters, now, EXPORT_LIMIT), start=1):
        record = dict(raw)
        if not record.get("name") and names and record.get("resource_id") in names:
            record["name"] = names[str(record["resource_id"])]
        cells = []
        for column in CSV_COLUMNS:
            value = record.get(column)
            text = ";".join(map(str, value)) if isinstance(value, list) else _text(value)
            cells.append("'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text)
        out.writerow(cells)
        if count % 500 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


# --- summary, cycles, health ---------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    total: int
    failures: int
    slowest_ms: float | None
    auth_failures: int = 0


def summary(records: Iterable[Record], now: datetime) -> Summary:
    """Operations (not contacts or authentication failures), failures, the slowest one,
    and authentication failures, in the last 24 hours."""
    since = now - timedelta(hours=HOURS)
    recent = [r for r in records if r.time is not None and r.time > since]
    operations = [r for r in recent if not r.is_contact and not r.is_auth]
    durations = [r.duration_ms for r in operations if r.duration_ms is not None]
    return Summary(len(operations), sum(r.failed for r in operations),
                   max(durations) if durations else None, sum(r.is_auth for r in recent))


def _is_client(record: Record) -> bool:
    """A SCIM client's record (not the dashboard's or the CLI's own actions)."""
    return bool(record.token) and not record.token.startswith(("admin:", "cli:"))


@dataclass
class Cycle:
    """A burst of one token's requests: one of Entra's provisioning cycles."""

    token: str
    tenant: str
    start: datetime
    end: datetime
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    requests: int = 0
    in_progress: bool = False

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def cycles(records: Iterable[Record], now: datetime) -> list[Cycle]:
    """Provisioning cycles, newest first, from records in any order."""
    by_token: dict[str, list[Record]] = {}
    for r in records:
        if r.time is not None and _is_client(r) and (r.is_scim_change or r.is_contact):
            by_token.setdefault(r.token_id or r.token, []).append(r)
    found: list[Cycle] = []
    for rows in by_token.values():
        rows.sort(key=lambda r: r.time)  # type: ignore[arg-type, return-value]
        current: Cycle | None = None
        for r in rows:
            assert r.time is not None
            if current is None or r.time - current.end > CYCLE_GAP:
                current = Cycle(r.token, r.tenant, r.time, r.time)
                found.append(current)
            current.end = r.time
            current.requests += 1
            if r.kind:
                current.counts[r.kind] += 1
    for c in found:
        c.in_progress = now - c.end < IN_PROGRESS
    found.sort(key=lambda c: c.end, reverse=True)
    return found


@dataclass(frozen=True)
class Contact:
    """The last time a token reached the service."""

    token: str
    token_id: str
    tenant: str
    time: datetime
    client: str
    in_progress: bool


def last_contacts(records: Iterable[Record], now: datetime) -> list[Contact]:
    """Each SCIM client token's last request (newest first)."""
    latest: dict[str, Record] = {}
    for r in records:
        if r.time is None or not _is_client(r) or r.is_auth:
            continue
        key = r.token_id or r.token
        if key not in latest or r.time > latest[key].time:  # type: ignore[operator]
            latest[key] = r
    contacts = [Contact(r.token, r.token_id, r.tenant, r.time, r.client,  # type: ignore[arg-type]
                        now - r.time < IN_PROGRESS)  # type: ignore[operator]
                for r in latest.values()]
    return sorted(contacts, key=lambda c: c.time, reverse=True)


def last_auth_failure(records: Iterable[Record]) -> Record | None:
    failures = [r for r in records if r.is_auth and r.time is not None]
    return max(failures, key=lambda r: r.time) if failures else None  # type: ignore[arg-type, return-value]


# --- charts --------------------------------------------------------------------------------


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
        if r.time is None or r.is_contact or r.is_auth or not start <= r.time < end:
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


@dataclass(frozen=True)
class Segment:
    kind: str
    y: float
    height: float
    colour: str


@dataclass(frozen=True)
class CycleBar:
    x: float
    width: float
    segments: list[Segment]
    title: str
    label: str


@dataclass(frozen=True)
class CycleChart:
    width: int
    height: int
    top: int
    bottom: int
    left: int
    bars: list[CycleBar]
    peak: int


def cycle_chart(shown: list[Cycle], width: int = 960, height: int = 200) -> CycleChart:
    """Operations by kind per cycle (oldest left), stacked."""
    ordered = list(reversed(shown[:CYCLES_SHOWN]))
    left, top, bottom = 40, 10, 24
    plot_h = height - top - bottom
    slot_w = (width - left) / max(len(ordered), 1)
    peak = max((c.total for c in ordered), default=0)
    scale = plot_h / peak if peak else 0.0
    bars = []
    for i, c in enumerate(ordered):
        x = left + i * slot_w + 4
        y = float(top + plot_h)
        segments = []
        for kind in KINDS:
            h = c.counts[kind] * scale
            if h:
                y -= h
                segments.append(Segment(kind, round(y, 1), round(h, 1), KIND_COLOURS[kind]))
        counts = ", ".join(f"{c.counts[k]} {k}" for k in KINDS)
        bars.append(CycleBar(round(x, 1), round(min(slot_w - 8, 80), 1), segments,
                             f"{c.token}, {c.start:%Y-%m-%d %H:%M}–{c.end:%H:%M} UTC: {counts}",
                             f"{c.start:%d %H:%M}"))
    return CycleChart(width, height, top, bottom, left, bars, peak)


@dataclass(frozen=True)
class ReasonBar:
    label: str
    count: int
    width: float
    y: float


def failure_reasons(records: Iterable[Record], now: datetime, width: int = 960,
                    limit: int = 8) -> tuple[list[ReasonBar], int]:
    """Failures of the last 24 hours by reason (SCIM error type or status), the most
    frequent first, as horizontal bars; and the SVG's height."""
    since = now - timedelta(hours=HOURS)
    counted = Counter(r.reason_label for r in records
                      if r.failed and not r.is_contact and r.time is not None and r.time > since)
    top = counted.most_common(limit)
    peak = top[0][1] if top else 0
    usable = width - 300
    bars = [ReasonBar(label, count, round(usable * count / peak, 1) if peak else 0.0,
                      float(i * 26)) for i, (label, count) in enumerate(top)]
    return bars, max(26 * len(bars), 26)
