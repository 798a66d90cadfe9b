"""Tests of the notes on a lift or a policy value one or two accounts decide: a small book with one whale outcome."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from rich.console import Console

from nextmove.book.validate import load_book
from nextmove.cli.lift import render_lift
from nextmove.measure.lift import LiftReport, estimate_lift
from nextmove.measure.ope import evaluate_policy, grouped_notes, policy_difference
from nextmove.playbook import Action, Objective, Playbook

AS_OF = datetime(2025, 12, 26, tzinfo=UTC)
N_TREATED, N_CONTROL = 150, 50
WHALE = "a007"
"""A recommended account, with no ordinary upgrade (7 is not a multiple of 3)."""


def playbook() -> Playbook:
    return Playbook(
        horizon_days=30,
        objectives={"plan_change": Objective(outcome="plan_change", value="amount")},
        actions=[Action(id="upsell", name="Upsell", team="cs", objective="plan_change", cost_usd=0.0)],
    )


def lift(whale_usd: float | None) -> LiftReport:
    """A lift on 150 recommended and 50 control accounts: every third recommended account upgrades by $300, every
    third control one by $100 (a lift of about +$67 per account); with ``whale_usd``, one recommended account's plan
    changes by that much too."""
    ids = [f"a{i:03d}" for i in range(N_TREATED + N_CONTROL)]
    treated = [i < N_TREATED for i in range(len(ids))]
    recs = pl.DataFrame(
        {
            "account_id": ids,
            "action_id": ["upsell" if t else "none" for t in treated],
            "arm": ["model" if t else "control" for t in treated],
            "model_action_id": ["upsell"] * len(ids),
        }
    )
    upgraded = [(a, 300.0 if t else 100.0) for a, t in zip(ids, treated, strict=True) if int(a[1:]) % 3 == 0]
    if whale_usd is not None:
        upgraded.append((WHALE, whale_usd))
    outcomes = pl.DataFrame(
        {
            "account_id": [a for a, _ in upgraded],
            "ts": [AS_OF + timedelta(days=5)] * len(upgraded),
            "kind": ["plan_change"] * len(upgraded),
            "value": [v for _, v in upgraded],
        }
    )
    book = load_book({"accounts": pl.DataFrame({"account_id": ids}), "outcomes": outcomes})
    return estimate_lift(recs, book, playbook(), as_of=AS_OF, observed_until=AS_OF + timedelta(days=40))


def _few(notes: list[str]) -> list[str]:
    """The notes on one or two accounts: per objective and total value, then one for the actions."""
    return [n for n in notes if " measured accounts (" in n or n.startswith("realised effects that one or two")]


def test_lift_says_when_one_whale_decides_the_difference_and_its_sign() -> None:
    report = lift(-2_000_000.0)
    (o,) = report.objectives
    # The estimate is not touched: the plain difference of the cohorts' means, the whale in it.
    treated = sum(300.0 for i in range(N_TREATED) if i % 3 == 0) - 2_000_000.0
    control = sum(100.0 for i in range(N_TREATED, N_TREATED + N_CONTROL) if i % 3 == 0)
    assert o.lift == pytest.approx(treated / N_TREATED - control / N_CONTROL)
    assert o.lift < 0
    objective, value, action = _few(report.notes)
    assert objective.startswith(
        "plan_change: 1 of the 200 measured accounts (recommended) makes up 101% of the lift of -$13,267 per account, "
        "and turns its sign: without it the lift reads +$67 (standard error $"
    )
    assert o.stderr is not None
    assert f"against ${o.stderr:,.0f} with it)" in objective  # the standard error of the report's interval
    assert value.startswith("total value: 1 of the 200 measured accounts (recommended) makes up 101%")
    assert action.startswith(
        "realised effects that one or two accounts decide, each those accounts' outcomes more than the action's effect "
        "(read its interval, which they widen): upsell on plan_change, 1 of 200 accounts (recommended) makes up 101% "
        "of the realised -$13,267 per account, and turns its sign (+$67 without it; standard error $"
    )
    assert all(WHALE not in n for n in report.notes)  # how many and their share, never which account
    assert report.to_dict()["notes"] == report.notes  # the JSON (--out, GET /v1/lift) holds them


def test_lift_without_a_whale_has_no_note_on_few_accounts() -> None:
    assert _few(lift(None).notes) == []
    assert _few(lift(600.0).notes) == []  # a large upgrade among many is no whale


def test_lift_cli_prints_the_note_and_signs_the_impact_as_the_lift_beside_it() -> None:
    report = lift(-2_000_000.0)
    console = Console(record=True, width=400)
    render_lift(report, console, playbook())
    text = console.export_text()
    assert "note: plan_change: 1 of the 200 measured accounts (recommended) makes up 101%" in text
    (o,) = report.objectives
    assert o.impact_low_usd is not None
    assert o.impact_high_usd is not None
    assert o.impact_low_usd < 0 < o.impact_high_usd
    # A difference is signed wherever it is written: the impact and both ends of its interval, as the lift column.
    row = next(line for line in text.splitlines() if line.lstrip("│ ").startswith("plan_change"))
    assert re.search(r"-\$1,990,100 \[-\$[\d,]+, \+\$[\d,]+\]", row), row
    positive = lift(None)
    console = Console(record=True, width=400)
    render_lift(positive, console, playbook())
    (gain,) = positive.objectives
    assert gain.impact_usd > 0
    assert f"+${gain.impact_usd:,.0f} [" in console.export_text()  # "+$9,900", never "$9,900" beside "+$66"


def _log(n_accounts: int, whale_usd: float | None, seed: int = 0) -> tuple[pl.DataFrame, np.ndarray]:
    """Three logged decisions per account, actions uniformly at random; rewards of a few dollars, one account's far
    larger."""
    rng = np.random.default_rng(seed)
    n = 3 * n_accounts
    action = rng.choice(np.array(["none", "upsell"]), n)
    action[4] = "upsell"  # the decision that may hold the whale's outcome: one the upselling policy weighs
    rows = pl.DataFrame(
        {
            "account_id": [f"a{i // 3:04d}" for i in range(n)],
            "decision_ts": [AS_OF + timedelta(days=30 * (i % 3)) for i in range(n)],
            "action_id": action.tolist(),
            "propensity": [0.5] * n,
        }
    )
    rewards = rng.normal(20.0, 5.0, n) + 10.0 * (action == "upsell")
    if whale_usd is not None:
        rewards[4] = whale_usd  # account a0001's second decision
    return rows, rewards


def _upsell(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.select("account_id", "decision_ts", pl.lit("upsell").alias("action_id"))


def _nothing(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.select("account_id", "decision_ts", pl.lit("none").alias("action_id"))


def test_policy_value_notes_one_account_that_decides_it() -> None:
    rows, rewards = _log(1000, None)
    rows_whale, rewards_whale = _log(1000, 5_000_000.0)
    values = evaluate_policy(
        rows_whale, _upsell(rows_whale), playbook(), methods=("ips", "snips"), rewards=rewards_whale
    )
    for value in values:
        assert value.note == (
            "1 of the 1,000 accounts evaluated makes up over nine tenths of this value: it is that account's outcomes "
            "more than the policy's value, and without its decisions its standard error would be under a third of what "
            "it is; read the interval, which it widens"
        )
    # Said roughly, the share is one note for both methods, as evaluate prints them.
    assert grouped_notes(values) == [f"policy (IPS, SNIPS): {values[0].note}"]
    assert all(
        v.note is None
        for v in evaluate_policy(rows, _upsell(rows), playbook(), methods=("ips", "snips"), rewards=rewards)
    )
    (diff,) = policy_difference(
        rows_whale, _upsell(rows_whale), _nothing(rows_whale), playbook(), methods=("snips",), rewards=rewards_whale
    )
    assert diff.note is not None
    assert diff.note.startswith("1 of the 1,000 accounts evaluated makes up over nine tenths of this difference: ")
    (plain_diff,) = policy_difference(
        rows, _upsell(rows), _nothing(rows), playbook(), methods=("ips",), rewards=rewards
    )
    assert plain_diff.note is None
