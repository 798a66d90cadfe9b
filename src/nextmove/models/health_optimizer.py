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
    auc_gain_interval: tuple[float, float] | None = None
    """The 95 % interval of ``auc_learned − auc_hand_set`` on the later window, its accounts resampled with
    replacement (an account's decisions move together); None when no weight was learned or either AUC is unknown."""
    scorecard: HealthScorecard | None = field(default=None, repr=False, compare=False)
    """The learned scorecard (the measures' weights their shares of it, in tenths of a percent); None when no
    weight was learned."""

    @property
    def learned(self) -> bool:
        """Whether weights were learned (else the hand-set card is kept and ``not_learned`` says why)."""
        return self.not_learned is None

    @property
    def better(self) -> bool:
        """Whether the learned weights rank the outcome better than the playbook's on the later window, beyond
        chance: the whole :attr:`auc_gain_interval` is above 0."""
        return self.auc_gain_interval is not None and self.auc_gain_interval[0] > 0

    @property
    def playbook_lines(self) -> str | None:
        """The playbook's ``[health.components]`` lines that score with the learned weights (None: none learned)."""
        return None if self.scorecard is None else self.scorecard.playbook_lines()

    def verdict(self) -> str | None:
        """Whether to adopt the learned weights, in words: how much better they rank the outcome on the later
        window, or that they do not; None when there is no comparison (:attr:`auc_gain_interval`).

        When :attr:`better`, it ends with a colon: :attr:`playbook_lines` follow it.
        """
        if self.auc_gain_interval is None or self.auc_learned is None or self.auc_hand_set is None:
            return None
        kind = repr(self.outcome or self.label.removeprefix("y_"))
        low, high = self.auc_gain_interval
        gain = self.auc_learned - self.auc_hand_set
        figures = (
            f"AUC {self.auc_learned:.3f} against {self.auc_hand_set:.3f}, {gain:+.3f}; 95% interval {low:+.3f} to "
            f"{high:+.3f} over the accounts"
        )
        if not self.better:
            return (
                f"The learned weights rank {kind} no better than the playbook's on the later window ({figures}): "
                "keep the playbook's weights."
            )
        return (
            f"The learned weights rank {kind} better than the playbook's on the later window, which they were not "
            f"learned from: an account with a {kind} outcome within the horizon scores below one without "
            f"{self.auc_learned:.1%} of the time, against {self.auc_hand_set:.1%} ({figures}). To score with them, "
            "add these lines at the end of the playbook, in place of any [health.components] tables (the [health] "
            "default_weights are then not read; docs/models.md):"
        )


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


GAIN_DRAWS = 200
"""Resamples of the later window's accounts behind :attr:`HealthOptimizerReport.auc_gain_interval`."""


def _tenths(w: np.ndarray) -> np.ndarray:
    """Non-negative weights as whole tenths of a percent of their sum, adding up to exactly 1,000 (largest remainders).

    Examples
    --------
    >>> _tenths(np.array([1.0, 1.0, 1.0])).tolist()
    [334, 333, 333]
    """
    exact: np.ndarray = w / w.sum() * 1000.0
    out: np.ndarray = np.floor(exact).astype(np.int64)
    short = 1000 - int(out.sum())
    out[np.argsort(-(exact - out), kind="stable")[:short]] += 1
    return out


def _weighted_auc(groups: np.ndarray, n_groups: int, y: np.ndarray, w: np.ndarray) -> float:
    """The AUC of risks ranked into ``groups`` (ties share one), each row counted ``w`` times."""
    pos = np.bincount(groups, weights=w * y, minlength=n_groups)
    neg = np.bincount(groups, weights=w * (1.0 - y), minlength=n_groups)
    below = np.cumsum(neg) - neg
    pairs = float(pos.sum() * neg.sum())
    return float((pos * (below + 0.5 * neg)).sum() / pairs) if pairs > 0 else float("nan")


