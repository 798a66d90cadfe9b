"""Where the commands write: results on stdout, progress on stderr; lines fit for a pipe, a log and a copy-paste."""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import get_type_hints

import pytest
from rich.table import Table
from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.cli.commands import validate
from nextmove.sim import SimConfig, simulate, write_book

runner = CliRunner()


@pytest.fixture(scope="module")
def book_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("output") / "book"
    write_book(simulate(SimConfig(accounts=150, months=8, seed=3)), folder)
    return folder


def _invalid_book(folder: Path) -> Path:
    folder.mkdir()
    (folder / "accounts.csv").write_text("account_id,arr\na1,-5\na2,100\n", encoding="utf-8")
    (folder / "touches.csv").write_text("account_id,action_id,ts\na1,no_such_action,2025-01-02\n", encoding="utf-8")
    return folder


def _validate_piped(book: Path, columns: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = columns
    done = subprocess.run(
        [sys.executable, "-m", "nextmove", "validate", "--book", str(book)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    return (done.stdout + done.stderr).splitlines()


def test_piped_output_is_as_wide_as_columns_says_else_140(tmp_path: Path) -> None:
    # `COLUMNS=80 nextmove validate … | less` wrote 140 columns whatever COLUMNS said.
    book = _invalid_book(tmp_path / "book")
    narrow = _validate_piped(book, "80")
    assert max(len(line) for line in narrow) == 80
    wide = _validate_piped(book, None)
    assert max(len(line) for line in wide) == 140
    # A table's title is not padded with spaces to the width (at 80 columns this one wraps after "in").
    title = next(line for line in wide if line.startswith("Problems in"))
    assert title == title.rstrip()
    assert len(next(line for line in narrow if line.startswith("Problems in"))) < 80


def test_progress_goes_to_stderr_and_results_to_stdout(book_dir: Path, tmp_path: Path) -> None:
    # `nextmove validate --book . 2>/dev/null | head -1` printed "Validating the book…".
    checked = runner.invoke(app, ["validate", "--book", str(book_dir)])
    assert checked.exit_code == 0, checked.output
    assert checked.stderr.splitlines()[0] == "Validating the book…"
    assert checked.stdout.startswith("Book at ")
    assert "Validating the book…" not in checked.stdout
    assert "Checking won-back accounts" not in checked.stdout
    health = runner.invoke(
        app, ["health", "--book", str(book_dir), "--out", str(tmp_path / "h.csv"), "--no-save-model"]
    )
    assert health.exit_code == 0, health.output
    assert "Health as of" in health.stdout
    assert "Building the training set" in health.stderr
    assert "Building the training set" not in health.stdout
    # Said once: the command's own line, then the engine's steps.
    assert health.stderr.splitlines().count("Scoring health…") == 1


def test_run_reusing_the_model_says_it_loads_it_and_keeps_a_command_on_one_line(book_dir: Path, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'nextmove.db'}"
    common = ["run", "--book", str(book_dir), "--store", store, "--trees", "20"]
    first = runner.invoke(app, [*common, "--out", str(tmp_path / "first")])
    assert first.exit_code == 0, first.output
    assert "Fitting the effect models: done in" in first.stderr
    assert "Executive summary" in first.stdout
    assert "Computing features…" not in first.stdout  # the stages are progress: stderr
    reused = runner.invoke(app, [*common, "--out", str(tmp_path / "reused"), "--reuse-model", "--no-promote"])
    assert reused.exit_code == 0, reused.output
    # It printed "Fitting the effect models… done in 0.4 s" for a model it only loaded.
    assert "Loading the effect models: done in" in reused.stderr
    assert "Fitting the effect models" not in reused.output
    # "`nextmove models promote \nrun-…`": the command to copy was split across two lines.
    promote = [line for line in reused.stdout.splitlines() if "nextmove models promote" in line]
    assert len(promote) == 1
    assert promote[0].split("`")[1].startswith("nextmove models promote run-")
    assert promote[0].count("`") == 2


def test_message_console_keeps_commands_whole_and_pads_no_title() -> None:
    from nextmove.cli._common import MessageConsole

    out = io.StringIO()
    printer = MessageConsole(file=out, width=60, highlight=False)
    printer.print(
        "[yellow]note:[/] run run-20261125T005716-97b8e9 was not promoted; "
        "`nextmove models promote run-20261125T005716-97b8e9` serves it"
    )
    table = Table(title="Problems in book", title_justify="left")
    table.add_column("file")
    table.add_row("accounts.csv")
    printer.print(table)
    printer.print("a `command too long for one line, so wrapped at its spaces as any text is --out report.html` ok")
    lines = out.getvalue().splitlines()
    assert any(line.startswith("`nextmove models promote run-20261125T005716-97b8e9`") for line in lines)
    assert "as any text is --out report.html` ok" in lines  # not folded within a word (`- -out`)
    assert all(len(line) <= 60 for line in lines)
    assert "Problems in book" in lines  # no spaces after it


def test_validate_says_what_its_default_as_of_does(tmp_path: Path) -> None:
    # The help said "Default: now", but without --as-of validate checks the book as a default run
    # reads it (deciding where the data ends), and says nothing of how old the data is, while
    # `--as-of` with today's date does.
    said = get_type_hints(validate, include_extras=True)["as_of"].__metadata__[0].help
    assert "Default: now" not in said
    assert "Default: as a run without --as-of reads it, deciding where the book's data ends" in said
    assert "give today's date" in said
    book = tmp_path / "book"
    write_book(simulate(SimConfig(accounts=60, months=4, seed=1)), book)
    default = runner.invoke(app, ["validate", "--book", str(book)])
    assert default.exit_code == 0, default.output
    flat = " ".join(default.stdout.split())
    assert "as a run without --as-of reads it)" in flat  # not "checked as of <now>"
    assert "days after the book's latest row" not in flat
    later = runner.invoke(app, ["validate", "--book", str(book), "--as-of", "2100-01-01"])  # long after the data
    assert later.exit_code == 0, later.output
    assert "days after the book's latest row" in " ".join(later.stdout.split())


def test_init_says_to_validate_from_inside_the_workspace(tmp_path: Path) -> None:
    # "Next: nextmove validate --book my-workspace/book" from the parent folder made the store there.
    ws = tmp_path / "my workspace"
    result = runner.invoke(app, ["init", str(ws), "--accounts", "30", "--months", "3"])
    assert result.exit_code == 0, result.output
    command = f"cd {shlex.quote(str(ws))} && nextmove validate --book book"
    assert f"Next: {command}" in result.stdout.splitlines()  # on one line, to copy whole
    assert "Simulating an example book" in result.stderr
