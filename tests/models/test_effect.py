"""Tests of EffectModel: known effects recovered within their intervals, overlap fallbacks, the estimator contract."""

from __future__ import annotations

import pickle
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nextmove.book.validate import load_book
from nextmove.errors import ConfigError, NotFittedError, NothingToLearnError
from nextmove.features import FeatureVocabulary, build_training_set, training_vocabulary
from nextmove.models.effect import (
    EffectArrays,
    EffectModel,
    EffectProjection,
    _amounts_over,
    _interval,
    objective_specs,
    row_value_usd,
)
from nextmove.playbook import Action, Objective, Playbook
from nextmove.playbook.schema import Variant

FAST = {"n_folds": 3, "n_estimators": 40, "num_leaves": 7, "min_child_samples": 40, "n_draws": 100}
START = datetime(2025, 1, 6, tzinfo=UTC)
DOC = Path(__file__).resolve().parents[2] / "docs" / "effects.md"


def small_playbook(actions: list[str] | None = None) -> Playbook:
    """Two objectives: a won deal worth $100 (an event) and growth dollars (an amount)."""
    ids = actions or ["call", "email"]
    return Playbook(
        objectives={
            "win": Objective(outcome="win", value="fixed", value_usd=100.0),
            "growth": Objective(outcome="grow", value="amount"),
        },
        actions=[Action(id=a, name=a.title(), team="cs", objective="win", cost_usd=5.0) for a in ids],
    )


def randomised_book(
    *,
    accounts: int = 600,
    periods: int = 6,
    seed: int = 0,
    arms: dict[str, float] | None = None,
    win: dict[str, float] | None = None,
    grow_multiplier: dict[str, float] | None = None,
    logged: bool = True,
) -> pl.DataFrame:
    """A randomised history: actions drawn with fixed probabilities, so the logged propensities are exact.

    The win probability of every account is ``win[action]`` (a known constant effect against
    ``none``); growth happens with probability 0.1 and is worth ``1000 × grow_multiplier[action]``
    on average.
    """
    rng = np.random.default_rng(seed)
    arms = arms or {"none": 0.5, "call": 0.25, "email": 0.25}
    win = win or {"none": 0.2, "call": 0.35, "email": 0.2}
    grow_multiplier = grow_multiplier or dict.fromkeys(arms, 1.0)
    names = list(arms)
    probs = np.array([arms[a] for a in names])
    n = accounts * periods
    account = np.repeat(np.arange(accounts), periods)
    period = np.tile(np.arange(periods), accounts)
    usage = rng.normal(size=accounts)[account] + 0.3 * rng.normal(size=n)
    choice = rng.choice(len(names), size=n, p=probs)
    action = np.array(names)[choice]
    p_win = np.array([win.get(a, win["none"]) for a in action])
    y_win = (rng.random(n) < p_win).astype(np.int8)
    y_grow = (rng.random(n) < 0.1).astype(np.int8)
    amount = 1000 * np.exp(0.3 * rng.normal(size=n) - 0.045) * np.array([grow_multiplier.get(a, 1.0) for a in action])
    return pl.DataFrame(
        {
            "account_id": [f"acc{i:04d}" for i in account],
            "decision_ts": [START + timedelta(days=14 * int(p)) for p in period],
            "logged": [True] * n,
            "action_id": action.tolist(),
            "propensity": probs[choice] if logged else [None] * n,
            "usage": usage,
            "segment": np.where(rng.random(accounts) < 0.5, "SMB", "Ent")[account].tolist(),
            "y_win": y_win,
            "y_win_value": y_win.astype(float),
            "y_grow": y_grow,
            "y_grow_value": np.where(y_grow == 1, amount, 0.0),
            "censored": [False] * n,
        },
        schema_overrides={"propensity": pl.Float64},
    )


def snapshot_of(training: pl.DataFrame) -> pl.DataFrame:
    """The latest row of every account, without the decision columns: a snapshot to project."""
    return (
        training.sort("decision_ts")
        .group_by("account_id", maintain_order=True)
        .last()
        .select("account_id", "usage", "segment")
    )


def effects_of(projection: EffectProjection, action: str, objective: str) -> pl.DataFrame:
    return projection.effects.filter((pl.col("action_id") == action) & (pl.col("objective") == objective))


def test_effect_randomised_constant_effect_is_recovered_within_its_interval() -> None:
    training = randomised_book()
    model = EffectModel(small_playbook(), **FAST).fit(training)
    projection = model.project(snapshot_of(training))
    call = effects_of(projection, "call", "win")
    email = effects_of(projection, "email", "win")
    # The truth: +0.15 for a call, 0 for an email, the same for every account.
    assert abs(call.get_column("effect").mean() - 0.15) < 0.03
    assert abs(email.get_column("effect").mean()) < 0.03
    for frame, truth in ((call, 0.15), (email, 0.0)):
        covered = frame.select(((pl.col("low") <= truth) & (pl.col("high") >= truth)).mean()).item()
        assert covered >= 0.9
    # Baseline: the do-nothing probability, 0.2.
    assert abs(call.get_column("baseline").mean() - 0.2) < 0.03
    assert set(call.get_column("unit").unique().to_list()) == {"probability"}


def test_effect_amount_objective_is_in_dollars() -> None:
    training = randomised_book(accounts=800, grow_multiplier={"none": 1.0, "call": 1.5, "email": 1.0})
    model = EffectModel(small_playbook(), **FAST).fit(training)
    projection = model.project(snapshot_of(training))
    growth = effects_of(projection, "call", "growth")
    # 0.1 × (1500 − 1000) = $50 of growth per account; the chance of growth is the noisier part.
    assert set(growth.get_column("unit").to_list()) == {"usd"}
    call = next(a for a in model.arm_effects_ if a.arm == "call" and a.objective == "growth")
    assert call.amount_multiplier is not None
    assert abs(call.amount_multiplier - 1.5) < 0.2
    assert abs(growth.get_column("effect").mean() - 50.0) < 40.0
    assert abs(growth.get_column("baseline").mean() - 100.0) < 20.0
    covered = growth.select(((pl.col("low") <= 50.0) & (pl.col("high") >= 50.0)).mean()).item()
    assert covered >= 0.9
    # The value adds the objectives' dollars and subtracts the cost.
    values = projection.values.filter(pl.col("action_id") == "call")
    win = effects_of(projection, "call", "win").get_column("effect").to_numpy()
    expected = win * 100.0 + growth.get_column("effect").to_numpy() - 5.0
    assert np.allclose(values.get_column("value_usd").to_numpy(), expected)


