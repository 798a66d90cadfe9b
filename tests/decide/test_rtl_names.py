"""A right-to-left name keeps to itself in the receipts' sentences: the numbers beside it stay where they are said.

Spliced into an English sentence, an Arabic or Hebrew signal or action name took the numbers next to
it into its right-to-left run (the Unicode bidi algorithm reads digits by the letters before them):
"جلسات التطبيق: 6 reports in 90 days" showed as "6 :جلسات التطبيق reports in 90 days", "last رسالة
90 days ago" as "last 90 رسالة days ago". Each such name is now cleaned of its own bidi controls and
set apart with FSI … PDI; the sentences keep only those balanced pairs.
"""

from __future__ import annotations

import json
import re

import polars as pl
from tests.decide.test_explain import flat_projection

from nextmove.decide.explain import explain_decisions, parse_alternatives, parse_evidence, receipt_text
from nextmove.decide.phrases import Labels, feature_phrase
from nextmove.models.effect import EffectProjection
from nextmove.playbook.loader import parse_playbook

FSI, PDI = "\u2068", "\u2069"
RLO, RLM, LRI = "\u202e", "\u200f", "\u2066"
OTHER_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067"
"""The Bidi_Control characters but FSI and PDI: none may be left in a sentence."""

SESSIONS = "جلسات التطبيق"
IN_APP = "رسالة داخل التطبيق"
PUSH = "הודעת פוש"
LAPSE = "إلغاء"


def _balanced(text: str) -> bool:
    """Only balanced FSI … PDI pairs holding no control, and no other bidi control."""
    pairs = re.sub(f"{FSI}[^{OTHER_CONTROLS}{FSI}{PDI}]*{PDI}", "", text)
    return not any(c in pairs for c in OTHER_CONTROLS + FSI + PDI)


def test_signal_phrases_set_a_right_to_left_name_apart_and_leave_others_as_they_are() -> None:
    names = Labels(
        signals={"app_sessions": f"{RLM}جلسات{RLO} التطبيق", "views": "צפיות", "logins": "logins"},
        touches={"in_app": f"{LRI}{IN_APP}"},
    )
    row = {
        "app_sessions_count_90d": 6.0,
        "views_sum_7d": 1.0,
        "touch_in_app_days_since": 90.0,
        "logins_sum_28d": 41.0,
        "city": f"תל אביב{PDI}",
    }
    said = {
        f: feature_phrase(f, row, names=names, reports={"app_sessions"})
        for f in ("app_sessions_count_90d", "views_sum_7d", "touch_in_app_days_since", "logins_sum_28d", "city")
    }
    assert said == {
        "app_sessions_count_90d": f"{FSI}{SESSIONS}{PDI}: 6 reports in 90 days",
        "views_sum_7d": f"{FSI}צפיות{PDI} 1 in total over 7 days",
        "touch_in_app_days_since": f"last {FSI}{IN_APP}{PDI} 90 days ago",
        # A name of left-to-right letters reads the same either way: no invisible character is added.
        "logins_sum_28d": "logins 41 in total over 28 days",
        "city": f"city {FSI}תל אביב{PDI}",
    }


PLAYBOOK = f"""
control_fraction = 0.0
exploration = {{ method = "none" }}

[objectives.keep]
name = "الاحتفاظ{RLO}"
outcome = "{LAPSE}"
sense = "avoid"
value = "fixed"
value_usd = 100

[[actions]]
id = "in_app"
name = "{PDI}{IN_APP}{FSI}"
team = "product"
objective = "keep"
cost_usd = 1
default_for_stages = ["new"]

[[actions]]
id = "push"
name = "{PUSH}"
team = "product"
objective = "keep"
cost_usd = 2
variants = [{{ id = "evening" }}]
"""


