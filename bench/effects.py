"""Benchmark of EffectModel training at scale: 1,000,000 logged decisions over 14 actions; wall time and peak memory.

The training set is made from the lab: the default lab book's training set (``SimConfig()``,
about 164,000 decisions with their features and attributed outcomes over the default
playbook's 14 actions and ``none``) is replicated until it holds ``--rows`` rows, each copy with
its own account ids and every numeric feature perturbed by 5 % multiplicative noise. It is
written as Parquet by one child process; a second, fresh child process loads it and fits an
``EffectModel`` (logged propensities, 5 cross-fitting folds, every objective of the default
playbook), so that generation is not counted. Peak RSS is the fitting process's, the loaded
training set included.

    .venv/bin/python bench/effects.py                    # 1,000,000 rows, 2 threads
    .venv/bin/python bench/effects.py --rows 200000 --n-jobs 1
    .venv/bin/python bench/effects.py --no-propensities   # the model estimates the propensities

Target: ≤ 5 min and ≤ 10 GB peak RSS on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from _util import fmt_bytes, machine, peak_rss_bytes, run_child, timed

TARGET_SECONDS = 300.0
TARGET_PEAK_BYTES = 10 * 1024**3


def generate(out: Path, rows: int, seed: int) -> dict[str, int]:
    """Write ``rows`` training rows (replicated, perturbed lab decisions) to ``out``."""
    import numpy as np
    import polars as pl

    from nextmove.features import build_training_set, feature_schema
    from nextmove.sim import SimConfig, simulate

    result = simulate(SimConfig(seed=seed))
    base = build_training_set(result.book, result.config.resolved_playbook())
    numeric = [c for c, kind in feature_schema(base).items() if kind == "number"]
    rng = np.random.default_rng(seed)
    parts = []
    copies = -(-rows // base.height)
    for copy in range(copies):
        noise = [
            (pl.col(c) * pl.Series(rng.lognormal(0.0, 0.05, base.height))).cast(base.schema[c]).alias(c)
            for c in numeric
            if base.schema[c].is_float()
        ]
        part = base.with_columns(
            (pl.col("account_id") + f"-{copy}").alias("account_id"),
            (pl.col("touch_id") + f"-{copy}").alias("touch_id"),
            *noise,
        )
        parts.append(part)
    frame = pl.concat(parts).head(rows)
    frame.write_parquet(out)
    actions = frame.filter(pl.col("action_id") != "none").get_column("action_id").n_unique()
    return {"rows": frame.height, "columns": frame.width, "actions": actions, "base_rows": base.height}


def fit(path: Path, n_jobs: int, *, drop_propensities: bool = False) -> dict[str, Any]:
    """Load the training set and fit an EffectModel; time and peak memory.

    ``drop_propensities``: leave the logged propensities out, so that the model estimates them.
    """
    import os
    import time

    import polars as pl

    from nextmove.models.effect import EffectModel
    from nextmove.playbook.loader import load_playbook

    with timed() as load:
        training = pl.read_parquet(path)
        if drop_propensities:
            training = training.drop("propensity")
    cpu = time.process_time()
    with timed() as took:
        model = EffectModel(load_playbook(), n_jobs=n_jobs).fit(training)
    return {
        "load_seconds": load.seconds,
        "fit_seconds": took.seconds,
        "fit_cpu_seconds": time.process_time() - cpu,
        "load_average_1m": os.getloadavg()[0],
        "outcome_seconds": model.fit_seconds_["outcomes"],
        "propensity_seconds": model.fit_seconds_["propensity"],
        "fit_seconds_breakdown": {k: round(float(v), 2) for k, v in model.fit_seconds_.items()},
        "n_trees": model.n_trees_,
        "training_rows": float(model.n_rows_),
        "arms": float(len(model.arms_)),
        "peak_rss_bytes": float(peak_rss_bytes()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument(
        "--data", type=Path, help="keep the generated training set in this Parquet file (reused when it exists)"
    )
    parser.add_argument(
        "--no-propensities", action="store_true", help="fit without the logged propensities (the model estimates them)"
    )
    parser.add_argument("--child", choices=["generate", "fit"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child == "generate":
        print(json.dumps(generate(args.path, args.rows, args.seed)))
        return 0
    if args.child == "fit":
        print(json.dumps(fit(args.path, args.n_jobs, drop_propensities=args.no_propensities)))
        return 0

    print(f"machine: {machine()}", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="nextmove-bench-effects-"))
    try:
        path = args.data or folder / "training.parquet"
        if args.data is not None and args.data.exists():
            made: dict[str, Any] = {"rows": args.rows, "reused": str(args.data)}
            print(f"reusing the training set {args.data}")
        else:
            with timed() as gen:
                command = ["--child", "generate", "--rows", str(args.rows), "--path", str(path)]
                made = run_child(Path(__file__), command)
            print(f"generated {made['rows']:,} rows × {made['columns']} columns, {made['actions']} actions", end="")
            print(f" in {gen.seconds:.0f} s")
        command = ["--child", "fit", "--path", str(path), "--n-jobs", str(args.n_jobs)]
        result = run_child(Path(__file__), command + (["--no-propensities"] if args.no_propensities else []))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    seconds, peak = result["fit_seconds"], result["peak_rss_bytes"]
    print(
        f"EffectModel.fit on {int(result['training_rows']):,} rows, {int(result['arms'])} arms "
        f"(n_jobs={args.n_jobs}): {seconds:.0f} s wall, {result['fit_cpu_seconds']:.0f} s CPU "
        f"(outcome models {result['outcome_seconds']:.0f} s, propensity model {result['propensity_seconds']:.0f} s), "
        f"peak RSS {fmt_bytes(peak)}; "
        f"reading the Parquet {result['load_seconds']:.1f} s; 1-min load average {result['load_average_1m']:.1f}"
    )
    ok = seconds <= TARGET_SECONDS and peak <= TARGET_PEAK_BYTES
    print(f"target ≤ {TARGET_SECONDS:.0f} s and ≤ {fmt_bytes(TARGET_PEAK_BYTES)}: {'met' if ok else 'MISSED'}")
    print(json.dumps({**result, **made, "n_jobs": args.n_jobs, "no_propensities": args.no_propensities}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
