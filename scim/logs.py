"""Structured logs: one JSON object per line, with the id of the request being served.

Standard library only, so gunicorn's master can use the same formatter for its own and
its access log (``deploy/gunicorn.conf.py``) before the app is loaded. The web layer sets
:data:`request_id` for the duration of a request (``scim/observability.py``); every record
logged meanwhile, from any module and thread, carries it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

#: The id of the request the current thread is serving ("" outside requests).
request_id: ContextVar[str] = ContextVar("scim_request_id", default="")

#: What an incoming ``X-Request-ID`` may look like to be adopted: UUIDs, nginx's
#: ``$request_id`` (32 hex digits), ULIDs and the like. Anything else is replaced.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

#: Query parameters (and form fields) whose values are secrets, compared in lower case.
SECRET_PARAMS = frozenset({
    "access_token", "refresh_token", "id_token", "token", "client_secret", "client_assertion",
    "assertion", "password", "passwd", "pwd", "secret", "code", "api_key", "apikey",
    "authorization", "cookie", "session", "metrics_token", "bearer",
})
#: Headers whose values are secrets.
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie",
                  "x-api-key")
REDACTED = "[redacted]"
_PARAM = re.compile(
    r"(?i)(?<![A-Za-z0-9_])(" + "|".join(sorted(map(re.escape, SECRET_PARAMS), key=len,
                                                reverse=True))
    + r")(=|%3D)([^&\s\"'<>]*)")
_HEADER = re.compile(
    r"(?i)(" + "|".join(map(re.escape, SECRET_HEADERS)) + r")(\\?[\"']?\s*[:=]\s*\\?[\"']?)"
    r"([^\"'\r\n]+)")
#: Substrings without which nothing can need redacting (a cheap test before the regexes).
_WORDS = tuple(sorted({*SECRET_PARAMS, *SECRET_HEADERS, "bearer", "basic", "token",
                       "secret", "passw"}))
_SCHEME = re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{4,}")

#: LogRecord attributes that are not "extra" fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def redact(text: str) -> str:
    """``text`` with the values of secret query parameters, secret headers and HTTP
    credentials replaced by ``[redacted]``: applied to every field of every log line,
    so a token a client put in a URL (``?access_token=…``) or a header that reaches a
    message never reaches the log."""
    if not text:
        return text
    lowered = text.lower()
    if not any(word in lowered for word in _WORDS):  # the usual line: nothing to look at
        return text
    text = _PARAM.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)
    text = _HEADER.sub(lambda m: f"{m[1]}{m[2]}{REDACTED}", text)
    return _SCHEME.sub(lambda m: f"{m[1]} {REDACTED}", text)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    return value


def valid_request_id(value: str | None) -> bool:
    """Whether an incoming request id may be adopted (1–128 of ``A-Za-z0-9._:-``)."""
    return bool(value) and _REQUEST_ID.fullmatch(value or "") is not None


def new_request_id() -> str:
    return uuid.uuid4().hex


def utc_timestamp(seconds: float | None = None) -> str:
    """RFC 3339 UTC time with milliseconds: ``2026-01-31T12:00:00.123Z``."""
    moment = datetime.now(UTC) if seconds is None else datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _access_fields(atoms: Any) -> dict[str, Any]:
    """gunicorn's access-log atoms → fields (gunicorn escapes ``"`` in them; undo it)."""

    def atom(key: str) -> Any:
        value = atoms[key]  # gunicorn's SafeAtoms: "-" when absent
        if value == "-" or value is None:
            return None
        return value.replace('\\"', '"') if isinstance(value, str) else value

    status = atom("s")
    return {
        "remote_addr": atom("h"),
        "method": atom("m"),
        "path": atom("U"),
        "query": atom("q") or None,
        "status": int(status) if str(status or "").isdigit() else status,
        "bytes": atom("B"),
        "duration_ms": round(int(atom("D") or 0) / 1000, 3),
        "request_id": atom("{x-request-id}o"),
        "forwarded_for": atom("{x-forwarded-for}i"),
        "user_agent": atom("a"),
    }


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "request_id", …extra, "exception"}``.

    Records from ``gunicorn.access`` become one object of the request's fields instead
    of gunicorn's text line. Every string in the line goes through :func:`redact`.
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
        }
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            out["message"] = "request"
            out.update(_access_fields(record.args))
        else:
            out["message"] = record.getMessage()
            current = request_id.get()
            if current:
                out["request_id"] = current
            for key, value in vars(record).items():
                if key not in _STANDARD and not key.startswith("_"):
                    out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            out["stack"] = record.stack_info
        out = {k: _redacted(v if isinstance(v, (str, int, float, bool, type(None), dict,
                                                list, tuple)) else str(v))
               for k, v in out.items()}
        return json.dumps(out, ensure_ascii=False, default=str)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record (test capture,
    gunicorn's redirection), never to a stream that was replaced and closed since."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """The stream is always the current ``sys.stderr``."""


def configure_logging(level: str) -> None:
    """JSON lines on stderr at ``level`` for the whole process; idempotent.

    Handlers that others installed (pytest's capture, gunicorn's) are left in place;
    ours is added only if no handler on the root logger formats JSON yet.
    """
    root = logging.getLogger()
    root.setLevel(level.upper())
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = StderrHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
