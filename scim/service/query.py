"""List and search (RFC 7644 §3.4.2–3.4.3): filter, paging, sorting, projection.

The filter is evaluated by the directory (never by loading entries into Python).
A page costs one paged LDAP search when all matches fit in it (Entra's eq
lookups), otherwise one more: a Virtual List View search for the window (see
``_window`` and docs/query.md).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any

from directory.errors import DirectoryBusy, VlvOutOfRange
from directory.ldapfilter import Translator
from directory.repository import GROUP_CLASS, USER_CLASS, Entry
from directory.sort import TIEBREAK, TOO_MANY_KEYS, sort_control, vlv_content_count, vlv_control
from scim.protocol.errors import (
    BadRequest,
    InvalidFilter,
    InvalidValue,
    ServiceUnavailable,
    TooMany,
)
from scim.protocol.filter import AttrPath, Expr, parse_filter
from scim.protocol.paths import parse_attribute_list
from scim.protocol.projection import Projection, project, wants
from scim.protocol.schema import GROUP, LIST_RESPONSE, USER, ResourceType
from scim.service import groups, users
from scim.service.common import Context, directory_errors, valid_id

#: First-pass page size: large enough for any single-match lookup in one round trip.
FIRST_PAGE = 200
#: A sorted root search merges the first startIndex+count-1 matches of each type in
#: Python; deeper than this many max-size pages it is refused (tooMany).
ROOT_SORT_PAGES = 10
KINDS = ("User", "Group")
#: VLV's offset is an LDAP INTEGER (0..maxInt, RFC 4511 §4.1.1): slapd refuses a larger
#: one as a protocol error. No directory holds that many entries, so a startIndex past
#: it is past the end: an empty page (RFC 7644 §3.4.2.4), with the count still exact.
MAX_VLV_OFFSET = 2**31 - 1
#: sortBy on common attributes: the operational attribute that holds them.
_COMMON_SORT = {"id": "entryUUID", "meta.created": "createTimestamp",
                "meta.lastmodified": "modifyTimestamp"}


@dataclass(frozen=True)
class Query:
    """Parsed list parameters."""

    filter: str | None = None
    start_index: int = 1
    count: int | None = None
    projection: Projection = Projection()
    sort_by: str | None = None
    descending: bool = False


#: What a whole number too long for ``int()`` (over 4,300 digits) stands for: past any
#: page (startIndex) or more than any page (count); negative ones mean 1 and 0 anyway.
_HUGE = 2**63
_DIGITS = re.compile(r"\s*([+-]?)\d+\s*")


def _int(value: str | None, name: str, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        whole = _DIGITS.fullmatch(value)
        if whole:
            return -_HUGE if whole[1] == "-" else _HUGE
        raise BadRequest(f"{name} must be a whole number, got {value[:40]!r}") from None


def parse_query(filter_text: str | None, start_index: str | None, count: str | None,
                projection: Projection, sort_by: str | None = None,
                sort_order: str | None = None) -> Query:
    """startIndex < 1 means 1; count < 0 means 0 (RFC 7644 §3.4.2.4)."""
    start = max(_int(start_index, "startIndex", 1) or 1, 1)
    raw_count = _int(count, "count", None)
    order = (sort_order or "ascending").lower()
    if order not in ("ascending", "descending"):
        raise BadRequest(f"sortOrder must be ascending or descending, got {sort_order!r}")
    return Query(filter_text or None, start,
                 None if raw_count is None else max(raw_count, 0), projection,
                 sort_by or None, order == "descending")


# --- planning -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sort:
    """How one resource type is sorted: the LDAP key, and how Python compares values."""

    ldap: str
    descending: bool
    path: AttrPath
    case_exact: bool
    extension: str | None = None  # the schema URN whose object holds the value


@dataclass(frozen=True)
class _Plan:
    """One resource type's part of a query."""

    kind: str
    rtype: ResourceType
    base: str
    ldap_filter: str
    sort: _Sort | None
    heavy: bool  # members / groups are returned, so they are read
    filtered: bool  # a filter narrows the type (else every entry matches)