def test_receipt_sentences_isolate_right_to_left_names_after_dropping_their_own_controls() -> None:
    playbook = parse_playbook(PLAYBOOK)
    ids = ["u-1", "u-2", "u-3"]
    flat = flat_projection(ids, {"in_app": 10.0, "push": 30.0, "push:evening": 30.0})
    effects = flat.effects.with_columns(objective=pl.lit("keep"), outcome=pl.lit(LAPSE))
    projection = EffectProjection(level=flat.level, effects=effects, values=flat.values, flagged_actions=())
    decisions = pl.DataFrame(
        {
            "account_id": ids,
            "action_id": ["push", "none", "in_app"],
            "variant": ["evening", None, None],
            "arm": ["model", "model", "control"],
            "propensity": [0.9, 0.9, 1.0],
            "model_action_id": ["push", "none", "push"],
            "default_action_id": ["in_app", "in_app", "in_app"],
            "value_usd": [30.0, 0.0, 10.0],
            "value_low_usd": [25.0, 0.0, 5.0],
            "value_high_usd": [35.0, 0.0, 15.0],
        }
    )
    lost = pl.DataFrame(
        [
            ("u-1", "in_app", None, "lower_value", ""),
            ("u-2", "push", None, "cooldown", "cooldown: done 3 days ago"),
            ("u-2", "in_app", None, "lower_value", ""),
            ("u-3", "push", None, "lower_value", ""),
        ],
        schema=["account_id", "action_id", "variant", "why", "reason"],
        orient="row",
    )
    out = explain_decisions(pl.DataFrame({"account_id": ids}), projection, decisions, lost, playbook, top_signals=0)
    receipts = {
        a: (json.loads(e), json.loads(alt))
        for a, e, alt in out.select("account_id", "evidence", "alternatives").iter_rows()
    }
    summary = {a: parse_evidence(json.dumps(e)).summary for a, (e, _) in receipts.items()}
    # The names are set apart, cleaned of the controls they held; the numbers stay outside them.
    assert summary["u-1"].startswith(f"{FSI}{PUSH}{PDI} (evening) — {FSI}{LAPSE}{PDI} within 90 days: 20% → ")
    assert f"the best other option, {FSI}{PUSH}{PDI} ($30), lost: cooldown" in summary["u-2"]
    assert summary["u-3"].startswith(f"Control group: {FSI}{IN_APP}{PDI}, as the lifecycle playbook says")
    assert summary["u-3"].endswith(f"; the model would choose {FSI}{PUSH}{PDI}.")
    default_why = receipts["u-1"][0]["default_why"]
    assert default_why == (
        f"The lifecycle default, {FSI}{IN_APP}{PDI}, worth $10 against $30 for {FSI}{PUSH}{PDI} (evening)."
    )
    texts = [*summary.values(), *out.get_column("summary").to_list()]
    for evidence, alternatives in receipts.values():
        texts.append(str(evidence["default_why"]))
        texts += [a.reason for a in parse_alternatives(json.dumps(alternatives))]
        text = receipt_text(evidence, alternatives, playbook=playbook)
        assert f"Projected over the horizon with {FSI}" in text or "if nothing is done" in text
        assert f"  - {FSI}الاحتفاظ{PDI} ({FSI}{LAPSE}{PDI}): 20% chance without" in text
        texts.append(text)
    assert all(_balanced(t) for t in texts), [ascii(t) for t in texts if not _balanced(t)]
    # Ids and the book's data are as they were.
    assert receipts["u-1"][0]["variant"] == "evening"
    assert receipts["u-1"][0]["projected"][0]["outcome"] == LAPSE


def test_stray_bidi_controls_go_and_balanced_isolates_stay() -> None:
    from nextmove.decide.phrases import without_stray_bidi_controls

    assert without_stray_bidi_controls(f"a {FSI}ب{PDI} 1") == f"a {FSI}ب{PDI} 1"
    # A lone isolate, a pair around another control or another pair, and every other control go.
    assert without_stray_bidi_controls(f"{PDI}a {FSI}b") == "a b"
    assert without_stray_bidi_controls(f"{FSI}x{RLO}y{PDI} 2") == "xy 2"
    assert without_stray_bidi_controls(f"{FSI}x {FSI}y{PDI}{PDI}") == f"x {FSI}y{PDI}"
    assert pl.select(without_stray_bidi_controls(pl.lit(f"{RLM}{FSI}ج{PDI}{LRI}"))).item() == f"{FSI}ج{PDI}"


def test_online_receipts_name_actions_as_the_runs_do() -> None:
    # The online decider's sentences ("The lifecycle default, X, …") put the playbook's names as they were.
    from nextmove.engine.online import _action_name

    playbook = parse_playbook(PLAYBOOK)
    assert _action_name(playbook, "in_app") == f"{FSI}{IN_APP}{PDI}"
    assert _action_name(playbook, "push") == f"{FSI}{PUSH}{PDI}"
    assert _action_name(playbook, "none") == "doing nothing"
