"""Tests of the decision receipts: schema, numbers against the projection, runner-ups, plain text, odd input.

Decisions and runner-ups are made here with the real parts (rules, projection, allocation under
a capacity), on a lab book and on a small B2C shop book the lab did not generate.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from nextmove.book import NO_ACTION, Book
from nextmove.decide.allocate import Resource, allocate
from nextmove.decide.explain import (
    OUTPUT_SCHEMA,
    WHY_CODES,
    explain_decisions,
    parse_alternatives,
    parse_evidence,
    receipt_text,
)
from nextmove.decide.explore import assign_control, stable_uniform
from nextmove.decide.policy import decide
from nextmove.decide.rules import Why, check_rules
from nextmove.errors import ConfigError
from nextmove.features import FeatureVocabulary, build_training_set, compute_features, feature_schema
from nextmove.models.effect import ARM_SEPARATOR, EffectModel, EffectProjection
from nextmove.playbook import Action, Objective, Playbook
from nextmove.playbook.loader import load_playbook, parse_playbook
from nextmove.playbook.money import money_text
from nextmove.sim import SimConfig, simulate

FAST = {"n_folds": 2, "n_estimators": 30, "num_leaves": 7, "min_child_samples": 30, "n_draws": 60}
_WHY_NAME = {Why.RULE: "rule", Why.COOLDOWN: "cooldown", Why.CONTACT_CAP: "contact_cap", Why.IN_FLIGHT: "in_flight"}


@dataclass(frozen=True)
class Case:
    """Everything one book gives: snapshot, projection, decisions, runner-ups and the receipts."""

    playbook: Playbook
    snapshot: pl.DataFrame
    previous: pl.DataFrame
    history: pl.DataFrame
    model: EffectModel
    projection: EffectProjection
    decisions: pl.DataFrame
    lost: pl.DataFrame
    receipts: pl.DataFrame
    outcomes: pl.DataFrame


def make_decisions(
    snapshot: pl.DataFrame,
    projection: EffectProjection,
    playbook: Playbook,
    touches: pl.DataFrame,
    as_of: datetime,
    *,
    hours: float,
    seed: int = 0,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decisions and runner-ups as the decide step makes them: rules, values, allocation under an hours limit.

    A stable 10% are control accounts (the lifecycle default), a stable 5% explore (a random allowed play).
    """
    check = check_rules(snapshot, touches, playbook, as_of, feature_schema(snapshot))
    ids, cands = check.account_ids, check.candidates
    n = len(ids)
    arms = set(projection.values.get_column("action_id").to_list())
    keys = [c.action_id + ARM_SEPARATOR + c.variant if c.variant and c.key in arms else c.action_id for c in cands]
    wide = projection.values.pivot(on="action_id", index="account_id", values="value_usd")
    aligned = pl.DataFrame({"account_id": ids}).join(wide, on="account_id", how="left", maintain_order="left")
    values = np.column_stack([aligned.get_column(k).to_numpy() for k in keys])
    effort = np.array([max(c.effort_hours, 0.1) for c in cands])
    choice = allocate(values, check.allowed, [Resource("owner hours", hours, effort)], method="exact").choice

    control = assign_control(ids, playbook.control_fraction, seed)
    explore = (stable_uniform(ids, seed, "explore") < 0.05) & ~control
    rng = np.random.default_rng(seed)
    stages = snapshot.get_column("lifecycle_stage").to_list() if "lifecycle_stage" in snapshot.columns else [None] * n
    rows, lost = [], []
    for i, account in enumerate(ids):
        model_k = int(choice[i])
        k = model_k
        arm = "model"
        if explore[i] and check.allowed[i].any():
            k = int(rng.choice(np.flatnonzero(check.allowed[i])))
            arm = "explore"
        default = playbook.default_action_for_stage(stages[i])
        if control[i]:
            arm = "control"
            k = next((j for j, c in enumerate(cands) if c.action_id == default and c.variant is None), -1)
            if k < 0 and default != NO_ACTION:
                k = next(j for j, c in enumerate(cands) if c.action_id == default)
        chosen_value = values[i, k] if k >= 0 else 0.0
        rows.append(
            {
                "account_id": account,
                "action_id": cands[k].action_id if k >= 0 else NO_ACTION,
                "variant": cands[k].variant if k >= 0 else None,
                "arm": arm,
                "propensity": 0.9 if arm == "model" else 0.05 if arm == "explore" else 1.0,
                "model_action_id": cands[model_k].action_id if model_k >= 0 else NO_ACTION,
                "default_action_id": default,
                "value_usd": chosen_value,
                "value_low_usd": chosen_value - 10.0,
                "value_high_usd": chosen_value + 10.0,
            }
        )
        for j, cand in enumerate(cands):
            if j == k:
                continue
            code = Why(int(check.why[i, j]))
            if code is not Why.ALLOWED:
                why, reason = _WHY_NAME[code], check.reason(playbook, i, j)
            elif arm == "model" and values[i, j] > max(chosen_value, 0.0):
                why, reason = "capacity", f"capacity: owner hours used up ({hours:.0f} hours)"
            else:
                why, reason = "lower_value", ""
            lost.append(
                {
                    "account_id": account,
                    "action_id": cand.action_id,
                    "variant": cand.variant,
                    "why": why,
                    "reason": reason,
                }
            )
    lost_schema = {
        "account_id": pl.String,
        "action_id": pl.String,
        "variant": pl.String,
        "why": pl.String,
        "reason": pl.String,
    }
    return pl.DataFrame(rows), pl.DataFrame(lost, schema=lost_schema)


# ---- the lab book ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab() -> Case:
    result = simulate(SimConfig(accounts=300, months=12, seed=11))
    playbook = parse_playbook(result.playbook_text)
    history = build_training_set(result.book, playbook)
    model = EffectModel(playbook, **FAST).fit(history)
    snapshot = compute_features(result.book, result.as_of, playbook=playbook)
    previous = compute_features(result.book, result.as_of - timedelta(days=28), playbook=playbook)
    projection = model.project(snapshot)
    decisions, lost = make_decisions(snapshot, projection, playbook, result.book.touches, result.as_of, hours=60.0)
    receipts = explain_decisions(
        snapshot,
        projection,
        decisions,
        lost,
        playbook,
        model=model,
        history=history,
        outcomes=result.book.outcomes,
        previous=previous,
    )
    return Case(
        playbook, snapshot, previous, history, model, projection, decisions, lost, receipts, result.book.outcomes
    )


def _parsed(case: Case) -> list[tuple[dict[str, object], list[dict[str, object]]]]:
    return [(json.loads(e), json.loads(a)) for e, a in case.receipts.select("evidence", "alternatives").iter_rows()]


def test_explain_receipts_follow_the_schema(lab: Case) -> None:
    assert lab.receipts.schema == pl.Schema(OUTPUT_SCHEMA)
    assert lab.receipts.get_column("account_id").to_list() == lab.decisions.get_column("account_id").to_list()
    for evidence, alternatives in lab.receipts.select("evidence", "alternatives").iter_rows():
        parsed = parse_evidence(evidence)
        assert parsed.schema_version == 1
        assert list(json.loads(evidence)) == [
            "schema",
            "action_id",
            "variant",
            "arm",
            "propensity",
            "model_action_id",
            "default_action_id",
            "differs_from_default",
            "default_why",
            "value_usd",
            "value_low_usd",
            "value_high_usd",
            "projected",
            "signals",
            "comparables",
            "summary",
            "pooled",
        ]
        assert [p.objective for p in parsed.projected] == list(lab.playbook.objectives)
        assert len(parsed.signals) <= 3
        assert len(parsed.comparables) <= 3
        assert len(parse_alternatives(alternatives)) <= 3
    arms = {parse_evidence(e).arm for e in lab.receipts.get_column("evidence")}
    assert arms == {"model", "explore", "control"}


def test_explain_projected_outcomes_agree_with_the_projection(lab: Case) -> None:
    effects = {
        (r["account_id"], r["action_id"], r["objective"]): r for r in lab.projection.effects.iter_rows(named=True)
    }
    arms = {arm for _, arm, _ in effects}
    baseline = {(account, objective): r["baseline"] for (account, _, objective), r in effects.items()}
    checked = 0
    for (evidence, _), decision in zip(_parsed(lab), lab.decisions.iter_rows(named=True), strict=True):
        account = decision["account_id"]
        assert evidence["value_usd"] == pytest.approx(decision["value_usd"], abs=0.01)
        assert evidence["value_low_usd"] == pytest.approx(decision["value_low_usd"], abs=0.01)
        # The projection is of what the account gets, on every arm (a control account's default), as its value is.
        subject, variant = decision["action_id"], decision["variant"]
        key = f"{subject}{ARM_SEPARATOR}{variant}" if variant else subject
        key = key if key in arms else subject
        for p in evidence["projected"]:  # type: ignore[attr-defined]
            base = baseline[(account, p["objective"])]
            tol = 0.01 if p["unit"] == "usd" else 1e-4
            assert p["without"] == pytest.approx(base, abs=tol)
            if subject == NO_ACTION:
                assert p["with"] == p["without"]
                assert p["effect"] == 0.0
                continue
            row = effects[(account, key, p["objective"])]
            assert p["with"] == pytest.approx(base + row["effect"], abs=tol)
            # The interval of "with" is the effect's around the baseline, a chance kept within [0, 1].
            bound = (0.0, 1.0) if p["unit"] == "probability" else (-np.inf, np.inf)
            assert p["low"] == pytest.approx(np.clip(base + row["low"], *bound), abs=tol)
            assert p["high"] == pytest.approx(np.clip(base + row["high"], *bound), abs=tol)
            assert p["effect_usd"] == pytest.approx(row["effect_usd"], abs=0.01)
            assert p["low"] <= p["with"] + tol <= p["high"] + 2 * tol
            checked += 1
    assert checked > 100


def test_explain_runner_ups_carry_their_why_codes_and_values(lab: Case) -> None:
    values = {(r["account_id"], r["action_id"]): r["value_usd"] for r in lab.projection.values.iter_rows(named=True)}
    arms = {arm for _, arm in values}
    lost: dict[str, dict[tuple[str, str | None], dict[str, str]]] = {}
    for r in lab.lost.iter_rows(named=True):
        lost.setdefault(r["account_id"], {})[(r["action_id"], r["variant"])] = r
    seen: set[str] = set()
    for (_, alternatives), decision in zip(_parsed(lab), lab.decisions.iter_rows(named=True), strict=True):
        account = decision["account_id"]
        chosen = (decision["action_id"], decision["variant"])
        assert chosen not in {(a["action_id"], a["variant"]) for a in alternatives}
        shown = [a["value_usd"] for a in alternatives]
        assert shown == sorted(shown, reverse=True)
        mine = {key: row for key, row in lost.get(account, {}).items() if key != chosen}
        assert len(alternatives) == min(3, len(mine))
        for alt in alternatives:
            row = mine[(alt["action_id"], alt["variant"])]
            assert alt["why"] == row["why"]
            assert alt["reason"] == (row["reason"] or "lower value")
            arm = f"{alt['action_id']}{ARM_SEPARATOR}{alt['variant']}" if alt["variant"] else alt["action_id"]
            arm = arm if arm in arms else alt["action_id"]
            assert alt["value_usd"] == pytest.approx(values[(account, arm)], abs=0.01)
            seen.add(str(alt["why"]))
        # Best first: nothing left out is worth more than the last one shown.
        if alternatives:
            left_out = [
                values[(account, k[0])]
                for k in mine
                if (k[0], k[1]) not in {(a["action_id"], a["variant"]) for a in alternatives}
                and (account, k[0]) in values
            ]
            assert all(v <= alternatives[-1]["value_usd"] + 0.01 for v in left_out)
    assert {"rule", "lower_value", "capacity"} <= seen <= set(WHY_CODES)


