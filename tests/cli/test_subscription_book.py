"""The commands end to end on a B2C subscription book that the lab did not make.

Its names are none of the lab's: subscribers instead of accounts with owners, its own teams
(``retention``, ``crm``), channels (``push``, ``in_app``), signals (``minutes_watched``,
``payment_failed``) and outcome kinds (``cancel``, ``upgrade``); its touches log no propensity and
its playbook names no signal roles. Cancellations end a subscription, so the active book shrinks.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from nextmove.cli import app

runner = CliRunner()

START = datetime(2024, 1, 1, tzinfo=UTC)
WEEKS = 30
ACTIONS = ("none", "discount_offer", "push_reminder", "premium_trial")

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
caps = [{ team = "crm", channel = "push", max_touches = 1, window_days = 28 }]

[capacity]
budget_usd_per_team = { retention = 300, crm = 400 }
"""


def write_subscription_book(folder: Path, n: int = 700, seed: int = 7) -> Path:
    """A streaming service's subscribers, a decision every two weeks, confounded by engagement."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "premium", "family"], n, p=[0.5, 0.3, 0.2])
    fee = np.where(plan == "basic", 8.99, np.where(plan == "premium", 15.99, 19.99))
    taste = rng.normal(0.0, 1.0, n)  # hidden engagement
    ids = [f"sub_{i:05d}" for i in range(n)]
    accounts = pl.DataFrame(
        {
            "account_id": ids,
            "plan": plan,
            "country": rng.choice(["DE", "FR", "ES", "IT"], n),
            "arr": fee * 12,
            "customer_since": [START - timedelta(days=int(d)) for d in rng.integers(0, 900, n)],
            "lifecycle_stage": rng.choice(["new", "steady", "fading"], n, p=[0.2, 0.6, 0.2]),
        }
    )
    alive = np.ones(n, dtype=bool)
    signals: list[tuple[str, datetime, str, float]] = []
    touches: list[tuple[str, str, datetime]] = []
    outcomes: list[tuple[str, datetime, str, float]] = []
    for week in range(WEEKS):
        t = START + timedelta(days=7 * week)
        live = np.flatnonzero(alive)
        minutes = np.maximum(0.0, rng.normal(300 + 120 * taste[live], 80))
        evening = t + timedelta(hours=20)
        signals += [(ids[j], evening, "minutes_watched", float(m)) for j, m in zip(live, minutes, strict=True)]
        failed = live[rng.random(live.size) < 0.03]
        signals += [(ids[j], t + timedelta(hours=3), "payment_failed", 1.0) for j in failed]
        if week % 2:
            continue
        low = taste[live] < -0.5
        p = np.column_stack(
            [
                np.full(live.size, 0.55),
                np.where(low, 0.25, 0.05),
                np.full(live.size, 0.15),
                np.where(plan[live] == "basic", 0.15, 0.05),
            ]
        )
        chosen = np.array([rng.choice(4, p=row / row.sum()) for row in p])
        touches += [(ids[j], ACTIONS[a], t + timedelta(hours=10)) for j, a in zip(live, chosen, strict=True)]
        logit = -3.0 - 0.6 * taste[live] + np.isin(live, failed) * 0.8
        logit -= np.where(chosen == 1, 0.6, 0.0) + np.where((chosen == 2) & (taste[live] > 0), 0.3, 0.0)
        cancel = rng.random(live.size) < 1 / (1 + np.exp(-logit))
        up_logit = -3.5 + 0.5 * taste[live] + np.where((chosen == 3) & (plan[live] == "basic"), 1.2, 0.0)
        upgrade = (rng.random(live.size) < 1 / (1 + np.exp(-up_logit))) & (plan[live] != "family")
        for j, c, u in zip(live, cancel, upgrade, strict=True):
            when = t + timedelta(days=int(rng.integers(3, 14)), hours=12)
            if c:
                outcomes.append((ids[j], when, "cancel", 1.0))
                alive[j] = False
            elif u:
                outcomes.append((ids[j], when, "upgrade", 84.0))
    folder.mkdir(parents=True, exist_ok=True)
    accounts.write_csv(folder / "accounts.csv")
    pl.DataFrame(signals, schema=["account_id", "ts", "name", "value"], orient="row").write_csv(folder / "signals.csv")
    pl.DataFrame(touches, schema=["account_id", "action_id", "ts"], orient="row").write_csv(folder / "touches.csv")
    pl.DataFrame(outcomes, schema=["account_id", "ts", "kind", "value"], orient="row").write_csv(
        folder / "outcomes.csv"
    )
    (folder / "playbook.toml").write_text(PLAYBOOK, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_subscription_book(tmp_path_factory.mktemp("subscribers") / "book")


def _active(book: Path) -> int:
    cancelled = pl.read_csv(book / "outcomes.csv").filter(pl.col("kind") == "cancel").get_column("account_id")
    return pl.read_csv(book / "accounts.csv").height - cancelled.n_unique()


def test_run_on_a_subscription_book_with_its_own_teams_and_no_propensities(book: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", "--book", str(book), "--out", str(out), "--no-store", "--jobs", "1", "--trees", "30"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "no logged propensity" in text
    assert re.search(r"Fitting the effect models: learning from [\d,]+ decisions", text)  # the long stage's detail
    # The playbook names no signal roles: the run says the health score leaves the signals out.
    assert "does not read 2 of the book's signals (minutes_watched, payment_failed)" in text
    recs = pl.read_parquet(out / "recommendations.parquet")
    assert recs.height == _active(book)  # every subscriber still there, and none who cancelled
    assert set(recs.get_column("action_id").unique().to_list()) <= {*ACTIONS}
    trial = recs.filter(pl.col("action_id") == "premium_trial").get_column("account_id")
    basic = pl.read_csv(book / "accounts.csv").filter(pl.col("plan") == "basic").get_column("account_id")
    assert trial.is_in(basic.implode()).all()  # eligibility from the playbook's own expression
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    # Each team's budget holds: the crm team's actions cost what its own team may spend.
    costs = {"discount_offer": 5.4, "push_reminder": 0.05, "premium_trial": 2.0}
    spent = recs.filter(pl.col("arm") != "control").group_by("action_id").len()
    by_team = {"retention": 0.0, "crm": 0.0}
    for action, count in spent.iter_rows():
        if action in costs:
            by_team["retention" if action == "discount_offer" else "crm"] += costs[action] * count
    assert by_team["retention"] <= 300 + 1e-6
    assert by_team["crm"] <= 400 + 1e-6
    assert summary["accounts"] == recs.height
    # The report is titled by the playbook and writes small values with their cents.
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<h1>Subscriber playbook</h1>" in page
    assert re.search(r"worth -?\$\d\.\d\d", page)


def test_evaluate_health_and_segment_on_the_subscription_book(book: Path, tmp_path: Path) -> None:
    report = tmp_path / "eval.json"
    done = runner.invoke(app, ["evaluate", "--book", str(book), "--out", str(report), "--folds", "2", "--trees", "20"])
    assert done.exit_code == 0, done.output
    estimates = json.loads(report.read_text(encoding="utf-8"))
    logged = [p for p in estimates["policies"] if p["policy"] == "logged"]
    assert {p["method"] for p in logged} == {"ips", "snips"}
    health = runner.invoke(app, ["health", "--book", str(book), "--out", str(tmp_path / "h.csv"), "--no-save-model"])
    assert health.exit_code == 0, health.output
    assert 'usage = ["minutes_watched"]' in " ".join(health.output.split())
    scored = pl.read_csv(tmp_path / "h.csv")
    assert scored.height == _active(book)
    segments = runner.invoke(
        app, ["segment", "--book", str(book), "--out", str(tmp_path / "seg"), "--folds", "2", "--trees", "20"]
    )
    assert segments.exit_code == 0, segments.output
    assert json.loads((tmp_path / "seg" / "segments.json").read_text(encoding="utf-8"))["accounts"] == scored.height
