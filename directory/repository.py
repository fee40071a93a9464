"""People and group operations on one connection, under one tenant.

Every method takes its DNs from the tenant given at construction; nothing here reads
a global base DN. Filters and DNs are built only through ``escape_filter_chars`` and
``escape_rdn``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from ldap3 import (
    BASE,
    MODIFY_ADD,
    MODIFY_DELETE,
    MODIFY_REPLACE,
    SUBTREE,
    Connection,
)
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from directory import ber, deref, wire
from directory.controls import (
    META_ATTRIBUTES,
    PERMISSIVE_MODIFY,
    POST_READ_OID,
    assertion,
    matched_values,
    paged,
    post_read,
)
from directory.dn import normalise_dn
from directory.errors import (
    AssertionFailed,
    DirectoryBusy,
    DirectoryError,
    DirectoryUnavailable,
    NoSuchAttribute,
    NoSuchEntry,
    ObjectClassViolation,
    translate,
)
from directory.tenant import Tenant

USER_CLASS = "inetOrgPerson"
GROUP_CLASS = "groupOfNames"
#: How many ids or DNs go into one (|(…)(…)) search.
BATCH = 200
#: Post-read of a rename: the meta values and the new DN as the server spells it.
_POST_READ_DN = (POST_READ_OID, False, ber.attribute_list([*META_ATTRIBUTES, "entryDN"]))


@dataclass
class Entry:
    """An LDAP entry as read: DN, lower-cased attributes, and the meta values."""

    dn: str
    attrs: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def uuid(self) -> str:
        return str(self.first("entryuuid") or "")

    @property
    def csn(self) -> str:
        return str(self.first("entrycsn") or "")

    @property
    def created(self) -> str | None:
        return _iso(self.first("createtimestamp"))

    @property
    def modified(self) -> str | None:
        return _iso(self.first("modifytimestamp"))

    def first(self, name: str) -> Any:
        values = self.attrs.get(name.lower())
        return values[0] if values else None

    def values(self, name: str) -> list[Any]:
        return list(self.attrs.get(name.lower(), []))


def _iso(value: Any) -> str | None:
    """LDAP GeneralizedTime (``20261128125305Z``) → RFC 3339."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = str(value)
    return f"{text[0:4]}-{text[4:6]}-{text[6:8]}T{text[8:10]}:{text[10:12]}:{text[12:14]}Z"


def _entries(responses: list[dict] | None) -> list[Entry]:
    """The entries among search responses (ldap3's dict shapes)."""
    return [Entry(r["dn"], _lower(r.get("attributes")))
            for r in responses or [] if r.get("type") == "searchResEntry"]