def auc_gain_interval(
    y: np.ndarray,
    risk_a: np.ndarray,
    risk_b: np.ndarray,
    accounts: np.ndarray,
    *,
    draws: int = GAIN_DRAWS,
    seed: int = 0,
) -> tuple[float, float] | None:
    """The 95 % interval of ``AUC(risk_b) − AUC(risk_a)``, resampling the accounts with replacement.

    An account's decisions share its fate, so the accounts are drawn, not the rows. Rows where either
    risk is missing are left out; None with fewer than 10 rows or a single class left.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=2_000)
    >>> y = (rng.random(2_000) < 1 / (1 + np.exp(-2 * x))).astype(float)
    >>> low, high = auc_gain_interval(y, rng.normal(size=2_000), x, np.arange(2_000) // 4)
    >>> bool(low > 0.2)
    True
    """
    y = np.asarray(y, dtype=float) > 0
    ok = ~(np.isnan(risk_a) | np.isnan(risk_b))
    if ok.sum() < 10 or len(np.unique(y[ok])) < 2:
        return None
    target = y[ok].astype(float)
    _, who = np.unique(np.asarray(accounts)[ok], return_inverse=True)
    n_accounts = int(who.max()) + 1
    ranked = [np.unique(r[ok], return_inverse=True) for r in (risk_a, risk_b)]
    rng = np.random.default_rng(seed)
    gains = np.empty(draws)
    for d in range(draws):
        w = np.bincount(rng.integers(0, n_accounts, n_accounts), minlength=n_accounts)[who].astype(float)
        a, b = (_weighted_auc(groups, len(values), target, w) for values, groups in ranked)
        gains[d] = b - a
    gains = gains[~np.isnan(gains)]
    if gains.size == 0:
        return None
    low, high = np.percentile(gains, [2.5, 97.5])
    return float(low), float(high)


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
    random_state
        Seed of the resampling behind the report's ``auc_gain_interval``.
    """

    label: str = "y_churn"
    l2: float = 1.0
    test_fraction: float = 0.25
    random_state: int = 0
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
        shares = np.zeros(len(measures))
        if not_learned is None:
            self.weights_ = {m.feature: float(wj) for m, wj in zip(measures, w, strict=True)}
            # Each measure's share in tenths of a percent, adding up to 100 %: the weights the playbook can be
            # given (HealthOptimizerReport.playbook_lines), so the score reported is the one those lines give.
            shares = _tenths(w) / 10.0
            learned = card.with_measure_weights({m.feature: float(sj) for m, sj in zip(measures, shares, strict=True)})
        self.scorecard_ = learned

        y_test = test.get_column(self.label).cast(pl.Float64).fill_null(0).to_numpy()
        test_events = int((y_test > 0).sum())
        s_test = self._scores(card, test)
        hand = card.score(test).get_column("health_score").to_numpy().astype(float)
        learned_score = learned.score(test).get_column("health_score").to_numpy().astype(float)
        powers = []
        for j, m in enumerate(measures):
            # Missing where the measure's value is (a window with no event is a total of 0, not missing).
            auc = _auc(y_test, 1 - s_test[:, j])
            share = None if not_learned is not None else float(shares[j]) / 100.0
            powers.append(
                MeasurePower(m.feature, m.component, m.text, auc, share, rate_power(auc, test_events, test.height))
            )
        auc_hand = _auc(y_test, 100 - hand)
        auc_learned = None if not_learned is not None else _auc(y_test, 100 - learned_score)
        interval = None
        if auc_hand is not None and auc_learned is not None:
            accounts = test.get_column("account_id").cast(pl.String).to_numpy()
            interval = auc_gain_interval(y_test, 100 - hand, 100 - learned_score, accounts, seed=self.random_state)
        self.report_ = HealthOptimizerReport(
            label=self.label,
            train_rows=train.height,
            test_rows=test.height,
            test_events=test_events,
            split_ts=str(cut),
            auc_hand_set=auc_hand,
            auc_learned=auc_learned,
            measures=sorted(powers, key=lambda p: -(p.auc or 0.5)),
            train_events=train_events,
            not_learned=not_learned,
            auc_gain_interval=interval,
            scorecard=None if not_learned is not None else learned,
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
