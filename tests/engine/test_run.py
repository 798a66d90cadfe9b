"""Tests of the run: a lab book end to end (files, store, regret) and a book the lab did not make (a B2C shop)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from nextmove.book import Book, data_reach, dates_only, default_as_of, latest_timestamp
from nextmove.book.validate import load_book
from nextmove.decide.explain import parse_alternatives, parse_evidence
from nextmove.engine.run import (
    EFFECT_MODEL_FORMAT,
    RUN_STAGES,
    RunResult,
    _json_numbers,
    load_effect_model,
    oracle_choice,
    run,
    saved_health_bands,
)
from nextmove.engine.run_process import interrupted_run_note
from nextmove.errors import ConfigError, NotFoundError
from nextmove.measure.ope import MAX_UNSUPPORTED_SHARE
from nextmove.playbook import Playbook
from nextmove.playbook.loader import parse_playbook
from nextmove.sim import SimConfig, SimResult, simulate
from nextmove.store import Store, open_store

FAST = {"n_folds": 2, "n_estimators": 25, "n_draws": 60}


@pytest.fixture(scope="module")
def lab() -> SimResult:
    return simulate(SimConfig(accounts=240, months=10, seed=5))


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    with open_store("sqlite://") as s:
        yield s


@pytest.fixture(scope="module")
def lab_run(lab: SimResult, store: Store, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    steps: list[str] = []
    details: list[str] = []
    out = tmp_path_factory.mktemp("run")
    result = run(
        lab.book,
        lab.config.resolved_playbook(),
        as_of=lab.as_of,
        store=store,
        out_dir=out,
        progress=steps.append,
        detail=details.append,
        effect_params=FAST,
        truth=lab.truth.values,
        run_id="lab-run",
    )
    assert steps == list(RUN_STAGES)
    # Within the long models stage: what it is doing, with the size of the history it learns from.
    assert details[0] == "building the training set of past decisions"
    assert re.fullmatch(r"learning from [\d,]+ decisions", details[1])
    return result


def test_run_recommends_once_per_active_account_with_the_agreed_columns(lab: SimResult, lab_run: RunResult) -> None:
    recs = lab_run.recommendations
    assert recs.height == lab.summary.active_accounts
    assert recs["account_id"].n_unique() == recs.height
    expected = [
        "account_id",
        "name",
        "owner",
        "lifecycle_stage",
        "arr",
        "health_score",
        "health_band",
        "action_id",
        "variant",
        "arm",
        "propensity",
        "expected_value_usd",
        "value_low_usd",
        "value_high_usd",
        "default_action_id",
        "differs_from_default",
        "model_action_id",
    ]
    assert recs.columns[: len(expected)] == expected
    playbook = lab.config.resolved_playbook()
    assert [c for c in recs.columns if c.startswith("projected_")] == [f"projected_{o}" for o in playbook.objectives]
    tail = ["evidence", "alternatives", "model_version", "run_id"]
    at = recs.columns.index("evidence")
    assert recs.columns[at : at + 4] == tail
    assert set(recs["action_id"].unique()) <= {*playbook.action_ids, "none"}
    assert recs["propensity"].is_between(0, 1, closed="right").all()
    assert set(recs["arm"].unique()) <= {"model", "explore", "control"}
    assert (recs["run_id"] == "lab-run").all()
    acting = recs.filter(pl.col("action_id") != "none")
    assert (acting["value_low_usd"] <= acting["expected_value_usd"] + 1e-6).all()


def test_run_evidence_is_a_valid_receipt_matching_the_row(lab_run: RunResult) -> None:
    for row in lab_run.recommendations.head(40).iter_rows(named=True):
        evidence = parse_evidence(row["evidence"])
        assert evidence.action_id == row["action_id"]
        assert evidence.arm == row["arm"]
        assert evidence.propensity == pytest.approx(row["propensity"], abs=1e-6)
        assert evidence.model_action_id == row["model_action_id"]
        for alt in parse_alternatives(row["alternatives"]):
            assert alt.action_id != row["action_id"] or alt.variant != row["variant"]


def test_run_summary_counts_agree_with_the_recommendations(lab_run: RunResult) -> None:
    s, recs = lab_run.summary, lab_run.recommendations
    acting = recs.filter(pl.col("action_id") != "none")
    assert s["accounts"] == recs.height
    assert s["actions"] == 14
    assert s["do_nothing"] == recs.height - acting.height
    assert sum(s["assigned"].values()) == acting.height
    assert sum(s["by_action"].values()) == acting.height
    assert sum(s["arms"].values()) == recs.height
    # The projected impact is the recommended cohort's (model and explore): the control cohort's defaults,
    # what the recommendations are measured against, are kept apart.
    recommended = acting.filter(pl.col("arm") != "control")
    control = acting.filter(pl.col("arm") == "control")
    assert control.height > 0
    assert s["projected_impact_usd"]["value"] == pytest.approx(recommended["expected_value_usd"].sum(), abs=0.05)
    cohorts = s["projected_impact_by_cohort"]
    assert cohorts["recommended"] == s["projected_impact_usd"]
    assert cohorts["recommended"]["accounts"] == recommended.height
    assert cohorts["control"]["accounts"] == control.height
    assert cohorts["control"]["value"] == pytest.approx(control["expected_value_usd"].sum(), abs=0.05)
    assert cohorts["control"]["low"] == pytest.approx(control["value_low_usd"].sum(), abs=0.05)
    known = recs.filter(pl.col("default_action_id").is_not_null())
    assert s["differs_from_default_share"] == pytest.approx(known["differs_from_default"].mean())
    acted = known.filter(pl.col("action_id") != "none")
    assert s["acted_differs_from_default"] == {
        "accounts": acted.height,
        "differs": int(acted["differs_from_default"].sum()),
    }
    for use in s["capacity"]["each"].values():
        assert use["used"] <= use["limit"] + 1e-6
    regret = s["regret"]
    assert regret["oracle_value_usd"] >= regret["model_value_usd"] - 1e-6
    assert regret["accounts_with_truth"] == recs.height
    assert regret["model_regret_share"] is not None
    json.dumps(s)


def test_oracle_choice_is_the_regrets_oracle_and_keeps_the_rules_and_capacities(
    lab: SimResult, lab_run: RunResult
) -> None:
    decisions = lab_run.decisions
    assert decisions is not None
    truth = lab.truth.values
    choice = oracle_choice(decisions, truth)
    assert choice.shape == (len(decisions.account_ids),)
    cands = decisions.candidates
    picked = pl.DataFrame(
        {
            "account_id": [a for a, j in zip(decisions.account_ids, choice, strict=True) if j >= 0],
            "action_id": [cands[j].action_id for j in choice if j >= 0],
        }
    ).join(truth.select("account_id", "action_id", "eligible", "value_usd"), on=["account_id", "action_id"])
    assert picked.height == int((choice >= 0).sum()) > 0
    assert picked["eligible"].all()
    assert (picked["value_usd"] > 0).all()
    regret = lab_run.summary["regret"]
    assert picked["value_usd"].sum() == pytest.approx(regret["oracle_value_usd"], abs=0.05)
    assert picked["value_usd"].sum() >= regret["model_value_usd"] - 1e-6
    chosen = np.flatnonzero(choice >= 0)
    for r in decisions.resources:
        member = np.ones(len(choice), dtype=bool) if r.accounts is None else np.zeros(len(choice), dtype=bool)
        if r.accounts is not None:
            member[r.accounts] = True
        used = r.per_candidate[choice[chosen[member[chosen]]]].sum()
        assert used <= r.limit + 1e-6, r.name
    with pytest.raises(ConfigError, match="value_usd"):
        oracle_choice(decisions, truth.drop("value_usd"))


def test_run_evaluates_a_book_without_logged_propensities_with_estimated_ones(
    lab: SimResult, lab_run: RunResult
) -> None:
    book = lab.book
    bare = Book(book.accounts, book.signals, book.touches.drop("propensity"), book.outcomes, source="bare")
    result = run(bare, lab.config.resolved_playbook(), as_of=lab.as_of, effect_params=FAST, evidence=False)
    # Estimated on the whole history by the effect model's propensity model, not on the window alone.
    assert any("have no logged propensity, estimated by the effect model's" in note for note in result.summary["notes"])
    assert not any("have no logged propensity" in note for note in lab_run.summary["notes"])
    logged = {(v["policy"], v["method"]): v for v in lab_run.policy_values}
    estimated = {(v["policy"], v["method"]): v for v in result.policy_values}
    assert set(estimated) == set(logged)
    assert {policy for policy, _ in estimated} == {"learned", "nothing", "default"}
    # The same decisions weighted by estimated instead of logged propensities: the same value, within the noise.
    for key in logged:
        a, b = logged[key], estimated[key]
        assert np.isfinite(b["estimate"])
        assert b["stderr"] > 0
        assert abs(a["estimate"] - b["estimate"]) <= 3 * np.hypot(a["stderr"], b["stderr"]), key


def test_run_keeps_the_paired_difference_of_the_learned_policy_over_the_default(lab_run: RunResult) -> None:
    # The metrics judged the learned policy's low end against the default's point estimate; the run
    # now keeps the difference taken decision by decision, whose interval the metric is judged on.
    values = {(v["policy"], v["method"]): v for v in lab_run.summary["policy_values"]}
    differences = {(d["policy"], d["method"]): d for d in lab_run.summary["policy_differences"]}
    assert set(differences) == {("learned - default", m) for m in ("ips", "snips", "dr")}
    dr = differences[("learned - default", "dr")]
    learned, default = values[("learned", "dr")], values[("default", "dr")]
    assert dr["estimate"] == pytest.approx(learned["estimate"] - default["estimate"])
    assert dr["low"] < dr["estimate"] < dr["high"]
    assert dr["n"] == learned["n"]
    row = next(m for m in lab_run.summary["metrics"] if m["metric"].startswith("Off-policy"))
    assert row["current"].startswith(f"{dr['estimate']:+,.2f} (paired interval {dr['low']:+,.2f} to ")


def test_run_writes_files_and_saves_the_run(lab_run: RunResult, store: Store) -> None:
    files = lab_run.files
    assert set(files) == {"recommendations.csv", "recommendations.parquet", "summary.json"}
    parquet = pl.read_parquet(files["recommendations.parquet"])
    assert parquet.equals(lab_run.recommendations)
    assert pl.read_csv(files["recommendations.csv"]).height == parquet.height
    summary = json.loads(files["summary.json"].read_text(encoding="utf-8"))
    assert summary["run_id"] == "lab-run"
    assert "total" in summary["timings_s"]
    saved = store.get_run("lab-run")
    assert saved.status == "succeeded"
    assert saved.summary["accounts"] == parquet.height
    assert store.count_recommendations("lab-run") == parquet.height
    rec = store.recommendations("lab-run", limit=1)[0]
    assert rec.evidence["schema"] == 1
    assert rec.model_version is not None
    assert rec.model_version.startswith("effect-")


def _rerun(lab: SimResult, store: Store, **options: Any) -> RunResult:
    """The lab book decided again at its as_of with the stored model, without evidence or evaluation."""
    return run(
        lab.book,
        lab.config.resolved_playbook(),
        as_of=lab.as_of,
        store=store,
        reuse_model=True,
        evidence=False,
        evaluate=False,
        **options,
    )


def test_run_reuses_the_stored_effect_model(lab: SimResult, lab_run: RunResult, store: Store) -> None:
    again = _rerun(lab, store, run_id="lab-run-2")
    assert (
        again.recommendations["model_version"].unique().to_list()
        == lab_run.recommendations["model_version"].unique().to_list()
    )
    # The same model, the same book and seed: the same learned choices and values.
    assert again.recommendations["model_action_id"].to_list() == lab_run.recommendations["model_action_id"].to_list()
    assert (again.recommendations["evidence"] == "{}").all()


def test_a_reuse_run_bands_health_with_the_cut_offs_learned_with_its_model(
    lab: SimResult, lab_run: RunResult, store: Store
) -> None:
    active = store.active_model("effect")
    assert active is not None
    saved = saved_health_bands(active)
    assert saved is not None
    assert saved.source == "history"
    again = _rerun(lab, store, save_model=False)
    assert again.recommendations["health_band"].to_list() == lab_run.recommendations["health_band"].to_list()
    assert not any("fixed cut-offs" in note for note in again.summary["notes"])
    # A model saved before the bands were kept with it: the fixed cut-offs, with a note saying why.
    older = {k: v for k, v in active.metrics.items() if k != "health_bands"}
    with open_store("sqlite://") as other:
        other.save_model(dataclasses.replace(active, model_id="effect-older", metrics=older))
        other.activate_model("effect-older")
        fixed = _rerun(lab, other, save_model=False)
    assert any(
        note.startswith("health bands use the fixed cut-offs") and "earlier version" in note
        for note in fixed.summary["notes"]
    )
    assert fixed.recommendations["health_band"].to_list() != lab_run.recommendations["health_band"].to_list()
    # A model whose fitting run could not learn them keeps that: the reuse run says so, not "an earlier version".
    unlearned = {**active.metrics, "health_bands": {"critical_max": 30, "at_risk_max": 70, "source": "fixed"}}
    with open_store("sqlite://") as other:
        other.save_model(dataclasses.replace(active, model_id="effect-unlearned", metrics=unlearned))
        other.activate_model("effect-unlearned")
        kept_fixed = _rerun(lab, other, save_model=False)
    [note] = [n for n in kept_fixed.summary["notes"] if n.startswith("health bands use the fixed cut-offs")]
    assert "could not be learned from the history when the reused effect model was fitted" in note


def test_run_risk_aversion_prefers_fewer_surer_actions(lab: SimResult, lab_run: RunResult, store: Store) -> None:
    careful = _rerun(lab, store, save_model=False, risk_aversion=1.0).recommendations
    # The stored model at κ = 0 is lab_run's decision (test_run_reuses_the_stored_effect_model). Every
    # action's ranked value drops by its spread, so the allocation acts on fewer accounts.
    acting = (lab_run.recommendations["model_action_id"] != "none").sum()
    assert (careful["model_action_id"] != "none").sum() < acting
    with pytest.raises(ConfigError, match="risk_aversion must be a number >= 0"):
        _rerun(lab, store, risk_aversion=-1)


def test_a_model_saved_in_another_format_is_refused_clearly(lab: SimResult, lab_run: RunResult, store: Store) -> None:
    playbook = lab.config.resolved_playbook()
    active = store.active_model("effect")
    assert active is not None
    assert active.metrics["format"] == EFFECT_MODEL_FORMAT
    assert load_effect_model(store, playbook)[1] == active.model_id
    old_metrics = {k: v for k, v in active.metrics.items() if k != "format"}  # saved before formats were kept
    with open_store("sqlite://") as other:
        other.save_model(dataclasses.replace(active, model_id="effect-old", metrics=old_metrics))
        other.activate_model("effect-old")
        with pytest.raises(ConfigError, match=r"format 1 .* run without --reuse-model"):
            load_effect_model(other, playbook)


def test_run_reuse_model_without_one_is_a_clear_error(lab: SimResult) -> None:
    with open_store("sqlite://") as empty, pytest.raises(NotFoundError, match="no active 'effect' model"):
        run(lab.book, lab.config.resolved_playbook(), as_of=lab.as_of, store=empty, reuse_model=True)
    with open_store("sqlite://") as empty:
        with pytest.raises(ConfigError, match="unknown run option"):
            run(lab.book, lab.config.resolved_playbook(), store=empty, colour="red")
        assert empty.list_runs() == []


def test_run_failure_is_recorded_in_the_store(lab: SimResult) -> None:
    with open_store("sqlite://") as s:
        with pytest.raises(ConfigError, match="n_folds"):
            run(lab.book, lab.config.resolved_playbook(), as_of=lab.as_of, store=s, effect_params={"n_folds": 1})
        [failed] = s.list_runs()
        assert failed.status == "failed"
        assert "n_folds" in failed.summary["error"]
        # The record carries its error where the API reads it (GET /v1/runs' "error"), not only in its summary.
        assert failed.error == failed.summary["error"]
        assert interrupted_run_note(failed) == failed.error


def test_run_completes_on_a_touch_log_without_none_rows(lab: SimResult, tmp_path: Path) -> None:
    """Most CRM exports log only what was done: doing nothing then has no logged decision to weigh, and
    its IPS and SNIPS estimates are null with a note, never NaN (which the store cannot save)."""
    touches = lab.book.touches.filter(pl.col("action_id") != "none")
    book = dataclasses.replace(lab.book, touches=touches)
    with open_store("sqlite://") as s:
        result = run(
            book,
            lab.config.resolved_playbook(),
            as_of=lab.as_of,
            store=s,
            out_dir=tmp_path,
            effect_params=FAST,
            segments=False,
            run_id="no-none-rows",
        )
        stored = s.get_run("no-none-rows")
    assert stored.status == "succeeded"
    assert stored.error is None
    values = {(v["policy"], v["method"]): v for v in stored.summary["policy_values"]}
    for method in ("ips", "snips"):
        nothing = values[("nothing", method)]
        assert nothing["matched_share"] == 0
        assert nothing["estimate"] is None
        assert nothing["low"] is None
        assert nothing["high"] is None
        assert nothing["note"] == f"no logged decision matches this policy: {method.upper()} has no weight"
    # The outcome model still values doing nothing, but without an interval: it would not count the model's error.
    assert isinstance(values[("nothing", "dr")]["estimate"], float)
    assert values[("nothing", "dr")]["low"] is None
    assert values[("nothing", "dr")]["unsupported_share"] == 1.0
    assert values[("nothing", "dr")]["note"].startswith("the history never took none (doing nothing), which this")
    # Any policy that leaves more accounts alone than IPS and SNIPS can value on this log: null, with a note.
    # (The learned one did, until its labels stopped reading the touches as cures: window labels on this log.)
    for (policy, method), value in values.items():
        if method in ("ips", "snips") and policy != "nothing" and value["unsupported_share"] > MAX_UNSUPPORTED_SHARE:
            assert value["estimate"] is None
            assert value["note"].startswith("the history never took none (doing nothing), which this policy takes on ")
            # The default's may go on to say where it is not known (accounts that left since: the lab's are "churned").
            assert value["note"].split("; ")[0].endswith(": IPS and SNIPS cannot value them")
    assert isinstance(values[("learned", "dr")]["estimate"], float)
    # Its outcomes are credited to the decisions they followed, the dropped nones included: the note says
    # what is missing, the decisions to do nothing, not to credit what is credited.
    fallbacks = [n for n in result.summary["notes"] if "is labelled by its window, not by outcomes.touch_id" in n]
    assert fallbacks
    assert all("log the decisions to do nothing (action none, with a touch_id)" in n for n in fallbacks)
    json.dumps(result.summary, allow_nan=False)
    json.loads((tmp_path / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in summary.json"))
    assert not any("not a finite number" in n for n in result.summary["notes"])


def test_run_summary_keeps_no_nan_and_names_any_it_finds() -> None:
    summary = {"a": {"b": [1.0, float("nan")]}, "c": np.float32("inf"), "notes": ["kept"]}
    cleaned = _json_numbers(summary)
    assert cleaned["a"]["b"] == [1.0, None]
    assert cleaned["c"] is None
    assert cleaned["notes"][0] == "kept"
    assert "a.b[1] (nan), c (inf)" in cleaned["notes"][1]
    json.dumps(cleaned, allow_nan=False)


# ---- a book the lab did not make ------------------------------------------------------------------------

SHOP = """
name = "Shop"
horizon_days = 28
control_fraction = 0.2

