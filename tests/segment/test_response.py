"""Tests of segment responses per action family and of the spend efficiency, on hand-computed projections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from nextmove.errors import ConfigError
from nextmove.models.effect import EffectProjection
from nextmove.playbook import Action, Objective, Playbook
from nextmove.segment import BehaviorSegmenter, action_families, segment_book, segment_responses, spend_efficiency
from nextmove.segment.response import headline

AS_OF = datetime(2025, 3, 1, tzinfo=UTC)
# value, low, high of each action for the accounts of each segment (none is 0).
TABLE = {
    0: {"call": (100.0, 50.0, 150.0), "email": (10.0, 0.0, 20.0), "coupon": (-5.0, -10.0, 0.0)},
    1: {"call": (20.0, 0.0, 40.0), "email": (30.0, 10.0, 50.0), "coupon": (-5.0, -10.0, 0.0)},
}
ACCOUNTS = {"a0": 0, "a1": 0, "a2": 0, "a3": 0, "b0": 1, "b1": 1, "b2": 1, "b3": 1}


def _playbook() -> Playbook:
    return Playbook(
        objectives={
            "win": Objective(outcome="win", value="fixed", value_usd=100.0),
            "keep": Objective(outcome="lapse", sense="avoid", value="arr"),
        },
        actions=[
            Action(id="call", name="Call", team="cs", objective="win", effort_hours=2.0),
            Action(id="email", name="Email", team="marketing", objective="win"),
            Action(id="coupon", name="Coupon", team="sales", objective="keep"),
        ],
    )


def _projection() -> EffectProjection:
    rows = [
        (acct, action, *TABLE[seg][action]) for acct, seg in ACCOUNTS.items() for action in ("call", "email", "coupon")
    ]
    rows += [(acct, "none", 0.0, 0.0, 0.0) for acct in ACCOUNTS]
    values = pl.DataFrame(rows, schema=["account_id", "action_id", "value_usd", "low", "high"], orient="row")
    values = values.with_columns(cost_usd=pl.lit(0.0), pooled=pl.lit(False))
    effects = pl.DataFrame(
        schema={
            "account_id": pl.String,
            "action_id": pl.String,
            "objective": pl.String,
            "outcome": pl.String,
            "unit": pl.String,
            "baseline": pl.Float64,
            "effect": pl.Float64,
            "low": pl.Float64,
            "high": pl.Float64,
            "effect_usd": pl.Float64,
            "pooled": pl.Boolean,
        }
    )
    return EffectProjection(level=0.9, effects=effects, values=values, flagged_actions=())


def _assignments() -> pl.DataFrame:
    return pl.DataFrame({"account_id": list(ACCOUNTS), "segment_id": list(ACCOUNTS.values())})


def test_segment_response_is_its_best_single_action_with_ratio_and_rank() -> None:
    responses = segment_responses(_assignments(), _projection(), playbook=_playbook())
    assert [r.segment_id for r in responses] == [0, 1]
    top, low = responses
    assert (top.rank, top.value_usd, top.low, top.high, top.best_action) == (1, 100.0, 50.0, 150.0, "call")
    assert (low.rank, low.value_usd, low.low, low.high, low.best_action) == (2, 30.0, 10.0, 50.0, "email")
    # The book's best single action is the call: (4 × 100 + 4 × 20) / 8, not the mean of each account's best (65).
    assert top.book_value_usd == pytest.approx(60.0)
    assert (top.book_low, top.book_high, top.book_best_action) == (pytest.approx(25.0), pytest.approx(95.0), "call")
    assert top.ratio == pytest.approx(100 / 60)
    assert low.ratio == pytest.approx(30 / 60)
    assert top.material
    assert top.to_dict()["material"] is True


def test_family_responses_compare_each_team_with_the_book() -> None:
    top, low = segment_responses(_assignments(), _projection(), playbook=_playbook())
    fams = {f.family: f for f in top.families}
    assert [f.family for f in top.families] == ["cs", "marketing", "sales"]  # best first
    assert fams["cs"].value_usd == 100.0
    assert fams["cs"].book_value_usd == 60.0
    assert fams["cs"].ratio == pytest.approx(100 / 60)
    assert fams["cs"].best_action == "call"
    assert fams["sales"].ratio is None  # the book gains nothing from it: no ratio
    assert fams["cs"].material  # its interval is above $0
    assert not fams["sales"].material
    assert fams["sales"].to_dict()["material"] is False
    # Marketing's book figure (20) is under 35 % of the book's response (60): no ratio with that floor.
    strict = {f.family: f for f in segment_responses(_assignments(), _projection(), min_book_share=0.35)[1].families}
    assert strict["email"].ratio is None
    assert strict["call"].ratio == pytest.approx(20 / 60)
    assert low.families[0].family == "marketing"
    assert low.families[0].ratio == pytest.approx(1.5)
    by_objective = segment_responses(_assignments(), _projection(), playbook=_playbook(), families="objective")
    assert {f.family for f in by_objective[0].families} == {"win", "keep"}
    assert by_objective[0].families[0].value_usd == 100.0


def test_eligibility_limits_the_best_action() -> None:
    eligible = pl.DataFrame(
        {
            "account_id": [a for a in ACCOUNTS for _ in range(2) if a != "a0"] + ["a0"],
            "action_id": [x for a in ACCOUNTS if a != "a0" for x in ("call", "email")] + ["email"],
        }
    )
    top = segment_responses(_assignments(), _projection(), playbook=_playbook(), eligible=eligible)[0]
    # The call for every account of the segment the rules allow it for; a0, which may not have it, does nothing.
    assert top.value_usd == pytest.approx(3 * 100 / 4)
    assert top.best_action == "call"


def _noisy(n: int = 300, mean: float = -10.0, seed: int = 3) -> tuple[pl.DataFrame, EffectProjection]:
    """Three segments, three actions: every action loses $10 per account on average over the book, with
    per-account estimates scattered by $200 around that (intervals ± $400), as an effect model's are."""
    rng = np.random.default_rng(seed)
    ids = [f"acct-{i:03d}" for i in range(n)]
    rows = []
    for action in ("call", "email", "coupon"):
        noise = rng.normal(0.0, 200.0, n)
        noise -= noise.mean()  # each action's mean over the book is exactly `mean`
        rows += [(a, action, mean + e, mean + e - 400.0, mean + e + 400.0) for a, e in zip(ids, noise, strict=True)]
    rows += [(a, "none", 0.0, 0.0, 0.0) for a in ids]
    values = pl.DataFrame(rows, schema=["account_id", "action_id", "value_usd", "low", "high"], orient="row")
    projection = _projection()
    assignments = pl.DataFrame({"account_id": ids, "segment_id": [i % 3 for i in range(n)]})
    return assignments, EffectProjection(0.9, projection.effects, values, ())


