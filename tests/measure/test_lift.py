"""Tests of lift against control: planted effects through a real store, coverage, horizon errors, the lab."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from nextmove.book import Book
from nextmove.book.notes import lagging_book_notes
from nextmove.book.validate import load_book
from nextmove.decide.explore import assign_control
from nextmove.errors import ConfigError
from nextmove.measure.lift import (
    HorizonNotOverError,
    LiftReport,
    estimate_lift,
    measured_outcomes,
    recommendations_frame,
)
from nextmove.measure.policy import lifecycle_default_policy
from nextmove.playbook import Playbook
from nextmove.playbook.loader import parse_playbook
from nextmove.sim import LabEnvironment, SimConfig
from nextmove.store import RecommendationRecord, RunRecord, open_store

AS_OF = datetime(2026, 2, 2, tzinfo=UTC)

# A subscription business, not the lab: its own outcome kinds, objectives and actions.
PLAYBOOK = """
name = "Streaming subscriptions"
horizon_days = 60
control_fraction = 0.4

[objectives.keep]
outcome = "cancellation"
sense = "avoid"
value = "arr"

[objectives.upgrade]
outcome = "plan_upgrade"
value = "amount"

[objectives.referral]
outcome = "referral"
value = "fixed"
value_usd = 50

[[actions]]
id = "winback_discount"
name = "Win-back discount"
team = "marketing"
objective = "keep"
cost_usd = 4

[[actions]]
id = "premium_trial"
name = "Premium trial"
team = "marketing"
objective = "upgrade"
cost_usd = 1
default_for_stages = ["subscriber"]

