"""Compile desired LDAP attribute values into one ldap3 changes dict."""

from __future__ import annotations

from typing import Any

from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE

Changes = dict[str, list[tuple[str, list[str]]]]

__all__ = ["MODIFY_ADD", "MODIFY_DELETE", "MODIFY_REPLACE", "Changes", "diff"]


def diff(current: dict[str, list[Any]], desired: dict[str, list[str]],
         managed: list[str]) -> Changes:
    """Changes that turn ``current`` into ``desired`` for the ``managed`` attributes.

    ``current`` has lower-cased keys (as read); untouched attributes stay out of the
    modify, so one PATCH is one LDAP modify of exactly what changed.
    """
    changes: Changes = {}
    desired_lower = {k.lower(): v for k, v in desired.items()}
    for name in dict.fromkeys(managed):
        cur = [str(v) for v in current.get(name.lower(), [])]
        new = desired_lower.get(name.lower(), [])
        if cur != new and (new or cur):
            changes[name] = [(MODIFY_REPLACE, new)]
    return changes
