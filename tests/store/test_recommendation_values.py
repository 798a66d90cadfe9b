"""Store.recommendation_values: a few values of many recommendations, picked out of the receipts by the database."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from nextmove.errors import ConfigError
from nextmove.store import RecommendationRecord, RunRecord, Store

PRECISE = 0.30000000000000004
"""A float that needs 17 digits: a path read through json_quote (15 digits) would come back as 0.3."""


def saved(store: Store) -> None:
    receipts = [
        {
            "summary": "renewal in 29 days",
            "account": {"name": "Acme", "arr": PRECISE, "segment_id": 3, "vip": True, "tags": ["a", "b"]},
        },
        {"signals": [{"text": "usage down"}], "account": {"name": None, "arr": 12}},
        {"account": "not an object"},
    ]
    alternatives = [
        [{"action_id": "call", "why": "capacity", "value_usd": 12.5}],
        [],
        [{"action_id": "email", "why": "lower_value", "value_usd": -1}],
    ]
    store.save_run(
        RunRecord(
            run_id="r1",
            book_source="b",
            playbook_hash="h",
            status="succeeded",
            finished_at=datetime.now(UTC),
        ),
        [
            RecommendationRecord(
                run_id="r1",
                account_id=f"acc-{i}",
                action_id="none" if i != 1 else "call",
                arm="model",
                propensity=1.0,
                expected_value_usd=float(i),
                evidence=receipts[i],
                alternatives=alternatives[i],
            )
            for i in (2, 0, 1)  # saved out of order: read back by account
        ],
    )


def rows(store: Store, fields: dict[str, tuple[str | int, ...]], **kwargs: object) -> list[tuple[object, ...]]:
    return [row for batch in store.recommendation_values("r1", fields, **kwargs) for row in batch]  # type: ignore[arg-type]


def test_recommendation_values_reads_columns_and_json_paths_as_json_gives_them(store: Store) -> None:
    saved(store)
    fields: dict[str, tuple[str | int, ...]] = {
        "account_id": ("account_id",),
        "value": ("expected_value_usd",),
        "name": ("evidence", "account", "name"),
        "arr": ("evidence", "account", "arr"),
        "segment": ("evidence", "account", "segment_id"),
        "vip": ("evidence", "account", "vip"),
        "tags": ("evidence", "account", "tags"),
        "signals": ("evidence", "signals"),
        "why": ("alternatives", 0, "why"),
        "best": ("alternatives", 0, "value_usd"),
    }
    got = rows(store, fields)
    assert got == [
        ("acc-0", 0.0, "Acme", PRECISE, 3, True, ["a", "b"], None, "capacity", 12.5),
        ("acc-1", 1.0, None, 12, None, None, None, [{"text": "usage down"}], None, None),
        ("acc-2", 2.0, None, None, None, None, None, None, "lower_value", -1),
    ]
    # Each value exactly as the whole receipt, read and parsed, holds it.
    whole = {r.account_id: (r.evidence, r.alternatives) for r in store.recommendations("r1")}
    assert got[0][3] == whole["acc-0"][0]["account"]["arr"]
    assert json.dumps(got[0][6]) == json.dumps(whole["acc-0"][0]["account"]["tags"])


def test_recommendation_values_filters_and_streams_in_batches(store: Store) -> None:
    saved(store)
    fields: dict[str, tuple[str | int, ...]] = {"account_id": ("account_id",), "summary": ("evidence", "summary")}
    batches = list(store.recommendation_values("r1", fields, batch_rows=2))
    assert [len(b) for b in batches] == [2, 1]
    assert rows(store, fields, action_id="none") == [("acc-0", "renewal in 29 days"), ("acc-2", None)]
    assert rows(store, fields, account_ids=["acc-1", "acc-9"]) == [("acc-1", None)]
    assert rows(store, fields, account_ids=[]) == []
    assert rows(store, {"only": ("evidence", "summary")}, account_ids=["acc-0"]) == [("renewal in 29 days",)]


@pytest.mark.parametrize(
    ("path", "said"),
    [
        (("nope",), "must start at a column of recommendations"),
        ((), "must start at a column of recommendations"),
        (("owner", "x"), "which is not JSON"),
        (("evidence", 'a"b'), "by keys"),
        (("evidence", 1.5), "by keys"),
    ],
)
def test_recommendation_values_refuses_a_path_it_cannot_read_before_reading(
    store: Store, path: tuple[object, ...], said: str
) -> None:
    with pytest.raises(ConfigError, match=said):
        store.recommendation_values("r1", {"v": path})  # type: ignore[dict-item]
