"""Which accounts columns tell the gone accounts from the others from today's values alone, and which do not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nextmove.book import Book, default_as_of, gone_accounts
from nextmove.book.validate import load_book
from nextmove.features import FeatureVocabulary
from nextmove.features.leaks import LEAK_AUC, MIN_GONE_ACCOUNTS, leaking_columns, left_out_features
from nextmove.playbook import Playbook
from nextmove.playbook.loader import default_playbook_text, parse_playbook
from nextmove.sim import SimConfig, SimResult, simulate
from nextmove.testing import CONSUMER_PLAYBOOK, SUBSCRIPTION_PLAYBOOK, write_consumer_book, write_subscription_book

WHEN = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def lab() -> SimResult:
    return simulate(SimConfig(accounts=1500, months=12, seed=3))


def default_playbook(**keep: list[str]) -> Playbook:
    text = default_playbook_text()
    if keep:
        text += f"\n[features]\nkeep_columns = {keep['columns']!r}\n".replace("'", '"')
    return parse_playbook(text)


def small_book(n: int = 400, gone: int = 80, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``n`` accounts, the first ``gone`` of them churned; honest columns and leaks of every kind."""
    rng = np.random.default_rng(seed)
    left = np.arange(n) < gone
    ids = [f"a{i:04d}" for i in range(n)]
    accounts = pl.DataFrame(
        {
            "account_id": ids,
            "arr": rng.lognormal(9, 1, n) * np.where(left, 0.8, 1.0),  # smaller accounts churn more
            "segment": rng.choice(["SMB", "Mid", "Enterprise"], n),
            "contract_start": [WHEN - timedelta(days=int(d)) for d in rng.integers(30, 900, n)],
            "crm_id": [f"crm-{i}" for i in range(n)],  # a value per account: no pattern to learn
            "exit_score": np.where(left, rng.integers(0, 7, n).astype(float), np.nan),
            "churn_reason": [rng.choice(["price", "product", "moved"]) if g else None for g in left],
            "cancelled_at": [WHEN - timedelta(days=10) if g else None for g in left],
            "status": np.where(left, "cancelled", "live"),
        }
    )
    outcomes = pl.DataFrame(
        {
            "account_id": [i for i, g in zip(ids, left, strict=True) if g],
            "kind": "churn",
            "ts": WHEN - timedelta(days=10),
        }
    )
    return accounts, outcomes


def test_leaking_columns_finds_numbers_text_and_times_written_as_accounts_leave() -> None:
    accounts, outcomes = small_book()
    leaks = {leak.column: leak for leak in leaking_columns(accounts, outcomes, default_playbook(), WHEN)}
    assert set(leaks) == {"exit_score", "churn_reason", "cancelled_at", "status"}
    assert leaks["exit_score"].features == ("exit_score",)
    assert leaks["cancelled_at"].features == ("days_since_cancelled_at",)
    for leak in leaks.values():
        assert leak.auc == 1.0
        assert (leak.gone, leak.others) == (80, 320)
    assert (leaks["exit_score"].missing_gone, leaks["exit_score"].missing_others) == (0.0, 1.0)
    assert leaks["status"].missing_gone == leaks["status"].missing_others == 0.0
    assert "missing for" not in leaks["status"].note()
    assert left_out_features(list(leaks.values())) == (
        "exit_score",
        "churn_reason",
        "days_since_cancelled_at",
        "status",
    )


def test_leaking_columns_name_the_features_as_the_vocabulary_stems_them() -> None:
    accounts, outcomes = small_book()
    accounts = accounts.rename({"exit_score": "Exit Score"})
    vocab = FeatureVocabulary.build(accounts_schema=accounts.schema)
    [leak] = [
        c
        for c in leaking_columns(accounts, outcomes, default_playbook(), WHEN, vocabulary=vocab)
        if c.column == "Exit Score"
    ]
    assert leak.features == ("exit_score",)
    note = leak.note()
    assert note.startswith(
        "the accounts column 'Exit Score' tells the 80 accounts gone by a churn outcome from the 320 "
    )
    assert "(AUC 1.00; it is missing for 100% of the others and 0% of the gone)" in note
    assert "leave it out of their features (exit_score)" in note
    assert note.endswith('keep it with [features] keep_columns = ["Exit Score"] in the playbook')


def test_leaking_columns_keep_what_the_playbook_keeps() -> None:
    accounts, outcomes = small_book()
    leaks = leaking_columns(accounts, outcomes, default_playbook(columns=["exit_score", "status"]), WHEN)
    assert {c.column for c in leaks} == {"churn_reason", "cancelled_at"}


def test_leaking_columns_need_enough_gone_accounts() -> None:
    accounts, outcomes = small_book(gone=MIN_GONE_ACCOUNTS - 1)
    assert leaking_columns(accounts, outcomes, default_playbook(), WHEN) == []
    accounts, outcomes = small_book(gone=MIN_GONE_ACCOUNTS)
    assert leaking_columns(accounts, outcomes, default_playbook(), WHEN) != []


def test_leaking_columns_read_gone_at_the_books_end_as_the_accounts_table_is() -> None:
    # A backtest's decision time before the churns: the accounts table (and its exit_score) is of the book's end.
    accounts, outcomes = small_book()
    leaks = leaking_columns(accounts, outcomes, default_playbook(), WHEN - timedelta(days=60))
    assert "exit_score" in {c.column for c in leaks}


def test_leaking_columns_without_a_terminal_outcome_find_nothing() -> None:
    accounts, outcomes = small_book()
    playbook = parse_playbook(default_playbook_text().replace('value = "arr"', 'value = "fixed"\nvalue_usd = 1', 1))
    assert not any(o.ends_accounts for o in playbook.objectives.values())
    assert leaking_columns(accounts, outcomes, playbook, WHEN) == []


def _honest_separation(book: Book, playbook: Playbook) -> dict[str, float]:
    from nextmove.features.leaks import _candidates, _gone, _missing, _separation, terminal_outcome_kinds

    gone = _gone(book.accounts, book.outcomes, terminal_outcome_kinds(playbook), default_as_of(book))
    assert gone.sum() >= MIN_GONE_ACCOUNTS
    return {
        c: _separation(book.accounts[c], _missing(book.accounts[c]), kind, gone)
        for c, (kind, _) in _candidates(book.accounts.schema, None, set()).items()
    }


def test_leaking_columns_leave_the_labs_columns_in(lab: SimResult) -> None:
    playbook = lab.config.resolved_playbook()
    assert leaking_columns(lab.book.accounts, lab.book.outcomes, playbook, lab.as_of) == []
    separation = _honest_separation(lab.book, playbook)
    assert {"arr", "segment", "region", "owner", "contract_start", "renewal_date", "seats", "plan"} <= set(separation)
    assert max(separation.values()) < 0.7 < LEAK_AUC


def test_leaking_columns_leave_the_honest_columns_of_other_books_in(tmp_path: Path) -> None:
    for write, text in ((write_subscription_book, SUBSCRIPTION_PLAYBOOK), (write_consumer_book, CONSUMER_PLAYBOOK)):
        folder = tmp_path / write.__name__
        write(folder)
        playbook = parse_playbook(text)
        book = load_book(folder, playbook=playbook)
        assert gone_accounts(book, playbook, default_as_of(book)).height >= 100
        assert leaking_columns(book.accounts, book.outcomes, playbook, default_as_of(book)) == []
        assert max(_honest_separation(book, playbook).values()) < 0.7
