"""Calibrating a model's raw scores into probabilities: Platt or isotonic, chosen by cross-validated Brier score."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import StratifiedKFold

from nextmove.errors import ConfigError

CalibrationMethod = Literal["platt", "isotonic"]
"""``platt``: a logistic curve over the raw log-odds; ``isotonic``: a monotone step-wise map."""

CALIBRATION_METHODS: tuple[CalibrationMethod, ...] = ("platt", "isotonic")

PROBABILITY_FLOOR = 1e-6
"""Calibrated probabilities are kept in ``[1e-6, 1 − 1e-6]``: an isotonic step of exactly 0 or 1 is
never certain, and downstream log-odds stay finite."""

MIN_ISOTONIC_EVENTS = 20
"""Isotonic needs this many events and non-events in the calibration window; with fewer it
over-fits its steps, and Platt (two parameters) is used."""


@dataclass(frozen=True)
class Calibrator:
    """A fitted map from a model's raw log-odds to a calibrated probability.

    ``platt``: ``p = σ(slope · z + intercept)``. ``isotonic``: ``p`` linearly interpolated
    between the steps ``(x, y)``, constant beyond the ends.

    Examples
    --------
    >>> cal = Calibrator("platt", slope=1.0, intercept=0.0)
    >>> cal.apply(np.array([0.0])).round(3).tolist()
    [0.5]
    >>> Calibrator.from_dict(cal.to_dict()) == cal
    True
    """

    method: CalibrationMethod
    slope: float = 1.0
    intercept: float = 0.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    def apply(self, logit: NDArray[np.float64]) -> NDArray[np.float64]:
        """Calibrated probabilities of raw log-odds ``logit``."""
        z = np.asarray(logit, dtype=np.float64)
        if self.method == "isotonic":
            p = np.interp(z, np.asarray(self.x), np.asarray(self.y))
        else:
            p = _sigmoid(self.slope * z + self.intercept)
        out: NDArray[np.float64] = np.clip(p, PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (see :meth:`from_dict`)."""
        return {"method": self.method, "slope": self.slope, "intercept": self.intercept, "x": self.x, "y": self.y}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibrator:
        """The calibrator of :meth:`to_dict`'s output."""
        method = data["method"]
        if method not in CALIBRATION_METHODS:
            raise ConfigError(f"calibration method must be one of {CALIBRATION_METHODS}, got {method!r}")
        return cls(
            method,
            float(data["slope"]),
            float(data["intercept"]),
            tuple(float(v) for v in data["x"]),
            tuple(float(v) for v in data["y"]),
        )


@dataclass(frozen=True)
class CalibrationChoice:
    """The calibrator chosen on the validation window, and why.

    ``brier`` holds each candidate's mean out-of-fold Brier score (lower is better) within the
    window; ``out_of_fold`` the chosen method's out-of-fold probabilities, in the window's row
    order, for honest accuracy figures.
    """

    calibrator: Calibrator
    brier: dict[str, float]
    folds: int
    out_of_fold: NDArray[np.float64] = field(repr=False)


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


def _fit_platt(z: NDArray[np.float64], t: NDArray[np.float64], ridge: float = 1e-4) -> tuple[float, float]:
    """Maximum likelihood of ``σ(a·z + b)`` by damped Newton steps; a tiny ridge on ``a`` keeps it finite."""
    rate = float(np.clip(t.mean(), 1e-6, 1 - 1e-6))
    a, b = 1.0, float(np.log(rate / (1 - rate)) - np.mean(z))
    n = float(z.size)

    def nll(a: float, b: float) -> float:
        p = np.clip(_sigmoid(a * z + b), 1e-15, 1 - 1e-15)
        return -float(np.mean(t * np.log(p) + (1 - t) * np.log(1 - p))) + ridge * a * a

    current = nll(a, b)
    for _ in range(100):
        p = _sigmoid(a * z + b)
        r = p - t
        w = p * (1 - p)
        grad = np.array([float(r @ z) / n + 2 * ridge * a, float(r.sum()) / n])
        hess = np.array(
            [[float(w @ (z * z)) / n + 2 * ridge, float(w @ z) / n], [float(w @ z) / n, float(w.sum()) / n + 1e-12]]
        )
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-6:
            na, nb = a - scale * float(step[0]), b - scale * float(step[1])
            candidate = nll(na, nb)
            if candidate <= current:
                break
            scale /= 2
        else:
            break
        done = abs(current - candidate) < 1e-12
        a, b, current = na, nb, candidate
        if done:
            break
    return a, b


