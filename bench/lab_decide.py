"""Benchmark of the decision policy on the lab: regret against the oracle under the playbook's capacities.

On the default lab book (``SimConfig()``: 4,200 active accounts, 18 months, seed 0) at its as_of,
with the default playbook's realistic capacities (12 hours per owner per week, 60 accounts per
owner, team budgets), for each effect-model setting:

1. fit the effect model on the history before as_of (as ``nextmove run`` does) and project every
   action for every active account;
2. decide with :func:`nextmove.decide.policy.decide` (the real rules, the allocation under
   capacity, control and exploration), for each ``--risk-aversion``;
3. score with the lab's exact truth (``truth/values``): the *constrained* oracle allocates the true
   values under the same capacities and rules; the lifecycle default takes each account's stage
   default where allowed while capacity lasts. Regret = (oracle − policy) / (oracle − default).

Printed per setting: the learned policy's regret (every account decided by the allocation), the
regret as deployed (10 % control, 5 % exploration), and the regret without capacities (best
allowed projection per account vs the unconstrained oracle). Target: learned, constrained ≤ 15 %.

    .venv/bin/python bench/lab_decide.py                              # the run's settings and the model's defaults
    .venv/bin/python bench/lab_decide.py --settings run run-one-year model-defaults --risk-aversion 0 0.5 1
    .venv/bin/python bench/lab_decide.py --settings run --param touch_cost_feature=touch_any_count_28d
    .venv/bin/python bench/lab_decide.py --settings run --truth-per-action    # which action's errors cost it
    .venv/bin/python bench/lab_decide.py --settings run --lab-groups          # with the lab's hidden groups
    .venv/bin/python bench/lab_decide.py --settings run --truth-parts upsell_call cross_sell_demo  # baseline or lift?

Settings: ``run`` (the run's default: ``FAST_EFFECT_PARAMS`` on the whole history), ``run-one-year``
(the same on the last 365 days of decisions), ``model-defaults`` (``EffectModel``'s own defaults).
``--param KEY=VALUE`` (repeatable) adds an ``EffectModel`` setting to every setting; the cached
model's name records it.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

from _util import cpu_seconds, decide_and_score, decision_inputs, decision_rules, effect_params, machine, timed

TARGET_REGRET = 0.15


def _settings() -> dict[str, dict[str, Any]]:
    from nextmove.engine.run import FAST_EFFECT_PARAMS

    return {
        "run": {"params": dict(FAST_EFFECT_PARAMS), "training_days": None},
        "run-one-year": {"params": dict(FAST_EFFECT_PARAMS), "training_days": 365},
        "model-defaults": {"params": {}, "training_days": None},
    }


def prepare(cache: Path, accounts: int, months: int, seed: int) -> dict[str, Any]:
    """Simulate the book; build (or read) its training set, snapshot, rules inputs and truth."""
    import polars as pl

    from nextmove.features import build_training_set
    from nextmove.sim import SimConfig, simulate

    lab = simulate(SimConfig(accounts=accounts, months=months, seed=seed))
    playbook = lab.config.resolved_playbook()
    tag = f"{accounts}_{months}_{seed}"
    cache.mkdir(parents=True, exist_ok=True)
    training_path, snapshot_path = cache / f"training_{tag}.parquet", cache / f"snapshot_{tag}.parquet"
    if training_path.exists() and snapshot_path.exists():
        training = pl.read_parquet(training_path)
        inputs = decision_inputs(lab.book, playbook, lab.as_of, lab.truth.values, pl.read_parquet(snapshot_path))
    else:
        with timed() as t:
            training = build_training_set(lab.book, playbook, as_of=lab.as_of)
        print(f"training set: {training.height:,} rows in {t.seconds:.0f} s", flush=True)
        inputs = decision_inputs(lab.book, playbook, lab.as_of, lab.truth.values)
        training.write_parquet(training_path)
        inputs.snapshot.write_parquet(snapshot_path)
    return {"lab": lab, "playbook": playbook, "training": training, "inputs": inputs, "tag": tag}


def fit(data: dict[str, Any], name: str, setting: dict[str, Any], cache: Path) -> tuple[Any, float]:
    """The effect model of one setting (cached), and its fit's CPU seconds."""
    from datetime import timedelta

    import polars as pl

    from nextmove.models.effect import EffectModel

    path = cache / f"model_{data['tag']}_{name}.pkl"
    if path.exists():
        model, seconds = pickle.loads(path.read_bytes())
        return model, seconds
    training = data["training"]
    if setting["training_days"] is not None:
        as_of = data["lab"].as_of
        training = training.filter(pl.col("decision_ts") >= as_of - timedelta(days=setting["training_days"]))
    cpu = cpu_seconds()
    model = EffectModel(data["playbook"], **setting["params"]).fit(training)
    seconds = cpu_seconds() - cpu
    path.write_bytes(pickle.dumps((model, seconds)))
    return model, seconds


