"""Benchmark of action effects on the lab: regret of the learned policy and coverage of its intervals.

On the default book (``SimConfig()``: 4,200 accounts, 18 months, seed 0): fit an
``EffectModel`` on the history before as_of, project every action for every active account at
as_of, pick each account's best eligible action (do nothing when no action is worth more than 0)
and score it with the lab's exact truth (``truth.values``):

- regret of the learned policy against the oracle, as a share of the oracle's gain over the
  lifecycle-stage default (target ≤ 15 %);
- coverage of the 90 % intervals of the true effects, per account × action pair: of the dollar
  value (the headline) and of each objective's effect (target 85–95 %);
- the same regret with propensities removed from the touch log (target: within 5 points).

Eligibility (rules, cooldowns, caps) stands in for the decide layer: the learned policy chooses
among the actions the lab marks eligible at as_of (``truth.values.eligible``). The off-policy
evaluation over 20 seeds is ``bench/lab_ope.py``.

    .venv/bin/python bench/lab_effects.py                       # both books (each fit: 5-10 min on 2 idle cores)
    .venv/bin/python bench/lab_effects.py --skip-no-propensity  # the book with logged propensities only
    .venv/bin/python bench/lab_effects.py --param heterogeneity_sd=0.4 --cache /tmp/lab-cache
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from _util import effect_params, fmt_bytes, lab_book_and_training, machine, peak_rss_bytes, timed

TARGET_REGRET = 0.15
TARGET_COVERAGE = (0.85, 0.95)
TARGET_NO_PROPENSITY_POINTS = 0.05
KINDS = ("churn", "expansion", "advocacy", "recovery", "onboarded")


def true_effects(values: pl.DataFrame) -> pl.DataFrame:
    """Per account × action: the true effect on each objective's outcome and the true value."""
    none = values.filter(pl.col("action_id") == "none").select(
        "account_id",
        *[pl.col(f"p_{k}").alias(f"_none_{k}") for k in KINDS],
        pl.col("expected_expansion_usd").alias("_none_expansion_usd"),
    )
    joined = values.filter(pl.col("action_id") != "none").join(none, on="account_id")
    return joined.select(
        "account_id",
        "action_id",
        "eligible",
        pl.col("value_usd").alias("true_value_usd"),
        *[
            (
                pl.col("expected_expansion_usd") - pl.col("_none_expansion_usd")
                if k == "expansion"
                else pl.col(f"p_{k}") - pl.col(f"_none_{k}")
            ).alias(f"true_{k}")
            for k in KINDS
        ],
    )


