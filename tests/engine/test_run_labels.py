"""What a run learns from and keeps: labels of a CRM that credits churn to the last touch, the comparables
of a run that reuses its model, and the notes of loading the book."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nextmove.book import Book
from nextmove.book.validate import load_book
from nextmove.engine.run import RunResult, run
from nextmove.playbook import Playbook
from nextmove.playbook.loader import parse_playbook
from nextmove.store import Store, open_store

FAST = {"n_folds": 2, "n_estimators": 25, "n_draws": 60}
START = datetime(2025, 1, 6, tzinfo=UTC)
WEEKS = 40
AS_OF = START + timedelta(weeks=36)
"""Before the book's last rows: a backtest, whose later rows loading notes."""

PLAYBOOK = """
horizon_days = 56

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

[[actions]]
id = "mail"
name = "Mail"
team = "marketing"
channel = "email"
objective = "retention"
cost_usd = 1

[contact_policy]
window_days = 14
"""


def write_last_touch_book(folder: Path, n: int = 200, seed: int = 3) -> Path:
    """Learners decided on every two weeks (none logged); each churn is credited, as CRMs do, to the
    last real touch within the horizon, never to a logged none; the rest name no touch."""
    rng = np.random.default_rng(seed)
    ids = [f"L-{i:04d}" for i in range(n)]
    engaged = rng.normal(0, 1, n)
    signals, touches, outcomes = [], [], []
    last: dict[int, tuple[str, int]] = {}
    gone = np.zeros(n, dtype=bool)
    for week in range(WEEKS):
        t = START + timedelta(weeks=week)
        for i in np.flatnonzero(~gone):
            lessons = float(rng.poisson(np.exp(1 + 0.5 * engaged[i])))
            signals.append((ids[i], t - timedelta(hours=1), "lessons", lessons))
            if week % 2 == 0:
                action = str(rng.choice(["none", "call", "mail"], p=[0.6, 0.2, 0.2]))
                touch_id = f"T-{week}-{i}"
                touches.append((ids[i], action, t + timedelta(hours=9), touch_id, 0.6 if action == "none" else 0.2))
                if action != "none":
                    last[i] = (touch_id, week)
            hazard = 0.02 / (1 + np.exp(engaged[i])) * (0.5 if i in last and last[i][1] >= week - 4 else 1.0)
            if rng.random() < hazard:
                credit = last[i][0] if i in last and last[i][1] >= week - 8 else None
                outcomes.append((ids[i], t + timedelta(days=3), "churn", f"O-{len(outcomes)}", credit))
                gone[i] = True
    folder.mkdir(parents=True)
    pl.DataFrame({"account_id": ids, "arr": np.round(rng.lognormal(5, 0.5, n), 2)}).write_csv(folder / "accounts.csv")
    pl.DataFrame(signals, schema=["account_id", "ts", "name", "value"], orient="row").write_csv(folder / "signals.csv")
    pl.DataFrame(touches, schema=["account_id", "action_id", "ts", "touch_id", "propensity"], orient="row").write_csv(
        folder / "touches.csv"
    )
    pl.DataFrame(outcomes, schema=["account_id", "ts", "kind", "outcome_id", "touch_id"], orient="row").write_csv(
        folder / "outcomes.csv"
    )
    (folder / "playbook.toml").write_text(PLAYBOOK, encoding="utf-8")
    return folder


@dataclass
class Runs:
    folder: Path
    book: Book
    playbook: Playbook
    fitted: RunResult
    reused: RunResult


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    root = tmp_path_factory.mktemp("labels")
    playbook = parse_playbook(PLAYBOOK)
    folder = write_last_touch_book(root / "book")
    book = load_book(folder, playbook=playbook, run_as_of=AS_OF)
    store: Store
    with open_store(f"sqlite:///{root / 'nextmove.db'}") as store:
        common = {"as_of": AS_OF, "store": store, "effect_params": FAST, "evaluate": False, "segments": False}
        fitted = run(book, playbook, out_dir=root / "fitted", **common)  # type: ignore[arg-type]
        reused = run(book, playbook, out_dir=root / "reused", reuse_model=True, **common)  # type: ignore[arg-type]
        yield Runs(folder, book, playbook, fitted, reused)


def _saved_notes(result: RunResult) -> list[str]:
    notes: list[str] = json.loads(result.files["summary.json"].read_text(encoding="utf-8"))["notes"]
    return notes


def test_a_run_labels_churn_credited_only_to_touches_by_window_and_says_so(runs: Runs) -> None:
    """Churns credited to the last real touch: doing nothing must not read as churn-free."""
    [note] = [n for n in _saved_notes(runs.fitted) if n.startswith("churn is labelled by its window")]
    assert "decisions to do nothing" in note
    assert "0 of them are credited with it" in note
    assert note in runs.fitted.summary["notes"]
    # The receipts' chance of churn without any action is the book's, not 0 %.
    without = [
        json.loads(e)["projected"][0]["without"] for e in runs.fitted.recommendations.get_column("evidence").to_list()
    ]
    assert float(np.median(without)) > 0.02


def test_a_run_that_reuses_its_model_keeps_the_comparables(runs: Runs) -> None:
    def comparables(result: RunResult) -> dict[str, list[object]]:
        frame = result.recommendations.select("account_id", "evidence")
        return {a: json.loads(e)["comparables"] for a, e in frame.iter_rows()}

    fitted, reused = comparables(runs.fitted), comparables(runs.reused)
    assert sum(map(len, fitted.values())) > 0
    assert reused == fitted  # the same model and history: the same accounts like this one
    # Its history is labelled as the fitted run's, and says so too.
    assert any(n.startswith("churn is labelled by its window") for n in _saved_notes(runs.reused))


def test_a_run_keeps_what_loading_the_book_noted(runs: Runs) -> None:
    """Rows after --as-of were printed when the book was loaded; the run's summary keeps the note too."""
    [loaded] = [n for n in runs.book.notes if "are after --as-of" in n]
    for result in (runs.fitted, runs.reused):
        notes = _saved_notes(result)
        assert notes.count(loaded) == 1


def test_nextmove_run_prints_the_loading_notes_once(runs: Runs) -> None:
    """`nextmove run` prints loading's notes before the run: the run's own list of notes leaves them out."""
    from rich.console import Console

    from nextmove.cli.run import render_run

    [loaded] = [n for n in runs.book.notes if "are after --as-of" in n]
    console = Console(record=True, width=400)
    render_run(runs.fitted, console, printed=runs.book.notes)
    assert "are after --as-of" not in console.export_text()
    render_run(runs.fitted, console)
    assert console.export_text().count(loaded[:60]) == 1


def test_nextmove_validate_says_which_kind_is_labelled_by_window(runs: Runs) -> None:
    from typer.testing import CliRunner

    from nextmove.cli import app

    checked = CliRunner().invoke(app, ["validate", "--book", str(runs.folder), "--as-of", AS_OF.isoformat()])
    assert checked.exit_code == 0, checked.output
    text = " ".join(checked.output.split())
    [note] = [n for n in runs.fitted.summary["notes"] if n.startswith("churn is labelled by its window")]
    assert f"note: {note}" in text  # the same counts as the run's training set
