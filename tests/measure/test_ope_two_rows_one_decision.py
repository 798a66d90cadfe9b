"""Two touches of one account at one instant: two logged rows of one decision in off-policy evaluation.

Each logged row is weighed on its own, with its decision's distribution joined to it once, whatever
policy is evaluated: the estimates are those of the same log with the second touch a second later
(its own decision, of the same snapshot), and those of a hand computation on a tiny log.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from nextmove.book import Book
from nextmove.engine.run import evaluation_window, run
from nextmove.errors import ConfigError
from nextmove.features import build_training_set, training_vocabulary
from nextmove.measure.lift import latest_data_time
from nextmove.measure.ope import evaluate_offline, evaluate_policy, policy_difference, row_value_usd, split_decisions
from nextmove.measure.policy import (
    do_nothing_policy,
    eligible_actions,
    learned_policy,
    lifecycle_default_policy,
    logged_policy,
    table_policy,
)
from nextmove.playbook import Action, Objective, Playbook
from nextmove.sim import SimConfig, SimResult, simulate

T0 = datetime(2025, 3, 3, tzinfo=UTC)
ARMS = ("none", "call", "email")
KEYS = ["account_id", "decision_ts"]
FAST = {"n_folds": 2, "n_estimators": 25, "n_draws": 60}


def playbook() -> Playbook:
    return Playbook(
        objectives={"win": Objective(outcome="win", value="fixed", value_usd=100.0)},
        actions=[
            Action(
                id="call",
                name="Call",
                team="cs",
                objective="win",
                cost_usd=20.0,
                eligibility="usage > 0",
                default_for_stages=["renewal"],
            ),
            Action(id="email", name="Email", team="marketing", objective="win", cost_usd=2.0),
        ],
    )


def logged_rows(n: int, seed: int) -> pl.DataFrame:
    """A randomised log: two decisions per account, a day apart, each one logged row."""
    rng = np.random.default_rng(seed)
    usage = rng.normal(size=n)
    action = rng.choice(np.array(ARMS), size=n)
    lift = np.where(action == "call", 1.0 * (usage > 0), np.where(action == "email", 0.2, 0.0))
    win = (rng.random(n) < 1 / (1 + np.exp(1.5 - 0.5 * usage - lift))).astype(np.int8)
    return pl.DataFrame(
        {
            "account_id": [f"acct-{i // 2}" for i in range(n)],
            "decision_ts": [T0 + timedelta(days=i % 2) for i in range(n)],
            "action_id": action.tolist(),
            "propensity": [1 / 3] * n,
            "usage": usage,
            "lifecycle_stage": rng.choice(np.array(["renewal", "growth"]), size=n).tolist(),
            "y_win": win,
        }
    ).with_columns(
        # An account's stage is the accounts table's: one per account, as in a training set.
        pl.col("lifecycle_stage").first().over("account_id")
    )


def with_second_touch(rows: pl.DataFrame, *, shift: timedelta = timedelta(0)) -> pl.DataFrame:
    """``rows`` and a second touch of the first row's account: at the same instant (one decision, two
    rows) or ``shift`` later (its own decision); the same snapshot and outcome, another action."""
    first = rows.row(0, named=True)
    other = next(a for a in ARMS if a != first["action_id"])
    second = rows.head(1).with_columns(
        pl.lit(other).alias("action_id"),
        pl.lit(0.25).alias("propensity"),
        (pl.col("decision_ts") + shift).alias("decision_ts"),
    )
    return pl.concat([rows, second])


def q_values(rows: pl.DataFrame) -> pl.DataFrame:
    """An outcome model's q(x, a) per row and action, as an effect model gives it: once per logged row."""
    parts = []
    for i, arm in enumerate(ARMS):
        value = pl.col("usage") * 10 + 5 * i - {"none": 0.0, "call": 20.0, "email": 2.0}[arm]
        parts.append(rows.select(*KEYS, pl.lit(arm).alias("action_id"), value.alias("expected_value_usd")))
    return pl.concat(parts)


def learned(rows: pl.DataFrame) -> pl.DataFrame:
    values = q_values(rows).rename({"expected_value_usd": "value_usd"})
    return learned_policy(values, eligible=eligible_actions(rows, playbook()))


