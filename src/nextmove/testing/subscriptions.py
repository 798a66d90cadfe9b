"""A B2C subscription book that the lab did not make: other names, no owners, no propensities, no signal roles.

Its teams (``retention``, ``crm``), channels (``push``, ``in_app``), signals (``minutes_watched``,
``payment_failed``) and outcome kinds (``cancel``, ``upgrade``) are none of the lab's; tests and
``bench/subscription_run.py`` share it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

SUBSCRIPTION_PLAYBOOK = """
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
caps = [{ team = "crm", channel = "push", max_touches = 1, window_days = 28 }]

[capacity]
budget_usd_per_team = { retention = 300, crm = 400 }
"""

"""Its playbook: its own teams and channels, budgets, a push cap, and no ``[signal_roles]``."""

ACTIONS = np.array(["none", "discount_offer", "push_reminder", "premium_trial"])
"""The logged actions, ``none`` first."""


def write_subscription_book(
    folder: Path, accounts: int = 700, weeks: int = 30, *, seed: int = 11, playbook: str = SUBSCRIPTION_PLAYBOOK
) -> dict[str, int]:
    """A streaming service's subscribers as a book folder (Parquet tables and ``playbook``); returns the row counts.

    A weekly ``minutes_watched`` signal and occasional ``payment_failed`` ones; a logged decision
    every two weeks among doing nothing, a discount, a push and a premium trial, confounded by a
    hidden engagement (no propensities logged); cancellations, which end a subscription (the
    discount prevents some, the push some of the engaged), and upgrades (the trial brings basic
    subscribers up, the more so the more engaged).
    """
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
        evening, night = t + timedelta(hours=20), t + timedelta(hours=3)
        signals.append(
            pl.DataFrame({"account_id": ids[live], "ts": evening, "name": "minutes_watched", "value": minutes})
        )
        failed = live[rng.random(live.size) < 0.02]
        signals.append(pl.DataFrame({"account_id": ids[failed], "ts": night, "name": "payment_failed", "value": 1.0}))
        if week % 2:
            continue
        low = taste[live] < -0.5
        basic = plan[live] == "basic"
        p = np.column_stack(
            [np.full(live.size, 0.55), np.where(low, 0.25, 0.05), np.full(live.size, 0.15), np.where(basic, 0.15, 0.05)]
        )
        p /= p.sum(axis=1, keepdims=True)
        chosen = (rng.random(live.size)[:, None] < p.cumsum(axis=1)).argmax(axis=1)
        touches.append(
            pl.DataFrame({"account_id": ids[live], "action_id": ACTIONS[chosen], "ts": t + timedelta(hours=10)})
        )
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
    return write_parquet_book(
        folder,
        {
            "accounts": pl.DataFrame(table),
            "signals": pl.concat(signals),
            "touches": pl.concat(touches),
            "outcomes": pl.concat(outcomes),
        },
        playbook,
    )


def write_parquet_book(folder: Path, frames: dict[str, pl.DataFrame], playbook: str) -> dict[str, int]:
    """Write a book's tables as ``NAME.parquet`` and its ``playbook.toml`` into ``folder``; rows per table."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.write_parquet(folder / f"{name}.parquet")
    (folder / "playbook.toml").write_text(playbook, encoding="utf-8")
    return {name: frame.height for name, frame in frames.items()}
