"""User use cases (RFC 7644 §3.3–3.6) on inetOrgPerson entries."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from directory import errors as de
from directory import references
from directory.changes import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, Changes, diff
from directory.mapping import EXTRA
from directory.repository import Entry
from scim.protocol import patch as scim_patch
from scim.protocol.errors import InvalidValue, PreconditionFailed, Uniqueness
from scim.protocol.schema import CORE_USER, ENTERPRISE_USER, USER
from scim.schemas import load_resource
from scim.service.common import (
    Context,
    check_if_match,
    check_rdn,
    directory_errors,
    etag_of,
    not_found,
    refused,
    valid_id,
)

#: ppolicy: a pwdAccountLockedTime of this value locks the account until removed.
LOCKED = "000001010000Z"
ATTEMPTS = 5
#: How deep nested groups are followed for a user's indirect ``groups``.
NESTING_LIMIT = 16


def read_attributes(ctx: Context) -> list[str]:
    """What a user is read with. Never ``memberOf``: slapd 2.5's dynlist computes it by
    going through every group of the directory (measured: 0.4 ms to read a user
    without it, 3.4 ms with it among 1,000 groups), so a user's groups come from the
    group side instead — an indexed ``(member=<user DN>)`` search, flat in size (see
    :func:`reference_index`).
    """
    return [*ctx.mapping.user.ldap_attributes, "objectClass", "pwdAccountLockedTime",
            references.MARK]


def find(ctx: Context, scim_id: str) -> Entry:
    entry = None
    if valid_id(scim_id):
        entry = ctx.repo.find_by_id("User", scim_id, read_attributes(ctx))
    if entry is None:
        raise not_found("User", scim_id)
    return entry


# --- rendering ------------------------------------------------------------------------


def _manager_dns(ctx: Context, entries: list[Entry]) -> list[str]:
    rows = ctx.mapping.user.references
    return [v for e in entries for r in rows for v in e.values(r.ldap)]


#: What a reference (manager, group) is shown with.
REFERENCE_ATTRIBUTES = ["displayName", "cn", "scimDerived"]

#: One level of :func:`reference_index` as resolved by the repository: entries found by
#: DN value, parent groups by child DN (both as given; values are matched to entries by
#: the server's rules, never by case-folding here).
Level = tuple[dict[str, Entry], dict[str, list[Entry]]]


def first_references(ctx: Context, entries: list[Entry], groups: bool
                     ) -> tuple[list[str], dict[str, str]]:
    """What the first search of :func:`reference_index` asks about: the DNs to resolve
    (managers) and, with ``groups``, the entries whose groups to find (the users, DN →
    entryUUID)."""
    pending = _manager_dns(ctx, entries)
    children = {e.dn: e.uuid for e in entries} if groups else {}
    return pending, children


def reference_index(ctx: Context, entries: list[Entry], groups: bool,
                    first: Level | None = None) -> dict[str, dict]:
    """Resolve every DN the entries refer to: managers, groups and the groups those
    groups are in — one batched search per level, for one entry as for a whole page: the
    first finds the managers and the groups that list the users as members, the next
    the groups that list those groups, and so on while any are found. ``first``: the
    first level, already resolved (sent along with a write).

    Keyed by DN as the entries spell it (a manager value, an entry's or a group's DN);
    each value: ``id``, ``display``, ``dn`` and ``parents`` (DNs of the groups that list
    it as a member); with ``groups``, the entries themselves are in it too.
    """
    pending, children = first_references(ctx, entries, groups)
    refs: dict[str, dict] = {}
    if groups:
        refs.update((e.dn, _reference(e)) for e in entries)
    for _ in range(NESTING_LIMIT):  # cycles end through `refs`; depth is bounded
        if not pending and not children:
            break
        if first is not None:
            (found, parents), first = first, None
        else:
            found, parents = ctx.repo.resolve_with_parents(pending, children,
                                                           REFERENCE_ATTRIBUTES)
        refs.update((dn, _reference(e)) for dn, e in found.items())
        pending, children = [], {}
        for child, above in parents.items():
            for parent in above:
                key = parent.dn
                if key not in refs:
                    refs[key] = _reference(parent)
                    children[parent.dn] = parent.uuid
                if child in refs:
                    refs[child].setdefault("parents", []).append(key)
    return refs


def _reference(entry: Entry) -> dict:
    return {"id": entry.uuid, "display": _display(entry), "dn": entry.dn}


def _display(entry: Entry) -> str:
    """displayName, else cn unless the bridge derived it (derived values are never shown)."""
    derived = {str(d).lower() for d in entry.values("scimDerived")}
    cn = "" if "cn" in derived else entry.first("cn")
    return str(entry.first("displayName") or cn or "")


def render(ctx: Context, entry: Entry, refs: dict[str, dict], groups: bool = True) -> dict:
    """The SCIM User for an entry (before projection)."""
    body = ctx.mapping.user.from_ldap(entry.attrs, refs)
    manager = body.get(ENTERPRISE_USER, {}).get("manager")
    if manager:
        ref = next((r for r in refs.values() if r["id"] == manager["value"]), None)
        manager["$ref"] = ctx.location("/Users", manager["value"])
        if ref and ref["display"]:
            manager["displayName"] = ref["display"]
    resource: dict[str, Any] = {
        "schemas": [CORE_USER, *([ENTERPRISE_USER] if ENTERPRISE_USER in body else [])],
        "id": entry.uuid,
        **body,
    }
    if groups:
        memberships = group_memberships(ctx, entry, refs)
        if memberships:
            resource["groups"] = memberships
    resource["meta"] = {
        "resourceType": "User",
        "created": entry.created,
        "lastModified": entry.modified,
        "location": ctx.location("/Users", entry.uuid),
        "version": etag_of(entry),
    }
    return resource


def group_memberships(ctx: Context, entry: Entry, refs: dict[str, dict]) -> list[dict]:
    """Direct groups, then indirect ones through nested groups (from the ``parents``
    :func:`reference_index` resolved; no directory access here)."""
    own = refs.get(entry.dn, {})
    direct = [refs[g] for g in own.get("parents", []) if g in refs]
    out = [_membership(ctx, g["id"], g["display"], "direct") for g in direct]
    seen = {g["dn"] for g in direct}
    frontier = direct
    while frontier:
        upper = []
        for group in frontier:
            for parent in group.get("parents", []):
                if parent in refs and parent not in seen:
                    seen.add(parent)
                    upper.append(refs[parent])
                    out.append(_membership(ctx, refs[parent]["id"], refs[parent]["display"],
                                           "indirect"))
        frontier = upper
    return out


def _membership(ctx: Context, gid: str, display: str, kind: str) -> dict:
    return {"value": gid, "$ref": ctx.location("/Groups", gid), "display": display,
            "type": kind}


def get(ctx: Context, scim_id: str, groups: bool = True) -> dict:
    with directory_errors(ctx.options.retry_after):
        entry = find(ctx, scim_id)
        return render(ctx, entry, reference_index(ctx, [entry], groups), groups)


# --- writing --------------------------------------------------------------------------


def _desired(ctx: Context, resource: dict, entry: Entry | None = None,
             before: dict[str, str] | None = None
             ) -> tuple[dict[str, list[str]], dict[str, str]]:
    """LDAP values for a validated resource, with references resolved to DNs; and the
    references asked for (LDAP attribute → the SCIM id it names).

    A reference that names the same id as when ``entry`` was read (``before``) is not
    resolved again: it is not written (see :func:`_changes`), and its user may be being
    deleted right now — a PATCH of the user's title must not fail on that."""
    attrs, refs = ctx.mapping.user.to_ldap(resource, ctx.options.password_scheme)
    if entry is not None and before:
        for ldap_attr in [a for a, i in refs.items() if i.lower() == before.get(a)]:
            attrs[ldap_attr] = [str(v) for v in entry.values(ldap_attr)]
            del refs[ldap_attr]
    if refs:
        found = ctx.repo.resolve_ids(refs.values(), kinds=("User",))
        for ldap_attr, ref_id in refs.items():
            target = found.get(ref_id.lower())
            if target is None or not target.dn.lower().endswith(ctx.repo.tenant.people_dn.lower()):
                raise InvalidValue(f"manager {ref_id!r} is not a known User id")
            attrs[ldap_attr] = [target.dn]
    return attrs, refs


