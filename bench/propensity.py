"""Benchmark of the estimated propensities: how close, and how fast, on a book that logged the true ones.

The default lab book (``SimConfig()``: 4,200 accounts, 18 months, seed 0) logs the propensity of
every decision, so an estimate made without them can be scored against them. A
``PropensityModel`` is fitted on its training set (about 139,000 decisions, 14 actions and
``none``) with ``use_logged=False``, cross-fitted by account, and every decision's out-of-fold
probability of the action taken is compared with the logged one:

- the log loss of the actions taken, ``−mean log p̂(a | x)``, beside the same for the logged
  propensities (what a perfect estimate would reach);
- the mean absolute log ratio ``|log p̂ − log p|`` and the correlation of the logs;
- fit wall time and CPU, and the rounds each fold model grew.

``--baseline`` also fits the settings before early stopping (150 rounds of 15 leaves at a
learning rate of 0.1, each tree on up to 100,000 rows), in the same run.

``--window`` also scores the propensities of the decisions that ``nextmove run`` evaluates (the
latest finished ones, one contact window of them) two ways: as the model fitted on the whole
history above estimates them (what the run uses, ``EffectModel.training_propensities``) and as a
model fitted on those decisions alone (``logging_propensities``, what ``nextmove evaluate`` does on
a held-out window); besides the log ratio, the mean of logged / estimated, by which the estimates
inflate the inverse-propensity weights on average (1 for exact ones).

    .venv/bin/python bench/propensity.py --baseline --cache /tmp/lab-cache
    .venv/bin/python bench/propensity.py --window --cache /tmp/lab-cache
    .venv/bin/python bench/propensity.py --param num_leaves=4 --param learning_rate=0.3
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from _util import effect_params, lab_book_and_training, machine

BASELINE = {"n_estimators": 150, "learning_rate": 0.1, "num_leaves": 15, "patience": None, "max_rows_per_tree": 100_000}


def closeness(estimated: Any, logged: Any) -> dict[str, float]:
    """How close estimated propensities are to the logged ones."""
    e = np.log(np.clip(np.asarray(estimated, dtype=float), 1e-6, 1.0))
    t = np.log(np.clip(np.asarray(logged, dtype=float), 1e-6, 1.0))
    return {
        "mean_abs_log_ratio": round(float(np.abs(e - t).mean()), 4),
        "log_corr": round(float(np.corrcoef(e, t)[0, 1]), 4),
        "mean_logged_over_estimated": round(float(np.exp(t - e).mean()), 4),
    }


def window(training: Any, history_estimates: Any, playbook: Any, seed: int) -> dict[str, Any]:
    """The run's evaluation window: its propensities from the whole history's model and from its rows alone."""
    import polars as pl

    from nextmove.engine.run import evaluation_window
    from nextmove.measure.ope import logging_propensities

    rows = evaluation_window(training.with_columns(pl.Series("_history", history_estimates)), playbook)
    logged = rows.get_column("propensity").to_numpy()
    started = time.perf_counter()
    alone, _ = logging_propensities(
        rows.drop("_history").with_columns(pl.lit(None, dtype=pl.Float64).alias("propensity")),
        playbook,
        random_state=seed,
    )
    seconds = time.perf_counter() - started
    return {
        "decisions": rows.height,
        "whole_history": closeness(rows.get_column("_history").to_numpy(), logged),
        "window_alone": {**closeness(alone.raw_propensity_, logged), "fit_seconds": round(seconds, 1)},
    }


def score(training: Any, params: dict[str, Any], folds: int, jobs: int) -> dict[str, Any]:
    """Fit without the logged propensities and score the estimates against them."""
    from nextmove.models.propensity import PropensityModel

    logged = training.get_column("propensity").to_numpy()
    started, cpu = time.perf_counter(), time.process_time()
    model = PropensityModel(use_logged=False, n_folds=folds, n_jobs=jobs, **params).fit(training)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    close = closeness(model.raw_propensity_, logged)
    return {
        "params": params,
        "fit_seconds": round(wall, 1),
        "fit_cpu_seconds": round(cpu, 1),
        "rounds": [booster.current_iteration() for booster in model.models_],
        "log_loss": round(float(-np.log(np.clip(model.raw_propensity_, 1e-6, 1.0)).mean()), 4),
        "log_loss_logged": round(float(-np.log(np.clip(logged, 1e-6, 1.0)).mean()), 4),
        "mean_abs_log_ratio": close["mean_abs_log_ratio"],
        "log_corr": close["log_corr"],
        "flagged": model.overlap_.flagged_arms,
        "_estimates": model.raw_propensity_,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=4200)
    parser.add_argument("--months", type=float, default=18)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=3, help="cross-fitting folds (the run's effect model: 3)")
    parser.add_argument("--jobs", type=int, default=2, help="LightGBM threads")
    parser.add_argument("--cache", type=Path, default=None, help="folder to keep training sets between runs")
    parser.add_argument("--param", action="append", default=[], help="PropensityModel setting, e.g. num_leaves=15")
    parser.add_argument("--baseline", action="store_true", help="also fit the settings before early stopping")
    parser.add_argument(
        "--window",
        action="store_true",
        help="also score the run's evaluation window: the whole history's estimates against a fit on the window alone",
    )
    args = parser.parse_args(argv)

    from nextmove.sim import SimConfig

    print(f"machine: {machine()}", flush=True)
    config = SimConfig(accounts=args.accounts, months=args.months, seed=args.seed)
    _, training, _ = lab_book_and_training(config, args.cache)
    if "censored" in training.columns:
        training = training.filter(~training.get_column("censored"))
    if training.get_column("propensity").is_null().any():
        raise SystemExit("this book does not log every propensity; nothing to score the estimates against")
    print(f"training set: {training.height:,} decisions", flush=True)
    runs = [score(training, effect_params(args.param), args.folds, args.jobs)]
    if args.baseline:
        runs.append(score(training, dict(BASELINE), args.folds, args.jobs))
    extra: dict[str, Any] = {}
    if args.window:
        extra["window"] = window(training, runs[0]["_estimates"], config.resolved_playbook(), args.seed)
        for name, r in extra["window"].items():
            if isinstance(r, dict):
                print(f"window, {name}: {json.dumps(r)}", flush=True)
    for run in runs:
        run.pop("_estimates")
        print(
            f"{json.dumps(run['params']) or '{}'}: {run['fit_seconds']} s ({run['fit_cpu_seconds']} s CPU), "
            f"rounds {run['rounds']}; log loss {run['log_loss']} (logged propensities {run['log_loss_logged']}), "
            f"mean |log ratio| {run['mean_abs_log_ratio']}, correlation of logs {run['log_corr']}",
            flush=True,
        )
    print(json.dumps({"decisions": training.height, "folds": args.folds, "jobs": args.jobs, "runs": runs, **extra}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
