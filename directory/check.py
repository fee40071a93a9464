"""Drift in one tenant's tree, found in one streaming pass, and the guarded writes that
repair what is safe to repair.

What the pass reads, and why memory stays bounded whatever the tenant's size:

* ``ou=People`` in pages of :data:`PAGE` entries (RFC 2696), with the attributes the
  mapping stores, never ``member`` nor a password. Per page, the ``manager`` values are
  checked for existence in batched searches, then the page is dropped.
* ``ou=Groups`` in pages of group *names* (no ``member``); then each group's ``member``
  values are read on their own, one group at a time, and checked in batches of
  :data:`BATCH` DNs. At most one group's values are held at once (LDAP sends all values
  of an attribute in one message: the largest group bounds the memory, not the tenant).
* Whether a DN names an entry is asked of the server — ``(|(entryDN=…)…)`` over the
  tenant, the server's ``distinguishedNameMatch`` deciding — never decided by comparing
  text in Python. A batch answered with fewer entries than it asked is split in halves
  until each missing DN is found (distinct values of one attribute are distinct for the
  server too, so counts tell).
* Name collisions need no search per name: two entries directly below ``ou=People`` whose
  RDN is ``uid=<their one uid>`` cannot collide, because slapd keeps DNs unique under the
  same matching rule its ``uid`` equality uses (it refuses ``uid=José`` beside its NFD
  form, fullwidth form, ``ﬁ``/``fi`` and so on). So only the entries that escape that
  guarantee — a second ``uid`` value, another RDN attribute, a deeper OU — are looked up,
  with an equality filter per value: the server's matching, for the few that need it.
  Groups likewise with ``cn``.

Every repair is one modify, guarded (RFC 4528) by the entryCSN read just before it and by
what it assumes about the values, so a concurrent change makes it fail and be re-read,
never clobbered. A DN found dangling is asked about again right before the write.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from typing import Any

from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, SUBTREE
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from directory import references
from directory.dn import normalise_dn
from directory.errors import (
    AssertionFailed,
    DirectoryError,
    EntryExists,
    NoSuchAttribute,
    NoSuchEntry,
    ObjectClassViolation,
)
from directory.mapping import Mapping
from directory.repository import BATCH, GROUP_CLASS, USER_CLASS, Entry, Repository

#: Entries per page of the People and Groups searches.
PAGE = 500
#: Values kept per finding (the count is exact; the sample is for people to look at).
SAMPLE = 10
#: Findings kept per scan (each is small; the counts per kind stay exact beyond this).
MAX_FINDINGS = 5000
#: ppolicy: the permanent lock the bridge writes for a disabled user (scim/service/users).
LOCKED = "000001010000Z"
SCIM_CLASS = "scimresource"
PAGED_OID = "1.2.840.113556.1.4.319"

# -- kinds of drift ----------------------------------------------------------------------
DANGLING_MEMBER = "dangling-member"
OUTSIDE_MEMBER = "outside-member"
PLACEHOLDER_BESIDE_MEMBERS = "placeholder-beside-members"
EMPTY_GROUP = "empty-group"
DANGLING_MANAGER = "dangling-manager"
OUTSIDE_MANAGER = "outside-manager"
PLACEHOLDER_MANAGER = "placeholder-manager"
DISABLED_NOT_LOCKED = "disabled-not-locked"
LOCKED_NOT_DISABLED = "locked-not-disabled"
DERIVED_ABSENT = "derived-absent"
DERIVED_UNKNOWN = "derived-unknown"
PRIMARY_WITHOUT_VALUE = "primary-without-value"
NAMING_VALUES = "naming-values"
NAME_COLLISION = "name-collision"
NOT_SCIM_RESOURCE = "not-scim-resource"
UNFINISHED_RENAME = "unfinished-rename"

#: Kind → what it means (the table's legend, the docs and the dashboard show it).
KINDS: dict[str, str] = {
    DANGLING_MEMBER: "member values that name no entry",
    OUTSIDE_MEMBER: "member values outside the tenant's People and Groups",
    PLACEHOLDER_BESIDE_MEMBERS: "the empty-group placeholder beside real members",
    EMPTY_GROUP: "a group with no real member and no placeholder",
    DANGLING_MANAGER: "a manager that names no entry",
    OUTSIDE_MANAGER: "a manager outside the tenant's People",
    PLACEHOLDER_MANAGER: "a manager that is the placeholder (refint's filler)",
    DISABLED_NOT_LOCKED: f"scimActive FALSE without pwdAccountLockedTime {LOCKED}",
    LOCKED_NOT_DISABLED: f"pwdAccountLockedTime {LOCKED} without scimActive FALSE",
    DERIVED_ABSENT: "scimDerived names an attribute the entry does not hold",
    DERIVED_UNKNOWN: "scimDerived names an attribute the mapping never derives",
    PRIMARY_WITHOUT_VALUE: "scimPrimary names a value the entry does not hold",
    NAMING_VALUES: "the naming attribute (uid/cn) is not just the RDN's one value",
    NAME_COLLISION: "a userName or displayName that the server matches to another entry",
    NOT_SCIM_RESOURCE: "an entry under People/Groups without objectClass scimResource",
    UNFINISHED_RENAME: "a rename a crash cut short (scimRenamedFrom): references may "
                       "still name the former DN",
}
#: What ``repair`` fixes; everything else is reported only.
REPAIRABLE = frozenset({DANGLING_MEMBER, PLACEHOLDER_BESIDE_MEMBERS, EMPTY_GROUP,
                        DANGLING_MANAGER, PLACEHOLDER_MANAGER, DISABLED_NOT_LOCKED,
                        LOCKED_NOT_DISABLED, UNFINISHED_RENAME})


@dataclass
class Finding:
    """One kind of drift on one entry; ``values``: a sample of at most :data:`SAMPLE`;
    ``attribute``: the reference attribute, for the manager kinds."""

    kind: str
    dn: str
    detail: str
    values: list[str] = field(default_factory=list)
    count: int = 1
    attribute: str = ""

    @property
    def repairable(self) -> bool:
        return self.kind in REPAIRABLE

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "repairable": self.repairable}


@dataclass
class Scan:
    """What one pass over a tenant read and found."""

    users: int = 0
    groups: int = 0
    member_values: int = 0
    others: int = 0
    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    truncated: int = 0

    def add(self, finding: Finding) -> None:
        self.counts[finding.kind] = self.counts.get(finding.kind, 0) + 1
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(finding)
        else:
            self.truncated += 1


@dataclass
class Fix:
    """The outcome of repairing one finding: ``fixed``, ``skipped`` (nothing left to do,
    or the entry kept changing) or ``failed``; ``attributes``: the names written."""

    kind: str
    dn: str
    outcome: str
    detail: str
    attributes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _admitted(entry: Entry, cls: str, out: Scan) -> bool:
    """Whether the entry is a SCIM resource of ``cls`` to check further: one without
    scimResource is reported (never touched), one of another class only counted; an
    unfinished rename is noted."""
    classes = _classes(entry)
    if SCIM_CLASS not in classes:
        out.others += 1
        shown = ", ".join(str(c) for c in entry.values("objectClass"))
        out.add(Finding(NOT_SCIM_RESOURCE, entry.dn, f"objectClass: {shown}"))
        return False
    if cls.lower() not in classes:
        out.others += 1
        return False
    former = references.unfinished(entry)
    if former:
        out.add(Finding(UNFINISHED_RENAME, entry.dn, f"{references.MARK}: " + ", ".join(former),
                        former[:SAMPLE], len(former)))
    return True


def _classes(entry: Entry) -> set[str]:
    return {str(c).lower() for c in entry.values("objectClass")}


def _cookie(result: dict[str, Any]) -> bytes | None:
    control = (result.get("controls") or {}).get(PAGED_OID) or {}
    return (control.get("value") or {}).get("cookie") or None


class Checker:
    """One tenant's scan (:meth:`scan`) and repairs (:meth:`repair`) on one repository."""

    def __init__(self, repo: Repository, mapping: Mapping, ppolicy_lock: bool = True) -> None:
        self.repo = repo
        self.mapping = mapping
        self.ppolicy_lock = ppolicy_lock
        tenant = repo.tenant
        self.people = "," + normalise_dn(tenant.people_dn)
        self.groups = "," + normalise_dn(tenant.groups_dn)
        self.placeholder = normalise_dn(tenant.placeholder_dn)
        self.user_rdn = mapping.user.rdn.ldap
        self.group_rdn = mapping.group.rdn.ldap
        self.references = [r.ldap for r in mapping.user.references]
        active = mapping.user.row_for_attr("active")
        self.active = active.ldap if active else None
        self.derivable = {d.lower() for d in mapping.user.derived}
        #: scimPrimary flag "attr=type" → the LDAP attributes holding that element
        self.elements: dict[str, list[str]] = {}
        for row in mapping.user.rows:
            if row.loc.type is not None and row.loc.urn is None:
                key = f"{row.loc.attr}={row.loc.type}".lower()
                self.elements.setdefault(key, []).append(row.ldap.lower())

    # -- the pass ---------------------------------------------------------------------------

    def scan(self) -> Scan:
        out = Scan()
        prone: list[tuple[str, str, list[str]]] = []  # (kind, dn, naming values)
        for page in self._pages(self.repo.tenant.people_dn, self._user_attributes()):
            managers: list[tuple[Entry, str, str]] = []
            for entry in page:
                self._person(entry, out, prone, managers)
            self._check_managers(managers, out)
        for page in self._pages(self.repo.tenant.groups_dn,
                                ["objectClass", self.group_rdn, "entryCSN", references.MARK]):
            for entry in page:
                self._group_entry(entry, out, prone)
        self._collisions(prone, out)
        return out

    def _user_attributes(self) -> list[str]:
        names = [*self.mapping.user.ldap_attributes, "objectClass", "pwdAccountLockedTime",
                 "entryUUID", "entryCSN", references.MARK, *self.references]
        return [*dict.fromkeys(names)]

    def _pages(self, base: str, attributes: list[str]) -> Iterator[list[Entry]]:
        """The entries below ``base`` (not ``base`` itself), a page at a time."""
        cookie: bytes | None = None
        top = normalise_dn(base)
        while True:
            entries, result = self.repo.search(base, "(objectClass=*)", attributes,
                                               scope=SUBTREE, paged_size=PAGE,
                                               paged_cookie=cookie)
            yield [e for e in entries if normalise_dn(e.dn) != top]
            cookie = _cookie(result)
            if not cookie:
                return

    def _person(self, entry: Entry, out: Scan, prone: list[tuple[str, str, list[str]]],
                managers: list[tuple[Entry, str, str]]) -> None:
        if not _admitted(entry, USER_CLASS, out):
            return
        out.users += 1
        self._naming(entry, self.user_rdn, self.people, USER_CLASS, out, prone)
        for attr in self.references:
            for value in (str(v) for v in entry.values(attr)):
                where = normalise_dn(value)
                if where == self.placeholder:
                    out.add(Finding(PLACEHOLDER_MANAGER, entry.dn, f"{attr}: {value}",
                                    [value], attribute=attr))
                elif not where.endswith(self.people):
                    out.add(Finding(OUTSIDE_MANAGER, entry.dn, f"{attr}: {value}", [value],
                                    attribute=attr))
                else:
                    managers.append((entry, attr, value))
        self._consistency(entry, out)

    def _consistency(self, entry: Entry, out: Scan) -> None:
        if self.ppolicy_lock and self.active:
            inactive = str(entry.first(self.active) or "").upper() == "FALSE"
            locks = [str(v) for v in entry.values("pwdAccountLockedTime")]
            if inactive and locks != [LOCKED]:
                shown = ", ".join(locks) or "absent"
                out.add(Finding(DISABLED_NOT_LOCKED, entry.dn,
                                f"{self.active}: FALSE, pwdAccountLockedTime: {shown}"))
            elif not inactive and LOCKED in locks:
                shown = str(entry.first(self.active) or "absent")
                out.add(Finding(LOCKED_NOT_DISABLED, entry.dn,
                                f"pwdAccountLockedTime: {LOCKED}, {self.active}: {shown}"))
        for name in (str(v) for v in entry.values("scimDerived")):
            if name.lower() not in self.derivable:
                out.add(Finding(DERIVED_UNKNOWN, entry.dn, f"scimDerived: {name}", [name]))
            elif not entry.values(name):
                out.add(Finding(DERIVED_ABSENT, entry.dn, f"scimDerived: {name}", [name]))
        for flag in (str(v) for v in entry.values("scimPrimary")):
            key = flag.partition(":")[0].lower()
            holders = self.elements.get(key)
            if not holders or not any(entry.values(h) for h in holders):
                out.add(Finding(PRIMARY_WITHOUT_VALUE, entry.dn, f"scimPrimary: {flag}",
                                [flag]))

    def _naming(self, entry: Entry, attr: str, parent: str, cls: str, out: Scan,
                prone: list[tuple[str, str, list[str]]]) -> None:
        """Note entries whose naming values escape slapd's DN uniqueness (module doc)."""
        values = [str(v) for v in entry.values(attr)]
        norm = normalise_dn(entry.dn)
        rdn, _, rest = norm.partition(",")
        direct = "," + rest == parent and rdn.startswith(attr.lower() + "=") and "+" not in rdn
        if len(values) != 1:
            out.add(Finding(NAMING_VALUES, entry.dn, f"{attr} has {len(values)} values",
                            values[:SAMPLE], len(values)))
        if values and not (direct and len(values) == 1):
            prone.append((cls, entry.dn, values))

    def _check_managers(self, managers: list[tuple[Entry, str, str]], out: Scan) -> None:
        missing = set(self.missing([v for _, _, v in managers]))
        for entry, attr, value in managers:
            if value in missing:
                out.add(Finding(DANGLING_MANAGER, entry.dn, f"{attr}: {value}", [value],
                                attribute=attr))

    def _group_entry(self, entry: Entry, out: Scan,
                     prone: list[tuple[str, str, list[str]]]) -> None:
        if not _admitted(entry, GROUP_CLASS, out):
            return
        out.groups += 1
        self._naming(entry, self.group_rdn, self.groups, GROUP_CLASS, out, prone)
        state = self.group_state(entry.dn)
        if state is None:
            return  # deleted since the page was read
        out.member_values += state.values
        for finding in state.findings():
            out.add(finding)

    # -- groups -----------------------------------------------------------------------------

    def group_state(self, dn: str) -> GroupState | None:
        """A group's member values as they are now, sorted into kinds (one read of the
        values, then batched existence searches); None when the group is gone."""
        with self.repo._large_replies():
            entry = self.repo.read(dn, ["member", "entryCSN"])
        if entry is None:
            return None
        state = GroupState(dn, entry.csn)
        inside: list[str] = []
        for value in (str(v) for v in entry.values("member")):
            state.values += 1
            where = normalise_dn(value)
            if where == self.placeholder:
                state.placeholder = value
            elif where.endswith((self.people, self.groups)):
                inside.append(value)
            else:
                state.outside.append(value)
        del entry
        state.dangling = self.missing(inside)
        state.real = len(inside) - len(state.dangling)
        return state

    # -- existence, as the server decides ---------------------------------------------------

    def missing(self, dns: Iterable[str]) -> list[str]:
        """The DNs among ``dns`` that name no entry of the tenant (order kept, batched)."""
        wanted = list(dict.fromkeys(dns))
        gone: list[str] = []
        for i in range(0, len(wanted), BATCH):
            gone.extend(self._missing_in(wanted[i:i + BATCH]))
        return gone

    def _missing_in(self, chunk: list[str]) -> list[str]:
        if not chunk:
            return []
        ors = "".join(f"(entryDN={escape_filter_chars(d)})" for d in chunk)
        entries, _ = self.repo.search(self.repo.tenant.base_dn, f"(|{ors})", ["1.1"])
        if len(entries) >= len(chunk):
            return []
        if not entries:
            return list(chunk)
        if len(chunk) == 1:
            return []
        half = len(chunk) // 2
        return self._missing_in(chunk[:half]) + self._missing_in(chunk[half:])

    # -- collisions -------------------------------------------------------------------------

    def _collisions(self, prone: list[tuple[str, str, list[str]]], out: Scan) -> None:
        seen: set[str] = set()  # each pair of entries once
        for cls, dn, values in prone:
            attr, base = ((self.user_rdn, self.repo.tenant.people_dn) if cls == USER_CLASS
                          else (self.group_rdn, self.repo.tenant.groups_dn))
            me = normalise_dn(dn)
            for value in values:
                flt = f"(&(objectClass={cls})({attr}={escape_filter_chars(value)}))"
                entries, _ = self.repo.search(base, flt, ["1.1"])
                others = sorted(e.dn for e in entries if normalise_dn(e.dn) != me)
                for other in others:
                    pair = "\n".join(sorted((me, normalise_dn(other))))
                    if pair in seen:
                        continue
                    seen.add(pair)
                    out.add(Finding(NAME_COLLISION, dn,
                                    f"{attr} {value!r} also matches {other}", [other]))

    # -- repairs ----------------------------------------------------------------------------

    def repair(self, findings: Iterable[Finding],
               done: Callable[[Fix], None] | None = None) -> list[Fix]:
        """Repair the repairable findings, one guarded write each; ``done`` is told of
        every outcome as it happens (the audit trail)."""
        fixes: list[Fix] = []
        groups_done: set[str] = set()
        # renames first: their former DNs' values are moved, not removed as dangling
        ordered = sorted(findings, key=lambda f: f.kind != UNFINISHED_RENAME)
        for finding in ordered:
            if not finding.repairable:
                continue
            if finding.kind == UNFINISHED_RENAME:
                results = [self._finish_rename(finding)]
            elif finding.kind in (DANGLING_MEMBER, PLACEHOLDER_BESIDE_MEMBERS, EMPTY_GROUP):
                key = normalise_dn(finding.dn)
                if key in groups_done:
                    continue  # one group's findings are repaired together, in order
                groups_done.add(key)
                results = self._repair_group(finding.dn)
            else:
                results = [self._repair_user(finding)]
            for fix in results:
                fixes.append(fix)
                if done is not None:
                    done(fix)
        return fixes

    def _repair_group(self, dn: str, attempts: int = 5) -> list[Fix]:
        """Dangling values out (the placeholder in if no real member is left), then the
        placeholder out if real members hold it company, or in if the group is empty.

        The group is read (and its in-tenant values asked about) once, right before the
        first write; each write asserts the entryCSN it assumes, and the next step starts
        from the CSN the write returned (post-read). A failed assertion means someone
        else changed the group: it is read again."""
        fixes: list[Fix] = []
        placeholder = self.repo.tenant.placeholder_dn
        state = self.group_state(dn)
        for kind in (DANGLING_MEMBER, PLACEHOLDER_BESIDE_MEMBERS, EMPTY_GROUP):
            for _ in range(attempts):
                if state is None:
                    state = self.group_state(dn)
                if state is None:
                    fixes.append(Fix(kind, dn, "skipped", "the group no longer exists"))
                    return fixes
                change = state.repair(kind, placeholder)
                if change is None:
                    break
                detail, changes = change
                try:
                    meta = self.repo.modify(dn, changes, csn=state.csn)
                except (AssertionFailed, NoSuchAttribute):
                    state = None  # changed since it was read: look again
                    continue
                except (ObjectClassViolation, NoSuchEntry) as exc:
                    fixes.append(Fix(kind, dn, "failed", f"{detail}: {exc}"))
                    break
                fixes.append(Fix(kind, dn, "fixed", detail, ["member"]))
                state.applied(kind, placeholder, str((meta.get("entrycsn") or [""])[0]))
                if not state.csn:
                    state = None  # no post-read CSN to guard the next step with: re-read
                break
            else:
                fixes.append(Fix(kind, dn, "skipped", "the group kept changing; run again"))
        return fixes

    def _finish_rename(self, finding: Finding) -> Fix:
        """Move the references of the recorded former DNs to the entry's DN and drop the
        record (:func:`directory.references.finish`: what the next SCIM write to the
        entry would do; a former DN another entry has taken since is left alone)."""
        entry = self.repo.read(finding.dn, ["entryUUID", "objectClass", references.MARK])
        if entry is None:
            return Fix(finding.kind, finding.dn, "skipped", "the entry no longer exists")
        former = references.unfinished(entry)
        if not former:
            return Fix(finding.kind, finding.dn, "skipped", "nothing left to repair")
        try:
            references.finish(self.repo, entry)
        except DirectoryError as exc:
            return Fix(finding.kind, finding.dn, "failed", f"finishing the rename: {exc}")
        return Fix(finding.kind, finding.dn, "fixed",
                   "moved the references of " + ", ".join(former) + " and dropped the record",
                   [references.MARK])

    def _repair_user(self, finding: Finding, attempts: int = 5) -> Fix:
        dn = finding.dn
        for _ in range(attempts):
            entry = self.repo.read(dn, ["entryCSN", "pwdAccountLockedTime",
                                        *([self.active] if self.active else []),
                                        *self.references])
            if entry is None:
                return Fix(finding.kind, dn, "skipped", "the entry no longer exists")
            change = self._user_change(finding, entry)
            if change is None:
                return Fix(finding.kind, dn, "skipped", "nothing left to repair")
            detail, changes, condition = change
            guard = f"(&(entryCSN={escape_filter_chars(entry.csn)}){condition})"
            try:
                self.repo.modify(dn, changes, condition=guard)
            except (AssertionFailed, NoSuchAttribute):
                continue
            except (ObjectClassViolation, NoSuchEntry) as exc:
                return Fix(finding.kind, dn, "failed", f"{detail}: {exc}")
            return Fix(finding.kind, dn, "fixed", detail, list(changes))
        return Fix(finding.kind, dn, "skipped", "the entry kept changing; run again")

    def _user_change(self, finding: Finding, entry: Entry
                     ) -> tuple[str, dict[str, list[tuple[str, list[str]]]], str] | None:
        """(what is done, the modify, the assertion it needs besides the CSN)."""
        if finding.kind in (DANGLING_MANAGER, PLACEHOLDER_MANAGER):
            value, attr = finding.values[0], finding.attribute
            present = [str(v) for v in entry.values(attr)]
            if value not in present:
                return None
            if finding.kind == DANGLING_MANAGER and not self.missing([value]):
                return None  # it names an entry again
            escaped = escape_filter_chars(value)
            return (f"removed {attr} {value}", {attr: [(MODIFY_DELETE, [value])]},
                    f"({attr}={escaped})")
        if self.active is None:
            return None
        inactive = str(entry.first(self.active) or "").upper() == "FALSE"
        locks = [str(v) for v in entry.values("pwdAccountLockedTime")]
        if finding.kind == DISABLED_NOT_LOCKED and inactive and locks != [LOCKED]:
            return ("locked the disabled account (pwdAccountLockedTime "
                    f"{LOCKED}, as a SCIM disable writes it)",
                    {"pwdAccountLockedTime": [(MODIFY_REPLACE, [LOCKED])]},
                    f"({self.active}=FALSE)")
        if finding.kind == LOCKED_NOT_DISABLED and not inactive and LOCKED in locks:
            return ("disabled the locked account (scimActive FALSE): the lock stays",
                    {self.active: [(MODIFY_REPLACE, ["FALSE"])]},
                    f"(pwdAccountLockedTime={LOCKED})")
        return None