def _technical_names(case: Case) -> list[str]:
    return [c for c in case.snapshot.columns if "_" in c]


def test_explain_text_is_plain(lab: Case) -> None:
    columns = set(_technical_names(lab))
    names = {a.name for a in lab.playbook.actions}
    for (evidence, alternatives), summary in zip(_parsed(lab), lab.receipts.get_column("summary"), strict=True):
        assert summary == evidence["summary"]
        text = receipt_text(evidence, alternatives, playbook=lab.playbook)
        assert len(text.splitlines()) >= 4
        # Reasons a candidate lost quote the playbook's own rules ("tenure_days <= 240"): left out here.
        ours = [line for line in text.splitlines()[1:] if "lost:" not in line and "Lifecycle" not in line]
        signals = [s["text"] for s in evidence["signals"]]  # type: ignore[attr-defined]
        for shown in [summary.split(", lost: ")[0], *ours, *signals]:
            assert not re.search(r"\b(None|nan|NaN|null|inf)\b|[{}\[\]]", shown), shown
            assert not set(re.findall(r"[a-z0-9]+(?:_[a-z0-9]+)+", shown)) & columns, shown
        if evidence["action_id"] != NO_ACTION and evidence["arm"] != "control":
            assert any(summary.startswith(prefix + n) for n in names for prefix in ("", "Exploring: "))
        if evidence["action_id"] == NO_ACTION and evidence["arm"] != "control":
            assert summary.startswith("Do nothing")
        if evidence["arm"] == "control":
            assert summary.startswith("Control group")
    signalled = [e for e, _ in _parsed(lab) if e["signals"]]
    assert len(signalled) > 0.8 * lab.receipts.height
    assert any("from" in s["text"] for e in signalled for s in e["signals"])  # type: ignore[attr-defined]


def test_explain_signals_cite_the_accounts_values(lab: Case) -> None:
    snapshot = {r["account_id"]: r for r in lab.snapshot.iter_rows(named=True)}
    previous = {r["account_id"]: r for r in lab.previous.iter_rows(named=True)}
    for (evidence, _), account in zip(_parsed(lab), lab.receipts.get_column("account_id"), strict=True):
        for signal in evidence["signals"]:  # type: ignore[attr-defined]
            assert signal["feature"] in lab.snapshot.columns
            assert signal["feature"] != "owner"
            value = snapshot[account][signal["feature"]]
            if isinstance(value, str):
                assert signal["value"] is None
                assert value in signal["text"]
                continue
            assert signal["value"] == pytest.approx(value, abs=1e-6)
            earlier = previous.get(account, {}).get(signal["feature"])
            if signal["previous"] is not None:
                assert signal["previous"] == pytest.approx(earlier, abs=1e-6)


def test_explain_comparables_took_the_action(lab: Case) -> None:
    taken = lab.history.filter(~pl.col("censored")).select("account_id", "action_id").unique()
    pairs = set(taken.iter_rows())
    found = 0
    for (evidence, _), account in zip(_parsed(lab), lab.receipts.get_column("account_id"), strict=True):
        for c in evidence["comparables"]:  # type: ignore[attr-defined]
            assert c["account_id"] != account
            assert (c["account_id"], c["action_id"]) in pairs
            assert 0 < c["similarity"] <= 1
            assert datetime.fromisoformat(c["ts"]).tzinfo is not None
            assert "within 90 days" in c["outcome"]
            found += 1
    assert found > 0


def _kind_within(case: Case, account: str, action: str, ts: str, days: int) -> pl.DataFrame:
    """The outcomes of the action's own objective's kind that ``account`` had in ``(ts, ts + days]``."""
    objective = next(a.objective for a in case.playbook.actions if a.id == action)
    start = datetime.fromisoformat(ts)
    return case.outcomes.filter(
        (pl.col("account_id") == account)
        & (pl.col("kind") == case.playbook.objectives[objective].outcome)
        & (pl.col("ts") > start)
        & (pl.col("ts") <= start + timedelta(days=days))
    )


def test_explain_comparables_say_what_happened_within_the_horizon(lab: Case) -> None:
    # The lab credits outcomes to touches (touch_id), so a decision's training label can be 0 when the
    # outcome followed within the horizon and went to a later touch: the words must not say "…: none" then.
    credited_elsewhere = 0
    for (evidence, _), account in zip(_parsed(lab), lab.receipts.get_column("account_id"), strict=True):
        for c in evidence["comparables"]:  # type: ignore[attr-defined]
            window = _kind_within(lab, c["account_id"], c["action_id"], c["ts"], 90)
            assert c["outcome"].endswith(": none") == (window.height == 0), (account, c, window)
            credited_elsewhere += "(credited to another touch)" in c["outcome"]
    assert credited_elsewhere > 0  # the case this guards is in the book


def test_explain_comparables_without_outcomes_say_only_what_was_credited(lab: Case) -> None:
    out = explain_decisions(
        lab.snapshot, lab.projection, lab.decisions, lab.lost, lab.playbook, history=lab.history, top_signals=0
    )
    texts = [c["outcome"] for e in out.get_column("evidence") for c in json.loads(e)["comparables"]]
    assert texts
    for text in texts:
        assert ": none" not in text or text.endswith(" within 90 days: none credited to it"), text


def test_explain_replays_from_the_stored_receipt_alone(lab: Case) -> None:
    evidence, alternatives = lab.receipts.select("evidence", "alternatives").row(0)
    text = receipt_text(json.loads(evidence), json.loads(alternatives))
    again = receipt_text(json.loads(json.dumps(json.loads(evidence))), json.loads(alternatives))
    assert text == again
    assert text.splitlines()[0] == json.loads(evidence)["summary"]
    for alt in json.loads(alternatives):
        assert alt["reason"] in text


def test_explain_none_decisions_and_empty_input(lab: Case) -> None:
    nothing = lab.decisions.head(5).with_columns(
        pl.lit(NO_ACTION).alias("action_id"),
        pl.lit(None, pl.String).alias("variant"),
        pl.lit("model").alias("arm"),
        pl.lit(NO_ACTION).alias("model_action_id"),
        pl.lit(0.0).alias("value_usd"),
        pl.lit(0.0).alias("value_low_usd"),
        pl.lit(0.0).alias("value_high_usd"),
    )
    lost = lab.lost.join(nothing.select("account_id"), on="account_id", how="semi")
    out = explain_decisions(lab.snapshot, lab.projection, nothing, lost, lab.playbook, history=lab.history)
    for evidence, alternatives in out.select("evidence", "alternatives").iter_rows():
        parsed = parse_evidence(evidence)
        assert parsed.action_id == NO_ACTION
        assert parsed.comparables == []
        assert all(p.effect == 0.0 and p.with_ == p.without for p in parsed.projected)
        assert parsed.summary.startswith("Do nothing for now; the best other option, ")
        assert len(parse_alternatives(alternatives)) == 3
    # The decide step's own differs_from_default flag, when given, is what the receipt says.
    flagged = nothing.with_columns(pl.lit(True).alias("differs_from_default"))
    out = explain_decisions(lab.snapshot, lab.projection, flagged, lost, lab.playbook, top_signals=0)
    assert all(parse_evidence(e).differs_from_default for e in out.get_column("evidence"))
    assert all(parse_evidence(e).signals == [] for e in out.get_column("evidence"))
    empty = explain_decisions(lab.snapshot, lab.projection, nothing.clear(), lost.clear(), lab.playbook)
    assert empty.height == 0
    assert empty.schema == pl.Schema(OUTPUT_SCHEMA)
    bare = explain_decisions(lab.snapshot.head(0), lab.projection, nothing, lost.clear(), lab.playbook)
    for evidence, alternatives in bare.select("evidence", "alternatives").iter_rows():
        assert parse_evidence(evidence).signals == []
        assert alternatives == "[]"
        assert parse_evidence(evidence).summary == "Do nothing for now."


def test_explain_rejects_bad_input(lab: Case) -> None:
    decisions, lost = lab.decisions.head(3), lab.lost.head(3)
    with pytest.raises(ConfigError, match="value_usd"):
        explain_decisions(lab.snapshot, lab.projection, decisions.drop("value_usd"), lost, lab.playbook)
    bad_why = lost.with_columns(pl.lit("too_expensive").alias("why"))
    with pytest.raises(ConfigError, match="why must be one of"):
        explain_decisions(lab.snapshot, lab.projection, decisions, bad_why, lab.playbook)
    bad_arm = decisions.with_columns(pl.lit("greedy").alias("arm"))
    with pytest.raises(ConfigError, match="arm must be one of"):
        explain_decisions(lab.snapshot, lab.projection, bad_arm, lost, lab.playbook)
    with pytest.raises(ConfigError, match="more than one decision"):
        explain_decisions(lab.snapshot, lab.projection, pl.concat([decisions, decisions]), lost, lab.playbook)
    with pytest.raises(ConfigError, match="top_signals"):
        explain_decisions(lab.snapshot, lab.projection, decisions, lost, lab.playbook, top_signals=-1)


def test_explain_surrogate_signals_on_the_lab(lab: Case) -> None:
    out = explain_decisions(
        lab.snapshot, lab.projection, lab.decisions, lab.lost, lab.playbook, contributions="surrogate"
    )
    parsed = [parse_evidence(e) for e in out.get_column("evidence")]
    assert sum(bool(p.signals) for p in parsed) > 0.8 * len(parsed)
    assert all(p.comparables == [] for p in parsed)
    families = [len({s.feature.split("_")[0] for s in p.signals}) for p in parsed if p.signals]
    assert np.mean(families) > 1.5  # one feature per signal, not three windows of the same one


# ---- a book the lab did not generate: a B2C shop -------------------------------------------------

T0 = datetime(2025, 1, 6, tzinfo=UTC)


def shop_playbook() -> Playbook:
    return Playbook(
        name="Shop",
        horizon_days=56,
        objectives={
            "keep": Objective(name="Keep shoppers", outcome="lapse", sense="avoid", value="fixed", value_usd=60.0),
            "spend": Objective(name="Basket growth", outcome="order", value="amount"),
        },
        actions=[
            Action(
                id="coupon_push",
                name="Ten-percent coupon push",
                team="marketing",
                objective="keep",
                channel="push",
                cost_usd=1.0,
                cooldown_days=14,
            ),
            Action(
                id="loyalty_invite",
                name="Loyalty club invitation",
                team="marketing",
                objective="spend",
                channel="email",
                cost_usd=0.5,
                eligibility="orders_count_28d >= 1",
            ),
        ],
        contact_policy={"max_actions_per_window": 1, "window_days": 7},
        control_fraction=0.1,
        signal_roles={"usage": ["app_sessions"], "support": ["refund_requests"]},
    )


