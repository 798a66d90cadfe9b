"""Clusters of accounts by behavior (not firmographics), with the number chosen by stability and readable names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Self

import numpy as np
import polars as pl
from numpy.typing import NDArray
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from nextmove.book import Book
from nextmove.errors import ConfigError, NotFittedError
from nextmove.features import compute_features, point_in_time
from nextmove.features.history import to_utc
from nextmove.features.names import BEHAVIOR_STAT, behavior_features
from nextmove.features.snapshot import vocabulary_of
from nextmove.playbook import Playbook

F64 = NDArray[np.float64]


SEGMENT_WINDOW_DAYS = 365
"""Window of the behavior features :func:`behavior_snapshot` computes: a year of history.

Behavior is a trait of an account, and a year averages out the weeks: on the lab book the
adjusted Rand index of the recovered groups is 0.65 with a 365-day window, 0.54 with 180 days
and 0.42 with 90 days (``docs/segments.md``)."""

FREQUENCY_DAYS = 30.0
"""Frequencies are events per this many days of the account's observed history."""

DAYS_SINCE_END = "days_since_end"
"""Optional snapshot column: days from an account's end (its terminal outcome) to the snapshot time.

An account that left did nothing after it left, so a frequency over the whole window would read
a leaver as a quiet customer. With this column a frequency is over the account's observed history
up to its end; :func:`~nextmove.segment.segment_book` adds it to the accounts gone in its look-back,
which it assigns from their behavior before they left. Missing or 0 for active accounts."""


def behavior_snapshot(
    book: Book,
    as_of: datetime | date,
    *,
    playbook: Playbook | None = None,
    window_days: int = SEGMENT_WINDOW_DAYS,
) -> pl.DataFrame:
    """A feature snapshot for segmentation: :func:`~nextmove.features.compute_features` over one long window.

    The run's snapshot has windows of up to 90 days, which suit decisions (what changed lately);
    segments describe what an account is like, which a year of history measures better (see
    :data:`SEGMENT_WINDOW_DAYS`).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from nextmove.book import empty_table
    >>> accounts = pl.DataFrame({"account_id": ["a"], "arr": [1000.0]})
    >>> signals = pl.DataFrame({"account_id": ["a"], "ts": [datetime(2024, 1, 1, tzinfo=UTC)],
    ...                         "name": ["logins"], "value": [3.0]})
    >>> book = Book(accounts, signals, empty_table("touches"), empty_table("outcomes"))
    >>> behavior_snapshot(book, datetime(2024, 6, 1, tzinfo=UTC)).select("logins_mean_365d", "logins_count_365d").row(0)
    (3.0, 1)
    """
    return compute_features(book, as_of, playbook=playbook, windows_days=(window_days,))


def signal_labels(
    book: Book,
    as_of: datetime | date,
    *,
    playbook: Playbook | None = None,
    window_days: int = SEGMENT_WINDOW_DAYS,
) -> dict[str, str]:
    """Each signal's stem in :func:`behavior_snapshot`'s columns → the signal's name as the book writes it.

    Segments are named after their signals (:attr:`BehaviorSegmenter.labels`): by the book's names, not
    by the stems of their columns, which drop what an identifier cannot hold (``⭐``, the spaces).

    Examples
    --------
    >>> from datetime import UTC, datetime
    >>> from nextmove.book import empty_table
    >>> signals = pl.DataFrame({"account_id": ["a"], "ts": [datetime(2024, 1, 1, tzinfo=UTC)],
    ...                         "name": ["İptal sayfası ziyareti"], "value": [1.0]})
    >>> book = Book(pl.DataFrame({"account_id": ["a"]}), signals, empty_table("touches"), empty_table("outcomes"))
    >>> signal_labels(book, datetime(2024, 6, 1, tzinfo=UTC))
    {'iptal_sayfasi_ziyareti': 'İptal sayfası ziyareti'}
    """
    when = to_utc(as_of)
    vocabulary = vocabulary_of(
        book.accounts.schema, point_in_time(book, when), playbook=playbook, windows_days=(window_days,)
    )
    return {stem: name for name, stem in vocabulary.signals.items()}


