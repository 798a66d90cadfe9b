"""Calibrated outcome models: the probability of each objective's outcome within the horizon, with its drivers."""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Self

import lightgbm as lgb
import numpy as np
import polars as pl
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score

from nextmove.errors import ConfigError, NotFittedError
from nextmove.features import (
    FeatureVocabulary,
    SignalKind,
    cited_feature,
    declared_signal_kinds,
    feature_schema,
    signal_kinds,
)
from nextmove.models.calibration import CalibrationMethod, Calibrator, choose_calibrator
from nextmove.models.health import describe_feature, signal_words
from nextmove.models.matrix import FeatureMatrix
from nextmove.playbook.schema import Playbook, ValueBasis

DEFAULT_EXCLUDE: tuple[str, ...] = ("lifecycle_stage",)
"""Feature columns outcome models leave out by default. The accounts table holds today's
``lifecycle_stage``: in a training set a gone account's past rows carry its final stage
(``churned``), which would leak the label."""

FORMAT_VERSION = 1
"""Version of the byte format of :meth:`OutcomeModels.to_bytes`."""

_MAGIC = b"NEXTMOVE-OUTCOME\n"
_US = 1_000_000


class OutcomeDataError(ConfigError):
    """The history holds too few events of an outcome kind to fit, validate or calibrate its model."""


class IncompatibleModelError(ConfigError):
    """A stored model does not fit the playbook or the features it is asked to score."""


@dataclass(frozen=True)
class Driver:
    """One feature's push on one prediction: LightGBM's own per-row contribution.

    ``contribution`` is in log-odds of the uncalibrated booster (calibration is monotone, so its
    sign is the direction the feature moves the probability); the contributions of all features
    plus the model's base value sum to the row's raw log-odds.
    """

    feature: str
    label: str
    """The feature in plain words."""
    value: float | str | None
    """The account's value of the feature (None: missing)."""
    contribution: float

    @property
    def direction(self) -> Literal["raises", "lowers"]:
        """Whether the feature raises or lowers the probability."""
        return "raises" if self.contribution > 0 else "lowers"

    @property
    def text(self) -> str:
        """The driver in plain words, e.g. ``days to renewal = 23: raises (+0.41)``.

        Examples
        --------
        >>> Driver("days_to_renewal", "days to renewal", 23.0, 0.412).text
        'days to renewal = 23: raises (+0.41)'
        >>> Driver("nps_last", "nps (latest)", None, -0.2).text
        'nps (latest) = missing: lowers (−0.20)'
        """
        sign = "+" if self.contribution > 0 else "−"
        return f"{self.label} = {_format_value(self.value)}: {self.direction} ({sign}{abs(self.contribution):.2f})"


_PLAIN_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"touch_any_count_(\d+)d", "touches of any kind ({0}-day count)"),
    (r"touch_any_days_since", "days since the latest touch"),
    (r"touch_team_(.+)_count_(\d+)d", "{0} team touches ({1}-day count)"),
    (r"touch_team_(.+)_days_since", "days since the latest {0} team touch"),
    (r"touch_(.+)_count_(\d+)d", "{0} touches ({1}-day count)"),
    (r"touch_(.+)_days_since", "days since the latest {0} touch"),
    (r"outcome_(.+)_count_(\d+)d", "{0} outcomes ({1}-day count)"),
    (r"outcome_(.+)_days_since", "days since the latest {0} outcome"),
    (r"role_(.+)_trend_(\d+)d", "{0} signals ({1}-day trend)"),
    (r"days_since_(.+)", "days since {0}"),
)


def plain_feature_name(feature: str, names: Mapping[str, str] | None = None) -> str:
    """A feature name in plain words, for drivers and reports.

    ``names`` maps signal stems to the signals' names as the book writes them
    (:meth:`~nextmove.features.FeatureVocabulary.signal_words`); a stem without one reads with
    spaces for underscores.

    Examples
    --------
    >>> plain_feature_name("nps_days_since_last")
    'days since the latest nps'
    >>> plain_feature_name("touch_health_check_call_count_90d")
    'health check call touches (90-day count)'
    >>> plain_feature_name("tickets_opened_mean_28d")
    'tickets opened (28-day average)'
    >>> plain_feature_name("active_field_users_mean_28d", {"active_field_users": "Active field users"})
    'Active field users (28-day average)'
    """
    if m := re.fullmatch(r"(.+)_days_since_last", feature):
        return f"days since the latest {signal_words(m.group(1), names or {})}"
    for pattern, template in _PLAIN_PATTERNS:
        m = re.fullmatch(pattern, feature)
        if m:
            return template.format(*(g.replace("_", " ") for g in m.groups()))
    return describe_feature(feature, names)


def driver_words(
    columns: Sequence[str], names: Mapping[str, str] | None = None, kinds: Mapping[str, SignalKind] | None = None
) -> tuple[list[str], NDArray[np.bool_]]:
    """Each feature column's words (:func:`plain_feature_name`) and whether a driver may quote it.

    A driver quotes what the receipts' evidence would (:func:`~nextmove.features.cited_feature`): never the
    window total of a level signal (four weekly readings of active users add up to no number of users),
    nor the window mean of a count. ``kinds`` maps signal stems to kinds
    (:func:`~nextmove.features.signal_kinds`); without it every feature may be quoted.

    Examples
    --------
    >>> words, cited = driver_words(["active_users_sum_28d", "active_users_mean_28d"], {}, {"active_users": "level"})
    >>> words, cited.tolist()
    (['active users (28-day total)', 'active users (28-day average)'], [False, True])
    """
    words = [plain_feature_name(c, names) for c in columns]
    cited = np.array([cited_feature(c, kinds or {}) for c in columns], dtype=bool)
    return words, cited


def _format_value(value: float | str | None) -> str:
    if value is None:
        return "missing"
    if isinstance(value, str):
        return value
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):d}"
    return f"{value:.3g}"


