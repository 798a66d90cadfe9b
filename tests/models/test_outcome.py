"""Tests of the calibrated outcome models: contract, later-window validation, calibration, drivers, bytes."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nextmove.decide.phrases import feature_wording
from nextmove.errors import ConfigError, NotFittedError
from nextmove.features import FeatureVocabulary, build_training_set
from nextmove.measure import evaluate_probabilities
from nextmove.models.calibration import Calibrator, choose_calibrator, fit_calibrator
from nextmove.models.outcome import (
    Driver,
    IncompatibleModelError,
    OutcomeDataError,
    OutcomeModel,
    OutcomeModels,
    outcome_targets,
    plain_feature_name,
)
from nextmove.playbook import Playbook
from nextmove.playbook.loader import default_playbook_text, parse_playbook
from nextmove.sim import SimConfig, simulate

T0 = datetime(2025, 1, 6, tzinfo=UTC)
FAST = {"n_estimators": 150, "early_stopping_rounds": 15, "n_jobs": 1}


def _synthetic(n: int = 3000, times: int = 20, seed: int = 0) -> tuple[pl.DataFrame, np.ndarray, list[datetime]]:
    """Accounts whose event odds fall with usage and rise with tickets; SMB has no usage tracked at all."""
    rng = np.random.default_rng(seed)
    usage = rng.normal(size=n)
    tickets = rng.poisson(1.0, n).astype(float)
    segment = np.where(rng.random(n) < 0.4, "SMB", "Enterprise")
    logit = -2.5 - 1.2 * usage + 0.6 * tickets + np.where(segment == "SMB", 0.5, 0.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    frame = pl.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(n)],
            "usage": pl.Series(np.where(segment == "SMB", np.nan, usage)).fill_nan(None),
            "tickets": tickets,
            "segment": segment,
            "constant": np.ones(n),
            "amount": np.where(y == 1, 1000.0 + 500.0 * (tickets > 1), 0.0),
        }
    )
    ts = [T0 + timedelta(days=14 * (i % times)) for i in range(n)]
    return frame, y, ts


@pytest.fixture(scope="module")
def synthetic() -> tuple[pl.DataFrame, np.ndarray, list[datetime]]:
    return _synthetic()


@pytest.fixture(scope="module")
def fitted(synthetic: tuple[pl.DataFrame, np.ndarray, list[datetime]]) -> OutcomeModel:
    frame, y, ts = synthetic
    return OutcomeModel("churn", exclude=("amount",), **FAST).fit(frame, y, ts, amount=frame["amount"])


# ---- the estimator contract ---------------------------------------------------------------------


def test_outcome_model_predict_before_fit_raises() -> None:
    frame, _, _ = _synthetic(50)
    with pytest.raises(NotFittedError, match=r"call fit\(X, y, decision_ts\)"):
        OutcomeModel("churn").predict_proba(frame)
    with pytest.raises(NotFittedError, match="call fit"):
        OutcomeModel("churn").explain(frame)


def test_outcome_model_init_only_stores_arguments() -> None:
    model = OutcomeModel("churn", validation_fraction=7.0, n_estimators=-1)
    assert model.get_params()["validation_fraction"] == 7.0
    assert not hasattr(model, "booster_")


def test_outcome_model_fit_validates_parameters(synthetic: tuple[pl.DataFrame, np.ndarray, list[datetime]]) -> None:
    frame, y, ts = synthetic
    with pytest.raises(ConfigError, match=r"validation_fraction must be in \(0, 1\), got 1.5"):
        OutcomeModel(validation_fraction=1.5).fit(frame, y, ts)
    with pytest.raises(ConfigError, match="calibration must be"):
        OutcomeModel(calibration="beta").fit(frame, y, ts)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="only 0 and 1"):
        OutcomeModel().fit(frame, np.where(y == 1, 2, 0), ts)
    with pytest.raises(ConfigError, match="decision_ts has 10 values but X has 3000 rows"):
        OutcomeModel().fit(frame, y, ts[:10])
    with pytest.raises(ConfigError, match="polars DataFrame"):
        OutcomeModel().fit(frame.to_numpy(), y, ts)  # type: ignore[arg-type]


def test_outcome_model_same_seed_same_output(synthetic: tuple[pl.DataFrame, np.ndarray, list[datetime]]) -> None:
    frame, y, ts = synthetic
    a = OutcomeModel(exclude=("amount",), random_state=3, **FAST).fit(frame, y, ts).predict_proba(frame)
    b = OutcomeModel(exclude=("amount",), random_state=3, **FAST).fit(frame, y, ts).predict_proba(frame)
    assert np.array_equal(a, b)


def test_outcome_model_pickles(
    fitted: OutcomeModel, synthetic: tuple[pl.DataFrame, np.ndarray, list[datetime]]
) -> None:
    frame, _, _ = synthetic
    clone = pickle.loads(pickle.dumps(fitted))
    assert np.array_equal(clone.predict_proba(frame), fitted.predict_proba(frame))
    assert np.array_equal(clone.predict_expected_amount(frame), fitted.predict_expected_amount(frame))


def test_outcome_model_does_not_mutate_inputs() -> None:
    frame, y, ts = _synthetic(2000)
    frame_before, y_before, ts_before = frame.clone(), y.copy(), list(ts)
    model = OutcomeModel(exclude=("amount",), **FAST).fit(frame, y, ts)
    model.predict_proba(frame)
    model.explain(frame.head(5))
    assert frame.equals(frame_before)
    assert np.array_equal(y, y_before)
    assert ts == ts_before


def test_outcome_model_predict_proba_is_sklearn_shaped(
    fitted: OutcomeModel, synthetic: tuple[pl.DataFrame, np.ndarray, list[datetime]]
) -> None:
    proba = fitted.predict_proba(synthetic[0].head(7))
    assert proba.shape == (7, 2)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert ((proba > 0) & (proba < 1)).all()


# ---- later-window validation and calibration ----------------------------------------------------


def test_outcome_model_validates_on_a_later_window(fitted: OutcomeModel) -> None:
    s = fitted.summary_
    assert s.train_to < s.validation_from
    assert s.validation_from == T0 + timedelta(days=14 * 15)  # the latest 5 of 20 decision times
    v = fitted.validation_
    assert v is not None
    assert (v.decision_ts >= np.datetime64(s.validation_from.replace(tzinfo=None), "us")).all()
    assert s.train_rows + s.validation_rows == 3000
    assert 0 < s.trees <= 150


def test_outcome_model_is_calibrated_on_the_later_window(fitted: OutcomeModel) -> None:
    v = fitted.validation_
    assert v is not None
    acc = evaluate_probabilities(v.y, v.probability)
    assert acc.ece < 0.06  # 750 rows in 10 bins: sampling noise alone gives an ECE of about 0.035
    assert abs(acc.mean_predicted - acc.base_rate) < 0.01
    assert acc.auc is not None
    assert acc.auc > 0.7
    assert fitted.summary_.calibration in ("platt", "isotonic")
    assert set(fitted.summary_.calibration_brier) >= {"platt"}


def test_outcome_model_single_class_raises_a_clear_error(
    synthetic: tuple[pl.DataFrame, np.ndarray, list[datetime]],
) -> None:
    frame, y, ts = synthetic
    with pytest.raises(OutcomeDataError, match=r"single class \(no events in 3,000 rows\)"):
        OutcomeModel("advocacy").fit(frame, np.zeros_like(y), ts)
    with pytest.raises(OutcomeDataError, match="only events"):
        OutcomeModel("advocacy").fit(frame, np.ones_like(y), ts)


def test_outcome_model_too_few_events_in_the_later_window(
    synthetic: tuple[pl.DataFrame, np.ndarray, list[datetime]],
) -> None:
    frame, y, ts = synthetic
    late = np.array([t >= T0 + timedelta(days=14 * 15) for t in ts])
    y_early_only = np.where(late, 0, y)
    with pytest.raises(OutcomeDataError, match="validation window holds 0 'recovery' events"):
        OutcomeModel("recovery").fit(frame, y_early_only, ts)


def test_outcome_model_needs_two_decision_times() -> None:
    frame, y, _ = _synthetic(500)
    with pytest.raises(OutcomeDataError, match="single decision time"):
        OutcomeModel().fit(frame, y, [T0] * 500)


def test_calibration_prefers_platt_when_the_scores_are_already_log_odds() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(-1, 1.5, 5000)
    y = (rng.random(5000) < 1 / (1 + np.exp(-z))).astype(float)
    choice = choose_calibrator(z, y)
    assert choice.calibrator.method == "platt"
    assert abs(choice.calibrator.slope - 1) < 0.15
    assert choice.out_of_fold.shape == z.shape


def test_calibration_picks_isotonic_for_a_non_logistic_shape() -> None:
    rng = np.random.default_rng(2)
    z = rng.uniform(-3, 3, 8000)
    p = np.where(z > 1, 0.9, 0.05)  # a step: no logistic curve fits it
    y = (rng.random(8000) < p).astype(float)
    choice = choose_calibrator(z, y)
    assert choice.calibrator.method == "isotonic"
    assert choice.brier["isotonic"] < choice.brier["platt"]


def test_calibrator_round_trips_through_a_dict() -> None:
    z = np.linspace(-2, 2, 300)
    y = (z > 0).astype(float)
    for method in ("platt", "isotonic"):
        cal = fit_calibrator(method, z, y)  # type: ignore[arg-type]
        assert Calibrator.from_dict(cal.to_dict()) == cal
        p = cal.apply(z)
        assert (p >= 1e-6).all()
        assert (p <= 1 - 1e-6).all()
    with pytest.raises(ConfigError, match="both events and non-events"):
        choose_calibrator(z, np.zeros_like(z))


# ---- amounts, drivers, missing data --------------------------------------------------------------


def test_outcome_model_expected_amount_is_probability_times_amount(
    fitted: OutcomeModel, synthetic: tuple[pl.DataFrame, np.ndarray, list[datetime]]
) -> None:
    frame = synthetic[0]
    p = fitted.predict_proba(frame)[:, 1]
    if_event = fitted.predict_amount_if_event(frame)
    assert np.allclose(fitted.predict_expected_amount(frame), p * if_event)
    assert (if_event >= 1000.0 - 1e-9).all()
    assert (if_event <= 1500.0 + 1e-9).all()


def test_outcome_model_amount_falls_back_to_the_mean_with_few_events(
    synthetic: tuple[pl.DataFrame, np.ndarray, list[datetime]],
) -> None:
    frame, y, ts = synthetic
    model = OutcomeModel(exclude=("amount",), min_amount_rows=10_000, **FAST).fit(frame, y, ts, amount=frame["amount"])
    assert model.summary_.amount_method == "mean"
    expected_mean = float(frame.filter(pl.Series(y == 1))["amount"].mean())  # type: ignore[arg-type]
    assert np.allclose(model.predict_amount_if_event(frame.head(3)), expected_mean)


def test_outcome_model_without_amount_refuses_to_predict_one(
    synthetic: tuple[pl.DataFrame, np.ndarray, list[datetime]],
) -> None:
    frame, y, ts = synthetic
    model = OutcomeModel(exclude=("amount",), **FAST).fit(frame, y, ts)
    with pytest.raises(NotFittedError, match="no amount part"):
        model.predict_expected_amount(frame)


def test_outcome_model_drivers_are_lightgbm_contributions(
    fitted: OutcomeModel, synthetic: tuple[pl.DataFrame, np.ndarray, list[datetime]]
) -> None:
    frame = synthetic[0].head(50)
    drivers = fitted.explain(frame, top_k=2)
    assert len(drivers) == 50
    assert all(isinstance(d, Driver) for row in drivers for d in row)
    x = fitted.matrix_.transform(frame)
    contrib = fitted.booster_.predict(x, pred_contrib=True)
    raw = fitted.booster_.predict(x, raw_score=True)
    assert np.allclose(contrib.sum(axis=1), raw)
    for i, row in enumerate(drivers):
        for d in row:
            j = fitted.feature_names_in_.index(d.feature)
            assert d.contribution == pytest.approx(contrib[i, j])
        assert [abs(d.contribution) for d in row] == sorted((abs(d.contribution) for d in row), reverse=True)
    assert "constant" not in {d.feature for row in drivers for d in row}  # a constant feature never pushes


def test_outcome_model_feature_missing_for_a_whole_tier(
    fitted: OutcomeModel, synthetic: tuple[pl.DataFrame, np.ndarray, list[datetime]]
) -> None:
    frame = synthetic[0]
    smb = frame.filter(pl.col("segment") == "SMB").head(20)
    assert smb["usage"].null_count() == 20
    p = fitted.predict_proba(smb)[:, 1]
    assert np.isfinite(p).all()
    values = {d.feature: d.value for row in fitted.explain(smb, top_k=4) for d in row}
    assert values.get("usage") is None
    texts = [d.text for row in fitted.explain(smb, top_k=4) for d in row if d.feature == "usage"]
    assert all("usage = missing" in t for t in texts)


def test_driver_text_is_plain() -> None:
    assert Driver("segment", "segment", "SMB", 0.3).text == "segment = SMB: raises (+0.30)"
    assert plain_feature_name("touch_any_days_since") == "days since the latest touch"
    assert plain_feature_name("outcome_churn_count_365d") == "churn outcomes (365-day count)"


# ---- all outcomes of a playbook, on the lab -------------------------------------------------------


@pytest.fixture(scope="module")
def lab() -> tuple[object, pl.DataFrame]:
    result = simulate(SimConfig(accounts=900, months=12, seed=0))
    training = build_training_set(result.book, result.config.resolved_playbook())
    return result, training


REFERRAL = '\n[objectives.referral]\noutcome = "referral"\nvalue = "fixed"\nvalue_usd = 10\n'
"""An objective whose outcome the lab never produces."""


@pytest.fixture(scope="module")
def lab_playbook() -> Playbook:
    return parse_playbook(default_playbook_text() + REFERRAL)


@pytest.fixture(scope="module")
def lab_models(lab: tuple[object, pl.DataFrame], lab_playbook: Playbook) -> OutcomeModels:
    _, training = lab
    return OutcomeModels(lab_playbook, template=OutcomeModel(**FAST)).fit(training)


def test_outcome_targets_follow_the_playbook() -> None:
    playbook = parse_playbook(default_playbook_text())
    targets = outcome_targets(playbook)
    assert [t.kind for t in targets] == [o.outcome for o in playbook.objectives.values()]
    assert [t.kind for t in targets if t.amount] == ["expansion"]
    assert targets[0].label == "y_churn"


def test_outcome_models_fit_every_objective_and_skip_absent_kinds(lab_models: OutcomeModels) -> None:
    assert lab_models.kinds == ["churn", "expansion", "advocacy", "recovery", "onboarded"]
    assert "referral" in lab_models.skipped_
    assert any(n.startswith("referral: no 'referral' outcome in the history yet") for n in lab_models.notes_)
    with pytest.raises(KeyError, match="no 'referral' outcome"):
        lab_models["referral"]


def test_outcome_models_churn_is_close_to_the_truth_on_the_later_window(
    lab: tuple[object, pl.DataFrame], lab_models: OutcomeModels
) -> None:
    """The small version of the lab acceptance (the bench runs the full book with the 0.03 bound)."""
    result, training = lab
    rows = training.filter(~pl.col("censored"))
    v = lab_models["churn"].validation_
    assert v is not None
    later = rows[v.row_index].select("touch_id").with_columns(y=pl.Series(v.y), p=pl.Series(v.probability))
    truth = result.truth.decisions.select("touch_id", "p_churn")  # type: ignore[attr-defined]
    later = later.join(truth, on="touch_id", how="left")
    assert later["p_churn"].null_count() == 0
    model = evaluate_probabilities(later["y"], later["p"])
    ceiling = evaluate_probabilities(later["y"], later["p_churn"])
    assert model.auc is not None
    assert ceiling.auc is not None
    assert model.auc > ceiling.auc - 0.06
    assert model.ece <= 0.03


def test_outcome_models_predict_probabilities_amounts_and_drivers(
    lab: tuple[object, pl.DataFrame], lab_models: OutcomeModels
) -> None:
    _, training = lab
    snap = training.filter(pl.col("decision_ts") == pl.col("decision_ts").max()).head(40)
    pred = lab_models.predict(snap, top_k=2)
    frame = pred.to_frame()
    assert frame.height == 40
    assert {"p_churn", "expected_expansion_amount", "drivers_churn", "p_onboarded"} <= set(frame.columns)
    assert frame["p_churn"].is_between(0, 1).all()
    assert np.allclose(
        pred.expected_amount["expansion"],
        pred.probability["expansion"] * lab_models["expansion"].predict_amount_if_event(snap),
    )
    assert all(len(row) <= 2 for row in pred.drivers["churn"])


def test_outcome_models_round_trip_through_bytes(
    lab: tuple[object, pl.DataFrame], lab_models: OutcomeModels, lab_playbook: Playbook
) -> None:
    _, training = lab
    playbook = lab_playbook
    blob = lab_models.to_bytes()
    assert isinstance(blob, bytes)
    again = OutcomeModels.from_bytes(blob, playbook)
    snap = training.tail(30)
    for kind in lab_models.kinds:
        assert np.array_equal(again[kind].predict_proba(snap), lab_models[kind].predict_proba(snap))
    info = again.info
    assert info.playbook_hash == playbook.content_hash()
    assert info.trained_from < info.validation_from < info.trained_to  # type: ignore[operator]
    assert info.summaries["churn"] == lab_models.info.summaries["churn"]


def test_outcome_models_refuse_another_playbook_or_missing_features(
    lab: tuple[object, pl.DataFrame], lab_models: OutcomeModels
) -> None:
    _, training = lab
    other = parse_playbook(default_playbook_text())
    with pytest.raises(IncompatibleModelError, match=rf"trained under playbook {lab_models.playbook_hash_}"):
        OutcomeModels.from_bytes(lab_models.to_bytes(), other)
    with pytest.raises(IncompatibleModelError, match=r"2 feature column\(s\) they read are not in the features: arr"):
        lab_models.check_compatible(features=training.head(5).drop("arr", "nps_last"))
    with pytest.raises(IncompatibleModelError, match="not nextmove outcome models"):
        OutcomeModels.from_bytes(b"garbage", other)


def test_outcome_models_predict_before_fit_raises(lab: tuple[object, pl.DataFrame]) -> None:
    result, training = lab
    with pytest.raises(NotFittedError, match=r"call fit\(training\)"):
        OutcomeModels(result.config.resolved_playbook()).predict(training.head(2))  # type: ignore[attr-defined]


# ---- docs/models.md ---------------------------------------------------------------------------------


def test_models_doc_example_runs() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "models.md"
    example = doc.read_text(encoding="utf-8").split("```python\n")[1].split("```")[0]
    namespace: dict[str, object] = {}
    exec(compile(example, str(doc), "exec"), namespace)  # the page's own example, run as written
    assert "result" in namespace


# ---- what drivers quote -------------------------------------------------------------------------------


def _gauge_history(n: int = 400, times: int = 10, seed: int = 4) -> pl.DataFrame:
    """A training set whose churn follows a gauge's 28-day total (four weekly readings of it, added up)
    and a count's 28-day mean (per event): the two statistics no words may quote."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(times):
        level = rng.gamma(2.0, 5.0, n)
        readings = np.where(rng.random(n) < 0.1, 3, 4)  # weekly: the rows per account barely vary
        tickets = rng.poisson(2.0, n)
        per_ticket = np.where(tickets > 0, rng.gamma(2.0, 1.0, n), np.nan)
        logit = -1.5 - 0.08 * (level * readings - 40) + 0.8 * np.nan_to_num(per_ticket - 2)
        y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
        frames.append(
            pl.DataFrame(
                {
                    "account_id": [f"a{i}" for i in range(n)],
                    "decision_ts": [T0 + timedelta(days=14 * t)] * n,
                    "active_field_users_sum_28d": level * readings,
                    "active_field_users_mean_28d": level,
                    "active_field_users_count_28d": readings,
                    "active_field_users_last": level,
                    "active_field_users_days_since_last": rng.integers(0, 7, n).astype(float),
                    "tickets_sum_28d": pl.Series(np.where(tickets > 0, tickets * per_ticket, np.nan)).fill_nan(None),
                    "tickets_mean_28d": pl.Series(per_ticket).fill_nan(None),
                    "tickets_count_28d": tickets,
                    "tickets_days_since_last": rng.integers(0, 28, n).astype(float),
                    "y_churn": y,
                    "censored": [False] * n,
                }
            )
        )
    return pl.concat(frames)