def test_effect_amount_projection_stays_on_the_scale_of_the_observed_amounts() -> None:
    # Growth of $1,000 when both usage and seats are above 0, $1 otherwise: an interaction that
    # stumps (an additive model) fit with a negative amount where both are below 0. Dividing an
    # event's amount by such a prediction once made the do-nothing multiplier ~1e8 and every
    # projected amount billions of dollars.
    rng = np.random.default_rng(0)
    accounts, periods = 600, 6
    n = accounts * periods
    account = np.repeat(np.arange(accounts), periods)
    usage = rng.normal(size=accounts)[account] + 0.1 * rng.normal(size=n)
    seats = rng.normal(size=accounts)[account] + 0.1 * rng.normal(size=n)
    arms, probs = np.array(["none", "call", "email"]), np.array([0.5, 0.25, 0.25])
    choice = rng.choice(len(arms), size=n, p=probs)
    y_win = (rng.random(n) < 0.2).astype(np.int8)
    y_grow = (rng.random(n) < 0.3).astype(np.int8)
    amount = np.where((usage > 0) & (seats > 0), 1000.0, 1.0) * np.exp(0.1 * rng.normal(size=n))
    training = pl.DataFrame(
        {
            "account_id": [f"acc{i:04d}" for i in account],
            "decision_ts": [START + timedelta(days=14 * int(p)) for p in np.tile(np.arange(periods), accounts)],
            "logged": [True] * n,
            "action_id": arms[choice].tolist(),
            "propensity": probs[choice],
            "usage": usage,
            "seats": seats,
            "y_win": y_win,
            "y_win_value": y_win.astype(float),
            "y_grow": y_grow,
            "y_grow_value": np.where(y_grow == 1, amount, 0.0),
            "censored": [False] * n,
        }
    )
    model = EffectModel(small_playbook(), **{**FAST, "num_leaves": 2, "colsample": 1.0}).fit(training)
    snapshot = training.sort("decision_ts").group_by("account_id", maintain_order=True).last()
    projection = model.project(snapshot.select("account_id", "usage", "seats"))
    growth = projection.effects.filter(pl.col("objective") == "growth")
    largest = training.get_column("y_grow_value").max()
    assert isinstance(largest, float)
    with_action = growth.select(pl.max_horizontal("baseline", pl.col("baseline") + pl.col("effect"))).to_series()
    assert with_action.max() <= 2 * largest  # before: 5e10 against an observed 1,343
    assert growth.get_column("high").max() <= 2 * largest
    multipliers = [a.amount_multiplier for a in model.arm_effects_ if a.objective == "growth"]
    assert all(m is not None and 0.5 < m < 2.0 for m in multipliers)  # the truth: 1 for every action
    assert model.amount_notes(projection) == []
    # An absurd projection is noted, not passed on in silence.
    absurd = EffectProjection(
        projection.level,
        projection.effects.with_columns(pl.col("baseline") * 1e6),
        projection.values,
        projection.flagged_actions,
    )
    (note,) = model.amount_notes(absurd)
    assert "'growth'" in note
    assert "largest 'grow' amount" in note


def test_effect_never_taken_action_is_flagged_and_pooled_with_a_wide_interval() -> None:
    training = randomised_book()
    playbook = small_playbook(["call", "email", "webinar"])
    model = EffectModel(playbook, **FAST).fit(training)
    assert model.flagged_arms_ == ["webinar"]
    assert model.overlap_.arm("webinar").rows == 0
    projection = model.project(snapshot_of(training))
    assert projection.flagged_actions == ("webinar",)
    webinar = effects_of(projection, "webinar", "win")
    call = effects_of(projection, "call", "win")
    assert webinar.get_column("pooled").all()
    assert not call.get_column("pooled").any()
    width = (pl.col("high") - pl.col("low")).mean()
    assert webinar.select(width).item() > 1.5 * call.select(width).item()
    # A pooled effect lies between the taken actions' effects, not outside them.
    pooled = webinar.get_column("effect").mean()
    assert -0.05 < pooled < 0.2


def test_effect_rare_action_is_shrunk_toward_the_pool() -> None:
    arms = {"none": 0.5, "call": 0.24, "email": 0.24, "sms": 0.02}
    win = {"none": 0.2, "call": 0.35, "email": 0.2, "sms": 0.6}
    training = randomised_book(accounts=600, arms=arms, win=win)
    model = EffectModel(small_playbook(["call", "email", "sms"]), **FAST, min_rows=10).fit(training)
    sms = next(a for a in model.arm_effects_ if a.arm == "sms" and a.objective == "win")
    call = next(a for a in model.arm_effects_ if a.arm == "call" and a.objective == "win")
    assert sms.raw_logit_effect is not None
    assert call.raw_logit_effect is not None
    # The rare arm moves toward the pool more than the common one does.
    assert abs(sms.logit_effect - sms.raw_logit_effect) > abs(call.logit_effect - call.raw_logit_effect)
    assert sms.posterior_sd > call.posterior_sd


def test_effect_without_logged_propensities_estimates_them() -> None:
    training = randomised_book(logged=False)
    model = EffectModel(small_playbook(), **FAST, propensity_params={"n_estimators": 30}).fit(training)
    assert not model.propensity_model_.logged_.any()
    assert model.propensity_model_.proba_ is not None
    call = effects_of(model.project(snapshot_of(training)), "call", "win")
    assert abs(call.get_column("effect").mean() - 0.15) < 0.04


