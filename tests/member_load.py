"""The LDAP load that crashed slapd in issue 15, as plain LDAP operations (ldap3, no bridge).

Groups of ~150 members whose users are renamed between two spellings of their uid that
slapd's matching rules treat as equal (``José.Müller.N`` composed, NFC, and decomposed, NFD),
while other connections re-add members in the other spelling with the Permissive Modify
control (what the bridge's member add and rename protocol send) and churn extra members
in and out. With ``olcDbMultival: member 100,20`` Debian's slapd 2.5.13 dies within seconds
(docs/directory.md, "slapd crash under renames").

Every change here either leaves a group's membership as it was (a rename, a re-add of an
equal value) or is made by exactly one worker per (group, user) pair, so the membership
each group must have afterwards is known whatever the interleaving: ``Load.expected``.
Used by tests/integration/test_slapd_multival.py (seconds) and bench/slapd_soak.py (minutes).
"""

from __future__ import annotations

import random
import threading
import time
import unicodedata
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from ldap3 import BASE, MODIFY_ADD, MODIFY_DELETE, NONE, Connection, Server
    from ldap3.core.exceptions import LDAPException

PERMISSIVE_MODIFY = ("1.2.840.113556.1.4.1413", False, None)
COMPARE_TRUE = 6
NO_SUCH_ATTRIBUTE = 16


def spelling(name: str, decomposed: bool) -> str:
    return unicodedata.normalize("NFD" if decomposed else "NFC", name)


@dataclass
class Layout:
    """``groups`` groups of ``members`` renamed users, and ``extras`` churned users per group."""

    base_dn: str
    groups: int = 3
    members: int = 150
    extras: int = 24

    def user_name(self, index: int) -> str:
        return f"José.Müller.{index}"

    def extra_name(self, group: int, index: int) -> str:
        return f"Zoë.Ægir.{group}.{index}"

    def user_dn(self, name: str, decomposed: bool = False) -> str:
        return f"uid={spelling(name, decomposed)},ou=People,{self.base_dn}"

    def group_dn(self, group: int) -> str:
        return f"cn=load-group-{group},ou=Groups,{self.base_dn}"

    def base_members(self, group: int) -> list[str]:
        first = group * self.members
        return [self.user_name(i) for i in range(first, first + self.members)]


def connect(env: dict[str, str]) -> Connection:
    server = Server(env["LDAP_URL"], get_info=NONE, connect_timeout=5)
    return Connection(server, env["LDAP_BIND_DN"], env["LDAP_BIND_PASSWORD"], auto_bind=True,
                      receive_timeout=10)


@contextmanager
def opened(env: dict[str, str]) -> Iterator[Connection]:
    """A bound connection, unbound afterwards (ldap3's own ``with`` leaves a bound one open)."""
    conn = connect(env)
    try:
        yield conn
    finally:
        conn.unbind()


def seed(conn: Connection, layout: Layout) -> None:
    """The users (NFC spelling) and the groups holding their base members."""
    names = [layout.user_name(i) for i in range(layout.groups * layout.members)]
    names += [layout.extra_name(g, i) for g in range(layout.groups) for i in range(layout.extras)]
    for name in names:
        ok = conn.add(layout.user_dn(name), ["inetOrgPerson"],
                      {"uid": spelling(name, False), "cn": name, "sn": "load"})
        if not ok:
            raise RuntimeError(f"seeding {name}: {conn.result}")
    for group in range(layout.groups):
        members = [layout.user_dn(n) for n in layout.base_members(group)]
        if not conn.add(layout.group_dn(group), ["groupOfNames"],
                        {"cn": f"load-group-{group}", "member": members}):
            raise RuntimeError(f"seeding group {group}: {conn.result}")


