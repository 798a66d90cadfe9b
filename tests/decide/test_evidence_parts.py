"""Tests of the evidence building blocks: feature phrases and comparable accounts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextmove.decide.comparables import ComparableFinder
from nextmove.decide.phrases import (
    citable,
    feature_family,
    feature_phrase,
    feature_wording,
    format_fixed,
    format_money,
    format_number,
    format_percent,
    render_phrases,
    wording_table,
)
from nextmove.errors import ConfigError
from nextmove.playbook.money import money_text


def test_feature_phrase_common_features() -> None:
    row = {
        "arr": 48_000.0,
        "tenure_days": 400.0,
        "days_to_renewal": -3.0,
        "tickets_opened_count_28d": 2.0,
        "touch_upsell_call_days_since": 12.4,
        "logins_trend_28d": 0.5,
        "segment": "SMB",
        "nps_last": None,
    }
    assert feature_phrase("arr", row) == "ARR $48,000"
    assert feature_phrase("tenure_days", row) == "customer for 13 months"
    assert feature_phrase("days_to_renewal", row) == "renewal date passed 3 days ago"
    assert feature_phrase("tickets_opened_count_28d", row) == "tickets opened: 2 in 28 days"
    assert feature_phrase("touch_upsell_call_days_since", row) == "last upsell call 12 days ago"
    assert feature_phrase("logins_trend_28d", row) == "logins up 50% over 28 days"
    assert feature_phrase("segment", row) == "segment SMB"
    assert feature_phrase("nps_last", row) is None
    assert feature_phrase("missing_feature", row) is None


def test_comparables_find_nearest_past_decisions_with_the_action() -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    rng = np.random.default_rng(0)
    n = 200
    history = pl.DataFrame(
        {
            "account_id": [f"h{i}" for i in range(n)],
            "decision_ts": [t0 + timedelta(days=i % 30) for i in range(n)],
            "action_id": ["call" if i % 2 else "none" for i in range(n)],
            "arr": rng.uniform(1_000, 100_000, n),
            "days_to_renewal": rng.uniform(0, 365, n),
            "y_churn": (rng.random(n) < 0.2).astype(float),
            "censored": [False] * n,
        }
    )
    finder = ComparableFinder(["arr", "days_to_renewal"], k=3).fit(history, {"call": "y_churn"})
    target = history.filter(pl.col("action_id") == "call").head(1)
    [found] = finder.find(target, "call")
    assert len(found) == 3
    assert found[0].account_id == target.item(0, "account_id")
    assert found[0].distance == 0.0
    assert all(history.filter(pl.col("account_id") == c.account_id).item(0, "action_id") == "call" for c in found)
    assert finder.find(target, "never_taken") == [[]]


def test_feature_phrase_cites_an_earlier_value_or_the_trend() -> None:
    row = {"seat_utilization_mean_28d": 0.41, "seat_utilization_trend_28d": -0.2, "tickets_opened_count_14d": 2.0}
    pct = {"seat_utilization"}
    assert (
        feature_phrase("seat_utilization_mean_28d", row, pct, previous=0.63)
        == "seat utilization 41% on average over 28 days, down from 63%"
    )
    assert (
        feature_phrase("seat_utilization_mean_28d", row, pct)
        == "seat utilization 41% on average over 28 days, down 20% on the 28 days before"
    )
    assert feature_phrase("tickets_opened_count_14d", row, previous=2.0) == "tickets opened: 2 in 14 days, unchanged"
    assert feature_phrase("tickets_opened_count_14d", row, previous=0.0) == "tickets opened: 2 in 14 days, up from 0"
    # A trend's earlier trend is not news.
    assert feature_phrase("seat_utilization_trend_28d", row, previous=0.1) == "seat utilization down 20% over 28 days"


def test_feature_phrase_uses_the_playbook_names() -> None:
    names = {"exec_call": "Executive call", "team_cs": "cs", "churn": "churn", "usage": "usage"}
    row = {
        "touch_exec_call_count_90d": 1.0,
        "touch_team_cs_days_since": 3.0,
        "outcome_churn_count_365d": 2.0,
        "role_usage_trend_28d": -0.12,
        "days_since_last_qbr": 40.0,
        "arr": 1_234_567.0,
    }
    assert feature_phrase("touch_exec_call_count_90d", row, names=names) == "1 Executive call touch in 90 days"
    teams = {"team_cs"}
    assert (
        feature_phrase("touch_team_cs_days_since", row, names=names, teams=teams)
        == "last touch by the cs team 3 days ago"
    )
    assert feature_phrase("outcome_churn_count_365d", row, names=names) == "churn: 2 in 365 days"
    assert feature_phrase("role_usage_trend_28d", row, names=names) == "usage signals down 12% over 28 days"
    assert feature_phrase("days_since_last_qbr", row) == "last qbr 40 days ago"
    assert feature_phrase("arr", row, previous=1_000_000.0) == "ARR $1,234,567, up from $1,000,000"
    # An account column holds one value per account in a book: "unchanged" would say nothing.
    assert feature_phrase("arr", row, previous=1_234_567.0) == "ARR $1,234,567"
    assert feature_phrase("seats", {"seats": 40.0}, previous=40.0) == "seats 40"
    assert feature_phrase("tickets_opened_count_14d", {"tickets_opened_count_14d": 2.0}, previous=2.0).endswith(
        ", unchanged"
    )


def test_a_change_that_reads_0_percent_is_not_said() -> None:
    # "support signals up 0% over 90 days" was cited as a driver: a zero change read as "up".
    for x in (0.0, 0.004, -0.003, 0.005, -0.005):
        assert feature_phrase("crash_count_trend_28d", {"crash_count_trend_28d": x}) is None, x
        assert feature_phrase("role_support_trend_90d", {"role_support_trend_90d": x}) is None, x
    assert feature_phrase("crash_count_trend_28d", {"crash_count_trend_28d": 0.006}) == "crash count up 1% over 28 days"
    assert (
        feature_phrase("crash_count_trend_28d", {"crash_count_trend_28d": -0.2}) == "crash count down 20% over 28 days"
    )
    rows = pl.DataFrame(
        {
            "kind": ["role_trend", "trend", "trend"],
            "words": ["support", "logins", "logins"],
            "window": [90, 28, 28],
            "percent": [False] * 3,
            "value": [0.0, -0.004, 0.3],
            "text": [None] * 3,
            "trend": [None] * 3,
            "previous": [None] * 3,
        }
    )
    assert render_phrases(rows).to_list() == [None, None, "logins up 30% over 28 days"]
    wording = feature_wording("role_support_trend_90d")
    assert citable(wording, np.array([0.0, 0.005, 0.0051, -0.4, np.nan])).tolist() == [False, False, True, True, False]


def test_a_level_signal_reads_as_readings_and_is_never_totalled() -> None:
    levels = {"nps_last", "app_opens_7d"}
    row = {
        "nps_last_count_90d": 2.0,
        "nps_last_count_28d": 1.0,
        "nps_last_sum_90d": 3.0,
        "nps_last_days_since_last": 114.0,
        "app_opens_7d_sum_28d": 428.0,
        "support_tickets_days_since_last": 166.0,
        "support_tickets_sum_28d": 2.0,
        "support_tickets_count_28d": 2.0,
    }
    assert feature_phrase("nps_last_count_90d", row, levels=levels) == "nps last: 2 readings in 90 days"
    assert feature_phrase("nps_last_count_28d", row, levels=levels, previous=0.0) == (
        "nps last: 1 reading in 28 days, up from 0"
    )
    assert feature_phrase("nps_last_days_since_last", row, levels=levels) == "nps last: last reading 114 days ago"
    # A survey score or a rolling 7-day count summed over a window is no quantity: it has no phrase.
    assert feature_phrase("nps_last_sum_90d", row, levels=levels) is None
    assert feature_phrase("app_opens_7d_sum_28d", row, levels=levels) is None
    assert not feature_wording("app_opens_7d_sum_28d", levels=levels).cited
    # Counts keep their totals.
    assert feature_phrase("support_tickets_sum_28d", row, levels=levels) == "support tickets 2 in total over 28 days"
    assert feature_phrase("support_tickets_count_28d", row, levels=levels) == "support tickets: 2 in 28 days"
    assert feature_phrase("support_tickets_days_since_last", row) == "support tickets: last seen 166 days ago"


def test_a_count_signal_is_cited_by_its_total_not_its_mean_per_report() -> None:
    # One lesson in four weekly reports: "lessons done 0.25 on average over 28 days" read as a quantity.
    counts, reports = {"lessons_done", "tickets"}, {"lessons_done"}
    row = {
        "lessons_done_mean_28d": 0.25,
        "lessons_done_sum_28d": 1.0,
        "lessons_done_count_28d": 4.0,
        "tickets_count_28d": 2.0,
        "streak_mean_28d": 0.25,
    }
    assert feature_phrase("lessons_done_mean_28d", row, counts=counts, previous=0.0) is None
    assert not feature_wording("lessons_done_mean_28d", counts=counts).cited
    assert feature_phrase("lessons_done_sum_28d", row, counts=counts, previous=0.0) == (
        "lessons done 1 in total over 28 days, up from 0"
    )
    # Its rows are reports of an amount each, not lessons; a ticket's row is one ticket.
    assert feature_phrase("lessons_done_count_28d", row, counts=counts, reports=reports) == (
        "lessons done: 4 reports in 28 days"
    )
    assert feature_phrase("tickets_count_28d", row, counts=counts, reports=reports) == "tickets: 2 in 28 days"
    # A level keeps its average.
    assert feature_phrase("streak_mean_28d", row, levels={"streak"}, counts=counts) == (
        "streak 0.25 on average over 28 days"
    )


def test_a_latest_value_older_than_its_signal_s_interval_says_its_age() -> None:
    # "nps 10 (latest), unchanged" for an answer 326 days old.
    row = {"nps_last": 10.0, "nps_days_since_last": 326.4, "opens_last": 5.0, "opens_days_since_last": 3.2}
    assert feature_phrase("nps_last", row, previous=10.0) == "nps 10 (latest, 326 days ago), unchanged"
    # Past the signal's usual interval (a daily signal, 3 days without a reading), or 28 days at most.
    assert feature_phrase("opens_last", row, stale_after={"opens": 1.0}) == "opens 5 (latest, 3 days ago)"
    assert feature_phrase("opens_last", row, stale_after={"opens": 7.0}) == "opens 5 (latest)"
    assert feature_phrase("opens_last", row) == "opens 5 (latest)"
    assert feature_phrase("nps_last", {"nps_last": 10.0, "nps_days_since_last": 28.0}) == "nps 10 (latest)"
    assert feature_phrase("nps_last", {"nps_last": 10.0}) == "nps 10 (latest)"  # its age unknown: not said


def test_names_from_the_book_lead_their_phrases() -> None:
    # "last nps last 114 days ago", "last support team 33 days ago", "last ticket reopened 24 days ago".
    names = {"team_support": "support", "ticket_reopened": "ticket reopened"}
    teams = {"team_support"}
    row = {
        "nps_last_days_since_last": 114.0,
        "touch_team_support_days_since": 33.0,
        "touch_team_support_count_90d": 1.0,
        "outcome_ticket_reopened_days_since": 24.0,
        "outcome_ticket_reopened_count_365d": 3.0,
    }
    assert feature_phrase("nps_last_days_since_last", row) == "nps last: last seen 114 days ago"
    assert feature_phrase("touch_team_support_days_since", row, names=names, teams=teams) == (
        "last touch by the support team 33 days ago"
    )
    assert feature_phrase("touch_team_support_count_90d", row, names=names, teams=teams) == (
        "1 touch by the support team in 90 days"
    )
    assert feature_phrase("outcome_ticket_reopened_days_since", row, names=names) == (
        "ticket reopened: last seen 24 days ago"
    )
    assert feature_phrase("outcome_ticket_reopened_count_365d", row, names=names) == "ticket reopened: 3 in 365 days"


def test_a_column_of_zeros_and_ones_reads_yes_or_no() -> None:
    rows = pl.DataFrame(
        {
            "kind": ["flag", "flag", "number"],
            "words": ["newbie", "womens", "recency"],
            "window": [None, None, None],
            "percent": [False, False, False],
            "value": [1.0, 0.0, 2.0],
            "text": [None, None, None],
            "trend": [None, None, None],
            "previous": [1.0, 0.0, 2.0],
        }
    )
    assert render_phrases(rows).to_list() == ["newbie: yes", "womens: no", "recency 2"]


@settings(max_examples=40)
@given(
    feature=st.sampled_from(
        [
            "days_to_renewal",
            "tenure_days",
            "arr",
            "logins_mean_28d",
            "logins_sum_7d",
            "logins_count_90d",
            "logins_trend_28d",
            "logins_last",
            "logins_days_since_last",
            "touch_call_count_90d",
            "outcome_churn_days_since",
            "role_usage_trend_7d",
            "touch_team_cs_days_since",
            "touch_team_cs_count_90d",
            "employees",
        ]
    ),
    value=st.one_of(st.none(), st.floats(-1e7, 1e7, allow_nan=False)),
    trend=st.one_of(st.none(), st.floats(-3, 3, allow_nan=False)),
    previous=st.one_of(st.none(), st.floats(-1e7, 1e7, allow_nan=False)),
    percent=st.booleans(),
    level=st.booleans(),
)
def test_render_phrases_matches_feature_phrase(
    feature: str, value: float | None, trend: float | None, previous: float | None, percent: bool, level: bool
) -> None:
    pct = {"logins"} if percent else set()
    levels = {"logins"} if level else set()
    wording = feature_wording(feature, percent=pct, levels=levels, teams={"team_cs"})
    row: dict[str, object] = {"logins_trend_28d": trend, feature: value}
    frame = wording_table([wording]).with_columns(
        pl.Series("value", [value], dtype=pl.Float64),
        pl.Series("text", [None], dtype=pl.String),
        pl.Series("trend", [row.get(wording.trend_feature or "")], dtype=pl.Float64),
        pl.Series("previous", [previous], dtype=pl.Float64),
    )
    batch = render_phrases(frame).item()
    single = feature_phrase(feature, row, pct, previous=previous, levels=levels, teams={"team_cs"})
    if value is None:
        assert batch is None
        assert single is None
    elif not citable(wording, np.array([value]))[0]:
        assert single is None  # a level's total, a change that reads 0%: nothing to say
        assert batch is None or not wording.cited
    else:
        assert batch == single
        assert batch
        assert not re.search(r"None|nan|NaN|null", batch)


def test_number_formats_match_python() -> None:
    xs = [0.0, 1.0, 999.0, 1000.0, 123_456_789.0, -5.25, 0.3, 41.0, 4.26, 12_345.6]
    frame = pl.DataFrame({"x": xs}).select(
        format_fixed(pl.col("x"), 2).alias("fixed"),
        format_number(pl.col("x")).alias("number"),
        format_money(pl.col("x"), "USD").alias("usd"),
        format_percent(pl.col("x") / 1000).alias("pct"),
    )
    assert frame.get_column("fixed").to_list() == [f"{x:,.2f}" for x in xs]
    assert frame.get_column("usd").to_list()[:6] == ["$0", "$1", "$999", "$1,000", "$123,456,789", "-$5.25"]
    # The expression and the scalar form write dollars alike.
    assert frame.get_column("usd").to_list() == [money_text(x, "USD") for x in xs]
    # A value's own decimals, up to two: "-5.25", not "-5.2"; "0.3", not "0.30".
    assert frame.get_column("number").to_list() == [
        "0",
        "1",
        "999",
        "1,000",
        "123,456,789",
        "-5.25",
        "0.3",
        "41",
        "4.26",
        "12,345.6",
    ]
    assert frame.get_column("pct").to_list()[:4] == ["0%", "0%", "100%", "100%"]


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (6.99, "monthly price 6.99"),  # was "monthly price 7.0"
        (12.99, "monthly price 12.99"),  # was "13.0"
        (7.0, "monthly price 7"),
        (7.5, "monthly price 7.5"),  # its own decimal, no trailing 0
        (129.99, "monthly price 129.99"),  # was "130"
        (41.2345, "monthly price 41.2"),  # a longer one: rounded by its size, as before
        (2 / 3, "monthly price 0.67"),
        (1234.5678, "monthly price 1,235"),
        (-6.99, "monthly price -6.99"),
    ],
)
def test_an_account_column_s_value_keeps_its_own_decimals_up_to_two(value: float, said: str) -> None:
    assert feature_phrase("monthly_price", {"monthly_price": value}) == said
    rows = pl.DataFrame({"x": [value]}, schema={"x": pl.Float64})
    assert rows.select(format_number(pl.col("x"))).item() == said.removeprefix("monthly price ")


def test_feature_family_groups_the_windows_of_one_signal() -> None:
    assert {feature_family(f) for f in ("nps_last", "nps_days_since_last", "nps_mean_7d", "nps_trend_90d")} == {"nps"}
    assert feature_family("touch_team_cs_count_90d") == "touch:team_cs"
    assert feature_family("outcome_churn_days_since") == "outcome:churn"
    assert feature_family("role_usage_trend_28d") == "role:usage"
    assert feature_family("segment") == "segment"


def test_comparables_find_frame_gives_other_accounts_once_each() -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    rows = []
    for account in range(20):
        for period in range(4):  # each account took the action four times, at almost the same features
            rows.append(
                {
                    "account_id": f"a{account}",
                    "decision_ts": t0 + timedelta(days=14 * period),
                    "action_id": "call",
                    "arr": 1000.0 * account + period,
                    "y_churn": float(account % 2),
                    "censored": period == 3,
                }
            )
    history = pl.DataFrame(rows)
    finder = ComparableFinder(["arr"], k=3).fit(history, {"call": "y_churn"})
    snapshot = pl.DataFrame({"account_id": ["a5", "new"], "arr": [5000.0, 10_400.0]})
    found = finder.find_frame(snapshot, "call")
    assert found.filter(pl.col("row") == 0).get_column("comparable_id").to_list() == ["a4", "a6", "a3"]
    assert found.filter(pl.col("row") == 1).get_column("comparable_id").to_list() == ["a10", "a11", "a9"]
    assert found.get_column("rank").to_list() == [0, 1, 2, 0, 1, 2]
    assert found.get_column("similarity").is_between(0, 1).all()
    # Censored decisions (outcome not known yet) are never comparables.
    assert not found.get_column("decision_ts").is_in([t0 + timedelta(days=42)]).any()
    with pytest.raises(ConfigError, match="k must be a positive"):
        ComparableFinder(["arr"], k=0).fit(history, {"call": "y_churn"})


def test_touch_totals_over_every_action_read_as_touches() -> None:
    """The features that count every action's touches (stem ``any``) read "last touch …", not "last any …"."""
    rows = pl.DataFrame(
        {
            "kind": ["touch_since", "touch_count", "touch_count", "touch_since"],
            "words": ["any", "any", "Upsell call", "Upsell call"],
            "window": [None, 90, 90, None],
            "percent": [False] * 4,
            "value": [28.0, 3.0, 1.0, 5.0],
            "text": [None] * 4,
            "trend": [None] * 4,
            "previous": [None] * 4,
        }
    )
    assert render_phrases(rows).to_list() == [
        "last touch 28 days ago",
        "3 touches in 90 days",
        "1 Upsell call touch in 90 days",
        "last Upsell call 5 days ago",
    ]


@pytest.mark.parametrize(
    ("value", "previous", "said"),
    [
        (4.0, 11.9 / 3, "logins 4 on average over 90 days, unchanged"),  # was "up from 4.0"
        (12.1 / 3, 4.0, "logins 4.0 on average over 90 days, unchanged"),  # was "4.0, up from 4"
        # A value of two decimals is shown with them, so that it differs as shown.
        (4.0, 3.97, "logins 4 on average over 90 days, up from 3.97"),
        (4.04, 4.0, "logins 4.04 on average over 90 days, up from 4"),
        (4.0, 3.9, "logins 4 on average over 90 days, up from 3.9"),
        (41.0, 63.0, "logins 41 on average over 90 days, down from 63"),
    ],
)
def test_feature_phrase_says_up_or_down_only_when_the_numbers_shown_differ(
    value: float, previous: float, said: str
) -> None:
    assert feature_phrase("logins_mean_90d", {"logins_mean_90d": value}, previous=previous) == said
