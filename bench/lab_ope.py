"""Benchmark of off-policy evaluation on the lab: does the OPE interval of the learned policy hold its true value?

For each of ``--seeds`` lab books (``SimConfig(accounts=--accounts, months=--months, seed=s)``; the
default book, 4,200 accounts over 18 months, takes too long to fit 20 times on 2 shared cores, so
the default here is 800 accounts over 12 months):

1. fit an ``EffectModel`` on the history known ``--gap-days`` before the end (labels censored at
   that date, as they were then);
2. let the learned policy choose, for every logged decision of the following window whose
   horizon has ended, the action of highest projected value among the actions the logging policy
   could take there (its non-zero candidates stand in for eligibility); ``none`` unless one is
   worth more than 0;
3. estimate the policy's value per decision with IPS, SNIPS and DR (``nextmove.measure.ope``, 95 %
   intervals, DR's outcome model being the fitted ``EffectModel.expected_values``) from the logged
   outcomes of that window, weighted by the logged propensities (``--estimated-propensities``: by
   propensities that a cross-fitted ``PropensityModel`` estimates from the window's logged
   actions, as for a book that logs none);
4. compute the policy's exact value on the same decisions from the lab's truth (the expected row
   value of its choice at every decision, with the convention of ``row_value_usd``) and check
   whether each interval holds it;
5. check the truth itself on the logged policy: the plain mean of the logged rows' values (the
   on-policy estimate, no weights, no model) against the logged actions' exact value. The lab's
   truth counts the outcomes attributed to the decision, while a logged row's horizon also holds
   the outcomes of the later decisions on the same account; this check shows how far apart the
   two are, in standard errors of the on-policy mean.

Target (issue #5): the interval holds the true value in at least 90 % of 20 seeds.

    .venv/bin/python bench/lab_ope.py                      # 20 seeds, 800 accounts, 12 months
    .venv/bin/python bench/lab_ope.py --seeds 5 --accounts 400
    .venv/bin/python bench/lab_ope.py --estimated-propensities
    .venv/bin/python bench/lab_ope.py --param n_estimators=60     # an EffectModel setting
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from _util import effect_params, fmt_bytes, machine, peak_rss_bytes

TARGET_COVERAGE = 0.90
METHODS = ("ips", "snips", "dr")


def true_policy_value(result: Any, window: pl.DataFrame, policy: pl.DataFrame) -> float:
    """The exact value per decision of ``policy`` on the decisions of ``window``, in row-value dollars."""
    from nextmove.models.effect import objective_specs

    specs = objective_specs(result.config.resolved_playbook())
    parts = []
    for (ts,), part in window.group_by("decision_ts"):
        chosen = policy.filter(pl.col("decision_ts") == ts).select("account_id", "action_id")
        truth = result.world.true_values(part.get_column("account_id").to_list(), ts)
        parts.append(
            truth.join(chosen, on=["account_id", "action_id"]).join(part.select("account_id", "arr"), on="account_id")
        )
    truth = pl.concat(parts)
    if truth.height != window.height:
        raise RuntimeError(f"the truth covers {truth.height} of {window.height} decisions")
    arr = truth.get_column("arr").cast(pl.Float64).to_numpy()
    value = np.zeros(truth.height)
    for spec in specs:
        column = "expected_expansion_usd" if spec.is_amount else f"p_{spec.outcome}"
        value += spec.usd_per_unit(arr) * truth.get_column(column).to_numpy()
    value -= truth.get_column("cost_usd").to_numpy()
    return float(value.mean())


def one_seed(
    seed: int,
    accounts: int,
    months: float,
    gap_days: int,
    n_folds: int,
    params: dict[str, Any] | None = None,
    *,
    estimated: bool = False,
) -> dict[str, Any]:
    """Fit before the window, evaluate the learned policy on it, compare with the truth."""
    from nextmove.features import build_training_set
    from nextmove.measure.ope import evaluate_policy
    from nextmove.measure.policy import learned_policy
    from nextmove.models.effect import EffectModel
    from nextmove.sim import SimConfig, simulate

    started = time.perf_counter()
    config = SimConfig(accounts=accounts, months=months, seed=seed)
    result = simulate(config)
    playbook = config.resolved_playbook()
    horizon = timedelta(days=playbook.horizon_days)
    fit_as_of = result.as_of - timedelta(days=gap_days)
    training = build_training_set(result.book, playbook, as_of=fit_as_of)
    everything = build_training_set(result.book, playbook)
    window = everything.filter(
        pl.col("logged")
        & (pl.col("decision_ts") >= fit_as_of)
        & (pl.col("decision_ts") + horizon <= result.as_of)
        & ~pl.col("censored")
    )
    model = EffectModel(playbook, **{"n_folds": n_folds, "random_state": seed, **(params or {})}).fit(training)
    projection = model.project(window)
    # The logging policy's support at each decision stands in for eligibility.
    support = (
        result.truth.propensities.join(window.select("touch_id", "account_id", "decision_ts"), on="touch_id")
        .unpivot(index=["touch_id", "account_id", "decision_ts"], variable_name="action_id", value_name="p")
        .filter((pl.col("p") > 0) & (pl.col("action_id") != "none"))
        .select("account_id", "decision_ts", "action_id")
    )
    policy = learned_policy(projection.values, eligible=support)
    estimates = evaluate_policy(
        window,
        policy,
        playbook,
        expected_values=model.expected_values(window),
        name="learned",
        propensity="estimate" if estimated else "logged",
    )
    true_value = true_policy_value(result, window, policy)
    logged = window.select("account_id", "decision_ts", pl.col("action_id").fill_null("none"))
    logged_truth = true_policy_value(result, window, logged)
    # The logged policy on its own rows with propensity 1: IPS is then the plain mean of the rows' values.
    (on_policy,) = evaluate_policy(
        window,
        logged.with_columns(probability=pl.lit(1.0)),
        playbook,
        propensity=np.ones(window.height),
        methods=("ips",),
        name="logged",
    )
    acting = policy.filter((pl.col("probability") > 0) & (pl.col("action_id") != "none")).height
    out: dict[str, Any] = {
        "seed": seed,
        "training_rows": model.n_rows_,
        "window_rows": window.height,
        "acting_share": acting / window.height,
        "true_value": true_value,
        "logged": {
            "true_value": logged_truth,
            "on_policy_mean": on_policy.estimate,
            "stderr": on_policy.stderr,
            "z": (on_policy.estimate - logged_truth) / on_policy.stderr,
        },
        "seconds": time.perf_counter() - started,
    }
    for estimate in estimates:
        fields = asdict(estimate)
        out[estimate.method] = {
            **{k: fields[k] for k in ("estimate", "stderr", "low", "high", "effective_sample_size")},
            "covered": bool(estimate.low <= true_value <= estimate.high),
        }
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per method: share of seeds covered, mean error and mean interval half-width (dollars per decision)."""
    out = {}
    for method in METHODS:
        present = [r for r in runs if method in r]
        if not present:
            continue
        out[method] = {
            "coverage": float(np.mean([r[method]["covered"] for r in present])),
            "mean_error": float(np.mean([r[method]["estimate"] - r["true_value"] for r in present])),
            "mean_abs_error": float(np.mean([abs(r[method]["estimate"] - r["true_value"]) for r in present])),
            "mean_half_width": float(np.mean([(r[method]["high"] - r[method]["low"]) / 2 for r in present])),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--accounts", type=int, default=800)
    parser.add_argument("--months", type=float, default=12)
    parser.add_argument("--gap-days", type=int, default=182)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--param", action="append", default=[], help="EffectModel setting, e.g. n_estimators=60")
    parser.add_argument(
        "--estimated-propensities",
        action="store_true",
        help="weight by propensities estimated from the window's logged actions, not the logged ones",
    )
    args = parser.parse_args(argv)

    print(f"machine: {machine()}", flush=True)
    runs = []
    started = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        run = one_seed(
            seed,
            args.accounts,
            args.months,
            args.gap_days,
            args.folds,
            effect_params(args.param),
            estimated=args.estimated_propensities,
        )
        runs.append(run)
        print(json.dumps(run), flush=True)
    summary = summarise(runs)
    for method, figures in summary.items():
        print(
            f"{method:5}: the 95% interval holds the true value in {figures['coverage']:.0%} of {len(runs)} seeds "
            f"(target ≥ {TARGET_COVERAGE:.0%}); mean error {figures['mean_error']:+.1f} $/decision, "
            f"mean |error| {figures['mean_abs_error']:.1f}, mean half-width {figures['mean_half_width']:.1f}",
            flush=True,
        )
    z = np.array([r["logged"]["z"] for r in runs])
    print(
        f"truth check (logged policy): the on-policy mean lies {z.mean():+.2f} ± {z.std(ddof=1) / np.sqrt(len(z)):.2f} "
        f"standard errors from the lab's truth on average; within 1.96 of them in {np.mean(np.abs(z) <= 1.96):.0%} "
        f"of {len(z)} seeds",
        flush=True,
    )
    summary["truth_check"] = {"mean_z": float(z.mean()), "covered": float(np.mean(np.abs(z) <= 1.96))}
    report = {
        "seeds": len(runs),
        "accounts": args.accounts,
        "months": args.months,
        "gap_days": args.gap_days,
        "folds": args.folds,
        "params": effect_params(args.param),
        "estimated_propensities": args.estimated_propensities,
        "summary": summary,
        "seconds": time.perf_counter() - started,
        "load_average_1m": os.getloadavg()[0],
        "peak_rss": fmt_bytes(peak_rss_bytes()),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