[[actions]]
id = "refer_a_friend"
name = "Refer-a-friend mail"
team = "marketing"
objective = "referral"
"""
ACTIONS = ["winback_discount", "premium_trial", "refer_a_friend"]


@dataclass(frozen=True)
class Planted:
    book: Book
    playbook: Playbook
    records: list[RecommendationRecord]
    cancel_lift: float
    upgrade_lift: float


def planted(
    n: int,
    seed: int,
    *,
    cancel: tuple[float, float] = (0.12, 0.20),
    upgrade_amount: tuple[float, float] = (30.0, 18.0),
    referral: float = 0.05,
) -> Planted:
    """A subscription book with a constant planted effect of being in a treated arm.

    ``cancel`` and ``upgrade_amount`` are (treated, control): the cancellation probability within
    the horizon, and the expected upgrade dollars (an upgrade happens with probability 0.3, its
    amount exponential). Referrals do not depend on the arm. Outcomes outside the horizon, and a
    customer already gone before as-of, must not count.
    """
    rng = np.random.default_rng(seed)
    ids = [f"sub-{i:05d}" for i in range(n)]
    arr = rng.uniform(60.0, 240.0, n).round(2)
    u = rng.random(n)
    arm = np.where(u < 0.4, "control", np.where(u < 0.9, "model", "explore"))
    treated = arm != "control"
    model_action = rng.choice(np.array(ACTIONS), n)
    action = np.where(treated, model_action, "premium_trial")
    explore = arm == "explore"
    action[explore] = rng.choice(np.array(ACTIONS), int(explore.sum()))

    def days(k: int) -> np.ndarray:
        return rng.uniform(1.0, 59.0, k)

    cancel_p = np.where(treated, cancel[0], cancel[1])
    cancelled = rng.random(n) < cancel_p
    upgraded = rng.random(n) < 0.3
    amount = rng.exponential(np.where(treated, upgrade_amount[0], upgrade_amount[1]) / 0.3)
    referred = rng.random(n) < referral
    rows = []
    for mask, kind, value in (
        (cancelled, "cancellation", arr),
        (upgraded, "plan_upgrade", amount),
        (referred, "referral", np.ones(n)),
    ):
        idx = np.flatnonzero(mask)
        rows.append(
            pl.DataFrame(
                {
                    "account_id": [ids[i] for i in idx],
                    "ts": [AS_OF + timedelta(days=float(d)) for d in days(len(idx))],
                    "kind": [kind] * len(idx),
                    "value": value[idx],
                }
            )
        )
    # Noise the window must ignore: before as-of, and after the horizon.
    rows.append(
        pl.DataFrame(
            {
                "account_id": ids[:50],
                "ts": [AS_OF - timedelta(days=10)] * 25 + [AS_OF + timedelta(days=75)] * 25,
                "kind": ["plan_upgrade"] * 25 + ["cancellation"] * 25,
                "value": [5000.0] * 50,
            }
        )
    )
    gone = f"sub-{n:05d}"
    before = AS_OF - timedelta(days=30)
    rows.append(pl.DataFrame({"account_id": [gone], "ts": [before], "kind": ["cancellation"], "value": [1.0]}))
    outcomes = pl.concat(rows).with_row_index("i").with_columns(pl.format("o{}", pl.col("i")).alias("outcome_id"))
    accounts = pl.DataFrame(
        {
            "account_id": [*ids, gone],
            "arr": [*arr.tolist(), 100.0],
            "lifecycle_stage": ["subscriber"] * (n + 1),
            "country": rng.choice(np.array(["FR", "DE", "BR"]), n + 1).tolist(),
        }
    )
    signals = pl.DataFrame(
        {
            "account_id": [*ids, gone],
            "ts": [AS_OF - timedelta(days=3)] * (n + 1),
            "name": ["hours_watched"] * (n + 1),
            "value": rng.gamma(2.0, 5.0, n + 1),
        }
    )
    book = load_book(
        {"accounts": accounts, "signals": signals, "outcomes": outcomes.drop("i")}, as_of=AS_OF + timedelta(days=90)
    )
    records = [
        RecommendationRecord(
            run_id="run-1",
            account_id=ids[i],
            action_id=str(action[i]),
            arm=str(arm[i]),
            propensity=1.0,
            expected_value_usd=1.0,
            evidence={
                "schema": 1,
                "action_id": str(action[i]),
                "arm": str(arm[i]),
                "model_action_id": str(model_action[i]),
                "projected": [
                    {"objective": "keep", "outcome": "cancellation", "unit": "probability", "effect": -0.08,
                     "effect_usd": 0.08 * arr[i]},
                    {"objective": "upgrade", "outcome": "plan_upgrade", "unit": "usd", "effect": 12.0,
                     "effect_usd": 12.0},
                    {"objective": "referral", "outcome": "referral", "unit": "probability", "effect": 0.0,
                     "effect_usd": 0.0},
                ],
            },
        )
        for i in range(n)
    ] + [RecommendationRecord(run_id="run-1", account_id=gone, action_id="none", arm="control", propensity=1.0,
                              expected_value_usd=0.0)]  # fmt: skip
    return Planted(
        book,
        parse_playbook(PLAYBOOK),
        records,
        cancel_lift=cancel[0] - cancel[1],
        upgrade_lift=upgrade_amount[0] - upgrade_amount[1],
    )


def by_objective(report: LiftReport) -> dict[str, object]:
    return {o.objective: o for o in report.objectives}


# ---- a real store ------------------------------------------------------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema (as tests/store does), dropped afterwards."""
    if os.environ.get("NEXTMOVE_SKIP_POSTGRES") == "1":
        pytest.skip("NEXTMOVE_SKIP_POSTGRES=1")
    admin_url = os.environ.get("NEXTMOVE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    schema = f"nextmove_test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(admin_url, connect_args={"connect_timeout": 5})
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(admin_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def lift_through_store(url: str, case: Planted) -> LiftReport:
    run = RunRecord(
        run_id="run-1",
        book_source="memory",
        playbook_hash=case.playbook.content_hash(),
        status="succeeded",
        as_of=AS_OF,
    )
    with open_store(url) as store:
        store.save_run(run, case.records)
    with open_store(url) as store:
        stored = store.get_run("run-1")
        assert stored.as_of is not None
        recs = store.recommendations("run-1")
    frame = recommendations_frame(recs)
    return estimate_lift(frame, case.book, case.playbook, as_of=stored.as_of, run_id="run-1", level=0.99)


def check_planted(report: LiftReport, case: Planted) -> None:
    keep, upgrade, referral = (by_objective(report)[k] for k in ("keep", "upgrade", "referral"))
    assert keep.unit == "probability"
    assert upgrade.unit == "usd"
    assert keep.low <= case.cancel_lift <= keep.high  # type: ignore[attr-defined]
    assert upgrade.low <= case.upgrade_lift <= upgrade.high  # type: ignore[attr-defined]
    assert referral.low <= 0.0 <= referral.high  # type: ignore[attr-defined]
    # Fewer cancellations are worth money: the retention dollars are positive when the lift is negative.
    assert (keep.lift < 0) == (keep.lift_usd > 0)  # type: ignore[attr-defined]
    treated = report.arms["model"] + report.arms["explore"]
    assert keep.impact_usd == pytest.approx(keep.lift_usd * treated)  # type: ignore[attr-defined]
    # The customer gone before as-of is left out, not counted as a control account.
    assert sum(report.left_out.values()) == 1
    assert report.complete
    assert report.horizon_days == 60


def test_lift_through_sqlite_store_covers_the_planted_lift(tmp_path: Path) -> None:
    case = planted(3000, seed=1)
    report = lift_through_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}", case)
    check_planted(report, case)
    # Per action: treated accounts recommended it vs control accounts the model would have given it.
    actions = {(a.action_id, a.objective): a for a in report.actions}
    discount = actions[("winback_discount", "keep")]
    assert discount.treated_accounts > 300
    assert discount.control_accounts > 300
    assert discount.projected_effect == pytest.approx(-0.08)
    assert discount.low is not None
    assert discount.low <= case.cancel_lift <= discount.high
    assert discount.error == pytest.approx(discount.realised_effect - discount.projected_effect)  # type: ignore[operator]
    json.dumps(report.to_dict())  # JSON-ready: no NaN, no datetime objects


@pytest.mark.postgres
def test_lift_through_postgres_store_covers_the_planted_lift(pg_url: str) -> None:
    case = planted(1500, seed=2)
    check_planted(lift_through_store(pg_url, case), case)


def test_lift_intervals_cover_the_planted_effect_at_their_level() -> None:
    hits = {"keep": 0, "upgrade": 0}
    runs = 12
    for seed in range(runs):
        case = planted(500, seed=100 + seed)
        report = estimate_lift(recommendations_frame(case.records), case.book, case.playbook, as_of=AS_OF, level=0.9)
        objectives = by_objective(report)
        truth = {"keep": case.cancel_lift, "upgrade": case.upgrade_lift}
        for name in hits:
            o = objectives[name]
            hits[name] += o.low <= truth[name] <= o.high  # type: ignore[attr-defined]
    for name, n in hits.items():
        assert n >= 9, (name, n)  # 90% intervals: 12 × 0.9 = 10.8 expected


def test_lift_reads_evidence_as_json_text_like_a_run_csv() -> None:
    case = planted(600, seed=3)
    from_records = estimate_lift(recommendations_frame(case.records), case.book, case.playbook, as_of=AS_OF)
    csv_like = pl.DataFrame(
        {
            "account_id": [r.account_id for r in case.records],
            "action_id": [r.action_id for r in case.records],
            "arm": [r.arm for r in case.records],
            "evidence": [json.dumps(r.evidence) for r in case.records],
        }
    )
    from_text = estimate_lift(csv_like, case.book, case.playbook, as_of=AS_OF)
    assert from_text.objectives == from_records.objectives
    assert from_text.actions == from_records.actions


def test_lift_value_charges_the_cost_of_the_variant_recommended() -> None:
    # premium_trial ($1) gets two variants: "short" at the action's cost, "deep" at $9.
    case = planted(600, seed=3)
    playbook = parse_playbook(
        PLAYBOOK.replace(
            "cost_usd = 1\n",
            'cost_usd = 1\nvariants = [{ id = "short" }, { id = "deep", cost_usd = 9 }]\n',
        )
    )
    records = [
        replace(r, variant="deep" if r.action_id == "premium_trial" and r.arm != "control" else None)
        for r in case.records
    ]
    deep = sum(r.variant == "deep" for r in records)
    treated = sum(r.arm != "control" for r in records)
    assert deep > 50
    plain = estimate_lift(recommendations_frame(case.records), case.book, playbook, as_of=AS_OF).value
    frame = recommendations_frame(records)
    assert frame.get_column("variant").drop_nulls().unique().to_list() == ["deep"]
    charged = estimate_lift(frame, case.book, playbook, as_of=AS_OF).value
    # Each deep trial costs $8 more than the action's $1: the treated cohort's net value drops by that.
    assert charged.treated_mean_usd == pytest.approx(plain.treated_mean_usd - 8.0 * deep / treated)
    assert charged.control_mean_usd == pytest.approx(plain.control_mean_usd)
    # A run's CSV (a variant column beside the evidence) is read the same way.
    csv_like = frame.select("account_id", "action_id", "variant", "arm").with_columns(
        pl.Series("evidence", [json.dumps(r.evidence) for r in records])
    )
    assert estimate_lift(csv_like, case.book, playbook, as_of=AS_OF).value == charged


def test_lift_control_none_share_counts_control_that_got_nothing_whatever_its_default() -> None:
    # Every control account's default is premium_trial; capacity leaves a third of them with nothing.
    case = planted(600, seed=3)
    control = [r for r in case.records if r.arm == "control" and r.action_id == "premium_trial"]
    blocked = {r.account_id for r in control[::3]}
    records = [
        replace(r, action_id="none", evidence={**r.evidence, "action_id": "none", "default_action_id": "premium_trial"})
        if r.account_id in blocked
        else replace(r, evidence={**r.evidence, "default_action_id": "premium_trial"})
        for r in case.records
    ]
    report = estimate_lift(recommendations_frame(records), case.book, case.playbook, as_of=AS_OF)
    for a in report.actions:
        mine = [r for r in control if r.evidence["model_action_id"] == a.action_id]
        assert a.control_accounts == len(mine)
        assert a.control_none_share == pytest.approx(sum(r.account_id in blocked for r in mine) / len(mine))
        assert 0 < a.control_none_share < 1


def test_lift_measures_only_the_horizon_after_as_of() -> None:
    case = planted(400, seed=4)
    labels = measured_outcomes(case.book, case.playbook, AS_OF)
    # 25 upgrades of $5,000 before as-of and 25 cancellations after the horizon are outside the window.
    assert labels.get_column("y_plan_upgrade_value").max() < 5000  # type: ignore[operator]
    assert f"sub-{400:05d}" not in labels.get_column("account_id").to_list()
    assert not labels.get_column("censored").any()


def _with(book: Book, **tables: pl.DataFrame) -> Book:
    return replace(book, **tables)


def _lift(case: Planted, book: Book, **kwargs: object) -> LiftReport:
    return estimate_lift(recommendations_frame(case.records), book, case.playbook, as_of=AS_OF, **kwargs)  # type: ignore[arg-type]


def test_lift_notes_outcomes_that_stop_before_the_rest_of_the_data() -> None:
    case = planted(300, seed=7)
    assert _lift(case, case.book).notes == []
    # Usage still flows 100 days after the run, but the outcomes export stops on day 30.
    later = case.book.signals.with_columns(pl.col("ts") + timedelta(days=97))
    signals = pl.concat([case.book.signals, later])
    lagging = _with(
        case.book, signals=signals, outcomes=case.book.outcomes.filter(pl.col("ts") < AS_OF + timedelta(days=30))
    )
    (note,) = _lift(case, lagging).notes
    # The words and dates of the notes of validate and run on the same outcomes (nextmove.book.notes).
    assert note.startswith("the outcomes end 2026-03-03, 65 days before the book's other data (2026-05-07)")
    assert "(--until) 2026-03-03T13:40:" in note
    # One rule for all: outcomes that end 10 days before the rest are no lag for run or validate, nor for lift
    # (it had its own 7 days).
    shorter = _with(
        case.book,
        signals=pl.concat([case.book.signals, case.book.signals.with_columns(pl.col("ts") + timedelta(days=71))]),
        outcomes=case.book.outcomes.filter(pl.col("ts") < AS_OF + timedelta(days=58)),
    )
    assert lagging_book_notes(shorter, AS_OF + timedelta(days=68)) == []
    assert _lift(case, shorter).notes == []
    # None at all after the run: every lift would be 0.
    none_after = _with(case.book, signals=signals, outcomes=case.book.outcomes.filter(pl.col("ts") < AS_OF))
    note, no_interval = _lift(case, none_after).notes
    assert "no outcome after the run's decision time (2026-02-02)" in note
    assert no_interval.startswith("upgrade: no interval")
    # Reading up to a time the book has not reached.
    (note,) = _lift(case, case.book, observed_until=AS_OF + timedelta(days=200)).notes
    assert "--until 2026-08-20 is after the book's data" in note  # through 2026-08-20: up to the 21st's midnight


def test_lift_notes_ended_accounts_without_arr() -> None:
    case = planted(300, seed=8)
    cancelled = case.book.outcomes.filter(
        (pl.col("kind") == "cancellation") & pl.col("ts").is_between(AS_OF, AS_OF + timedelta(days=60))
    ).get_column("account_id")
    # A billing export that zeroes the ARR of the customers who left.
    zeroed = case.book.accounts.with_columns(
        pl.when(pl.col("account_id").is_in(cancelled.implode())).then(0.0).otherwise(pl.col("arr")).alias("arr")
    )
    report = _lift(case, _with(case.book, accounts=zeroed))
    keep = next(o for o in report.objectives if o.objective == "keep")
    assert keep.lift_usd == 0.0  # what the note is about: the churn is valued at $0
    note, dollars = report.notes
    assert f"{cancelled.n_unique()} of the {cancelled.n_unique()} measured accounts that ended" in note
    # Every account's dollars are $0, so they have no interval, while the rate has one: a note says why.
    assert (keep.lift_usd_low, keep.lift_usd_high) == (None, None)
    assert keep.low is not None
    assert dollars.startswith("keep: no interval in dollars: the accounts that had a cancellation have no ARR")


def test_lift_with_no_outcome_yet_says_the_value_row_is_the_cost_and_keeps_the_rate_interval_in_dollars() -> None:
    case = planted(300, seed=7)
    # Measured 25 days after the run (usage flows on), before a single outcome has reached the book.
    later = case.book.signals.with_columns(pl.col("ts") + timedelta(days=28))
    early = _with(
        case.book,
        signals=pl.concat([case.book.signals, later]),
        outcomes=case.book.outcomes.filter(pl.col("ts") < AS_OF),
    )
    report = _lift(case, early, observed_until=AS_OF + timedelta(days=25), allow_partial=True)
    assert not report.complete
    note, upgrade_note = report.notes
    assert note.startswith("no outcome yet: the book holds none after the run's decision time (2026-02-02), 25 of")
    assert "the total value row is only the plays' cost so far" in note
    assert "every lift is 0" not in note
    # The value row is the cost of the plays, which needs no outcome: it has an interval away from 0.
    value = report.value
    assert value.low is not None
    assert value.high is not None
    assert value.high < 0
    keep, upgrade, referral = report.objectives
    for o in (keep, referral):
        assert (o.lift, o.lift_usd) == (0.0, 0.0)
        assert o.low is not None
        assert o.high is not None
        assert o.low < 0 < o.high
        # The rate has an interval, so its dollars have one: ARR objectives too, where every account's dollars are 0.
        assert o.lift_usd_low is not None
        assert o.lift_usd_high is not None
        assert o.lift_usd_low < 0 < o.lift_usd_high
        assert o.impact_low_usd == pytest.approx(o.lift_usd_low * o.treated_accounts)
    mean_arr = float(
        measured_outcomes(early, case.playbook, AS_OF, observed_until=AS_OF + timedelta(days=25))
        .join(recommendations_frame(case.records).select("account_id"), on="account_id")
        .get_column("arr")
        .mean()  # type: ignore[arg-type]
    )
    # Avoiding a cancellation is worth the ARR kept: the rate's interval, at the mean ARR, sign turned.
    assert (keep.lift_usd_low, keep.lift_usd_high) == pytest.approx((-keep.high * mean_arr, -keep.low * mean_arr))
    assert (referral.lift_usd_low, referral.lift_usd_high) == pytest.approx((referral.low * 50, referral.high * 50))
    # An amount nobody had has no spread: no interval, in the lift or its dollars, and a note says why.
    assert (upgrade.low, upgrade.lift_usd_low, upgrade.impact_low_usd) == (None, None, None)
    assert upgrade_note == (
        "upgrade: no interval: every measured account's plan_upgrade amount in the window is the same ($0), "
        "so there is no spread to measure"
    )
    # Once the whole horizon has passed without an outcome, the note says so, not "yet".
    later_notes = _lift(case, early, observed_until=AS_OF + timedelta(days=61)).notes
    (late,) = [n for n in later_notes if n.startswith("the book holds no outcome after the run's decision time")]
    assert "over the whole 60-day horizon" in late
    assert "the total value row is only the plays' cost" in late


def test_lift_of_an_amount_nobody_had_has_no_interval() -> None:
    case = planted(300, seed=9)
    report = _lift(case, _with(case.book, outcomes=case.book.outcomes.filter(pl.col("kind") != "plan_upgrade")))
    upgrade = next(o for o in report.objectives if o.objective == "upgrade")
    assert (upgrade.lift, upgrade.low, upgrade.high, upgrade.stderr) == (0.0, None, None, None)
    projected = [a for a in report.actions if a.objective == "upgrade" and a.projected_effect is not None]
    assert projected
    assert all(a.within_interval is None for a in projected)  # no verdict without data


def test_lift_reads_dated_outcomes_as_whole_days() -> None:
    case = planted(300, seed=10)
    ids = [r.account_id for r in case.records[:2]]
    # Outcomes of dates only: the run's own day counts, the day the horizon ends does not.
    dated = pl.DataFrame(
        {
            "account_id": ids,
            "ts": [AS_OF, AS_OF + timedelta(days=60)],
            "kind": ["referral", "referral"],
            "value": [1.0, 1.0],
            "outcome_id": ["d1", "d2"],
        }
    ).with_columns(pl.col("ts").cast(case.book.outcomes.schema["ts"]))
    outcomes = pl.concat([case.book.outcomes.with_columns(pl.col("ts").dt.truncate("1d")), dated], how="diagonal")
    mine = ~pl.col("account_id").is_in(ids) | pl.col("outcome_id").is_in(["d1", "d2"])
    labels = measured_outcomes(_with(case.book, outcomes=outcomes.filter(mine)), case.playbook, AS_OF)
    labels = labels.filter(pl.col("account_id").is_in(ids))
    assert dict(labels.select("account_id", "y_referral").rows()) == {ids[0]: 1, ids[1]: 0}


def test_lift_before_the_horizon_says_how_many_days_are_left() -> None:
    case = planted(300, seed=5)
    early = AS_OF + timedelta(days=20)
    with pytest.raises(HorizonNotOverError, match="40 days after") as caught:
        estimate_lift(recommendations_frame(case.records), case.book, case.playbook, as_of=AS_OF, observed_until=early)
    assert caught.value.days_left == pytest.approx(40.0)
    partial = estimate_lift(
        recommendations_frame(case.records),
        case.book,
        case.playbook,
        as_of=AS_OF,
        observed_until=early,
        allow_partial=True,
    )
    assert not partial.complete
    assert partial.observed_days == pytest.approx(20.0)
    with pytest.raises(HorizonNotOverError, match="data runs up to"):
        estimate_lift(recommendations_frame(case.records), case.book, case.playbook, as_of=AS_OF + timedelta(days=400))


def test_lift_errors_say_what_to_fix() -> None:
    case = planted(200, seed=6)
    frame = recommendations_frame(case.records)
    no_control = frame.filter(pl.col("arm") != "control")
    with pytest.raises(ConfigError, match="control cohort"):
        estimate_lift(no_control, case.book, case.playbook, as_of=AS_OF)
    with pytest.raises(ConfigError, match="one row per account"):
        estimate_lift(pl.concat([frame, frame.head(1)]), case.book, case.playbook, as_of=AS_OF)
    with pytest.raises(ConfigError, match="'arm'"):
        estimate_lift(frame.drop("arm"), case.book, case.playbook, as_of=AS_OF)
    with pytest.raises(ConfigError, match="level"):
        estimate_lift(frame, case.book, case.playbook, as_of=AS_OF, level=95)
    # Arms outside the cohorts are counted as left out, not mixed in.
    odd = frame.with_columns(pl.when(pl.int_range(pl.len()) < 5).then(pl.lit("manual")).otherwise("arm").alias("arm"))
    report = estimate_lift(odd, case.book, case.playbook, as_of=AS_OF)
    assert report.left_out["in another arm"] == 5


# ---- the lab -----------------------------------------------------------------------------------


def test_lift_in_the_lab_covers_the_true_difference() -> None:
    """Randomise control at the lab's decision time, give treated accounts the oracle's action, then
    let the hidden world answer for a whole horizon: the lift's interval covers the true difference
    of the decisions' values (the lab knows each decision's exact expected value)."""
    env = LabEnvironment(SimConfig(accounts=1500, months=2, seed=3))
    playbook = env.history.config.resolved_playbook()
    accounts = env.book().accounts.filter(pl.col("lifecycle_stage") != "churned")
    ids = accounts.get_column("account_id").to_list()
    control = assign_control(ids, 0.5, seed=0)
    truth = env.true_values(ids)
    oracle = (
        truth.filter(pl.col("eligible"))
        .sort("value_usd", descending=True)
        .group_by("account_id", maintain_order=True)
        .first()
        .select("account_id", pl.col("action_id").alias("model_action_id"))
    )
    default = lifecycle_default_policy(accounts, playbook).select("account_id", pl.col("action_id").alias("default"))
    decisions = (
        pl.DataFrame({"account_id": ids, "arm": np.where(control, "control", "model")})
        .join(oracle, on="account_id", how="left")
        .join(default, on="account_id")
        .with_columns(pl.col("model_action_id").fill_null("none"))
        .with_columns(
            pl.when(pl.col("arm") == "control")
            .then(pl.col("default"))
            .otherwise(pl.col("model_action_id"))
            .alias("action_id")
        )
    )
    decided_at = env.now
    step = env.step(decisions.select("account_id", "action_id", "arm", pl.lit(1.0).alias("propensity")))
    while env.now < decided_at + timedelta(days=playbook.horizon_days):
        env.step(pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String}))
    report = estimate_lift(decisions, env.book(), playbook, as_of=decided_at, level=0.95)
    values = step.values.join(decisions.select("account_id", "arm"), on="account_id")
    means = values.group_by(pl.col("arm") == "control").agg(pl.col("value_usd").mean()).sort("arm")
    true_lift = float(means.get_column("value_usd")[0] - means.get_column("value_usd")[1])
    assert report.value.low is not None
    assert report.value.high is not None
    assert report.value.low <= true_lift <= report.value.high, (report.value, true_lift)
    # Per objective: the true difference of outcome probabilities (or expected amounts).
    for o in report.objectives:
        column = f"expected_{o.outcome}_usd" if o.unit == "usd" else f"p_{o.outcome}"
        diff = values.group_by(pl.col("arm") == "control").agg(pl.col(column).mean()).sort("arm")
        true_diff = float(diff.get_column(column)[0] - diff.get_column(column)[1])
        assert o.low is not None
        assert o.high is not None
        assert o.low <= true_diff <= o.high, (o, true_diff)
    assert report.arms == {"control": int(control.sum()), "model": len(ids) - int(control.sum())}
    assert true_lift > 0  # the oracle beats the lifecycle default


