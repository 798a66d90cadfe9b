"""The commands end to end on a B2C subscription book that the lab did not make.

Its names are none of the lab's: subscribers instead of accounts with owners, its own teams
(``retention``, ``crm``), channels (``push``, ``in_app``), signals (``minutes_watched``,
``payment_failed``) and outcome kinds (``cancel``, ``upgrade``); its touches log no propensity and
its playbook names no signal roles. Cancellations end a subscription, so the active book shrinks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.testing.subscriptions import ACTIONS, write_subscription_book

runner = CliRunner()


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("subscribers") / "book"
    write_subscription_book(folder, accounts=700)
    return folder


def _active(book: Path) -> int:
    cancelled = pl.read_parquet(book / "outcomes.parquet").filter(pl.col("kind") == "cancel").get_column("account_id")
    return pl.read_parquet(book / "accounts.parquet").height - cancelled.n_unique()


def test_run_on_a_subscription_book_with_its_own_teams_and_no_propensities(book: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", "--book", str(book), "--out", str(out), "--no-store", "--jobs", "1", "--trees", "30"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "no logged propensity" in text
    assert re.search(r"Fitting the effect models: learning from [\d,]+ decisions", text)  # the long stage's detail
    # The playbook names no signal roles: the run says the health score leaves the signals out.
    assert "does not read 2 of the book's signals (minutes_watched, payment_failed)" in text
    recs = pl.read_parquet(out / "recommendations.parquet")
    assert recs.height == _active(book)  # every subscriber still there, and none who cancelled
    assert set(recs.get_column("action_id").unique().to_list()) <= set(ACTIONS.tolist())
    trial = recs.filter(pl.col("action_id") == "premium_trial").get_column("account_id")
    basic = pl.read_parquet(book / "accounts.parquet").filter(pl.col("plan") == "basic").get_column("account_id")
    assert trial.is_in(basic.implode()).all()  # eligibility from the playbook's own expression
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    # Each team's budget holds: the crm team's actions cost what its own team may spend.
    costs = {"discount_offer": 5.4, "push_reminder": 0.05, "premium_trial": 2.0}
    spent = recs.filter(pl.col("arm") != "control").group_by("action_id").len()
    by_team = {"retention": 0.0, "crm": 0.0}
    for action, count in spent.iter_rows():
        if action in costs:
            by_team["retention" if action == "discount_offer" else "crm"] += costs[action] * count
    assert by_team["retention"] <= 300 + 1e-6
    assert by_team["crm"] <= 400 + 1e-6
    assert summary["accounts"] == recs.height
    # The report is titled by the playbook and writes small values with their cents.
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<h1>Subscriber playbook</h1>" in page
    assert re.search(r"worth -?\$\d\.\d\d", page)


def test_evaluate_health_and_segment_on_the_subscription_book(book: Path, tmp_path: Path) -> None:
    report = tmp_path / "eval.json"
    done = runner.invoke(app, ["evaluate", "--book", str(book), "--out", str(report), "--folds", "2", "--trees", "20"])
    assert done.exit_code == 0, done.output
    estimates = json.loads(report.read_text(encoding="utf-8"))
    logged = [p for p in estimates["policies"] if p["policy"] == "logged"]
    assert {p["method"] for p in logged} == {"ips", "snips"}
    health = runner.invoke(app, ["health", "--book", str(book), "--out", str(tmp_path / "h.csv"), "--no-save-model"])
    assert health.exit_code == 0, health.output
    assert 'usage = ["minutes_watched"]' in " ".join(health.output.split())
    scored = pl.read_csv(tmp_path / "h.csv")
    assert scored.height == _active(book)
    segments = runner.invoke(
        app, ["segment", "--book", str(book), "--out", str(tmp_path / "seg"), "--folds", "2", "--trees", "20"]
    )
    assert segments.exit_code == 0, segments.output
    assert json.loads((tmp_path / "seg" / "segments.json").read_text(encoding="utf-8"))["accounts"] == scored.height


def _playbook_variant(book: Path, tmp_path: Path, old: str, new: str) -> Path:
    text = (book / "playbook.toml").read_text(encoding="utf-8")
    assert old in text
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "playbook.toml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_a_cancellation_valued_at_a_fixed_amount_ends_accounts_only_when_the_playbook_says_so(
    book: Path, tmp_path: Path
) -> None:
    fixed = 'sense = "avoid"\nvalue = "fixed"\nvalue_usd = 100'
    args = ["run", "--book", str(book), "--no-store", "--jobs", "1", "--trees", "20"]
    # Not valued at ARR, so by default the cancel does not end accounts: the run says it looks as if it does.
    loose = _playbook_variant(book, tmp_path / "a", 'sense = "avoid"\nvalue = "arr"', fixed)
    result = runner.invoke(app, [*args, "--playbook", str(loose), "--out", str(tmp_path / "a" / "run")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "outcome 'cancel' of objective 'keep' looks like it ends accounts" in text
    assert "set ends_account = true under [objectives.keep]" in text
    assert pl.read_parquet(tmp_path / "a" / "run" / "recommendations.parquet").height > _active(book)
    # With ends_account, those who cancelled are gone, and the note is not given.
    ended = _playbook_variant(book, tmp_path / "b", 'sense = "avoid"\nvalue = "arr"', fixed + "\nends_account = true")
    result = runner.invoke(app, [*args, "--playbook", str(ended), "--out", str(tmp_path / "b" / "run")])
    assert result.exit_code == 0, result.output
    assert "looks like it ends accounts" not in result.output
    assert pl.read_parquet(tmp_path / "b" / "run" / "recommendations.parquet").height == _active(book)


def test_an_out_that_cannot_be_a_folder_fails_before_any_work(book: Path, tmp_path: Path) -> None:
    taken = tmp_path / "f.txt"
    taken.write_text("hi", encoding="utf-8")
    for command in (["run", "--no-store"], ["segment"]):
        for out in (taken, taken / "sub"):
            result = runner.invoke(app, [*command, "--book", str(book), "--out", str(out)])
            assert result.exit_code == 2, result.output
            assert "Traceback" not in result.output
            assert str(taken) in " ".join(result.output.split())
    result = runner.invoke(app, ["health", "--book", str(book), "--out", str(taken / "h.csv")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