def shop_book(shoppers: int = 500, weeks: int = 30, seed: int = 4) -> tuple[Book, datetime]:
    """Weekly app sessions, orders and refund requests; coupons lower lapses, refunds raise them."""
    rng = np.random.default_rng(seed)
    ids = [f"shopper-{i:04d}" for i in range(shoppers)]
    engaged = rng.normal(size=shoppers)
    grumpy = rng.random(shoppers) < 0.3
    signals, touches, outcomes = [], [], []
    for week in range(weeks):
        ts = T0 + timedelta(days=7 * week)
        sessions = np.maximum(rng.poisson(np.exp(1.5 + 0.6 * engaged)), 0)
        orders = rng.poisson(np.exp(-0.5 + 0.5 * engaged))
        refunds = rng.poisson(np.where(grumpy, 1.2, 0.1))
        for i, account in enumerate(ids):
            signals.append((account, ts, "app_sessions", float(sessions[i])))
            signals.append((account, ts, "orders", float(orders[i])))
            signals.append((account, ts, "refund_requests", float(refunds[i])))
        if week % 2 == 0 and week < weeks - 2:
            draw = rng.random(shoppers)
            act = np.where(draw < 0.3, "coupon_push", np.where(draw < 0.5, "loyalty_invite", NO_ACTION))
            p = np.where(act == "coupon_push", 0.3, np.where(act == "loyalty_invite", 0.2, 0.5))
            lapse_p = 1 / (1 + np.exp(-(-2.2 + 1.5 * grumpy - 0.5 * engaged - 0.9 * (act == "coupon_push"))))
            lapsed = rng.random(shoppers) < lapse_p
            spend = rng.random(shoppers) < 0.3 + 0.15 * (act == "loyalty_invite")
            for i, account in enumerate(ids):
                touch_id = f"t{week}-{i}"
                touches.append((account, str(act[i]), ts + timedelta(hours=1), touch_id, float(p[i])))
                if lapsed[i]:
                    outcomes.append((account, ts + timedelta(days=10), "lapse", 1.0, touch_id))
                if spend[i]:
                    outcomes.append((account, ts + timedelta(days=5), "order", float(rng.gamma(2.0, 30.0)), touch_id))
    accounts = pl.DataFrame(
        {
            "account_id": ids,
            "segment": np.where(grumpy, "bargain", "regular").tolist(),
            "member_since": [T0 - timedelta(days=int(d)) for d in rng.integers(30, 900, shoppers)],
        },
        schema={"account_id": pl.String, "segment": pl.String, "member_since": pl.Datetime("us", "UTC")},
    )
    utc = pl.Datetime("us", "UTC")
    book = Book(
        accounts=accounts,
        signals=pl.DataFrame(
            signals, schema={"account_id": pl.String, "ts": utc, "name": pl.String, "value": pl.Float64}, orient="row"
        ),
        touches=pl.DataFrame(
            touches,
            schema={
                "account_id": pl.String,
                "action_id": pl.String,
                "ts": utc,
                "touch_id": pl.String,
                "propensity": pl.Float64,
            },
            orient="row",
        ),
        outcomes=pl.DataFrame(
            outcomes,
            schema={"account_id": pl.String, "ts": utc, "kind": pl.String, "value": pl.Float64, "touch_id": pl.String},
            orient="row",
        ),
    )
    return book, T0 + timedelta(days=7 * weeks)


def _explained(playbook: Playbook, book: Book, as_of: datetime, hours: float) -> Case:
    """A book of its own through the whole chain: history, effect model, decisions and their receipts."""
    # The generated outcomes are complete up to as_of: the app book decides until a month before it, and
    # its cancellations only follow decisions, so none after its last one is missing from the book.
    history = build_training_set(book, playbook, as_of=as_of, outcomes_until=as_of)
    model = EffectModel(playbook, **FAST).fit(history)
    snapshot = compute_features(book, as_of, playbook=playbook)
    previous = compute_features(book, as_of - timedelta(days=28), playbook=playbook)
    projection = model.project(snapshot)
    decisions, lost = make_decisions(snapshot, projection, playbook, book.touches, as_of, hours=hours)
    receipts = explain_decisions(
        snapshot,
        projection,
        decisions,
        lost,
        playbook,
        model=model,
        history=history,
        outcomes=book.outcomes,
        previous=previous,
    )
    return Case(playbook, snapshot, previous, history, model, projection, decisions, lost, receipts, book.outcomes)


@pytest.fixture(scope="module")
def shop() -> Case:
    return _explained(shop_playbook(), *shop_book(), hours=20.0)


def test_explain_a_b2c_book_in_its_own_words(shop: Case) -> None:
    lab_words = re.compile(r"seat|CSM|churn|renewal|ARR|health|exec|upsell", re.IGNORECASE)
    parsed = _parsed(shop)
    assert len(parsed) == shop.decisions.height
    for evidence, alternatives in parsed:
        parse_evidence(json.dumps(evidence))
        parse_alternatives(json.dumps(alternatives))
        assert [p["objective"] for p in evidence["projected"]] == ["keep", "spend"]  # type: ignore[attr-defined]
        text = receipt_text(evidence, alternatives, playbook=shop.playbook)
        assert not lab_words.search(text), text
    words = " ".join(s["text"] for e, _ in parsed for s in e["signals"])  # type: ignore[attr-defined]
    assert re.search(r"app sessions|orders|refund requests", words)
    summaries = " ".join(shop.receipts.get_column("summary").to_list())
    assert "Ten-percent coupon push" in summaries
    assert "lapse within 56 days: " in summaries


def test_explain_b2c_signals_find_what_drives_lapses(shop: Case) -> None:
    # Lapses are driven by grumpiness (refund requests): for the riskiest shoppers offered a coupon,
    # it is among the signals cited, whichever way contributions are computed.
    for method in ("tree", "surrogate"):
        out = explain_decisions(
            shop.snapshot,
            shop.projection,
            shop.decisions,
            shop.lost,
            shop.playbook,
            model=shop.model,
            contributions=method,  # type: ignore[arg-type]
        )
        risky = []
        for evidence in out.get_column("evidence"):
            parsed = parse_evidence(evidence)
            keep = next(p for p in parsed.projected if p.objective == "keep")
            if parsed.action_id == "coupon_push" and parsed.arm == "model" and keep.without is not None:
                risky.append((keep.without, parsed))
        risky.sort(key=lambda t: -t[0])
        top = [p for _, p in risky[:20]]
        assert top
        # The shop's segment marks the grumpy shoppers too: it is as right an answer as their refunds.
        cited = np.mean([any("refund" in s.feature or s.feature == "segment" for s in p.signals) for p in top])
        assert cited >= 0.7, method


def test_explain_b2c_comparables_and_changes(shop: Case) -> None:
    parsed = [parse_evidence(e) for e in shop.receipts.get_column("evidence")]
    with_comparables = [p for p in parsed if p.comparables]
    assert with_comparables
    for p in with_comparables:
        assert {c.action_id for c in p.comparables} == {p.action_id}
        assert all(
            re.fullmatch(
                r"(lapse|order) within 56 days(: none|: \$[\d,]+(\.\d\d)?)?"
                r"( \((credited to (another|no) touch|\$[\d,]+(\.\d\d)? of it credited to it)\))?",
                c.outcome,
            )
            for c in p.comparables
        )
    assert any(s.previous is not None for p in parsed for s in p.signals)


# ---- a consumer app's support book: a rolling gauge, a survey score and crash events -------------


def app_playbook() -> Playbook:
    return Playbook(
        name="App support",
        horizon_days=30,
        objectives={
            "keep": Objective(
                name="Keep subscriber", outcome="cancelled", sense="avoid", value="fixed", value_usd=120.0
            ),
        },
        actions=[
            Action(id="fix_email", name="Proactive fix email", team="support", objective="keep", channel="email"),
            Action(id="tutorial_push", name="Tutorial push", team="support", objective="keep", channel="push"),
        ],
        contact_policy={"max_actions_per_window": 1, "window_days": 14},
        control_fraction=0.1,
        signal_roles={"usage": ["app_opens_7d"], "support": ["crash_count"], "survey": ["nps_last"]},
    )


def app_book(users: int = 400, days: int = 150, seed: int = 5) -> tuple[Book, datetime]:
    """``app_opens_7d`` (a rolling 7-day count, reported daily: a gauge), ``nps_last`` (a survey score,
    answered now and then) and ``crash_count`` (rows only on days with crashes); few opens, a low score
    and crashes lead to cancellations, which a fix email lowers for the crashy."""
    rng = np.random.default_rng(seed)
    ids = [f"U{i:04d}" for i in range(users)]
    rate = rng.lognormal(0.6, 0.6, users)
    crashy = rng.random(users) < 0.4
    opens = rng.poisson(rate[:, None], (users, days))
    rolling = np.cumsum(opens, axis=1)
    rolling[:, 7:] -= rolling[:, :-7].copy()
    crashes = rng.poisson(np.where(crashy, 0.3, 0.02)[:, None], (users, days))
    surveyed = rng.random((users, days)) < 1 / 30
    score = np.clip(np.round(8.0 - 2.0 * crashy[:, None] + rng.normal(0, 1.2, (users, days))), 0, 10)
    at = [T0 + timedelta(days=d, hours=23) for d in range(days)]
    rows = [(ids[i], at[d], "app_opens_7d", float(rolling[i, d])) for i in range(users) for d in range(days)]
    rows += [(ids[i], at[d], "crash_count", float(crashes[i, d])) for i, d in zip(*np.nonzero(crashes), strict=True)]
    rows += [(ids[i], at[d], "nps_last", float(score[i, d])) for i, d in zip(*np.nonzero(surveyed), strict=True)]
    touches, outcomes, gone = [], [], np.full(users, days)
    for d in range(14, days - 30, 14):
        draw = rng.random(users)
        act = np.where(draw < 0.3, "fix_email", np.where(draw < 0.5, "tutorial_push", NO_ACTION))
        p = np.where(act == "fix_email", 0.3, np.where(act == "tutorial_push", 0.2, 0.5))
        logit = -3.0 + 1.2 * crashy - 0.6 * np.log1p(rolling[:, d - 1]) - 1.0 * (crashy & (act == "fix_email"))
        cancel = (rng.random(users) < 1 / (1 + np.exp(-logit))) & (gone > d)
        for i in np.flatnonzero(gone > d):
            touch_id = f"t{d}-{i}"
            touches.append((ids[i], str(act[i]), at[d] - timedelta(hours=12), touch_id, float(p[i])))
            if cancel[i]:
                gone[i] = d + 10
                outcomes.append((ids[i], at[d] + timedelta(days=10), "cancelled", 1.0, touch_id))
    utc = pl.Datetime("us", "UTC")
    signals = pl.DataFrame(
        rows, schema={"account_id": pl.String, "ts": utc, "name": pl.String, "value": pl.Float64}, orient="row"
    )
    ended = pl.DataFrame({"account_id": ids, "_end": [T0 + timedelta(days=int(g)) for g in gone]})
    signals = signals.join(ended, on="account_id").filter(pl.col("ts") < pl.col("_end")).drop("_end")
    book = Book(
        accounts=pl.DataFrame({"account_id": ids}),
        signals=signals,
        touches=pl.DataFrame(
            touches,
            schema={
                "account_id": pl.String,
                "action_id": pl.String,
                "ts": utc,
                "touch_id": pl.String,
                "propensity": pl.Float64,
            },
            orient="row",
        ),
        outcomes=pl.DataFrame(
            outcomes,
            schema={"account_id": pl.String, "ts": utc, "kind": pl.String, "value": pl.Float64, "touch_id": pl.String},
            orient="row",
        ),
    )
    return book, T0 + timedelta(days=days)