def regret_and_coverage(result: Any, training: pl.DataFrame, snapshot: pl.DataFrame, **params: Any) -> dict[str, Any]:
    """Fit on the book's history, choose at as_of, score with the truth."""
    from nextmove.models.effect import EffectModel

    playbook = result.config.resolved_playbook()
    truth = result.truth
    active = truth.accounts.filter(pl.col("active"))
    ids = active.select("account_id")
    cpu = time.process_time()
    with timed() as fit_time:
        model = EffectModel(playbook, **params).fit(training)
    fit_cpu = time.process_time() - cpu
    with timed() as project_time:
        projection = model.project(ids.join(snapshot, on="account_id", how="left"))
    eligible = truth.values.filter(pl.col("eligible") & (pl.col("action_id") != "none")).select(
        "account_id", "action_id"
    )
    best = projection.best(eligible=eligible)
    true_values = truth.values.select("account_id", "action_id", pl.col("value_usd").alias("true_value_usd"))
    chosen = best.join(true_values, on=["account_id", "action_id"])
    learned = float(chosen.get_column("true_value_usd").sum())
    oracle = float(active.get_column("oracle_value_usd").sum())
    default = float(active.get_column("default_value_usd").sum())
    regret = (oracle - learned) / (oracle - default)

    effects = true_effects(truth.values)
    values = projection.values.join(effects, on=["account_id", "action_id"], how="inner")
    covered = values.select(
        ((pl.col("true_value_usd") >= pl.col("low")) & (pl.col("true_value_usd") <= pl.col("high"))).mean()
    ).item()
    per_objective = {}
    kind_of = {o: obj.outcome for o, obj in playbook.objectives.items()}
    for objective, kind in kind_of.items():
        part = projection.effects.filter(pl.col("objective") == objective).join(
            effects, on=["account_id", "action_id"], how="inner"
        )
        truth_col = pl.col(f"true_{kind}")
        per_objective[objective] = {
            "coverage": part.select(((truth_col >= pl.col("low")) & (truth_col <= pl.col("high"))).mean()).item(),
            "corr": float(np.corrcoef(part.get_column(f"true_{kind}"), part.get_column("effect"))[0, 1]),
            "mean_width": part.select((pl.col("high") - pl.col("low")).mean()).item(),
        }
    value_corr = float(np.corrcoef(values.get_column("true_value_usd"), values.get_column("value_usd"))[0, 1])
    picks = best.group_by("action_id").len().sort("len", descending=True)
    return {
        "regret_fraction": regret,
        "learned_value_usd": learned,
        "oracle_value_usd": oracle,
        "default_value_usd": default,
        "value_coverage": covered,
        "value_corr": value_corr,
        "objective": per_objective,
        "flagged_actions": list(projection.flagged_actions),
        "fit_seconds": fit_time.seconds,
        "fit_cpu_seconds": fit_cpu,
        "fit_seconds_breakdown": {k: round(float(v), 2) for k, v in model.fit_seconds_.items()},
        "n_trees": model.n_trees_,
        "load_average_1m": os.getloadavg()[0],
        "project_seconds": project_time.seconds,
        "picks": dict(zip(picks.get_column("action_id").to_list(), picks.get_column("len").to_list(), strict=True)),
        "accounts": active.height,
        "training_rows": model.n_rows_,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=4200)
    parser.add_argument("--months", type=float, default=18)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-no-propensity", action="store_true")
    parser.add_argument("--cache", type=Path, default=None, help="folder to keep training sets between runs")
    parser.add_argument("--param", action="append", default=[], help="EffectModel setting, e.g. n_folds=3")
    args = parser.parse_args(argv)

    from nextmove.sim import SimConfig

    params = effect_params(args.param)
    print(f"machine: {machine()}", flush=True)
    report: dict[str, Any] = {"params": params}
    config = SimConfig(accounts=args.accounts, months=args.months, seed=args.seed)
    result, training, snapshot = lab_book_and_training(config, args.cache)
    main_run = regret_and_coverage(result, training, snapshot, **params)
    report["with_propensities"] = main_run
    print(json.dumps({"with_propensities": main_run}, indent=1), flush=True)
    if not args.skip_no_propensity:
        config = SimConfig(accounts=args.accounts, months=args.months, seed=args.seed, with_propensities=False)
        result, training, snapshot = lab_book_and_training(config, args.cache)
        blind = regret_and_coverage(result, training, snapshot, **params)
        report["without_propensities"] = blind
        print(json.dumps({"without_propensities": blind}, indent=1), flush=True)
        gap = blind["regret_fraction"] - main_run["regret_fraction"]
        report["regret_gap_points"] = gap
    regret = main_run["regret_fraction"]
    coverage = main_run["value_coverage"]
    print(
        f"regret {regret:.1%} of the oracle's gain over the default (target ≤ {TARGET_REGRET:.0%}); "
        f"90% value intervals cover {coverage:.1%} (target {TARGET_COVERAGE[0]:.0%}–{TARGET_COVERAGE[1]:.0%})",
        flush=True,
    )
    if "regret_gap_points" in report:
        gap = report["regret_gap_points"]
        print(
            f"without logged propensities: regret {report['without_propensities']['regret_fraction']:.1%}, "
            f"{gap * 100:+.1f} points (target within {TARGET_NO_PROPENSITY_POINTS * 100:.0f})",
            flush=True,
        )
    report["peak_rss"] = fmt_bytes(peak_rss_bytes())
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
