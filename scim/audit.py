"""The audit trail: one JSON line per change made through SCIM, and a reader for it.

A record says who (``token``: the token's name, ``token_id``, ``tenant``, ``client``
address), what (``operation``, ``resource`` type and ``resource_id``, and in
``attributes`` the *names* of the attributes the request touched — never a value, so
never a password — and never a token), the outcome (``status``, ``result``), how long it
took (``duration_ms``), the ``request_id`` and the ``time``. Standard library only.

So that an operator can act on a record without the directory, a record also carries
the resource's ``name`` (its ``userName`` or ``displayName``: the one value recorded), a
``change`` of ``disable``/``enable`` when the request sets ``active``, and for a failure
the SCIM error's ``scim_type`` and ``detail`` (capped, with any password the request
carried blanked out). Failed authentications (401, 429) are records too
(``operation: "authenticate"``, with the ``client`` address and the ``reason``), and
``operation: "contact"`` records say a token was used (at most once a minute per token
and worker), so the last contact of each token is known while the directory is down.

Several gunicorn workers append to one file at once. Each record is written with one
``os.write`` of the whole line on a descriptor opened with ``O_APPEND``: for a regular
file the kernel appends every such write whole, at the end, under the inode lock, so
no record is lost and no two interleave. The file is opened per record (writes are rare
next to the LDAP round trips they follow), so logrotate may move it at any time. With no
file configured the lines go to standard output; a pipe keeps writes of up to
``PIPE_BUF`` (4 KiB) whole, which is why a record's attribute list is capped.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from scim.logs import request_id, utc_timestamp

log = logging.getLogger("scim.audit")

#: Caps that keep a record small (and under PIPE_BUF) whatever the body holds.
MAX_ATTRIBUTES = 50
MAX_NAME = 120
MAX_DETAIL = 300
#: Records of several workers reach the file in nearly time order; a reader asked for
#: records since T stops at the first record older than T minus this.
SINCE_SLACK = timedelta(seconds=5)
_BLOCK = 64 * 1024
_FILTER = re.compile(r"\[[^\]]*\]")
_OPERATIONS = {"POST": "create", "PUT": "replace", "PATCH": "update", "DELETE": "delete"}


def operation_of(method: str) -> str:
    return _OPERATIONS.get(method.upper(), method.lower())


def changed_attributes(method: str, body: Any) -> list[str]:
    """Names of the attributes a create, replace or PATCH request touches (RFC 7644 §3.5.2).

    POST/PUT: the body's keys (an extension's keys as ``urn:…:name``), ``schemas`` and
    read-only ``id``/``meta`` left out. PATCH: each operation's path with value filters
    dropped (``emails[type eq "work"].value`` → ``emails.value``), or the keys of a
    path-less operation's value. Values are never looked at beyond their keys.
    """
    names: list[str] = []
    if not isinstance(body, dict):
        return names
    if method.upper() == "PATCH":
        operations = next((v for k, v in body.items() if k.lower() == "operations"), None)
        for op in operations if isinstance(operations, list) else []:
            if not isinstance(op, dict):
                continue
            path = next((v for k, v in op.items() if k.lower() == "path"), None)
            value = next((v for k, v in op.items() if k.lower() == "value"), None)
            if isinstance(path, str) and path:
                names.append(_FILTER.sub("", path))
            elif isinstance(value, dict):
                names.extend(_keys(value))
    elif method.upper() in ("POST", "PUT"):
        names.extend(_keys(body))
    unique = list(dict.fromkeys(n[:MAX_NAME] for n in names if n))
    return unique[:MAX_ATTRIBUTES]


def _get(body: dict[str, Any], name: str) -> Any:
    return next((v for k, v in body.items() if isinstance(k, str) and k.lower() == name),
                None)


def _operations(body: Any) -> list[dict[str, Any]]:
    ops = _get(body, "operations") if isinstance(body, dict) else None
    return [op for op in ops if isinstance(op, dict)] if isinstance(ops, list) else []


def resource_name(resource: str, *bodies: Any) -> str | None:
    """The ``userName`` (User) or ``displayName`` (Group) of the first body naming it:
    the answer's body, then the request's (a failed create has only the latter)."""
    key = "username" if resource == "User" else "displayname"
    for body in bodies:
        if not isinstance(body, dict):
            continue
        value = _get(body, key)
        if value is None:  # a PATCH that renames: its replace value
            for op in _operations(body):
                path, inner = _get(op, "path"), _get(op, "value")
                if isinstance(path, str) and path.lower() == key:
                    value = inner
                elif path is None and isinstance(inner, dict):
                    value = _get(inner, key)
        if isinstance(value, str) and value:
            return value[:MAX_NAME]
    return None


def _false(value: Any) -> bool | None:
    if isinstance(value, bool):
        return not value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "false"
    return None


def active_change(method: str, body: Any) -> str | None:
    """``disable`` or ``enable`` when a PUT or PATCH sets ``active`` (Entra's soft
    delete and its undo), else None. Entra sends ``"False"`` as a string, too."""
    if not isinstance(body, dict):
        return None
    found: bool | None = None
    if method.upper() == "PUT":
        found = _false(_get(body, "active"))
    elif method.upper() == "PATCH":
        for op in _operations(body):
            path, value = _get(op, "path"), _get(op, "value")
            if isinstance(path, str) and path.lower() == "active":
                found = _false(value)
            elif path is None and isinstance(value, dict) and _get(value, "active") is not None:
                found = _false(_get(value, "active"))
    if found is None:
        return None
    return "disable" if found else "enable"


def _passwords(body: Any) -> list[str]:
    """Password values a request carries (to blank them out of an error's detail)."""
    found: list[Any] = []
    if isinstance(body, dict):
        found.append(_get(body, "password"))
        for op in _operations(body):
            path, value = _get(op, "path"), _get(op, "value")
            if isinstance(path, str) and path.lower() == "password":
                found.append(value)
            elif isinstance(value, dict):
                found.append(_get(value, "password"))
    return [str(v) for v in found if v not in (None, "", True, False)]


def error_fields(request_body: Any, response_body: Any) -> dict[str, str]:
    """``scim_type`` and ``detail`` of a SCIM error answer (RFC 7644 §3.12), the detail
    capped at ``MAX_DETAIL`` characters and without any password of the request."""
    if not isinstance(response_body, dict):
        return {}
    out: dict[str, str] = {}
    scim_type = response_body.get("scimType")
    if isinstance(scim_type, str) and scim_type:
        out["scim_type"] = scim_type[:40]
    detail = response_body.get("detail")
    if isinstance(detail, str) and detail:
        for secret in _passwords(request_body):
            detail = detail.replace(secret, "***")
        out["detail"] = detail[:MAX_DETAIL]
    return out


def _keys(body: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in body.items():
        if not isinstance(key, str) or key.lower() in ("schemas", "id", "meta"):
            continue
        if key.lower().startswith("urn:") and isinstance(value, dict):
            out.extend(f"{key}:{sub}" for sub in value if isinstance(sub, str))
        else:
            out.append(key)
    return out


#: ``reader(limit, result, since=None, *, until=None, where=None, offset=0)``: the newest
#: records first (what the admin dashboard reads; ``read_audit`` bound to a path).
Reader = Callable[..., list[dict[str, Any]]]


class AuditLog:
    """Appends records to ``path`` (standard output when ``path`` is empty).

    ``on_failure`` is called once per record that could not be written (a metric).
    """

    def __init__(self, path: str, on_failure: Callable[[], None] | None = None) -> None:
        self.path = path
        self.on_failure = on_failure

    def record(self, **fields: Any) -> bool:
        """Write a record of ``fields``, adding ``time``, ``request_id`` and ``result``
        (from ``status``) unless given; for changes made outside SCIM (the dashboard)."""
        status = fields.get("status")
        full: dict[str, Any] = {"time": utc_timestamp(), "request_id": request_id.get()}
        if isinstance(status, int):
            full["result"] = "success" if status < 400 else "failure"
        return self.write({**full, **fields})

    def reader(self) -> Reader | None:
        """A reader of this trail, or None when it goes to standard output."""
        return partial(read_audit, self.path) if self.path else None

    def write(self, record: dict[str, Any]) -> bool:
        """Append one record as one line; False (and an error logged) if it failed."""
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        try:
            if not self.path:
                return self._write(1, line)
            fd = self._open()
            try:
                return self._write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("audit record not written to %s: %s", self.path or "stdout", exc,
                      extra={"audit_record": record})
            if self.on_failure is not None:
                self.on_failure()
            return False

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        try:
            return os.open(self.path, flags, 0o640)
        except FileNotFoundError:
            Path(self.path).parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            return os.open(self.path, flags, 0o640)

    def _write(self, fd: int, line: bytes) -> bool:
        written = os.write(fd, line)  # one write: appended whole, never interleaved
        if written != len(line):
            raise OSError(f"short write ({written} of {len(line)} bytes; disk full?)")
        return True


def read_audit(path: str | Path, limit: int = 100, result: str | None = None,
               since: datetime | str | None = None, *, until: datetime | str | None = None,
               where: Callable[[dict[str, Any]], bool] | None = None,
               offset: int = 0, contains: str | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` records of the audit file, newest first.

    ``result``: only ``"success"`` or only ``"failure"`` records. ``since``: only records
    at or after this time (an aware datetime, or RFC 3339 text; naive means UTC);
    ``until``: only records before it. ``where``: only records it accepts. ``offset``:
    skip that many matching records first (paging). ``contains``: only lines holding this
    text as it is written in JSON (checked before a line is parsed: a resource's
    history costs a byte search per line, not a parse). The file is read backwards, so a
    query for recent records costs little on a large file. Lines that are not JSON
    objects are skipped.
    """
    floor = _as_utc(since) if since is not None else None
    ceiling = _as_utc(until) if until is not None else None
    found: list[dict[str, Any]] = []
    if limit <= 0:
        return found
    skip = max(0, offset)
    needle = json.dumps(contains, ensure_ascii=False)[1:-1].encode() if contains else None
    for line in _lines_backwards(Path(path)):
        if needle is not None and needle not in line:
            continue
        try:
            record = json.loads(line)
            when = _as_utc(record["time"])
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if not isinstance(record, dict):
            continue
        if floor is not None and when < floor:
            if when < floor - SINCE_SLACK:
                break
            continue
        if ceiling is not None and when >= ceiling:
            continue
        if result is not None and record.get("result") != result:
            continue
        if where is not None and not where(record):
            continue
        if skip:
            skip -= 1
            continue
        found.append(record)
        if len(found) >= limit:
            break
    return found


def _as_utc(value: datetime | str) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _lines_backwards(path: Path) -> Iterator[bytes]:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    with handle:
        position = handle.seek(0, os.SEEK_END)
        rest = b""
        while position > 0:
            step = min(_BLOCK, position)
            position -= step
            handle.seek(position)
            chunk = handle.read(step) + rest
            lines = chunk.split(b"\n")
            rest = lines.pop(0)
            for line in reversed(lines):
                if line.strip():
                    yield line
        if rest.strip():
            yield rest