def test_book_response_is_not_positive_when_no_action_pays_on_average() -> None:
    # Each account's best noisy estimate, floored at $0, averages about +$150 here although every action
    # loses on average: the winner's curse. The book's response is its best single action's: none gains.
    assignments, projection = _noisy()
    responses = segment_responses(assignments, projection, playbook=_playbook())
    for r in responses:
        assert r.book_value_usd == 0.0
        assert (r.book_low, r.book_high, r.book_best_action) == (0.0, 0.0, None)
        assert r.ratio is None
        # A segment's best action may come out above $0 by chance, never beyond its interval.
        assert r.value_usd <= 0.0 or r.low <= 0.0
        assert not r.material
        assert r.best_family is None
        assert headline(r).endswith("; no action pays reliably here")
    touches = pl.DataFrame(
        {
            "account_id": assignments.get_column("account_id").head(60),
            "action_id": ["call", "email", "coupon"] * 20,
            "ts": [AS_OF - timedelta(days=1 + i) for i in range(60)],
        }
    )
    spend = spend_efficiency(assignments, responses, projection, touches, as_of=AS_OF, playbook=_playbook())
    assert (spend.moved_touches, spend.recoverable_usd) == (0, 0.0)
    assert not spend.material


def test_segment_book_response_of_a_book_where_no_action_pays() -> None:
    assignments, projection = _noisy(seed=5)
    snapshot = assignments.select(
        "account_id", pl.col("segment_id").cast(pl.Float64).mul(10.0).alias("logins_mean_90d")
    ).with_columns(arr=pl.lit(1000.0))
    report = segment_book(snapshot, projection=projection, playbook=_playbook(), segmenter=BehaviorSegmenter(k=3))
    assert report.book_response_usd == 0.0
    assert (report.book_response_low, report.book_response_high, report.book_best_action) == (0.0, 0.0, None)
    assert all(s.response is not None and s.response.best_family is None for s in report.segments)
    assert "no action pays reliably here" in report.segments[0].headline