def _sort_path(query: Query) -> AttrPath | None:
    if not query.sort_by:
        return None
    paths = parse_attribute_list(query.sort_by)
    if len(paths) != 1 or not paths[0].attr:
        raise InvalidValue(f"sortBy takes one attribute, got {query.sort_by!r}")
    return paths[0]


def _sort(ctx: Context, kind: str, path: AttrPath, descending: bool) -> _Sort:
    """The LDAP attribute that sorts ``path`` (RFC 7644 §3.4.2.3), or InvalidValue."""
    mapping = ctx.mapping.user if kind == "User" else ctx.mapping.group
    core = path.urn is None or path.urn.lower() == mapping.rtype.schema.id.lower()
    name = (f"{path.attr}.{path.sub}" if path.sub else path.attr).lower()
    if core and name in _COMMON_SORT:
        return _Sort(_COMMON_SORT[name], descending, path, case_exact=True)
    ext = None if core else mapping.rtype.extension(path.urn or "")
    rows = [r for r in mapping.rows if r.loc.type is None and r.codec == "string"
            and r.loc.urn == (ext.id if ext else None) and (core or ext is not None)
            and f"{r.loc.attr}.{r.loc.sub}".removesuffix(".None").lower() == name]
    if not rows:
        raise InvalidValue(f"cannot sort {kind}s by {path}: sortBy needs a single-valued "
                           "string attribute, id or meta.created/lastModified")
    return _Sort(rows[0].ldap, descending, path, rows[0].definition.case_exact,
                 ext.id if ext else None)


def _plan(ctx: Context, kind: str, query: Query, expr: Expr | None,
          lenient: list[Translator] | None = None) -> _Plan:
    """``lenient`` (root search): unknown attributes are false; the translator is kept."""
    rtype = USER if kind == "User" else GROUP
    mapping = ctx.mapping.user if kind == "User" else ctx.mapping.group
    cls = USER_CLASS if kind == "User" else GROUP_CLASS
    path = _sort_path(query)
    order = _sort(ctx, kind, path, query.descending) if path else None
    if expr is None:
        ldap_filter = f"(objectClass={cls})"
    else:
        translator = Translator(mapping, cls, _resolver(ctx), ctx.repo.tenant.placeholder_dn,
                                unknown_is_false=lenient is not None)
        ldap_filter = translator.translate(expr)
        if lenient is not None:
            lenient.append(translator)
    heavy = wants(rtype, query.projection, "groups" if kind == "User" else "members")
    base = ctx.repo.tenant.people_dn if kind == "User" else ctx.repo.tenant.groups_dn
    return _Plan(kind, rtype, base, ldap_filter, order, heavy, expr is not None)


def _resolver(ctx: Context) -> Callable[[str], str | None]:
    """Referenced ids (members.value, groups.value, manager) → DNs, for the translator."""

    def resolve(scim_id: str) -> str | None:
        if not valid_id(scim_id):
            return None
        found = ctx.repo.resolve_ids([scim_id])
        return found[scim_id.lower()].dn if scim_id.lower() in found else None

    return resolve


def _expr(ctx: Context, query: Query) -> Expr | None:
    if not query.filter:
        return None
    return parse_filter(query.filter, max_length=ctx.options.max_filter_length,
                        max_depth=ctx.options.max_filter_depth,
                        max_clauses=ctx.options.max_filter_clauses)


def _page_size(ctx: Context, query: Query) -> int:
    limit = ctx.options.max_page_size
    return limit if query.count is None else min(query.count, limit)


def _list(total: int, start: int, resources: list[dict]) -> dict:
    return {"schemas": [LIST_RESPONSE], "totalResults": total, "Resources": resources,
            "startIndex": start, "itemsPerPage": len(resources)}


# --- the two entry points ------------------------------------------------------------------


def search(ctx: Context, kind: str, query: Query) -> dict:
    """A ListResponse for /Users or /Groups (GET or POST .search)."""
    count = _page_size(ctx, query)
    with directory_errors(ctx.options.retry_after):
        plan = _plan(ctx, kind, query, _expr(ctx, query))
        total, resources = _run(ctx, plan, query.start_index, count)
    return _list(total, query.start_index,
                 [project(r, plan.rtype, query.projection) for r in resources])


