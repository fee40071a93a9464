"""Group use cases on groupOfNames entries, with members as DN deltas.

A group's member list is never read to change it: adds and removes are
``MODIFY_ADD``/``MODIFY_DELETE`` of resolved DNs in one modify. The hidden
placeholder member keeps empty groups valid ``groupOfNames`` entries and is never
shown over SCIM.
"""

from __future__ import annotations

from typing import Any

from directory import errors as de
from directory import references
from directory.changes import Changes, diff
from directory.dn import normalise_dn
from directory.repository import GROUP_CLASS, Entry
from scim.protocol import patch as scim_patch
from scim.protocol.errors import InvalidValue, PreconditionFailed, Uniqueness
from scim.protocol.schema import CORE_GROUP, GROUP
from scim.schemas import load_resource
from scim.service.common import (
    Context,
    check_if_match,
    check_rdn,
    directory_errors,
    etag_of,
    not_found,
    valid_id,
)

ATTEMPTS = 5


def read_attributes(ctx: Context, members: bool) -> list[str]:
    return [*ctx.mapping.group.ldap_attributes, "objectClass", references.MARK,
            *(["member"] if members else [])]


def find(ctx: Context, scim_id: str, members: bool = False) -> Entry:
    entry = None
    if valid_id(scim_id):
        entry = ctx.repo.find_by_id("Group", scim_id, read_attributes(ctx, members))
    if entry is None:
        raise not_found("Group", scim_id)
    return entry


def _is_group(entry: Entry) -> bool:
    return GROUP_CLASS.lower() in {str(c).lower() for c in entry.values("objectClass")}


def _member(ctx: Context, scim_id: str, is_group: bool) -> dict:
    """One ``members`` element (RFC 7643 §4.2)."""
    endpoint, kind = ("/Groups", "Group") if is_group else ("/Users", "User")
    return {"value": scim_id, "$ref": ctx.location(endpoint, scim_id), "type": kind}


def member_index(ctx: Context, entries: list[Entry]) -> dict[str, dict]:
    """Resolve the member DNs of all entries (read with ``member``) in batched searches.

    For lists; one group is read with :meth:`Repository.group_members` instead. The
    placeholder is outside the tenant, so it never resolves. Keyed by member value as
    stored: which entry a value names is the server's call (two users whose names only
    Python would fold together stay two members).
    """
    dns = [m for e in entries for m in e.values("member")]
    if not dns:
        return {}
    found = ctx.repo.resolve_dns(dns, [])
    return {dn: _member(ctx, e.uuid, _is_group(e)) for dn, e in found.items()}


def render(ctx: Context, entry: Entry, members: dict[str, dict] | None) -> dict:
    """The SCIM Group of an entry read with ``member``; ``members`` from :func:`member_index`."""
    listed = None
    if members is not None:
        listed = [m for m in (members.get(str(dn)) for dn in entry.values("member"))
                  if m is not None]
    return _resource(ctx, entry, listed)


def _resource(ctx: Context, entry: Entry, members: list[dict] | None) -> dict:
    body = ctx.mapping.group.from_ldap(entry.attrs)
    resource: dict[str, Any] = {"schemas": [CORE_GROUP], "id": entry.uuid, **body}
    if members is not None:
        resource["members"] = members
    resource["meta"] = {
        "resourceType": "Group",
        "created": entry.created,
        "lastModified": entry.modified,
        "location": ctx.location("/Groups", entry.uuid),
        "version": etag_of(entry),
    }
    return resource


def get(ctx: Context, scim_id: str, members: bool = True) -> dict:
    """GET one group: the entry (never its ``member`` values), then, if shown, its
    members resolved by the directory (one read with slapd's deref overlay)."""
    with directory_errors(ctx.options.retry_after):
        entry = find(ctx, scim_id)
        if not members:
            return _resource(ctx, entry, None)
        try:
            listed = ctx.repo.group_members(entry.dn)
        except de.NoSuchEntry:  # deleted or renamed since the first read
            raise not_found("Group", scim_id) from None
        return _resource(ctx, entry, [_member(ctx, m.uuid, m.is_group) for m in listed])


def user_counts(ctx: Context, ids: list[str]) -> dict[str, int]:
    """How many users each group lists directly, by group id — from the groups' own
    ``member`` values (one search per 200 groups). Counting users by ``(memberOf=…)``
    instead makes slapd's dynlist go through every group for every user: 160 ms per
    group at 100,000 users in 1,000 groups."""
    with directory_errors(ctx.options.retry_after):
        found = ctx.repo.resolve_ids(ids, kinds=("Group",), attributes=["member"])
    people = "," + normalise_dn(ctx.repo.tenant.people_dn)
    return {gid: sum(1 for v in found[gid.lower()].values("member")
                     if normalise_dn(str(v)).endswith(people))
            for gid in ids if gid.lower() in found}