def test_action_families_without_playbook_are_the_actions() -> None:
    assert action_families(["call", "call:morning", "none"], None) == {"call": "call", "call:morning": "call"}
    with pytest.raises(ConfigError, match="families"):
        action_families(["call"], None, "channel")  # type: ignore[arg-type]


def _touches() -> pl.DataFrame:
    day = timedelta(days=1)
    rows = [
        ("b0", "call", AS_OF - 10 * day),
        ("b1", "email", AS_OF - 20 * day),
        ("b2", "call", AS_OF - 30 * day),
        ("a0", "call", AS_OF - 5 * day),
        ("b3", "none", AS_OF - 5 * day),  # doing nothing is not effort
        ("a1", "call", AS_OF - 200 * day),  # before the window
        ("b3", "call", AS_OF + day),  # after the run
    ]
    return pl.DataFrame(rows, schema=["account_id", "action_id", "ts"], orient="row")


def test_spend_efficiency_share_and_recoverable_value() -> None:
    projection = _projection()
    responses = segment_responses(_assignments(), projection, playbook=_playbook())
    spend = spend_efficiency(_assignments(), responses, projection, _touches(), as_of=AS_OF, playbook=_playbook())
    assert (spend.touches, spend.touches_below_average) == (4, 3)
    assert spend.share_below_average == pytest.approx(0.75)
    assert (spend.hours, spend.hours_below_average) == (6.0, 4.0)
    assert spend.share_hours_below_average == pytest.approx(4 / 6)
    assert spend.below_average_segments == [1]
    # a1, a2, a3 got no touch in 90 days: each takes one, worth 100, from touches worth 20, 20, 30.
    assert spend.moved_touches == 3
    assert spend.recoverable_usd == pytest.approx(3 * 100 - 70)
    assert spend.low == pytest.approx(3 * 50 - (40 + 50 + 40))
    assert spend.high == pytest.approx(3 * 150 - (0 + 10 + 0))


def test_spend_reallocation_moves_touches_only_to_accounts_not_worked_lately() -> None:
    # a0 and a2 were touched in the window: a1 and a3 take the two lowest-value touches.
    touches = pl.concat(
        [_touches(), pl.DataFrame([("a2", "email", AS_OF - timedelta(days=3))], schema=_touches().schema, orient="row")]
    )
    playbook = _playbook()
    projection = _projection()
    responses = segment_responses(_assignments(), projection, playbook=playbook)
    spend = spend_efficiency(_assignments(), responses, projection, touches, as_of=AS_OF, playbook=playbook)
    assert spend.moved_touches == 2
    assert spend.recoverable_usd == pytest.approx(2 * 100 - 20 - 20)  # the two lowest-value touches


def test_spend_reallocation_values_groups_not_the_best_and_worst_accounts() -> None:
    # Segment 0's call is worth 40, 100 and 160 to its untouched accounts a1-a3 (100 on average), and the two
    # calls of segment 1 were worth 0 and 40 (20 on average). Moving one touch gains 100 - 20 = 80, not the
    # 160 - 0 of the account with the best estimate and the touch with the worst: those are the noise's extremes.
    spread = {"a1": 40.0, "a2": 100.0, "a3": 160.0, "b0": 0.0, "b2": 40.0}
    projection = _projection()
    values = projection.values.with_columns(
        pl.when(pl.col("action_id") == "call")
        .then(pl.col("account_id").replace_strict(spread, default=None, return_dtype=pl.Float64))
        .otherwise(None)
        .fill_null(pl.col("value_usd"))
        .alias("value_usd")
    )
    projection = EffectProjection(0.9, projection.effects, values, ())
    touches = _touches().filter(pl.col("account_id").is_in(["a0", "b0", "b2"]))  # calls only
    responses = segment_responses(_assignments(), projection, playbook=_playbook())
    spend = spend_efficiency(_assignments(), responses, projection, touches, as_of=AS_OF, playbook=_playbook())
    assert spend.below_average_segments == [1]
    assert spend.moved_touches == 2  # a1-a3 could take three; two calls to move
    assert spend.recoverable_usd == pytest.approx(2 * (100 - 20))
    assert spend.low == pytest.approx(2 * (50 - 40))
    assert spend.material


