"""Benchmark of decision receipts: wall time, CPU time and memory of ``explain_decisions`` for a large book.

A lab book of ``--base`` accounts is simulated, its effect model fitted and projected, and its
decisions and runner-ups made with the real rules and allocation (not counted). Every frame is
then tiled to ``--accounts`` accounts (copies of the lab accounts under new ids: the projection's
14 actions × 5 objectives per account, the runner-ups, the snapshot and a snapshot 28 days
earlier), and ``explain_decisions`` runs in a fresh child process per variant:

- ``plain``: projected outcomes, signals (linear surrogate), runner-ups, default, summary;
- ``previous``: also "down from 63%" against the earlier snapshot;
- ``comparables``: also comparable accounts from the lab's training set (its past decisions).

The child reports wall and CPU time of the call, its RSS before the call (the inputs) and the
peak during it (``VmHWM``), so the extra memory the receipts take is ``peak − before``.

    .venv/bin/python bench/explain.py                                 # 1,000,000 accounts
    .venv/bin/python bench/explain.py --accounts 100000 --variants plain

Target: ≤ 20 s and a few GB beyond the inputs for 1,000,000 accounts (``bench/decide.py`` has 60 s
for the whole decision step).
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from _util import cpu_seconds, current_rss_bytes, fmt_bytes, machine, peak_rss_bytes, run_child, timed

TARGET_SECONDS = 20.0
VARIANTS = ("plain", "previous", "comparables")


def build_base(out: Path, *, accounts: int, months: float, seed: int) -> dict[str, Any]:
    """Simulate, fit, project and decide on a lab book; pickle what the children need into ``out``."""
    import numpy as np
    import polars as pl

    from nextmove.book import NO_ACTION
    from nextmove.decide.allocate import Resource, allocate
    from nextmove.decide.explore import assign_control
    from nextmove.decide.rules import Why, check_rules
    from nextmove.features import build_training_set, compute_features, feature_schema
    from nextmove.models.effect import ARM_SEPARATOR, EffectModel
    from nextmove.playbook.loader import parse_playbook
    from nextmove.sim import SimConfig, simulate

    result = simulate(SimConfig(accounts=accounts, months=months, seed=seed))
    playbook = parse_playbook(result.playbook_text)
    history = build_training_set(result.book, playbook)
    model = EffectModel(playbook, n_folds=3, n_estimators=60, num_leaves=15, n_draws=100).fit(history)
    snapshot = compute_features(result.book, result.as_of, playbook=playbook)
    previous = compute_features(result.book, result.as_of - timedelta(days=28), playbook=playbook)
    projection = model.project(snapshot)

    check = check_rules(snapshot, result.book.touches, playbook, result.as_of, feature_schema(snapshot))
    ids, cands = check.account_ids, check.candidates
    arms = set(projection.values.get_column("action_id").to_list())
    keys = [c.action_id + ARM_SEPARATOR + c.variant if c.variant and c.key in arms else c.action_id for c in cands]
    wide = projection.values.pivot(on="action_id", index="account_id", values="value_usd")
    aligned = pl.DataFrame({"account_id": ids}).join(wide, on="account_id", how="left", maintain_order="left")
    values = np.column_stack([aligned.get_column(k).to_numpy() for k in keys])
    effort = np.array([max(c.effort_hours, 0.1) for c in cands])
    hours = 0.3 * len(ids)
    choice = allocate(values, check.allowed, [Resource("owner hours", hours, effort)]).choice
    control = assign_control(ids, playbook.control_fraction, seed)
    stages = snapshot.get_column("lifecycle_stage").to_list()
    names = {Why.RULE: "rule", Why.COOLDOWN: "cooldown", Why.CONTACT_CAP: "contact_cap", Why.IN_FLIGHT: "in_flight"}
    decisions, lost = [], []
    for i, account in enumerate(ids):
        model_k = int(choice[i])
        k, arm = model_k, "model"
        default = playbook.default_action_for_stage(stages[i])
        if control[i]:
            arm = "control"
            k = next((j for j, c in enumerate(cands) if c.action_id == default), -1)
        value = float(values[i, k]) if k >= 0 else 0.0
        decisions.append(
            {
                "account_id": account,
                "action_id": cands[k].action_id if k >= 0 else NO_ACTION,
                "variant": cands[k].variant if k >= 0 else None,
                "arm": arm,
                "propensity": 1.0,
                "model_action_id": cands[model_k].action_id if model_k >= 0 else NO_ACTION,
                "default_action_id": default,
                "value_usd": value,
                "value_low_usd": value - 50.0,
                "value_high_usd": value + 50.0,
            }
        )
        for j, cand in enumerate(cands):
            if j == k:
                continue
            code = Why(int(check.why[i, j]))
            if code is not Why.ALLOWED:
                why, reason = names[code], check.reason(playbook, i, j)
            elif values[i, j] > max(value, 0.0):
                why, reason = "capacity", "capacity: owner hours used up"
            else:
                why, reason = "lower_value", ""
            lost.append(
                {
                    "account_id": account,
                    "action_id": cand.action_id,
                    "variant": cand.variant,
                    "why": why,
                    "reason": reason,
                }
            )
    lost_schema = {
        "account_id": pl.String,
        "action_id": pl.String,
        "variant": pl.String,
        "why": pl.String,
        "reason": pl.String,
    }
    base = {
        "playbook": playbook,
        "model": model,
        "history": history,
        "snapshot": snapshot,
        "previous": previous,
        "projection": projection,
        "decisions": pl.DataFrame(decisions),
        "lost": pl.DataFrame(lost, schema=lost_schema),
    }
    with (out / "base.pkl").open("wb") as fh:
        pickle.dump(base, fh)
    return {"accounts": len(ids), "history_rows": history.height, "features": snapshot.width - 1}


def _tile(frame: Any, reps: int) -> Any:
    """``reps`` copies of every row, each copy's ``account_id`` suffixed with its copy number."""
    import polars as pl

    copies = pl.DataFrame({"_copy": pl.int_range(reps, eager=True).cast(pl.String)})
    return (
        frame.join(copies, how="cross")
        .with_columns(pl.concat_str([pl.col("account_id"), pl.lit("~"), pl.col("_copy")]).alias("account_id"))
        .drop("_copy")
    )