def test_effect_training_propensities_keep_the_logged_and_estimate_the_rest_per_action() -> None:
    training = randomised_book(accounts=400)  # none 0.5, call 0.25, email 0.25, whatever the account
    hidden = pl.int_range(pl.len()) % 2 == 0
    variant = pl.when(pl.col("action_id") == "email").then(
        pl.when(pl.int_range(pl.len()) % 3 == 0).then(pl.lit("morning")).otherwise(pl.lit("evening"))
    )
    book = training.with_columns(
        pl.when(hidden).then(None).otherwise(pl.col("propensity")).alias("propensity"), variant.alias("variant")
    )
    model = EffectModel(small_playbook(), **FAST, propensity_params={"n_estimators": 30}).fit(book)
    assert model.arms_ == ["none", "call", "email:evening", "email:morning"]
    out = model.training_propensities(book)
    assert out is not None
    assert out.select("account_id", "decision_ts").equals(book.select("account_id", "decision_ts"))
    p = out.get_column("propensity").to_numpy()
    known = book.get_column("propensity").is_not_null().to_numpy()
    assert np.array_equal(p[known], book.get_column("propensity").to_numpy()[known])  # the log's, untouched
    truth = {"none": 0.5, "call": 0.25, "email": 0.25}
    actions = book.get_column("action_id").to_numpy()
    for action, share in truth.items():
        # The action's propensity: an email row's estimate sums its two variants (about 1/12 and 1/6).
        estimated = p[~known & (actions == action)]
        assert abs(estimated.mean() - share) < 0.03, action
    assert model.training_propensities(book.head(100)) is None  # not the frame fitted
    closed = book.with_columns((pl.int_range(pl.len()) < 30).alias("censored"))
    assert model.training_propensities(closed) is None  # 30 fewer rows learned from: another frame


def test_effect_propensities_of_zero_and_one_are_handled() -> None:
    training = randomised_book(accounts=300)
    odd = pl.int_range(pl.len()) % 7
    training = training.with_columns(
        pl.when(odd == 0).then(0.0).when(odd == 1).then(1.0).otherwise(pl.col("propensity")).alias("propensity")
    )
    for weights in ("none", "propensity"):
        model = EffectModel(small_playbook(), **FAST, calibration_weights=weights).fit(training)
        projection = model.project(snapshot_of(training))
        for column in ("value_usd", "low", "high"):
            assert np.isfinite(projection.values.get_column(column).to_numpy()).all()
        assert np.isfinite(projection.effects.get_column("high").to_numpy()).all()
        assert abs(effects_of(projection, "call", "win").get_column("effect").mean() - 0.15) < 0.05


def test_effect_two_actions_or_thirty() -> None:
    two = randomised_book(accounts=300, arms={"none": 0.6, "call": 0.4}, win={"none": 0.2, "call": 0.3})
    model = EffectModel(small_playbook(["call"]), **FAST).fit(two)
    assert model.arms_ == ["none", "call"]
    assert model.project(snapshot_of(two)).values.height == 2 * 300

    names = [f"play_{i:02d}" for i in range(30)]
    probs = {"none": 0.4, **dict.fromkeys(names[:-1], 0.6 / 29)}
    many = randomised_book(accounts=400, arms=probs, win={"none": 0.2, names[0]: 0.4})
    wide = EffectModel(small_playbook(names), **FAST, min_rows=20).fit(many)
    assert len(wide.arms_) == 31
    assert names[-1] in wide.flagged_arms_
    projection = wide.project(snapshot_of(many).head(50))
    assert projection.values.height == 50 * 31
    assert projection.effects.height == 50 * 30 * 2


def test_effect_fold_models_stop_growing_once_held_out_deviance_stops_improving() -> None:
    # Constant effects: the held-out deviance bottoms out long before 400 trees.
    training = randomised_book(accounts=400)
    model = EffectModel(small_playbook(), **{**FAST, "n_estimators": 400}).fit(training)
    for fit in model.fits_:
        curve = fit.deviance_by_trees
        assert 0 < fit.n_trees < len(curve) < 400
        assert fit.n_trees == int(np.argmin(curve)) + 1
        # Stopped after 20 rounds without improvement (or earlier, when no fold model could split any more).
        assert len(curve) <= fit.n_trees + 20
        assert all(b.num_trees() <= len(curve) for b in fit.boosters)
    every = EffectModel(small_playbook(), **{**FAST, "select_trees": False}).fit(training)
    for fit in every.fits_:
        # Every round is used (fold models that cannot split any more end sooner).
        assert fit.n_trees == len(fit.deviance_by_trees) <= 40
        assert max(b.num_trees() for b in fit.boosters) <= fit.n_trees


class _ScriptedFold:
    """A fold model whose held-out deviance after each tree is scripted; it can stop splitting at a given tree."""

    def __init__(self, deviance: list[float], last_tree: int | None, seed: int) -> None:
        self.deviance, self.last_tree = deviance, last_tree
        self.trees = 0
        self.rng = np.random.default_rng(seed)

    def update(self) -> bool:
        time.sleep(float(self.rng.uniform(0, 0.002)))  # fold models finish their trees in varying order
        if self.last_tree is not None and self.trees >= self.last_tree:
            return True
        self.trees += 1
        return self.last_tree is not None and self.trees >= self.last_tree

    def eval_valid(self) -> list[tuple[str, str, float, bool]]:
        return [("held", "binary_logloss", self.deviance[max(self.trees - 1, 0)], False)]


def _lockstep_curve(folds: list[_ScriptedFold], held_rows: list[int], rounds: int, patience: int) -> list[float]:
    """The held-out deviance curve of growing the fold models in step (how it was done before)."""
    curve: list[float] = []
    best, best_round = np.inf, 0
    for round_ in range(rounds):
        total = 0.0
        for fold, rows in zip(folds, held_rows, strict=True):
            fold.trees = min(round_ + 1, fold.last_tree or round_ + 1)
            total += rows * fold.eval_valid()[0][2]
        curve.append(total)
        if all(f.last_tree is not None and f.trees >= f.last_tree for f in folds):
            break
        if total < best:
            best, best_round = total, round_
        elif round_ - best_round >= patience:
            break
    return curve


