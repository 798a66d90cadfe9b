"""The attribution statistics of ``nextmove validate`` (:func:`window_fallbacks`) are counted from aggregates of the
touches, and equal those of the training set's rows (what it built before: every decision with its labels)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nextmove.book import Book, empty_table, of_dates
from nextmove.features import training as T  # noqa: N812
from nextmove.features.history import DECISION_TS
from nextmove.playbook import Playbook
from nextmove.playbook.loader import default_playbook_text, parse_playbook

START = datetime(2025, 1, 1, tzinfo=UTC)


def reference_counts(book: Book, playbook: Playbook, end: datetime) -> tuple[int, int, dict[str, tuple[int, ...]]]:
    """The counts over every decision of the training set, its window labels and its labels by touch joined."""
    known = T._known_by(book, end)
    days = of_dates(known.outcomes)
    vocab = T._vocabulary(known, playbook, None)
    rows = T.decision_rows(
        known, playbook, end=end, every_days=playbook.contact_policy.window_days, untouched=False, whole_days=days
    )
    keys = rows.select(T._KEYS).unique(maintain_order=True)
    labels = T._labels(known, keys, vocab, horizon_days=playbook.horizon_days, end=end, whole_days=days)
    result = rows.join(labels, on=T._KEYS, how="left", maintain_order="left")
    # The touch's own labels, as _attribute_to_touches joins them.
    touch_ts = result.filter(pl.col("touch_id").is_not_null()).group_by("touch_id").agg(pl.col(DECISION_TS).min())
    window_end = T._window_end(timedelta(days=playbook.horizon_days), end)
    attributed = (
        known.outcomes.filter(pl.col("touch_id").is_not_null())
        .join(touch_ts, on="touch_id")
        .filter((pl.col("ts") >= pl.col(DECISION_TS)) & T._until(window_end, days))
        .group_by("touch_id")
        .agg(pl.col("kind").eq(k).any().cast(pl.Int8).alias(f"y_{s}__touch") for k, s in vocab.outcome_kinds.items())
    )
    joined = result.join(attributed, on="touch_id", how="left")
    named = set(known.outcomes.filter(pl.col("touch_id").is_not_null()).get_column("kind").to_list())
    credited = {k: s for k, s in vocab.outcome_kinds.items() if k in named}
    return T._joined_counts(joined, credited)


def random_book(seed: int, *, dates: bool) -> Book:
    """Accounts with win-backs, touches (some without a touch id, several a day, a few after the end), and
    churns and expansions, some credited to a touch (before it, within its horizon, or long after)."""
    rng = np.random.default_rng(seed)
    n = 60
    ids = [f"a{i:02d}" for i in range(n)]
    starts = [START - timedelta(days=30) if i % 7 else START + timedelta(days=120) for i in range(n)]
    accounts = pl.DataFrame(
        {"account_id": ids, "contract_start": starts}, schema={"account_id": pl.String, "contract_start": T.TS_DTYPE}
    )
    m = 900
    offsets = rng.uniform(0, 200, m) if not dates else rng.integers(0, 200, m).astype(float)
    touches = pl.DataFrame(
        {
            "account_id": [ids[i] if i < n else "ghost" for i in rng.integers(0, n + 2, m)],
            "action_id": rng.choice(["none", "call", "qbr", "email"], m, p=[0.4, 0.3, 0.2, 0.1]).tolist(),
            "ts": [START + timedelta(days=float(o)) for o in offsets],
            "touch_id": [f"t{i}" if rng.random() > 0.1 else None for i in range(m)],
        },
        schema={"account_id": pl.String, "action_id": pl.String, "ts": T.TS_DTYPE, "touch_id": pl.String},
    )
    k = 260
    kinds = rng.choice(["churn", "expansion", "onboarded"], k, p=[0.4, 0.4, 0.2]).tolist()
    credited = rng.integers(-200, m, k)
    out_ts = [START + timedelta(days=float(d)) for d in (rng.integers(0, 210, k) if dates else rng.uniform(0, 210, k))]
    touch_ids = touches.get_column("touch_id").to_list()
    outcomes = pl.DataFrame(
        {
            "account_id": [ids[i] for i in rng.integers(0, n, k)],
            "ts": out_ts,
            "kind": kinds,
            "touch_id": [touch_ids[c] if c >= 0 and kinds[j] != "onboarded" else None for j, c in enumerate(credited)],
        },
        schema={"account_id": pl.String, "ts": T.TS_DTYPE, "kind": pl.String, "touch_id": pl.String},
    )
    return Book(accounts, empty_table("signals"), touches, outcomes)


@pytest.mark.parametrize("dates", [False, True])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counts_from_aggregates_equal_those_over_every_decision(seed: int, dates: bool) -> None:
    playbook = parse_playbook(default_playbook_text())
    book = random_book(seed, dates=dates)
    end = START + timedelta(days=180, hours=5)
    known = book.outcomes.filter(pl.col("ts") <= end)
    credited = sorted(set(known.filter(pl.col("touch_id").is_not_null()).get_column("kind").to_list()))
    got = T._credit_counts(
        book.accounts.lazy(), book.touches.lazy(), known, playbook, credited, horizon=playbook.horizon_days, end=end
    )
    want = reference_counts(book, playbook, end)
    assert got == want
    assert got[1] > 0  # not a vacuous comparison
    assert got[2]["churn"][0] > 0


def test_fallbacks_from_scanned_files_equal_those_of_the_loaded_book(tmp_path: Path) -> None:
    """``nextmove validate`` scans the touches of the book's files; the answer is the loaded book's."""
    from tests.engine.test_run_labels import PLAYBOOK, write_last_touch_book

    from nextmove.book.validate import load_book, load_table, scan_table
    from nextmove.features import window_fallbacks

    folder = write_last_touch_book(tmp_path / "book", n=120)
    playbook = parse_playbook(PLAYBOOK)
    loaded = window_fallbacks(load_book(folder, playbook=playbook), playbook)
    assert [f.kind for f in loaded] == ["churn"]
    scanned = T.window_fallbacks_lazy(
        scan_table(folder, "accounts"), scan_table(folder, "touches"), load_table(folder, "outcomes"), playbook
    )
    assert scanned == loaded
