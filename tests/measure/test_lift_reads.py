"""Lift reads a few values of each stored recommendation, never a whole receipt, and measures what it measured."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.measure.receipt_reads import assert_no_receipt_read_whole, statements_of
from tests.store.conftest import pg_admin_url, pg_schema_url

from nextmove.measure.lift import recommendations_frame, stored_recommendations_frame
from nextmove.store import RecommendationRecord, RunRecord, Store, open_store

__all__ = ["pg_admin_url", "pg_schema_url"]  # the PostgreSQL fixtures of the store's tests

PRECISE = 0.30000000000000004
"""A float that needs 17 digits: one read back rounded would change a lift's projected effect."""


def receipt(i: int) -> dict[str, Any]:
    """A receipt as a run writes it (bulk lift never reads), with the odd values lift must read as before."""
    projected: Any = [
        {"objective": "retention", "outcome": "churn", "unit": "probability", "without": 0.3, "with": 0.2,
         "effect": -0.1 * (i % 7), "effect_usd": 120.5 * i},
        {"objective": "expansion", "outcome": "upsell", "unit": "usd", "effect": PRECISE, "effect_usd": None},
    ]  # fmt: skip
    if i % 5 == 1:
        projected.append({"objective": "odd", "effect": True, "effect_usd": 3})  # a boolean is not a number
    if i % 5 == 2:
        projected.append({"effect": 1.0})  # no objective: left out
        projected.append("not an object")
    if i % 5 == 3:
        projected = "not a list"
    evidence: dict[str, Any] = {
        "schema": 1,
        "summary": f"renewal in {i} days",
        "signals": [{"feature": f"f{j}", "text": f"signal {j} of account {i}"} for j in range(20)],
        "comparables": [{"account_id": f"other-{j}", "similarity": 0.5} for j in range(40)],
        "account": {"name": f"Account <{i}>", "arr": 1000.0 * i, "segment_id": i % 4},
    }
    if i % 6 != 4:
        evidence["projected"] = projected
    if i % 4 == 0:
        evidence["model_action_id"] = "health_check_call"
    elif i % 4 == 1:
        evidence["model_action_id"] = 42  # not text: lift reads it as text
    return evidence


def save(url: str) -> None:
    records = [
        RecommendationRecord(
            run_id="run-1",
            account_id=f"acc-{i:03d}",
            action_id=("none", "health_check_call", "promo_email")[i % 3],
            variant="short" if i % 3 == 2 and i % 2 else None,
            arm=("model", "control", "explore")[i % 3],
            propensity=0.8,
            expected_value_usd=float(i),
            evidence=receipt(i),
            alternatives=[{"action_id": "promo_email", "why": "capacity", "value_usd": 1.5, "projected": []}],
        )
        for i in reversed(range(60))  # saved out of order: read back by account
    ]
    with open_store(url) as store:
        when = datetime(2026, 3, 2, tzinfo=UTC)
        run = RunRecord(run_id="run-1", book_source="b", playbook_hash="h", status="succeeded", as_of=when)
        store.save_run(run, records)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stored(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store on each backend holding one run of 60 accounts with full receipts."""
    url = (
        f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_schema_url")
    )
    save(url)
    with open_store(url) as store:
        yield store


@pytest.mark.parametrize("batch_rows", [10_000, 7])
def test_stored_recommendations_frame_is_the_frame_of_the_whole_receipts(stored: Store, batch_rows: int) -> None:
    frame = stored_recommendations_frame(stored, "run-1", batch_rows=batch_rows)
    expected = recommendations_frame(stored.recommendations("run-1"))
    assert frame.equals(expected)
    assert frame.schema == expected.schema
    assert frame.height == 60
    assert frame.get_column("projected").null_count() == 20  # the receipts without a list of projections
    assert "42" in frame.get_column("model_action_id").to_list()
    assert PRECISE in frame.get_column("projected").explode().struct.field("effect").to_list()


def test_stored_recommendations_frame_of_a_run_without_recommendations_is_empty(stored: Store) -> None:
    frame = stored_recommendations_frame(stored, "no-such-run")
    assert frame.is_empty()
    assert frame.schema == recommendations_frame([]).schema


def test_stored_recommendations_frame_reads_no_receipt_whole(stored: Store) -> None:
    assert_no_receipt_read_whole(statements_of(lambda: stored_recommendations_frame(stored, "run-1")))
    # What the check catches: the whole receipts, as lift read them before.
    with pytest.raises(AssertionError):
        assert_no_receipt_read_whole(statements_of(lambda: stored.recommendations("run-1")))
