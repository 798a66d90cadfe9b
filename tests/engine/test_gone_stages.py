"""Accounts at a lifecycle stage the playbook names gone (``gone_stages``) are gone, in every job that counts
active accounts; the stage is read only where the book's data end, and never by the training set.

The book: an export of recent months. Of the accounts at stage ``lapsed`` (a name of this book, not one
nextmove knows), 24 churned within it; 16 left before it begins (no row, no churn: only their stage says
so). One account that churned is still at ``mature`` (a CRM not updated), so the stage holds nearly all
the churned accounts, not all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from nextmove.book import Book, gone_accounts
from nextmove.book.validate import gone_stage_notes, load_book
from nextmove.cli import app
from nextmove.engine.health import active_accounts, score_health
from nextmove.engine.run import run
from nextmove.errors import PlaybookError
from nextmove.features import build_training_set
from nextmove.playbook import Playbook
from nextmove.playbook.loader import load_playbook, parse_playbook
from nextmove.segment import behavior_snapshot, segment_book
from nextmove.segment.cluster import BehaviorSegmenter

FAST = {"n_folds": 2, "n_estimators": 25, "n_draws": 60}

PLAYBOOK = """
name = "Gone stages"
horizon_days = 28
control_fraction = 0.1

[objectives.keep]
outcome = "churn"
sense = "avoid"
value = "arr"

[[actions]]
id = "call"
name = "Check-in call"
team = "cs"
objective = "keep"
effort_hours = 1
cooldown_days = 14
default_for_stages = ["mature"]

[[actions]]
id = "tips"
name = "Tips email"
team = "marketing"
objective = "keep"
channel = "email"
cost_usd = 1
cooldown_days = 14

[signal_roles]
usage = ["logins"]
"""

GONE = 'gone_stages = ["lapsed"]\n'
START = datetime(2025, 1, 6, tzinfo=UTC)
WEEKS = 26


@dataclass(frozen=True)
class Export:
    folder: Path
    book: Book
    playbook: Playbook
    """Without ``gone_stages``."""
    gone_playbook: Playbook
    """With ``gone_stages = ["lapsed"]``."""
    left: list[str]
    """At ``lapsed`` with no churn in the book: gone by their stage alone."""
    churned: list[str]
    end: datetime
    """Where the book's data end."""


def _write_export(folder: Path) -> None:
    rng = np.random.default_rng(5)
    ids = [f"g{i:03d}" for i in range(120)]
    stages = ["lapsed"] * 40 + ["onboard"] * 20 + ["mature"] * 60
    churn_week = {ids[i]: int(rng.integers(2, WEEKS - 2)) for i in range(24)}
    churn_week[ids[119]] = 12  # churned, its stage not updated
    accounts = pl.DataFrame(
        {
            "account_id": ids,
            "owner": [f"owner{i % 4}" for i in range(120)],
            "arr": rng.uniform(5_000, 50_000, 120).round(0),
            "lifecycle_stage": stages,
        }
    )
    signals, touches, outcomes = [], [], []
    for i, account in enumerate(ids):
        if 24 <= i < 40:
            continue  # left before the export begins: no row of it
        last = churn_week.get(account, WEEKS)
        for week in range(last):
            t = START + timedelta(days=7 * week)
            signals.append((account, t + timedelta(hours=8), "logins", float(rng.poisson(20))))
            if week % 2 == 0:
                action = ["none", "call", "tips"][int(rng.integers(0, 3))]
                touches.append((f"t{len(touches)}", account, action, t + timedelta(hours=10)))
        if account in churn_week:
            outcomes.append((account, START + timedelta(days=7 * last - 3, hours=12), "churn"))
    pl.DataFrame(signals, schema=["account_id", "ts", "name", "value"], orient="row").write_parquet(
        folder / "signals.parquet"
    )
    pl.DataFrame(touches, schema=["touch_id", "account_id", "action_id", "ts"], orient="row").write_parquet(
        folder / "touches.parquet"
    )
    pl.DataFrame(outcomes, schema=["account_id", "ts", "kind"], orient="row").write_parquet(folder / "outcomes.parquet")
    accounts.write_parquet(folder / "accounts.parquet")
    (folder / "playbook.toml").write_text(PLAYBOOK, encoding="utf-8")
    (folder / "gone.toml").write_text(GONE + PLAYBOOK, encoding="utf-8")


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Export:
    folder = tmp_path_factory.mktemp("export")
    _write_export(folder)
    playbook = load_playbook(folder / "playbook.toml")
    book = load_book(folder, playbook=playbook)
    end = book.signals.get_column("ts").max()
    assert isinstance(end, datetime)
    return Export(
        folder,
        book,
        playbook,
        load_playbook(folder / "gone.toml"),
        left=[f"g{i:03d}" for i in range(24, 40)],
        churned=[f"g{i:03d}" for i in range(24)] + ["g119"],
        end=end,
    )