@dataclass
class Load:
    """Workers on their own connections until ``seconds`` have passed or slapd stops answering.

    renamers: modify DN of a random base member to the other spelling of its uid (refint then
    tries to rewrite the member values; its add of the "new" value is refused as existing).
    movers: Permissive Modify add of a base member's DN in the other spelling (no change).
    churners: each owns a disjoint share of the extra users; add (permissive, either spelling)
    or delete one of them from its group and remember the last state.
    """

    env: dict[str, str]
    layout: Layout
    renamers: int = 3
    movers: int = 2
    churners: int = 2
    seed: int = 15
    counts: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    #: (group, extra user name) → member at the end; only changed by its owning churner
    state: dict[tuple[int, str], bool] = field(default_factory=dict)
    lost_connection: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        rng = random.Random(self.seed)
        extras = [(g, self.layout.extra_name(g, i))
                  for g in range(self.layout.groups) for i in range(self.layout.extras)]
        shares = [extras[w::self.churners] for w in range(self.churners)] if self.churners else []
        workers = [threading.Thread(target=self._renamer, args=(rng.random(), deadline))
                   for _ in range(self.renamers)]
        workers += [threading.Thread(target=self._mover, args=(rng.random(), deadline))
                    for _ in range(self.movers)]
        workers += [threading.Thread(target=self._churner, args=(rng.random(), deadline, share))
                    for share in shares]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def expected(self, group: int) -> list[str]:
        """The user names group ``group`` must hold now."""
        extra = [name for (g, name), present in self.state.items() if g == group and present]
        return self.layout.base_members(group) + sorted(extra)

    def _count(self, kind: str, conn: Connection, ok: bool) -> None:
        with self._lock:
            self.counts[kind] += 1
            if not ok:
                self.errors[f"{kind}: {conn.result.get('description')}"] += 1

    def _loop(self, deadline: float, step: object) -> None:
        try:
            conn = connect(self.env)
        except LDAPException:
            self.lost_connection = True
            return
        try:
            while time.monotonic() < deadline and not self.lost_connection:
                step(conn)  # type: ignore[operator]
        except LDAPException:
            self.lost_connection = True  # slapd went away (or stopped answering)
        finally:
            conn.unbind()

    def _random_member(self, rng: random.Random) -> tuple[int, str]:
        group = rng.randrange(self.layout.groups)
        return group, rng.choice(self.layout.base_members(group))

    def _renamer(self, seed: float, deadline: float) -> None:
        rng = random.Random(seed)

        def step(conn: Connection) -> None:
            _, name = self._random_member(rng)
            decomposed = rng.random() < 0.5
            ok = conn.modify_dn(self.layout.user_dn(name, not decomposed),
                                f"uid={spelling(name, decomposed)}")
            self._count("modrdn", conn, ok)

        self._loop(deadline, step)

    def _mover(self, seed: float, deadline: float) -> None:
        rng = random.Random(seed)

        def step(conn: Connection) -> None:
            group, name = self._random_member(rng)
            dn = self.layout.user_dn(name, rng.random() < 0.5)
            ok = conn.modify(self.layout.group_dn(group), {"member": [(MODIFY_ADD, [dn])]},
                             controls=[PERMISSIVE_MODIFY])
            self._count("re-add", conn, ok)

        self._loop(deadline, step)

    def _churner(self, seed: float, deadline: float, share: list[tuple[int, str]]) -> None:
        rng = random.Random(seed)
        for key in share:
            self.state[key] = False

        def step(conn: Connection) -> None:
            group, name = rng.choice(share)
            add = rng.random() < 0.5
            dn = self.layout.user_dn(name, rng.random() < 0.5)
            change = (MODIFY_ADD if add else MODIFY_DELETE, [dn])
            ok = conn.modify(self.layout.group_dn(group), {"member": [change]},
                             controls=[PERMISSIVE_MODIFY])
            if not ok and not add and conn.result.get("result") == NO_SUCH_ATTRIBUTE:
                ok = True  # 2.5 answers a delete of an absent value so, Permissive or not
            if ok:
                self.state[(group, name)] = add
            self._count("add" if add else "delete", conn, ok)

        self._loop(deadline, step)


def membership_problems(conn: Connection, load: Load) -> list[str]:
    """What is wrong with the groups' member values, read back from slapd; [] when exact.

    Exact means: as many values as expected members, each expected member's DN present by
    slapd's own matching rule (a compare, never Python string equality), and every value
    naming an existing entry.
    """
    layout, problems = load.layout, []
    for group in range(layout.groups):
        dn = layout.group_dn(group)
        if not conn.search(dn, "(objectClass=*)", BASE, attributes=["member"]):
            problems.append(f"{dn}: cannot be read ({conn.result.get('description')})")
            continue
        values = [str(v) for v in conn.entries[0]["member"].values]
        expected = load.expected(group)
        if len(values) != len(expected):
            problems.append(f"{dn}: {len(values)} member values, expected {len(expected)}")
        missing = [n for n in expected if not _compare(conn, dn, layout.user_dn(n))]
        if missing:
            problems.append(f"{dn}: missing {len(missing)} members, e.g. {missing[:3]}")
        dangling = [v for v in values
                    if not conn.search(v, "(objectClass=*)", BASE, attributes=["1.1"])]
        if dangling:
            problems.append(f"{dn}: {len(dangling)} values name no entry, e.g. {dangling[:3]}")
    return problems


def _compare(conn: Connection, dn: str, member: str) -> bool:
    conn.compare(dn, "member", member)
    return conn.result.get("result") == COMPARE_TRUE