@pytest.fixture(scope="module")
def app() -> Case:
    return _explained(app_playbook(), *app_book(), hours=40.0)


def test_explain_never_sums_a_level_signal(app: Case) -> None:
    # A rolling 7-day count read daily and a survey score are levels: their window totals ("app opens 7d
    # 428 in total over 28 days", "nps last 3 in total over 90 days") add up to no quantity.
    for method in ("tree", "surrogate"):
        out = explain_decisions(
            app.snapshot,
            app.projection,
            app.decisions,
            app.lost,
            app.playbook,
            model=app.model,
            previous=app.previous,
            contributions=method,  # type: ignore[arg-type]
        )
        signals = [s for e in out.get_column("evidence") for s in json.loads(e)["signals"]]
        cited = {s["feature"] for s in signals}
        assert any(f.startswith(("app_opens_7d_", "nps_last_")) for f in cited), method
        assert not [f for f in cited if re.fullmatch(r"(app_opens_7d|nps_last)_sum_\d+d", f)], method
        texts = [s["text"] for s in signals]
        assert not [t for t in texts if t.startswith(("app opens 7d", "nps last")) and "in total" in t], method
        assert all(
            re.fullmatch(r"(app opens 7d|nps last): \d+ readings? in \d+ days.*", t)
            for t in texts
            if re.match(r"(app opens 7d|nps last): \d", t)
        ), method


def lessons_book(users: int = 300, days: int = 150, seed: int = 7) -> tuple[Book, datetime]:
    """``lessons_done`` (lessons per week, reported weekly: a count, declared), ``nps`` (answered once, 4 to 5
    months before the end) and ``streak`` (a daily level); few lessons and a low score lead to cancellations."""
    rng = np.random.default_rng(seed)
    ids = [f"L{i:04d}" for i in range(users)]
    rate = rng.lognormal(-0.5, 1.0, users)
    rows: list[tuple[str, datetime, str, float]] = []
    for week in range(days // 7):
        at = T0 + timedelta(days=7 * week + 6, hours=23)
        rows += [(a, at, "lessons_done", float(n)) for a, n in zip(ids, rng.poisson(rate), strict=True)]
    answered, score = rng.integers(0, 20, users), rng.integers(0, 11, users)
    rows += [(a, T0 + timedelta(days=int(d)), "nps", float(n)) for a, d, n in zip(ids, answered, score, strict=True)]
    for d in range(days):
        rows += [(a, T0 + timedelta(days=d, hours=22), "streak", float(d % 9)) for a in ids]
    touches, outcomes = [], []
    for d in range(14, days - 30, 14):
        act = np.where(rng.random(users) < 0.4, "nudge", NO_ACTION)
        logit = -2.0 - 1.5 * rate + 0.4 * (5 - score) - 0.8 * (act == "nudge")
        cancel = rng.random(users) < 1 / (1 + np.exp(-logit))
        for i in range(users):
            touch_id = f"t{d}-{i}"
            touches.append((ids[i], str(act[i]), T0 + timedelta(days=d), touch_id, 0.4 if act[i] == "nudge" else 0.6))
            if cancel[i]:
                outcomes.append((ids[i], T0 + timedelta(days=d + 10), "cancelled", 1.0, touch_id))
    utc = pl.Datetime("us", "UTC")
    book = Book(
        accounts=pl.DataFrame({"account_id": ids}),
        signals=pl.DataFrame(
            rows, schema={"account_id": pl.String, "ts": utc, "name": pl.String, "value": pl.Float64}, orient="row"
        ),
        touches=pl.DataFrame(
            touches,
            schema={
                "account_id": pl.String,
                "action_id": pl.String,
                "ts": utc,
                "touch_id": pl.String,
                "propensity": pl.Float64,
            },
            orient="row",
        ),
        outcomes=pl.DataFrame(
            outcomes,
            schema={"account_id": pl.String, "ts": utc, "kind": pl.String, "value": pl.Float64, "touch_id": pl.String},
            orient="row",
        ),
    )
    return book, T0 + timedelta(days=days)


def lessons_playbook() -> Playbook:
    return Playbook(
        name="Lessons",
        horizon_days=30,
        objectives={
            "keep": Objective(name="Keep learner", outcome="cancelled", sense="avoid", value="fixed", value_usd=60.0)
        },
        actions=[Action(id="nudge", name="Lesson nudge", team="growth", objective="keep", channel="push")],
        contact_policy={"max_actions_per_window": 1, "window_days": 14},
        control_fraction=0.0,
        signal_roles={"usage": ["lessons_done", "streak"], "survey": ["nps"]},
        signal_kinds={"count": ["lessons_done"], "level": ["streak"]},
    )


@pytest.fixture(scope="module")
def lessons() -> Case:
    return _explained(lessons_playbook(), *lessons_book(), hours=40.0)


@pytest.mark.parametrize("method", ["tree", "surrogate"])
def test_explain_cites_a_count_signal_by_its_total_and_an_old_reading_with_its_age(lessons: Case, method: str) -> None:
    """One lesson in four weekly reports read "lessons done 0.25 on average over 28 days"; an NPS answer of
    four months ago read "nps 7 (latest), unchanged"."""
    out = explain_decisions(
        lessons.snapshot,
        lessons.projection,
        lessons.decisions,
        lessons.lost,
        lessons.playbook,
        model=lessons.model,
        previous=lessons.previous,
        contributions=method,  # type: ignore[arg-type]
    )
    snapshot = lessons.snapshot.rows_by_key("account_id", named=True, unique=True)
    cited = [
        (account_id, s)
        for account_id, evidence in out.select("account_id", "evidence").iter_rows()
        for s in json.loads(evidence)["signals"]
    ]
    lessons_cited = [s for _, s in cited if s["feature"].startswith("lessons_done_")]
    assert lessons_cited, method
    assert not [s for s in lessons_cited if "_mean_" in s["feature"] or "on average" in s["text"]], method
    totals = [s for s in lessons_cited if "_sum_" in s["feature"]]
    assert totals, method
    for s in totals:
        window = s["feature"].rsplit("_", 1)[1].removesuffix("d")
        assert s["text"].startswith(f"lessons done {s['value']:.0f} in total over {window} days"), s
    for s in lessons_cited:
        if "_count_" in s["feature"]:  # the rows are weekly reports, not lessons
            assert re.fullmatch(r"lessons done: \d+ reports? in \d+ days.*", s["text"]), s
    ages = [(snapshot[a]["nps_days_since_last"], s["text"]) for a, s in cited if s["feature"] == "nps_last"]
    assert ages, method
    for age, text in ages:
        assert age > 120
        assert re.fullmatch(rf"nps \d+ \(latest, {age:.0f} days ago\)(, unchanged)?", text), text
    # A daily reading of the day before is the ordinary case: no age.
    streaks = [s["text"] for _, s in cited if s["feature"] == "streak_last"]
    assert all(re.fullmatch(r"streak \d+ \(latest\)(, (unchanged|(up|down) from \d+))?", t) for t in streaks), streaks


def test_explain_cites_no_change_of_0_percent(app: Case) -> None:
    # "support signals up 0% over 90 days" says nothing: a trend that reads 0% is not a driver's phrase.
    for method in ("tree", "surrogate"):
        out = explain_decisions(
            app.snapshot,
            app.projection,
            app.decisions,
            app.lost,
            app.playbook,
            model=app.model,
            contributions=method,  # type: ignore[arg-type]
        )
        parsed = [json.loads(e) for e in out.get_column("evidence")]
        texts = [s["text"] for p in parsed for s in p["signals"]]
        assert texts
        assert not [t for t in texts if re.search(r"\b(up|down) 0% (over|on)", t)], method
        # The family of a flat trend gives way to another feature or family: accounts keep their three signals.
        assert np.mean([len(p["signals"]) == 3 for p in parsed]) > 0.9, method


def test_explain_an_outcome_named_by_a_verb_reads_as_a_label(app: Case) -> None:
    # "chance of cancelled 3.2%" and "no cancelled within 30 days" do not read; the kind leads as a label.
    parsed = _parsed(app)
    summaries = [str(e["summary"]) for e, _ in parsed]
    assert any(" — cancelled within 30 days: " in s and s.split(": ", 1)[1] for s in summaries)
    assert not [s for s in summaries if "chance of" in s]
    headline = re.compile(r"cancelled within 30 days: \d+(\.\d)?% → \d+(\.\d)?% chance \(\d+(\.\d)?% to \d+(\.\d)?%\)")
    assert all(headline.search(s) for s in summaries if "within 30 days" in s)
    outcomes = {c["outcome"] for e, _ in parsed for c in e["comparables"]}  # type: ignore[attr-defined]
    assert "cancelled within 30 days: none" in outcomes
    assert not [o for o in outcomes if o.startswith("no ")]
    texts = [s["text"] for e, _ in parsed for s in e["signals"]]  # type: ignore[attr-defined]
    assert not [t for t in texts if t.startswith(("last nps", "last support team", "last crash"))]
    for evidence, alternatives in parsed:
        text = receipt_text(evidence, alternatives, playbook=app.playbook)
        assert "chance of" not in text
        assert "  - Keep subscriber (cancelled): " in text


def test_explain_docs_example_is_a_valid_receipt_that_replays_to_its_text() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "evidence.md").read_text(encoding="utf-8")
    evidence_json, alternatives_json = (block.split("```")[0] for block in doc.split("```json\n")[1:3])
    shown = doc.split("```text\n")[1].split("```")[0].rstrip("\n")
    parse_evidence(evidence_json)
    parse_alternatives(alternatives_json)
    text = receipt_text(json.loads(evidence_json), json.loads(alternatives_json), playbook=load_playbook())
    assert text == shown


def test_explain_does_not_depend_on_the_order_of_the_runner_ups(lab: Case) -> None:
    decisions = lab.decisions.head(40)
    lost = lab.lost.join(decisions.select("account_id"), on="account_id", how="semi")
    grouped = explain_decisions(lab.snapshot, lab.projection, decisions, lost, lab.playbook, top_signals=0)
    shuffled = explain_decisions(
        lab.snapshot,
        lab.projection,
        decisions,
        lost.sample(fraction=1.0, shuffle=True, seed=3),
        lab.playbook,
        top_signals=0,
    )
    for a, b in zip(grouped.iter_rows(named=True), shuffled.iter_rows(named=True), strict=True):
        assert a["evidence"] == b["evidence"]
        values = [alt["value_usd"] for alt in json.loads(a["alternatives"])]
        assert values == [alt["value_usd"] for alt in json.loads(b["alternatives"])]


def test_flag_columns_are_the_number_columns_of_zeros_and_ones() -> None:
    from nextmove.decide.explain import _flag_columns

    snapshot = pl.DataFrame(
        {
            "newbie": [0, 1, None],
            "share": [0.0, 0.5, 1.0],
            "empty": pl.Series([None, None, None], dtype=pl.Float64),
            "plan": ["a", "b", "c"],
            "ones": [1.0, 1.0, 1.0],
        }
    )
    assert _flag_columns(snapshot, ["newbie", "share", "empty", "plan", "ones", "absent"]) == {"newbie", "ones"}


