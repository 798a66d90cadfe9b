"""Health bands learned from outcomes: score cut-offs where the risk of churn crosses multiples of the book's."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Self

import numpy as np
import polars as pl

from nextmove.errors import ConfigError, NotFittedError
from nextmove.models.health import BANDS, HealthBands, band_expr
from nextmove.models.health_optimizer import later_window_start


@dataclass(frozen=True)
class BandOutcome:
    """How often the bad outcome followed the decisions of one band, on the later window."""

    band: str
    span: tuple[int, int] | None
    """The band's range of rounded scores (None: the band is empty)."""
    rows: int
    events: int
    rate: float | None
    """Share of the band's decisions followed by the outcome within the horizon (None without rows)."""
    relative: float | None
    """``rate`` over the whole later window's rate (1 = the book's rate)."""


@dataclass(frozen=True)
class HealthBandReport:
    """What :class:`HealthBandCalibrator` learned and how its bands did on decisions it did not learn from."""

    label: str
    risk_ratios: tuple[float, float]
    fit_rows: int
    fit_events: int
    slope_per_point: float
    """Change in the log-odds of the outcome per score point (negative: a higher score, less risk)."""
    slope_z: float
    """The slope over its standard error, clustered by account (an account's decisions are not independent)."""
    split_ts: str
    """Start of the later window: its decisions set nothing and measure the bands."""
    later_rows: int
    later_events: int
    later_rate: float
    later: list[BandOutcome] = field(default_factory=list)
    """Per band on the later window, Healthy first."""
    outcome: str | None = None
    """The outcome kind the label counts, as the book writes it (None: only the label's stem is known)."""

    @property
    def monotone(self) -> bool:
        """Whether the later window's rate rises from Healthy to At risk to Critical, up to sampling noise.

        Bands without rows are skipped. A riskier band whose rate is below its healthier neighbour's
        breaks the order only when the gap is beyond noise: a two-proportion z of at least 2 (a band
        of 30 decisions with one event is not evidence against the order).
        """
        seen = [b for b in self.later if b.rows > 0]
        return not any(_clearly_lower(riskier, healthier) for healthier, riskier in itertools.pairwise(seen))


