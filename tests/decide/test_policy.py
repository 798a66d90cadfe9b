"""Tests of the decision policy: capacity, rules, control, exploration, propensities and the lifecycle default."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextmove.decide.allocate import Resource
from nextmove.decide.policy import (
    LOST_CODES,
    CapacityLedger,
    DecisionOptions,
    Decisions,
    decide,
    default_candidates,
    exploration_capacity_note,
    playbook_resources,
    value_matrices,
)
from nextmove.decide.rules import RuleCheck, Why, candidates, check_rules
from nextmove.errors import ConfigError
from nextmove.playbook import Playbook
from nextmove.playbook.loader import parse_playbook

T = datetime(2025, 6, 2, tzinfo=UTC)

# A playbook that is not the lab's: a B2C shop with its own objectives, teams' plays and limits.
SHOP = """
name = "Shop"
control_fraction = {control}

[objectives.keep]
outcome = "lapse"
sense = "avoid"
value = "arr"

[objectives.grow]
outcome = "upgrade"
value = "fixed"
value_usd = 300

[[actions]]
id = "stylist_call"
name = "Stylist call"
team = "cs"
objective = "keep"
cost_usd = 20
effort_hours = 1.5
cooldown_days = 30
eligibility = "spend > 100"
default_for_stages = ["loyal"]

[[actions]]
id = "coupon"
name = "Coupon"
team = "marketing"
channel = "email"
objective = "grow"
cost_usd = 10
variants = [{{ id = "am" }}, {{ id = "pm" }}]
max_per_run = {volume}

[[actions]]
id = "vip_event"
name = "VIP event"
team = "sales"
objective = "grow"
cost_usd = 200
effort_hours = 3.0
default_for_stages = ["new"]

[contact_policy]
max_actions_per_window = 1
window_days = 7
caps = [{{ team = "marketing", channel = "email", max_touches = 1, window_days = 14 }}]

[capacity]
hours_per_owner_per_week = {hours}
budget_usd_per_team = {{ sales = {budget} }}