def heavy_tailed_null(seed: int, *, n: int = 400, control: int = 27) -> tuple[Book, list[RecommendationRecord]]:
    """A book where the play does nothing and upgrades are rare and heavy-tailed; ``control`` accounts in control.

    8 % of accounts upgrade within the horizon, for lognormal amounts (median about 8,000 USD, a
    few ten times that), whatever their arm: the true lift of every objective is 0.
    """
    rng = np.random.default_rng(seed)
    ids = [f"c{i:04d}" for i in range(n)]
    upgraded = np.flatnonzero(rng.random(n) < 0.08)
    outcomes = pl.DataFrame(
        {
            "outcome_id": [f"o{i}" for i in upgraded],
            "account_id": [ids[i] for i in upgraded],
            "ts": [AS_OF + timedelta(days=float(d)) for d in rng.uniform(1.0, 59.0, upgraded.size)],
            "kind": ["plan_upgrade"] * upgraded.size,
            "value": rng.lognormal(9.0, 1.5, upgraded.size),
        }
    )
    accounts = pl.DataFrame({"account_id": ids, "arr": [100.0] * n, "lifecycle_stage": ["subscriber"] * n})
    signals = pl.DataFrame(
        {"account_id": ids, "ts": [AS_OF + timedelta(days=80)] * n, "name": ["hours_watched"] * n, "value": [1.0] * n}
    )  # read after the horizon: the data reach past it
    book = load_book({"accounts": accounts, "signals": signals, "outcomes": outcomes}, as_of=AS_OF + timedelta(days=90))
    records = [
        RecommendationRecord(
            run_id="run-1",
            account_id=ids[i],
            action_id="premium_trial",
            arm="control" if i < control else "model",
            propensity=1.0,
            expected_value_usd=1.0,
            evidence={"schema": 1, "action_id": "premium_trial", "model_action_id": "premium_trial", "projected": [
                {"objective": "upgrade", "outcome": "plan_upgrade", "unit": "usd", "effect": 0.0, "effect_usd": 0.0}
            ]},
        )
        for i in range(n)
    ]  # fmt: skip
    return book, records


