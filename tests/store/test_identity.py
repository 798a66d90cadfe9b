"""One notion of a run's book: the notes comparing runs and segment moves match stored runs by it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from nextmove.engine.run_facts import repeated_as_of_note
from nextmove.measure.lift import overlap_note
from nextmove.playbook.loader import load_playbook
from nextmove.store import RunRecord, recorded_source, same_book

WHEN = datetime(2025, 9, 1, tzinfo=UTC)


def _run(run_id: str, book: str, playbook_hash: str) -> RunRecord:
    return RunRecord(run_id=run_id, book_source=book, playbook_hash=playbook_hash, status="succeeded", as_of=WHEN)


def test_a_folder_book_is_recorded_as_its_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lab").mkdir()
    monkeypatch.chdir(tmp_path)
    assert recorded_source("lab") == str((tmp_path / "lab").resolve())
    assert recorded_source("postgresql://db/book") == "postgresql://db/book"
    assert recorded_source("<nextmove.sim seed=3>") == "<nextmove.sim seed=3>"


def test_sibling_books_under_the_default_playbook_are_different_books(tmp_path: Path) -> None:
    """lab then lab2 into one store, neither with a playbook of its own: no note calls them the same book."""
    default = load_playbook(None).content_hash()
    lab = _run("lab-run", str(tmp_path / "lab"), default)
    lab2 = _run("lab2-run", str(tmp_path / "lab2"), default)
    assert not same_book(lab2, lab)
    assert repeated_as_of_note(lab2, [lab]) is None
    assert overlap_note(lab2, [lab, lab2], 42) is None


def test_weekly_folders_of_one_parent_under_their_own_playbook_are_one_book(tmp_path: Path) -> None:
    w04 = _run("w04", str(tmp_path / "crm" / "w04"), "own")
    w05 = _run("w05", str(tmp_path / "crm" / "w05"), "own")
    assert same_book(w05, w04)
    assert repeated_as_of_note(w05, [w04]) is not None
    assert not same_book(w05, _run("x", str(tmp_path / "other" / "w04"), "own"))  # another parent
    assert not same_book(w05, _run("y", str(tmp_path / "crm" / "w03"), "edited"))  # another playbook
    assert same_book(w05, _run("z", str(tmp_path / "crm" / "w05"), "edited"))  # the same folder
    assert not same_book(_run("a", "lab", "own"), _run("b", "lab2", "own"))  # old relative folders: as given