@dataclass
class HealthBandCalibrator:
    """Learns score cut-offs for the health bands from the history of a bad outcome (churn).

    The score's risk is a logistic curve of the score, ``P(outcome) = σ(a + b · score)``, fitted on
    the earlier decisions of the history (never the later ones, which measure the result). Each
    account is then compared with the **book's average risk** — the mean of that curve over the
    accounts being banded — so the bands say how an account stands against its own book, whatever
    the book's churn rate: **Critical** where its risk is at least ``risk_ratios[0]`` times the
    average (default 2), **At risk** where it is at least ``risk_ratios[1]`` times (default 1: above
    average), **Healthy** below. As the curve falls with the score, these are two score cut-offs.

    Parameters
    ----------
    label
        History column with the outcome (1 = it happened within the horizon).
    risk_ratios
        ``(critical, at_risk)`` multiples of the book's average risk, ``critical >= at_risk > 0``.
    test_fraction
        Share of the latest decision times held out to measure the bands.
    min_events
        Events and non-events the earlier window needs at least.
    min_z
        How many standard errors the curve must fall by: a score that does not clearly predict the
        outcome anchors nothing.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> n = 4000
    >>> score = rng.uniform(0, 100, n)
    >>> churned = rng.random(n) < 1 / (1 + np.exp(-(-1.0 - 0.05 * (score - 30))))
    >>> history = pl.DataFrame({"decision_ts": np.repeat(np.arange(8), n // 8), "account_id": np.arange(n) % 500,
    ...                         "health_score": score, "y_churn": churned.astype(int)})
    >>> cal = HealthBandCalibrator().fit(history, pl.Series(rng.uniform(0, 100, 500)))
    >>> cal.bands_.source, cal.bands_.critical_max < cal.bands_.at_risk_max
    ('history', True)
    >>> cal.report_.monotone
    True
    """

    label: str = "y_churn"
    risk_ratios: tuple[float, float] = (2.0, 1.0)
    test_fraction: float = 0.25
    min_events: int = 10
    min_z: float = 2.0
    horizon_days: int | None = None
    """The label's horizon: with it, the cut-offs are learned only from earlier decisions whose whole
    horizon ends before the later window starts, so no outcome that measures the bands also sets them."""
    outcome: str | None = None
    """The outcome kind the label counts, as the book writes it (``Kündigung``), named in what :meth:`fit` says;
    default: the label's stem (``kundigung``), which is no name of the book's."""
    bands_: HealthBands | None = field(default=None, init=False)
    report_: HealthBandReport | None = field(default=None, init=False)

    def fit(self, history: pl.DataFrame, current: pl.Series) -> Self:
        """Learn the cut-offs from ``history`` and the scores being banded, ``current``.

        ``history`` holds past decisions: ``decision_ts``, ``account_id``, ``health_score`` (on the
        scale of ``current``), the label column, and optionally ``censored`` (those rows are left
        out: their horizon is not over).

        Raises
        ------
        ConfigError
            If a parameter is out of range, the label is missing, the earlier window holds fewer than
            ``min_events`` events or non-events, or the score does not fall with the outcome's risk by
            ``min_z`` standard errors.
        """
        high, low = self.risk_ratios
        if not high >= low > 0:
            raise ConfigError(
                f"risk_ratios must be (critical, at_risk) with critical >= at_risk > 0, got {self.risk_ratios}"
            )
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.label not in history.columns:
            raise ConfigError(
                f"the history has no column {self.label!r}: the book has no such outcome to learn bands from"
            )
        kind = self.outcome if self.outcome is not None else self.label.removeprefix("y_")
        data = history.filter(~pl.col("censored")) if "censored" in history.columns else history
        if data.height == 0:
            raise ConfigError("the history has no decision whose horizon is over")
        # The optimizer's split (before dropping unscored rows), so both speak of the same later window.
        cut = later_window_start(data.get_column("decision_ts"), self.test_fraction)
        data = data.filter(pl.col("health_score").is_not_null()).with_columns(
            pl.col(self.label).cast(pl.Float64).fill_null(0.0)
        )
        if self.horizon_days is not None and self.horizon_days > 0:
            # Labels count outcomes up to horizon_days after each decision: an earlier decision within
            # that of the cut would learn from outcomes of the later window, which measure the bands.
            earlier = data.filter(pl.col("decision_ts") + timedelta(days=self.horizon_days) <= cut)
        else:
            earlier = data.filter(pl.col("decision_ts") < cut)
        later = data.filter(pl.col("decision_ts") >= cut)
        if earlier.height == 0 or later.height == 0:
            raise ConfigError("the history spans too few decision times to hold out a later window")
        y = earlier.get_column(self.label).to_numpy()
        events = int(y.sum())
        if min(events, y.size - events) < self.min_events:
            raise ConfigError(
                f"the history's earlier window holds {events:,} {kind!r} events in {y.size:,} decisions; "
                f"learning bands needs at least {self.min_events} events and as many non-events"
            )
        x = earlier.get_column("health_score").to_numpy().astype(float) / 100.0
        groups = earlier.get_column("account_id").cast(pl.String).to_numpy()
        a, b, z = _logistic_fit(x, y, groups)
        if not z <= -self.min_z:
            raise ConfigError(
                f"the health score does not predict {kind!r} clearly enough to anchor bands on it (its churn "
                f"curve's slope is {_short_of(z, -self.min_z)} standard errors; it needs -{self.min_z:g} or steeper)"
            )
        now = current.cast(pl.Float64).drop_nulls().to_numpy() / 100.0
        if now.size == 0:
            raise ConfigError("no current score to compare with the book's average risk")
        average = float(np.mean(_sigmoid(a + b * now)))
        critical_max = _cutoff(a, b, high * average)
        at_risk_max = max(_cutoff(a, b, low * average), critical_max)
        self.bands_ = HealthBands(critical_max, at_risk_max, "history")
        self.report_ = HealthBandReport(
            label=self.label,
            risk_ratios=(high, low),
            fit_rows=earlier.height,
            fit_events=events,
            slope_per_point=b / 100.0,
            slope_z=z,
            split_ts=str(cut),
            later_rows=later.height,
            later_events=int(later.get_column(self.label).sum()),
            later_rate=_mean(later.get_column(self.label)),
            later=_band_outcomes(later, self.label, self.bands_),
            outcome=self.outcome,
        )
        return self

    @property
    def report(self) -> HealthBandReport:
        """The report of the last fit."""
        if self.report_ is None:
            raise NotFittedError("this HealthBandCalibrator is not fitted yet: call fit(history, current) first")
        return self.report_


