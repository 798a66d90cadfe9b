"""The ground truth: exact probabilities, oracle vs default, do-nothing share, confounding, groups."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from nextmove.errors import ConfigError
from nextmove.sim import GROUPS, OUTCOME_KINDS, SimResult
from nextmove.sim.model import FRU, SAT


def _labelled(result: SimResult) -> pl.DataFrame:
    """Historical decisions whose horizon ended before as_of, with their attributed outcomes."""
    book = result.book
    horizon = timedelta(days=result.world.playbook.horizon_days)
    labels = (
        book.outcomes.drop_nulls("touch_id")
        .group_by("touch_id")
        .agg(
            *[(pl.col("kind") == k).any().cast(pl.Float64).alias(f"y_{k}") for k in OUTCOME_KINDS],
            pl.col("value").filter(pl.col("kind") == "expansion").sum().alias("y_amount"),
        )
    )
    return (
        result.truth.decisions.filter(pl.col("ts") <= result.as_of - horizon)
        .join(labels, on="touch_id", how="left")
        .with_columns(pl.col("^y_.*$").fill_null(0.0))
    )


def test_truth_decisions_match_the_true_values_api(small: SimResult) -> None:
    t = small.world.decision_times[5]
    decisions = small.truth.decisions.filter(pl.col("ts") == t)
    api = small.world.true_values(t=t)
    taken = decisions.join(api, on=["account_id", "action_id"], suffix="_api")
    assert taken.height == decisions.height > 0
    for col in ("p_churn", "p_expansion", "expected_expansion_usd", "p_advocacy", "value_usd"):
        assert np.allclose(taken[col].to_numpy(), taken[f"{col}_api"].to_numpy()), col
    none = decisions.join(api.filter(pl.col("action_id") == "none"), on="account_id", suffix="_api")
    for kind in OUTCOME_KINDS:
        assert np.allclose(none[f"p_{kind}_none"].to_numpy(), none[f"p_{kind}_api"].to_numpy()), kind
    # Every taken action was eligible, and doing nothing is worth exactly 0.
    assert taken["eligible"].all()
    assert (api.filter(pl.col("action_id") == "none")["value_usd"] == 0.0).all()


def test_true_values_api_takes_accounts_actions_and_times(small: SimResult) -> None:
    world = small.world
    ids = small.truth.values["account_id"].unique().sort()[:3].to_list()
    frame = world.true_values(ids, actions=["none", "upsell_call"])
    assert frame.height == 6
    assert set(frame["action_id"]) == {"none", "upsell_call"}
    assert frame["ts"].unique().to_list() == [small.as_of]
    with pytest.raises(ConfigError, match="not in the playbook"):
        world.true_values(ids, actions=["fax_blast"])
    with pytest.raises(ConfigError, match="no decision time"):
        world.true_values(ids, t=small.as_of - timedelta(days=1))
    with pytest.raises(ConfigError, match="not active"):
        world.true_values(["ACC-999999"])


def test_truth_probabilities_are_exact_for_attributed_outcomes(default: SimResult) -> None:
    """Outcomes are drawn from exactly the true probabilities: realised counts match their sum."""
    d = _labelled(default)
    assert d.height > 100_000
    for kind in OUTCOME_KINDS:
        p = d[f"p_{kind}"].to_numpy()
        y = d[f"y_{kind}"].to_numpy()
        sd = np.sqrt(np.sum(p * (1 - p)))
        assert abs(y.sum() - p.sum()) < 4 * sd + 1, (kind, y.sum(), p.sum())
    # Per action, too, for churn (the effects must be exact, not only the base rates).
    for (action,), part in d.group_by("action_id"):
        p = part["p_churn"].to_numpy()
        y = part["y_churn"].to_numpy()
        assert abs(y.sum() - p.sum()) < 4 * np.sqrt(np.sum(p * (1 - p))) + 1, action
    expected = d["expected_expansion_usd"].to_numpy()
    realised = d["y_amount"].to_numpy()
    p = d["p_expansion"].to_numpy()
    amount = np.divide(expected, p, out=np.zeros_like(p), where=p > 0)
    sd = np.sqrt(np.sum(p * amount**2 * np.exp(0.25) - expected**2))
    assert abs(realised.sum() - expected.sum()) < 4 * sd


def test_oracle_beats_the_lifecycle_default_by_a_clear_margin(default: SimResult) -> None:
    summary = default.summary
    assert summary.active_accounts == 4200
    assert summary.oracle_value_usd > 0
    assert summary.oracle_value_usd - summary.default_value_usd > 0.5 * summary.oracle_value_usd
    # The oracle is the best eligible candidate, one per account.
    values = default.truth.values
    best = values.filter(pl.col("eligible")).group_by("account_id").agg(pl.col("value_usd").max())
    oracle = values.filter(pl.col("is_oracle")).select("account_id", "value_usd")
    assert oracle.height == 4200
    joined = oracle.join(best, on="account_id")
    assert np.allclose(joined["value_usd"].to_numpy(), joined["value_usd_right"].to_numpy())


def test_do_nothing_is_best_for_a_real_share(default: SimResult) -> None:
    share = default.summary.do_nothing_best_share
    assert 0.2 <= share <= 0.5
    by_group = dict(zip(default.truth.groups["group"], default.truth.groups["do_nothing_best_share"], strict=True))
    assert by_group["quiet_loyal"] > by_group["power_users"]


def test_naive_treated_vs_untreated_has_the_wrong_sign(default: SimResult) -> None:
    """Save plays go to at-risk accounts, so naively they look as if they caused churn."""
    d = _labelled(default)
    none = d.filter(pl.col("action_id") == "none")["y_churn"]
    wrong = []
    for (action,), part in d.group_by("action_id"):
        if action == "none" or part.height < 500:
            continue
        naive = part["y_churn"].mean() - none.mean()  # type: ignore[operator]
        se = np.sqrt(part["y_churn"].var() / part.height + none.var() / none.len())  # type: ignore[operator]
        true_effect = (part["p_churn"] - part["p_churn_none"]).mean()
        if naive > 2 * se and true_effect < 0:  # type: ignore[operator]
            wrong.append(action)
    assert wrong, "no action shows the confounded wrong sign"


def test_groups_are_planted_recorded_and_ranked(default: SimResult) -> None:
    accounts = default.truth.accounts
    assert accounts["group"].null_count() == 0
    assert 3 <= accounts["group"].n_unique() <= 5
    assert set(accounts["group"]) == set(GROUPS)
    groups = default.truth.groups.sort("response_rank")
    values = groups["mean_oracle_value_usd"].to_numpy()
    assert (np.diff(values) <= 0).all()
    assert groups["response_rank"].to_list() == list(range(1, len(GROUPS) + 1))
    # Groups shape the signals: support-heavy accounts open more tickets, power users use more seats.
    signals = default.book.signals.join(accounts.select("account_id", "group"), on="account_id")
    tickets = signals.filter(pl.col("name") == "tickets_opened").group_by("group").len()
    per_group = dict(zip(tickets["group"], tickets["len"], strict=True))
    assert per_group["support_heavy"] > 2 * per_group["quiet_loyal"]
    util = signals.filter(pl.col("name") == "seat_utilization").group_by("group").agg(pl.col("value").mean())
    usage = dict(zip(util["group"], util["value"], strict=True))
    assert usage["power_users"] > usage["quiet_loyal"] > usage["stalled_adopters"]


def test_effects_help_some_accounts_and_hurt_others(default: SimResult) -> None:
    ga = default.truth.group_actions
    upsell = dict(zip(*ga.filter(pl.col("action_id") == "upsell_call").select("group", "mean_value_usd"), strict=True))
    assert upsell["power_users"] > 0 > upsell["support_heavy"]
    # Within the renewal window an upsell call to a frustrated account raises churn, and a
    # reference request to a detractor does too.
    x = default.world.snapshot()
    model = default.world.model
    near = (x.days_to_renewal <= 45) & ~x.committed
    rows = np.flatnonzero(near)
    x = x.take(rows)
    codes = {a: model.action_ids.index(a) for a in ("none", "upsell_call", "reference_request")}

    def churn(action: str) -> np.ndarray:
        return model.probabilities(x, np.full(len(rows), codes[action])).churn

    frustrated = x.z[:, FRU] > 1.2
    detractor = x.z[:, SAT] < -1.0
    assert (churn("upsell_call")[frustrated] > churn("none")[frustrated]).all()
    assert (churn("reference_request")[detractor] > churn("none")[detractor]).all()


def test_effects_diminish_with_repetition_and_fatigue(default: SimResult) -> None:
    world = default.world
    x = world.snapshot()
    rows = np.flatnonzero(~x.committed & x.frustrated & ~x.pending[:, 2])
    x = x.take(rows)
    code = world.model.action_ids.index("support_escalation_review")
    codes = np.full(len(rows), code)

    def recovery(x_: object) -> np.ndarray:
        return world.model.probabilities(x_, codes).recovery  # type: ignore[arg-type]

    fresh = dataclasses.replace(x, touches_60d=np.zeros(len(rows)), same_action_180d=np.zeros_like(x.same_action_180d))
    repeated_counts = np.zeros_like(x.same_action_180d)
    repeated_counts[:, code] = 2
    repeated = dataclasses.replace(fresh, same_action_180d=repeated_counts)
    tired = dataclasses.replace(fresh, touches_60d=np.full(len(rows), 4.0))
    base = world.model.probabilities(fresh, np.zeros(len(rows), dtype=np.int64)).recovery
    lift = recovery(fresh) - base
    assert (lift > 0).all()
    assert (recovery(repeated) - base < lift).all()
    assert (recovery(tired) - base < lift).all()


def test_churn_effects_depend_on_time_to_renewal(default: SimResult) -> None:
    world = default.world
    x = world.snapshot()
    x = x.take(np.flatnonzero(~x.committed & (x.days_to_renewal > 5)))
    n = len(x.idx)
    code = np.full(n, world.model.action_ids.index("renewal_incentive"))
    none = np.zeros(n, dtype=np.int64)

    def effect(days: float) -> np.ndarray:
        at = dataclasses.replace(x, days_to_renewal=np.full(n, days))
        return world.model.probabilities(at, none).churn - world.model.probabilities(at, code).churn

    # The incentive works in the last two months; beyond the horizon it cannot move churn at all.
    helped = effect(30) > 0
    assert helped.mean() > 0.5
    assert (effect(30)[helped] > effect(80)[helped]).all()
    assert (effect(200) == 0).all()
