"""A confounded subgroup: a consumer app whose fix e-mail cuts churn only for users who crash, and went mostly to them.

A book the lab did not make, after a tester's (docs/benchmarks.md, "A confounded subgroup the model
under-estimates"): ``--users`` (2,500) users of a consumer app on plans of $60, $120 or $240 a year, daily ``sessions``
and ``crashes`` signals, a logged decision every 28 days (the horizon) among doing nothing, a fix e-mail and a
tips push, with the history's propensities logged. Outcomes ``cancelled`` (ends the account) and
``ticket_reopened``. The planted truth:

- a user is crash-prone or not (hidden); a crash-prone user crashes often, so has ≥ 3 crashes in
  28 days most of the time, and churns more;
- the fix e-mail cuts the churn hazard (and the reopened tickets') by 60 % for 28 days, only when
  sent to a user with ≥ 3 crashes in the 28 days before; elsewhere it does nothing; the tips push
  never does anything;
- the history sent the fix to 90 % of the users with ≥ 3 crashes and 1 % of the others.

At the book's end (as_of) every active user's true 28-day churn without and with each action is
known, so the oracle (each user's best action, unconstrained) and the value a model's policy
captures of it can be scored, as can the crash group's projected baseline and fix effect against
the truth.

    PYTHONPATH=src .venv/bin/python bench/confounded_subgroup.py --model-seeds 0 1 2 3
    PYTHONPATH=src .venv/bin/python bench/confounded_subgroup.py --param rloss_effect=true

The policy is the model's (``projection.best()``: each user's action of highest projected value,
``none`` unless positive), the fit ``FAST_EFFECT_PARAMS`` (what ``nextmove run`` fits) with
``random_state`` the model seed.
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
import polars as pl

from _util import effect_params, machine

PLAYBOOK = """
name = "App support playbook"
horizon_days = 28
control_fraction = 0.1

[objectives.keep]
name = "Keep users"
outcome = "cancelled"
sense = "avoid"
value = "arr"

[objectives.reopen]
name = "Avoid reopened tickets"
outcome = "ticket_reopened"
sense = "avoid"
value = "fixed"
value_usd = 4.0

[[actions]]
id = "fix_email"
name = "Crash-fix e-mail"
team = "support"
objective = "keep"
channel = "email"
cost_usd = 2.0

[[actions]]
id = "tips_push"
name = "Tips push"
team = "growth"
objective = "keep"
channel = "push"
cost_usd = 0.05

[contact_policy]
max_actions_per_window = 1
window_days = 28

[signal_roles]
usage = ["sessions"]
support = ["crashes"]

[signal_kinds]
count = ["crashes", "sessions"]
"""

ACTIONS = np.array(["none", "fix_email", "tips_push"])
PLANS = np.array([60.0, 120.0, 240.0])
FIX_COST = 2.0
HORIZON = 28
FIX_CUT = 0.6
START = datetime(2026, 1, 5, tzinfo=UTC)


def hazards(prone: np.ndarray, engagement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Daily churn and ticket-reopen hazards of each user without any fix."""
    churn_logit = -6.9 + 1.6 * prone - 0.45 * engagement
    reopen_logit = -6.0 + 1.3 * prone
    return 1 / (1 + np.exp(-churn_logit)), 1 / (1 + np.exp(-reopen_logit))


