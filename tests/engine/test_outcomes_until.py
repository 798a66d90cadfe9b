"""``--outcomes-until``: a book whose outcomes are complete though none happened lately (a quiet spell).

Without it, a run censors every decision whose horizon runs past the last outcome, as for an export
that stopped; with it, those whose horizon ends by the date given are learned from as finished.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from tests.engine.test_run_time_ends import FAST, LAST, PLAYBOOK, write_book
from typer.testing import CliRunner

from nextmove.book.validate import load_book
from nextmove.cli import app
from nextmove.engine import score_health
from nextmove.engine.run import run
from nextmove.errors import ConfigError
from nextmove.store import open_store

runner = CliRunner()
QUIET_FROM = "2025-01-01"
"""No outcome after this day: the book's last three months were quiet."""


def _quiet_book(tmp_path: Path) -> Path:
    folder = write_book(tmp_path / "book", touches_until=LAST)
    lines = (folder / "outcomes.csv").read_text(encoding="utf-8").splitlines()
    kept = [lines[0], *(line for line in lines[1:] if line.split(",")[1] < QUIET_FROM)]
    (folder / "outcomes.csv").write_text("\n".join(kept) + "\n", encoding="utf-8")
    (folder / "playbook.toml").write_text(PLAYBOOK_TEXT, encoding="utf-8")
    return folder


PLAYBOOK_TEXT = """  # the test_run_time_ends playbook, as the CLI reads it from the book folder
horizon_days = 42

[objectives.retention]
outcome = "churn"
sense = "avoid"
value = "arr"

[[actions]]
id = "call"
name = "Call"
team = "cs"
objective = "retention"
cost_usd = 5
cooldown_days = 30

[[actions]]
id = "mail"
name = "Mail"
team = "marketing"
channel = "email"
objective = "retention"
cost_usd = 1
"""


def _learned_rows(url: str, run_id: str) -> int:
    with open_store(url) as store:
        model_id = store.get_run(run_id).summary["model_version"]
        return int(store.load_model(model_id).metrics["rows"])


def test_outcomes_until_learns_from_the_decisions_of_a_quiet_spell(tmp_path: Path) -> None:
    book = load_book(_quiet_book(tmp_path), playbook=PLAYBOOK)
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    options = {"effect_params": FAST, "evaluate": False, "segments": False, "evidence": False}
    with open_store(url) as store:
        censored = run(book, PLAYBOOK, store=store, run_id="censored", **options)
        complete = run(book, PLAYBOOK, store=store, run_id="complete", outcomes_until=date(2025, 3, 31), **options)
    # Without it: the outcomes' end is taken as an export that stopped, and the note says how to say otherwise.
    lag = [n for n in censored.summary["notes"] if n.startswith("the outcomes end 2024-12-")]
    assert len(lag) == 1
    assert lag[0].endswith("say so with --outcomes-until DATE: the outcomes are then taken as complete through DATE")
    # With it: the horizons that ended in the quiet spell are learned from, and the note says what was given.
    assert _learned_rows(url, "complete") > _learned_rows(url, "censored")
    notes = complete.summary["notes"]
    assert not [n for n in notes if n.startswith("the outcomes end")]
    said = [
        n for n in notes if n.startswith("the outcomes are taken as complete through 2025-03-31 (--outcomes-until)")
    ]
    assert len(said) == 1, notes
    assert "days past the latest one (2024-12-" in said[0]
    assert complete.summary["outcomes_until"] == "2025-04-01T00:00:00+00:00"  # through the 31st: to the midnight after
    with open_store(url) as store:
        assert store.get_run("complete").params["outcomes_until"] == "2025-04-01T00:00:00+00:00"
        assert store.get_run("censored").params["outcomes_until"] is None


def test_outcomes_until_after_the_decision_time_is_refused_before_the_run_is_recorded(tmp_path: Path) -> None:
    book = load_book(_quiet_book(tmp_path), playbook=PLAYBOOK)
    url = f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}"
    with (
        open_store(url) as store,
        pytest.raises(ConfigError, match=r"past the decision time 2025-04-01.*2025-03-31 or"),
    ):
        run(book, PLAYBOOK, store=store, outcomes_until=date(2025, 4, 1), effect_params=FAST)
    with open_store(url) as store:
        assert store.list_runs() == []
    with pytest.raises(ConfigError, match="outcomes_until must be a date, a datetime or None"):
        run(book, PLAYBOOK, outcomes_until="2025-03-31", effect_params=FAST)  # type: ignore[arg-type]


def test_health_takes_outcomes_until_and_says_so(tmp_path: Path) -> None:
    book = load_book(_quiet_book(tmp_path), playbook=PLAYBOOK)
    result = score_health(book, PLAYBOOK, outcomes_until=datetime(2025, 3, 31, 12, tzinfo=UTC))
    assert any(
        n.startswith("the outcomes are taken as complete through 2025-03-31 (--outcomes-until)") for n in result.notes
    )
    with pytest.raises(ConfigError, match=r"--outcomes-until 2025-05-01 .* past the decision time 2025-04-01"):
        score_health(book, PLAYBOOK, outcomes_until=date(2025, 5, 1))


def test_the_cli_takes_outcomes_until_in_run_health_and_validate(tmp_path: Path) -> None:
    folder = str(_quiet_book(tmp_path))
    late = runner.invoke(
        app, ["run", "--book", folder, "--as-of", "2025-04-01", "--outcomes-until", "2025-04-01", "--no-store"]
    )
    assert late.exit_code == 2
    said = " ".join(late.output.split())
    assert "--outcomes-until 2025-04-01 (outcomes_until) says the outcomes are complete through 2025-04-01" in said
    assert "give 2025-03-31 or earlier" in said
    bad = runner.invoke(app, ["health", "--book", folder, "--out", str(tmp_path / "h.csv"), "--outcomes-until", "soon"])
    assert bad.exit_code == 2
    assert "--outcomes-until 'soon' is not an ISO 8601 time" in " ".join(bad.output.split())
    plain = runner.invoke(app, ["validate", "--book", folder])
    assert plain.exit_code == 0, plain.output
    assert "say so with --outcomes-until DATE" in " ".join(plain.output.split())
    given = runner.invoke(app, ["validate", "--book", folder, "--outcomes-until", "2025-03-31"])
    assert given.exit_code == 0, given.output
    text = " ".join(given.output.split())
    assert "the outcomes end" not in text
    assert "the outcomes are taken as complete through 2025-03-31 (--outcomes-until)" in text
