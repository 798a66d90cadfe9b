"""Accuracy of predicted probabilities: AUC, average precision, Brier score, log-loss, ECE and a calibration table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import average_precision_score, roc_auc_score

from nextmove.errors import ConfigError

Binning = Literal["equal_mass", "equal_width"]
"""``equal_mass``: bins of (nearly) equal numbers of rows, by sorted probability;
``equal_width``: bins of equal width on [0, 1]."""


@dataclass(frozen=True)
class CalibrationBin:
    """One bin of a calibration table: predicted vs observed rate over the rows whose probability falls in it."""

    lower: float
    """Lowest predicted probability in the bin (equal-mass) or the bin's left edge (equal-width)."""
    upper: float
    """Highest predicted probability in the bin (equal-mass) or the bin's right edge (equal-width)."""
    rows: int
    events: int
    mean_predicted: float | None
    """Mean predicted probability (None for an empty bin)."""
    observed_rate: float | None
    """Share of rows with the event (None for an empty bin)."""

    @property
    def gap(self) -> float | None:
        """``observed_rate − mean_predicted`` (positive: the model under-predicts here)."""
        if self.mean_predicted is None or self.observed_rate is None:
            return None
        return self.observed_rate - self.mean_predicted


@dataclass(frozen=True)
class ProbabilityAccuracy:
    """How good a set of predicted probabilities is against 0/1 outcomes.

    Ranking: ``auc`` and ``average_precision`` (None with a reason when undefined, e.g. a
    single class). Calibration: ``brier`` and ``log_loss`` (lower is better), ``ece`` (expected
    calibration error: the row-weighted mean of ``|observed rate − mean predicted|`` over
    ``calibration`` bins) and the table itself.
    """

    rows: int
    events: int
    base_rate: float
    mean_predicted: float
    auc: float | None
    auc_note: str | None
    average_precision: float | None
    average_precision_note: str | None
    brier: float
    log_loss: float
    ece: float
    binning: Binning
    calibration: list[CalibrationBin] = field(default_factory=list)

    @property
    def bins(self) -> int:
        """Number of bins of the calibration table."""
        return len(self.calibration)