[exploration]
method = "{method}"
epsilon = {epsilon}
seed = 4
"""


def shop(
    control: float = 0.1,
    volume: int = 5,
    hours: float = 4.0,
    budget: float = 600.0,
    method: str = "thompson",
    epsilon: float = 0.2,
) -> Playbook:
    return parse_playbook(
        SHOP.format(control=control, volume=volume, hours=hours, budget=budget, method=method, epsilon=epsilon)
    )


def _book(n: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame, list[str], list[str]]:
    """Features, touches, owners and stages of ``n`` shoppers."""
    rng = np.random.default_rng(seed)
    ids = [f"cust-{i:04d}" for i in range(n)]
    features = pl.DataFrame({"account_id": ids, "spend": rng.uniform(0, 400, n)})
    touched = rng.random(n) < 0.4
    actions = rng.choice(["stylist_call", "coupon", "vip_event", "none"], n)
    ages = rng.uniform(0, 40, n)
    touches = pl.DataFrame(
        {
            "account_id": [i for i, t in zip(ids, touched, strict=True) if t],
            "action_id": [a for a, t in zip(actions, touched, strict=True) if t],
            "ts": [T - timedelta(days=float(d)) for d, t in zip(ages, touched, strict=True) if t],
        },
        schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")},
    )
    owners = [f"owner-{i % 3}" for i in range(n)]
    stages = rng.choice(["loyal", "new", "lapsing"], n).tolist()
    return features, touches, owners, stages


def _values(ids: list[str], playbook: Playbook, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed + 1000)
    rows = []
    for a in playbook.actions:
        v = rng.normal(40, 80, len(ids))
        half = rng.uniform(5, 60, len(ids))
        rows.append(
            pl.DataFrame({"account_id": ids, "action_id": a.id, "value_usd": v, "low": v - half, "high": v + half})
        )
    return pl.concat(rows)


def _decide(n: int, seed: int, playbook: Playbook, **opts: object) -> tuple[Decisions, RuleCheck]:
    features, touches, owners, stages = _book(n, seed)
    rules = check_rules(features, touches, playbook, T, {"spend": "number"})
    values = _values(features["account_id"].to_list(), playbook, seed)
    decisions = decide(
        rules,
        values,
        playbook,
        owners=owners,
        stages=stages,
        seed=seed,
        run_key="2025-06-02",
        options=DecisionOptions(**opts),  # type: ignore[arg-type]
    )
    return decisions, rules


def _check_capacity(decisions: Decisions) -> None:
    for name, use in decisions.usage().items():
        assert use["used"] <= use["limit"] + 1e-6, f"{name}: {use['used']} > {use['limit']}"


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 60),
    hours=st.sampled_from([0.0, 1.5, 4.0, 20.0]),
    budget=st.sampled_from([0.0, 200.0, 600.0, 1e6]),
    volume=st.integers(0, 8),
    method=st.sampled_from(["thompson", "epsilon", "none"]),
    control=st.sampled_from([0.0, 0.2, 0.5]),
    allocation=st.sampled_from(["exact", "lagrangian"]),
)
def test_decide_never_exceeds_capacity_nor_breaks_a_rule(
    seed: int, n: int, hours: float, budget: float, volume: int, method: str, control: float, allocation: str
) -> None:
    playbook = shop(control=control, volume=volume, hours=hours, budget=budget, method=method, epsilon=0.3)
    decisions, rules = _decide(n, seed, playbook, method=allocation)
    _check_capacity(decisions)
    rows = np.flatnonzero(decisions.choice >= 0)
    picks = decisions.choice[rows]
    # Ineligible, cooling down, capped or in flight: never recommended, whatever the arm.
    assert (rules.why[rows, picks] == Why.ALLOWED).all()
    assert (decisions.model_choice[decisions.model_choice >= 0] >= 0).all()
    model_rows = np.flatnonzero(decisions.model_choice >= 0)
    assert (rules.why[model_rows, decisions.model_choice[model_rows]] == Why.ALLOWED).all()
    # Propensities: a distribution over the options each account is allowed, with the chosen one possible.
    probs = decisions.propensities
    assert np.allclose(probs.sum(axis=1), 1.0)
    allowed = np.column_stack([np.ones(n, dtype=bool), rules.allowed])
    assert (probs[~allowed] == 0).all()
    assert (decisions.propensity > 0).all()
    assert set(decisions.arm.tolist()) <= {"model", "explore", "control"}
    if method == "none":
        assert "explore" not in decisions.arm.tolist()


def test_decide_cooldowns_and_contact_caps_hold() -> None:
    playbook = shop(control=0.0, method="none", hours=1000.0, budget=1e9, volume=1000)
    ids = ["cool", "capped", "flight", "free"]
    features = pl.DataFrame({"account_id": ids, "spend": [500.0] * 4})
    touches = pl.DataFrame(
        {
            "account_id": ["cool", "capped", "flight"],
            "action_id": ["stylist_call", "coupon", "vip_event"],
            "ts": [T - timedelta(days=10), T - timedelta(days=9), T - timedelta(days=2)],
        },
        schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")},
    )
    rules = check_rules(features, touches, playbook, T, {"spend": "number"})
    # Every action is worth a lot: only the rules stop them.
    values = pl.concat(
        [
            pl.DataFrame({"account_id": ids, "action_id": a, "value_usd": v, "low": v - 1, "high": v + 1})
            for a, v in (("stylist_call", 500.0), ("coupon", 400.0), ("vip_event", 300.0))
        ]
    )
    d = decide(rules, values, playbook, owners=["o"] * 4, stages=["loyal"] * 4)
    got = dict(zip(d.frame()["account_id"], d.frame()["action_id"], strict=True))
    assert got["cool"] == "coupon"  # the call is cooling down (30 days)
    assert got["capped"] == "stylist_call"  # an e-mail 9 days ago: the marketing e-mail cap (1 in 14 days)
    assert got["flight"] == "none"  # a play 2 days ago is in flight for the 7-day window
    assert got["free"] == "stylist_call"
    lost = d.lost(playbook)
    why = {(r["account_id"], r["action_id"], r["variant"]): r["why"] for r in lost.iter_rows(named=True)}
    assert why[("cool", "stylist_call", None)] == "cooldown"
    assert why[("capped", "coupon", "am")] == "contact_cap"
    assert why[("flight", "stylist_call", None)] == "in_flight"
    assert why[("free", "coupon", "am")] == "lower_value"
    reasons = dict(zip(zip(lost["account_id"], lost["action_id"], strict=True), lost["reason"], strict=True))
    assert reasons[("cool", "stylist_call")] == "cooldown: done 10 days ago, cooldown 30 days"


def test_decide_does_nothing_when_no_action_is_worth_anything() -> None:
    playbook = shop(control=0.0, method="none")
    features, touches, owners, stages = _book(30, 1)
    rules = check_rules(features, touches, playbook, T, {"spend": "number"})
    values = _values(features["account_id"].to_list(), playbook, 1).with_columns(pl.col("value_usd") - 10_000)
    d = decide(rules, values, playbook, owners=owners, stages=stages)
    assert (d.frame()["action_id"] == "none").all()
    assert set(d.lost(playbook).filter(pl.col("why") == "lower_value")["reason"].unique()) == {
        "projected to be worth no more than doing nothing"
    }


def test_decide_capacity_binds_and_losers_say_capacity() -> None:
    playbook = shop(control=0.0, method="none", hours=3.0, budget=1e9, volume=1000)
    ids = [f"c{i}" for i in range(6)]
    features = pl.DataFrame({"account_id": ids, "spend": [500.0] * 6})
    touches = pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    rules = check_rules(features, touches, playbook, T, {"spend": "number"})
    values = pl.DataFrame(
        {
            "account_id": ids,
            "action_id": ["stylist_call"] * 6,
            "value_usd": [100.0, 90.0, 80.0, 70.0, 60.0, 50.0],
            "low": [0.0] * 6,
            "high": [200.0] * 6,
        }
    )
    # One owner with 3 hours a week × 1 week: two calls of 1.5 hours, to the two most valuable accounts.
    d = decide(rules, values, playbook, owners=["o"] * 6, stages=["lapsing"] * 6)
    assert d.frame()["action_id"].to_list() == ["stylist_call"] * 2 + ["none"] * 4
    lost = d.lost(playbook).filter(pl.col("action_id") == "stylist_call")
    assert lost["why"].to_list() == ["capacity"] * 4
    assert d.usage()["hours:o"] == {"limit": 3.0, "used": 3.0}


def test_decide_owner_hours_give_part_time_and_absent_owners_their_own_limits() -> None:
    base = shop(control=0.0, method="none", hours=3.0, budget=1e9, volume=1000)
    # "Zoë" as macOS writes it (NFD) in the playbook: the book's owner is read in NFC.
    text = SHOP.format(control=0.0, volume=1000, hours=3.0, budget=1e9, method="none", epsilon=0.2)
    playbook = parse_playbook(text + '\n[capacity.owner_hours]\npart = 1.5\nleave = 0\n"Zoe\u0308" = 6\n')
    assert playbook.capacity.owner_hours == {"part": 1.5, "leave": 0.0, "Zoë": 6.0}
    ids = [f"c{i}" for i in range(16)]
    owners = ["full"] * 4 + ["part"] * 4 + ["leave"] * 4 + ["Zoë"] * 4
    features = pl.DataFrame({"account_id": ids, "spend": [500.0] * 16})
    touches = pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    rules = check_rules(features, touches, playbook, T, {"spend": "number"})
    values = pl.DataFrame(
        {
            "account_id": ids,
            "action_id": ["stylist_call"] * 16,
            "value_usd": [100.0 - i for i in range(16)],
            "low": [0.0] * 16,
            "high": [200.0] * 16,
        }
    )
    d = decide(rules, values, playbook, owners=owners, stages=["lapsing"] * 16)
    calls = d.frame().with_columns(owner=pl.Series(owners)).filter(pl.col("action_id") == "stylist_call")
    # Calls of 1.5 hours over a 1-week window: full 3 h (2 calls), part 1.5 h (1), leave 0 h (none), Zoë 6 h (4).
    assert calls.group_by("owner").len().sort("owner").rows() == [("Zoë", 4), ("full", 2), ("part", 1)]
    usage = d.usage()
    assert {k: v["limit"] for k, v in usage.items() if k.startswith("hours:")} == {
        "hours:Zoë": 6.0,
        "hours:full": 3.0,
        "hours:leave": 0.0,
        "hours:part": 1.5,
    }
    lost = d.lost(playbook).filter(pl.col("action_id") == "stylist_call", pl.col("account_id").is_in(ids[8:12]))
    assert lost["why"].to_list() == ["capacity"] * 4
    assert base.capacity.owner_hours == {}


def test_decide_owner_hours_without_a_default_limit_only_the_listed_owners() -> None:
    text = SHOP.format(control=0.0, volume=1000, hours=1.0, budget=1e9, method="none", epsilon=0.2)
    playbook = parse_playbook(text.replace("hours_per_owner_per_week = 1.0", 'owner_hours = { "o1" = 0 }'))
    assert playbook.capacity.hours_per_owner_per_week is None
    resources = playbook_resources(playbook, candidates(playbook), ["o1", "o2", None])
    assert [r.name for r in resources if r.name.startswith("hours:")] == ["hours:o1"]


def test_control_is_stable_near_its_fraction_and_follows_the_default() -> None:
    playbook = shop(control=0.25, method="epsilon", epsilon=0.1, hours=1e6, budget=1e9, volume=10_000)
    a, _ = _decide(2_000, 3, playbook)
    b, _ = _decide(2_000, 3, playbook)
    control = a.arm == "control"
    assert (control == (b.arm == "control")).all()
    assert abs(control.mean() - 0.25) < 0.03
    # A different run key keeps the control cohort but draws other explorers.
    features, touches, owners, stages = _book(2_000, 3)
    rules = check_rules(features, touches, playbook, T, {"spend": "number"})
    c = decide(rules, _values(a.account_ids, playbook, 3), playbook, owners=owners, stages=stages, run_key="next")
    assert ((c.arm == "control") == control).all()
    assert ((c.arm == "explore") != (a.arm == "explore")).any()
    # Control accounts get their stage's default where the rules allow it, else nothing.
    frame = a.frame().filter(pl.col("arm") == "control")
    allowed_default = a.default_choice[control] >= 0
    for row, ok in zip(frame.iter_rows(named=True), allowed_default, strict=True):
        if row["action_id"] != "none":
            assert row["action_id"] == row["default_action_id"]
        elif ok and row["default_action_id"] != "none":
            k = int(a.default_choice[a.account_ids.index(row["account_id"])])
            assert a.rules.why[a.account_ids.index(row["account_id"]), k] != Why.ALLOWED
    # The control share of the propensity of the default.
    i = int(np.flatnonzero(control & (a.choice >= 0))[0])
    assert a.propensity[i] >= 0.25 - 1e-9


def test_model_arm_follows_the_allocation_and_propensities_mix_arms() -> None:
    playbook = shop(control=0.1, method="epsilon", epsilon=0.2, hours=1e6, budget=1e9, volume=10_000)
    d, rules = _decide(500, 5, playbook, method="exact")
    model = d.arm == "model"
    assert (d.choice[model] == d.model_choice[model]).all()
    rows = np.arange(d.n)
    n_allowed = rules.allowed.sum(axis=1) + 1
    # No capacity binds: 0.9 × (0.8 + 0.2 / options) on the learned choice, plus 0.1 where the default is the same.
    default = d.default_choice
    effective = np.where((default >= 0) & rules.allowed[rows, np.maximum(default, 0)], default, -1)
    expected = 0.9 * (0.8 + 0.2 / n_allowed) + np.where(effective == d.model_choice, 0.1, 0.0)
    got = d.propensities[rows, d.model_choice + 1]
    assert np.allclose(got[model], expected[model])


def test_default_and_differs_from_default() -> None:
    playbook = shop(control=0.0, method="none", hours=1e6, budget=1e9, volume=10_000)
    cands = candidates(playbook)
    idx, ids = default_candidates(playbook, cands, ["loyal", "new", "lapsing", None], 4)
    assert ids == ["stylist_call", "vip_event", "none", "none"]
    assert [cands[k].action_id if k >= 0 else None for k in idx] == ["stylist_call", "vip_event", None, None]
    assert default_candidates(playbook, cands, None, 2)[1] == [None, None]
    d, _ = _decide(200, 2, playbook)
    frame = d.frame()
    assert (frame["differs_from_default"] == (frame["action_id"] != frame["default_action_id"])).all()


def test_playbook_resources_per_owner_team_and_action() -> None:
    playbook = shop(hours=4.0, budget=600.0, volume=5)
    cands = candidates(playbook)
    res = {r.name: r for r in playbook_resources(playbook, cands, ["ana", None, "bo", "ana"])}
    assert set(res) == {"hours:ana", "hours:bo", "budget:sales", "volume:coupon"}
    assert res["hours:ana"].limit == pytest.approx(4.0)  # 4 hours a week, a 7-day window
    members = res["hours:ana"].accounts
    assert members is not None
    assert members.tolist() == [0, 3]
    assert res["budget:sales"].per_candidate.tolist() == [0.0, 0.0, 0.0, 200.0]
    assert res["volume:coupon"].per_candidate.tolist() == [0.0, 1.0, 1.0, 0.0]


def test_value_matrices_map_variants_and_missing_arms() -> None:
    playbook = shop()
    cands = candidates(playbook)
    values = pl.DataFrame(
        {
            "account_id": ["a", "a", "a"],
            "action_id": ["stylist_call", "coupon", "coupon:pm"],
            "value_usd": [1.0, 2.0, 3.0],
            "low": [0.0, 0.0, 0.0],
            "high": [2.0, 4.0, 6.0],
        }
    )
    costs = {a.id: a.cost_usd for a in playbook.actions}
    v, _, _ = value_matrices(values, ["a"], cands, action_cost_usd=costs)
    assert [c.key for c in cands] == ["stylist_call", "coupon:am", "coupon:pm", "vip_event"]
    assert v[0, :3].tolist() == [1.0, 2.0, 3.0]
    assert np.isnan(v[0, 3])
    with pytest.raises(ConfigError, match="lack the column 'low'"):
        value_matrices(values.drop("low"), ["a"], cands, action_cost_usd=costs)
    # A variant valued from its action's arm needs the cost that arm was charged.
    with pytest.raises(ConfigError, match="no action_cost_usd is given for 'coupon'"):
        value_matrices(values, ["a"], cands)


def test_value_matrices_charge_a_variant_its_own_cost() -> None:
    # coupon costs $10; its "pm" variant $25 and "am" the action's $10. Without arms of their own,
    # both are valued from the coupon arm (net of $10): pm is worth $15 less, am the same.
    playbook = parse_playbook(
        SHOP.format(control=0.0, volume=5, hours=4.0, budget=600.0, method="thompson", epsilon=0.0).replace(
            '{ id = "pm" }', '{ id = "pm", cost_usd = 25 }'
        )
    )
    cands = candidates(playbook)
    assert [(c.key, c.cost_usd) for c in cands][1:3] == [("coupon:am", 10.0), ("coupon:pm", 25.0)]
    values = pl.DataFrame(
        {
            "account_id": ["a", "b"],
            "action_id": ["coupon", "coupon"],
            "value_usd": [90.0, 40.0],
            "low": [10.0, -20.0],
            "high": [170.0, 100.0],
        }
    )
    costs = {a.id: a.cost_usd for a in playbook.actions}
    v, lo, hi = value_matrices(values, ["a", "b"], cands, action_cost_usd=costs)
    assert v[:, 1].tolist() == [90.0, 40.0]
    assert v[:, 2].tolist() == [75.0, 25.0]
    assert lo[:, 2].tolist() == [-5.0, -35.0]
    assert hi[:, 2].tolist() == [155.0, 85.0]
    # A projection's cost_usd column (what each arm was charged) gives the same.
    charged = values.with_columns(pl.lit(10.0).alias("cost_usd"))
    assert value_matrices(charged, ["a", "b"], cands)[0][:, 2].tolist() == [75.0, 25.0]
    # A variant with its own arm keeps that arm's value: the projection netted its own cost already.
    own = pl.concat([charged, charged.head(1).with_columns(pl.lit("coupon:pm").alias("action_id"))])
    assert value_matrices(own, ["a", "b"], cands)[0][:, 2].tolist()[0] == 90.0
    # decide() charges the variant's cost too: the receipt's value is the one the budget uses.
    features = pl.DataFrame({"account_id": ["a", "b"], "spend": [50.0, 50.0]})
    touches = pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    rules = check_rules(features, touches, playbook, T, {"spend": "number"})
    d = decide(rules, values, playbook, options=DecisionOptions(capacity=False))
    pm = [c.key for c in d.candidates].index("coupon:pm")
    assert d.values[:, pm].tolist() == [75.0, 25.0]
    assert d.frame().select("variant", "value_usd").rows() == [("am", 90.0), ("am", 40.0)]


def test_lost_covers_every_candidate_not_chosen() -> None:
    playbook = shop(control=0.2, method="thompson", epsilon=0.3)
    d, _ = _decide(120, 9, playbook)
    lost = d.lost(playbook)
    assert lost.height == d.n * len(d.candidates) - int((d.choice >= 0).sum())
    assert set(lost["why"].unique()) <= set(LOST_CODES)
    assert lost["reason"].str.len_chars().min() > 0
    chosen = set(zip(d.frame()["account_id"], d.frame()["action_id"], strict=True))
    lost_keys = set(zip(lost["account_id"], lost["action_id"], lost["variant"], strict=True))
    for account, action, variant in zip(
        d.frame()["account_id"], d.frame()["action_id"], d.frame()["variant"], strict=True
    ):
        assert (account, action, variant) not in lost_keys
    assert chosen


def test_lost_of_a_range_of_accounts_are_the_whole_book_s_rows_of_them() -> None:
    """A large book's lost rows are asked for a chunk of accounts at a time: the same rows, in the same order."""
    playbook = shop(control=0.2, method="thompson", epsilon=0.3)
    d, _ = _decide(120, 9, playbook)
    whole = d.lost(playbook)
    parts = [d.lost(playbook, start=start, stop=min(start + 17, d.n)) for start in range(0, d.n, 17)]
    assert pl.concat(parts).equals(whole)
    some = d.frame().slice(34, 17).select("account_id")
    assert parts[2].equals(whole.join(some, on="account_id", how="semi", maintain_order="left"))


