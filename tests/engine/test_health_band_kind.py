"""What the health bands say names the outcome kind as the book writes it ('Kündigung'), not by the stem of its
label column ('kundigung'), which is no name of the book's."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from nextmove.engine import score_health
from nextmove.errors import ConfigError
from nextmove.models.health_bands import HealthBandCalibrator
from nextmove.models.outcome import OutcomeModel
from nextmove.sim import SimConfig, simulate

KIND = "Kündigung"


def test_the_calibrator_names_the_kind_as_the_book_writes_it() -> None:
    rng = np.random.default_rng(0)
    history = pl.DataFrame(
        {
            "decision_ts": np.repeat(np.arange(8), 50),
            "account_id": np.arange(400) % 50,
            "health_score": rng.uniform(0, 100, 400),
            "y_kundigung": (np.arange(400) % 100 == 0).astype(int),  # too few events to learn from
        }
    )
    calibrator = HealthBandCalibrator(label="y_kundigung", outcome=KIND)
    with pytest.raises(ConfigError, match="holds 3 'Kündigung' events in 300 decisions"):
        calibrator.fit(history, pl.Series(rng.uniform(0, 100, 50)))


def test_the_health_jobs_band_note_names_the_kind_as_the_book_writes_it() -> None:
    lab = simulate(SimConfig(accounts=300, months=8, seed=1))
    playbook = lab.config.resolved_playbook()
    objectives = {
        k: o.model_copy(update={"outcome": KIND}) if o.outcome == "churn" else o for k, o in playbook.objectives.items()
    }
    playbook = playbook.model_copy(update={"objectives": objectives})
    # Three churns only, renamed: too few to learn bands from, which the note says naming the kind.
    churns = lab.book.outcomes.filter(pl.col("kind") == "churn").head(3).with_columns(pl.lit(KIND).alias("kind"))
    book = replace(lab.book, outcomes=pl.concat([lab.book.outcomes.filter(pl.col("kind") != "churn"), churns]))
    fast = OutcomeModel(n_estimators=50, early_stopping_rounds=10, n_jobs=1)
    res = score_health(book, playbook, lab.as_of, template=fast)
    [note] = [n for n in res.notes if n.startswith("health bands use the fixed cut-offs")]
    assert f"'{KIND}' events" in note, note
    assert "kundigung" not in note


def test_the_health_job_s_reports_name_the_kind_as_the_book_writes_it() -> None:
    lab = simulate(SimConfig(accounts=300, months=8, seed=1))
    playbook = lab.config.resolved_playbook()
    objectives = {
        k: o.model_copy(update={"outcome": KIND}) if o.outcome == "churn" else o for k, o in playbook.objectives.items()
    }
    playbook = playbook.model_copy(update={"objectives": objectives})
    outcomes = lab.book.outcomes.with_columns(
        pl.when(pl.col("kind") == "churn").then(pl.lit(KIND)).otherwise(pl.col("kind")).alias("kind")
    )
    fast = OutcomeModel(n_estimators=50, early_stopping_rounds=10, n_jobs=1)
    res = score_health(replace(lab.book, outcomes=outcomes), playbook, lab.as_of, template=fast)
    # The CLI titles its tables with these ("What predicts Kündigung", "Kündigung rate, later window").
    assert res.optimizer is not None
    assert res.optimizer.outcome == KIND


def test_the_band_report_names_the_kind_as_the_book_writes_it() -> None:
    rng = np.random.default_rng(0)
    score = rng.uniform(0, 100, 4000)
    history = pl.DataFrame(
        {
            "decision_ts": np.repeat(np.arange(8), 500),
            "account_id": np.arange(4000) % 500,
            "health_score": score,
            "y_kundigung": (rng.uniform(size=4000) < 0.3 / (1 + np.exp((score - 30) / 8))).astype(int),
        }
    )
    calibrator = HealthBandCalibrator(label="y_kundigung", outcome=KIND).fit(history, pl.Series(score[:500]))
    assert calibrator.report_ is not None
    assert calibrator.report_.outcome == KIND
