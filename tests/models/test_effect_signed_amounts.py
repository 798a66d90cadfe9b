"""Amount objectives whose amounts are negative (refunds, chargebacks) or of both signs (upgrades and downgrades).

The effect model once held every expected amount per event at 0 or above: an objective of negative
amounts projected $0 for every account and action, and one of both signs lost its negative amounts
wherever they outweighed the positive ones.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from nextmove.models.effect import EffectModel, EffectProjection
from nextmove.playbook import Action, Objective, Playbook

FAST = {"n_folds": 3, "n_estimators": 40, "num_leaves": 7, "min_child_samples": 40, "n_draws": 100}
START = datetime(2025, 1, 6, tzinfo=UTC)


def signed_playbook() -> Playbook:
    """A refund objective (negative amounts) and a plan-change one (upgrades +, downgrades −)."""
    return Playbook(
        objectives={
            "refunds": Objective(outcome="refund", value="amount"),
            "plan_change": Objective(outcome="plan_change", value="amount"),
        },
        actions=[
            Action(id="audit", name="Audit", team="billing", objective="refunds", cost_usd=5.0),
            Action(id="call", name="Call", team="sales", objective="plan_change", cost_usd=5.0),
        ],
    )


def signed_book(*, accounts: int = 800, periods: int = 6, seed: int = 0) -> pl.DataFrame:
    """A randomised history with planted effects on negative amounts and on amounts of both signs.

    - Refunds: 15 % of decisions (10 % after an audit), each of −$1,000 (−$500 after an audit) on
      average. The truth of an audit: 0.10 × 500 − 0.15 × 1,000 = +$100 per account.
    - Plan changes: an upgrade of +$1,000 with probability 0.10 (0.20 after a call) and, apart from
      it, a downgrade of −$1,000 with probability 0.25 for accounts of low usage, 0.03 for the others
      (no action changes it). The truth of a call: 0.10 × 1,000 = +$100 per account; doing nothing
      is worth 100 − 250 = −$150 for low usage, 100 − 30 = +$70 for the others.
    """
    rng = np.random.default_rng(seed)
    names = np.array(["none", "audit", "call"])
    probs = np.array([0.5, 0.25, 0.25])
    n = accounts * periods
    account = np.repeat(np.arange(accounts), periods)
    usage = rng.normal(size=accounts)[account] + 0.1 * rng.normal(size=n)
    choice = rng.choice(len(names), size=n, p=probs)
    action = names[choice]

    def sizes() -> np.ndarray:
        return 1000 * np.exp(0.3 * rng.normal(size=n) - 0.045)  # mean 1,000

    audit = action == "audit"
    refund = rng.random(n) < np.where(audit, 0.10, 0.15)
    refund_value = np.where(refund, -sizes() * np.where(audit, 0.5, 1.0), 0.0)
    upgrade = rng.random(n) < np.where(action == "call", 0.20, 0.10)
    downgrade = rng.random(n) < np.where(usage < 0, 0.25, 0.03)
    plan_value = np.where(upgrade, sizes(), 0.0) - np.where(downgrade, sizes(), 0.0)
    return pl.DataFrame(
        {
            "account_id": [f"acc{i:04d}" for i in account],
            "decision_ts": [START + timedelta(days=14 * int(p)) for p in np.tile(np.arange(periods), accounts)],
            "logged": [True] * n,
            "action_id": action.tolist(),
            "propensity": probs[choice],
            "usage": usage,
            "y_refund": refund.astype(np.int8),
            "y_refund_value": refund_value,
            "y_plan_change": (upgrade.astype(np.int8) + downgrade.astype(np.int8)),
            "y_plan_change_value": plan_value,
            "censored": [False] * n,
        }
    )


def snapshot_of(training: pl.DataFrame) -> pl.DataFrame:
    return training.sort("decision_ts").group_by("account_id", maintain_order=True).last().select("account_id", "usage")


def effects_of(projection: EffectProjection, action: str, objective: str) -> pl.DataFrame:
    return projection.effects.filter((pl.col("action_id") == action) & (pl.col("objective") == objective))


def covered(frame: pl.DataFrame, truth: pl.Expr | float) -> float:
    share = frame.select(((pl.col("low") <= truth) & (pl.col("high") >= truth)).mean()).item()
    assert isinstance(share, float)
    return share


def test_effect_negative_amounts_are_projected_with_their_sign_and_recovered_within_their_interval() -> None:
    training = signed_book()
    model = EffectModel(signed_playbook(), **FAST).fit(training)
    snapshot = snapshot_of(training)
    projection = model.project(snapshot)
    audit = effects_of(projection, "audit", "refunds")
    # Doing nothing: 0.15 × −$1,000 = −$150 per account; an audit: +$100 (fewer and smaller refunds).
    # Before: $0 and $0, for every account.
    assert abs(audit.get_column("baseline").mean() - (-150.0)) < 25.0
    assert abs(audit.get_column("effect").mean() - 100.0) < 30.0
    assert covered(audit, 100.0) >= 0.9
    # A call changes no refund.
    call = effects_of(projection, "call", "refunds")
    assert abs(call.get_column("effect").mean()) < 30.0
    assert covered(call, 0.0) >= 0.9
    # The multiplier of the refunds' size is the planted one half.
    (arm,) = [a for a in model.arm_effects_ if a.arm == "audit" and a.objective == "refunds"]
    assert arm.amount_multiplier is not None
    assert abs(arm.amount_multiplier - 0.5) < 0.1
    assert arm.part is None  # one sign: one fit
    # The outcome model DR reads says the same.
    expected = model.expected_values(snapshot, objective="refunds")
    none = expected.filter(pl.col("action_id") == "none").get_column("expected_value_usd").to_numpy()
    with_audit = expected.filter(pl.col("action_id") == "audit").get_column("expected_value_usd").to_numpy()
    assert np.allclose(none, audit.get_column("baseline").to_numpy())
    assert np.allclose(with_audit - none, audit.get_column("effect").to_numpy())
    # A loss far beyond any the history saw is noted as a gain would be.
    assert model.amount_notes(projection) == []
    absurd = EffectProjection(
        projection.level,
        projection.effects.with_columns(pl.col("baseline") * 1e6),
        projection.values,
        projection.flagged_actions,
    )
    (note,) = [note for note in model.amount_notes(absurd) if note.startswith("'refunds'")]
    assert note.startswith("'refunds': 800 account(s) project more in size than 10× the largest 'refund' amount")
    assert "after one decision (-$" in note
    assert "down to -$" in note


def test_effect_amounts_of_both_signs_are_their_signed_sum() -> None:
    training = signed_book()
    model = EffectModel(signed_playbook(), **FAST).fit(training)
    snapshot = snapshot_of(training)
    projection = model.project(snapshot)
    call = effects_of(projection, "call", "plan_change").join(snapshot, on="account_id")
    low = call.filter(pl.col("usage") < -0.3)
    high = call.filter(pl.col("usage") > 0.3)
    # Doing nothing loses $150 where downgrades are frequent and gains $70 elsewhere; before, the loss
    # was clipped to about $0.
    assert abs(low.get_column("baseline").mean() - (-150.0)) < 40.0
    assert abs(high.get_column("baseline").mean() - 70.0) < 40.0
    # A call adds $100 of upgrades for every account; before, about $0 where downgrades dominated.
    assert abs(call.get_column("effect").mean() - 100.0) < 30.0
    for part in (low, high):
        assert abs(part.get_column("effect").mean() - 100.0) < 45.0
        assert covered(part, 100.0) >= 0.9
    audit = effects_of(projection, "audit", "plan_change")
    assert abs(audit.get_column("effect").mean()) < 30.0
    # Both signs: a fit of each, each with its own chance of an amount of that sign. A call doubles the
    # chance of an upgrade (logit 0.81) and changes neither the downgrades nor the sizes.
    positive, negative = (
        next(a for a in model.arm_effects_ if a.arm == "call" and a.objective == "plan_change" and a.part == part)
        for part in ("positive", "negative")
    )
    assert abs(positive.logit_effect - 0.81) < 0.25
    assert abs(negative.logit_effect) < 0.25
    for arm in (positive, negative):
        assert arm.amount_multiplier is not None
        assert abs(arm.amount_multiplier - 1.0) < 0.15
    # The values add the signed dollars draw by draw: each interval holds its point.
    values = projection.values.filter(pl.col("action_id") != "none")
    assert values.select((pl.col("low") <= pl.col("value_usd")).all()).item()
    assert values.select((pl.col("high") >= pl.col("value_usd")).all()).item()


def test_effect_model_saved_before_amounts_had_parts_projects_as_before() -> None:
    # A model pickled by a version without the parts lacks their fields: it is whole, and projects
    # its (positive) amounts as it did.
    training = signed_book(accounts=300, periods=4).with_columns(
        pl.col("y_refund_value").abs(), pl.col("y_plan_change_value").abs()
    )
    model = EffectModel(signed_playbook(), **FAST).fit(training)
    assert all(fit.negative_part is None and fit.amount_sign == 1.0 for fit in model.fits_)
    snapshot = snapshot_of(training)
    before = model.project(snapshot)
    older = pickle.loads(pickle.dumps(model))
    for fit in older.fits_:
        for name in ("amount_sign", "negative_part"):
            del fit.__dict__[name]
    assert older.missing_state() == []
    after = older.project(snapshot)
    assert after.effects.equals(before.effects)
    assert after.values.equals(before.values)


def test_effect_sign_with_too_few_amounts_is_noted_and_the_other_still_learned() -> None:
    training = signed_book(accounts=300, periods=4)
    sizes = np.abs(training.get_column("y_plan_change_value").to_numpy())
    sizes[np.flatnonzero(sizes)[:3]] *= -1  # three downgrades, fewer than min_events (5)
    training = training.with_columns(pl.Series("y_plan_change_value", sizes))
    model = EffectModel(signed_playbook(), **FAST).fit(training)
    (note,) = [note for note in model.fit_notes() if "'plan_change'" in note]
    assert note.startswith("only 3 negative 'plan_change' amount(s) followed the 1,200 decisions")
    assert note.endswith("every action's effect on them is 0, and 'plan_change' moves by its positive ones")
    call = effects_of(model.project(snapshot_of(training)), "call", "plan_change")
    assert call.get_column("effect").mean() > 20.0  # the positive amounts still move (a call adds upgrades)
