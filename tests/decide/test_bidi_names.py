"""A name holding bidi controls cannot reorder the receipts' sentences it is put in.

A right-to-left override (U+202E) in an action's, objective's or signal's name, or in a book's text
value, made the rest of the sentence show reversed wherever it was read: the report, a spreadsheet
of ``recommendations.csv``, a terminal ("Trojan Source" text). The sentences drop the bidi controls;
the ids and the book's data keep them.
"""

from __future__ import annotations

import json

import polars as pl
from tests.decide.test_explain import flat_projection

from nextmove.decide.explain import _Catalog, explain_decisions, parse_alternatives, parse_evidence, receipt_text
from nextmove.decide.phrases import feature_phrase
from nextmove.models.effect import EffectProjection
from nextmove.playbook.loader import parse_playbook

RLO, PDF, RLI, RLM = "\u202e", "\u202c", "\u2067", "\u200f"
# The Unicode Bidi_Control characters: ALM, LRM, RLM, LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

PLAYBOOK = f"""
control_fraction = 0.0
exploration = {{ method = "none" }}

[objectives.keep]
name = "Keep{RLO} sremotsuc"
outcome = "lapsed{RLO} ylevitca"
sense = "avoid"
value = "fixed"
value_usd = 100

[[actions]]
id = "visit"
name = "Site{RLO} tisiv"
team = "field"
objective = "keep"
cost_usd = 5

[[actions]]
id = "letter"
name = "Thank-you {RLI}letter"
team = "mail"
objective = "keep"
cost_usd = 1
default_for_stages = ["loyal"]

[signal_roles]
usage = ["orders{RLO} last{PDF} week"]
"""


def _clean(text: str) -> bool:
    return not any(c in text for c in BIDI_CONTROLS)


def test_receipt_sentences_drop_the_bidi_controls_of_the_names_they_hold() -> None:
    playbook = parse_playbook(PLAYBOOK)
    ids = ["s-1", "s-2", "s-3"]
    flat = flat_projection(ids, {"visit": 30.0, "letter": 10.0})
    effects = flat.effects.with_columns(objective=pl.lit("keep"), outcome=pl.lit(f"lapsed{RLO} ylevitca"))
    projection = EffectProjection(level=flat.level, effects=effects, values=flat.values, flagged_actions=())
    decisions = pl.DataFrame(
        {
            "account_id": ids,
            "action_id": ["visit", "none", "letter"],
            "variant": [None, None, None],
            "arm": ["model", "model", "control"],
            "propensity": [0.9, 0.9, 1.0],
            "model_action_id": ["visit", "none", "visit"],
            "default_action_id": ["letter", "letter", "letter"],
            "value_usd": [30.0, 0.0, 10.0],
            "value_low_usd": [25.0, 0.0, 5.0],
            "value_high_usd": [35.0, 0.0, 15.0],
        },
        schema_overrides={"variant": pl.String},
    )
    lost = pl.DataFrame(
        [
            ("s-1", "letter", None, "lower_value", ""),
            ("s-2", "visit", None, "rule", f"not eligible: region is {RLM}North{RLO} tsae"),
            ("s-2", "letter", None, "cooldown", "cooldown: done 3 days ago"),
            ("s-3", "visit", None, "lower_value", ""),
        ],
        schema=["account_id", "action_id", "variant", "why", "reason"],
        orient="row",
    )
    out = explain_decisions(pl.DataFrame({"account_id": ids}), projection, decisions, lost, playbook, top_signals=0)
    texts = []
    for evidence, alternatives in out.select("evidence", "alternatives").iter_rows():
        receipt = parse_evidence(evidence)
        texts += [receipt.summary, receipt.default_why]
        texts += [a.reason for a in parse_alternatives(alternatives)]
        texts.append(receipt_text(json.loads(evidence), json.loads(alternatives), playbook=playbook))
    texts += out.get_column("summary").to_list()
    assert all(_clean(t) for t in texts), [t for t in texts if not _clean(t)]
    said = " ".join(texts)
    # The names' letters stay, in the order the book wrote them.
    for name in (
        "Site tisiv",
        "Thank-you letter",
        "Keep sremotsuc",
        "lapsed ylevitca",
        "not eligible: region is North tsae",
    ):
        assert name in said, name
    # The ids are the playbook's, as they were.
    assert out.filter(pl.col("account_id") == "s-1").item(0, "evidence").count('"action_id":"visit"') == 1


def test_signal_phrases_drop_the_bidi_controls_of_names_and_text_values() -> None:
    names = _Catalog.of(parse_playbook(PLAYBOOK)).stems
    row = {"orders_last_week_mean_28d": 3.0, "touch_visit_days_since": 4.0, "region": f"North{RLO} tsae"}
    phrases = [
        feature_phrase("orders_last_week_mean_28d", row, names=names),
        feature_phrase("touch_visit_days_since", row, names=names),
        feature_phrase("region", row, names=names),
    ]
    assert phrases == [
        "orders last week 3 on average over 28 days",
        "last Site tisiv 4 days ago",
        "region North tsae",
    ]
