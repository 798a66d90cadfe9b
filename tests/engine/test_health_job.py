"""Tests of the health job: active accounts, scores and trends, learned weights, outcome models and their versions."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nextmove.book import Book
from nextmove.book.validate import load_book
from nextmove.engine import HealthResult, load_outcome_models, score_health
from nextmove.errors import ConfigError, NotFoundError
from nextmove.features import (
    build_training_set,
    compute_features,
    declared_signal_kinds,
    signal_kinds,
    training_vocabulary,
)
from nextmove.models.health import HealthScorecard
from nextmove.models.outcome import IncompatibleModelError, OutcomeModel
from nextmove.playbook import Playbook
from nextmove.playbook.loader import default_playbook_text, parse_playbook
from nextmove.sim import SimConfig, SimResult, simulate
from nextmove.store import Store, open_store
from nextmove.testing.consumers import CONSUMER_PLAYBOOK, write_consumer_book

FAST = OutcomeModel(n_estimators=100, early_stopping_rounds=10, n_jobs=1)


@pytest.fixture(scope="module")
def lab() -> SimResult:
    return simulate(SimConfig(accounts=600, months=12, seed=1))


@pytest.fixture(scope="module")
def playbook(lab: SimResult) -> Playbook:
    return lab.config.resolved_playbook()


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    with open_store("sqlite://") as s:
        yield s


@pytest.fixture(scope="module")
def result(lab: SimResult, playbook: Playbook, store: Store) -> HealthResult:
    steps: list[str] = []
    res = score_health(lab.book, playbook, lab.as_of, store=store, template=FAST, progress=steps.append)
    assert steps[0].startswith("Computing features")
    assert any("Training the outcome models" in s for s in steps)
    return res


def _churned(book: Book, kind: str = "churn") -> set[str]:
    return set(book.outcomes.filter(pl.col("kind") == kind)["account_id"].to_list())


def test_score_health_scores_every_active_account_once(lab: SimResult, result: HealthResult) -> None:
    ids = result.accounts["account_id"].to_list()
    assert len(ids) == len(set(ids))
    gone = _churned(lab.book)
    assert gone
    assert not gone & set(ids)
    assert len(ids) == lab.summary.active_accounts
    assert result.left_out == lab.book.accounts.height - len(ids)


def test_score_health_columns_scores_trend_and_movers(result: HealthResult) -> None:
    frame = result.accounts
    for column in ("arr", "health_score", "health_band", "health_trend", "health_change", "top_movers"):
        assert column in frame.columns
    assert {f"health_{c.id}" for c in result.components} <= set(frame.columns)
    assert frame["health_score"].is_between(0, 100).all()
    assert set(frame["health_trend"].unique()) <= {"improving", "stable", "declining", "new"}
    assert (frame["top_movers"].str.contains(" points").sum()) > frame.height // 2
    assert result.before == result.as_of - np.timedelta64(6, "W").astype("timedelta64[s]").item()
    assert sum(b.accounts for b in result.bands()) == frame.height
    assert sum(b.arr_share for b in result.bands()) == pytest.approx(1.0)


def test_score_health_outcome_probabilities_with_drivers(result: HealthResult) -> None:
    frame = result.accounts
    for kind in ("churn", "expansion", "advocacy", "recovery", "onboarded"):
        assert frame[f"p_{kind}"].is_between(0, 1).all()
        assert frame[f"drivers_{kind}"].str.contains(r": (raises|lowers) \(").all()
    assert (frame["expected_expansion_amount"] >= 0).all()
    assert result.risk_kind == "churn"
    assert result.probability_column("churn") == "p_churn"
    assert result.probability_column("referral") is None
    top = result.top_at_risk(5)
    assert top["arr_at_risk"].to_list() == sorted(top["arr_at_risk"].to_list(), reverse=True)
    assert np.allclose(top["arr_at_risk"], top["arr"] * top["p_churn"])


def test_score_health_learns_weights_and_measures_accuracy(result: HealthResult) -> None:
    report = result.optimizer
    assert report is not None
    assert report.label == "y_churn"
    assert report.auc_hand_set is not None
    assert report.auc_learned is not None
    assert {m.power for m in report.measures} <= {"high", "moderate", "not predictive"}
    churn = result.accuracy["churn"]
    assert churn.auc is not None
    assert churn.auc > 0.8
    assert churn.ece < 0.03
    assert churn.binning == "equal_mass"
    assert len(churn.calibration) == 10


def test_score_health_saves_a_reloadable_model_version(
    lab: SimResult, playbook: Playbook, store: Store, result: HealthResult
) -> None:
    assert result.model_id is not None
    record = store.active_model("outcome")
    assert record is not None
    assert record.model_id == result.model_id
    assert record.playbook_hash == playbook.content_hash()
    assert record.trained_from is not None
    assert record.trained_to is not None
    assert record.trained_from < record.trained_to
    assert "arr" in record.features
    assert record.metrics["later_window"]["churn"]["ece"] == pytest.approx(result.accuracy["churn"].ece)
    assert record.metrics["kinds"]["churn"]["calibration"] in ("platt", "isotonic")
    models = load_outcome_models(store, playbook)
    assert result.outcome_models is not None
    assert models.kinds == result.outcome_models.kinds
    again = score_health(lab.book, playbook, lab.as_of, store=store, reuse_model=True)
    assert again.model_id == result.model_id
    assert again.accuracy == {}
    assert np.array_equal(again.accounts["p_churn"].to_numpy(), result.accounts["p_churn"].to_numpy())


def test_load_outcome_models_refuses_an_incompatible_model(
    playbook: Playbook, store: Store, result: HealthResult
) -> None:
    other = parse_playbook(default_playbook_text().replace("horizon_days = 90", "horizon_days = 60"))
    with pytest.raises(IncompatibleModelError, match=rf"trained under playbook {playbook.content_hash()}"):
        load_outcome_models(store, other)
    narrow = pl.DataFrame({"account_id": ["a"], "arr": [1.0]})
    with pytest.raises(IncompatibleModelError, match=rf"model '{result.model_id}'.*feature column\(s\) they read"):
        load_outcome_models(store, playbook, features=narrow)
    with open_store("sqlite://") as empty, pytest.raises(NotFoundError, match="no active 'outcome' model"):
        load_outcome_models(empty, playbook)
    with pytest.raises(ConfigError, match="reuse_model needs a store"):
        score_health(Book(narrow, *[pl.DataFrame()] * 3), playbook, reuse_model=True)  # type: ignore[arg-type]


def test_score_health_drivers_quote_what_receipts_would_under_the_books_names(
    lab: SimResult, playbook: Playbook, store: Store, result: HealthResult
) -> None:
    # Drivers quoted a level's window total ("active users (28-day total)": weekly readings of a gauge added
    # up) and a count's window mean, which docs/features.md says are never cited, under the stems' words.
    kinds = signal_kinds(compute_features(lab.book, lab.as_of, playbook=playbook), declared_signal_kinds(playbook))
    assert "level" in kinds.values()
    assert "count" in kinds.values()
    never = [
        f"{stem.replace('_', ' ')} ({w}-day {'total' if kind == 'level' else 'average'}) = "
        for stem, kind in kinds.items()
        for w in (7, 28, 90)
    ]
    for column in [c for c in result.accounts.columns if c.startswith("drivers_")]:
        texts = result.accounts[column].to_list()
        assert not [t for t in texts if any(words in t for words in never)], column
    # A signal the book names "Active Users" (its columns active_users_…) is named so, as a receipt names it.
    renamed = replace(
        lab.book,
        signals=lab.book.signals.with_columns(pl.col("name").replace("active_users", "Active Users")),
    )
    again = score_health(renamed, playbook, lab.as_of, store=store, reuse_model=True)
    drivers = " ".join(again.accounts["drivers_churn"].to_list())
    assert "Active Users (" in drivers
    assert "active users" not in drivers


def _without(book: Book, kind: str) -> Book:
    return replace(book, outcomes=book.outcomes.filter(pl.col("kind") != kind))


def test_score_health_on_a_book_without_any_churn_yet(lab: SimResult, playbook: Playbook) -> None:
    book = _without(lab.book, "churn")
    res = score_health(book, playbook, lab.as_of, template=FAST)
    assert res.optimizer is None
    assert any("health weights stay hand-set" in n and "no 'churn' outcome yet" in n for n in res.notes)
    assert any(n.startswith("churn: no 'churn' outcome in the history yet") for n in res.notes)
    assert "p_churn" not in res.accounts.columns
    assert "p_expansion" in res.accounts.columns
    assert res.risk_kind is None
    top = res.top_at_risk(3)
    assert top["health_band"].is_in(["At risk", "Critical"]).all()
    # Nothing to anchor the bands on: the fixed cut-offs, and a note that says so and why.
    assert res.bands_report is None
    assert res.health_bands.source == "fixed"
    assert any(n.startswith("health bands use the fixed cut-offs (Healthy 71–100") and "churn" in n for n in res.notes)


def test_score_health_terminal_kind_comes_from_the_playbook(lab: SimResult) -> None:
    book = replace(
        lab.book,
        outcomes=lab.book.outcomes.with_columns(
            pl.when(pl.col("kind") == "churn").then(pl.lit("cancellation")).otherwise(pl.col("kind")).alias("kind")
        ),
    )
    playbook = parse_playbook(default_playbook_text().replace('outcome = "churn"', 'outcome = "cancellation"'))
    res = score_health(book, playbook, lab.as_of, template=FAST)
    assert not _churned(book, "cancellation") & set(res.accounts["account_id"].to_list())
    assert res.optimizer is not None
    assert res.optimizer.label == "y_cancellation"
    assert res.risk_kind == "cancellation"
    assert "p_cancellation" in res.accounts.columns


def test_score_health_with_missing_constant_and_tier_missing_measures(lab: SimResult, playbook: Playbook) -> None:
    engagement = list(playbook.signal_roles.engagement)
    smb = lab.book.accounts.filter(pl.col("segment") == "SMB")["account_id"]
    signals = (
        lab.book.signals.filter(~pl.col("name").is_in(engagement))  # a whole component missing
        .with_columns(pl.when(pl.col("name") == "nps").then(7.0).otherwise(pl.col("value")).alias("value"))  # constant
        .filter(~((pl.col("name") == "logins") & pl.col("account_id").is_in(smb.implode())))  # missing for a tier
    )
    res = score_health(replace(lab.book, signals=signals), playbook, lab.as_of, template=FAST)
    frame = res.accounts
    assert "engagement" not in {c.id for c in res.components}
    assert "health_engagement" not in frame.columns
    assert frame["health_score"].null_count() == 0
    smb_rows = frame.filter(pl.col("segment") == "SMB")
    assert smb_rows.height > 0
    assert smb_rows["p_churn"].is_between(0, 1).all()
    assert "nps_last" in {m.feature for m in res.scorecard.measures}
    breakpoints = res.scorecard.breakpoints_["nps_last"]
    assert breakpoints[0] == breakpoints[-1] == 7.0  # constant: the scorecard scores it neutral (50)
    assert frame["health_sentiment"].null_count() < frame.height // 4  # accounts with no tickets nor surveys


def test_score_health_says_which_signals_no_role_names(
    lab: SimResult, playbook: Playbook, result: HealthResult
) -> None:
    # The lab's playbook names every lab signal in [signal_roles]; a book with a signal it does not
    # name gets a note that says which, and how to name it, instead of a score that silently ignores it.
    assert not any("does not read" in n for n in result.notes)
    renamed = lab.book.signals.with_columns(
        pl.when(pl.col("name") == "logins").then(pl.lit("app_opens")).otherwise(pl.col("name")).alias("name")
    )
    res = score_health(replace(lab.book, signals=renamed), playbook, lab.as_of, template=FAST)
    note = next(n for n in res.notes if "does not read" in n)
    assert "1 of the book's signals (app_opens)" in note
    assert 'usage = ["app_opens"]' in note
    # The role's member no signal of the book has any more is named too, not silently ignored.
    assert any("signal_roles.usage 'logins'" in n and "no signal of the book" in n for n in res.notes)
    assert not any("signal_roles" in n and "no signal of the book" in n for n in result.notes)


def test_score_health_account_not_started_at_the_earlier_time_is_new(lab: SimResult, playbook: Playbook) -> None:
    from datetime import timedelta

    from nextmove.engine.health import existing_accounts

    active = set(_active_ids(lab, playbook))
    started, renewed = [a for a in lab.book.accounts["account_id"].to_list() if a in active][:2]
    recent = lab.as_of - timedelta(days=20)
    accounts = lab.book.accounts.with_columns(
        # `started` became a customer 20 days ago; `renewed` is an old customer whose current contract began then.
        pl.when(pl.col("account_id") == started)
        .then(recent)
        .otherwise(pl.col("customer_since"))
        .alias("customer_since"),
        pl.when(pl.col("account_id").is_in([started, renewed]))
        .then(recent)
        .otherwise(pl.col("contract_start"))
        .alias("contract_start"),
        pl.when(pl.col("account_id").is_in([started, renewed]))
        .then(recent + timedelta(days=365))
        .otherwise(pl.col("renewal_date"))
        .alias("renewal_date"),
    )
    young = (pl.col("account_id") == started) & (pl.col("ts") < recent)
    book = replace(
        lab.book,
        accounts=accounts,
        signals=lab.book.signals.filter(~young),
        touches=lab.book.touches.filter(~young),
        outcomes=lab.book.outcomes.filter(~young),
    )
    before = lab.as_of - timedelta(weeks=playbook.health.trend_weeks)
    existing = set(existing_accounts(book, before)["account_id"].to_list())
    assert started not in existing
    assert renewed in existing
    res = score_health(book, playbook, lab.as_of, template=FAST)
    rows = res.accounts.rows_by_key("account_id", named=True, unique=True)
    assert rows[started]["health_score"] is not None
    assert (rows[started]["health_trend"], rows[started]["health_change"], rows[started]["top_movers"]) == (
        "new",
        None,
        "",
    )
    assert rows[renewed]["health_trend"] != "new"


def _active_ids(lab: SimResult, playbook: Playbook) -> list[str]:
    from nextmove.engine.health import active_accounts

    return active_accounts(lab.book, playbook, lab.as_of)["account_id"].to_list()


def _band_shares(frame: pl.DataFrame) -> dict[str, float]:
    bands = frame.get_column("health_band")
    return {band: float((bands == band).mean()) for band in ("Healthy", "At risk", "Critical")}  # type: ignore[arg-type]


def _later_window_rates(
    book: Book, playbook: Playbook, as_of: datetime, card: HealthScorecard, label: str
) -> dict[str, float]:
    """Each band's outcome rate over the history's latest quarter of decision times, scored by ``card``."""
    rows = build_training_set(book, playbook, as_of=as_of).filter(~pl.col("censored"))
    times = rows.get_column("decision_ts").unique().sort()
    later = rows.filter(pl.col("decision_ts") >= times[int(len(times) * 0.75)])
    banded = card.score(later).select("health_band", later.get_column(label).cast(pl.Float64).fill_null(0.0))
    rates = banded.group_by("health_band").agg(pl.col(label).mean())
    return {str(b): float(r) for b, r in rates.iter_rows()} | {"book": float(banded.get_column(label).mean())}  # type: ignore[arg-type]


def _assert_bands_carry_information(shares: dict[str, float], rates: dict[str, float]) -> None:
    # Not one band for nearly everyone: the largest holds under three quarters, none is empty.
    assert max(shares.values()) < 0.75, shares
    assert min(shares.values()) > 0, shares
    # On decisions the cut-offs were not learned from, churn rises from Healthy to At risk to Critical,
    # with Healthy below the book's rate and Critical well above it.
    assert rates["Healthy"] < rates["At risk"] < rates["Critical"], rates
    assert rates["Healthy"] < rates["book"] < rates["Critical"] / 1.5, rates


def test_score_health_bands_separate_churn_on_later_decisions(
    lab: SimResult, playbook: Playbook, result: HealthResult
) -> None:
    rates = _later_window_rates(lab.book, playbook, lab.as_of, result.scorecard, "y_churn")
    _assert_bands_carry_information(_band_shares(result.accounts), rates)
    assert result.health_bands.source == "history"
    report = result.bands_report
    assert report is not None
    assert report.monotone
    assert report.split_ts == (result.optimizer.split_ts if result.optimizer else None)
    summaries = {b.band: b for b in result.bands()}
    assert summaries["Critical"].span == (0, result.health_bands.critical_max)
    later = summaries["Critical"].later
    assert later is not None
    assert later.rate == pytest.approx(rates["Critical"])


def test_health_and_run_note_the_accounts_scored_without_any_signal() -> None:
    # Accounts with no signal row at all were banded (many Healthy, the top score among them) on ARR
    # and tenure alone, and neither `health` nor `run` said how many.
    from nextmove.engine.run import run

    lab = simulate(SimConfig(accounts=150, months=9, seed=7))
    playbook = lab.config.resolved_playbook()
    bare = set(lab.book.accounts.get_column("account_id").head(30).to_list())
    book = replace(lab.book, signals=lab.book.signals.filter(~pl.col("account_id").is_in(list(bare))))
    res = score_health(book, playbook, lab.as_of, template=FAST)
    scored = res.accounts.filter(pl.col("health_score").is_not_null())
    without = scored.filter(pl.col("account_id").is_in(list(bare))).sort(
        ["health_score", "account_id"], descending=[True, False]
    )
    assert without.height > 3
    first = without.row(0, named=True)
    healthy = without.filter(pl.col("health_band") == "Healthy").height
    said = (
        f"{without.height} of the {scored.height} scored accounts have no signal row before {lab.as_of:%Y-%m-%d} "
        "(no usage, survey or support data): their health score rests on ARR and tenure days alone"
    )
    note = next(n for n in res.notes if "no signal row" in n)
    assert note.startswith(said)
    assert f"{healthy} of them are banded Healthy" in note
    assert f"Highest scored: {first['account_id']} ({first['health_score']:.0f}, {first['health_band']})" in note
    assert f" and {without.height - 3} more." in note
    ran = run(
        book,
        playbook,
        as_of=lab.as_of,
        effect_params={"n_folds": 2, "n_estimators": 25, "n_draws": 40},
        evaluate=False,
        evidence=False,
        segments=False,
    )
    assert any(n.startswith(said) for n in ran.summary["notes"])
    # A book whose every scored account has signals says nothing of it.
    assert not any("no signal row" in n for n in score_health(lab.book, playbook, lab.as_of, template=FAST).notes)


@pytest.fixture(scope="module")
def consumers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("consumers") / "book"
    write_consumer_book(folder, consumers=1500, weeks=40)
    return folder


def test_score_health_bands_on_a_consumer_book_without_arr(consumers: Path) -> None:
    # A book the lab did not make: consumers with no ARR, cancellations valued at a fixed amount.
    playbook = parse_playbook(CONSUMER_PLAYBOOK)
    book = load_book(str(consumers), playbook=playbook)
    res = score_health(book, playbook, template=FAST)
    assert not res.has_arr
    rates = _later_window_rates(book, playbook, res.as_of, res.scorecard, "y_cancelled")
    _assert_bands_carry_information(_band_shares(res.accounts), rates)
    # No ARR, so no ARR measure: neither in the score nor in what the optimizer rates.
    assert "arr" not in {m.feature for m in res.scorecard.measures}
    assert res.optimizer is not None
    assert "arr" not in {m.feature for m in res.optimizer.measures}
    assert "ARR" not in {m.text for m in res.optimizer.measures}


def test_score_health_keeps_the_playbooks_band_cutoffs(consumers: Path) -> None:
    playbook = parse_playbook(CONSUMER_PLAYBOOK + "\n[health]\nband_cutoffs = [40, 55]\n")
    book = load_book(str(consumers), playbook=playbook)
    res = score_health(book, playbook, template=FAST)
    assert res.health_bands.source == "playbook"
    assert res.bands_report is None
    rounded = res.accounts.get_column("health_score").round(0)
    bands = res.accounts.get_column("health_band")
    assert ((rounded <= 40) == (bands == "Critical")).all()
    assert ((rounded > 55) == (bands == "Healthy")).all()
    assert not any("health bands" in n for n in res.notes)


def test_the_run_bands_health_as_the_health_job_does(consumers: Path) -> None:
    # `nextmove run` and `nextmove health` on the same book and time put every account in the same
    # band: the run learns the cut-offs from its own training set as the health job does.
    from nextmove.engine.run import run

    playbook = parse_playbook(CONSUMER_PLAYBOOK)
    book = load_book(str(consumers), playbook=playbook)
    res = score_health(book, playbook, template=FAST)
    assert res.health_bands.source == "history"
    ran = run(
        book,
        playbook,
        as_of=res.as_of,
        effect_params={"n_folds": 2, "n_estimators": 25, "n_draws": 40},
        evaluate=False,
        evidence=False,
        segments=False,
    )
    by_run = dict(zip(ran.recommendations["account_id"], ran.recommendations["health_band"], strict=True))
    by_job = dict(zip(res.accounts["account_id"], res.accounts["health_band"], strict=True))
    assert by_run == by_job
    assert max(_band_shares(ran.recommendations).values()) < 0.75


def test_terminal_label_is_the_vocabularys_stem_of_the_terminal_kind() -> None:
    # A kind the vocabulary lacks gets the stem labels would have (never its raw spelling, y_Cancel).
    from nextmove.engine.health import _terminal_label
    from nextmove.features import FeatureVocabulary

    pb = parse_playbook(
        '[objectives.keep]\noutcome="Cancel"\nsense="avoid"\nvalue="arr"\n'
        '[[actions]]\nid="call"\nname="Call"\nteam="cs"\nobjective="keep"\n'
    )
    assert _terminal_label(pb, FeatureVocabulary()) == "y_cancel"
    both = FeatureVocabulary.build(accounts_schema={}, outcome_kinds=["cancel", "Cancel"])
    assert _terminal_label(pb, both) == "y_cancel_2"


def test_score_health_learned_weights_come_with_playbook_lines_that_score_as_they_do(
    lab: SimResult, playbook: Playbook, result: HealthResult
) -> None:
    # The optimizer's weights ordered later churn better and nothing said how to use them: its report gives
    # the [health.components] lines, which score the book as the learned card does, signal names, silent
    # usage and all.
    report = result.optimizer
    assert report is not None
    assert report.verdict() is not None
    lines = report.playbook_lines
    assert lines is not None
    assert report.scorecard is not None
    health = {**playbook.health.model_dump(), **tomllib.loads(lines)["health"]}
    adopted = Playbook.model_validate({**playbook.model_dump(), "health": health})
    vocab = training_vocabulary(lab.book, playbook, as_of=lab.as_of)
    now = compute_features(lab.book, lab.as_of, playbook=playbook, vocabulary=vocab).join(
        result.accounts.select("account_id"), on="account_id", how="semi", maintain_order="left"
    )  # the active accounts, which the scorecard is fitted on
    card = HealthScorecard.from_playbook(adopted, now, vocab).fit(now)
    assert card.score(now).equals(report.scorecard.score(now))
    assert [m.text for m in card.measures] == [m.text for m in report.scorecard.measures]
