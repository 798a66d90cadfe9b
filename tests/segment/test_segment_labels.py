"""Segments are named by the book's signal names, not by the stems of their columns: "high İptal sayfası ziyareti
frequency", not "high iptal sayfas ziyareti frequency"; a Greek name keeps its ⭐."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from nextmove.api.measures import SegmentCache
from nextmove.book import Book, empty_table
from nextmove.playbook.loader import load_playbook
from nextmove.segment import behavior_snapshot, segment_book, signal_labels

AS_OF = datetime(2025, 6, 1, tzinfo=UTC)
CANCEL = "İptal sayfası ziyareti"
RATING = "⭐ αξιολόγηση"


def _book(n: int = 200) -> Book:
    """Two groups: one visits the cancel page weekly and rates low, the other seldom and rates high."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        churny = i % 2 == 0
        visits = 40 if churny else 3
        for d in rng.choice(300, size=visits, replace=False):
            rows.append((f"a{i}", AS_OF - timedelta(days=int(d) + 1), CANCEL, 1.0))
        for d in range(0, 300, 30):
            rating = rng.normal(2.0 if churny else 4.5, 0.3)
            rows.append((f"a{i}", AS_OF - timedelta(days=d + 1), RATING, float(rating)))
    signals = pl.DataFrame(rows, schema=["account_id", "ts", "name", "value"], orient="row")
    accounts = pl.DataFrame({"account_id": [f"a{i}" for i in range(n)], "arr": rng.uniform(1e3, 1e4, n)})
    return Book(accounts, signals, empty_table("touches"), empty_table("outcomes"))


def test_segments_are_named_by_the_books_signal_names() -> None:
    book = _book()
    labels = signal_labels(book, AS_OF)
    assert labels == {"iptal_sayfasi_ziyareti": CANCEL, "αξιολόγηση": RATING}
    report = segment_book(behavior_snapshot(book, AS_OF), labels=labels, as_of=AS_OF)
    names = [s.name for s in report.segments]
    assert len(names) == 2
    assert all(CANCEL in name or RATING in name for name in names), names
    assert not any("iptal sayfas" in name for name in names)


def test_the_apis_segments_are_named_by_the_books_signal_names() -> None:
    report = SegmentCache(seed=0).report(_book(), load_playbook(), AS_OF)
    names = [s["name"] for s in report["segments"]]
    assert all(CANCEL in name or RATING in name for name in names), names
