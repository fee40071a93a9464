"""List and search (RFC 7644 §3.4.2–3.4.3): filter, paging, projection.

The filter is evaluated by the directory (never by loading entries into Python).
A page costs one paged LDAP search when all matches fit in it (Entra's eq
lookups), otherwise one more: a Virtual List View search for the window (see
``_window`` and docs/query.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from directory.errors import VlvOutOfRange
from directory.ldapfilter import Translator
from directory.repository import GROUP_CLASS, USER_CLASS, Entry
from directory.sort import sort_control, vlv_content_count, vlv_control
from scim.protocol.errors import BadRequest, ServiceUnavailable
from scim.protocol.filter import parse_filter
from scim.protocol.projection import Projection, project, wants
from scim.protocol.schema import GROUP, LIST_RESPONSE, USER
from scim.service import groups, users
from scim.service.common import Context, directory_errors

#: First-pass page size: large enough for any single-match lookup in one round trip.
FIRST_PAGE = 200


@dataclass(frozen=True)
class Query:
    """Parsed list parameters."""

    filter: str | None = None
    start_index: int = 1
    count: int | None = None
    projection: Projection = Projection()
    sort_by: str | None = None
    descending: bool = False


def _int(value: str | None, name: str, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {value!r}") from None


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


def _sort(ctx: Context, kind: str, query: Query) -> list:
    """The sort control for sortBy (RFC 7644 §3.4.2.3), or none."""
    if not query.sort_by:
        return []
    from scim.protocol.errors import InvalidValue
    from scim.protocol.paths import parse_attribute_list

    mapping = ctx.mapping.user if kind == "User" else ctx.mapping.group
    paths = parse_attribute_list(query.sort_by)
    if len(paths) != 1:
        raise InvalidValue("sortBy takes one attribute")
    path = paths[0]
    name = f"{path.attr}.{path.sub}" if path.sub else path.attr
    special = {"id": "entryUUID", "meta.created": "createTimestamp",
               "meta.lastmodified": "modifyTimestamp"}
    ldap = special.get(name.lower())
    if ldap is None:
        rows = [r for r in mapping.rows if r.loc.type is None and r.codec == "string"
                and f"{r.loc.attr}.{r.loc.sub}".removesuffix(".None").lower() == name.lower()
                and (path.urn or None) in (None, r.loc.urn, mapping.rtype.schema.id)]
        if not rows:
            raise InvalidValue(f"cannot sort by {query.sort_by!r}: sortBy needs a "
                               "single-valued string attribute, id or meta.created/lastModified")
        ldap = rows[0].ldap
    return [sort_control(ldap, query.descending)]


def search_all(ctx: Context, query: Query) -> dict:
    """Root ``POST /.search`` (RFC 7644 §3.4.3): Users, then Groups, paged as one list.

    A filter that names attributes of one resource type only (``userName``) selects
    nothing from the other; a filter valid for neither is an error.
    """
    from scim.protocol.errors import InvalidFilter

    resources: list[dict] = []
    total = 0
    start, count = query.start_index, query.count
    errors: list[InvalidFilter] = []
    for kind in ("User", "Group"):
        remaining = None if count is None else max(count - len(resources), 0)
        local = Query(query.filter, max(start - total, 1), remaining, query.projection,
                      query.sort_by, query.descending)
        try:
            part = search(ctx, kind, local)
        except InvalidFilter as exc:
            errors.append(exc)
            continue
        if start - total <= part["totalResults"]:
            resources += part["Resources"]
        total += part["totalResults"]
    if len(errors) == 2:
        raise errors[0]
    return {"schemas": [LIST_RESPONSE], "totalResults": total, "Resources": resources,
            "startIndex": query.start_index, "itemsPerPage": len(resources)}


def search(ctx: Context, kind: str, query: Query) -> dict:
    """A ListResponse for /Users or /Groups."""
    rtype = USER if kind == "User" else GROUP
    mapping = ctx.mapping.user if kind == "User" else ctx.mapping.group
    base = ctx.repo.tenant.people_dn if kind == "User" else ctx.repo.tenant.groups_dn
    count = min(ctx.options.max_page_size if query.count is None else query.count,
                ctx.options.max_page_size)
    with directory_errors(ctx.options.retry_after):
        ldap_filter = _ldap_filter(ctx, kind, query.filter)
        heavy = "groups" if kind == "User" else "members"
        with_heavy = wants(rtype, query.projection, heavy)
        attrs = (users.read_attributes(ctx, with_heavy) if kind == "User"
                 else groups.read_attributes(ctx, with_heavy))
        attrs = [*attrs, "entryUUID", "entryCSN", "createTimestamp", "modifyTimestamp"]
        controls = _sort(ctx, kind, query)
        total, window = _window(ctx, base, ldap_filter, attrs, query.start_index, count,
                                controls)
        del mapping
        resources = [project(r, rtype, query.projection)
                     for r in _render(ctx, kind, window, with_heavy)]
    return {"schemas": [LIST_RESPONSE], "totalResults": total, "Resources": resources,
            "startIndex": query.start_index, "itemsPerPage": len(resources)}


def _ldap_filter(ctx: Context, kind: str, text: str | None) -> str:
    mapping = ctx.mapping.user if kind == "User" else ctx.mapping.group
    cls = USER_CLASS if kind == "User" else GROUP_CLASS
    if not text:
        return f"(objectClass={cls})"
    expr = parse_filter(text, max_length=ctx.options.max_filter_length)

    def resolve(scim_id: str) -> str | None:
        from scim.service.common import valid_id

        if not valid_id(scim_id):
            return None
        found = ctx.repo.resolve_ids([scim_id])
        return found[scim_id.lower()].dn if scim_id.lower() in found else None

    return Translator(mapping, cls, resolve, ctx.repo.tenant.placeholder_dn).translate(expr)


def _window(ctx: Context, base: str, ldap_filter: str, attrs: list[str], start: int,
            count: int, controls: list) -> tuple[int, list[Entry]]:
    """Total and the requested window of matches.

    Small results (≤ FIRST_PAGE, e.g. every Entra lookup) take one paged search. Larger
    ones take one Virtual List View search: slapd (sssvlv) sorts the matches — by the
    requested sortBy, else by entryUUID so pages stay stable — and returns just the
    window and the exact count, instead of Python reading every match.
    """
    entries, result = ctx.repo.search(base, ldap_filter, attrs, paged_size=FIRST_PAGE,
                                      controls=controls)
    if not _cookie(result):
        return len(entries), entries[start - 1:start - 1 + count]
    ctx.repo.abandon_paging(base, ldap_filter, _cookie(result), controls)
    order = controls or [sort_control("entryUUID")]
    try:
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


def _render(ctx: Context, kind: str, entries: list[Entry], heavy: bool) -> list[dict]:
    if kind == "User":
        refs = users.reference_index(ctx, entries, heavy)
        return [users.render(ctx, e, refs, heavy) for e in entries]
    members = groups.member_index(ctx, entries) if heavy else None
    return [groups.render(ctx, e, members) for e in entries]
