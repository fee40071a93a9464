"""Reference integrity: ``member`` and ``manager`` values that name the entry meant.

A reference is a DN, and DNs change (renames) or stop naming anything (deletes) while
other requests write them, on other workers and other instances. No lock spans LDAP
operations, so each side checks after it writes (docs/directory.md, "References"):

- a **rename** (:func:`move`) does its modDN, then finds every value that names the old
  DN and rewrites it to the new one, until a search finds none and the new DN is seen
  to still name the entry;
- a **write of references** (member add, manager set: :func:`settle`) writes the DNs it
  resolved, then checks that each still names the entry it was resolved to (same
  entryUUID); a value that names nothing or another entry is removed and, when the
  entry now has another DN, that DN is written and checked in turn;
- a **delete** (:func:`forget`) removes the references, deletes the entry, then removes
  any reference written meanwhile.

Whether a value names an entry is always the server's decision (its DN matching rules:
``uid=CASEY`` names ``uid=casey``, ``uid=Straẞe-x`` does not name ``uid=Straße-x``);
values the bridge writes are spelled exactly as the entry's DN, so the common case is a
plain string comparison and the rest a lookup.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE
from ldap3.utils.conv import escape_filter_chars

from directory import ber
from directory.errors import AssertionFailed, NoSuchAttribute, NoSuchEntry
from directory.repository import GROUP_CLASS, Entry, Repository

#: Reference attributes the bridge keeps whole (a ``member`` names a user or a group, a
#: ``manager`` a user).
ATTRIBUTES = ("member", "manager")
#: Rounds of find-and-fix before giving up (each round normally finds nothing to do;
#: a second is needed only when another writer raced the first).
ROUNDS = 6
#: The attribute recording DNs an entry had before a rename not yet finished.
MARK = "scimRenamedFrom"
_MATCHED_VALUES = "1.2.826.0.1.3344810.2.3"


def _only(values: dict[str, str]) -> tuple[str, bool, bytes]:
    """RFC 3876 matched values: of each attribute, only the values equal to the DN."""
    items = [ber.filter_ber(f"({a}={escape_filter_chars(v)})") for a, v in values.items()]
    return (_MATCHED_VALUES, False, ber.sequence(items))


def _referrers(repo: Repository, dn: str) -> list[tuple[Entry, str, str]]:
    """(entry, attribute, value) for every ``member``/``manager`` value of the tenant
    that the server says names ``dn``, the value as stored (one search)."""
    value = escape_filter_chars(dn)
    flt = "(|" + "".join(f"({a}={value})" for a in ATTRIBUTES) + ")"
    entries, _ = repo.search(repo.tenant.base_dn, flt, list(ATTRIBUTES),
                             controls=[_only(dict.fromkeys(ATTRIBUTES, dn))])
    return [(e, a, str(v)) for e in entries if repo.in_tenant(e.dn)
            for a in ATTRIBUTES for v in e.values(a)]


def respell(repo: Repository, holder: str, attr: str, value: str, dn: str) -> None:
    """Replace ``value`` of ``holder``'s ``attr`` by ``dn``, if ``value`` is still there.

    Delete first, then add, in one modify: when the server holds the two DNs equal (a
    case-only or Unicode-equivalent rename) the delete removes the one value and the add
    writes it again, spelled anew; add-then-delete (with Permissive Modify) would drop
    it, and would empty a group whose only member it is.
    """
    flt = f"({attr}={escape_filter_chars(value)})"
    if attr == "manager":
        changes = {attr: [(MODIFY_REPLACE, [dn])]}
    else:
        changes = {attr: [(MODIFY_DELETE, [value]), (MODIFY_ADD, [dn])]}
    try:
        repo.modify(holder, changes, permissive=True, condition=flt)
    except (AssertionFailed, NoSuchAttribute, NoSuchEntry):
        pass  # gone or renamed meanwhile: the next round's search sees it as it is


def move(repo: Repository, uuid: str, old_dn: str, new_dn: str) -> str:
    """After entry ``uuid`` was renamed from ``old_dn`` to ``new_dn``: every reference
    to it names it by its current DN, spelled exactly so. Returns that DN.

    Each round: find the values that name any DN the entry had (the server's matching,
    so a case-only rename finds its own values too: those already spelled as now are
    left), rewrite them, then check that the DN still names the entry. The rounds end
    when a search finds nothing to rewrite (normally the second). A writer that put the
    old DN in after our search checks its own write and fixes it (:func:`settle`); a
    rename racing ours is seen here as a DN that no longer names the entry, and we
    follow the entry to its next DN.
    """
    names, current = [old_dn], new_dn
    for _ in range(ROUNDS):
        found = [r for name in names for r in _referrers(repo, name) if r[2] != current]
        if not found:
            return current
        for holder, attr, value in found:
            respell(repo, holder.dn, attr, value, current)
        now = repo.resolve_dns([current], []).get(current)
        if now is not None and now.uuid.lower() == uuid.lower() and now.dn == current:
            continue  # confirm: a concurrent write may have come after the search
        # renamed again meanwhile (perhaps to a name the server holds equal)
        moved = repo.resolve_ids([uuid]).get(uuid.lower())
        if moved is None:  # deleted meanwhile: no value may name it
            forget(repo, [*names, current])
            return current
        names, current = [*names, current], moved.dn
    return current


def mark(entry: Entry) -> dict[str, list[tuple[str, list[str]]]]:
    """The modify (to merge into the one before a rename) recording the entry's DN as
    a former one, so that a rename a crash cut short (modDN done, references not all
    moved) is finished by the next write to the entry (:func:`finish`)."""
    changes: dict[str, list[tuple[str, list[str]]]] = {MARK: [(MODIFY_ADD, [entry.dn])]}
    if "scimresource" not in {str(c).lower() for c in entry.values("objectClass")}:
        changes["objectClass"] = [(MODIFY_ADD, ["scimResource"])]
    return changes


def unmark(repo: Repository, dn: str, former: list[str]) -> dict[str, list[Any]]:
    """Drop the record of former DNs whose references are all moved; the post-read
    meta values (empty when nothing was recorded any more)."""
    meta: dict[str, list[Any]] = {}
    for value in former:
        try:
            meta = repo.modify(dn, {MARK: [(MODIFY_DELETE, [value])]})
        except (NoSuchAttribute, NoSuchEntry):
            continue  # dropped already (a concurrent finish)
    return meta


def unfinished(entry: Entry) -> list[str]:
    """Former DNs of a rename not finished (see :func:`mark`)."""
    return [str(v) for v in entry.values(MARK)]


def unclaimed(repo: Repository, entry: Entry) -> list[str]:
    """The entry's recorded former DNs that name no other entry now: their values are
    the entry's. One taken meanwhile by a new entry of that name is left alone (its
    values cannot be told apart; the drift check reports them)."""
    former = unfinished(entry)
    if not former:
        return []
    named = repo.resolve_dns(former, [])
    return [d for d in former
            if d not in named or named[d].uuid.lower() == entry.uuid.lower()]


def finish(repo: Repository, entry: Entry) -> None:
    """Finish the renames a crash cut short: move the references of every recorded
    former DN (that no other entry took since) to the entry's DN, then drop the record."""
    former = unfinished(entry)
    current = entry.dn
    for old in unclaimed(repo, entry):
        current = move(repo, entry.uuid, old, current)
    unmark(repo, current, former)