@dataclass(frozen=True)
class OutcomeFitSummary:
    """What one outcome model was trained and validated on, and how it did on the later window.

    The validation figures are computed from out-of-fold calibrated probabilities within the
    validation window (each row's calibrator never saw it); the booster's number of trees was
    chosen by early stopping on the same window.
    """

    kind: str
    train_rows: int
    train_events: int
    validation_rows: int
    validation_events: int
    train_from: datetime
    train_to: datetime
    validation_from: datetime
    validation_to: datetime
    trees: int
    calibration: CalibrationMethod
    calibration_brier: dict[str, float]
    validation_auc: float | None
    validation_brier: float
    validation_log_loss: float
    amount_method: Literal["model", "mean"] | None = None
    amount_rows: int = 0
    mean_amount: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form: times as ISO 8601 strings."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutcomeFitSummary:
        """The summary of :meth:`to_dict`'s output."""
        values = dict(data)
        for name in ("train_from", "train_to", "validation_from", "validation_to"):
            values[name] = datetime.fromisoformat(values[name])
        values["calibration_brier"] = dict(values["calibration_brier"])
        return cls(**values)


@dataclass(frozen=True)
class ValidationPredictions:
    """Labels and out-of-fold calibrated probabilities on the later (validation) window."""

    y: NDArray[np.float64] = field(repr=False)
    probability: NDArray[np.float64] = field(repr=False)
    decision_ts: NDArray[np.datetime64] = field(repr=False)
    row_index: NDArray[np.int64] = field(repr=False)
    """Position of each row in the frame given to ``fit`` (for :class:`OutcomeModels`: among the
    training set's uncensored rows, in order)."""


def _as_utc_datetime(us: int) -> datetime:
    return datetime.fromtimestamp(us / _US, tz=UTC)


def _timestamps_us(decision_ts: Sequence[datetime] | NDArray[Any] | pl.Series, n: int) -> NDArray[np.int64]:
    """Decision times as UTC microseconds (naive times are UTC), checked."""
    try:
        if isinstance(decision_ts, pl.Series):
            series = decision_ts
        elif isinstance(decision_ts, np.ndarray):
            series = pl.Series("decision_ts", decision_ts)
        else:
            series = pl.Series("decision_ts", list(decision_ts))
    except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
        raise ConfigError(f"decision_ts must be a sequence of datetimes: {exc}") from None
    if series.len() != n:
        raise ConfigError(f"decision_ts has {series.len()} values but X has {n} rows")
    if series.dtype == pl.Date:
        series = series.cast(pl.Datetime("us"))
    if not isinstance(series.dtype, pl.Datetime):
        raise ConfigError(f"decision_ts must hold datetimes, got {series.dtype}")
    if series.null_count():
        raise ConfigError(f"decision_ts has {series.null_count()} missing values")
    out: NDArray[np.int64] = series.dt.epoch("us").to_numpy().astype(np.int64)
    return out


def _labels(y: object, n: int, what: str = "y") -> NDArray[np.float64]:
    arr = (y.to_numpy() if isinstance(y, pl.Series) else np.asarray(y)).astype(np.float64, copy=True)
    if arr.ndim != 1 or arr.size != n:
        raise ConfigError(f"{what} must be one value per row of X ({n}), got shape {arr.shape}")
    bad = ~np.isin(arr, (0.0, 1.0))
    if bad.any():
        raise ConfigError(f"{what} must hold only 0 and 1; row {int(np.argmax(bad))} is {arr[np.argmax(bad)]!r}")
    return arr


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
    return value


@dataclass
class _Split:
    """Rows (in time order) of the training and validation windows, as matrices ready for LightGBM."""

    x_train: NDArray[np.float32]
    x_val: NDArray[np.float32]
    order: NDArray[np.int64]
    n_train: int
    ts_us: NDArray[np.int64]
    categorical: list[int]
    params: dict[str, Any]
    _train_set: lgb.Dataset | None = None
    _val_set: lgb.Dataset | None = None

    @classmethod
    def make(
        cls,
        x: NDArray[np.float32],
        ts_us: NDArray[np.int64],
        validation_fraction: float,
        categorical: list[int],
        params: dict[str, Any],
    ) -> _Split:
        order = np.argsort(ts_us, kind="stable").astype(np.int64)
        if np.any(order != np.arange(order.size)):
            x = x[order]
            ts_us = ts_us[order]
        times = np.unique(ts_us)
        if times.size < 2:
            raise OutcomeDataError(
                "the history has a single decision time: outcome models validate on a later window, "
                "so they need at least two"
            )
        cut = min(max(round(times.size * (1 - validation_fraction)), 1), times.size - 1)
        n_train = int(np.searchsorted(ts_us, times[cut], side="left"))
        return cls(x[:n_train], x[n_train:], order, n_train, ts_us, categorical, params)

    def datasets(self, y_train: NDArray[np.float64], y_val: NDArray[np.float64]) -> tuple[lgb.Dataset, lgb.Dataset]:
        """LightGBM datasets of both windows with these labels; the binned features are built once and reused."""
        if self._train_set is None or self._val_set is None:
            self._train_set = lgb.Dataset(
                self.x_train,
                label=y_train,
                categorical_feature=self.categorical,
                feature_name=[f"f{i}" for i in range(self.x_train.shape[1])],
                params=self.params,
                free_raw_data=False,
            ).construct()
            self._val_set = lgb.Dataset(
                self.x_val, label=y_val, reference=self._train_set, params=self.params, free_raw_data=False
            ).construct()
        else:
            self._train_set.set_label(y_train)
            self._val_set.set_label(y_val)
        return self._train_set, self._val_set


