"""Learning health-score weights from renewal and churn history, and rating each measure's power."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Self

import numpy as np
import polars as pl
from scipy.optimize import minimize
from sklearn.metrics import roc_auc_score

from nextmove.errors import ConfigError, NotFittedError
from nextmove.models.health import HealthScorecard

Power = Literal["high", "moderate", "not predictive", "too few events"]

MIN_TRAIN_EVENTS = 10
"""Events (and non-events) of the outcome the training window needs for the optimizer to learn weights."""

MIN_POWER_EVENTS = 10
"""Events (and non-events) of the later window a measure's power needs to be rated: an AUC over 3 events
moves by a third with each of them."""


@dataclass(frozen=True)
class MeasurePower:
    """How well one measure predicts churn on its own, and its share in the learned score."""

    feature: str
    component: str
    text: str
    auc: float | None
    """AUC of the measure alone for churn on the later window (0.5 = no signal)."""
    weight_share: float | None
    """Share of the learned score's weight (0–1); None when no weight was learned (see the report's ``not_learned``)."""
    power: Power


@dataclass(frozen=True)
class HealthOptimizerReport:
    """What the optimizer learned and how the learned score compares with the hand-set one."""

    label: str
    train_rows: int
    test_rows: int
    test_events: int
    split_ts: str
    auc_hand_set: float | None
    auc_learned: float | None
    """None when no weight was learned."""
    measures: list[MeasurePower] = field(default_factory=list)
    train_events: int = 0
    """Events of the outcome in the training window (decisions before ``split_ts``)."""
    not_learned: str | None = None
    """Why no weight was learned and the hand-set card is kept, in words; None when weights were learned."""
    outcome: str | None = None
    """The outcome kind the label counts, as the book writes it (None: only the label's stem is known)."""

    @property
    def learned(self) -> bool:
        """Whether weights were learned (else the hand-set card is kept and ``not_learned`` says why)."""
        return self.not_learned is None


def rate_power(auc: float | None, events: int | None = None, rows: int | None = None) -> Power:
    """``high`` from AUC 0.65, ``moderate`` from 0.55, else ``not predictive``; ``too few events`` on a thin window.

    With ``events`` (and ``rows``, the window's decisions), a window with fewer than
    :data:`MIN_POWER_EVENTS` events, or non-events, rates ``too few events`` whatever the AUC.

    Examples
    --------
    >>> rate_power(0.7), rate_power(0.58), rate_power(0.5), rate_power(None)
    ('high', 'moderate', 'not predictive', 'not predictive')
    >>> rate_power(0.1, events=3, rows=18), rate_power(0.1, events=40, rows=1_000)
    ('too few events', 'high')
    """
    if events is not None and (events < MIN_POWER_EVENTS or (rows is not None and rows - events < MIN_POWER_EVENTS)):
        return "too few events"
    if auc is None:
        return "not predictive"
    strength = max(auc, 1 - auc)
    if strength >= 0.65:
        return "high"
    if strength >= 0.55:
        return "moderate"
    return "not predictive"


def later_window_start(times: pl.Series, test_fraction: float) -> Any:
    """The first decision time of the later window: the latest ``test_fraction`` of the distinct sorted ``times``.

    Examples
    --------
    >>> later_window_start(pl.Series([1, 2, 2, 3, 4]), 0.25)
    4
    """
    distinct = times.unique().sort()
    return distinct[min(int(len(distinct) * (1 - test_fraction)), len(distinct) - 1)]


def _auc(y: np.ndarray, risk: np.ndarray) -> float | None:
    ok = ~np.isnan(risk)
    if ok.sum() < 10 or len(np.unique(y[ok])) < 2:
        return None
    return float(roc_auc_score(y[ok], risk[ok]))


@dataclass
class HealthOptimizer:
    """Learns non-negative, L2-regularised weights for a scorecard's measures from churn history.

    The model is ``P(churn) = σ(b − Σ w_j · s_j)`` over measure scores ``s_j`` in [0, 1]
    (:meth:`HealthScorecard.measure_scores`; missing = 0.5, neutral), with every ``w_j ≥ 0``
    so the learned score reads like the hand-set one: more of a healthy measure never lowers
    health. Training uses the earlier decision times and evaluation the later ones
    (``test_fraction`` of them): never a random split across time.

    Parameters
    ----------
    label
        Training-set column holding the churn label (1 = churned within the horizon).
    l2
        Ridge penalty on the weights (on the 0–1 scale of measure scores).
    test_fraction
        Share of the latest decision times held out for evaluation.
    """

    label: str = "y_churn"
    l2: float = 1.0
    test_fraction: float = 0.25
    weights_: dict[str, float] = field(default_factory=dict, init=False)
    report_: HealthOptimizerReport | None = field(default=None, init=False)
    scorecard_: HealthScorecard | None = field(default=None, init=False)

    def fit(self, card: HealthScorecard, training: pl.DataFrame) -> Self:
        """Learn weights for ``card``'s measures from ``training`` (snapshots with labels).

        ``training`` needs ``decision_ts``, ``account_id``, the label column, the measures'
        features, and optionally ``censored`` (censored rows are left out: their horizon is not
        over). ``card`` must be fitted.

        Raises
        ------
        ConfigError
            If the label is missing, or no decision whose horizon is over was followed by a churn (nothing
            to learn from; the message tells a history without churn from horizons still open).
        """
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.label not in training.columns:
            raise ConfigError(
                f"the training set has no column {self.label!r}: the book has no outcome of that kind to learn from"
            )
        data = training.filter(~pl.col("censored")) if "censored" in training.columns else training
        y_all = data.get_column(self.label).cast(pl.Float64).fill_null(0).to_numpy()
        if y_all.sum() == 0:
            raise ConfigError(self._nothing_to_learn(training, data))
        cut = later_window_start(data.get_column("decision_ts"), self.test_fraction)
        train = data.filter(pl.col("decision_ts") < cut)
        test = data.filter(pl.col("decision_ts") >= cut)
        if train.height == 0 or test.height == 0:
            raise ConfigError("the history spans too few decision times to hold out a later window")

        measures = list(card.measures)
        kind = self.label.removeprefix("y_")
        y_train = train.get_column(self.label).cast(pl.Float64).fill_null(0).to_numpy()
        train_events = int((y_train > 0).sum())
        not_learned: str | None = None
        if min(train_events, train.height - train_events) < MIN_TRAIN_EVENTS:
            which = "events" if train_events < MIN_TRAIN_EVENTS else "decisions without one"
            not_learned = (
                f"the training window (decisions before {str(cut)[:10]}) holds {train_events:,} {kind!r} events in "
                f"{train.height:,} rows; at least {MIN_TRAIN_EVENTS} {which} are needed to learn weights"
            )
            w = np.zeros(len(measures))
        else:
            w, _b = self._solve(self._scores(card, train), y_train)
            if not (w > 0).any():
                not_learned = f"no measure's score falls as {kind!r} rises on the training window: every weight is 0"
        learned = card
        self.weights_ = {}
        if not_learned is None:
            self.weights_ = {m.feature: float(wj) for m, wj in zip(measures, w, strict=True)}
            learned = card.with_measure_weights(self.weights_)
        self.scorecard_ = learned

        y_test = test.get_column(self.label).cast(pl.Float64).fill_null(0).to_numpy()
        test_events = int((y_test > 0).sum())
        s_test = self._scores(card, test)
        hand = card.score(test).get_column("health_score").to_numpy().astype(float)
        learned_score = learned.score(test).get_column("health_score").to_numpy().astype(float)
        total_w = float(w.sum()) or 1.0
        powers = []
        for j, m in enumerate(measures):
            # Missing where the measure's value is (a window with no event is a total of 0, not missing).
            auc = _auc(y_test, 1 - s_test[:, j])
            share = None if not_learned is not None else float(w[j]) / total_w
            powers.append(
                MeasurePower(m.feature, m.component, m.text, auc, share, rate_power(auc, test_events, test.height))
            )
        self.report_ = HealthOptimizerReport(
            label=self.label,
            train_rows=train.height,
            test_rows=test.height,
            test_events=test_events,
            split_ts=str(cut),
            auc_hand_set=_auc(y_test, 100 - hand),
            auc_learned=None if not_learned is not None else _auc(y_test, 100 - learned_score),
            measures=sorted(powers, key=lambda p: -(p.auc or 0.5)),
            train_events=train_events,
            not_learned=not_learned,
        )
        return self

    @staticmethod
    def _scores(card: HealthScorecard, frame: pl.DataFrame) -> np.ndarray:
        ms = card.measure_scores(frame)
        mat = np.column_stack([ms.get_column(m.feature).to_numpy().astype(float) for m in card.measures]) / 100.0
        return mat

    def _solve(self, s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
        x = np.where(np.isnan(s), 0.5, s)
        n, k = x.shape
        # Centre the measures so the intercept does not fight the non-negativity bounds.
        mu = x.mean(axis=0)
        xc = x - mu

        def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = params[:k], params[k]
            z = b - xc @ w
            p = 1.0 / (1.0 + np.exp(-z))
            eps = 1e-12
            nll = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))
            grad_z = (p - y) / n
            g_w = -(xc.T @ grad_z) + 2 * self.l2 * w / n
            g_b = grad_z.sum()
            return nll + self.l2 * float(w @ w) / n, np.concatenate([g_w, [g_b]])

        base_rate = min(max(y.mean(), 1e-6), 1 - 1e-6)
        x0 = np.concatenate([np.full(k, 0.1), [np.log(base_rate / (1 - base_rate))]])
        bounds = [(0.0, None)] * k + [(None, None)]
        result = minimize(loss, x0, jac=True, method="L-BFGS-B", bounds=bounds)
        return np.asarray(result.x[:k]), float(result.x[k])

    def _nothing_to_learn(self, training: pl.DataFrame, finished: pl.DataFrame) -> str:
        """Why no weight can be learned when no finished decision was followed by the label's outcome.

        The outcomes may be in the book and only follow decisions whose horizon is still open
        (censored): saying that the history has none would send the reader looking for missing data.
        """
        kind = self.label.removeprefix("y_")
        open_rows = training.height - finished.height
        followed = (
            int(training.filter(pl.col("censored")).get_column(self.label).cast(pl.Float64).fill_null(0).gt(0).sum())
            if open_rows
            else 0
        )
        if finished.height == 0 and open_rows:
            return (
                f"no past decision's horizon is over yet (all {open_rows:,} are still open"
                + (f", {followed:,} of them followed by a {kind!r} so far" if followed else "")
                + "), so health weights cannot be learned; keep the hand-set weights until a horizon is over, "
                "or score as of a later time (--as-of)"
            )
        if followed:
            return (
                f"no decision whose horizon is over ({finished.height:,}) was followed by a {kind!r}; the "
                f"{followed:,} that followed decisions still open are learned from once their horizon is over: "
                "keep the hand-set weights until then"
            )
        return (
            f"the book's history has no {kind!r} outcome yet, so health weights "
            "cannot be learned; keep the hand-set weights until such outcomes are recorded"
        )

    @property
    def report(self) -> HealthOptimizerReport:
        """The report of the last fit."""
        if self.report_ is None:
            raise NotFittedError("this HealthOptimizer is not fitted yet: call fit(scorecard, training) first")
        return self.report_
