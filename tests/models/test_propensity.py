"""Tests of PropensityModel: logged and estimated propensities, clipping, overlap flags, the estimator contract."""

from __future__ import annotations

import json
import pickle

import numpy as np
import polars as pl
import pytest

from nextmove.errors import ConfigError, NotFittedError
from nextmove.models._crossfit import account_folds
from nextmove.models.propensity import PropensityModel, clip_propensities, stratified_sample

FAST = {"n_estimators": 40, "num_leaves": 7, "min_child_samples": 20, "n_folds": 3}


def logged_rows(n: int = 3000, seed: int = 0, *, logged: bool = True) -> pl.DataFrame:
    """A history whose policy calls accounts with high usage more often: P(call | usage) = σ(usage)."""
    rng = np.random.default_rng(seed)
    usage = rng.normal(size=n)
    p_call = 1 / (1 + np.exp(-usage))
    call = rng.random(n) < p_call
    return pl.DataFrame(
        {
            "account_id": [f"a{i % (n // 3)}" for i in range(n)],
            "action_id": np.where(call, "call", "none").tolist(),
            "propensity": np.where(call, p_call, 1 - p_call) if logged else [None] * n,
            "usage": usage,
            "segment": rng.choice(["SMB", "Ent"], size=n).tolist(),
        },
        schema_overrides={"propensity": pl.Float64},
    )


def test_propensity_logged_values_are_used_and_clipped() -> None:
    rows = logged_rows(300)
    model = PropensityModel(estimate="never", clip=(0.2, 0.9)).fit(rows)
    raw = rows.get_column("propensity").to_numpy()
    assert np.allclose(model.raw_propensity_, raw)
    assert model.propensity_.min() >= 0.2
    assert model.propensity_.max() <= 0.9
    assert model.logged_.all()
    assert model.proba_ is None


def test_propensity_zero_and_one_are_handled_without_division_by_zero() -> None:
    rows = pl.DataFrame(
        {
            "account_id": ["a", "b", "c", "d"],
            "action_id": ["call", "none", "call", "none"],
            "propensity": [0.0, 1.0, 1.0, 0.0],
            "usage": [1.0, 2.0, 3.0, 4.0],
        }
    )
    model = PropensityModel(estimate="never", min_rows=1, min_ess=0.0).fit(rows)
    assert model.propensity_.tolist() == [0.01, 1.0, 1.0, 0.01]
    weights = 1 / model.propensity_
    assert np.isfinite(weights).all()
    overlap = model.overlap_.arm("call")
    assert overlap.below_clip_share == 0.5
    assert np.isfinite(overlap.ess)
    assert clip_propensities(np.array([np.nan, -1.0, 2.0]), (0.05, 1.0)).tolist() == [0.05, 0.05, 1.0]


def test_propensity_estimated_when_the_log_has_none() -> None:
    rows = logged_rows(3000, logged=False)
    model = PropensityModel(**FAST).fit(rows)
    assert not model.logged_.any()
    assert model.proba_ is not None
    usage = rows.get_column("usage").to_numpy()
    true_call = 1 / (1 + np.exp(-usage))
    est_call = model.proba_[:, model.arms_.index("call")]
    assert np.allclose(model.proba_.sum(axis=1), 1.0)
    assert np.mean(np.abs(est_call - true_call)) < 0.08
    assert np.corrcoef(est_call, true_call)[0, 1] > 0.9
    # New rows: the average of the cross-fitted fold models.
    new = pl.DataFrame({"account_id": ["x", "y"], "usage": [-2.0, 2.0]})
    p = model.predict_proba(new)[:, model.arms_.index("call")]
    assert p[0] < 0.35 < 0.65 < p[1]


def test_propensity_fold_models_stop_when_held_out_loss_stops_falling() -> None:
    rows = logged_rows(3000, logged=False)
    usage = rows.get_column("usage").to_numpy()
    true_call = 1 / (1 + np.exp(-usage))
    calls = rows.get_column("action_id").to_numpy() == "call"
    settings = {**FAST, "n_estimators": 300, "learning_rate": 0.3}
    stopped = PropensityModel(**settings, patience=5).fit(rows)
    grown = PropensityModel(**settings, patience=None).fit(rows)
    assert [b.current_iteration() for b in grown.models_] == [300, 300, 300]
    rounds = [b.current_iteration() for b in stopped.models_]
    assert all(1 <= r < 100 for r in rounds), rounds

    def held_out_log_loss(model: PropensityModel) -> float:
        assert model.proba_ is not None
        p_call = model.proba_[:, model.arms_.index("call")]
        return float(-np.mean(np.log(np.where(calls, p_call, 1 - p_call))))

    # Three hundred rounds at this rate overfit a one-feature policy; the stopped models do not.
    assert held_out_log_loss(stopped) < held_out_log_loss(grown)
    assert stopped.proba_ is not None
    assert np.mean(np.abs(stopped.proba_[:, stopped.arms_.index("call")] - true_call)) < 0.08
    # Each kept booster ends at its best round (no trailing rounds for a saved model to carry).
    assert all(b.best_iteration in (0, b.current_iteration()) for b in stopped.models_)
    again = pickle.loads(pickle.dumps(stopped))
    assert np.array_equal(again.predict_proba(rows), stopped.predict_proba(rows))