def test_lost_codes_the_control_and_exploration_draw_held_back_not_rule() -> None:
    # A more valuable allowed option of a control or exploring account lost to the draw, not to a
    # rule on the action: its own code, so nobody (a receipt, the online decider) takes it for one.
    playbook = shop(control=0.3, method="epsilon", epsilon=0.3, hours=1e6, budget=1e9, volume=1000)
    d, _ = _decide(120, 4, playbook)
    lost = d.lost(playbook).join(d.frame().select("account_id", "arm"), on="account_id")
    held = lost.filter(pl.col("why") == "held_back")
    assert held.height > 0
    assert set(held["arm"].unique()) <= {"control", "explore"}
    assert held["reason"].str.starts_with("held back: ").all()
    # A rule is a rule of the playbook: every rule row is an action the rules blocked (or never projected).
    rule = lost.filter(pl.col("why") == "rule")
    assert not rule["reason"].str.starts_with("held back").any()


def test_lost_codes_an_exploring_account_held_back_only_the_learned_pick() -> None:
    """The draw held back the learned policy's pick only; the rest lost as on the model arm.

    Receipts blamed the draw for a stylist call that the owner's spent hours kept from the account (the
    learned policy would not have given it either) and for a coupon worth less than nothing.
    """
    playbook = shop(control=0.0, method="epsilon", epsilon=0.5, hours=3.0, budget=1e9, volume=1000)
    calls = [f"c{i:02d}" for i in range(40)]  # worth a call: two of them get the owner's 3 hours
    coupons = [f"d{i:02d}" for i in range(40)]  # too little spend for a call: the learned pick is the am coupon
    ids = calls + coupons
    features = pl.DataFrame({"account_id": ids, "spend": [500.0] * len(calls) + [50.0] * len(coupons)})
    touches = pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    rules = check_rules(features, touches, playbook, T, {"spend": "number"})
    worth = {
        "stylist_call": [100.0, 100.0] + [90.0] * 38 + [0.0] * 40,
        "coupon:am": [-2.0] * 40 + [20.0] * 40,
        "coupon:pm": [-5.0] * 40 + [10.0] * 40,
        "vip_event": [-50.0] * 80,
    }
    values = pl.concat(
        pl.DataFrame({"account_id": ids, "action_id": arm, "value_usd": v, "low": [x - 10 for x in v]}).with_columns(
            high=pl.col("value_usd") + 10, cost_usd=pl.lit(0.0)
        )
        for arm, v in worth.items()
    )
    d = decide(rules, values, playbook, owners=["o"] * len(ids), stages=["lapsing"] * len(ids))
    frame = d.frame().with_columns(
        got=pl.when(pl.col("variant").is_null())
        .then(pl.col("action_id"))
        .otherwise(pl.concat_str("action_id", pl.lit(":"), "variant"))
    )
    assert d.usage()["hours:o"] == {"limit": 3.0, "used": 3.0}
    lost = d.lost(playbook).join(frame.select("account_id", "arm", "got", "model_action_id"), on="account_id")
    explore = lost.filter(pl.col("arm") == "explore")
    held = explore.filter(pl.col("why") == "held_back")
    # Held back: the learned pick only (the am coupon; a call for the two accounts that had the hours).
    assert held.filter(pl.col("action_id") == "coupon").height > 0
    assert (held.get_column("action_id") == held.get_column("model_action_id")).all()
    assert set(held.filter(pl.col("action_id") == "coupon").get_column("variant")) == {"am"}
    # The calls the spent hours kept from accounts whose learned pick is nothing: capacity, naming the hours.
    blocked = explore.filter((pl.col("action_id") == "stylist_call") & (pl.col("model_action_id") == "none"))
    assert blocked.height > 0
    assert set(blocked.get_column("why")) == {"capacity"}
    assert blocked.get_column("reason").str.contains("o's hours").all()
    # A coupon worth less than nothing, better than the pm coupon drawn: it lost on value, not to the draw.
    negative = explore.filter(pl.col("account_id").str.starts_with("c") & (pl.col("got") == "coupon:pm"))
    negative = negative.filter(pl.col("variant") == "am")
    assert negative.height > 0
    assert negative.select("why", "reason").unique().rows() == [
        ("lower_value", "projected to be worth no more than doing nothing")
    ]
    # The pm coupon, worth more than nothing drawn but less than the learned am coupon.
    second = explore.filter(pl.col("account_id").str.starts_with("d") & (pl.col("got") == "none"))
    second = second.filter(pl.col("variant") == "pm")
    assert second.height > 0
    assert second.select("why", "reason").unique().rows() == [
        ("lower_value", "projected to be worth no more than the model's choice for this account, Coupon (am)")
    ]