def _settle(ctx: Context, entry: Entry, written: dict[str, list[str]],
            ids: dict[str, str]) -> None:
    """Check the references just written still name the users they were resolved to
    (see :func:`directory.references.settle`); ``entry`` shows what they now are."""
    for ldap_attr, ref_id in ids.items():
        values = written.get(ldap_attr)
        if not values:
            continue
        final = references.settle(ctx.repo, entry.uuid, entry.dn, ldap_attr,
                                  {values[0]: ref_id})
        now = final.get(ref_id)
        entry.attrs[ldap_attr.lower()] = [now] if now else []


def _lock(ctx: Context, attrs: dict[str, list[str]]) -> bool:
    active = ctx.mapping.user.row_for_attr("active")
    return bool(ctx.options.ppolicy_lock and active and attrs.get(active.ldap) == ["FALSE"])


def create(ctx: Context, body: Any) -> dict:
    resource = load_resource(body, USER)
    with directory_errors(ctx.options.retry_after):
        attrs, ids = _desired(ctx, resource)
        if _lock(ctx, attrs):
            attrs["pwdAccountLockedTime"] = [LOCKED]
        rdn = ctx.mapping.user.rdn
        user_name = resource["userName"]
        check_rdn(rdn.ldap, user_name, "userName")
        if ctx.repo.find_one("User", rdn.ldap, user_name, []) is not None:
            raise _taken(user_name)
        dn = ctx.repo.user_dn(rdn.ldap, user_name)
        try:
            entry = ctx.repo.add(dn, ctx.mapping.user.object_classes, attrs)
        except de.EntryExists:
            raise _taken(user_name) from None
        except de.InvalidData as exc:
            raise _refused(ctx, exc) from None
        _settle(ctx, entry, attrs, ids)
        return render(ctx, entry, reference_index(ctx, [entry], False), groups=False)


