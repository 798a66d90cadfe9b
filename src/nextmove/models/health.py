"""The health scorecard: a readable 0–100 score per account, its bands, trend, components and movers."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Self

import numpy as np
import polars as pl

from nextmove._words import plural
from nextmove.errors import ConfigError, NotFittedError
from nextmove.features import FeatureVocabulary, SignalKind, declared_signal_kinds, sanitize_name, signal_kinds
from nextmove.playbook.loader import toml_string
from nextmove.playbook.schema import Health, Playbook, SignalKinds, SignalRoles

BANDS: tuple[tuple[str, float], ...] = (("Critical", 30.0), ("At risk", 70.0), ("Healthy", 100.0))
"""Band names, worst first, with the fixed cut-offs' upper bounds: Critical 0–30, At risk 31–70, Healthy 71–100.

Those bounds apply when the playbook sets none and the book's history cannot anchor the bands
(see :class:`HealthBands` and :mod:`nextmove.models.health_bands`).
"""


@dataclass(frozen=True)
class HealthBands:
    """The score cut-offs of the three bands, on the rounded score, and where they come from.

    A rounded score up to ``critical_max`` is Critical, up to ``at_risk_max`` At risk, above it
    Healthy. ``critical_max = -1`` leaves no Critical band; ``at_risk_max = critical_max`` no At
    risk band. ``source`` says who chose them: ``fixed`` (the 30/70 convention, used when nothing
    better is known), ``playbook`` (``[health] band_cutoffs``) or ``history`` (learned from the
    book's outcomes by :class:`~nextmove.models.health_bands.HealthBandCalibrator`).

    Examples
    --------
    >>> HealthBands().ranges()
    {'Healthy': (71, 100), 'At risk': (31, 70), 'Critical': (0, 30)}
    >>> HealthBands(-1, 47, "history").ranges()["Critical"] is None
    True
    """

    critical_max: int = 30
    at_risk_max: int = 70
    source: Literal["fixed", "playbook", "history"] = "fixed"

    def __post_init__(self) -> None:
        if not -1 <= self.critical_max <= self.at_risk_max <= 100:
            raise ConfigError(
                f"health band cut-offs must satisfy -1 <= critical_max <= at_risk_max <= 100, "
                f"got {self.critical_max} and {self.at_risk_max}"
            )

    def ranges(self) -> dict[str, tuple[int, int] | None]:
        """Each band's range of rounded scores, Healthy first (None for an empty band)."""
        spans = {
            "Healthy": (self.at_risk_max + 1, 100),
            "At risk": (self.critical_max + 1, self.at_risk_max),
            "Critical": (0, self.critical_max),
        }
        return {band: (lo, hi) if lo <= hi else None for band, (lo, hi) in spans.items()}

    def describe(self) -> str:
        """The ranges in words, e.g. ``Healthy 71–100, At risk 31–70, Critical 0–30`` (:func:`span_text`)."""
        return ", ".join(f"{band} {span_text(span)}" for band, span in self.ranges().items())


def span_text(span: tuple[int, int] | None) -> str:
    """A band's range of rounded scores in words: ``31–70``, ``0 only`` for a single score, ``none`` for an empty band.

    Examples
    --------
    >>> span_text((31, 70)), span_text((0, 0)), span_text(None)
    ('31–70', '0 only', 'none')
    """
    if span is None:
        return "none"
    return f"{span[0]} only" if span[0] == span[1] else f"{span[0]}–{span[1]}"


FIXED_BANDS = HealthBands()
"""The fixed cut-offs: Critical 0–30, At risk 31–70, Healthy 71–100."""

_WORDS = {
    "mean": "average",
    "sum": "total",
    "count": "count",
    "trend": "trend",
    "last": "latest",
}


@dataclass(frozen=True)
class ScorecardMeasure:
    """One resolved measure: a feature, its direction, scaling, component and weight within the component."""

    component: str
    feature: str
    direction: Literal["higher", "lower"] = "higher"
    label: str = ""
    scale: Literal["rank", "linear"] = "rank"
    low: float | None = None
    high: float | None = None
    weight: float = 1.0
    silent: SignalKind | None = None
    """How the measure reads an account that went silent on its signal (rows of it before the window, none
    in it), for a window mean or trend (``{s}_mean_{w}d``, ``{s}_trend_{w}d``): ``count``, as no activity (a
    mean of 0; a trend of −100 % when the window before held rows); ``level``, the mean as the worst value
    the scorecard was fitted on (its trend stays missing); None (the default), missing like any missing
    value. :meth:`HealthScorecard.from_playbook` sets it for the means and trends of ``[signal_roles]``
    usage signals, by each signal's kind (:func:`~nextmove.features.signal_kinds`)."""
    silent_declared: bool = False
    """Whether the playbook declares the kind :attr:`silent` reads by (``[signal_kinds]``), rather than the
    signal's data: the note on silent accounts asks to declare only the kinds it does not."""
    signal_name: str = ""
    """The measure's signal in words as the book names it (``Active field users``; underscores read as
    spaces), for :attr:`text`; empty for a feature of no signal, or when unknown (its stem then reads with
    spaces for underscores). :meth:`HealthScorecard.from_playbook` sets it from the vocabulary."""

    @property
    def text(self) -> str:
        """The measure in plain words."""
        stem = _signal_stem(self.feature)
        names = {stem: self.signal_name} if stem is not None and self.signal_name else None
        return self.label or describe_feature(self.feature, names)


@dataclass(frozen=True)
class ScorecardComponent:
    """A resolved component: id, display name, weight (points out of 100)."""

    id: str
    name: str
    weight: float


@dataclass(frozen=True)
class Mover:
    """A measure whose change moved the score, in plain words."""

    account_id: str
    feature: str
    text: str
    points: float


def describe_feature(feature: str, names: Mapping[str, str] | None = None) -> str:
    """Plain words for a feature name.

    ``names`` maps signal stems to the signals' names as the book writes them
    (:meth:`~nextmove.features.FeatureVocabulary.signal_words`); a stem without one reads with
    spaces for underscores.

    Examples
    --------
    >>> describe_feature("active_users_mean_28d")
    'active users (28-day average)'
    >>> describe_feature("active_field_users_last", {"active_field_users": "Active field users"})
    'Active field users (latest)'
    >>> describe_feature("tickets_opened_count_90d")
    'tickets opened (90-day count)'
    >>> describe_feature("arr")
    'ARR'
    """
    if feature == "arr":
        return "ARR"
    words = names or {}
    m = re.fullmatch(r"(.+)_(mean|sum|count|trend)_(\d+)d", feature)
    if m:
        return f"{signal_words(m.group(1), words)} ({m.group(3)}-day {_WORDS[m.group(2)]})"
    m = re.fullmatch(r"(.+)_last", feature)
    if m:
        return f"{signal_words(m.group(1), words)} (latest)"
    return feature.replace("_", " ")


def signal_words(stem: str, names: Mapping[str, str]) -> str:
    """A signal's name in words: the book's (``names``: stem → name), else its stem with spaces for underscores."""
    return names.get(stem) or stem.replace("_", " ")


_EVENT_SUM = re.compile(r"(.+)_sum_(\d+)d")
_SIGNAL_STAT = re.compile(r"(?P<stem>.+)_(?P<stat>mean|sum|count|trend)_(?P<w>\d+)d")


def _signal_window(feature: str) -> tuple[str, str, int] | None:
    """``(stem, stat, window_days)`` of a signal's window statistic (``logins_mean_28d``), else None."""
    m = _SIGNAL_STAT.fullmatch(feature)
    return None if m is None else (m["stem"], m["stat"], int(m["w"]))


def _signal_stem(feature: str) -> str | None:
    """The signal stem of a window statistic or latest value (``logins_mean_28d``, ``nps_last``), else None."""
    window = _signal_window(feature)
    if window is not None:
        return window[0]
    return feature.removesuffix("_last") if feature.endswith("_last") else None


_UNSEEN, _SILENT, _ACTIVE = 0, 1, 2
"""An account's state in a signal's window: no row of it ever (or nothing known), rows only before the
window (it went silent), a row in the window."""


def _signal_state_expr(stem: str, window_days: int, columns: Iterable[str]) -> pl.Expr | None:
    """The account's state in the signal's window (:data:`_SILENT` …); None when the features cannot tell."""
    count, last = f"{stem}_count_{window_days}d", f"{stem}_last"
    have = set(columns)
    if count not in have or last not in have:
        return None
    return (
        pl.when(pl.col(count) > 0)
        .then(pl.lit(_ACTIVE))
        .when(pl.col(last).is_not_null())
        .then(pl.lit(_SILENT))
        .otherwise(pl.lit(_UNSEEN))
    )


def event_count_feature(feature: str, columns: Iterable[str]) -> str | None:
    """The count column beside ``feature`` when it is a window sum of events, else None.

    A window sum (``{s}_sum_{w}d``) is null when the window holds no row, while its count
    (``{s}_count_{w}d``) is 0 there for an account with data in that source (see features.md,
    "Missing values"). The count tells "no event" (a total of 0) from "we know nothing" (null).

    Examples
    --------
    >>> event_count_feature("tickets_sum_28d", ["tickets_sum_28d", "tickets_count_28d"])
    'tickets_count_28d'
    >>> event_count_feature("tickets_mean_28d", ["tickets_mean_28d", "tickets_count_28d"]) is None
    True
    """
    m = _EVENT_SUM.fullmatch(feature)
    if m is None:
        return None
    count = f"{m.group(1)}_count_{m.group(2)}d"
    return count if count in set(columns) else None


def measure_value_expr(feature: str, columns: Iterable[str]) -> pl.Expr:
    """A measure's values as the scorecard reads them: the feature, with no event counted as 0 events.

    Counts of events are already 0 for an account with data in their source and no event; a window
    sum is null there, so it becomes 0 where its count is known. Means, latest values and trends of
    nothing stay missing: their value is unknown, not low.
    """
    value = pl.col(feature).cast(pl.Float64).fill_nan(None)
    count = event_count_feature(feature, columns)
    if count is not None:
        value = value.fill_null(pl.when(pl.col(count).is_not_null()).then(pl.lit(0.0)))
    return value.alias(feature)


def resolve_scorecard(
    playbook: Playbook, available: Sequence[str], vocabulary: FeatureVocabulary | None = None
) -> tuple[list[ScorecardComponent], list[ScorecardMeasure]]:
    """The components and measures the playbook asks for, limited to features that exist.

    Explicit ``[health.components]`` are used as written. Without them, components are built from
    ``[signal_roles]``: usage and engagement signals count up; support signals (tickets, severity)
    count down; sentiment and survey signals count up; business value is ARR and tenure. A book
    without roles gets a business-value component only, which the optimizer can then extend.
    :func:`left_out_measures_note` names the measures left out. A role's signal reads the columns
    ``vocabulary`` (the features') gives its exact name
    (:meth:`~nextmove.features.FeatureVocabulary.signal_stem`; default: the stem it gets alone).

    Raises
    ------
    ConfigError
        When no measure of any component exists among ``available`` features.
    """
    have = set(available)
    components, asked = _asked_scorecard(playbook, vocabulary)
    measures = [m for m, _ in asked]
    present = [m for m in measures if m.feature in have]
    used = {m.component for m in present}
    components = [c for c in components if c.id in used]
    if not present:
        wanted = ", ".join(sorted({m.feature for m in measures})) or "(none)"
        raise ConfigError(
            f"no health measure exists among the book's features (wanted: {wanted}); "
            "set [signal_roles] or [health.components] in the playbook to features the book has"
        )
    return components, present


def _asked_scorecard(
    playbook: Playbook, vocabulary: FeatureVocabulary | None = None
) -> tuple[list[ScorecardComponent], list[tuple[ScorecardMeasure, str | None]]]:
    """The components and measures the playbook asks for, each measure with the role member it reads (or None).

    A role member's columns are those ``vocabulary`` gives its exact name (default: the stem it gets alone).
    """
    health: Health = playbook.health
    components: list[ScorecardComponent] = []
    measures: list[tuple[ScorecardMeasure, str | None]] = []
    if health.components:
        for cid, comp in health.components.items():
            components.append(ScorecardComponent(cid, comp.name or cid, comp.weight))
            for m in comp.measures:
                measure = ScorecardMeasure(cid, m.feature, m.direction, m.label, m.scale, m.low, m.high, m.weight)
                measures.append((measure, None))
        return components, measures
    w = health.window_days
    roles = playbook.signal_roles
    stem = (vocabulary if vocabulary is not None else FeatureVocabulary()).signal_stem
    built: dict[str, Sequence[tuple[str, Literal["higher", "lower"], str | None]]] = {
        "usage": [(f"{stem(s)}_{kind}_{w}d", "higher", s) for s in roles.usage for kind in ("mean", "trend")],
        "engagement": [(f"{stem(s)}_sum_{w}d", "higher", s) for s in roles.engagement],
        "sentiment": [(f"{stem(s)}_mean_90d", "higher", s) for s in roles.sentiment]
        + [(f"{stem(s)}_last", "higher", s) for s in roles.survey]
        + [(f"{stem(s)}_sum_{w}d", "lower", s) for s in roles.support],
        "business_value": [("arr", "higher", None), ("tenure_days", "higher", None)],
    }
    names = {
        "usage": "Product usage",
        "engagement": "Engagement",
        "sentiment": "Sentiment & support",
        "business_value": "Business value",
    }
    for cid, items in built.items():
        weight = health.default_weights.get(cid, 0.0)
        if weight <= 0:
            continue
        components.append(ScorecardComponent(cid, names[cid], weight))
        measures.extend((ScorecardMeasure(cid, f, d), s) for f, d, s in items)
    return components, measures


def left_out_measures(
    playbook: Playbook, features: pl.DataFrame, vocabulary: FeatureVocabulary | None = None
) -> dict[str, str]:
    """The measures the playbook asks for that the score leaves out, with why: feature → reason.

    A measure is left out when its feature is not among ``features``' columns (a misspelt feature, a
    signal whose features are named otherwise), or has no value in any row. Not named here: the
    measures of a ``[signal_roles]`` member that is no signal of the book
    (:func:`unknown_signals_note` names those), and ARR when no account has one (a book without ARR).
    A role member reads the columns ``vocabulary`` (``features``' own) gives its name, as
    :meth:`HealthScorecard.from_playbook` does.

    Examples
    --------
    >>> from nextmove.playbook.loader import parse_playbook
    >>> pb = parse_playbook(
    ...     '[objectives.keep]\\noutcome = "churn"\\nsense = "avoid"\\nvalue = "arr"\\n'
    ...     '[[actions]]\\nid = "qbr"\\nname = "QBR"\\nteam = "cs"\\nobjective = "keep"\\n'
    ...     '[health.components.usage]\\nweight = 1\\n'
    ...     'measures = [{ feature = "loggins_mean_28d" }, { feature = "logins_mean_28d" }, { feature = "seats" }]\\n'
    ... )
    >>> feats = pl.DataFrame({"account_id": ["a"], "logins_mean_28d": [3.0], "seats": [None]})
    >>> left_out_measures(pb, feats)
    {'loggins_mean_28d': "no such feature; did you mean 'logins_mean_28d'?", 'seats': 'no value in any account'}
    """
    have = set(features.columns)
    _, asked = _asked_scorecard(playbook, vocabulary)
    stem = (vocabulary if vocabulary is not None else FeatureVocabulary()).signal_stem
    left: dict[str, str] = {}
    for m, signal in asked:
        if m.feature in have or m.feature in left:
            continue
        if signal is not None and f"{stem(signal)}_last" not in have:
            continue  # a signal the book does not have: unknown_signals_note names it
        # Feature names share long suffixes (_sum_28d): only a near spelling is worth suggesting.
        close = difflib.get_close_matches(m.feature, sorted(have - {"account_id"}), n=1, cutoff=0.8)
        left[m.feature] = "no such feature" + (f"; did you mean {close[0]!r}?" if close else "")
    present = [m.feature for m, _ in asked if m.feature in have]
    for feature in sorted(_empty_features(features, present) - {"arr"}):
        left[feature] = "no value in any account"
    return left


def left_out_measures_note(
    playbook: Playbook, features: pl.DataFrame, vocabulary: FeatureVocabulary | None = None
) -> str | None:
    """A note naming the health measures the score leaves out (:func:`left_out_measures`); None when none is."""
    left = left_out_measures(playbook, features, vocabulary)
    if not left:
        return None
    shown = ", ".join(f"{feature} ({why})" for feature, why in list(left.items())[:8])
    more = f" and {len(left) - 8} more" if len(left) > 8 else ""
    where = "[health.components]" if playbook.health.components else "[signal_roles]"
    return (
        f"the health score leaves out {len(left)} measure(s) the playbook asks for, and the other measures share "
        f"their weight: {shown}{more}; check {where} against the book's features (docs/features.md)"
    )


def unscored_signals(playbook: Playbook, signal_names: Iterable[str]) -> list[str]:
    """The book's signals that a scorecard built from ``[signal_roles]`` does not read, sorted.

    Empty when the playbook writes its own ``[health.components]`` (its measures are its choice).
    A role member matches a signal by exact or sanitised name, as the features do.

    Examples
    --------
    >>> from nextmove.playbook.loader import parse_playbook
    >>> pb = parse_playbook(
    ...     '[objectives.keep]\\noutcome = "cancel"\\nsense = "avoid"\\nvalue = "arr"\\n'
    ...     '[[actions]]\\nid = "push"\\nname = "Push"\\nteam = "crm"\\nobjective = "keep"\\n'
    ...     '[signal_roles]\\nusage = ["Minutes Watched"]\\n'
    ... )
    >>> unscored_signals(pb, ["minutes_watched", "payment_failed"])
    ['payment_failed']
    """
    if playbook.health.components:
        return []
    named = {n for role in SignalRoles.model_fields for n in getattr(playbook.signal_roles, role)}
    named |= {sanitize_name(n) for n in named}
    return sorted({s for s in signal_names if s not in named and sanitize_name(s) not in named})


def unscored_signals_note(playbook: Playbook, signal_names: Iterable[str]) -> str | None:
    """A note for the user when the health score leaves some of the book's signals out (None when it reads all)."""
    left = unscored_signals(playbook, signal_names)
    if not left:
        return None
    shown = ", ".join(left[:8]) + (f" and {len(left) - 8} more" if len(left) > 8 else "")
    return (
        f"the health score does not read {len(left)} of the book's signals ({shown}): they are in no list of the "
        "playbook's [signal_roles] (usage, engagement, support, sentiment, survey); name them there, e.g. "
        f'usage = ["{left[0]}"], for the score to follow them'
    )


def unknown_signals(playbook: Playbook, signal_names: Iterable[str]) -> list[tuple[str, str, str | None]]:
    """The names of ``[signal_roles]`` and ``[signal_kinds]`` that are no signal of the book.

    Each is ``(where, name, closest)``: where the playbook lists it (``signal_roles.usage``,
    ``signal_kinds.count``), the name, and the book's signal closest to it (None when none is close).
    A name matches a signal by exact or sanitised name, as the features do. Empty when the book has
    no signal at all (nothing to match the names against).

    Examples
    --------
    >>> from nextmove.playbook.loader import parse_playbook
    >>> pb = parse_playbook(
    ...     '[objectives.keep]\\noutcome = "cancel"\\nsense = "avoid"\\nvalue = "arr"\\n'
    ...     '[[actions]]\\nid = "push"\\nname = "Push"\\nteam = "crm"\\nobjective = "keep"\\n'
    ...     '[signal_roles]\\nusage = ["Minutes Watched", "sesions"]\\n[signal_kinds]\\nlevel = ["nps"]\\n'
    ... )
    >>> unknown_signals(pb, ["minutes_watched", "sessions"])
    [('signal_roles.usage', 'sesions', 'sessions'), ('signal_kinds.level', 'nps', None)]
    """
    signals = sorted({s for s in signal_names if s is not None})
    if not signals:
        return []
    by_sanitized = {sanitize_name(s): s for s in signals}
    lists = [(f"signal_roles.{role}", getattr(playbook.signal_roles, role)) for role in SignalRoles.model_fields]
    lists += [(f"signal_kinds.{kind}", getattr(playbook.signal_kinds, kind)) for kind in SignalKinds.model_fields]
    unknown: list[tuple[str, str, str | None]] = []
    for where, names in lists:
        for name in names:
            stem = sanitize_name(name)
            if name in signals or stem in by_sanitized:
                continue
            close = difflib.get_close_matches(stem, list(by_sanitized), n=1)
            unknown.append((where, name, by_sanitized[close[0]] if close else None))
    return unknown


def unknown_signals_note(playbook: Playbook, signal_names: Iterable[str]) -> str | None:
    """A note naming the ``[signal_roles]`` and ``[signal_kinds]`` names the book has no signal of (None if none).

    Such a name is ignored, not refused: a playbook may be shared by books with other signals.
    """
    unknown = unknown_signals(playbook, signal_names)
    if not unknown:
        return None
    parts = [
        f"{where} {name!r}" + (f" (did you mean {close!r}?)" if close else "") for where, name, close in unknown[:8]
    ]
    more = f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""
    signals = sorted({s for s in signal_names if s is not None})
    shown = ", ".join(signals[:12]) + (f" and {len(signals) - 12} more" if len(signals) > 12 else "")
    return (
        f"the playbook's {', '.join(parts)}{more} {'is' if len(unknown) == 1 else 'are'} no signal of the book, "
        f"so ignored (the book's signals: {shown}); fix the spelling, or keep "
        f"{'it' if len(unknown) == 1 else 'them'} if the playbook is shared with a book that has "
        f"{'it' if len(unknown) == 1 else 'them'}"
    )


@dataclass
class HealthScorecard:
    """A weighted scorecard over features, scaled per measure to 0–100.

    Follows the scikit-learn contract: ``__init__`` stores arguments, :meth:`fit` learns the
    per-measure scaling (the reference snapshot's values, sorted) and returns ``self``,
    :meth:`score` applies it to any snapshot (so earlier snapshots are scored on the same scale:
    a change is the account's own, not a re-ranking; whether it is more than noise is another matter,
    see :func:`trend_noise_note`). ``bands`` are the score cut-offs of the bands
    (:class:`HealthBands`; default the fixed 30/70).

    Examples
    --------
    >>> feats = pl.DataFrame({"account_id": ["a", "b", "c"], "logins": [1.0, 5.0, 9.0],
    ...                       "tickets": [4.0, 2.0, 0.0]})
    >>> card = HealthScorecard(
    ...     [ScorecardComponent("usage", "Usage", 60), ScorecardComponent("support", "Support", 40)],
    ...     [ScorecardMeasure("usage", "logins"), ScorecardMeasure("support", "tickets", "lower")],
    ... ).fit(feats)
    >>> card.score(feats).select("account_id", "health_score", "health_band").rows()
    [('a', 0.0, 'Critical'), ('b', 50.0, 'At risk'), ('c', 100.0, 'Healthy')]
    """

    components: Sequence[ScorecardComponent]
    measures: Sequence[ScorecardMeasure]
    bands: HealthBands = FIXED_BANDS
    breakpoints_: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    silent_floor_: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    """Per mean read as a ``level`` when silent (:attr:`ScorecardMeasure.silent`): the worst value fitted on."""
    _fitted: bool = field(default=False, init=False, repr=False)

    @classmethod
    def from_playbook(
        cls, playbook: Playbook, features: pl.DataFrame, vocabulary: FeatureVocabulary | None = None
    ) -> HealthScorecard:
        """The playbook's scorecard over the features ``features`` has values of (not yet fitted).

        A measure whose feature has no value for any row of ``features`` says nothing and is left
        out (its component's other measures share its weight); so is ARR when no row has a non-zero
        ARR: a book without ARR (consumers) gets no ARR measure. The means and trends of the
        ``[signal_roles]`` usage signals read an account that went silent on the signal as no use
        (:attr:`ScorecardMeasure.silent`, by the signal's kind in ``features``). The bands are the
        playbook's ``band_cutoffs`` when it sets them, else the fixed ones until :meth:`with_bands`
        gives others.

        A ``[signal_roles]`` member reads the columns ``vocabulary`` gives its name: pass the one
        ``features`` was computed with, as two names that sanitise alike (``Gym Visits`` and
        ``gym_visits``) have columns of their own (default: the stem the name gets alone).

        Raises
        ------
        ConfigError
            When no measure is left.
        """
        components, measures = resolve_scorecard(playbook, features.columns, vocabulary)
        empty = _empty_features(features, [m.feature for m in measures])
        if empty:
            kept = [m for m in measures if m.feature not in empty]
            if not kept:
                raise ConfigError(
                    f"no health measure has a value in the book ({', '.join(sorted(empty))} are all missing); "
                    "set [signal_roles] or [health.components] in the playbook to features the book has"
                )
            used = {m.component for m in kept}
            components, measures = [c for c in components if c.id in used], kept
        measures = _usage_silence(playbook, measures, features, vocabulary)
        if vocabulary is not None:
            words = vocabulary.signal_words()
            measures = [
                replace(m, signal_name=words[stem]) if (stem := _signal_stem(m.feature)) in words else m
                for m in measures
            ]
        cutoffs = playbook.health.band_cutoffs
        bands = FIXED_BANDS if cutoffs is None else HealthBands(cutoffs[0], cutoffs[1], "playbook")
        return cls(components, measures, bands)

    def fit(self, features: pl.DataFrame) -> Self:
        """Learn each rank-scaled measure's reference values (sorted) from ``features``."""
        if not self.components or not self.measures:
            raise ConfigError("a HealthScorecard needs at least one component and one measure")
        known = {c.id for c in self.components}
        for m in self.measures:
            if m.component not in known:
                raise ConfigError(f"measure {m.feature!r} names component {m.component!r}, which is not defined")
            if m.feature not in features.columns:
                raise ConfigError(f"health measure {m.feature!r} is not a column of the features")
        self.breakpoints_, self.silent_floor_ = {}, {}
        values = self.measure_values(features)  # silent levels stay missing here: they have no floor yet
        for m in self.measures:
            seen = values.get_column(m.feature).drop_nulls().to_numpy().astype(float)
            if m.scale == "rank":
                self.breakpoints_[m.feature] = np.sort(seen)
            window = _signal_window(m.feature)
            if m.silent == "level" and window is not None and window[1] == "mean" and seen.size:
                self.silent_floor_[m.feature] = float(seen.min() if m.direction == "higher" else seen.max())
        self._fitted = True
        return self

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError("this HealthScorecard is not fitted yet: call fit(features) first")

    def measure_values(self, features: pl.DataFrame) -> pl.DataFrame:
        """Each measure's value per account, as scored.

        A window sum of no event is 0 (:func:`measure_value_expr`); a usage mean or trend of an
        account that went silent on its signal reads as :attr:`ScorecardMeasure.silent` says (a
        level's worst value once fitted).
        """
        first = {m.feature: m for m in reversed(self.measures)}
        exprs = []
        for feature in dict.fromkeys(m.feature for m in self.measures):
            value = measure_value_expr(feature, features.columns)
            fill = self._silent_value(first[feature], features.columns)
            exprs.append(value if fill is None else value.fill_null(fill).alias(feature))
        return features.select("account_id", *exprs)

    def _silent_value(self, m: ScorecardMeasure, columns: Sequence[str]) -> pl.Expr | None:
        """What ``m`` reads for an account that went silent on its signal (null elsewhere); None if nothing."""
        window = _signal_window(m.feature)
        if m.silent is None or window is None:
            return None
        stem, stat, days = window
        state = _signal_state_expr(stem, days, columns)
        if state is None:
            return None
        silent = state == _SILENT
        if m.silent == "count" and stat == "mean":
            return pl.when(silent).then(pl.lit(0.0))
        if m.silent == "count" and stat == "trend" and f"{stem}_days_since_last" in columns:
            # From the window before's mean to none at all: −100 %. Silent for both windows, no change is told.
            return pl.when(silent & (pl.col(f"{stem}_days_since_last") <= 2 * days)).then(pl.lit(-1.0))
        if m.silent == "level" and stat == "mean" and m.feature in self.silent_floor_:
            return pl.when(silent).then(pl.lit(self.silent_floor_[m.feature]))
        return None

    def measure_scores(self, features: pl.DataFrame) -> pl.DataFrame:
        """Each measure scaled to 0–100 (100 = healthiest); null where its value is missing."""
        self._check_fitted()
        values = self.measure_values(features)
        out: dict[str, pl.Series] = {"account_id": features.get_column("account_id")}
        for m in self.measures:
            x = values.get_column(m.feature).to_numpy().astype(float)
            out[m.feature] = pl.Series(m.feature, self._scale(m, x), nan_to_null=True)
        return pl.DataFrame(out)

    def _scale(self, m: ScorecardMeasure, x: np.ndarray) -> np.ndarray:
        missing = np.isnan(x)
        if m.scale == "linear":
            assert m.low is not None
            assert m.high is not None
            s = np.clip((x - m.low) / (m.high - m.low), 0.0, 1.0)
        else:
            ref = self.breakpoints_.get(m.feature, np.array([]))
            if ref.size == 0 or ref[0] == ref[-1]:
                # A constant (or empty) measure says nothing about health: neutral, not extreme.
                s = np.full_like(x, 0.5)
            else:
                # (mid-rank − 1) / (n − 1) among the n reference values: lowest 0, highest 1, ties
                # share their mean rank; a value between two reference values sits halfway.
                lo = np.searchsorted(ref, np.nan_to_num(x), side="left")
                hi = np.searchsorted(ref, np.nan_to_num(x), side="right")
                s = np.clip(((lo + hi) / 2.0 - 0.5) / (ref.size - 1), 0.0, 1.0)
        if m.direction == "lower":
            s = 1.0 - s
        s = 100.0 * s
        s[missing] = np.nan
        return s

    def score(self, features: pl.DataFrame) -> pl.DataFrame:
        """Score, band and component breakdown per account.

        Returns columns ``account_id``, ``health_score`` (0–100, one decimal), ``health_band``,
        and ``health_<component>`` (0–100 or null when all its measures are missing). A component
        whose measures are all missing drops out and the others are re-weighted.
        """
        ms = self.measure_scores(features)
        comp_cols: list[pl.Series] = []
        total = np.zeros(features.height)
        weight_sum = np.zeros(features.height)
        for comp in self.components:
            items = [m for m in self.measures if m.component == comp.id]
            mat = np.column_stack([ms.get_column(m.feature).to_numpy().astype(float) for m in items])
            w = np.array([m.weight for m in items], dtype=float)
            present = ~np.isnan(mat)
            wsum = (present * w).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                value = np.where(wsum > 0, np.nansum(np.nan_to_num(mat) * w, axis=1) / wsum, np.nan)
            comp_cols.append(pl.Series(f"health_{comp.id}", np.round(value, 1), nan_to_null=True))
            has = ~np.isnan(value)
            total += np.where(has, value * comp.weight, 0.0)
            weight_sum += np.where(has, comp.weight, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.where(weight_sum > 0, total / weight_sum, np.nan)
        frame = pl.DataFrame(
            [
                features.get_column("account_id"),
                pl.Series("health_score", np.round(score, 1), nan_to_null=True),
                *comp_cols,
            ]
        )
        return frame.with_columns(health_band=band_expr(pl.col("health_score"), self.bands)).select(
            "account_id", "health_score", "health_band", *[c.name for c in comp_cols]
        )

    def contributions(self, features: pl.DataFrame) -> pl.DataFrame:
        """Points each measure adds to each account's score; an account's points add up to its score.

        The weights are the account's own: a missing measure gets null points and its component's
        other measures share its weight; a missing component's weight goes to the other components,
        as in :meth:`score`.
        """
        scores, weights = self.scores_and_weights(features)
        points = scores * weights
        cols: list[pl.Series] = [features.get_column("account_id")]
        cols.extend(pl.Series(m.feature, points[:, j], nan_to_null=True) for j, m in enumerate(self.measures))
        return pl.DataFrame(cols)

    def scores_and_weights(self, features: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Each measure's score (0–100) per account and its weight in the account's score, in :attr:`measures` order.

        An account's weights add up to 1 over its present measures (a missing measure's weight goes
        to its component's other measures, a missing component's to the other components); both
        are NaN where the measure is missing. Score times weight is :meth:`contributions`.
        """
        ms = self.measure_scores(features)
        mat = np.column_stack([ms.get_column(m.feature).to_numpy().astype(float) for m in self.measures])
        present = ~np.isnan(mat)
        w = np.array([m.weight for m in self.measures], dtype=float)
        share = np.full(mat.shape, np.nan)
        comp_weight_sum = np.zeros(features.height)
        for comp in self.components:
            idx = [j for j, m in enumerate(self.measures) if m.component == comp.id]
            wsum = (present[:, idx] * w[idx]).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                share[:, idx] = np.where(present[:, idx], w[idx] / wsum[:, None], np.nan) * comp.weight
            comp_weight_sum += np.where(wsum > 0, comp.weight, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            weights = share / comp_weight_sum[:, None]
        return mat, weights

    def with_measure_weights(self, weights: Mapping[str, float]) -> HealthScorecard:
        """A copy whose measures carry ``weights`` (feature → weight) and components the sums of them.

        Used by the optimizer to turn learned weights into a readable scorecard. Measures with
        weight 0 are dropped, components with no measure left too.
        """
        measures = [replace(m, weight=float(weights.get(m.feature, 0.0))) for m in self.measures]
        measures = [m for m in measures if m.weight > 0]
        components = []
        for c in self.components:
            total = sum(m.weight for m in measures if m.component == c.id)
            if total > 0:
                components.append(replace(c, weight=total))
        scale = 100.0 / sum(c.weight for c in components) if components else 1.0
        components = [replace(c, weight=c.weight * scale) for c in components]
        return self._copy(HealthScorecard(components, measures, self.bands))

    def playbook_lines(self) -> str:
        """The ``[health.components]`` tables of a playbook that score as this card does.

        One table per component, its measures as inline tables with their weights (a direction,
        label or scaling only where it is not the default). A playbook with these lines in place of
        its own ``[health.components]`` (or its ``default_weights``, which explicit components
        replace) gives the same scores on the same book: its ``[signal_roles]`` still say how a
        silent usage signal reads.

        Examples
        --------
        >>> card = HealthScorecard(
        ...     [ScorecardComponent("usage", "Product usage", 70.0), ScorecardComponent("support", "support", 30.0)],
        ...     [ScorecardMeasure("usage", "logins_mean_28d", weight=70.0),
        ...      ScorecardMeasure("support", "tickets_sum_28d", "lower", weight=30.0)],
        ... )
        >>> print(card.playbook_lines())
        [health.components.usage]
        name = "Product usage"
        weight = 70.0
        measures = [
          { feature = "logins_mean_28d", weight = 70.0 },
        ]
        <BLANKLINE>
        [health.components.support]
        weight = 30.0
        measures = [
          { feature = "tickets_sum_28d", direction = "lower", weight = 30.0 },
        ]
        """
        blocks = []
        for c in self.components:
            lines = [f"[health.components.{c.id}]"]
            if c.name != c.id:
                lines.append(f"name = {toml_string(c.name)}")
            lines += [f"weight = {_toml_number(c.weight)}", "measures = ["]
            for m in self.measures:
                if m.component != c.id:
                    continue
                fields = [f"feature = {toml_string(m.feature)}"]
                if m.direction != "higher":
                    fields.append(f"direction = {toml_string(m.direction)}")
                if m.label:
                    fields.append(f"label = {toml_string(m.label)}")
                if m.scale != "rank":
                    fields.append(f"scale = {toml_string(m.scale)}")
                fields += [f"{k} = {_toml_number(v)}" for k, v in (("low", m.low), ("high", m.high)) if v is not None]
                fields.append(f"weight = {_toml_number(m.weight)}")
                lines.append(f"  {{ {', '.join(fields)} }},")
            lines.append("]")
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    def with_bands(self, bands: HealthBands) -> HealthScorecard:
        """A copy that bands its scores by ``bands`` (same measures, weights and fitted scaling)."""
        return self._copy(HealthScorecard(self.components, self.measures, bands))

    def _copy(self, card: HealthScorecard) -> HealthScorecard:
        card.breakpoints_ = dict(self.breakpoints_)
        card.silent_floor_ = dict(self.silent_floor_)
        card._fitted = self._fitted
        return card


def _toml_number(value: float) -> str:
    """A float as TOML reads it, to 9 significant digits: a sum of tenths reads ``26.2``, not ``26.199999999999996``.

    Examples
    --------
    >>> _toml_number(25.9 + 0.3), _toml_number(70), _toml_number(0.000123456789)
    ('26.2', '70.0', '0.000123456789')
    """
    return repr(float(f"{float(value):.9g}"))


SILENT_MIN_ROWS = 2
"""A usage signal's silence reads as no use when its typical account (the median of those with a row there) has
at least this many rows in the measure's window: an empty window is then unusual, not the gap between two
monthly readings."""


def _usage_silence(
    playbook: Playbook,
    measures: Sequence[ScorecardMeasure],
    features: pl.DataFrame,
    vocabulary: FeatureVocabulary | None = None,
) -> list[ScorecardMeasure]:
    """``measures`` with :attr:`ScorecardMeasure.silent` set on the means and trends of the usage signals.

    A usage signal that stops is a customer who stopped using the product, as far as the book can
    tell: its mean and trend are null then, and left missing the usage component dropped out and
    the other components took its weight. The signal's kind (declared, else from ``features``) says
    what no use reads as. A signal too sparse for an empty window to say anything
    (:data:`SILENT_MIN_ROWS`) is left as it was.
    """
    stem = (vocabulary if vocabulary is not None else FeatureVocabulary()).signal_stem
    usage = {stem(name) for name in playbook.signal_roles.usage}
    if not usage:
        return list(measures)
    declared = declared_signal_kinds(playbook, vocabulary)
    kinds = signal_kinds(features, declared)
    out = []
    for m in measures:
        window = _signal_window(m.feature)
        if window is not None and window[0] in usage and window[1] in ("mean", "trend") and window[0] in kinds:
            count = pl.col(f"{window[0]}_count_{window[2]}d")
            typical = features.select(count.filter(count > 0).median()).item()
            if typical is not None and typical >= SILENT_MIN_ROWS:
                m = replace(m, silent=kinds[window[0]], silent_declared=window[0] in declared)
        out.append(m)
    return out


def _empty_features(features: pl.DataFrame, names: Sequence[str]) -> set[str]:
    """Those of ``names`` with no value in ``features``; ``arr`` also when no value is non-zero (no ARR)."""
    wanted = list(dict.fromkeys(names))
    if not wanted or features.height == 0:
        return set()
    values = features.select([measure_value_expr(f, features.columns) for f in wanted])
    counts = values.select(pl.all().is_not_null().sum()).row(0, named=True)
    empty = {f for f, n in counts.items() if n == 0}
    if "arr" in wanted and "arr" not in empty and not values.select((pl.col("arr").fill_null(0.0) != 0).any()).item():
        empty.add("arr")
    return empty


def silent_usage_note(card: HealthScorecard, features: pl.DataFrame) -> str | None:
    """A note saying how many accounts went silent on a usage signal and how the score reads them (None if none).

    Silent: rows of the signal before the window of a usage measure, none in it
    (:attr:`ScorecardMeasure.silent`). Such an account reads as no use, where it used to drop the
    measure and give its weight to the others.
    """
    by_kind: dict[str, list[str]] = {}
    undeclared: list[str] = []
    silent = pl.lit(False)
    for m in card.measures:
        window = _signal_window(m.feature)
        state = None if window is None else _signal_state_expr(window[0], window[2], features.columns)
        if m.silent is None or window is None or state is None:
            continue
        silent = silent | (state == _SILENT).fill_null(False)
        words = window[0].replace("_", " ")
        if words not in by_kind.setdefault(m.silent, []):
            by_kind[m.silent].append(words)
            if not m.silent_declared:
                undeclared.append(words)
    if not by_kind:
        return None
    n = int(features.select(silent.sum()).item())
    if n == 0:
        return None
    reads = []
    if "count" in by_kind:
        reads.append(f"{_and(by_kind['count'])} as none (a mean of 0, a trend of −100%)")
    if "level" in by_kind:
        # Why each is a level: the playbook says so, or its rows come at regular intervals.
        said = [w for w in by_kind["level"] if w not in undeclared]
        seen = [w for w in by_kind["level"] if w in undeclared]
        levels = [f"{_and(said)}, declared a level"] if said else []
        levels += [f"{_and(seen)}, read at regular intervals (a level)"] if seen else []
        reads.append(f"{' and '.join(levels)}, as the lowest value of the scored accounts, with no trend")
    choose = (
        f"; declare {_and(undeclared)} in [signal_kinds] count or level to choose (docs/models.md)"
        if undeclared
        else " (docs/models.md)"
    )
    return (
        f"{plural(n, 'scored account')} went silent on a usage signal (rows of it before its window, none in it): the "
        f"health score reads that as no use, {'; '.join(reads)}{choose}"
    )


def _and(words: Sequence[str]) -> str:
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else list(words))


TREND_NOISE_SHARE = 0.5
"""A trend that calls more than this share of the accounts improving or declining gets a note on its stable_points."""


def trend_noise_note(trend: pl.DataFrame, stable_points: float, weeks: int) -> str | None:
    """A note when ``stable_points`` is small against the spread of the score's changes (None otherwise).

    ``trend`` is :func:`health_trend`'s output. The spread is the robust standard deviation (1.4826 ×
    the median absolute deviation) of the changes across accounts: real changes widen it too, but a
    change well within it cannot be told from the score's usual fluctuation over ``weeks`` weeks. The
    note suggests ``stable_points`` at twice that spread when more than :data:`TREND_NOISE_SHARE` of
    the accounts are called improving or declining.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> trend = health_trend(
    ...     pl.DataFrame({"account_id": list(range(500)), "health_score": 50 + rng.normal(0, 9, 500)}),
    ...     pl.DataFrame({"account_id": list(range(500)), "health_score": [50.0] * 500}),
    ...     weeks=6,
    ... )
    >>> note = trend_noise_note(trend, 3.0, 6)
    >>> note[:58], note[note.index("set stable"):]
    ('the trend calls 76% of the accounts improving or declining', 'set stable_points = 19 (twice it; docs/models.md)')
    >>> trend_noise_note(trend, 19.0, 6) is None
    True
    """
    change = trend.get_column("health_change").drop_nulls().to_numpy().astype(float)
    if change.size < 30:
        return None
    labelled = float((np.abs(change) >= stable_points).mean())
    spread = 1.4826 * float(np.median(np.abs(change - np.median(change))))
    if labelled <= TREND_NOISE_SHARE or 2 * spread <= stable_points:
        return None
    return (
        f"the trend calls {labelled:.0%} of the accounts improving or declining by [health] stable_points = "
        f"{stable_points:g}, but the score's {weeks}-week changes spread by {spread:.1f} points across the accounts "
        f"(robust standard deviation): many labels may be fluctuation, not real change. To label only changes "
        f"beyond that spread, set stable_points = {2 * spread:.0f} (twice it; docs/models.md)"
    )


def band_expr(score: pl.Expr, bands: HealthBands = FIXED_BANDS) -> pl.Expr:
    """The band of a 0–100 score by ``bands`` (default Critical 0–30, At risk 31–70, Healthy 71–100), rounded first."""
    rounded = score.round(0)
    return (
        pl.when(score.is_null())
        .then(None)
        .when(rounded <= bands.critical_max)
        .then(pl.lit(BANDS[0][0]))
        .when(rounded <= bands.at_risk_max)
        .then(pl.lit(BANDS[1][0]))
        .otherwise(pl.lit(BANDS[2][0]))
        .alias("health_band")
    )


def health_trend(now: pl.DataFrame, before: pl.DataFrame, *, weeks: int, stable_points: float = 3.0) -> pl.DataFrame:
    """Trend of each account's score: improving / stable / declining, with the change in points.

    ``now`` and ``before`` are outputs of :meth:`HealthScorecard.score` at two times. A change of at
    least ``stable_points`` is labelled, whether or not it exceeds the score's usual fluctuation:
    :func:`trend_noise_note` says when most labels may be noise and suggests a threshold.
    """
    joined = now.select("account_id", "health_score").join(
        before.select("account_id", pl.col("health_score").alias("_before")), on="account_id", how="left"
    )
    change = (pl.col("health_score") - pl.col("_before")).round(1)
    return joined.select(
        "account_id",
        change.alias("health_change"),
        pl.when(change.is_null())
        .then(pl.lit("new"))
        .when(change >= stable_points)
        .then(pl.lit("improving"))
        .when(change <= -stable_points)
        .then(pl.lit("declining"))
        .otherwise(pl.lit("stable"))
        .alias("health_trend"),
        pl.lit(weeks).alias("health_trend_weeks"),
    )


def top_movers(
    card: HealthScorecard,
    now: pl.DataFrame,
    before: pl.DataFrame,
    *,
    weeks: int,
    n: int = 3,
) -> dict[str, list[Mover]]:
    """The ``n`` measures whose change moved each account's score most, in plain words.

    E.g. ``"active users (28-day average) −38% over 6 weeks: −9.0 points"``. A measure present at
    both times is credited with its own change of score, at its mean weight of the two times. When
    measures come or go (a missing one's weight moves to the others, :meth:`HealthScorecard.score`),
    the points that moves, the others' re-weighting included, go to the measures that came or went,
    in proportion to the weight each moved; a measure that did not change gets none of them. A
    signal that went silent or came back in a measure's window, making it missing or read as no use
    (:attr:`ScorecardMeasure.silent`), is one mover for all such measures of it there:
    ``"no watch hours in the last 28 days (28-day average was 12.3): −8.0 points"``. The
    movers' points add up to the change of the score (for the ``n`` largest, up to the rest).
    """
    before = now.select("account_id").join(before, on="account_id", how="left")
    s_now, w_now = card.scores_and_weights(now)
    s_before, w_before = card.scores_and_weights(before)
    has_now, has_before = ~np.isnan(s_now), ~np.isnan(s_before)
    # An account without a score at either time has no movers.
    scored = has_now.any(axis=1) & has_before.any(axis=1)
    both = has_now & has_before
    with np.errstate(invalid="ignore"):
        own = np.where(both, (s_now - s_before) * (w_now + w_before) / 2.0, 0.0)
        change = np.nansum(s_now * w_now, axis=1) - np.nansum(s_before * w_before, axis=1)
    moved = np.where(has_now & ~has_before, w_now, np.where(has_before & ~has_now, w_before, 0.0))
    moved_sum = moved.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        came_or_went = np.where(
            moved_sum[:, None] > 0, (change - own.sum(axis=1))[:, None] * moved / moved_sum[:, None], 0.0
        )
    d_points = np.where(scored[:, None], own + came_or_went, 0.0)

    feats = [m.feature for m in card.measures]
    v_now, v_before = card.measure_values(now), card.measure_values(before)
    raw_now = np.column_stack([v_now.get_column(f).to_numpy().astype(float) for f in feats])
    raw_before = np.column_stack([v_before.get_column(f).to_numpy().astype(float) for f in feats])
    signals = [None if w is None else (w[0], w[2]) for w in (_signal_window(f) for f in feats)]
    state_now, state_before = _signal_states(now, signals), _signal_states(before, signals)
    # The measures of a signal that went silent in their window, or came back, move as one when that made
    # them missing or read as no use; an event total that fell to 0 reads as its two values.
    turned = np.zeros(d_points.shape, dtype=bool)
    for j, sig in enumerate(signals):
        if sig is not None and sig in state_now:
            reads = card.measures[j].silent is not None or moved[:, j] > 0
            turned[:, j] = (state_now[sig] != state_before[sig]) & reads
    order = np.argsort(-np.abs(d_points), axis=1)[:, :n]
    ids = now.get_column("account_id").to_list()
    result: dict[str, list[Mover]] = {}
    for i, account in enumerate(ids):
        groups: list[list[int]] = [[int(j)] for j in order[i]]
        if turned[i].any():
            keyed: dict[object, list[int]] = {}
            for j, sig in enumerate(signals):
                keyed.setdefault(sig if turned[i, j] else feats[j], []).append(j)
            groups = sorted(keyed.values(), key=lambda js: -abs(float(d_points[i, js].sum())))[:n]
        movers = []
        for js in groups:
            pts = float(d_points[i, js].sum())
            if abs(pts) < 0.05:
                continue
            # A signal's mover quotes its level: its mean, else its total.
            lead = min(js, key=lambda j: _LEAD_ORDER.get((_signal_window(feats[j]) or ("", "", 0))[1], 9))
            sig = signals[lead]
            text = None
            if turned[i, lead] and sig is not None:
                states = (int(state_before[sig][i]), int(state_now[sig][i]))
                text = _turn_text(card.measures[lead], sig, states, (raw_before[i, lead], raw_now[i, lead]), pts)
            if text is None:
                text = _mover_text(card.measures[lead].text, raw_before[i, lead], raw_now[i, lead], pts, weeks)
            movers.append(Mover(account, feats[lead], text, pts))
        result[account] = movers
    return result


_LEAD_ORDER = {"mean": 0, "sum": 1}


def _signal_states(frame: pl.DataFrame, signals: Sequence[tuple[str, int] | None]) -> dict[tuple[str, int], np.ndarray]:
    """Each ``(stem, window_days)``'s state per account (:data:`_SILENT` …), for those the features tell."""
    exprs = {}
    for sig in dict.fromkeys(s for s in signals if s is not None):
        expr = _signal_state_expr(sig[0], sig[1], frame.columns)
        if expr is not None:
            exprs[sig] = expr.alias(f"{sig[0]}_{sig[1]}d")
    if not exprs:
        return {}
    states = frame.select(*exprs.values())
    return {sig: states.get_column(expr.meta.output_name()).to_numpy() for sig, expr in exprs.items()}


def _turn_text(
    measure: ScorecardMeasure,
    signal: tuple[str, int],
    states: tuple[int, int],
    values: tuple[float, float],
    points: float,
) -> str | None:
    """A mover of a signal that went silent in its window or came back, e.g. ``no logins in the last 28 days (…)``.

    ``states`` are the signal's states (:data:`_SILENT` …) before and now, ``values`` the ``measure``'s
    values then; None for a turn with no words (a signal no longer seen at all).
    """
    stem, days = signal
    window = _signal_window(measure.feature)
    words = measure.label or measure.signal_name or stem.replace("_", " ")
    stat = "" if measure.label or window is None else f"{days}-day {_WORDS[window[1]]} "
    (was, now), (before, after) = states, values
    if now == _SILENT:
        quoted = "" if was != _ACTIVE or np.isnan(before) else f" ({stat}was {before:.3g})"
        change = f"no {words} in the last {days} days{quoted}"
    elif now == _ACTIVE:
        quoted = "" if np.isnan(after) else f" ({stat or 'now '}{after:.3g})"
        change = (f"{words} again in the last {days} days after none" if was == _SILENT else f"first {words}") + quoted
    else:
        return None
    return f"{change}: {'−' if points < 0 else '+'}{abs(points):.1f} points"


_MAX_PERCENT_CHANGE = 500.0
"""A mover's change reads as a percentage up to this; beyond it (or across 0) as ``before → now``."""


def _mover_text(label: str, before: float, now: float, points: float, weeks: int) -> str:
    sign = "−" if points < 0 else "+"
    if np.isnan(before) or np.isnan(now):
        change = "newly missing" if np.isnan(now) else "newly seen"
    elif before > 1e-9 and now >= 0 and abs(now - before) <= _MAX_PERCENT_CHANGE / 100 * before:
        # A share of a level that keeps its sign; a trend through 0 or a many-fold change reads as before → now.
        pct = (now - before) / before * 100
        change = f"{'−' if pct < 0 else '+'}{abs(pct):.0f}% over {weeks} weeks"
    else:
        change = f"{before:.3g} → {now:.3g} over {weeks} weeks"
    return f"{label} {change}: {sign}{abs(points):.1f} points"
