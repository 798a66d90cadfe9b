"""``nextmove segment`` end to end on a small lab book: assignments, summary, response, moves, errors."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from nextmove.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("segment-cli") / "book"
    result = runner.invoke(app, ["simulate", "--out", str(folder), "--accounts", "300", "--months", "8"])
    assert result.exit_code == 0, result.output
    return folder


def test_cli_segment_writes_assignments_and_summary(book: Path, tmp_path: Path) -> None:
    out = tmp_path / "seg"
    result = runner.invoke(app, ["segment", "--book", str(book), "--out", str(out), "--no-response"])
    assert result.exit_code == 0, result.output
    assignments = pl.read_csv(out / "segments.csv")
    summary = json.loads((out / "segments.json").read_text(encoding="utf-8"))
    assert assignments.columns == ["account_id", "segment_id", "segment"]
    assert assignments.height == summary["accounts"]
    assert sum(s["accounts"] for s in summary["segments"]) == summary["accounts"]
    assert 2 <= summary["k"] <= 8
    assert summary["criterion"] == "stability"
    assert set(summary["stabilities"]) == {str(k) for k in range(2, 9)}
    assert summary["moves"] is None
    assert summary["spend"] is None
    assert all(s["response"] is None for s in summary["segments"])
    assert all(s["health"] is not None for s in summary["segments"])
    assert "churn" in summary["segments"][0]["rates"]
    # The same book again into the same folder: same bytes, and the previous run is matched.
    again = runner.invoke(app, ["segment", "--book", str(book), "--out", str(out), "--no-response"])
    assert again.exit_code == 0, again.output
    assert pl.read_csv(out / "segments.csv").equals(assignments)
    moved = json.loads((out / "segments.json").read_text(encoding="utf-8"))["moves"]
    assert moved["moved"] == 0
    assert moved["accounts"] == assignments.height
    assert "0 of" in again.output


@pytest.mark.slow
def test_cli_segment_ranks_segments_by_response(book: Path, tmp_path: Path) -> None:
    out = tmp_path / "seg"
    args = [
        "segment",
        "--book",
        str(book),
        "--out",
        str(out),
        "--trees",
        "20",
        "--folds",
        "2",
        "--families",
        "objective",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "segments.json").read_text(encoding="utf-8"))
    ranks = [s["response"]["rank"] for s in summary["segments"]]
    assert ranks == list(range(1, len(ranks) + 1))
    values = [s["response"]["value_usd"] for s in summary["segments"]]
    assert values == sorted(values, reverse=True)
    families = {f["family"] for s in summary["segments"] for f in s["response"]["families"]}
    assert families <= {"retention", "expansion", "advocacy", "recovery", "onboarding"}
    assert summary["families"] == "objective"
    assert summary["spend"]["touches"] > 0
    assert 0.0 <= summary["spend"]["share_below_average"] <= 1.0
    assert summary["book_response_usd"] is not None
    assert "touches went to segments that respond below the book" in result.output
    assert "Book: " in result.output


def test_cli_segment_errors(book: Path, tmp_path: Path) -> None:
    bad = runner.invoke(app, ["segment", "--book", str(book), "--out", str(tmp_path), "--families", "channel"])
    assert bad.exit_code == 2
    assert "--families" in bad.output
    missing = runner.invoke(
        app, ["segment", "--book", str(book), "--out", str(tmp_path), "--previous", str(tmp_path / "nope.csv")]
    )
    assert missing.exit_code == 2
    assert "not a file" in missing.output
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("account_id,cluster\na,1\n", encoding="utf-8")
    broken = runner.invoke(
        app, ["segment", "--book", str(book), "--out", str(tmp_path), "--previous", str(wrong), "--no-response"]
    )
    assert broken.exit_code == 2
    assert "segment_id" in broken.output


def test_cli_segment_table_names_no_best_family_when_none_pays_reliably() -> None:
    # Every response "$0 [$0, $0]", yet the best family read "marketing": the one that loses least.
    from rich.console import Console

    from nextmove.cli.segment import render_segments
    from nextmove.segment import SegmentReport
    from nextmove.segment.response import FamilyResponse, SegmentResponse
    from nextmove.segment.summary import SegmentProfile

    costly = FamilyResponse("marketing", -1.0, -1.0, -1.0, -1.0, None, "promo_email")
    response = SegmentResponse(0, 3, 0.0, 0.0, 0.0, 0.0, None, 1, [costly])
    profile = SegmentProfile(0, "quiet", 3, 1.0, [], 21_559.0, 7_186.0, 59.0, response=response)
    report = SegmentReport(
        None, 3, 2, "stability", {2: 0.2}, {}, [], [profile], pl.DataFrame(), "team", 0.0, "", 0.9, None, None
    )
    console = Console(record=True, width=200)
    render_segments(report, console)
    row = next(line for line in console.export_text().splitlines() if "quiet" in line)
    assert "marketing" not in row
    assert row.rstrip().endswith("none")
    # "best family sales" for a segment whose sales figure was $26 [-$384, $353]: it may be worth nothing.
    noisy = FamilyResponse("sales", 26.0, -384.0, 353.0, -1.4, None, "renewal_call")
    response = SegmentResponse(0, 3, 26.0, -384.0, 353.0, 0.0, None, 1, [noisy], "renewal_call")
    profile = SegmentProfile(0, "field", 3, 1.0, [], 21_559.0, 7_186.0, 59.0, response=response)
    report = SegmentReport(
        None, 3, 2, "stability", {2: 0.2}, {}, [], [profile], pl.DataFrame(), "team", 0.0, "", 0.9, None, None
    )
    console = Console(record=True, width=400)
    render_segments(report, console)
    text = console.export_text()
    row = next(line for line in text.splitlines() if "field" in line)
    assert "$26 [-$384, $353]" in row
    assert "sales" not in row
    assert row.rstrip().endswith("none")
    assert "Book: no action gains on average over the book ($0 per account)." in text


def test_cli_segment_spend_sentence_says_when_the_gain_is_not_reliable() -> None:
    from nextmove.cli.segment import spend_sentence
    from nextmove.segment import SpendEfficiency

    spend = SpendEfficiency(90, 5_114, 2_768, 0.54, 6_885.0, 3_809.0, [1, 2], 599, 162_407.0, -365_670.0, 683_893.0)
    assert spend_sentence(spend) == (
        "Last 90 days: 54% of 5,114 touches went to segments that respond below the book; moving 599 of them "
        "is projected at $162,407 [-$365,670, $683,893], not reliably above $0."
    )
    reliable = SpendEfficiency(90, 100, 40, 0.4, 0.0, 0.0, [1], 10, 900.0, 100.0, 2_000.0)
    assert spend_sentence(reliable).endswith("moving 10 of them would recover $900 [$100, $2,000].")
    none_moved = SpendEfficiency(90, 100, 40, 0.4, 0.0, 0.0, [1], 0, 0.0, 0.0, 0.0)
    assert "none is moved" in spend_sentence(none_moved)
