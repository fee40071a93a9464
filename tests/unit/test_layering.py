"""Enforce the import layering of docs/architecture.md."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: module prefix -> top-level packages it must not import
FORBIDDEN = {
    "scim/protocol/": {"flask", "flask_httpauth", "marshmallow", "ldap3", "directory",
                       "config", "werkzeug", "pyasn1"},
    "config/": {"flask", "ldap3", "directory", "scim"},
    "directory/": {"flask", "flask_httpauth", "marshmallow", "werkzeug"},
    "scim/schemas.py": {"flask", "ldap3", "directory"},
    "scim/service/": {"flask", "flask_httpauth", "ldap3", "werkzeug"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _modules() -> list[tuple[str, set[str]]]:
    out = []
    for path in sorted(ROOT.glob("**/*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith((".venv", "var/", "build/")):
            continue
        for prefix, banned in FORBIDDEN.items():
            if rel.startswith(prefix):
                out.append((rel, banned))
    return out


@pytest.mark.parametrize(("module", "banned"), _modules(), ids=lambda v: str(v)[:60])
def test_layering(module, banned):
    bad = _imports(ROOT / module) & banned
    assert not bad, f"{module} imports {sorted(bad)}, which its layer may not use"


def test_protocol_is_pure_stdlib():
    import sys

    allowed = set(sys.stdlib_module_names) | {"scim"}
    for path in (ROOT / "scim" / "protocol").glob("*.py"):
        extra = _imports(path) - allowed
        assert not extra, f"{path.name} imports {sorted(extra)}"