def test_spend_moves_no_touch_to_a_segment_whose_best_action_may_be_worth_nothing() -> None:
    projection = _projection()
    wide = projection.values.with_columns(
        pl.when(pl.col("account_id").str.starts_with("a") & (pl.col("action_id") == "call"))
        .then(-50.0)
        .otherwise(pl.col("low"))
        .alias("low")
    )
    projection = EffectProjection(0.9, projection.effects, wide, ())
    responses = segment_responses(_assignments(), projection, playbook=_playbook())
    assert responses[0].value_usd == 100.0
    assert not responses[0].material
    spend = spend_efficiency(_assignments(), responses, projection, _touches(), as_of=AS_OF, playbook=_playbook())
    assert spend.below_average_segments == [1]
    assert (spend.moved_touches, spend.recoverable_usd) == (0, 0.0)


def test_spend_efficiency_errors() -> None:
    projection = _projection()
    responses = segment_responses(_assignments(), projection)
    with pytest.raises(ConfigError, match="spend window"):
        spend_efficiency(_assignments(), responses, projection, _touches(), as_of=AS_OF, days=0)
    with pytest.raises(ConfigError, match="'ts'"):
        spend_efficiency(_assignments(), responses, projection, _touches().drop("ts"), as_of=AS_OF)


def test_segment_responses_errors() -> None:
    projection = _projection()
    with pytest.raises(ConfigError, match="none of the segmented accounts"):
        segment_responses(pl.DataFrame({"account_id": ["zz"], "segment_id": [0]}), projection)
    doubled = EffectProjection(0.9, projection.effects, pl.concat([projection.values, projection.values]), ())
    with pytest.raises(ConfigError, match="repeats"):
        segment_responses(_assignments(), doubled)
    per_decision = EffectProjection(
        0.9, projection.effects, projection.values.with_columns(decision_ts=pl.lit(AS_OF)), ()
    )
    with pytest.raises(ConfigError, match="decisions"):
        segment_responses(_assignments(), per_decision)


def test_headline_says_how_a_segment_responds() -> None:
    top, low = segment_responses(_assignments(), _projection(), playbook=_playbook(), min_book_share=0.35)
    assert headline(top) == "responds 1.7× the book average; best family cs (call), 1.7× the book average"
    assert headline(low) == "responds 0.5× the book average; best family marketing (email), $30 per account"


def test_no_best_family_when_its_interval_reaches_zero() -> None:
    # The family worth most here ($26 per account) but [-$384, $353]: not named, as no family that may be $0.
    noisy = _projection().values.with_columns(
        pl.when(pl.col("action_id") == "none")
        .then(0.0)
        .otherwise(pl.col("value_usd") - pl.col("value_usd").abs() - 1.0)
        .alias("value_usd")
    )
    noisy = noisy.with_columns(
        pl.when(pl.col("action_id") == "email").then(26.0).otherwise(pl.col("value_usd")).alias("value_usd"),
        pl.when(pl.col("action_id") == "email").then(-384.0).otherwise(pl.col("low")).alias("low"),
        pl.when(pl.col("action_id") == "email").then(353.0).otherwise(pl.col("high")).alias("high"),
    )
    responses = segment_responses(_assignments(), EffectProjection(0.9, _projection().effects, noisy, ()))
    for r in responses:
        assert (r.value_usd, r.low, r.high, r.best_action) == (26.0, -384.0, 353.0, "email")
        assert r.families[0].family == "email"
        assert not r.material
        assert r.best_family is None
        assert r.to_dict()["best_family"] is None
        assert r.ratio is None  # the book's figure reaches $0 too
        assert headline(r) == (
            "worth $26 per account [-$384, $353] (the book average is not reliably above $0); "
            "no action pays reliably here"
        )


def test_no_best_family_when_no_family_is_worth_anything() -> None:
    # Every response $0 [$0, $0], yet "best family: marketing": the family that loses least ($1 of cost).
    costly = _projection()
    values = costly.values.with_columns(
        pl.when(pl.col("action_id") == "none").then(0.0).otherwise(-1.0 - pl.col("value_usd").abs()).alias("value_usd")
    ).with_columns(pl.col("value_usd").alias("low"), pl.col("value_usd").alias("high"))
    responses = segment_responses(
        _assignments(), EffectProjection(0.9, costly.effects, values, ()), playbook=_playbook()
    )
    for r in responses:
        assert r.value_usd == 0.0
        assert r.families  # kept, with their (negative) values
        assert r.best_family is None
        assert r.to_dict()["best_family"] is None
        assert headline(r).endswith("; no action pays reliably here")
        assert "best family" not in headline(r)
    top, _ = segment_responses(_assignments(), _projection(), playbook=_playbook())
    assert top.best_family is not None
    assert top.best_family.family == "cs"
    assert top.to_dict()["best_family"] == "cs"
