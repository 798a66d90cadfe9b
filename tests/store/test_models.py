"""Contract tests: model versions round-trip and exactly one of each kind is active."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from nextmove.errors import NotFoundError, StoreError
from nextmove.store import ModelVersionRecord, Store

T0 = datetime(2024, 4, 1, 8, 0, 0, 42, tzinfo=UTC)


def make_model(model_id: str, kind: str = "effect", **changes: object) -> ModelVersionRecord:
    record = ModelVersionRecord(
        model_id=model_id,
        kind=kind,
        playbook_hash="sha256:abc",
        blob=model_id.encode(),
        created_at=T0,
    )
    return dataclasses.replace(record, **changes)


def active_ids(store: Store) -> dict[str, list[str]]:
    active: dict[str, list[str]] = {}
    for record in store.list_models():
        if record.active:
            active.setdefault(record.kind, []).append(record.model_id)
    return active


def test_save_model_round_trips_every_field(store: Store) -> None:
    record = make_model(
        "m1",
        blob=bytes(range(256)) * 4096,
        trained_from=T0 - timedelta(days=365),
        trained_to=T0 - timedelta(days=1),
        features=["usage_level_28d", "tickets_count_90d"],
        metrics={"auc": 0.8123456789, "per_action": {"qbr": [0.1, None]}, "n": 10_000},
    )
    store.save_model(record)
    assert store.load_model("m1") == record
    assert store.list_models() == [record]


def test_save_model_rejects_an_existing_model_id(store: Store) -> None:
    store.save_model(make_model("m1"))
    with pytest.raises(StoreError, match="already exists"):
        store.save_model(make_model("m1", blob=b"other"))
    assert store.load_model("m1").blob == b"m1"


def test_load_model_unknown_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no model 'missing'"):
        store.load_model("missing")


def test_active_model_is_none_until_one_is_activated(store: Store) -> None:
    store.save_model(make_model("m1"))
    assert store.active_model("effect") is None
    store.activate_model("m1")
    active = store.active_model("effect")
    assert active is not None
    assert active.model_id == "m1"
    assert active.active


def test_activate_model_leaves_exactly_one_active_per_kind(store: Store) -> None:
    for model_id, kind in [("e1", "effect"), ("e2", "effect"), ("h1", "health")]:
        store.save_model(make_model(model_id, kind))
    store.activate_model("e1")
    store.activate_model("h1")
    store.activate_model("e2")
    assert active_ids(store) == {"effect": ["e2"], "health": ["h1"]}
    store.activate_model("e2")
    assert active_ids(store) == {"effect": ["e2"], "health": ["h1"]}


def test_activate_model_unknown_keeps_the_active_model(store: Store) -> None:
    store.save_model(make_model("e1", active=True))
    with pytest.raises(NotFoundError):
        store.activate_model("missing")
    assert active_ids(store) == {"effect": ["e1"]}


def test_save_model_active_replaces_the_active_model_of_its_kind(store: Store) -> None:
    store.save_model(make_model("e1", active=True))
    store.save_model(make_model("e2", active=True, created_at=T0 + timedelta(days=1)))
    assert active_ids(store) == {"effect": ["e2"]}
    assert not store.load_model("e1").active


def test_activate_model_concurrently_leaves_one_active(store: Store) -> None:
    ids = [f"e{i}" for i in range(6)]
    for model_id in ids:
        store.save_model(make_model(model_id))

    def activate(i: int) -> None:
        store.activate_model(ids[i % len(ids)])

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(activate, range(40)))
    assert len(active_ids(store)["effect"]) == 1


def test_database_refuses_two_active_models_of_a_kind(store: Store, sql) -> None:
    store.save_model(make_model("e1", active=True))
    store.save_model(make_model("e2"))
    with pytest.raises(sa.exc.IntegrityError):
        sql("UPDATE model_versions SET active = :on WHERE model_id = 'e2'", on=True)


def test_list_models_returns_newest_first_filtered_by_kind(store: Store) -> None:
    store.save_model(make_model("old", created_at=T0))
    store.save_model(make_model("new", created_at=T0 + timedelta(days=2)))
    store.save_model(make_model("h", kind="health", created_at=T0 + timedelta(days=1)))
    assert [m.model_id for m in store.list_models()] == ["new", "h", "old"]
    assert [m.model_id for m in store.list_models("effect")] == ["new", "old"]
    assert store.list_models("unknown") == []