def test_propensity_rows_without_a_logged_value_are_estimated() -> None:
    rows = logged_rows(1500)
    rows = rows.with_columns(
        pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.col("propensity")).otherwise(None).alias("propensity")
    )
    model = PropensityModel(**FAST).fit(rows)
    assert 0.4 < model.logged_.mean() < 0.6
    assert np.isfinite(model.raw_propensity_).all()
    assert model.overlap_.arm("call").logged_share < 1.0


def test_propensity_never_and_rarely_taken_actions_are_flagged() -> None:
    rows = logged_rows(600)
    rare = rows.head(3).with_columns(pl.lit("case_study").alias("action_id"), pl.lit(0.01).alias("propensity"))
    rows = pl.concat([rows.slice(3), rare])
    model = PropensityModel(estimate="never", min_rows=30).fit(rows, arms=["none", "call", "webinar", "case_study"])
    assert model.arms_ == ["none", "call", "webinar", "case_study"]
    report = model.overlap_
    assert report.arm("webinar").rows == 0
    assert report.arm("webinar").flagged
    assert "never" in report.arm("webinar").reason
    assert report.arm("case_study").flagged
    assert "fewer than" in report.arm("case_study").reason
    assert not report.arm("call").flagged
    assert set(report.flagged_arms) == {"webinar", "case_study"}
    # Per segment: the never-taken action is flagged in every segment.
    assert ("SMB", "webinar") in report.flagged_segments
    assert report.segment_column == "segment"
    json.dumps(report.to_dict())
    assert report.to_frame().height == 4
    assert report.segments_frame().height == 8


def test_propensity_low_effective_sample_size_is_flagged() -> None:
    n = 200
    rows = pl.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(n)],
            "action_id": ["call"] * n,
            # One enormous weight dominates: the rows are worth about one row.
            "propensity": [0.0001] + [0.99] * (n - 1),
            "usage": np.arange(n, dtype=float),
        }
    )
    model = PropensityModel(estimate="never", clip=(1e-4, 1.0), min_rows=10, min_ess=20).fit(rows)
    assert model.overlap_.arm("call").ess < 5
    assert model.overlap_.arm("call").flagged
    assert "effective sample size" in model.overlap_.arm("call").reason


def test_propensity_contract_same_seed_pickling_no_mutation() -> None:
    rows = logged_rows(900, logged=False)
    before = rows.clone()
    a = PropensityModel(**FAST, random_state=3).fit(rows)
    b = PropensityModel(**FAST, random_state=3).fit(rows)
    assert rows.equals(before)
    assert a.proba_ is not None
    assert b.proba_ is not None
    assert np.array_equal(a.proba_, b.proba_)
    restored = pickle.loads(pickle.dumps(a))
    assert np.array_equal(restored.predict_proba(rows.head(5)), a.predict_proba(rows.head(5)))
    assert repr(a).startswith("PropensityModel(")


def test_propensity_errors_say_what_to_fix() -> None:
    with pytest.raises(NotFittedError, match="fit"):
        PropensityModel().predict_proba(pl.DataFrame({"usage": [1.0]}))
    logged = PropensityModel(estimate="auto").fit(logged_rows(60))
    with pytest.raises(NotFittedError, match="estimate='always'"):
        logged.predict_proba(pl.DataFrame({"usage": [1.0]}))
    with pytest.raises(ConfigError, match="estimate='never'"):
        PropensityModel(estimate="never").fit(logged_rows(60, logged=False))
    with pytest.raises(ConfigError, match="clip"):
        PropensityModel(clip=(0.0, 1.0)).fit(logged_rows(60))
    with pytest.raises(ConfigError, match="action_id"):
        PropensityModel().fit(pl.DataFrame({"account_id": ["a"]}))
    with pytest.raises(ConfigError, match="patience"):
        PropensityModel(patience=0).fit(logged_rows(60))


def test_account_folds_keep_an_account_in_one_fold() -> None:
    ids = [f"a{i % 37}" for i in range(500)]
    folds = account_folds(ids, 5, 0)
    frame = pl.DataFrame({"account_id": ids, "fold": folds})
    assert frame.group_by("account_id").agg(pl.col("fold").n_unique()).get_column("fold").max() == 1
    assert sorted(set(folds.tolist())) == [0, 1, 2, 3, 4]
    assert np.array_equal(folds, account_folds(ids, 5, 0))
    with pytest.raises(ConfigError, match="n_folds"):
        account_folds(ids, 1, 0)


