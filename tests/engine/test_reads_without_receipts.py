"""What reads a few values of a stored run's recommendations reads those alone, never the receipts whole: the
owners a new key is checked against, the segment ids a run compares with its previous run's, and the actions
dismissals that name nothing answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from tests.measure.receipt_reads import assert_no_receipt_read_whole, statements_of

from nextmove.cli.keys import unknown_owner_warnings
from nextmove.engine.holds import read_holds
from nextmove.engine.run import _previous_segments
from nextmove.playbook.loader import load_playbook
from nextmove.store import FeedbackEvent, RecommendationRecord, RunRecord, Store, open_store

WHEN = datetime(2026, 3, 2, tzinfo=UTC)
OWNERS = ["Ana", "Bo Lind", None]


def receipt(i: int) -> dict[str, Any]:
    """A receipt with the bulk a run writes; some without a segment id, or without an account at all."""
    account: Any = {"name": f"Account {i}", "arr": 100.0 * i, "segment_id": i % 3}
    if i % 4 == 1:
        del account["segment_id"]
    if i % 4 == 2:
        account = "not an object"
    return {
        "summary": f"renewal in {i} days",
        "signals": [{"feature": f"f{j}", "text": f"signal {j}"} for j in range(20)],
        "comparables": [{"account_id": f"other-{j}", "similarity": 0.5} for j in range(40)],
        "account": account,
    }


def saved(tmp_path: Path, actions: list[str]) -> Store:
    store = open_store(f"sqlite:///{(tmp_path / 'store.db').as_posix()}")
    run = RunRecord(
        run_id="r1",
        book_source="crm",
        playbook_hash="h",
        status="succeeded",
        as_of=WHEN - timedelta(days=7),
        created_at=WHEN - timedelta(days=7),
        finished_at=WHEN - timedelta(days=7),
        summary={"segments": {"k": 3}},
    )
    records = [
        RecommendationRecord(
            run_id="r1",
            account_id=f"acc-{i:02d}",
            action_id=actions[i % len(actions)],
            arm="model",
            propensity=1.0,
            expected_value_usd=float(i),
            owner=OWNERS[i % len(OWNERS)],
            evidence=receipt(i),
            alternatives=[{"action_id": "none", "why": "lower_value", "value_usd": 0.0}],
        )
        for i in range(24)
    ]
    store.save_run(run, records)
    return store


def test_a_key_for_an_unknown_owner_reads_the_owners_alone(tmp_path: Path) -> None:
    with saved(tmp_path, ["none"]) as store:
        warnings: list[list[str]] = []
        statements = statements_of(lambda: warnings.append(unknown_owner_warnings(store, ["ana", "Bo Lind"])))
    assert_no_receipt_read_whole(statements)
    assert warnings == [["no account of run r1 (the latest) is owned by 'ana' (did you mean 'Ana'?); the key was "
                         "created, and sees no account until one has that owner (`nextmove keys revoke` it if the "
                         "owner is wrong)"]]  # fmt: skip


def test_a_run_reads_the_previous_runs_segment_ids_alone(tmp_path: Path) -> None:
    record = RunRecord(run_id="r2", book_source="crm", playbook_hash="h", status="running", as_of=WHEN)
    with saved(tmp_path, ["none"]) as store:
        found: list[Any] = []
        statements = statements_of(lambda: found.append(_previous_segments(store, record)))
        expected = [
            (r.account_id, r.evidence["account"]["segment_id"])
            for r in store.recommendations("r1")
            if isinstance(r.evidence["account"], dict) and "segment_id" in r.evidence["account"]
        ]
    assert_no_receipt_read_whole(statements)
    frame, previous = found[0]
    assert previous.run_id == "r1"
    assert frame.rows() == expected
    assert frame.schema == pl.Schema({"account_id": pl.String, "segment_id": pl.Int64})


def test_dismissals_that_name_nothing_read_the_recommended_actions_alone(tmp_path: Path) -> None:
    playbook = load_playbook()
    actions = [a.id for a in playbook.actions][:2]
    with saved(tmp_path, actions) as store:
        store.add_feedback(
            [
                FeedbackEvent(
                    event_id=f"dismiss-{i}", account_id=f"acc-{i:02d}", kind="dismissed", ts=WHEN - timedelta(days=1),
                    reason="in touch",
                )
                for i in (3, 4, 5)
            ]
        )  # fmt: skip
        holds: list[pl.DataFrame] = []
        statements = statements_of(lambda: holds.append(read_holds(store, playbook, WHEN)))
    assert_no_receipt_read_whole(statements)
    held = holds[0].sort("account_id").select("account_id", "action_id", "why").rows()
    assert held == [(f"acc-{i:02d}", actions[i % 2], "dismissed") for i in (3, 4, 5)]
