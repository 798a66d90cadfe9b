"""A run on a book whose tables end apart: dated rows on the export's last day, a year typed wrong, a touch
log or outcomes that stop early, a double export, and a --training-days too short to learn from."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from nextmove.book import Book
from nextmove.book.validate import load_book
from nextmove.engine import score_health
from nextmove.engine.run import RunResult, run
from nextmove.errors import ConfigError
from nextmove.playbook.loader import parse_playbook

FAST = {"n_folds": 2, "n_estimators": 25, "n_draws": 60}
START = datetime(2024, 9, 2, tzinfo=UTC)
LAST = datetime(2025, 3, 31, tzinfo=UTC)
"""The export's last day: the signals (times of day) end the evening before, the dated tables on it."""

PLAYBOOK = parse_playbook(
    """
horizon_days = 42

[objectives.retention]
outcome = "churn"
sense = "avoid"
value = "arr"

[[actions]]
id = "call"
name = "Call"
team = "cs"
objective = "retention"
cost_usd = 5
cooldown_days = 30

[[actions]]
id = "mail"
name = "Mail"
team = "marketing"
channel = "email"
objective = "retention"
cost_usd = 1
"""
)


def write_book(folder: Path, *, n: int = 160, seed: int = 2, touches_until: datetime | None = None) -> Path:
    """Weekly signals with times of day; touches and churns as dates. Touches every two weeks, until 35 days
    before the last day (or ``touches_until``): no cooldown or contact window holds on the last day."""
    rng = np.random.default_rng(seed)
    ids = [f"A{i:04d}" for i in range(n)]
    risk = rng.normal(0, 1, n)
    stop = touches_until or LAST - timedelta(days=35)
    signals, touches, outcomes = [], [], []
    gone = np.zeros(n, dtype=bool)
    for week in range((LAST - START).days // 7 + 1):
        day = START + timedelta(days=7 * week)
        for i in map(int, np.flatnonzero(~gone)):
            stamp = min(day + timedelta(hours=9 + i % 8), LAST - timedelta(hours=2))
            signals.append(f"{ids[i]},{stamp:%Y-%m-%dT%H:%M:%S}Z,logins,{max(0.0, 5 - risk[i] + rng.normal()):.2f}")
            if week % 2 == i % 2 and day <= stop:
                action = rng.choice(["call", "mail", "none"], p=[0.3, 0.3, 0.4])
                touches.append(f"{ids[i]},{action},{day:%Y-%m-%d}")
            if day < LAST - timedelta(days=7) and rng.random() < 1 / (1 + np.exp(4.5 - risk[i])):
                outcomes.append(f"{ids[i]},{day + timedelta(days=3):%Y-%m-%d},churn")
                gone[i] = True
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "accounts.csv").write_text(
        "account_id,arr\n" + "".join(f"{a},{1000 + 10 * i}\n" for i, a in enumerate(ids)), encoding="utf-8"
    )
    for name, header, rows in (
        ("signals", "account_id,ts,name,value", signals),
        ("touches", "account_id,action_id,ts", touches),
        ("outcomes", "account_id,ts,kind", outcomes),
    ):
        (folder / f"{name}.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return folder


def _append(path: Path, rows: list[str]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write("".join(f"{row}\n" for row in rows))


def _live(book: Book) -> list[str]:
    churned = set(book.outcomes.get_column("account_id").to_list())
    return [a for a in book.accounts.get_column("account_id").to_list() if a not in churned]


def _run(book: Book, **options: Any) -> RunResult:
    return run(book, PLAYBOOK, effect_params=FAST, evaluate=False, segments=False, **options)


def test_a_run_reads_churns_and_touches_dated_the_export_s_last_day(tmp_path: Path) -> None:
    folder = write_book(tmp_path / "book")
    live = _live(load_book(folder, playbook=PLAYBOOK))
    churned, called = live[:10], live[10:30]
    _append(folder / "outcomes.csv", [f"{a},{LAST:%Y-%m-%d},churn" for a in churned])
    _append(folder / "touches.csv", [f"{a},call,{LAST:%Y-%m-%d}" for a in called])
    book = load_book(folder, playbook=PLAYBOOK)
    result = _run(book)
    # The dated tables' last day is read whole, though the signals have times of day.
    assert result.as_of == LAST + timedelta(days=1)
    recommended = result.recommendations
    assert not set(churned) & set(recommended.get_column("account_id").to_list())  # gone that day
    rows = recommended.filter(pl.col("account_id").is_in(called))
    assert rows.height == len(called)
    for row in rows.iter_rows(named=True):
        assert row["action_id"] != "call"
        calls = [a for a in json.loads(row["alternatives"]) if a["action_id"] == "call"]
        assert all(a["why"] in ("cooldown", "contact_cap", "in_flight") for a in calls), calls


def test_a_run_notes_a_decision_time_a_typed_year_moved_past_the_data(tmp_path: Path) -> None:
    folder = write_book(tmp_path / "book")
    _append(folder / "signals.csv", ["A0005,2026-03-01T10:00:00Z,logins,1"])  # for 2025-03-01
    book = load_book(folder, playbook=PLAYBOOK)
    result = _run(book, evidence=False)
    assert result.as_of == datetime(2026, 3, 2, tzinfo=UTC)
    [stale] = [n for n in result.summary["notes"] if n.startswith("the decision time")]
    assert stale.startswith("the decision time 2026-03-02 is 336 days after most of the book's data ends (2025-03-30)")
    assert "the book's latest row, 2026-03-01, lies 335 days beyond the rest" in stale
    assert any("its latest row (row" in n for n in result.summary["notes"])  # loading's note, kept


def test_a_run_and_health_note_a_touch_log_and_outcomes_that_stop_early(tmp_path: Path) -> None:
    folder = write_book(tmp_path / "book", touches_until=LAST - timedelta(days=90))
    outcomes = (folder / "outcomes.csv").read_text(encoding="utf-8").splitlines()
    kept = [outcomes[0], *(line for line in outcomes[1:] if line.split(",")[1] < "2025-01-01")]
    (folder / "outcomes.csv").write_text("\n".join(kept) + "\n", encoding="utf-8")
    book = load_book(folder, playbook=PLAYBOOK)
    result = _run(book, evidence=False)
    touches = [n for n in result.summary["notes"] if n.startswith("the touch log ends")]
    outcomes_notes = [n for n in result.summary["notes"] if n.startswith("the outcomes end")]
    assert len(touches) == len(outcomes_notes) == 1  # once, though loading the book noted them too
    assert "42-day horizon runs past that is not learned from as finished" in outcomes_notes[0]
    # Health reads the same book built by hand (no loading notes): it says it itself.
    bare = Book(book.accounts, book.signals, book.touches, book.outcomes)
    health = score_health(bare, PLAYBOOK)
    assert outcomes_notes[0] in health.notes
    assert touches[0] in health.notes


def test_a_run_keeps_the_note_of_a_double_export(tmp_path: Path) -> None:
    folder = write_book(tmp_path / "book")
    signals = (folder / "signals.csv").read_text(encoding="utf-8").splitlines()
    _append(folder / "signals.csv", signals[1:1001])
    result = _run(load_book(folder, playbook=PLAYBOOK), evidence=False)
    repeated = "the signals table has 1,000 rows that repeat an earlier row"
    assert any(n.startswith(repeated) for n in result.summary["notes"])


def _suggested_training_days(book: Book, training_days: int, **options: Any) -> int:
    """The --training-days a run with too few days to learn from names."""
    with pytest.raises(ConfigError, match=rf"--training-days {training_days} keeps only ") as caught:
        _run(book, training_days=training_days, evidence=False, **options)
    found = re.search(r"Pass --training-days (\d+) or more", str(caught.value))
    assert found is not None, str(caught.value)
    return int(found.group(1))


def test_too_short_training_days_name_the_training_days_that_would_do(tmp_path: Path) -> None:
    book = load_book(write_book(tmp_path / "book", touches_until=LAST), playbook=PLAYBOOK)
    # It said "Decide as of <a later day>", which a later day would not have changed.
    days = _suggested_training_days(book, 30)
    assert days >= 56  # the 42-day horizon and a 14-day decision window, at least
    assert _run(book, training_days=days, evidence=False).recommendations.height > 0


def test_the_training_days_named_reach_back_past_where_the_outcomes_end(tmp_path: Path) -> None:
    # The outcomes end 60 days before the signals: a decision is finished only when its horizon ends by then.
    # It named 56 days (the horizon and a window), and with 56 blamed the outcomes' end for leaving every
    # horizon open, though the decisions of the months before are finished.
    folder = write_book(tmp_path / "book", touches_until=LAST)
    outcomes = (folder / "outcomes.csv").read_text(encoding="utf-8").splitlines()
    cut = f"{LAST - timedelta(days=60):%Y-%m-%d}"
    (folder / "outcomes.csv").write_text(
        "\n".join([outcomes[0], *(line for line in outcomes[1:] if line.split(",")[1] <= cut)]) + "\n",
        encoding="utf-8",
    )
    book = load_book(folder, playbook=PLAYBOOK)
    days = _suggested_training_days(book, 30)
    assert days >= 42 + 14 + 60  # the horizon, a decision window, the days after the outcomes end
    assert _run(book, training_days=days, evidence=False).recommendations.height > 0


def test_a_decision_time_before_any_horizon_is_over_is_named_before_the_training_days(tmp_path: Path) -> None:
    # Nothing in the whole history is finished by the as-of: it named --training-days 56, which failed again.
    book = load_book(write_book(tmp_path / "book"), playbook=PLAYBOOK)
    when = START + timedelta(days=30)
    done = f"{START + timedelta(days=42):%Y-%m-%d}"
    with pytest.raises(ConfigError, match=rf"the earliest decision is only finished on {done}\. Decide as of {done}"):
        _run(book, as_of=when, training_days=30, evidence=False)


def test_outcomes_that_end_before_any_horizon_is_over_are_named(tmp_path: Path) -> None:
    folder = write_book(tmp_path / "book")
    outcomes = (folder / "outcomes.csv").read_text(encoding="utf-8").splitlines()
    early = f"{START + timedelta(days=30):%Y-%m-%d}"
    kept = [outcomes[0], *(line for line in outcomes[1:] if line.split(",")[1] < early)]
    assert len(kept) > 1
    (folder / "outcomes.csv").write_text("\n".join(kept) + "\n", encoding="utf-8")
    book = load_book(folder, playbook=PLAYBOOK)
    # It said to decide as of a day long past, the earliest decision's horizon's end.
    with pytest.raises(ConfigError, match=r"the book's outcomes end 2024-09-26, before the 42-day horizon of any"):
        _run(book)


def test_a_finished_campaign_s_log_names_the_outcomes_until_that_reads_it(tmp_path: Path) -> None:
    # The shape of the Hillstrom e-mail test: no signals, one send on one day, the conversions dated a week later,
    # so the book's data end before any 42-day horizon is over. It said "Decide as of <send + 42 days>", which
    # failed in turn on "the book's outcomes end …": a later as-of alone reads such a book as exported at its end.
    rng = np.random.default_rng(5)
    sent = datetime(2025, 3, 1, tzinfo=UTC)
    folder = tmp_path / "campaign"
    folder.mkdir()
    ids = [f"C{i:04d}" for i in range(300)]
    arms = rng.choice(["call", "mail", "none"], size=len(ids))
    (folder / "accounts.csv").write_text(
        "account_id,arr\n" + "".join(f"{a},{500 + i}\n" for i, a in enumerate(ids)), encoding="utf-8"
    )
    (folder / "touches.csv").write_text(
        "account_id,action_id,ts,propensity\n"
        + "".join(f"{a},{arm},{sent:%Y-%m-%d},0.3333\n" for a, arm in zip(ids, arms, strict=True)),
        encoding="utf-8",
    )
    churned = [a for a, arm in zip(ids, arms, strict=True) if rng.random() < (0.05 if arm == "call" else 0.15)]
    (folder / "outcomes.csv").write_text(
        "account_id,ts,kind\n" + "".join(f"{a},{sent + timedelta(days=7):%Y-%m-%d},churn\n" for a in churned),
        encoding="utf-8",
    )
    (folder / "signals.csv").write_text("account_id,ts,name,value\n", encoding="utf-8")
    book = load_book(folder, playbook=PLAYBOOK)
    done = sent + timedelta(days=42)
    through = f"{done - timedelta(days=1):%Y-%m-%d}"
    with pytest.raises(
        ConfigError, match=rf"Decide as of {done:%Y-%m-%d} or later \(--as-of, with --outcomes-until {through} as"
    ):
        _run(book)
    result = _run(
        book,
        as_of=done,
        outcomes_until=datetime.fromisoformat(through).replace(tzinfo=UTC) + timedelta(days=1),
        evidence=False,
    )
    assert result.recommendations.height == len(ids) - len(churned)
