"""Tests of the health scorecard: scaling, bands, missing data, trend, movers, and the optimizer."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from nextmove.book import Book
from nextmove.book.validate import load_book
from nextmove.errors import ConfigError, NotFittedError, PlaybookError
from nextmove.features import FeatureVocabulary, compute_features
from nextmove.models.health import (
    HealthBands,
    HealthScorecard,
    ScorecardComponent,
    ScorecardMeasure,
    describe_feature,
    health_trend,
    left_out_measures,
    left_out_measures_note,
    resolve_scorecard,
    silent_usage_note,
    top_movers,
    trend_noise_note,
    unknown_signals,
    unknown_signals_note,
    unscored_signals,
    unscored_signals_note,
)
from nextmove.models.health_optimizer import HealthOptimizer, rate_power
from nextmove.playbook.loader import load_playbook, parse_playbook

COMPONENTS = [ScorecardComponent("usage", "Usage", 60), ScorecardComponent("support", "Support", 40)]
MEASURES = [
    ScorecardMeasure("usage", "logins_mean_28d"),
    ScorecardMeasure("usage", "seats_trend_28d"),
    ScorecardMeasure("support", "tickets_sum_28d", "lower"),
]


def _features(n: int = 200, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(n)],
            "logins_mean_28d": rng.gamma(2.0, 5.0, n),
            "seats_trend_28d": rng.normal(0, 0.2, n),
            "tickets_sum_28d": rng.poisson(2.0, n).astype(float),
        }
    )


def test_scorecard_score_is_in_range_with_bands() -> None:
    feats = _features()
    scored = HealthScorecard(COMPONENTS, MEASURES).fit(feats).score(feats)
    assert scored.get_column("health_score").is_between(0, 100).all()
    bands = set(scored.get_column("health_band").to_list())
    assert bands <= {"Healthy", "At risk", "Critical"}
    assert {"health_usage", "health_support"} <= set(scored.columns)


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (0.0, "Critical"),
        (30.4, "Critical"),
        (30.6, "At risk"),
        (70.0, "At risk"),
        (70.6, "Healthy"),
        (100.0, "Healthy"),
    ],
)
def test_band_boundaries(score: float, band: str) -> None:
    from nextmove.models.health import band_expr

    got = pl.DataFrame({"s": [score]}).select(band_expr(pl.col("s"))).item()
    assert got == band


def test_scorecard_direction_lower_is_healthier() -> None:
    feats = pl.DataFrame({"account_id": ["a", "b"], "tickets_sum_28d": [0.0, 9.0]})
    card = HealthScorecard(
        [ScorecardComponent("support", "S", 1)], [ScorecardMeasure("support", "tickets_sum_28d", "lower")]
    )
    scores = card.fit(feats).score(feats).get_column("health_score").to_list()
    assert scores[0] > scores[1]


def test_scorecard_constant_measure_is_neutral() -> None:
    feats = pl.DataFrame({"account_id": ["a", "b", "c"], "x": [1.0, 1.0, 1.0]})
    card = HealthScorecard([ScorecardComponent("c", "C", 1)], [ScorecardMeasure("c", "x")]).fit(feats)
    assert card.score(feats).get_column("health_score").to_list() == [50.0, 50.0, 50.0]


def test_scorecard_missing_component_reweights_others() -> None:
    feats = _features(50)
    card = HealthScorecard(COMPONENTS, MEASURES).fit(feats)
    gappy = feats.with_columns(pl.lit(None, pl.Float64).alias("tickets_sum_28d"))
    scored = card.score(gappy)
    # With support missing everywhere, the score is the usage component alone.
    assert scored.get_column("health_support").null_count() == 50
    assert np.allclose(
        scored.get_column("health_score").to_numpy(), scored.get_column("health_usage").to_numpy(), atol=0.11
    )


def test_scorecard_all_missing_gives_null_score_not_crash() -> None:
    feats = _features(5).with_columns(
        pl.lit(None, pl.Float64).alias(c) for c in ("logins_mean_28d", "seats_trend_28d", "tickets_sum_28d")
    )
    card = HealthScorecard(COMPONENTS, MEASURES).fit(_features(50))
    scored = card.score(feats)
    assert scored.get_column("health_score").null_count() == 5
    assert scored.get_column("health_band").null_count() == 5


def test_scorecard_feature_missing_for_a_whole_tier() -> None:
    feats = _features(100).with_columns(pl.Series("segment", ["SMB"] * 50 + ["Enterprise"] * 50))
    feats = feats.with_columns(
        pl.when(pl.col("segment") == "SMB").then(None).otherwise(pl.col("logins_mean_28d")).alias("logins_mean_28d")
    )
    card = HealthScorecard(COMPONENTS, MEASURES).fit(feats)
    scored = card.score(feats)
    assert scored.get_column("health_score").null_count() == 0


def test_scorecard_predict_before_fit_raises() -> None:
    with pytest.raises(NotFittedError, match="call fit"):
        HealthScorecard(COMPONENTS, MEASURES).score(_features(3))


def test_scorecard_contributions_sum_to_score() -> None:
    feats = _features(30)
    card = HealthScorecard(COMPONENTS, MEASURES).fit(feats)
    contrib = card.contributions(feats).drop("account_id").sum_horizontal().to_numpy()
    score = card.score(feats).get_column("health_score").to_numpy()
    assert np.allclose(contrib, score, atol=0.06)


def test_trend_and_movers_explain_a_usage_drop() -> None:
    before = _features(100)
    now = before.with_columns(
        pl.when(pl.col("account_id") == "a0")
        .then(pl.col("logins_mean_28d").min() * 0.5)
        .otherwise(pl.col("logins_mean_28d"))
        .alias("logins_mean_28d")
    )
    before = before.with_columns(
        pl.when(pl.col("account_id") == "a0")
        .then(pl.col("logins_mean_28d").max())
        .otherwise(pl.col("logins_mean_28d"))
        .alias("logins_mean_28d")
    )
    card = HealthScorecard(COMPONENTS, MEASURES).fit(before)
    trend = health_trend(card.score(now), card.score(before), weeks=6)
    row = trend.filter(pl.col("account_id") == "a0").row(0, named=True)
    assert row["health_trend"] == "declining"
    assert row["health_change"] < -20
    movers = top_movers(card, now, before, weeks=6)["a0"]
    assert movers[0].feature == "logins_mean_28d"
    assert movers[0].points < -20
    assert movers[0].text.startswith("logins (28-day average) −")
    assert "over 6 weeks" in movers[0].text
    assert top_movers(card, now, before, weeks=6)["a5"] == []


def test_describe_feature_plain_words() -> None:
    assert describe_feature("nps_last") == "nps (latest)"
    assert describe_feature("seat_utilization_trend_28d") == "seat utilization (28-day trend)"


def test_resolve_scorecard_from_signal_roles() -> None:
    pb = load_playbook()
    available = [
        "arr",
        "tenure_days",
        "active_users_mean_28d",
        "active_users_trend_28d",
        "tickets_opened_sum_28d",
        "nps_last",
    ]
    components, measures = resolve_scorecard(pb, available)
    assert {c.id for c in components} == {"usage", "sentiment", "business_value"}
    directions = {m.feature: m.direction for m in measures}
    assert directions["tickets_opened_sum_28d"] == "lower"
    assert directions["active_users_mean_28d"] == "higher"


def test_resolve_scorecard_without_any_feature_explains_fix() -> None:
    pb = parse_playbook(
        '[objectives.r]\noutcome="churn"\nsense="avoid"\nvalue="arr"\n[[actions]]\nid="a"\nname="A"\nteam="cs"\nobjective="r"\n'
    )
    with pytest.raises(ConfigError, match=r"set \[signal_roles\]"):
        resolve_scorecard(pb, ["something_else"])


_ROLES_PLAYBOOK = (
    '[objectives.r]\noutcome="churn"\nsense="avoid"\nvalue="arr"\n[[actions]]\nid="a"\nname="A"\nteam="cs"\n'
    'objective="r"\n[signal_roles]\nusage=["logins"]\n'
)


def _gym_visits_book(other_m2: float) -> Book:
    """Two accounts with signals "gym_visits" (10, 20) and "Gym Visits" (999, ``other_m2``), which sanitise alike."""
    ts = datetime(2025, 5, 20, tzinfo=UTC)
    return load_book(
        {
            "accounts": pl.DataFrame({"account_id": ["m1", "m2"], "arr": [100.0, 200.0]}),
            "signals": pl.DataFrame(
                {
                    "account_id": ["m1", "m1", "m2", "m2"],
                    "ts": [ts] * 4,
                    "name": ["gym_visits", "Gym Visits"] * 2,
                    "value": [10.0, 999.0, 20.0, other_m2],
                }
            ),
        },
        as_of=datetime(2025, 6, 1, tzinfo=UTC),
    )


def test_scorecard_reads_the_columns_of_the_role_signals_exact_name() -> None:
    # "gym_visits" (named in [signal_roles]) and "Gym Visits" from another system sanitise alike.
    # "Gym Visits" sorts first and used to take gym_visits_*: the score read its values, not the role's.
    book = _gym_visits_book(999.0)
    pb = parse_playbook(_ROLES_PLAYBOOK.replace('usage=["logins"]', 'usage=["gym_visits"]'))
    snap = compute_features(book, datetime(2025, 6, 1, tzinfo=UTC), playbook=pb)
    card = HealthScorecard.from_playbook(pb, snap)
    assert "gym_visits_mean_28d" in {m.feature for m in card.measures}
    assert card.measure_values(snap).get_column("gym_visits_mean_28d").to_list() == [10.0, 20.0]
    # A member spelt as the other signal reads that signal's columns, as the vocabulary names them.
    other = parse_playbook(_ROLES_PLAYBOOK.replace('usage=["logins"]', 'usage=["Gym Visits"]'))
    vocab = FeatureVocabulary.build(accounts_schema={}, signal_names=["gym_visits", "Gym Visits"], playbook=other)
    _, measures = resolve_scorecard(other, snap.columns, vocab)
    assert [m.feature for m in measures if m.component == "usage"] == [
        "gym_visits_2_mean_28d",
        "gym_visits_2_trend_28d",
    ]


@pytest.mark.parametrize("arr", [None, 0.0])
def test_scorecard_from_playbook_has_no_arr_measure_for_a_book_without_arr(arr: float | None) -> None:
    # A consumer book: ARR missing (no column: the features hold nulls) or zero for everyone.
    feats = _features(20).select(
        "account_id",
        pl.col("logins_mean_28d"),
        pl.col("seats_trend_28d").alias("logins_trend_28d"),
        pl.lit(arr, pl.Float64).alias("arr"),
        pl.lit(None, pl.Float64).alias("tenure_days"),  # no start date: no tenure either
    )
    card = HealthScorecard.from_playbook(parse_playbook(_ROLES_PLAYBOOK), feats).fit(feats)
    assert [m.feature for m in card.measures] == ["logins_mean_28d", "logins_trend_28d"]
    assert [c.id for c in card.components] == ["usage"]
    assert card.score(feats).get_column("health_score").null_count() == 0
    with_arr = feats.with_columns(pl.Series("arr", [0.0] * 19 + [1200.0]))
    card = HealthScorecard.from_playbook(parse_playbook(_ROLES_PLAYBOOK), with_arr)
    assert "arr" in {m.feature for m in card.measures}


def test_scorecard_from_playbook_without_any_valued_measure_says_so() -> None:
    feats = pl.DataFrame({"account_id": ["a", "b"], "arr": [None, None], "logins_mean_28d": [None, None]})
    with pytest.raises(ConfigError, match="no health measure has a value in the book"):
        HealthScorecard.from_playbook(parse_playbook(_ROLES_PLAYBOOK), feats.cast({"arr": pl.Float64}))


def test_scorecard_bands_by_the_playbooks_cutoffs() -> None:
    pb = parse_playbook(_ROLES_PLAYBOOK + "[health]\nband_cutoffs = [40, 55]\n")
    feats = pl.DataFrame({"account_id": [f"a{i}" for i in range(11)], "logins_mean_28d": [float(i) for i in range(11)]})
    card = HealthScorecard.from_playbook(pb, feats).fit(feats)
    assert card.bands == HealthBands(40, 55, "playbook")
    scored = card.score(feats)
    expected = ["Critical"] * 5 + ["At risk"] + ["Healthy"] * 5  # scores 0, 10, … 100
    assert scored.get_column("health_band").to_list() == expected


def test_scorecard_with_bands_keeps_its_fitted_scaling() -> None:
    feats = _features(40)
    card = HealthScorecard(COMPONENTS, MEASURES).fit(feats)
    rebanded = card.with_bands(HealthBands(45, 55, "history"))
    assert card.bands == HealthBands()
    before, after = card.score(feats), rebanded.score(feats)
    assert before.get_column("health_score").equals(after.get_column("health_score"))
    rounded = after.get_column("health_score").round(0)
    band = after.get_column("health_band")
    assert ((rounded <= 45) == (band == "Critical")).all()
    assert ((rounded > 55) == (band == "Healthy")).all()
    assert (band == "At risk").any()
    assert rebanded.with_measure_weights({m.feature: 1.0 for m in MEASURES}).bands == rebanded.bands


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("band_cutoffs = [70, 30]", "0 <= critical_max <= at_risk_max <= 100"),
        ("band_cutoffs = [30, 101]", "0 <= critical_max <= at_risk_max <= 100"),
        ("band_risk_ratios = [1.0, 2.0]", "critical >= at_risk > 0"),
    ],
)
def test_playbook_rejects_band_settings_out_of_order(text: str, match: str) -> None:
    with pytest.raises(PlaybookError, match=match):
        parse_playbook(_ROLES_PLAYBOOK + f"[health]\n{text}\n")


def test_health_bands_describe_a_band_of_one_score_in_words() -> None:
    # "Critical 0–0".
    assert HealthBands(0, 47, "history").describe() == "Healthy 48–100, At risk 1–47, Critical 0 only"
    assert HealthBands(-1, 47, "history").describe() == "Healthy 48–100, At risk 0–47, Critical none"


def test_health_bands_refuse_cutoffs_out_of_order() -> None:
    with pytest.raises(ConfigError, match="critical_max <= at_risk_max"):
        HealthBands(60, 40)


def _history(n_accounts: int = 400, n_times: int = 8, seed: int = 1) -> pl.DataFrame:
    """Snapshots where churn depends on logins (strongly) and not at all on the noise measure."""
    rng = np.random.default_rng(seed)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    rows = []
    for t in range(n_times):
        logins = rng.gamma(2.0, 5.0, n_accounts)
        noise = rng.normal(0, 1, n_accounts)
        tickets = rng.poisson(2, n_accounts).astype(float)
        p = 1 / (1 + np.exp(-(1.0 - 0.35 * logins + 0.05 * tickets)))
        y = (rng.random(n_accounts) < p).astype(float)
        rows.append(
            pl.DataFrame(
                {
                    "account_id": [f"a{i}" for i in range(n_accounts)],
                    "decision_ts": [t0 + timedelta(days=14 * t)] * n_accounts,
                    "logins_mean_28d": logins,
                    "seats_trend_28d": noise,
                    "tickets_sum_28d": tickets,
                    "y_churn": y,
                    "censored": [False] * n_accounts,
                }
            )
        )
    return pl.concat(rows)


def test_optimizer_learns_weights_that_beat_hand_set() -> None:
    hist = _history()
    card = HealthScorecard(COMPONENTS, MEASURES).fit(hist)
    opt = HealthOptimizer().fit(card, hist)
    rep = opt.report
    assert rep.auc_learned is not None
    assert rep.auc_hand_set is not None
    assert rep.auc_learned > rep.auc_hand_set
    assert all(w >= 0 for w in opt.weights_.values())
    power = {m.feature: m.power for m in rep.measures}
    assert power["logins_mean_28d"] == "high"
    assert power["seats_trend_28d"] == "not predictive"
    share = {m.feature: m.weight_share for m in rep.measures}
    assert share["logins_mean_28d"] > 0.5


def test_optimizer_says_when_its_weights_score_better_with_the_playbook_lines_that_give_them() -> None:
    # The learned weights ordered accounts better (AUC 0.659 against 0.592 on the later window) and nothing
    # said so, nor how to use them.
    hist = _history()
    card = HealthScorecard(COMPONENTS, MEASURES).fit(hist)
    rep = HealthOptimizer().fit(card, hist).report
    assert rep.auc_learned is not None
    assert rep.auc_hand_set is not None
    assert rep.auc_gain_interval is not None
    low, high = rep.auc_gain_interval
    assert 0 < low < rep.auc_learned - rep.auc_hand_set < high
    assert rep.better
    verdict = rep.verdict()
    assert verdict is not None
    gain = rep.auc_learned - rep.auc_hand_set
    assert verdict.startswith("The learned weights rank 'churn' better than the playbook's on the later window")
    assert f"AUC {rep.auc_learned:.3f} against {rep.auc_hand_set:.3f}, {gain:+.3f}" in verdict
    assert f"95% interval {low:+.3f} to {high:+.3f}" in verdict
    assert verdict.endswith(":")
    # The lines, in a playbook, give the learned score itself: the AUC reported is theirs.
    lines = rep.playbook_lines
    assert lines is not None
    assert lines.startswith('[health.components.usage]\nname = "Usage"\nweight = ')
    assert rep.scorecard is not None
    playbook = parse_playbook(_ROLES_PLAYBOOK + "\n" + lines + "\n")
    again = HealthScorecard.from_playbook(playbook, hist).fit(hist)
    assert again.score(hist).equals(rep.scorecard.score(hist))
    # Their weights are the table's shares, in tenths of a percent adding up to 100.
    shares = {m.feature: m.weight_share for m in rep.measures}
    weights = {m.feature: m.weight for m in again.measures}
    assert sum(weights.values()) == pytest.approx(100.0)
    assert all(weights[f] == pytest.approx(100 * share) for f, share in shares.items() if share)


def test_optimizer_says_to_keep_the_playbooks_weights_when_its_own_are_no_better() -> None:
    # Churn follows nothing the scorecard reads: the learned weights can only match the hand-set ones by chance.
    rng = np.random.default_rng(7)
    hist = _history().with_columns(pl.Series("y_churn", (rng.random(3200) < 0.2).astype(float)))
    card = HealthScorecard(COMPONENTS, MEASURES).fit(hist)
    rep = HealthOptimizer().fit(card, hist).report
    assert rep.learned
    assert rep.auc_gain_interval is not None
    assert rep.auc_gain_interval[0] <= 0
    assert not rep.better
    verdict = rep.verdict()
    assert verdict is not None
    assert verdict.startswith("The learned weights rank 'churn' no better than the playbook's on the later window (")
    assert verdict.endswith("): keep the playbook's weights.")


def test_optimizer_book_without_churn_gives_clear_message() -> None:
    hist = _history().with_columns(pl.lit(0.0).alias("y_churn"))
    card = HealthScorecard(COMPONENTS, MEASURES).fit(hist)
    with pytest.raises(ConfigError, match="no 'churn' outcome yet"):
        HealthOptimizer().fit(card, hist)


def test_optimizer_with_every_horizon_open_says_so_not_that_the_book_has_no_churn() -> None:
    # Scored as of a time no decision's horizon is over by: the churns are in the book, after open decisions.
    hist = _history().with_columns(pl.lit(True).alias("censored"))
    churns = int(hist.get_column("y_churn").sum())
    card = HealthScorecard(COMPONENTS, MEASURES).fit(hist)
    with pytest.raises(ConfigError) as raised:
        HealthOptimizer().fit(card, hist)
    assert str(raised.value) == (
        f"no past decision's horizon is over yet (all {hist.height:,} are still open, {churns:,} of them followed "
        "by a 'churn' so far), so health weights cannot be learned; keep the hand-set weights until a horizon is "
        "over, or score as of a later time (--as-of)"
    )
    # Horizons over, but the churns only after the open ones.
    late = hist.get_column("decision_ts").max()
    part = hist.with_columns(
        (pl.col("decision_ts") == late).alias("censored"),
        pl.when(pl.col("decision_ts") == late).then(pl.col("y_churn")).otherwise(0.0).alias("y_churn"),
    )
    with pytest.raises(ConfigError, match=r"no decision whose horizon is over \(2,800\) was followed by a 'churn'"):
        HealthOptimizer().fit(card, part)


def test_optimizer_report_before_fit_raises() -> None:
    with pytest.raises(NotFittedError):
        _ = HealthOptimizer().report


def test_rate_power_symmetric() -> None:
    assert rate_power(0.3) == "high"


def test_rate_power_counts_the_events_it_rests_on() -> None:
    # An AUC of 0.1 over 3 events in 18 rows read "high".
    assert rate_power(0.1, events=3, rows=18) == "too few events"
    assert rate_power(0.9, events=995, rows=1_000) == "too few events"  # 5 rows without the outcome
    assert rate_power(0.1, events=10, rows=100) == "high"


def test_optimizer_learns_no_weights_from_a_training_window_without_enough_churn() -> None:
    # The training window held no churn: every share read 0.0% and a "learned" AUC was reported
    # while the hand-set card was kept.
    hist = _history()
    late = hist.get_column("decision_ts").max()
    hist = hist.with_columns(
        pl.when(pl.col("decision_ts") == late).then(pl.col("y_churn")).otherwise(0.0).alias("y_churn")
    )
    card = HealthScorecard(COMPONENTS, MEASURES).fit(hist)
    opt = HealthOptimizer().fit(card, hist)
    rep = opt.report
    assert not rep.learned
    assert rep.train_events == 0
    assert rep.not_learned is not None
    assert "holds 0 'churn' events" in rep.not_learned
    assert "at least 10 events are needed to learn weights" in rep.not_learned
    assert rep.auc_learned is None
    assert rep.auc_hand_set is not None
    assert all(m.weight_share is None for m in rep.measures)
    assert opt.weights_ == {}
    assert opt.scorecard_ is card


def test_unscored_signals_match_roles_by_exact_or_sanitised_name() -> None:
    pb = load_playbook()
    assert unscored_signals(pb, ["logins", "Active Users", "minutes_watched"]) == ["minutes_watched"]
    explicit = parse_playbook(
        '[objectives.r]\noutcome="churn"\nsense="avoid"\nvalue="arr"\n[[actions]]\nid="a"\nname="A"\nteam="cs"\n'
        'objective="r"\n[health.components.value]\nweight=1\nmeasures=[{feature="arr"}]\n'
    )
    assert unscored_signals(explicit, ["minutes_watched"]) == []  # its own components are its choice
    assert unscored_signals_note(pb, ["logins"]) is None


def test_mover_text_reads_a_trend_or_a_many_fold_change_as_before_and_now() -> None:
    from nextmove.models.health import _mover_text

    assert _mover_text("seat utilization", 0.5, 0.4, -3.0, 6) == "seat utilization −20% over 6 weeks: −3.0 points"
    # A trend that was near 0 gives no "+1159712%": it reads as its two values.
    assert _mover_text("usage (28-day trend)", 1e-6, 0.0116, 2.0, 6) == (
        "usage (28-day trend) 1e-06 → 0.0116 over 6 weeks: +2.0 points"
    )
    assert _mover_text("usage (28-day trend)", 0.2, -0.1, -1.0, 6) == (
        "usage (28-day trend) 0.2 → -0.1 over 6 weeks: −1.0 points"
    )


def _support_features() -> pl.DataFrame:
    """Six accounts with signal data; a, b had no chat and no push open in the window (sums null, counts 0)."""
    return pl.DataFrame(
        {
            "account_id": ["a", "b", "c", "d", "e", "f"],
            "chats_sum_28d": [None, None, 1.0, 2.0, 3.0, None],
            "chats_count_28d": [0, 0, 1, 1, 2, None],  # f: no signal data at all, nothing is known
            "opens_sum_28d": [None, 4.0, 2.0, 6.0, 8.0, None],
            "opens_count_28d": [0, 1, 1, 2, 3, None],
            "rating_mean_90d": [None, 3.0, 3.0, 4.0, 5.0, None],
            "rating_count_90d": [0, 1, 1, 1, 1, None],
        }
    )


def test_scorecard_event_sum_without_events_scores_as_zero_events() -> None:
    feats = _support_features()
    card = HealthScorecard(
        [ScorecardComponent("support", "Support", 50), ScorecardComponent("engagement", "Engagement", 50)],
        [ScorecardMeasure("support", "chats_sum_28d", "lower"), ScorecardMeasure("engagement", "opens_sum_28d")],
    ).fit(feats)
    scored = card.score(feats).rows_by_key("account_id", named=True, unique=True)
    # No chat is the healthiest support there is, not an unknown that drops out.
    assert scored["a"]["health_support"] == scored["b"]["health_support"] == 87.5  # tied lowest of 5: mid-rank 1.5
    assert scored["b"]["health_support"] > scored["c"]["health_support"] > scored["e"]["health_support"]
    # No push open is the least engagement, not an unknown.
    assert scored["a"]["health_engagement"] == 0.0
    assert card.measure_values(feats).get_column("chats_sum_28d").to_list() == [0.0, 0.0, 1.0, 2.0, 3.0, None]
    # An account the source knows nothing about stays missing.
    assert scored["f"]["health_score"] is None


def test_scorecard_mean_of_no_events_stays_missing() -> None:
    feats = _support_features()
    card = HealthScorecard(
        [ScorecardComponent("sentiment", "Sentiment", 1)], [ScorecardMeasure("sentiment", "rating_mean_90d")]
    ).fit(feats)
    assert card.score(feats).get_column("health_sentiment").to_list()[0] is None


def test_scorecard_rank_is_the_exact_mid_rank_percentile() -> None:
    values = [0.0, 1.0, 2.0, 2.0, 3.0, 5.0, 8.0]
    feats = pl.DataFrame({"account_id": [f"a{i}" for i in range(7)], "x": values})
    card = HealthScorecard([ScorecardComponent("c", "C", 1)], [ScorecardMeasure("c", "x")]).fit(feats)
    got = card.measure_scores(feats).get_column("x").to_numpy()
    # (mid-rank − 1) / (n − 1): ranks 1, 2, 3.5, 3.5, 5, 6, 7 of 7.
    assert np.allclose(got, [0.0, 100 / 6, 250 / 6, 250 / 6, 400 / 6, 500 / 6, 100.0], atol=1e-9)
    # A value between two reference values sits halfway between their scores.
    between = card.measure_scores(pl.DataFrame({"account_id": ["z"], "x": [4.0]})).get_column("x").item()
    assert between == pytest.approx(450 / 6)


def _gappy_pair() -> tuple[HealthScorecard, pl.DataFrame, pl.DataFrame]:
    """Snapshots 6 weeks apart; a0 has no tickets data (support missing) at both times and its logins drop."""
    before = _features(60)
    now = before.with_columns(
        pl.when(pl.col("account_id") == "a0")
        .then(pl.col("logins_mean_28d") * 0.2)
        .otherwise(pl.col("logins_mean_28d"))
        .alias("logins_mean_28d")
    )
    gap = pl.when(pl.col("account_id").is_in(["a0", "a1"])).then(None).otherwise(pl.col("tickets_sum_28d"))
    before, now = before.with_columns(gap.alias("tickets_sum_28d")), now.with_columns(gap.alias("tickets_sum_28d"))
    return HealthScorecard(COMPONENTS, MEASURES).fit(now), now, before


def test_scorecard_contributions_add_up_to_the_score_when_a_component_is_missing() -> None:
    card, now, _ = _gappy_pair()
    contrib = card.contributions(now)
    total = contrib.drop("account_id").sum_horizontal().to_numpy()
    score = card.score(now).get_column("health_score").to_numpy()
    assert np.allclose(total, score, atol=0.06)
    assert contrib.filter(pl.col("account_id") == "a0").get_column("tickets_sum_28d").item() is None


def test_movers_points_add_up_to_the_change_when_a_component_is_missing() -> None:
    card, now, before = _gappy_pair()
    change = health_trend(card.score(now), card.score(before), weeks=6).filter(pl.col("account_id") == "a0")
    movers = top_movers(card, now, before, weeks=6, n=len(MEASURES))["a0"]
    assert change.get_column("health_change").item() < -10
    assert sum(m.points for m in movers) == pytest.approx(change.get_column("health_change").item(), abs=0.11)
    # An account new since then has no movers.
    assert top_movers(card, now, before.filter(pl.col("account_id") != "a1"), weeks=6)["a1"] == []


def _scorecard_playbook(tail: str) -> str:
    return (
        '[objectives.r]\noutcome="churn"\nsense="avoid"\nvalue="arr"\n[[actions]]\nid="a"\nname="A"\nteam="cs"\n'
        'objective="r"\n' + tail
    )


def test_left_out_measures_note_names_a_misspelt_feature_and_one_without_values() -> None:
    # Explicit components: a misspelt feature and an empty one left the score without a word.
    pb = parse_playbook(
        _scorecard_playbook(
            "[health.components.usage]\nweight=1\n"
            'measures=[{feature="logins_mean_28d"}, {feature="loggins_trend_28d"}, {feature="seats"}]\n'
        )
    )
    feats = _features(10).with_columns(pl.lit(None, pl.Float64).alias("seats"), pl.lit(1.0).alias("logins_trend_28d"))
    assert left_out_measures(pb, feats) == {
        "loggins_trend_28d": "no such feature; did you mean 'logins_trend_28d'?",
        "seats": "no value in any account",
    }
    note = left_out_measures_note(pb, feats)
    assert note is not None
    assert "leaves out 2 measure(s)" in note
    assert "loggins_trend_28d (no such feature; did you mean 'logins_trend_28d'?)" in note
    assert "[health.components]" in note
    assert [m.feature for m in HealthScorecard.from_playbook(pb, feats).measures] == ["logins_mean_28d"]


def test_left_out_measures_of_roles_leave_unknown_signals_and_arr_to_their_own_notes() -> None:
    # A role member that is no signal of the book is unknown_signals_note's (no feature of it at all);
    # a book without ARR has its own note; a role signal whose built feature is missing is named here.
    pb = parse_playbook(_scorecard_playbook('[signal_roles]\nusage=["logins", "seats"]\nsupport=["crashes"]\n'))
    feats = _features(10).with_columns(
        pl.lit(None, pl.Float64).alias("arr"),
        pl.lit(1.0).alias("tenure_days"),
        pl.lit(3.0).alias("logins_last"),
        pl.lit(2.0).alias("crashes_last"),
    )
    left = left_out_measures(pb, feats)
    assert set(left) == {"logins_trend_28d", "crashes_sum_28d"}
    assert left["crashes_sum_28d"] == "no such feature"
    note = left_out_measures_note(pb, feats)
    assert note is not None
    assert "[signal_roles]" in note
    assert left_out_measures_note(pb, feats.with_columns(logins_trend_28d=1.0, crashes_sum_28d=1.0)) is None


def test_unknown_signals_note_names_the_closest_signal_without_refusing() -> None:
    pb = parse_playbook(
        _scorecard_playbook(
            '[signal_roles]\nusage=["Seat Util", "seat_utl"]\nsentiment=["csat", "nps"]\n'
            '[signal_kinds]\ncount=["logins"]\nlevel=["seat_util"]\n'
        )
    )
    signals = ["seat_util", "dash_views", "csat", "login"]
    assert unknown_signals(pb, signals) == [
        ("signal_roles.usage", "seat_utl", "seat_util"),
        ("signal_roles.sentiment", "nps", None),
        ("signal_kinds.count", "logins", "login"),
    ]
    note = unknown_signals_note(pb, signals)
    assert note is not None
    assert "signal_roles.usage 'seat_utl' (did you mean 'seat_util'?)" in note
    assert "signal_roles.sentiment 'nps', " in note
    assert "signal_kinds.count 'logins' (did you mean 'login'?)" in note
    assert "the book's signals: csat, dash_views, login, seat_util" in note
    assert unknown_signals_note(pb, ["seat_util", "seat_utl", "csat", "nps", "logins"]) is None
    assert unknown_signals_note(pb, []) is None  # a book without signals: nothing to match against


_AS_OF = datetime(2025, 6, 2, tzinfo=UTC)


def _quiet_book(kinds: str = "", every_weeks: int = 1) -> tuple[HealthScorecard, pl.DataFrame, pl.DataFrame]:
    """30 accounts watching every week (``every_weeks``) for 20 weeks; q, the keenest, stopped 5 weeks ago; n never.

    Returns the playbook's scorecard fitted at ``_AS_OF``, the snapshot then and the one 6 weeks earlier.
    """
    ids = [f"w{i:02d}" for i in range(28)] + ["q", "n"]
    rows: list[tuple[str, datetime, str, float]] = []
    for week in range(1, 21):
        ts = _AS_OF - timedelta(weeks=week, hours=-3)
        for i, account in enumerate(ids):
            if account == "n" or (account == "q" and week <= 5) or week % every_weeks:
                continue
            rows.append((account, ts, "minutes", 100.0 if account == "q" else 10.0 + i + week % 3))
        rows += [(account, ts, "tickets", 1.0) for account in ids if week % 4 == 0]
    signals = pl.DataFrame(rows, schema=["account_id", "ts", "name", "value"], orient="row")
    book = load_book(
        {"accounts": pl.DataFrame({"account_id": ids, "arr": [1000.0] * len(ids)}), "signals": signals}, as_of=_AS_OF
    )
    pb = parse_playbook(_ROLES_PLAYBOOK.replace('usage=["logins"]', 'usage=["minutes"]\nsupport=["tickets"]') + kinds)
    now = compute_features(book, _AS_OF, playbook=pb)
    before = compute_features(book, _AS_OF - timedelta(weeks=6), playbook=pb)
    return HealthScorecard.from_playbook(pb, now).fit(now), now, before


@pytest.mark.parametrize("kind", ["level", "count"])
def test_scorecard_reads_a_usage_signal_that_went_silent_as_no_use(kind: str) -> None:
    # q watched most and then stopped: its usage mean and trend were null, the usage component dropped out,
    # and the other components (support here) took its weight, so it kept its score.
    declared = "" if kind == "level" else '\n[signal_kinds]\ncount = ["minutes"]\n'  # weekly readings: a level
    card, now, _ = _quiet_book(declared)
    values = card.measure_values(now).rows_by_key("account_id", named=True, unique=True)
    scored = card.score(now).rows_by_key("account_id", named=True, unique=True)
    others = [v["minutes_mean_28d"] for a, v in values.items() if a not in ("q", "n")]
    if kind == "count":
        assert values["q"]["minutes_mean_28d"] == 0.0  # no activity
        assert values["q"]["minutes_trend_28d"] == -1.0  # from its mean 5–8 weeks ago to none: −100 %
    else:
        assert values["q"]["minutes_mean_28d"] == min(others)  # the lowest reading fitted on
        assert values["q"]["minutes_trend_28d"] is None  # the trend of a gauge no longer read is unknown
    assert scored["q"]["health_usage"] == min(
        r["health_usage"] for r in scored.values() if r["health_usage"] is not None
    )
    assert scored["q"]["health_usage"] < 5
    # As low as the least watching account's (a level reads as its reading), not kept up by support.
    assert scored["q"]["health_score"] <= min(r["health_score"] for a, r in scored.items() if a not in ("q", "n"))
    # An account that never had a row of the signal stays unknown for it (the no-signal note is about it).
    assert values["n"]["minutes_mean_28d"] is None
    assert scored["n"]["health_usage"] is None
    assert {m.feature: m.silent for m in card.measures if m.component == "usage"} == {
        "minutes_mean_28d": kind,
        "minutes_trend_28d": kind,
    }


@pytest.mark.parametrize("declared", [False, True])
def test_silent_usage_note_asks_to_declare_only_what_is_not_declared(declared: bool) -> None:
    # The note said the level was "read at regular intervals" and asked to declare it in [signal_kinds],
    # also of a signal the playbook had declared a level there.
    card, now, _ = _quiet_book('\n[signal_kinds]\nlevel = ["minutes"]\n' if declared else "")
    note = silent_usage_note(card, now)
    assert note is not None
    assert note.startswith("1 scored account went silent on a usage signal")  # not "account(s)"
    if declared:
        assert "minutes, declared a level, as the lowest value of the scored accounts, with no trend" in note
        assert "regular intervals" not in note
        assert "declare" not in note.replace("declared a level", "")
    else:
        assert "minutes, read at regular intervals (a level), as the lowest value" in note
        assert note.endswith("declare minutes in [signal_kinds] count or level to choose (docs/models.md)")


def test_top_movers_credit_no_points_from_reweighting_to_measures_that_did_not_change() -> None:
    # a0's logins go missing: the usage component drops out and support takes its weight. Its tickets
    # did not change, yet they were credited with the points the re-weighting moved.
    before = _features(40)
    now = before.with_columns(
        pl.when(pl.col("account_id") == "a0").then(None).otherwise(pl.col(c)).alias(c)
        for c in ("logins_mean_28d", "seats_trend_28d")
    )
    card = HealthScorecard(COMPONENTS, MEASURES).fit(before)
    change = card.score(now)["health_score"][0] - card.score(before)["health_score"][0]
    movers = top_movers(card, now, before, weeks=6, n=3)["a0"]
    assert "tickets_sum_28d" not in {m.feature for m in movers}
    assert {m.feature for m in movers} <= {"logins_mean_28d", "seats_trend_28d"}
    assert all("newly missing" in m.text for m in movers)
    assert sum(m.points for m in movers) == pytest.approx(change, abs=0.11)


def test_top_movers_name_a_usage_signal_that_went_silent() -> None:
    card, now, before = _quiet_book()
    change = (
        card.score(now).filter(pl.col("account_id") == "q")["health_score"].item()
        - card.score(before).filter(pl.col("account_id") == "q")["health_score"].item()
    )
    movers = top_movers(card, now, before, weeks=6)["q"]
    assert change < -20
    assert movers[0].text.startswith("no minutes in the last 28 days (28-day average was 100): −")
    assert movers[0].points == pytest.approx(change, abs=0.11)  # its mean and trend (scores are rounded)
    assert [m.feature for m in movers] == ["minutes_mean_28d"]


def test_scorecard_leaves_a_usage_signal_too_sparse_to_tell_silence_missing() -> None:
    # A reading every 3 weeks: a 28-day window without one is a gap between two readings, not a sign of no use.
    card, now, _ = _quiet_book(every_weeks=3)
    assert {m.silent for m in card.measures} == {None}
    values = card.measure_values(now).rows_by_key("account_id", named=True, unique=True)
    assert values["q"]["minutes_mean_28d"] is None


def test_trend_noise_note_suggests_stable_points_from_the_spread_of_the_changes() -> None:
    rng = np.random.default_rng(1)
    ids = [f"a{i}" for i in range(400)]
    before = pl.DataFrame({"account_id": ids, "health_score": [50.0] * 400})
    noisy = pl.DataFrame({"account_id": ids, "health_score": 50 + rng.normal(0, 8, 400)})
    note = trend_noise_note(health_trend(noisy, before, weeks=6), 3.0, 6)
    assert note is not None
    found = re.search(r"calls (\d+)% .* spread by ([\d.]+) points .* set stable_points = (\d+) \(twice it", note)
    assert found is not None
    assert int(found[1]) > 60  # 3 points is well within a spread of 8: most labels are noise
    assert 7 < float(found[2]) < 9
    assert int(found[3]) == round(2 * float(found[2]))
    # Changes within 3 points for most accounts: the labels are not mostly noise.
    calm = pl.DataFrame({"account_id": ids, "health_score": 50 + rng.normal(0, 1, 400)})
    assert trend_noise_note(health_trend(calm, before, weeks=6), 3.0, 6) is None
    assert trend_noise_note(health_trend(noisy, before, weeks=6), 17.0, 6) is None


def test_scorecard_from_playbook_reads_the_snapshots_vocabulary() -> None:
    # A role member spelt "Gym Visits" beside a "gym_visits" signal: its columns are gym_visits_2_*, and
    # from_playbook (as every job builds its scorecard) used to read gym_visits_*, the other signal's.
    book = _gym_visits_book(998.0)
    pb = parse_playbook(_ROLES_PLAYBOOK.replace('usage=["logins"]', 'usage=["Gym Visits"]'))
    vocab = FeatureVocabulary.build(
        accounts_schema=book.accounts.schema, signal_names=["gym_visits", "Gym Visits"], playbook=pb
    )
    snap = compute_features(book, datetime(2025, 6, 1, tzinfo=UTC), playbook=pb, vocabulary=vocab)
    card = HealthScorecard.from_playbook(pb, snap, vocab)
    assert [m.feature for m in card.measures if m.component == "usage"] == ["gym_visits_2_mean_28d"]
    assert card.measure_values(snap).get_column("gym_visits_2_mean_28d").to_list() == [999.0, 998.0]
    assert left_out_measures(pb, snap, vocab) == {
        "gym_visits_2_trend_28d": "no value in any account",
        "tenure_days": "no value in any account",
    }
