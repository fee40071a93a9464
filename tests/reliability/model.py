"""Entra cycles for the model-based test: a plan of parallel requests per cycle, whose
combined outcome is determined, and the model of what their acknowledgements imply.

Within one cycle (requests sent in parallel, in random order):

- each user gets at most one request of its own (create, attribute change, disable or
  enable, manager set or removal, rename — case-only, NFC↔NFD or to a new name, sometimes
  with a displayName change in the same PATCH — or delete); each group at most one rename
  or delete;
- each (group, member) pair is touched by at most one member PATCH, so member adds and
  removals of one group run in parallel on different members;
- cross-object races are the point: a member add or manager set racing the rename or
  delete of the user (or nested group) it names, a rename of a group racing member
  changes and the deletes of its members. Their outcome is still determined: a deleted
  object is afterwards in no group and nobody's manager, whatever order the requests
  took; a request naming it may then answer 400/404 instead of 2xx. A member PATCH that
  names a doomed object names only that one (a 400 rejects a whole PATCH);
- names freed by a delete or a rename are reused by creates in later cycles only
  (re-created names must start with no memberships).

Some successful requests are sent a second time at once, as Entra does after an answer it
did not receive: the repeat must be harmless (POST → 409, then found by a filter; DELETE →
404; PATCH → the same answer).
"""

from __future__ import annotations

import hashlib
import random
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from tests import entra as bodies
from tests.reliability.integrity import Entra, Expected
from tests.reliability.support import Reply

#: Name stems with letters that have NFD decompositions and case pairs slapd folds.
USER_STEMS = ["José.Müller", "Zoë.Ångström", "Renée.Nuñez", "casey", "Ana.Núñez-Öz"]
GROUP_STEMS = ["Équipe Ölé", "Grüne Gruppe", "sales", "Señal Één"]


def spelled(stem: str, n: int, domain: str = "@example.org") -> str:
    return f"{stem}{n}{domain}"


def variant(name: str, rng: random.Random) -> tuple[str, str]:
    """A spelling slapd holds equal: another letter case, or the other normal form."""
    nfd = unicodedata.normalize("NFD", name)
    options = [("case", name.swapcase()), ("case", name.upper()), ("case", name.lower())]
    if nfd != name:
        options.append(("nfd", nfd))
    if unicodedata.normalize("NFC", name) != name:
        options.append(("nfc", unicodedata.normalize("NFC", name)))
    options = [(k, v) for k, v in options if v != name]
    return rng.choice(options)


@dataclass
class Op:
    kind: str
    target: str | None = None  # the user's or group's SCIM id
    name: str | None = None  # new userName/displayName, or the created one
    how: str = ""  # variant kind, body form
    value: Any = None  # attribute values, members, manager id
    doomed: bool = False  # names an object deleted in the same cycle
    twice: bool = False  # repeat at once after a success
    reply: Reply | None = None
    created: str | None = None  # id from a create
    problem: str | None = None

    def describe(self) -> str:
        return f"{self.kind}({self.target}, {self.name!r}, {self.how}, {self.value})"


