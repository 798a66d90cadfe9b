"""The broken-book corpus: every folder under ``broken/`` is a book that breaks the data contract.

Each case holds the book's files, ``expected.txt`` (one ``table|file|row|column|rule`` line per
problem it must produce, an empty field for None, ``.`` for the book folder itself) and
``case.toml`` (a description; optionally ``as_of``, and ``xfail_missing`` / ``xfail_extra`` naming
a known bug that makes the validator miss expected lines / report unexpected ones).

For every case: ``validate_book`` gives exactly the expected lines, ``load_book`` raises
``BookValidationError`` with that report, ``nextmove validate`` exits 2 and prints those rows (but
``after_as_of`` ones: its ``--as-of`` is a run's time, and rows after it are noted, not refused), and
nothing is written to the store, the workspace or the book.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tomllib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from nextmove.book.contract import CONTRACT
from nextmove.book.problems import BookValidationError, Problem, Rule, ValidationReport
from nextmove.book.validate import load_book, validate_book
from nextmove.cli import app
from nextmove.cli._common import console, err_console
from nextmove.errors import BookError
from nextmove.playbook.schema import Playbook

CORPUS = Path(__file__).resolve().parent / "broken"
DEFAULT_AS_OF = "2026-01-01T00:00:00Z"
MIN_CASES = 30


@dataclass(frozen=True)
class Case:
    """One broken book of the corpus."""

    name: str
    folder: Path
    description: str
    as_of_text: str
    expected: Counter[str]
    xfail_missing: str | None = None
    xfail_extra: str | None = None

    @property
    def as_of(self) -> datetime:
        return datetime.fromisoformat(self.as_of_text.replace("Z", "+00:00"))


def load_cases() -> list[Case]:
    """Every case folder of the corpus, in name order."""
    cases = []
    for folder in sorted(p for p in CORPUS.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        meta = tomllib.loads((folder / "case.toml").read_text("utf-8"))
        lines = [line for line in (folder / "expected.txt").read_text("utf-8").splitlines() if line.strip()]
        cases.append(
            Case(
                name=folder.name,
                folder=folder,
                description=meta["description"],
                as_of_text=meta.get("as_of", DEFAULT_AS_OF),
                expected=Counter(lines),
                xfail_missing=meta.get("xfail_missing"),
                xfail_extra=meta.get("xfail_extra"),
            )
        )
    return cases


CASES = load_cases()


def problem_line(problem: Problem, folder: Path) -> str:
    """A problem as an ``expected.txt`` line: ``table|file|row|column|rule``, file relative to the book."""
    rel = os.path.relpath(problem.file, folder)
    row = "" if problem.row is None else str(problem.row)
    return f"{problem.table}|{Path(rel).as_posix()}|{row}|{problem.column or ''}|{problem.rule.value}"


def report_lines(report: ValidationReport, folder: Path) -> Counter[str]:
    return Counter(problem_line(p, folder) for p in report.problems)


def cases_marked(reason_of: str) -> list[object]:
    """The cases as pytest params, xfailed (strictly) where their ``case.toml`` names a known bug.

    ``reason_of`` is ``missing``, ``extra`` or ``any`` (either kind of known bug).
    """
    params = []
    for case in CASES:
        reason = {
            "missing": case.xfail_missing,
            "extra": case.xfail_extra,
            "any": case.xfail_missing or case.xfail_extra,
        }[reason_of]
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


def _diff(expected: Counter[str], got: Counter[str]) -> str:
    missing = sorted((expected - got).elements())
    extra = sorted((got - expected).elements())
    return f"missing: {missing}\nextra: {extra}"


@pytest.mark.parametrize("case", cases_marked("missing"))
def test_validate_book_reports_every_expected_problem(case: Case, playbook: Playbook) -> None:
    report = validate_book(case.folder, playbook=playbook, as_of=case.as_of)
    got = report_lines(report, case.folder)
    assert not (case.expected - got), _diff(case.expected, got)
    assert not report.ok


@pytest.mark.parametrize("case", cases_marked("extra"))
def test_validate_book_reports_no_unexpected_problem(case: Case, playbook: Playbook) -> None:
    report = validate_book(case.folder, playbook=playbook, as_of=case.as_of)
    got = report_lines(report, case.folder)
    assert not (got - case.expected), _diff(case.expected, got)
    # Every listed problem is counted, and every (rule, table, column) counted is listed.
    assert report.total_problems == len(report.problems)
    assert set(report.problem_counts) == {(p.rule, p.table, p.column) for p in report.problems}


@pytest.mark.parametrize("case", cases_marked("any"))
def test_load_book_raises_book_validation_error_with_the_report(case: Case, playbook: Playbook) -> None:
    with pytest.raises(BookValidationError) as info:
        load_book(case.folder, playbook=playbook, as_of=case.as_of)
    err = info.value
    assert isinstance(err, BookError)
    assert err.exit_code == 2
    got = report_lines(err.report, case.folder)
    assert got == case.expected, _diff(case.expected, got)
    # The message lists the problems, each naming its file.
    message = str(err)
    for problem in err.report.problems[:20]:
        assert problem.message() in message


def _problem_table_rows(stderr: str) -> list[tuple[str, str, str, str]]:
    """(file, row, column, rule) of each row of the CLI's problem table."""
    rows: list[list[str]] = []
    in_table = False
    for line in stderr.splitlines():
        if line.startswith("Problems in"):
            in_table = True
            continue
        if line.startswith("Rows breaking each rule"):
            break
        if not in_table or not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) != 5:
            continue
        if rows and not cells[4]:
            # A long file name or value folded onto the next line; the expected text never folds.
            rows[-1][0] += cells[0]
            continue
        rows.append(cells)
    parsed = []
    for file, row, column, _value, expected in rows:
        rule = expected.rsplit("[", 1)[-1].rstrip("]")
        parsed.append((file, row, column, rule))
    return parsed