def explain_child(folder: Path, variant: str, accounts: int) -> dict[str, Any]:
    """Tile the base to ``accounts`` accounts and time one ``explain_decisions`` call."""
    import polars as pl

    from nextmove.decide.explain import explain_decisions, parse_evidence
    from nextmove.models.effect import EffectProjection

    with (folder / "base.pkl").open("rb") as fh:
        base = pickle.load(fh)
    # Whole copies of the base: a few more accounts than asked for.
    reps = math.ceil(accounts / base["decisions"].height)
    decisions = _tile(base["decisions"], reps)
    projection = EffectProjection(
        level=base["projection"].level,
        effects=_tile(base["projection"].effects, reps),
        values=_tile(base["projection"].values, reps),
        flagged_actions=base["projection"].flagged_actions,
    )
    lost = _tile(base["lost"], reps)
    snapshot = _tile(base["snapshot"], reps)
    previous = _tile(base["previous"], reps) if variant != "plain" else None
    history = base["history"] if variant == "comparables" else None
    del base["projection"], base["snapshot"], base["previous"], base["lost"], base["decisions"]
    inputs = {
        "effects_rows": projection.effects.height,
        "lost_rows": lost.height,
        "snapshot_columns": snapshot.width,
    }
    before = current_rss_bytes()
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    receipts = explain_decisions(
        snapshot,
        projection,
        decisions,
        lost,
        base["playbook"],
        model=base["model"],
        history=history,
        previous=previous,
    )
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    peak = peak_rss_bytes()
    acting = receipts.filter(
        pl.col("evidence").str.contains('"arm":"model"', literal=True)
        & ~pl.col("evidence").str.contains('"action_id":"none"', literal=True)
    )
    first = parse_evidence((acting if acting.height else receipts).item(0, "evidence"))
    sizes = receipts.select(pl.col("evidence").str.len_bytes().mean(), pl.col("alternatives").str.len_bytes().mean())
    return {
        "variant": variant,
        "accounts": receipts.height,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "rss_before": before,
        "peak_rss": peak,
        "evidence_bytes": float(sizes.item(0, 0)),
        "alternatives_bytes": float(sizes.item(0, 1)),
        "signals_per_receipt": float(
            receipts.select(pl.col("evidence").str.json_path_match("$.signals[0].text").is_not_null().mean()).item()
        ),
        "example": first.summary,
        "load": _load(),
        **inputs,
    }


def _load() -> float:
    try:
        with open("/proc/loadavg") as fh:
            return float(fh.read().split()[0])
    except OSError:
        return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=1_000_000, help="accounts to explain (default 1,000,000)")
    parser.add_argument("--base", type=int, default=1000, help="lab accounts the tiles are copied from")
    parser.add_argument("--months", type=float, default=12, help="months of lab history")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated of {', '.join(VARIANTS)}")
    parser.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        folder, variant, accounts = args.child
        print(json.dumps(explain_child(Path(folder), variant, int(accounts))))
        return 0
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    folder = Path(tempfile.mkdtemp(prefix="nextmove-bench-explain-"))
    try:
        print(f"machine: {machine()}")
        with timed() as g:
            base = build_base(folder, accounts=args.base, months=args.months, seed=args.seed)
        print(
            f"lab base: {base['accounts']:,} accounts, {base['features']} features, "
            f"{base['history_rows']:,} past decisions; built in {g.seconds:.0f} s (not counted)"
        )
        results = []
        for variant in variants:
            res = run_child(Path(__file__), ["--child", str(folder), variant, str(args.accounts)])
            results.append(res)
            extra = res["peak_rss"] - res["rss_before"]
            print(
                f"{variant:>11}: {res['accounts']:,} receipts in {res['seconds']:.1f} s wall, "
                f"{res['cpu_seconds']:.1f} s CPU (1-min load {res['load']:.1f}); "
                f"inputs {fmt_bytes(res['rss_before'])}, "
                f"peak {fmt_bytes(res['peak_rss'])} (+{fmt_bytes(extra)}); evidence {res['evidence_bytes']:.0f} B, "
                f"alternatives {res['alternatives_bytes']:.0f} B per account"
            )
            print(f"{'':>13}e.g. {res['example']}")
        ok = all(r["seconds"] <= TARGET_SECONDS for r in results)
        print(f"target ≤ {TARGET_SECONDS:.0f} s per call: {'met' if ok else 'MISSED'} (wall time on a shared machine)")
        print(json.dumps({"base": base, "results": results}))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
