"""Benchmark of the decision step: the allocation's gap to the exact optimum, and a million accounts end to end.

Part 1 (``--gap``): the Lagrangian allocation against the exact HiGHS solution on instances of
``--gap-accounts`` accounts (default 2,000) × 14 candidates, of two kinds:

- ``book``: owners of 60 accounts with 24 hours each per window on a quarter-hour grid, four team
  budgets and one volume limit (the shape of a playbook's capacities);
- ``random``: the unit tests' tight random instances (groups of 8 accounts with random limits and
  non-grid hours, two budgets, a volume limit), harder for the repair.

It prints each method's total value, time and the gap ``(exact − lagrangian) / exact`` (target:
≤ 1 %), and the Lagrangian's proven bound.

Part 2 (``--scale``): ``--accounts`` accounts (default 1,000,000) × the 14 actions of the default
playbook, from precomputed features and a fitted effect model. A lab book of ``--base`` accounts
is simulated, its effect model fitted and its snapshot computed (not counted); a child process
then tiles the snapshot to ``--accounts`` accounts (copies under new ids, 60 accounts per owner,
recent touches copied too) and runs, timed stage by stage: the projection of every action,
the rules, the decision (allocation under capacity, control, exploration), and the evidence of
every account (the runner-ups' lost rows asked for a chunk of accounts at a time, each chunk of
receipts written to Parquet as it is made; the earlier snapshot the signals compare with read from
Parquet for the columns they cite). It reports wall time, CPU time and peak RSS (``VmHWM``) of the child.

    .venv/bin/python bench/decide.py --gap                       # part 1
    .venv/bin/python bench/decide.py --scale --accounts 100000   # part 2, smaller
    .venv/bin/python bench/decide.py --scale                     # part 2, 1,000,000 accounts
    .venv/bin/python bench/decide.py --scale --draws 50          # fewer interval draws per account
    .venv/bin/python bench/decide.py --scale --jobs 1            # the projection on one thread (default 2)
    .venv/bin/python bench/decide.py --scale --tile-projection   # the decision and the evidence alone, at full size

Targets: gap ≤ 1 %; part 2 ≤ 60 s and ≤ 8 GB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from _util import cpu_seconds, current_rss_bytes, fmt_bytes, machine, peak_rss_bytes, run_child, timed

TARGET_GAP = 0.01
TARGET_SECONDS = 60.0
TARGET_BYTES = 8 * 1024**3
TARGET_ACCOUNTS = 1_000_000


# ---- part 1: the gap ------------------------------------------------------------------------------


def book_instance(seed: int, n: int, k: int = 14, per_owner: int = 60) -> tuple[Any, Any, list[Any]]:
    """Owners with 24 hours on a quarter-hour grid, four team budgets, one volume limit."""
    from nextmove.decide.allocate import Resource

    rng = np.random.default_rng(seed)
    values = rng.normal(50, 150, (n, k)) * rng.lognormal(0, 0.8, (n, 1))
    eligible = rng.random((n, k)) < 0.7
    owners = np.arange(n) // per_owner
    hours = np.round(rng.uniform(0.0, 3.0, k) * 4) / 4
    hours[rng.random(k) < 0.2] = 0.0
    cost = rng.uniform(5, 400, k)
    team = rng.integers(0, 4, k)
    resources = [Resource(f"owner{o}", 24.0, hours, np.flatnonzero(owners == o)) for o in np.unique(owners)]
    resources += [Resource(f"team{t}", float(n * 20), np.where(team == t, cost, 0.0)) for t in range(4)]
    resources.append(Resource("volume0", float(n // 20), (np.arange(k) == 0).astype(float)))
    return values, eligible, resources


def random_instance(seed: int, n: int, k: int = 14) -> tuple[Any, Any, list[Any]]:
    """The unit tests' tight random instances, at any size."""
    from nextmove.decide.allocate import Resource

    rng = np.random.default_rng(seed)
    values = rng.normal(20, 60, (n, k))
    eligible = rng.random((n, k)) < 0.7
    owners = rng.integers(0, max(n // 8, 1), n)
    hours = rng.uniform(0.0, 3.0, k)
    cost = rng.uniform(0, 400, k)
    team = rng.integers(0, 2, k)
    resources = [Resource(f"owner{o}", float(rng.uniform(0, 8)), hours, owners == o) for o in np.unique(owners)]
    resources += [Resource(f"team{t}", float(rng.uniform(0, 50 * n)), np.where(team == t, cost, 0.0)) for t in (0, 1)]
    resources.append(Resource("volume0", float(rng.integers(0, n)), (np.arange(k) == 0).astype(float)))
    return values, eligible, resources


def gap(accounts: int, seeds: int, time_limit: float) -> list[dict[str, Any]]:
    from nextmove.decide.allocate import allocate

    rows = []
    for kind, make in (("book", book_instance), ("random", random_instance)):
        for seed in range(seeds):
            values, eligible, resources = make(seed, accounts)
            cpu = cpu_seconds()
            exact = allocate(values, eligible, resources, method="exact", time_limit_s=time_limit)
            exact_cpu = cpu_seconds() - cpu
            cpu = cpu_seconds()
            lagr = allocate(values, eligible, resources, method="lagrangian")
            lagr_cpu = cpu_seconds() - cpu
            row = {
                "kind": kind,
                "seed": seed,
                "accounts": accounts,
                "exact_value": round(exact.total_value, 2),
                "exact_bound": None if exact.upper_bound is None else round(exact.upper_bound, 2),
                "exact_s": round(exact.seconds, 2),
                "exact_cpu_s": round(exact_cpu, 2),
                "lagrangian_value": round(lagr.total_value, 2),
                "lagrangian_bound": None if lagr.upper_bound is None else round(lagr.upper_bound, 2),
                "lagrangian_s": round(lagr.seconds, 2),
                "lagrangian_cpu_s": round(lagr_cpu, 2),
                "gap": (exact.total_value - lagr.total_value) / exact.total_value,
            }
            rows.append(row)
            print(
                f"{kind:6} seed {seed}: exact {row['exact_value']:>12,.0f} ({row['exact_cpu_s']:5.1f} s CPU)  "
                f"lagrangian {row['lagrangian_value']:>12,.0f} ({row['lagrangian_cpu_s']:5.1f} s CPU)  "
                f"gap {row['gap']:+.3%}",
                flush=True,
            )
    return rows


# ---- part 2: a million accounts -------------------------------------------------------------------


def build_base(folder: Path, base: int, seed: int) -> None:
    """Simulate a lab book, fit its effect model as a run does, keep the snapshot and recent touches."""
    import polars as pl

    from nextmove.engine.run import FAST_EFFECT_PARAMS, active_accounts
    from nextmove.features import build_training_set, compute_features
    from nextmove.models.effect import EffectModel
    from nextmove.sim import SimConfig, simulate

    lab = simulate(SimConfig(accounts=base, months=12, seed=seed))
    playbook = lab.config.resolved_playbook()
    training = build_training_set(lab.book, playbook, as_of=lab.as_of)
    model = EffectModel(playbook, **FAST_EFFECT_PARAMS).fit(training)
    active = active_accounts(lab.book, playbook, lab.as_of)
    snapshot = compute_features(lab.book, lab.as_of, playbook=playbook).join(active, on="account_id", how="semi")
    previous = compute_features(lab.book, lab.as_of - timedelta(days=28), playbook=playbook)
    previous = previous.join(active, on="account_id", how="semi")
    touches = lab.book.touches.filter(pl.col("ts") >= lab.as_of - timedelta(days=200))
    accounts = lab.book.accounts.join(active, on="account_id", how="semi").select("account_id", "lifecycle_stage")
    history = training.filter(~pl.col("censored") & pl.col("logged"))
    folder.mkdir(parents=True, exist_ok=True)
    snapshot.write_parquet(folder / "snapshot.parquet")
    previous.write_parquet(folder / "previous.parquet")
    touches.write_parquet(folder / "touches.parquet")
    accounts.write_parquet(folder / "accounts.parquet")
    history.write_parquet(folder / "history.parquet")
    (folder / "model.pkl").write_bytes(pickle.dumps(model))
    (folder / "playbook.toml").write_text(lab.playbook_text, encoding="utf-8")
    (folder / "as_of.txt").write_text(lab.as_of.isoformat(), encoding="utf-8")


def _tile(frame: Any, reps: int) -> Any:
    """``reps`` copies of ``frame``, each with its own account ids."""
    import polars as pl

    parts = [frame.with_columns(pl.col("account_id") + f"~{r}") for r in range(reps)]
    return pl.concat(parts)


def scale_child(
    folder: Path,
    accounts: int,
    evidence: bool,
    draws: int | None,
    tile_projection: bool,
    scale_budgets: bool,
    jobs: int,
) -> dict[str, Any]:
    """Tile the base to ``accounts`` accounts and run projection, rules, decision and evidence, timed."""
    from datetime import datetime

    import polars as pl

    from nextmove.decide.explain import explain_decisions
    from nextmove.decide.policy import decide
    from nextmove.decide.rules import check_rules
    from nextmove.features import feature_schema
    from nextmove.playbook.loader import parse_playbook

    playbook = parse_playbook((folder / "playbook.toml").read_text(encoding="utf-8"))
    base_accounts = pl.read_parquet(folder / "snapshot.parquet").height
    if scale_budgets:
        # The playbook's team budgets are for the lab's book; a book N times larger gets N times the budget.
        factor = accounts / base_accounts
        budgets = {team: budget * factor for team, budget in playbook.capacity.budget_usd_per_team.items()}
        playbook = playbook.model_copy(
            update={"capacity": playbook.capacity.model_copy(update={"budget_usd_per_team": budgets})}
        )
    as_of = datetime.fromisoformat((folder / "as_of.txt").read_text(encoding="utf-8"))
    model = pickle.loads((folder / "model.pkl").read_bytes())
    if draws is not None:
        model.n_draws = draws  # draws per account for the intervals (a projection-time setting)
    model.n_jobs = jobs  # threads of the projection (as `nextmove run --jobs`)
    base = pl.read_parquet(folder / "snapshot.parquet")
    reps = -(-accounts // base.height)
    snapshot = _tile(base, reps).head(accounts)
    ids = snapshot.select("account_id")
    # The earlier snapshot stays on disk, as precomputed features would: the evidence reads the columns its
    # signals cite only (a million accounts' 274 features are 2 GB).
    previous_file = folder / f"previous_{accounts}.parquet"
    if not previous_file.exists():
        tiled = _tile(pl.read_parquet(folder / "previous.parquet"), reps).join(ids, on="account_id", how="semi")
        tiled.write_parquet(previous_file)
        del tiled
    previous = pl.scan_parquet(previous_file)
    receipts_folder = folder / f"receipts_{accounts}"
    receipts_folder.mkdir(exist_ok=True)
    for old in receipts_folder.glob("*.parquet"):
        old.unlink()
    touches = _tile(pl.read_parquet(folder / "touches.parquet"), reps).join(ids, on="account_id", how="semi")
    info = _tile(pl.read_parquet(folder / "accounts.parquet"), reps)
    info = ids.join(info, on="account_id", how="left", maintain_order="left")
    owners = [f"owner-{i // 60:05d}" for i in range(snapshot.height)]
    history = pl.read_parquet(folder / "history.parquet")
    stages: dict[str, float] = {}
    cpu: dict[str, float] = {}
    rss: dict[str, int] = {}
    # What the inputs hold before anything is timed (the copies of the base share its feature buffers
    # until something copies them, so this is less than the frames' estimated sizes).
    inputs_rss, inputs_peak = current_rss_bytes(), peak_rss_bytes()
    estimated = snapshot.estimated_size() + touches.estimated_size() + history.estimated_size()
    print(
        f"  inputs: RSS {fmt_bytes(inputs_rss)} (peak so far {fmt_bytes(inputs_peak)}); frames' estimated sizes "
        f"{fmt_bytes(estimated)}",
        file=sys.stderr,
        flush=True,
    )
    started = time.perf_counter()

    def stage(name: str, t0: float, c0: float) -> None:
        stages[name] = round(time.perf_counter() - t0, 2)
        cpu[name] = round(cpu_seconds() - c0, 2)
        rss[name] = peak_rss_bytes()
        line = f"  {name:10} {stages[name]:7.1f} s wall {cpu[name]:7.1f} s CPU  peak {fmt_bytes(rss[name])}"
        print(line, file=sys.stderr, flush=True)  # as it goes (stdout is the JSON the parent reads)

    t0, c0 = time.perf_counter(), cpu_seconds()
    if tile_projection:
        # The projection of the base accounts, copied like the snapshot (its cost is measured without this flag).
        from nextmove.models.effect import EffectProjection

        once = model.project(base)
        # Without evidence nothing reads the effects (70 rows per account): they are left out then.
        effects = _tile(once.effects, reps) if evidence else once.effects.head(0)
        projection = EffectProjection(
            level=once.level,
            effects=effects.join(ids, on="account_id", how="semi"),
            values=_tile(once.values, reps).join(ids, on="account_id", how="semi"),
            flagged_actions=once.flagged_actions,
        )
        stage("tile", t0, c0)
    else:
        projection = model.project(snapshot)
        stage("project", t0, c0)
    t0, c0 = time.perf_counter(), cpu_seconds()
    rules = check_rules(snapshot, touches, playbook, as_of, feature_schema(snapshot))
    del touches  # read by the rules only
    stage("rules", t0, c0)
    t0, c0 = time.perf_counter(), cpu_seconds()
    decisions = decide(
        rules,
        projection.values,
        playbook,
        owners=owners,
        stages=info.get_column("lifecycle_stage").to_list(),
        run_key=as_of.isoformat(),
    )
    frame = decisions.frame()
    stage("decide", t0, c0)
    written = {"receipts": 0, "bytes": 0}
    if evidence:
        t0, c0 = time.perf_counter(), cpu_seconds()

        def write(chunk: Any) -> None:
            # Each chunk of receipts goes to disk as it is made (as a run stores them), not held.
            path = receipts_folder / f"part-{written['receipts']:09d}.parquet"
            chunk.write_parquet(path)
            written["receipts"] += chunk.height
            sizes = chunk.select(pl.col("evidence", "alternatives").str.len_bytes().sum())
            written["bytes"] += int(sizes.sum_horizontal().item())

        def lost(start: int, stop: int) -> Any:
            # Why every other candidate lost, a chunk of accounts at a time (14 rows per account in all).
            return decisions.lost(playbook, start=start, stop=stop)

        explain_decisions(
            snapshot, projection, frame, lost, playbook, model=model, history=history, previous=previous, sink=write
        )
        stage("evidence", t0, c0)
    total = time.perf_counter() - started
    usage = decisions.usage()
    over = [name for name, u in usage.items() if u["used"] > u["limit"] + 1e-6]
    return {
        "accounts": snapshot.height,
        "draws": model.n_draws,
        "jobs": jobs,
        "candidates": len(decisions.candidates),
        "stages_s": stages,
        "cpu_s": cpu,
        "wall_s": round(total, 2),
        "cpu_total_s": round(sum(cpu.values()), 2),
        "peak_rss_bytes": peak_rss_bytes(),
        "inputs_rss_bytes": inputs_rss,
        "inputs_peak_rss_bytes": inputs_peak,
        "allocation": {
            "method": decisions.allocation.method,
            "seconds": round(decisions.allocation.seconds, 2),
            "gap_to_bound": decisions.allocation.gap_to_bound,
            "resources": len(decisions.resources),
        },
        "acting": int((frame.get_column("action_id") != "none").sum()),
        "receipts": written["receipts"],
        "receipt_bytes_per_account": round(written["bytes"] / max(written["receipts"], 1)),
        "capacity_exceeded": over,
    }


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gap", action="store_true", help="part 1: Lagrangian vs exact")
    parser.add_argument("--gap-accounts", type=int, default=2000)
    parser.add_argument("--gap-seeds", type=int, default=3)
    parser.add_argument("--time-limit", type=float, default=300.0, help="time limit of the exact solver, seconds")
    parser.add_argument("--scale", action="store_true", help="part 2: a large book end to end")
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--base", type=int, default=3000, help="lab accounts the large book is copied from")
    parser.add_argument("--no-evidence", action="store_true", help="part 2 without the receipts")
    parser.add_argument("--draws", type=int, help="draws per account for the intervals (default: the model's, 200)")
    parser.add_argument("--jobs", type=int, default=2, help="threads of the projection (default 2, as `nextmove run`)")
    parser.add_argument(
        "--tile-projection",
        action="store_true",
        help="project the base accounts once and copy the projection (measures the rest without the projection)",
    )
    parser.add_argument(
        "--scale-budgets", action="store_true", help="scale the playbook's team budgets with the number of accounts"
    )
    parser.add_argument("--cache", type=Path, default=Path("bench/out/decide"), help="where the base is kept")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        print(
            json.dumps(
                scale_child(
                    args.child,
                    args.accounts,
                    not args.no_evidence,
                    args.draws,
                    args.tile_projection,
                    args.scale_budgets,
                    args.jobs,
                )
            )
        )
        return 0
    print(f"machine: {machine()}; 1-min load {_load():.1f}")
    ok = True
    if args.gap:
        rows = gap(args.gap_accounts, args.gap_seeds, args.time_limit)
        worst = max(r["gap"] for r in rows)
        print(f"worst gap {worst:.3%} (target ≤ {TARGET_GAP:.0%}): {'met' if worst <= TARGET_GAP else 'missed'}")
        ok &= worst <= TARGET_GAP
    if args.scale:
        folder = args.cache / f"base_{args.base}"
        if not (folder / "model.pkl").exists():
            print(f"building the base ({args.base} lab accounts, fitted effect model; not counted)…", flush=True)
            with timed() as t:
                build_base(folder, args.base, seed=0)
            print(f"  base built in {t.seconds:.0f} s", flush=True)
        child_args = ["--child", str(folder), "--accounts", str(args.accounts), "--jobs", str(args.jobs)]
        if args.no_evidence:
            child_args.append("--no-evidence")
        if args.draws is not None:
            child_args += ["--draws", str(args.draws)]
        child_args += ["--tile-projection"] if args.tile_projection else []
        child_args += ["--scale-budgets"] if args.scale_budgets else []
        load_before = _load()
        result = run_child(Path(__file__), child_args)
        peak = result["peak_rss_bytes"]
        print(json.dumps(result, indent=2))
        print(
            f"{result['accounts']:,} accounts × {result['candidates']} candidates: {result['wall_s']:.1f} s wall, "
            f"{result['cpu_total_s']:.1f} s CPU, peak {fmt_bytes(peak)} (1-min load {load_before:.1f} → {_load():.1f})"
        )
        met = result["wall_s"] <= TARGET_SECONDS and peak <= TARGET_BYTES and not result["capacity_exceeded"]
        if result["accounts"] >= TARGET_ACCOUNTS:
            print(f"target ≤ {TARGET_SECONDS:.0f} s and ≤ {fmt_bytes(TARGET_BYTES)}: {'met' if met else 'missed'}")
        else:
            target = f"≤ {TARGET_SECONDS:.0f} s and ≤ {fmt_bytes(TARGET_BYTES)}"
            print(f"(the target, {target}, is for {TARGET_ACCOUNTS:,} accounts)")
        ok &= met
    if not (args.gap or args.scale):
        parser.print_help()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
