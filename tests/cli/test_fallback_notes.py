"""`nextmove evaluate`, `health` and `segment` say, as a run does, which outcome kind their training set labels
by window although the outcomes credit it to touches."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from tests.engine.test_run_labels import PLAYBOOK, write_last_touch_book
from typer.testing import CliRunner

from nextmove.book.validate import load_book
from nextmove.cli import app
from nextmove.features import build_training_set
from nextmove.measure.lift import latest_data_time
from nextmove.playbook.loader import parse_playbook

runner = CliRunner()
FAST = ["--folds", "2", "--trees", "20"]
START = "churn is labelled by its window"


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Churns credited only to the last real touch, decisions to do nothing logged as none."""
    return write_last_touch_book(tmp_path_factory.mktemp("fallback") / "book")


def _run_note(folder: Path, as_of: datetime | None = None) -> str:
    """The note a run's training set gives as of ``as_of`` (default: the book's, as a run's)."""
    playbook = parse_playbook(PLAYBOOK)
    loaded = load_book(folder, playbook=playbook)
    notes: list[str] = []
    build_training_set(loaded, playbook, as_of=as_of, notes=notes)
    [note] = notes
    assert note.startswith(START)
    return note


def _printed(output: str) -> str:
    return " ".join(output.split())


def test_nextmove_evaluate_says_which_kind_is_labelled_by_window(book: Path, tmp_path: Path) -> None:
    out = tmp_path / "evaluation.json"
    result = runner.invoke(app, ["evaluate", "--book", str(book), "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    # evaluate builds its decisions as of the book's latest data
    note = _run_note(book, latest_data_time(load_book(book, playbook=parse_playbook(PLAYBOOK))))
    notes = json.loads(out.read_text(encoding="utf-8"))["notes"]
    assert [n for n in notes if n.startswith(START)] == [note]
    assert _printed(result.output).count(note) == 1


def test_nextmove_health_says_which_kind_is_labelled_by_window(book: Path, tmp_path: Path) -> None:
    out = tmp_path / "health.csv"
    result = runner.invoke(app, ["health", "--book", str(book), "--out", str(out), "--no-save-model"])
    assert result.exit_code == 0, result.output
    assert _printed(result.output).count(f"note: {_run_note(book)}") == 1


def test_nextmove_segment_says_which_kind_is_labelled_by_window(book: Path, tmp_path: Path) -> None:
    out = tmp_path / "segments"
    result = runner.invoke(app, ["segment", "--book", str(book), "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    note = _run_note(book)
    assert json.loads((out / "segments.json").read_text(encoding="utf-8"))["notes"] == [note]
    assert _printed(result.output).count(f"note: {note}") == 1
    # Without a response there is no training set, and nothing to say.
    bare = runner.invoke(app, ["segment", "--book", str(book), "--out", str(tmp_path / "bare"), "--no-response"])
    assert bare.exit_code == 0, bare.output
    assert json.loads((tmp_path / "bare" / "segments.json").read_text(encoding="utf-8"))["notes"] == []