def test_capacity_ledger_places_in_order_and_skips_what_does_not_fit() -> None:
    owner = Resource("owner", 3.0, np.array([2.0, 1.0]), np.array([0, 1, 2]))
    budget = Resource("budget", 100.0, np.array([60.0, 10.0]))
    ledger = CapacityLedger([owner, budget], n=4, k=2)
    placed = ledger.accept_prefix(np.array([0, 1, 2, 3]), np.array([0, 0, 1, 0]))
    assert placed.tolist() == [True, False, True, False]  # account 3 has no owner, but the budget is spent
    # The first of each account's resources without room for each candidate (−1: it fits): the budget, then its owner.
    assert ledger.short_account(3).tolist() == [1, -1]
    assert ledger.short_account(0).tolist() == [1, 0]


def test_decide_rejects_misaligned_owners() -> None:
    playbook = shop()
    features, touches, _, _ = _book(5, 0)
    rules = check_rules(features, touches, playbook, T, {"spend": "number"})
    with pytest.raises(ConfigError, match="owners has 2 entries for 5 accounts"):
        decide(rules, _values(features["account_id"].to_list(), playbook, 0), playbook, owners=["a", "b"])


def test_decide_refuses_rules_checked_under_a_playbook_with_other_effort_or_cost() -> None:
    playbook = shop(control=0.0, method="none", hours=3.0, budget=1e9, volume=1000)
    ids = [f"c{i}" for i in range(6)]
    features = pl.DataFrame({"account_id": ids, "spend": [500.0] * 6})
    touches = pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    rules = check_rules(features, touches, playbook, T, {"spend": "number"})
    values = _values(ids, playbook, 0)
    # A what-if with calls of 3 hours: the rules' candidates still say 1.5, so two calls would fit 3 hours.
    heavier = parse_playbook(
        SHOP.replace("effort_hours = 1.5", "effort_hours = 3.0").format(
            control=0.0, volume=1000, hours=3.0, budget=1e9, method="none", epsilon=0.2
        )
    )
    with pytest.raises(ConfigError, match=r"'stylist_call' has effort_hours = 1\.5, the playbook given 3\.0"):
        decide(rules, values, heavier, owners=["o"] * 6, stages=["lapsing"] * 6)
    dearer = parse_playbook(
        SHOP.replace("cost_usd = 10", "cost_usd = 12").format(
            control=0.0, volume=1000, hours=3.0, budget=1e9, method="none", epsilon=0.2
        )
    )
    with pytest.raises(ConfigError, match=r"'coupon:am' has cost_usd = 10\.0, the playbook given 12\.0"):
        decide(rules, values, dearer, owners=["o"] * 6, stages=["lapsing"] * 6)
    # Capacities alone may change: the candidates are the same.
    d = decide(rules, values, shop(control=0.0, method="none", hours=6.0, budget=1e9, volume=1000), owners=["o"] * 6)
    assert d.usage()["hours:o"]["limit"] == 6.0


