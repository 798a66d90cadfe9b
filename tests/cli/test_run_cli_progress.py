"""``nextmove run`` redirected to a file (CI, cron, nohup) prints each stage as it starts and ends."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.engine import RUN_STAGES
from nextmove.sim import SimConfig, simulate, write_book


def test_run_cli_not_on_a_terminal_prints_one_line_per_stage_start_and_end(tmp_path: Path) -> None:
    book = tmp_path / "book"
    write_book(simulate(SimConfig(accounts=120, months=8, seed=3)), book)
    result = CliRunner().invoke(
        app, ["run", "--book", str(book), "--out", str(tmp_path / "out"), "--no-store", "--trees", "20"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Loading and validating the book…"
    at = 0
    for stage in RUN_STAGES:
        start = lines.index(f"{stage}…", at)
        end = next(i for i, line in enumerate(lines) if i > start and line.startswith(f"{stage}: done in "))
        assert all(line.startswith(f"{stage}: ") for line in lines[start + 1 : end])  # only its own details
        at = end
    # No bars drawn at the end as well: each stage is named only by its own lines.
    assert sum(RUN_STAGES[0] in line for line in lines) == 2
