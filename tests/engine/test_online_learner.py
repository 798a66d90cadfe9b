"""The online learner's posterior: noise-aware, shrunk, idempotent."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nextmove.engine.online import NOISE_PRIOR_EVENTS, OnlineLearner

LEVEL = 0.9


def _feed(learner: OnlineLearner, action: str, gaps_z: list[float], prefix: str = "") -> None:
    """Observe outcomes whose gap is exactly ``z`` spreads (projection 0, interval ± the level's quantile)."""
    half = learner.z  # a half-width of z dollars makes the spread exactly 1 dollar
    for i, z in enumerate(gaps_z):
        counted = learner.observe(
            f"{prefix}{action}-{i}", action, realised_usd=z, projected_usd=0.0, low_usd=-half, high_usd=half
        )
        assert counted


def test_gaps_that_agree_move_the_action_like_a_unit_variance_posterior() -> None:
    learner = OnlineLearner(level=LEVEL)
    _feed(learner, "qbr", [-2.0] * 9)
    corr = learner.correction("qbr")
    assert corr.outcomes == 9
    assert corr.mean_z == pytest.approx(-18.0 / 10.0)
    assert corr.sd_z == pytest.approx(math.sqrt(1.0 / 10.0))


def test_noisy_gaps_move_the_action_much_less_than_their_mean() -> None:
    rng = np.random.default_rng(0)
    gaps = list(rng.normal(-1.0, 30.0, size=40))  # mean −1, variance ~900: one churn in the noise
    learner = OnlineLearner(level=LEVEL)
    _feed(learner, "qbr", gaps)
    corr = learner.correction("qbr")
    var = float(np.var(gaps, ddof=1))
    assert corr.mean_z == pytest.approx(sum(gaps) / (len(gaps) + var), rel=1e-9)
    assert abs(corr.mean_z) < 0.1 * abs(float(np.mean(gaps)))
    assert corr.sd_z == pytest.approx(math.sqrt(var / (var + len(gaps))), rel=1e-9)
    # A unit-variance posterior would have followed the sample mean almost all the way.
    assert abs(sum(gaps) / (1 + len(gaps))) > 5 * abs(corr.mean_z)


def test_an_action_with_few_outcomes_borrows_the_noise_of_the_others() -> None:
    rng = np.random.default_rng(1)
    learner = OnlineLearner(level=LEVEL)
    noisy = list(rng.normal(0.0, 20.0, size=200))
    _feed(learner, "call", noisy)
    _feed(learner, "email", [-3.0, -3.0])  # two agreeing gaps: own variance 0
    pooled = float(np.var([*noisy, -3.0, -3.0], ddof=1))
    tau2 = (2 * 0.0 + NOISE_PRIOR_EVENTS * pooled) / (2 + NOISE_PRIOR_EVENTS)
    assert learner.correction("email").mean_z == pytest.approx(-6.0 / (2 + tau2), rel=1e-9)
    assert abs(learner.correction("email").mean_z) < 0.1


def test_shifts_match_corrections_and_unseen_actions_keep_the_prior() -> None:
    learner = OnlineLearner(level=LEVEL)
    _feed(learner, "a", [1.0, 3.0, -0.5])
    _feed(learner, "b", [10.0, -12.0, 4.0, 0.0])
    mean, sd, n = learner.shifts(["a", "b", "never"])
    for i, key in enumerate(["a", "b"]):
        corr = learner.correction(key)
        assert (mean[i], sd[i], n[i]) == pytest.approx((corr.mean_z, corr.sd_z, corr.outcomes))
    assert (mean[2], sd[2], n[2]) == (0.0, 1.0, 0)


def test_a_replayed_event_counts_once_and_the_variance_does_not_change() -> None:
    learner = OnlineLearner(level=LEVEL)
    _feed(learner, "qbr", [5.0, -7.0, 1.0])
    before = learner.correction("qbr")
    again = learner.observe(
        "qbr-1", "qbr", realised_usd=-7.0, projected_usd=0.0, low_usd=-learner.z, high_usd=learner.z
    )
    assert not again
    assert learner.correction("qbr") == before
