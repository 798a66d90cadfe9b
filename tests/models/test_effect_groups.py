"""Tests of EffectModel's behavior groups: a planted group × arm interaction is recovered, thin cells fall back."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from nextmove.errors import ConfigError
from nextmove.models.effect import EffectModel
from nextmove.playbook import Action, Objective, Playbook

FAST = {"n_folds": 3, "n_estimators": 40, "num_leaves": 7, "min_child_samples": 40, "n_draws": 100}
START = datetime(2025, 1, 6, tzinfo=UTC)


def playbook() -> Playbook:
    """One event objective (a won deal worth $100) and two actions."""
    return Playbook(
        objectives={"win": Objective(outcome="win", value="fixed", value_usd=100.0)},
        actions=[Action(id=a, name=a.title(), team="cs", objective="win", cost_usd=5.0) for a in ("call", "email")],
    )


def grouped_book(
    *,
    win_by_group: tuple[dict[str, float], dict[str, float]],
    arms_by_group: tuple[dict[str, float], dict[str, float]] | None = None,
    accounts: int = 1000,
    periods: int = 6,
    seed: int = 0,
) -> pl.DataFrame:
    """A randomised history of two behavior groups that the features show (heavy and light usage).

    An account of group ``g`` wins with probability ``win_by_group[g][action]`` (``none`` when
    the action is not listed) and gets each action with probability ``arms_by_group[g][action]``;
    the logged propensities are exact.
    """
    rng = np.random.default_rng(seed)
    arms_by_group = arms_by_group or ({"none": 0.5, "call": 0.25, "email": 0.25},) * 2
    names = ["none", "call", "email"]
    n = accounts * periods
    account = np.repeat(np.arange(accounts), periods)
    period = np.tile(np.arange(periods), accounts)
    group = (rng.random(accounts) < 0.5).astype(np.int64)[account]
    usage = np.where(group == 0, 3.0, -3.0) + 0.5 * rng.normal(size=n)
    seats = np.where(group == 0, 40.0, 8.0) * np.exp(0.2 * rng.normal(size=n))
    probs = np.array([[arms_by_group[g].get(a, 0.0) for a in names] for g in (0, 1)])
    choice = np.array([rng.choice(3, p=probs[g]) for g in group])
    action = np.array(names)[choice]
    p_win = np.array([win_by_group[g].get(a, win_by_group[g]["none"]) for g, a in zip(group, action, strict=True)])
    y_win = (rng.random(n) < p_win).astype(np.int8)
    return pl.DataFrame(
        {
            "account_id": [f"acc{i:04d}" for i in account],
            "decision_ts": [START + timedelta(days=14 * int(p)) for p in period],
            "action_id": action.tolist(),
            "propensity": probs[group, choice],
            "usage": usage,
            "seats": seats,
            "y_win": y_win,
            "y_win_value": y_win.astype(float),
            "censored": [False] * n,
            "_group": group,
        }
    )


def snapshot_of(training: pl.DataFrame) -> pl.DataFrame:
    return (
        training.sort("decision_ts")
        .group_by("account_id", maintain_order=True)
        .last()
        .select("account_id", "usage", "seats", "_group")
    )


def call_effects(model: EffectModel, training: pl.DataFrame) -> pl.DataFrame:
    snapshot = snapshot_of(training)
    effects = model.project(snapshot.drop("_group")).effects.filter(pl.col("action_id") == "call")
    return effects.join(snapshot.select("account_id", "_group"), on="account_id")


# The call wins +20 points with heavy users and does nothing with light ones; the email nothing anywhere.
PLANTED = ({"none": 0.2, "call": 0.4}, {"none": 0.2, "call": 0.2})
TRUTH = {0: 0.2, 1: 0.0}


def test_effect_groups_recover_a_planted_group_by_arm_interaction_within_its_interval() -> None:
    training = grouped_book(win_by_group=PLANTED)
    model = EffectModel(playbook(), **FAST, n_groups=4).fit(training.drop("_group"))
    effects = call_effects(model, training)
    for group, truth in TRUTH.items():
        mine = effects.filter(pl.col("_group") == group)
        assert abs(mine.get_column("effect").mean() - truth) < 0.05
        covered = mine.select(((pl.col("low") <= truth) & (pl.col("high") >= truth)).mean()).item()
        assert covered >= 0.9
    # The learned groups are the planted ones (up to their names), and both cells are reported.
    cells = model.group_effects_.filter((pl.col("arm") == "call") & (pl.col("objective") == "win"))
    assert cells.height == 4
    assert (cells.get_column("rows") > 200).all()
    # Without groups, the one shift per arm averages the two groups and misses both.
    one_shift = EffectModel(playbook(), **FAST, n_groups=0, contrast_modifier=False)
    plain = call_effects(one_shift.fit(training.drop("_group")), training)
    heavy = plain.filter(pl.col("_group") == 0).get_column("effect").mean()
    light = plain.filter(pl.col("_group") == 1).get_column("effect").mean()
    assert heavy - light < 0.1


def test_effect_groups_a_thin_cell_falls_back_to_the_arm() -> None:
    # Light users almost never get a call: a dozen rows, which alone would say anything.
    arms = ({"none": 0.5, "call": 0.25, "email": 0.25}, {"none": 0.74, "call": 0.002, "email": 0.258})
    same = ({"none": 0.2, "call": 0.35}, {"none": 0.2, "call": 0.35})
    training = grouped_book(win_by_group=same, arms_by_group=arms)
    model = EffectModel(playbook(), **FAST, n_groups=4).fit(training.drop("_group"))
    arm = next(a for a in model.arm_effects_ if a.arm == "call" and a.objective == "win")
    cells = model.group_effects_.filter((pl.col("arm") == "call") & (pl.col("objective") == "win"))
    thin = cells.filter(pl.col("rows") < 30)
    thick = cells.filter(pl.col("rows") > 300)
    assert thin.height >= 1
    assert thick.height >= 1
    # Shrunk, a thin cell is the arm's shift whatever its own rows said, with a wider interval.
    assert (abs(thin.get_column("logit_effect") - arm.logit_effect) < 0.1).all()
    assert thin.get_column("posterior_sd").min() >= thick.get_column("posterior_sd").max()
    assert (abs(thick.get_column("logit_effect") - arm.logit_effect) < 0.1).all()


def test_effect_groups_without_an_interaction_keep_one_effect_covered() -> None:
    same = ({"none": 0.2, "call": 0.35}, {"none": 0.2, "call": 0.35})
    training = grouped_book(win_by_group=same, accounts=600)
    model = EffectModel(playbook(), **FAST, n_groups=4).fit(training.drop("_group"))
    effects = call_effects(model, training)
    assert abs(effects.get_column("effect").mean() - 0.15) < 0.04
    covered = effects.select(((pl.col("low") <= 0.15) & (pl.col("high") >= 0.15)).mean()).item()
    assert covered >= 0.9


def test_effect_groups_contract_same_seed_pickling_and_settings() -> None:
    training = grouped_book(win_by_group=PLANTED, accounts=300).drop("_group")
    snapshot = snapshot_of(training.with_columns(pl.lit(0).alias("_group"))).drop("_group")
    a = EffectModel(playbook(), **FAST, n_groups=3, random_state=2).fit(training)
    b = EffectModel(playbook(), **FAST, n_groups=3, random_state=2).fit(training)
    assert a.project(snapshot).values.equals(b.project(snapshot).values)
    restored = pickle.loads(pickle.dumps(a))
    assert restored.project(snapshot).values.equals(a.project(snapshot).values)
    assert a.get_params()["n_groups"] == 3
    q = a.expected_values(training.head(20))
    assert q.height == 20 * 3
    for bad in (-1, 2.5, True):
        with pytest.raises(ConfigError, match="n_groups"):
            EffectModel(playbook(), n_groups=bad).fit(training)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_group_sd"):
        EffectModel(playbook(), n_groups=2, min_group_sd=-0.1).fit(training)


def test_effect_groups_fall_back_to_one_shift_when_there_is_nothing_to_cluster() -> None:
    training = grouped_book(win_by_group=PLANTED, accounts=200).drop("_group")
    constant = training.with_columns(pl.lit(1.0).alias("usage"), pl.lit(5.0).alias("seats"))
    model = EffectModel(playbook(), **FAST).fit(constant)
    assert model.group_model_ is None
    assert model.group_effects_.get_column("group").unique().to_list() == [0]
    text_only = training.drop("usage", "seats").with_columns(pl.lit("SMB").alias("segment"))
    assert EffectModel(playbook(), **FAST).fit(text_only).group_model_ is None
    with pytest.raises(ConfigError, match="numeric features"):
        EffectModel(playbook(), **FAST, group_features=["segment"]).fit(text_only)
