"""``nextmove lift`` and ``GET /v1/lift`` read a few values of each recommendation, never its whole receipt: a run's
receipts (signals, comparables, runner-ups) are most of what it stores, and lift read them all (1.2 GiB for 30,000
accounts)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.cli.test_lift_cli import Measured, _api_lift, measured
from tests.measure.receipt_reads import assert_no_receipt_read_whole, statements_of
from typer.testing import CliRunner

from nextmove.api.measures import lift_report
from nextmove.book.validate import load_book
from nextmove.cli import app
from nextmove.engine.holds import completion_feedback
from nextmove.measure.lift import estimate_lift, recommendations_frame
from nextmove.playbook.loader import parse_playbook
from nextmove.store import open_store

__all__ = ["measured"]  # the lab run of the lift CLI's tests, stored and answered for a horizon

runner = CliRunner()


def _with_bulk(measured: Measured, tmp_path: Path) -> str:
    """A store holding ``lab-run`` with receipts as a run writes them: signals, comparables and runner-ups beside
    what lift reads; some recommendations of a variant."""
    store = f"sqlite:///{(tmp_path / 'bulk.db').as_posix()}"
    with open_store(measured.store) as old, open_store(store) as bulk:
        run = old.get_run("lab-run")
        recs = [
            replace(
                r,
                variant="short" if i % 5 == 0 and r.action_id != "none" else None,
                evidence={
                    **r.evidence,
                    "summary": f"renewal in {i} days",
                    "signals": [{"feature": f"f{j}", "text": f"signal {j}"} for j in range(20)],
                    "comparables": [{"account_id": f"other-{j}", "similarity": 0.5} for j in range(40)],
                },
                alternatives=[{"action_id": "none", "why": "lower_value", "value_usd": 0.0, "projected": []}],
            )
            for i, r in enumerate(old.recommendations("lab-run"))
        ]
        bulk.save_run(run, recs)
    return store


def test_cli_and_api_lift_read_no_receipt_whole_and_measure_what_the_whole_receipts_measure(
    measured: Measured, tmp_path: Path
) -> None:
    store = _with_bulk(measured, tmp_path)
    out = tmp_path / "lift.json"
    args = ["lift", "--book", str(measured.book), "--store", store, "--run", "lab-run", "--out", str(out)]
    results: list[Any] = []
    cli_statements = statements_of(lambda: results.append(runner.invoke(app, args)))
    assert results[0].exit_code == 0, results[0].output
    assert_no_receipt_read_whole(cli_statements)
    playbook = parse_playbook((measured.book / "playbook.toml").read_text(encoding="utf-8"))
    book = load_book(str(measured.book), playbook=playbook)
    api: list[dict[str, Any]] = []
    with open_store(store) as opened:
        run = opened.get_run("lab-run")
        # What GET /v1/lift answers (the server itself reads the served run's receipts to decide from them).
        measure = lambda: api.append(lift_report(opened, book, playbook, run, allow_partial=False))  # noqa: E731
        assert_no_receipt_read_whole(statements_of(measure))
        frame = recommendations_frame(opened.recommendations("lab-run"))
        assert run.as_of is not None
        feedback = completion_feedback(opened, run.as_of, run.as_of + timedelta(days=playbook.horizon_days))
    assert api[0] == _api_lift(store, measured.book, "lab-run")

    # The figures are those of the whole receipts, as lift read them before.
    expected = estimate_lift(frame, book, playbook, as_of=run.as_of, run_id=run.run_id, feedback=feedback).to_dict()
    assert frame.get_column("variant").drop_nulls().len() > 0
    assert json.loads(out.read_text(encoding="utf-8")) == json.loads(json.dumps(expected, default=str))
    assert api[0] == expected