def _refused(ctx: Context, exc: de.InvalidData) -> InvalidValue:
    """slapd refused a value (e.g. a non-ASCII ``mail``): name the SCIM attribute."""
    ldap = (de.refused_attribute(exc) or "").lower()
    paths = [r.loc.text for r in ctx.mapping.user.rows if r.ldap.lower() == ldap]
    return refused(exc, paths[0] if paths else None)


def _taken(user_name: str) -> Uniqueness:
    return Uniqueness(f"userName {user_name!r} is already in use")


def _changes(ctx: Context, entry: Entry, desired: dict[str, list[str]],
             ids: dict[str, str], before: dict[str, str]) -> Changes:
    """The modify that makes ``entry`` hold ``desired``. A reference (manager) is
    written only when the SCIM id it names changes (``ids`` against ``before``, the ids
    the entry's values named when read): the DN of an unchanged manager may be in the
    middle of a rename, which moves the value itself, and an unresolvable one (named
    nothing when read) is no reason to remove it."""
    mapping = ctx.mapping.user
    managed = [r.ldap for r in mapping.rows if r.codec != "password" and r is not mapping.rdn]
    managed += ["scimDerived", "scimPrimary", EXTRA]
    if any(k.lower() == "userpassword" for k in desired):
        managed.append("userPassword")
    changes = diff(entry.attrs, desired, managed)
    for r in (r for r in mapping.rows if r.codec == "string" and r.ldap in changes
              and (r.loc.attr, r.loc.type) not in mapping.value_only):
        # SCIM shows the first value of a multi-valued LDAP attribute (but every value
        # of an e-mail or phone type); the others (of entries made outside SCIM) stay
        # unless that SCIM value itself changes
        cur = [str(v) for v in entry.values(r.ldap)]
        if len(cur) > 1 and cur[:1] == desired.get(r.ldap):
            del changes[r.ldap]
    for r in mapping.references:
        if (ids.get(r.ldap) or "").lower() == (before.get(r.ldap) or ""):
            changes.pop(r.ldap, None)
    if ctx.options.ppolicy_lock:
        locked = [str(v) for v in entry.values("pwdAccountLockedTime")]
        if _lock(ctx, desired) and locked != [LOCKED]:
            changes["pwdAccountLockedTime"] = [(MODIFY_REPLACE, [LOCKED])]
        elif not _lock(ctx, desired) and locked:
            changes["pwdAccountLockedTime"] = [(MODIFY_REPLACE, [])]
    classes = {str(c).lower() for c in entry.values("objectClass")}
    missing = [c for c in mapping.object_classes if c.lower() not in classes]
    if changes and missing:
        changes["objectClass"] = [(MODIFY_ADD, missing)]
    return changes