@pytest.mark.parametrize("case", cases_marked("any"))
def test_cli_validate_exits_2_and_prints_every_problem(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    # A wide console keeps each problem on one line of the table.
    monkeypatch.setattr(err_console, "width", 1000)
    monkeypatch.setattr(console, "width", 1000)
    result = CliRunner().invoke(app, ["validate", "--book", str(case.folder), "--as-of", case.as_of_text])
    want: Counter[tuple[str, str, str, str]] = Counter()
    for line, n in case.expected.items():
        _table, file, row, column, rule = line.split("|")
        # --as-of is the time of a run, not the book's own (validate_book's as_of): a run leaves later
        # rows out, so the command notes them instead of refusing them.
        if rule != Rule.AFTER_AS_OF.value:
            want[(case.folder.name if file == "." else file, row, column, rule)] += n
    if not want:
        assert result.exit_code == 0, result.output
        assert "are after --as-of" in result.stdout
        return
    assert result.exit_code == 2, result.output
    assert "invalid:" in result.stderr
    assert "nothing was loaded" in result.stderr
    shown = Counter(_problem_table_rows(result.stderr))
    assert shown == want, f"shown: {sorted(shown)}\nwanted: {sorted(want)}"


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_validate_and_load_write_nothing_for_a_broken_book(
    case: Case, playbook: Playbook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = tmp_path / "book"
    shutil.copytree(case.folder, book)
    workspace, cwd = tmp_path / "workspace", tmp_path / "cwd"
    workspace.mkdir()
    cwd.mkdir()
    store = workspace / "store.db"
    monkeypatch.setenv("NEXTMOVE_WORKSPACE", str(workspace))
    monkeypatch.setenv("NEXTMOVE_STORE_URL", f"sqlite:///{store.as_posix()}")
    monkeypatch.chdir(cwd)
    before = _snapshot(book)

    validate_book(book, playbook=playbook, as_of=case.as_of)
    with contextlib.suppress(BookValidationError):
        load_book(book, playbook=playbook, as_of=case.as_of)
    result = CliRunner().invoke(app, ["validate", "--book", str(book), "--as-of", case.as_of_text])
    assert result.exit_code in (0, 2), result.output

    assert not store.exists()
    assert list(workspace.iterdir()) == []
    assert list(cwd.iterdir()) == []
    assert _snapshot(book) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book", "cwd", "workspace"]


def test_corpus_has_at_least_30_cases() -> None:
    assert len(CASES) >= MIN_CASES


def test_corpus_covers_every_rule() -> None:
    # Only cases without a known bug count: each rule is shown to work somewhere.
    covered = {
        line.rsplit("|", 1)[-1]
        for case in CASES
        if not (case.xfail_missing or case.xfail_extra)
        for line in case.expected
    }
    assert covered >= {r.value for r in Rule}, sorted({r.value for r in Rule} - covered)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_corpus_case_is_well_formed(case: Case) -> None:
    assert case.description.strip()
    assert case.expected, "a broken book must produce at least one problem"
    book_files = [p for p in case.folder.iterdir() if p.suffix in (".csv", ".parquet")]
    assert book_files, "no book files"
    rules = {r.value for r in Rule}
    for line in case.expected:
        table, file, row, column, rule = line.split("|")
        assert table in CONTRACT
        assert file == "." or (case.folder / file).exists() or rule == "missing_table"
        assert row == "" or int(row) >= 1
        assert column == "" or column in CONTRACT[table].column_names
        assert rule in rules
    assert case.as_of.tzinfo is not None


def test_make_cases_writes_the_committed_files(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_cases", CORPUS / "make_cases.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written: list[Path] = module.make(tmp_path)
    assert written
    for path in written:
        committed = CORPUS / path.relative_to(tmp_path)
        assert committed.is_file(), f"{committed} is generated but not committed"
        if path.suffix == ".parquet" or path.read_bytes().startswith(b"PAR1"):
            assert pl.read_parquet(path).equals(pl.read_parquet(committed))
        else:
            assert path.read_bytes() == committed.read_bytes()


def test_validate_book_names_the_row_of_an_unterminated_quote(playbook: Playbook) -> None:
    folder = CORPUS / "36_unterminated_quote"
    report = validate_book(folder, playbook=playbook, as_of=datetime.fromisoformat("2026-01-01T00:00:00+00:00"))
    [problem] = report.problems
    assert problem.rule is Rule.UNREADABLE_FILE
    assert problem.row == 1
