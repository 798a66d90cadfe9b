"""Training sets: snapshots at many past decision times, with the touch taken and the outcomes that followed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

import polars as pl

from nextmove.book import (
    NO_ACTION,
    Book,
    are_dates,
    as_of_of_reach,
    empty_table,
    gone_at,
    gone_at_lazy,
    of_dates,
    reach_of,
    table_reach,
    terminal_outcome_kinds,
)
from nextmove.book.notes import book_spans, outcomes_lag
from nextmove.errors import ConfigError
from nextmove.features.history import (
    ACCOUNT_ID,
    DECISION_TS,
    TS_DTYPE,
    US_PER_DAY,
    point_in_time,
    resolve_as_of,
    to_utc,
)
from nextmove.features.names import (
    DEFAULT_WINDOWS_DAYS,
    LABEL_PREFIX,
    TRAINING_DECISION_COLUMNS,
    FeatureVocabulary,
)
from nextmove.features.signals import aggregate_signals_at
from nextmove.features.snapshot import snapshot
from nextmove.playbook import Playbook

ROWS_PER_BATCH = 8_000_000
"""Rows joined to decision times per batch (signal rows, or only touches and outcomes when the signals
come from running totals): bounds memory when snapshots are many."""

_KEYS = [ACCOUNT_ID, DECISION_TS]

TOUCH_CREDIT_FLOOR = 0.25
"""``attribution="auto"`` labels a kind by window when the rows of no action keep less than this share of
what the touched rows keep of their windows' events under attribution by touch, or the touched rows less
than this share of what the rows of no action keep (:class:`WindowFallback`)."""

TOUCH_CREDIT_MIN_EVENTS = 10
"""...and only when at least this many rows of the side that keeps too little have an event of the kind in
their window: with fewer, one event more or less moves the share too much to tell a CRM's crediting from
chance."""


@dataclass(frozen=True)
class WindowFallback:
    """A kind ``attribution="auto"`` labels by window although its outcomes name touches, and why.

    Attributed by touch, a row of no action (a logged ``none`` decision, an untouched date) gets only
    the outcomes credited to its own ``touch_id``. A CRM that credits every outcome to the last real
    touch, and never to a decision to do nothing, leaves those rows with (almost) none of the kind,
    and doing nothing then looks churn-free to every model learned from them (``side="none"``). A CRM
    that names a touch on only a few of a kind's outcomes (a churn now and then linked to the QBR it
    followed), while the untouched dates keep their windows, leaves the touched rows with almost none:
    every action then looks like a cure (``side="touched"``).
    """

    kind: str
    horizon_days: int
    rows: int
    """Rows of no action (``action_id`` ``none``)."""
    by_window: int
    """Of them, those with an outcome of the kind in their window (what window labels give them)."""
    by_touch: int
    """Of them, those with one under attribution by touch."""
    touched_share: float
    """The share of their windows' events the touched rows keep under attribution by touch (1 when none had one)."""
    side: Literal["none", "touched"] = "none"
    """Which rows keep too little by touch: the decisions to do nothing, or the decisions with a touch."""
    touched_by_window: int = 0
    """Decisions with a touch followed by the kind within the horizon (``side="touched"``)."""
    touched_by_touch: int = 0
    """Of them, those credited with it (``side="touched"``)."""
    named: int = 0
    """Outcomes of the kind that name a touch (``side="touched"``)."""
    outcomes: int = 0
    """Outcomes of the kind (``side="touched"``)."""
    logged_none: bool = True
    """Whether the log holds decisions to do nothing (``none``) with a touch id, or only untouched dates."""

    def note(self) -> str:
        """The note a run, ``nextmove validate`` and the training set's caller show."""
        kind = self.kind
        if self.side == "touched":
            none_share = self.by_touch / self.by_window if self.by_window else 1.0
            said = (
                f"{kind} is labelled by its window, not by outcomes.touch_id: {self.touched_by_window:,} decisions "
                f"with a touch were followed by {kind} within {self.horizon_days} days, and only "
                f"{self.touched_by_touch:,} of them are credited with it"
            )
            if self.outcomes and self.named < self.outcomes / 2:
                # The CRM names the touch on a few outcomes only: the rest followed no logged decision.
                return (
                    f"{said} ({self.named:,} of the {self.outcomes:,} {kind} outcomes name a touch; the decisions "
                    f"to do nothing keep {none_share:.0%} of theirs): by touch, every action would look like it "
                    f"changes {kind} far more than it does. To learn from the credits, credit each {kind} to the "
                    "decision it followed; else nothing to do (docs/features.md, Attribution)"
                )
            if not self.logged_none:
                # Credits reach the touches, but the decisions to do nothing are untouched dates, which keep
                # their whole windows while a touch loses what later touches are credited with.
                return (
                    f"{said}, mostly to later touches, while the dates without a touch keep every {kind} in their "
                    f"windows: by touch, every action would look like it changes {kind} far more than it does. To "
                    "learn from the credits, log the decisions to do nothing (action none, with a touch_id) and "
                    "credit outcomes to them as to touches; else nothing to do (docs/features.md, Attribution)"
                )
            return (
                f"{said} (the decisions to do nothing keep {none_share:.0%} of theirs): by touch, every action "
                f"would look like it changes {kind} far more than it does. To learn from the credits, credit each "
                f"{kind} to the decision it followed; else nothing to do (docs/features.md, Attribution)"
            )
        return (
            f"{kind} is labelled by its window, not by outcomes.touch_id: {self.by_window:,} of the {self.rows:,} "
            f"decisions to do nothing (logged none, untouched dates) were followed by {kind} within "
            f"{self.horizon_days} days, and {self.by_touch:,} of them are credited with it (decisions with a touch "
            f"keep {self.touched_share:.0%} of theirs): by touch, doing nothing would look free of {kind}. To learn "
            f"from the credits, credit each {kind} to the decision it followed, a logged none included; else "
            "nothing to do (docs/features.md, Attribution)"
        )


