"""Benchmark of behavioral segments on the lab: recovery of the planted groups, k, time, and response ranking.

On a lab book (``SimConfig()`` by default: 4,200 active accounts, 18 months, seed 0):

1. **Clusters.** ``segment_book`` on ``behavior_snapshot`` (a year of behavior) at as_of:
   adjusted Rand index (ARI) of the segments against the planted groups (``truth.accounts.group``,
   target >= 0.6), the k chosen and the stability and silhouette of every k, wall time.
   ``--variants`` also runs the steps one at a time (window, size adjustment, frequencies,
   criterion, Gaussian mixtures on the same features) so each choice is measured.
2. **Response** (unless ``--no-response``). An ``EffectModel`` is fitted on the book's history
   before as_of and projects every action for every active account; ``segment_book`` ranks the
   segments by their estimated response (the value of the segment's best single eligible action
   for the segment as a whole: the largest mean over its accounts). Each segment's *true* response
   is the same figure in the truth (the largest mean true value of an action over its accounts,
   an account not eligible for it counting $0), and beside it the mean oracle value (each account's
   own best action, which no single action reaches); the check is that the segment holding most of
   the truth's top group (``truth.groups.response_rank == 1``) is ranked first. Also the spend
   efficiency and the true response per family.
3. **Moves.** The segments of a run 14 days earlier (the previous decision window) matched to
   today's: accounts that moved.

The truth and the group names are used only here, to score; nothing in ``nextmove.segment``
sees them.

    .venv/bin/python bench/segments.py                      # clusters + response + moves (a few minutes)
    .venv/bin/python bench/segments.py --no-response --variants
    .venv/bin/python bench/segments.py --seed 1 --no-response
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import adjusted_rand_score

from _util import machine, timed

TARGET_ARI = 0.6


def _truth_groups(result: Any, ids: pl.DataFrame) -> np.ndarray:
    return (
        ids.select(pl.col("account_id").cast(pl.String))
        .join(result.truth.accounts.select("account_id", "group"), on="account_id", how="left")
        .get_column("group")
        .to_numpy()
    )


def _ari(result: Any, assignments: pl.DataFrame) -> float:
    return float(adjusted_rand_score(_truth_groups(result, assignments), assignments.get_column("segment_id")))


def _active(result: Any, snapshot: pl.DataFrame) -> pl.DataFrame:
    from nextmove.features import terminal_outcome_kinds

    playbook = result.config.resolved_playbook()
    gone = result.book.outcomes.filter(
        pl.col("kind").is_in(terminal_outcome_kinds(playbook)) & (pl.col("ts") < result.as_of)
    ).get_column("account_id")
    return snapshot.filter(~pl.col("account_id").is_in(gone.unique().implode()))


def clusters(result: Any, seed: int) -> tuple[Any, pl.DataFrame]:
    from nextmove.segment import behavior_snapshot, segment_book

    playbook = result.config.resolved_playbook()
    with timed() as t_snap:
        snapshot = behavior_snapshot(result.book, result.as_of, playbook=playbook)
    cpu = time.process_time()
    with timed() as t_seg:
        report = segment_book(snapshot, playbook=playbook, outcomes=result.book.outcomes, as_of=result.as_of, seed=seed)
    cpu = time.process_time() - cpu
    ari = _ari(result, report.assignments)
    print(f"behavior snapshot (365-day window): {t_snap.seconds:.1f} s, {snapshot.height:,} accounts")
    print(
        f"segment_book (no projection): {t_seg.seconds:.1f} s wall, {cpu:.1f} s CPU; "
        f"{report.accounts:,} active accounts, {len(report.features)} features"
    )
    print(f"k chosen: {report.k} (criterion {report.criterion})")
    print("  stability  " + "  ".join(f"k={k}: {v:.3f}" for k, v in report.stabilities.items()))
    print("  silhouette " + "  ".join(f"k={k}: {v:.3f}" for k, v in report.silhouettes.items()))
    print(f"ARI vs planted groups: {ari:.3f} (target >= {TARGET_ARI}: {'met' if ari >= TARGET_ARI else 'MISSED'})")
    groups = _truth_groups(result, report.assignments)
    table = pl.DataFrame({"segment_id": report.assignments.get_column("segment_id"), "group": groups})
    for seg in sorted(report.segments, key=lambda s: s.id):
        mine = table.filter(pl.col("segment_id") == seg.id).get_column("group").value_counts(sort=True)
        top = mine.row(0)
        print(f"  segment {seg.id} ({seg.accounts:,}): {seg.name} — {top[1] / seg.accounts:.0%} {top[0]}")
    return report, snapshot


def variants(result: Any, snapshot: pl.DataFrame, seed: int) -> None:
    from sklearn.mixture import GaussianMixture

    from nextmove.features import compute_features
    from nextmove.segment import BehaviorSegmenter

    playbook = result.config.resolved_playbook()
    active = _active(result, snapshot)
    run_snapshot = _active(result, compute_features(result.book, result.as_of, playbook=playbook))
    long = _active(result, compute_features(result.book, result.as_of, playbook=playbook, windows_days=(90, 180, 365)))
    rows: list[tuple[str, Any, dict[str, Any]]] = [
        ("90-day window (the run's snapshot)", run_snapshot, {}),
        ("180-day window", long, {"window_days": 180}),
        ("365-day window (default)", active, {}),
        ("365 d, without the size adjustment", active, {"size_column": None}),
        ("365 d, cadence frequencies kept (min_spread 0)", active, {"min_spread": 0.0}),
        ("365 d, k by silhouette", active, {"criterion": "silhouette"}),
        ("365 d, k fixed at 4", active, {"k": 4}),
    ]
    print("\nvariants (ARI, k, wall):")
    fitted = None
    for label, frame, params in rows:
        with timed() as t:
            seg = BehaviorSegmenter(seed=seed, **params).fit(frame)
            res = seg.segment(frame)
        print(f"  {label:66s} ARI {_ari(result, res.assignments):.3f}  k={res.k}  {t.seconds:.1f} s")
        if label.startswith("365-day"):
            fitted = (seg, frame, res.k)
    assert fitted is not None
    seg, frame, k = fitted
    x = seg.transform(frame)
    for cov in ("diag", "full"):
        with timed() as t:
            labels = GaussianMixture(k, covariance_type=cov, random_state=seed, n_init=2).fit(x).predict(x)
        groups = _truth_groups(result, frame)
        print(
            f"  {'365 d features, Gaussian mixture (' + cov + ' covariance), same k':66s} "
            f"ARI {adjusted_rand_score(groups, labels):.3f}  k={k}  {t.seconds:.1f} s"
        )


def response(
    result: Any, snapshot: pl.DataFrame, report: Any, seed: int, trees: int, folds: int, cache: Path | None
) -> None:
    from nextmove.features import build_training_set, compute_features
    from nextmove.measure.policy import eligible_actions
    from nextmove.models.effect import EffectModel
    from nextmove.segment import action_families, segment_book

    playbook = result.config.resolved_playbook()
    book = result.book
    cfg = result.config
    cached = cache / f"segments_training_{cfg.accounts}_{cfg.months}_{cfg.seed}.parquet" if cache else None
    with timed() as t_train:
        if cached is not None and cached.exists():
            training = pl.read_parquet(cached)
        else:
            training = build_training_set(book, playbook, as_of=result.as_of)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                training.write_parquet(cached)
    cpu = time.process_time()
    with timed() as t_fit:
        model = EffectModel(playbook, n_folds=folds, n_estimators=trees, random_state=seed).fit(training)
    fit_cpu = time.process_time() - cpu
    run_snapshot = _active(result, compute_features(book, result.as_of, playbook=playbook))
    with timed() as t_proj:
        projection = model.project(run_snapshot)
    eligible = eligible_actions(run_snapshot, playbook)
    with timed() as t_seg:
        full = segment_book(
            snapshot,
            projection=projection,
            playbook=playbook,
            outcomes=book.outcomes,
            touches=book.touches,
            eligible=eligible,
            as_of=result.as_of,
            seed=seed,
        )
    print(
        f"\nresponse: training set {training.height:,} rows in {t_train.seconds:.0f} s; EffectModel "
        f"({folds} folds, {trees} trees) fit {t_fit.seconds:.0f} s wall / {fit_cpu:.0f} s CPU; "
        f"projection {t_proj.seconds:.0f} s; segment_book with everything {t_seg.seconds:.1f} s"
    )
    truth = result.truth
    active = truth.accounts.filter(pl.col("active")).select("account_id", "group", "oracle_value_usd")
    top_group = truth.groups.filter(pl.col("response_rank") == 1).get_column("group").item()
    joined = full.assignments.join(active, on="account_id", how="left")
    oracle_by_seg = dict(joined.group_by("segment_id").agg(pl.col("oracle_value_usd").mean()).iter_rows())
    holder = (
        joined.filter(pl.col("group") == top_group).group_by("segment_id").len().sort("len", descending=True).row(0)[0]
    )
    # True value of each action for each segment as a whole (an account not eligible for it: $0), as the estimate.
    fam = action_families(truth.values.get_column("action_id").unique().to_list(), playbook, full.families)
    segment_of = full.assignments.select("account_id", "segment_id")
    true_values = (
        truth.values.filter(pl.col("action_id") != "none")
        .join(segment_of, on="account_id")
        .with_columns(
            pl.when(pl.col("eligible")).then(pl.col("value_usd")).otherwise(0.0).alias("value_usd"),
            pl.col("action_id").replace_strict(fam, default=None).alias("family"),
        )
    )
    sizes = dict(segment_of.group_by("segment_id").len().iter_rows())
    seg_action = true_values.group_by("segment_id", "family", "action_id").agg(pl.col("value_usd").mean())
    book_action = true_values.group_by("family", "action_id").agg(pl.col("value_usd").mean())
    true_by_seg = {s: max(0.0, v) for s, v in seg_action.group_by("segment_id").agg(pl.col("value_usd").max()).rows()}
    true_book = max(0.0, float(book_action.get_column("value_usd").max()))
    seg_true_fam = {
        (s, f): v for s, f, v in seg_action.group_by("segment_id", "family").agg(pl.col("value_usd").max()).rows()
    }
    book_true_fam = dict(book_action.group_by("family").agg(pl.col("value_usd").max()).rows())
    assert sum(sizes.values()) == segment_of.height
    b = full.segments[0].response
    assert b is not None
    print(
        f"segments by estimated response (book: {full.book_best_action} ${full.book_response_usd:,.0f} "
        f"[{b.book_low:,.0f}, {b.book_high:,.0f}] per account; true ${true_book:,.0f}):"
    )
    est, tru = [], []
    for p in full.segments:
        r = p.response
        assert r is not None
        groups = joined.filter(pl.col("segment_id") == p.id).get_column("group").value_counts(sort=True).row(0)
        best = r.families[0]
        book_true = book_true_fam.get(best.family, float("nan"))
        true_ratio = seg_true_fam.get((p.id, best.family), float("nan")) / book_true if book_true > 0 else float("nan")
        ratio = f"{r.ratio:.2f}× book" if r.ratio is not None else "no ratio"
        print(
            f"  rank {r.rank}: segment {p.id} ({p.accounts:,}, mostly {groups[0]}) estimated {r.best_action} "
            f"${r.value_usd:,.0f} [{r.low:,.0f}, {r.high:,.0f}] = {ratio}; true ${true_by_seg[p.id]:,.0f} "
            f"({true_by_seg[p.id] / true_book if true_book > 0 else float('nan'):.2f}×; mean oracle value "
            f"${oracle_by_seg[p.id]:,.0f}); best family {best.family} {best.ratio or float('nan'):.2f}× "
            f"(true {true_ratio:.2f}×), {'named' if r.best_family is not None else 'not named (interval reaches $0)'}"
        )
        rates = ", ".join(
            f"{k} {v.observed:.1%}"
            + (f"/{v.projected:.2%}" if v.projected is not None and v.unit == "probability" else "")
            for k, v in p.rates.items()
            if v.observed is not None
        )
        print(f"          ARR ${p.arr_usd or 0:,.0f}; observed/projected rates: {rates}")
        est.append(r.value_usd)
        tru.append(true_by_seg[p.id])
    first = full.segments[0].id
    verdict = "met" if first == holder else "MISSED"
    print(f"top true group {top_group!r} is mostly in segment {holder}; ranked first: segment {first} ({verdict})")
    ranks_est = np.argsort(np.argsort(-np.array(est)))
    ranks_tru = np.argsort(np.argsort(-np.array(tru)))
    print(f"estimated vs true segment order: {'same' if (ranks_est == ranks_tru).all() else 'differs'}")
    if full.spend is not None:
        s = full.spend
        print(
            f"spend ({s.days} days): {s.touches:,} touches, {s.share_below_average:.0%} on below-average segments "
            f"{s.below_average_segments}; moving {s.moved_touches:,} recovers ${s.recoverable_usd:,.0f} "
            f"[{s.low:,.0f}, {s.high:,.0f}] ({'reliable' if s.material else 'interval reaches $0'})"
        )


def moves(result: Any, report: Any, seed: int) -> None:
    from nextmove.segment import behavior_snapshot, segment_book

    playbook = result.config.resolved_playbook()
    earlier = result.as_of - timedelta(days=playbook.contact_policy.window_days)
    before = segment_book(
        behavior_snapshot(result.book, earlier, playbook=playbook),
        playbook=playbook,
        outcomes=result.book.outcomes,
        as_of=earlier,
        seed=seed,
    )
    m = segment_book(
        behavior_snapshot(result.book, result.as_of, playbook=playbook),
        playbook=playbook,
        outcomes=result.book.outcomes,
        as_of=result.as_of,
        previous=before.assignments,
        seed=seed,
    ).moves
    assert m is not None
    print(
        f"\nmoves since the run {playbook.contact_policy.window_days} days earlier (k {before.k} -> {report.k}): "
        f"{m.moved:,} of {m.accounts:,} accounts moved ({m.moved_share:.1%}); {m.new:,} new, {m.gone:,} gone"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=4200)
    parser.add_argument("--months", type=float, default=18)
    parser.add_argument("--seed", type=int, default=0, help="Seed of the lab book (and of the segmenter).")
    parser.add_argument("--variants", action="store_true", help="Also measure each step on its own.")
    parser.add_argument("--no-response", action="store_true", help="Skip the effect model and the response ranking.")
    parser.add_argument("--no-moves", action="store_true")
    parser.add_argument("--trees", type=int, default=150, help="Trees of the effect model's outcome models.")
    parser.add_argument("--folds", type=int, default=5, help="Cross-fitting folds of the effect model.")
    parser.add_argument("--cache", type=Path, default=None, help="Folder to keep the training set in between runs.")
    args = parser.parse_args()

    from nextmove.sim import SimConfig, simulate

    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    with timed() as t_sim:
        result = simulate(SimConfig(accounts=args.accounts, months=args.months, seed=args.seed))
    print(
        f"lab: {args.accounts:,} accounts, {args.months:g} months, seed {args.seed}: simulated in {t_sim.seconds:.0f} s"
    )
    report, snapshot = clusters(result, args.seed)
    if args.variants:
        variants(result, snapshot, args.seed)
    if not args.no_moves:
        moves(result, report, args.seed)
    if not args.no_response:
        response(result, snapshot, report, args.seed, args.trees, args.folds, args.cache)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
