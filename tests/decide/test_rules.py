"""Tests of the decision rules (eligibility, cooldown, contact caps, plays in flight) and of control/exploration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextmove.decide.explore import assign_control, epsilon_propensities, stable_uniform, thompson_propensities
from nextmove.decide.phrases import feature_phrase
from nextmove.decide.rules import Why, candidates, check_rules
from nextmove.playbook import Playbook
from nextmove.playbook.loader import parse_playbook

T = datetime(2025, 6, 1, tzinfo=UTC)
PLAYBOOK = parse_playbook(
    """
[objectives.retention]
outcome = "churn"
sense = "avoid"
value = "arr"

[[actions]]
id = "call"
name = "Call"
team = "cs"
objective = "retention"
cooldown_days = 30
eligibility = "arr >= 1000"

[[actions]]
id = "mail"
name = "Mail"
team = "marketing"
channel = "email"
objective = "retention"
variants = [{ id = "am" }, { id = "pm" }]

[contact_policy]
max_actions_per_window = 1
window_days = 14
caps = [{ team = "marketing", channel = "email", max_touches = 2, window_days = 30 }]
"""
)


def _touches(rows: list[tuple[str, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": [r[0] for r in rows],
            "action_id": [r[1] for r in rows],
            "ts": [T - timedelta(days=r[2]) for r in rows],
        },
        schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")},
    )


def test_cooldown_reason_never_reads_as_the_cooldown_itself() -> None:
    # 29.56 days ago was said "done 30 days ago, cooldown 30 days": as if the cooldown were over.
    features = pl.DataFrame({"account_id": ["cool"], "arr": [5e3]})
    check = check_rules(features, _touches([("cool", "call", 29.56)]), PLAYBOOK, T, {"arr": "number"})
    assert check.why[0].tolist()[0] == Why.COOLDOWN
    said = "cooldown: done 29 days ago, cooldown 30 days"
    assert check.reason(PLAYBOOK, 0, 0) == said
    assert check.reasons(PLAYBOOK, np.array([0]), np.array([0])).to_list() == [said]


@pytest.mark.parametrize(
    ("days", "said"), [(15.92, "15 days"), (1.5, "1 day"), (0.3, "less than a day"), (29.56, "29 days")]
)
def test_a_touch_s_days_read_alike_in_the_evidence_and_in_the_cooldown_reason(days: float, said: str) -> None:
    # 15.92 days read "last touch 16 days ago" in the evidence (rounded) and "done 15 days ago" in a runner-up's
    # reason (rounded down); under a day, "0 days ago".
    data = PLAYBOOK.model_dump(mode="json")
    data["contact_policy"]["max_actions_per_window"] = 5  # not in flight: the cooldown is the reason
    playbook = Playbook.model_validate(data)
    features = pl.DataFrame({"account_id": ["cool"], "arr": [5e3]})
    check = check_rules(features, _touches([("cool", "call", days)]), playbook, T, {"arr": "number"})
    reason = f"cooldown: done {said} ago, cooldown 30 days"
    assert check.reason(playbook, 0, 0) == reason
    assert check.reasons(playbook, np.array([0]), np.array([0])).to_list() == [reason]
    row = {"touch_call_days_since": days, "touch_any_days_since": days}
    assert feature_phrase("touch_call_days_since", row, names={"call": "Call"}) == f"last Call {said} ago"
    assert feature_phrase("touch_any_days_since", row) == f"last touch {said} ago"


@pytest.mark.parametrize(
    ("days", "said"),
    [
        (0.3, "renewal in less than a day"),
        (0.0, "renewal in less than a day"),
        (-0.3, "renewal date passed less than a day ago"),
        (45.7, "renewal in 45 days"),
        (-1.7, "renewal date passed 1 day ago"),
    ],
)
def test_a_renewal_less_than_a_day_away_never_reads_0_days(days: float, said: str) -> None:
    assert feature_phrase("days_to_renewal", {"days_to_renewal": days}) == said


def test_candidates_expand_variants() -> None:
    assert [c.key for c in candidates(PLAYBOOK)] == ["call", "mail:am", "mail:pm"]


def test_check_rules_each_reason() -> None:
    features = pl.DataFrame(
        {"account_id": ["rule", "cool", "flight", "cap", "free", "none_only"], "arr": [10.0, 5e3, 5e3, 5e3, 5e3, 5e3]}
    )
    touches = _touches(
        [
            ("cool", "call", 20.0),  # inside the 30-day cooldown
            ("flight", "mail", 3.0),  # a play 3 days ago: one per 14-day window
            ("cap", "mail", 16.0),
            ("cap", "mail", 25.0),  # two marketing e-mails in 30 days: cap reached
            ("free", "call", 45.0),  # cooldown over
            ("none_only", "none", 1.0),  # doing nothing is not a contact
            ("free", "call", -2.0),  # after the decision time: ignored
        ]
    )
    check = check_rules(features, touches, PLAYBOOK, T, {"arr": "number"})
    why = {aid: check.why[i].tolist() for i, aid in enumerate(check.account_ids)}
    assert why["rule"] == [Why.RULE, Why.ALLOWED, Why.ALLOWED]
    assert why["cool"] == [Why.COOLDOWN, Why.ALLOWED, Why.ALLOWED]
    assert why["flight"] == [Why.IN_FLIGHT] * 3
    assert why["cap"] == [Why.ALLOWED, Why.CONTACT_CAP, Why.CONTACT_CAP]
    assert why["free"] == [Why.ALLOWED] * 3
    assert why["none_only"] == [Why.ALLOWED] * 3
    assert check.reason(PLAYBOOK, 1, 0) == "cooldown: done 20 days ago, cooldown 30 days"
    assert check.reason(PLAYBOOK, 3, 1) == "contact cap: 2 marketing email touches in 30 days (max 2)"
    assert check.reason(PLAYBOOK, 0, 0) == "not eligible: arr >= 1000"
    assert "already in flight" in check.reason(PLAYBOOK, 2, 0)


def test_check_rules_missing_feature_value_is_not_eligible() -> None:
    features = pl.DataFrame({"account_id": ["a"], "arr": [None]}, schema={"account_id": pl.String, "arr": pl.Float64})
    check = check_rules(features, _touches([]), PLAYBOOK, T, {"arr": "number"})
    assert check.why[0, 0] == Why.RULE


def test_assign_control_is_stable_and_near_fraction() -> None:
    ids = [f"acc-{i}" for i in range(20_000)]
    a = assign_control(ids, 0.1, seed=7)
    assert a.tolist() == assign_control(ids, 0.1, seed=7).tolist()
    assert abs(a.mean() - 0.1) < 0.01
    # Adding accounts does not move anyone already assigned.
    assert assign_control([*ids, "new"], 0.1, seed=7)[:-1].tolist() == a.tolist()
    assert assign_control(ids, 0.1, seed=8).tolist() != a.tolist()


def test_stable_uniform_in_unit_interval() -> None:
    u = stable_uniform([str(i) for i in range(1000)], seed=1)
    assert ((u >= 0) & (u < 1)).all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1000), eps=st.just(0.0) | st.floats(1e-6, 1), n=st.integers(1, 20), k=st.integers(1, 6))
def test_propensities_sum_to_one_and_respect_allowed(seed: int, eps: float, n: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    allowed = rng.random((n, k)) < 0.6
    allowed[:, 0] = True  # doing nothing is always available
    mean = rng.normal(size=(n, k))
    best = np.where(allowed, mean, -np.inf).argmax(axis=1)
    for probs in (
        epsilon_propensities(best, allowed, eps),
        thompson_propensities(mean, np.ones((n, k)), allowed, rng, draws=32)[1],
    ):
        assert np.allclose(probs.sum(axis=1), 1.0)
        assert (probs[~allowed] == 0).all()
        assert (probs[allowed] > 0).all() or eps == 0


def test_thompson_choice_is_allowed_and_follows_the_mean() -> None:
    rng = np.random.default_rng(0)
    mean = np.array([[0.0, 5.0, 1.0]] * 200)
    allowed = np.array([[True, True, False]] * 200)
    choice, probs = thompson_propensities(mean, np.full((200, 3), 0.5), allowed, rng)
    assert set(choice.tolist()) <= {0, 1}
    assert probs[0, 1] > 0.95
    assert probs[0, 2] == pytest.approx(0.0)


def test_reasons_for_many_pairs_match_the_reason_of_each() -> None:
    features = pl.DataFrame(
        {"account_id": ["rule", "cool", "flight", "cap", "free"], "arr": [10.0, 5e3, 5e3, 5e3, 5e3]}
    )
    touches = _touches([("cool", "call", 20.0), ("flight", "mail", 3.0), ("cap", "mail", 16.0), ("cap", "mail", 25.0)])
    check = check_rules(features, touches, PLAYBOOK, T, {"arr": "number"})
    rows, cols = np.nonzero(np.ones_like(check.why, dtype=bool))
    vectorised = check.reasons(PLAYBOOK, rows, cols).to_list()
    assert vectorised == [check.reason(PLAYBOOK, int(i), int(k)) for i, k in zip(rows, cols, strict=True)]
    assert Why.COOLDOWN.code == "cooldown"
    assert Why.ALLOWED.code == ""


def test_check_rules_without_eligibility_expressions_allows_every_account() -> None:
    playbook = parse_playbook(
        """
