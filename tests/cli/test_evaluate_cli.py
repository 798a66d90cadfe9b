"""``nextmove evaluate`` end to end on a real randomised experiment (Hillstrom), which the lab did not generate."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from nextmove.cli import app
from nextmove.decide.explore import stable_uniform
from nextmove.testing import HILLSTROM_PLAYBOOK, hillstrom_book

runner = CliRunner()

DATA = Path(
    os.environ.get("NEXTMOVE_HILLSTROM", Path(__file__).resolve().parents[3] / "shared" / "data" / "hillstrom.csv")
)
ROWS = 3000


@pytest.fixture(scope="module")
def book_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first rows of the Hillstrom e-mail test written as a book folder with its playbook."""
    assert DATA.is_file(), f"{DATA} is missing: the shared data folder must sit beside the repository"
    book = hillstrom_book(DATA, rows=ROWS)
    folder = tmp_path_factory.mktemp("hillstrom")
    book.accounts.write_csv(folder / "accounts.csv")
    book.touches.write_csv(folder / "touches.csv")
    book.outcomes.write_csv(folder / "outcomes.csv")
    (folder / "playbook.toml").write_text(HILLSTROM_PLAYBOOK, encoding="utf-8")
    return folder


def arm_means(book_dir: Path, held_out: set[str]) -> dict[str, float]:
    """Mean value per decision (a visit is $1, spend its dollars) of the held-out customers, per e-mail arm."""
    touches = pl.read_csv(book_dir / "touches.csv").filter(pl.col("account_id").is_in(sorted(held_out)))
    outcomes = pl.read_csv(book_dir / "outcomes.csv").filter(pl.col("kind").is_in(["visit", "spend"]))
    value = outcomes.group_by("account_id").agg(pl.col("value").sum())
    rows = touches.join(value, on="account_id", how="left").with_columns(pl.col("value").fill_null(0.0))
    return dict(rows.group_by("action_id").agg(pl.col("value").mean()).iter_rows())