def test_lift_of_a_rare_heavy_tailed_amount_with_a_small_control_cohort_is_not_noise_called_an_effect() -> None:
    # 27 control accounts: most of the time they hold one or two upgrades or none, and their own
    # spread says nothing of the large amounts the 373 treated accounts show. Welch's interval then
    # excluded 0 in about a third of these null books (a worthless play flagged as a real effect, the
    # same control accounts week after week); at a 90 % level it may do so in about a tenth.
    playbook = parse_playbook(PLAYBOOK)
    seeds = 40
    wrong = {"objective": 0, "action": 0, "value": 0}
    for seed in range(seeds):
        book, records = heavy_tailed_null(seed)
        report = estimate_lift(recommendations_frame(records), book, playbook, as_of=AS_OF, level=0.9)
        upgrade = by_objective(report)["upgrade"]
        assert upgrade.control_accounts == 27  # type: ignore[attr-defined]
        wrong["objective"] += not (upgrade.low <= 0.0 <= upgrade.high)  # type: ignore[attr-defined]
        wrong["value"] += not (report.value.low <= 0.0 <= report.value.high)  # type: ignore[operator]
        (row,) = [a for a in report.actions if a.objective == "upgrade"]
        wrong["action"] += not (row.low <= 0.0 <= row.high)  # type: ignore[operator]
    assert all(count <= seeds * 0.15 for count in wrong.values()), wrong