def uniform(rows: pl.DataFrame) -> pl.DataFrame:
    """A random policy written once per logged row (a decision with two rows repeats its distribution)."""
    per_row = pl.concat(
        [rows.select(*KEYS, pl.lit(a).alias("action_id"), pl.lit(1 / 3).alias("probability")) for a in ARMS]
    )
    return table_policy(per_row, actions=["call", "email"])


def per_account(rows: pl.DataFrame) -> pl.DataFrame:
    """An external table without decision times, written once per logged row."""
    per_row = pl.concat(
        [rows.select("account_id", pl.lit(a).alias("action_id"), pl.lit(0.5).alias("probability")) for a in ARMS[:2]]
    )
    return table_policy(per_row, actions=["call", "email"])


POLICIES: dict[str, Callable[[pl.DataFrame], pl.DataFrame]] = {
    "do_nothing": do_nothing_policy,
    "lifecycle_default": lambda rows: lifecycle_default_policy(
        rows, playbook(), eligible=eligible_actions(rows, playbook())
    ),
    "learned": learned,
    "uniform": uniform,
    "per_account": per_account,
    "logged_proba": lambda rows: logged_policy(rows, proba=np.full((rows.height, 3), 1 / 3), arms=ARMS),
}


def same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        got, expected = x.to_dict(), y.to_dict()
        for key, value in expected.items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (x.policy, x.method, key)
            else:
                assert got[key] == value, (x.policy, x.method, key)


@pytest.mark.parametrize("name", list(POLICIES))
def test_every_policy_values_two_touches_at_one_instant_as_two_rows_of_one_decision(name: str) -> None:
    rows = logged_rows(240, 1)
    at_once, apart = with_second_touch(rows), with_second_touch(rows, shift=timedelta(seconds=1))
    build = POLICIES[name]
    values = evaluate_policy(at_once, build(at_once), playbook(), expected_values=q_values(at_once), name=name)
    expected = evaluate_policy(apart, build(apart), playbook(), expected_values=q_values(apart), name=name)
    assert [v.method for v in values] == ["ips", "snips", "dr"]
    assert values[0].n == at_once.height
    same(values, expected)
    assert all(v.estimate is not None and np.isfinite(v.estimate) for v in values)


def test_the_logged_policy_of_two_touches_at_one_instant_is_the_on_policy_mean() -> None:
    rows = with_second_touch(logged_rows(240, 2))
    realised = row_value_usd(rows, playbook()).mean()
    ips, snips = evaluate_policy(rows, logged_policy(rows), playbook(), methods=("ips", "snips"))
    assert ips.n == rows.height
    assert ips.estimate == pytest.approx(realised)
    assert snips.estimate == pytest.approx(realised)
    # Two touches of one decision that took the same action at two logged propensities: one probability,
    # their mean.
    twice = pl.concat([rows, rows.head(1).with_columns(pl.lit(0.5).alias("propensity"))])
    table = logged_policy(twice).filter(pl.col("account_id") == rows.item(0, "account_id"))
    first = table.filter((pl.col("decision_ts") == T0) & (pl.col("action_id") == rows.item(0, "action_id")))
    assert first.get_column("probability").to_list() == [pytest.approx((1 / 3 + 0.5) / 2)]


@pytest.mark.parametrize(("name", "baseline"), [("learned", "do_nothing"), ("uniform", "lifecycle_default")])
def test_paired_differences_count_each_of_the_two_rows_once(name: str, baseline: str) -> None:
    rows = logged_rows(240, 3)
    at_once, apart = with_second_touch(rows), with_second_touch(rows, shift=timedelta(seconds=1))
    a, b = POLICIES[name], POLICIES[baseline]
    values = policy_difference(at_once, a(at_once), b(at_once), playbook(), expected_values=q_values(at_once))
    expected = policy_difference(apart, a(apart), b(apart), playbook(), expected_values=q_values(apart))
    assert values[0].n == at_once.height
    same(values, expected)