LAB_GROUP = "lab_group"
VALUE_COLUMNS = ("value_usd", "low", "high")


def with_lab_groups(data: dict[str, Any]) -> dict[str, Any]:
    """The training set and snapshot with the lab's hidden behavior group of each account as a column.

    Not something a real book has: it measures what perfect groups would be worth (the column also
    reaches the outcome models as a feature).
    """
    from dataclasses import replace

    import numpy as np
    import polars as pl

    from nextmove.sim.world import parse_account_id

    world = data["lab"].world

    def add(frame: Any) -> Any:
        index = np.array([parse_account_id(a) for a in frame.get_column("account_id").to_list()])
        return frame.with_columns(pl.Series(LAB_GROUP, world.accounts.group[index].astype(np.float64)))

    inputs = replace(data["inputs"], snapshot=add(data["inputs"].snapshot))
    return {**data, "training": add(data["training"]), "inputs": inputs}


def _print_swap(label: str, r: dict[str, Any], base: dict[str, Any]) -> None:
    """One diagnostic's regrets, under capacity and without, each beside its change from the model's."""
    parts = []
    for key, title in (("model_regret_share", "regret"), ("unconstrained_model_regret_share", "unconstrained")):
        parts.append(f"{title} {r[key]:6.1%} ({r[key] - base[key]:+6.1%})")
    print(f"  {label} " + " | ".join(parts), flush=True)


def truth_per_action(
    data: dict[str, Any], projection: Any, kappa: float, name: str, base: dict[str, Any]
) -> list[dict[str, Any]]:
    """Which action's projections cost the regret: each action's projected values replaced by the truth.

    The action's value, low and high become its true value for every account (the others stay
    projected), and the book is decided again. A regret far below the model's says that action's
    per-account errors are where the allocation loses; one above it says the projections of the
    other actions are off in the same direction, so the true values of one alone mislead.
    """
    import polars as pl

    inputs, playbook = data["inputs"], data["playbook"]
    values = projection.values
    truth = inputs.truth.select("account_id", "action_id", pl.col("value_usd").alias("_true"))
    joined = values.join(truth, on=["account_id", "action_id"], how="left")
    rows = []
    for action in sorted(set(values.get_column("action_id").to_list()) - {"none"}):
        swap = (pl.col("action_id") == action) & pl.col("_true").is_not_null()
        swapped = joined.with_columns(
            [pl.when(swap).then(pl.col("_true")).otherwise(pl.col(c)).alias(c) for c in VALUE_COLUMNS]
        ).drop("_true")
        r = decide_and_score(inputs, None, playbook, kappa, values=swapped, rules=data["rules"])
        rows.append({"setting": name, "risk_aversion": kappa, "truth_for": action, **r})
        _print_swap(f"true values for {action:28}", r, base)
    return rows


