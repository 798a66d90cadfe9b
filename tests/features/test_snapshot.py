"""compute_features: windows, missing values, account columns, touches, outcomes, roles, other books."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from nextmove.book import Book
from nextmove.errors import ConfigError
from nextmove.features import FeatureVocabulary, compute_features, feature_schema
from nextmove.playbook import Playbook

T0 = datetime(2024, 3, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
MakeBook = Callable[..., Book]


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def row(frame: pl.DataFrame, account_id: str) -> dict[str, Any]:
    return frame.filter(pl.col("account_id") == account_id).row(0, named=True)


def test_compute_features_one_row_per_account_in_book_order(make_book: MakeBook) -> None:
    book = make_book(["c", "a", "b"], signals=[("a", day(-1), "x", 1.0)])
    snap = compute_features(book, T0)
    assert snap.get_column("account_id").to_list() == ["c", "a", "b"]
    assert snap.columns[0] == "account_id"


def test_compute_features_excludes_rows_at_as_of(make_book: MakeBook) -> None:
    book = make_book(["a"], signals=[("a", day(-1), "x", 1.0), ("a", T0, "x", 50.0), ("a", T0 - US, "x", 2.0)])
    r = row(compute_features(book, T0, windows_days=(7,)), "a")
    assert r["x_last"] == 2.0  # the row at T0 is not seen; the one a microsecond before is
    assert r["x_count_7d"] == 2
    assert r["x_sum_7d"] == 3.0


def test_compute_features_window_start_is_inclusive(make_book: MakeBook) -> None:
    # [t - 7d, t): a row exactly 7 days back is in the 7-day window, one a microsecond older is not.
    book = make_book(["a"], signals=[("a", day(-7), "x", 1.0), ("a", day(-7) - US, "x", 10.0)])
    r = row(compute_features(book, T0, windows_days=(7,)), "a")
    assert r["x_count_7d"] == 1
    assert r["x_mean_7d"] == 1.0
    # The older row falls in the previous window [t - 14d, t - 7d): trend = (1 - 10) / 10.
    assert r["x_trend_7d"] == pytest.approx(-0.9)


def test_compute_features_previous_window_boundaries(make_book: MakeBook) -> None:
    book = make_book(
        ["a"],
        signals=[
            ("a", day(-1), "x", 3.0),
            ("a", day(-14), "x", 2.0),  # start of the previous window: in it
            ("a", day(-14) - US, "x", 1000.0),  # before it: in neither window
        ],
    )
    r = row(compute_features(book, T0, windows_days=(7,)), "a")
    assert r["x_trend_7d"] == pytest.approx(0.5)  # (3 - 2) / 2
    assert r["x_last"] == 3.0
    assert r["x_days_since_last"] == pytest.approx(1.0)


def test_compute_features_missing_stays_missing(make_book: MakeBook) -> None:
    book = make_book(["a", "quiet"], signals=[("a", day(-3), "x", 1.0)])
    r = row(compute_features(book, T0), "quiet")
    features = {k: v for k, v in r.items() if k != "account_id"}
    assert features
    assert all(v is None for v in features.values()), features


def test_compute_features_counts_zero_when_the_account_has_data(make_book: MakeBook) -> None:
    book = make_book(["a"], signals=[("a", day(-60), "x", 4.0), ("a", day(-2), "y", 1.0)])
    r = row(compute_features(book, T0, windows_days=(7, 90)), "a")
    assert r["x_count_7d"] == 0  # nothing in the window: a count of nothing is 0 …
    assert r["x_sum_7d"] is None  # … but a sum or mean over nothing is unknown
    assert r["x_mean_7d"] is None
    assert r["x_trend_7d"] is None
    assert r["x_count_90d"] == 1
    assert r["x_last"] == 4.0
    assert r["x_days_since_last"] == pytest.approx(60.0)


def test_compute_features_trend_is_null_when_previous_mean_is_zero(make_book: MakeBook) -> None:
    book = make_book(
        ["a", "b"],
        signals=[
            ("a", day(-1), "x", 5.0),
            ("a", day(-8), "x", 0.0),
            ("b", day(-8), "x", -4.0),
            ("b", day(-1), "x", -2.0),
        ],
    )
    snap = compute_features(book, T0, windows_days=(7,))
    assert row(snap, "a")["x_trend_7d"] is None
    assert row(snap, "b")["x_trend_7d"] == pytest.approx(0.5)  # (-2 - -4) / |-4|: relative to the magnitude


def test_compute_features_last_takes_the_largest_of_tied_rows(make_book: MakeBook) -> None:
    book = make_book(["a"], signals=[("a", day(-1), "x", 2.0), ("a", day(-1), "x", 7.0), ("a", day(-1), "x", 3.0)])
    assert row(compute_features(book, T0), "a")["x_last"] == 7.0


def test_compute_features_a_b2c_book_runs_as_it_is(make_book: MakeBook) -> None:
    book = make_book(
        ["shopper_1", "shopper_2"],
        signals=[
            ("shopper_1", day(-3), "page_views", 12.0),
            ("shopper_1", day(-10), "page_views", 6.0),
            ("shopper_1", day(-3), "basket_value", 80.0),
        ],
        touches=[("shopper_1", "push_coupon", day(-5))],
        outcomes=[("shopper_1", day(-20), "purchase", 45.0)],
    )
    snap = compute_features(book, T0, windows_days=(7,))
    assert set(snap.columns) >= {
        "page_views_mean_7d",
        "page_views_trend_7d",
        "basket_value_last",
        "touch_push_coupon_count_7d",
        "touch_push_coupon_days_since",
        "outcome_purchase_count_365d",
        "outcome_purchase_days_since",
    }
    r = row(snap, "shopper_1")
    assert r["page_views_trend_7d"] == pytest.approx(1.0)
    assert r["basket_value_count_7d"] == 1
    assert r["outcome_purchase_days_since"] == pytest.approx(20.0)
    assert not any("active_users" in c or "churn" in c for c in snap.columns)
    assert row(snap, "shopper_2")["page_views_count_7d"] is None


def test_compute_features_book_without_history(make_book: MakeBook) -> None:
    snap = compute_features(make_book(["a", "b"]), T0)
    assert snap.height == 2
    assert "touch_any_days_since" in snap.columns
    assert snap.drop("account_id").null_count().row(0) == (2,) * (snap.width - 1)


def test_compute_features_sanitises_signal_names_and_resolves_collisions(make_book: MakeBook) -> None:
    book = make_book(["a"], signals=[("a", day(-1), "Active Users", 5.0), ("a", day(-1), "active_users", 9.0)])
    r = row(compute_features(book, T0), "a")
    assert r["active_users_last"] == 9.0  # "active_users" is spelt as the stem and keeps it
    assert r["active_users_2_last"] == 5.0


def test_compute_features_account_columns(make_book: MakeBook) -> None:
    accounts = [
        {
            "account_id": "a",
            "arr": 1200.0,
            "contract_start": day(-100),
            "renewal_date": day(-5),
            "segment": "SMB",
            "owner": "kim",
            "seats": 12,
            "partner": True,
            "plan": "pro",
            "last_qbr": datetime(2024, 2, 20, 12),  # naive: UTC, as in the contract
            "signed": date(2024, 2, 1),
        }
    ]
    snap = compute_features(make_book(accounts), T0)
    r = row(snap, "a")
    assert r["arr"] == 1200.0
    assert r["tenure_days"] == pytest.approx(100.0)
    assert r["days_to_renewal"] == pytest.approx(-5.0)  # renewal already passed
    assert (r["segment"], r["owner"], r["industry"]) == ("SMB", "kim", None)
    assert (r["seats"], r["partner"], r["plan"]) == (12.0, 1.0, "pro")
    assert r["days_since_last_qbr"] == pytest.approx(9.5)
    assert r["days_since_signed"] == pytest.approx(29.0)
    assert "name" not in snap.columns  # a display name is not a feature
    kinds = feature_schema(snap)
    assert kinds["seats"] == "number"
    assert kinds["plan"] == "text"
    assert kinds["segment"] == "text"


def test_compute_features_touch_features(make_book: MakeBook, playbook: Playbook) -> None:
    touches = [
        ("a", "call", day(-3)),
        ("a", "call", day(-40)),
        ("a", "upsell", day(-100)),  # outside the 90-day count, still the latest upsell
        ("a", "none", day(-1)),  # a logged decision to do nothing is not a contact
        ("a", "legacy_play", day(-10)),  # not in the catalog: its own columns, no team
        ("b", "none", day(-2)),
    ]
    snap = compute_features(make_book(["a", "b", "c"], touches=touches), T0, playbook=playbook)
    a, b, c = (row(snap, x) for x in "abc")
    assert a["touch_call_count_90d"] == 2
    assert a["touch_call_days_since"] == pytest.approx(3.0)
    assert a["touch_upsell_count_90d"] == 0
    assert a["touch_upsell_days_since"] == pytest.approx(100.0)
    assert a["touch_legacy_play_count_90d"] == 1
    assert a["touch_team_cs_count_90d"] == 2
    assert a["touch_team_sales_days_since"] == pytest.approx(100.0)
    assert a["touch_team_marketing_count_90d"] == 0
    assert a["touch_any_days_since"] == pytest.approx(3.0)
    assert a["touch_any_count_28d"] == 2  # call at -3 and legacy_play at -10; "none" excluded
    assert a["touch_mail_count_90d"] == 0  # a catalog action never done
    assert "touch_none_count_90d" not in snap.columns
    # b was only ever left alone on purpose: it is in the touch log, so its counts are 0.
    assert (b["touch_any_count_90d"], b["touch_any_days_since"]) == (0, None)
    # c is not in the touch log at all: unknown.
    assert c["touch_any_count_90d"] is None


def test_compute_features_outcome_features(make_book: MakeBook, playbook: Playbook) -> None:
    outcomes = [
        ("a", day(-30), "expansion", 500.0),
        ("a", day(-365), "expansion", 100.0),  # exactly 365 days back: in the window
        ("a", day(-400), "expansion", 100.0),
        ("a", day(-50), "renewal", None),
        ("a", day(1), "churn", None),  # after the snapshot: never seen
    ]
    snap = compute_features(make_book(["a", "b"], outcomes=outcomes), T0, playbook=playbook)
    a = row(snap, "a")
    assert a["outcome_expansion_count_365d"] == 2
    assert a["outcome_expansion_days_since"] == pytest.approx(30.0)
    assert a["outcome_renewal_count_365d"] == 1
    assert (a["outcome_churn_count_365d"], a["outcome_churn_days_since"]) == (0, None)
    assert row(snap, "b")["outcome_expansion_count_365d"] is None


def test_compute_features_role_trend_averages_clipped_trends(make_book: MakeBook, playbook: Playbook) -> None:
    signals = [
        ("a", day(-1), "active_users", 30.0),
        ("a", day(-8), "active_users", 10.0),  # trend +2.0, clipped to +1
        ("a", day(-1), "logins", 5.0),
        ("a", day(-8), "logins", 10.0),  # trend -0.5
        ("a", day(-1), "tickets", 3.0),
    ]
    r = row(compute_features(make_book(["a"], signals=signals), T0, playbook=playbook, windows_days=(7,)), "a")
    assert r["role_usage_trend_7d"] == pytest.approx(0.25)
    assert r["role_support_trend_7d"] is None  # tickets has no previous window


def test_compute_features_without_playbook_has_no_team_or_role_columns(make_book: MakeBook) -> None:
    book = make_book(["a"], signals=[("a", day(-1), "logins", 1.0)], touches=[("a", "call", day(-1))])
    columns = compute_features(book, T0).columns
    assert not [c for c in columns if c.startswith(("touch_team_", "role_"))]
    assert "touch_call_days_since" in columns


def test_compute_features_accepts_naive_datetimes_and_dates(make_book: MakeBook) -> None:
    book = make_book(["a"], signals=[("a", day(-1), "x", 1.0)])
    aware = compute_features(book, T0)
    assert aware.equals(compute_features(book, T0.replace(tzinfo=None)))
    assert aware.equals(compute_features(book, T0.date()))


def test_compute_features_vocabulary_fixes_the_columns(make_book: MakeBook) -> None:
    book = make_book(["a"], signals=[("a", day(-1), "x", 1.0), ("a", day(5), "later", 2.0)])
    assert "later_last" not in compute_features(book, T0).columns  # not seen before T0
    vocab = FeatureVocabulary.build(accounts_schema=book.accounts.schema, signal_names=["x", "later", "other"])
    snap = compute_features(book, T0, vocabulary=vocab)
    r = row(snap, "a")
    assert (r["later_last"], r["later_count_7d"], r["other_count_90d"]) == (None, 0, 0)


def test_compute_features_rejects_bad_arguments(make_book: MakeBook) -> None:
    book = make_book(["a"])
    with pytest.raises(ConfigError, match="windows_days"):
        compute_features(book, T0, windows_days=(0, 7))
    with pytest.raises(ConfigError, match="differ from the vocabulary"):
        compute_features(
            book, T0, windows_days=(7,), vocabulary=FeatureVocabulary.build(accounts_schema=book.accounts.schema)
        )
    with pytest.raises(ConfigError, match="as_of"):
        compute_features(book, "2024-01-01")  # type: ignore[arg-type]


def test_compute_features_dtypes(make_book: MakeBook, playbook: Playbook) -> None:
    book = make_book(
        [{"account_id": "a", "segment": "SMB"}],
        signals=[("a", day(-1), "x", 1.0)],
        touches=[("a", "call", day(-2))],
        outcomes=[("a", day(-3), "churn", 1.0)],
    )
    snap = compute_features(book, T0, playbook=playbook)
    for name, dtype in snap.schema.items():
        if name in ("account_id", "segment", "lifecycle_stage", "industry", "region", "owner"):
            assert dtype == pl.String, name
        elif "_count_" in name:
            assert dtype == pl.Int64, name
        else:
            assert dtype == pl.Float64, name


def test_feature_schema_leaves_out_decisions_and_labels() -> None:
    frame = pl.DataFrame(
        {
            "account_id": ["a"],
            "decision_ts": [T0],
            "action_id": ["call"],
            "propensity": [0.5],
            "arr": [1.0],
            "owner": ["kim"],
            "y_churn": [1],
            "y_churn_value": [0.0],
            "censored": [False],
            "observed_days": [30.0],
        }
    )
    assert feature_schema(frame) == {"arr": "number", "owner": "text"}
    assert feature_schema(frame.lazy()) == {"arr": "number", "owner": "text"}


def test_feature_schema_rejects_other_types() -> None:
    with pytest.raises(ConfigError, match="'tags'"):
        feature_schema(pl.DataFrame({"account_id": ["a"], "tags": [["x"]]}))


def test_compute_features_days_to_renewal_infers_past_terms() -> None:
    from tests.features.conftest import build_book, day

    # Current annual term: contract_start 100 days ago, renewal in 265 days.
    book = build_book([{"account_id": "a", "contract_start": day(-100), "renewal_date": day(265)}])
    now = compute_features(book, day(0)).get_column("days_to_renewal").item()
    assert now == pytest.approx(265.0)
    # 160 days ago the previous term was running; it renewed at contract_start (60 days later).
    past = compute_features(book, day(-160)).get_column("days_to_renewal").item()
    assert past == pytest.approx(60.0)
    # Two terms back: 500 days ago, the renewal then pending was 35 days later (day -465).
    older = compute_features(book, day(-500)).get_column("days_to_renewal").item()
    assert older == pytest.approx(35.0)


def test_compute_features_tenure_counts_from_customer_since() -> None:
    from tests.features.conftest import build_book, day

    book = build_book(
        [
            {"account_id": "a", "contract_start": day(-100), "customer_since": day(-800)},
            {"account_id": "b", "contract_start": day(-100)},
        ]
    )
    tenure = compute_features(book, day(0)).sort("account_id").get_column("tenure_days").to_list()
    assert tenure == pytest.approx([800.0, 100.0])


def test_compute_features_float_features_do_not_depend_on_summation_order(make_book: MakeBook) -> None:
    # 0.1 + 0.2 and 0.2 + 0.1 differ in the last bit when summed in another order; features are
    # rounded to SIGNIFICANT_DIGITS so that two calls on one book give the same model.
    values = [0.1, 0.2, 0.3]
    forward = make_book(["a"], signals=[("a", day(-1 - i), "x", v) for i, v in enumerate(values)])
    backward = make_book(["a"], signals=[("a", day(-1 - i), "x", v) for i, v in enumerate(values[::-1])])
    first = row(compute_features(forward, T0, windows_days=(7,)), "a")
    second = row(compute_features(backward, T0, windows_days=(7,)), "a")
    assert first["x_sum_7d"] == second["x_sum_7d"] == 0.6
    assert first["x_mean_7d"] == second["x_mean_7d"] == 0.2


def test_compute_features_sums_that_cancel_are_exactly_zero(make_book: MakeBook) -> None:
    # 0.1 + 0.2 - 0.3 is 5.6e-17 in this order and 0 in another: a trend divided by that mean
    # would be huge in one call and null in the next.
    book = make_book(
        ["a", "b"],
        signals=[
            *[("a", day(-1 - i), "x", v) for i, v in enumerate([0.1, 0.2, -0.3])],
            *[("b", day(-1 - i), "x", v) for i, v in enumerate([0.5, 0.5])],
            *[("b", day(-8 - i), "x", v) for i, v in enumerate([0.1, 0.2, 0.3, -0.3, -0.2, -0.1])],
        ],
    )
    snap = compute_features(book, T0, windows_days=(7,))
    a, b = row(snap, "a"), row(snap, "b")
    assert a["x_sum_7d"] == 0.0
    assert a["x_mean_7d"] == 0.0
    assert b["x_trend_7d"] is None  # the previous window cancels to exactly 0: no relative change


def test_compute_features_window_sums_are_exact_in_any_order(make_book: MakeBook) -> None:
    # In floats 1e17 + 1 − 1e17 is 0 and −1e17 + 1e17 + 1 is 1: the sum would depend on the order
    # Polars' threads add in. Exact sums give 1 in every order.
    book = make_book(
        ["a", "b"],
        signals=[
            *[("a", day(-1 - i), "x", v) for i, v in enumerate([1e17, 1.0, -1e17])],
            *[("b", day(-1 - i), "x", v) for i, v in enumerate([-1e17, 1e17, 1.0])],
        ],
    )
    snap = compute_features(book, T0, windows_days=(7,))
    assert row(snap, "a")["x_sum_7d"] == 1.0
    assert row(snap, "b")["x_sum_7d"] == 1.0


def test_compute_features_window_sums_of_huge_values_are_floats_not_errors(make_book: MakeBook) -> None:
    # Beyond the fixed point's range (1e20 per value) the excess is summed as a float.
    book = make_book(["a"], signals=[("a", day(-1 - i), "x", v) for i, v in enumerate([3e30, 1.0, -1e30])])
    assert row(compute_features(book, T0, windows_days=(7,)), "a")["x_sum_7d"] == pytest.approx(2e30)


def test_compute_features_a_flat_signal_has_a_trend_of_exactly_zero(make_book: MakeBook) -> None:
    # Means of the same values in another order differ in the last bit; the change is 0, not 1e-16.
    book = make_book(
        ["a"],
        signals=[
            *[("a", day(-1 - i), "x", v) for i, v in enumerate([0.3, 0.2, 0.1])],
            *[("a", day(-8 - i), "x", v) for i, v in enumerate([0.1, 0.2, 0.3])],
        ],
    )
    assert row(compute_features(book, T0, windows_days=(7,)), "a")["x_trend_7d"] == 0.0