[objectives.retention]
outcome = "churn"
value = "arr"

[[actions]]
id = "call"
name = "Call"
team = "cs"
objective = "retention"
"""
    )
    check = check_rules(pl.DataFrame({"account_id": ["a", "b", "c"]}), _touches([]), playbook, T, {})
    assert check.allowed.all()


def test_check_rules_holds_back_what_users_snoozed_or_dismissed_after_the_playbook_rules() -> None:
    features = pl.DataFrame(
        {"account_id": ["snoozed", "dismissed", "rule", "quiet", "other"], "arr": [5e3, 5e3, 10.0, 5e3, 10.0]}
    )
    holds = pl.DataFrame(
        {
            "account_id": ["snoozed", "dismissed", "rule", "quiet", "quiet", "nobody"],
            "action_id": ["mail", "call", "call", "call", "mail", "call"],
            "why": ["snoozed", "dismissed", "snoozed", "snoozed", "snoozed", "snoozed"],
            "reason": ["snoozed until 2025-06-09", "dismissed on 2025-05-30", "r", "q", "q", "n"],
        }
    )
    check = check_rules(features, _touches([("quiet", "mail", 3.0)]), PLAYBOOK, T, {"arr": "number"}, holds=holds)
    why = {aid: check.why[i].tolist() for i, aid in enumerate(check.account_ids)}
    assert why["snoozed"] == [Why.ALLOWED, Why.SNOOZED, Why.SNOOZED]  # every variant of a snoozed action
    assert why["dismissed"] == [Why.DISMISSED, Why.ALLOWED, Why.ALLOWED]
    assert why["rule"][0] == Why.RULE  # a rule's block is kept: online keeps it blocked until the next run
    assert why["quiet"] == [Why.IN_FLIGHT] * 3
    assert why["other"] == [Why.RULE, Why.ALLOWED, Why.ALLOWED]
    assert check.reason(PLAYBOOK, 0, 1) == "snoozed until 2025-06-09"
    assert Why.SNOOZED.code == "snoozed"
    rows, cols = np.nonzero(np.ones_like(check.why, dtype=bool))
    vectorised = check.reasons(PLAYBOOK, rows, cols).to_list()
    assert vectorised == [check.reason(PLAYBOOK, int(i), int(k)) for i, k in zip(rows, cols, strict=True)]
    assert vectorised[3] == "dismissed on 2025-05-30"


VARIANT_CHANNELS = parse_playbook(
    """
