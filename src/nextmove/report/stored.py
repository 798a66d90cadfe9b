"""The report of a run kept in the store: its summary and recommendations, read back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import polars as pl

from nextmove.engine.online import served_run
from nextmove.engine.run_facts import ACCOUNT_FIELDS
from nextmove.engine.run_process import require_succeeded
from nextmove.errors import NotFoundError
from nextmove.report.data import (
    EVIDENCE_SUMMARY_KEYS,
    EvidenceSummaries,
    ReportData,
    build_report_data,
    evidence_summary,
)
from nextmove.store import RecommendationRecord, RunRecord, Store


def recommendations_frame(records: Sequence[RecommendationRecord]) -> pl.DataFrame:
    """Stored recommendations as the table a run writes (receipts as JSON text).

    Examples
    --------
    >>> rec = RecommendationRecord(run_id="r", account_id="a", action_id="none", arm="model",
    ...                            propensity=1.0, expected_value_usd=0.0,
    ...                            evidence={"account": {"lifecycle_stage": "mature", "arr": 1200.0}})
    >>> recommendations_frame([rec]).select("account_id", "lifecycle_stage", "arr").row(0)
    ('a', 'mature', 1200.0)
    """
    rows: list[dict[str, Any]] = []
    for r in records:
        account = r.evidence.get("account") if isinstance(r.evidence.get("account"), dict) else {}
        row: dict[str, Any] = {
            "account_id": r.account_id,
            "owner": r.owner,
            "action_id": r.action_id,
            "variant": r.variant,
            "arm": r.arm,
            "propensity": r.propensity,
            "expected_value_usd": r.expected_value_usd,
            "value_low_usd": r.value_low_usd,
            "value_high_usd": r.value_high_usd,
            "default_action_id": r.default_action_id,
            "differs_from_default": r.differs_from_default,
            "model_version": r.model_version,
            "evidence": json.dumps(r.evidence),
            "alternatives": json.dumps(r.alternatives),
        }
        for key in ACCOUNT_FIELDS:
            row[key] = account.get(key) if isinstance(account, dict) else None
        rows.append(row)
    schema = {
        "account_id": pl.Utf8,
        "owner": pl.Utf8,
        "action_id": pl.Utf8,
        "variant": pl.Utf8,
        "arm": pl.Utf8,
        "propensity": pl.Float64,
        "expected_value_usd": pl.Float64,
        "value_low_usd": pl.Float64,
        "value_high_usd": pl.Float64,
        "default_action_id": pl.Utf8,
        "differs_from_default": pl.Boolean,
        "model_version": pl.Utf8,
        "evidence": pl.Utf8,
        "alternatives": pl.Utf8,
        "name": pl.Utf8,
        "lifecycle_stage": pl.Utf8,
        "arr": pl.Float64,
        "health_score": pl.Float64,
        "health_band": pl.Utf8,
        "arr_at_risk_usd": pl.Float64,
        "segment_id": pl.Int64,
        "segment_name": pl.Utf8,
    }
    frame = pl.DataFrame(rows, schema=schema)
    # Columns no receipt carried are dropped, so the report says "no health scores" rather than showing nulls.
    return frame.select(
        [c for c in frame.columns if c in schema and (c not in ACCOUNT_FIELDS or frame[c].null_count() < frame.height)]
    )


def stored_run(store: Store, run_id: str | None = None) -> RunRecord:
    """The run ``run_id``, or the newest succeeded run; a clear error when there is none.

    Raises
    ------
    NotFoundError
        If there is no run ``run_id``, or (without one) no succeeded run.
    RunNotSucceededError
        If the run ``run_id`` has not succeeded (failed, interrupted, or still going): it has no
        decisions to report, and a report of none would read as a run that found nothing to do.
    """
    if run_id is not None:
        return require_succeeded(store.get_run(run_id), "only a succeeded run can be reported")
    run = store.latest_run(status="succeeded")
    if run is None:
        raise NotFoundError(f"the store at {store.url} has no finished run yet; run `nextmove run --book DIR` first")
    return run


REPORT_COLUMNS: dict[str, pl.DataType | type[pl.DataType]] = {
    "account_id": pl.Utf8,
    "owner": pl.Utf8,
    "action_id": pl.Utf8,
    "arm": pl.Utf8,
    "expected_value_usd": pl.Float64,
    "value_low_usd": pl.Float64,
    "value_high_usd": pl.Float64,
    "default_action_id": pl.Utf8,
    "differs_from_default": pl.Boolean,
}
"""The columns of a stored recommendation the report reads (as :func:`recommendations_frame` types them)."""

REPORT_ACCOUNT_FIELDS: dict[str, pl.DataType | type[pl.DataType]] = {
    "name": pl.Utf8,
    "lifecycle_stage": pl.Utf8,
    "arr": pl.Float64,
    "health_score": pl.Float64,
    "health_band": pl.Utf8,
    "arr_at_risk_usd": pl.Float64,
}
"""The fields of a receipt's ``account`` (of :data:`~nextmove.engine.run_facts.ACCOUNT_FIELDS`) the report reads."""