def test_two_touches_at_one_instant_by_hand() -> None:
    # acct-a took none (propensity 0.8) and, at the same instant, call (0.25): one decision, one
    # snapshot, one outcome (a win), two rows. acct-b was called (0.5) and did not win, acct-c was
    # left alone (0.5) and did not win. Row values: 100, 100 - 20, -20, 0.
    rows = pl.DataFrame(
        {
            "account_id": ["acct-a", "acct-a", "acct-b", "acct-c"],
            "decision_ts": [T0] * 4,
            "action_id": ["none", "call", "call", "none"],
            "propensity": [0.8, 0.25, 0.5, 0.5],
            "usage": [1.0, 1.0, -1.0, 0.5],
            "lifecycle_stage": ["renewal", "renewal", "growth", "growth"],
            "y_win": [1, 1, 0, 0],
        }
    )
    q = pl.DataFrame(
        {
            "account_id": ["acct-a", "acct-a", "acct-b", "acct-b", "acct-c", "acct-c"],
            "decision_ts": [T0] * 6,
            "action_id": ["none", "call"] * 3,
            "expected_value_usd": [60.0, 70.0, 10.0, 30.0, 5.0, 15.0],
        }
    )
    q_per_row = pl.concat([q, q.filter(pl.col("account_id") == "acct-a")])  # acct-a's values once per row
    nothing = do_nothing_policy(rows)
    assert nothing.height == 3
    ips, snips, dr = evaluate_policy(rows, nothing, playbook(), expected_values=q_per_row)
    # Weights 1/0.8, 0, 0, 1/0.5 on the row values 100, 80, -20, 0.
    assert ips.estimate == pytest.approx(1.25 * 100 / 4)
    assert snips.estimate == pytest.approx(1.25 * 100 / 3.25)
    # DR: q(x, none) + w (r - q(x, A)) = 60 + 1.25 (100 - 60), 60, 10, 5 + 2 (0 - 5).
    assert dr.estimate == pytest.approx((110 + 60 + 10 - 5) / 4)
    assert {v.n for v in (ips, snips, dr)} == {4}
    # The lifecycle default calls acct-a (a renewal, eligible at usage > 0): weights 0, 4, 0, 2.
    default = lifecycle_default_policy(rows, playbook(), eligible=eligible_actions(rows, playbook()))
    assert default.sort("account_id").get_column("action_id").to_list() == ["call", "none", "none"]
    ips, snips, dr = evaluate_policy(rows, default, playbook(), expected_values=q_per_row)
    assert ips.estimate == pytest.approx((4 * 80 + 2 * 0) / 4)
    assert snips.estimate == pytest.approx(4 * 80 / 6)
    assert dr.estimate == pytest.approx((70 + (70 + 4 * (80 - 70)) + 10 + (5 + 2 * (0 - 5))) / 4)
    (difference,) = policy_difference(rows, default, nothing, playbook(), methods=("ips",))
    assert difference.estimate == pytest.approx(80 - 31.25)


def test_a_policy_with_two_probabilities_of_one_action_at_one_decision_is_refused() -> None:
    from nextmove.measure.policy import one_per_decision  # here, so that the other tests run on older code

    rows = with_second_touch(logged_rows(40, 4))
    # A table built row by row from something the two rows do not share (here: their propensity).
    clash = rows.select(*KEYS, pl.lit("call").alias("action_id"), pl.col("propensity").alias("probability")).vstack(
        rows.select(*KEYS, pl.lit("none").alias("action_id"), (1 - pl.col("propensity")).alias("probability"))
    )
    with pytest.raises(ConfigError, match=r"gives action 'call' more than one probability at account_id=acct-0"):
        evaluate_policy(rows, clash, playbook(), methods=("ips",))
    with pytest.raises(ConfigError, match="one distribution per account and decision time"):
        table_policy(clash)
    # Repeats of one distribution are one; a table with one row per decision is left as it is.
    repeated = do_nothing_policy(rows).vstack(do_nothing_policy(rows))
    assert one_per_decision(repeated).equals(do_nothing_policy(rows))
    assert do_nothing_policy(rows).height == rows.select(KEYS).n_unique() == rows.height - 1


# ---- a book whose evaluated window holds two touches of one account at one instant ----------------


@pytest.fixture(scope="module")
def lab() -> SimResult:
    return simulate(SimConfig(accounts=160, months=9, seed=11))


