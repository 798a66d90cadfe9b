"""Completion of a run's recommendations: which recommended plays were done, dismissed or snoozed in its horizon.

Lift compares the cohorts as they were randomised (intention to treat): a recommendation nobody
acted on counts as much as one that was done. Completion says how many were done: per arm and per
recommended action, how many recommendations were **done** (the book holds a touch of that action
for the account in the window, or the store a ``done`` feedback event for it), else **dismissed**,
else **snoozed** (feedback), else **neither**; the completion rate (done over recommended) and the
median days from the decision to the first time it was done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from nextmove.book import NO_ACTION, of_dates, table_reach

__all__ = [
    "COMPLETION_STATES",
    "FEEDBACK_COLUMNS",
    "RECOMMENDED_COHORT",
    "Completion",
    "CompletionCount",
    "measure_completion",
]

COMPLETION_STATES: tuple[str, ...] = ("done", "dismissed", "snoozed", "neither")
"""What became of a recommendation, in the order that decides it: one done and dismissed is done."""

RECOMMENDED_COHORT = "recommended"
"""The ``arm`` of :attr:`Completion.recommended`: the treated arms together, as lift's recommended cohort."""

FEEDBACK_COLUMNS: dict[str, Any] = {
    "account_id": pl.String,
    "action_id": pl.String,
    "kind": pl.String,
    "ts": pl.Datetime("us", "UTC"),
}
"""The feedback :func:`measure_completion` reads: one row per ``done``, ``dismissed`` or ``snoozed`` event, with
the action it is about (null: a snooze of the whole account) and when it happened
(:func:`nextmove.engine.holds.completion_feedback` reads them out of a store)."""

_DAY_S = 86_400


@dataclass(frozen=True)
class CompletionCount:
    """What became of the recommended plays of one arm (and one action), each recommendation counted once.

    ``done + dismissed + snoozed + neither == recommended``: a recommendation both done and
    dismissed is done, one dismissed and snoozed is dismissed.
    """

    arm: str
    """The arm (``model``, ``explore``, ``control`` …), or ``recommended`` for the treated arms together."""
    action_id: str | None
    """The recommended action; None: every action of the arm."""
    recommended: int
    """Recommendations of a play (an action other than ``none``) to accounts lift measures."""
    done: int
    """Of those, the ones done in the window: a touch of the action in the book, or a ``done`` event."""
    done_in_book: int
    """Of the done ones, those the book's touches hold (the rest only feedback reported)."""
    dismissed: int
    """Not done, and a ``dismissed`` event of the action (or of the decision or run that named it)."""
    snoozed: int
    """Neither done nor dismissed, and a ``snoozed`` event of the action or of the whole account."""
    neither: int
    """Nothing known of them: no touch, no feedback."""
    completion_rate: float | None
    """``done / recommended`` (None when nothing was recommended)."""
    median_days_to_done: float | None
    """Median days from the decision (``as_of``) to the first time each done one was done (None: none done)."""


@dataclass(frozen=True)
class Completion:
    """Completion of the measured recommendations of a run (:func:`measure_completion`)."""

    window_start: datetime
    """The run's decision time: touches and feedback from then count."""
    window_end: datetime
    """The end of the horizon, or how far the data is known when that is earlier (a partial lift): up to, not at."""
    feedback_read: bool
    """Whether the store's feedback was read (False: the touches of the book alone say what was done)."""
    recommended: CompletionCount
    """The recommended cohort (the treated arms together), every action."""
    control: CompletionCount
    """The control cohort, every action (what the lifecycle default gave it)."""
    arms: list[CompletionCount] = field(default_factory=list)
    """Per arm: its total (``action_id`` None), then each action recommended in it."""
    no_play: dict[str, int] = field(default_factory=dict)
    """Per arm, measured recommendations of ``none``: no play to do, so not counted."""
    notes: list[str] = field(default_factory=list)
    """What may make the counts low: the book holds no touch after the decision time."""


_EMPTY_FEEDBACK = pl.DataFrame(schema=FEEDBACK_COLUMNS)