[objectives.retention]
outcome = "churn"
sense = "avoid"
value = "arr"

[[actions]]
id = "fix"
name = "Fix email"
team = "support"
channel = "email"
objective = "retention"
cooldown_days = 1
variants = [{ id = "morning" }, { id = "sms", channel = "sms" }]

[[actions]]
id = "refund"
name = "Refund"
team = "support"
channel = "email"
objective = "retention"

[[actions]]
id = "text"
name = "Text"
team = "support"
channel = "sms"
objective = "retention"

[contact_policy]
max_actions_per_window = 5
window_days = 14
caps = [
  { channel = "email", max_touches = 1, window_days = 21 },
  { channel = "sms", max_touches = 1, window_days = 21 },
]
"""
)


def _variant_touches(rows: list[tuple[str, str, str | None, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "account_id": [r[0] for r in rows],
            "action_id": [r[1] for r in rows],
            "variant": [r[2] for r in rows],
            "ts": [T - timedelta(days=r[3]) for r in rows],
        },
        schema={"account_id": pl.String, "action_id": pl.String, "variant": pl.String, "ts": pl.Datetime("us", "UTC")},
    )


def test_contact_caps_count_a_touch_on_its_logged_variant_s_channel() -> None:
    features = pl.DataFrame({"account_id": ["by_sms", "by_email", "bare", "unknown_variant", "quiet"]})
    touches = _variant_touches(
        [
            ("by_sms", "fix", "sms", 18.0),  # an sms: does not fill the email cap, fills the sms one
            ("by_email", "fix", "morning", 18.0),  # an email variant: fills the email cap
            ("bare", "fix", None, 18.0),  # no variant logged: the action's channel (email)
            ("unknown_variant", "fix", "retired", 18.0),  # a variant the playbook lost: the action's channel
        ]
    )
    check = check_rules(features, touches, VARIANT_CHANNELS, T, {})
    keys = [c.key for c in check.candidates]
    assert keys == ["fix:morning", "fix:sms", "refund", "text"]
    why = {
        aid: dict(zip(keys, (Why(int(w)) for w in check.why[i]), strict=True))
        for i, aid in enumerate(check.account_ids)
    }
    # A candidate is checked against its own channel's cap: the sms variant against the sms cap.
    assert why["by_sms"] == {
        "fix:morning": Why.ALLOWED,
        "fix:sms": Why.CONTACT_CAP,
        "refund": Why.ALLOWED,
        "text": Why.CONTACT_CAP,
    }
    for account in ("by_email", "bare", "unknown_variant"):
        assert why[account] == {
            "fix:morning": Why.CONTACT_CAP,
            "fix:sms": Why.ALLOWED,
            "refund": Why.CONTACT_CAP,
            "text": Why.ALLOWED,
        }, account
    assert set(why["quiet"].values()) == {Why.ALLOWED}
    i = check.account_ids.index("by_sms")
    assert check.reason(VARIANT_CHANNELS, i, keys.index("text")) == "contact cap: 1 sms touches in 21 days (max 1)"
    # Touches without a variant column count on their action's channel, as before.
    plain = check_rules(features, touches.drop("variant"), VARIANT_CHANNELS, T, {})
    assert Why(int(plain.why[0, keys.index("refund")])) == Why.CONTACT_CAP
    assert Why(int(plain.why[0, keys.index("fix:sms")])) == Why.ALLOWED


def test_online_contact_rules_count_touches_by_variant_channel_as_the_batch_does() -> None:
    from nextmove.engine.online import ContactRules, OnlineTouch, Option

    rules = ContactRules(VARIANT_CHANNELS)
    options = [
        Option("fix", "morning", 1.0, 0.0, 2.0),
        Option("fix", "sms", 1.0, 0.0, 2.0),
        Option("refund", None, 1.0, 0.0, 2.0),
        Option("text", None, 1.0, 0.0, 2.0),
        Option("none", None, 0.0, 0.0, 0.0),
    ]
    cases = {
        "sms": ["fix:sms", "text"],
        "morning": ["fix:morning", "refund"],
        None: ["fix:morning", "refund"],
        "retired": ["fix:morning", "refund"],
    }
    for variant, capped in cases.items():
        touches = [OnlineTouch("fix", T - timedelta(days=18), variant)]
        blocks = rules.blocks(options, touches, T)
        got = [o.key for o, b in zip(options, blocks, strict=True) if b is not None]
        assert got == capped, variant
        assert all(b[0] == "contact_cap" for b in blocks if b is not None)


RENAMED = """
[objectives.expansion]
outcome = "expansion"
value = "amount"