def test_explain_control_whose_default_is_blocked_says_so(lab: Case) -> None:
    """A control account gets the lifecycle default; when a rule blocks it, nothing is done and the receipt says why."""
    default = lab.playbook.actions[0].id
    control = lab.decisions.head(4).with_columns(
        pl.lit(NO_ACTION).alias("action_id"),
        pl.lit(None, pl.String).alias("variant"),
        pl.lit("control").alias("arm"),
        pl.lit(1.0).alias("propensity"),
        pl.lit(default).alias("default_action_id"),
        pl.lit(0.0).alias("value_usd"),
        pl.lit(0.0).alias("value_low_usd"),
        pl.lit(0.0).alias("value_high_usd"),
    )
    ids = control.select("account_id")
    lost = lab.lost.join(ids, on="account_id", how="semi").filter(pl.col("action_id") != default)
    blocked = ids.with_columns(
        pl.lit(default).alias("action_id"),
        pl.lit(None, pl.String).alias("variant"),
        pl.lit("cooldown").alias("why"),
        pl.lit("cooldown: done 10 days ago, cooldown 30 days").alias("reason"),
    )
    out = explain_decisions(lab.snapshot, lab.projection, control, pl.concat([lost, blocked]), lab.playbook)
    name = next(a.name for a in lab.playbook.actions if a.id == default)
    for text in out.get_column("evidence"):
        assert not re.search(r"-0\.0[,}]", text), text  # a rounded -0.0 reads 0.0
        parsed = parse_evidence(text)
        assert parsed.default_why == (
            f"Control group: the lifecycle default, {name}, is not allowed now "
            "(cooldown: done 10 days ago, cooldown 30 days), so nothing is done."
        )
        assert parsed.summary.startswith(f"Control group: nothing is done, since the lifecycle default, {name}, is not")


def test_explain_control_whose_default_did_not_fit_names_the_resource(lab: Case) -> None:
    """A control account whose default found no capacity left: the receipt says it did not fit, and why."""
    default = lab.playbook.actions[0].id
    control = lab.decisions.head(4).with_columns(
        pl.lit(NO_ACTION).alias("action_id"),
        pl.lit(None, pl.String).alias("variant"),
        pl.lit("control").alias("arm"),
        pl.lit(1.0).alias("propensity"),
        pl.lit(default).alias("default_action_id"),
        pl.lit(0.0).alias("value_usd"),
        pl.lit(0.0).alias("value_low_usd"),
        pl.lit(0.0).alias("value_high_usd"),
    )
    ids = control.select("account_id")
    lost = lab.lost.join(ids, on="account_id", how="semi").filter(pl.col("action_id") != default)
    short = ids.with_columns(
        pl.lit(default).alias("action_id"),
        pl.lit(None, pl.String).alias("variant"),
        pl.lit("capacity").alias("why"),
        pl.lit("not enough of Ana's hours is left for it").alias("reason"),
    )
    out = explain_decisions(lab.snapshot, lab.projection, control, pl.concat([lost, short]), lab.playbook)
    name = next(a.name for a in lab.playbook.actions if a.id == default)
    for text in out.get_column("evidence"):
        parsed = parse_evidence(text)
        assert parsed.default_why == (
            f"Control group: the lifecycle default, {name}, did not fit "
            "(not enough of Ana's hours is left for it), so nothing is done."
        )
        assert parsed.summary.startswith(
            f"Control group: nothing is done, since the lifecycle default, {name}, did not fit the capacity left"
        )


def test_explain_comparables_window_is_the_training_labels_window() -> None:
    """Outcomes of dates: the decision's own day counts and the day the horizon ends does not, as in the labels."""
    from nextmove.decide.explain import _with_window

    day = datetime(2025, 3, 1, tzinfo=UTC)
    found = pl.DataFrame({"comparable_id": ["c"], "decision_ts": [day]})
    outcomes = pl.DataFrame(
        {
            "account_id": ["c", "c"],
            "ts": [day, day + timedelta(days=90)],
            "kind": ["expansion", "expansion"],
            "value": [10.0, 100.0],
        }
    )
    dated = _with_window(found, outcomes, "expansion", 90, dated=True)
    timed = _with_window(found, outcomes, "expansion", 90, dated=False)
    assert dated.select("_n", "_sum").row(0) == (1, 10.0)
    assert timed.select("_n", "_sum").row(0) == (1, 100.0)


def test_explain_catalog_words_the_columns_the_vocabulary_gives_the_playbooks_names() -> None:
    """Names sanitising as the book's others read the columns the vocabulary gives their exact spelling."""
    from nextmove.decide.explain import _Catalog

    playbook = parse_playbook(
        '[objectives.keep]\noutcome = "Cancel"\nsense = "avoid"\nvalue = "arr"\n'
        '[[actions]]\nid = "Call"\nname = "Phone call"\nteam = "CS"\nobjective = "keep"\n'
        '[[actions]]\nid = "mail"\nname = "Mail"\nteam = "cs"\nobjective = "keep"\n'
        '[signal_roles]\nengagement = ["Gym Visits"]\n'
    )
    vocab = FeatureVocabulary.build(
        accounts_schema={},
        signal_names=["gym_visits", "Gym Visits"],
        action_ids=["call"],
        outcome_kinds=["cancel"],
        playbook=playbook,
    )
    catalog = _Catalog.of(playbook, vocab)
    assert [s.label for s in catalog.specs] == ["y_cancel_2"]
    assert catalog.stems.outcomes["cancel_2"] == "Cancel"
    assert catalog.stems.touches["call_2"] == "Phone call"
    assert catalog.stems.signals["gym_visits_2"] == "Gym Visits"
    assert catalog.signal_kinds == {"gym_visits_2": "count"}
    assert (catalog.stems.touches["team_cs_2"], catalog.stems.touches["team_cs"]) == ("CS", "cs")
    labelled = {*catalog.stems.outcomes, *catalog.stems.touches, *catalog.stems.signals}
    assert not {"cancel", "call", "gym_visits"} & labelled  # the book's other names' stems


def test_explain_words_a_signal_an_action_and_an_outcome_sharing_a_stem_by_their_own_names() -> None:
    """One label map for every family let the last name written win: a signal cited with an action's name."""
    from nextmove.decide.explain import _Catalog
    from nextmove.decide.phrases import feature_phrase

    playbook = parse_playbook(
        '[objectives.keep]\noutcome = "Logins"\nsense = "avoid"\nvalue = "arr"\n'
        '[[actions]]\nid = "schulung"\nname = "Schulung vor Ort (Anwendertraining)"\nteam = "cs"\nobjective = "keep"\n'
        '[signal_roles]\nengagement = ["Schulung", "logins"]\n'
    )
    vocab = FeatureVocabulary.build(
        accounts_schema={}, signal_names=["Schulung", "logins"], outcome_kinds=["Logins"], playbook=playbook
    )
    assert (vocab.signals["Schulung"], vocab.actions["schulung"]) == ("schulung", "schulung")
    assert (vocab.signals["logins"], vocab.outcome_kinds["Logins"]) == ("logins", "logins")
    names = _Catalog.of(playbook, vocab).stems
    row = {"schulung_mean_28d": 8.5, "logins_sum_28d": 54.0, "touch_schulung_days_since": 3.0}
    assert feature_phrase("schulung_mean_28d", row, names=names) == "Schulung 8.5 on average over 28 days"
    assert feature_phrase("logins_sum_28d", row, names=names) == "logins 54 in total over 28 days"
    assert feature_phrase("touch_schulung_days_since", row, names=names) == (
        "last Schulung vor Ort (Anwendertraining) 3 days ago"
    )
    assert feature_phrase("outcome_logins_days_since", {"outcome_logins_days_since": 9.0}, names=names) == (
        "Logins: last seen 9 days ago"
    )


# ---- actions with variants ---------------------------------------------------------------------

VARIANTS = """
control_fraction = {control}
exploration = {{ method = "none" }}

[objectives.win]
outcome = "win"
value = "fixed"
value_usd = 100

[[actions]]
id = "call"
name = "Call"
team = "cs"
objective = "win"
cost_usd = 5

[[actions]]
id = "email"
name = "Email"
team = "marketing"
channel = "email"
objective = "win"
cost_usd = 1
default_for_stages = ["trial"]
variants = [{{ id = "morning" }}, {{ id = "evening", channel = "sms" }}]

[contact_policy]
max_actions_per_window = 5
caps = [{{ team = "marketing", channel = "email", max_touches = 1, window_days = 14 }}]
"""


def variants_playbook(control: float = 0.0) -> Playbook:
    """Email has two variants, morning (the first: the lifecycle default's) and evening (by sms)."""
    return parse_playbook(VARIANTS.format(control=control))


def _evening_rarely_taken() -> tuple[Playbook, pl.DataFrame, EffectProjection]:
    """A model whose history almost never took ``email:evening`` (flagged), and the projection of 3 accounts."""
    rng = np.random.default_rng(0)
    accounts, periods = 400, 6
    n = accounts * periods
    account = np.repeat(np.arange(accounts), periods)
    arm = rng.choice(["none", "call", "email:morning", "email:evening"], size=n, p=[0.5, 0.25, 0.24, 0.01])
    action = np.array([a.partition(":")[0] for a in arm])
    won = (rng.random(n) < np.where(action == "call", 0.35, 0.2)).astype(np.int8)
    start = datetime(2025, 1, 6, tzinfo=UTC)
    history = pl.DataFrame(
        {
            "account_id": [f"acc{i:04d}" for i in account],
            "decision_ts": [start + timedelta(days=14 * int(p)) for p in np.tile(np.arange(periods), accounts)],
            "logged": [True] * n,
            "action_id": action.tolist(),
            "variant": [a.partition(":")[2] or None for a in arm],
            "propensity": np.select([arm == "none", arm == "call", arm == "email:morning"], [0.5, 0.25, 0.24], 0.01),
            "usage": rng.normal(size=accounts)[account] + 0.3 * rng.normal(size=n),
            "y_win": won,
            "y_win_value": won.astype(float),
            "censored": [False] * n,
        }
    )
    playbook = variants_playbook()
    model = EffectModel(playbook, **FAST).fit(history)
    snapshot = history.group_by("account_id", maintain_order=True).last().select("account_id", "usage").head(3)
    projection = model.project(snapshot)
    assert projection.flagged_actions == ("email:evening",)
    return playbook, snapshot, projection


def test_explain_pooled_note_follows_the_flagged_variant_arm() -> None:
    """A variant the history rarely took is its own flagged arm (``email:evening``): its receipt says it is pooled."""
    playbook, snapshot, projection = _evening_rarely_taken()
    decisions = pl.DataFrame(
        {
            "account_id": snapshot.get_column("account_id"),
            "action_id": ["email", "email", "call"],
            "variant": ["evening", "morning", None],
            "arm": ["model"] * 3,
            "propensity": [1.0] * 3,
            "model_action_id": ["email", "email", "call"],
            "default_action_id": [NO_ACTION] * 3,
            "value_usd": [10.0] * 3,
            "value_low_usd": [0.0] * 3,
            "value_high_usd": [20.0] * 3,
        }
    )
    lost = pl.DataFrame(schema=dict.fromkeys(["account_id", "action_id", "variant", "why", "reason"], pl.String))
    out = explain_decisions(snapshot, projection, decisions, lost, playbook, top_signals=0)
    pooled = ["too few past touches to learn its own effect" in s for s in out.get_column("summary")]
    assert pooled == [True, False, False]