def test_decide_capacity_reason_names_the_resource_that_is_short() -> None:
    playbook = shop(control=0.0, method="none", hours=3.0, budget=1e9, volume=1000)
    ids = [f"c{i}" for i in range(3)]
    features = pl.DataFrame({"account_id": ids, "spend": [500.0] * 3})
    touches = pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    rules = check_rules(features, touches, playbook, T, {"spend": "number"})
    # Two calls of 1.5 hours use the owner's 3 hours; the third account's call does not fit, its coupon does.
    values = pl.DataFrame(
        {
            "account_id": ids * 2,
            "action_id": ["stylist_call"] * 3 + ["coupon"] * 3,
            "value_usd": [100.0, 90.0, 80.0, 5.0, 5.0, 5.0],
            "low": [0.0] * 6,
            "high": [200.0] * 6,
        }
    )
    d = decide(rules, values, playbook, owners=["o"] * 3, stages=["lapsing"] * 3)
    assert d.frame()["action_id"].to_list() == ["stylist_call", "stylist_call", "coupon"]
    lost = d.lost(playbook).filter((pl.col("account_id") == "c2") & (pl.col("action_id") == "stylist_call"))
    assert lost.select("why", "reason").row(0) == ("capacity", "worth more, but not enough of o's hours is left for it")