[[actions]]
id = "upsell_call"
name = "Upsell call"
team = "sales"
objective = "expansion"
cooldown_days = 45
eligibility = "false"   # retired: kept for its history

[[actions]]
id = "expansion_call"
name = "Expansion call"
team = "sales"
objective = "expansion"
cooldown_days = 45

[contact_policy]
max_actions_per_window = 1
window_days = 14
"""


SALES_CALLS_CAP = 'caps = [{ team = "sales", channel = "call", max_touches = 1, window_days = 45 }]'


@pytest.mark.parametrize("cap", ["", SALES_CALLS_CAP])
def test_a_new_id_for_a_retired_action_is_not_held_by_its_cooldown_but_a_team_cap_spaces_both(cap: str) -> None:
    """What docs/decide.md (Renaming an action) says: cooldowns are per action id; plays in flight and the caps
    of a team and channel count the retired action's plays."""
    playbook = parse_playbook(RENAMED + cap)
    features = pl.DataFrame({"account_id": ["upsold", "just_now"], "arr": [5e3, 5e3]})
    touches = _touches([("upsold", "upsell_call", 16.0), ("just_now", "upsell_call", 3.0)])
    check = check_rules(features, touches, playbook, T, {"arr": "number"})
    why = {aid: check.why[i].tolist() for i, aid in enumerate(check.account_ids)}
    new = [c.key for c in candidates(playbook)].index("expansion_call")
    assert why["upsold"][new] == (Why.CONTACT_CAP if cap else Why.ALLOWED)
    assert why["just_now"][new] == Why.IN_FLIGHT