@pytest.mark.parametrize(
    ("last_trees", "rounds"),
    [((None, None, None), 200), ((None, 30, None), 200), ((12, 9, 15), 200), ((None, None, None), 25)],
)
def test_effect_fold_models_grown_apart_give_the_curve_of_growing_them_in_step(
    last_trees: tuple[int | None, ...], rounds: int
) -> None:
    rng = np.random.default_rng(7)
    # Deviance falls, bottoms out around tree 40, then rises: the patience rule stops the growth.
    scripts = [list((np.arange(1, 201) - 40.0) ** 2 / 400 + rng.uniform(0, 0.3, 200)) for _ in range(3)]
    held_rows = [100, 120, 90]
    model = EffectModel(small_playbook(), n_folds=3, n_estimators=rounds, n_jobs=2)
    folds = [_ScriptedFold(d, last, seed=k) for k, (d, last) in enumerate(zip(scripts, last_trees, strict=True))]
    curve = model._grow_folds(folds, held_rows)  # type: ignore[arg-type]
    grown = [f.trees for f in folds]
    expected = _lockstep_curve(
        [_ScriptedFold(d, last, seed=0) for d, last in zip(scripts, last_trees, strict=True)], held_rows, rounds, 20
    )
    assert curve == pytest.approx(expected, rel=1e-12)
    # No fold model grew more than two rounds beyond the curve (those trees are cut off after).
    assert all(g <= len(curve) + 2 for g in grown)


def test_effect_large_folds_train_on_a_sample_and_still_recover_the_effect() -> None:
    # 3,200 training rows per fold over a cap of 4 × 300: each fold model sees a sample.
    training = randomised_book(accounts=800)
    model = EffectModel(small_playbook(), **{**FAST, "max_rows_per_tree": 300}).fit(training)
    call = effects_of(model.project(snapshot_of(training)), "call", "win")
    assert abs(call.get_column("effect").mean() - 0.15) < 0.03


def test_effect_censored_rows_are_left_out() -> None:
    training = randomised_book(accounts=300)
    censored = training.with_columns((pl.col("decision_ts") >= START + timedelta(days=14 * 5)).alias("censored"))
    model = EffectModel(small_playbook(), **FAST).fit(censored)
    assert model.n_rows_ == 300 * 5
    playbook = small_playbook()
    with pytest.raises(NothingToLearnError, match=r"no uncensored rows.*horizon is over on") as caught:
        EffectModel(playbook, **FAST).fit(training.with_columns(pl.lit(True).alias("censored")))
    first = training.get_column("decision_ts").min()
    assert isinstance(first, datetime)
    assert caught.value.ready_on == first + timedelta(days=playbook.horizon_days)


def test_effect_without_decisions_or_outcomes_says_so() -> None:
    training = randomised_book(accounts=200, periods=3)
    with pytest.raises(NothingToLearnError, match=r"no decisions: the book logs no touch") as caught:
        EffectModel(small_playbook(), **FAST).fit(training.head(0))
    assert caught.value.ready_on is None
    # No win ever, and growth only twice: both objectives have nothing to learn, and the notes say which.
    quiet = training.with_columns(
        pl.lit(0, dtype=pl.Int8).alias("y_win"),
        pl.lit(0.0).alias("y_win_value"),
        (pl.int_range(pl.len()) < 2).cast(pl.Int8).alias("y_grow"),
    )
    notes = EffectModel(small_playbook(), **FAST).fit(quiet).fit_notes()
    assert any(n.startswith("no 'win' outcome followed any of the 600 decisions") for n in notes), notes
    assert any(n.startswith("only 2 'grow' outcome(s) followed the 600 decisions") for n in notes), notes
    assert not [n for n in EffectModel(small_playbook(), **FAST).fit(training).fit_notes() if "outcome" in n]


def test_propensity_weights_without_logged_propensities_say_they_are_estimated() -> None:
    # `nextmove run --weight-by-propensity` on a log without propensities weighted by estimates from the same
    # features, which cannot correct what the features miss, without a word.
    params = {**FAST, "calibration_weights": "propensity", "propensity_params": {"n_estimators": 30}}
    unlogged = EffectModel(small_playbook(), **params).fit(randomised_book(accounts=200, periods=3, logged=False))
    said = [n for n in unlogged.fit_notes() if n.startswith("calibration_weights='propensity'")]
    assert said == [
        "calibration_weights='propensity': 600 of the 600 decisions learned from have no logged propensity, so "
        "their weights come from propensities estimated from the book's features, which cannot correct a choice "
        "made on what the features miss; log the propensity of each touch (docs/effects.md)"
    ]
    logged = EffectModel(small_playbook(), **params).fit(randomised_book(accounts=200, periods=3))
    assert not [n for n in logged.fit_notes() if n.startswith("calibration_weights")]


def _open_horizons_book(seed: int = 0) -> pl.DataFrame:
    """Four closed periods (a 90-day horizon seen whole), then two open ones seen for 45 days in which a
    new action, ``chat``, is taken. Win probabilities over the whole horizon: ``none`` 0.2, ``call``
    0.35, ``email`` 0.2, ``chat`` 0.5; an open row saw half the horizon under a constant hazard,
    ``1 − sqrt(1 − p)``."""
    rng = np.random.default_rng(seed)
    closed = randomised_book(accounts=600, periods=4, seed=seed).with_columns(pl.lit(90.0).alias("observed_days"))
    later = randomised_book(
        accounts=600, periods=2, seed=seed + 1, arms={"none": 0.4, "call": 0.2, "email": 0.2, "chat": 0.2}
    )
    whole = {"none": 0.2, "call": 0.35, "email": 0.2, "chat": 0.5}
    half = np.array([1 - np.sqrt(1 - whole[a]) for a in later.get_column("action_id").to_list()])
    won = (rng.random(later.height) < half).astype(np.int8)
    grew = (rng.random(later.height) < 0.05).astype(np.int8)
    later = later.with_columns(
        (pl.col("decision_ts") + timedelta(days=56)),
        pl.Series("y_win", won),
        pl.Series("y_win_value", won.astype(float)),
        pl.Series("y_grow", grew),
        pl.Series("y_grow_value", np.where(grew == 1, 1000.0, 0.0)),
        pl.lit(True).alias("censored"),
        pl.lit(45.0).alias("observed_days"),
    )
    return pl.concat([closed, later.select(closed.columns)])