def _write(ctx: Context, entry: Entry, resource: dict, before: dict[str, str]
           ) -> tuple[Entry, Level | None]:
    """Make the entry hold ``resource``: one modify, then a rename if userName changed.

    Order and why: the modify goes first because slapd may refuse a value (syntax) and
    a refused modify writes nothing, so such an error leaves the directory untouched.
    Uniqueness of the new name is checked before; the rename loses a race for it only
    if the name was taken in between, and then the modify is undone. The modify is
    guarded by an entryCSN assertion, so a concurrent writer makes us re-read and
    re-apply instead of losing its update; the rename that follows our own modify
    changes only the DN, so it cannot lose another writer's values.

    Returns the entry as it now is — what was read, the changes, and the server's
    post-read meta — so that the answer needs no second read; and, when the modify could
    carry it, the first level of the entry's references (see :func:`reference_index`).

    After the writes: a rename moves every reference to the old DN
    (:func:`directory.references.move`), and a manager just set is checked to still
    name its user (:func:`directory.references.settle`).
    """
    desired, ids = _desired(ctx, resource, entry, before)
    rdn = ctx.mapping.user.rdn
    new_name = resource["userName"]
    renamed = new_name != str(entry.first(rdn.ldap) or "")
    changes = _changes(ctx, entry, desired, ids, before)
    set_refs = {a: i for a, i in ids.items() if a in changes}
    if renamed:
        check_rdn(rdn.ldap, new_name, "userName")
        other = ctx.repo.find_one("User", rdn.ldap, new_name, [])
        if other is not None and other.uuid != entry.uuid:
            raise _taken(new_name)
    first = None
    written_changes = _merge(changes, references.mark(entry)) if renamed else changes
    try:
        if changes and not renamed:
            dns, children = first_references(ctx, [_applied(entry, entry.dn, changes, {})],
                                             groups=True)
            meta, first = ctx.repo.modify_resolving(
                entry.dn, changes, csn=entry.csn, dns=dns, children=children,
                attributes=REFERENCE_ATTRIBUTES)
        elif written_changes:
            # Permissive with a rename: the record of the old DN may be there already,
            # spelled as another rename still in progress wrote it (equal for slapd)
            meta = ctx.repo.modify(entry.dn, written_changes, csn=entry.csn,
                                   permissive=renamed)
        else:
            meta = {}
    except de.NoSuchEntry:  # renamed or deleted since it was read: read it again
        raise de.AssertionFailed("the user was renamed or deleted meanwhile") from None
    if not renamed:
        written = _applied(entry, entry.dn, changes, meta)
        if set_refs:
            _settle(ctx, written, desired, set_refs)
            if any(written.values(a) != desired.get(a) for a in set_refs):
                first = None  # the answer's references were read for other values
        return written, first
    try:
        new_dn, meta_after = ctx.repo.rename(entry.dn, rdn.ldap, new_name)
    except de.NoSuchEntry:
        raise de.AssertionFailed("the user was renamed or deleted meanwhile") from None
    except de.EntryExists:
        csn = str(meta.get("entrycsn", [""])[0]) or None
        undo = _merge(_undo(entry, changes), {references.MARK: [(MODIFY_DELETE, [entry.dn])]})
        with suppress(de.AssertionFailed):  # changed again meanwhile: theirs stands
            ctx.repo.modify(entry.dn, undo, csn=csn)
        raise _taken(new_name) from None
    new_dn = references.move(ctx.repo, entry.uuid, entry.dn, new_dn)
    meta_after.update(references.unmark(ctx.repo, new_dn, [entry.dn]))
    written = _applied(entry, new_dn, changes, {**meta, **meta_after})
    written.attrs[rdn.ldap.lower()] = [new_name]
    if set_refs:
        _settle(ctx, written, desired, set_refs)
    return written, None


def _merge(a: Changes, b: Changes) -> Changes:
    """Two modifies as one (the operations of an attribute in both, in order)."""
    out = {k: list(v) for k, v in a.items()}
    for name, ops in b.items():
        key = next((k for k in out if k.lower() == name.lower()), name)
        added = {v.lower() for op, values in out.get(key, []) if op == MODIFY_ADD
                 for v in values}
        ops = [(op, [v for v in values if op != MODIFY_ADD or v.lower() not in added])
               for op, values in ops]
        out[key] = [*out.get(key, []), *((op, vs) for op, vs in ops if vs)]
        if not out[key]:
            del out[key]
    return out


def _applied(entry: Entry, dn: str, changes: Changes, meta: dict[str, list[Any]]) -> Entry:
    """The entry after ``changes`` (all REPLACE, or ADD of object classes) and meta."""
    attrs = dict(entry.attrs)
    for name, ops in changes.items():
        key = name.lower()
        for op, values in ops:
            attrs[key] = [*attrs.get(key, []), *values] if op == MODIFY_ADD else list(values)
    attrs.pop("userpassword", None)  # written hashed, never read back
    attrs.update(meta)
    return Entry(dn, attrs)


