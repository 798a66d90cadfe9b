"""Outcome models: training at scale (wall time, peak memory), and accuracy on the lab against the truth.

Scale (default): a lab book big enough for ``--rows`` past decisions (1,000,000: about 25,700
accounts over 18 months, 39 decision windows) is simulated and its training set (one snapshot
per past decision, with labels) written as Parquet; then, in a fresh child process so the
generation is not counted, the Parquet is read and ``OutcomeModels`` fits every objective's
outcome (churn, expansion with its amount, advocacy, recovery, onboarding). Peak RSS includes
the frame itself.

    .venv/bin/python bench/models.py                     # 1,000,000 rows, 1 LightGBM thread
    .venv/bin/python bench/models.py --rows 300000 --jobs 2

Lab (``--lab``): the health job (``score_health``) on the default lab book, then the churn
model's AUC and ECE on the later window beside the AUC of the TRUE churn probability on the same
rows (the truth joined by ``touch_id``), on two later windows: the model's own validation window
(out-of-fold calibrated probabilities) and a strictly held-out window (models refitted on the
decisions before the latest 20 % of decision times). Also the optimizer's hand-set vs learned
health-score AUC.

    .venv/bin/python bench/models.py --lab

Targets: scale ≤ 180 s and ≤ 8 GB peak RSS on 2 cores; lab: churn AUC within 0.03 of the
truth's, ECE ≤ 0.03, learned health score beats the hand-set one.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path

from _util import fmt_bytes, machine, peak_rss_bytes, run_child, timed

TARGET_SECONDS = 180.0
TARGET_PEAK_BYTES = 8 * 1024**3
AUC_GAP = 0.03
ECE_MAX = 0.03


def generate(out: Path, rows: int, seed: int) -> dict[str, object]:
    """Simulate a lab book big enough for ``rows`` past decisions and write its training set's first ``rows`` rows."""
    import polars as pl

    from nextmove.features import build_training_set
    from nextmove.sim import SimConfig, simulate

    config = SimConfig(seed=seed)
    # Every active account gets one logged decision per window; churned accounts are replaced.
    accounts = -(-rows // config.decision_windows) + 1
    with timed() as sim:
        lab = simulate(config.model_copy(update={"accounts": accounts}))
    with timed() as build:
        training = build_training_set(lab.book, lab.config.resolved_playbook())
    frame = training.sort("decision_ts", maintain_order=True).head(rows)
    frame.write_parquet(out)
    return {
        "accounts": accounts,
        "signal_rows": lab.book.signals.height,
        "rows": frame.height,
        "columns": frame.width,
        "simulate_seconds": round(sim.seconds, 1),
        "training_set_seconds": round(build.seconds, 1),
        "uncensored_rows": int(frame.filter(~pl.col("censored")).height),
    }


def train(path: Path, jobs: int) -> dict[str, object]:
    """Read the Parquet and fit every outcome model; wall time and peak RSS of this process."""
    import polars as pl

    from nextmove.models.outcome import OutcomeModel, OutcomeModels
    from nextmove.playbook.loader import load_playbook

    load_before = os.getloadavg()[0]
    with timed() as total:
        with timed() as read:
            frame = pl.read_parquet(path)
        models = OutcomeModels(load_playbook(), template=OutcomeModel(n_jobs=jobs)).fit(frame)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    info = models.info
    return {
        "rows": frame.height,
        "features": len(info.features),
        "read_seconds": round(read.seconds, 1),
        "seconds": round(total.seconds, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "peak_rss": peak_rss_bytes(),
        "kinds": {
            k: {
                "trees": s.trees,
                "train_events": s.train_events,
                "validation_auc": round(s.validation_auc or float("nan"), 4),
                "calibration": s.calibration,
                "amount": s.amount_method,
            }
            for k, s in info.summaries.items()
        },
        "skipped": info.skipped,
    }


def lab(seed: int, jobs: int) -> dict[str, object]:
    """The lab acceptance: churn model vs the true churn probability on later windows."""
    import polars as pl

    from nextmove.engine import score_health
    from nextmove.features import build_training_set
    from nextmove.measure import evaluate_probabilities
    from nextmove.models.outcome import OutcomeModel, OutcomeModels
    from nextmove.sim import SimConfig, simulate

    with timed() as sim:
        result = simulate(SimConfig(seed=seed))
    playbook = result.config.resolved_playbook()
    template = OutcomeModel(n_jobs=jobs)
    with timed() as job:
        health = score_health(result.book, playbook, result.as_of, template=template)
    truth = result.truth.decisions.select("touch_id", "p_churn")

    # The job's own later window: it rebuilt this training set (deterministic) and kept row positions.
    training = build_training_set(result.book, playbook, as_of=result.as_of)
    rows = training.filter(~pl.col("censored"))
    assert health.outcome_models is not None
    v = health.outcome_models["churn"].validation_
    assert v is not None
    own = rows[v.row_index].select("touch_id").with_columns(y=pl.Series(v.y), p=pl.Series(v.probability))
    figures = {"validation_window": _versus_truth(own.join(truth, on="touch_id", how="left"), evaluate_probabilities)}

    # A strictly held-out later window: refit on the decisions before it.
    times = rows.get_column("decision_ts").unique().sort()
    cut = times[int(len(times) * 0.8)]
    with timed() as refit:
        models = OutcomeModels(playbook, template=template).fit(rows.filter(pl.col("decision_ts") < cut))
    test = rows.filter(pl.col("decision_ts") >= cut)
    p = models.predict(test, top_k=0).probability["churn"]
    held = test.select("touch_id", y=pl.col("y_churn").cast(pl.Float64)).with_columns(p=pl.Series(p))
    figures["held_out_window"] = _versus_truth(held.join(truth, on="touch_id", how="left"), evaluate_probabilities)
    figures["held_out_window"]["from"] = str(cut)

    report = health.optimizer
    return {
        "accounts": result.book.accounts.height,
        "active_accounts": health.accounts.height,
        "training_rows": training.height,
        "uncensored_rows": rows.height,
        "simulate_seconds": round(sim.seconds, 1),
        "health_job_seconds": round(job.seconds, 1),
        "refit_seconds": round(refit.seconds, 1),
        "churn": figures,
        "calibration": health.outcome_models["churn"].summary_.calibration,
        "other_kinds_later_window_auc": {
            k: round(a.auc, 4) if a.auc is not None else None for k, a in health.accuracy.items()
        },
        "health_auc_hand_set": None if report is None else report.auc_hand_set,
        "health_auc_learned": None if report is None else report.auc_learned,
        "health_test_rows": None if report is None else report.test_rows,
        "health_test_events": None if report is None else report.test_events,
    }


def _versus_truth(frame: object, evaluate: object) -> dict[str, object]:
    import polars as pl

    assert isinstance(frame, pl.DataFrame)
    missing = frame.get_column("p_churn").null_count()
    frame = frame.drop_nulls("p_churn")
    model = evaluate(frame.get_column("y"), frame.get_column("p"))  # type: ignore[operator]
    ceiling = evaluate(frame.get_column("y"), frame.get_column("p_churn"))  # type: ignore[operator]
    return {
        "rows": model.rows,
        "events": model.events,
        "rows_without_truth": missing,
        "auc_model": round(model.auc, 4),
        "auc_truth": round(ceiling.auc, 4),
        "auc_gap": round(ceiling.auc - model.auc, 4),
        "ece_model": round(model.ece, 4),
        "ece_truth": round(ceiling.ece, 4),
        "brier_model": round(model.brier, 5),
        "brier_truth": round(ceiling.brier, 5),
        "mean_p_model": round(model.mean_predicted, 5),
        "base_rate": round(model.base_rate, 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=1, help="LightGBM threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lab", action="store_true", help="accuracy on the default lab book against the truth")
    parser.add_argument("--step", choices=["generate", "train", "lab"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.step == "generate":
        print(json.dumps(generate(args.path, args.rows, args.seed)))
        return
    if args.step == "train":
        print(json.dumps(train(args.path, args.jobs)))
        return
    if args.step == "lab" or args.lab:
        figures = lab(args.seed, args.jobs)
        if args.step == "lab":
            print(json.dumps(figures))
            return
        print(json.dumps(figures, indent=2))
        churn = figures["churn"]
        assert isinstance(churn, dict)
        for window, f in churn.items():
            ok = f["auc_gap"] <= AUC_GAP and f["ece_model"] <= ECE_MAX
            print(
                f"churn, {window}: AUC {f['auc_model']} vs truth {f['auc_truth']} (gap {f['auc_gap']}, "
                f"target ≤ {AUC_GAP}), ECE {f['ece_model']} (target ≤ {ECE_MAX}): {'OK' if ok else 'MISSED'}"
            )
        hand, learned = figures["health_auc_hand_set"], figures["health_auc_learned"]
        beat = hand is not None and learned is not None and learned > hand  # type: ignore[operator]
        print(f"health score AUC: hand-set {hand}, learned {learned}: {'OK' if beat else 'MISSED'}")
        print(f"machine: {machine()}")
        return

    env = {"OMP_WAIT_POLICY": "PASSIVE"} if args.jobs > 1 else {}
    work = Path(tempfile.mkdtemp(prefix="nextmove-models-bench-"))
    try:
        path = work / "snapshots.parquet"
        print(f"generating {args.rows:,} snapshot rows (a lab book and its training set) …", file=sys.stderr)
        made = run_child(Path(__file__), ["--step", "generate", "--path", str(path), "--rows", str(args.rows)])
        print(f"training every outcome model ({args.jobs} LightGBM thread(s)) …", file=sys.stderr)
        got = run_child(
            Path(__file__),
            ["--step", "train", "--path", str(path), "--jobs", str(args.jobs)],
            env={**os.environ, **env},
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"generated": made, "trained": got}, indent=2))
    seconds, peak = float(got["seconds"]), float(got["peak_rss"])
    print(
        f"{got['rows']:,} rows × {got['features']} features: {seconds:.1f} s (target ≤ {TARGET_SECONDS:.0f} s), "
        f"peak RSS {fmt_bytes(peak)} (target ≤ {fmt_bytes(TARGET_PEAK_BYTES)}): "
        f"{'OK' if seconds <= TARGET_SECONDS and peak <= TARGET_PEAK_BYTES else 'MISSED'}"
    )
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