def _ids(frame: pl.DataFrame) -> set[str]:
    return set(frame.get_column("account_id").to_list())


def test_accounts_at_a_gone_stage_are_not_active_where_the_books_data_end(export: Export) -> None:
    when = datetime(2025, 7, 7, tzinfo=UTC)
    assert when > export.end
    without = _ids(active_accounts(export.book, export.playbook, when))
    assert set(export.left) <= without  # the old reading: their churn is not in the book, so they count
    active = _ids(active_accounts(export.book, export.gone_playbook, when))
    assert not active & set(export.left)
    assert not active & set(export.churned)
    assert active == without - set(export.left)
    gone = gone_accounts(export.book, export.gone_playbook, when)
    by_stage = gone.filter(pl.col("account_id").is_in(export.left))
    assert by_stage.height == len(export.left)
    assert by_stage.get_column("ended_ts").null_count() == len(export.left)  # the book does not say when they left


def test_a_backtest_before_the_data_end_does_not_read_todays_stage(export: Export) -> None:
    # At a past as-of, some accounts at `lapsed` today were customers: the stage cannot say who had left.
    past = START + timedelta(days=7 * 16)
    active = _ids(active_accounts(export.book, export.gone_playbook, past))
    assert set(export.left) <= active
    assert active == _ids(active_accounts(export.book, export.playbook, past))
    notes = gone_stage_notes(export.book, export.gone_playbook, past)
    assert len(notes) == 1
    assert "gone_stages ('lapsed') is not read as of 2025-04-28" in notes[0]
    churned_by_then = export.book.outcomes.filter(pl.col("ts") <= past).get_column("account_id").to_list()
    at_lapsed = 40 - len([a for a in churned_by_then if a != "g119"])
    assert at_lapsed > len(export.left)  # those at `lapsed` today that churn after the as-of were customers then
    text = " ".join(notes[0].split())
    assert f"The {at_lapsed} accounts at it that no terminal outcome had ended by then count as active" in text


def test_the_run_decides_for_no_account_at_a_gone_stage_and_notes_a_stage_that_looks_gone(export: Export) -> None:
    before = run(export.book, export.playbook, effect_params=FAST, jobs=1)
    decided = _ids(before.recommendations)
    assert set(export.left) <= decided  # what the finding was: they were given actions
    notes = [n for n in before.summary["notes"] if "looks like it means gone" in n]
    assert len(notes) == 1, before.summary["notes"]
    text = " ".join(notes[0].split())
    assert text.startswith("lifecycle stage 'lapsed' looks like it means gone: it holds 24 of the 25 accounts")
    assert "16 of the 16 accounts at it that count as active show no signal or touch in the 90 days" in text
    assert 'set gone_stages = ["lapsed"] at the top of the playbook' in text

    after = run(export.book, export.gone_playbook, effect_params=FAST, jobs=1)
    decided = _ids(after.recommendations)
    assert not decided & set(export.left)
    assert decided == _ids(before.recommendations) - set(export.left)
    assert not any("looks like it means gone" in n for n in after.summary["notes"])
    # The run's segments are of the accounts it decided on.
    assert after.summary["segments"]["accounts"] == len(decided)


def test_health_scores_no_account_at_a_gone_stage(export: Export) -> None:
    result = score_health(export.book, export.gone_playbook)
    scored = _ids(result.accounts)
    assert not scored & set(export.left)
    assert result.left_out == len(export.left) + len(export.churned)
    assert not any("looks like it means gone" in n for n in result.notes)
    old = score_health(export.book, export.playbook)
    assert set(export.left) <= _ids(old.accounts)
    assert any("stage 'lapsed' looks like it means gone" in n for n in old.notes)