@dataclass
class World:
    """The model: what every acknowledged request implies."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # name, seq, members
    counter: int = 0
    freed: list[str] = field(default_factory=list)  # userNames of deleted/renamed users
    group_seq: int = 0

    def fresh_user_name(self, rng: random.Random) -> str:
        self.counter += 1
        return spelled(rng.choice(USER_STEMS), self.counter)

    def fresh_group_name(self, rng: random.Random) -> str:
        self.counter += 1
        return f"{rng.choice(GROUP_STEMS)} {self.counter}"

    def expected(self) -> Expected:
        return Expected(
            users={u: {k: v for k, v in d.items()} for u, d in self.users.items()},
            groups={g: d["name"] for g, d in self.groups.items()},
            members={g: set(d["members"]) for g, d in self.groups.items()})


def plan(world: World, rng: random.Random, scale: float = 1.0) -> list[Op]:
    """One cycle's requests (see the module docstring for what may race what).

    Only list and dict order (creation order) feeds ``rng``, never the order of ids
    (entryUUIDs differ from run to run), so a seed plans the same cycles every time."""
    ops: list[Op] = []
    users = list(world.users)
    rng.shuffle(users)
    n = len(users)
    doomed_list = users[: max(0, int(n * 0.08 * scale))]
    doomed_users = set(doomed_list)
    rest = users[len(doomed_list):]
    for u in doomed_list:
        ops.append(Op("delete_user", u))
    own = iter(rest)
    for u in [next(own) for _ in range(min(len(rest), int(n * 0.25 * scale)))]:
        current = world.users[u]["userName"]
        roll = rng.random()
        if roll < 0.35:
            how, new = "case", rng.choice([current.swapcase(), current.upper()])
        elif roll < 0.7:
            how, new = variant(current, rng)
        else:
            how, new = "fresh", world.fresh_user_name(rng)
        display = f"Renamed {world.counter}-{rng.randrange(1000)}" if rng.random() < 0.3 else None
        ops.append(Op("rename_user", u, new, how, display))
    for u in [next(own, None) for _ in range(int(n * 0.12 * scale))]:
        if u is None:
            break
        if rng.random() < 0.5:
            ops.append(Op("attrs", u, how=rng.choice(["path", "pathless"]),
                          value={"displayName": f"D {rng.randrange(10**6)}",
                                 "title": rng.choice(["Dev", "Ops", "Chef", "Señor"])}))
        else:
            ops.append(Op("active", u, value=not world.users[u].get("active", True)))
    live = [x for x in users if x not in doomed_users] + doomed_list
    for u in [next(own, None) for _ in range(int(n * 0.12 * scale))]:
        if u is None:
            break
        if world.users[u].get("manager") and rng.random() < 0.25:
            ops.append(Op("manager", u, value=None))
            continue
        boss = rng.choice([x for x in live if x != u])
        ops.append(Op("manager", u, value=boss, doomed=boss in doomed_users))
    ops += _group_ops(world, rng, scale, doomed_users)
    for _ in range(rng.randint(1, 3)):
        if world.freed and rng.random() < 0.6:
            old = world.freed.pop(rng.randrange(len(world.freed)))
            name = old if rng.random() < 0.5 else variant(old, rng)[1]
            ops.append(Op("create_user", name=name, how="recreated"))
        else:
            ops.append(Op("create_user", name=world.fresh_user_name(rng)))
    if rng.random() < 0.3 * scale:
        ops.append(Op("create_group", name=world.fresh_group_name(rng)))
    for op in ops:
        op.twice = rng.random() < 0.1
    rng.shuffle(ops)
    return ops


def fingerprint(world: World, ops: list[Op]) -> str:
    """A short digest of a plan with ids replaced by creation order: equal for the
    same seed on every run (shown per cycle, so a replay can be seen to be one)."""
    order = {x: i for i, x in enumerate([*world.users, *world.groups])}

    def norm(v: Any) -> Any:
        if isinstance(v, list):
            return [order.get(x, x) for x in v]
        return order.get(v, v) if isinstance(v, str) else v

    text = repr([(op.kind, norm(op.target), op.name, op.how, norm(op.value), op.twice)
                 for op in ops])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _group_ops(world: World, rng: random.Random, scale: float,
               doomed_users: set[str]) -> list[Op]:
    ops: list[Op] = []
    groups = list(world.groups)
    doomed_groups: set[str] = set()
    if len(groups) > 3 and rng.random() < 0.25 * scale:
        doomed_groups.add(rng.choice(groups))
    for g in groups:
        if g in doomed_groups:
            ops.append(Op("delete_group", g))
        elif rng.random() < 0.35 * scale:
            current = world.groups[g]["name"]
            if rng.random() < 0.6:
                how, new = variant(current, rng)
            else:
                how, new = "fresh", world.fresh_group_name(rng)
            ops.append(Op("rename_group", g, new, how))
    doomed = doomed_users | doomed_groups
    for g in groups:
        seq = world.groups[g]["seq"]
        members = set(world.groups[g]["members"])
        children = [c for c in groups if world.groups[c]["seq"] > seq]
        candidates = [u for u in world.users if u not in members] + \
            [c for c in children if c not in members]
        rng.shuffle(candidates)
        adds = candidates[: rng.randint(0, max(1, int(4 * scale)))]
        current = [m for m in [*world.users, *world.groups] if m in members]  # plan order
        removes = rng.sample(current, min(len(current), rng.randint(0, int(3 * scale))))
        if rng.random() < 0.1:  # removing a non-member: a no-op (retry safety)
            removes += [u for u in candidates[len(adds):len(adds) + 1]]
        for kind, chosen in (("add", adds), ("remove", removes)):
            safe = [m for m in chosen if m not in doomed]
            for m in chosen:
                if m in doomed:  # alone in its PATCH: a 400 for it rejects the PATCH
                    ops.append(Op(f"{kind}_members", g, value=[m], doomed=True,
                                  how=_remove_form(kind, rng)))
            while safe:
                take = safe[: rng.randint(1, 3)]
                safe = safe[len(take):]
                ops.append(Op(f"{kind}_members", g, value=take, doomed=g in doomed_groups,
                              how=_remove_form(kind, rng) if len(take) == 1 else "list"))
    return ops


def _remove_form(kind: str, rng: random.Random) -> str:
    return rng.choice(["list", "filter"]) if kind == "remove" else "list"


# --- sending -------------------------------------------------------------------------------


def request(op: Op) -> tuple[str, str, Any]:
    e = bodies.ENTERPRISE
    if op.kind == "create_user":
        return "POST", "/Users", {**bodies.minimal_user(op.name or ""), "active": True}
    if op.kind == "create_group":
        return "POST", "/Groups", bodies.group(op.name or "")
    if op.kind == "delete_user":
        return "DELETE", f"/Users/{op.target}", None
    if op.kind == "delete_group":
        return "DELETE", f"/Groups/{op.target}", None
    if op.kind == "rename_user":
        ops = [{"op": "Replace", "path": "userName", "value": op.name}]
        if op.value:
            ops.append({"op": "Replace", "path": "displayName", "value": op.value})
        return "PATCH", f"/Users/{op.target}", bodies.patch(*ops)
    if op.kind == "rename_group":
        return "PATCH", f"/Groups/{op.target}", bodies.patch(
            {"op": "Replace", "path": "displayName", "value": op.name})
    if op.kind == "attrs":
        if op.how == "pathless":
            return "PATCH", f"/Users/{op.target}", bodies.patch(
                {"op": "Replace", "value": dict(op.value)})
        return "PATCH", f"/Users/{op.target}", bodies.patch(
            *({"op": "Replace", "path": k, "value": v} for k, v in op.value.items()))
    if op.kind == "active":
        return "PATCH", f"/Users/{op.target}", bodies.patch(
            {"op": "Replace", "path": "active", "value": "True" if op.value else "False"})
    if op.kind == "manager":
        if op.value is None:
            return "PATCH", f"/Users/{op.target}", bodies.patch(
                {"op": "Remove", "path": f"{e}:manager"})
        return "PATCH", f"/Users/{op.target}", bodies.patch(
            {"op": "Replace", "path": f"{e}:manager", "value": op.value})
    if op.kind == "add_members":
        return "PATCH", f"/Groups/{op.target}", bodies.patch(
            {"op": "Add", "path": "members",
             "value": [{"$ref": None, "value": m} for m in op.value]})
    assert op.kind == "remove_members"
    if op.how == "filter":
        return "PATCH", f"/Groups/{op.target}", bodies.patch(
            {"op": "remove", "path": f'members[value eq "{op.value[0]}"]'})
    return "PATCH", f"/Groups/{op.target}", bodies.patch(
        {"op": "Remove", "path": "members",
         "value": [{"$ref": None, "value": m} for m in op.value]})


OK = {"POST": {201}, "DELETE": {204}, "PATCH": {200, 204}}


def send(entra: Entra, op: Op) -> None:
    """Send the op (retrying 5xx); set ``op.problem`` when its answer is not one the plan
    allows. With ``twice``, repeat it after a success, as after a lost answer."""
    for attempt in range(2 if op.twice else 1):
        method, path, body = request(op)
        reply, retried = entra.send(method, path, body)
        retried = retried or attempt == 1
        op.reply = reply
        allowed = set(OK[method])
        if op.doomed:
            allowed |= {400, 404}
        if retried and method == "DELETE":
            allowed.add(404)
        if method == "POST" and retried and reply.status == 409:
            found = entra.find("Users" if op.kind == "create_user" else "Groups", op.name or "")
            if found is None or (op.created and found != op.created):
                op.problem = f"{op.describe()}: 409 on the retry, lookup found {found}"
            op.created = found
            return
        if reply.status not in allowed:
            op.problem = f"{op.describe()}: {reply.status} {reply.body}"
            return
        if method == "POST" and reply.status == 201:
            op.created = str(reply.body["id"])
        if reply.status not in OK[method]:
            return


def apply(world: World, ops: list[Op]) -> None:
    """The cycle's acknowledged effects; deletes last (they win over every race)."""
    for op in ops:
        status = op.reply.status if op.reply is not None else 0
        if op.problem or not (200 <= status < 300 or op.created):
            continue
        if op.kind == "create_user" and op.created:
            world.users[op.created] = {"userName": op.name, "active": True}
        elif op.kind == "create_group" and op.created:
            world.group_seq += 1
            world.groups[op.created] = {"name": op.name, "seq": world.group_seq,
                                        "members": set()}
        elif op.kind == "rename_user":
            user = world.users[op.target or ""]
            if op.how == "fresh":
                world.freed.append(user["userName"])
            user["userName"] = op.name
            if op.value:
                user["displayName"] = op.value
        elif op.kind == "rename_group":
            world.groups[op.target or ""]["name"] = op.name
        elif op.kind == "attrs":
            world.users[op.target or ""].update(op.value)
        elif op.kind == "active":
            world.users[op.target or ""]["active"] = op.value
        elif op.kind == "manager":
            world.users[op.target or ""]["manager"] = op.value
        elif op.kind == "add_members":
            world.groups[op.target or ""]["members"] |= set(op.value)
        elif op.kind == "remove_members":
            world.groups[op.target or ""]["members"] -= set(op.value)
    for op in ops:
        status = op.reply.status if op.reply is not None else 0
        if op.kind not in ("delete_user", "delete_group") or op.problem \
                or status not in (204, 404):
            continue
        gone = op.target or ""
        if op.kind == "delete_user" and gone in world.users:
            world.freed.append(world.users.pop(gone)["userName"])
            for user in world.users.values():
                if user.get("manager") == gone:
                    user["manager"] = None
        world.groups.pop(gone, None)
        for group in world.groups.values():
            group["members"].discard(gone)
    for user in world.users.values():
        if user.get("manager") not in world.users:
            user["manager"] = None