def search_all(ctx: Context, query: Query) -> dict:
    """Root ``POST /.search`` (RFC 7644 §3.4.3): Users and Groups as one paged list.

    A clause on an attribute that one type does not define (``userName`` for Groups)
    is false for that type; one that neither defines is invalidFilter. Unsorted, Users
    come first; with sortBy the two sorted streams are merged (a type that cannot sort
    by that attribute counts as having no value: last ascending, first descending).
    """
    count = _page_size(ctx, query)
    start = query.start_index
    expr = _expr(ctx, query)
    with directory_errors(ctx.options.retry_after):
        plans = _root_plans(ctx, query, expr)
        if query.sort_by:
            total, found = _merged(ctx, plans, start, count)
        else:
            total, found = _concatenated(ctx, plans, start, count)
    return _list(total, start, [project(r, plan.rtype, query.projection) for plan, r in found])


def _root_plans(ctx: Context, query: Query, expr: Expr | None) -> list[_Plan]:
    plans: list[_Plan] = []
    translators: list[Translator] = []
    sort_errors: list[InvalidValue] = []
    for kind in KINDS:
        try:
            plans.append(_plan(ctx, kind, query, expr, translators))
        except InvalidValue as exc:  # sortBy this type cannot sort by
            sort_errors.append(exc)
            unsorted = Query(query.filter, query.start_index, query.count, query.projection)
            plans.append(_plan(ctx, kind, unsorted, expr, translators))
    if len(sort_errors) == len(KINDS):
        raise sort_errors[0]
    unknown_everywhere = set.intersection(*(t.unknown for t in translators)) if translators \
        else set()
    if unknown_everywhere:
        raise InvalidFilter(f"unknown attribute {sorted(unknown_everywhere)[0]!r} in filter "
                            "(not defined by any resource type)")
    return plans


def _concatenated(ctx: Context, plans: list[_Plan], start: int,
                  count: int) -> tuple[int, list[tuple[_Plan, dict]]]:
    total = 0
    found: list[tuple[_Plan, dict]] = []
    for plan in plans:
        skip = max(start - 1 - total, 0)  # this type's matches before the window
        matches, part = _run(ctx, plan, skip + 1, count - len(found))
        found += [(plan, r) for r in part]
        total += matches
    return total, found


def _merged(ctx: Context, plans: list[_Plan], start: int,
            count: int) -> tuple[int, list[tuple[_Plan, dict]]]:
    depth = start - 1 + count
    limit = ROOT_SORT_PAGES * ctx.options.max_page_size
    if depth > limit:
        total = sum(_run(ctx, plan, 1, 0)[0] for plan in plans)
        if start > total:  # past the end: an empty page, whatever the depth
            return total, []
        raise TooMany(f"a sorted search across resource types reaches at most {limit} "
                      "results deep; search /Users and /Groups separately, or drop sortBy")
    total = 0
    streams: list[list[tuple[tuple[int, str], _Plan, dict]]] = []
    sorting = next(p.sort for p in plans if p.sort)
    for plan in plans:
        matches, part = _run(ctx, plan, 1, depth)
        total += matches
        streams.append([(_sort_key(r, plan.sort), plan, r) for r in part])
    merged = heapq.merge(*streams, key=lambda item: item[0], reverse=sorting.descending)
    return total, [(plan, r) for _, plan, r in islice(merged, start - 1, depth)]


def _sort_key(resource: dict, order: _Sort | None) -> tuple[int, str]:
    """Python's view of a resource's place in the directory's order; no value sorts
    after every value, as sssvlv does (last ascending, first descending)."""
    value = _value_at(resource, order) if order else None
    if value is None or value == "":
        return (1, "")
    text = str(value)
    return (0, text if order and order.case_exact else text.casefold())


def _value_at(resource: dict, order: _Sort) -> Any:
    container = _get(resource, order.extension) if order.extension else resource
    value = _get(container, order.path.attr)
    return _get(value, order.path.sub) if order.path.sub else value