@dataclass(frozen=True)
class Segment:
    """One behavioral cluster: its id, a name from its distinctive traits, and its size."""

    id: int
    name: str
    accounts: int
    traits: list[tuple[str, float]]
    """Up to three features that set it apart, with their standardised difference from the book."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "name": self.name,
            "accounts": self.accounts,
            "traits": [{"feature": f, "z": z} for f, z in self.traits],
        }


@dataclass(frozen=True)
class SegmentResult:
    """The assignment of every account and the segments."""

    assignments: pl.DataFrame
    """``account_id``, ``segment_id``, ``segment``."""
    segments: list[Segment]
    k: int
    silhouette: float
    """Silhouette of the chosen ``k`` (for information; ``k`` is chosen by :attr:`stabilities`)."""
    silhouettes: dict[int, float] = field(default_factory=dict)
    """Silhouette of every ``k`` tried."""
    stabilities: dict[int, float] = field(default_factory=dict)
    """Stability of every ``k`` tried: the criterion that chose ``k`` (see :class:`BehaviorSegmenter`)."""
    criterion: str = "stability"
    """How ``k`` was chosen: ``stability``, ``silhouette`` or ``fixed``."""
    features: list[str] = field(default_factory=list)
    """The features the clusters were formed on."""


@dataclass
class BehaviorSegmenter:
    """K-means over behavior features net of account size; ``k`` is the largest that is reproducible.

    How the features are prepared (each step measured on the lab, ``docs/segments.md``):

    1. **Levels and frequencies** of every signal over one window (:func:`behavior_features`).
       A frequency is the count per :data:`FREQUENCY_DAYS` days of the account's observed
       history within the window (``tenure_days`` when the snapshot has it), so a young account
       is not read as a quiet one; for an account that left, the history ends at its end
       (:data:`DAYS_SINCE_END`), so a leaver is not read as a quiet one either.
    2. **Uninformative features are dropped**: those missing for half the accounts or more, and
       frequencies whose coefficient of variation is below ``min_spread`` (a signal that arrives
       on a fixed cadence, such as a weekly usage export, has the same frequency for everyone:
       standardised, it would be a dimension of pure noise).
    3. **Heavy tails are log-scaled**: a non-negative feature with skewness above 1 becomes
       ``log1p``. Missing values are set to the feature's median (a missing signal is not a
       behavior).
    4. **Size is taken out**: when the snapshot has ``size_column`` (ARR), each feature is
       regressed on its logarithm and the residual kept, so that large accounts, which have more
       users, logins and tickets, are not a segment of their own.
    5. Features are standardised; k-means (``n_init`` starts) is fitted for each ``k``.

    ``k`` is chosen by **stability** (``criterion="stability"``): for each ``k``, ``n_resamples``
    pairs of random half-samples (of up to ``sample_size`` accounts) are clustered, and both
    clusterings label every sampled account; the stability is the mean adjusted Rand index
    between the two labelings (Ben-Hur, Elisseeff and Guyon 2002; Lange et al. 2004). A ``k``
    that matches real structure is found again from any half of the data; one that cuts a
    continuum is not. ``k`` is the largest whose stability is within ``stability_tolerance``
    (0.03, about the spread of the estimate over resamples) of the most stable one. Fewer,
    coarser segments are often as stable (two clusters that each merge real groups), so the
    largest reproducible ``k`` is the finest structure the data supports; a ``k`` that splits a
    real group in two is usually much less stable. On the lab the stabilities were 0.86, 0.95,
    0.95, 0.64 for ``k`` = 2-5 (4 chosen, the 4 planted groups), and the silhouette
    (``criterion="silhouette"``, the best silhouette wins) chose 2. Both figures are reported
    for every ``k``. A known limit (Ben-David, von Luxburg and Pál 2006): stability says the
    k-means optimum is unique, not that ``k`` is right, so a cleanly separated but elongated
    group can be split stably; pass ``k`` when the number of segments is known.

    Seeded, so the same data gives the same segments; segment ids are ordered by size
    (0 = largest).

    Parameters
    ----------
    features
        Feature columns to use; default :func:`behavior_features` of the snapshot.
    window_days
        Window of the default features; default the longest window in the snapshot.
    k_range
        Smallest and largest ``k`` tried.
    k
        A fixed number of segments (then ``k_range`` and the criterion are not used).
    criterion
        ``stability`` or ``silhouette``.
    stability_tolerance
        How far below the best stability a larger ``k`` may be and still be chosen.
    seed
        Seed of k-means and the resampling.
    size_column
        Column whose log is regressed out of every feature; None keeps size in.
    min_spread
        Frequencies with a smaller coefficient of variation are dropped.
    n_init
        K-means starts of the final fit.
    n_resamples
        Pairs of half-samples per ``k`` for the stability.
    sample_size
        Accounts the stability and silhouette are computed on.
    labels
        Signal stem → the signal's name in the book (:func:`signal_labels`): segments are named by it
        (``high ⭐ αξιολόγηση frequency``); a stem without one is named by its stem, ``_`` read as a space.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> group = rng.integers(0, 2, 200)
    >>> frame = pl.DataFrame({"account_id": [f"a{i}" for i in range(200)],
    ...                       "logins_mean_90d": np.where(group == 1, 40.0, 5.0) + rng.normal(0, 2, 200)})
    >>> result = BehaviorSegmenter(k_range=(2, 4)).fit(frame).segment(frame)
    >>> result.k, [s.name for s in result.segments]
    (2, ['high logins', 'low logins'])
    """

    features: Sequence[str] | None = None
    window_days: int | None = None
    k_range: tuple[int, int] = (2, 8)
    k: int | None = None
    seed: int = 0
    size_column: str | None = "arr"
    min_spread: float = 0.2
    criterion: Literal["stability", "silhouette"] = "stability"
    stability_tolerance: float = 0.03
    n_init: int = 4
    n_resamples: int = 3
    sample_size: int = 2000
    labels: Mapping[str, str] = field(default_factory=dict)

    # ---- fitting ---------------------------------------------------------------------------

    def _validate(self) -> tuple[int, int]:
        lo, hi = self.k_range
        if not (isinstance(lo, int) and isinstance(hi, int)) or lo < 2 or hi < lo:
            raise ConfigError(f"k_range must be two whole numbers 2 <= low <= high, got {self.k_range!r}")
        if self.k is not None and (not isinstance(self.k, int) or self.k < 2):
            raise ConfigError(f"k must be a whole number of at least 2, got {self.k!r}")
        if self.n_resamples < 1 or self.n_init < 1:
            raise ConfigError("n_resamples and n_init must be at least 1")
        if self.criterion not in ("stability", "silhouette"):
            raise ConfigError(f"criterion must be 'stability' or 'silhouette', got {self.criterion!r}")
        if not 0 <= self.stability_tolerance < 1:
            raise ConfigError(f"stability_tolerance must be in [0, 1), got {self.stability_tolerance!r}")
        if self.min_spread < 0:
            raise ConfigError(f"min_spread must be >= 0, got {self.min_spread!r}")
        return (self.k, self.k) if self.k is not None else (lo, hi)

    def fit(self, snapshot: pl.DataFrame) -> Self:
        """Prepare the features, choose ``k`` and learn the clusters from one snapshot (one row per account).

        Raises
        ------
        ConfigError
            If the snapshot has no usable behavior features, or too few accounts for two segments.
        """
        # k-means on a few thousand rows is quick on one thread; OpenMP threads spinning on a
        # shared machine made it 20-60 times slower (measured: 0.18 s against 3.9 s).
        with threadpool_limits(limits=1, user_api="openmp"):
            return self._fit(snapshot)

    def _fit(self, snapshot: pl.DataFrame) -> Self:
        lo, hi = self._validate()
        if "account_id" not in snapshot.columns:
            raise ConfigError("the snapshot needs an 'account_id' column")
        cols = (
            list(self.features)
            if self.features is not None
            else behavior_features(snapshot.columns, window_days=self.window_days)
        )
        cols = [c for c in cols if c in snapshot.columns]
        if not cols:
            raise ConfigError(
                "no behavioral features (signal levels or frequencies, {signal}_mean_{w}d / _count_{w}d) to segment on"
            )
        x = self._prepare(snapshot, cols)
        if x.shape[0] < max(4, 2 * lo):
            raise ConfigError(f"too few accounts ({x.shape[0]}) to form {lo} segments")
        rng = np.random.default_rng(self.seed)
        sample = rng.choice(x.shape[0], size=min(self.sample_size, x.shape[0]), replace=False)
        hi = min(hi, sample.size // 4)
        silhouettes: dict[int, float] = {}
        stabilities: dict[int, float] = {}
        if self.k is None:
            for k in range(lo, max(lo, hi) + 1):
                stabilities[k], labels = self._stability(x[sample], k, rng)
                if len(np.unique(labels)) > 1:
                    silhouettes[k] = float(silhouette_score(x[sample], labels))
            self.k_ = self._choose(stabilities, silhouettes)
        else:
            self.k_ = self.k
        km = KMeans(n_clusters=self.k_, n_init=self.n_init, random_state=self.seed).fit(x)
        if len(np.unique(km.labels_)) < 2:
            raise ConfigError("the accounts' behavior does not vary enough to form two segments")
        if self.k_ not in silhouettes:
            silhouettes[self.k_] = float(silhouette_score(x[sample], km.labels_[sample]))
        self.silhouettes_ = silhouettes
        self.stabilities_ = stabilities
        # Stable ids: by size, largest first.
        sizes = np.bincount(km.labels_, minlength=self.k_)
        order = np.argsort(-sizes, kind="stable")
        self.remap_ = np.empty(self.k_, dtype=np.int64)
        self.remap_[order] = np.arange(self.k_)
        self.model_ = km
        self.centers_ = np.asarray(km.cluster_centers_[order], dtype=np.float64)
        self.correlation_: F64 = np.atleast_2d(np.nan_to_num(np.corrcoef(x, rowvar=False)))
        self.names_ = self._names()
        return self

    def _choose(self, stabilities: dict[int, float], silhouettes: dict[int, float]) -> int:
        if self.criterion == "silhouette" and silhouettes:
            return max(silhouettes, key=lambda k: (silhouettes[k], -k))
        best = max(stabilities.values())
        return max(k for k, v in stabilities.items() if v >= best - self.stability_tolerance)

    def _stability(self, x: F64, k: int, rng: np.random.Generator) -> tuple[float, NDArray[np.int64]]:
        """Mean adjusted Rand index between the labelings of ``x`` by k-means fitted on pairs of random halves.

        Also returns the first labeling (for the silhouette).
        """
        n = x.shape[0]
        scores = []
        first: NDArray[np.int64] | None = None
        for _ in range(self.n_resamples):
            labels = []
            for s in rng.integers(0, 2**31 - 1, size=2):
                rows = rng.choice(n, size=n // 2, replace=False)
                labels.append(KMeans(n_clusters=k, n_init=2, random_state=int(s)).fit(x[rows]).predict(x))
            first = labels[0] if first is None else first
            scores.append(adjusted_rand_score(labels[0], labels[1]))
        assert first is not None
        return float(np.mean(scores)), first

    def _prepare(self, snapshot: pl.DataFrame, cols: list[str]) -> F64:
        """Steps 1-5 of the class docstring, learning each transform (``fit``)."""
        raw = self._raw(snapshot, cols)
        keep = []
        for j, c in enumerate(cols):
            v = raw[:, j]
            seen = v[~np.isnan(v)]
            if np.mean(np.isnan(v)) >= 0.5 or seen.size < 2 or np.ptp(seen) == 0:
                keep.append(False)
                continue
            if _is_frequency(c):
                mean = float(np.mean(seen))
                keep.append(mean > 0 and float(np.std(seen)) / mean >= self.min_spread)
                continue
            keep.append(True)
        self.columns_ = [c for c, k in zip(cols, keep, strict=True) if k]
        if not self.columns_:
            raise ConfigError(
                f"none of the {len(cols)} behavioral features varies enough across accounts to segment on"
            )
        raw = raw[:, np.array(keep)]
        self.log_ = np.array([_skewed(v[~np.isnan(v)]) for v in raw.T])
        x = _log(raw, self.log_)
        self.median_ = np.nan_to_num(np.nanmedian(x, axis=0))
        x = np.where(np.isnan(x), self.median_, x)
        size = self._size(snapshot, fit=True)
        if size is not None:
            design = np.column_stack([np.ones_like(size), size])
            coef: F64 = np.linalg.lstsq(design, x, rcond=None)[0].astype(np.float64)
            self.size_coef_: F64 | None = coef
            x = x - design @ coef
        else:
            self.size_coef_ = None
        self.mean_ = x.mean(axis=0)
        spread = x.std(axis=0)
        self.scale_ = np.where(spread > 0, spread, 1.0)
        out: F64 = (x - self.mean_) / self.scale_
        return out

    def _raw(self, snapshot: pl.DataFrame, cols: Sequence[str]) -> F64:
        """The features as floats; frequencies per :data:`FREQUENCY_DAYS` days of observed history.

        The observed history in a window runs from the later of the window's start and the
        account's start (``tenure_days``) to the snapshot time, or to the account's end when it
        left (:data:`DAYS_SINCE_END`).
        """
        exprs = [
            pl.col(c).cast(pl.Float64) if c in snapshot.columns else pl.lit(None, pl.Float64).alias(c) for c in cols
        ]
        raw = snapshot.select(exprs).to_numpy().astype(np.float64)
        tenure = _days(snapshot, "tenure_days")
        ended = np.nan_to_num(np.clip(_days(snapshot, DAYS_SINCE_END), 0.0, None))
        for j, c in enumerate(cols):
            m = BEHAVIOR_STAT.match(c)
            if m and m["stat"] == "count":
                window = float(m["w"])
                history = np.minimum(np.where(np.isnan(tenure), window, tenure), window) - ended
                exposure = np.clip(history, min(7.0, window), window)
                raw[:, j] = raw[:, j] / exposure * FREQUENCY_DAYS
        return raw

    def _size(self, snapshot: pl.DataFrame, *, fit: bool = False) -> F64 | None:
        """Log of the size column (missing or non-positive: the book's median), or None when not used."""
        if fit:
            self.size_median_: float | None = None
        col = self.size_column
        if col is None or col not in snapshot.columns:
            return None
        v = snapshot.get_column(col).cast(pl.Float64).to_numpy()
        ok = np.isfinite(v) & (v > 0)
        if fit:
            if ok.sum() < 2 or np.ptp(np.log(v[ok])) == 0:
                return None
            self.size_median_ = float(np.median(np.log(v[ok])))
        if self.size_median_ is None:
            return None
        logs: F64 = np.where(ok, np.log(np.where(ok, v, 1.0)), self.size_median_)
        return logs

    def transform(self, snapshot: pl.DataFrame) -> F64:
        """The prepared, standardised features of every row (what the clusters are formed on)."""
        self._check_fitted()
        x = _log(self._raw(snapshot, self.columns_), self.log_)
        x = np.where(np.isnan(x), self.median_, x)
        if self.size_coef_ is not None:
            size = self._size(snapshot)
            if size is None:
                size = np.full(snapshot.height, self.size_median_ or 0.0)
            x = x - np.column_stack([np.ones_like(size), size]) @ self.size_coef_
        out: F64 = (x - self.mean_) / self.scale_
        return out

    # ---- naming ----------------------------------------------------------------------------

    def _names(self) -> list[str]:
        names = []
        for center in self.centers_:
            parts = [
                f"{'high' if z > 0 else 'low'} {_plain(self.columns_[j], self.labels)}" for j, z in self._traits(center)
            ]
            names.append(", ".join(parts) if parts else "typical behavior")
        return names

    def _traits(self, center: F64, *, limit: int = 3, min_z: float = 0.3) -> list[tuple[int, float]]:
        """The most distinctive features of a center, skipping near-copies (correlation > 0.9) of one chosen."""
        chosen: list[tuple[int, float]] = []
        for j in np.argsort(-np.abs(center), kind="stable"):
            if abs(center[j]) < min_z or len(chosen) == limit:
                break
            if any(self.correlation_[j, i] > 0.9 for i, _ in chosen):
                continue
            chosen.append((int(j), float(center[j])))
        return chosen

    # ---- using -----------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("this BehaviorSegmenter is not fitted yet: call fit(snapshot) first")

    def predict(self, snapshot: pl.DataFrame) -> NDArray[np.int64]:
        """The segment id of every row."""
        self._check_fitted()
        x = self.transform(snapshot)
        with threadpool_limits(limits=1, user_api="openmp"):
            labels: NDArray[np.int64] = self.remap_[self.model_.predict(x)]
        return labels

    def segment(self, snapshot: pl.DataFrame) -> SegmentResult:
        """Assign every account of ``snapshot`` and describe the segments."""
        labels = self.predict(snapshot)
        counts = np.bincount(labels, minlength=self.k_)
        segments = []
        for s in range(self.k_):
            traits = [(self.columns_[j], round(z, 2)) for j, z in self._traits(self.centers_[s], min_z=0.0)]
            segments.append(Segment(s, self.names_[s], int(counts[s]), traits))
        assignments = pl.DataFrame(
            {
                "account_id": snapshot.get_column("account_id"),
                "segment_id": labels,
                "segment": [self.names_[s] for s in labels],
            }
        )
        return SegmentResult(
            assignments,
            segments,
            self.k_,
            self.silhouettes_[self.k_],
            dict(self.silhouettes_),
            dict(self.stabilities_),
            "fixed" if self.k is not None else self.criterion,
            list(self.columns_),
        )


def _days(snapshot: pl.DataFrame, column: str) -> F64:
    """A column of days as floats (NaN where missing or when the snapshot lacks it)."""
    if column not in snapshot.columns:
        return np.full(snapshot.height, np.nan)
    days: F64 = snapshot.get_column(column).cast(pl.Float64).fill_null(np.nan).to_numpy().astype(np.float64)
    return days


def _is_frequency(feature: str) -> bool:
    m = BEHAVIOR_STAT.match(feature)
    return bool(m and m["stat"] == "count")


def _skewed(values: F64) -> bool:
    """Non-negative with a skewness above 1: a heavy right tail that a log evens out."""
    if values.size < 3 or values.min() < 0:
        return False
    sd = values.std()
    return bool(sd > 0 and np.mean(((values - values.mean()) / sd) ** 3) > 1.0)


def _log(raw: F64, flags: NDArray[np.bool_]) -> F64:
    x = raw.copy()
    x[:, flags] = np.log1p(np.clip(x[:, flags], 0, None))
    return x


def _plain(feature: str, labels: Mapping[str, str]) -> str:
    """How a segment's name says ``feature``: its signal's name (``labels``, else its stem) and what of it.

    Examples
    --------
    >>> _plain("iptal_sayfasi_ziyareti_count_365d", {"iptal_sayfasi_ziyareti": "İptal sayfası ziyareti"})
    'İptal sayfası ziyareti frequency'
    >>> _plain("logins_mean_90d", {})
    'logins'
    """
    m = BEHAVIOR_STAT.match(feature)
    if not m:
        return feature.replace("_", " ")
    stem = labels.get(m["stem"]) or m["stem"].replace("_", " ")
    return {"trend": f"{stem} growth", "count": f"{stem} frequency"}.get(m["stat"], stem)