def _undo(entry: Entry, changes: Changes) -> Changes:
    """The modify that restores what ``changes`` replaced (values as ``entry`` held them)."""
    undo: Changes = {}
    for name, ops in changes.items():
        if name.lower() == "objectclass":
            undo[name] = [(MODIFY_DELETE, [v for _, values in ops for v in values])]
        elif name.lower() != "userpassword":  # never read, so it cannot be restored
            undo[name] = [(MODIFY_REPLACE, [str(v) for v in entry.values(name)])]
    return undo


def _guarded(ctx: Context, scim_id: str, if_match: str | None, build: Any) -> dict:
    """Read, build the new resource, write; re-run on a concurrent change.

    LDAP operations: one read; the manager's id when there is one (what PATCH paths
    see); the write, sent together with the search that finds the user's groups (and
    manager) for the answer, and one search per level of groups above those — the
    answer is built from what was written, not read again.
    """
    with directory_errors(ctx.options.retry_after):
        for _ in range(ATTEMPTS):
            entry = find(ctx, scim_id)
            if references.unfinished(entry):  # a rename a crash cut short
                references.finish(ctx.repo, entry)
                entry = find(ctx, scim_id)
            check_if_match(if_match, entry)
            refs = reference_index(ctx, [entry], groups=False)
            resource = build(ctx, entry, refs)
            try:
                written, first = _write(ctx, entry, resource, _reference_ids(ctx, entry, refs))
            except de.InvalidData as exc:
                raise _refused(ctx, exc) from None
            except de.AssertionFailed:
                if if_match:
                    raise PreconditionFailed("the resource changed while it was updated") from None
                continue
            refs = reference_index(ctx, [written], groups=True, first=first)
            return render(ctx, written, refs, groups=True)
        raise de.DirectoryBusy("the user is changing too often")


def _reference_ids(ctx: Context, entry: Entry, refs: dict[str, dict]) -> dict[str, str]:
    """LDAP reference attribute → the SCIM id its value named when read (lower-cased
    like the ids :func:`_changes` compares it with)."""
    out = {}
    for r in ctx.mapping.user.references:
        ref = refs.get(str(entry.first(r.ldap) or ""))
        if ref:
            out[r.ldap] = ref["id"].lower()
    return out


def current_resource(ctx: Context, entry: Entry, refs: dict[str, dict]) -> dict:
    """The writable SCIM view of an entry (what PATCH operates on)."""
    resource = ctx.mapping.user.from_ldap(entry.attrs, refs)
    resource["schemas"] = [CORE_USER, ENTERPRISE_USER]
    return resource


def patch(ctx: Context, scim_id: str, body: Any, if_match: str | None = None) -> dict:
    ops = scim_patch.parse_patch_request(body, max_operations=ctx.options.max_operations)

    def build(ctx: Context, entry: Entry, refs: dict[str, dict]) -> dict:
        patched = scim_patch.apply(current_resource(ctx, entry, refs), ops, USER)
        return load_resource(patched, USER, check_schemas=False)

    return _guarded(ctx, scim_id, if_match, build)


def replace(ctx: Context, scim_id: str, body: Any, if_match: str | None = None) -> dict:
    resource = load_resource(body, USER)
    return _guarded(ctx, scim_id, if_match, lambda ctx, entry, refs: resource)


def delete(ctx: Context, scim_id: str, if_match: str | None = None) -> None:
    """Delete: memberships and manager references first, then the entry.

    refint cannot empty a groupOfNames, and for a manager it would write the group
    placeholder as the reports' manager, later, in a background task. A crash before
    the entry is gone leaves a user with fewer groups or reports; the retried DELETE
    finds it and finishes.
    """
    with directory_errors(ctx.options.retry_after):
        entry = find(ctx, scim_id)
        check_if_match(if_match, entry)
        attrs = [r.ldap for r in ctx.mapping.user.references]
        names = [entry.dn, *references.unclaimed(ctx.repo, entry)]
        references.forget(ctx.repo, names, attrs, rounds=1)
        try:
            ctx.repo.delete(entry.dn)
        except de.NoSuchEntry:
            raise not_found("User", scim_id) from None
        # a member add or manager set that resolved this user before the delete and
        # wrote after the first pass: removed here, or by its own check (settle)
        references.forget(ctx.repo, names, attrs)