def measure_completion(
    recommendations: pl.DataFrame,
    touches: pl.DataFrame,
    feedback: pl.DataFrame | None,
    *,
    start: datetime,
    end: datetime,
    treated_arms: Sequence[str],
    control_arm: str,
) -> Completion:
    """Count, per arm and recommended action, the recommendations done, dismissed, snoozed or neither in a window.

    A recommendation (one per account) is **done** when the book's ``touches`` hold a row of its
    action for its account in the window (every row is a touch done, whatever its ``status``: that
    column is free text) or ``feedback`` a ``done`` event of its action for its account; else
    **dismissed** when ``feedback`` holds a ``dismissed`` event of its action; else **snoozed** when
    it holds a ``snoozed`` event of its action or of the whole account (``action_id`` null); else
    **neither**. When the touches are dates (:func:`~nextmove.book.of_dates`), a touch on the day of
    ``start`` counts. Recommendations of ``none`` are no play: counted apart (``no_play``). When the
    touches reach no later than ``start``, a note says only feedback can say what was done.

    Parameters
    ----------
    recommendations
        The measured recommendations: ``account_id, action_id, arm``, one row per account.
    touches
        The book's touches: ``account_id, action_id, ts``.
    feedback
        Feedback events (:data:`FEEDBACK_COLUMNS`), or None when no store was read.
    start, end
        The window: the run's decision time, and the end of its horizon (or how far the data is known).
    treated_arms, control_arm
        The arms of the recommended cohort and of the control cohort.

    Examples
    --------
    >>> from datetime import UTC, timedelta
    >>> t0 = datetime(2025, 1, 1, tzinfo=UTC)
    >>> recs = pl.DataFrame({"account_id": ["a", "b", "c"], "action_id": ["call", "call", "none"],
    ...                      "arm": ["model", "model", "control"]})
    >>> touches = pl.DataFrame({"account_id": ["a"], "action_id": ["call"], "ts": [t0 + timedelta(days=3)]})
    >>> c = measure_completion(recs, touches, None, start=t0, end=t0 + timedelta(days=30),
    ...                        treated_arms=["model"], control_arm="control")
    >>> c.recommended.recommended, c.recommended.done, c.recommended.completion_rate, c.recommended.median_days_to_done
    (2, 1, 0.5, 3.0)
    >>> c.no_play
    {'control': 1}
    """
    recs = recommendations.select(
        pl.col("account_id").cast(pl.String), pl.col("action_id").cast(pl.String), pl.col("arm").cast(pl.String)
    )
    no_play = {
        str(arm): int(n)
        for arm, n in recs.filter(pl.col("action_id") == NO_ACTION).group_by("arm").len().sort("arm").iter_rows()
    }
    plays = recs.filter(pl.col("action_id") != NO_ACTION)
    keys = ["account_id", "action_id"]
    touched = _touched(touches, start, end).join(plays.select(keys), on=keys, how="semi")
    events = _events(feedback, start, end).join(plays.select("account_id"), on="account_id", how="semi")
    # A snooze of the whole account snoozes whatever was recommended to it.
    whole = events.filter(pl.col("action_id").is_null()).drop("action_id")
    named = pl.concat(
        [
            events.filter(pl.col("action_id").is_not_null()),
            whole.join(plays.select(keys), on="account_id").select(events.columns),
        ]
    )
    firsts = [
        touched.group_by(keys).agg(pl.col("ts").min().alias("_touch_ts")),
        *(
            named.filter(pl.col("kind") == kind).group_by(keys).agg(pl.col("ts").min().alias(f"_{kind}_ts"))
            for kind in ("done", "dismissed", "snoozed")
        ),
    ]
    rows = plays
    for first in firsts:
        rows = rows.join(first, on=keys, how="left")
    done_ts = pl.min_horizontal("_touch_ts", "_done_ts")
    state = (
        pl.when(done_ts.is_not_null())
        .then(pl.lit("done"))
        .when(pl.col("_dismissed_ts").is_not_null())
        .then(pl.lit("dismissed"))
        .when(pl.col("_snoozed_ts").is_not_null())
        .then(pl.lit("snoozed"))
        .otherwise(pl.lit("neither"))
    )
    days = ((done_ts - pl.lit(start, dtype=pl.Datetime("us", "UTC"))).dt.total_microseconds() / 1e6 / _DAY_S).clip(
        lower_bound=0.0
    )
    rows = rows.select(
        "arm",
        "action_id",
        state.alias("state"),
        pl.col("_touch_ts").is_not_null().alias("in_book"),
        days.alias("days"),
    )
    treated = list(treated_arms)
    arms: list[CompletionCount] = []
    for arm in sorted(set(rows.get_column("arm").to_list())):
        part = rows.filter(pl.col("arm") == arm)
        arms.append(_count(part, arm, None))
        for action in sorted(set(part.get_column("action_id").to_list())):
            arms.append(_count(part.filter(pl.col("action_id") == action), arm, action))
    return Completion(
        window_start=start,
        window_end=end,
        feedback_read=feedback is not None,
        recommended=_count(rows.filter(pl.col("arm").is_in(treated)), RECOMMENDED_COHORT, None),
        control=_count(rows.filter(pl.col("arm") == control_arm), control_arm, None),
        arms=arms,
        no_play=no_play,
        notes=_notes(touches, feedback is not None, start),
    )


