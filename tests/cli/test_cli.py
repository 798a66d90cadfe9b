"""End-to-end tests of the command line through the real entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nextmove import __version__
from nextmove.cli import app
from nextmove.cli.app import unwrap_help
from nextmove.playbook.loader import default_playbook_text

runner = CliRunner()


def _nextmove(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from nextmove.cli import main; main()", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


@pytest.mark.parametrize("command", ["init", "validate", "simulate", "features"])
def test_cli_every_command_has_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_cli_help_paragraphs_are_wrapped_by_the_terminal_not_the_docstring() -> None:
    # The docstrings are wrapped at 100 columns; in an 80-column terminal their own line ends made
    # ragged lines ("fits the" / "action-effect" / "models on the history").
    narrow = CliRunner(env={"COLUMNS": "80"})
    result = narrow.invoke(app, ["run", "--help"], terminal_width=80)
    assert result.exit_code == 0
    lines = [line.strip() for line in result.output.splitlines()]
    assert "action-effect models on the history (or reuses the store's), projects every" in lines
    assert all(len(line) <= 80 for line in result.output.splitlines())
    for name in ("keys", "models"):
        group = narrow.invoke(app, [name, "--help"], terminal_width=80)
        assert group.exit_code == 0, group.output


def test_unwrap_help_joins_lines_and_keeps_paragraphs() -> None:
    text = """First line
    goes on.

    Second paragraph
      wraps here.
    """
    assert unwrap_help(text) == "First line goes on.\n\nSecond paragraph wraps here."


def test_cli_init_then_validate_passes(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    result = runner.invoke(app, ["init", str(ws), "--accounts", "60", "--months", "6"])
    assert result.exit_code == 0, result.output
    assert (ws / "book" / "accounts.csv").is_file()
    assert "nextmove validate" in (ws / "README.md").read_text(encoding="utf-8")
    done = _nextmove("validate", "--book", str(ws / "book"))
    assert done.returncode == 0, done.stderr
    assert "valid:" in done.stdout
    assert "accounts" in done.stdout


def test_cli_init_writes_the_playbook_once_where_commands_read_it(tmp_path: Path) -> None:
    # Two copies went apart silently: ws/playbook.toml was edited, commands read ws/book/playbook.toml.
    ws = tmp_path / "ws"
    result = runner.invoke(app, ["init", str(ws), "--accounts", "60", "--months", "6"])
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(ws).as_posix() for p in ws.rglob("playbook.toml")) == ["book/playbook.toml"]
    assert (ws / "book" / "playbook.toml").read_text(encoding="utf-8") == default_playbook_text()
    readme = (ws / "README.md").read_text(encoding="utf-8")
    assert "`book/playbook.toml`" in readme
    done = _nextmove("validate", "--book", str(ws / "book"))
    assert done.returncode == 0, done.stderr
    assert str(ws / "book" / "playbook.toml") in done.stdout.replace("\n", "")  # the playbook it used


def test_cli_init_refuses_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x", encoding="utf-8")
    done = _nextmove("init", str(tmp_path))
    assert done.returncode == 2
    assert "is not empty" in done.stderr
    assert (tmp_path / "keep.txt").read_text(encoding="utf-8") == "x"
    assert not (tmp_path / "book").exists()


def test_cli_simulate_refuses_a_non_empty_folder_before_simulating_in_the_cli_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nextmove.sim

    def _no_simulation(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("simulated before checking --out")

    monkeypatch.setattr(nextmove.sim, "simulate", _no_simulation)
    (tmp_path / "keep.txt").write_text("x", encoding="utf-8")
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path), "--accounts", "40", "--months", "3"])
    assert result.exit_code == 2, result.output
    assert "is not empty; pass --force" in result.output
    assert "overwrite=True" not in result.output
    assert (tmp_path / "keep.txt").read_text(encoding="utf-8") == "x"
    # A folder under a file cannot be made: said before simulating too, not as a raw OSError after.
    under_file = runner.invoke(app, ["simulate", "--out", str(tmp_path / "keep.txt" / "book")])
    assert under_file.exit_code == 2, under_file.output
    assert "is a file, not a folder" in " ".join(under_file.output.split())


def test_cli_simulate_is_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        result = runner.invoke(app, ["simulate", "--out", str(tmp_path / name), "--accounts", "80", "--months", "4"])
        assert result.exit_code == 0, result.output
    for file in ("accounts.csv", "touches.csv", "outcomes.csv", "signals.parquet"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()


def test_cli_validate_invalid_book_exits_2_with_table(tmp_path: Path) -> None:
    (tmp_path / "accounts.csv").write_text("account_id,arr\na1,10\na2,-4\n", encoding="utf-8")
    done = _nextmove("validate", "--book", str(tmp_path), "--as-of", "2026-01-01")
    assert done.returncode == 2
    assert "accounts.csv" in done.stderr
    assert "'-4'" in done.stderr
    assert "negative" in done.stderr
    assert "invalid: 1 problem in" in " ".join(done.stderr.split())
    assert "nothing was loaded" in done.stderr


def test_cli_validate_an_empty_accounts_table_says_so_in_what_it_expects(tmp_path: Path) -> None:
    (tmp_path / "accounts.csv").write_text("account_id\n", encoding="utf-8")
    (tmp_path / "signals.csv").write_text("account_id,ts,name,value\na1,2025-01-01,x,1\n", encoding="utf-8")
    done = _nextmove("validate", "--book", str(tmp_path), "--as-of", "2026-01-01")
    assert done.returncode == 2
    assert "the accounts table has no rows" in " ".join(done.stderr.split())


def test_cli_validate_heading_says_the_as_of_it_checked(tmp_path: Path) -> None:
    # The heading said "checked as of <now>" whatever --as-of said.
    (tmp_path / "accounts.csv").write_text("account_id\na1\n", encoding="utf-8")
    (tmp_path / "signals.csv").write_text("account_id,ts,name,value\na1,2025-12-01,logins,1\n", encoding="utf-8")
    result = runner.invoke(app, ["validate", "--book", str(tmp_path), "--as-of", "2025-12-31"])
    assert result.exit_code == 0, result.output
    assert "checked as of 2025-12-31 00:00 UTC" in result.output


def test_cli_validate_bad_as_of_says_format(tmp_path: Path) -> None:
    (tmp_path / "accounts.csv").write_text("account_id\na1\n", encoding="utf-8")
    done = _nextmove("validate", "--book", str(tmp_path), "--as-of", "yesterday")
    assert done.returncode == 2
    assert "ISO 8601" in done.stderr


def test_cli_validate_missing_folder(tmp_path: Path) -> None:
    done = _nextmove("validate", "--book", str(tmp_path / "nope"))
    assert done.returncode == 2
    assert "no such folder" in done.stderr


def test_cli_validate_names_a_playbook_it_would_pass_over_and_the_default_it_uses(tmp_path: Path) -> None:
    (tmp_path / "accounts.csv").write_text("account_id\na1\n", encoding="utf-8")
    # No playbook: checked against the built-in default, which it says.
    done = _nextmove("validate", "--book", str(tmp_path))
    assert "built-in default playbook" in " ".join(done.stderr.split())
    # A playbook in YAML was passed over for the default, and the problems named neither.
    (tmp_path / "playbook.yaml").write_text("objectives: {}\n", encoding="utf-8")
    done = _nextmove("validate", "--book", str(tmp_path))
    assert done.returncode == 2
    said = " ".join(done.stderr.split())
    assert "playbook.yaml" in said
    assert "playbook.toml" in said


def test_cli_validate_bad_playbook_names_field(tmp_path: Path) -> None:
    (tmp_path / "accounts.csv").write_text("account_id\na1\n", encoding="utf-8")
    pb = tmp_path / "pb.toml"
    pb.write_text(
        '[objectives.r]\noutcome = "churn"\nvalue = "arr"\n'
        '[[actions]]\nid = "x"\nname = "X"\nteam = "fin ance"\nobjective = "r"\n',
        encoding="utf-8",
    )
    done = _nextmove("validate", "--book", str(tmp_path), "--playbook", str(pb))
    assert done.returncode == 2
    assert "actions[0] (id='x').team" in done.stderr


def test_cli_features_writes_one_row_per_account(tmp_path: Path) -> None:
    book = tmp_path / "book"
    assert runner.invoke(app, ["simulate", "--out", str(book), "--accounts", "50", "--months", "4"]).exit_code == 0
    out = tmp_path / "f.parquet"
    result = runner.invoke(app, ["features", "--book", str(book), "--as-of", "2025-04-01", "--out", str(out)])
    assert result.exit_code == 0, result.output
    import polars as pl

    frame = pl.read_parquet(out)
    accounts = pl.read_csv(book / "accounts.csv")
    assert frame.height == accounts.height
    assert "days_to_renewal" in frame.columns
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_validate_checks_eligibility_against_book_features(tmp_path: Path) -> None:
    book = tmp_path / "book"
    assert runner.invoke(app, ["simulate", "--out", str(book), "--accounts", "40", "--months", "3"]).exit_code == 0
    text = (book / "playbook.toml").read_text(encoding="utf-8").replace("tenure_days >= 90", "tenure_dayz >= 90")
    (tmp_path / "pb.toml").write_text(text, encoding="utf-8")
    done = _nextmove("validate", "--book", str(book), "--playbook", str(tmp_path / "pb.toml"))
    assert done.returncode == 2
    assert "unknown feature 'tenure_dayz' (did you mean 'tenure_days'?)" in done.stderr


def test_cli_features_default_as_of_sees_the_last_day(tmp_path: Path) -> None:
    """Without --as-of the snapshot is taken at the midnight after the book's last row, as `nextmove run` does."""
    book = tmp_path / "book"
    book.mkdir()
    (book / "accounts.csv").write_text("account_id\na\n", encoding="utf-8")
    (book / "signals.csv").write_text(
        "account_id,ts,name,value\na,2025-03-01T10:00:00Z,x,1\na,2025-03-02T15:00:00Z,x,5\n", encoding="utf-8"
    )
    out = tmp_path / "f.parquet"
    result = runner.invoke(app, ["features", "--book", str(book), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "as of 2025-03-03 00:00 UTC" in " ".join(result.output.split())
    import polars as pl

    assert pl.read_parquet(out).get_column("x_sum_7d").to_list() == [6.0]  # the last signal is in


@pytest.mark.parametrize("command", [["keys", "list"], ["report"]])
def test_cli_a_store_url_with_a_non_numeric_port_is_a_clear_error_hiding_the_password(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--store", "postgresql://u:hunter2@127.0.0.1:notaport/db"])
    assert result.exit_code == 2, result.output  # the user's input, not a store that is down (3)
    assert not isinstance(result.exception, ValueError)
    assert "cannot read the store URL" in result.output
    assert "hunter2" not in result.output


@pytest.mark.parametrize("url", ["notaurl", "mysql://u@h/db"])
def test_cli_an_unsupported_store_url_is_bad_input_exit_2(url: str) -> None:
    result = runner.invoke(app, ["keys", "list", "--store", url])
    assert result.exit_code == 2, result.output
    assert "store URL" in result.output


_NOTES_PLAYBOOK = """
[objectives.r]
outcome = "churn"
sense = "avoid"
value = "arr"

[[actions]]
id = "call"
name = "Call"
team = "cs"
objective = "r"
eligibility = "has_sso == 1"

[signal_roles]
usage = ["seat_utl"]

[signal_kinds]
count = ["logins"]

[health.components.usage]
weight = 1
measures = [{ feature = "seat_util_mean_28d" }, { feature = "seat_util_trnd_28d" }]
"""


def test_cli_validate_notes_unknown_signal_names_and_left_out_health_measures(tmp_path: Path) -> None:
    (tmp_path / "accounts.csv").write_text("account_id,arr,has_sso\na1,10,true\na2,20,false\n", encoding="utf-8")
    (tmp_path / "signals.csv").write_text(
        "account_id,ts,name,value\na1,2025-01-01,seat_util,0.5\na2,2025-01-02,login,1\n", encoding="utf-8"
    )
    pb = tmp_path / "pb.toml"
    pb.write_text(_NOTES_PLAYBOOK, encoding="utf-8")
    done = _nextmove("validate", "--book", str(tmp_path), "--playbook", str(pb))
    said = " ".join(done.stdout.split())
    assert done.returncode == 0, done.stdout + done.stderr  # has_sso, written true/false, is a 0/1 number
    assert "signal_roles.usage 'seat_utl' (did you mean 'seat_util'?)" in said
    assert "signal_kinds.count 'logins' (did you mean 'login'?)" in said
    assert "seat_util_trnd_28d (no such feature; did you mean 'seat_util_trend_28d'?)" in said
    window = _NOTES_PLAYBOOK.replace(
        "[health.components.usage]", "[health]\nwindow_days = 30\n[health.components.usage]"
    )
    pb.write_text(window, encoding="utf-8")
    done = _nextmove("validate", "--book", str(tmp_path), "--playbook", str(pb))
    assert done.returncode == 0, done.stdout + done.stderr  # explicit components name their features
    built = window[: window.index("[health.components.usage]")]  # components from [signal_roles]: they read it
    pb.write_text(built, encoding="utf-8")
    done = _nextmove("validate", "--book", str(tmp_path), "--playbook", str(pb))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "window_days = 30 is not a feature window" in " ".join(done.stderr.split())