SUMMARY_BATCH = 500
"""Accounts per query when the report reads the "why" of the accounts it lists (below SQLite's limit of parameters)."""


def _json_number(value: Any) -> float | None:
    """A runner-up's ``value_usd`` as a number, as the report reads it from ``alternatives`` text (None if not one)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def report_frame(store: Store, run_id: str, *, batch_rows: int = 10_000) -> pl.DataFrame:
    """The stored recommendations of ``run_id`` as the report reads them: one row per account, no receipt.

    The columns of :data:`REPORT_COLUMNS`, the receipts' account fields of
    :data:`REPORT_ACCOUNT_FIELDS` (a field no receipt carries is left out, as
    :func:`recommendations_frame` does), their ``default_why`` and their first runner-up's ``why`` and
    ``value_usd`` (:data:`~nextmove.report.data.BEST_ALTERNATIVE_COLUMNS`). The database picks these values
    out of the receipts; the rows are read in batches of ``batch_rows``.
    """
    fields: dict[str, tuple[str | int, ...]] = {c: (c,) for c in REPORT_COLUMNS}
    fields |= {k: ("evidence", "account", k) for k in REPORT_ACCOUNT_FIELDS}
    fields |= {
        # Whether a control account's default did not fit the capacities (left_alone_reasons counts it so).
        "default_why": ("evidence", "default_why"),
        "best_alternative_why": ("alternatives", 0, "why"),
        "best_alternative_value_usd": ("alternatives", 0, "value_usd"),
    }
    schema = {**REPORT_COLUMNS, **REPORT_ACCOUNT_FIELDS, "default_why": pl.Utf8, "best_alternative_why": pl.Utf8}
    schema["best_alternative_value_usd"] = pl.Float64
    frames = [
        pl.DataFrame([(*row[:-1], _json_number(row[-1])) for row in batch], schema=schema, orient="row")
        for batch in store.recommendation_values(run_id, fields, batch_rows=batch_rows)
    ]
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
    # As in recommendations_frame: fields no receipt carried are dropped, so the report says "no health scores".
    return frame.select(
        [c for c in frame.columns if c not in REPORT_ACCOUNT_FIELDS or frame[c].null_count() < frame.height]
    )


def evidence_summaries(store: Store, run_id: str) -> EvidenceSummaries:
    """The "why" of the accounts the report lists, read from their receipts' summary and signals only."""
    fields = {"account_id": ("account_id",), **{k: ("evidence", k) for k in EVIDENCE_SUMMARY_KEYS}}

    def read(account_ids: Sequence[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for start in range(0, len(account_ids), SUMMARY_BATCH):
            chunk = account_ids[start : start + SUMMARY_BATCH]
            for batch in store.recommendation_values(run_id, fields, account_ids=chunk):
                for account_id, *values in batch:
                    out[str(account_id)] = evidence_summary(dict(zip(EVIDENCE_SUMMARY_KEYS, values, strict=True)))
        return out

    return read


def report_data_from_store(store: Store, run_id: str | None = None) -> ReportData:
    """The report data of a stored run (the newest succeeded one by default), saying whether it is the served run.

    Reads only what the page shows (see :func:`report_frame`), never a whole receipt: the "why"
    of the accounts the page lists comes from their receipts' summaries alone.
    """
    run = stored_run(store, run_id)
    frame = report_frame(store, run.run_id)
    summary = dict(run.summary)
    summary.setdefault("run_id", run.run_id)
    if run.as_of is not None:
        summary.setdefault("as_of", run.as_of.isoformat())
    serving = served_run(store)
    served = False if serving is None else (True if serving.run_id == run.run_id else serving.run_id)
    return build_report_data(summary, frame, served=served, evidence_summaries=evidence_summaries(store, run.run_id))