def _notes(touches: pl.DataFrame, feedback_read: bool, start: datetime) -> list[str]:
    reach = table_reach(touches) if "ts" in touches.columns else None
    if reach is not None and reach > start:
        return []
    known = "only the store's done feedback says" if feedback_read else "nothing says"
    return [
        f"the book holds no touch after the run's decision time ({start:%Y-%m-%d}): {known} which recommended plays "
        "were done, so completion may read low; add the touches done since to the book's touches table"
    ]


def _count(rows: pl.DataFrame, arm: str, action_id: str | None) -> CompletionCount:
    states = rows.get_column("state")
    n = {s: int((states == s).sum()) for s in COMPLETION_STATES}
    done = rows.filter(pl.col("state") == "done")
    median = done.get_column("days").median() if done.height else None
    return CompletionCount(
        arm=arm,
        action_id=action_id,
        recommended=rows.height,
        done=n["done"],
        done_in_book=int(done.get_column("in_book").sum()),
        dismissed=n["dismissed"],
        snoozed=n["snoozed"],
        neither=n["neither"],
        completion_rate=n["done"] / rows.height if rows.height else None,
        median_days_to_done=None if median is None else float(median),  # type: ignore[arg-type]
    )


def _touched(touches: pl.DataFrame, start: datetime, end: datetime) -> pl.DataFrame:
    """The touches in ``[start, end)``: ``account_id, action_id, ts``; a table of dates counts ``start``'s day."""
    schema: dict[str, pl.DataType] = {
        "account_id": pl.String(),
        "action_id": pl.String(),
        "ts": pl.Datetime("us", "UTC"),
    }
    if touches.height == 0 or not {"account_id", "action_id", "ts"} <= set(touches.columns):
        return pl.DataFrame(schema=schema)
    frame = touches.select(
        pl.col("account_id").cast(pl.String),
        pl.col("action_id").cast(pl.String),
        pl.col("ts").cast(pl.Datetime("us", "UTC")),
    ).drop_nulls()
    first = start
    if of_dates(touches):
        # A date stands for its whole day: one on the decision's own day is a play of the window.
        frame = frame.with_columns(pl.col("ts").dt.truncate("1d"))
        first = start.replace(hour=0, minute=0, second=0, microsecond=0)
    return frame.filter((pl.col("ts") >= first) & (pl.col("ts") < end))


def _events(feedback: pl.DataFrame | None, start: datetime, end: datetime) -> pl.DataFrame:
    """The feedback events in ``[start, end)`` that say something of a play (``done`` of no action says nothing)."""
    if feedback is None or feedback.height == 0:
        return _EMPTY_FEEDBACK
    frame = feedback.select(
        pl.col("account_id").cast(pl.String),
        pl.col("action_id").cast(pl.String),
        pl.col("kind").cast(pl.String),
        pl.col("ts").cast(pl.Datetime("us", "UTC")),
    )
    return frame.filter(
        (pl.col("ts") >= start)
        & (pl.col("ts") < end)
        & pl.col("kind").is_in(["done", "dismissed", "snoozed"])
        & (pl.col("action_id").is_not_null() | (pl.col("kind") == "snoozed"))
        & (pl.col("action_id").fill_null("") != NO_ACTION)
    )
