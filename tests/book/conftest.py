"""Fixtures shared by the book tests."""

from __future__ import annotations

import pytest

from nextmove.playbook.loader import load_playbook
from nextmove.playbook.schema import Playbook


@pytest.fixture(scope="session")
def playbook() -> Playbook:
    """The built-in default playbook (its catalog decides which action_ids are known)."""
    return load_playbook()