def test_effect_partial_horizons_learn_a_new_action_at_the_whole_horizons_scale() -> None:
    training = _open_horizons_book()
    playbook = small_playbook(["call", "email", "chat"])
    snapshot = snapshot_of(training)
    closed_only = EffectModel(playbook, **FAST).fit(training)
    assert "chat" in closed_only.flagged_arms_ or "chat" not in closed_only.arms_
    model = EffectModel(playbook, **FAST, partial_horizon_days=30).fit(training)
    assert model.n_rows_ == training.height
    assert model.partial_used_
    projection = model.project(snapshot)
    chat, call = effects_of(projection, "chat", "win"), effects_of(projection, "call", "win")
    # Projected over the whole horizon: the do-nothing baseline is 0.2, not the 0.17 of closed and open
    # rows mixed, and the new action's effect is near its whole-horizon +0.3 (0.20 to 0.27 over five
    # seeds of this book), not its half-horizon +0.19 nor the pooled effect the model without open
    # rows gives an action it never saw (+0.04 to +0.07).
    assert abs(chat.get_column("baseline").mean() - 0.2) < 0.03
    assert 0.18 < chat.get_column("effect").mean() < 0.38
    pooled = effects_of(closed_only.project(snapshot), "chat", "win").get_column("effect").mean()
    assert chat.get_column("effect").mean() > pooled + 0.1
    assert abs(call.get_column("effect").mean() - 0.15) < 0.04
    # Rows seen for less than the threshold are left out, like those of a model without it.
    assert model.fit_notes() == [
        f"learned from {training.filter('censored').height:,} decisions whose horizon is still open "
        "(seen for at least 30 days)"
    ]
    assert closed_only.fit_notes() == []
    stricter = EffectModel(playbook, **FAST, partial_horizon_days=60).fit(training)
    assert stricter.n_rows_ == closed_only.n_rows_
    assert not stricter.partial_used_
    with pytest.raises(ConfigError, match="partial_horizon_days"):
        EffectModel(playbook, partial_horizon_days=0).fit(training)


def test_effect_variants_are_separate_arms() -> None:
    training = randomised_book(accounts=400)
    variant = pl.when(pl.col("action_id") == "email").then(
        pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.lit("morning")).otherwise(pl.lit("evening"))
    )
    with_variants = training.with_columns(variant.alias("variant"))
    model = EffectModel(small_playbook(), **FAST).fit(with_variants)
    assert model.arms_ == ["none", "call", "email:evening", "email:morning"]
    assert "email:morning" in model.project(snapshot_of(training).head(3)).values.get_column("action_id").to_list()
    plain = EffectModel(small_playbook(), **FAST, variants=False).fit(with_variants)
    assert plain.arms_ == ["none", "call", "email"]


def test_effect_contract_same_seed_pickling_no_mutation() -> None:
    training = randomised_book(accounts=300)
    before = training.clone()
    snapshot = snapshot_of(training)
    a = EffectModel(small_playbook(), **FAST, random_state=5)
    assert a.fit(training) is a
    b = EffectModel(small_playbook(), **FAST, random_state=5).fit(training)
    assert training.equals(before)
    pa, pb = a.project(snapshot), b.project(snapshot)
    assert pa.values.equals(pb.values)
    assert pa.effects.equals(pb.effects)
    restored = pickle.loads(pickle.dumps(a))
    assert restored.project(snapshot).values.equals(pa.values)
    assert snapshot.equals(snapshot_of(training))
    assert a.get_params()["random_state"] == 5
    assert "EffectModel(" in repr(a)


def test_effect_errors_say_what_to_fix() -> None:
    with pytest.raises(NotFittedError, match=r"call fit\(training\)"):
        EffectModel(small_playbook()).project(pl.DataFrame({"account_id": ["a"]}))
    training = randomised_book(accounts=60, periods=2)
    with pytest.raises(ConfigError, match="level"):
        EffectModel(small_playbook(), level=1.5).fit(training)
    with pytest.raises(ConfigError, match="y_grow_value"):
        EffectModel(small_playbook(), **FAST).fit(training.drop("y_grow_value"))
    with pytest.raises(ConfigError, match="calibration_weights"):
        EffectModel(small_playbook(), calibration_weights="ipw").fit(training)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="fatigue_feature"):
        EffectModel(small_playbook(), fatigue_feature=3).fit(training)  # type: ignore[arg-type]
    # A modifier column the book lacks gives no term, and the model says so.
    missing = EffectModel(small_playbook(), **FAST, fatigue_feature="touch_any_count_90d").fit(training)
    assert missing.fit_notes() == [
        "fatigue_feature='touch_any_count_90d' gave no term: the training set has no such column, or it never varies"
    ]
    model = EffectModel(small_playbook(), **FAST).fit(training)
    with pytest.raises(ConfigError, match="level"):
        model.project(snapshot_of(training), level=0)


def test_effect_expected_values_match_the_row_value_convention() -> None:
    training = randomised_book(accounts=400)
    playbook = small_playbook()
    model = EffectModel(playbook, **FAST).fit(training)
    q = model.expected_values(training)
    assert q.height == training.height * 3
    taken = training.select("account_id", "decision_ts", "action_id").join(
        q, on=["account_id", "decision_ts", "action_id"]
    )
    realised = row_value_usd(training, playbook)
    # On average, the expected value of the logged action is the realised value.
    assert abs(taken.get_column("expected_value_usd").mean() - realised.mean()) < 15.0
    win_only = model.expected_values(training.head(4), objective="win")
    assert win_only.filter(pl.col("action_id") == "none").get_column("expected_value_usd").max() < 30.0


def test_effect_objective_specs_follow_the_value_convention() -> None:
    specs = {s.objective: s for s in objective_specs(small_playbook())}
    assert specs["win"].usd_per_unit(np.array([1.0])).tolist() == [100.0]
    assert specs["growth"].unit == "usd"
    frame = pl.DataFrame({"action_id": ["call"], "y_win": [1], "y_grow_value": [250.0], "y_win_value": [1.0]})
    assert row_value_usd(frame, small_playbook()).tolist() == [100.0 + 250.0 - 5.0]
    assert row_value_usd(frame, small_playbook(), objective="growth").tolist() == [250.0]
    with pytest.raises(ConfigError, match="not in the playbook"):
        row_value_usd(frame, small_playbook(), objective="nope")


def _keep_playbook(kind: str) -> Playbook:
    return Playbook(
        objectives={"keep": Objective(outcome=kind, sense="avoid", value="fixed", value_usd=100.0)},
        actions=[Action(id="call", name="Call", team="cs", objective="keep")],
    )


