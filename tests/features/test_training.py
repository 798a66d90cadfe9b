"""build_training_set on a hand-made book whose rows, labels and censoring are worked out by hand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from nextmove.book import Book
from nextmove.errors import ConfigError
from nextmove.features import FeatureVocabulary, compute_features, feature_schema, training_vocabulary
from nextmove.features import build_training_set as _build_training_set
from nextmove.features import signals as signals_module
from nextmove.features import training as training_module
from nextmove.features.history import point_in_time
from nextmove.features.signals import aggregate_signals, aggregate_signals_at
from nextmove.playbook import Playbook

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def build_training_set(*args: Any, **kwargs: Any) -> pl.DataFrame:
    """The hand-made book logs one ``none``; these tests are about the regular untouched dates too."""
    kwargs.setdefault("untouched_rows", True)
    return _build_training_set(*args, **kwargs)


MakeBook = Callable[..., Book]
DECISION = ["account_id", "decision_ts", "logged", "action_id", "touch_id", "arm", "propensity"]


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def touch(account: str, action: str, ts: datetime, touch_id: str, arm: str, propensity: float) -> dict[str, Any]:
    return {
        "account_id": account,
        "action_id": action,
        "ts": ts,
        "touch_id": touch_id,
        "arm": arm,
        "propensity": propensity,
    }


@pytest.fixture
def book(make_book: MakeBook) -> Book:
    """a: a customer since day -100; b: signs on day 20, no data; c: touched on day 15, churns on day 24."""
    return make_book(
        [
            {"account_id": "a", "contract_start": day(-100), "arr": 1000.0},
            {"account_id": "b", "contract_start": day(20), "arr": 2000.0},
            {"account_id": "c", "arr": 3000.0},
        ],
        signals=[("a", day(0) + timedelta(hours=9), "x", 1.0), ("a", day(13), "x", 3.0)],
        touches=[
            touch("a", "call", day(8) + timedelta(hours=10), "t1", "model", 0.4),
            touch("c", "upsell", day(15) + timedelta(hours=5), "t3", "explore", 0.25),
            touch("a", "none", day(22) + timedelta(hours=1), "t2", "control", 0.1),
        ],
        outcomes=[
            ("a", day(9), "renewal", 1.0),  # a kind the playbook does not name: labelled too
            ("a", day(20), "expansion", 500.0),
            ("c", day(24) + timedelta(hours=10), "churn", None),
            ("a", day(38), "expansion", 100.0),
        ],
    )


def test_build_training_set_rows_are_touches_and_untouched_regular_dates(book: Book, playbook: Playbook) -> None:
    train = build_training_set(book, playbook, as_of=day(40))
    # Regular dates every 7 days (contact_policy.window_days) from the first day with data
    # (day 0): 7, 14, 21, 28, 35. a is touched in [7, 14) and [21, 28) (a logged "none"),
    # b exists from day 20, c from its first touch (day 15.2) until its churn (day 24.4).
    assert train.select(DECISION).rows() == [
        ("a", day(8), True, "call", "t1", "model", 0.4),
        ("a", day(14), False, "none", None, None, None),
        ("c", day(15), True, "upsell", "t3", "explore", 0.25),
        ("b", day(21), False, "none", None, None, None),
        ("c", day(21), False, "none", None, None, None),
        ("a", day(22), True, "none", "t2", "control", 0.1),
        ("a", day(28), False, "none", None, None, None),
        ("b", day(28), False, "none", None, None, None),
        ("a", day(35), False, "none", None, None, None),
        ("b", day(35), False, "none", None, None, None),
    ]


def test_build_training_set_labels_and_censoring(book: Book, playbook: Playbook) -> None:
    train = build_training_set(book, playbook, as_of=day(40))  # horizon 30 days
    kinds = ("churn", "expansion", "renewal")
    labels = [c for k in kinds for c in (f"y_{k}", f"y_{k}_value")] + ["censored", "observed_days"]
    assert train.select("account_id", "decision_ts", *labels).rows() == [
        # (8, 38]: both expansions (day 38 is the horizon's last instant) and the renewal.
        ("a", day(8), 0, 0.0, 1, 600.0, 1, 1.0, False, 30.0),
        # (14, 38]: the outcomes are seen up to their latest, day 38, though as_of is day 40 (what
        # followed after it is not in the book); day 44 is not over yet.
        ("a", day(14), 0, 0.0, 1, 600.0, 0, 0.0, True, 24.0),
        ("c", day(15), 1, 0.0, 0, 0.0, 0, 0.0, True, 23.0),  # a churn without a value sums to 0
        ("b", day(21), 0, 0.0, 0, 0.0, 0, 0.0, True, 17.0),
        ("c", day(21), 1, 0.0, 0, 0.0, 0, 0.0, True, 17.0),
        ("a", day(22), 0, 0.0, 1, 100.0, 0, 0.0, True, 16.0),
        ("a", day(28), 0, 0.0, 1, 100.0, 0, 0.0, True, 10.0),
        ("b", day(28), 0, 0.0, 0, 0.0, 0, 0.0, True, 10.0),
        ("a", day(35), 0, 0.0, 1, 100.0, 0, 0.0, True, 3.0),
        ("b", day(35), 0, 0.0, 0, 0.0, 0, 0.0, True, 3.0),
    ]
    assert train.schema["y_churn"] == pl.Int8
    assert train.columns[-2:] == ["censored", "observed_days"]


def test_build_training_set_features_at_the_decision_time(book: Book, playbook: Playbook) -> None:
    train = build_training_set(book, playbook, as_of=day(40))
    a14 = train.filter((pl.col("account_id") == "a") & (pl.col("decision_ts") == day(14))).row(0, named=True)
    assert a14["x_last"] == 3.0
    assert a14["x_count_7d"] == 1  # [7, 14) holds day 13
    assert a14["touch_call_days_since"] == pytest.approx(14 - (8 + 10 / 24))
    assert a14["tenure_days"] == pytest.approx(114.0)
    a8 = train.filter((pl.col("account_id") == "a") & (pl.col("decision_ts") == day(8))).row(0, named=True)
    assert a8["touch_call_days_since"] is None  # the touch a row is about is not among its features
    assert a8["touch_call_count_90d"] is None  # and a was in no touch log before it: unknown, not 0
    assert a8["outcome_renewal_count_365d"] is None  # the renewal on day 9 is in the future


def test_build_training_set_features_equal_snapshots(book: Book, playbook: Playbook) -> None:
    train = build_training_set(book, playbook, as_of=day(40))
    _assert_features_equal_snapshots(train, book, playbook)


def test_build_training_set_features_equal_snapshots_on_a_random_book(make_book: MakeBook, playbook: Playbook) -> None:
    rng = np.random.default_rng(7)
    accounts = [f"acc{i}" for i in range(12)]

    def when() -> datetime:
        return day(float(rng.uniform(-60, 60)))

    def pick(options: list[str]) -> str:
        return str(rng.choice(options))

    book = make_book(
        [
            # An extra column named like a training-set key is still a feature.
            {"account_id": a, "contract_start": day(float(rng.uniform(-90, 30))), "decision_ts": day(-5), "seats": 3}
            for a in accounts
        ],
        signals=[(pick(accounts), when(), pick(["x", "Logins", "tickets"]), float(rng.normal())) for _ in range(400)],
        # Two touches of one account on one day: two decisions with one (account, time) key.
        touches=[(pick(accounts), pick(["call", "upsell", "none", "mail"]), when()) for _ in range(60)]
        + [("acc0", "call", day(10.2)), ("acc0", "mail", day(10.6))],
        outcomes=[(pick(accounts), when(), pick(["churn", "expansion", "renewal"]), 1.0) for _ in range(15)],
    )
    train = build_training_set(book, playbook, as_of=day(60))
    assert train.height > 50
    assert train.select("account_id", "decision_ts").is_duplicated().any()
    assert train.get_column("days_since_decision_ts").is_not_null().all()
    _assert_features_equal_snapshots(train, book, playbook)
    # Built from a time on, the set is the whole set's rows from then: the same features and labels.
    later = build_training_set(book, playbook, as_of=day(60), decisions_from=day(10))
    assert_frame_equal(later, train.filter(pl.col("decision_ts") >= day(10)))
    assert 0 < later.height < train.height


def _assert_features_equal_snapshots(train: pl.DataFrame, book: Book, playbook: Playbook) -> None:
    vocab = FeatureVocabulary.build(
        accounts_schema=book.accounts.schema,
        signal_names=book.signal_names,
        action_ids=book.touches.get_column("action_id").to_list(),
        outcome_kinds=book.outcomes.get_column("kind").to_list(),
        playbook=playbook,
    )
    features = ["account_id", *feature_schema(train)]
    for (ts,), rows in train.group_by("decision_ts"):
        assert isinstance(ts, datetime)
        got = rows.select(features)
        snap = compute_features(book, ts, vocabulary=vocab).select(features)
        expected = got.select("account_id").join(snap, on="account_id", how="left", maintain_order="left")
        # Sums over the same rows in another order: equal up to rounding.
        assert_frame_equal(got, expected, rel_tol=1e-12, abs_tol=1e-12)


def test_training_vocabulary_names_the_training_sets_columns(make_book: MakeBook, playbook: Playbook) -> None:
    # "churn" is the playbook's kind; "Churn" comes from another system and sorts first.
    book = make_book(
        ["a", "b"],
        signals=[("a", day(1), "Logins", 1.0), ("a", day(1), "logins", 2.0)],
        touches=[("a", "call", day(2)), ("b", "call", day(2))],
        outcomes=[("a", day(5), "churn", None), ("b", day(6), "Churn", None)],
    )
    train = build_training_set(book, playbook, as_of=day(60))
    vocab = training_vocabulary(book, playbook, as_of=day(60))
    assert (vocab.outcome_stem("churn"), vocab.outcome_stem("Churn")) == ("churn", "churn_2")
    churned = {
        k: set(train.filter(pl.col(f"y_{vocab.outcome_stem(k)}") == 1)["account_id"]) for k in ("churn", "Churn")
    }
    assert churned == {"churn": {"a"}, "Churn": {"b"}}
    snap = compute_features(book, day(60), playbook=playbook, vocabulary=vocab)
    assert set(feature_schema(snap)) <= set(train.columns)
    assert snap.filter(pl.col("account_id") == "a").select("logins_last", "logins_2_last").row(0) == (2.0, 1.0)


def test_build_training_set_drops_rows_once_the_account_is_gone(book: Book, playbook: Playbook) -> None:
    train = build_training_set(book, playbook, as_of=day(40))
    c_rows = train.filter(pl.col("account_id") == "c").get_column("decision_ts").to_list()
    assert c_rows == [day(15), day(21)]  # the churn on day 24 ends c's rows


def test_build_training_set_reads_dated_outcomes_as_whole_days(make_book: MakeBook, playbook: Playbook) -> None:
    # The fixture's book with every outcome a date (c churns on day 24, the day of a call to it) and
    # signals and touches still timed: each outcome stands for its whole day, after that day's decisions.
    dated = make_book(
        [
            {"account_id": "a", "contract_start": day(-100), "arr": 1000.0},
            {"account_id": "c", "arr": 3000.0},
        ],
        signals=[("a", day(0) + timedelta(hours=9), "x", 1.0)],
        touches=[
            touch("a", "call", day(8) + timedelta(hours=10), "t1", "model", 0.4),
            touch("c", "upsell", day(15) + timedelta(hours=5), "t3", "explore", 0.25),
            touch("c", "call", day(24) + timedelta(hours=15), "t4", "model", 0.5),
        ],
        outcomes=[
            ("a", day(8), "renewal", 1.0),
            ("a", day(20), "expansion", 500.0),
            ("c", day(24), "churn", None),
            ("a", day(38), "expansion", 100.0),
        ],
    )
    columns = ["account_id", "decision_ts", "y_renewal", "y_expansion_value", "y_churn"]
    train = build_training_set(dated, playbook, as_of=day(40), decision_times=[day(21)])
    # [8, 38): the renewal of the call's own day counts, the expansion of day 38 belongs to the next window.
    assert train.select(columns).rows() == [
        ("a", day(8), 1, 500.0, 0),
        ("c", day(15), 0, 0.0, 1),
        ("a", day(21), 0, 100.0, 0),  # c is called in [21, 28), so no untouched row of c
        ("c", day(24), 0, 0.0, 1),  # the call of the churn's day: the churn is its label, not lost
    ]
    # Read as instants, the outcomes at midnight fall outside (decision_ts, decision_ts + 30 days].
    instants = build_training_set(dated, playbook, as_of=day(40), decision_times=[day(21)], whole_days=False)
    assert instants.select(columns).rows() == [
        ("a", day(8), 0, 600.0, 0),
        ("c", day(15), 0, 0.0, 1),
        ("a", day(21), 0, 100.0, 0),  # and the call of the churn's day is dropped: c is gone at its midnight
    ]


def test_build_training_set_decision_times_replace_the_grid(book: Book, playbook: Playbook) -> None:
    train = build_training_set(book, playbook, as_of=day(40), decision_times=[day(10), day(30), day(45)])
    grid = train.filter(~pl.col("logged")).select("account_id", "decision_ts").rows()
    # day 10: a is not touched in [10, 17); b does not exist yet; c exists from day 15.
    # day 30: a, b; c is gone. day 45 is after as_of.
    assert grid == [("a", day(10)), ("a", day(30)), ("b", day(30))]


def test_build_training_set_every_and_horizon_days(book: Book, playbook: Playbook) -> None:
    train = build_training_set(book, playbook, as_of=day(40), every_days=20, horizon_days=10)
    grid = train.filter(~pl.col("logged")).select("account_id", "decision_ts").rows()
    assert grid == [("b", day(20)), ("c", day(20))]  # a is touched (a logged "none") in [20, 40)
    a8 = train.filter(pl.col("touch_id") == "t1").row(0, named=True)
    assert (a8["y_expansion"], a8["y_renewal"], a8["censored"], a8["observed_days"]) == (0, 1, False, 10.0)


def test_build_training_set_ignores_rows_after_as_of(book: Book, playbook: Playbook, make_book: MakeBook) -> None:
    later = Book(
        book.accounts,
        pl.concat([book.signals, book.signals.with_columns(pl.col("ts") + timedelta(days=45))]),
        pl.concat([book.touches, book.touches.with_columns(pl.col("ts") + timedelta(days=45))]),
        pl.concat([book.outcomes, book.outcomes.with_columns(pl.col("ts") + timedelta(days=45), kind=pl.lit("late"))]),
    )
    assert_frame_equal(
        build_training_set(book, playbook, as_of=day(40)), build_training_set(later, playbook, as_of=day(40))
    )


def test_build_training_set_batches_give_the_same_rows(
    book: Book, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = build_training_set(book, playbook, as_of=day(40))
    monkeypatch.setattr(training_module, "ROWS_PER_BATCH", 2)
    assert_frame_equal(whole, build_training_set(book, playbook, as_of=day(40)))


def _signals_history(make_book: MakeBook, signals: list[tuple[str, datetime, str, float | None]]) -> Book:
    accounts = [{"account_id": a, "contract_start": day(-200)} for a in ("a", "b", "c", "d")]
    return make_book(accounts, signals=signals, touches=[], outcomes=[])


def _row_wise_and_running(book: Book, keys: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """The signal aggregates of ``keys`` by the row-wise group_by and from running totals, rows in one order."""
    vocab = FeatureVocabulary.build(
        accounts_schema=book.accounts.schema, signal_names=book.signal_names, action_ids=[], outcome_kinds=[]
    )
    by = ["account_id", "decision_ts"]
    row_wise = aggregate_signals(point_in_time(book, keys).signals, by, vocab)
    running = aggregate_signals_at(book.signals, keys, vocab)
    order = [*by, *sorted(c for c in row_wise.columns if c not in by)]
    if running is None:
        return row_wise.select(order).sort(by), None
    return row_wise.select(order).sort(by), running.select(order).sort(by)


def test_signal_aggregates_from_running_totals_equal_the_row_wise_ones(
    make_book: MakeBook, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(11)
    grid = [day(float(d)) for d in range(-200, 1)]  # whole days: many rows sit exactly on a window's edge
    signals: list[tuple[str, datetime, str, float | None]] = []
    for _ in range(1500):
        ts = grid[int(rng.integers(len(grid)))]
        value = float(rng.choice([-0.3, 0.1, 0.2, 1e15, float(rng.normal())]))  # sums that cancel, large values
        signals.append((str(rng.choice(["a", "b", "c"])), ts, str(rng.choice(["Logins", "x", "tickets"])), value))
    signals += [("a", day(-7), "x", 5.0), ("a", day(-7), "x", 9.0)]  # a tie at the latest time: the larger is last
    book = _signals_history(make_book, signals)
    keys = pl.DataFrame(
        {
            "account_id": ["a", "a", "b", "c", "d", "a", "b"],
            "decision_ts": [day(0), day(-7), day(-90), day(-14), day(0), day(-200), day(-180) + timedelta(hours=3)],
        },
        schema_overrides={"decision_ts": pl.Datetime("us", "UTC")},
    )
    row_wise, running = _row_wise_and_running(book, keys)
    assert running is not None
    assert_frame_equal(running, row_wise, check_exact=True)
    # In batches of a few accounts: the same.
    monkeypatch.setattr(signals_module, "LOOKUP_ROWS_PER_BATCH", 50)
    _, batched = _row_wise_and_running(book, keys)
    assert batched is not None
    assert_frame_equal(batched, row_wise, check_exact=True)


def test_signal_aggregates_of_values_outside_the_contract_stay_row_wise(
    make_book: MakeBook, playbook: Playbook
) -> None:
    signals: list[tuple[str, datetime, str, float | None]] = [
        ("a", day(1), "x", 2.0),
        ("a", day(3), "x", float("nan")),
        ("b", day(2), "x", 1.0),
    ]
    book = _signals_history(make_book, signals)
    keys = pl.DataFrame({"account_id": ["a", "b"], "decision_ts": [day(5), day(5)]})
    assert _row_wise_and_running(book, keys)[1] is None  # a NaN: the running totals decline
    train = build_training_set(book, playbook, as_of=day(20))
    assert train.filter(pl.col("account_id") == "a").get_column("x_sum_7d").drop_nulls().is_nan().any()
    _assert_features_equal_snapshots(train, book, playbook)


def test_build_training_set_as_of_defaults(book: Book, playbook: Playbook, make_book: MakeBook) -> None:
    latest = build_training_set(book, playbook)  # the book's latest timestamp: day 38
    assert latest.get_column("decision_ts").max() == day(35)
    assert latest.filter(pl.col("touch_id") == "t1").get_column("censored").item() is False
    stamped = Book(book.accounts, book.signals, book.touches, book.outcomes, as_of=day(30))
    assert stamped.as_of is not None
    assert build_training_set(stamped, playbook).get_column("decision_ts").max() == day(28)
    with pytest.raises(ConfigError, match="pass as_of"):
        build_training_set(make_book(["a"]), playbook)


def test_build_training_set_empty_history_with_as_of(make_book: MakeBook, playbook: Playbook) -> None:
    train = build_training_set(make_book(["a"]), playbook, as_of=day(40))
    assert train.height == 0
    assert {"y_churn", "y_expansion_value", "censored", "touch_call_days_since"} <= set(train.columns)


@pytest.mark.parametrize(("name", "value"), [("every_days", 0), ("horizon_days", -3), ("every_days", 1.5)])
def test_build_training_set_rejects_bad_days(book: Book, playbook: Playbook, name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=name):
        build_training_set(book, playbook, as_of=day(40), **{name: value})  # type: ignore[arg-type]


def test_build_training_set_touch_attribution_gives_each_touch_its_own_outcomes(playbook: Playbook) -> None:
    from tests.features.conftest import build_book

    # Two touches 14 days apart with overlapping horizons; each expansion names the touch it follows.
    book = build_book(
        [{"account_id": "a", "contract_start": day(-100)}],
        touches=[touch("a", "call", day(0), "t1", "model", 0.5), touch("a", "upsell", day(14), "t2", "model", 0.5)],
        outcomes=[],
    )
    outcomes = pl.DataFrame(
        {
            "account_id": ["a", "a"],
            "ts": [day(10), day(20)],
            "kind": ["expansion", "expansion"],
            "outcome_id": ["o1", "o2"],
            "value": [100.0, 50.0],
            "touch_id": ["t1", "t2"],
        },
        schema=book.outcomes.schema,
    )
    book = Book(book.accounts, book.signals, book.touches, outcomes)
    window = build_training_set(book, playbook, as_of=day(200), attribution="window").sort("decision_ts")
    by_touch = build_training_set(book, playbook, as_of=day(200)).sort("decision_ts")  # auto → touch
    t1w = window.filter(pl.col("touch_id") == "t1").row(0, named=True)
    t1t = by_touch.filter(pl.col("touch_id") == "t1").row(0, named=True)
    assert t1w["y_expansion_value"] == pytest.approx(150.0)  # the window also counts t2's outcome
    assert t1t["y_expansion_value"] == pytest.approx(100.0)
    t2t = by_touch.filter(pl.col("touch_id") == "t2").row(0, named=True)
    assert t2t["y_expansion_value"] == pytest.approx(50.0)
    with pytest.raises(ConfigError, match="attribution"):
        build_training_set(book, playbook, attribution="bogus")  # type: ignore[arg-type]


def test_build_training_set_adds_no_untouched_rows_to_a_log_with_none_decisions(book: Book, playbook: Playbook) -> None:
    # The book logs a "none" decision, so its log is complete: no invented do-nothing rows.
    auto = _build_training_set(book, playbook, as_of=day(60))
    assert auto.get_column("logged").all()
    assert auto.height == book.touches.height
    with_grid = _build_training_set(book, playbook, as_of=day(60), untouched_rows=True)
    assert with_grid.height > auto.height


def test_build_training_set_touch_attribution_keeps_outcomes_credited_to_no_touch(
    make_book: MakeBook, playbook: Playbook
) -> None:
    """Expansions credited to calls, churn never credited to a touch: the churn still labels the touch rows."""
    book = make_book(
        [{"account_id": "a", "contract_start": day(-30), "arr": 1000.0}],
        touches=[touch("a", "call", day(0), "t1", "model", 0.5), touch("a", "upsell", day(14), "t2", "model", 0.5)],
        outcomes=[],
    )
    outcomes = pl.DataFrame(
        {
            "account_id": ["a", "a", "a"],
            "ts": [day(10), day(20), day(25)],
            "kind": ["expansion", "expansion", "churn"],
            "outcome_id": ["o1", "o2", "o3"],
            "value": [100.0, 50.0, None],
            "touch_id": ["t1", None, None],
        },
        schema=book.outcomes.schema,
    )
    book = Book(book.accounts, book.signals, book.touches, outcomes)
    rows = build_training_set(book, playbook, as_of=day(200)).filter(pl.col("logged")).sort("decision_ts")
    assert rows.select("touch_id", "y_expansion", "y_expansion_value", "y_churn").rows() == [
        ("t1", 1, 100.0, 1),  # its own expansion (expansions name touches: o2 followed no logged one), the churn
        ("t2", 0, 0.0, 1),  # not t1's expansion; the churn of its window
    ]


def _credited_book(make_book: MakeBook, credit: Callable[[int], str | None], *, logged_none: bool = True) -> Book:
    """24 accounts, each called on day 0 and (``logged_none``) left alone by a logged ``none`` on day 10;
    16 of them churn on day 20, credited by ``credit(i)`` (a touch id or None)."""
    n = 24
    touches = []
    for i in range(n):
        touches.append(touch(f"a{i}", "call", day(0), f"c{i}", "model", 0.5))
        if logged_none:
            touches.append(touch(f"a{i}", "none", day(10), f"n{i}", "model", 0.5))
    book = make_book([{"account_id": f"a{i}", "contract_start": day(-100)} for i in range(n)], touches=touches)
    churned = range(16)
    outcomes = pl.DataFrame(
        {
            "account_id": [f"a{i}" for i in churned],
            "ts": [day(20)] * len(churned),
            "kind": ["churn"] * len(churned),
            "outcome_id": [f"o{i}" for i in churned],
            "value": [None] * len(churned),
            "touch_id": [credit(i) for i in churned],
        },
        schema=book.outcomes.schema,
    )
    return Book(book.accounts, book.signals, book.touches, outcomes)


def test_auto_attribution_labels_by_window_a_kind_never_credited_to_doing_nothing(
    make_book: MakeBook, playbook: Playbook
) -> None:
    """A CRM credits every churn to the last real touch: by touch, the logged none decisions would be churn-free."""
    from nextmove.features import WindowFallback, window_fallbacks

    book = _credited_book(make_book, lambda i: f"c{i}")
    notes: list[str] = []
    rows = _build_training_set(book, playbook, as_of=day(200), notes=notes)
    none = rows.filter(pl.col("action_id") == "none")
    assert none.height == 24
    assert none.get_column("y_churn").sum() == 16  # the churns in their windows, as window labels give them
    assert rows.filter(pl.col("action_id") == "call").get_column("y_churn").sum() == 16
    expected = WindowFallback("churn", 30, rows=24, by_window=16, by_touch=0, touched_share=1.0)
    assert notes == [expected.note()]
    assert notes[0].startswith("churn is labelled by its window, not by outcomes.touch_id: 16 of the 24 decisions")
    assert "0 of them are credited with it" in notes[0]
    # What validate says, from the touches and outcomes alone.
    assert window_fallbacks(book, playbook, as_of=day(200)) == [expected]
    # Asked for by touch, the labels are the credits.
    forced = _build_training_set(book, playbook, as_of=day(200), attribution="touch")
    assert forced.filter(pl.col("action_id") == "none").get_column("y_churn").sum() == 0


def test_auto_attribution_keeps_credits_that_do_nothing_shares_fairly(make_book: MakeBook, playbook: Playbook) -> None:
    """Credits that reach the decisions to do nothing as they reach touches stay attributed by touch."""
    from nextmove.features import window_fallbacks

    # Each churn credited to one of the decisions whose window holds it, the logged none as often as the
    # call: each side keeps half of its windows' churns.
    book = _credited_book(make_book, lambda i: f"c{i}" if i % 2 == 0 else f"n{i}")
    notes: list[str] = []
    rows = _build_training_set(book, playbook, as_of=day(200), notes=notes)
    assert notes == []
    assert window_fallbacks(book, playbook, as_of=day(200)) == []
    assert rows.filter(pl.col("action_id") == "call").get_column("y_churn").sum() == 8
    assert rows.filter(pl.col("action_id") == "none").get_column("y_churn").sum() == 8
    # Credited to the later none alone, the calls would keep none of theirs: every call a cure.
    later = _credited_book(make_book, lambda i: f"n{i}")
    assert [f.side for f in window_fallbacks(later, playbook, as_of=day(200))] == ["touched"]
    # Too few churns to tell: 9 credited to the calls, none to doing nothing.
    few = _credited_book(make_book, lambda i: f"c{i}" if i < 9 else None)
    few = Book(few.accounts, few.signals, few.touches, few.outcomes.head(9))
    assert window_fallbacks(few, playbook, as_of=day(200)) == []


def test_auto_attribution_labels_by_window_a_kind_rarely_credited_to_the_touches_it_followed(
    make_book: MakeBook, playbook: Playbook
) -> None:
    """A CRM names the call on 2 of 16 churns; no none is logged, so the untouched dates keep their windows:
    by touch, the calls would keep an eighth of their churns and look like a cure."""
    from nextmove.features import window_fallbacks

    book = _credited_book(make_book, lambda i: f"c{i}" if i < 2 else None, logged_none=False)
    notes: list[str] = []
    rows = _build_training_set(book, playbook, as_of=day(200), notes=notes)
    calls = rows.filter(pl.col("action_id") == "call")
    assert calls.get_column("y_churn").sum() == 16  # every churn in a call's window, as window labels give them
    (fallback,) = window_fallbacks(book, playbook, as_of=day(200))
    assert (fallback.kind, fallback.side, fallback.touched_by_window, fallback.touched_by_touch) == (
        "churn",
        "touched",
        16,
        2,
    )
    assert notes == [fallback.note()]
    assert "16 decisions with a touch were followed by churn within 30 days, and only 2 of them" in notes[0]
    assert "(2 of the 16 churn outcomes name a touch; the decisions to do nothing keep 100% of theirs)" in notes[0]
    forced = _build_training_set(book, playbook, as_of=day(200), attribution="touch")
    assert forced.filter(pl.col("action_id") == "call").get_column("y_churn").sum() == 2


def test_auto_attribution_keeps_expansions_credited_to_the_calls_that_won_them(playbook: Playbook) -> None:
    """Expansions credited to upsells, the rest credited to no touch: the untouched dates keep their windows."""
    from tests.features.conftest import build_book

    n = 24
    accounts = [{"account_id": f"a{i}", "contract_start": day(-100)} for i in range(n)]
    # No logged none: the untouched dates are the decisions to do nothing.
    book = build_book(accounts, touches=[touch(f"a{i}", "upsell", day(0), f"u{i}", "model", 0.5) for i in range(12)])
    rows_out: list[dict[str, Any]] = []
    for i in range(n):
        if i < 12:
            rows_out.append({"account_id": f"a{i}", "ts": day(5), "value": 100.0, "touch_id": f"u{i}"})
        rows_out.append({"account_id": f"a{i}", "ts": day(20 + i), "value": 10.0, "touch_id": None})
    outcomes = pl.DataFrame(
        {
            "account_id": [r["account_id"] for r in rows_out],
            "ts": [r["ts"] for r in rows_out],
            "kind": ["expansion"] * len(rows_out),
            "outcome_id": [f"o{j}" for j in range(len(rows_out))],
            "value": [r["value"] for r in rows_out],
            "touch_id": [r["touch_id"] for r in rows_out],
        },
        schema=book.outcomes.schema,
    )
    book = Book(book.accounts, book.signals, book.touches, outcomes)
    notes: list[str] = []
    rows = _build_training_set(book, playbook, as_of=day(200), notes=notes)
    assert notes == []
    upsells = rows.filter(pl.col("action_id") == "upsell")
    # By touch: the upsell's own 100, not the later uncredited 10 its 30-day window would hold for some.
    assert upsells.get_column("y_expansion_value").to_list() == [100.0] * 12
    untouched = rows.filter(~pl.col("logged"))
    assert untouched.get_column("y_expansion").sum() > 10