class OutcomeModel:
    """The calibrated probability of one outcome kind within the horizon, under the status quo.

    A LightGBM classifier on point-in-time snapshots. Validation is always on a **later** time
    window than training: the latest ``validation_fraction`` of the distinct decision times are
    held out, never a random split across time. Early stopping picks the number of trees on that
    window, then a calibrator (Platt or isotonic, chosen by out-of-fold Brier score within the
    window, see :func:`~nextmove.models.calibration.choose_calibrator`) is refitted on the whole
    window. "Status quo" means the actions the history's policy took: the action is not a feature.

    For an amount outcome (``fit(..., amount=...)``, e.g. expansion dollars), the expected amount
    is ``P(event) × E[amount | event]``: a LightGBM regressor on the event rows, or the mean
    amount of the event rows when there are fewer than ``min_amount_rows`` of them before the
    validation window (or fewer than 10 in it).

    Follows the scikit-learn contract: ``__init__`` stores the arguments, :meth:`fit` checks them
    and returns ``self``, learned state ends in ``_``.

    Parameters
    ----------
    kind
        The outcome kind (for messages and results).
    exclude
        Feature columns to leave out (default :data:`DEFAULT_EXCLUDE`).
    validation_fraction
        Share of the latest distinct decision times held out as the validation window.
    calibration
        ``auto`` (choose on the validation window), ``platt`` or ``isotonic``.
    n_estimators, learning_rate, num_leaves, min_child_samples, reg_lambda, colsample, max_bin
        LightGBM settings (``n_estimators`` is the most trees; early stopping usually stops sooner).
    early_stopping_rounds
        Stop when the validation log-loss has not improved for this many trees.
    max_rows_per_tree
        Above this many rows in the training window, each tree is grown on a random share of
        them (bagging), so training time stops growing with the rows; the share is uniform, so
        the base rate (and the validation log-loss early stopping reads) is not shifted.
    min_events
        Fewest events (and non-events) each window needs; fewer raises :class:`OutcomeDataError`.
    min_amount_rows
        Fewest event rows in the training window to fit the amount regressor.
    random_state
        Seed of LightGBM and the calibration folds: the same seed gives the same model.
    n_jobs
        LightGBM threads (default 1; None: all cores), named by every call, training and
        predicting. One thread is the predictable choice on a shared machine, where OpenMP threads
        that wait by spinning can make training many times slower; raise it on a dedicated one.
        With one, the model may be used from several Python threads at once (docs/models.md,
        "Threads and LightGBM").

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> rng = np.random.default_rng(0)
    >>> n = 4000
    >>> x = rng.normal(size=n)
    >>> X = pl.DataFrame({"account_id": [f"a{i}" for i in range(n)], "usage": x})
    >>> y = (rng.random(n) < 1 / (1 + np.exp(2 + 1.5 * x))).astype(int)
    >>> ts = [datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=14 * (i % 20)) for i in range(n)]
    >>> model = OutcomeModel("churn", n_jobs=1).fit(X, y, ts)
    >>> p = model.predict_proba(X.head(2))[:, 1]
    >>> bool(p[0] < p[1])  # a1 uses the product less than a0
    True
    >>> model.explain(X.head(1))[0][0].feature
    'usage'
    """

    def __init__(
        self,
        kind: str = "outcome",
        *,
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
        validation_fraction: float = 0.25,
        calibration: CalibrationMethod | Literal["auto"] = "auto",
        n_estimators: int = 1000,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 200,
        reg_lambda: float = 10.0,
        colsample: float = 0.7,
        max_bin: int = 63,
        early_stopping_rounds: int = 30,
        max_rows_per_tree: int = 100_000,
        min_events: int = 10,
        min_amount_rows: int = 200,
        random_state: int = 0,
        n_jobs: int | None = 1,
    ) -> None:
        self.kind = kind
        self.exclude = exclude
        self.validation_fraction = validation_fraction
        self.calibration = calibration
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.reg_lambda = reg_lambda
        self.colsample = colsample
        self.max_bin = max_bin
        self.early_stopping_rounds = early_stopping_rounds
        self.max_rows_per_tree = max_rows_per_tree
        self.min_events = min_events
        self.min_amount_rows = min_amount_rows
        self.random_state = random_state
        self.n_jobs = n_jobs

    def get_params(self) -> dict[str, Any]:
        """The constructor's arguments, by name."""
        return {
            name: getattr(self, name)
            for name in (
                "kind",
                "exclude",
                "validation_fraction",
                "calibration",
                "n_estimators",
                "learning_rate",
                "num_leaves",
                "min_child_samples",
                "reg_lambda",
                "colsample",
                "max_bin",
                "early_stopping_rounds",
                "max_rows_per_tree",
                "min_events",
                "min_amount_rows",
                "random_state",
                "n_jobs",
            )
        }

    def __repr__(self) -> str:
        return f"OutcomeModel(kind={self.kind!r})"

    # ---- fitting ---------------------------------------------------------------------------

    def _validate_params(self) -> None:
        if not isinstance(self.kind, str) or not self.kind:
            raise ConfigError(f"kind must be a non-empty string, got {self.kind!r}")
        if not 0 < self.validation_fraction < 1:
            raise ConfigError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        if self.calibration not in ("auto", "platt", "isotonic"):
            raise ConfigError(f"calibration must be 'auto', 'platt' or 'isotonic', got {self.calibration!r}")
        for name in (
            "n_estimators",
            "num_leaves",
            "min_child_samples",
            "max_bin",
            "early_stopping_rounds",
            "max_rows_per_tree",
            "min_events",
            "min_amount_rows",
        ):
            _check_positive_int(name, getattr(self, name))
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if not 0 < self.colsample <= 1:
            raise ConfigError(f"colsample must be in (0, 1], got {self.colsample!r}")
        if self.reg_lambda < 0:
            raise ConfigError(f"reg_lambda must be >= 0, got {self.reg_lambda!r}")
        if self.n_jobs is not None:
            _check_positive_int("n_jobs", self.n_jobs)
        if isinstance(self.exclude, str):
            raise ConfigError("exclude must be a sequence of column names, not one string")

    def _dataset_params(self) -> dict[str, Any]:
        return {
            "max_bin": self.max_bin,
            "verbose": -1,
            "feature_pre_filter": False,
            "seed": self.random_state,
            "num_threads": self.n_jobs or 0,
        }

    def _booster_params(self) -> dict[str, Any]:
        return {
            **self._dataset_params(),
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "lambda_l2": self.reg_lambda,
            "feature_fraction": self.colsample,
            "cat_smooth": 50.0,
            "cat_l2": 10.0,
            "deterministic": True,
            "force_row_wise": True,
        }

    def fit(
        self,
        X: pl.DataFrame,  # noqa: N803 - scikit-learn's name for the feature matrix
        y: Sequence[int] | NDArray[Any] | pl.Series,
        decision_ts: Sequence[datetime] | NDArray[Any] | pl.Series,
        *,
        amount: Sequence[float] | NDArray[Any] | pl.Series | None = None,
    ) -> Self:
        """Fit on past decisions: features ``X``, 0/1 labels ``y`` and the decision times.

        Parameters
        ----------
        X
            Snapshots (keys, decision and label columns are ignored; see ``FeatureMatrix``).
        y
            1 if the outcome happened within the horizon after the decision, else 0. Leave out
            censored rows (horizon not over) before fitting.
        decision_ts
            Decision time of each row; the later window validates.
        amount
            For amount outcomes: the amount of each row's event (used on rows with ``y = 1``).

        Returns
        -------
        OutcomeModel
            ``self``, fitted.

        Raises
        ------
        ConfigError
            If an argument is malformed.
        OutcomeDataError
            If ``y`` holds one class only, or either window has fewer than ``min_events``
            events or non-events.
        """
        self._validate_params()
        if not isinstance(X, pl.DataFrame):
            raise ConfigError(f"X must be a polars DataFrame, got {type(X).__name__}")
        matrix = FeatureMatrix(exclude=tuple(self.exclude)).fit(X)
        x = matrix.transform(X)
        ts = _timestamps_us(decision_ts, X.height)
        labels = _labels(y, X.height)
        amounts = None if amount is None else _amounts(amount, X.height)
        split = _Split.make(x, ts, self.validation_fraction, matrix.categorical_indices_, self._dataset_params())
        return self._fit_split(matrix, split, labels, amounts)

    def _fit_split(
        self,
        matrix: FeatureMatrix,
        split: _Split,
        labels: NDArray[np.float64],
        amounts: NDArray[np.float64] | None,
    ) -> Self:
        """Fit on a prepared split (shared by :class:`OutcomeModels` across kinds)."""
        self._validate_params()
        y = labels[split.order]
        n_train = split.n_train
        y_train, y_val = y[:n_train], y[n_train:]
        ts_train, ts_val = split.ts_us[:n_train], split.ts_us[n_train:]
        self._check_events(y, y_train, y_val, ts_val)

        params = self._booster_params()
        params["objective"] = "binary"
        params["metric"] = "binary_logloss"
        if y_train.size > self.max_rows_per_tree:
            params.update(bagging_freq=1, bagging_fraction=self.max_rows_per_tree / y_train.size)
        train_set, val_set = split.datasets(y_train, y_val)
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=self.n_estimators,
            valid_sets=[val_set],
            valid_names=["validation"],
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, first_metric_only=True, verbose=False)],
        )
        trees = int(booster.best_iteration or booster.current_iteration())
        # Keep only the chosen trees: the stored model is exactly the one validated.
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=trees))
        raw_val = np.asarray(
            booster.predict(split.x_val, raw_score=True, num_threads=self.n_jobs or 0), dtype=np.float64
        )
        choice = choose_calibrator(raw_val, y_val, method=self.calibration, random_state=self.random_state)
        oof = choice.out_of_fold

        self.matrix_ = matrix
        self.feature_names_in_ = list(matrix.columns_)
        self.booster_ = booster
        self.calibrator_ = choice.calibrator
        self.validation_ = ValidationPredictions(
            y_val.copy(), oof.copy(), ts_val.astype("datetime64[us]"), split.order[n_train:].copy()
        )
        amount_method: Literal["model", "mean"] | None = None
        amount_rows = 0
        mean_amount: float | None = None
        self.amount_booster_ = None
        self.amount_mean_ = None
        self.amount_bounds_ = None
        if amounts is not None:
            amount_method, amount_rows, mean_amount = self._fit_amount(split, y, amounts[split.order])
        self.summary_ = OutcomeFitSummary(
            kind=self.kind,
            train_rows=int(y_train.size),
            train_events=int(y_train.sum()),
            validation_rows=int(y_val.size),
            validation_events=int(y_val.sum()),
            train_from=_as_utc_datetime(int(ts_train[0])),
            train_to=_as_utc_datetime(int(ts_train[-1])),
            validation_from=_as_utc_datetime(int(ts_val[0])),
            validation_to=_as_utc_datetime(int(ts_val[-1])),
            trees=trees,
            calibration=choice.calibrator.method,
            calibration_brier=choice.brier,
            validation_auc=float(roc_auc_score(y_val, oof)),
            validation_brier=float(np.mean((oof - y_val) ** 2)),
            validation_log_loss=_log_loss(y_val, oof),
            amount_method=amount_method,
            amount_rows=amount_rows,
            mean_amount=mean_amount,
        )
        return self

    def _check_events(
        self,
        y: NDArray[np.float64],
        y_train: NDArray[np.float64],
        y_val: NDArray[np.float64],
        ts_val: NDArray[np.int64],
    ) -> None:
        events = int(y.sum())
        if events == 0 or events == y.size:
            only = "no" if events == 0 else "only"
            raise OutcomeDataError(
                f"the label of {self.kind!r} has a single class ({only} events in {y.size:,} rows): there is "
                f"nothing to learn; no model of {self.kind!r} until the history holds both outcomes"
            )
        since = _as_utc_datetime(int(ts_val[0])).date().isoformat()
        for window, part in (("training window (before " + since + ")", y_train), ("validation window", y_val)):
            n_events = int(part.sum())
            fewest = min(n_events, int(part.size) - n_events)
            if fewest < self.min_events:
                what = "events" if n_events < self.min_events else "non-events"
                raise OutcomeDataError(
                    f"the {window} holds {min(n_events, part.size - n_events):,} {self.kind!r} {what} in "
                    f"{part.size:,} rows; at least min_events={self.min_events} are needed to fit and validate "
                    "on a later window; wait for more history (from Python, OutcomeModel(min_events=…) lowers the bar)"
                )

    def _fit_amount(
        self, split: _Split, y: NDArray[np.float64], amounts: NDArray[np.float64]
    ) -> tuple[Literal["model", "mean"], int, float]:
        """``E[amount | event]``: a regressor on event rows (early-stopped on the later ones), or their mean."""
        n_train = split.n_train
        event = (y == 1) & np.isfinite(amounts)
        train_idx = np.flatnonzero(event[:n_train])
        val_idx = np.flatnonzero(event[n_train:])
        values = amounts[event]
        mean = float(values.mean()) if values.size else 0.0
        self.amount_mean_ = mean
        self.amount_bounds_ = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if train_idx.size < self.min_amount_rows or val_idx.size < 10:
            return "mean", int(values.size), mean
        params = self._booster_params()
        params.update(objective="regression", metric="l2", min_child_samples=max(10, min(self.min_child_samples, 50)))
        train_set = lgb.Dataset(
            split.x_train[train_idx],
            label=amounts[:n_train][train_idx],
            categorical_feature=split.categorical,
            feature_name=[f"f{i}" for i in range(split.x_train.shape[1])],
            params=self._dataset_params(),
        )
        val_set = lgb.Dataset(
            split.x_val[val_idx], label=amounts[n_train:][val_idx], reference=train_set, params=self._dataset_params()
        )
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=self.n_estimators,
            valid_sets=[val_set],
            valid_names=["validation"],
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, first_metric_only=True, verbose=False)],
        )
        trees = int(booster.best_iteration or booster.current_iteration())
        self.amount_booster_ = lgb.Booster(model_str=booster.model_to_string(num_iteration=trees))
        return "model", int(values.size), mean

    # ---- predicting ------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise NotFittedError(
                f"this OutcomeModel ({self.kind!r}) is not fitted yet: call fit(X, y, decision_ts) first"
            )

    def _matrix(self, X: pl.DataFrame) -> NDArray[np.float32]:  # noqa: N803
        self._check_fitted()
        if not isinstance(X, pl.DataFrame):
            raise ConfigError(f"X must be a polars DataFrame, got {type(X).__name__}")
        return self.matrix_.transform(X)

    def _proba_of_matrix(self, x: NDArray[np.float32]) -> NDArray[np.float64]:
        raw = np.asarray(self.booster_.predict(x, raw_score=True, num_threads=self.n_jobs or 0), dtype=np.float64)
        return self.calibrator_.apply(raw)

    def _amount_of_matrix(self, x: NDArray[np.float32]) -> NDArray[np.float64]:
        if self.amount_mean_ is None or self.amount_bounds_ is None:
            raise NotFittedError(
                f"this OutcomeModel ({self.kind!r}) has no amount part: fit it with amount=... to predict amounts"
            )
        if self.amount_booster_ is None:
            return np.full(x.shape[0], self.amount_mean_)
        pred = np.asarray(self.amount_booster_.predict(x, num_threads=self.n_jobs or 0), dtype=np.float64)
        return np.clip(pred, *self.amount_bounds_)

    def predict_proba(self, X: pl.DataFrame) -> NDArray[np.float64]:  # noqa: N803
        """Calibrated probabilities, scikit-learn style: column 0 no event, column 1 the event.

        Parameters
        ----------
        X
            Snapshots with the feature columns the model was fitted on (extra columns are
            ignored; a missing one counts as missing everywhere).

        Returns
        -------
        numpy.ndarray
            Shape ``(rows, 2)``; each row sums to 1.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        """
        p = self._proba_of_matrix(self._matrix(X))
        return np.column_stack([1.0 - p, p])

    def predict_amount_if_event(self, X: pl.DataFrame) -> NDArray[np.float64]:  # noqa: N803
        """``E[amount | event]`` per row (amount outcomes only).

        Parameters
        ----------
        X
            Snapshots, as for :meth:`predict_proba`.

        Returns
        -------
        numpy.ndarray
            The regressor's prediction clipped to the amounts seen, or the mean amount.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`, or when the model was fitted without ``amount``.
        """
        return self._amount_of_matrix(self._matrix(X))

    def predict_expected_amount(self, X: pl.DataFrame) -> NDArray[np.float64]:  # noqa: N803
        """Expected amount within the horizon: ``P(event) × E[amount | event]`` (amount outcomes only).

        Parameters
        ----------
        X
            Snapshots, as for :meth:`predict_proba`.

        Returns
        -------
        numpy.ndarray
            One expected amount per row.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`, or when the model was fitted without ``amount``.
        """
        x = self._matrix(X)
        return self._proba_of_matrix(x) * self._amount_of_matrix(x)

    def explain(
        self,
        X: pl.DataFrame,  # noqa: N803
        top_k: int = 3,
        *,
        names: Mapping[str, str] | None = None,
        kinds: Mapping[str, SignalKind] | None = None,
    ) -> list[tuple[Driver, ...]]:
        """The ``top_k`` features that pushed each row's probability most, from LightGBM's ``pred_contrib``.

        Parameters
        ----------
        X
            Snapshots, as for :meth:`predict_proba`.
        top_k
            Drivers per row.
        names
            Signal stem → the signal's name as the book writes it, for the drivers' words
            (:meth:`~nextmove.features.FeatureVocabulary.signal_words`).
        kinds
            Signal stem → kind (:func:`~nextmove.features.signal_kinds`): a level's window total and a
            count's window mean are no driver, as they are no evidence (:func:`driver_words`).

        Returns
        -------
        list of tuple of Driver
            Per row, by decreasing absolute contribution. Features with no contribution are left
            out, so a row may have fewer drivers.
        """
        _check_positive_int("top_k", top_k)
        self._check_fitted()
        return self._explain_matrix(self._matrix(X), top_k, driver_words(self.matrix_.columns_, names, kinds))

    def _explain_matrix(
        self, x: NDArray[np.float32], top_k: int, words: tuple[list[str], NDArray[np.bool_]] | None = None
    ) -> list[tuple[Driver, ...]]:
        contrib = np.asarray(
            self.booster_.predict(x, pred_contrib=True, num_threads=self.n_jobs or 0), dtype=np.float64
        )
        columns = self.matrix_.columns_
        labels, cited = words if words is not None else driver_words(columns)
        # A feature no words may quote gives way to the next: its push is not one to tell.
        contrib = np.where(cited[None, :], contrib[:, :-1], 0.0)
        k = min(top_k, contrib.shape[1])
        top = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
        categories = self.matrix_.categories_
        out: list[tuple[Driver, ...]] = []
        for i in range(x.shape[0]):
            drivers = []
            for j in top[i]:
                c = float(contrib[i, j])
                if c == 0.0:
                    continue
                raw = float(x[i, j])
                value: float | str | None
                if math.isnan(raw):
                    value = None
                elif columns[j] in categories:
                    value = categories[columns[j]][int(raw)]
                else:
                    value = raw
                drivers.append(Driver(columns[j], labels[j], value, c))
            out.append(tuple(drivers))
        return out

    # ---- serialization ---------------------------------------------------------------------

    def _to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        params = self.get_params()
        params["exclude"] = list(self.exclude)
        return {
            "params": params,
            "booster": self.booster_.model_to_string(),
            "calibrator": self.calibrator_.to_dict(),
            "amount_booster": None if self.amount_booster_ is None else self.amount_booster_.model_to_string(),
            "amount_mean": self.amount_mean_,
            "amount_bounds": None if self.amount_bounds_ is None else list(self.amount_bounds_),
            "summary": self.summary_.to_dict(),
        }

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any], matrix: FeatureMatrix) -> OutcomeModel:
        params = dict(data["params"])
        params["exclude"] = tuple(params["exclude"])
        model = cls(**params)
        model.matrix_ = matrix
        model.feature_names_in_ = list(matrix.columns_)
        model.booster_ = lgb.Booster(model_str=data["booster"])
        model.calibrator_ = Calibrator.from_dict(data["calibrator"])
        amount = data["amount_booster"]
        model.amount_booster_ = None if amount is None else lgb.Booster(model_str=amount)
        model.amount_mean_ = data["amount_mean"]
        bounds = data["amount_bounds"]
        model.amount_bounds_ = None if bounds is None else (float(bounds[0]), float(bounds[1]))
        model.summary_ = OutcomeFitSummary.from_dict(data["summary"])
        model.validation_ = None
        return model

    # Learned attributes, declared for type checkers.
    matrix_: FeatureMatrix
    feature_names_in_: list[str]
    booster_: lgb.Booster
    calibrator_: Calibrator
    summary_: OutcomeFitSummary
    validation_: ValidationPredictions | None
    amount_booster_: lgb.Booster | None
    amount_mean_: float | None
    amount_bounds_: tuple[float, float] | None