def _short_of(z: float, needed: float) -> str:
    """``z`` (short of ``needed``) with as many decimals as it takes not to read as meeting it, nor as 0.

    A slope near 0 keeps its first significant digit ("-0.04", not "-0.0": a zero with a sign says
    neither which way it goes nor how far); one that rounds to 0 at four decimals reads "0.0".

    Examples
    --------
    >>> _short_of(-1.7, -2.0), _short_of(-1.996, -2.0), _short_of(0.4, -2.0)
    ('-1.7', '-1.996', '+0.4')
    >>> _short_of(-0.04, -2.0), _short_of(0.0071, -2.0), _short_of(-0.00001, -2.0), _short_of(0.0, -2.0)
    ('-0.04', '+0.01', '0.0', '0.0')
    """
    if not math.isfinite(z):
        return str(z)
    for digits in (1, 2, 3, 4):
        text = f"{z:+.{digits}f}"
        if float(text) > needed and float(text) != 0:
            return text
    if round(z, 4) == 0:
        return "0.0"
    return f"{z:+.8g}"


def _clearly_lower(a: BandOutcome, b: BandOutcome) -> bool:
    """Whether band ``a``'s rate is below band ``b``'s by at least 2 standard errors (pooled two-proportion z)."""
    pooled = (a.events + b.events) / (a.rows + b.rows)
    if pooled in (0.0, 1.0):
        return False
    se = math.sqrt(pooled * (1 - pooled) * (1 / a.rows + 1 / b.rows))
    return (b.events / b.rows - a.events / a.rows) / se >= 2.0


def _mean(values: pl.Series) -> float:
    return float(np.mean(values.to_numpy())) if values.len() else 0.0


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -500, 500))))


def _cutoff(a: float, b: float, risk: float) -> int:
    """The highest rounded score whose risk is at least ``risk`` under ``σ(a + b·s/100)``, b < 0 (−1: none)."""
    if risk >= 1.0:
        return -1
    score = (math.log(risk / (1.0 - risk)) - a) / b * 100.0
    return int(min(max(math.floor(score), -1), 100))


def _logistic_fit(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> tuple[float, float, float]:
    """Intercept, slope and the slope's z (clustered sandwich standard error) of ``y ~ σ(a + b·x)`` by Newton steps."""
    design = np.column_stack([np.ones_like(x), x])
    rate = min(max(float(y.mean()), 1e-6), 1 - 1e-6)
    beta = np.array([math.log(rate / (1 - rate)), 0.0])
    ridge = np.diag([0.0, 1e-6])  # keeps a perfectly separating score finite
    for _ in range(100):
        p = _sigmoid(design @ beta)
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + ridge
        step = np.linalg.solve(hessian, design.T @ (y - p) - ridge @ beta)
        beta = beta + step
        if np.abs(step).max() < 1e-9:
            break
    p = _sigmoid(design @ beta)
    bread = np.linalg.inv(design.T @ (design * (p * (1 - p))[:, None]) + ridge)
    _, codes = np.unique(groups, return_inverse=True)
    per_group = np.zeros((int(codes.max()) + 1, 2))
    np.add.at(per_group, codes, design * (y - p)[:, None])
    cov = bread @ (per_group.T @ per_group) @ bread
    se = math.sqrt(max(float(cov[1, 1]), 1e-300))
    return float(beta[0]), float(beta[1]), float(beta[1] / se)


def _band_outcomes(frame: pl.DataFrame, label: str, bands: HealthBands) -> list[BandOutcome]:
    banded = frame.select(band_expr(pl.col("health_score"), bands), pl.col(label))
    overall = _mean(banded.get_column(label))
    spans = bands.ranges()
    out = []
    for band, _ in reversed(BANDS):
        y = banded.filter(pl.col("health_band") == band).get_column(label)
        rate = _mean(y) if y.len() else None
        relative = rate / overall if rate is not None and overall > 0 else None
        out.append(BandOutcome(band, spans[band], y.len(), int(y.sum()), rate, relative))
    return out
