"""A burst of Entra-shaped writes from a few threads, with a model of what each answer
allows the directory to hold, and a replay of the requests that did not succeed.

Thread ``t`` owns group ``G[t]`` and shares group ``E`` (created empty, so its placeholder
comes and goes). Each of its units creates user ``u``, adds it to ``G[t]`` and ``E``, sets
its manager (the previous unit's user, else ``M[t]``), removes it from ``E`` and, every
third unit, deletes the previous unit's user (``u``'s manager, whose link must then go).

Every fact about ``u`` (exists, in ``G[t]``, in ``E``, manager) is a set of allowed
values: a success makes it exactly the new value, a 503 or a lost answer (a killed
worker) allows the old and the new one, a skipped request leaves it alone.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from directory.dn import normalise_dn
from tests import entra
from tests.reliability.support import Gunicorn, Reply, Snapshot, call, is_retryable, scim_path

LOST = -1  # no HTTP answer: the connection broke (a killed worker)
SKIPPED = 0  # not sent: it needed an id that the failed create did not give
EXPECTED = {"create": 201, "add_g": 204, "add_e": 204, "manager": 200, "remove_e": 204,
            "delete_prev": 204}


@dataclass
class Unit:
    thread: int
    index: int
    manager_name: str
    prev: Unit | None
    id: str | None = None
    outcomes: list[tuple[str, int]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"b{self.thread}-{self.index}@x.org"

    @property
    def kinds(self) -> list[str]:
        deletes = self.index % 3 == 2 and self.prev is not None
        return ["create", "add_g", "add_e", "manager", "remove_e",
                *(["delete_prev"] if deletes else [])]


@dataclass
class Setup:
    groups: list[str]  # G[t] ids
    shared: str  # E id
    managers: list[tuple[str, str]]  # M[t] (name, id)


class Burst:
    def __init__(self, server: Gunicorn, setup: Setup, pause_after_503: float = 0.1) -> None:
        self.server = server
        self.setup = setup
        self.units: list[list[Unit]] = [[] for _ in setup.groups]
        self.replies: list[Reply] = []
        self.unexpected: list[str] = []
        self.pause = pause_after_503
        self._lock = threading.Lock()

    # -- sending ---------------------------------------------------------------------------

    def _request(self, unit: Unit, kind: str) -> int:
        method, path, body = self._http(unit, kind)
        try:
            reply = call(self.server, method, scim_path(path), body, timeout=20)
        except OSError:
            return LOST
        with self._lock:
            self.replies.append(reply)
        if reply.status == EXPECTED[kind]:
            if kind == "create":
                unit.id = reply.body["id"]
            return reply.status
        if not is_retryable(reply):
            with self._lock:
                self.unexpected.append(f"{kind} {unit.name}: {reply.status} {reply.body}")
        return reply.status

    def _http(self, unit: Unit, kind: str) -> tuple[str, str, Any]:
        t = unit.thread
        if kind == "create":
            return "POST", "/Users", {**entra.minimal_user(unit.name), "displayName": unit.name}
        if kind in ("add_g", "add_e", "remove_e"):
            group = self.setup.groups[t] if kind == "add_g" else self.setup.shared
            op = "Remove" if kind == "remove_e" else "Add"
            return "PATCH", f"/Groups/{group}", entra.patch(
                {"op": op, "path": "members", "value": [{"value": unit.id}]})
        if kind == "manager":
            return "PATCH", f"/Users/{unit.id}", entra.patch(
                {"op": "Replace", "path": f"{entra.ENTERPRISE}:manager",
                 "value": self._manager_id(unit)})
        assert kind == "delete_prev" and unit.prev is not None
        return "DELETE", f"/Users/{unit.prev.id}", None

    def _manager_id(self, unit: Unit) -> str:
        if unit.prev is not None and unit.manager_name == unit.prev.name:
            assert unit.prev.id is not None
            return unit.prev.id
        return dict(self.setup.managers)[unit.manager_name]

    def _thread(self, t: int, stop: threading.Event) -> None:
        prev: Unit | None = None
        index = 0
        while not stop.is_set():
            manager = prev.name if prev is not None and prev.id else self.setup.managers[t][0]
            unit = Unit(t, index, manager, prev)
            self.units[t].append(unit)
            for kind in unit.kinds:
                needs_prev = kind == "delete_prev" and (prev is None or prev.id is None)
                if (kind != "create" and unit.id is None) or needs_prev:
                    unit.outcomes.append((kind, SKIPPED))
                    continue
                status = self._request(unit, kind)
                unit.outcomes.append((kind, status))
                if status != EXPECTED[kind]:
                    time.sleep(self.pause)  # Entra backs off too
            prev, index = unit, index + 1

    def run(self, fault: Any, duration: float) -> None:
        """Run the threads for ``duration`` seconds, calling ``fault()`` meanwhile."""
        stop = threading.Event()
        threads = [threading.Thread(target=self._thread, args=(t, stop), daemon=True)
                   for t in range(len(self.setup.groups))]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        fault()
        time.sleep(max(0.0, duration - (time.monotonic() - started)))
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
            assert not thread.is_alive(), "a burst thread hung"

    # -- checking --------------------------------------------------------------------------

    def statuses(self) -> Counter[str]:
        return Counter(f"{k}:{s}" for units in self.units for u in units for k, s in u.outcomes)

    def allowed(self, intended: bool = False) -> dict[tuple[str, str], set[Any]]:
        """Allowed values of every fact; ``intended``: as if every request had succeeded."""
        facts: dict[tuple[str, str], set[Any]] = {}
        for units in self.units:
            for unit in units:
                u = unit.name
                facts.update({("exists", u): {False}, ("g", u): {False}, ("e", u): {False},
                              ("manager", u): {None}})
                for kind, status in unit.outcomes:
                    if status == SKIPPED and not intended:
                        continue
                    certain = intended or status == EXPECTED[kind]
                    for key, value in self._effects(unit, kind):
                        facts[key] = {value} if certain else facts[key] | {value}
        return facts

    @staticmethod
    def _effects(unit: Unit, kind: str) -> list[tuple[tuple[str, str], Any]]:
        u = unit.name
        if kind == "create":
            return [(("exists", u), True)]
        if kind == "add_g":
            return [(("g", u), True)]
        if kind == "add_e":
            return [(("e", u), True)]
        if kind == "remove_e":
            return [(("e", u), False)]
        if kind == "manager":
            return [(("manager", u), unit.manager_name)]
        assert unit.prev is not None
        p = unit.prev.name
        effects: list[tuple[tuple[str, str], Any]] = [
            (("exists", p), False), (("g", p), False), (("e", p), False)]
        if unit.manager_name == p:
            effects.append((("manager", u), None))
        return effects

    def actual(self, shot: Snapshot, group_dns: list[str], shared_dn: str,
               ) -> dict[tuple[str, str], Any]:
        names = {dn: user["uid"][0] for dn, user in shot.users.items()}
        shared = shot.members(shared_dn)
        facts: dict[tuple[str, str], Any] = {}
        for t, units in enumerate(self.units):
            members = shot.members(group_dns[t])
            for unit in units:
                entry = shot.user_by_name(unit.name)
                dn = next((d for d, n in names.items() if n.lower() == unit.name), None)
                facts[("exists", unit.name)] = entry is not None
                if entry is None:
                    continue
                facts[("g", unit.name)] = dn in members
                facts[("e", unit.name)] = dn in shared
                managers = [names.get(normalise_dn(m)) for m in entry.get("manager", [])]
                facts[("manager", unit.name)] = managers[0] if managers else None
        return facts

    def mismatches(self, actual: dict[tuple[str, str], Any],
                   allowed: dict[tuple[str, str], set[Any]]) -> list[str]:
        return [f"{key}: {value!r} not in {allowed[key]!r}"
                for key, value in actual.items() if value not in allowed[key]]

    # -- replay ------------------------------------------------------------------------------

    def replay(self) -> list[str]:
        """Re-send, in order, every request from each unit's first failure on (as Entra
        retries); returns the answers that were not acceptable."""
        problems = []
        deleted = {u.prev.name for units in self.units for u in units
                   if "delete_prev" in u.kinds and u.prev is not None}
        for units in self.units:
            for unit in units:
                failed = [i for i, (k, s) in enumerate(unit.outcomes) if s != EXPECTED[k]]
                if not failed:
                    continue
                for kind, _ in unit.outcomes[failed[0]:]:
                    gone = unit.name in deleted or (
                        kind == "manager" and unit.manager_name in deleted)
                    problem = self._replay_one(unit, kind, gone)
                    if problem:
                        problems.append(problem)
        return problems

    def _replay_one(self, unit: Unit, kind: str, gone: bool) -> str | None:
        """``gone``: the request names a user that a later request deletes."""
        if kind == "create":
            reply = call(self.server, "POST", scim_path("/Users"),
                         {**entra.minimal_user(unit.name), "displayName": unit.name})
            if reply.status == 201:
                unit.id = reply.body["id"]
                return None
            if reply.status == 409:  # it was created after all: look it up, as Entra does
                found = call(self.server, "GET",
                             scim_path("/Users?filter=" + quote(f'userName eq "{unit.name}"')))
                if found.body["totalResults"] == 1:
                    unit.id = found.body["Resources"][0]["id"]
                    return None
            return f"replay create {unit.name}: {reply.status} {reply.body}"
        if kind == "delete_prev" and unit.prev is not None and unit.prev.id is None:
            return f"replay delete {unit.prev.name}: its id is unknown"
        method, path, body = self._http(unit, kind)
        reply = call(self.server, method, scim_path(path), body)
        if reply.status == EXPECTED[kind]:
            return None
        if kind == "delete_prev" and reply.status == 404:
            return None  # deleted by the request whose answer was lost
        if gone and reply.status in (400, 404):
            return None  # a user it names is gone for good (deleted by a later unit)
        return f"replay {kind} {unit.name}: {reply.status} {reply.body}"