def _amounts(amount: object, n: int) -> NDArray[np.float64]:
    arr = (amount.to_numpy() if isinstance(amount, pl.Series) else np.asarray(amount)).astype(np.float64, copy=True)
    if arr.ndim != 1 or arr.size != n:
        raise ConfigError(f"amount must be one value per row of X ({n}), got shape {arr.shape}")
    return arr


def _log_loss(y: NDArray[np.float64], p: NDArray[np.float64]) -> float:
    q = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


# ---- all outcomes of a playbook ---------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeTarget:
    """One outcome kind a playbook's objectives name: its label columns and whether it has an amount."""

    kind: str
    stem: str
    amount: bool

    @property
    def label(self) -> str:
        """The training-set column of the 0/1 label."""
        return f"y_{self.stem}"

    @property
    def value_label(self) -> str:
        """The training-set column of the summed value."""
        return f"y_{self.stem}_value"


def outcome_targets(playbook: Playbook, vocabulary: FeatureVocabulary | None = None) -> list[OutcomeTarget]:
    """The outcome kinds of the playbook's objectives, in objective order, each once.

    A kind is an amount outcome when an objective values it by ``amount``.

    Examples
    --------
    >>> from nextmove.playbook.loader import load_playbook
    >>> [(t.kind, t.amount) for t in outcome_targets(load_playbook())]
    [('churn', False), ('expansion', True), ('advocacy', False), ('recovery', False), ('onboarded', False)]
    """
    stems = vocabulary if vocabulary is not None else FeatureVocabulary()
    targets: dict[str, OutcomeTarget] = {}
    for objective in playbook.objectives.values():
        kind = objective.outcome
        amount = objective.value is ValueBasis.AMOUNT
        if kind in targets:
            amount = amount or targets[kind].amount
        targets[kind] = OutcomeTarget(kind, stems.outcome_stem(kind), amount)
    return list(targets.values())