def build_training_set(
    book: Book,
    playbook: Playbook,
    *,
    decision_times: Iterable[datetime | date] | None = None,
    every_days: int | None = None,
    horizon_days: int | None = None,
    attribution: Literal["auto", "window", "touch"] = "auto",
    untouched_rows: bool | None = None,
    as_of: datetime | date | None = None,
    windows_days: Sequence[int] | None = None,
    decisions_from: datetime | date | None = None,
    whole_days: bool | None = None,
    notes: list[str] | None = None,
    outcomes_until: datetime | date | None = None,
) -> pl.DataFrame:
    """Snapshots at past decision times, each with the touch taken and the outcomes that followed.

    Rows are of two sorts:

    - one per logged touch (``none`` included), at the start of the touch's UTC day
      (``logged`` is True; ``action_id``, ``propensity``, ``arm``, ``touch_id`` are the touch's);
    - one per account and regular date the account was not touched in
      ``[date, date + every_days)`` (``logged`` False, ``action_id`` ``none``, the rest null).

    Regular dates run every ``every_days`` from the first day with data (plus ``every_days``),
    or are ``decision_times``. An account gets regular rows only from the day it exists (the
    earlier of ``contract_start`` and its first row in any table), and no row of either sort
    while it is gone (:func:`~nextmove.book.gone_at`): at or after an outcome of a terminal kind
    (the outcome of every objective that ends accounts, by default those with ``sense = "avoid"``
    and ``value = "arr"``, e.g. churn), until its latest start (``contract_start``,
    ``customer_since``) if that comes after it: a customer won back has rows again from its new
    start, and its churn is still the outcome of the decisions before it.

    When the outcomes are dates (nearly every one at a UTC midnight, :func:`~nextmove.book.of_dates`), each
    stands for its whole day, and a decision is taken at the start of its day: the day's outcomes
    follow it. There a decision's window is ``[decision_ts, decision_ts + horizon)`` (the decision's
    day and the ``horizon - 1`` after it) and a terminal outcome ends the account after the
    decisions of its day, so an outcome on the day of a touch is that touch's label, not lost
    between two windows (``whole_days``).

    Features are those of :func:`~nextmove.features.compute_features` at ``decision_ts``,
    with one vocabulary (the names seen up to ``as_of`` plus the playbook's) for all rows.
    Labels, for every outcome kind of the playbook's objectives or the book:
    ``y_{kind}`` (Int8: 1 if the kind happened in ``(decision_ts, decision_ts + horizon]``)
    and ``y_{kind}_value`` (sum of its ``value`` there, 0 if none). ``censored`` is True when
    ``decision_ts + horizon`` is after ``as_of`` or, if earlier, after the outcomes table's end
    (:func:`outcomes_seen_until`, or ``outcomes_until``; the labels count what was seen by then), and
    ``observed_days`` is how much of the horizon was seen (0 for a decision after the outcomes' end).

    Parameters
    ----------
    book
        The book of business.
    playbook
        Gives the horizon, the regular spacing (``contact_policy.window_days``), the teams,
        the objectives' outcome kinds and the terminal kinds.
    decision_times
        Regular dates to use instead of the ``every_days`` grid.
    every_days
        Spacing of the regular dates (default: the playbook's ``contact_policy.window_days``).
    horizon_days
        Label horizon (default: the playbook's ``horizon_days``).
    untouched_rows
        Add the untouched regular dates as ``none`` rows. Default (None): only when the touch log
        has no logged ``none`` decision. A log that records its do-nothing decisions (a control
        arm, the old playbook's "leave alone") is complete, and inventing more ``none`` rows at
        dates nobody decided anything would dilute the do-nothing outcomes.
    attribution
        ``window``: a row's labels count every outcome in its horizon. ``touch``: a touch row's
        labels count only the outcomes whose ``touch_id`` names that touch (still within the
        horizon); rows without a touch keep window labels. When decisions are logged often
        (every two weeks, say) horizons overlap, and only attribution by ``touch_id`` gives
        each decision the outcomes it caused. ``auto``: ``touch`` when outcomes carry touch ids, except
        for a kind the touches are credited with but the rows of no action (almost) never are
        (:class:`WindowFallback`): that kind is labelled by window.
    as_of
        What is known: rows after it are ignored (default: :func:`~nextmove.book.default_as_of`,
        ``book.as_of`` if the book was given one, else how far its data reaches, rounded up to a UTC
        midnight). Decision times are before it.
    windows_days
        Windows of the signal features (default ``(7, 28, 90)``).
    decisions_from
        Keep only the decisions at or after this time (default: all). Their features still read
        the history before it; the rows are those of the whole set from that time on, built
        without the earlier ones (a large book's time and memory).
    whole_days
        Read every outcome as a whole day, as above (default: when the book's outcomes are dates).
    notes
        When given, a note is appended for every kind ``auto`` labels by window although its
        outcomes name touches (:meth:`WindowFallback.note`).
    outcomes_until
        How far the outcomes are known complete (default: :func:`outcomes_seen_until`, the outcomes
        table's reach, or ``as_of`` if earlier). Give it when none happened between the last one and
        that time (a book generated with its outcomes complete); it is capped at ``as_of``.

    Returns
    -------
    polars.DataFrame
        ``account_id, decision_ts, logged, action_id, touch_id, arm, propensity``, the
        features, the labels, ``censored``, ``observed_days``; sorted by decision time.

    Raises
    ------
    ConfigError
        If a count of days is not a positive whole number, or ``as_of`` cannot be told.
    """
    horizon = _positive_days(playbook.horizon_days if horizon_days is None else horizon_days, "horizon_days")
    every = _positive_days(playbook.contact_policy.window_days if every_days is None else every_days, "every_days")
    end = resolve_as_of(book, as_of)
    days = of_dates(book.outcomes) if whole_days is None else whole_days
    known = _known_by(book, end)

    vocab = _vocabulary(known, playbook, windows_days)

    grid = None if decision_times is None else [to_utc(t, what="decision_times") for t in decision_times]
    if untouched_rows is None:
        untouched_rows = decision_times is not None or not known.touches.get_column("action_id").eq(NO_ACTION).any()
    rows = decision_rows(
        known, playbook, end=end, every_days=every, decision_times=grid, untouched=untouched_rows, whole_days=days
    )
    if decisions_from is not None:
        rows = rows.filter(pl.col(DECISION_TS) >= to_utc(decisions_from, what="decisions_from"))
    keys = rows.select(_KEYS).unique(maintain_order=True)
    features = _features_at(known, keys, vocab)
    known_until = None if outcomes_until is None else min(end, to_utc(outcomes_until, what="outcomes_until"))
    labels = _labels(known, keys, vocab, horizon_days=horizon, end=end, whole_days=days, seen_until=known_until)
    # Features and labels come in the order of ``keys``, the decisions' distinct (account, time) in
    # order of appearance: each decision takes its key's row by position. Joining the wide features
    # on the keys instead built hash tables and copies worth several times the set (a large book's
    # peak memory); when every decision has its own key nothing is copied at all.
    features, labels = (_in_order_of(frame, keys) for frame in (features, labels))
    per_key = features.hstack(labels.drop(_KEYS).get_columns())
    del features, labels
    values = per_key.drop(_KEYS)
    if rows.height != keys.height:
        position = keys.with_row_index("_key").select(*_KEYS, "_key")
        values = values[rows.join(position, on=_KEYS, how="left", maintain_order="left").get_column("_key")]
    result = rows.hstack(values.get_columns())
    del per_key, values
    if attribution not in ("auto", "window", "touch"):
        raise ConfigError(f"attribution must be 'auto', 'window' or 'touch', got {attribution!r}")
    by_touch = attribution == "touch" or (
        attribution == "auto"
        and "touch_id" in known.outcomes.columns
        and known.outcomes.get_column("touch_id").is_not_null().any()
    )
    if by_touch:
        result, fallbacks = _attribute_to_touches(
            result, known, vocab, horizon_days=horizon, end=end, whole_days=days, check=attribution == "auto"
        )
        if notes is not None:
            notes.extend(f.note() for f in fallbacks)
    return result


