"""A control account whose lifecycle default found no capacity left is left alone by capacity, not by the draw.

The one count of why accounts are left alone (engine/run_facts: the CLI summary and the report) put every control
account doing nothing under "the control cohort or an exploration draw", though the control cohort takes its
default whatever its value and only capacity keeps it from it: the account's receipt says so ("Control group: the
lifecycle default, …, did not fit (…), so nothing is done."), and its default's runner-up row lost to capacity.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import polars as pl
import pytest
from tests.measure.stage_leak_book import PLAYBOOK, write_leak_book

import nextmove
from nextmove.decide.explain import parse_alternatives
from nextmove.engine.run import RunResult, run
from nextmove.engine.run_facts import LEFT_ALONE_CONTROL_CAPACITY, left_alone_by_draw, left_alone_reasons
from nextmove.playbook.loader import parse_playbook
from nextmove.report import build_report_data
from nextmove.report.stored import report_frame
from nextmove.store import Store, open_store

# Half the accounts in control, and budgets that hold 1 care call and 30 SMS per window: most defaults do not fit.
SHORT = "horizon_days = 30\ncontrol_fraction = 0.5\n\n[capacity]\nbudget_usd_per_team = { care = 40, crm = 30 }\n"


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    with open_store("sqlite://") as s:
        yield s


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory, store: Store) -> RunResult:
    folder = write_leak_book(tmp_path_factory.mktemp("control") / "book", accounts=400, months=8, churn=1.0, seed=4)
    playbook = parse_playbook(PLAYBOOK.replace("horizon_days = 30\n", SHORT, 1))
    book = nextmove.load_book(folder.folder, playbook=playbook)
    return run(
        book, playbook, store=store, effect_params={"n_folds": 2, "n_estimators": 20}, segments=False, evaluate=False
    )


def did_not_fit(recs: pl.DataFrame) -> int:
    """Control accounts doing nothing whose default (an action) lost to capacity, by their receipts' runner-ups."""
    control = recs.filter((pl.col("arm") == "control") & (pl.col("action_id") == "none"))
    return sum(
        any(a.action_id == default and a.why == "capacity" for a in parse_alternatives(alternatives))
        for default, alternatives in control.select("default_action_id", "alternatives").iter_rows()
        if default not in (None, "none")
    )


def test_control_accounts_whose_default_did_not_fit_count_with_capacity(short_run: RunResult, store: Store) -> None:
    recs = short_run.recommendations
    short = did_not_fit(recs)
    assert short > 50
    reasons = left_alone_reasons(recs)
    assert (LEFT_ALONE_CONTROL_CAPACITY, short) in reasons
    drawn = left_alone_by_draw(recs)
    assert drawn is not None
    nothing = recs.filter(pl.col("action_id") == "none").height
    assert drawn + sum(n for _, n in reasons) == nothing
    randomised = recs.filter((pl.col("action_id") == "none") & (pl.col("arm") != "model")).height
    assert drawn <= randomised - short
    # The report says it, and a stored run's report, which reads a few values of the receipts, counts the same.
    summary = short_run.summary
    sentence = next(s for s in build_report_data(summary, recs).sentences if "left alone" in s)
    assert f"for {short:,}, {LEFT_ALONE_CONTROL_CAPACITY}" in sentence
    stored = report_frame(store, short_run.run_id)
    assert "evidence" not in stored.columns
    assert left_alone_reasons(stored) == reasons
    assert left_alone_by_draw(stored) == drawn
    assert next(s for s in build_report_data(summary, stored).sentences if "left alone" in s) == sentence


def test_control_accounts_left_alone_by_the_playbook_or_a_rule_stay_with_the_draw() -> None:
    # Only a receipt that says the default did not fit counts with capacity; one whose default does nothing, or
    # is not allowed now (a rule), is the control cohort's own doing, as is an exploring account's empty draw.
    why = [
        "Control group: the lifecycle default, Care call, did not fit (not enough of the care budget is left for "
        "it), so nothing is done.",
        "Control group: the lifecycle default, Care call, is not allowed now (in a 14-day cooldown after a care "
        "call on 2026-03-01), so nothing is done.",
        "Control group: the lifecycle playbook does nothing for this account, and so does this.",
        "Explored: the draw chose to do nothing.",
    ]
    recs = pl.DataFrame(
        {
            "account_id": ["a", "b", "c", "d"],
            "action_id": ["none"] * 4,
            "arm": ["control", "control", "control", "explore"],
            "default_why": why,
        }
    )
    assert left_alone_reasons(recs) == [(LEFT_ALONE_CONTROL_CAPACITY, 1)]
    assert left_alone_by_draw(recs) == 3
    # The same from the receipts whole (a run's recommendations carry the evidence, not the column).
    whole = recs.with_columns(pl.Series("evidence", [json.dumps({"default_why": w}) for w in why])).drop("default_why")
    assert left_alone_reasons(whole) == [(LEFT_ALONE_CONTROL_CAPACITY, 1)]
    assert left_alone_by_draw(whole) == 3