@dataclass(frozen=True)
class OutcomePredictions:
    """Per account: each outcome's calibrated probability, expected amount (amount outcomes) and drivers."""

    account_ids: list[str]
    targets: list[OutcomeTarget]
    probability: dict[str, NDArray[np.float64]] = field(repr=False)
    """Outcome kind → P(event within the horizon), one per account."""
    expected_amount: dict[str, NDArray[np.float64]] = field(repr=False)
    """Amount outcome kind → ``P(event) × E[amount | event]``."""
    drivers: dict[str, list[tuple[Driver, ...]]] = field(repr=False)
    """Outcome kind → the top drivers of each account's probability."""

    def to_frame(self, *, drivers_as_text: bool = True, separator: str = "; ") -> pl.DataFrame:
        """``account_id``, ``p_{kind}``, ``expected_{kind}_amount`` and ``drivers_{kind}`` (text) per account."""
        columns: list[pl.Series] = [pl.Series("account_id", self.account_ids, dtype=pl.String)]
        for t in self.targets:
            if t.kind not in self.probability:
                continue
            columns.append(pl.Series(f"p_{t.stem}", self.probability[t.kind]))
            if t.kind in self.expected_amount:
                columns.append(pl.Series(f"expected_{t.stem}_amount", self.expected_amount[t.kind]))
            if t.kind in self.drivers and drivers_as_text:
                texts = [separator.join(d.text for d in row) for row in self.drivers[t.kind]]
                columns.append(pl.Series(f"drivers_{t.stem}", texts, dtype=pl.String))
        return pl.DataFrame(columns)