def settle(repo: Repository, holder_uuid: str, holder_dn: str, attr: str,
           written: dict[str, str]) -> dict[str, str]:
    """After writing the reference values ``written`` (value → entryUUID it was resolved
    to) into ``attr`` of the entry ``holder_uuid``: make each name that entry.

    One lookup of the values (by the server's matching) normally confirms them all.
    A value that names nothing or another entry (its entry was renamed or deleted after
    we resolved it; another entry took the name) is removed, and the entry's current
    DN, if it still exists, is written and checked in the next round. Returns entryUUID
    → the value now naming it (missing: its entry is gone, or for ``manager`` another
    writer set a different one meanwhile).
    """
    pending, final = dict(written), {}
    holder = holder_dn
    for _ in range(ROUNDS):
        if not pending:
            break
        named = repo.resolve_dns(list(pending), [])
        stale: dict[str, str] = {}
        respelled: dict[str, str] = {}
        for value, uuid in pending.items():
            entry = named.get(value)
            if entry is not None and entry.uuid.lower() == uuid.lower():
                final[uuid] = entry.dn
                if entry.dn != value:  # renamed to an equal name: spell it anew, check
                    respell(repo, holder, attr, value, entry.dn)
                    respelled[entry.dn] = uuid
            else:
                stale[value] = uuid
        if not stale:
            pending = respelled
            continue
        moved = repo.resolve_ids(list(stale.values()))
        added = {moved[u.lower()].dn: u for u in stale.values() if u.lower() in moved}
        for u in stale.values():
            final.pop(u, None)
        final.update((u, dn) for dn, u in added.items())
        try:
            _replace(repo, holder, attr, list(stale), list(added))
        except NoSuchEntry:  # the holder was renamed meanwhile (or deleted)
            again = repo.resolve_ids([holder_uuid]).get(holder_uuid.lower())
            if again is None:
                return final
            holder = again.dn
            _replace(repo, holder, attr, list(stale), list(added))
        pending = {**added, **respelled}
    return final