def test_receipts_flag_a_pooled_action_chosen_or_runner_up_in_fields_and_words() -> None:
    """An action new to the playbook had only the run's note: its runner-up entry looked like any other's."""
    playbook, snapshot, projection = _evening_rarely_taken()
    ids = snapshot.get_column("account_id").to_list()
    decisions = pl.DataFrame(
        {
            "account_id": ids,
            "action_id": ["email", "call", "call"],
            "variant": ["evening", None, None],
            "arm": ["model"] * 3,
            "propensity": [1.0] * 3,
            "model_action_id": ["email", "call", "call"],
            "default_action_id": [NO_ACTION] * 3,
            "value_usd": [10.0] * 3,
            "value_low_usd": [0.0] * 3,
            "value_high_usd": [20.0] * 3,
        }
    )
    lost = pl.DataFrame(
        {
            "account_id": [ids[0], ids[1], ids[1]],
            "action_id": ["call", "email", "email"],
            "variant": [None, "evening", "morning"],
            "why": ["lower_value"] * 3,
            "reason": [""] * 3,
        }
    )
    out = explain_decisions(snapshot, projection, decisions, lost, playbook, top_signals=0)
    evidence = [json.loads(e) for e in out.get_column("evidence")]
    alternatives = [json.loads(a) for a in out.get_column("alternatives")]
    assert [e["pooled"] for e in evidence] == [True, False, False]
    assert [(a["action_id"], a["variant"], a["pooled"]) for a in alternatives[0]] == [("call", None, False)]
    assert {(a["variant"], a["pooled"]) for a in alternatives[1]} == {("evening", True), ("morning", False)}
    for e, alts in zip(evidence, alternatives, strict=True):
        assert parse_evidence(json.dumps(e)).pooled is e["pooled"]
        assert [a.pooled for a in parse_alternatives(json.dumps(alts))] == [a["pooled"] for a in alts]
    first, second = (receipt_text(evidence[k], alternatives[k], playbook=playbook) for k in (0, 1))
    value_line = next(line for line in first.splitlines() if line.startswith("Value:"))
    assert value_line.endswith(", the pooled effect of all actions: too little history of its own"), value_line
    (evening,) = [line for line in second.splitlines() if "(evening)" in line]
    assert "the pooled effect of all actions: too little history of its own; lost:" in evening
    (morning,) = [line for line in second.splitlines() if "(morning)" in line]
    assert "pooled" not in morning


def flat_projection(ids: list[str], values: dict[str, float]) -> EffectProjection:
    """Every account worth ``values[arm]`` for each arm (win: 20% without, +value/100 with), none flagged."""
    arms = [NO_ACTION, *values]
    worth = {NO_ACTION: 0.0, **values}
    value_rows = pl.DataFrame(
        [(a, arm, worth[arm], worth[arm] - 5.0, worth[arm] + 5.0, 0.0, False) for a in ids for arm in arms],
        schema=["account_id", "action_id", "value_usd", "low", "high", "cost_usd", "pooled"],
        orient="row",
    )
    effects = pl.DataFrame(
        [
            (
                a,
                arm,
                "win",
                "win",
                "probability",
                0.2,
                worth[arm] / 100,
                worth[arm] / 100 - 0.05,
                worth[arm] / 100 + 0.05,
            )
            for a in ids
            for arm in arms
        ],
        schema=["account_id", "action_id", "objective", "outcome", "unit", "baseline", "effect", "low", "high"],
        orient="row",
    ).with_columns((pl.col("effect") * 100).alias("effect_usd"), pl.lit(False).alias("pooled"))
    return EffectProjection(level=0.9, effects=effects, values=value_rows, flagged_actions=())


def control_decisions(ids: list[str], action: list[str], variant: list[str | None]) -> pl.DataFrame:
    """Control accounts of the variants playbook, whose lifecycle default is email."""
    n = len(ids)
    return pl.DataFrame(
        {
            "account_id": ids,
            "action_id": action,
            "variant": variant,
            "arm": ["control"] * n,
            "propensity": [1.0] * n,
            "model_action_id": ["call"] * n,
            "default_action_id": ["email"] * n,
            "value_usd": [0.0] * n,
            "value_low_usd": [0.0] * n,
            "value_high_usd": [0.0] * n,
        },
        schema_overrides={"variant": pl.String},
    )


def test_explain_control_default_why_and_summary_say_the_same() -> None:
    """Whether a control account's default was followed, did not fit or was not allowed: one test, both texts.

    ``d`` has no row of its default in ``lost``: nothing is done, so the default is not followed
    (``default_why`` used to say it was, while the summary said it was not allowed).
    """
    ids = ["a", "b", "c", "d"]
    projection = flat_projection(ids, {"call": 30.0, "email:morning": 20.0, "email:evening": 10.0})
    decisions = control_decisions(ids, ["email", "none", "none", "none"], ["morning", None, None, None])
    lost = pl.DataFrame(
        [
            ("a", "call", None, "lower_value", ""),
            ("a", "email", "evening", "lower_value", ""),
            ("b", "email", "morning", "capacity", "not enough of the run's limit of Email is left for it"),
            ("c", "email", "morning", "cooldown", "cooldown: done 3 days ago, cooldown 7 days"),
            ("d", "call", None, "rule", ""),
        ],
        schema=["account_id", "action_id", "variant", "why", "reason"],
        orient="row",
    )
    snapshot = pl.DataFrame({"account_id": ids})
    out = explain_decisions(snapshot, projection, decisions, lost, variants_playbook(), top_signals=0)
    said = {
        account: (parse_evidence(evidence).default_why, parse_evidence(evidence).summary)
        for account, evidence in out.select("account_id", "evidence").iter_rows()
    }
    phrases = {
        "a": ("follows the lifecycle playbook", "Email (morning), as the lifecycle playbook says"),
        "b": ("did not fit (not enough of", "did not fit the capacity left"),
        "c": ("is not allowed now (cooldown: done 3 days ago", "is not allowed now"),
        "d": ("is not allowed now, so nothing is done", "is not allowed now"),
    }
    for account, (why_phrase, summary_phrase) in phrases.items():
        default_why, summary = said[account]
        assert why_phrase in default_why, (account, default_why)
        assert summary_phrase in summary, (account, summary)
    assert said["d"][0] == "Control group: the lifecycle default, Email, is not allowed now, so nothing is done."


def test_explain_control_summary_says_the_model_chooses_the_default_only_when_it_does() -> None:
    """Nothing done for a control account whose default is not allowed, nor the model's pick: no "choose too".

    The summary read "…the lifecycle default, Email, is not allowed now, which the model would choose too."
    while ``model_action_id`` was none: the clause followed what the account got (nothing), not the default.
    """
    ids = ["a", "b", "c", "d"]
    projection = flat_projection(ids, {"call": 30.0, "email:morning": 20.0, "email:evening": 10.0})
    decisions = control_decisions(ids, ["none", "none", "email", "email"], [None, None, "morning", "morning"])
    decisions = decisions.with_columns(pl.Series("model_action_id", ["none", "call", "email", "none"]))
    lost = pl.DataFrame(
        [(a, "email", "morning", "cooldown", "cooldown: done 3 days ago, cooldown 7 days") for a in ("a", "b")],
        schema=["account_id", "action_id", "variant", "why", "reason"],
        orient="row",
    )
    out = explain_decisions(pl.DataFrame({"account_id": ids}), projection, decisions, lost, variants_playbook())
    summary = dict(out.select("account_id", "summary").iter_rows())
    not_allowed = "Control group: nothing is done, since the lifecycle default, Email, is not allowed now"
    assert summary["a"] == f"{not_allowed}; the model would also do nothing."
    assert summary["b"] == f"{not_allowed}; the model would choose Call."
    assert summary["c"].startswith("Control group: Email (morning), as the lifecycle playbook says — ")
    assert summary["c"].endswith(", which the model would choose too.")
    assert summary["d"].endswith("; the model would do nothing.")
    assert all("choose too" not in s for a, s in summary.items() if a != "c")


def test_explain_control_receipt_projects_what_the_account_gets() -> None:
    """A control account's value is its default's: its projection, headline and text are the default's too.

    The projection followed ``model_action_id``: a control account given Email (worth $20) whose model
    would do nothing read "Value: $20" over "Projected over the horizon if nothing is done: … worth $0".
    """
    ids = ["a", "b", "c"]
    projection = flat_projection(ids, {"call": 30.0, "email:morning": 20.0, "email:evening": 10.0})
    decisions = control_decisions(ids, ["email", "email", "none"], ["morning", "morning", None]).with_columns(
        pl.Series("model_action_id", [NO_ACTION, "call", "call"]),
        pl.Series("value_usd", [20.0, 20.0, 0.0]),
        pl.Series("value_low_usd", [15.0, 15.0, 0.0]),
        pl.Series("value_high_usd", [25.0, 25.0, 0.0]),
    )
    held = "held back: this account is in the control cohort (10% of accounts), which follows the lifecycle default"
    lost = pl.DataFrame(
        [
            ("a", "call", None, "capacity", "worth more, but not enough of o's hours is left for it"),
            ("b", "call", None, "held_back", held),
            ("c", "call", None, "held_back", held),
            ("c", "email", "morning", "cooldown", "cooldown: done 3 days ago, cooldown 7 days"),
        ],
        schema=["account_id", "action_id", "variant", "why", "reason"],
        orient="row",
    )
    snapshot = pl.DataFrame({"account_id": ids})
    playbook = variants_playbook()
    out = explain_decisions(snapshot, projection, decisions, lost, playbook, top_signals=0)
    receipts = {a: (json.loads(e), json.loads(alts)) for a, e, alts in out.select(pl.exclude("summary")).iter_rows()}
    for account in ("a", "b"):
        evidence, alternatives = receipts[account]
        (win,) = evidence["projected"]
        # Email's projection (20% → 40%, $20), not Call's (the model's, $30) nor nothing's ($0).
        assert (win["without"], win["with"], win["effect_usd"]) == (0.2, 0.4, 20.0)
        assert win["effect_usd"] == evidence["value_usd"]  # its value, as the flat projection charges nothing
        assert evidence["summary"].startswith(
            "Control group: Email (morning), as the lifecycle playbook says — win within 90 days: 20% → 40% chance"
        )
        text = receipt_text(evidence, alternatives, playbook=playbook).splitlines()
        assert "Value: $20 (from $15 to $25)" in text
        assert "Projected over the horizon with Email:" in text
        assert "  - win: 20% chance without, 40% with (35% to 45%); worth $20" in text
    assert receipts["a"][0]["summary"].endswith("; the model would do nothing.")
    # What the model would choose stays in sight: named in the summary, and its runner-up row has its projection.
    evidence, alternatives = receipts["b"]
    assert evidence["summary"].endswith("; the model would choose Call.")
    assert [(a["action_id"], a["why"], a["projected"][0]["effect_usd"]) for a in alternatives] == [
        ("call", "held_back", 30.0)
    ]
    # Nothing done: nothing projected, as its value of $0.
    evidence, alternatives = receipts["c"]
    assert [p["effect_usd"] for p in evidence["projected"]] == [0.0]
    assert "Projected over the horizon if nothing is done:" in receipt_text(evidence, alternatives)