def window_fallbacks(
    book: Book,
    playbook: Playbook,
    *,
    as_of: datetime | date | None = None,
    horizon_days: int | None = None,
) -> list[WindowFallback]:
    """The kinds :func:`build_training_set` (``attribution="auto"``) labels by window although they name touches.

    The same rows and labels as the training set, without its features: a book's touches and
    outcomes are enough (``nextmove validate`` asks before any training set is built). A log with no
    logged ``none`` decision gets untouched rows, which keep window labels (their whole share).

    Raises
    ------
    ConfigError
        If ``horizon_days`` is not a positive whole number, or ``as_of`` cannot be told.
    """
    return window_fallbacks_lazy(
        book.accounts.lazy(),
        book.touches.lazy(),
        book.outcomes,
        playbook,
        as_of=resolve_as_of(book, as_of),
        horizon_days=horizon_days,
    )


def window_fallbacks_lazy(
    accounts: pl.LazyFrame,
    touches: pl.LazyFrame,
    outcomes: pl.DataFrame,
    playbook: Playbook,
    *,
    as_of: datetime | date | None = None,
    horizon_days: int | None = None,
) -> list[WindowFallback]:
    """:func:`window_fallbacks` of a book whose accounts and touches are unread (its files scanned).

    The statistics are counted, not listed: the decisions (the logged touches, often millions) are
    read in two aggregating passes, one counting them per account and day (a window label depends
    on nothing else), the other keeping only those of the touches an outcome names; no frame of
    every decision with its labels is built. Without ``as_of``, the book of these touches and
    outcomes is read as of how far they reach, as :func:`~nextmove.book.default_as_of` reads it.

    Raises
    ------
    ConfigError
        If ``horizon_days`` is not a positive whole number, or ``as_of`` cannot be told.
    """
    horizon = _positive_days(playbook.horizon_days if horizon_days is None else horizon_days, "horizon_days")
    end = to_utc(as_of) if as_of is not None else _default_end(touches, outcomes)
    known = outcomes.filter(pl.col("ts") <= end)
    if "touch_id" not in known.columns or not known.get_column("touch_id").is_not_null().any():
        return []
    # The kinds attributed by touch: those an outcome credits to a touch, in the vocabulary's order.
    named = known.filter(pl.col("touch_id").is_not_null()).get_column("kind").drop_nulls().unique()
    credited = sorted(str(k) for k in named.to_list())
    totals = known.group_by("kind").agg(pl.len().alias("n"), pl.col("touch_id").is_not_null().sum().alias("named"))
    named_counts = {str(k): (int(m), int(n)) for k, n, m in totals.select("kind", "n", "named").iter_rows()}
    rows, logged, per_kind = _credit_counts(accounts, touches, known, playbook, credited, horizon=horizon, end=end)
    return _fallbacks_from_counts(rows, logged, per_kind, horizon, named_counts)


def _default_end(touches: pl.LazyFrame, outcomes: pl.DataFrame) -> datetime:
    """:func:`resolve_as_of` without ``as_of`` of a book of these touches (unread) and outcomes, without signals."""
    ts = pl.col("ts").cast(TS_DTYPE)
    found = touches.select(
        ts.max().alias("latest"),
        ts.is_not_null().sum().alias("stamped"),
        (ts == ts.dt.truncate("1d")).sum().alias("midnights"),
    ).collect(engine="streaming")
    latest, stamped, midnights = found.row(0)
    reach = [r for r in (table_reach(outcomes),) if r is not None]
    if isinstance(latest, datetime):
        reach.append(reach_of(latest, dates=are_dates(int(midnights), int(stamped))))
    if not reach:  # no dated rows: resolve_as_of says what to do
        return resolve_as_of(
            Book(empty_table("accounts"), empty_table("signals"), empty_table("touches"), empty_table("outcomes")), None
        )
    return as_of_of_reach(max(reach))