def test_outcome_drivers_never_quote_a_levels_total_nor_a_counts_mean_and_name_signals_as_the_book() -> None:
    # Health's drivers read "active field users (28-day total) = 275: raises (+0.13)": four weekly readings of
    # a gauge added up, which no receipt would quote, under the stem's words instead of the book's name.
    history = _gauge_history()
    vocab = FeatureVocabulary.build(accounts_schema={}, signal_names=["Active field users", "tickets"])
    playbook = parse_playbook(default_playbook_text())
    models = OutcomeModels(playbook, template=OutcomeModel(**FAST), vocabulary=vocab).fit(history)
    model = models["churn"]
    snap = history.filter(pl.col("decision_ts") == pl.col("decision_ts").max())
    # Unguided, the model's strongest pushes are the two statistics.
    unguided = {d.feature for row in model.explain(snap, top_k=1) for d in row}
    assert {"active_field_users_sum_28d", "tickets_mean_28d"} & unguided

    pred = models.predict(snap, top_k=3)
    drivers = [d for row in pred.drivers["churn"] for d in row]
    assert drivers
    quoted = {d.feature for d in drivers}
    assert not quoted & {"active_field_users_sum_28d", "tickets_mean_28d"}
    assert all(len(row) == 3 for row in pred.drivers["churn"])  # the next feature takes their place
    texts = pred.to_frame()["drivers_churn"].to_list()
    assert "Active field users (28-day total)" not in " ".join(texts)
    assert not any("active field users" in t for t in texts)
    assert any("Active field users (" in t for t in texts)
    # The rule is the receipts' own.
    kinds = {"active_field_users": "level", "tickets": "count"}
    names = vocab.signal_words()
    for d in drivers:
        wording = feature_wording(d.feature, levels={"active_field_users"}, counts={"tickets"})
        assert wording.cited
    # A single model says the same when told the kinds and names.
    told = model.explain(snap, top_k=3, names=names, kinds=kinds)
    assert [[d.text for d in row] for row in told] == [[d.text for d in row] for row in pred.drivers["churn"]]
