"""Benchmark of `nextmove run` on a large B2C subscription book that the lab did not make.

A streaming service's subscribers (``--accounts``, default 100,000): a weekly ``minutes_watched``
signal and occasional ``payment_failed`` ones, a logged decision every two weeks among doing
nothing, a discount, a push and a premium trial (confounded by engagement, no propensities
logged), cancellations that end a subscription and upgrades. Its playbook has its own teams and
channels. The book is written once as Parquet (not counted); a child process then loads it and
runs the whole job as ``nextmove run`` does (features, effect model, projection, decision,
evidence, evaluation), and reports each stage's time and the peak memory (``VmHWM``).

    .venv/bin/python bench/subscription_run.py                      # 100,000 subscribers, 30 weeks
    .venv/bin/python bench/subscription_run.py --accounts 400000    # about 4.6M decisions

There is no target in an issue for this size; the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from _util import fmt_bytes, machine, peak_rss_bytes, run_child

PLAYBOOK = """
name = "Subscriber playbook"
horizon_days = 28
control_fraction = 0.1

[objectives.keep]
name = "Keep subscribers"
outcome = "cancel"
sense = "avoid"
value = "arr"

[objectives.upgrade]
name = "Plan upgrades"
outcome = "upgrade"
value = "amount"

[[actions]]
id = "discount_offer"
name = "20% off for 3 months"
team = "retention"
objective = "keep"
channel = "email"
cost_usd = 5.4
cooldown_days = 60

[[actions]]
id = "push_reminder"
name = "New-season push"
team = "crm"
objective = "keep"
channel = "push"
cost_usd = 0.05
cooldown_days = 14
default_for_stages = ["fading"]

[[actions]]
id = "premium_trial"
name = "Free premium month"
team = "crm"
objective = "upgrade"
channel = "in_app"
cost_usd = 2.0
cooldown_days = 90
eligibility = "plan == 'basic'"

[contact_policy]
max_actions_per_window = 1
window_days = 14

[capacity]
budget_usd_per_team = { retention = 20000, crm = 30000 }