@dataclass
class GroupState:
    """A group's ``member`` values sorted into kinds, with the entryCSN they were read at."""

    dn: str
    csn: str
    values: int = 0
    real: int = 0
    placeholder: str | None = None
    outside: list[str] = field(default_factory=list)
    dangling: list[str] = field(default_factory=list)

    def findings(self) -> list[Finding]:
        found = []
        if self.dangling:
            found.append(Finding(DANGLING_MEMBER, self.dn,
                                 f"{len(self.dangling)} member value(s) name no entry",
                                 self.dangling[:SAMPLE], len(self.dangling)))
        if self.outside:
            found.append(Finding(OUTSIDE_MEMBER, self.dn,
                                 f"{len(self.outside)} member value(s) outside the tenant",
                                 self.outside[:SAMPLE], len(self.outside)))
        if self.placeholder and self.real:
            found.append(Finding(PLACEHOLDER_BESIDE_MEMBERS, self.dn,
                                 f"the placeholder beside {self.real} real member(s)",
                                 [self.placeholder]))
        if not self.placeholder and not self.real:
            found.append(Finding(EMPTY_GROUP, self.dn,
                                 "no member names an entry of the tenant, and no placeholder"))
        return found

    def repair(self, kind: str, placeholder: str
               ) -> tuple[str, dict[str, list[tuple[str, list[str]]]]] | None:
        """(what is done, the modify) for one kind, or None when there is nothing to do."""
        if kind == DANGLING_MEMBER and self.dangling:
            ops: list[tuple[str, list[str]]] = [(MODIFY_DELETE, list(self.dangling))]
            detail = f"removed {len(self.dangling)} dangling member value(s)"
            if not self.real and not self.placeholder:
                ops.insert(0, (MODIFY_ADD, [placeholder]))
                detail += " and added the placeholder (no real member was left)"
            return detail, {"member": ops}
        if kind == PLACEHOLDER_BESIDE_MEMBERS and self.placeholder and self.real \
                and not self.dangling:
            return (f"removed the placeholder (beside {self.real} real member(s))",
                    {"member": [(MODIFY_DELETE, [self.placeholder])]})
        if kind == EMPTY_GROUP and not self.placeholder and not self.real \
                and not self.dangling:
            return "added the placeholder", {"member": [(MODIFY_ADD, [placeholder])]}
        return None

    def applied(self, kind: str, placeholder: str, csn: str) -> None:
        """The state after :meth:`repair`'s change of ``kind`` was written (at ``csn``)."""
        self.csn = csn
        if kind == DANGLING_MEMBER:
            if not self.real and not self.placeholder:
                self.placeholder = placeholder
            self.values -= len(self.dangling)
            self.dangling = []
        elif kind == PLACEHOLDER_BESIDE_MEMBERS:
            self.placeholder = None
        elif kind == EMPTY_GROUP:
            self.placeholder = placeholder