def test_propensity_large_folds_train_on_a_weighted_sample_stratified_by_arm() -> None:
    # 2,000 training rows per fold over a cap of 4 × 100 rows: a sample, rare arms whole.
    rows = logged_rows(3000, logged=False)
    model = PropensityModel(**{**FAST, "max_rows_per_tree": 100}).fit(rows)
    usage = rows.get_column("usage").to_numpy()
    est_call = model.proba_[:, model.arms_.index("call")] if model.proba_ is not None else np.zeros(0)
    # The weights restore each arm's share: the mean estimate stays near the calls' share.
    assert abs(est_call.mean() - (rows.get_column("action_id") == "call").mean()) < 0.05
    assert np.corrcoef(est_call, 1 / (1 + np.exp(-usage)))[0, 1] > 0.8


def test_stratified_sample_keeps_rare_labels_whole_and_weights_the_rest() -> None:
    label = np.array([0.0] * 900 + [1.0] * 80 + [2.0] * 20)
    idx, weight = stratified_sample(label, 300, np.random.default_rng(0))
    assert weight is not None
    assert len(idx) == 300
    assert len(set(idx.tolist())) == 300
    kept = label[idx]
    assert (kept == 1.0).sum() == 80
    assert (kept == 2.0).sum() == 20
    # Weighted counts equal the full counts of every label.
    for value, rows in ((0.0, 900), (1.0, 80), (2.0, 20)):
        assert weight[kept == value].sum() == pytest.approx(rows)
    all_idx, none = stratified_sample(label, 1000, np.random.default_rng(0))
    assert none is None
    assert all_idx.tolist() == list(range(1000))


def test_propensity_few_missing_rows_are_estimated_by_one_fold_model() -> None:
    rows = logged_rows(3000)
    folds = account_folds(rows.get_column("account_id"), 3, 0)
    accounts = rows.get_column("account_id").to_numpy()
    # Two accounts of every fold lose their logged propensities: a few rows, in every fold.
    hidden_accounts = [a for k in range(3) for a in sorted(set(accounts[folds == k].tolist()))[:2]]
    hidden = np.isin(accounts, hidden_accounts)
    rows = rows.with_columns(pl.when(pl.Series(hidden)).then(None).otherwise(pl.col("propensity")).alias("propensity"))
    model = PropensityModel(**FAST).fit(rows, folds=folds)
    # One fold model, not three: the hidden accounts all joined the fold it holds out.
    assert len(model.models_) == 1
    assert model.folds_ is not None
    (trained,) = model.trained_folds_
    assert set(model.folds_[hidden].tolist()) == {trained}
    assert np.array_equal(model.folds_[~hidden & (folds != trained)], folds[~hidden & (folds != trained)])
    # The logged rows keep their logged values; the hidden ones get a sound out-of-fold estimate.
    logged = rows.get_column("propensity").to_numpy()
    assert np.array_equal(model.raw_propensity_[~hidden], logged[~hidden])
    usage = rows.get_column("usage").to_numpy()
    p_call = 1 / (1 + np.exp(-usage))
    calls = rows.get_column("action_id").to_numpy() == "call"
    truth = np.where(calls, p_call, 1 - p_call)
    assert np.mean(np.abs(model.raw_propensity_[hidden] - truth[hidden])) < 0.1
    # Rows no trained fold held out have no out-of-fold probabilities.
    assert model.proba_ is not None
    assert np.isnan(model.proba_[model.folds_ != trained]).all()
    assert np.allclose(model.proba_[model.folds_ == trained].sum(axis=1), 1.0)


def test_propensity_only_folds_holding_rows_to_estimate_are_trained() -> None:
    rows = logged_rows(1500)
    folds = account_folds(rows.get_column("account_id"), 3, 0)
    # Every row of fold 1 lacks a propensity: too many to regroup, and only fold 1 needs a model.
    rows = rows.with_columns(
        pl.when(pl.Series(folds == 1)).then(None).otherwise(pl.col("propensity")).alias("propensity")
    )
    model = PropensityModel(**FAST).fit(rows, folds=folds)
    assert model.trained_folds_ == [1]
    assert len(model.models_) == 1
    assert model.folds_ is not None
    assert np.array_equal(model.folds_, folds)
    assert np.isfinite(model.raw_propensity_).all()
    support = model.overlap_.arm("call").support_share
    assert support is not None
    assert 0.0 < support <= 1.0
    # Asking for every row's estimate still trains every fold.
    assert PropensityModel(**FAST, estimate="always").fit(rows, folds=folds).trained_folds_ == [0, 1, 2]


def test_propensity_small_fold_models_train_on_one_thread() -> None:
    rows = logged_rows(900, logged=False)
    small = PropensityModel(**FAST, n_jobs=2).fit(rows)
    assert {b.params["num_threads"] for b in small.models_} == {1}
    # Trained side by side on two threads, the fold models are the ones trained one after the other.
    alone = PropensityModel(**FAST, n_jobs=1).fit(rows)
    assert small.proba_ is not None
    assert alone.proba_ is not None
    assert np.array_equal(small.proba_, alone.proba_)
    # Above max_rows_per_tree rows a fold model gets the threads asked for.
    large = PropensityModel(**{**FAST, "max_rows_per_tree": 100}, n_jobs=2).fit(rows)
    assert {b.params["num_threads"] for b in large.models_} == {2}