def _get(container: Any, name: str) -> Any:
    if not isinstance(container, dict):
        return None
    lowered = name.lower()
    return next((v for k, v in container.items() if k.lower() == lowered), None)


# --- one resource type -----------------------------------------------------------------------


def _run(ctx: Context, plan: _Plan, start: int, count: int) -> tuple[int, list[dict]]:
    """Total matches of ``plan`` and its rendered resources ``start``… (before projection)."""
    if count <= 0:
        attrs = ["1.1"]
    elif plan.kind == "User":
        attrs = users.read_attributes(ctx)
    else:
        attrs = groups.read_attributes(ctx, plan.heavy)
    if count > 0:
        attrs = [*attrs, "entryUUID", "entryCSN", "createTimestamp", "modifyTimestamp"]
    total, window = _window(ctx, plan, attrs, start, count)
    return total, _render(ctx, plan.kind, window, plan.heavy)


def _window(ctx: Context, plan: _Plan, attrs: list[str], start: int,
            count: int) -> tuple[int, list[Entry]]:
    """Total and the requested window of matches, in one order on every request.

    entryUUID breaks ties when slapd takes two sort keys (``olcSssVlvMaxKeys``); a
    server that takes one still keeps equal values in one order (its search order).
    """
    try:
        return _window_once(ctx, plan, attrs, start, count, tiebreak=True)
    except DirectoryBusy as exc:
        if TOO_MANY_KEYS not in str(exc):
            raise
    return _window_once(ctx, plan, attrs, start, count, tiebreak=False)


def _window_once(ctx: Context, plan: _Plan, attrs: list[str], start: int, count: int, *,
                 tiebreak: bool) -> tuple[int, list[Entry]]:
    """Small results (≤ FIRST_PAGE, e.g. every Entra lookup) take one paged search. Larger
    ones take one Virtual List View search: slapd (sssvlv) sorts the matches — by the
    requested sortBy, else by entryUUID so pages stay stable — and returns just the
    window and the exact count, instead of Python reading every match.

    The first paged search is a probe for filtered queries whose window starts in its
    page; an unfiltered list (every entry of the type) or a window past FIRST_PAGE goes
    to VLV at once, since the probe's entries would be thrown away.
    """
    base, ldap_filter = plan.base, plan.ldap_filter
    order = [sort_control(plan.sort.ldap, plan.sort.descending, tiebreak)] if plan.sort else []
    if plan.filtered and start <= FIRST_PAGE:
        entries, result = ctx.repo.search(base, ldap_filter, attrs, paged_size=FIRST_PAGE,
                                          controls=order)
        if not _cookie(result):
            return len(entries), entries[start - 1:start - 1 + count]
        ctx.repo.abandon_paging(base, ldap_filter, _cookie(result), order)
    order = order or [sort_control(TIEBREAK)]
    try:
        if start > MAX_VLV_OFFSET:
            raise VlvOutOfRange(start)
        page, result = ctx.repo.isolated_search(
            base, ldap_filter, attrs, [*order, vlv_control(start, max(count, 1))])
    except VlvOutOfRange:  # startIndex past the end: only the count is needed
        page, result = ctx.repo.isolated_search(
            base, ldap_filter, ["1.1"], [*order, vlv_control(1, 1)])
        page = []
    total = vlv_content_count(result)
    if total is None:
        raise ServiceUnavailable("the directory could not page this result (VLV)")
    return total, page[:count] if start <= total else []


def _cookie(result: dict) -> bytes | None:
    control = (result.get("controls") or {}).get("1.2.840.113556.1.4.319") or {}
    return (control.get("value") or {}).get("cookie") or None


def _render(ctx: Context, kind: str, entries: Iterable[Entry], heavy: bool) -> list[dict]:
    entries = list(entries)
    if not entries:
        return []
    if kind == "User":
        refs = users.reference_index(ctx, entries, heavy)
        return [users.render(ctx, e, refs, heavy) for e in entries]
    members = groups.member_index(ctx, entries) if heavy else None
    return [groups.render(ctx, e, members) for e in entries]