# -- the last result of each tenant, where every worker and instance sees it -------------

#: ``cn=<tenant>,ou=Checks,ou=Service,<root base>``: an applicationProcess whose
#: ``description`` holds the last check as JSON (see docs/directory.md).
CHECKS_OU = "Checks"


def result_dn(root_base: str, tenant: str) -> str:
    return f"cn={escape_rdn(tenant)},ou={CHECKS_OU},ou=Service,{root_base}"


def load_result(repo: Repository, root_base: str, tenant: str) -> dict[str, Any] | None:
    """The stored record of ``tenant``'s checks, or None when there is none (or it is not
    JSON: written by something else)."""
    entry = repo.read(result_dn(root_base, tenant), ["description"])
    if entry is None or not entry.values("description"):
        return None
    try:
        record = json.loads(str(entry.first("description")))
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def save_result(repo: Repository, root_base: str, tenant: str, record: dict[str, Any]) -> None:
    """Replace ``tenant``'s stored record (creating its entry, and ou=Checks, if needed)."""
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    dn = result_dn(root_base, tenant)
    try:
        repo.modify(dn, {"description": [(MODIFY_REPLACE, [text])]})
        return
    except NoSuchEntry:
        pass
    with suppress(EntryExists):
        repo.add(f"ou={CHECKS_OU},ou=Service,{root_base}", ["organizationalUnit"],
                 {"ou": [CHECKS_OU]})
    try:
        repo.add(dn, ["applicationProcess"], {"cn": [tenant], "description": [text]})
    except EntryExists:  # another worker made it meanwhile
        repo.modify(dn, {"description": [(MODIFY_REPLACE, [text])]})
