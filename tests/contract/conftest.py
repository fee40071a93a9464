"""Fixtures shared by the contract tests (the session slapd ones are in tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests import entra
from tests.conftest import Scim
from tests.contract.users_support import create


@pytest.fixture
def adele(scim: Scim) -> dict[str, Any]:
    """Entra's example user (tutorial create body), as created."""
    return create(scim, entra.user())


@pytest.fixture
def boss(scim: Scim) -> dict[str, Any]:
    """A second user, to be a manager."""
    return create(scim, {**entra.minimal_user("Megan.Bowen@contoso.com"),
                         "displayName": "Megan Bowen"})
