"""The closed-loop environment: steps answer decisions consistently and their true values are the truth's."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from nextmove.errors import ConfigError
from nextmove.sim import LabEnvironment, SimConfig

CONFIG = SimConfig(accounts=150, months=4, seed=4)


def _oracle_decisions(env: LabEnvironment) -> pl.DataFrame:
    best = env.true_values().filter(pl.col("eligible")).sort(["account_id", "value_usd"], descending=[False, True])
    return (
        best.group_by("account_id", maintain_order=True)
        .first()
        .select("account_id", "action_id", pl.lit(1.0).alias("propensity"), pl.lit("model").alias("arm"))
    )


def test_env_step_returns_consistent_data() -> None:
    env = LabEnvironment(CONFIG)
    before = env.book()
    assert before.as_of == env.now == env.history.as_of
    decisions = _oracle_decisions(env)
    step = env.step(decisions)
    assert step.decided_at == before.as_of
    assert (step.now - step.decided_at).days == 14
    assert step.touches.height == decisions.height
    assert (step.touches["ts"] == step.decided_at).all()
    assert set(step.touches["arm"]) == {"model"}
    assert step.touches["touch_id"].is_in(before.touches["touch_id"]).not_().all()
    for frame in (step.signals, step.outcomes):
        assert frame.height > 0
        assert (frame["ts"] > step.decided_at).all()
        assert (frame["ts"] <= step.now).all()
    after = env.book()
    assert after.as_of == step.now
    assert after.touches.height == before.touches.height + step.touches.height
    assert after.signals.height == before.signals.height + step.signals.height
    assert set(after.outcomes["touch_id"].drop_nulls()) <= set(after.touches["touch_id"])
    for name in ("signals", "touches", "outcomes"):
        assert after.table(name).schema == before.table(name).schema
    # Churned accounts are replaced: the book keeps the same number of active accounts.
    active = after.accounts.filter(pl.col("lifecycle_stage") != "churned")
    assert active.height == CONFIG.accounts


def test_env_true_values_match_the_truth_api() -> None:
    env = LabEnvironment(CONFIG)
    truth = env.true_values()
    decisions = _oracle_decisions(env)
    step = env.step(decisions)
    # Deciding the oracle's action leaves no regret.
    assert step.regret_usd == pytest.approx(0.0, abs=1e-6)
    assert step.true_value_usd == pytest.approx(step.oracle_value_usd)
    joined = step.values.join(truth, on=["account_id", "action_id"], suffix="_truth")
    assert joined.height == step.values.height
    for col in ("value_usd", "p_churn", "p_expansion", "p_recovery"):
        assert np.allclose(joined[col].to_numpy(), joined[f"{col}_truth"].to_numpy())
    # The world keeps the truth of the decision time just played, and of the next one.
    again = env.world.true_values(t=step.decided_at)
    assert again.equals(truth)
    assert env.true_values()["ts"].unique().to_list() == [step.now]


def test_env_accounts_left_out_are_left_alone() -> None:
    env = LabEnvironment(CONFIG)
    active = env.true_values(actions=["none"])["account_id"]
    chosen = active[:10]
    decisions = pl.DataFrame({"account_id": chosen, "action_id": ["nurture_email"] * 10})
    step = env.step(decisions)
    assert step.touches.height == 10
    assert step.touches["propensity"].null_count() == 10
    assert step.values["decided"].sum() == 10
    left = step.values.filter(~pl.col("decided"))
    assert (left["action_id"] == "none").all()
    assert (left["value_usd"] == 0).all()
    assert step.true_value_usd == pytest.approx(step.values["value_usd"].sum())
    assert step.regret_usd >= 0


def test_env_runs_week_after_week_reproducibly() -> None:
    def run() -> list[float]:
        env = LabEnvironment(CONFIG)
        out = []
        for _ in range(3):
            ids = env.true_values(actions=["none"])["account_id"]
            decisions = pl.DataFrame(
                {"account_id": ids, "action_id": "health_check_call", "propensity": 0.5, "arm": "explore"}
            )
            step = env.step(decisions)
            out.extend([step.true_value_usd, float(step.outcomes.height), float(step.signals["value"].sum())])
        return out

    assert run() == run()


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pl.DataFrame({"account_id": ["ACC-000001"]}), "missing column 'action_id'"),
        (pl.DataFrame({"account_id": ["nope"], "action_id": ["none"]}), "not active"),
        (pl.DataFrame({"account_id": ["ACC-000001"], "action_id": ["fax_blast"]}), "not in the playbook"),
        (
            pl.DataFrame({"account_id": ["ACC-000001", "ACC-000001"], "action_id": ["none", "none"]}),
            "appears twice",
        ),
        (
            pl.DataFrame({"account_id": ["ACC-000001"], "action_id": ["none"], "propensity": [1.5]}),
            "propensity",
        ),
        (pl.DataFrame({"account_id": ["ACC-000001"], "action_id": ["none"], "arm": ["robot"]}), "arm"),
        (
            pl.DataFrame({"account_id": ["ACC-000001"], "action_id": ["upsell_call"], "variant": ["morning"]}),
            "variant",
        ),
    ],
)
def test_env_step_rejects_bad_decisions(frame: pl.DataFrame, message: str) -> None:
    env = LabEnvironment(SimConfig(accounts=30, months=1, seed=9))
    first_active = env.true_values(actions=["none"])["account_id"][0]
    frame = frame.with_columns(pl.col("account_id").replace("ACC-000001", first_active))
    with pytest.raises(ConfigError, match=message):
        env.step(frame)


def test_env_accepts_variants() -> None:
    env = LabEnvironment(SimConfig(accounts=30, months=1, seed=9))
    account = env.true_values(actions=["none"])["account_id"][0]
    step = env.step(pl.DataFrame({"account_id": [account], "action_id": ["nurture_email"], "variant": ["morning"]}))
    assert step.touches["variant"].to_list() == ["morning"]