def test_estimate_lift_reads_the_labels_of_the_objectives_own_kind() -> None:
    # "cancel" (every control account) and "Cancel" (half the treated) sanitise alike; the objective is
    # on "Cancel", whose labels are y_cancel_2: lift used to read y_cancel, the other kind's.
    from nextmove.playbook.loader import parse_playbook

    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    treated, control = [f"t{i}" for i in range(10)], [f"c{i}" for i in range(10)]
    outcomes = pl.DataFrame(
        {
            "account_id": treated[:5] + control,
            "ts": [t0 + timedelta(days=5)] * 15,
            "kind": ["Cancel"] * 5 + ["cancel"] * 10,
        }
    )
    book = load_book(
        {"accounts": pl.DataFrame({"account_id": treated + control, "arr": [1000.0] * 20}), "outcomes": outcomes}
    )
    pb = parse_playbook(
        '[objectives.keep]\noutcome="Cancel"\nsense="avoid"\nvalue="arr"\n'
        '[[actions]]\nid="call"\nname="Call"\nteam="cs"\nobjective="keep"\ncost_usd=0\n'
    )
    recs = pl.DataFrame(
        {
            "account_id": treated + control,
            "action_id": ["call"] * 10 + ["none"] * 10,
            "arm": ["model"] * 10 + ["control"] * 10,
        }
    )
    report = estimate_lift(recs, book, pb, as_of=t0, observed_until=t0 + timedelta(days=200))
    (keep,) = report.objectives
    assert (keep.treated_mean, keep.control_mean) == (0.5, 0.0)
    assert (report.value.treated_mean_usd, report.value.control_mean_usd) == (-500.0, 0.0)