def test_effect_objective_specs_read_the_labels_of_their_own_outcome_kind() -> None:
    # Three cancellations logged "cancel" (the playbook's kind), one "Cancel" by another system.
    # "Cancel" sorts first and used to take y_cancel: the objective learned from the other system's rows.
    ts = [datetime(2025, 3, d, tzinfo=UTC) for d in (1, 2, 3, 4)]
    book = load_book(
        {
            "accounts": pl.DataFrame({"account_id": ["a", "b", "c", "d"]}),
            "touches": pl.DataFrame({"account_id": ["a", "b", "c", "d"], "action_id": "call", "ts": ts}),
            "outcomes": pl.DataFrame(
                {"account_id": ["a", "b", "c", "d"], "kind": ["cancel", "cancel", "cancel", "Cancel"]}
            ).with_columns(pl.Series("ts", [t + timedelta(days=5) for t in ts])),
        },
        as_of=datetime(2025, 9, 1, tzinfo=UTC),
    )

    def labelled(kind: str, *, vocabulary: bool) -> list[str]:
        playbook = _keep_playbook(kind)
        training = build_training_set(book, playbook)
        vocab = training_vocabulary(book, playbook) if vocabulary else None
        (spec,) = objective_specs(playbook, vocab)
        assert row_value_usd(training, playbook, objective="keep", vocabulary=vocab).min() == -100.0
        return sorted(training.filter(pl.col(spec.label) == 1).get_column("account_id").unique())

    assert labelled("cancel", vocabulary=True) == ["a", "b", "c"]
    # A kind spelt as its stem keeps the bare stem in every vocabulary, so the default finds it too.
    assert labelled("cancel", vocabulary=False) == ["a", "b", "c"]
    # The other spelling's objective reads its own rows, through the vocabulary.
    assert labelled("Cancel", vocabulary=True) == ["d"]


def test_effect_model_reads_the_columns_its_vocabulary_gives_the_playbooks_names() -> None:
    # The playbook's kind "Win" and action "Call" sanitise as the book's "win" and "call", which are
    # spelt as the stems and keep them: the model must read y_win_2 and touch_call_2_days_since.
    playbook = Playbook(
        objectives={"win": Objective(outcome="Win", value="fixed", value_usd=100.0)},
        actions=[Action(id="Call", name="Call", team="cs", objective="win", cost_usd=5.0)],
    )
    vocab = FeatureVocabulary.build(accounts_schema={}, action_ids=["call"], outcome_kinds=["win"], playbook=playbook)
    training = randomised_book(accounts=300, arms={"none": 0.5, "Call": 0.5}, win={"none": 0.2, "Call": 0.35})
    days = np.random.default_rng(1).integers(1, 300, training.height)
    training = training.rename({"y_win": "y_win_2", "y_win_value": "y_win_2_value"}).with_columns(
        pl.lit(0, dtype=pl.Int8).alias("y_win"),  # the other kind's label: it never happened
        pl.lit(0.0).alias("y_win_value"),
        pl.Series("touch_call_2_days_since", days, dtype=pl.Float64),
        pl.lit(1.0).alias("touch_call_days_since"),
    )
    model = EffectModel(playbook, **FAST, vocabulary=vocab).fit(training)
    assert [s.label for s in model.specs_] == ["y_win_2"]
    assert model.repeat_columns_ == [None, "touch_call_2_days_since"]
    effect = effects_of(model.project(snapshot_of(training)), "Call", "win").get_column("effect")
    assert effect.mean() > 0.05  # planted: 0.35 against 0.2
    with pytest.raises(ConfigError, match="vocabulary must be a FeatureVocabulary"):
        EffectModel(playbook, vocabulary={"Win": "win_2"}).fit(training)  # type: ignore[arg-type]


def test_row_value_usd_charges_a_variants_own_cost() -> None:
    # "call" costs $5; its "deep" variant $8, its "short" one the action's $5.
    playbook = small_playbook()
    call = playbook.actions[0].model_copy(update={"variants": [Variant(id="short"), Variant(id="deep", cost_usd=8.0)]})
    playbook = playbook.model_copy(update={"actions": [call, *playbook.actions[1:]]})
    frame = pl.DataFrame(
        {
            "action_id": ["call", "call", "call", "email", "none"],
            "variant": ["short", "deep", None, None, None],
            "y_win": [1, 1, 1, 1, 1],
            "y_grow_value": [0.0] * 5,
        }
    )
    assert row_value_usd(frame, playbook).tolist() == [95.0, 92.0, 95.0, 95.0, 100.0]
    # Without a variant column, every row of an action is charged the action's cost.
    assert row_value_usd(frame.drop("variant"), playbook).tolist() == [95.0, 95.0, 95.0, 95.0, 100.0]
    assert row_value_usd(frame, playbook, objective="win").tolist() == [100.0] * 5


def test_effects_doc_example_runs() -> None:
    blocks = DOC.read_text(encoding="utf-8").split("```python\n")[1:]
    example = blocks[0].split("```")[0]
    namespace: dict[str, object] = {}
    exec(compile(example, str(DOC), "exec"), namespace)  # the page's own example, run as written
    assert "projection" in namespace


@pytest.mark.parametrize("draws", [1, 2, 7, 200])
def test_effect_interval_is_numpys_quantile_of_the_draws(draws: int) -> None:
    rng = np.random.default_rng(draws)
    samples = rng.normal(size=(300, draws)).astype(np.float32)
    point = np.median(samples, axis=1).astype(np.float64) + rng.normal(0, 0.1, 300)
    low, high = _interval(point, samples, 0.05, 0.95, 1.5)
    lo, hi = np.quantile(samples.astype(np.float64), [0.05, 0.95], axis=1)
    np.testing.assert_allclose(low, point - 1.5 * np.maximum(point - lo, 0.0), atol=1e-6)
    np.testing.assert_allclose(high, point + 1.5 * np.maximum(hi - point, 0.0), atol=1e-6)


@pytest.mark.parametrize("draws", [1, 2, 7, 200])
def test_effect_interval_with_a_row_scale_is_the_interval_of_the_scaled_draws(draws: int) -> None:
    # The projection scales each row's draws after their quantiles: positive, zero and negative factors.
    rng = np.random.default_rng(draws)
    samples = rng.normal(size=(300, draws)).astype(np.float32)
    scale = rng.choice([-3.0, -0.5, 0.0, 0.25, 2.0], size=300)
    scaled = samples.astype(np.float64) * scale[:, None]
    point = np.median(scaled, axis=1) + rng.normal(0, 0.1, 300)
    low, high = _interval(point, samples, 0.05, 0.95, 1.5, scale)
    expected_low, expected_high = _interval(point, scaled, 0.05, 0.95, 1.5)
    np.testing.assert_allclose(low, expected_low, atol=1e-6)
    np.testing.assert_allclose(high, expected_high, atol=1e-6)


