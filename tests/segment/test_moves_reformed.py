"""Segments re-formed into another number of segments: the moves between them are not counted as such."""

from __future__ import annotations

import json

import polars as pl
from rich.console import Console
from tests.report.test_report import make_run

from nextmove.cli.segment import render_segments
from nextmove.report import build_report_data
from nextmove.segment import SegmentReport, match_segments


def _frame(labels: dict[str, int]) -> pl.DataFrame:
    return pl.DataFrame({"account_id": list(labels), "segment_id": list(labels.values())})


# Two segments split into three: a fifth of the accounts "move" only because k went 2 → 3.
BEFORE = _frame({f"a{i}": 0 if i < 5 else 1 for i in range(10)})
AFTER = _frame({f"a{i}": 0 if i < 4 else (1 if i < 8 else 2) for i in range(10)})


def test_match_segments_says_the_segments_were_reformed_when_their_number_changed() -> None:
    moves = match_segments(BEFORE, AFTER)
    assert (moves.segments_before, moves.segments_after, moves.reformed) == (2, 3, True)
    assert moves.moved == 3  # still counted in the JSON, but not comparable
    kept = json.loads(json.dumps(moves.to_dict()))
    assert (kept["segments_before"], kept["segments_after"], kept["reformed"]) == (2, 3, True)
    same_k = match_segments(BEFORE, _frame({f"a{i}": 0 if i < 4 else 1 for i in range(10)}))
    assert (same_k.segments_before, same_k.segments_after, same_k.reformed) == (2, 2, False)


def test_report_says_reformed_instead_of_counting_moves() -> None:
    summary, recs = make_run(20)
    segment = {"accounts": 10, "traits": [], "response": {"value_usd": 1.0, "ratio": 1.0, "families": []}}
    summary["segments"] = {
        "k": 3,
        "segments": [{**segment, "id": 0, "name": "quiet"}, {**segment, "id": 1, "name": "busy"}],
        "moves": match_segments(BEFORE, AFTER).to_dict(),
        "previous_run": {"run_id": "run-jan", "as_of": "2026-01-02T00:00:00+00:00"},
    }
    notes = build_report_data(summary, recs).segment_notes
    assert (
        "The segments were re-formed since the previous run of this book, run-jan (as of 2 January 2026) "
        "(2 → 3 segments): moves between segments are not comparable; 0 are new."
    ) in notes
    assert not any("moved to another segment" in n for n in notes)


def test_cli_says_reformed_instead_of_counting_moves() -> None:
    moves = match_segments(BEFORE, AFTER)
    report = SegmentReport(None, 10, 3, "stability", {3: 0.9}, {}, [], [], AFTER, "team", None, "", None, None, moves)
    console = Console(record=True, width=200)
    render_segments(report, console)
    text = console.export_text()
    assert "the segments were re-formed (2 → 3 segments), so moves between segments are not comparable" in text
    assert "accounts moved" not in text
