"""Benchmark of measurement on the lab: off-policy evaluation and lift against control, timed and against the truth.

1. ``evaluate``: the lab book (``SimConfig(accounts, months, seed)``) is split in time the way
   ``nextmove evaluate`` does by default; an EffectModel with its default settings is fitted on the
   training part and every policy is evaluated on the rest. The lab knows each evaluation
   decision's true value of every action (over doing nothing), so the true gain of the learned
   policy over doing nothing and over the lifecycle default is known, and each estimate's interval
   either covers it or not.
2. ``lift``: a closed-loop lab (``LabEnvironment``) decides once for every active account: a
   ``control_fraction`` of them (stable hash) gets the lifecycle default, the others the oracle's
   action; the world then runs for a whole horizon. ``estimate_lift`` is timed, and its total-value
   and per-objective intervals are checked against the true differences of the decisions' values.

    .venv/bin/python bench/measure.py                          # 4,200 accounts, 18 months
    .venv/bin/python bench/measure.py --accounts 1000 --months 12 --control 0.3
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

import numpy as np
import polars as pl

from _util import cpu_seconds, fmt_bytes, machine, peak_rss_bytes, timed


def bench_evaluate(accounts: int, months: int, seed: int) -> None:
    from nextmove.measure.ope import evaluate_offline
    from nextmove.sim import SimConfig, simulate

    lab = simulate(SimConfig(accounts=accounts, months=months, seed=seed))
    playbook = lab.config.resolved_playbook()
    steps: list[tuple[float, str]] = []
    with timed() as t:
        result = evaluate_offline(
            lab.book, playbook, seed=seed, progress=lambda s: steps.append((time.perf_counter(), s))
        )
    print(
        f"evaluate: {result.training_rows:,} training decisions, {result.evaluation_rows:,} evaluation decisions "
        f"({result.evaluation_from:%Y-%m-%d} – {result.evaluation_to:%Y-%m-%d}), split at {result.as_of:%Y-%m-%d}"
    )
    print(f"evaluate: wall {t.seconds:.1f} s")
    for (start, step), nxt in zip(steps, [*steps[1:], (time.perf_counter(), "end")], strict=True):
        print(f"  {nxt[0] - start:7.1f} s  {step}")
    truth: dict[str, float] = {}
    for name in ("learned", "lifecycle_default"):
        table = result.policy_tables[name]
        parts = []
        for (ts,), group in table.group_by("decision_ts"):
            true = lab.world.true_values(group.get_column("account_id").to_list(), ts)
            keys = ["account_id", "action_id"]
            parts.append(group.join(true.select(*keys, "value_usd"), on=keys))
        truth[name] = float(pl.concat(parts).get_column("value_usd").mean())
    targets = {
        "learned - do_nothing": truth["learned"],
        "learned - lifecycle_default": truth["learned"] - truth["lifecycle_default"],
    }
    print(
        f"truth: learned {truth['learned']:.1f} $/decision over doing nothing, "
        f"lifecycle default {truth['lifecycle_default']:.1f}"
    )
    print(f"{'difference':30} {'method':6} {'estimate':>9} {'low':>9} {'high':>9} {'truth':>9} covered")
    for v in result.differences:
        target = targets[v.policy]
        print(
            f"{v.policy:30} {v.method:6} {v.estimate:9.1f} {v.low:9.1f} {v.high:9.1f} {target:9.1f} "
            f"{v.low <= target <= v.high}"
        )
    print(f"{'policy':30} {'method':6} {'estimate':>9} {'low':>9} {'high':>9} {'ESS':>9} matched")
    for v in result.policies:
        print(
            f"{v.policy:30} {v.method:6} {v.estimate:9.1f} {v.low:9.1f} {v.high:9.1f} "
            f"{v.effective_sample_size:9.0f} {v.matched_share:.1%}"
        )


def bench_lift(accounts: int, months: int, seed: int, control_fraction: float) -> None:
    from nextmove.decide.explore import assign_control
    from nextmove.measure.lift import estimate_lift
    from nextmove.measure.policy import lifecycle_default_policy
    from nextmove.sim import LabEnvironment, SimConfig

    with timed() as t:
        env = LabEnvironment(SimConfig(accounts=accounts, months=months, seed=seed))
    print(f"lift: lab history simulated in {t.seconds:.1f} s")
    playbook = env.history.config.resolved_playbook()
    active = env.book().accounts.filter(pl.col("lifecycle_stage") != "churned")
    ids = active.get_column("account_id").to_list()
    control = assign_control(ids, control_fraction, seed=seed)
    oracle = (
        env.true_values(ids)
        .filter(pl.col("eligible"))
        .sort("value_usd", descending=True)
        .group_by("account_id", maintain_order=True)
        .first()
        .select("account_id", pl.col("action_id").alias("model_action_id"))
    )
    default = lifecycle_default_policy(active, playbook).select("account_id", pl.col("action_id").alias("default"))
    decisions = (
        pl.DataFrame({"account_id": ids, "arm": np.where(control, "control", "model")})
        .join(oracle, on="account_id")
        .join(default, on="account_id")
        .with_columns(
            pl.when(pl.col("arm") == "control")
            .then(pl.col("default"))
            .otherwise(pl.col("model_action_id"))
            .alias("action_id")
        )
    )
    decided_at = env.now
    step = env.step(decisions.select("account_id", "action_id", "arm", pl.lit(1.0).alias("propensity")))
    while env.now < decided_at + timedelta(days=playbook.horizon_days):
        env.step(decisions.clear().select("account_id", "action_id"))
    book = env.book()
    with timed() as t:
        report = estimate_lift(decisions, book, playbook, as_of=decided_at)
    print(
        f"lift: {len(ids):,} accounts ({int(control.sum()):,} control), book of {book.outcomes.height:,} outcomes "
        f"and {book.signals.height:,} signal rows; estimate_lift wall {t.seconds:.2f} s"
    )
    values = step.values.join(decisions.select("account_id", "arm"), on="account_id")
    treated = pl.col("arm") != "control"

    def true_diff(column: str) -> float:
        m = values.group_by(treated.alias("t")).agg(pl.col(column).mean()).sort("t")
        return float(m.get_column(column)[1] - m.get_column(column)[0])

    v = report.value
    truth = true_diff("value_usd")
    print(f"{'measure':24} {'estimate':>10} {'low':>10} {'high':>10} {'truth':>10} covered")
    print(
        f"{'total value $/account':24} {v.lift_usd:10.1f} {v.low:10.1f} {v.high:10.1f} {truth:10.1f} "
        f"{v.low <= truth <= v.high}"
    )
    for o in report.objectives:
        column = f"expected_{o.outcome}_usd" if o.unit == "usd" else f"p_{o.outcome}"
        target = true_diff(column)
        print(
            f"{o.objective:24} {o.lift:10.4f} {o.low:10.4f} {o.high:10.4f} {target:10.4f} {o.low <= target <= o.high}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=4200)
    parser.add_argument("--months", type=int, default=18)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--control", type=float, default=0.1, help="control fraction of the lift run")
    parser.add_argument("--only", choices=("evaluate", "lift"), default=None)
    args = parser.parse_args()
    print(machine())
    start = cpu_seconds()
    if args.only in (None, "evaluate"):
        bench_evaluate(args.accounts, args.months, args.seed)
    if args.only in (None, "lift"):
        bench_lift(args.accounts, args.months, args.seed, args.control)
    print(f"CPU {cpu_seconds() - start:.0f} s, peak RSS {fmt_bytes(peak_rss_bytes())}")


if __name__ == "__main__":
    main()