def test_decide_option_ranked_lower_for_its_risk_loses_on_value_not_capacity() -> None:
    # Nothing binds: the more valuable but much less sure call loses to the sure coupon at risk aversion 1.
    playbook = shop(control=0.0, method="none", hours=100.0, budget=1e9, volume=1000)
    features = pl.DataFrame({"account_id": ["c0"], "spend": [500.0]})
    touches = pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    rules = check_rules(features, touches, playbook, T, {"spend": "number"})
    values = pl.DataFrame(
        {
            "account_id": ["c0", "c0"],
            "action_id": ["stylist_call", "coupon"],
            "value_usd": [100.0, 80.0],
            "low": [-300.0, 75.0],
            "high": [500.0, 85.0],
        }
    )
    d = decide(rules, values, playbook, owners=["o"], stages=["lapsing"], options=DecisionOptions(risk_aversion=1.0))
    assert d.frame()["action_id"].to_list() == ["coupon"]
    why, reason = d.lost(playbook).filter(pl.col("action_id") == "stylist_call").select("why", "reason").row(0)
    assert why == "lower_value"
    assert "risk aversion" in reason


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 60),
    hours=st.sampled_from([1.5, 4.0, 20.0]),
    budget=st.sampled_from([200.0, 600.0, 1e6]),
    volume=st.integers(0, 8),
    control=st.sampled_from([0.0, 0.2]),
    allocation=st.sampled_from(["exact", "lagrangian"]),
)
def test_decide_capacity_losses_never_fit_what_is_left(
    seed: int, n: int, hours: float, budget: float, volume: int, control: float, allocation: str
) -> None:
    # A model-arm account's more valuable option said to lose to capacity does not fit what its
    # resources have left: after all decisions, or in the learned allocation (which also holds the
    # capacity of the accounts then held back for control or exploration).
    playbook = shop(control=control, volume=volume, hours=hours, budget=budget, method="epsilon", epsilon=0.2)
    decisions, _ = _decide(n, seed, playbook, method=allocation)
    rows, cols = np.nonzero(decisions.lost_why == LOST_CODES.index("capacity"))
    short = []
    for picks in (decisions.choice, decisions.model_choice):
        ledger = CapacityLedger(decisions.resources, decisions.n, len(decisions.candidates))
        ledger.take(picks)
        short.append(ledger.short(rows, cols, picks[rows]) >= 0)
    assert (short[0] | short[1]).all()
    # A control or exploring account's: what is left once every decision is placed (what it got released),
    # else it lost to the randomisation (held_back), not to capacity.
    assert short[0][decisions.arm[rows] != "model"].all()
    reasons = decisions.lost(playbook).filter(pl.col("why") == "capacity").get_column("reason").to_list()
    assert not any("stopped short" in r for r in reasons)


BUDGET = """
control_fraction = {control}

[objectives.win]
outcome = "win"
value = "fixed"
value_usd = 100

[[actions]]
id = "banner"
name = "In-app banner"
team = "marketing"
objective = "win"
cost_usd = 1

[[actions]]
id = "webinar"
name = "Webinar"
team = "marketing"
objective = "win"
cost_usd = 2

[capacity]
budget_usd_per_team = {{ marketing = 10 }}

[exploration]
method = "epsilon"
epsilon = 0.5
seed = 1
"""