def test_explain_control_default_with_variants_gives_the_reason_of_the_variant_tried() -> None:
    """A control account tries its default's first variant: its receipt gives that variant's reason.

    Email's morning variant (by email) is capped; its evening variant (by sms) is allowed and worth
    more, so it lost to the control draw ("held back"). The receipt said the default was not allowed
    because it was held back: the evening row's reason, not the morning one's, which is why.
    """
    playbook = variants_playbook(control=0.99)
    ids = [f"c{i}" for i in range(6)]
    as_of = datetime(2025, 6, 2, tzinfo=UTC)
    features = pl.DataFrame({"account_id": ids})
    touches = pl.DataFrame(
        {"account_id": ids, "action_id": ["email"] * len(ids), "ts": [as_of - timedelta(days=10)] * len(ids)}
    )
    rules = check_rules(features, touches, playbook, as_of, {})
    projection = flat_projection(ids, {"call": 30.0, "email:morning": 10.0, "email:evening": 20.0})
    decisions = decide(rules, projection.values, playbook, owners=["o"] * len(ids), stages=["trial"] * len(ids))
    frame = decisions.frame()
    lost = decisions.lost(playbook)
    control = frame.filter(pl.col("arm") == "control")
    assert control.height > 0
    assert set(control.get_column("action_id")) == {NO_ACTION}
    capped = lost.filter(pl.col("variant") == "morning").get_column("reason").unique().to_list()
    assert capped == ["contact cap: 1 marketing email touches in 14 days (max 1)"]
    out = explain_decisions(features, projection, frame, lost, playbook, top_signals=0)
    for evidence in out.join(control.select("account_id"), on="account_id", how="semi").get_column("evidence"):
        parsed = parse_evidence(evidence)
        assert parsed.default_why == (
            "Control group: the lifecycle default, Email, is not allowed now "
            "(contact cap: 1 marketing email touches in 14 days (max 1)), so nothing is done."
        )
        assert parsed.summary.startswith("Control group: nothing is done, since the lifecycle default, Email, is not")


def test_explain_alternatives_charge_a_variant_valued_from_its_action_its_own_cost() -> None:
    """A variant without an arm of its own is worth its action's value with its own cost, as decide values it.

    Email costs $1; its evening variant $4. The projection has only email's arm, charged $1: the
    receipt showed evening at email's $10, while the decision valued it at $7.
    """
    playbook = parse_playbook(
        VARIANTS.format(control=0.0).replace(
            '{ id = "evening", channel = "sms" }', '{ id = "evening", channel = "sms", cost_usd = 4 }'
        )
    )
    ids = [f"c{i}" for i in range(4)]
    as_of = datetime(2025, 6, 2, tzinfo=UTC)
    features = pl.DataFrame({"account_id": ids})
    rules = check_rules(
        features,
        pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")}),
        playbook,
        as_of,
        {},
    )
    projection = flat_projection(ids, {"call": 30.0, "email": 10.0})
    costs = {NO_ACTION: 0.0, "call": 5.0, "email": 1.0}
    projection = EffectProjection(
        projection.level,
        projection.effects,
        projection.values.with_columns(
            pl.col("action_id").replace_strict(costs, return_dtype=pl.Float64).alias("cost_usd")
        ),
        projection.flagged_actions,
    )
    decisions = decide(rules, projection.values, playbook, owners=["o"] * len(ids), stages=["trial"] * len(ids))
    frame = decisions.frame()
    assert set(frame.get_column("action_id")) == {"call"}
    keys = [c.key for c in decisions.candidates]
    decided = {key: float(decisions.values[0, keys.index(key)]) for key in ("email:morning", "email:evening")}
    assert decided == {"email:morning": 10.0, "email:evening": 7.0}
    out = explain_decisions(features, projection, frame, decisions.lost(playbook), playbook, top_signals=0)
    for alternatives in out.get_column("alternatives"):
        shown = {f"{a.action_id}:{a.variant}": a.value_usd for a in parse_alternatives(alternatives)}
        assert shown == decided


def test_explain_default_held_back_by_exploration_is_set_aside_not_disallowed() -> None:
    """An exploring account's default, allowed and worth more than the draw's pick, was set aside to explore.

    The draw's hold-back was coded ``rule``, so the receipt said the default "is not allowed".
    """
    playbook = parse_playbook(
        VARIANTS.format(control=0.0).replace('{ method = "none" }', '{ method = "epsilon", epsilon = 0.5 }')
    )
    ids = [f"c{i}" for i in range(60)]
    features = pl.DataFrame({"account_id": ids})
    no_touches = pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    rules = check_rules(features, no_touches, playbook, datetime(2025, 6, 2, tzinfo=UTC), {})
    projection = flat_projection(ids, {"call": 5.0, "email": 30.0})
    decisions = decide(rules, projection.values, playbook, owners=["o"] * len(ids), stages=["trial"] * len(ids))
    frame = decisions.frame()
    lost = decisions.lost(playbook)
    drawn = frame.filter((pl.col("arm") == "explore") & (pl.col("action_id") != "email"))
    assert drawn.height > 0
    held = lost.join(drawn.select("account_id"), on="account_id", how="semi").filter(pl.col("action_id") == "email")
    # The learned policy's pick, Email (morning), was held back; the evening variant, worth the same, the
    # learned policy would not have given either.
    assert set(held.filter(pl.col("variant") == "morning").get_column("why")) == {"held_back"}
    assert set(held.filter(pl.col("variant") == "evening").get_column("reason")) == {
        "projected to be worth no more than the model's choice for this account, Email (morning)"
    }
    out = explain_decisions(features, projection, frame, lost, playbook, top_signals=0)
    for evidence in out.join(drawn.select("account_id"), on="account_id", how="semi").get_column("evidence"):
        # $29: the flat projection charged email's arm nothing, and its variant costs the action's $1.
        assert parse_evidence(evidence).default_why == (
            "The lifecycle default, Email, worth $29, was set aside to explore another play."
        )


@pytest.mark.parametrize("email", [5.0, -3.0])
def test_explain_an_exploring_account_s_default_worth_less_is_not_set_aside_to_explore(email: float) -> None:
    """Only a default the draw held back was set aside to explore; one worth less reads as on the model arm.

    The default (Email) is worth less than Call, the learned policy's pick, and less than nothing when
    ``email`` is -3: the receipts said it "was set aside to explore another play" while its runner-up row
    said it lost on value, and the model would not have given it either.
    """
    playbook = parse_playbook(
        VARIANTS.format(control=0.0).replace('{ method = "none" }', '{ method = "epsilon", epsilon = 0.5 }')
    )
    ids = [f"c{i}" for i in range(60)]
    features = pl.DataFrame({"account_id": ids})
    no_touches = pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    rules = check_rules(features, no_touches, playbook, datetime(2025, 6, 2, tzinfo=UTC), {})
    projection = flat_projection(ids, {"call": 30.0, "email": email})
    decisions = decide(rules, projection.values, playbook, owners=["o"] * len(ids), stages=["trial"] * len(ids))
    frame = decisions.frame()
    drawn = frame.filter((pl.col("arm") == "explore") & (pl.col("action_id") != "email"))
    assert set(drawn.get_column("action_id")) == {"call", "none"}  # the draw took the model's pick, or nothing
    out = explain_decisions(features, projection, frame, decisions.lost(playbook), playbook, top_signals=0)
    receipts = out.join(drawn.select("account_id", "action_id"), on="account_id", how="inner")
    worth = money_text(email - 1, "USD")  # the email variant costs the action's $1
    for action_id, evidence in receipts.select("action_id", "evidence").iter_rows():
        said = parse_evidence(evidence).default_why
        assert "set aside to explore" not in said
        if action_id == "call":
            assert said == f"The lifecycle default, Email, worth {worth} against $30 for Call."
        elif email > 0:
            assert said == (
                f"The lifecycle default, Email, worth {worth} against $0 for doing nothing (projected to be worth "
                "no more than the model's choice for this account, Call)."
            )
        else:
            assert said == f"The lifecycle default, Email, worth {worth} against $0 for doing nothing."


def test_each_runner_up_with_a_value_carries_the_projection_it_would_have_as_the_choice(lab: Case) -> None:
    # An online decision may give a runner-up (the run explored, or a rule since the run blocks its
    # choice): the runner-up's `projected` is what the receipt would say had the run chosen it.
    decisions = lab.decisions.filter(pl.col("arm") != "control").head(60)
    receipts = explain_decisions(lab.snapshot, lab.projection, decisions, lab.lost, lab.playbook, top_signals=0)
    picked: dict[str, tuple[str, str | None, list[dict[str, object]]]] = {}
    for account_id, text in receipts.select("account_id", "alternatives").iter_rows():
        for alt in parse_alternatives(text):
            if alt.value_usd is None:
                assert alt.projected == []
                continue
            assert {p.objective for p in alt.projected} <= set(lab.playbook.objectives)
            assert alt.projected
            picked.setdefault(
                account_id, (alt.action_id, alt.variant, [p.model_dump(by_alias=True) for p in alt.projected])
            )
    assert len(picked) >= 30
    swapped = decisions.filter(pl.col("account_id").is_in(list(picked))).with_columns(
        pl.col("account_id").replace_strict({a: p[0] for a, p in picked.items()}).alias("action_id"),
        pl.col("account_id")
        .replace_strict({a: p[1] for a, p in picked.items()}, return_dtype=pl.String)
        .alias("variant"),
    )
    again = explain_decisions(lab.snapshot, lab.projection, swapped, lab.lost, lab.playbook, top_signals=0)
    for account_id, text in again.select("account_id", "evidence").iter_rows():
        assert json.loads(text)["projected"] == picked[account_id][2], account_id


def test_explain_from_the_projection_s_arrays_equals_explain_from_its_long_frame(lab: Case) -> None:
    """The receipts read the projected outcomes from the projection's arrays by position, without making its
    long frame; a projection given as frames (joined on text keys) gives the same receipts to the byte."""
    fresh = lab.model.project(lab.snapshot)
    assert fresh.arrays is not None
    args = (lab.decisions, lab.lost, lab.playbook)
    kwargs = {"model": lab.model, "history": lab.history, "outcomes": lab.outcomes, "previous": lab.previous}
    from_arrays = explain_decisions(lab.snapshot, fresh, *args, **kwargs)  # type: ignore[arg-type]
    assert fresh._effects is None  # the long frame was not made
    frames = EffectProjection(fresh.level, fresh.effects, fresh.values, fresh.flagged_actions)
    from_frames = explain_decisions(lab.snapshot, frames, *args, **kwargs)  # type: ignore[arg-type]
    assert from_arrays.equals(from_frames)
    assert from_arrays.equals(lab.receipts)


