"""A book's files changed while they are read: what is loaded is only ever what was validated.

Validation reads each file in several passes and loading reads it again. An export job that moves a
new file into place in between (the hunter's accounts.csv with negative ARRs, moved in just after
validation) used to be loaded unchecked: a run saved recommendations with ``arr -50000`` that
``nextmove validate`` refuses. The files are replaced here at a fixed moment by wrapping a function
the validator or loader calls.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

import nextmove.book.validate as validate_module
import nextmove.cli.commands as commands_module
from nextmove.book.problems import Rule, ValidationReport
from nextmove.book.validate import load_book, validate_book
from nextmove.cli import app
from nextmove.errors import BookError

AS_OF = datetime(2025, 6, 1, tzinfo=UTC)
HEADER = "account_id,name,arr,contract_start\n"
GOOD = HEADER + "".join(f"a{i},Acct {i},{1000 + i}.0,2024-01-0{1 + i % 9}\n" for i in range(20))
# What the export writes next: the same accounts, three of them with a negative ARR.
BAD = GOOD.replace("a1,Acct 1,1001.0", "a1,Acct 1,-50000").replace("a2,Acct 2,1002.0", "a2,Acct 2,-50000")
SIGNALS = "account_id,ts,name,value\n" + "".join(f"a{i},2025-05-0{1 + i % 9},logins,{i}\n" for i in range(20))


def _book(tmp_path: Path) -> Path:
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "accounts.csv").write_text(GOOD)
    (folder / "signals.csv").write_text(SIGNALS)
    return folder


def _move_into_place(path: Path, text: str) -> None:
    """As an export job does: write a new file beside it, then rename it over the old one."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text)
    os.replace(tmp, path)


def _after_validation(monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]) -> None:
    """Run ``action`` once validation is over: when ``load_book`` asks the report for its problems."""
    original = ValidationReport.raise_for_problems

    def wrapped(report: ValidationReport) -> None:
        action()
        original(report)

    monkeypatch.setattr(ValidationReport, "raise_for_problems", wrapped)


def _before_first_call(monkeypatch: pytest.MonkeyPatch, name: str, action: Callable[[], None]) -> None:
    """Run ``action`` just before the first call of ``nextmove.book.validate.<name>``."""
    original = getattr(validate_module, name)
    done: list[bool] = []

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not done:
            done.append(True)
            action()
        return original(*args, **kwargs)

    monkeypatch.setattr(validate_module, name, wrapped)


def test_a_file_replaced_after_validation_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _book(tmp_path)
    assert validate_book(folder, as_of=AS_OF).ok
    assert not validate_book(_write(tmp_path / "bad", BAD), as_of=AS_OF).ok  # the new file alone is refused
    _after_validation(monkeypatch, lambda: _move_into_place(folder / "accounts.csv", BAD))
    with pytest.raises(BookError, match=r"accounts\.csv changed while it was read; run again when the export"):
        load_book(folder, as_of=AS_OF)


def test_a_malformed_file_replaced_after_validation_is_refused_as_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading the new file fails, while the tables are loaded: that it changed is what is said, not how."""
    folder = _book(tmp_path)
    broken = HEADER + "a1,x,1.0,2024-01-01,extra,fields\n"
    _before_first_call(monkeypatch, "_load_typed", lambda: _move_into_place(folder / "accounts.csv", broken))
    with pytest.raises(BookError, match=r"accounts\.csv changed while it was read"):
        load_book(folder, as_of=AS_OF)


def test_a_file_written_in_place_while_loaded_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Written over (the same file, the same size, its modification time set back), not replaced."""
    folder = _book(tmp_path)
    path = folder / "accounts.csv"
    same_size = GOOD.replace("a1,Acct 1,1001.0", "a1,Acct 1,-100.0")
    assert len(same_size) == len(GOOD)
    before = path.stat()

    def rewrite() -> None:
        path.write_text(same_size)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    _after_validation(monkeypatch, rewrite)
    with pytest.raises(BookError, match="changed while it was read"):
        load_book(folder, as_of=AS_OF)