def truth_parts(
    data: dict[str, Any], projection: Any, kappa: float, name: str, base: dict[str, Any], actions: list[str]
) -> list[dict[str, Any]]:
    """Baseline or lift: the projections of ``actions`` rebuilt from one part of the truth and one of the model.

    For every objective an action's effect is its baseline (the expected outcome without it) times
    its relative lift (with it, over without). ``truth baseline`` keeps the model's lift on the
    lab's true baseline; ``truth lift`` the lab's lift on the model's baseline. Decided again under
    the same capacities, the regrets say which part of the projections costs the most.
    """
    import polars as pl

    from nextmove.models.effect import objective_specs

    inputs, playbook = data["inputs"], data["playbook"]
    truth = inputs.truth
    parts = []
    for spec in objective_specs(playbook):
        column = "expected_expansion_usd" if spec.is_amount else f"p_{spec.outcome}"
        without = truth.filter(pl.col("action_id") == "none").select("account_id", pl.col(column).alias("t0"))
        table = (
            projection.effects.filter(pl.col("objective") == spec.objective)
            .select("account_id", "action_id", "baseline", "effect", "effect_usd")
            .join(truth.select("account_id", "action_id", pl.col(column).alias("ta")), on=["account_id", "action_id"])
            .join(without, on="account_id")
        )
        dollars = pl.when(pl.col("effect") != 0).then(pl.col("effect_usd") / pl.col("effect")).otherwise(0.0)
        model_lift_on_truth = pl.when(pl.col("baseline") > 0).then(pl.col("effect") / pl.col("baseline") * pl.col("t0"))
        truth_lift_on_model = pl.when(pl.col("t0") > 0).then(
            (pl.col("ta") - pl.col("t0")) / pl.col("t0") * pl.col("baseline")
        )
        parts.append(
            table.select(
                "account_id",
                "action_id",
                pl.col("effect_usd").alias("model_usd"),
                (model_lift_on_truth.otherwise(0.0) * dollars).alias("truth baseline"),
                (truth_lift_on_model.otherwise(0.0) * dollars).alias("truth lift"),
            )
        )
    shifts = pl.concat(parts).group_by("account_id", "action_id").agg(pl.all().sum())
    rows = []
    for kind in ("truth baseline", "truth lift"):
        delta = shifts.filter(pl.col("action_id").is_in(actions)).select(
            "account_id", "action_id", (pl.col(kind) - pl.col("model_usd")).alias("_delta")
        )
        values = (
            projection.values.join(delta, on=["account_id", "action_id"], how="left")
            .with_columns([(pl.col(c) + pl.col("_delta").fill_null(0.0)).alias(c) for c in VALUE_COLUMNS])
            .drop("_delta")
        )
        r = decide_and_score(inputs, None, playbook, kappa, values=values, rules=data["rules"])
        rows.append({"setting": name, "risk_aversion": kappa, "truth_for": f"{kind}: {' '.join(actions)}", **r})
        _print_swap(f"{kind:14} for {' '.join(actions)}:", r, base)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=["run", "model-defaults"], choices=list(_settings()))
    parser.add_argument("--risk-aversion", nargs="+", type=float, default=[0.0])
    parser.add_argument("--accounts", type=int, default=4200)
    parser.add_argument("--months", type=int, default=18)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path("bench/out/lab_decide"))
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        help="EffectModel setting added to every setting, e.g. touch_cost_feature=touch_any_count_28d",
    )
    parser.add_argument(
        "--truth-per-action",
        action="store_true",
        help="diagnostic: for each action in turn, decide with the lab's true values in place of its "
        "projected ones (every other action projected) and print the regrets",
    )
    parser.add_argument(
        "--truth-parts",
        nargs="+",
        metavar="ACTION",
        help="diagnostic: decide with these actions' projections rebuilt from the truth's baseline and the "
        "model's lift, then from the model's baseline and the truth's lift (every objective)",
    )
    parser.add_argument(
        "--lab-groups",
        action="store_true",
        help="diagnostic: give the model the lab's hidden behavior group of every account (a column, "
        "used as its only group feature) instead of the groups it finds",
    )
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    extra = effect_params(args.param)
    suffix = "".join(f"+{k}={v}" for k, v in sorted(extra.items()))
    print(f"machine: {machine()}", flush=True)
    started = time.perf_counter()
    data = prepare(args.cache, args.accounts, args.months, args.seed)
    unknown = sorted(set(args.truth_parts or ()) - set(data["playbook"].action_ids))
    if unknown:
        parser.error(
            f"--truth-parts: {', '.join(unknown)} not in the playbook; its actions: "
            + ", ".join(data["playbook"].action_ids)
        )
    if args.lab_groups:
        data = with_lab_groups(data)
        extra = {**extra, "group_features": [LAB_GROUP]}
        suffix += "+lab-groups"
    data["rules"] = decision_rules(data["inputs"], data["playbook"])  # the same for every model and diagnostic
    rows = []
    for base_name in args.settings:
        setting = _settings()[base_name]
        setting = {**setting, "params": {**setting["params"], **extra}}
        name = base_name + suffix  # the cached model's name says what it was fitted with
        model, fit_cpu = fit(data, name, setting, args.cache)
        projection = model.project(data["inputs"].snapshot)  # one projection for every κ and diagnostic
        for kappa in args.risk_aversion:
            r = decide_and_score(
                data["inputs"], model, data["playbook"], kappa, values=projection.values, rules=data["rules"]
            )
            row = {"setting": name, "risk_aversion": kappa, "fit_cpu_s": round(fit_cpu, 1), **r}
            rows.append(row)
            print(
                f"{name:16} κ={kappa:<4} fit {fit_cpu:6.1f} s CPU | "
                f"constrained: oracle ${r['oracle_value_usd']:>11,.0f} "
                f"default ${r['default_value_usd']:>9,.0f} learned ${r['model_value_usd']:>11,.0f} "
                f"regret {r['model_regret_share']:.1%} (deployed {r['deployed_regret_share']:.1%}) | "
                f"unconstrained regret {r['unconstrained_model_regret_share']:.1%}",
                flush=True,
            )
            if args.truth_per_action:
                rows += truth_per_action(data, projection, kappa, name, r)
            if args.truth_parts:
                rows += truth_parts(data, projection, kappa, name, r, args.truth_parts)
    best = min(r["model_regret_share"] for r in rows if "truth_for" not in r)
    print(
        f"best learned regret under capacity {best:.1%} (target ≤ {TARGET_REGRET:.0%}); "
        f"{time.perf_counter() - started:.0f} s"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
