"""A small subscription book whose accounts' stage today is "churned" once they left, with every decision's truth.

Each account has a hidden engagement ``u``: its stage is ``at_risk`` (``u < -0.5``) or ``steady``
for its whole life, and ``churned`` in the accounts table once it has left (what a CRM shows
today). Every 30 days each active account gets one logged decision (``none`` logged too) from a
known policy that depends on ``u``; within the 30-day horizon it churns with a probability that
the action lowers. The truth of every decision is the expected value of each action: ``-ARR ×
P(churn | action) - cost``. The playbook's defaults are ``care_call`` for ``at_risk`` and
``nudge_sms`` for ``steady`` (tests' helper).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from nextmove.store import Store

ACTIONS = ("none", "nudge_sms", "care_call")
COST_USD = {"none": 0.0, "nudge_sms": 1.0, "care_call": 40.0}
CHURN_CUT = {"none": 0.0, "nudge_sms": 0.02, "care_call": 0.08}
DEFAULT = {"at_risk": "care_call", "steady": "nudge_sms"}
START = datetime(2024, 1, 1, tzinfo=UTC)

PLAYBOOK = """
name = "stage-leak"
horizon_days = 30

[objectives.retention]
outcome = "cancel"
sense = "avoid"
value = "arr"

[[actions]]
id = "nudge_sms"
name = "Nudge SMS"
team = "crm"
objective = "retention"
channel = "sms"
cost_usd = 1
default_for_stages = ["steady"]

[[actions]]
id = "care_call"
name = "Care call"
team = "care"
objective = "retention"
channel = "call"
cost_usd = 40
default_for_stages = ["at_risk"]
"""


@dataclass(frozen=True)
class LeakBook:
    folder: Path
    truth: pl.DataFrame
    """Per decision: ``account_id, decision_ts`` (its UTC day), ``stage`` then, ``v_<action>`` for every action."""


def write_leak_book(folder: Path, *, accounts: int, months: int, churn: float, seed: int) -> LeakBook:
    """Write the book to ``folder`` (accounts, signals, touches with propensities, outcomes, playbook).

    ``churn`` scales every account's chance to churn within a horizon of doing nothing.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.array([f"U{i:05d}" for i in range(accounts)])
    u = rng.normal(size=accounts)
    arr = np.round(1000 * np.exp(rng.normal(0, 0.3, accounts)), 2)
    at_risk = u < -0.5
    base = churn * np.where(at_risk, 0.30, 0.04)
    stage = np.where(at_risk, "at_risk", "steady")
    logging = np.where(at_risk[:, None], [0.3, 0.2, 0.5], [0.5, 0.4, 0.1])
    left_day = np.full(accounts, np.inf)
    touches, outcomes, truth, signals = [], [], [], []
    for month in range(months):
        day = month * 30
        active = np.flatnonzero(left_day > day)
        ts = START + timedelta(days=day, hours=9)
        chosen = (rng.random(len(active))[:, None] > logging[active].cumsum(1)).sum(1)
        logins = rng.poisson(np.exp(1.5 + 0.6 * u[active]))
        for j, i in enumerate(active):
            action = ACTIONS[chosen[j]]
            touches.append((f"T{len(touches)}", ids[i], action, ts, float(logging[i, chosen[j]])))
            values = {a: -arr[i] * max(base[i] - CHURN_CUT[a], 0.0) - COST_USD[a] for a in ACTIONS}
            truth.append((ids[i], START + timedelta(days=day), stage[i], *values.values()))
            signals.append((ids[i], ts - timedelta(days=1), "logins_wk", float(logins[j])))
            if rng.random() < max(base[i] - CHURN_CUT[action], 0.0):
                left_day[i] = day + rng.uniform(1, 29)
                outcomes.append((f"O{len(outcomes)}", ids[i], START + timedelta(days=float(left_day[i])), "cancel"))
    today = np.where(np.isfinite(left_day), "churned", stage)
    pl.DataFrame(
        {"account_id": ids, "arr": arr, "lifecycle_stage": today, "contract_start": ["2023-06-01"] * accounts}
    ).write_csv(folder / "accounts.csv")
    pl.DataFrame(signals, schema=["account_id", "ts", "name", "value"], orient="row").write_csv(folder / "signals.csv")
    pl.DataFrame(touches, schema=["touch_id", "account_id", "action_id", "ts", "propensity"], orient="row").write_csv(
        folder / "touches.csv"
    )
    pl.DataFrame(outcomes, schema=["outcome_id", "account_id", "ts", "kind"], orient="row").with_columns(
        pl.lit(1.0).alias("value")
    ).write_csv(folder / "outcomes.csv")
    (folder / "playbook.toml").write_text(PLAYBOOK, encoding="utf-8")
    names = ["account_id", "decision_ts", "stage", *(f"v_{a}" for a in ACTIONS)]
    return LeakBook(folder, pl.DataFrame(truth, schema=names, orient="row"))


def true_value(truth: pl.DataFrame, policy: pl.DataFrame) -> float:
    """The exact mean value per decision of a deterministic ``policy`` (``account_id, decision_ts, action_id``)."""
    keys = ["account_id", "decision_ts"]
    joined = policy.select(*keys, "action_id").join(
        truth.with_columns(pl.col("decision_ts").cast(policy.schema["decision_ts"])), on=keys
    )
    assert joined.height == policy.height
    value = pl.sum_horizontal(
        [pl.when(pl.col("action_id") == a).then(pl.col(f"v_{a}")).otherwise(0.0) for a in ACTIONS]
    )
    return float(joined.select(value.mean()).item())


def stage_default(truth: pl.DataFrame) -> pl.DataFrame:
    """The lifecycle default with each decision's stage then: ``account_id, decision_ts, action_id``."""
    return truth.select("account_id", "decision_ts", pl.col("stage").replace_strict(DEFAULT).alias("action_id"))


def save_recorded_defaults(store: Store, leak: LeakBook, source: str, *, backtest: bool | None = None) -> None:
    """Save in ``store`` the runs that made the book's decisions, one a day, each with every account's default then
    (as a run saves it), for the book known to the store as ``source``; with ``backtest``, their
    ``params["backtest"]`` says so (None: recorded before runs said)."""
    from nextmove.playbook.loader import load_playbook
    from nextmove.store import RecommendationRecord, RunRecord

    playbook_hash = load_playbook(leak.folder / "playbook.toml").content_hash()
    for (day,), group in stage_default(leak.truth).group_by("decision_ts", maintain_order=True):
        assert isinstance(day, datetime)
        run_id = f"run-{day:%Y%m%d}"
        run = RunRecord(
            run_id=run_id,
            book_source=source,
            playbook_hash=playbook_hash,
            status="succeeded",
            as_of=day + timedelta(hours=9),
            params={} if backtest is None else {"backtest": backtest},
        )
        records = [
            RecommendationRecord(
                run_id=run_id,
                account_id=account,
                action_id=action,
                arm="default",
                propensity=1.0,
                expected_value_usd=0.0,
                default_action_id=action,
            )
            for account, action in group.select("account_id", "action_id").iter_rows()
        ]
        store.save_run(run, records)