def _credit_counts(
    accounts: pl.LazyFrame,
    touches: pl.LazyFrame,
    outcomes: pl.DataFrame,
    playbook: Playbook,
    credited: list[str],
    *,
    horizon: int,
    end: datetime,
) -> tuple[int, int, dict[str, tuple[int, ...]]]:
    """The counts :func:`_window_fallbacks` takes from a training set, from aggregates of the touches.

    The decisions are those of :func:`decision_rows` without untouched dates: the logged touches of
    known accounts dated before ``end``, while the account is not gone. A decision's window label
    depends on its account and day alone, so they are counted per account and day, and each day's
    labels found from the next outcome of each kind; its label by touch depends on its touch alone,
    and only the touches an outcome names have one. ``outcomes`` are the book's up to ``end``.

    Returns the decisions to do nothing, those of them with a touch id, and per credited kind: the
    decisions to do nothing with an outcome of the kind in their window, those with one by touch,
    and the same two of the decisions with a touch.
    """
    if not credited:
        return 0, 0, {}
    days = of_dates(outcomes)
    none = pl.col("action_id").eq(NO_ACTION)
    has_touch = pl.col("touch_id").is_not_null()
    touched = ~none & has_touch
    tid = (
        pl.col("touch_id").cast(pl.String)
        if "touch_id" in touches.collect_schema()
        else pl.lit(None, dtype=pl.String).alias("touch_id")
    )
    decisions = (
        touches.filter(pl.col("ts") <= end)
        .select(
            pl.col(ACCOUNT_ID).cast(pl.String),
            pl.col("ts").cast(TS_DTYPE).dt.truncate("1d").alias(DECISION_TS),
            pl.col("action_id").cast(pl.String),
            tid,
        )
        .filter(pl.col(DECISION_TS) < end)
        .join(accounts.select(pl.col(ACCOUNT_ID).cast(pl.String)), on=ACCOUNT_ID, how="semi")
    )
    credits = outcomes.filter(has_touch & pl.col("kind").is_in(credited)).select(
        pl.col("touch_id").cast(pl.String), pl.col("ts").cast(TS_DTYPE), "kind"
    )
    per_day_query = decisions.group_by(_KEYS).agg(
        none.sum().alias("_none"), (none & ~has_touch).sum().alias("_free"), touched.sum().alias("_touched")
    )
    per_touch_query = decisions.filter(pl.col("touch_id").is_in(credits.get_column("touch_id").unique().implode()))
    # Two passes over the touches, not one cached copy of them (as in validation).
    per_day, per_touch = pl.collect_all(
        [per_day_query, per_touch_query],
        engine="streaming",
        optimizations=pl.QueryOptFlags(comm_subplan_elim=False),
    )
    terminal = terminal_outcome_kinds(playbook)

    def alive(frame: pl.DataFrame) -> pl.DataFrame:
        marked = gone_at_lazy(accounts, outcomes.lazy(), terminal, frame.lazy(), whole_days=days)
        return marked.filter(~pl.col("gone")).drop("gone", "ended_ts").collect()

    per_day = alive(per_day).sort(DECISION_TS)
    per_touch = (
        alive(per_touch)
        .group_by("touch_id")
        .agg(pl.col(DECISION_TS).min(), none.sum().alias("_none"), touched.sum().alias("_touched"))
    )
    # A decision's window labels (`_labels`): the first outcome of the kind after it, within the horizon
    # and what the outcomes table has seen.
    seen = outcomes_seen_until(
        Book(empty_table("accounts"), empty_table("signals"), empty_table("touches"), outcomes), end, whole_days=days
    )
    seen_end = _window_end(timedelta(days=horizon), seen)
    # Its label by touch (`_attribute_to_touches`): an outcome crediting its touch, from its day on.
    own = (
        credits.join(per_touch.select("touch_id", DECISION_TS), on="touch_id")
        .filter((pl.col("ts") >= pl.col(DECISION_TS)) & _until(_window_end(timedelta(days=horizon), end), days))
        .group_by("touch_id")
        .agg(pl.col("kind").eq(k).any().alias(f"_own{i}") for i, k in enumerate(credited))
    )
    per_touch = per_touch.join(own, on="touch_id", how="left")
    rows, free = int(per_day.get_column("_none").sum()), int(per_day.get_column("_free").sum())
    per_kind: dict[str, tuple[int, ...]] = {}
    for i, kind in enumerate(credited):
        following = (
            outcomes.filter(pl.col("kind").eq(kind) & pl.col(ACCOUNT_ID).is_not_null() & pl.col("ts").is_not_null())
            .select(pl.col(ACCOUNT_ID).cast(pl.String), pl.col("ts").cast(TS_DTYPE).alias("_next"))
            .sort("_next")
        )
        window = per_day.join_asof(
            following,
            left_on=DECISION_TS,
            right_on="_next",
            by=ACCOUNT_ID,
            strategy="forward",
            allow_exact_matches=days,
            check_sortedness=False,
        ).select(
            "_none",
            "_free",
            "_touched",
            (pl.col("_next") < seen_end if days else pl.col("_next") <= seen_end).fill_null(False).alias("_in"),
        )
        sums = window.select(pl.col(c).filter("_in").sum() for c in ("_none", "_free", "_touched")).row(0)
        by_touch = per_touch.select(
            pl.col(c).filter(pl.col(f"_own{i}").fill_null(False)).sum() for c in ("_none", "_touched")
        ).row(0)
        none_window, free_window, touched_window = (int(v) for v in sums)
        per_kind[kind] = (none_window, int(by_touch[0]) + free_window, touched_window, int(by_touch[1]))
    return rows, rows - free, per_kind


