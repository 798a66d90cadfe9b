"""Tests of off-policy evaluation and policy tables: CIs cover known values, DR with a perfect model, helpers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from nextmove.book import Book
from nextmove.errors import ConfigError, PlaybookError
from nextmove.measure.ope import (
    MAX_UNSUPPORTED_SHARE,
    NO_INTERVAL_NOTE,
    SMALL_EFFECTIVE_SAMPLE_SIZE,
    PolicyValue,
    evaluate_offline,
    evaluate_policy,
    policy_difference,
    row_value_usd,
    small_sample_note,
    split_decisions,
)
from nextmove.measure.policy import (
    do_nothing_policy,
    eligible_actions,
    learned_policy,
    lifecycle_default_policy,
    logged_policy,
    table_policy,
)
from nextmove.playbook import Action, Objective, Playbook
from nextmove.playbook.loader import load_playbook
from nextmove.sim import SimConfig, simulate

T0 = datetime(2025, 3, 3, tzinfo=UTC)
ARMS = ("none", "call", "email")
COST = {"none": 0.0, "call": 20.0, "email": 2.0}


def playbook() -> Playbook:
    return Playbook(
        objectives={"win": Objective(outcome="win", value="fixed", value_usd=100.0)},
        actions=[
            Action(id="call", name="Call", team="cs", objective="win", cost_usd=20.0),
            Action(id="email", name="Email", team="marketing", objective="win", cost_usd=2.0),
        ],
    )


def p_win(action: np.ndarray, usage: np.ndarray) -> np.ndarray:
    """True win probability: calls help accounts with high usage, emails help a little everywhere."""
    base = 1 / (1 + np.exp(-(-1.5 + 0.5 * usage)))
    call = 1 / (1 + np.exp(-(-1.5 + 0.5 * usage + 1.0 * (usage > 0))))
    email = 1 / (1 + np.exp(-(-1.5 + 0.5 * usage + 0.2)))
    return np.where(action == "call", call, np.where(action == "email", email, base))


def randomised_log(n: int, seed: int) -> pl.DataFrame:
    """Uniformly randomised actions (propensity 1/3), a few rows per account."""
    rng = np.random.default_rng(seed)
    usage = rng.normal(size=n)
    action = rng.choice(np.array(ARMS), size=n)
    win = (rng.random(n) < p_win(action, usage)).astype(np.int8)
    return pl.DataFrame(
        {
            "account_id": [f"a{i // 3}" for i in range(n)],
            "decision_ts": [T0] * n,
            "action_id": action.tolist(),
            "propensity": [1 / 3] * n,
            "usage": usage,
            "y_win": win,
        }
    ).with_columns(pl.col("decision_ts").dt.offset_by(pl.format("{}d", pl.int_range(pl.len()) % 3)))


def true_values(rows: pl.DataFrame) -> pl.DataFrame:
    """The exact expected row value of every action for every row (a perfect outcome model)."""
    usage = rows.get_column("usage").to_numpy()
    parts = []
    for arm in ARMS:
        value = 100.0 * p_win(np.full(len(usage), arm), usage) - COST[arm]
        parts.append(
            rows.select("account_id", "decision_ts").with_columns(
                pl.lit(arm).alias("action_id"), pl.Series("expected_value_usd", value)
            )
        )
    return pl.concat(parts)


def call_the_engaged(rows: pl.DataFrame) -> pl.DataFrame:
    """A deterministic policy: call when usage > 0, else email."""
    return rows.select(
        "account_id",
        "decision_ts",
        pl.when(pl.col("usage") > 0).then(pl.lit("call")).otherwise(pl.lit("email")).alias("action_id"),
        pl.lit(1.0).alias("probability"),
    )


def exact_value(rows: pl.DataFrame, policy: pl.DataFrame) -> float:
    q = true_values(rows)
    chosen = policy.join(q, on=["account_id", "decision_ts", "action_id"])
    return float((chosen.get_column("probability") * chosen.get_column("expected_value_usd")).sum() / rows.height)


def test_ope_intervals_cover_the_known_policy_value() -> None:
    covered = {"ips": 0, "snips": 0, "dr": 0}
    runs = 40
    for seed in range(runs):
        rows = randomised_log(1500, seed)
        policy = call_the_engaged(rows)
        truth = exact_value(rows, policy)
        # An imperfect but honest outcome model: the truth shrunk toward the mean.
        q = true_values(rows).with_columns(
            (0.7 * pl.col("expected_value_usd") + 0.3 * pl.col("expected_value_usd").mean()).alias("expected_value_usd")
        )
        for value in evaluate_policy(rows, policy, playbook(), expected_values=q, level=0.9):
            covered[value.method] += value.low <= truth <= value.high
    for method, hits in covered.items():
        assert hits / runs >= 0.8, (method, hits)


def test_ope_dr_with_a_perfect_outcome_model_is_close_to_the_truth() -> None:
    rows = randomised_log(3000, 1)
    policy = call_the_engaged(rows)
    truth = exact_value(rows, policy)
    ips, snips, dr = evaluate_policy(rows, policy, playbook(), expected_values=true_values(rows))
    assert isinstance(dr, PolicyValue)
    assert dr.method == "dr"
    assert abs(dr.estimate - truth) < 2.5 * dr.stderr
    # A perfect model leaves DR only the outcome noise: tighter than IPS.
    assert dr.stderr < ips.stderr
    assert ips.low < ips.estimate < ips.high
    assert snips.n == 3000
    assert 0 < ips.effective_sample_size <= 3000
    assert ips.matched_share == pytest.approx(1 / 3, abs=0.05)


def test_ope_per_objective_and_row_value() -> None:
    rows = randomised_log(600, 2)
    policy = do_nothing_policy(rows)
    total = evaluate_policy(rows, policy, playbook(), methods=("ips",))[0]
    win = evaluate_policy(rows, policy, playbook(), methods=("ips",), objective="win")[0]
    # Doing nothing costs nothing: the total is the win objective's dollars.
    assert total.estimate == pytest.approx(win.estimate)
    assert win.objective == "win"
    values = row_value_usd(rows, playbook())
    pairs = zip(rows["y_win"][:3], rows["action_id"][:3], strict=True)
    assert values.tolist()[:3] == [100.0 * w - COST[a] for w, a in pairs]


def test_ope_propensities_of_zero_are_clipped_not_divided_by() -> None:
    rows = randomised_log(300, 3).with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(0.0).otherwise(pl.col("propensity")).alias("propensity")
    )
    for value in evaluate_policy(rows, logged_policy(rows), playbook(), methods=("ips", "snips")):
        assert np.isfinite(value.estimate)
        assert np.isfinite(value.stderr)


def test_ope_estimates_propensities_when_the_log_has_none() -> None:
    rows = randomised_log(1500, 4).with_columns(pl.lit(None, dtype=pl.Float64).alias("propensity"))
    policy = call_the_engaged(rows)
    truth = exact_value(rows, policy)
    ips = evaluate_policy(rows, policy, playbook(), methods=("ips",), propensity="logged")[0]
    assert abs(ips.estimate - truth) < 3 * ips.stderr + 2.0


def test_ope_paired_difference() -> None:
    rows = randomised_log(1500, 5)
    policy = call_the_engaged(rows)
    same = policy_difference(rows, policy, policy, playbook(), expected_values=true_values(rows))
    assert all(v.estimate == pytest.approx(0.0) and v.stderr == pytest.approx(0.0) for v in same)
    nothing = do_nothing_policy(rows)
    diff = policy_difference(rows, policy, nothing, playbook(), expected_values=true_values(rows), methods=("dr",))[0]
    truth = exact_value(rows, policy) - exact_value(rows, nothing)
    assert abs(diff.estimate - truth) < 3 * diff.stderr


def test_ope_without_a_matching_logged_decision_is_null_with_a_note_not_nan() -> None:
    # A touch log with no "none" rows (most CRM exports): doing nothing matches no logged decision.
    rows = randomised_log(300, 7).filter(pl.col("action_id") != "none")
    nothing = do_nothing_policy(rows)
    ips, snips, dr = evaluate_policy(rows, nothing, playbook(), expected_values=true_values(rows))
    for value in (ips, snips):
        assert value.matched_share == 0
        assert value.estimate is None
        assert (value.stderr, value.low, value.high) == (None, None, None)
        assert value.note == f"no logged decision matches this policy: {value.method.upper()} has no weight"
    # The outcome model values doing nothing without a logged match, but an interval would not count its error.
    assert dr.estimate is not None
    assert (dr.stderr, dr.low, dr.high) == (None, None, None)
    assert dr.unsupported_share == 1.0
    assert dr.note == (
        "the history never took none (doing nothing), which this policy takes on 100% of the decisions: there DR "
        "stands on the outcome model's projection, whose error an interval would not count, so it has none"
    )
    diffs = policy_difference(rows, call_the_engaged(rows), nothing, playbook(), expected_values=true_values(rows))
    assert [(d.method, d.estimate is None) for d in diffs] == [("ips", True), ("snips", True), ("dr", False)]
    assert diffs[1].note == "no logged decision matches the baseline: SNIPS has no weight"
    assert diffs[2].low is None
    assert diffs[2].note is not None
    assert diffs[2].note.startswith("the history never took none (doing nothing), which the baseline takes on 100%")
    json.dumps([v.to_dict() for v in (ips, snips, dr, *diffs)], allow_nan=False)


def test_ope_of_one_account_has_no_interval_rather_than_nan() -> None:
    rows = randomised_log(30, 8).with_columns(
        pl.lit("a0").alias("account_id"),
        pl.lit(T0).dt.offset_by(pl.format("{}d", pl.int_range(pl.len()))).alias("decision_ts"),
    )
    [ips] = evaluate_policy(rows, logged_policy(rows), playbook(), methods=("ips",))
    assert ips.estimate is not None
    assert (ips.stderr, ips.low, ips.high) == (None, None, None)
    # 30 decisions are a small effective sample too, but without an interval only the missing one is noted.
    assert ips.effective_sample_size < SMALL_EFFECTIVE_SAMPLE_SIZE
    assert ips.note == NO_INTERVAL_NOTE


def test_ope_interval_on_a_small_effective_sample_is_noted_as_likely_too_narrow() -> None:
    # Uniform propensities of 1/3: a deterministic policy's effective sample is about a third of the rows.
    small = randomised_log(300, 3)
    for v in evaluate_policy(small, call_the_engaged(small), playbook(), expected_values=true_values(small)):
        assert v.effective_sample_size < SMALL_EFFECTIVE_SAMPLE_SIZE
        assert v.low is not None
        assert v.note == small_sample_note(v.effective_sample_size, 300)
        assert v.note.startswith(f"this policy's effective sample size is {v.effective_sample_size:.0f} of 300 ")
        assert v.note.endswith("the weight rests on few of them, so the interval is likely too narrow")
    large = randomised_log(1500, 3)
    values = evaluate_policy(large, call_the_engaged(large), playbook(), expected_values=true_values(large))
    assert all(v.effective_sample_size > SMALL_EFFECTIVE_SAMPLE_SIZE and v.note is None for v in values)
    # Even weights (the logged policy's plain mean of 150 decisions): an ordinary mean, no such note.
    [logged] = evaluate_policy(small.head(150), logged_policy(small.head(150)), playbook(), methods=("ips",))
    assert logged.note is None
    # A paired difference rests on both policies' weights: the note names the one with the smaller sample.
    rows = large.filter((pl.col("action_id") != "none") | (pl.int_range(pl.len()) < 90))
    diffs = policy_difference(
        rows, call_the_engaged(rows), do_nothing_policy(rows), playbook(), expected_values=true_values(rows)
    )
    [baseline] = evaluate_policy(rows, do_nothing_policy(rows), playbook(), methods=("ips",))
    for d in diffs:
        # The smaller of the two policies' (the baseline's), as documented: the difference stands on both.
        assert d.effective_sample_size == pytest.approx(baseline.effective_sample_size)
        assert d.matched_share == pytest.approx(baseline.matched_share)
        assert d.note is not None
        assert d.note.startswith("the baseline's effective sample size is ")
        assert d.note.endswith("the weight rests on few of them, so the interval is likely too narrow")


def never_emailed_log(n: int, seed: int) -> pl.DataFrame:
    """A randomised log whose history never e-mailed: none or call, each at propensity 1/2."""
    rows = randomised_log(n, seed).filter(pl.col("action_id") != "email")
    return rows.with_columns(pl.lit(0.5).alias("propensity"))


def email_below(rows: pl.DataFrame, usage: float) -> pl.DataFrame:
    """A deterministic policy: e-mail when usage is below ``usage``, else call."""
    chosen = pl.when(pl.col("usage") < usage).then(pl.lit("email")).otherwise(pl.lit("call"))
    return rows.select("account_id", "decision_ts", chosen.alias("action_id"), pl.lit(1.0).alias("probability"))


def test_ope_of_a_policy_taking_an_action_the_history_never_took_is_null_with_a_note() -> None:
    # IPS would count every e-mail decision as $0 and SNIPS as the calls' mean: a confident number for
    # decisions the log holds nothing about. Both are null; DR keeps the outcome model's value, without an interval.
    rows = never_emailed_log(900, 11)
    policy = email_below(rows, 0.5)
    share = float((rows.get_column("usage") < 0.5).mean())
    assert share > 0.5
    ips, snips, dr = evaluate_policy(rows, policy, playbook(), expected_values=true_values(rows))
    for v in (ips, snips):
        assert (v.estimate, v.stderr, v.low, v.high) == (None, None, None, None)
        assert v.note == (
            f"the history never took email, which this policy takes on {share:.0%} of the decisions: "
            "IPS and SNIPS cannot value them"
        )
    for v in (ips, snips, dr):
        assert v.unsupported_share == pytest.approx(share)
        assert v.unsupported_actions == ("email",)
    assert dr.estimate is not None
    assert (dr.stderr, dr.low, dr.high) == (None, None, None)
    assert dr.note == (
        f"the history never took email, which this policy takes on {share:.0%} of the decisions: there DR stands "
        "on the outcome model's projection, whose error an interval would not count, so it has none"
    )
    # Any paired difference involving it: the same, naming the side that takes it.
    for policy_, baseline, who in (
        (policy, do_nothing_policy(rows), "the policy"),
        (do_nothing_policy(rows), policy, "the baseline"),
    ):
        d_ips, d_snips, d_dr = policy_difference(rows, policy_, baseline, playbook(), expected_values=true_values(rows))
        assert (d_ips.estimate, d_snips.estimate, d_dr.low) == (None, None, None)
        assert d_dr.estimate is not None
        assert d_ips.note == d_snips.note
        assert d_ips.note.startswith(f"the history never took email, which {who} takes on {share:.0%} of the ")
        assert d_dr.unsupported_share == pytest.approx(share)
    out = json.dumps([v.to_dict() for v in (ips, snips, dr)], allow_nan=False)
    assert '"unsupported_actions": ["email"]' in out
    # On a few decisions the estimates stand, with a note of what they miscount.
    few = email_below(rows, -1.9)
    small = float((rows.get_column("usage") < -1.9).mean())
    assert 0 < small <= MAX_UNSUPPORTED_SHARE
    ips, snips, dr = evaluate_policy(rows, few, playbook(), expected_values=true_values(rows))
    assert all(v.estimate is not None and v.low is not None for v in (ips, snips, dr))
    assert ips.note.startswith(f"the history never took email, which this policy takes on {small:.0%} of the ")
    assert ips.note.endswith("IPS counts them as $0")
    assert snips.note.endswith("SNIPS counts them as worth the mean of the others")
    assert dr.note.endswith(
        "there DR stands on the outcome model's projection, whose error its interval does not count"
    )


def test_ope_of_an_action_logged_only_below_the_clip_floor_is_null_with_a_note() -> None:
    # Every e-mail of the history had a propensity under the 0.001 floor: each weight is capped, and IPS
    # counts the policy's e-mails short by the ratio of the two.
    rows = randomised_log(900, 12).with_columns(
        pl.when(pl.col("action_id") == "email").then(0.0004).otherwise(0.5).alias("propensity")
    )
    ips, snips = evaluate_policy(rows, email_below(rows, 0.5), playbook(), methods=("ips", "snips"))
    # The decisions that took it are its own evidence; the others it takes it on are what IPS cannot value.
    elsewhere = (pl.col("usage") < 0.5) & (pl.col("action_id") != "email")
    share = float(rows.select(elsewhere.mean()).item())
    for v in (ips, snips):
        assert v.estimate is None
        assert v.unsupported_share == pytest.approx(share)
        assert v.note == (
            f"the history took email only at propensities below the 0.001 clip floor, which this policy takes on "
            f"{share:.0%} of the decisions: IPS and SNIPS cannot value them"
        )
    # The logging policy takes it only where it was taken: nothing to flag.
    for v in evaluate_policy(rows, logged_policy(rows), playbook(), methods=("ips", "snips")):
        assert (v.unsupported_share, v.unsupported_actions) == (0.0, ())
        assert v.estimate is not None
        assert v.note is None or "clip floor" not in v.note


def test_ope_of_a_policy_that_never_takes_the_unlogged_action_is_unchanged() -> None:
    rows = never_emailed_log(900, 11)
    call_or_not = rows.select(
        "account_id",
        "decision_ts",
        pl.when(pl.col("usage") > 0).then(pl.lit("call")).otherwise(pl.lit("none")).alias("action_id"),
        pl.lit(1.0).alias("probability"),
    )
    q = true_values(rows)
    # The figures of the code before the positivity check, to the last digit.
    before = {
        "ips": (20.381282495667243, 2.738144392508125, 15.014618101881014, 25.747946889453473),
        "snips": (19.665551839464882, 2.4818125959953776, 14.801288534936088, 24.529815143993677),
        "dr": (19.44494892935429, 2.5519277514400227, 14.443262445383564, 24.446635413325016),
    }
    for v in evaluate_policy(rows, call_or_not, playbook(), expected_values=q):
        assert (v.estimate, v.stderr, v.low, v.high) == pytest.approx(before[v.method], rel=1e-12)
        assert (v.effective_sample_size, v.note, v.unsupported_share, v.unsupported_actions) == (299.0, None, 0.0, ())
        assert v.matched_share == pytest.approx(299 / 577)
    before = {
        "ips": (0.9705372616984402, 3.378331961100232, -5.650871709878584, 7.591946233275464),
        "snips": (-0.9226834546527662, 2.966327501177667, -6.736578523311687, 4.891211614006155),
        "dr": (-0.9473354570468834, 2.86762051333943, -6.567768384520427, 4.67309747042666),
    }
    for v in policy_difference(rows, call_or_not, do_nothing_policy(rows), playbook(), expected_values=q):
        assert (v.estimate, v.stderr, v.low, v.high) == pytest.approx(before[v.method], rel=1e-12)
        assert (v.note, v.unsupported_share) == (None, 0.0)


def test_ope_errors_say_what_to_fix() -> None:
    rows = randomised_log(30, 6)
    with pytest.raises(ConfigError, match="no action for"):
        evaluate_policy(rows, call_the_engaged(rows).head(5), playbook())
    with pytest.raises(ConfigError, match="level"):
        evaluate_policy(rows, logged_policy(rows), playbook(), level=2.0)
    with pytest.raises(ConfigError, match="unknown OPE method"):
        evaluate_policy(rows, logged_policy(rows), playbook(), methods=("magic",))  # type: ignore[arg-type]
    # Without an outcome model DR is skipped, not faked.
    assert [v.method for v in evaluate_policy(rows, logged_policy(rows), playbook())] == ["ips", "snips"]


def test_policy_learned_takes_the_best_positive_action_or_nothing() -> None:
    values = pl.DataFrame(
        {
            "account_id": ["a", "a", "a", "b", "b", "c", "c"],
            "action_id": ["none", "call", "email", "none", "call", "none", "call"],
            "value_usd": [0.0, 5.0, 7.0, 0.0, -3.0, 0.0, 0.0],
        }
    )
    policy = learned_policy(values).sort("account_id")
    assert policy.get_column("action_id").to_list() == ["email", "none", "none"]
    assert policy.get_column("probability").to_list() == [1.0, 1.0, 1.0]
    eligible = pl.DataFrame({"account_id": ["a"], "action_id": ["call"]})
    assert learned_policy(values, eligible=eligible).sort("account_id").get_column("action_id").to_list()[0] == "call"


def test_policy_lifecycle_default_and_tables() -> None:
    rows = pl.DataFrame({"account_id": ["a", "b", "c"], "lifecycle_stage": ["growth", "onboarding", None]})
    default = lifecycle_default_policy(rows, load_playbook())
    assert default.get_column("action_id").to_list() == ["upsell_call", "onboarding_catchup", "none"]
    eligible = pl.DataFrame({"account_id": ["b"], "action_id": ["onboarding_catchup"]})
    limited = lifecycle_default_policy(rows, load_playbook(), eligible=eligible)
    assert limited.get_column("action_id").to_list() == ["none", "onboarding_catchup", "none"]
    with pytest.raises(ConfigError, match="lifecycle_stage"):
        lifecycle_default_policy(rows.drop("lifecycle_stage"), load_playbook())

    table = pl.DataFrame({"account_id": ["a", "a", "b"], "action_id": ["call", "none", "email"]})
    with pytest.raises(ConfigError, match="sum to 1"):
        table_policy(table)
    ok = table_policy(table.with_columns(pl.Series("probability", [0.3, 0.7, 1.0])), actions=["call", "email"])
    assert ok.height == 3
    with pytest.raises(ConfigError, match="not in the playbook"):
        table_policy(pl.DataFrame({"account_id": ["a"], "action_id": ["fax"]}), actions=["call"])
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        table_policy(pl.DataFrame({"account_id": ["a"], "action_id": ["call"], "probability": [1.5]}))


def test_ope_external_table_without_decision_times_applies_to_every_row() -> None:
    rows = randomised_log(900, 7)
    accounts = rows.select("account_id").unique()
    table = table_policy(
        pl.concat(
            [
                accounts.with_columns(pl.lit("call").alias("action_id"), pl.lit(0.5).alias("probability")),
                accounts.with_columns(pl.lit("none").alias("action_id"), pl.lit(0.5).alias("probability")),
            ]
        )
    )
    value = evaluate_policy(rows, table, playbook(), methods=("snips",))[0]
    assert value.matched_share == pytest.approx(2 / 3, abs=0.06)
    assert np.isfinite(value.estimate)


def test_ope_logged_policy_is_the_on_policy_mean() -> None:
    rows = randomised_log(900, 8)
    realised = row_value_usd(rows, playbook()).mean()
    ips, snips = evaluate_policy(rows, logged_policy(rows), playbook(), methods=("ips", "snips"))
    assert ips.estimate == pytest.approx(realised)
    assert snips.estimate == pytest.approx(realised)
    with pytest.raises(ConfigError, match="whole distribution"):
        evaluate_policy(rows, logged_policy(rows), playbook(), expected_values=true_values(rows))
    # With the whole distribution (uniform here), DR works too.
    full = logged_policy(rows, proba=np.full((rows.height, 3), 1 / 3), arms=ARMS)
    dr = evaluate_policy(rows, full, playbook(), expected_values=true_values(rows), methods=("dr",))[0]
    assert abs(dr.estimate - realised) < 3 * dr.stderr
    with pytest.raises(ConfigError, match="propensity"):
        logged_policy(rows.with_columns(pl.lit(None, dtype=pl.Float64).alias("propensity")))


# ---- offline evaluation of a book (fit on one part, evaluate on the other) ------------------------


def test_offline_evaluation_in_the_lab_covers_the_true_gain() -> None:
    """The lab knows every decision's true value: the learned policy's estimated gain over doing
    nothing and over the lifecycle default must cover the truth on the evaluation decisions.

    The lab's accounts table, like a CRM's, shows a gone account as "churned": the default at each
    decision is the one the lab's truth recorded then, as a store's runs record it."""
    lab = simulate(SimConfig(accounts=200, months=10, seed=5))
    playbook = lab.config.resolved_playbook()
    recorded = lab.truth.decisions.select("account_id", "ts", pl.col("default_action").alias("default_action_id"))
    result = evaluate_offline(
        lab.book, playbook, seed=1, effect_params={"n_folds": 2, "n_estimators": 40}, recorded_defaults=recorded
    )
    decisions = result.policy_tables["do_nothing"].height
    assert f"recorded at {decisions:,} of the {decisions:,} evaluated decisions" in " ".join(result.notes)
    assert result.split == "time"
    assert result.as_of is not None
    assert result.evaluation_from >= result.as_of
    assert result.training_rows > 0
    assert result.evaluation_rows > 0
    truth = {}
    for name in ("learned", "lifecycle_default"):
        table = result.policy_tables[name]
        parts = []
        for (ts,), group in table.group_by("decision_ts"):
            true = lab.world.true_values(group.get_column("account_id").to_list(), ts)
            keys = ["account_id", "action_id"]
            parts.append(group.join(true.select(*keys, "value_usd"), on=keys))
        joined = pl.concat(parts)
        assert joined.height == table.height
        truth[name] = float(joined.get_column("value_usd").mean())
    diffs = {(v.policy, v.method): v for v in result.differences}
    for method in ("ips", "snips", "dr"):
        gain = diffs[("learned - do_nothing", method)]
        assert gain.low <= truth["learned"] <= gain.high, (method, gain, truth)
        versus = diffs[("learned - lifecycle_default", method)]
        assert versus.low <= truth["learned"] - truth["lifecycle_default"] <= versus.high, (method, versus, truth)
    report = result.to_dict()
    json.dumps(report)
    assert {v["policy"] for v in report["policies"]} == {"learned", "lifecycle_default", "do_nothing", "logged"}
    assert report["overlap"]["training"]["rows"] == result.training_rows
    assert report["overlap"]["evaluation"]["rows"] == result.evaluation_rows
    for kind, acc in result.outcome_accuracy.items():
        assert acc.rows == result.evaluation_rows, kind
        assert report["outcome_models"][kind]["fit"]["train_to"] < result.as_of.isoformat()


def test_offline_evaluation_of_a_book_without_logged_propensities() -> None:
    # A book whose touches log no propensity (most CRMs): every weight is estimated, and the logged
    # policy's own value is still the on-policy mean (a weight of 1 on every row), as with logged ones.
    lab = simulate(SimConfig(accounts=120, months=8, seed=3))
    book = lab.book
    bare = Book(book.accounts, book.signals, book.touches.drop("propensity"), book.outcomes, source="bare")
    result = evaluate_offline(
        bare, lab.config.resolved_playbook(), seed=1, effect_params={"n_folds": 2, "n_estimators": 20}
    )
    assert any("no logged propensity" in note for note in result.notes)
    logged = {v.method: v for v in result.policies if v.policy == "logged"}
    assert set(logged) == {"ips", "snips"}
    assert logged["ips"].estimate == pytest.approx(logged["snips"].estimate)
    assert result.policy_tables["logged"].get_column("probability").is_between(0, 1, closed="right").all()
    assert {v.policy for v in result.policies} >= {"learned", "lifecycle_default", "do_nothing"}


def test_policy_eligible_actions_limit_the_learned_and_default_policies() -> None:
    pb = Playbook(
        objectives={"win": Objective(outcome="win", value="fixed", value_usd=100.0)},
        actions=[
            Action(id="call", name="Call", team="cs", objective="win", eligibility="usage > 0"),
            Action(id="email", name="Email", team="marketing", objective="win", default_for_stages=["trial"]),
        ],
    )
    rows = pl.DataFrame(
        {
            "account_id": ["a", "a", "b"],
            "decision_ts": [T0, T0 + timedelta(days=14), T0],
            "usage": [1.0, -1.0, None],
            "lifecycle_stage": ["trial", "trial", "paid"],
        }
    )
    eligible = eligible_actions(rows, pb)
    assert eligible.sort("account_id", "decision_ts", "action_id").select("account_id", "action_id").rows() == [
        ("a", "call"),
        ("a", "email"),
        ("a", "email"),
        ("b", "email"),
    ]
    # The call is worth most everywhere, but only allowed where usage > 0.
    values = rows.select("account_id", "decision_ts").join(
        pl.DataFrame({"action_id": ["call", "email"], "value_usd": [50.0, 5.0]}), how="cross"
    )
    learned = learned_policy(values, eligible=eligible).sort("account_id", "decision_ts")
    assert learned.get_column("action_id").to_list() == ["call", "email", "email"]
    default = lifecycle_default_policy(rows, pb, eligible=eligible)
    assert default.get_column("action_id").to_list() == ["email", "email", "none"]
    with pytest.raises(PlaybookError, match="unknown"):
        eligible_actions(rows.drop("usage"), pb)


def test_offline_evaluation_split_errors_say_what_to_fix() -> None:
    lab = simulate(SimConfig(accounts=60, months=4, seed=2))
    playbook = lab.config.resolved_playbook()
    with pytest.raises(ConfigError, match="holdout_fraction must be in"):
        split_decisions(lab.book, playbook, holdout_fraction=1.0)
    with pytest.raises(ConfigError, match="two horizons"):
        split_decisions(lab.book, playbook, observed_until=lab.as_of - timedelta(days=60))
    with pytest.raises(ConfigError, match="nothing to fit on"):
        split_decisions(lab.book, playbook, as_of=lab.as_of - timedelta(days=200))
    training, evaluation, as_of, _ = split_decisions(lab.book, playbook, holdout_fraction=0.4, seed=1)
    assert as_of is None
    assert not set(training.get_column("account_id")) & set(evaluation.get_column("account_id"))
    assert not evaluation.get_column("censored").any()


def test_ope_counts_two_touches_of_one_account_on_one_day_once_each() -> None:
    """Two touches of one account on one day share a decision key (account, day), so its expected values too."""
    rows = randomised_log(300, 3)
    first = rows.row(0, named=True)
    other = next(a for a in ARMS if a != first["action_id"])
    twice = pl.concat([rows, rows.head(1).with_columns(pl.lit(other).alias("action_id"))])
    policy = call_the_engaged(twice).unique(["account_id", "decision_ts"], keep="first", maintain_order=True)
    q = true_values(twice)  # one value per action for each of the two rows: the key's values twice over
    values = evaluate_policy(twice, policy, playbook(), expected_values=q, methods=("dr",))
    once = evaluate_policy(twice, policy, playbook(), expected_values=q.unique(), methods=("dr",))
    assert [v.estimate for v in values] == [v.estimate for v in once]
    assert values[0].n == twice.height


def test_evaluate_policy_reads_the_labels_of_the_rows_vocabulary() -> None:
    # Kinds "cancel" (10 accounts) and "Cancel" (5) sanitise alike: "cancel" keeps y_cancel, "Cancel" gets
    # y_cancel_2. The objective is on "Cancel": without the rows' vocabulary the value read y_cancel.
    from nextmove.book.validate import load_book
    from nextmove.features import build_training_set, training_vocabulary
    from nextmove.playbook.loader import parse_playbook

    n, t0, as_of = 40, datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC)
    ids = [f"a{i:02d}" for i in range(n)]
    touches = pl.DataFrame(
        {
            "touch_id": [f"t{i}" for i in range(n)],
            "account_id": ids,
            "ts": [t0] * n,
            "action_id": ["call", "none"] * (n // 2),
        }
    )
    outcomes = pl.DataFrame(
        {"account_id": ids[:15], "ts": [t0 + timedelta(days=5)] * 15, "kind": ["cancel"] * 10 + ["Cancel"] * 5}
    )
    book = load_book(
        {"accounts": pl.DataFrame({"account_id": ids, "arr": [1000.0] * n}), "touches": touches, "outcomes": outcomes},
        as_of=as_of,
    )
    pb = parse_playbook(
        '[objectives.keep]\noutcome="Cancel"\nsense="avoid"\nvalue="arr"\n'
        '[[actions]]\nid="call"\nname="Call"\nteam="cs"\nobjective="keep"\ncost_usd=0\n'
    )
    rows = build_training_set(book, pb, as_of=as_of).filter(pl.col("logged"))
    vocab = training_vocabulary(book, pb, as_of=as_of)
    logged = rows.select("account_id", "action_id", pl.lit(1.0).alias("probability"))
    common: dict[str, object] = {"methods": ("ips",), "propensity": np.ones(rows.height), "vocabulary": vocab}
    (value,) = evaluate_policy(rows, logged, pb, **common)  # type: ignore[arg-type]
    assert value.estimate == pytest.approx(-1000.0 * 5 / rows.height)
    nothing = do_nothing_policy(rows)
    (diff,) = policy_difference(rows, logged, nothing, pb, **common)  # type: ignore[arg-type]
    assert diff.estimate == pytest.approx(-1000.0 * 3 / rows.height)  # Cancel after a call: a10, a12, a14