def _busy_book(seed: int = 3) -> pl.DataFrame:
    """The randomised book with a count of recent touches; the call's logit shift falls as the count grows."""
    training = randomised_book(accounts=1500, seed=seed)
    rng = np.random.default_rng(seed)
    busy = rng.integers(0, 8, training.height)
    shift = np.where(training.get_column("action_id").to_numpy() == "call", 1.5 * (1 + busy) ** -0.8, 0.0)
    p = 1 / (1 + np.exp(-(np.log(0.2 / 0.8) + shift)))
    won = (rng.random(training.height) < p).astype(np.int8)
    return training.with_columns(
        pl.Series("touch_any_count_90d", busy), pl.Series("y_win", won), pl.Series("y_win_value", won.astype(float))
    )


def test_effect_fatigue_busy_accounts_gain_less_from_one_more_touch() -> None:
    training = _busy_book()
    model = EffectModel(small_playbook(), **FAST, fatigue_feature="touch_any_count_90d").fit(training)
    assert model.fatigue_slopes_["win"] < -0.3  # planted: the shift shrinks as (1 + count)^-0.8
    snapshot = pl.DataFrame(
        {"account_id": ["calm", "busy"], "usage": [0.0, 0.0], "segment": ["SMB", "SMB"], "touch_any_count_90d": [0, 7]}
    )
    effect = effects_of(model.project(snapshot), "call", "win").sort("account_id")
    calm, busy = effect.filter(pl.col("account_id") == "calm"), effect.filter(pl.col("account_id") == "busy")
    assert busy.item(0, "effect") < 0.6 * calm.item(0, "effect")
    # Without the term (the default) the slope stays 0; the S-learner contrast may still pick some of it up.
    plain = EffectModel(small_playbook(), **FAST).fit(training)
    assert plain.fatigue_slopes_["win"] == 0.0


