"""Tests of the store's record types: validation at construction, repr."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nextmove.errors import ConfigError
from nextmove.store import FeedbackEvent, ModelVersionRecord, RecommendationRecord, RunRecord


def test_run_record_rejects_unknown_status() -> None:
    with pytest.raises(ConfigError, match=r"RunRecord\.status must be one of running"):
        RunRecord(run_id="r", book_source="b", playbook_hash="h", status="done")  # type: ignore[arg-type]


def test_run_record_defaults_to_running_now_in_utc() -> None:
    run = RunRecord(run_id="r", book_source="b", playbook_hash="h")
    assert run.status == "running"
    assert run.created_at.tzinfo == UTC


@pytest.mark.parametrize("propensity", [-0.1, 1.5, float("nan")])
def test_recommendation_record_rejects_bad_propensity(propensity: float) -> None:
    with pytest.raises(ConfigError, match="propensity"):
        RecommendationRecord(
            run_id="r",
            account_id="a",
            action_id="x",
            arm="model",
            propensity=propensity,
            expected_value_usd=0.0,
        )


def test_feedback_event_rejects_unknown_kind() -> None:
    with pytest.raises(ConfigError, match=r"FeedbackEvent\.kind"):
        FeedbackEvent(
            event_id="e",
            account_id="a",
            kind="clicked",  # type: ignore[arg-type]
            ts=datetime(2024, 1, 1, tzinfo=UTC),
        )


def test_model_version_record_repr_leaves_out_blob() -> None:
    record = ModelVersionRecord(model_id="m", kind="k", playbook_hash="h", blob=b"secret" * 1000)
    assert "secret" not in repr(record)


def test_records_are_frozen() -> None:
    run = RunRecord(run_id="r", book_source="b", playbook_hash="h")
    with pytest.raises(AttributeError):
        run.status = "failed"  # type: ignore[misc]