def test_explain_in_chunks_to_a_sink_gives_the_receipts_of_one_piece(lab: Case) -> None:
    """Receipts put together a few accounts at a time and handed to a sink (the earlier snapshot read lazily)
    are those of one piece, in the order of the decisions; the returned frame is then empty."""
    chunks: list[pl.DataFrame] = []
    out = explain_decisions(
        lab.snapshot,
        lab.projection,
        lab.decisions,
        lab.lost,
        lab.playbook,
        model=lab.model,
        history=lab.history,
        outcomes=lab.outcomes,
        previous=lab.previous.lazy(),
        chunk_rows=37,
        sink=chunks.append,
    )
    assert out.height == 0
    assert out.schema == lab.receipts.schema
    assert len(chunks) == -(-lab.decisions.height // 37)
    assert all(c.height == 37 for c in chunks[:-1])
    assert pl.concat(chunks).equals(lab.receipts)
    # The lost rows asked for a chunk at a time, as ``Decisions.lost(playbook, start=, stop=)`` gives them.
    asked: list[tuple[int, int]] = []

    def lost_of(start: int, stop: int) -> pl.DataFrame:
        asked.append((start, stop))
        accounts = lab.decisions.slice(start, stop - start).select("account_id")
        return lab.lost.join(accounts, on="account_id", how="semi", maintain_order="left")

    chunked = explain_decisions(
        lab.snapshot,
        lab.projection,
        lab.decisions,
        lost_of,
        lab.playbook,
        model=lab.model,
        history=lab.history,
        outcomes=lab.outcomes,
        previous=lab.previous,
        chunk_rows=37,
    )
    assert asked[0] == (0, 37)
    assert asked[-1][1] == lab.decisions.height
    assert chunked.equals(lab.receipts)


def _explained_in(case: Case, currency: str) -> pl.DataFrame:
    """The case's receipts again, under its playbook with another ``currency``."""
    playbook = case.playbook.model_copy(update={"currency": currency})
    return explain_decisions(
        case.snapshot,
        case.projection,
        case.decisions,
        case.lost,
        playbook,
        model=case.model,
        history=case.history,
        outcomes=case.outcomes,
        previous=case.previous,
    )


def _sentences(receipts: pl.DataFrame) -> list[str]:
    """Every sentence of the receipts: summaries, default_why, signals, comparables' outcomes, runner-ups' reasons."""
    out: list[str] = []
    for evidence, alternatives in receipts.select("evidence", "alternatives").iter_rows():
        e, alts = json.loads(evidence), json.loads(alternatives)
        out += [e["summary"], e["default_why"], *(s["text"] for s in e["signals"])]
        out += [c["outcome"] for c in e["comparables"]] + [a["reason"] for a in alts]
    return out


def test_explain_writes_the_playbook_s_currency_in_every_sentence(lab: Case) -> None:
    usd = lab.receipts
    eur = _explained_in(lab, "EUR")
    sentences = _sentences(eur)
    assert all("$" not in s for s in sentences)
    assert sum("€" in s for s in sentences) > 100
    assert any(re.search(r"-€\d", s) for s in sentences)  # the sign before the symbol, as in "-$40"
    assert any(re.search(r"ARR €[\d,]+", s) for s in sentences)  # the book's ARR, as a signal cites it
    # Only the symbol changes: the same amounts, rounded alike, and the same JSON otherwise.
    for column in ("evidence", "alternatives", "summary"):
        assert eur.get_column(column).to_list() == [t.replace("$", "€") for t in usd.get_column(column).to_list()]
    # receipt_text writes the stored receipt's amounts in the playbook's currency, or the one it is given.
    euro_playbook = lab.playbook.model_copy(update={"currency": "EUR"})
    valued = 0
    for evidence, alternatives in eur.select("evidence", "alternatives").head(60).iter_rows():
        e, alts = json.loads(evidence), json.loads(alternatives)
        text = receipt_text(e, alts, playbook=euro_playbook)
        assert "$" not in text
        assert "$" not in receipt_text(e, alts, currency="EUR")
        if e["value_usd"] is not None:
            value = next(line for line in text.splitlines() if line.startswith("Value: "))
            assert value.startswith(("Value: €", "Value: -€")), value
            # Without a playbook or a currency, the text's own amounts are dollars, as before.
            assert "Value: $" in receipt_text(e, alts) or "Value: -$" in receipt_text(e, alts)
            valued += 1
    assert valued > 10


def test_explain_writes_yen_without_cents_and_other_codes_before_the_amount(lab: Case) -> None:
    yen = _sentences(_explained_in(lab, "JPY"))
    assert all("$" not in s for s in yen)
    assert sum("¥" in s for s in yen) > 100
    assert not any(re.search(r"¥[\d,]+\.\d", s) for s in yen), [s for s in yen if re.search(r"¥[\d,]+\.\d", s)][:3]
    # The dollar receipts had cents below 10: the same amounts in yen are whole.
    assert any(re.search(r"\$\d\.\d\d", s) for s in _sentences(lab.receipts))
    francs = _sentences(_explained_in(lab, "CHF"))
    assert all("$" not in s for s in francs)
    assert any(re.search(r"worth CHF [\d,.]+", s) for s in francs)
    assert any(re.search(r"-CHF \d", s) for s in francs)


CREDIT = """
exploration = { method = "none" }

[objectives.retention]
name = "Retention"
outcome = "churn"
sense = "avoid"
value = "arr"

[objectives.expansion]
name = "Expansion"
outcome = "expansion"
value = "amount"

[objectives.advocacy]
name = "Advocacy"
outcome = "advocacy"
value = "fixed"
value_usd = 3000

[[actions]]
id = "case_study"
name = "Case study invitation"
team = "marketing"
objective = "advocacy"
cost_usd = 50
"""

# Per account: (churn without, with, $), (expansion without, with), (advocacy without, with, $): the case study's.
_CREDIT_PARTS = {
    # FL-01944's shape: worth $6,631 after an advocacy headline, $6,626 of it from a cut in churn.
    "mostly_retention": ((0.20035, 0.15256, 6625.8), (1562.26, 1562.44), (0.04502, 0.06555, 61.59)),
    # The common case: the value is the headline's own (the others make less than a third of the gains).
    "own": ((0.05, 0.049, 40.0), (100.0, 100.0), (0.04, 0.10, 180.0)),
    # Advocacy loses, retention gains more than the whole value: "with", not "of which".
    "loss_elsewhere": ((0.2, 0.19, 500.0), (100.0, 100.0), (0.05, 0.04, -30.0)),
    # Two other objectives, each a material part.
    "two_others": ((0.10, 0.09, 300.0), (500.0, 700.0), (0.04, 0.06, 60.0)),
    # A value of zero or less credits the headline with nothing: no clause.
    "worth_less": ((0.10, 0.0999, 3.0), (100.0, 100.0), (0.05, 0.0499, -0.3)),
}


def credit_projection() -> EffectProjection:
    """The case study's projection of each account of :data:`_CREDIT_PARTS` (intervals ±0.01 and ±$100)."""
    effects, values = [], []
    for account, (churn, expansion, advocacy) in _CREDIT_PARTS.items():
        parts = [
            ("retention", "churn", "probability", churn[0], churn[1] - churn[0], 0.01, churn[2]),
            ("expansion", "expansion", "usd", expansion[0], expansion[1] - expansion[0], 100.0, None),
            ("advocacy", "advocacy", "probability", advocacy[0], advocacy[1] - advocacy[0], 0.01, advocacy[2]),
        ]
        for arm in (NO_ACTION, "case_study"):
            on = arm != NO_ACTION
            for objective, outcome, unit, base, effect, spread, usd in parts:
                usd = effect if usd is None else usd
                effects.append(
                    (
                        account,
                        arm,
                        objective,
                        outcome,
                        unit,
                        base,
                        effect * on,
                        (effect - spread) * on,
                        (effect + spread) * on,
                        usd * on,
                        False,
                    )
                )
        value = sum(e[9] for e in effects[-3:]) - 50.0
        values += [
            (account, NO_ACTION, 0.0, 0.0, 0.0, 0.0, False),
            (account, "case_study", value, value - 1000.0, value + 1000.0, 50.0, False),
        ]
    return EffectProjection(
        level=0.9,
        effects=pl.DataFrame(
            effects,
            schema=[
                "account_id",
                "action_id",
                "objective",
                "outcome",
                "unit",
                "baseline",
                "effect",
                "low",
                "high",
                "effect_usd",
                "pooled",
            ],
            orient="row",
        ),
        values=pl.DataFrame(
            values,
            schema=["account_id", "action_id", "value_usd", "low", "high", "cost_usd", "pooled"],
            orient="row",
        ),
        flagged_actions=(),
    )


def test_explain_summary_says_which_objectives_the_value_comes_from() -> None:
    """An advocacy headline then "worth $6,631" read as advocacy's gain, when $6,626 of it was retention's.

    When the objectives other than the headline's make more than a third of the action's gains, the
    summary names them with their parts and levels, as ``projected`` holds them; otherwise it is unchanged.
    """
    playbook = parse_playbook(CREDIT)
    projection = credit_projection()
    ids = list(_CREDIT_PARTS)
    value = dict(
        projection.values.filter(pl.col("action_id") == "case_study").select("account_id", "value_usd").iter_rows()
    )
    decisions = pl.DataFrame(
        {
            "account_id": ids,
            "action_id": ["case_study"] * len(ids),
            "variant": [None] * len(ids),
            "arm": ["model"] * len(ids),
            "propensity": [1.0] * len(ids),
            "model_action_id": ["case_study"] * len(ids),
            "default_action_id": [NO_ACTION] * len(ids),
            "value_usd": [value[a] for a in ids],
            "value_low_usd": [value[a] - 1000.0 for a in ids],
            "value_high_usd": [value[a] + 1000.0 for a in ids],
        },
        schema_overrides={"variant": pl.String},
    )
    lost = pl.DataFrame(
        schema={
            "account_id": pl.String,
            "action_id": pl.String,
            "variant": pl.String,
            "why": pl.String,
            "reason": pl.String,
        }
    )
    out = explain_decisions(pl.DataFrame({"account_id": ids}), projection, decisions, lost, playbook, top_signals=0)
    summary = dict(out.select("account_id", "summary").iter_rows())
    lead = "Case study invitation — advocacy within 90 days: "
    assert summary["mostly_retention"] == (
        f"{lead}4.5% → 6.6% chance (5.6% to 7.6%), worth $6,638 ($5,638 to $7,638), "
        "of which $6,626 from Retention (churn 20% → 15% chance)."
    )
    assert summary["own"] == f"{lead}4.0% → 10% chance (9.0% to 11%), worth $170 (-$830 to $1,170)."
    assert summary["loss_elsewhere"] == (
        f"{lead}5.0% → 4.0% chance (3.0% to 5.0%), worth $420 (-$580 to $1,420), "
        "with $500 from Retention (churn 20% → 19% chance)."
    )
    assert summary["two_others"] == (
        f"{lead}4.0% → 6.0% chance (5.0% to 7.0%), worth $510 (-$490 to $1,510), "
        "of which $300 from Retention (churn 10% → 9.0% chance) and $200 from Expansion ($500 → $700 expected)."
    )
    assert summary["worth_less"] == f"{lead}5.0% → 5.0% chance (4.0% to 6.0%), worth -$47 (-$1,047 to $953)."
    # Every amount and level named is the receipt's own part of that objective.
    for account, evidence in out.select("account_id", "evidence").iter_rows():
        parsed = parse_evidence(evidence)
        assert parsed.summary == summary[account]
        parts = {p.objective: p for p in parsed.projected}
        for amount, name in re.findall(r"(-?\$[\d,.]+) from (\w+) \(", summary[account]):
            assert amount == money_text(parts[name.lower()].effect_usd or 0.0, "USD"), (account, amount, name)
