"""The order of a book's account rows changes nothing: the same book shuffled gives the same recommendations.

Models draw and split per row, so the accounts are put in one canonical order (by ``account_id``)
when the book is loaded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from nextmove.book.validate import load_book
from nextmove.engine.run import run
from nextmove.playbook.loader import load_playbook
from nextmove.sim import SimConfig, simulate, write_book
from nextmove.testing.subscriptions import write_subscription_book

FAST = {"n_folds": 2, "n_estimators": 25, "n_draws": 60}
COMPARED = ["account_id", "action_id", "variant", "arm", "expected_value_usd", "value_low_usd", "value_high_usd"]


def _shuffled_copy(book: Path, to: Path) -> Path:
    """``book`` copied to ``to`` with its accounts table's rows in another order."""
    shutil.copytree(book, to)
    [path] = [p for p in to.iterdir() if p.stem == "accounts"]
    if path.suffix == ".csv":
        frame = pl.read_csv(path, infer_schema=False)
        shuffled = frame.sample(fraction=1.0, shuffle=True, seed=7)
        assert shuffled["account_id"].to_list() != frame["account_id"].to_list()
        shuffled.write_csv(path)
    else:
        frame = pl.read_parquet(path)
        shuffled = frame.sample(fraction=1.0, shuffle=True, seed=7)
        assert shuffled["account_id"].to_list() != frame["account_id"].to_list()
        shuffled.write_parquet(path)
    return to


def _recommendations(book: Path) -> pl.DataFrame:
    playbook = load_playbook(book / "playbook.toml")
    loaded = load_book(book, playbook=playbook)
    result = run(loaded, playbook, effect_params=FAST, jobs=1)
    return result.recommendations.select(COMPARED).sort("account_id")


@pytest.mark.parametrize("kind", ["lab", "subscriptions"])
def test_run_gives_the_same_recommendations_whatever_the_order_of_the_accounts_rows(kind: str, tmp_path: Path) -> None:
    book = tmp_path / "book"
    if kind == "lab":
        write_book(simulate(SimConfig(accounts=160, months=8, seed=5)), book)
    else:
        write_subscription_book(book, accounts=300, weeks=20)
    shuffled = _shuffled_copy(book, tmp_path / "shuffled")
    first, second = _recommendations(book), _recommendations(shuffled)
    assert first.height > 0
    assert first.equals(second), first.join(second, on="account_id", suffix="_shuffled").filter(
        pl.col("expected_value_usd") != pl.col("expected_value_usd_shuffled")
    )


def test_load_book_puts_the_accounts_in_the_order_of_their_ids(tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_text("account_id,arr\nb,2\na10,3\na2,1\n", encoding="utf-8")
    book = load_book(folder)
    assert book.accounts.select("account_id", "arr").rows() == [("a10", 3.0), ("a2", 1.0), ("b", 2.0)]


def test_run_gives_the_same_recommendations_for_a_book_built_in_python_in_another_order() -> None:
    # A Book made in Python (not through load_book) keeps its frames' order: the run puts it in one.
    from dataclasses import replace

    lab = simulate(SimConfig(accounts=160, months=8, seed=5))
    playbook = lab.config.resolved_playbook()
    shuffled = replace(lab.book, accounts=lab.book.accounts.sample(fraction=1.0, shuffle=True, seed=3))
    assert shuffled.accounts["account_id"].to_list() != lab.book.accounts["account_id"].to_list()
    first, second = (
        run(book, playbook, as_of=lab.as_of, effect_params=FAST, jobs=1).recommendations.select(COMPARED)
        for book in (lab.book, shuffled)
    )
    assert first.sort("account_id").equals(second.sort("account_id"))