def training_vocabulary(
    book: Book,
    playbook: Playbook,
    *,
    as_of: datetime | date | None = None,
    windows_days: Sequence[int] | None = None,
) -> FeatureVocabulary:
    """The vocabulary :func:`build_training_set` uses with the same ``as_of`` and ``windows_days``.

    Models fitted on that training set take it to find the columns of a name (an objective's
    label, an action's touch columns) by the name itself: :meth:`FeatureVocabulary.outcome_stem`.

    Raises
    ------
    ConfigError
        If ``as_of`` cannot be told or a window is not a positive whole number of days.
    """
    return _vocabulary(_known_by(book, resolve_as_of(book, as_of)), playbook, windows_days)


def _vocabulary(known: Book, playbook: Playbook, windows_days: Sequence[int] | None) -> FeatureVocabulary:
    """The names seen in ``known`` (a book cut at the training set's end) plus the playbook's."""
    names = pl.collect_all(
        [
            known.signals.lazy().select(pl.col("name").unique()),
            known.touches.lazy().select(pl.col("action_id").unique()),
            known.outcomes.lazy().select(pl.col("kind").unique()),
        ]
    )
    return FeatureVocabulary.build(
        accounts_schema=known.accounts.schema,
        signal_names=names[0].get_column("name").drop_nulls().to_list(),
        action_ids=names[1].get_column("action_id").drop_nulls().to_list(),
        outcome_kinds=names[2].get_column("kind").drop_nulls().to_list(),
        playbook=playbook,
        windows_days=DEFAULT_WINDOWS_DAYS if windows_days is None else windows_days,
    )