def with_touch_beside(book: Book, touch: dict, action: str, *, shift: timedelta = timedelta(0)) -> Book:
    """``book`` with one more touch of ``touch``'s account, at its time (plus ``shift``), of ``action``."""
    extra = pl.DataFrame([{**touch, "touch_id": f"{touch['touch_id']}-b", "action_id": action}]).with_columns(
        pl.col("ts") + shift
    )
    touches = pl.concat([book.touches, extra.select(book.touches.columns).cast(book.touches.schema)])
    return Book(book.accounts, book.signals, touches, book.outcomes, source="two touches")


def other_action(playbook: Playbook, taken: str) -> str:
    return next(a for a in playbook.action_ids if a != taken)


def test_run_evaluates_a_window_with_two_touches_of_one_account_at_one_instant(lab: SimResult) -> None:
    playbook = lab.config.resolved_playbook()
    when = lab.as_of
    window = evaluation_window(build_training_set(lab.book, playbook, as_of=when), playbook)
    first = window.filter(pl.col("touch_id").is_not_null()).row(0, named=True)
    touch = lab.book.touches.filter(pl.col("touch_id") == first["touch_id"]).row(0, named=True)
    book = with_touch_beside(lab.book, touch, other_action(playbook, touch["action_id"]))
    result = run(book, playbook, as_of=when, effect_params=FAST, evidence=False, segments=False)
    values = {(v["policy"], v["method"]): v for v in result.policy_values}
    assert {policy for policy, _ in values} == {"learned", "nothing", "default"}
    rows = evaluation_window(build_training_set(book, playbook, as_of=when), playbook)
    pair = rows.filter((pl.col("account_id") == touch["account_id"]) & (pl.col("decision_ts") == first["decision_ts"]))
    assert pair.height == 2
    # Doing nothing by hand: each row weighted by 1 / propensity where it did nothing, every row counted once.
    r = row_value_usd(rows, playbook, vocabulary=training_vocabulary(book, playbook, as_of=when))
    e = np.clip(rows.get_column("propensity").cast(pl.Float64).to_numpy(), 1e-3, 1.0)
    w = (rows.get_column("action_id").fill_null("none") == "none").to_numpy() / e
    ips, snips = values[("nothing", "ips")], values[("nothing", "snips")]
    assert ips["n"] == rows.height
    assert ips["estimate"] == pytest.approx(float(np.mean(w * r)))
    assert snips["estimate"] == pytest.approx(float(np.sum(w * r) / np.sum(w)))
    for difference in result.summary["policy_differences"]:
        assert difference["n"] == rows.height


def test_evaluate_a_book_with_two_touches_of_one_account_at_one_instant(lab: SimResult) -> None:
    playbook = lab.config.resolved_playbook()
    _, evaluation, as_of, _ = split_decisions(lab.book, playbook)
    first = evaluation.filter(pl.col("touch_id").is_not_null()).row(0, named=True)
    touch = lab.book.touches.filter(pl.col("touch_id") == first["touch_id"]).row(0, named=True)
    book = with_touch_beside(lab.book, touch, other_action(playbook, touch["action_id"]))
    result = evaluate_offline(book, playbook, as_of=as_of, seed=1, effect_params=FAST)
    _, rows, _, _ = split_decisions(book, playbook, as_of=as_of)
    assert result.evaluation_rows == rows.height == evaluation.height + 1
    values = {(v.policy, v.method): v for v in result.policies}
    assert {p for p, _ in values} == {"learned", "lifecycle_default", "do_nothing", "logged"}
    assert all(v.n == rows.height for v in result.policies + result.differences)
    # The logged policy's value is the on-policy mean of every evaluated row, both of the pair included.
    vocabulary = training_vocabulary(book, playbook, as_of=latest_data_time(book))
    realised = row_value_usd(rows, playbook, vocabulary=vocabulary)
    assert values[("logged", "ips")].estimate == pytest.approx(float(realised.mean()))
    for name, table in result.policy_tables.items():
        keys = [c for c in KEYS if c in table.columns]
        assert table.select(*keys, "action_id").n_unique() == table.height, name