def test_a_file_replaced_during_validation_is_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The accounts are checked, then replaced while the signals are: the report holds for neither version."""
    folder = _book(tmp_path)
    original = validate_module._check_table

    def check(src: Any, spec: Any, ctx: Any) -> None:
        if spec.name == "signals":
            _move_into_place(folder / "accounts.csv", BAD)
        original(src, spec, ctx)

    monkeypatch.setattr(validate_module, "_check_table", check)
    report = validate_book(folder, as_of=AS_OF)
    assert [(p.rule, p.table) for p in report.problems] == [(Rule.UNREADABLE_FILE, "accounts")]
    assert "changed while it was read" in report.problems[0].message()
    _move_into_place(folder / "accounts.csv", GOOD)
    monkeypatch.setattr(validate_module, "_check_table", check)
    with pytest.raises(BookError, match="changed while it was read"):
        load_book(folder, as_of=AS_OF)


def test_an_unchanged_book_loads(tmp_path: Path) -> None:
    book = load_book(_book(tmp_path), as_of=AS_OF)
    assert book.accounts.height == 20
    assert book.accounts.get_column("arr").min() == 1000.0


def test_a_database_book_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database's tables are read once: an update after validation does not reach the loaded book."""
    db = tmp_path / "book.db"
    url = f"sqlite:///{db}"
    rows = pl.read_csv(GOOD.encode(), infer_schema=False).rows(named=True)
    with sa.create_engine(url).begin() as conn:
        conn.execute(sa.text("CREATE TABLE accounts (account_id TEXT, name TEXT, arr TEXT, contract_start TEXT)"))
        conn.execute(sa.text("INSERT INTO accounts VALUES (:account_id, :name, :arr, :contract_start)"), rows)

    def update() -> None:
        with sa.create_engine(url).begin() as conn:
            conn.execute(sa.text("UPDATE accounts SET arr = '-50000' WHERE account_id IN ('a1', 'a2')"))

    _after_validation(monkeypatch, update)
    book = load_book(url, as_of=AS_OF)
    assert book.accounts.get_column("arr").min() == 1000.0  # what was validated
    assert not validate_book(url, as_of=AS_OF).ok  # the update itself is refused


def _write(folder: Path, accounts: str) -> Path:
    folder.mkdir()
    (folder / "accounts.csv").write_text(accounts)
    return folder


def _after_summary(monkeypatch: pytest.MonkeyPatch, action: Callable[[], None]) -> None:
    """Run ``action`` once ``nextmove validate`` has validated the book and printed its summary, before it reads
    the book again for its features and notes."""
    original = commands_module.render_summary

    def wrapped(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)
        action()

    monkeypatch.setattr(commands_module, "render_summary", wrapped)


def test_cli_validate_refuses_a_file_replaced_while_it_reads_the_book_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """validate reads the accounts again for the playbook's features and every table for its notes: a file
    replaced in between was read unchecked, and the book said valid though the accounts read held -50000."""
    folder = _book(tmp_path)
    _after_summary(monkeypatch, lambda: _move_into_place(folder / "accounts.csv", BAD))
    result = CliRunner().invoke(app, ["validate", "--book", str(folder), "--as-of", "2025-06-01"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "accounts.csv changed while it was read; run again when the export has finished" in text
    assert "valid:" not in text


def test_cli_validate_says_a_file_replaced_by_a_broken_one_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signals file replaced by one reading fails on: that it changed is what is said, not how reading failed."""
    folder = _book(tmp_path)
    broken = "account_id,ts,name,value\na1,2025-05-01,logins,1,extra,fields\n"
    _after_summary(monkeypatch, lambda: _move_into_place(folder / "signals.csv", broken))
    result = CliRunner().invoke(app, ["validate", "--book", str(folder), "--as-of", "2025-06-01"])
    assert result.exit_code == 2, result.output
    assert "signals.csv changed while it was read" in " ".join(result.output.split())


def test_cli_validate_of_an_unchanged_book_is_valid(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", "--book", str(_book(tmp_path)), "--as-of", "2025-06-01"])
    assert result.exit_code == 0, result.output
    assert "valid:" in result.output
