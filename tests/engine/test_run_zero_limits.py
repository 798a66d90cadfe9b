"""Tests of a run whose playbook sets a limit to 0: what it says when the limit blocks every play it covers."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nextmove.book.validate import load_book
from nextmove.cli.run import executive_summary
from nextmove.decide.rules import NO_PLAY_ALLOWED
from nextmove.engine.run import RunResult, run
from nextmove.engine.run_facts import DIFFERS_METRIC
from nextmove.playbook.loader import parse_playbook
from nextmove.testing.subscriptions import SUBSCRIPTION_PLAYBOOK, write_subscription_book

FAST = {"n_folds": 2, "n_estimators": 20}


def _run(folder: Path, playbook_text: str) -> RunResult:
    write_subscription_book(folder, accounts=200, weeks=16, playbook=playbook_text)
    playbook = parse_playbook(playbook_text)
    book = load_book(folder, playbook=playbook)
    return run(book, playbook, effect_params=FAST, evaluate=False, segments=False)


def test_run_with_max_actions_per_window_zero_says_why_nothing_is_recommended(tmp_path: Path) -> None:
    text = SUBSCRIPTION_PLAYBOOK.replace("max_actions_per_window = 1", "max_actions_per_window = 0")
    assert text != SUBSCRIPTION_PLAYBOOK
    result = _run(tmp_path / "book", text)
    summary = result.summary
    assert summary["do_nothing"] == summary["accounts"]
    assert any("max_actions_per_window = 0 in [contact_policy] blocks every play" in n for n in summary["notes"])
    # Not "95% of recommended actions differ" when none is recommended.
    words = executive_summary(summary)
    assert "No customer was assigned an action" in words
    assert "recommended actions differ" not in words
    [row] = [m for m in summary["metrics"] if m["metric"] == DIFFERS_METRIC]
    assert row["current"].endswith("no account was given an action")
    # The receipts say the limit of 0 blocks the play, not "already in flight: 0 … (at most 0)".
    reasons = {
        alt["reason"]
        for cell in result.recommendations["alternatives"].to_list()
        for alt in json.loads(cell)
        if alt["why"] == "in_flight"
    }
    assert reasons == {NO_PLAY_ALLOWED}


def test_run_with_a_team_budget_of_zero_counts_it_binding_and_notes_the_plays_it_blocks(tmp_path: Path) -> None:
    text = SUBSCRIPTION_PLAYBOOK.replace("retention = 300", "retention = 0")
    assert text != SUBSCRIPTION_PLAYBOOK
    result = _run(tmp_path / "book", text)
    recs = result.recommendations
    assert recs.filter(pl.col("action_id") == "discount_offer").height == 0
    assert any("budget_usd_per_team.retention = 0 blocks discount_offer" in n for n in result.summary["notes"])
    assert result.summary["allocation"]["binding_resources"] >= 1  # not "0 of 2 capacities binding"


@pytest.mark.parametrize("limit", [0, 1, 2])
def test_in_flight_reason_names_the_count_and_the_limit_or_the_limit_of_zero(limit: int) -> None:
    from datetime import UTC, datetime, timedelta

    from nextmove.decide.rules import check_rules

    playbook = parse_playbook(
        SUBSCRIPTION_PLAYBOOK.replace("max_actions_per_window = 1", f"max_actions_per_window = {limit}")
    )
    now = datetime(2025, 1, 1, tzinfo=UTC)
    features = pl.DataFrame({"account_id": ["a"], "plan": ["basic"]})
    touches = pl.DataFrame(
        {"account_id": ["a"] * limit, "action_id": ["push_reminder"] * limit, "ts": [now - timedelta(days=1)] * limit},
        schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")},
    )
    check = check_rules(features, touches, playbook, now, {"plan": "text"})
    expected = (
        NO_PLAY_ALLOWED if limit == 0 else f"a play is already in flight: {limit} in the last 14 days (at most {limit})"
    )
    assert check.reason(playbook, 0, 0) == expected
    assert check.reasons(playbook, np.array([0]), np.array([0])).to_list() == [expected]


def test_run_notes_a_signal_role_naming_no_signal_of_the_book(tmp_path: Path) -> None:
    # A typo in [signal_roles] was ignored silently by the run; validate and health note it, so must the run.
    text = SUBSCRIPTION_PLAYBOOK + '\n[signal_roles]\nusage = ["sesions"]\n'
    result = _run(tmp_path / "book", text)
    assert any("signal_roles.usage 'sesions'" in n and "no signal of the book" in n for n in result.summary["notes"])


def test_run_notes_accounts_whose_usage_went_silent(tmp_path: Path) -> None:
    # The run scores health as `nextmove health` does, so it says, as health does, who went silent.
    text = SUBSCRIPTION_PLAYBOOK + '\n[signal_roles]\nusage = ["minutes_watched"]\n'
    folder = tmp_path / "book"
    write_subscription_book(folder, accounts=200, weeks=16, playbook=text)
    signals = pl.read_parquet(folder / "signals.parquet")
    last = signals["ts"].max()
    quiet = signals["account_id"].unique().sort().head(10).to_list()
    gone = (pl.col("name") == "minutes_watched") & pl.col("account_id").is_in(quiet)
    signals.filter(~(gone & (pl.col("ts") > last - timedelta(days=35)))).write_parquet(folder / "signals.parquet")
    playbook = parse_playbook(text)
    result = run(load_book(folder, playbook=playbook), playbook, effect_params=FAST, evaluate=False, segments=False)
    assert any("minutes" in n and "silent" in n for n in result.summary["notes"]), result.summary["notes"]