[objectives.keep]
name = "Keep"
outcome = "lapse"
sense = "avoid"
value = "arr"

[objectives.grow]
name = "Grow"
outcome = "upgrade"
value = "fixed"
value_usd = 400

[[actions]]
id = "stylist_call"
name = "Stylist call"
team = "cs"
objective = "keep"
cost_usd = 15
effort_hours = 1.0
cooldown_days = 14
default_for_stages = ["loyal"]

[[actions]]
id = "coupon"
name = "Coupon"
team = "marketing"
channel = "email"
objective = "grow"
cost_usd = 5
eligibility = "visits_mean_28d >= 0"
variants = [{ id = "am" }, { id = "pm" }]
default_for_stages = ["new"]

[contact_policy]
window_days = 7

[capacity]
hours_per_owner_per_week = 6.0

[signal_roles]
usage = ["visits"]
engagement = ["opens"]
"""


def shop_book(n: int = 160, weeks: int = 30, seed: int = 0) -> tuple[Book, Playbook]:
    """A small B2C book: weekly visits and e-mail opens, weekly logged decisions, lapses and upgrades."""
    rng = np.random.default_rng(seed)
    start = datetime(2025, 1, 6, tzinfo=UTC)
    ids = [f"shopper-{i:04d}" for i in range(n)]
    loyalty = rng.normal(0, 1, n)
    accounts = pl.DataFrame(
        {
            "account_id": ids,
            "lifecycle_stage": np.where(loyalty > 0, "loyal", "new"),
            "arr": np.round(rng.lognormal(6, 0.6, n), 2),
            "owner": [f"stylist-{i % 4}" for i in range(n)],
            "contract_start": [start - timedelta(days=int(d)) for d in rng.integers(30, 400, n)],
            "favourite_colour": rng.choice(["red", "blue", "green"], n),
        }
    )
    signals, touches, outcomes = [], [], []
    gone = np.zeros(n, dtype=bool)
    actions = np.array(["none", "stylist_call", "coupon"])
    probs = np.array([0.5, 0.25, 0.25])
    for week in range(weeks):
        t = start + timedelta(days=7 * week)
        visits = rng.poisson(np.exp(1 + 0.5 * loyalty))
        opens = rng.poisson(1.5, n)
        for i in np.flatnonzero(~gone):
            signals.append((ids[i], t - timedelta(hours=1), "visits", float(visits[i])))
            signals.append((ids[i], t - timedelta(hours=1), "opens", float(opens[i])))
            a = int(rng.choice(3, p=probs))
            touch_id = f"t-{week}-{i}"
            variant = rng.choice(["am", "pm"]) if a == 2 else None
            touches.append((ids[i], actions[a], t, touch_id, float(probs[a]), variant))
            lapse_p = 1 / (1 + np.exp(3.5 + loyalty[i] - (1.2 if a != 1 else 0.2)))
            upgrade_p = 1 / (1 + np.exp(3.0 - 0.5 * loyalty[i] - (1.0 if a == 2 else 0.0)))
            if rng.random() < upgrade_p:
                outcomes.append((ids[i], t + timedelta(days=int(rng.integers(1, 20))), "upgrade", 1.0, touch_id))
            if rng.random() < lapse_p:
                outcomes.append((ids[i], t + timedelta(days=int(rng.integers(1, 6))), "lapse", 1.0, touch_id))
                gone[i] = True
    frames = {
        "accounts": accounts,
        "signals": pl.DataFrame(signals, schema=["account_id", "ts", "name", "value"], orient="row"),
        "touches": pl.DataFrame(
            touches, schema=["account_id", "action_id", "ts", "touch_id", "propensity", "variant"], orient="row"
        ),
        "outcomes": pl.DataFrame(outcomes, schema=["account_id", "ts", "kind", "value", "touch_id"], orient="row"),
    }
    end = start + timedelta(days=7 * weeks)
    playbook = parse_playbook(SHOP)
    return load_book(frames, playbook=playbook, as_of=end + timedelta(days=30)), playbook


@pytest.fixture(scope="module")
def shop_run() -> tuple[Book, Playbook, RunResult]:
    book, playbook = shop_book()
    return book, playbook, run(book, playbook, effect_params=FAST, evaluate=False)


def test_run_on_a_book_the_lab_did_not_make(shop_run: tuple[Book, Playbook, RunResult]) -> None:
    book, _, result = shop_run
    recs = result.recommendations
    lapsed = set(book.outcomes.filter(pl.col("kind") == "lapse")["account_id"].to_list())
    assert recs.height == book.accounts.height - len(lapsed)
    assert not set(recs["account_id"].to_list()) & lapsed
    assert result.as_of == default_as_of(book)
    assert set(recs["action_id"].unique()) <= {"stylist_call", "coupon", "none"}
    assert [c for c in recs.columns if c.startswith("projected_")] == ["projected_keep", "projected_grow"]
    coupons = recs.filter(pl.col("action_id") == "coupon")
    assert coupons["variant"].is_in(["am", "pm"]).all()
    summary = result.summary
    assert set(summary["assigned"]) == {"keep", "grow"}
    assert summary["actions"] == 2
    assert "regret" not in summary
    # Owners have 6 hours a week and a call takes one: never more than six calls per stylist.
    calls = recs.filter(pl.col("action_id") == "stylist_call").group_by("owner").len()
    assert calls["len"].max() is None or calls["len"].max() <= 6  # type: ignore[operator]
    evidence = parse_evidence(recs.row(0, named=True)["evidence"])
    assert {p.objective for p in evidence.projected} == {"keep", "grow"}
    text = " ".join(s.text for r in recs.head(30)["evidence"] for s in parse_evidence(r).signals)
    assert "active_users" not in text
    assert "visits" in text or "opens" in text


def test_run_without_owners_or_stages(shop_run: tuple[Book, Playbook, RunResult]) -> None:
    book, playbook, _ = shop_run
    bare = Book(
        book.accounts.drop("owner", "lifecycle_stage"), book.signals, book.touches, book.outcomes, source="bare"
    )
    result = run(bare, playbook, effect_params=FAST, evaluate=False, evidence=False)
    recs = result.recommendations
    assert recs["owner"].is_null().all()
    assert recs["default_action_id"].is_null().all()
    assert result.summary["differs_from_default_share"] is None
    assert "control" in set(recs["arm"].unique())


def test_run_before_any_horizon_is_over_says_when_it_can_learn(
    shop_run: tuple[Book, Playbook, RunResult], tmp_path: Path
) -> None:
    book, playbook, _ = shop_run
    first = book.touches.get_column("ts").min()
    assert isinstance(first, datetime)
    early = first + timedelta(days=playbook.horizon_days // 2)
    done = first + timedelta(days=playbook.horizon_days)
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=rf"earliest decision .* finished on {done:%Y-%m-%d}.*--as-of"):
        run(book, playbook, as_of=early, effect_params=FAST, out_dir=out)
    assert not out.exists()  # nothing half-written
    # Learning from open horizons is the other way out: then the run goes ahead.
    result = run(book, playbook, as_of=early, effect_params={**FAST, "partial_horizon_days": 3}, evaluate=False)
    assert result.recommendations.height > 0


def test_default_as_of_is_the_next_midnight() -> None:
    book, _ = shop_book(n=5, weeks=2)
    book = dataclasses.replace(book, as_of=None)  # a book given no time, as load_book without as_of makes
    latest = latest_timestamp(book)
    when = default_as_of(book)
    assert latest is not None
    assert when is not None
    # Its latest row is an outcome dated 2025-01-26 (the outcomes are dates, the signals times of day):
    # that day is read whole, so the book is read as of the midnight after it.
    assert latest == datetime(2025, 1, 26, tzinfo=UTC)
    assert when == latest + timedelta(days=1) == data_reach(book)
    timed = dataclasses.replace(book, outcomes=book.outcomes.clear())  # the signals end 2025-01-12 23:00
    assert default_as_of(timed) == datetime(2025, 1, 14, tzinfo=UTC)  # the touches, dates, end 2025-01-13
    # A book given a time (load_book(..., as_of=...)) is read as of that time.
    later = when + timedelta(days=30)
    assert default_as_of(dataclasses.replace(book, as_of=later)) == later
    empty = dataclasses.replace(
        book, signals=book.signals.head(0), touches=book.touches.head(0), outcomes=book.outcomes.head(0)
    )
    assert default_as_of(empty) is None


def test_default_as_of_reads_the_last_day_of_a_book_of_dates() -> None:
    # Exports of dates only ("2024-11-16") put every row at a midnight; the last date's rows must be
    # read, so the book is read as of the midnight after it. A timed book ending at a midnight is not.
    book, _ = shop_book(n=5, weeks=2)
    book = dataclasses.replace(book, as_of=None)
    dated = dataclasses.replace(
        book,
        **{name: getattr(book, name).with_columns(pl.col("ts").dt.truncate("1d")) for name in ("signals", "touches")},
        outcomes=book.outcomes.with_columns(pl.col("ts").dt.truncate("1d")),
    )
    last = latest_timestamp(dated)
    assert last is not None
    assert dates_only(dated)
    assert default_as_of(dated) == last + timedelta(days=1)
    # One signal with a time of day among its dates leaves the table one of dates (of_dates): the
    # book is still read as of the midnight after its last date.
    timed_row = dated.signals.head(1).with_columns(pl.lit(last - timedelta(hours=5)).alias("ts"))
    one_timed = dataclasses.replace(dated, signals=pl.concat([dated.signals, timed_row]))
    assert dates_only(one_timed)
    assert default_as_of(one_timed) == last + timedelta(days=1)
    # A table of times whose latest time is a midnight reaches that midnight: it is read as of it.
    times = dated.signals.with_columns(pl.col("ts") + timedelta(hours=5))
    at_midnight = times.head(1).with_columns(pl.lit(last + timedelta(days=3)).alias("ts"))
    timed = dataclasses.replace(dated, signals=pl.concat([times, at_midnight]))
    assert not dates_only(timed)
    assert default_as_of(timed) == last + timedelta(days=3)


def test_decide_doc_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(__file__).resolve().parents[2]
    text = (root / "docs" / "decide.md").read_text(encoding="utf-8")
    block = text.split("```python\n")[1].split("```")[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(compile(block, "decide.md", "exec"), namespace)  # the doc's own example, run as written
    result = namespace["result"]
    assert isinstance(result, RunResult)
    assert (tmp_path / "example-run" / "summary.json").is_file()
    assert result.summary["regret"]["model_regret_share"] is not None


def test_run_notes_accounts_without_an_owner_when_owner_hours_are_limited() -> None:
    from nextmove.engine.run import _unowned_note
    from nextmove.playbook.loader import load_playbook

    playbook = load_playbook()  # 12 hours per owner per week, actions with effort hours
    assert playbook.capacity.hours_per_owner_per_week is not None
    note = _unowned_note(playbook, ["ana", None, None], np.array([1.0, 2.5, 0.0]))
    assert note is not None
    assert note.startswith("2 of 3 accounts have no owner: the plays recommended to them take 2.5 effort hours")
    assert "(the accounts with an owner take 1.0)" in note
    assert _unowned_note(playbook, None, np.zeros(4)) is not None
    assert _unowned_note(playbook, ["ana", "bo"], np.ones(2)) is None
    unlimited = playbook.model_copy(
        update={"capacity": playbook.capacity.model_copy(update={"hours_per_owner_per_week": None})}
    )
    assert _unowned_note(unlimited, None, np.zeros(4)) is None
    some = unlimited.model_copy(update={"capacity": unlimited.capacity.model_copy(update={"owner_hours": {"ana": 4}})})
    assert _unowned_note(some, ["ana", None], np.zeros(2)) is not None  # ana's hours are limited


def test_run_gives_each_owner_their_own_hours() -> None:
    book, _ = shop_book(n=120, weeks=12)
    # Every tenth account has no owner; stylist-0 is on leave, stylist-1 works 2 hours a week (two 1-hour
    # calls over the 7-day window), the others have the default 6; "ghost" owns no account.
    owners = [None if i % 10 == 9 else f"stylist-{i % 4}" for i in range(book.accounts.height)]
    book = dataclasses.replace(book, accounts=book.accounts.with_columns(owner=pl.Series(owners, dtype=pl.String)))
    playbook = parse_playbook(SHOP + '\n[capacity.owner_hours]\n"stylist-0" = 0\n"stylist-1" = 2\nghost = 5\n')
    result = run(book, playbook, effect_params=FAST, evaluate=False, evidence=False, segments=False)
    recs = result.recommendations
    calls = recs.filter(pl.col("action_id") == "stylist_call").group_by("owner").len()
    count = dict(calls.iter_rows())
    assert "stylist-0" not in count
    assert count.get("stylist-1", 0) <= 2
    assert count.get("stylist-2", 0) > 2  # the default 6 hours let more through than stylist-1's 2
    hours = result.summary["capacity"]["by_kind"]["hours"]
    assert hours["limit"] == 0 + 2 + 6 + 6
    notes = result.summary["notes"]
    assert any(n.startswith("owner_hours names 'ghost', which no account's owner is") for n in notes)
    unowned = [n for n in notes if "accounts have no owner" in n]
    taken = float(count.get(None, 0))
    assert len(unowned) == 1
    assert f"the plays recommended to them take {taken:,.1f} effort hours" in unowned[0]
    assert any("owner_hours of 0 for 'stylist-0' blocks stylist_call" in n for n in notes)


def test_run_notes_a_decision_time_long_after_the_book_ends(shop_run: tuple[Book, Playbook, RunResult]) -> None:
    book, playbook, result = shop_run
    assert not any("after the book's latest row" in note for note in result.summary["notes"])
    latest = latest_timestamp(book)
    assert latest is not None
    late = run(book, playbook, as_of=latest + timedelta(days=300), effect_params=FAST, evaluate=False, evidence=False)
    assert any(
        note.startswith(f"the decision time {latest + timedelta(days=300):%Y-%m-%d} is 300 days after")
        for note in late.summary["notes"]
    )


def test_run_rejects_an_eligibility_the_book_cannot_provide_before_fitting_models() -> None:
    from nextmove.playbook.expr import ExpressionError

    book, playbook = shop_book(n=40, weeks=12)
    first = playbook.actions[0].model_copy(update={"eligibility": "seats > 10"})
    broken = playbook.model_copy(update={"actions": [first, *playbook.actions[1:]]})
    stages: list[str] = []
    with pytest.raises(ExpressionError, match="seats"):
        run(book, broken, effect_params=FAST, evaluate=False, progress=stages.append)
    assert stages == [RUN_STAGES[0]]  # failed computing features, not after the models' fit


def test_run_notes_a_stage_default_no_account_has_as_validate_does(shop_run: tuple[Book, Playbook, RunResult]) -> None:
    from nextmove.book.validate import playbook_fit_notes, validate_book

    book, playbook, result = shop_run
    assert not any(note.startswith("default_for_stages names") for note in result.summary["notes"])
    first = playbook.actions[0].model_copy(update={"default_for_stages": ["Loyal"]})  # the book says 'loyal'
    typo = playbook.model_copy(update={"actions": [first, *playbook.actions[1:]]})
    out = run(book, typo, effect_params=FAST, evaluate=False, evidence=False)
    tables = ("accounts", "signals", "touches", "outcomes")
    validated = playbook_fit_notes(validate_book({name: book.table(name) for name in tables}), typo)
    said = [note for note in validated if note.startswith("default_for_stages names 'Loyal'")]
    assert len(said) == 1
    assert said[0] in out.summary["notes"]


def test_run_notes_an_outcome_kind_spelt_in_another_case_as_validate_does(
    shop_run: tuple[Book, Playbook, RunResult],
) -> None:
    from nextmove.book.validate import playbook_fit_notes, validate_book

    book, playbook, result = shop_run
    assert not any(" no outcome row has " in note for note in result.summary["notes"])
    # Kinds as CRMs export them, title case: the playbook's 'lapse' and 'upgrade' are in no row.
    titled = dataclasses.replace(book, outcomes=book.outcomes.with_columns(pl.col("kind").str.to_titlecase()))
    out = run(titled, playbook, effect_params=FAST, evaluate=False, evidence=False)
    tables = ("accounts", "signals", "touches", "outcomes")
    validated = playbook_fit_notes(validate_book({name: titled.table(name) for name in tables}), playbook)
    kinds = [n for n in validated if " no outcome row has " in n]
    assert kinds[0].startswith(
        "objective 'keep' is measured by outcome kind 'lapse', which no outcome row has (the book has 'Lapse': "
        "kinds are case-sensitive)"
    )
    assert kinds[0].endswith("and accounts that had it are not ended (they still get actions)")
    assert len(kinds) == 2
    notes = out.summary["notes"]
    assert all(notes.count(note) == 1 for note in kinds)
    assert len(set(notes)) == len(notes)


def test_run_on_a_book_without_arr_puts_no_dollars_at_risk(shop_run: tuple[Book, Playbook, RunResult]) -> None:
    book, playbook, with_arr = shop_run
    assert (with_arr.recommendations["arr_at_risk_usd"] > 0).any()
    bare = Book(book.accounts.drop("arr"), book.signals, book.touches, book.outcomes, source="no arr")
    result = run(bare, playbook, effect_params=FAST, evaluate=False, evidence=False)
    # Consumers have no ARR: "ARR at risk" is unknown (empty), not $0 for everyone.
    assert result.recommendations["arr_at_risk_usd"].is_null().all()
    bands = result.summary["health_bands"]
    assert bands, "the shop playbook scores health"
    assert all(b["arr_usd"] is None for b in bands)
    assert all(b["arr_usd"] is not None for b in with_arr.summary["health_bands"])


def test_run_before_a_signals_first_row_decides_without_it_and_says_so() -> None:
    book, playbook = shop_book(n=60, weeks=20)
    first = book.signals.get_column("ts").min()
    assert isinstance(first, datetime)
    starts = first + timedelta(days=7 * 12)  # 'visits' is collected from week 12 on; coupons need it
    late = dataclasses.replace(
        book, signals=book.signals.filter((pl.col("name") != "visits") | (pl.col("ts") >= starts))
    )
    assert "visits_mean_28d" in (playbook.actions[1].eligibility or "")
    early = first + timedelta(days=70)
    result = run(late, playbook, as_of=early, effect_params=FAST, evaluate=False, segments=False)
    # It goes ahead, with visits missing for every account as for an account without them: no coupon.
    assert result.recommendations["action_id"].ne("coupon").all()
    [note] = [n for n in result.summary["notes"] if "no row before the decision time" in n]
    assert note.startswith(
        f"the signal 'visits' has no row before the decision time {early:%Y-%m-%d} (its first: {starts:%Y-%m-%d})"
    )
    assert "pass an --as-of after its first row" in note
    # Once visits have rows, they are features again, and the note is gone.
    later = run(late, playbook, as_of=starts + timedelta(days=28), effect_params=FAST, evaluate=False, segments=False)
    assert not any("no row before the decision time" in n for n in later.summary["notes"])
    assert later.recommendations["action_id"].eq("coupon").any()


def test_run_notes_each_action_no_active_account_is_eligible_for_with_its_expression() -> None:
    from nextmove.decide.rules import check_rules
    from nextmove.engine.run import never_eligible_note

    playbook = parse_playbook(
        """