def simulate(users: int = 2500, days: int = 224, seed: int = 0) -> dict[str, Any]:
    """The book's frames, its as_of and the truth of every user active at as_of."""
    rng = np.random.default_rng(seed)
    prone = rng.random(users) < 0.13
    engagement = rng.normal(0.0, 1.0, users)
    crash_rate = np.where(prone, rng.uniform(0.10, 0.25, users), rng.uniform(0.0, 0.03, users))
    session_rate = np.exp(1.0 + 0.4 * engagement)
    h_churn, h_reopen = hazards(prone.astype(float), engagement)
    ids = np.array([f"u{i:05d}" for i in range(users)])
    arr = rng.choice(PLANS, users, p=[0.4, 0.4, 0.2])
    warmup = 35  # signals before the first decision, so every decision sees 28 days of crashes
    day0 = START - timedelta(days=warmup)
    crashes = rng.poisson(crash_rate[:, None], (users, warmup + days))
    sessions = rng.poisson(session_rate[:, None], (users, warmup + days))
    alive = np.ones(users, dtype=bool)
    protected_until = np.full(users, -1)  # last day a fix still cuts the hazards
    gone_day = np.full(users, -1)
    touches: list[pl.DataFrame] = []
    outcomes: list[dict[str, Any]] = []
    as_of_day = warmup + days
    for d in range(warmup, warmup + days):
        ts = day0 + timedelta(days=d)
        if (d - warmup) % HORIZON == 0:
            live = np.flatnonzero(alive)
            c28 = crashes[live, d - 28 : d].sum(axis=1)
            crashy = c28 >= 3
            p = np.column_stack(
                [np.where(crashy, 0.07, 0.94), np.where(crashy, 0.90, 0.01), np.where(crashy, 0.03, 0.05)]
            )
            chosen = (rng.random(live.size)[:, None] < p.cumsum(axis=1)).argmax(axis=1)
            touches.append(
                pl.DataFrame(
                    {
                        "touch_id": [f"t{d}_{i}" for i in live],
                        "account_id": ids[live],
                        "action_id": ACTIONS[chosen],
                        "ts": ts + timedelta(hours=9),
                        "propensity": p[np.arange(live.size), chosen],
                    }
                )
            )
            fixed = live[(chosen == 1) & crashy]
            protected_until[fixed] = d + HORIZON
        live = np.flatnonzero(alive)
        cut = np.where(protected_until[live] >= d, 1 - FIX_CUT, 1.0)
        reopened = live[rng.random(live.size) < h_reopen[live] * cut]
        for i in reopened:
            outcomes.append({"account_id": ids[i], "ts": ts + timedelta(hours=15), "kind": "ticket_reopened"})
        churned = live[rng.random(live.size) < h_churn[live] * cut]
        for i in churned:
            outcomes.append({"account_id": ids[i], "ts": ts + timedelta(hours=18), "kind": "cancelled"})
        alive[churned] = False
        gone_day[churned] = d
    # Signals: one row per user-day with any crash (value = crashes that day) and a daily sessions count.
    u, dd = np.nonzero(crashes)
    keep = (gone_day[u] < 0) | (dd <= gone_day[u])
    u, dd = u[keep], dd[keep]
    crash_frame = pl.DataFrame(
        {
            "account_id": ids[u],
            "ts": [day0 + timedelta(days=int(x), hours=12) for x in dd],
            "name": "crashes",
            "value": crashes[u, dd].astype(float),
        }
    )
    u, dd = np.nonzero(np.ones_like(sessions, dtype=bool))
    keep = (gone_day[u] < 0) | (dd <= gone_day[u])
    u, dd = u[keep], dd[keep]
    session_frame = pl.DataFrame(
        {
            "account_id": ids[u],
            "ts": [day0 + timedelta(days=int(x), hours=20) for x in dd],
            "name": "sessions",
            "value": sessions[u, dd].astype(float),
        }
    )
    accounts = pl.DataFrame(
        {
            "account_id": ids,
            "arr": arr,
            "customer_since": [day0 - timedelta(days=int(x)) for x in rng.integers(30, 700, users)],
            "region": rng.choice(np.array(["EU", "NA", "APAC"]), users),
            "lifecycle_stage": np.full(users, "active"),
        }
    )
    frames = {
        "accounts": accounts,
        "signals": pl.concat([crash_frame, session_frame]).sort("ts"),
        "touches": pl.concat(touches),
        "outcomes": pl.DataFrame(outcomes)
        .with_row_index("n")
        .select(
            pl.format("o{}", pl.col("n")).alias("outcome_id"), "account_id", "ts", "kind", pl.lit(1.0).alias("value")
        ),
    }
    as_of = day0 + timedelta(days=as_of_day)
    live = np.flatnonzero(alive)
    crashy = crashes[live, as_of_day - 28 : as_of_day].sum(axis=1) >= 3
    p0 = 1 - (1 - h_churn[live]) ** HORIZON
    p_fix = np.where(crashy, 1 - (1 - (1 - FIX_CUT) * h_churn[live]) ** HORIZON, p0)
    r0 = 1 - (1 - h_reopen[live]) ** HORIZON
    r_fix = np.where(crashy, 1 - (1 - (1 - FIX_CUT) * h_reopen[live]) ** HORIZON, r0)
    truth = pl.DataFrame(
        {
            "account_id": ids[live],
            "crashy": crashy,
            "p0": p0,
            "p_fix": p_fix,
            "value_fix_email": arr[live] * (p0 - p_fix) + 4.0 * (r0 - r_fix) - FIX_COST,
            "value_tips_push": np.full(live.size, -0.05),
            "value_none": np.zeros(live.size),
        }
    )
    return {"frames": frames, "as_of": as_of, "truth": truth}


def write_book(folder: Path, seed: int = 0, users: int = 2500) -> dict[str, Any]:
    """Write the book (Parquet tables and playbook.toml) and return its as_of and truth."""
    from nextmove.testing.subscriptions import write_parquet_book

    sim = simulate(users=users, seed=seed)
    counts = write_parquet_book(folder, sim["frames"], PLAYBOOK)
    return {"as_of": sim["as_of"], "truth": sim["truth"], "counts": counts}