def test_segments_leave_out_accounts_at_a_gone_stage(export: Export, tmp_path: Path) -> None:
    when = datetime(2025, 7, 7, tzinfo=UTC)
    book, playbook = export.book, export.gone_playbook
    report = segment_book(
        behavior_snapshot(book, when, playbook=playbook),
        playbook=playbook,
        outcomes=book.outcomes,
        accounts=book.accounts,
        as_of=when,
        segmenter=BehaviorSegmenter(k=2),
        active=active_accounts(book, playbook, when),
    )
    assert not _ids(report.assignments) & set(export.left)
    assert report.accounts == active_accounts(book, playbook, when).height
    out = tmp_path / "segments"
    cli = [
        "segment",
        "--book",
        str(export.folder),
        "--playbook",
        str(export.folder / "gone.toml"),
        "--no-response",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, cli, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    segmented = _ids(pl.read_csv(out / "segments.csv", schema_overrides={"account_id": pl.String}))
    assert segmented
    assert not segmented & set(export.left)


def test_the_training_set_never_reads_a_gone_stage(export: Export) -> None:
    # The stage is today's: a past decision of an account at `lapsed` was made while it was a customer.
    with_stages = build_training_set(export.book, export.gone_playbook)
    without = build_training_set(export.book, export.playbook)
    assert with_stages.equals(without)


def test_validate_notes_a_stage_that_looks_gone_and_a_gone_stage_not_read(export: Export) -> None:
    runner = CliRunner()
    env = {"COLUMNS": "400"}
    plain = runner.invoke(app, ["validate", "--book", str(export.folder)], env=env)
    assert plain.exit_code == 0, plain.output
    text = " ".join(plain.output.split())
    assert "lifecycle stage 'lapsed' looks like it means gone" in text
    assert "16 of the 16 accounts at it that count as active" in text
    gone = ["validate", "--book", str(export.folder), "--playbook", str(export.folder / "gone.toml")]
    quiet = runner.invoke(app, gone, env=env)
    assert quiet.exit_code == 0, quiet.output
    assert "looks like it means gone" not in quiet.output
    assert "not read" not in quiet.output
    backtest = runner.invoke(app, [*gone, "--as-of", "2025-04-28"], env=env)
    assert backtest.exit_code == 0, backtest.output
    assert "gone_stages ('lapsed') is not read as of 2025-04-28" in " ".join(backtest.output.split())


def test_no_stage_looks_gone_when_its_accounts_without_a_churn_are_active(export: Export) -> None:
    # The same book, but the accounts at `lapsed` without a churn log in every week: customers, not leavers.
    weeks = [START + timedelta(days=7 * w, hours=8) for w in range(WEEKS)]
    lively = pl.DataFrame(
        {
            "account_id": [a for a in export.left for _ in weeks],
            "ts": weeks * len(export.left),
            "name": "logins",
            "value": 20.0,
        }
    )
    signals = pl.concat([export.book.signals, lively], how="diagonal_relaxed")
    book = Book(export.book.accounts, signals, export.book.touches, export.book.outcomes)
    assert gone_stage_notes(book, export.playbook) == []
    assert len(gone_stage_notes(export.book, export.playbook)) == 1


def test_a_gone_stage_may_not_be_a_default_stage_and_one_no_account_has_is_noted(
    export: Export, tmp_path: Path
) -> None:
    with pytest.raises(PlaybookError, match="stage 'mature' is in gone_stages and is the default_for_stages"):
        parse_playbook('gone_stages = ["mature"]\n' + PLAYBOOK)
    misspelt = tmp_path / "misspelt.toml"
    misspelt.write_text('gone_stages = ["Lapsed"]\n' + PLAYBOOK, encoding="utf-8")
    cli = ["validate", "--book", str(export.folder), "--playbook", str(misspelt)]
    result = CliRunner().invoke(app, cli, env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "gone_stages names 'Lapsed', which no account's lifecycle_stage is" in text
    # Spelt in another case, it is not the book's stage: the stage still looks gone.
    assert "lifecycle stage 'lapsed' looks like it means gone" in text
    assert 'set gone_stages = ["Lapsed", "lapsed"]' in text


def test_validate_reads_a_gone_stage_where_the_run_does_within_a_day_of_the_data_end(export: Export) -> None:
    # The midnight that starts the data's last day is no backtest (is_backtest's one-day tolerance): a
    # run counts the accounts at the gone stage as gone there, and validate must not say otherwise.
    midnight = export.end.replace(hour=0, minute=0, second=0, microsecond=0)
    assert midnight < export.end
    assert not set(export.left) & _ids(active_accounts(export.book, export.gone_playbook, midnight))
    assert gone_stage_notes(export.book, export.gone_playbook, midnight) == []
    out = CliRunner().invoke(
        app,
        [
            "validate",
            "--book",
            str(export.folder),
            "--playbook",
            str(export.folder / "gone.toml"),
            "--as-of",
            f"{midnight:%Y-%m-%dT%H:%M:%SZ}",
        ],
        env={"COLUMNS": "400"},
    )
    assert out.exit_code == 0, out.output
    assert "not read" not in out.output