@pytest.mark.parametrize("control", [0.0, 0.3])
def test_decide_an_option_that_fits_what_is_left_lost_to_the_draw_not_to_capacity(control: float) -> None:
    # The banner ($1, worth $10) beats the webinar ($2, worth $8): the learned allocation spends the $10
    # marketing budget on ten banners and leaves the rest alone. An explorer whose learned pick was nothing
    # drew the webinar: its banner was coded capacity, "the allocation set the marketing budget aside for
    # accounts where it is worth more", though swapping the webinar for it frees budget. The draw chose.
    playbook = parse_playbook(BUDGET.format(control=control))
    ids = [f"a{i:02d}" for i in range(20)]
    features = pl.DataFrame({"account_id": ids})
    touches = pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    rules = check_rules(features, touches, playbook, T, {})
    values = pl.DataFrame(
        [(a, x, v, v - 5.0, v + 5.0) for a in ids for x, v in (("banner", 10.0), ("webinar", 8.0))],
        schema=["account_id", "action_id", "value_usd", "low", "high"],
        orient="row",
    )
    d = decide(rules, values, playbook, owners=["o"] * len(ids))
    frame = d.frame()
    lost = d.lost(playbook).join(
        frame.select("account_id", "arm", pl.col("action_id").alias("got")), on="account_id", how="left"
    )
    randomised = lost.filter((pl.col("arm") != "model") & (pl.col("action_id") == "banner"))
    assert randomised.height > 0
    # Nothing fits the budget left but what is released: no more valuable option of theirs is said to lack it.
    left = 10.0 - sum({"banner": 1.0, "webinar": 2.0}.get(a, 0.0) for a in frame.get_column("action_id"))
    release = {"none": 0.0, "banner": 1.0, "webinar": 2.0}
    for row in randomised.iter_rows(named=True):
        fits = left + release[row["got"]] + 1e-9 >= 1.0
        assert not (fits and row["why"] == "capacity"), row
    drew = randomised.filter(pl.col("got") == "webinar")
    assert drew.height > 0
    assert (
        drew.select("why", "reason").rows()
        == [
            (
                "held_back",
                "held back: this account was drawn to explore (50% of decisions), and the draw chose Webinar instead",
            )
        ]
        * drew.height
    )
    held = randomised.filter(pl.col("arm") == "control", pl.col("why") == "held_back")
    assert set(held.get_column("reason")) <= {
        "held back: this account is in the control cohort (30% of accounts), which follows the lifecycle default"
    }
    assert held.height > 0 or control == 0.0


SHARED = BUDGET.replace("cost_usd = 2\n", 'cost_usd = 2\ndefault_for_stages = ["trial"]\n').replace(
    "marketing = 10", "marketing = {budget}"
)


def _shared(budget: float) -> tuple[Decisions, Playbook]:
    """60 accounts: a banner ($1) worth a little more than a webinar ($2, every account's lifecycle default)."""
    playbook = parse_playbook(SHARED.format(control=0.3, budget=budget))
    ids = [f"a{i:02d}" for i in range(60)]
    features = pl.DataFrame({"account_id": ids})
    touches = pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    rules = check_rules(features, touches, playbook, T, {})
    values = pl.DataFrame(
        [
            (a, x, v, v - 5.0, v + 5.0)
            for i, a in enumerate(ids)
            for x, v in (("banner", 10.0 + i / 100), ("webinar", 8.0))
        ],
        schema=["account_id", "action_id", "value_usd", "low", "high"],
        orient="row",
    )
    return decide(rules, values, playbook, owners=["o"] * len(ids), stages=["trial"] * len(ids), run_key="r"), playbook


def test_decide_exploring_accounts_share_what_the_model_leaves_with_the_control_cohort() -> None:
    """The control cohort's defaults took what the model's accounts left before any explorer drew.

    The exploring accounts got nothing (the budget spent before their draw), and their receipts blamed the draw.
    Now the two randomised arms share what is left in proportion to their numbers; an explorer whose best play
    no longer fits says capacity, naming the budget, and the run notes it when that is most explorers.
    """
    d, playbook = _shared(budget=20.0)
    _check_capacity(d)
    cost = np.array([1.0, 2.0])  # banner, webinar
    spent = {
        arm: float(cost[d.choice[(d.arm == arm) & (d.choice >= 0)]].sum()) for arm in ("model", "explore", "control")
    }
    left = 20.0 - spent["model"]
    n_explore, n_control = int((d.arm == "explore").sum()), int((d.arm == "control").sum())
    share = n_explore / (n_explore + n_control)
    assert left > 4.0
    assert n_explore > 0
    assert n_control > 0
    # Each randomised arm gets its share of what is left, give or take one play.
    assert spent["explore"] >= share * left - 2.0
    assert spent["control"] >= (1 - share) * left - 2.0
    # The draw's propensities: an option capacity kept out of the draw has no exploration mass.
    explorers = np.flatnonzero(d.arm == "explore")
    assert d.draw_short.size > 0
    assert set(d.draw_short[:, 0].tolist()) <= set(explorers.tolist())
    rows, cols = d.draw_short[:, 0], d.draw_short[:, 1]
    not_drawn = 0.7 * 0.5 * (d.model_choice[rows] == cols) + 0.3 * (d.default_choice[rows] == cols)
    assert np.allclose(d.propensities[rows, cols + 1], not_drawn)
    assert np.allclose(d.propensities.sum(axis=1), 1.0)
    # Explorers left alone because their best play (the banner) no longer fitted: capacity, naming the budget.
    lost = d.lost(playbook).join(
        d.frame().select("account_id", "arm", pl.col("action_id").alias("got")), on="account_id"
    )
    starved = lost.filter((pl.col("arm") == "explore") & (pl.col("got") == "none") & (pl.col("action_id") == "banner"))
    by_capacity = starved.filter(pl.col("why") == "capacity")
    assert by_capacity.height > 0
    assert set(by_capacity.get_column("reason")) == {
        "worth more, but not enough of the marketing budget was left for it when its exploration draw was made"
    }
    # What the draw could have taken and did not is the draw's; never "the draw chose to do nothing" for the rest.
    assert set(starved.get_column("why")) <= {"capacity", "held_back"}
    alone = d.left_alone_for_capacity()
    assert set(np.asarray(d.account_ids)[alone]) == set(by_capacity.get_column("account_id"))
    note = exploration_capacity_note(d, playbook)
    if alone.sum() > 0.5 * n_explore:
        assert note is not None
        assert note.startswith(f"{int(alone.sum())} of the {n_explore} exploring accounts")
        assert "the marketing budget" in note
    else:
        assert note is None
    # Enough budget for everyone: no explorer is left alone for capacity, and no note.
    rich, playbook = _shared(budget=1000.0)
    assert not rich.left_alone_for_capacity().any()
    assert rich.draw_short.size == 0
    assert exploration_capacity_note(rich, playbook) is None


