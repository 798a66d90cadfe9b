"""When an account is gone: a terminal outcome, unless a later start brings it back (a win-back)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from nextmove.book import Book, empty_table, gone_accounts, gone_at, latest_start
from nextmove.book.validate import RETURN_DAYS, returned_accounts_notes
from nextmove.playbook import Playbook
from nextmove.playbook.loader import default_playbook_text, parse_playbook

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


@pytest.fixture
def playbook() -> Playbook:
    return parse_playbook(default_playbook_text())  # churn ends accounts


def _book(accounts: list[dict[str, object]], outcomes: list[tuple[str, datetime, str]]) -> Book:
    frame = pl.concat([empty_table("accounts"), pl.DataFrame(accounts)], how="diagonal_relaxed")
    rows = pl.DataFrame(outcomes, schema=["account_id", "ts", "kind"], orient="row")
    return Book(
        frame,
        empty_table("signals"),
        empty_table("touches"),
        pl.concat([empty_table("outcomes"), rows], how="diagonal_relaxed"),
    )


def _gone(
    book: Book, playbook: Playbook, account: str, times: list[datetime], *, whole_days: bool = False
) -> list[bool]:
    keys = pl.DataFrame({"account_id": [account] * len(times), "decision_ts": times})
    return gone_at(book, playbook, keys, whole_days=whole_days).get_column("gone").to_list()


def test_gone_at_a_win_back_is_gone_between_its_churn_and_its_new_start(playbook: Playbook) -> None:
    book = _book(
        [{"account_id": "back", "customer_since": day(-900), "contract_start": day(150)}],
        [("back", day(100), "churn")],
    )
    # A customer before the churn; gone from it; back from the new contract's start on.
    assert _gone(book, playbook, "back", [day(99), day(100), day(149), day(150), day(400)]) == [
        False,
        True,
        True,
        False,
        False,
    ]


def test_gone_at_a_start_before_the_churn_brings_no_one_back(playbook: Playbook) -> None:
    book = _book([{"account_id": "lost", "contract_start": day(50)}], [("lost", day(100), "churn")])
    assert _gone(book, playbook, "lost", [day(60), day(100), day(400)]) == [False, True, True]


def test_gone_at_reads_customer_since_too_and_the_later_start_counts(playbook: Playbook) -> None:
    # A CRM that writes the re-signing in customer_since (contract_start left as it was) is read the same way.
    book = _book(
        [{"account_id": "back", "customer_since": day(150), "contract_start": day(-300)}],
        [("back", day(100), "churn")],
    )
    assert _gone(book, playbook, "back", [day(120), day(160)]) == [True, False]
    starts = book.accounts.select(latest_start(book.accounts.schema).alias("s")).get_column("s").to_list()
    assert starts == [day(150)]


def test_gone_at_a_churn_after_the_new_start_ends_the_account_again(playbook: Playbook) -> None:
    book = _book(
        [{"account_id": "twice", "contract_start": day(150)}],
        [("twice", day(100), "churn"), ("twice", day(300), "churn")],
    )
    keys = pl.DataFrame({"account_id": ["twice"] * 4, "decision_ts": [day(120), day(200), day(300), day(400)]})
    got = gone_at(book, playbook, keys, whole_days=False)  # times: a churn at t ends the account at t
    assert got.get_column("gone").to_list() == [True, False, True, True]
    assert got.get_column("ended_ts").to_list() == [day(100), day(100), day(300), day(300)]


def test_gone_at_whole_days_a_churn_ends_the_account_after_its_days_decisions(playbook: Playbook) -> None:
    book = _book([{"account_id": "back", "contract_start": day(150)}], [("back", day(100), "churn")])
    assert _gone(book, playbook, "back", [day(100), day(101), day(150)], whole_days=True) == [False, True, False]


def test_gone_accounts_keeps_the_order_of_the_accounts_and_names_the_churn(playbook: Playbook) -> None:
    book = _book(
        [
            {"account_id": "c", "contract_start": day(-10)},
            {"account_id": "a", "contract_start": day(150)},
            {"account_id": "b"},
        ],
        [("a", day(100), "churn"), ("c", day(20), "churn"), ("b", day(30), "expansion")],
    )
    assert gone_accounts(book, playbook, day(120)).rows() == [("c", day(20)), ("a", day(100))]
    assert gone_accounts(book, playbook, day(200)).rows() == [("c", day(20))]


def test_returned_accounts_notes_name_activity_after_a_churn_and_a_start_with_none(
    playbook: Playbook, tmp_path: Path
) -> None:
    accounts = pl.DataFrame(
        {
            "account_id": ["back", "unmarked", "lost", "idle", "fresh"],
            "contract_start": ["2025-06-01", "2024-01-01", None, "2025-06-01", "2025-12-20"],
        }
    )
    churns = ["2024-05-01", "2024-05-01", "2025-03-01", "2024-05-01", "2025-11-01"]
    outcomes = pl.DataFrame({"account_id": accounts["account_id"], "ts": churns, "kind": ["churn"] * 5})
    # back and unmarked use the product up to the end; lost a week past its churn (final usage, not a return).
    signals = pl.DataFrame(
        {
            "account_id": ["back", "unmarked", "lost"],
            "ts": ["2025-12-30", "2025-12-30", "2025-03-08"],
            "name": ["logins"] * 3,
            "value": [1.0] * 3,
        }
    )
    for name, frame in {"accounts": accounts, "outcomes": outcomes, "signals": signals}.items():
        frame.write_csv(tmp_path / f"{name}.csv")
    notes = returned_accounts_notes(tmp_path, playbook, datetime(2026, 1, 1))
    assert len(notes) == 2, notes
    unmarked, idle = notes
    assert "1 account gone by its churn shows signals or touches" in unmarked
    assert f"{RETURN_DAYS} days or more after it (unmarked)" in unmarked
    assert "set its contract_start to the day it re-signed" in unmarked
    # idle re-signed over 30 days ago and shows nothing since; fresh re-signed 12 days ago; back is fine.
    assert "1 account counts as won back" in idle
    assert "(idle)" in idle
    # The same from a loaded book (the run's notes).
    from nextmove.book.validate import load_book

    book = load_book(tmp_path, as_of=datetime(2026, 1, 1))
    assert returned_accounts_notes(book, playbook, datetime(2026, 1, 1)) == notes


def test_active_accounts_and_the_training_set_agree_on_a_churn_dated_the_decision_day() -> None:
    # Outcomes of dates: a churn on D happens during D, after D's decisions. The training set keeps the
    # account at D (its label is that churn); the run and health took it as gone at D.
    from nextmove.book.validate import load_book
    from nextmove.engine.health import active_accounts
    from nextmove.features import build_training_set

    pb = parse_playbook(default_playbook_text())
    book = load_book(
        {
            "accounts": pl.DataFrame({"account_id": ["a", "b"]}),
            "outcomes": pl.DataFrame({"account_id": ["a"], "ts": ["2025-03-01"], "kind": ["churn"]}),
            "signals": pl.DataFrame(
                {"account_id": ["a", "b"], "ts": ["2025-02-20T10:00:00Z"] * 2, "name": ["x"] * 2, "value": [1.0] * 2}
            ),
        },
        as_of=datetime(2025, 4, 1, tzinfo=UTC),
    )
    day = datetime(2025, 3, 1, tzinfo=UTC)
    rows = build_training_set(
        book, pb, decision_times=[day], untouched_rows=True, as_of=datetime(2025, 4, 1, tzinfo=UTC)
    ).filter(pl.col("decision_ts") == day)
    assert active_accounts(book, pb, day).get_column("account_id").to_list() == ["a", "b"]
    assert rows.get_column("account_id").to_list() == ["a", "b"]
    assert gone_accounts(book, pb, day + timedelta(days=1)).get_column("account_id").to_list() == ["a"]
