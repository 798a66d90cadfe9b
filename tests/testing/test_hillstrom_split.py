"""The Hillstrom helpers the peer benchmark builds on: other split seeds and one-objective playbooks."""

from __future__ import annotations

import numpy as np
import pytest

from nextmove.errors import ConfigError
from nextmove.testing import hillstrom_playbook, hillstrom_test_positions


def test_hillstrom_test_positions_seed_zero_is_the_fixed_split() -> None:
    assert np.array_equal(hillstrom_test_positions(random_state=0), hillstrom_test_positions())


def test_hillstrom_test_positions_other_seeds_give_other_halves() -> None:
    fixed = set(hillstrom_test_positions(1000).tolist())
    other = hillstrom_test_positions(1000, random_state=1)
    assert other.size == 500
    assert len(set(other.tolist())) == 500
    assert set(other.tolist()) != fixed
    assert set(other.tolist()) <= set(range(1000))


@pytest.mark.parametrize("objective", ["visit", "spend"])
def test_hillstrom_playbook_keeps_one_objective(objective: str) -> None:
    playbook = hillstrom_playbook(objective)
    assert list(playbook.objectives) == [objective]
    assert [a.id for a in playbook.actions] == [a.id for a in hillstrom_playbook().actions]
    assert {a.objective for a in playbook.actions} == {objective}


def test_hillstrom_playbook_rejects_an_unknown_objective() -> None:
    with pytest.raises(ConfigError, match="'churn'"):
        hillstrom_playbook("churn")