@pytest.mark.parametrize("value", [-30.0, 60.0])
def test_decide_control_default_without_capacity_loses_to_capacity_naming_it(value: float) -> None:
    # Control accounts take their default (a 1.5-hour call) whatever its value: the owner's 3 hours
    # hold two calls, so the others' defaults lost to capacity, not to value nor to the control draw.
    playbook = shop(control=0.9, method="none", hours=3.0, budget=1e9, volume=1000)
    ids = [f"c{i}" for i in range(20)]
    features = pl.DataFrame({"account_id": ids, "spend": [500.0] * 20})
    touches = pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    rules = check_rules(features, touches, playbook, T, {"spend": "number"})
    values = _values(ids, playbook, 0).with_columns(
        pl.when(pl.col("action_id") == "stylist_call").then(value).otherwise(pl.col("value_usd")).alias("value_usd")
    )
    d = decide(rules, values, playbook, owners=["o"] * 20, stages=["loyal"] * 20)
    frame = d.frame()
    assert frame.filter(pl.col("action_id") == "stylist_call").height == 2
    left_out = frame.filter((pl.col("arm") == "control") & (pl.col("action_id") == "none"))["account_id"]
    assert left_out.len() >= 10
    lost = d.lost(playbook).filter(
        pl.col("account_id").is_in(left_out.implode()) & (pl.col("action_id") == "stylist_call")
    )
    assert lost.height == left_out.len()
    assert set(lost.select("why", "reason").rows()) == {("capacity", "not enough of o's hours is left for it")}


def test_decide_blank_stage_defaults_to_nothing_so_an_action_differs() -> None:
    # A book with stages where some accounts' stage is blank: no stage names a default for them, so
    # the lifecycle playbook does nothing, and an action given to them differs from it.
    playbook = shop(control=0.0, method="none", hours=1e6, budget=1e9, volume=1000)
    ids = ["c0", "c1", "c2"]
    features = pl.DataFrame({"account_id": ids, "spend": [500.0] * 3})
    touches = pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    rules = check_rules(features, touches, playbook, T, {"spend": "number"})
    values = pl.DataFrame(
        {
            "account_id": ids,
            "action_id": ["stylist_call", "stylist_call", "vip_event"],
            "value_usd": [100.0, -5.0, 50.0],
            "low": [0.0, -50.0, 10.0],
            "high": [200.0, 30.0, 90.0],
        }
    )
    d = decide(rules, values, playbook, owners=["o"] * 3, stages=[None, None, "new"])
    frame = d.frame().select("account_id", "action_id", "default_action_id", "differs_from_default")
    assert frame.rows() == [
        ("c0", "stylist_call", "none", True),
        ("c1", "none", "none", False),
        ("c2", "vip_event", "vip_event", False),
    ]


def test_decide_never_gives_a_held_action_and_codes_it_as_the_hold_unless_unprojected() -> None:
    playbook = shop(method="none", hours=1e6, budget=1e9, volume=1000)
    features, touches, owners, stages = _book(40, 2)
    ids = features["account_id"].to_list()
    holds = pl.DataFrame(
        {"account_id": ids, "action_id": "vip_event", "why": "snoozed", "reason": "snoozed until 2025-06-20: busy"}
    )
    rules = check_rules(features, touches, playbook, T, {"spend": "number"}, holds=holds)
    values = _values(ids, playbook, 2).with_columns(pl.col("value_usd") + 500.0)  # every play worth more than none
    unprojected = ids[:5]  # the models have no value of the held action for these
    values = values.filter(~((pl.col("action_id") == "vip_event") & pl.col("account_id").is_in(unprojected)))
    d = decide(rules, values, playbook, owners=owners, stages=stages, seed=2, run_key="2025-06-02")
    assert "vip_event" not in d.frame()["action_id"].to_list()
    vip = d.lost(playbook).filter(pl.col("action_id") == "vip_event")
    assert vip.height == len(ids)
    free = vip.filter(~pl.col("account_id").is_in(unprojected))
    # A hold is coded only where no playbook rule blocks the action first.
    expected = {"snoozed"} | {Why(int(c)).code for c in rules.why[:, 2] if c not in (Why.ALLOWED, Why.SNOOZED)}
    assert set(free["why"]) <= expected
    assert free.filter(pl.col("why") == "snoozed")["reason"].unique().to_list() == ["snoozed until 2025-06-20: busy"]
    # Never projected: a rule for good (online keeps it blocked), not a hold that ends.
    gone = vip.filter(pl.col("account_id").is_in(unprojected))
    assert gone.select("why", "reason").unique().rows() == [("rule", "the models have no projection for this action")]
