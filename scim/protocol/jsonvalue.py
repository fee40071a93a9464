"""Parse a request body as JSON and refuse what no SCIM resource can hold.

Two things JSON allows and Python's ``json`` accepts, but that would fail later as a
500: nesting deep enough to exhaust the interpreter's recursion (``json.loads`` itself
raises ``RecursionError`` at about 1,000 levels, and every recursive step after it —
marshmallow, the PATCH engine, copying — at fewer), and ``\\ud800``-style escapes of a
lone UTF-16 surrogate, which decode to a Python string that cannot be encoded as UTF-8
(neither for LDAP nor for a log line).

:func:`parse_json` bounds both in one pass: ``json.loads`` (C, linear), then one
iterative walk of the result, so the cost is linear in the body and no recursion is
involved. The deepest SCIM body is about seven levels (a PatchOp's operation's value
holding an extension's complex attribute), so :data:`MAX_JSON_DEPTH` leaves ample room.
"""

from __future__ import annotations

import json
import re
from typing import Any

from scim.protocol.errors import InvalidSyntax, InvalidValue

#: Most nested arrays/objects a request body may have (the body itself is level 1).
MAX_JSON_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json(raw: bytes, charset: str = "utf-8") -> Any:
    """The body as JSON: ``InvalidSyntax`` for bad or too deeply nested JSON,
    ``InvalidValue`` (naming where) for a string holding a lone surrogate."""
    try:
        value = json.loads(raw.decode(charset))
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, LookupError) as exc:
        raise InvalidSyntax(f"the body is not valid JSON: {exc}") from None
    check_json(value)
    return value


def _too_deep() -> InvalidSyntax:
    return InvalidSyntax(f"the body nests arrays and objects more than {MAX_JSON_DEPTH} "
                         "levels deep; no SCIM request needs that")


def check_json(value: Any, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Walk ``value`` without recursion: depth at most ``max_depth``, no lone surrogate
    in any key or string."""
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(value, 1, ())]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, str):
            _check_text(item, value, where)
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > max_depth:
            raise _too_deep()
        if isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, value, (*where, key))
                stack.append((child, depth + 1, (*where, key)))
        else:
            stack.extend((child, depth + 1, (*where, i)) for i, child in enumerate(item))


def _check_text(text: str, body: Any, where: tuple[Any, ...]) -> None:
    found = _SURROGATE.search(text)
    if found is None:
        return
    raise InvalidValue(
        f"{describe(body, where)}: the string holds a lone surrogate "
        f"(\\u{ord(found.group()):04x}), which is not a Unicode character; "
        "send characters outside the BMP as a surrogate pair or as UTF-8")


def describe(body: Any, where: tuple[Any, ...]) -> str:
    """Name a place in a body the way a client wrote it: ``emails[0].value``; inside a
    PATCH operation's value, the operation's own path (``password``) with the place
    after it — or, for a path-less one, the key (``password``), itself a path."""
    if len(where) >= 3 and isinstance(where[0], str) and where[0].lower() == "operations" \
            and isinstance(body, dict) and isinstance(where[1], int) \
            and isinstance(where[2], str) and where[2].lower() == "value":
        op = body[where[0]][where[1]]
        path = next((v for k, v in op.items() if k.lower() == "path"), None)
        if isinstance(path, str) and path and not _SURROGATE.search(path):
            return _join((path, *where[3:]))
        if not path and len(where) > 3:
            return _join(where[3:])
    return _join(where) or "the body"


def _join(where: tuple[Any, ...]) -> str:
    text = ""
    for part in where:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            part = _SURROGATE.sub("\ufffd", part)
            text += f".{part}" if text else part
    return text
