"""A stored run's report reads only what its page shows: no receipt whole, the same page as from whole receipts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from tests.report.test_report import make_run
from tests.store.conftest import pg_admin_url, pg_schema_url

from nextmove.engine.online import served_run
from nextmove.report import build_report_data, render_report
from nextmove.report.stored import recommendations_frame, report_data_from_store
from nextmove.store import RecommendationRecord, RunRecord, Store, open_store

__all__ = ["pg_admin_url", "pg_schema_url"]  # the PostgreSQL fixtures of the store's tests

RUNNER_UPS = [
    [],
    [{"action_id": "vip_upgrade", "why": "capacity", "value_usd": 31.7}],
    [{"action_id": "winback_sms", "why": "lower_value", "value_usd": -4.2}],
    [{"action_id": "loyalty_points", "why": "cooldown", "value_usd": 0}],
    [{"action_id": "vip_upgrade", "why": "rule", "value_usd": 8.123456789012345}],
    [{"action_id": "vip_upgrade", "value_usd": 3.0}],
]


def receipt(i: int, r: dict[str, Any]) -> dict[str, Any]:
    """A receipt as a run writes it: a summary (or only signals), the account, and bulk the page never shows."""
    evidence: dict[str, Any] = json.loads(r["evidence"])
    if i % 5 == 0:
        del evidence["summary"]
        evidence["signals"] = [{"feature": "orders_90d", "text": f"{i} orders"}, {"feature": "x", "text": "lapsing"}]
    account = {k: r[k] for k in ("lifecycle_stage", "arr", "health_score", "health_band")}
    if i % 3 == 0:
        account["name"] = f"Shopper <{i}>"
    if i % 4 == 0:
        account["arr_at_risk_usd"] = r["arr"] / 3
    evidence["account"] = account
    evidence["comparables"] = [{"account_id": f"other-{j}", "similarity": 0.5} for j in range(40)]
    return evidence


def save(url: str) -> None:
    summary, recs = make_run(90)
    records = [
        RecommendationRecord(
            run_id="run-b2c",
            account_id=r["account_id"],
            action_id=r["action_id"],
            arm=r["arm"],
            propensity=0.9,
            expected_value_usd=r["expected_value_usd"],
            value_low_usd=r["value_low_usd"],
            value_high_usd=r["value_high_usd"],
            default_action_id=r["default_action_id"],
            differs_from_default=r["differs_from_default"],
            owner=r["owner"],
            evidence=receipt(i, r),
            alternatives=RUNNER_UPS[i % len(RUNNER_UPS)],
        )
        for i, r in enumerate(recs.iter_rows(named=True))
    ]
    with open_store(url) as store:
        store.save_run(
            RunRecord(
                run_id="run-b2c",
                book_source="shop",
                playbook_hash="h",
                status="succeeded",
                finished_at=datetime.now(UTC),
                summary=summary,
            ),
            records,
        )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stored(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store on each backend holding one succeeded run of 90 accounts with full receipts."""
    url = (
        f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_schema_url")
    )
    save(url)
    with open_store(url) as store:
        yield store


def from_whole_receipts(store: Store) -> Any:
    """The report data as built from every receipt read whole (what the page showed before)."""
    run = store.get_run("run-b2c")
    serving = served_run(store)
    served = False if serving is None else (True if serving.run_id == run.run_id else serving.run_id)
    frame = recommendations_frame(store.recommendations(run.run_id))
    return build_report_data({**run.summary, "run_id": run.run_id}, frame, served=served)


@pytest.mark.parametrize("table_rows", [20_000, 25])
def test_stored_report_shows_what_whole_receipts_show(
    stored: Store, table_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("nextmove.report.data.MAX_TABLE_ROWS", table_rows)  # 25: the table keeps the largest values
    data = report_data_from_store(stored)
    expected = from_whole_receipts(stored)
    assert data == expected
    assert len(data.table) == min(table_rows, 90)
    whys = {row["why"] for row in data.table}
    assert "lapsing" in " ".join(whys)  # a receipt without a summary: its signals
    assert any(r["why"] for r in data.top_at_risk)
    left_alone = next(s for s in data.sentences if "left alone" in s)
    assert "did not fit the capacities" in left_alone
    assert "is not eligible" in left_alone
    render = re.compile(r"generated [^<]* by")
    assert render.sub("", render_report(data)) == render.sub("", render_report(expected))


def test_stored_report_reads_no_receipt_whole(stored: Store) -> None:
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        data = report_data_from_store(stored)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    assert len(data.table) == 90
    read = [s for s in statements if re.search(r"\bFROM recommendations\b", s)]
    assert read
    # The receipts (evidence, alternatives) are read only through JSON paths the database follows, never whole.
    for statement in read:
        for match in re.finditer(r"recommendations\.(evidence|alternatives)\b", statement):
            before, after = statement[: match.start()], statement[match.end() :]
            assert before.rstrip().lower().endswith("json_extract(") or after.lstrip().startswith("#>"), statement