def test_overlap_note_counts_the_runs_of_the_book_or_playbook_decided_within_a_horizon() -> None:
    from nextmove.measure.lift import overlap_note
    from nextmove.store import RunRecord

    t = datetime(2025, 5, 5, tzinfo=UTC)

    def made(run_id: str, days: float, *, book: str = "crm/w00", playbook: str = "h", ok: bool = True) -> RunRecord:
        status = "succeeded" if ok else "failed"
        when = t + timedelta(days)
        return RunRecord(run_id=run_id, book_source=book, playbook_hash=playbook, status=status, as_of=when)

    this = made("w00", 0)
    weekly = [made(f"w{k:02d}", 7 * k, book=f"crm/w{k:02d}") for k in range(1, 9)]  # a new folder each week
    others = [
        made("failed", 7, ok=False),
        made("elsewhere", 7, book="other", playbook="other"),
        RunRecord(run_id="undated", book_source="crm/w00", playbook_hash="h", status="succeeded"),
        made("same-book-new-playbook", 14, playbook="edited"),
    ]
    note = overlap_note(this, [this, *weekly, *others], 42)
    assert note is not None
    # w01..w05 (7..35 days) and the edited playbook's run of the same book; w06 is 42 days on: no overlap.
    assert note.startswith(
        "6 other runs in the store were decided less than 42 days from this one "
        "(2025-05-12, 2025-05-19 ×2, 2025-05-26, 2025-06-02, 2025-06-09): their horizons overlap this run's"
    )
    assert note.endswith("so their lifts count many of the same outcomes; compare them, never add them up")
    many = [made(f"d{k}", k) for k in range(1, 10)]
    assert "(2025-05-06, 2025-05-07, 2025-05-08, 2025-05-09, 2025-05-10, 2025-05-11 and 3 more dates)" in str(
        overlap_note(this, [this, *many], 42)
    )
    single = overlap_note(this, [this, made("w01", 7)], 42)
    assert str(single).startswith("1 other run in the store was decided less than 42 days from this one (2025-05-12)")
    assert ": its horizon overlaps this run's" in str(single)
    assert overlap_note(this, [this, *others[:3]], 42) is None


