"""What nextmove's commands say of a playbook that is wrong: the file, the key, the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nextmove.cli import app

runner = CliRunner()


def _nextmove(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from nextmove.cli import main; main()", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _flat(text: str) -> str:
    """``text`` with its line breaks (Rich wraps at 140 columns) read as spaces."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pbmsg") / "book"
    done = runner.invoke(app, ["simulate", "--out", str(folder), "--accounts", "40", "--months", "3"])
    assert done.exit_code == 0, done.output
    return folder


def _playbook(book: Path, tmp_path: Path, old: str, new: str) -> Path:
    text = (book / "playbook.toml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "pb.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_validate_names_the_playbook_file_of_an_eligibility_error(book: Path, tmp_path: Path) -> None:
    pb = _playbook(book, tmp_path, "tenure_days >= 90", "tenure_dayz >= 90")
    done = _nextmove("validate", "--book", str(book), "--playbook", str(pb))
    assert done.returncode == 2
    said = _flat(done.stderr)
    assert f"playbook: {pb}: action " in said
    assert "unknown feature 'tenure_dayz'" in said
    assert f"invalid: 1 eligibility expression of the playbook {pb} does not fit this book's features" in said


def test_run_names_the_playbook_file_of_an_eligibility_error(book: Path, tmp_path: Path) -> None:
    # `nextmove run` said "error: action 'x': eligibility …" without the file to edit.
    pb = _playbook(book, tmp_path, "tenure_days >= 90", "tenure_dayz >= 90")
    done = _nextmove("run", "--book", str(book), "--playbook", str(pb), "--no-store", "--out", str(tmp_path / "o"))
    assert done.returncode == 2, done.stderr
    said = _flat(done.stderr)
    assert f"error: {pb}: action " in said
    assert "unknown feature 'tenure_dayz'" in said
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("command", "out", "more"),
    [("segment", "s.csv", ()), ("evaluate", "e.json", ("--holdout-fraction", "0.5"))],
)
def test_other_commands_name_the_playbook_file_of_an_eligibility_error(
    command: str, out: str, more: tuple[str, ...], book: Path, tmp_path: Path
) -> None:
    # Only `validate` and `run` said which file to edit; `segment` and `evaluate` said "error: action 'x': …".
    pb = _playbook(book, tmp_path, "tenure_days >= 90", "tenure_dayz >= 90")
    done = _nextmove(command, "--book", str(book), "--playbook", str(pb), "--out", str(tmp_path / out), *more)
    assert done.returncode == 2, done.stderr
    said = _flat(done.stderr)
    assert f"error: {pb}: action " in said
    assert "unknown feature 'tenure_dayz'" in said


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_window_no_date_can_hold_is_refused_not_a_traceback(command: str, book: Path, tmp_path: Path) -> None:
    # window_days = 1e9 was valid, and `nextmove run` died with an OverflowError.
    pb = _playbook(book, tmp_path, "\nwindow_days = 14\n", "\nwindow_days = 1000000000\n")
    extra = ["--no-store", "--out", str(tmp_path / "o")] if command == "run" else []
    done = _nextmove(command, "--book", str(book), "--playbook", str(pb), *extra)
    assert done.returncode == 2, done.stderr
    said = _flat(done.stderr)
    assert "contact_policy.window_days: must be a whole number from 1 to 36,500 days; got 1,000,000,000" in said
    assert "Traceback" not in done.stderr


def test_validate_counts_one_action_in_the_singular(tmp_path: Path) -> None:
    book = tmp_path / "book"
    book.mkdir()
    (book / "accounts.csv").write_text("account_id\na\n", encoding="utf-8")
    (book / "playbook.toml").write_text(
        '[objectives.keep]\noutcome = "churn"\nsense = "avoid"\nvalue = "arr"\n'
        '[[actions]]\nid = "call"\nname = "Call"\nteam = "cs"\nobjective = "keep"\n',
        encoding="utf-8",
    )
    done = runner.invoke(app, ["validate", "--book", str(book)])
    assert done.exit_code == 0, done.output
    assert f"(playbook: {book / 'playbook.toml'}, 1 action)." in _flat(done.output)
