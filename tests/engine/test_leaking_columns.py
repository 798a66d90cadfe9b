"""Accounts columns written as accounts leave are never learned from: health and run leave them out, and say so.

The accounts table holds today's values. A column filled only for the accounts that have left (an
offboarding survey's score) then tells every model which past decisions ended in a churn: on a
construction book the churn model's later-window AUC read 0.986 and every active account got a
probability of 10⁻⁶, with no word of why. On the subscription book below the cancel model read 0.97
with it (0.62 without) and gave every active account 10⁻⁶ (0.074 without).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nextmove.book import Book, default_as_of, gone_accounts
from nextmove.book.validate import load_book
from nextmove.engine import HealthResult, score_health
from nextmove.engine.run import load_effect_model, run
from nextmove.models.outcome import OutcomeModel
from nextmove.playbook import Playbook
from nextmove.playbook.loader import parse_playbook
from nextmove.store import open_store
from nextmove.testing.subscriptions import SUBSCRIPTION_PLAYBOOK, write_subscription_book

FAST = OutcomeModel(n_estimators=100, early_stopping_rounds=10, n_jobs=1)


@pytest.fixture(scope="module")
def playbook() -> Playbook:
    return parse_playbook(SUBSCRIPTION_PLAYBOOK)


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory, playbook: Playbook) -> Book:
    folder = tmp_path_factory.mktemp("subscriptions") / "book"
    write_subscription_book(folder)
    return load_book(folder, playbook=playbook)


@pytest.fixture(scope="module")
def leaky(book: Book, playbook: Playbook) -> Book:
    """The book with ``exit survey``: a score from 0 to 6 for each account gone by a cancel, missing for the rest."""
    gone = gone_accounts(book, playbook, default_as_of(book)).get_column("account_id").implode()
    scores = pl.Series(np.random.default_rng(0).integers(0, 7, book.accounts.height).astype(float))
    accounts = book.accounts.with_columns(
        pl.when(pl.col("account_id").is_in(gone)).then(scores).otherwise(None).alias("exit survey")
    )
    return replace(book, accounts=accounts)


@pytest.fixture(scope="module")
def clean(book: Book, playbook: Playbook) -> HealthResult:
    return score_health(book, playbook, template=FAST)


def write_folder(folder: Path, book: Book) -> Path:
    """``book`` as a folder of Parquet tables with the subscription playbook, as the CLI reads books."""
    folder.mkdir()
    for name in ("accounts", "signals", "touches", "outcomes"):
        getattr(book, name).write_parquet(folder / f"{name}.parquet")
    (folder / "playbook.toml").write_text(SUBSCRIPTION_PLAYBOOK, encoding="utf-8")
    return folder


def keeping(playbook: Playbook, *columns: str) -> Playbook:
    return playbook.model_copy(update={"features": playbook.features.model_copy(update={"keep_columns": [*columns]})})


def test_score_health_leaves_out_a_column_filled_only_for_gone_accounts(
    leaky: Book, playbook: Playbook, clean: HealthResult
) -> None:
    result = score_health(leaky, playbook, template=FAST)
    # Learned from, the column made the later-window AUC 0.97 and every active account's probability 10⁻⁶.
    auc = result.accuracy["cancel"].auc
    assert auc is not None
    assert auc < 0.8
    assert auc == pytest.approx(clean.accuracy["cancel"].auc)
    p_active = float(result.accounts.get_column("p_cancel").mean())
    assert p_active == pytest.approx(float(clean.accounts.get_column("p_cancel").mean()))
    assert p_active > 0.01
    assert result.outcome_models is not None
    matrix = result.outcome_models.matrix_
    assert "exit_survey" not in matrix.columns_
    assert set(matrix.exclude) == {"lifecycle_stage", "exit_survey"}  # the default exclusion stays
    [note] = [n for n in result.notes if "'exit survey'" in n]
    assert note.startswith("the accounts column 'exit survey' tells the ")
    assert "gone by a cancel outcome from the " in note
    assert "(AUC 1.00; it is missing for 100% of the others and 0% of the gone)" in note
    assert "leave it out of their features (exit_survey)" in note
    assert '[features] keep_columns = ["exit survey"]' in note
    drivers = " ".join(result.accounts.get_column("drivers_cancel").drop_nulls().to_list())
    assert drivers
    assert "exit" not in drivers


def test_score_health_learns_from_a_column_the_playbook_keeps(leaky: Book, playbook: Playbook) -> None:
    result = score_health(leaky, keeping(playbook, "exit survey"), template=FAST)
    assert result.outcome_models is not None
    assert "exit_survey" in result.outcome_models.matrix_.columns_
    assert not [n for n in result.notes if "exit survey" in n]
    auc = result.accuracy["cancel"].auc
    assert auc is not None
    assert auc > 0.9


def test_score_health_leaves_the_books_honest_columns_in(clean: HealthResult) -> None:
    # ARR, plan, country and the dates of the subscription book are learned from as before, without a note.
    assert clean.outcome_models is not None
    assert tuple(clean.outcome_models.matrix_.exclude) == ("lifecycle_stage",)
    assert {"arr", "plan", "country", "tenure_days"} <= set(clean.outcome_models.matrix_.columns_)
    assert not [n for n in clean.notes if "tells the" in n]


def test_run_leaves_the_column_out_of_the_effect_model_and_says_so(leaky: Book, playbook: Playbook) -> None:
    with open_store("sqlite://") as store:
        result = run(
            leaky,
            playbook,
            store=store,
            effect_params={"n_folds": 2, "n_estimators": 20},
            evaluate=False,
            segments=False,
        )
        model, _ = load_effect_model(store, playbook)
    assert set(model.exclude) == {"lifecycle_stage", "variant", "exit_survey"}  # the defaults stay
    assert "exit_survey" not in model.matrix_.columns_
    assert any(n.startswith("the accounts column 'exit survey' tells the ") for n in result.summary["notes"])
    evidence = " ".join(result.recommendations.get_column("evidence").drop_nulls().to_list())
    assert "exit_survey" not in evidence
    assert "exit survey" not in evidence


def test_validate_names_the_column(tmp_path: Path, leaky: Book) -> None:
    from typer.testing import CliRunner

    from nextmove.cli.app import app

    folder = write_folder(tmp_path / "book", leaky)
    out = CliRunner().invoke(app, ["validate", "--book", str(folder)], env={"COLUMNS": "400"})
    assert out.exit_code == 0, out.output
    assert "the accounts column 'exit survey' tells the " in out.output
    assert '[features] keep_columns = ["exit survey"]' in out.output


def test_validate_names_a_kept_column_the_accounts_table_lacks(tmp_path: Path, leaky: Book) -> None:
    from typer.testing import CliRunner

    from nextmove.cli.app import app

    folder = write_folder(tmp_path / "book", leaky)
    playbook = tmp_path / "playbook.toml"
    playbook.write_text(SUBSCRIPTION_PLAYBOOK + '\n[features]\nkeep_columns = ["exit survey", "Exit Survey 2"]\n')
    out = CliRunner().invoke(
        app, ["validate", "--book", str(folder), "--playbook", str(playbook)], env={"COLUMNS": "400"}
    )
    assert out.exit_code == 0, out.output
    assert "keep_columns names 'Exit Survey 2', which the accounts table does not have" in out.output
    assert "the accounts column 'exit survey' tells the " not in out.output  # kept, so not reported


def test_score_health_says_when_reused_models_read_the_column(leaky: Book, playbook: Playbook) -> None:
    # Outcome models saved before the guard existed learned from the column: reusing them says so.
    from nextmove.engine.model_store import save_outcome_models
    from nextmove.features import build_training_set, training_vocabulary
    from nextmove.models.outcome import OutcomeModels

    when = default_as_of(leaky)
    training = build_training_set(leaky, playbook, as_of=when)
    vocab = training_vocabulary(leaky, playbook, as_of=when)
    old = OutcomeModels(playbook, template=FAST, vocabulary=vocab).fit(training)
    assert "exit_survey" in old.matrix_.columns_
    with open_store("sqlite://") as store:
        save_outcome_models(store, old)
        result = score_health(leaky, playbook, store=store, reuse_model=True)
    [note] = [n for n in result.notes if "exit_survey" in n]
    assert note.startswith("the reused models read exit_survey, which leaks how accounts ended")
    assert "fit them again (without reusing them)" in note
    assert not [n for n in result.notes if n.startswith("the accounts column")]


def test_evaluate_leaves_the_column_out_of_its_models(leaky: Book, playbook: Playbook) -> None:
    from nextmove.measure.ope import evaluate_offline

    result = evaluate_offline(leaky, playbook, effect_params={"n_folds": 2, "n_estimators": 20})
    assert any(n.startswith("the accounts column 'exit survey' tells the ") for n in result.notes)
    auc = result.outcome_accuracy["cancel"].auc
    assert auc is not None
    assert auc < 0.8


def test_segment_leaves_the_column_out_of_its_effect_model(tmp_path: Path, leaky: Book) -> None:
    from typer.testing import CliRunner

    from nextmove.cli.app import app

    folder = write_folder(tmp_path / "book", leaky)
    args = ["segment", "--book", str(folder), "--out", str(tmp_path / "segments"), "--trees", "20", "--folds", "2"]
    out = CliRunner().invoke(app, args, env={"COLUMNS": "400"})
    assert out.exit_code == 0, out.output
    assert "the accounts column 'exit survey' tells the " in out.output