def score(projection: Any, truth: pl.DataFrame) -> dict[str, Any]:
    """Value captured of the oracle's, and the crash group's projected baseline and fix effect."""
    best = projection.best().select("account_id", "action_id")
    t = truth.join(best, on="account_id", how="left").with_columns(pl.col("action_id").fill_null("none"))
    chosen = t.select(
        pl.when(pl.col("action_id") == "fix_email")
        .then(pl.col("value_fix_email"))
        .when(pl.col("action_id") == "tips_push")
        .then(pl.col("value_tips_push"))
        .otherwise(0.0)
    ).to_series()
    oracle = t.select(pl.max_horizontal("value_fix_email", "value_tips_push", "value_none")).to_series()
    crashy = truth.filter(pl.col("crashy")).select("account_id")
    fix = projection.effects.filter((pl.col("objective") == "keep") & (pl.col("action_id") == "fix_email"))
    group = fix.join(crashy, on="account_id", how="semi")
    others = fix.join(crashy, on="account_id", how="anti")
    g_truth = truth.filter(pl.col("crashy"))
    sends = t.filter(pl.col("action_id") == "fix_email")
    return {
        "oracle_usd": float(oracle.sum()),
        "captured_usd": float(chosen.sum()),
        "captured_share": float(chosen.sum() / oracle.sum()),
        "group_users": g_truth.height,
        "group_baseline": float(group.get_column("baseline").mean()),
        "group_baseline_true": float(g_truth.get_column("p0").mean()),
        "group_effect_pts": 100 * float(group.get_column("effect").mean()),
        "group_effect_true_pts": 100 * float((g_truth.get_column("p_fix") - g_truth.get_column("p0")).mean()),
        "others_effect_pts": 100 * float(others.get_column("effect").mean()),
        "fix_sent": sends.height,
        "fix_sent_to_group": int(sends.get_column("crashy").sum()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2500)
    parser.add_argument("--book-seed", type=int, default=0)
    parser.add_argument("--model-seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/confounded_subgroup_book"))
    parser.add_argument("--param", action="append", default=[], help="EffectModel setting, KEY=VALUE")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from nextmove.book.validate import load_book
    from nextmove.engine.run import FAST_EFFECT_PARAMS, active_accounts
    from nextmove.features import build_training_set, compute_features
    from nextmove.models.effect import EffectModel
    from nextmove.playbook.loader import load_playbook

    print(f"machine: {machine()}", flush=True)
    book_info = write_book(args.folder, seed=args.book_seed, users=args.users)
    as_of, truth = book_info["as_of"], book_info["truth"]
    playbook = load_playbook(args.folder / "playbook.toml")
    book = load_book(args.folder, playbook=playbook, as_of=as_of)
    training = build_training_set(book, playbook, as_of=as_of)
    active = active_accounts(book, playbook, as_of)
    snapshot = compute_features(book, as_of, playbook=playbook).join(active, on="account_id", how="semi")
    learned = training.filter(~pl.col("censored"))
    crashy_rows = learned.filter(pl.col("crashes_sum_28d") >= 3) if "crashes_sum_28d" in learned.columns else None
    print(
        f"book: {book_info['counts']}; {learned.height:,} uncensored decisions"
        + (f", {crashy_rows.height:,} with ≥ 3 crashes" if crashy_rows is not None else "")
        + f"; {snapshot.height:,} active users at {as_of:%Y-%m-%d}, "
        + f"{int(truth.get_column('crashy').sum())} in the group",
        flush=True,
    )
    extra = effect_params(args.param)
    rows = []
    for seed in args.model_seeds:
        started = time.perf_counter()
        model = EffectModel(playbook, **{**FAST_EFFECT_PARAMS, "random_state": seed, **extra}).fit(training)
        projection = model.project(snapshot)
        r = {"model_seed": seed, **score(projection, truth), "seconds": round(time.perf_counter() - started, 1)}
        rows.append(r)
        print(
            f"seed {seed}: captured ${r['captured_usd']:,.0f} of ${r['oracle_usd']:,.0f} ({r['captured_share']:.1%}) | "
            f"group ({r['group_users']}) baseline {r['group_baseline']:.1%} (true {r['group_baseline_true']:.1%}), "
            f"fix effect {r['group_effect_pts']:+.2f} pts (true {r['group_effect_true_pts']:+.2f}), "
            f"others {r['others_effect_pts']:+.2f} | fix to {r['fix_sent']} ({r['fix_sent_to_group']} in group) | "
            f"{r['seconds']} s",
            flush=True,
        )
    mean = float(np.mean([r["captured_share"] for r in rows]))
    print(f"mean captured {mean:.1%}; params {extra}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