def _member_dns(ctx: Context, ids: list[str], *, strict: bool,
                resolved: dict[str, Entry] | None = None) -> list[str]:
    return [e.dn for e in _member_entries(ctx, ids, strict=strict, resolved=resolved)]


def _member_entries(ctx: Context, ids: list[str], *, strict: bool, self_id: str = "",
                    resolved: dict[str, Entry] | None = None) -> list[Entry]:
    """Resolve member ids (one search per batch, unless ``resolved`` already holds them),
    one entry each. Unknown ids → 400 when strict, else left out."""
    _check_member_count(ctx, len(ids))
    valid = [i for i in ids if valid_id(i)]
    found = resolved if resolved is not None else ctx.repo.resolve_ids(valid) if valid else {}
    missing = [i for i in ids if i.lower() not in found]
    if missing and strict:
        shown = ", ".join(repr(m) for m in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise InvalidValue(f"no User or Group with id {shown}{more}; nothing was changed")
    # one value per entry: the same id twice (or in another case) is one member
    entries = list({e.uuid.lower(): e for e in
                    (found[i.lower()] for i in ids if i.lower() in found)}.values())
    if self_id and any(e.uuid.lower() == self_id.lower() for e in entries):
        raise InvalidValue("a group cannot be a member of itself")
    return entries


def _check_member_count(ctx: Context, count: int) -> None:
    if count > ctx.options.max_members_per_patch:
        raise InvalidValue(f"too many members in one request: {count} "
                           f"(at most {ctx.options.max_members_per_patch})")


def _taken(name: str) -> Uniqueness:
    return Uniqueness(f"a group with displayName {name!r} already exists")


def _attributes(ctx: Context, resource: dict) -> dict[str, list[str]]:
    """LDAP values of the mapped attributes (members are written as DN deltas instead)."""
    attrs, _ = ctx.mapping.group.to_ldap({k: v for k, v in resource.items() if k != "members"})
    return attrs


def create(ctx: Context, body: Any) -> dict:
    resource = load_resource(body, GROUP)
    with directory_errors(ctx.options.retry_after):
        attrs = _attributes(ctx, resource)
        ids = scim_patch.member_ids(resource.get("members", []), "members")
        members = _member_entries(ctx, ids, strict=True)
        attrs["member"] = [e.dn for e in members] or [ctx.repo.tenant.placeholder_dn]
        rdn = ctx.mapping.group.rdn
        name = resource["displayName"]
        check_rdn(rdn.ldap, name, "displayName")
        dn = ctx.repo.group_dn(rdn.ldap, name)
        if ctx.repo.find_one("Group", rdn.ldap, name, []) is not None:
            raise _taken(name)
        try:
            entry = ctx.repo.add(dn, ctx.mapping.group.object_classes, attrs)
        except de.EntryExists:
            raise _taken(name) from None
        if members:
            final = references.settle(ctx.repo, entry.uuid, entry.dn, "member",
                                      {e.dn: e.uuid for e in members})
            members = [e for e in members if e.uuid in final]
        return _resource(ctx, entry, [_member(ctx, e.uuid, _is_group(e)) for e in members])


def _attribute_changes(ctx: Context, entry: Entry, resource: dict) -> Changes:
    desired = _attributes(ctx, resource)
    mapping = ctx.mapping.group
    managed = [r.ldap for r in mapping.rows if r is not mapping.rdn]
    return diff(entry.attrs, desired, managed)


def _rename_if_needed(ctx: Context, entry: Entry, resource: dict) -> tuple[str, str, str]:
    """Rename first (it is what can fail on uniqueness); returns dn, csn, old name."""
    rdn = ctx.mapping.group.rdn
    old = str(entry.first(rdn.ldap) or "")
    new = resource["displayName"]
    if new == old:
        return entry.dn, entry.csn, old
    check_rdn(rdn.ldap, new, "displayName")
    other = ctx.repo.find_one("Group", rdn.ldap, new, [])
    if other is not None and other.uuid != entry.uuid:
        raise _taken(new)
    # record the old DN first: a crash after the modDN leaves it for the next write to
    # finish (references.finish); then rename, move the parents' values, drop the record
    try:
        # permissive: a rename still in progress may have recorded an equal DN already
        ctx.repo.modify(entry.dn, references.mark(entry), csn=entry.csn, permissive=True)
    except de.NoSuchEntry:  # renamed or deleted since it was read: read it again
        raise de.AssertionFailed("the group was renamed or deleted meanwhile") from None
    try:
        # not pinned to a version: the modify before was, and a modDN changes nothing
        # another writer could have written meanwhile (a member add must not make it fail)
        dn, meta = ctx.repo.rename(entry.dn, rdn.ldap, new)
    except (de.EntryExists, de.AssertionFailed, de.NoSuchEntry) as exc:
        references.unmark(ctx.repo, entry.dn, [entry.dn])
        if isinstance(exc, de.EntryExists):
            raise _taken(new) from None
        raise de.AssertionFailed("the group changed while it was renamed") from None
    dn = references.move(ctx.repo, entry.uuid, entry.dn, dn)  # parent groups, now
    meta.update(references.unmark(ctx.repo, dn, [entry.dn]))
    return dn, str(meta.get("entrycsn", [entry.csn])[0]), old


def _apply(ctx: Context, entry: Entry, resource: dict, plan: scim_patch.MemberPlan,
           guarded: bool, resolved: dict[str, Entry] | None = None) -> str:
    """Resolve members, then rename and one modify (undoing the rename on failure).
    Returns the group's entryCSN after the write (its new version).

    Member deltas commute (Permissive Modify makes them idempotent), so a member-only
    PATCH is not tied to the entryCSN it read: Entra's parallel batches to one group
    must not make each other retry. Attribute changes, replacements and If-Match are.
    """
    replacement = plan.final_replacement()
    if replacement is not None:
        added = _member_entries(ctx, replacement, strict=True, self_id=entry.uuid,
                                resolved=resolved)
        remove_dns = []
    else:
        added = _member_entries(ctx, list(plan.add.values()), strict=True,
                                self_id=entry.uuid, resolved=resolved)
        remove_dns = _member_dns(ctx, list(plan.remove.values()), strict=False,
                                 resolved=resolved)
    add_dns = [e.dn for e in added]
    changes = _attribute_changes(ctx, entry, resource)
    dn, csn, old = _rename_if_needed(ctx, entry, resource)
    renamed = dn != entry.dn
    guard = csn if (guarded or changes or renamed or replacement is not None) else None
    meta: dict[str, list[Any]] = {}
    try:
        if replacement is not None:
            meta = ctx.repo.replace_members(dn, add_dns, changes, csn=guard)
        elif add_dns or remove_dns:
            meta = ctx.repo.change_members(dn, add_dns, remove_dns, changes, csn=guard)
        elif changes:
            meta = ctx.repo.modify(dn, changes, csn=guard)
    except de.DirectoryError as exc:
        if renamed:
            back, _ = ctx.repo.rename(dn, ctx.mapping.group.rdn.ldap, old)
            references.move(ctx.repo, entry.uuid, dn, back)
        if isinstance(exc, de.NoSuchEntry):  # renamed or deleted meanwhile: read again
            raise de.AssertionFailed("the group was renamed or deleted meanwhile") from None
        raise
    version = str((meta.get("entrycsn") or [csn])[0])
    if replacement is None and plan.remove and _follow_removals(
            ctx, entry.uuid, dn, list(plan.remove.values()), remove_dns):
        now = ctx.repo.find_by_id("Group", entry.uuid, ["entryCSN"])
        version = now.csn if now is not None else version
    if added:
        # the members may have been renamed or deleted since they were resolved
        written = {e.uuid: e.dn for e in added}
        settled = references.settle(ctx.repo, entry.uuid, dn, "member",
                                    {e.dn: e.uuid for e in added})
        if settled != written:  # settle rewrote values: the group's version moved on
            now = ctx.repo.find_by_id("Group", entry.uuid, ["entryCSN"])
            version = now.csn if now is not None else version
    return version


def _follow_removals(ctx: Context, group_uuid: str, dn: str, ids: list[str],
                     removed: list[str]) -> bool:
    """After removing members: remove them under the DN they have now, too.

    A member renamed while its removal was under way may have escaped it: its value was
    rewritten to the new DN before our delete of the old one (which then removed
    nothing), or we resolved the new DN while the group still held the old one, which
    the rename then rewrote. So the removed ids are looked up again, with the former DNs
    a rename in progress has recorded (``scimRenamedFrom``, when no other entry took
    them), and every such DN is removed too, until a lookup finds the same DNs as the
    round before. A rename's rewrite asserts the old value is still there, so once
    both the old and the new DN are gone nothing brings the member back. Normally one
    lookup (the same DNs as removed) and no write. Returns whether it wrote.
    """
    before, wrote = sorted(set(removed)), False
    for _ in range(references.ROUNDS):
        found = ctx.repo.resolve_ids([i for i in ids if valid_id(i)],
                                     attributes=[references.MARK])
        dns = sorted({d for e in found.values()
                      for d in [e.dn, *references.unclaimed(ctx.repo, e)]})
        if dns == before or not dns:
            return wrote
        try:
            ctx.repo.change_members(dn, [], dns)
        except de.NoSuchEntry:  # the group itself was renamed meanwhile: follow it
            group = ctx.repo.resolve_ids([group_uuid], kinds=("Group",)).get(
                group_uuid.lower())
            if group is None:
                return wrote
            dn = group.dn
            ctx.repo.change_members(dn, [], dns)
        wrote, before = True, dns
    return wrote


def _read(ctx: Context, scim_id: str, member_ids: list[str]) -> tuple[Entry, dict | None]:
    """The group, and the entries of ``member_ids`` when one search can bring both."""
    valid = [i for i in member_ids if valid_id(i)]
    both = ctx.repo.find_with_ids("Group", scim_id, read_attributes(ctx, False), valid) \
        if valid and valid_id(scim_id) else None
    if both is None:
        return find(ctx, scim_id), None
    entry, resolved = both
    if entry is None:
        raise not_found("Group", scim_id)
    return entry, resolved


def _guarded(ctx: Context, scim_id: str, if_match: str | None, build: Any,
             member_ids: list[str] | None = None) -> str:
    """Read, build, write; re-run on a concurrent change. The first read also resolves
    ``member_ids`` (one search for a member PATCH); re-runs resolve them again. Returns
    the new ETag."""
    with directory_errors(ctx.options.retry_after):
        for attempt in range(ATTEMPTS):
            entry, resolved = _read(ctx, scim_id, (member_ids or []) if attempt == 0 else [])
            if references.unfinished(entry):  # a rename a crash cut short
                references.finish(ctx.repo, entry)
                entry, resolved = find(ctx, scim_id), None
            check_if_match(if_match, entry)
            resource, plan = build(entry)
            try:
                csn = _apply(ctx, entry, resource, plan, guarded=bool(if_match),
                             resolved=resolved)
                return etag_of(Entry(entry.dn, {"entrycsn": [csn]}))
            except de.AssertionFailed:
                if if_match:
                    raise PreconditionFailed("the group changed while it was updated") from None
        raise de.DirectoryBusy("the group is changing too often")


def patch(ctx: Context, scim_id: str, body: Any, if_match: str | None = None) -> str:
    """PATCH (answered 204, Entra's preference): attribute ops + a member delta plan.
    Returns the group's new ETag (the 204 carries it)."""
    ops = scim_patch.parse_patch_request(body, max_operations=ctx.options.max_operations)
    rest, plan = scim_patch.split_members(ops, GROUP)
    # added, removed and replacing values together: each resolution alone may be small
    _check_member_count(ctx, len(plan.add) + len(plan.remove) + len(plan.replace or {}))

    def build(entry: Entry) -> tuple[dict, scim_patch.MemberPlan]:
        current = {"schemas": [CORE_GROUP], **ctx.mapping.group.from_ldap(entry.attrs)}
        patched = scim_patch.apply(current, rest, GROUP) if rest else current
        return load_resource(patched, GROUP, check_schemas=False), plan

    return _guarded(ctx, scim_id, if_match, build,
                    [*plan.add.values(), *plan.remove.values(), *(plan.replace or {}).values()])


def replace(ctx: Context, scim_id: str, body: Any, if_match: str | None = None) -> dict:
    resource = load_resource(body, GROUP)
    plan = scim_patch.MemberPlan()
    plan.do_replace(scim_patch.member_ids(resource.get("members", []), "members"))
    _guarded(ctx, scim_id, if_match, lambda entry: (resource, plan))
    return get(ctx, scim_id)


def delete(ctx: Context, scim_id: str, if_match: str | None = None) -> None:
    """Delete: leave parent groups first (placeholder-safe), then the entry."""
    with directory_errors(ctx.options.retry_after):
        entry = find(ctx, scim_id)
        check_if_match(if_match, entry)
        names = [entry.dn, *references.unclaimed(ctx.repo, entry)]
        references.forget(ctx.repo, names, rounds=1)
        try:
            ctx.repo.delete(entry.dn)
        except de.NoSuchEntry:
            raise not_found("Group", scim_id) from None
        references.forget(ctx.repo, names)  # added meanwhile (see users.delete)
