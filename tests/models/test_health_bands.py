"""Tests of the health bands learned from outcomes: cut-offs, held-out separation, refusals, estimator contract."""

from __future__ import annotations

import pickle

import numpy as np
import polars as pl
import pytest

from nextmove.errors import ConfigError, NotFittedError
from nextmove.models.health import FIXED_BANDS, HealthBands, band_expr
from nextmove.models.health_bands import HealthBandCalibrator


def _history(
    *, accounts: int = 600, times: int = 8, slope: float = -0.06, rate: float = 0.03, seed: int = 0
) -> tuple[pl.DataFrame, pl.Series]:
    """Past decisions whose scores bunch around 50 (as a mean of percentiles does) and predict churn.

    Each account keeps a level of health and drifts a little from one decision to the next; churn
    follows the score with log-odds ``slope`` per point around a rate of about ``rate``.
    """
    rng = np.random.default_rng(seed)
    level = rng.normal(50.0, 10.0, accounts)
    score = np.clip(level[None, :] + rng.normal(0.0, 3.0, (times, accounts)), 0, 100)
    logit = np.log(rate / (1 - rate)) + slope * (score - 50.0)
    churned = rng.random(score.shape) < 1 / (1 + np.exp(-logit))
    history = pl.DataFrame(
        {
            "decision_ts": np.repeat(np.arange(times), accounts),
            "account_id": np.tile([f"a{i}" for i in range(accounts)], times),
            "health_score": score.ravel().round(1),
            "y_churn": churned.ravel().astype(np.int8),
            "censored": np.zeros(times * accounts, dtype=bool),
        }
    )
    current = pl.Series("health_score", np.clip(level + rng.normal(0.0, 3.0, accounts), 0, 100).round(1))
    return history, current


def _shares(scores: pl.Series, bands: HealthBands) -> dict[str, float]:
    banded = pl.DataFrame({"s": scores}).select(band_expr(pl.col("s"), bands)).get_column("health_band")
    return {band: float((banded == band).mean()) for band in ("Healthy", "At risk", "Critical")}  # type: ignore[arg-type]


def test_calibrator_bands_separate_churn_on_the_later_window_where_fixed_cutoffs_do_not() -> None:
    history, current = _history()
    cal = HealthBandCalibrator().fit(history, current)
    assert cal.bands_ is not None
    assert cal.bands_.source == "history"
    # Scores bunched around 50: the fixed 30/70 cut-offs call nearly every account At risk.
    assert _shares(current, FIXED_BANDS)["At risk"] > 0.9
    shares = _shares(current, cal.bands_)
    assert max(shares.values()) < 0.75
    assert min(shares.values()) > 0.02
    report = cal.report
    later = {b.band: b for b in report.later}
    assert report.monotone
    rates = [later[b].rate for b in ("Healthy", "At risk", "Critical")]
    assert all(r is not None for r in rates)
    assert rates == sorted(rates)  # type: ignore[type-var]
    critical, healthy = later["Critical"].relative, later["Healthy"].relative
    assert critical is not None
    assert critical >= 1.5
    assert healthy is not None
    assert healthy < 1.0
    assert sum(b.rows for b in report.later) == report.later_rows
    assert report.slope_per_point < 0
    assert report.slope_z < -2


def test_calibrator_cutoffs_follow_the_score_not_the_books_churn_rate() -> None:
    # The same score with the same slope in a book churning 1 % and one churning 4 %: the bands are
    # relative to each book's average risk, so the cut-offs barely move.
    low = HealthBandCalibrator().fit(*_history(rate=0.01, accounts=2000)).bands_
    high = HealthBandCalibrator().fit(*_history(rate=0.04, accounts=2000)).bands_
    assert low is not None
    assert high is not None
    assert abs(low.critical_max - high.critical_max) <= 3
    assert abs(low.at_risk_max - high.at_risk_max) <= 3


def test_calibrator_risk_ratios_move_the_cutoffs() -> None:
    history, current = _history()
    default = HealthBandCalibrator().fit(history, current).bands_
    strict = HealthBandCalibrator(risk_ratios=(3.0, 1.5)).fit(history, current).bands_
    assert default is not None
    assert strict is not None
    assert strict.critical_max < default.critical_max
    assert strict.at_risk_max < default.at_risk_max


def test_calibrator_has_no_critical_band_when_twice_the_average_risk_is_certain() -> None:
    history, current = _history(rate=0.6, slope=-0.02)
    bands = HealthBandCalibrator().fit(history, current).bands_
    assert bands is not None
    assert bands.critical_max == -1
    assert bands.ranges()["Critical"] is None


def test_calibrator_refuses_a_score_that_does_not_predict_the_outcome() -> None:
    history, current = _history(slope=0.0)
    with pytest.raises(ConfigError, match="does not predict 'churn' clearly enough"):
        HealthBandCalibrator().fit(history, current)
    backwards, current = _history(slope=0.05)
    with pytest.raises(ConfigError, match="does not predict"):
        HealthBandCalibrator().fit(backwards, current)


