"""Shared pytest configuration for the nextmove test suite."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# CI machines have 2 cores shared by two xdist workers: keep property tests bounded and
# deterministic rather than letting the deadline flake on a busy machine.
settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
# Random exploration is for a developer who asks for it: NEXTMOVE_HYPOTHESIS=explore.
settings.register_profile("explore", max_examples=200, deadline=None)
settings.load_profile("explore" if os.environ.get("NEXTMOVE_HYPOTHESIS") == "explore" else "ci")

# pytest-xdist's workers export COLUMNS=80 and LINES=24 (a plain `pytest` run does not), and the CLI honours an
# exported COLUMNS in pipes: the tests read messages at the CLI's own width, whichever way they are run. Popped
# before any test module imports the CLI, whose consoles take their width when it is imported.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)


@pytest.fixture(autouse=True)
def _isolated_workspace(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let a test write a store into the developer's folder."""
    ws = tmp_path_factory.mktemp("workspace")
    monkeypatch.setenv("NEXTMOVE_WORKSPACE", str(ws))
    monkeypatch.delenv("NEXTMOVE_STORE_URL", raising=False)