def _lower(attributes: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for key, value in dict(attributes or {}).items():
        out[key.lower()] = value if isinstance(value, list) else [value]
    return out


class Repository:
    """Tenant-scoped directory operations on one checked-out connection."""

    def __init__(self, conn: Connection, tenant: Tenant) -> None:
        self.conn = conn
        self.tenant = tenant
        self.ops = 0  # LDAP operations issued (benchmarks, logs)
        self.broken = False  # the connection failed at the transport level

    # -- DNs ----------------------------------------------------------------------

    def user_dn(self, rdn_attr: str, value: str) -> str:
        return f"{rdn_attr}={escape_rdn(value)},{self.tenant.people_dn}"

    def group_dn(self, rdn_attr: str, value: str) -> str:
        return f"{rdn_attr}={escape_rdn(value)},{self.tenant.groups_dn}"

    def in_tenant(self, dn: str) -> bool:
        norm = normalise_dn(dn)
        return any(norm.endswith("," + normalise_dn(b))
                   for b in (self.tenant.people_dn, self.tenant.groups_dn))

    # -- low level ----------------------------------------------------------------

    #: Told of every LDAP operation: (operation, seconds, "success" or the error class
    #: name). The web layer sets it per request to feed the metrics.
    observer: Callable[[str, float, str], None] | None = None
    #: The result reported for a *probe* whose assertion did not hold: a conditional
    #: modify that is expected to miss as often as not (is the empty-group placeholder
    #: there? does this entry still refer to that DN?). It is an answer, not an error,
    #: so it is counted apart from ``AssertionFailed`` (a lost-update guard tripping).
    CONDITION_NOT_MET = "ConditionNotMet"

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one operation; returns ldap3's result dict (``conn.result``)."""
        self._measure(fn, *args, **kwargs)
        return self.conn.result

    def _measure(self, fn: Any, *args: Any, names: list[str] | None = None,
                 **kwargs: Any) -> Any:
        """Run ``fn``, count and time it, and translate its errors; returns its value.

        ``names``: the operations ``fn`` sends (several for an exchange), each counted
        and reported to the observer; by default ``fn``'s name.
        """
        probe = kwargs.pop("probe", False)
        operations = names or [getattr(fn, "__name__", "call")]
        self.ops += len(operations)
        started = time.perf_counter()
        result = "success"
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            error = translate(exc)
            result = type(error).__name__
            if probe and isinstance(error, AssertionFailed):
                result = self.CONDITION_NOT_MET
            if isinstance(error, DirectoryUnavailable):
                self.broken = True
            raise error from exc
        finally:
            if self.observer is not None:
                elapsed = time.perf_counter() - started
                for name in operations:
                    self.observer(name, elapsed, result)

    def search(self, base: str, ldap_filter: str, attributes: Iterable[str], *,
               scope: Any = SUBTREE, size_limit: int = 0,
               paged_size: int | None = None, paged_cookie: bytes | None = None,
               controls: list[Any] | None = None) -> tuple[list[Entry], dict[str, Any]]:
        """Search; returns entries and the result (for paging/sort controls)."""
        sent = list(controls or [])
        if paged_size is not None:
            sent.append(paged(paged_size, paged_cookie))
        result = self._call(wire.search, self.conn, base, scope, ldap_filter,
                            list(attributes), size_limit=size_limit, controls=sent)
        return _entries(self.conn.response), result

    def isolated_search(self, base: str, ldap_filter: str, attributes: Iterable[str],
                        controls: list[Any]) -> tuple[list[Entry], dict[str, Any]]:
        """Search on a connection of its own, closed right after.

        slapd's sssvlv keeps Virtual List View sort state per connection until the
        connection ends; on a pooled connection it would pile up until slapd answers
        "Other sort requests already in progress". A one-off connection costs a bind.
        """
        side = Connection(self.conn.server, self.conn.user, self.conn.password,
                          raise_exceptions=True, receive_timeout=self.conn.receive_timeout,
                          return_empty_attributes=False)
        main, self.conn = self.conn, side
        try:
            self._call(side.open)
            if main.tls_started:
                self._call(side.start_tls)
            self._call(side.bind)
            return self.search(base, ldap_filter, attributes, controls=controls)
        finally:
            self.conn = main
            try:
                side.unbind()
            except Exception:  # noqa: BLE001, S110 - best effort on a throwaway connection
                pass

    def abandon_paging(self, base: str, ldap_filter: str, cookie: bytes | None,
                       controls: list[Any] | None = None) -> None:
        """End a paged search early (size 0, RFC 2696 §3) so slapd frees its state."""
        if cookie:
            self.search(base, ldap_filter, ["1.1"], paged_size=0, paged_cookie=cookie,
                        controls=controls)

    def read(self, dn: str, attributes: Iterable[str]) -> Entry | None:
        """Base-scope read of one entry, or None when it does not exist."""
        try:
            entries, _ = self.search(dn, "(objectClass=*)", attributes, scope=BASE)
        except NoSuchEntry:
            return None
        return entries[0] if entries else None

    def _post_read(self, result: dict[str, Any]) -> dict[str, list[Any]]:
        control = (result.get("controls") or {}).get(POST_READ_OID) or {}
        return _lower((control.get("value") or {}).get("result"))

    # -- generic writes -------------------------------------------------------------

    def add(self, dn: str, object_classes: list[str], attrs: dict[str, list[str]]) -> Entry:
        """Add an entry; returns it with the server's meta values (one round trip)."""
        result = self._call(wire.add, self.conn, dn, {"objectClass": object_classes, **attrs},
                            controls=[post_read()])
        stored = {k.lower(): list(v) for k, v in attrs.items()}
        return Entry(dn, {**stored, **self._post_read(result)})

    def modify(self, dn: str, changes: dict[str, list[tuple[str, list[str]]]], *,
               csn: str | None = None, permissive: bool = False,
               condition: str | None = None, probe: bool = False) -> dict[str, list[Any]]:
        """One atomic modify (RFC 4511 §4.6).

        ``csn`` guards against lost updates; ``condition`` is any other assertion
        filter (RFC 4528) the entry must match for the modify to apply. ``probe``: the
        condition is expected to fail in the normal course (``CONDITION_NOT_MET``).
        """
        controls: list[Any] = [post_read()]
        if condition:
            controls.append(assertion(condition))
        elif csn:
            controls.append(assertion(f"(entryCSN={escape_filter_chars(csn)})"))
        if permissive:
            controls.append(PERMISSIVE_MODIFY)
        result = self._call(wire.modify, self.conn, dn, changes, controls=controls,
                            probe=probe)
        return self._post_read(result)

    def rename(self, dn: str, rdn_attr: str, value: str, *,
               csn: str | None = None) -> tuple[str, dict[str, list[Any]]]:
        """modify_dn within the same parent; returns the new DN as the server spells it
        (what member values naming it will read) and its meta values."""
        controls: list[Any] = [_POST_READ_DN]
        if csn:
            controls.append(assertion(f"(entryCSN={escape_filter_chars(csn)})"))
        new_rdn = f"{rdn_attr}={escape_rdn(value)}"
        result = self._call(wire.modify_dn, self.conn, dn, new_rdn, controls=controls)
        meta = self._post_read(result)
        parent = dn.split(",", 1)[1] if "," in dn else ""
        spelled = meta.pop("entrydn", None)
        return (str(spelled[0]) if spelled else f"{new_rdn},{parent}"), meta

    def delete(self, dn: str) -> None:
        self._call(wire.delete, self.conn, dn)

    # -- lookups --------------------------------------------------------------------

    def find_by_id(self, kind: str, scim_id: str, attributes: Iterable[str]) -> Entry | None:
        """The user or group whose entryUUID is ``scim_id``, within this tenant."""
        base, cls = self._base(kind)
        flt = f"(&(objectClass={cls})(entryUUID={escape_filter_chars(scim_id)}))"
        entries, _ = self.search(base, flt, [*attributes, *META_ATTRIBUTES])
        return entries[0] if entries else None

    def _base(self, kind: str) -> tuple[str, str]:
        if kind == "User":
            return self.tenant.people_dn, USER_CLASS
        return self.tenant.groups_dn, GROUP_CLASS

    def find_one(self, kind: str, ldap_attr: str, value: str,
                 attributes: Iterable[str]) -> Entry | None:
        base, cls = self._base(kind)
        flt = f"(&(objectClass={cls})({ldap_attr}={escape_filter_chars(value)}))"
        entries, _ = self.search(base, flt, [*attributes, *META_ATTRIBUTES], size_limit=2)
        return entries[0] if entries else None

    def resolve_ids(self, ids: Iterable[str], kinds: tuple[str, ...] = ("User", "Group"),
                    attributes: Iterable[str] = ()) -> dict[str, Entry]:
        """Map SCIM ids to entries with one search per batch (never one per id)."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Entry] = {}
        classes = "".join(f"(objectClass={self._base(k)[1]})" for k in kinds)
        for i in range(0, len(wanted), BATCH):
            chunk = wanted[i:i + BATCH]
            ors = "".join(f"(entryUUID={escape_filter_chars(x)})" for x in chunk)
            flt = f"(&(|{classes})(|{ors}))"
            entries, _ = self.search(self.tenant.base_dn, flt,
                                     ["entryUUID", "objectClass", *attributes])
            for e in entries:
                if self.in_tenant(e.dn):
                    found[e.uuid.lower()] = e
        return found

    def find_with_ids(self, kind: str, scim_id: str, attributes: Iterable[str],
                      ids: Iterable[str]) -> tuple[Entry | None, dict[str, Entry]] | None:
        """:meth:`find_by_id` and :meth:`resolve_ids` (users and groups) in ONE search.

        A member PATCH needs the group and the entries its member ids name; asking for
        both at once saves a round trip. Returns None when the ids need more than one
        batch (then the caller makes the two calls).
        """
        wanted = list(dict.fromkeys(ids))
        if len(wanted) >= BATCH:
            return None
        base, cls = self._base(kind)
        own = f"(&(objectClass={cls})(entryUUID={escape_filter_chars(scim_id)}))"
        ors = "".join(f"(entryUUID={escape_filter_chars(x)})" for x in wanted)
        flt = (f"(|{own}(&(|(objectClass={USER_CLASS})(objectClass={GROUP_CLASS}))"
               f"(|{ors})))") if wanted else own
        entries, _ = self.search(self.tenant.base_dn, flt,
                                 ["entryUUID", "objectClass", *attributes, *META_ATTRIBUTES])
        suffix = "," + normalise_dn(base)
        found: dict[str, Entry] = {}
        entry = None
        wanted_keys = {x.lower() for x in wanted}
        for e in entries:
            if not self.in_tenant(e.dn):
                continue
            key = e.uuid.lower()
            if key == scim_id.lower() and normalise_dn(e.dn).endswith(suffix) and \
                    cls.lower() in {str(c).lower() for c in e.values("objectClass")}:
                entry = e
            if key in wanted_keys:
                found[key] = e
        return entry, found

    def resolve_dns(self, dns: Iterable[str], attributes: Iterable[str]) -> dict[str, Entry]:
        """The tenant's users and groups that DN values name, keyed by each value exactly
        as given; a value that names nothing (or something else) is left out.

        Which entry a value names is the server's decision (distinguishedNameMatch with
        each RDN attribute's own matching rule), never Python's: ``uid=Straße-x`` and
        ``uid=Straẞe-x`` are two users for slapd. One search per :data:`BATCH` values
        maps every value spelled exactly as its entry's DN (what the bridge writes); a
        value spelled otherwise (case, Unicode form, escaping) or naming nothing is then
        looked up on its own, all such lookups in one round trip (:meth:`read_each`).
        """
        suffixes = self._tenant_suffixes()
        wanted = [d for d in dict.fromkeys(dns) if normalise_dn(d).endswith(suffixes)]
        asked = ["entryUUID", "objectClass", *attributes]
        exact: dict[str, Entry] = {}
        for i in range(0, len(wanted), BATCH):
            ors = "".join(f"(entryDN={escape_filter_chars(d)})" for d in wanted[i:i + BATCH])
            entries, _ = self.search(self.tenant.base_dn, f"(|{ors})", asked)
            exact.update((e.dn, e) for e in entries)
        found = {d: exact[d] for d in wanted if d in exact}
        misses = [d for d in wanted if d not in found]
        if misses:
            found.update(self.read_each(misses, asked))
        return found

    def read_each(self, dns: list[str], attributes: Iterable[str]) -> dict[str, Entry]:
        """For each DN value, the tenant user or group the server says it names (by
        ``(entryDN=value)``, so by the server's matching rules), keyed by the value.
        The searches go out together: one round trip per :data:`BATCH` values."""
        asked = list(attributes)
        found: dict[str, Entry] = {}
        for i in range(0, len(dns), BATCH):
            chunk = dns[i:i + BATCH]
            requests = [wire.search_request(self.tenant.base_dn, SUBTREE,
                                            f"(entryDN={escape_filter_chars(d)})", asked)
                        for d in chunk]
            answers = self._measure(wire.exchange, self.conn, requests,
                                    names=["search"] * len(requests))
            for value, answer in zip(chunk, answers, strict=True):
                entries = _entries(self._answer_entries(answer))
                named = next((e for e in entries if self.in_tenant(e.dn)), None)
                if named is not None:
                    found[value] = named
        return found

    def _answer_entries(self, answer: wire.Answer) -> list[dict]:
        try:
            return wire.check(answer)[0]
        except Exception as exc:
            error = translate(exc)
            if isinstance(error, NoSuchEntry):
                return []
            raise error from exc

    def resolve_with_parents(self, dns: Iterable[str], children: dict[str, str],
                             attributes: Iterable[str]
                             ) -> tuple[dict[str, Entry], dict[str, list[Entry]]]:
        """:meth:`resolve_dns`, and in the same searches the tenant's groups that list any
        of ``children`` (DN → entryUUID of users or groups) as a direct member.

        Returns the entries found by DN value (as given), and the parent groups by child
        DN (as given). The parents' ``member`` values come back cut down to the children
        asked about (RFC 3876 matched values), so a 100,000-member parent costs nothing
        extra; a server ignoring the control sends them all and the mapping still holds.
        A value is a child's when it is spelled exactly as the child's DN; one spelled
        otherwise is looked up (:meth:`read_each`) and compared by entryUUID.
        """
        plan = _ParentSearches(self, dns, children, attributes)
        for base, flt, attrs, controls in plan.requests:
            entries, _ = self.search(base, flt, attrs, controls=controls)
            plan.collect(entries)
        return plan.finish()

    def modify_resolving(self, dn: str, changes: dict[str, list[tuple[str, list[str]]]], *,
                         csn: str | None, dns: Iterable[str], children: dict[str, str],
                         attributes: Iterable[str]
                         ) -> tuple[dict[str, list[Any]],
                                    tuple[dict[str, Entry], dict[str, list[Entry]]] | None]:
        """:meth:`modify` (guarded by ``csn``) and, sent with it, the search of
        :meth:`resolve_with_parents` — when one search covers it (else None is returned
        for it). The two are independent: slapd works on both at once and the client
        waits one round trip, not two (a user PATCH: the write, and the user's groups
        for the answer)."""
        plan = _ParentSearches(self, dns, children, attributes)
        if len(plan.requests) > 1:
            return self.modify(dn, changes, csn=csn), None
        controls: list[Any] = [post_read()]
        if csn:
            controls.append(assertion(f"(entryCSN={escape_filter_chars(csn)})"))
        requests = [wire.modify_request(dn, changes, controls)]
        requests += [wire.search_request(base, SUBTREE, flt, attrs, controls=ctrl)
                     for base, flt, attrs, ctrl in plan.requests]
        answers = self._measure(wire.exchange, self.conn, requests,
                                names=[r.kind.removesuffix("Request") for r in requests])
        result = self._checked(answers[0])
        for answer in answers[1:]:
            self._checked(answer)
            plan.collect(_entries(answer[0]))
        return self._post_read(result), plan.finish()

    def _checked(self, answer: wire.Answer) -> dict[str, Any]:
        """The result of one answer of an exchange, or its error, translated."""
        try:
            return wire.check(answer)[1]
        except Exception as exc:
            raise translate(exc) from exc

    def groups_with_member(self, dns: list[str], attributes: Iterable[str]) -> list[Entry]:
        """Groups of this tenant that list any of ``dns`` as a direct member (batched)."""
        found: dict[str, Entry] = {}
        for i in range(0, len(dns), BATCH):
            ors = "".join(f"(member={escape_filter_chars(d)})" for d in dns[i:i + BATCH])
            flt = f"(&(objectClass={GROUP_CLASS})(|{ors}))"
            entries, _ = self.search(self.tenant.groups_dn, flt, ["entryUUID", *attributes])
            found.update((e.dn.lower(), e) for e in entries)
        return list(found.values())

    # -- membership -----------------------------------------------------------------

    def group_members(self, dn: str) -> list[Member]:
        """The users and groups of this tenant that group ``dn`` lists, in value order.

        The placeholder, DNs outside the tenant and DNs that name no entry are left
        out. Where slapd dereferences (its ``deref`` overlay), this is one read that
        returns every member value with its entry's entryUUID; otherwise the values
        are read and resolved in batches of :data:`BATCH` DNs.
        """
        if self._derefs():
            with self._large_replies():
                self.search(dn, "(objectClass=*)", ["1.1"], scope=BASE,
                            controls=[_DEREF_MEMBERS])
            reply = next((r for r in self.conn.response or []
                          if r.get("type") == "searchResEntry"), None)
            if reply is None:
                raise NoSuchEntry(dn)
            value = ((reply.get("controls") or {}).get(deref.OID) or {}).get("value")
            if isinstance(value, bytes):
                return self._dereferenced(deref.parse(value))
            _DEREF_SERVERS[self._server_key()] = False  # the server ignored the control
        with self._large_replies():
            entry = self.read(dn, ["member"])
        if entry is None:
            raise NoSuchEntry(dn)
        values = [str(v) for v in entry.values("member")]
        found = self.resolve_dns(values, [])
        members = []
        for value in values:
            e = found.get(value)
            if e is not None:
                classes = {str(c).lower() for c in e.values("objectClass")}
                members.append(Member(value, e.uuid, GROUP_CLASS.lower() in classes))
        return members

    def _dereferenced(self, values: list[tuple[str, dict[str, list[str]]]]) -> list[Member]:
        # Users live under people_dn and groups under groups_dn, so where a DN is tells
        # what it names. slapd returns DNs in one (its own) form: a suffix test of the
        # lower-cased DN settles the usual case without parsing every DN.
        people, groups = self._tenant_suffixes()
        members = []
        for dn, attrs in values:
            uuid = attrs.get("entryuuid")
            if not uuid:
                continue  # names no entry
            where = dn.lower()
            if not where.endswith((people, groups)):
                where = normalise_dn(dn)  # spelt another way, or outside the tenant
                if not where.endswith((people, groups)):
                    continue
            members.append(Member(dn, uuid[0], where.endswith(groups)))
        return members

    def _tenant_suffixes(self) -> tuple[str, str]:
        """``in_tenant`` as suffixes of a normalised DN."""
        people, groups = self.tenant.people_dn, self.tenant.groups_dn
        return ("," + normalise_dn(people), "," + normalise_dn(groups))

    def _server_key(self) -> str:
        return str(getattr(self.conn.server, "name", self.conn.server))

    def _derefs(self) -> bool:
        """Whether the server advertises the deref control (asked once per process)."""
        key = self._server_key()
        known = _DEREF_SERVERS.get(key)
        if known is None:
            try:
                root = self.read("", ["supportedControl"])
            except DirectoryError:
                return False
            controls = {str(c) for c in root.values("supportedControl")} if root else set()
            known = _DEREF_SERVERS[key] = deref.OID in controls
        return known

    @contextmanager
    def _large_replies(self) -> Iterator[None]:
        """Receive in big chunks during one large read.

        ldap3 appends every chunk it receives to one bytes buffer, which is quadratic in
        the number of chunks: a multi-megabyte member list read 4 KiB at a time took
        seconds (measured: 13 s for 100,000 dereferenced members, 0.6 s with 1 MiB).
        """
        strategy = self.conn.strategy
        size = getattr(strategy, "socket_size", None)
        if not isinstance(size, int) or size >= LARGE_REPLY_CHUNK:
            yield
            return
        strategy.socket_size = LARGE_REPLY_CHUNK
        try:
            yield
        finally:
            strategy.socket_size = size

    def change_members(
        self, dn: str, add: list[str], remove: list[str],
        other: dict[str, list[tuple[str, list[str]]]] | None = None, *,
        csn: str | None = None, attempts: int = 8,
    ) -> dict[str, list[Any]]:
        """Add and remove member DNs in one atomic modify, keeping groupOfNames valid.

        Every write asserts (RFC 4528) what it assumes about the placeholder, so
        concurrent writers never leave a group empty or the placeholder beside a real
        member: an add first asserts the placeholder is absent (the common case, one
        operation); if it is present, the add also deletes it, asserting it is there.
        A removal that would empty the group is refused by slapd (objectClassViolation);
        then the members are read and, if nothing changed since (entryCSN), removed
        together with adding the placeholder. slapd 2.5 applies Permissive Modify to
        adds only, so values already absent are dropped from a delete first (Entra
        retries removals). ``csn`` additionally pins the whole write to a version.
        """
        for _ in range(attempts):
            try:
                if add:
                    return self._add_members(dn, add, remove, other or {}, csn)
                return self._remove_members(dn, remove, other or {}, csn)
            except NoSuchAttribute:
                remove = self._present_members(dn, remove)
            except AssertionFailed:
                if csn:
                    raise
        raise DirectoryBusy("the group is changing too often; try again")

    def _guard(self, csn: str | None, condition: str) -> str:
        if csn:
            return f"(&(entryCSN={escape_filter_chars(csn)}){condition})"
        return condition

    def _add_members(self, dn: str, add: list[str], remove: list[str],
                     other: dict[str, Any], csn: str | None) -> dict[str, list[Any]]:
        placeholder = f"(member={escape_filter_chars(self.tenant.placeholder_dn)})"
        member: list[tuple[str, list[str]]] = [(MODIFY_ADD, add)]
        if remove:
            member.append((MODIFY_DELETE, remove))
        try:
            return self.modify(dn, {**other, "member": member}, permissive=True,
                               condition=self._guard(csn, f"(!{placeholder})"),
                               probe=not csn)
        except AssertionFailed:
            member.append((MODIFY_DELETE, [self.tenant.placeholder_dn]))
            return self.modify(dn, {**other, "member": member}, permissive=True,
                               condition=self._guard(csn, placeholder))

    def _remove_members(self, dn: str, remove: list[str], other: dict[str, Any],
                        csn: str | None) -> dict[str, list[Any]]:
        changes = dict(other)
        if remove:
            changes["member"] = [(MODIFY_DELETE, remove)]
        if not changes:
            return {}
        try:
            return self.modify(dn, changes, csn=csn, permissive=True)
        except ObjectClassViolation:
            if not remove:
                raise
        # Whether the removal empties the group is the server's call (its DN matching),
        # at one version: the same delete, pinned to the entryCSN just read, is refused
        # again only if it would still empty the group; then the placeholder goes in
        # with it, pinned to that version.
        current = self.read(dn, ["entryCSN"])
        if current is None:
            raise NoSuchEntry(dn)
        if csn and current.csn != csn:
            raise AssertionFailed("the group changed since it was read")
        try:
            return self.modify(dn, changes, csn=current.csn, permissive=True)
        except ObjectClassViolation:
            pass
        changes["member"] = [(MODIFY_ADD, [self.tenant.placeholder_dn]),
                             (MODIFY_DELETE, remove)]
        return self.modify(dn, changes, csn=current.csn, permissive=True)

    def _present_members(self, dn: str, values: list[str]) -> list[str]:
        """The values that are members now (compare: one cheap operation each)."""
        present = []
        for value in values:
            result = self._call(wire.compare, self.conn, dn, "member", value)
            if result.get("result") == 6:  # compareTrue
                present.append(value)
        return present

    def replace_members(self, dn: str, members: list[str],
                        other: dict[str, list[tuple[str, list[str]]]] | None = None, *,
                        csn: str | None = None) -> dict[str, list[Any]]:
        """Replace the whole member list (empty → the placeholder), atomically."""
        changes = dict(other or {})
        changes["member"] = [(MODIFY_REPLACE, members or [self.tenant.placeholder_dn])]
        return self.modify(dn, changes, csn=csn)


# -- membership values ------------------------------------------------------------------

#: Bytes asked of the socket per read while a large reply comes in.
LARGE_REPLY_CHUNK = 1 << 20
#: Server (URL) → whether it advertises the deref control; filled on first use.
_DEREF_SERVERS: dict[str, bool] = {}
_DEREF_MEMBERS = deref.control("member", ["entryUUID"])


class Member(NamedTuple):
    """A group's member value resolved: the DN, its entry's entryUUID, group or not."""

    dn: str
    uuid: str
    is_group: bool


class _ParentSearches:
    """The searches of :meth:`Repository.resolve_with_parents` and what they found."""

    def __init__(self, repo: Repository, dns: Iterable[str], children: dict[str, str],
                 attributes: Iterable[str]) -> None:
        self.repo = repo
        self.people, self.groups = repo._tenant_suffixes()
        inside = (self.people, self.groups)
        self.wanted = [d for d in dict.fromkeys(dns) if normalise_dn(d).endswith(inside)]
        self.kids = {dn: uuid for dn, uuid in children.items()
                     if normalise_dn(dn).endswith(inside)}
        self.asked = ["entryUUID", "objectClass", *attributes]
        self.by_dn: dict[str, Entry] = {}
        #: (member value, group) for every value the parent groups came back with
        self.listed: list[tuple[str, Entry]] = []
        clauses = [("entryDN", d) for d in self.wanted] + [("member", c) for c in self.kids]
        #: (base, filter, attributes, controls) of each search
        self.requests: list[tuple[str, str, list[str], list[Any]]] = []
        for i in range(0, len(clauses), BATCH):
            chunk = clauses[i:i + BATCH]
            ors = "".join(f"(entryDN={escape_filter_chars(v)})" for k, v in chunk
                          if k == "entryDN")
            members = [v for k, v in chunk if k == "member"]
            controls: list[Any] = []
            if members:
                ors += (f"(&(objectClass={GROUP_CLASS})(|"
                        + "".join(f"(member={escape_filter_chars(m)})" for m in members)
                        + "))")
                controls = [matched_values(self.asked, "member", members)]
            self.requests.append((repo.tenant.base_dn, f"(|{ors})",
                                  [*self.asked, *(["member"] if members else [])], controls))

    def collect(self, entries: list[Entry]) -> None:
        for e in entries:
            self.by_dn[e.dn] = e
            if normalise_dn(e.dn).endswith(self.groups):
                self.listed.extend((str(v), e) for v in e.values("member"))

    def finish(self) -> tuple[dict[str, Entry], dict[str, list[Entry]]]:
        """Entries by wanted DN and parents by child DN, each value matched to an entry
        exactly or, spelled otherwise, by the server (one more round trip, rare)."""
        found = {d: self.by_dn[d] for d in self.wanted if d in self.by_dn}
        odd = [d for d in self.wanted if d not in found]
        odd += [v for v, _ in self.listed if v not in self.kids]
        named = self.repo.read_each(list(dict.fromkeys(odd)), self.asked) if odd else {}
        found.update((d, named[d]) for d in self.wanted if d not in found and d in named)
        by_uuid = {uuid.lower(): dn for dn, uuid in self.kids.items()}
        parents: dict[str, list[Entry]] = {}
        for value, group in self.listed:
            child = value if value in self.kids else \
                by_uuid.get(named[value].uuid.lower()) if value in named else None
            if child is not None and all(g.dn != group.dn for g in parents.get(child, [])):
                parents.setdefault(child, []).append(group)
        return found, parents
