"""The online learner's posterior: noise-aware, shrunk, idempotent."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nextmove.engine.online import (
    MAX_GAP_SQUARES,
    MAX_GAP_Z,
    NOISE_PRIOR_EVENTS,
    OnlineLearner,
    best_allowed,
    thompson_probabilities,
)

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


def test_an_absurd_outcome_is_not_counted_and_leaves_the_correction_a_number() -> None:
    """Two outcomes of ±1e300 USD made z² infinite: τ² inf, mean 0 and sd NaN for good, whatever came next."""
    clean, poisoned = OnlineLearner(level=LEVEL), OnlineLearner(level=LEVEL)
    for learner in (clean, poisoned):
        _feed(learner, "discount", [-4.0])
    for i, value in enumerate((1e300, -1e300)):
        assert not poisoned.observe(
            f"absurd-{i}", "discount", realised_usd=value, projected_usd=30.0, low_usd=-30.0, high_usd=90.0
        )
        assert not poisoned.has_seen(f"absurd-{i}")
    for learner in (clean, poisoned):
        _feed(learner, "discount", [-2.0] * 20, prefix="later-")
    corr = poisoned.correction("discount")
    assert corr == clean.correction("discount")
    assert corr.outcomes == 21
    assert math.isfinite(corr.mean_z)
    assert corr.mean_z < 0
    assert math.isfinite(corr.sd_z)
    mean, sd, _ = poisoned.shifts(["discount"])
    assert np.isfinite(mean).all()
    assert np.isfinite(sd).all()


def test_gaps_that_would_take_the_squares_past_their_bound_are_not_counted() -> None:
    """Huge but finite gaps (6e149 spreads) are far past MAX_GAP_Z: none counts; the posterior stays the prior."""
    learner = OnlineLearner(level=LEVEL)
    half = learner.z
    counted = [
        learner.observe(f"huge-{i}", "qbr", realised_usd=6e149, projected_usd=0.0, low_usd=-half, high_usd=half)
        for i in range(4)
    ]
    assert counted == [False] * 4
    assert MAX_GAP_Z**2 < MAX_GAP_SQUARES
    corr = learner.correction("qbr")
    assert (corr.outcomes, corr.mean_z, corr.sd_z) == (0, 0.0, 1.0)


def test_thompson_never_draws_a_blocked_option_whatever_its_numbers() -> None:
    """A NaN sd made every draw NaN, and argmax took the first NaN: a blocked option won ~99.6 % of draws."""
    rng = np.random.default_rng(5)
    mean = np.array([np.nan, 100.0, 0.0, np.inf])
    sd = np.array([np.nan, 10.0, 0.0, np.nan])
    allowed = np.array([False, True, True, False])
    probs = thompson_probabilities(mean, sd, allowed, rng, 500)
    assert probs.sum() == pytest.approx(1.0)
    assert probs[0] == 0.0
    assert probs[3] == 0.0
    assert probs[1] > 0.99
    assert probs[2] > 0
    # An allowed option whose draws are not numbers is never the argmax; only the pseudo-draw keeps it possible.
    probs = thompson_probabilities(
        np.array([np.nan, 5.0, 0.0]), np.array([1.0, 1.0, 0.0]), np.array([True, True, True]), rng, 300
    )
    assert probs[0] == pytest.approx(1 / 3 / 301)
    assert probs[1] > 0.99
    assert best_allowed(np.array([np.nan, 5.0, 0.0, 99.0]), np.array([True, True, True, False])) == 1


def test_an_outcome_farther_than_a_thousand_spreads_is_not_counted_and_erases_nothing() -> None:
    """Dollars sent in cents (−250,000 for a $2,500 churn against a spread of $3.60) or 1e12 are allowed values
    whose gap would set every action's noise variance: not counted, the other corrections kept."""
    learner = OnlineLearner(level=0.9)
    for i in range(50):
        assert learner.observe(
            f"a{i}", "a", realised_usd=80.0 + i % 5, projected_usd=100.0, low_usd=50.0, high_usd=150.0
        )
    before = learner.correction("a")
    assert not learner.observe("b0", "b", realised_usd=-250_000.0, projected_usd=0.0, low_usd=-6.0, high_usd=6.0)
    assert not learner.observe("b1", "b", realised_usd=1e12, projected_usd=0.0, low_usd=-6.0, high_usd=6.0)
    assert learner.correction("a") == before
    assert learner.correction("b").outcomes == 0
    # A gap of a few hundred spreads (a churn costing the whole ARR) still counts.
    assert learner.observe("b2", "b", realised_usd=-2_500.0, projected_usd=0.0, low_usd=-6.0, high_usd=6.0)