def _replace(repo: Repository, holder: str, attr: str, remove: list[str],
             add: list[str]) -> None:
    """Remove stale reference values and add their entries' current DNs."""
    if attr == "member":
        if add:
            repo.change_members(holder, add, remove)
        else:
            repo.change_members(holder, [], remove)
        return
    # manager: one value; remove only if it is still a stale one (or refint's
    # placeholder), and set the new one only where no other manager was set meanwhile
    stale = "".join(f"({attr}={escape_filter_chars(v)})"
                    for v in [*remove, repo.tenant.placeholder_dn])
    try:
        repo.modify(holder, {attr: [(MODIFY_REPLACE, add[:1])]}, condition=f"(|{stale})")
    except AssertionFailed:
        pass


def forget(repo: Repository, dns: Iterable[str], attributes: Iterable[str] = ("manager",),
           *, rounds: int = ROUNDS) -> None:
    """Take the DNs out of every group of the tenant and out of the reference
    ``attributes`` of its people; until a search finds none, or for ``rounds`` rounds
    (a delete's first pass, before the entry goes, takes one: the pass after the delete
    repeats until clean).

    One search per DN and round finds both kinds of referrer. A referrer renamed
    meanwhile is found again in the next round under its new DN. ``manager`` values that
    are refint's placeholder (written when a manager is deleted under refint) are
    removed too: a placeholder is never anyone's manager.
    """
    names = list(attributes)
    targets = list(dns)
    placeholder = escape_filter_chars(repo.tenant.placeholder_dn)
    for _ in range(rounds):
        busy = False
        for dn in targets:
            value = escape_filter_chars(dn)
            refer = "".join(f"({a}={value})({a}={placeholder})" for a in names)
            entries, _ = repo.search(
                repo.tenant.base_dn,
                f"(|(&(objectClass={GROUP_CLASS})(member={value})){refer})",
                ["objectClass"])
            for entry in entries:
                if not repo.in_tenant(entry.dn):
                    continue
                busy = True
                try:
                    _unrefer(repo, entry, dn, names)
                except NoSuchEntry:
                    continue  # renamed or deleted meanwhile: the next round sees it
        if not busy:
            return


def _unrefer(repo: Repository, entry: Entry, dn: str, names: list[str]) -> None:
    classes = {str(c).lower() for c in entry.values("objectClass")}
    if GROUP_CLASS.lower() in classes:
        repo.change_members(entry.dn, [], [dn])
        return
    for attr in names:
        for value in (dn, repo.tenant.placeholder_dn):
            try:
                repo.modify(entry.dn, {attr: [(MODIFY_DELETE, [value])]},
                            condition=f"({attr}={escape_filter_chars(value)})")
                break  # one manager: the placeholder is only looked for in its stead
            except (AssertionFailed, NoSuchAttribute):
                continue  # not this attribute's value (any more)