def test_cli_evaluate_by_held_out_accounts_matches_the_randomised_arms(book_dir: Path, tmp_path: Path) -> None:
    accounts = pl.read_csv(book_dir / "accounts.csv").get_column("account_id").to_list()
    policy = tmp_path / "womens.csv"
    pl.DataFrame({"account_id": accounts, "action_id": "womens_email", "probability": 1.0}).write_csv(policy)
    out = tmp_path / "eval.json"
    args = ["evaluate", "--book", str(book_dir), "--holdout-fraction", "0.5", "--policy", str(policy)]
    result = runner.invoke(
        app, [*args, "--until", "2008-03-31", "--out", str(out), "--folds", "2", "--trees", "30", "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    held_out = {a for a, u in zip(accounts, stable_uniform(accounts, 3, "holdout"), strict=True) if u < 0.5}
    assert report["split"] == "accounts"
    assert report["evaluation"]["accounts"] == len(held_out)
    assert report["training"]["accounts"] == ROWS - len(held_out)
    values = {(v["policy"], v["method"]): v for v in report["policies"]}
    assert {p for p, _ in values} == {"learned", "lifecycle_default", "do_nothing", "womens", "logged"}
    means = arm_means(book_dir, held_out)
    # Propensities are all 1/3: SNIPS of "always a" is exactly the mean of the decisions that took a.
    assert values[("do_nothing", "snips")]["estimate"] == pytest.approx(means["none"])
    assert values[("womens", "snips")]["estimate"] == pytest.approx(means["womens_email"])
    assert values[("logged", "snips")]["estimate"] == pytest.approx(
        sum(means[a] * n for a, n in _counts(book_dir, held_out).items()) / len(held_out)
    )
    for v in report["policies"]:
        assert v["low"] <= v["estimate"] <= v["high"]
        assert v["n"] == len(held_out)
    assert values[("womens", "dr")]["matched_share"] == pytest.approx(1 / 3, abs=0.05)
    # Every customer's stage has no default here: the default policy is doing nothing.
    assert values[("lifecycle_default", "ips")]["estimate"] == pytest.approx(values[("do_nothing", "ips")]["estimate"])
    diffs = {(v["policy"], v["method"]): v for v in report["differences"]}
    assert diffs[("womens - do_nothing", "snips")]["estimate"] == pytest.approx(means["womens_email"] - means["none"])
    assert report["overlap"]["evaluation"]["flagged_arms"] == []
    assert {a["arm"] for a in report["overlap"]["training"]["arms"]} >= {"none", "mens_email", "womens_email"}
    # One campaign date: the outcome models cannot validate on a later window and say so.
    assert set(report["skipped"]) == {"visit", "spend"}
    assert "learned" in result.output
    assert "SNIPS" in result.output


def test_cli_evaluate_notes_intervals_on_a_small_effective_sample(book_dir: Path, tmp_path: Path) -> None:
    """About 300 held-out customers, a third of them e-mailed as a policy would: its intervals are noted."""
    out = tmp_path / "eval.json"
    args = ["evaluate", "--book", str(book_dir), "--holdout-fraction", "0.1", "--until", "2008-03-31"]
    result = runner.invoke(app, [*args, "--out", str(out), "--folds", "2", "--trees", "30", "--seed", "3"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    text = " ".join(result.output.split())
    for v in report["policies"] + report["differences"]:
        small = v["effective_sample_size"] < 200
        assert (v["note"] is not None and "the interval is likely too narrow" in v["note"]) == small, v
    learned = next(v for v in report["policies"] if (v["policy"], v["method"]) == ("learned", "ips"))
    n, ess = learned["n"], learned["effective_sample_size"]
    assert ess < 200
    assert (
        f"note on learned (IPS, SNIPS, DR): this policy's effective sample size is {ess:.0f} of {n:,} decisions "
        "(under 200): the weight rests on few of them, so the interval is likely too narrow"
    ) in text
    # Two purchases decide the IPS and SNIPS differences (their note says so too), not the DR one: two notes.
    assert "note on learned - do_nothing (IPS, SNIPS): the policy's effective sample size is" in text
    assert "note on learned - do_nothing (DR): the policy's effective sample size is" in text


def test_cli_evaluate_of_a_book_without_touches_values_no_action_it_never_took(tmp_path: Path) -> None:
    """A brand-new team's book (accounts, signals, outcomes, no touch): the history took no action, so no
    policy that takes one has an IPS or SNIPS value, nor a DR interval, and the output says why."""
    book = tmp_path / "cold"
    made = runner.invoke(app, ["simulate", "--out", str(book), "--accounts", "120", "--months", "8", "--format", "csv"])
    assert made.exit_code == 0, made.output
    pl.read_csv(book / "touches.csv").head(0).write_csv(book / "touches.csv")
    outcomes = pl.read_csv(book / "outcomes.csv")
    outcomes.drop([c for c in ("touch_id",) if c in outcomes.columns]).write_csv(book / "outcomes.csv")
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["evaluate", "--book", str(book), "--out", str(out), "--folds", "2", "--trees", "20"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    values = {(v["policy"], v["method"]): v for v in report["policies"] + report["differences"]}
    for name in ("lifecycle_default", "learned - lifecycle_default"):
        share = values[(name, "ips")]["unsupported_share"]
        assert share > 0.05
        for method in ("ips", "snips"):
            assert values[(name, method)]["estimate"] is None
            assert "IPS and SNIPS cannot value them" in values[(name, method)]["note"]
        assert values[(name, "dr")]["estimate"] is not None
        assert values[(name, "dr")]["low"] is None
    # The difference stands on the default's few matching decisions, not on the learned policy's 100 %.
    default, versus = values[("lifecycle_default", "ips")], values[("learned - lifecycle_default", "ips")]
    assert versus["matched_share"] == default["matched_share"] < 1
    # No interval of a difference excludes 0 on a history that says nothing of any action.
    for v in report["differences"]:
        assert v["low"] is None or v["low"] <= 0 <= v["high"], v
    text = " ".join(result.output.split())
    assert "note on lifecycle_default (IPS, SNIPS): the history never took " in text
    assert f"which this policy takes on {default['unsupported_share']:.0%} of the decisions" in text
    assert "note on learned - lifecycle_default (DR): the history never took " in text
    assert "whose error an interval would not count, so it has none" in text


def _counts(book_dir: Path, held_out: set[str]) -> dict[str, int]:
    touches = pl.read_csv(book_dir / "touches.csv").filter(pl.col("account_id").is_in(sorted(held_out)))
    return dict(touches.group_by("action_id").len().iter_rows())


def test_cli_evaluate_errors_say_what_to_fix(book_dir: Path, tmp_path: Path) -> None:
    out = ["--out", str(tmp_path / "eval.json")]
    base = ["evaluate", "--book", str(book_dir), "--until", "2008-03-31"]
    # One campaign date cannot be split in time.
    result = runner.invoke(app, [*base, *out])
    assert result.exit_code == 2
    assert "--holdout-fraction" in result.output
    result = runner.invoke(app, [*base, "--holdout-fraction", "1.5", *out])
    assert result.exit_code == 2
    assert "holdout_fraction must be in (0, 1)" in result.output
    partial = tmp_path / "partial.csv"
    pl.DataFrame({"account_id": ["c00000"], "action_id": ["mens_email"]}).write_csv(partial)
    result = runner.invoke(app, [*base, "--holdout-fraction", "0.5", "--policy", str(partial), *out])
    assert result.exit_code == 2
    assert "gives no action for" in " ".join(result.output.split())
    unknown = tmp_path / "unknown.csv"
    pl.DataFrame({"account_id": ["c00000"], "action_id": ["fax"]}).write_csv(unknown)
    result = runner.invoke(app, [*base, "--holdout-fraction", "0.5", "--policy", str(unknown), *out])
    assert result.exit_code == 2
    assert "not in the playbook" in result.output
    result = runner.invoke(app, [*base, "--policy", str(tmp_path / "missing.csv"), *out])
    assert result.exit_code == 2
    assert "no such file" in result.output
    assert not (tmp_path / "eval.json").exists()
    result = runner.invoke(app, ["evaluate", "--book", str(book_dir), "--out", str(tmp_path / "x.csv")])
    assert result.exit_code == 2