def test_effect_touch_cost_turns_an_action_harmful_on_busy_accounts() -> None:
    # Planted: any action takes 0.25 per recent touch off the win's logit, on top of the call's own
    # help: calm accounts gain from a call, the busiest lose. A factor on the shift (fatigue) can
    # shrink the help, not turn it into harm.
    rng = np.random.default_rng(5)
    training = randomised_book(accounts=2000, seed=5)
    busy = rng.integers(0, 8, training.height)
    action = training.get_column("action_id").to_numpy()
    logit = np.log(0.2 / 0.8) + np.where(action == "call", 0.8, 0.0) - np.where(action != "none", 0.25 * busy, 0.0)
    won = (rng.random(training.height) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    training = training.with_columns(
        pl.Series("touch_any_count_28d", busy), pl.Series("y_win", won), pl.Series("y_win_value", won.astype(float))
    )
    model = EffectModel(small_playbook(), **FAST, touch_cost_feature="touch_any_count_28d").fit(training)
    per_touch = model.touch_cost_slopes_["win"] / model.touch_cost_scale_
    assert -0.4 < per_touch < -0.1  # planted −0.25 per touch
    snapshot = pl.DataFrame(
        {"account_id": ["calm", "busy"], "usage": [0.0, 0.0], "segment": ["SMB", "SMB"], "touch_any_count_28d": [0, 7]}
    )
    effect = effects_of(model.project(snapshot), "call", "win").sort("account_id")
    calm, busy_row = effect.filter(pl.col("account_id") == "calm"), effect.filter(pl.col("account_id") == "busy")
    assert calm.item(0, "effect") > 0.05
    assert busy_row.item(0, "effect") < -0.05
    # expected_values reads the same term: the call is worth less than nothing to the busy account.
    values = model.expected_values(snapshot, objective="win").pivot(
        on="action_id", index="account_id", values="expected_value_usd"
    )
    gain = dict(zip(values["account_id"], (values["call"] - values["none"]).to_list(), strict=True))
    assert gain["calm"] > 5.0
    assert gain["busy"] < -5.0
    # Without the term (the default) the slope is 0.
    plain = EffectModel(small_playbook(), **FAST).fit(training)
    assert plain.touch_cost_slopes_["win"] == 0.0


def test_effect_projection_on_threads_is_the_projection_on_one() -> None:
    # The objectives (and fold models) run on threads when n_jobs > 1; each objective draws from its
    # own seeded stream, so the thread count changes nothing.
    training = randomised_book(accounts=300)
    model = EffectModel(small_playbook(), **FAST).fit(training)
    snapshot = snapshot_of(training)
    one, values_one = model.project(snapshot), model.expected_values(snapshot)
    model.n_jobs = 2
    two = model.project(snapshot)
    assert one.effects.equals(two.effects)
    assert one.values.equals(two.values)
    assert values_one.equals(model.expected_values(snapshot))


def test_effect_repeat_count_each_repeat_of_an_action_does_less() -> None:
    training = randomised_book(accounts=1500, seed=4)
    rng = np.random.default_rng(4)
    calls, emails = rng.integers(0, 4, training.height), rng.integers(0, 4, training.height)
    shift = np.where(training.get_column("action_id").to_numpy() == "call", 1.5 * 0.5**calls, 0.0)
    won = (rng.random(training.height) < 1 / (1 + np.exp(-(np.log(0.25) + shift)))).astype(np.int8)
    training = training.with_columns(
        pl.Series("touch_call_count_90d", calls),
        pl.Series("touch_email_count_90d", emails),
        pl.Series("y_win", won),
        pl.Series("y_win_value", won.astype(float)),
    )
    model = EffectModel(small_playbook(), **FAST, repeat_count_feature="touch_{action}_count_90d").fit(training)
    assert model.count_slopes_["win"] < -0.3  # planted: each earlier call halves the call's shift
    snapshot = pl.DataFrame(
        {
            "account_id": ["fresh", "thrice"],
            "usage": [0.0, 0.0],
            "segment": ["SMB", "SMB"],
            "touch_call_count_90d": [0, 3],
            "touch_email_count_90d": [1, 1],
        }
    )
    effect = effects_of(model.project(snapshot), "call", "win")
    fresh, thrice = (effect.filter(pl.col("account_id") == a).item(0, "effect") for a in ("fresh", "thrice"))
    assert thrice < 0.5 * fresh
    assert EffectModel(small_playbook(), **FAST).fit(training).count_slopes_["win"] == 0.0  # off by default


def test_effect_projection_keeps_its_effects_as_arrays_and_makes_the_frame_chunk_by_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The long effects frame is made from the projection's arrays only when read, in the order the chunks made it.

    With chunks of 7 accounts, every row of the frame is the arrays' (objective, arm, account), rows ordered
    by chunk, objective, arm, account; the points (baseline, effect, dollars, values) are those of a
    projection in one piece (the intervals' draws are seeded per chunk).
    """
    training = randomised_book(accounts=60, periods=4, arms={"none": 0.4, "call": 0.2, "email": 0.2, "chat": 0.2})
    model = EffectModel(small_playbook(["call", "email", "chat"]), **FAST).fit(training)
    snapshot = snapshot_of(training)
    whole = model.project(snapshot)
    per_chunk = 7
    monkeypatch.setattr("nextmove.models.effect._DRAW_BUDGET", per_chunk * model.n_draws * len(model.arms_))
    chunked = model.project(snapshot)
    arrays = chunked.arrays
    assert arrays is not None
    assert arrays.starts == tuple(range(0, 60, per_chunk))
    assert arrays.arms == ("call", "email", "chat")
    assert arrays.objectives == ("win", "growth")
    n, n_obj, n_arms = 60, 2, 3
    assert chunked.effects_height == n * n_obj * n_arms
    frame = chunked.effects
    assert frame.height == chunked.effects_height
    assert frame.columns == list(whole.effects.columns)
    # The row order: chunk, objective, arm, account.
    order = [
        (o, a, r)
        for start in arrays.starts
        for o in range(n_obj)
        for a in range(n_arms)
        for r in range(start, min(start + per_chunk, n))
    ]
    o, a, r = (np.array(c) for c in zip(*order, strict=True))
    ids = snapshot.get_column("account_id").to_numpy()
    assert frame.get_column("account_id").to_list() == ids[r].tolist()
    assert frame.get_column("action_id").to_list() == np.array(arrays.arms)[a].tolist()
    assert frame.get_column("objective").to_list() == np.array(arrays.objectives)[o].tolist()
    assert np.array_equal(frame.get_column("effect").to_numpy(), arrays.effect[o, a, r])
    assert np.array_equal(frame.get_column("low").to_numpy(), arrays.low[o, a, r])
    assert np.array_equal(frame.get_column("baseline").to_numpy(), arrays.baseline[o, r])
    # The points do not depend on the chunks.
    key = ["account_id", "action_id", "objective"]
    points = ["baseline", "effect", "effect_usd", "unit", "outcome", "pooled"]
    assert frame.sort(key).select(*key, *points).equals(whole.effects.sort(key).select(*key, *points))
    vkey = ["account_id", "action_id"]
    vpoints = ["value_usd", "cost_usd", "pooled"]
    assert chunked.values.sort(vkey).select(*vkey, *vpoints).equals(whole.values.sort(vkey).select(*vkey, *vpoints))
    # A projection made from frames (no arrays) still works as before.
    copy = EffectProjection(chunked.level, frame, chunked.values, chunked.flagged_actions)
    assert copy.arrays is None
    assert copy.effects_height == frame.height
    assert copy.effects is frame


def test_effect_projection_baselines_and_pair_effects_read_the_arrays_without_making_the_long_frame(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the run's summary columns read (each account's do-nothing levels, the chosen arms' effects, the
    amounts over the history's largest) comes from the arrays, the same as from the long frame, which is
    never made for it (at a million accounts it is 70 rows per account)."""
    training = randomised_book(accounts=60, periods=4, arms={"none": 0.4, "call": 0.2, "email": 0.2, "chat": 0.2})
    model = EffectModel(small_playbook(["call", "email", "chat"]), **FAST).fit(training)
    snapshot = snapshot_of(training)
    monkeypatch.setattr("nextmove.models.effect._DRAW_BUDGET", 7 * model.n_draws * len(model.arms_))
    arrays_only = model.project(snapshot)
    frame = model.project(snapshot).effects  # the same projection (seeded), its frame made
    copy = EffectProjection(arrays_only.level, frame, arrays_only.values, arrays_only.flagged_actions)
    ids = snapshot.get_column("account_id").to_list()
    pairs = pl.DataFrame(
        {
            "account_id": [ids[5], ids[0], ids[5], "unknown", ids[9]],
            "_key": ["chat", "call", "email", "call", "not-an-arm"],
            "tag": [1, 2, 3, 4, 5],
        }
    )
    made: list[int] = []
    original = EffectArrays.frame
    monkeypatch.setattr(EffectArrays, "frame", lambda self: made.append(1) or original(self))
    key = ["account_id", "objective"]
    got = arrays_only.baselines().sort(key)
    want = copy.baselines().sort(key)
    assert got.equals(want)
    assert got.height == 60 * 2
    assert sorted(arrays_only.arm_ids) == sorted(copy.arm_ids) == ["call", "chat", "email"]
    pkey = ["tag", "objective"]
    got_pairs = arrays_only.pair_effects(pairs).sort(pkey)
    want_pairs = copy.pair_effects(pairs).sort(pkey)
    assert got_pairs.equals(want_pairs)
    assert got_pairs.get_column("tag").unique().sort().to_list() == [1, 2, 3]  # unknown accounts and arms drop out
    for objective in ("win", "growth"):
        levels = frame.filter(pl.col("objective") == objective).select(
            pl.max_horizontal("baseline", pl.col("baseline") + pl.col("effect"))
        )
        limit = float(levels.to_series().unique().sort()[-2])  # some projections are over it
        got_over, want_over = (_amounts_over(p, objective, limit) for p in (arrays_only, copy))
        assert got_over is not None
        assert want_over is not None
        assert got_over[0] == want_over[0] > 0  # accounts over the limit
        assert {k: got_over[1][k] for k in ("account_id", "usd")} == {k: want_over[1][k] for k in ("account_id", "usd")}
        assert _amounts_over(arrays_only, objective, levels.to_series().max() + 1.0) is None
    assert made == []
