"""PATCH (RFC 7644 §3.5.2): parse a PatchOp, apply it to a resource in memory.

Users are small, so a PATCH is applied to the current resource here and the
directory layer writes the difference in one LDAP modify. Group members are never
loaded: :func:`split_members` turns member operations into a delta plan instead.

Entra dialect handled here (see docs/entra.md): ``op`` in any case; path-less
``value`` objects whose keys are attribute paths (``"name.givenName"``, URN-qualified);
``Add`` through a value filter that matches nothing creates the element;
``Remove`` of ``members`` carrying a value list removes exactly those members.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from scim.protocol.errors import InvalidSyntax, InvalidValue, Mutability, NoTarget
from scim.protocol.filter import And, AttrPath, Compare, Expr, Not, Or, Present, ValuePath
from scim.protocol.paths import PatchPath, parse_patch_path
from scim.protocol.schema import (
    GROUP_SCHEMA,
    PATCH_OP,
    Attribute,
    ResourceType,
    common_attribute,
)

OPS = ("add", "replace", "remove")


@dataclass(frozen=True)
class PatchOperation:
    """One normalised operation; ``path`` is None only for path-less add/replace."""

    op: str
    path: PatchPath | None
    value: Any = None
    raw_path: str = ""


def parse_patch_request(body: Any, *, max_operations: int) -> list[PatchOperation]:
    """Validate a PatchOp message and normalise its operations."""
    if not isinstance(body, dict):
        raise InvalidSyntax("the request body must be a JSON object (a PatchOp message)")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or PATCH_OP not in schemas:
        raise InvalidSyntax(f"'schemas' must contain {PATCH_OP!r}")
    ops = next((v for k, v in body.items() if k.lower() == "operations"), None)
    if not isinstance(ops, list) or not ops:
        raise InvalidSyntax("'Operations' must be a non-empty array")
    if len(ops) > max_operations:
        raise InvalidValue(f"too many operations: {len(ops)} (at most {max_operations})")
    parsed = [_parse_operation(i, raw) for i, raw in enumerate(ops)]
    weight = sum(_weight(op) for op in parsed)
    if weight > max_operations:
        raise InvalidValue(f"too many operations: {weight} (at most {max_operations}; each "
                           "key of a path-less operation's value counts as one operation)")
    return parsed


def _weight(op: PatchOperation) -> int:
    """How many operations ``op`` stands for: one per key of a path-less value (an
    extension's object counts its own keys), as :func:`expand` will make of it."""
    if op.path is not None:
        return 1
    return sum(len(v) if _is_schema_urn(str(k)) and isinstance(v, dict) else 1
               for k, v in op.value.items()) or 1


def _parse_operation(index: int, raw: Any) -> PatchOperation:
    if not isinstance(raw, dict):
        raise InvalidSyntax(f"Operations[{index}] must be an object")
    lowered = {str(k).lower(): v for k, v in raw.items()}
    op = lowered.get("op")
    if not isinstance(op, str) or op.lower() not in OPS:
        raise InvalidSyntax(
            f"Operations[{index}].op must be add, replace or remove (any case), got {op!r}"
        )
    op = op.lower()
    path_text = lowered.get("path")
    if path_text is not None and not isinstance(path_text, str):
        raise InvalidSyntax(f"Operations[{index}].path must be a string")
    value = lowered.get("value")
    if path_text and _is_schema_urn(path_text):
        # A path naming a whole extension (urn:…:enterprise:2.0:User): the same as a
        # path-less operation on {urn: value}; remove drops all its attributes.
        return PatchOperation(op, None, {path_text: value}, path_text)
    path = parse_patch_path(path_text) if path_text else None
    if path is None and op == "remove":
        raise NoTarget(f"Operations[{index}]: remove needs a path")
    if path is None and not isinstance(value, dict):
        raise InvalidSyntax(f"Operations[{index}]: {op} without a path needs an object value")
    if op != "remove" and "value" not in lowered:
        raise InvalidSyntax(f"Operations[{index}]: {op} needs a value")
    return PatchOperation(op, path, value, path_text or "")


def _is_schema_urn(text: str) -> bool:
    """``urn:…:2.0:User``: a schema URN, not an attribute path (last part after a version)."""
    parts = text.split(":")
    return text.lower().startswith("urn:") and len(parts) > 2 and \
        parts[-2].replace(".", "").isdigit()


def expand(ops: list[PatchOperation], rtype: ResourceType) -> list[PatchOperation]:
    """Turn each path-less add/replace into one operation per key of its value.

    Keys are attribute paths (RFC 7644 §3.5.2.1 says attributes; Entra sends dotted
    and URN-qualified paths). A key that names an extension URN with an object value
    expands into that extension's attributes.
    """
    out: list[PatchOperation] = []
    for op in ops:
        if op.path is not None:
            out.append(op)
            continue
        for key, value in op.value.items():
            ext = rtype.extension(key)
            if ext is not None and (op.op == "remove" or value is None):
                for attr in ext.attributes:
                    text = f"{ext.id}:{attr.name}"
                    out.append(PatchOperation("remove", parse_patch_path(text), None, text))
            elif ext is not None and isinstance(value, dict):
                for sub_key, sub_value in value.items():
                    if sub_key.lower() == "schemas":
                        continue
                    text = f"{ext.id}:{sub_key}"
                    out.append(PatchOperation(op.op, parse_patch_path(text), sub_value, text))
            elif key.lower() == "schemas":
                continue
            else:
                out.append(PatchOperation(op.op, parse_patch_path(key), value, key))
    return out


# --- resolving paths against the definitions -------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where an operation lands: container key (None = core), attribute, sub-attribute."""

    urn: str | None
    attr: Attribute
    sub: Attribute | None
    value_filter: Expr | None


def resolve(path: PatchPath, rtype: ResourceType, raw: str) -> Target:
    """Resolve a parsed path to definitions, case-insensitively (RFC 7643 §2.1)."""
    ap = path.attr
    urn: str | None = None
    if ap.urn and ap.urn.lower() != rtype.schema.id.lower():
        ext = rtype.extension(ap.urn)
        if ext is None:
            raise InvalidValue(f"unknown schema {ap.urn!r} in path {raw!r}")
        urn, attr = ext.id, ext.attribute(ap.attr)
    else:
        attr = rtype.schema.attribute(ap.attr) or common_attribute(ap.attr)
        if attr is None and not ap.urn:
            # Entra's older form names an extension attribute bare ("path": "manager").
            found = [(e.id, e.attribute(ap.attr)) for e in rtype.extensions
                     if e.attribute(ap.attr) is not None]
            if len(found) == 1:
                urn, attr = found[0]
    if attr is None:
        raise InvalidValue(f"unknown attribute {ap.attr!r} in path {raw!r}")
    sub_name = ap.sub or path.sub
    sub = None
    if sub_name:
        sub = attr.sub(sub_name)
        if sub is None:
            raise InvalidValue(f"unknown sub-attribute {sub_name!r} in path {raw!r}")
    if path.value_filter is not None and not attr.multi_valued:
        raise InvalidValue(f"{attr.name!r} is not multi-valued; a [filter] needs a list")
    readonly = attr.mutability == "readOnly" or (sub is not None and sub.mutability == "readOnly")
    if readonly:
        raise Mutability(f"{raw!r} is read-only")
    return Target(urn, attr, sub, path.value_filter)


# --- value filters on elements ------------------------------------------------------


def matches(expr: Expr, element: Any, attr: Attribute) -> bool:
    """Evaluate a value filter (``type eq "work"``) against one element."""
    return bool(predicate(expr, attr)(element))


def predicate(expr: Expr, attr: Attribute) -> Any:
    """The value filter as a test of one element, resolved once (names, case rules): a
    PATCH operation tests every element of a list with it."""
    if isinstance(expr, And):
        parts = [predicate(e, attr) for e in expr.items]
        return lambda element: all(p(element) for p in parts)
    if isinstance(expr, Or):
        parts = [predicate(e, attr) for e in expr.items]
        return lambda element: any(p(element) for p in parts)
    if isinstance(expr, Not):
        inner = predicate(expr.expr, attr)
        return lambda element: not inner(element)
    if isinstance(expr, ValuePath):
        raise InvalidValue("nested value filters are not supported")
    name = (expr.path.sub or expr.path.attr).lower()
    present = isinstance(expr, Present)
    sub = attr.sub(name)
    case_exact = bool(sub and sub.case_exact)

    def test(element: Any) -> bool:
        if not isinstance(element, dict):
            return False
        actual = element.get(name) if name in element else next(
            (v for k, v in element.items() if k.lower() == name), None)
        if present:
            return actual not in (None, "", [], {})
        assert isinstance(expr, Compare)
        return compare_values(expr.op, actual, expr.value, case_exact)
    return test


def compare_values(op: str, actual: Any, expected: Any, case_exact: bool) -> bool:
    if isinstance(actual, str) and isinstance(expected, str) and not case_exact:
        actual, expected = actual.lower(), expected.lower()
    if op == "eq":
        return actual == expected
    if op == "ne":
        return actual != expected
    if actual is None or expected is None:
        return False
    if op in ("co", "sw", "ew"):
        if not (isinstance(actual, str) and isinstance(expected, str)):
            return False
        return {"co": expected in actual, "sw": actual.startswith(expected),
                "ew": actual.endswith(expected)}[op]
    try:
        return {"gt": actual > expected, "ge": actual >= expected,
                "lt": actual < expected, "le": actual <= expected}[op]
    except TypeError:
        return False


def _seed(expr: Expr) -> dict[str, Any]:
    """Sub-attribute values implied by an ``eq``-only filter (to create a new element)."""
    if isinstance(expr, Compare) and expr.op == "eq":
        return {expr.path.sub or expr.path.attr: expr.value}
    if isinstance(expr, And):
        seed: dict[str, Any] = {}
        for item in expr.items:
            part = _seed(item)
            if not part:
                return {}
            seed.update(part)
        return seed
    return {}


# --- applying to a resource ---------------------------------------------------------


def apply(resource: dict[str, Any], ops: list[PatchOperation], rtype: ResourceType) -> dict:
    """Return a patched deep copy of ``resource`` (canonical SCIM JSON form).

    The result still has to pass full validation; this function only places values.
    """
    result = copy.deepcopy(resource)
    for op in expand(ops, rtype):
        assert op.path is not None
        target = resolve(op.path, rtype, op.raw_path)
        container = result if target.urn is None else result.setdefault(target.urn, {})
        _apply_one(container, op, target)
        if target.urn is not None and not result[target.urn]:
            del result[target.urn]
    return result


def _key(container: dict[str, Any], name: str) -> str:
    """The key ``name`` has in ``container`` (case-insensitive), else ``name``."""
    return next((k for k in container if k.lower() == name.lower()), name)


def _apply_one(container: dict[str, Any], op: PatchOperation, t: Target) -> None:
    key = _key(container, t.attr.name)
    if op.op == "replace" and op.value is None:
        op = PatchOperation("remove", op.path, None, op.raw_path)
    if t.attr.multi_valued:
        _apply_multi(container, key, op, t)
    elif t.sub is not None:
        _apply_sub(container, key, op, t.sub)
    elif op.op == "remove":
        container.pop(key, None)
    elif t.attr.type == "complex" and isinstance(op.value, dict) and isinstance(
        container.get(key), dict
    ):
        container[key].update(op.value)
    else:
        container[key] = op.value


def _apply_sub(container: dict[str, Any], key: str, op: PatchOperation, sub: Attribute) -> None:
    current = container.get(key)
    if op.op == "remove":
        if isinstance(current, dict):
            current.pop(_key(current, sub.name), None)
            if not current:
                container.pop(key)
        return
    if not isinstance(current, dict):
        current = container[key] = {}
    current[_key(current, sub.name)] = op.value


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _apply_multi(container: dict[str, Any], key: str, op: PatchOperation, t: Target) -> None:
    """One operation on a multi-valued attribute. Its cost is bounded by the length of
    the list, and the list by ``max_values``: a PATCH that grows it past that is
    refused here, so N operations cost O(N × max_values), never O(N²). (An entry made
    outside SCIM may hold more; such a list may shrink, not grow.)"""
    elements = container.get(key)
    if not isinstance(elements, list):
        elements = []
    limit = None if t.attr.max_values is None else max(t.attr.max_values, len(elements))
    if t.value_filter is None:
        elements = _multi_whole(elements, op, t)
    else:
        elements = _multi_filtered(elements, op, t)
    if limit is not None and len(elements) > limit:
        raise InvalidValue(f"{t.attr.name}: at most {t.attr.max_values} values "
                           f"(this PATCH makes {len(elements)})")
    if elements:
        container[key] = elements
    else:
        container.pop(key, None)


def _multi_whole(elements: list[Any], op: PatchOperation, t: Target) -> list[Any]:
    if t.sub is not None:
        raise InvalidValue(f"{op.raw_path!r}: select elements with a [filter] first")
    if op.op == "replace":
        return list(_as_list(op.value))
    if op.op == "add":
        return elements + [v for v in _as_list(op.value) if v not in elements]
    if op.value is None:
        return []
    drop = _as_list(op.value)
    return [e for e in elements if not any(_same_element(e, d) for d in drop)]


def _same_element(element: Any, probe: Any) -> bool:
    if isinstance(element, dict) and isinstance(probe, dict):
        return all(
            str(element.get(_key(element, k), "")).lower() == str(v).lower()
            for k, v in probe.items() if v is not None and not k.startswith("$")
        )
    return bool(element == probe)


def _multi_filtered(elements: list[Any], op: PatchOperation, t: Target) -> list[Any]:
    assert t.value_filter is not None
    test = predicate(t.value_filter, t.attr)
    hits = [i for i, e in enumerate(elements) if test(e)]
    if op.op == "remove":
        if t.sub is None:
            dropped = set(hits)
            return [e for i, e in enumerate(elements) if i not in dropped]
        for i in hits:
            elements[i].pop(_key(elements[i], t.sub.name), None)
        return elements
    if not hits:
        seed = _seed(t.value_filter)
        if not seed:
            raise NoTarget(f"{op.raw_path!r} matches no element to {op.op}")
        new = dict(seed)
        if t.sub is not None:
            new[t.sub.name] = op.value
        elif isinstance(op.value, dict):
            new.update(op.value)
        else:
            raise InvalidValue(f"{op.raw_path!r}: the value must be an object")
        return elements + [new]
    for i in hits:
        if t.sub is not None:
            elements[i][_key(elements[i], t.sub.name)] = op.value
        elif isinstance(op.value, dict):
            base = elements[i] if op.op == "add" else _seed(t.value_filter)
            elements[i] = {**base, **op.value}
        else:
            raise InvalidValue(f"{op.raw_path!r}: the value must be an object")
    return elements


# --- group members: a delta plan, never a list rewrite ------------------------------

_MEMBERS = GROUP_SCHEMA.attribute("members")
assert _MEMBERS is not None


@dataclass
class MemberPlan:
    """Net effect of member operations, applied in request order.

    ``replace`` is None for a pure delta (``add``/``remove`` sets), else the new
    complete member list before ``add``/``remove`` are applied on top. Ids (entryUUIDs)
    compare case-insensitively: each dict maps the lower-cased id to the id as sent.
    """

    add: dict[str, str] = field(default_factory=dict)
    remove: dict[str, str] = field(default_factory=dict)
    replace: dict[str, str] | None = None

    @property
    def empty(self) -> bool:
        return self.replace is None and not self.add and not self.remove

    def do_add(self, ids: list[str]) -> None:
        for i in ids:
            self.remove.pop(i.lower(), None)
            self.add[i.lower()] = i

    def do_remove(self, ids: list[str]) -> None:
        for i in ids:
            self.add.pop(i.lower(), None)
            self.remove[i.lower()] = i

    def do_replace(self, ids: list[str]) -> None:
        self.replace = {i.lower(): i for i in ids}
        self.add, self.remove = {}, {}

    def final_replacement(self) -> list[str] | None:
        if self.replace is None:
            return None
        merged = {**self.replace, **self.add}
        return [i for key, i in merged.items() if key not in self.remove]


def member_ids(value: Any, raw_path: str) -> list[str]:
    """Member ids from ``[{"value": id}, …]``, ``{"value": id}`` or bare id strings.

    The other sub-attributes the definition has (``display``, ``type``, ``$ref``) are
    accepted and not stored (the directory knows them); an unknown one is refused, as
    POST and PUT refuse it."""
    ids: list[str] = []
    for item in _as_list(value):
        if isinstance(item, dict):
            unknown = next((k for k in item if _MEMBERS.sub(str(k)) is None), None)
            if unknown is not None:
                raise InvalidSyntax(f"unknown attribute 'members.{unknown}' for a Group")
            item = next((v for k, v in item.items() if k.lower() == "value"), None)
        if not isinstance(item, str) or not item:
            raise InvalidValue(f"{raw_path or 'members'}: each member needs a string 'value'")
        ids.append(item)
    return ids


def _filter_ids(expr: Expr, raw_path: str) -> list[str]:
    if isinstance(expr, Compare) and expr.op == "eq" and isinstance(expr.value, str):
        if (expr.path.sub or expr.path.attr).lower() == "value":
            return [expr.value]
    if isinstance(expr, Or):
        return [i for e in expr.items for i in _filter_ids(e, raw_path)]
    raise InvalidValue(
        f"{raw_path!r}: member filters may only use value eq \"id\" (joined with or)"
    )


def split_members(
    ops: list[PatchOperation], rtype: ResourceType
) -> tuple[list[PatchOperation], MemberPlan]:
    """Separate member operations (→ plan) from the other attribute operations."""
    rest: list[PatchOperation] = []
    plan = MemberPlan()
    for op in expand(ops, rtype):
        assert op.path is not None
        in_core = op.path.attr.urn in (None, rtype.schema.id)
        if op.path.attr.attr.lower() != "members" or not in_core:
            rest.append(op)
            continue
        if op.path.sub or op.path.attr.sub:
            raise InvalidValue(f"{op.raw_path!r}: member sub-attributes cannot be changed")
        if op.path.value_filter is not None:
            ids = _filter_ids(op.path.value_filter, op.raw_path)
            if op.op != "remove":
                raise InvalidValue(f"{op.raw_path!r}: only remove may use a member filter")
            plan.do_remove(ids)
        elif op.op == "add":
            plan.do_add(member_ids(op.value, op.raw_path))
        elif op.op == "replace":
            plan.do_replace(member_ids(op.value, op.raw_path) if op.value else [])
        elif op.value is None:
            plan.do_replace([])
        else:
            plan.do_remove(member_ids(op.value, op.raw_path))
    return rest, plan


__all__ = [
    "AttrPath", "MemberPlan", "PatchOperation", "Target", "apply", "expand", "matches",
    "member_ids", "parse_patch_request", "resolve", "split_members",
]