def _inputs(y: ArrayLike, p: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    t = np.asarray(y, dtype=np.float64).ravel()
    q = np.asarray(p, dtype=np.float64).ravel()
    if t.size != q.size:
        raise ConfigError(f"y and p must have the same length, got {t.size} and {q.size}")
    if t.size == 0:
        raise ConfigError("accuracy needs at least one row; y and p are empty")
    if not np.isin(t, (0.0, 1.0)).all():
        raise ConfigError("y must hold only 0 and 1")
    if not np.isfinite(q).all() or q.min() < 0 or q.max() > 1:
        raise ConfigError("p must hold probabilities in [0, 1] (no missing values)")
    return t, q


def _bin_edges(q: NDArray[np.float64], bins: int, binning: Binning) -> list[NDArray[np.int64]]:
    """Row indices of each bin."""
    if bins <= 0:
        raise ConfigError(f"bins must be a positive whole number, got {bins!r}")
    if binning == "equal_mass":
        order = np.argsort(q, kind="stable").astype(np.int64)
        return list(np.array_split(order, bins))
    if binning == "equal_width":
        which = np.minimum((q * bins).astype(np.int64), bins - 1)
        return [np.flatnonzero(which == b).astype(np.int64) for b in range(bins)]
    raise ConfigError(f"binning must be 'equal_mass' or 'equal_width', got {binning!r}")


def calibration_table(
    y: ArrayLike, p: ArrayLike, *, bins: int = 10, binning: Binning = "equal_mass"
) -> list[CalibrationBin]:
    """Predicted vs observed rates in ``bins`` bins of the predicted probability.

    Equal-mass bins split the rows sorted by probability into ``bins`` groups of (nearly) equal
    size (tied probabilities may straddle two bins); equal-width bins are ``[0, 0.1), …, [0.9, 1]``
    for 10 bins, and may be empty.

    Parameters
    ----------
    y
        0/1 outcomes.
    p
        Predicted probabilities in [0, 1].
    bins
        Number of bins.
    binning
        ``equal_mass`` or ``equal_width``.

    Returns
    -------
    list of CalibrationBin
        One per bin, lowest probabilities first.

    Examples
    --------
    >>> table = calibration_table([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9], bins=2)
    >>> [(b.rows, b.events, round(b.mean_predicted, 2)) for b in table]
    [(2, 0, 0.15), (2, 2, 0.8)]
    """
    t, q = _inputs(y, p)
    out: list[CalibrationBin] = []
    for b, idx in enumerate(_bin_edges(q, bins, binning)):
        if binning == "equal_width":
            lower, upper = b / bins, (b + 1) / bins
        else:
            lower = float(q[idx].min()) if idx.size else float("nan")
            upper = float(q[idx].max()) if idx.size else float("nan")
        if idx.size == 0:
            out.append(CalibrationBin(lower, upper, 0, 0, None, None))
            continue
        out.append(
            CalibrationBin(lower, upper, int(idx.size), int(t[idx].sum()), float(q[idx].mean()), float(t[idx].mean()))
        )
    return out


def expected_calibration_error(y: ArrayLike, p: ArrayLike, *, bins: int = 10, binning: Binning = "equal_mass") -> float:
    """ECE: the row-weighted mean over bins of ``|observed rate − mean predicted probability|``.

    Parameters
    ----------
    y, p, bins, binning
        As for :func:`calibration_table`.

    Returns
    -------
    float
        The expected calibration error, in probability points (0 = calibrated).

    Examples
    --------
    >>> expected_calibration_error([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], bins=1)
    0.0
    >>> round(expected_calibration_error([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9], bins=2), 3)
    0.175
    """
    table = calibration_table(y, p, bins=bins, binning=binning)
    n = sum(b.rows for b in table)
    return float(sum(b.rows * abs(b.gap) for b in table if b.gap is not None) / n)


def evaluate_probabilities(
    y: ArrayLike,
    p: ArrayLike,
    *,
    bins: int = 10,
    binning: Binning = "equal_mass",
) -> ProbabilityAccuracy:
    """AUC, average precision, Brier score, log-loss, ECE and the calibration table of probabilities ``p``.

    Parameters
    ----------
    y
        0/1 outcomes.
    p
        Predicted probabilities of the event, in [0, 1].
    bins
        Bins of the calibration table and ECE (default 10).
    binning
        ``equal_mass`` (default; every bin has ~n/bins rows, so rare events do not leave most
        bins empty) or ``equal_width``.

    Returns
    -------
    ProbabilityAccuracy
        With a single class in ``y``, AUC (and, without events, average precision) are None and
        their notes say why; the calibration figures are still computed.

    Raises
    ------
    ConfigError
        If the inputs are empty, of different lengths, or not labels and probabilities.

    Examples
    --------
    >>> acc = evaluate_probabilities([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> acc.auc, round(acc.brier, 4)
    (0.75, 0.1581)
    >>> none = evaluate_probabilities([0, 0, 0], [0.1, 0.2, 0.1])
    >>> none.auc is None, none.auc_note
    (True, 'AUC is undefined: the 3 rows hold a single class (no events)')
    """
    t, q = _inputs(y, p)
    events = int(t.sum())
    auc: float | None = None
    auc_note: str | None = None
    ap: float | None = None
    ap_note: str | None = None
    if events in (0, t.size):
        which = "no events" if events == 0 else "only events"
        auc_note = f"AUC is undefined: the {t.size:,} rows hold a single class ({which})"
        if events == 0:
            ap_note = f"average precision is undefined: the {t.size:,} rows hold no events"
        else:
            ap = 1.0
    else:
        auc = float(roc_auc_score(t, q))
        ap = float(average_precision_score(t, q))
    clipped = np.clip(q, 1e-15, 1 - 1e-15)
    log_loss = float(-np.mean(t * np.log(clipped) + (1 - t) * np.log(1 - clipped)))
    table = calibration_table(t, q, bins=bins, binning=binning)
    ece = float(sum(b.rows * abs(b.gap) for b in table if b.gap is not None) / t.size)
    return ProbabilityAccuracy(
        rows=int(t.size),
        events=events,
        base_rate=float(t.mean()),
        mean_predicted=float(q.mean()),
        auc=auc,
        auc_note=auc_note,
        average_precision=ap,
        average_precision_note=ap_note,
        brier=float(np.mean((q - t) ** 2)),
        log_loss=log_loss,
        ece=ece,
        binning=binning,
        calibration=table,
    )


def auc_or_none(y: ArrayLike, score: ArrayLike | Sequence[float]) -> float | None:
    """ROC AUC of ``score`` for 0/1 ``y``; None when ``y`` holds a single class.

    Examples
    --------
    >>> auc_or_none([0, 1, 1], [0.2, 0.9, 0.5]), auc_or_none([1, 1], [0.2, 0.3])
    (1.0, None)
    """
    t = np.asarray(y, dtype=np.float64).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if t.size != s.size:
        raise ConfigError(f"y and score must have the same length, got {t.size} and {s.size}")
    if t.size == 0 or t.min() == t.max():
        return None
    return float(roc_auc_score(t, s))