[objectives.keep]
outcome = "cancelled"
sense = "avoid"
value = "fixed"
value_usd = 120

[[actions]]
id = "vip"
name = "VIP"
team = "support"
objective = "keep"
eligibility = "opens > 100000"

[[actions]]
id = "refund"
name = "Refund"
team = "support"
objective = "keep"
eligibility = "arr > 100"
variants = [{ id = "email" }, { id = "sms", channel = "sms" }]

[[actions]]
id = "push"
name = "Push"
team = "support"
objective = "keep"
eligibility = "opens >= 1"

[[actions]]
id = "mail"
name = "Mail"
team = "support"
objective = "keep"
"""
    )
    # A book without ARR: arr is missing for every account, and a missing value is not eligible.
    features = pl.DataFrame({"account_id": ["a", "b", "c"], "opens": [0.0, 3.0, 250.0], "arr": [None, None, None]})
    touches = pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    kinds = {"opens": "number", "arr": "number"}
    at = datetime(2025, 9, 1, tzinfo=UTC)
    note = never_eligible_note(playbook, check_rules(features, touches, playbook, at, kinds))
    assert note is not None
    assert note.startswith(
        "eligible for none of the 3 active accounts, so never recommended: vip (opens > 100000), refund (arr > 100);"
    )
    assert "push" not in note
    assert "mail" not in note
    # One account eligible is enough, whatever else blocks it (a cooldown, a cap): no note.
    features = features.with_columns(pl.Series("opens", [0.0, 3.0, 200_000.0]), pl.Series("arr", [None, 500.0, None]))
    assert never_eligible_note(playbook, check_rules(features, touches, playbook, at, kinds)) is None


def test_run_values_the_lifecycle_default_as_doing_nothing_where_no_account_is_eligible_for_it() -> None:
    # Every action blocked by its eligibility: the control cohort gets nothing, and so must the
    # default policy the learned one is judged against (as `nextmove evaluate`'s default does).
    book, playbook = shop_book(n=120, weeks=24)
    blocked = playbook.model_copy(
        update={"actions": [a.model_copy(update={"eligibility": "arr > 1000000000"}) for a in playbook.actions]}
    )
    result = run(book, blocked, effect_params=FAST, evidence=False, segments=False)
    assert (result.recommendations["action_id"] == "none").all()
    values = {(v["policy"], v["method"]): v for v in result.policy_values}
    assert {policy for policy, _ in values} == {"learned", "nothing", "default"}
    for method in ("ips", "snips", "dr"):
        assert values[("default", method)]["estimate"] == pytest.approx(values[("nothing", method)]["estimate"])
    for difference in result.summary["policy_differences"]:
        assert difference["estimate"] == pytest.approx(0.0, abs=1e-9), difference


def test_run_counts_segment_moves_since_the_previous_run_of_the_same_book_only(tmp_path: Path) -> None:
    # The moves were counted against the store's newest run: a backtest (an earlier as_of, made
    # later) compared itself with a run two months later in book time, and another book with this one.
    book, playbook = shop_book(weeks=26)
    when = default_as_of(book)
    assert when is not None
    fast: dict[str, Any] = {"effect_params": FAST, "evaluate": False, "evidence": False}
    with open_store(f"sqlite:///{tmp_path / 'nextmove.db'}") as store:
        made = {
            name: run(b, playbook, as_of=when + timedelta(days=days), store=store, run_id=name, **fast).summary
            for name, b, days in (
                ("first", book, -28),
                ("second", book, 0),
                ("backtest", book, -56),
                ("another-book", dataclasses.replace(book, source="another book"), 14),
                ("third", book, 14),
            )
        }
    assert made["backtest"]["segments"]["moves"] is None
    assert made["another-book"]["segments"]["moves"] is None
    assert made["third"]["segments"]["moves"]["accounts"] > 0
    previous = {name: (s["segments"]["previous_run"] or {}).get("run_id") for name, s in made.items()}
    assert previous == {"first": None, "second": "first", "backtest": None, "another-book": None, "third": "second"}
    assert made["second"]["segments"]["previous_run"]["as_of"] == (when - timedelta(days=28)).isoformat()
