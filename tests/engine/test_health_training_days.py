"""``nextmove health --training-days``: the health job learns from a recent window only, as ``nextmove run`` does."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.engine.test_outcomes_until import PLAYBOOK_TEXT
from tests.engine.test_run_time_ends import LAST, PLAYBOOK, write_book
from typer.testing import CliRunner

from nextmove.book.validate import load_book
from nextmove.cli import app
from nextmove.engine import score_health
from nextmove.errors import ConfigError

runner = CliRunner()


def test_health_learns_only_from_the_training_days_window(tmp_path: Path) -> None:
    book = load_book(write_book(tmp_path / "book", touches_until=LAST), playbook=PLAYBOOK)
    whole = score_health(book, PLAYBOOK)
    recent = score_health(book, PLAYBOOK, training_days=150)
    assert whole.outcome_models is not None
    assert recent.outcome_models is not None
    learned_whole = whole.outcome_models.models_["churn"].summary_.train_rows
    learned_recent = recent.outcome_models.models_["churn"].summary_.train_rows
    assert 0 < learned_recent < learned_whole
    # The accounts scored are the same: only what is learned from changes.
    assert whole.accounts.get_column("account_id").to_list() == recent.accounts.get_column("account_id").to_list()


def test_health_training_days_too_short_names_enough_days_as_run_does(tmp_path: Path) -> None:
    book = load_book(write_book(tmp_path / "book", touches_until=LAST), playbook=PLAYBOOK)
    with pytest.raises(ConfigError, match=r"--training-days 30 keeps only .* Pass --training-days 56 or more"):
        score_health(book, PLAYBOOK, training_days=30)
    with pytest.raises(ConfigError, match="training_days must be a positive whole number or None, got 0"):
        score_health(book, PLAYBOOK, training_days=0)


def test_the_health_command_takes_training_days(tmp_path: Path) -> None:
    folder = write_book(tmp_path / "book", touches_until=LAST)
    (folder / "playbook.toml").write_text(PLAYBOOK_TEXT, encoding="utf-8")
    out = tmp_path / "health.csv"
    zero = runner.invoke(app, ["health", "--book", str(folder), "--out", str(out), "--training-days", "0"])
    assert zero.exit_code == 2  # as run: at least 1
    short = runner.invoke(
        app, ["health", "--book", str(folder), "--out", str(out), "--no-save-model", "--training-days", "30"]
    )
    assert short.exit_code == 2
    assert "Pass --training-days 56 or more" in " ".join(short.output.split())
    assert not out.exists()