[signal_roles]
usage = ["minutes_watched"]
support = ["payment_failed"]
"""

ACTIONS = np.array(["none", "discount_offer", "push_reminder", "premium_trial"])


def write_book(folder: Path, accounts: int, weeks: int, seed: int = 11) -> dict[str, int]:
    """The subscription book as Parquet tables and its playbook; returns the row counts."""
    import polars as pl

    rng = np.random.default_rng(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    plan = rng.choice(np.array(["basic", "premium", "family"]), accounts, p=[0.5, 0.3, 0.2])
    fee = np.where(plan == "basic", 8.99, np.where(plan == "premium", 15.99, 19.99))
    taste = rng.normal(0.0, 1.0, accounts)  # hidden engagement
    ids = np.array([f"sub_{i:07d}" for i in range(accounts)])
    since = [start - timedelta(days=int(d)) for d in rng.integers(0, 900, accounts)]
    table = {
        "account_id": ids,
        "plan": plan,
        "country": rng.choice(np.array(["DE", "FR", "ES", "IT"]), accounts),
        "arr": fee * 12,
        "customer_since": since,
        "lifecycle_stage": rng.choice(np.array(["new", "steady", "fading"]), accounts, p=[0.2, 0.6, 0.2]),
    }
    alive = np.ones(accounts, dtype=bool)
    signals, touches, outcomes = [], [], []
    for week in range(weeks):
        t = start + timedelta(days=7 * week)
        live = np.flatnonzero(alive)
        minutes = np.maximum(0.0, rng.normal(300 + 120 * taste[live], 80))
        signals.append(pl.DataFrame({"account_id": ids[live], "ts": t + timedelta(hours=20), "value": minutes}))
        signals[-1] = signals[-1].with_columns(name=pl.lit("minutes_watched"))
        failed = live[rng.random(live.size) < 0.02]
        signals.append(
            pl.DataFrame(
                {"account_id": ids[failed], "ts": t + timedelta(hours=3), "value": np.ones(failed.size)}
            ).with_columns(name=pl.lit("payment_failed"))
        )
        if week % 2:
            continue
        low = taste[live] < -0.5
        basic = plan[live] == "basic"
        p = np.column_stack(
            [np.full(live.size, 0.55), np.where(low, 0.25, 0.05), np.full(live.size, 0.15), np.where(basic, 0.15, 0.05)]
        )
        p /= p.sum(axis=1, keepdims=True)
        chosen = (rng.random(live.size)[:, None] < p.cumsum(axis=1)).argmax(axis=1)
        touches.append(pl.DataFrame({"account_id": ids[live], "action_id": ACTIONS[chosen]}))
        touches[-1] = touches[-1].with_columns(ts=pl.lit(t + timedelta(hours=10)))
        logit = -3.2 - 0.6 * taste[live] + np.isin(live, failed) * 0.8
        logit -= (chosen == 1) * 0.6 + ((chosen == 2) & (taste[live] > 0)) * 0.3
        cancel = rng.random(live.size) < 1 / (1 + np.exp(-logit))
        up_logit = -4.0 + 0.5 * taste[live] + ((chosen == 3) & basic) * (1.2 + 0.6 * taste[live])
        upgrade = (rng.random(live.size) < 1 / (1 + np.exp(-up_logit))) & (plan[live] != "family") & ~cancel
        when = [t + timedelta(days=int(d), hours=12) for d in rng.integers(3, 14, live.size)]
        happened = pl.DataFrame(
            {
                "account_id": ids[live],
                "ts": when,
                "kind": np.where(cancel, "cancel", "upgrade"),
                "value": np.where(cancel, 1.0, 84.0),
            }
        )
        outcomes.append(happened.filter(pl.Series(cancel | upgrade)))
        alive[live[cancel]] = False
    folder.mkdir(parents=True, exist_ok=True)
    frames = {
        "accounts": pl.DataFrame(table),
        "signals": pl.concat(signals).select("account_id", "ts", "name", "value"),
        "touches": pl.concat(touches).select("account_id", "action_id", "ts"),
        "outcomes": pl.concat(outcomes),
    }
    for name, frame in frames.items():
        frame.write_parquet(folder / f"{name}.parquet")
    (folder / "playbook.toml").write_text(PLAYBOOK, encoding="utf-8")
    return {name: frame.height for name, frame in frames.items()}


def child(folder: Path) -> dict[str, Any]:
    """Load the book and run the whole job, timed stage by stage."""
    from nextmove.book.validate import load_book
    from nextmove.engine.run import run
    from nextmove.playbook.loader import load_playbook

    started = time.perf_counter()
    playbook = load_playbook(folder / "playbook.toml")
    book = load_book(folder, playbook=playbook)
    loaded = time.perf_counter() - started
    result = run(book, playbook, out_dir=None, store=None)
    timings = {k: round(v, 2) for k, v in result.summary["timings_s"].items()}
    return {
        "load_s": round(loaded, 2),
        "timings_s": timings,
        "wall_s": round(time.perf_counter() - started, 2),
        "peak_rss_bytes": peak_rss_bytes(),
        "accounts": result.summary["accounts"],
        "acting": result.summary["accounts"] - result.summary["do_nothing"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000, help="subscribers (default 100,000)")
    parser.add_argument("--weeks", type=int, default=30, help="weeks of history (default 30)")
    parser.add_argument("--cache", type=Path, default=Path("bench/out/subscriptions"), help="where the book is kept")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child)))
        return 0
    print(f"machine: {machine()}")
    folder = args.cache / f"book_{args.accounts}_{args.weeks}"
    if not (folder / "playbook.toml").exists():
        print(f"writing the book ({args.accounts:,} subscribers, {args.weeks} weeks; not counted)…", flush=True)
        counts = write_book(folder, args.accounts, args.weeks)
        print("  " + ", ".join(f"{name} {n:,}" for name, n in counts.items()), flush=True)
    result = run_child(Path(__file__), ["--child", str(folder)])
    print(json.dumps(result, indent=2))
    print(
        f"{args.accounts:,} subscribers ({result['accounts']:,} active): {result['wall_s']:.1f} s "
        f"(load {result['load_s']:.1f} s, run {result['timings_s']['total']:.1f} s), "
        f"peak {fmt_bytes(result['peak_rss_bytes'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