def test_lift_interval_of_a_share_stays_within_a_hundred_points() -> None:
    """8 treated accounts all without the outcome against 1 control account with it: −100 points, and the
    interval of a difference of two shares never reaches past ±100 points (it reached −113)."""
    from nextmove.measure.lift import _difference

    diff = _difference(np.zeros(8), np.ones(1), 1.6449, binary=True)
    assert diff.estimate == -1.0
    assert diff.low == -1.0
    assert diff.high is not None
    assert -1.0 < diff.high < 0.0
    wide = _difference(np.ones(3), np.zeros(2), 1.96, binary=True)
    assert wide.low is not None
    assert wide.high == 1.0
    assert -1.0 < wide.low < 1.0


def test_lift_of_the_same_rows_in_another_order_is_the_same_to_the_bit() -> None:
    """Recommendations and book rows shuffled (an account with several upgrades too): the same JSON, byte for byte.

    The means were summed in the order of a join's output and an account's amounts in its outcomes'
    order: their last digits moved between runs of one lift on one store."""
    case = planted(1500, seed=7)
    rng = np.random.default_rng(7)
    ids = case.book.accounts.get_column("account_id").to_list()[:1000]
    upgrades = pl.DataFrame(
        {
            "account_id": ids * 3,
            "ts": [AS_OF + timedelta(days=float(d)) for d in rng.uniform(1.0, 59.0, 3000)],
            "kind": ["plan_upgrade"] * 3000,
            "value": rng.exponential(37.3, 3000),
        }
    )
    outcomes = pl.concat([case.book.outcomes.select(upgrades.columns), upgrades], how="vertical_relaxed")
    frame = recommendations_frame(case.records)
    seen = set()
    for seed in range(4):

        def shuffled(table: pl.DataFrame, seed: int = seed) -> pl.DataFrame:
            return table.sample(fraction=1.0, shuffle=True, seed=seed) if seed else table

        book = load_book(
            {
                "accounts": shuffled(case.book.accounts),
                "signals": shuffled(case.book.signals),
                "outcomes": shuffled(outcomes),
            },
            as_of=case.book.as_of,
        )
        report = estimate_lift(shuffled(frame), book, case.playbook, as_of=AS_OF, run_id="run-1")
        seen.add(json.dumps(report.to_dict()))
    assert len(seen) == 1


def test_lift_reads_a_date_given_as_observed_until_as_that_whole_day() -> None:
    # As `nextmove lift --until 2026-03-20` reads it: up to the midnight after it, not the midnight that starts it.
    case = planted(300, seed=7)
    day = (AS_OF + timedelta(days=46)).date()
    after = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
    through_day = _lift(case, case.book, observed_until=after, allow_partial=True)
    for given in (day, day.isoformat()):
        report = _lift(case, case.book, observed_until=given, allow_partial=True)
        assert report.observed_until == after
        assert report.objectives == through_day.objectives
    # A time is the instant it is, a midnight included.
    midnight = datetime.combine(day, time(), tzinfo=UTC)
    assert _lift(case, case.book, observed_until=midnight, allow_partial=True).observed_until == midnight
    assert _lift(case, case.book, observed_until=f"{day}T00:00:00Z", allow_partial=True).observed_until == midnight
    with pytest.raises(ConfigError, match="observed_until '2026-02-30': 2026-02-30 is no such date"):
        _lift(case, case.book, observed_until="2026-02-30", allow_partial=True)
