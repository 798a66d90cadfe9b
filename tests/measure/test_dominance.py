"""Tests of the leave-k-out rule behind the notes on one or two accounts (nextmove.measure.dominance)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tests.measure.test_few_accounts_notes import _log, _upsell, playbook

from nextmove.measure.dominance import Dominance, cluster_ratio, dominates, find_dominance
from nextmove.measure.ope import _cluster_se, evaluate_policy


def test_dominates_needs_a_move_past_the_others_noise_and_most_of_the_spread() -> None:
    assert dominates(-1713.0, 3970.0, 640.0, 593.0)  # the hunt's two whale downgrades
    assert not dominates(-1713.0, 3970.0, 640.0, 2500.0)  # they leave most of the spread: a heavy tail
    assert not dominates(100.0, 50.0, 99.0, 1.0)  # most of the spread, but they barely move it
    assert not dominates(100.0, 0.0, 0.0, 0.0)  # no spread at all: nothing to say


def test_find_dominance_finds_two_accounts_where_one_is_not_enough() -> None:
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.normal(10.0, 1.0, 500), [1_000.0, -9_000.0, -8_000.0]])

    def without(drop: tuple[int, ...] | list[int]) -> tuple[float, float]:
        kept = np.delete(y, list(drop))
        return float(kept.mean()), float(kept.std(ddof=1) / math.sqrt(len(kept)))

    single = np.array([without([i])[0] for i in range(len(y))])
    found = find_dominance(float(y.mean()), without([])[1], single, without)
    assert isinstance(found, Dominance)
    assert sorted(found.accounts) == [501, 502]  # the two downgrades: the upgrade is left in
    assert found.share is not None
    assert found.share > 1  # the sign turns
    assert find_dominance(float(y[:500].mean()), without([])[1], single[:500], without) is None


@pytest.mark.parametrize("method", ["ips", "snips"])
def test_cluster_ratio_has_the_estimate_and_standard_error_of_ope(method: str) -> None:
    rows, rewards = _log(300, 40_000.0, seed=3)
    (value,) = evaluate_policy(rows, _upsell(rows), playbook(), methods=(method,), rewards=rewards)
    weights = (rows.get_column("action_id") == "upsell").to_numpy() / 0.5
    clusters = rows.get_column("account_id").rank("dense").to_numpy().astype(np.int64)
    denominators = weights if method == "snips" else np.ones(len(weights))
    estimate, stderr, single, _ = cluster_ratio([(weights * rewards, denominators, 1.0)], clusters)
    assert estimate == pytest.approx(value.estimate)
    assert stderr == pytest.approx(value.stderr)
    if method == "ips":
        assert stderr == pytest.approx(_cluster_se(weights * rewards - estimate, clusters))
    assert len(single) == 300