def test_calibrator_refusal_prints_a_slope_short_of_the_bar_as_short_of_it() -> None:
    # "slope is -2.0 standard errors, beyond -2 needed" read as meeting the bar it fell short of.
    history, current = _history(seed=1, slope=-0.01)  # a slope of -3.39 standard errors
    with pytest.raises(ConfigError, match=r"slope is -3\.39 standard errors; it needs -3\.4 or steeper\)"):
        HealthBandCalibrator(min_z=3.4).fit(history, current)


def test_calibrator_refusal_never_prints_a_flat_slope_as_minus_zero() -> None:
    # "its churn curve's slope is -0.0 standard errors": a signed zero, neither which way nor how far.
    history, current = _history(seed=72, slope=0.0, accounts=300)  # a slope of -0.03 standard errors
    with pytest.raises(ConfigError, match=r"slope is -0\.03 standard errors; it needs -2 or steeper\)"):
        HealthBandCalibrator().fit(history, current)


def test_calibrator_refuses_too_few_events() -> None:
    history, current = _history()
    few = history.with_columns(pl.when(pl.col("account_id").is_in(["a1", "a2"])).then(pl.col("y_churn")).otherwise(0))
    with pytest.raises(ConfigError, match="needs at least 10 events"):
        HealthBandCalibrator().fit(few, current)
    with pytest.raises(ConfigError, match="no column 'y_cancel'"):
        HealthBandCalibrator(label="y_cancel").fit(history, current)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"risk_ratios": (1.0, 2.0)}, "critical >= at_risk > 0"),
        ({"risk_ratios": (2.0, 0.0)}, "critical >= at_risk > 0"),
        ({"test_fraction": 1.0}, r"test_fraction must be in \(0, 1\)"),
    ],
)
def test_calibrator_validates_its_parameters_in_fit(params: dict[str, object], match: str) -> None:
    cal = HealthBandCalibrator(**params)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=match):
        cal.fit(*_history())


def test_calibrator_report_before_fit_says_what_to_call() -> None:
    with pytest.raises(NotFittedError, match=r"call fit\(history, current\) first"):
        _ = HealthBandCalibrator().report


def test_calibrator_is_deterministic_pickles_and_leaves_its_input_alone() -> None:
    history, current = _history()
    before = history.clone()
    first = HealthBandCalibrator().fit(history, current)
    second = HealthBandCalibrator().fit(history, current)
    assert first.bands_ == second.bands_
    assert first.report_ == second.report_
    assert history.equals(before)
    again = pickle.loads(pickle.dumps(first))
    assert again.bands_ == first.bands_


def test_calibrator_leaves_out_censored_and_unscored_rows() -> None:
    history, current = _history()
    noisy = pl.concat(
        [
            history,
            # Rows whose horizon is not over, all churned, and rows without a score: neither may count.
            history.head(500).with_columns(pl.lit(1, pl.Int8).alias("y_churn"), pl.lit(True).alias("censored")),
            history.head(500).with_columns(pl.lit(None, pl.Float64).alias("health_score")),
        ]
    )
    assert HealthBandCalibrator().fit(noisy, current).bands_ == HealthBandCalibrator().fit(history, current).bands_


def test_report_monotone_allows_noise_in_a_tiny_band_but_not_a_clear_inversion() -> None:
    from nextmove.models.health_bands import BandOutcome, HealthBandReport

    def report(critical_rows: int, critical_events: int) -> HealthBandReport:
        later = [
            BandOutcome("Healthy", (49, 100), 7000, 390, 390 / 7000, None),
            BandOutcome("At risk", (13, 48), 6500, 550, 550 / 6500, None),
            BandOutcome("Critical", (0, 12), critical_rows, critical_events, critical_events / critical_rows, None),
        ]
        return HealthBandReport("y_churn", (2.0, 1.0), 1, 1, -0.02, -9.0, "t", 13500, 940, 0.07, later)

    assert report(31, 1).monotone  # 3 % of 31 decisions against 8.5 %: within noise
    assert not report(3000, 30).monotone  # 1 % of 3,000: clearly below the At risk band
    assert report(3000, 600).monotone


def test_calibrator_with_a_horizon_learns_nothing_from_outcomes_of_the_later_window() -> None:
    # A decision's label counts churn up to horizon_days after it: an earlier decision that close to the
    # later window would learn its cut-offs from outcomes that also measure the bands.
    from datetime import UTC, datetime, timedelta

    history, current = _history(accounts=1500, times=12)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    weeks = history.get_column("decision_ts").to_list()
    history = history.with_columns(pl.Series("decision_ts", [start + timedelta(weeks=int(w)) for w in weeks]))
    fitted = HealthBandCalibrator(horizon_days=21).fit(history, current)
    assert fitted.report_ is not None
    cut = datetime.fromisoformat(fitted.report_.split_ts)
    near = (pl.col("decision_ts") < cut) & (pl.col("decision_ts") + timedelta(days=21) > cut)
    assert history.filter(near).height > 0
    # Those decisions' outcomes (all churned, say) change nothing with the horizon given ...
    changed = history.with_columns(pl.when(near).then(1).otherwise(pl.col("y_churn")).cast(pl.Int8).alias("y_churn"))
    assert HealthBandCalibrator(horizon_days=21).fit(changed, current).bands_ == fitted.bands_
    # ... and would move the cut-offs without it.
    assert HealthBandCalibrator().fit(changed, current).bands_ != HealthBandCalibrator().fit(history, current).bands_