def fit_calibrator(method: CalibrationMethod, logit: NDArray[np.float64], y: NDArray[np.float64]) -> Calibrator:
    """Fit a ``platt`` or ``isotonic`` calibrator of raw log-odds ``logit`` to 0/1 labels ``y``.

    Platt scaling is fitted by maximum likelihood with a tiny ridge (so perfectly separated
    windows give a steep, finite curve rather than none).

    Examples
    --------
    >>> z = np.linspace(-3, 3, 200)
    >>> y = (np.random.default_rng(0).random(200) < 1 / (1 + np.exp(-z))).astype(float)
    >>> cal = fit_calibrator("platt", z, y)
    >>> 0.5 < cal.slope < 2.0
    True
    """
    z = np.asarray(logit, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(z, t)
        return Calibrator(
            "isotonic",
            x=tuple(float(v) for v in iso.X_thresholds_),
            y=tuple(float(v) for v in iso.y_thresholds_),
        )
    if method != "platt":
        raise ConfigError(f"calibration method must be one of {CALIBRATION_METHODS}, got {method!r}")
    a, b = _fit_platt(z, t)
    return Calibrator("platt", slope=a, intercept=b)


def choose_calibrator(
    logit: NDArray[np.float64],
    y: NDArray[np.float64],
    *,
    method: CalibrationMethod | Literal["auto"] = "auto",
    folds: int = 5,
    random_state: int = 0,
) -> CalibrationChoice:
    """Choose Platt or isotonic by out-of-fold Brier score within the window, then refit it on the whole window.

    Rows are split into ``folds`` stratified folds (seeded); each candidate is fitted on the
    other folds and scored on the held-out one. Platt, the simpler map, is kept unless isotonic's
    Brier score is lower by more than one standard error of the paired difference (isotonic's
    flat steps give tied probabilities, which cost ranking power, so a gain within noise is not
    worth it). Isotonic is a candidate only with at least :data:`MIN_ISOTONIC_EVENTS` events and
    non-events.

    Parameters
    ----------
    logit
        Raw log-odds of the model on the validation window.
    y
        0/1 labels there; both classes must occur.
    method
        ``auto`` to choose, or force ``platt`` / ``isotonic`` (still cross-validated for the figures).
    folds
        Number of folds (fewer when a class has fewer rows).
    random_state
        Seed of the fold assignment.

    Returns
    -------
    CalibrationChoice
        The refitted calibrator, every candidate's Brier score, and out-of-fold probabilities.

    Raises
    ------
    ConfigError
        If ``y`` holds a single class, or ``method`` is unknown.
    """
    z = np.asarray(logit, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    events = int(t.sum())
    non_events = int(t.size - events)
    if events == 0 or non_events == 0:
        raise ConfigError("calibration needs both events and non-events in the validation window")
    if method == "auto":
        candidates: list[CalibrationMethod] = ["platt"]
        if min(events, non_events) >= MIN_ISOTONIC_EVENTS:
            candidates.append("isotonic")
    elif method in CALIBRATION_METHODS:
        candidates = [method]
    else:
        raise ConfigError(f"calibration must be 'auto', 'platt' or 'isotonic', got {method!r}")
    k = max(2, min(folds, events, non_events))
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=random_state)
    splits = list(splitter.split(z.reshape(-1, 1), t))
    brier: dict[str, float] = {}
    oof: dict[str, NDArray[np.float64]] = {}
    for name in candidates:
        pred = np.empty_like(z)
        for fit_idx, held_idx in splits:
            pred[held_idx] = fit_calibrator(name, z[fit_idx], t[fit_idx]).apply(z[held_idx])
        oof[name] = pred
        brier[name] = float(np.mean((pred - t) ** 2))
    best: CalibrationMethod = candidates[0]
    if "isotonic" in oof and len(candidates) > 1:
        # One-standard-error rule: isotonic's steps tie accounts that Platt keeps apart (costing
        # ranking power), so it must beat Platt by more than the noise of the paired difference.
        diff = (oof["isotonic"] - t) ** 2 - (oof["platt"] - t) ** 2
        se = float(diff.std(ddof=1) / np.sqrt(diff.size))
        if float(diff.mean()) < -se:
            best = "isotonic"
    return CalibrationChoice(fit_calibrator(best, z, t), brier, k, oof[best])
