"""A seeded, randomised, model-based test: Entra cycles of parallel requests through
gunicorn (the module's, 3 worker processes) on the session slapd, compared after every
cycle with what the acknowledged requests imply — through SCIM (``GET /Users``,
``GET /Groups``, filtered lists) and in the raw LDAP tree (every ``member``/``manager``
value resolved by slapd to the entryUUID it must name, exact member sets, the
placeholder only alone). After the last cycle ``directory check`` must find no drift.

What one cycle may contain and why its outcome is determined: tests/reliability/model.py.

Replaying a failure: the failing seed is in the assertion message (and printed);
``SCIM_MODEL_SEED=<seed> .venv/bin/pytest tests/reliability/test_integrity_model.py``
runs that seed alone. The default run is short (``SCIM_MODEL_SEEDS`` seeds — default 3 —
of ``SCIM_MODEL_CYCLES`` cycles — default 5); a longer run, e.g.
``SCIM_MODEL_SEEDS=20 SCIM_MODEL_CYCLES=15 SCIM_MODEL_SCALE=2 SCIM_MODEL_USERS=40``
(``SCIM_MODEL_USERS``: initial users, default 16). A seed plans the same cycles on every
run (each cycle prints its plan's digest); the interleaving of its parallel requests is
not fixed, so a race-dependent defect may need a few replays (``SCIM_MODEL_REPEAT=<n>``).
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter

import pytest

from tests.reliability.integrity import (
    Entra,
    directory_check,
    ldap_problems,
    scim_problems,
    server_errors,
)
from tests.reliability.model import Op, World, apply, fingerprint, plan, send
from tests.reliability.support import Gunicorn

CLIENTS = 6  # parallel client threads, as Entra's parallel provisioning workers
GROUPS = 5


def _seeds() -> list[int]:
    if os.environ.get("SCIM_MODEL_SEED"):
        return [int(os.environ["SCIM_MODEL_SEED"])]
    return list(range(1, int(os.environ.get("SCIM_MODEL_SEEDS", "3")) + 1))


CYCLES = int(os.environ.get("SCIM_MODEL_CYCLES", "5"))
SCALE = float(os.environ.get("SCIM_MODEL_SCALE", "1"))
USERS = int(os.environ.get("SCIM_MODEL_USERS", "16"))
REPEAT = int(os.environ.get("SCIM_MODEL_REPEAT", "1"))


@pytest.fixture
def server(shared_gunicorn: Gunicorn, ldap) -> Gunicorn:
    """The module's gunicorn, after ``ldap`` emptied the tree."""
    return shared_gunicorn


def run_parallel(entra: Entra, ops: list[Op]) -> None:
    """``CLIENTS`` threads take the cycle's requests from one queue, in plan order."""
    pending = list(reversed(ops))
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                if not pending:
                    return
                op = pending.pop()
            try:
                send(entra, op)
            except AssertionError as exc:  # no answer below 500 within the deadline
                op.problem = f"{op.describe()}: {exc}"

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
        assert not thread.is_alive(), "a client thread hung"


def setup_world(entra: Entra, rng: random.Random) -> World:
    """The initial users and groups (sequentially): cycle 0."""
    world = World()
    ops = [Op("create_user", name=world.fresh_user_name(rng)) for _ in range(USERS)]
    ops += [Op("create_group", name=world.fresh_group_name(rng)) for _ in range(GROUPS)]
    for op in ops:
        send(entra, op)
        assert op.problem is None, op.problem
    apply(world, ops)
    users, groups = list(world.users), list(world.groups)
    members = [Op("add_members", g, value=rng.sample(users, rng.randint(1, 6)))
               for g in groups]
    members += [Op("manager", u, value=rng.choice([x for x in users if x != u]))
                for u in rng.sample(users, USERS // 4)]
    for op in members:
        send(entra, op)
        assert op.problem is None, op.problem
    apply(world, members)
    return world


def play(server: Gunicorn, ldap, base_dn: str, seed: int, env: dict[str, str]) -> list[str]:
    """Run one seed; the first cycle's problems (empty: every cycle matched the model,
    and ``directory check`` then finds no drift either)."""
    rng = random.Random(seed)
    entra = Entra(server)
    world = setup_world(entra, rng)
    _, seen = server_errors(server.log)
    for cycle in range(1, CYCLES + 1):
        ops = plan(world, rng, SCALE)
        digest = fingerprint(world, ops)
        before = len(entra.failures)
        run_parallel(entra, ops)
        problems = [op.problem for op in ops if op.problem]
        problems += [f"{f.status} to {f.method} {f.path}: {f.detail}"
                     for f in entra.failures[before:] if f.status not in (-1, 503)]
        errors, seen = server_errors(server.log, seen)
        problems += errors
        apply(world, ops)
        want = world.expected()
        problems += ldap_problems(ldap, base_dn, want)
        sample = rng.sample(list(want.users), min(6, len(want.users)))  # creation order
        problems += scim_problems(entra, want, sample)
        kinds = Counter(op.kind for op in ops)
        print(f"seed {seed} cycle {cycle} (plan {digest}): {len(ops)} requests {dict(kinds)}, "
              f"{len(entra.failures) - before} retried attempts, {len(problems)} problems")
        if problems:
            return [f"seed {seed} (replay: SCIM_MODEL_SEED={seed}), cycle {cycle} of "
                    f"{len(ops)} parallel requests: {dict(kinds)}", *problems[:40],
                    "the cycle's requests (final status):",
                    *(f"  {op.reply.status if op.reply else '-'} {_named(op, want)}"
                      for op in ops)]
    check = directory_check(env, repair=False)
    if check.returncode != 0:
        return [f"seed {seed}: every cycle matched the model, but directory check exited "
                f"{check.returncode}:", check.stdout[-3000:], check.stderr[-1500:]]
    return []


def _named(op: Op, want) -> str:
    """The op with ids shown as names, for a readable failure."""
    def name(i: object) -> str:
        if i in want.users:
            return f"user {want.users[i]['userName']!r}"
        return f"group {want.groups[i]!r}" if i in want.groups else str(i)
    value = [name(v) for v in op.value] if isinstance(op.value, list) else op.value
    if op.kind == "manager" and op.value:
        value = name(op.value)
    return f"{op.kind} {name(op.target)} -> {op.name!r} {op.how} {value}" + \
        (" (names a deleted object)" if op.doomed else "") + (" (sent twice)" if op.twice else "")


@pytest.mark.parametrize("seed", _seeds())
def test_entra_cycles_match_the_model(server, slapd, ldap, base_dn, seed: int):
    for attempt in range(REPEAT):
        if attempt:
            from tests.conftest import wipe

            wipe(ldap, base_dn)
        print(f"SCIM_MODEL_SEED={seed} (attempt {attempt + 1} of {REPEAT})")
        problems = play(server, ldap, base_dn, seed, slapd.env)
        assert problems == [], "\n".join(problems)
