"""A consumer meal-kit book that the lab did not make: no ARR, no owners, no segments, its own signals and outcomes.

Its signals (``boxes_ordered``, ``app_opens``, ``complaints``, ``box_rating``), its outcome kind
(``cancelled``, an ``avoid`` objective valued at a fixed amount that ends a subscription) and its
actions are none of the lab's. Cancellation follows two hidden traits the signals show, so the
health score has a known signal to find: appetite (orders and app opens) and dissatisfaction
(complaints and low ratings).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from nextmove.testing.subscriptions import write_parquet_book

CONSUMER_PLAYBOOK = """
name = "Meal-kit subscribers"
horizon_days = 28

[objectives.stay]
name = "Keep subscribers"
outcome = "cancelled"
sense = "avoid"
value = "fixed"
value_usd = 60
ends_account = true

[[actions]]
id = "voucher"
name = "10 EUR voucher"
team = "retention"
objective = "stay"
cost_usd = 10
cooldown_days = 56

[[actions]]
id = "recipe_push"
name = "New recipes push"
team = "crm"
objective = "stay"
channel = "push"
cost_usd = 0.02
cooldown_days = 14

[signal_roles]
usage = ["boxes_ordered", "app_opens"]
support = ["complaints"]
survey = ["box_rating"]
"""
"""Its playbook: one objective that ends subscriptions (valued at a fixed amount, not ARR), signal roles."""


def write_consumer_book(
    folder: Path, consumers: int = 1500, weeks: int = 40, *, seed: int = 3, playbook: str = CONSUMER_PLAYBOOK
) -> dict[str, int]:
    """Meal-kit subscribers as a book folder (Parquet tables and ``playbook.toml``); returns the row counts.

    Weekly ``boxes_ordered`` and ``app_opens`` (Poisson, higher for a larger hidden appetite, which
    wanders a little), occasional ``complaints`` (more for the dissatisfied) and ``box_rating``
    surveys (1–5, lower for the dissatisfied); a weekly logged decision among nothing, a voucher and
    a push, at random; cancellations, weekly, more likely with low appetite, dissatisfaction and a
    complaint that week (the voucher prevents some). The accounts table has no ARR column.
    """
    rng = np.random.default_rng(seed)
    start = datetime(2024, 3, 4, tzinfo=UTC)
    ids = np.array([f"c{i:06d}" for i in range(consumers)])
    appetite = rng.normal(0.0, 1.0, consumers)
    unhappy = rng.normal(0.0, 1.0, consumers)
    accounts = pl.DataFrame(
        {
            "account_id": ids,
            "plan": rng.choice(np.array(["2 people", "4 people"]), consumers, p=[0.7, 0.3]),
            "city": rng.choice(np.array(["Lyon", "Lille", "Nantes", "Paris"]), consumers),
            "customer_since": [start - timedelta(days=int(d)) for d in rng.integers(0, 700, consumers)],
        }
    )
    alive = np.ones(consumers, dtype=bool)
    signals, touches, outcomes = [], [], []
    for week in range(weeks):
        t = start + timedelta(days=7 * week)
        live = np.flatnonzero(alive)
        now = appetite[live] + 0.15 * np.sin(week / 6 + appetite[live])
        boxes = rng.poisson(np.exp(0.2 + 0.5 * now)).astype(float)
        opens = rng.poisson(np.exp(1.0 + 0.4 * now)).astype(float)
        complained = rng.random(live.size) < 1 / (1 + np.exp(3.0 - 0.9 * unhappy[live]))
        rated = (boxes > 0) & (rng.random(live.size) < 0.2)
        rating = np.clip(np.round(3.6 - 0.7 * unhappy[live] + 0.2 * now + rng.normal(0, 0.7, live.size)), 1, 5)
        for name, rows, value, hour in (
            ("boxes_ordered", np.ones(live.size, dtype=bool), boxes, 9),
            ("app_opens", np.ones(live.size, dtype=bool), opens, 19),
            ("complaints", complained, np.ones(live.size), 14),
            ("box_rating", rated, rating, 21),
        ):
            signals.append(
                pl.DataFrame(
                    {"account_id": ids[live[rows]], "ts": t + timedelta(hours=hour), "name": name, "value": value[rows]}
                )
            )
        action = rng.choice(np.array(["none", "voucher", "recipe_push"]), live.size, p=[0.8, 0.05, 0.15])
        touches.append(pl.DataFrame({"account_id": ids[live], "action_id": action, "ts": t + timedelta(hours=10)}))
        logit = -4.5 - 1.2 * now + 1.0 * unhappy[live] + 0.6 * complained - 0.5 * (action == "voucher")
        cancel = rng.random(live.size) < 1 / (1 + np.exp(-logit))
        outcomes.append(
            pl.DataFrame(
                {
                    "account_id": ids[live[cancel]],
                    "ts": t + timedelta(days=3, hours=8),
                    "kind": "cancelled",
                    "value": 1.0,
                }
            )
        )
        alive[live[cancel]] = False
    return write_parquet_book(
        folder,
        {
            "accounts": accounts,
            "signals": pl.concat(signals),
            "touches": pl.concat(touches),
            "outcomes": pl.concat(outcomes),
        },
        playbook,
    )