@dataclass(frozen=True)
class OutcomeModelsInfo:
    """What a set of outcome models was trained on: the metadata stored with a model version."""

    playbook_hash: str
    kinds: list[str]
    skipped: dict[str, str]
    features: list[str]
    trained_from: datetime | None
    trained_to: datetime | None
    validation_from: datetime | None
    summaries: dict[str, OutcomeFitSummary]

    def metrics(self) -> dict[str, Any]:
        """JSON-ready figures per kind (for a model version record)."""
        return {
            "kinds": {k: s.to_dict() for k, s in self.summaries.items()},
            "skipped": dict(self.skipped),
        }


class OutcomeModels:
    """One calibrated :class:`OutcomeModel` per outcome kind of a playbook's objectives.

    :meth:`fit` takes a training set (``build_training_set``): censored rows (horizon not over)
    are left out, the feature matrix is built once and shared by every kind, and each kind gets
    its own model with the same later-window validation. Kinds that never occur in the history,
    or too rarely to validate on the later window, are skipped with a note in ``notes_``
    (``skipped_`` maps them to the reason). Objectives valued by ``amount`` also get
    ``E[amount | event]`` from the ``y_{kind}_value`` column.

    Parameters
    ----------
    playbook
        Gives the outcome kinds (``objectives[*].outcome``), which are amounts, and the hash
        stored with the models.
    template
        An unfitted :class:`OutcomeModel` whose settings every kind uses (default settings if None).
    vocabulary
        The training set's vocabulary, to find each kind's label column (default: the kind's
        sanitised name).
    """

    def __init__(
        self,
        playbook: Playbook,
        *,
        template: OutcomeModel | None = None,
        vocabulary: FeatureVocabulary | None = None,
    ) -> None:
        self.playbook = playbook
        self.template = template
        self.vocabulary = vocabulary

    def __repr__(self) -> str:
        return f"OutcomeModels(playbook={self.playbook.name!r})"

    def fit(self, training: pl.DataFrame) -> Self:
        """Fit a model per outcome kind on ``training``; kinds without enough events are skipped with a note.

        Raises
        ------
        ConfigError
            If ``training`` is not a training set (no ``decision_ts``), or has no uncensored row.
        """
        if not isinstance(training, pl.DataFrame):
            raise ConfigError(f"training must be a polars DataFrame, got {type(training).__name__}")
        if "decision_ts" not in training.columns:
            raise ConfigError("training has no decision_ts column: pass a training set from build_training_set")
        template = self.template if self.template is not None else OutcomeModel()
        template._validate_params()
        rows = training.filter(~pl.col("censored")) if "censored" in training.columns else training
        if rows.height == 0:
            raise ConfigError("the training set has no row whose horizon is over (all are censored): nothing to learn")
        targets = outcome_targets(self.playbook, self.vocabulary)
        notes: list[str] = []
        skipped: dict[str, str] = {}
        live: list[OutcomeTarget] = []
        for t in targets:
            if t.label not in rows.columns or int(rows.get_column(t.label).cast(pl.Int64).fill_null(0).sum()) == 0:
                skipped[t.kind] = f"no {t.kind!r} outcome in the history yet: no model"
            else:
                live.append(t)
        self.targets_ = targets
        self.models_ = {}
        ts = _timestamps_us(rows.get_column("decision_ts"), rows.height)
        self.trained_from_ = _as_utc_datetime(int(ts.min()))
        self.trained_to_ = _as_utc_datetime(int(ts.max()))
        self.validation_from_ = None
        self.playbook_hash_ = self.playbook.content_hash()
        matrix = FeatureMatrix(exclude=tuple(template.exclude)).fit(rows)
        self.matrix_ = matrix
        if live:
            x = matrix.transform(rows)
            try:
                split = _Split.make(
                    x, ts, template.validation_fraction, matrix.categorical_indices_, template._dataset_params()
                )
            except OutcomeDataError as exc:
                for t in live:
                    skipped[t.kind] = str(exc)
                live = []
            else:
                del x
                self.validation_from_ = _as_utc_datetime(int(split.ts_us[split.n_train]))
            for t in live:
                model = OutcomeModel(**{**template.get_params(), "kind": t.kind})
                labels = _labels(rows.get_column(t.label).cast(pl.Float64).fill_null(0), rows.height, t.label)
                amounts = None
                if t.amount and t.value_label in rows.columns:
                    amounts = rows.get_column(t.value_label).cast(pl.Float64).fill_null(0).to_numpy()
                try:
                    self.models_[t.kind] = model._fit_split(matrix, split, labels, amounts)
                except OutcomeDataError as exc:
                    skipped[t.kind] = str(exc)
        for t in targets:
            if t.kind in skipped:
                notes.append(f"{t.kind}: {skipped[t.kind]}")
        self.skipped_ = skipped
        self.notes_ = notes
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            raise NotFittedError("these OutcomeModels are not fitted yet: call fit(training) first")

    @property
    def kinds(self) -> list[str]:
        """The kinds that have a model, in objective order."""
        self._check_fitted()
        return [t.kind for t in self.targets_ if t.kind in self.models_]

    def __getitem__(self, kind: str) -> OutcomeModel:
        self._check_fitted()
        if kind not in self.models_:
            why = self.skipped_.get(kind, "it is not an outcome of the playbook's objectives")
            raise KeyError(f"no outcome model of {kind!r}: {why}")
        return self.models_[kind]

    def predict(
        self, features: pl.DataFrame, *, top_k: int = 3, vocabulary: FeatureVocabulary | None = None
    ) -> OutcomePredictions:
        """Each fitted kind's probability (and expected amount) per row of ``features``, with ``top_k`` drivers.

        The drivers name signals as the book does (``Active field users``) and quote what the receipts'
        evidence would: never a level signal's window total, nor a count's window mean (by each signal's
        kind in ``features``: declared in the playbook, else read from the data; :func:`driver_words`).

        Parameters
        ----------
        features
            A snapshot (``compute_features``, with the training set's vocabulary) with ``account_id``.
        top_k
            Drivers per account and kind; 0 skips them (faster).
        vocabulary
            The snapshot's vocabulary, for the signals' names (default: the one the models were
            fitted with; models loaded from a store have none, and their drivers read signal stems).

        Returns
        -------
        OutcomePredictions
            Probabilities, expected amounts (amount outcomes) and drivers, per kind.

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        """
        self._check_fitted()
        if not isinstance(features, pl.DataFrame) or "account_id" not in features.columns:
            raise ConfigError("features must be a polars DataFrame with an account_id column (a snapshot)")
        x = self.matrix_.transform(features)
        probability: dict[str, NDArray[np.float64]] = {}
        expected: dict[str, NDArray[np.float64]] = {}
        drivers: dict[str, list[tuple[Driver, ...]]] = {}
        words = None
        if top_k:
            vocab = vocabulary if vocabulary is not None else self.vocabulary
            kinds = signal_kinds(features, declared_signal_kinds(self.playbook, vocab))
            words = driver_words(self.matrix_.columns_, vocab.signal_words() if vocab is not None else None, kinds)
        for kind in self.kinds:
            model = self.models_[kind]
            p = model._proba_of_matrix(x)
            probability[kind] = p
            if model.amount_mean_ is not None:
                expected[kind] = p * model._amount_of_matrix(x)
            if words is not None:
                drivers[kind] = model._explain_matrix(x, top_k, words)
        return OutcomePredictions(
            account_ids=features.get_column("account_id").cast(pl.String).to_list(),
            targets=list(self.targets_),
            probability=probability,
            expected_amount=expected,
            drivers=drivers,
        )

    @property
    def info(self) -> OutcomeModelsInfo:
        """Training window, features, per-kind figures and the playbook hash."""
        self._check_fitted()
        return OutcomeModelsInfo(
            playbook_hash=self.playbook_hash_,
            kinds=self.kinds,
            skipped=dict(self.skipped_),
            features=list(self.matrix_.columns_),
            trained_from=self.trained_from_,
            trained_to=self.trained_to_,
            validation_from=self.validation_from_,
            summaries={k: self.models_[k].summary_ for k in self.kinds},
        )

    def check_compatible(self, *, playbook: Playbook | None = None, features: pl.DataFrame | None = None) -> None:
        """Raise :class:`IncompatibleModelError` naming what differs, if these models cannot score here.

        Parameters
        ----------
        playbook
            Must have the playbook hash the models were trained under.
        features
            A snapshot: must have every feature column the models read, of the same kind
            (number or text). Extra columns are fine (the models ignore them).
        """
        self._check_fitted()
        problems: list[str] = []
        if playbook is not None and playbook.content_hash() != self.playbook_hash_:
            problems.append(
                f"they were trained under playbook {self.playbook_hash_}, and this playbook is "
                f"{playbook.content_hash()} (objectives, actions or settings changed)"
            )
        if features is not None:
            kinds = feature_schema(features)
            missing = [c for c in self.matrix_.columns_ if c not in kinds]
            if missing:
                shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
                problems.append(f"{len(missing)} feature column(s) they read are not in the features: {shown}")
            changed = [
                c
                for c in self.matrix_.columns_
                if c in kinds and (kinds[c] == "text") != (c in self.matrix_.categories_)
            ]
            if changed:
                problems.append(f"feature column(s) changed between number and text: {', '.join(changed[:8])}")
        if problems:
            raise IncompatibleModelError(
                "the outcome models cannot score here: " + "; ".join(problems) + "; retrain them on this book"
            )

    def to_bytes(self) -> bytes:
        """The models as bytes: boosters (``model_to_string``), calibrators, feature matrix and metadata.

        No pickle: a zlib-compressed JSON document that :meth:`from_bytes` reads back.
        """
        self._check_fitted()
        payload = {
            "format": FORMAT_VERSION,
            "playbook_hash": self.playbook_hash_,
            "playbook_name": self.playbook.name,
            "targets": [{"kind": t.kind, "stem": t.stem, "amount": t.amount} for t in self.targets_],
            "matrix": {
                "exclude": list(self.matrix_.exclude),
                "max_categories": self.matrix_.max_categories,
                "columns": self.matrix_.columns_,
                "categories": self.matrix_.categories_,
            },
            "trained_from": self.trained_from_.isoformat(),
            "trained_to": self.trained_to_.isoformat(),
            "validation_from": None if self.validation_from_ is None else self.validation_from_.isoformat(),
            "skipped": self.skipped_,
            "notes": self.notes_,
            "models": {kind: self.models_[kind]._to_dict() for kind in self.kinds},
        }
        return _MAGIC + zlib.compress(json.dumps(payload).encode("utf-8"), 6)

    @classmethod
    def from_bytes(cls, blob: bytes, playbook: Playbook) -> OutcomeModels:
        """Models written by :meth:`to_bytes`, checked against ``playbook``.

        Parameters
        ----------
        blob
            The bytes of :meth:`to_bytes`.
        playbook
            The playbook to score under; its hash must be the one the models were trained under.

        Returns
        -------
        OutcomeModels
            Fitted models (without the validation predictions, which are not stored).

        Raises
        ------
        IncompatibleModelError
            If the bytes are not outcome models of this format, or were trained under another
            playbook (the message names both hashes).
        """
        if not blob.startswith(_MAGIC):
            raise IncompatibleModelError("these bytes are not nextmove outcome models (wrong header)")
        try:
            payload = json.loads(zlib.decompress(blob[len(_MAGIC) :]).decode("utf-8"))
        except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IncompatibleModelError(f"the stored outcome models are damaged: {exc}") from None
        if payload.get("format") != FORMAT_VERSION:
            raise IncompatibleModelError(
                f"the stored outcome models have format {payload.get('format')!r}; this nextmove reads "
                f"format {FORMAT_VERSION}: retrain them"
            )
        models = cls(playbook)
        m = payload["matrix"]
        matrix = FeatureMatrix(exclude=tuple(m["exclude"]), max_categories=int(m["max_categories"]))
        matrix.columns_ = list(m["columns"])
        matrix.categories_ = {k: list(v) for k, v in m["categories"].items()}
        matrix.categorical_indices_ = [i for i, c in enumerate(matrix.columns_) if c in matrix.categories_]
        models.matrix_ = matrix
        models.targets_ = [OutcomeTarget(t["kind"], t["stem"], bool(t["amount"])) for t in payload["targets"]]
        models.playbook_hash_ = payload["playbook_hash"]
        models.trained_from_ = datetime.fromisoformat(payload["trained_from"])
        models.trained_to_ = datetime.fromisoformat(payload["trained_to"])
        vf = payload["validation_from"]
        models.validation_from_ = None if vf is None else datetime.fromisoformat(vf)
        models.skipped_ = dict(payload["skipped"])
        models.notes_ = list(payload["notes"])
        models.models_ = {k: OutcomeModel._from_dict(v, matrix) for k, v in payload["models"].items()}
        models.check_compatible(playbook=playbook)
        return models

    # Learned attributes, declared for type checkers.
    targets_: list[OutcomeTarget]
    models_: dict[str, OutcomeModel]
    matrix_: FeatureMatrix
    validation_from_: datetime | None
    trained_from_: datetime
    trained_to_: datetime
    playbook_hash_: str
    skipped_: dict[str, str]
    notes_: list[str]
