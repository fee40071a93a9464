"""What every use case shares: the request context, ETags, diffs, error translation."""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from directory import errors as de
from directory.mapping import Mapping
from directory.repository import Entry, Repository
from scim.protocol.errors import (
    InvalidValue,
    NotFound,
    PreconditionFailed,
    ServiceUnavailable,
)

#: back-mdb keeps each RDN, normalised and as given, in one LMDB value of at most 511
#: bytes; measured on slapd 2.5: 2 * len("attr=" + escaped value) + 20 must fit.
RDN_BYTES = 491
_RDN_SPECIAL = ',+"\\<>;='
log = logging.getLogger("scim.service")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class Options:
    """Settings the use cases need (taken from Settings once, at start-up)."""

    password_scheme: str = "SSHA512"
    ppolicy_lock: bool = True
    retry_after: int = 5
    max_members_per_patch: int = 10000
    max_operations: int = 1000
    max_page_size: int = 1000
    max_filter_length: int = 4096
    max_filter_depth: int = 32
    max_filter_clauses: int = 256


@dataclass(frozen=True)
class Context:
    """One request's view of the directory: repository, mapping, public base URL."""

    repo: Repository
    mapping: Mapping
    base_url: str
    options: Options

    def location(self, endpoint: str, scim_id: str) -> str:
        return f"{self.base_url}{endpoint}/{scim_id}"


def etag_of(entry: Entry) -> str:
    """Weak ETag from entryCSN, which changes on every write (RFC 7644 §3.14)."""
    digest = hashlib.blake2s(entry.csn.encode(), digest_size=10).hexdigest()
    return f'W/"{digest}"'


def check_if_match(if_match: str | None, entry: Entry) -> None:
    """Honour ``If-Match`` (RFC 7232 §3.1): 412 unless one tag matches or ``*``."""
    if not if_match:
        return
    current = etag_of(entry)
    tags = [t.strip() for t in if_match.split(",")]
    if "*" in tags:
        return
    bare = current.removeprefix("W/")
    if not any(t.removeprefix("W/") == bare for t in tags):
        raise PreconditionFailed(
            f"the resource changed: its version is {current}, If-Match was {if_match}"
        )


def check_rdn(attr: str, value: str, name: str) -> None:
    """Refuse a naming value (userName, a group's displayName) that cannot be an RDN.

    Too long: slapd would answer "other", a 500. Control characters: slapd's DN parser
    drops a trailing newline (``uid=0\\n`` becomes ``uid=0`` with two ``uid`` values) and
    string preparation erases others (U+001F), so such a name would not round-trip and
    a filter for it would not find it.
    """
    control = next((c for c in value if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        raise InvalidValue(f"{name} must not contain control characters "
                           f"(U+{ord(control):04X})")
    size = sum(3 if c in _RDN_SPECIAL else len(c.encode()) for c in value)
    size += 2 * (value[:1] in ("#", " ")) + 2 * (len(value) > 1 and value.endswith(" "))
    limit = RDN_BYTES // 2 - len(attr) - 1
    if size > limit:
        raise InvalidValue(
            f"{name} is too long for the directory: {size} bytes, at most {limit} "
            "(UTF-8; each of , + \" \\ < > ; = counts 3)")


def valid_id(scim_id: str) -> bool:
    """Our ids are entryUUIDs; anything else cannot exist."""
    return bool(_UUID.match(scim_id))


def not_found(kind: str, scim_id: str) -> NotFound:
    return NotFound(f"{kind} {scim_id!r} not found")


def busy_detail(exc: de.DirectoryBusy) -> str:
    """What a client is told about a busy directory: our own reason, never the server's."""
    reason = "the directory is busy" if exc.from_server else str(exc)
    return f"{reason}; retry later"


def refused(exc: de.InvalidData, name: str | None = None) -> InvalidValue:
    """400 for a value the directory refused, naming the attribute and nothing more
    (the server's diagnostic text is logged, not echoed)."""
    log.info("the directory refused a value: %s", exc)
    attribute = name or de.refused_attribute(exc)
    if attribute is None:
        return InvalidValue("the directory refused a value")
    return InvalidValue(f"{attribute}: the directory refused the value")


@contextmanager
def directory_errors(retry_after: int) -> Iterator[None]:
    """Translate directory errors that no use case handled into SCIM errors.

    Busy and unavailable are both 503 with ``Retry-After``: the service lacks capacity
    or its directory, which no client caused (429 would blame the client's own rate).
    """
    try:
        yield
    except de.DirectoryBusy as exc:
        log.warning("directory busy: %s", exc)
        raise ServiceUnavailable(busy_detail(exc), retry_after=retry_after) from exc
    except de.DirectoryUnavailable as exc:
        raise ServiceUnavailable("the directory is unavailable; retry later",
                                 retry_after=retry_after) from exc
    except de.InvalidData as exc:
        raise refused(exc) from exc