def _in_order_of(frame: pl.DataFrame, keys: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (one row per key) in the order of ``keys``: as it is when made from them, else reordered."""
    if frame.select(_KEYS).equals(keys):
        return frame
    return keys.join(frame, on=_KEYS, how="left", maintain_order="left")


def _attribute_to_touches(
    result: pl.DataFrame,
    book: Book,
    vocab: FeatureVocabulary,
    *,
    horizon_days: int,
    end: datetime,
    whole_days: bool = False,
    check: bool = False,
) -> tuple[pl.DataFrame, list[WindowFallback]]:
    """Replace the labels of touch rows by the outcomes attributed to their touch (within the horizon).

    A kind of outcome that never names a touch (churn in a CRM that credits only expansions to calls)
    cannot be attributed: its outcomes count for every touch row whose window holds them, as window
    labels would, instead of for no row at all. A kind that names touches at least once is attributed
    by touch alone: its outcomes without a touch id followed no logged decision.

    With ``check`` (``attribution="auto"``), a kind whose rows of no action would keep far fewer of
    their windows' events than the touched rows keep of theirs stays labelled by window, and is
    returned (:class:`WindowFallback`).
    """
    horizon = timedelta(days=horizon_days)
    # A touch's own outcomes count from its day (outcomes earlier that day included), up to the
    # window's end as the window labels' (`_labels`).
    touch_ts = result.filter(pl.col("touch_id").is_not_null()).select("touch_id", DECISION_TS).unique("touch_id")
    outcomes = (
        book.outcomes.lazy()
        .filter(pl.col("touch_id").is_not_null())
        .select("touch_id", "ts", "kind", _column(book.outcomes, "value", pl.Float64))
        .join(touch_ts.lazy(), on="touch_id")
        .filter((pl.col("ts") >= pl.col(DECISION_TS)) & _until(_window_end(horizon, end), whole_days))
    )
    exprs: list[pl.Expr] = []
    names: list[str] = []
    for kind, stem in vocab.outcome_kinds.items():
        is_kind = pl.col("kind").eq(kind)
        exprs += [
            is_kind.any().cast(pl.Int8).alias(f"{LABEL_PREFIX}{stem}"),
            pl.when(is_kind).then(pl.col("value")).sum().alias(f"{LABEL_PREFIX}{stem}_value"),
        ]
        names += [f"{LABEL_PREFIX}{stem}", f"{LABEL_PREFIX}{stem}_value"]
    if not names:
        return result, []
    attributed = outcomes.group_by("touch_id").agg(exprs).collect()
    joined = result.join(attributed, on="touch_id", how="left", suffix="__touch", maintain_order="left")
    has_touch = pl.col("touch_id").is_not_null()
    # A kind that never names a touch keeps the window labels the rows already hold.
    named = set(book.outcomes.filter(pl.col("touch_id").is_not_null()).get_column("kind").unique().to_list())
    credited = {kind: stem for kind, stem in vocab.outcome_kinds.items() if kind in named}
    totals = book.outcomes.group_by("kind").agg(
        pl.len().alias("n"), pl.col("touch_id").is_not_null().sum().alias("named")
    )
    named_counts = {str(k): (int(m), int(n)) for k, n, m in totals.select("kind", "n", "named").iter_rows()}
    fallbacks = _window_fallbacks(joined, credited, horizon_days, named_counts) if check else []
    credited = {kind: stem for kind, stem in credited.items() if kind not in {f.kind for f in fallbacks}}
    by_touch = {n for stem in credited.values() for n in (f"{LABEL_PREFIX}{stem}", f"{LABEL_PREFIX}{stem}_value")}
    labelled = joined.with_columns(
        pl.when(has_touch).then(pl.col(f"{n}__touch").fill_null(0)).otherwise(pl.col(n)).cast(joined.schema[n]).alias(n)
        for n in names
        if n in by_touch
    ).drop(f"{n}__touch" for n in names)
    return labelled, fallbacks


def _window_fallbacks(
    joined: pl.DataFrame,
    credited: dict[str, str],
    horizon_days: int,
    named_counts: dict[str, tuple[int, int]] | None = None,
) -> list[WindowFallback]:
    """The credited kinds whose rows of no action keep too few of their windows' events by touch.

    ``joined`` holds each row's window label ``y_{stem}`` and its touch's credited one ``y_{stem}__touch``.
    Touched rows (a real action with a touch id) lose some of their windows' events to attribution
    by touch whatever the CRM (an outcome credited to a later touch, or to none); a CRM that credits
    doing nothing as it credits touches takes as much from the rows of no action. A kind falls back
    when those rows keep less than :data:`TOUCH_CREDIT_FLOOR` of the touched rows' share, with at least
    :data:`TOUCH_CREDIT_MIN_EVENTS` of them having an event in their window; or the other way round,
    when the touched rows keep less than that of the share the rows of no action keep (all of it when
    there are none: untouched dates keep their windows).
    """
    if not credited:
        return []
    return _fallbacks_from_counts(*_joined_counts(joined, credited), horizon_days, named_counts)


def _joined_counts(joined: pl.DataFrame, credited: dict[str, str]) -> tuple[int, int, dict[str, tuple[int, ...]]]:
    """What :func:`_fallbacks_from_counts` takes, counted over the rows of a training set (``joined``)."""
    none = pl.col("action_id").eq(NO_ACTION)
    touched = ~none & pl.col("touch_id").is_not_null()
    exprs: list[pl.Expr] = [none.sum().alias("_rows"), (none & pl.col("touch_id").is_not_null()).sum().alias("_logged")]
    for stem in credited.values():
        window = pl.col(f"{LABEL_PREFIX}{stem}") > 0
        own = pl.col(f"{LABEL_PREFIX}{stem}__touch").fill_null(0) > 0
        # Rows without a touch id keep their window labels.
        by_touch = pl.when(pl.col("touch_id").is_not_null()).then(own).otherwise(window)
        exprs += [
            (none & window).sum().alias(f"{stem}:none_window"),
            (none & by_touch).sum().alias(f"{stem}:none_touch"),
            (touched & window).sum().alias(f"{stem}:touched_window"),
            (touched & by_touch).sum().alias(f"{stem}:touched_touch"),
        ]
    counts = joined.select(exprs).row(0, named=True)
    columns = ("none_window", "none_touch", "touched_window", "touched_touch")
    per_kind = {kind: tuple(int(counts[f"{stem}:{c}"]) for c in columns) for kind, stem in credited.items()}
    return int(counts["_rows"]), int(counts["_logged"]), per_kind


def _fallbacks_from_counts(
    rows: int,
    logged: int,
    per_kind: dict[str, tuple[int, ...]],
    horizon_days: int,
    named_counts: dict[str, tuple[int, int]] | None = None,
) -> list[WindowFallback]:
    """The rule of :func:`_window_fallbacks` on its counts.

    ``rows`` decisions to do nothing, ``logged`` of them with a touch id; per credited kind (in
    order): of the decisions to do nothing, those with an outcome of the kind in their window and
    those with one by touch, then the same two of the decisions with a touch.
    """
    fallbacks = []
    for kind, (none_window, none_touch, touched_window, touched_touch) in per_kind.items():
        share = touched_touch / touched_window if touched_window else 1.0
        none_share = none_touch / none_window if none_window else 1.0
        if none_window >= TOUCH_CREDIT_MIN_EVENTS and none_touch < TOUCH_CREDIT_FLOOR * share * none_window:
            fallbacks.append(WindowFallback(kind, horizon_days, rows, none_window, none_touch, share))
        elif (
            touched_window >= TOUCH_CREDIT_MIN_EVENTS
            and touched_touch < TOUCH_CREDIT_FLOOR * none_share * touched_window
        ):
            fallbacks.append(
                WindowFallback(
                    kind,
                    horizon_days,
                    rows,
                    none_window,
                    none_touch,
                    share,
                    side="touched",
                    touched_by_window=touched_window,
                    touched_by_touch=touched_touch,
                    named=(named_counts or {}).get(kind, (0, 0))[0],
                    outcomes=(named_counts or {}).get(kind, (0, 0))[1],
                    logged_none=logged > 0,
                )
            )
    return fallbacks


def _window_end(horizon: timedelta, end: datetime) -> pl.Expr:
    """The end of a decision's outcome window: ``horizon`` after it, or ``end`` if that is earlier."""
    return pl.min_horizontal(pl.col(DECISION_TS) + horizon, pl.lit(end, dtype=TS_DTYPE))


def _until(window_end: pl.Expr, whole_days: bool) -> pl.Expr:
    """An outcome's ``ts`` within the window's end: up to it, or before it when outcomes are dates."""
    return pl.col("ts") < window_end if whole_days else pl.col("ts") <= window_end


def in_label_window(ts: pl.Expr, decision_ts: pl.Expr, window_end: pl.Expr, *, whole_days: bool) -> pl.Expr:
    """Whether an outcome at ``ts`` is in the label window of a decision at ``decision_ts``.

    The window of :func:`build_training_set`: ``(decision_ts, window_end]``, or ``[decision_ts,
    window_end)`` when the outcomes are dates (``whole_days``; :func:`~nextmove.book.of_dates`).
    """
    if whole_days:
        return (ts >= decision_ts) & (ts < window_end)
    return (ts > decision_ts) & (ts <= window_end)


def _positive_days(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{what} must be a positive whole number of days, got {value!r}")
    return value


def _time_bounds(book: Book) -> tuple[datetime, datetime] | None:
    """The earliest and latest ``ts`` over signals, touches and outcomes; None if all are empty."""
    stamps: list[datetime] = []
    for frame in (book.signals, book.touches, book.outcomes):
        for value in (frame.get_column("ts").min(), frame.get_column("ts").max()):
            if isinstance(value, datetime):
                stamps.append(to_utc(value))
    return (min(stamps), max(stamps)) if stamps else None


def _known_by(book: Book, end: datetime) -> Book:
    """The book as known at ``end``: time rows after it are dropped (rows at ``end`` are known)."""

    def cut(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(pl.col("ts") <= end)

    return Book(
        book.accounts,
        cut(book.signals),
        cut(book.touches),
        cut(book.outcomes),
        source=book.source,
        as_of=end,
    )


def decision_rows(
    book: Book,
    playbook: Playbook,
    *,
    end: datetime,
    every_days: int,
    decision_times: Sequence[datetime] | None = None,
    untouched: bool = True,
    whole_days: bool = False,
) -> pl.DataFrame:
    """The decisions of a training set: logged touches and untouched regular dates, as described above."""
    accounts = book.accounts.select(ACCOUNT_ID)
    touches = book.touches.join(accounts, on=ACCOUNT_ID, how="semi")
    logged = touches.select(
        ACCOUNT_ID,
        pl.col("ts").dt.truncate("1d").alias(DECISION_TS),
        pl.lit(True).alias("logged"),
        pl.col("action_id"),
        _column(touches, "touch_id", pl.String),
        _column(touches, "arm", pl.String),
        _column(touches, "propensity", pl.Float64),
        pl.col("ts").alias("_touch_ts"),
    ).filter(pl.col(DECISION_TS) < end)

    if not untouched:
        times: list[datetime] = []
    elif decision_times is None:
        times = _regular_dates(book, end, every_days)
    else:
        times = sorted({t for t in decision_times if t < end})
    grid = accounts.join(pl.DataFrame({DECISION_TS: times}, schema={DECISION_TS: TS_DTYPE}), how="cross")
    grid = _exists_from(book, grid)
    # Untouched then: no touch (a logged "none" included) in [date, date + every_days).
    next_touch = touches.select(ACCOUNT_ID, pl.col("ts").alias("_next_touch")).sort("_next_touch")
    grid = (
        grid.sort(DECISION_TS)
        .join_asof(
            next_touch,
            left_on=DECISION_TS,
            right_on="_next_touch",
            by=ACCOUNT_ID,
            strategy="forward",
            check_sortedness=False,
        )
        .filter(
            pl.col("_next_touch").is_null()
            | (pl.col("_next_touch") >= pl.col(DECISION_TS) + timedelta(days=every_days))
        )
        .select(
            ACCOUNT_ID,
            DECISION_TS,
            pl.lit(False).alias("logged"),
            pl.lit("none", dtype=pl.String).alias("action_id"),
            pl.lit(None, dtype=pl.String).alias("touch_id"),
            pl.lit(None, dtype=pl.String).alias("arm"),
            pl.lit(None, dtype=pl.Float64).alias("propensity"),
            pl.lit(None, dtype=TS_DTYPE).alias("_touch_ts"),
        )
    )
    rows = pl.concat([logged.cast(grid.schema), grid])

    # Gone by a terminal outcome, until a later start (a win-back); one dated a whole day happens
    # during it, after that day's decisions.
    rows = gone_at(book, playbook, rows, whole_days=whole_days).filter(~pl.col("gone"))
    return rows.sort([DECISION_TS, ACCOUNT_ID, "_touch_ts"], nulls_last=True, maintain_order=True).select(
        TRAINING_DECISION_COLUMNS
    )


def _column(frame: pl.DataFrame, name: str, dtype: pl.DataType | type[pl.DataType]) -> pl.Expr:
    """An optional contract column, or typed nulls when a hand-built frame lacks it."""
    return pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype=dtype).alias(name)


def _regular_dates(book: Book, end: datetime, every_days: int) -> list[datetime]:
    bounds = _time_bounds(book)
    if bounds is None:
        return []
    start = bounds[0].replace(hour=0, minute=0, second=0, microsecond=0)
    step = timedelta(days=every_days)
    dates, t = [], start + step
    while t < end:
        dates.append(t)
        t += step
    return dates


def _exists_from(book: Book, grid: pl.DataFrame) -> pl.DataFrame:
    """Drop grid rows before the account existed: the earlier of contract_start and its first row."""
    firsts = (
        pl.concat(
            [f.select(ACCOUNT_ID, pl.col("ts").alias("_first")) for f in (book.signals, book.touches, book.outcomes)]
        )
        .group_by(ACCOUNT_ID)
        .agg(pl.col("_first").min())
    )
    starts = book.accounts.select(
        ACCOUNT_ID,
        pl.col("contract_start").cast(TS_DTYPE).alias("_start")
        if "contract_start" in book.accounts.columns
        else pl.lit(None, dtype=TS_DTYPE).alias("_start"),
    )
    since = starts.join(firsts, on=ACCOUNT_ID, how="left").select(
        ACCOUNT_ID, pl.min_horizontal("_start", "_first").alias("_exists_from")
    )
    return (
        grid.join(since, on=ACCOUNT_ID, how="left")
        .filter(pl.col("_exists_from").is_null() | (pl.col("_exists_from") <= pl.col(DECISION_TS)))
        .drop("_exists_from")
    )


def _features_at(book: Book, keys: pl.DataFrame, vocab: FeatureVocabulary) -> pl.DataFrame:
    """Snapshots at every (account_id, decision_ts) of ``keys``, in batches of bounded size.

    The signal features of every key come from running totals at once
    (:func:`~nextmove.features.signals.aggregate_signals_at`) when the signal values allow it; the
    batches then bound the touches and outcomes joined to decision times, and are sized by them.
    """
    wide = aggregate_signals_at(book.signals, keys, vocab) if vocab.signals and keys.height else None
    joined = (
        book.signals.select(ACCOUNT_ID)
        if wide is None
        else pl.concat([book.touches.select(ACCOUNT_ID), book.outcomes.select(ACCOUNT_ID)])
    )
    sizes = joined.group_by(ACCOUNT_ID).len("_rows")
    sized = keys.join(sizes, on=ACCOUNT_ID, how="left", maintain_order="left").with_columns(
        (pl.col("_rows").fill_null(0) + 1).cum_sum().floordiv(ROWS_PER_BATCH).alias("_batch")
    )
    parts = []
    for part in sized.partition_by("_batch", maintain_order=True):
        batch = part.select(_KEYS)
        parts.append(snapshot(book.accounts, point_in_time(book, batch), vocab, keys=batch, signals_wide=wide))
    if not parts:
        empty = keys.clear()
        return snapshot(book.accounts, point_in_time(book, empty), vocab, keys=empty)
    return pl.concat(parts)


def _labels(
    book: Book,
    keys: pl.DataFrame,
    vocab: FeatureVocabulary,
    *,
    horizon_days: int,
    end: datetime,
    whole_days: bool = False,
    seen_until: datetime | None = None,
) -> pl.DataFrame:
    """``y_{kind}``, ``y_{kind}_value``, ``censored`` and ``observed_days`` for every key.

    The outcomes are seen up to ``seen_until`` if given, else up to ``end`` or, if earlier, to where
    the outcomes table ends (:func:`outcomes_seen_until`): a horizon past that is not over, whatever
    the other tables hold.
    """
    horizon = timedelta(days=horizon_days)
    end = outcomes_seen_until(book, end, whole_days=whole_days) if seen_until is None else seen_until
    window_end = _window_end(horizon, end)
    outcomes = book.outcomes.lazy().select(ACCOUNT_ID, "ts", "kind", _column(book.outcomes, "value", pl.Float64))
    # Labels look forward on purpose: (decision_ts, decision_ts + horizon], as seen by `end`; when the
    # outcomes are dates, [decision day, decision day + horizon), the days seen before `end`.
    window = in_label_window(pl.col("ts"), pl.col(DECISION_TS), window_end, whole_days=whole_days)
    following = keys.lazy().join(outcomes, on=ACCOUNT_ID).filter(window)
    label_exprs: list[pl.Expr] = []
    label_names: list[str] = []
    for kind, stem in vocab.outcome_kinds.items():
        is_kind = pl.col("kind").eq(kind)
        label_exprs += [
            is_kind.any().cast(pl.Int8).alias(f"{LABEL_PREFIX}{stem}"),
            pl.when(is_kind).then(pl.col("value")).sum().alias(f"{LABEL_PREFIX}{stem}_value"),
        ]
        label_names += [f"{LABEL_PREFIX}{stem}", f"{LABEL_PREFIX}{stem}_value"]
    seen = following.group_by(_KEYS).agg(label_exprs).collect() if label_exprs else keys.clear()
    labelled = keys.join(seen, on=_KEYS, how="left", maintain_order="left")
    observed = ((window_end - pl.col(DECISION_TS)).dt.total_microseconds().cast(pl.Float64) / US_PER_DAY).clip(0.0)
    return labelled.select(
        *_KEYS,
        *[pl.col(n).fill_null(0) for n in label_names],
        (pl.col(DECISION_TS) + horizon > end).alias("censored"),
        observed.alias("observed_days"),
    )


def outcomes_seen_until(book: Book, end: datetime, *, whole_days: bool) -> datetime:
    """How far the outcomes of ``book`` (cut at ``end``) are seen: up to ``end`` or, if earlier, where the book's
    data ends; where the outcomes end when they end well before the rest (:func:`~nextmove.book.notes.outcomes_lag`).

    An outcomes export that stops before the rest of the data (a CRM exported a month before the
    product usage), or a decision time after the data's end, leaves the outcomes after it unseen:
    a decision whose horizon runs past it is censored, not one that had no churn. Whether the
    outcomes stopped is the rule of the note run, health and validate give on it (14 days or more
    before the signals and touches, and five spacings of the outcomes' days): a sparse table whose
    last outcome is a few weeks old is how such a book goes, and its decisions since are learned
    from. The outcomes' reach is the latest outcome's time, or the midnight after its day when they
    are dates (``whole_days``); a book without outcomes is seen up to ``end``.

    Examples
    --------
    >>> from datetime import UTC
    >>> from nextmove.book import empty_table
    >>> days = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=d) for d in range(456)]  # to 2025-03-31
    >>> signals = pl.DataFrame({"account_id": "a", "ts": days, "name": "logins", "value": 1.0})
    >>> outcomes = pl.DataFrame({"account_id": "a", "ts": days[1:335:3], "kind": "churn"})  # to 2024-11-30
    >>> book = Book(empty_table("accounts"), signals, empty_table("touches"), outcomes)
    >>> outcomes_seen_until(book, datetime(2025, 4, 1, tzinfo=UTC), whole_days=True).isoformat()
    '2024-12-01T00:00:00+00:00'
    >>> few = pl.DataFrame({"account_id": "a", "ts": [days[d] for d in (10, 100, 130, 250, 300, 420)], "kind": "churn"})
    >>> sparse = Book(empty_table("accounts"), signals, empty_table("touches"), few)  # the last 35 days before
    >>> outcomes_seen_until(sparse, datetime(2025, 4, 1, tzinfo=UTC), whole_days=True).isoformat()
    '2025-04-01T00:00:00+00:00'
    """
    latest = book.outcomes.get_column("ts").max() if book.outcomes.height else None
    if not isinstance(latest, datetime):
        return end
    reach = reach_of(latest, dates=whole_days)
    spans = book_spans(book)
    if outcomes_lag(spans, end) is None:
        # Data that end with the rest are seen to the midnight after the book's data end, as the default as-of
        # reads the book: an export whose last signal is at 20:00 does not leave the last evening's horizons open
        # (a weekly batch of decisions whose horizons end that night was dropped, 11 % of a book's history).
        reach = as_of_of_reach(max([reach, *(s.reach for n, s in spans.items() if s is not None and n != "outcomes")]))
    return min(end, reach)
