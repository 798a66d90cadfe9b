"""The report: content built from a run's summary and recommendations, rendered offline."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import polars as pl
import pytest

from nextmove.errors import ConfigError
from nextmove.report import build_report_data, render_report, write_report
from nextmove.report.data import MAX_TABLE_ROWS, left_alone_by_draw


def make_run(n: int = 400, seed: int = 0) -> tuple[dict[str, Any], pl.DataFrame]:
    """A run's summary and recommendations for a B2C shop (not a lab book): other names throughout."""
    rng = np.random.default_rng(seed)
    actions = ["none", "winback_sms", "loyalty_points", "vip_upgrade"]
    action = rng.choice(actions, size=n, p=[0.4, 0.3, 0.2, 0.1])
    default = rng.choice(actions, size=n)
    value = np.where(action == "none", 0.0, rng.gamma(2.0, 40.0, size=n))
    recs = pl.DataFrame(
        {
            "account_id": [f"shopper-{i:05d}" for i in range(n)],
            "owner": rng.choice(["team-north", "team-south"], size=n),
            "lifecycle_stage": rng.choice(["new", "repeat", "lapsed"], size=n),
            "arr": rng.gamma(2.0, 300.0, size=n),
            "health_score": rng.uniform(0, 100, size=n),
            "action_id": action,
            "arm": rng.choice(["model", "control", "explore"], size=n, p=[0.85, 0.1, 0.05]),
            "expected_value_usd": value,
            "value_low_usd": value * 0.5,
            "value_high_usd": value * 1.5,
            "default_action_id": default,
            "differs_from_default": action != default,
            "evidence": [json.dumps({"summary": f"{i % 7} orders in 90 days"}) for i in range(n)],
        }
    ).with_columns(
        pl.when(pl.col("health_score") > 70)
        .then(pl.lit("Healthy"))
        .when(pl.col("health_score") > 30)
        .then(pl.lit("At risk"))
        .otherwise(pl.lit("Critical"))
        .alias("health_band")
    )
    total = float(recs.get_column("expected_value_usd").sum())
    summary = {
        "run_id": "run-b2c",
        "as_of": "2026-03-01T00:00:00+00:00",
        "accounts": n,
        "actions": 3,
        "do_nothing": int((action == "none").sum()),
        "differs_from_default_share": float((action != default).mean()),
        "projected_impact_usd": {"value": total, "low": total * 0.5, "high": total * 1.5},
        "action_labels": {
            "winback_sms": "Win-back SMS",
            "loyalty_points": "Loyalty points",
            "vip_upgrade": "VIP upgrade",
        },
        "action_families": {"winback_sms": "retention", "loyalty_points": "retention", "vip_upgrade": "expansion"},
        "impact_by_objective": [
            {
                "objective": "repeat_purchase",
                "label": "Repeat purchase",
                "value_usd": total,
                "low": 0.0,
                "high": 2 * total,
            }
        ],
        "policy_values": [
            {"policy": "learned", "method": "dr", "estimate": 4.2, "low": 3.1, "high": 5.3, "n": 900},
            {"policy": "default", "method": "dr", "estimate": 2.0, "low": 1.0, "high": 3.0, "n": 900},
        ],
        "arms": {"model": 300, "control": 40, "explore": 60},
    }
    return summary, recs


def test_report_data_counts_and_sentences_follow_the_run() -> None:
    summary, recs = make_run()
    data = build_report_data(summary, recs)
    assert sum(c.count for c in data.actions) == recs.height
    retention = recs.filter(pl.col("action_id").is_in(["winback_sms", "loyalty_points"])).height
    assert next(c.count for c in data.families if c.label == "retention") == retention
    assert f"{retention:,} customers were assigned a retention action" in data.sentences[1]
    share = summary["differs_from_default_share"]
    assert any(
        f"{share:.0%} of accounts get something other than their lifecycle-stage default" in s for s in data.sentences
    )
    assert sum(s.accounts for s in data.stages) == recs.height
    assert sum(b.accounts for b in data.bands) == recs.height
    assert {b.band for b in data.bands} <= {"Healthy", "At risk", "Critical"}
    # At-risk accounts are the At risk / Critical ones, most ARR first.
    assert data.top_at_risk
    assert all(r["band"] in {"At risk", "Critical"} for r in data.top_at_risk)
    assert len(data.table) == recs.height
    assert {p.policy for p in data.policies} == {"learned", "default"}


def test_report_without_optional_blocks_says_what_is_missing() -> None:
    recs = pl.DataFrame({"account_id": ["a"], "action_id": ["none"], "expected_value_usd": [0.0]})
    data = build_report_data({"accounts": 1, "actions": 2}, recs)
    assert any("off-policy" in n for n in data.notes)
    html = render_report(data)
    assert "This run has no off-policy estimates" in html


def test_report_rejects_recommendations_without_required_columns() -> None:
    with pytest.raises(ConfigError, match="expected_value_usd"):
        build_report_data({}, pl.DataFrame({"account_id": ["a"], "action_id": ["none"]}))


def test_report_is_self_contained_and_escapes_text(tmp_path: Any) -> None:
    summary, recs = make_run(50)
    recs = recs.with_columns(pl.lit(json.dumps({"summary": "</script><img src=x onerror=alert(1)>"})).alias("evidence"))
    path = write_report(build_report_data(summary, recs), tmp_path / "out" / "report.html")
    html = path.read_text()
    # No resource is fetched: no src/href to another host, no <link>, no external script.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<link" not in html
    # The evidence stays text: escaped in the tables, and unable to close the data <script>.
    assert "</script><img" not in html
    assert "&lt;/script&gt;&lt;img src=x" in html
    assert html.count("<svg") >= 4
    assert not (tmp_path / "out" / "report.html.tmp").exists()


def test_large_runs_embed_only_the_largest_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nextmove.report.data.MAX_TABLE_ROWS", 100)
    summary, recs = make_run(300)
    data = build_report_data(summary, recs)
    assert len(data.table) == 100
    assert data.table_note is not None
    kept = sorted((abs(r["value"]) for r in data.table), reverse=True)
    top = sorted(recs.get_column("expected_value_usd").abs().round(2).to_list(), reverse=True)[:100]
    assert kept == pytest.approx(top)
    assert MAX_TABLE_ROWS >= 10_000


def test_health_bands_are_drawn_green_amber_red_and_small_dollars_keep_their_cents() -> None:
    from nextmove.report.charts import BAND_COLORS, money_short

    def usd(x: float) -> str:
        return money_short(x, "USD")

    from nextmove.report.render import charts

    summary, recs = make_run()
    svg = str(charts(build_report_data(summary, recs))["bands"])
    for band in ("Healthy", "At risk", "Critical"):
        bar = svg.split(f"<title>{band}:")[0].rsplit("<rect", 1)[1]
        assert f'fill="{BAND_COLORS[band]}"' in bar, band
    assert (usd(0.857), usd(-2.5), usd(5.0), usd(-0.001), usd(12_400)) == ("$0.86", "-$2.50", "$5", "$0", "$12k")


def test_short_dollars_keep_a_decimal_below_ten_thousand_and_intervals_read_low_to_high() -> None:
    from nextmove.report.charts import money_short
    from nextmove.report.render import charts

    def usd(x: float) -> str:
        return money_short(x, "USD")

    assert (usd(1_804), usd(-1_026), usd(2_500_000), usd(12_400), usd(-340_000)) == (
        "$1.8k",
        "-$1.0k",
        "$2.5M",
        "$12k",
        "-$340k",
    )
    summary, recs = make_run()
    summary["impact_by_objective"] = [
        {"label": "Keep subscribers", "value_usd": 157.0, "low": -1_026.0, "high": 1_804.0}
    ]
    summary["policy_values"][0].update(estimate=-1.5, low=-3.0, high=0.5)
    svg = str(charts(build_report_data(summary, recs))["impact"])
    assert "$157 (-$1.0k to $1.8k)" in svg
    # One minus sign on the whole page: money_text's "-$".
    assert "−" not in render_report(build_report_data(summary, recs))


def test_report_without_run_id_or_as_of_leaves_out_their_labels() -> None:
    recs = pl.DataFrame({"account_id": ["a"], "action_id": ["none"], "expected_value_usd": [0.0]})
    html = render_report(build_report_data({"accounts": 1, "actions": 2}, recs))
    meta = html.split('<div class="meta">')[1].split("</div>")[0]
    assert meta.startswith("generated ")
    assert "decisions as of" not in html
    assert "Run <code>" not in html
    summary, recs = make_run(5)
    meta = render_report(build_report_data(summary, recs)).split('<div class="meta">')[1].split("</div>")[0]
    assert meta.startswith(
        'Run <code>run-b2c</code> · decisions as of <time datetime="2026-03-01T00:00:00+00:00">1 March 2026</time> · '
        "generated "
    )


_EVIDENCE = {"n": 400, "effective_sample_size": 120.0, "matched_share": 0.35}


def test_off_policy_metric_shows_the_low_end_it_is_judged_by() -> None:
    # A summary without the paired difference (stored before runs kept it) is judged as before.
    from nextmove.engine.run_facts import metrics

    values = [
        {"policy": "learned", "method": "dr", "estimate": 12.0, "low": 1.0, "high": 20.0, **_EVIDENCE},
        {"policy": "default", "method": "dr", "estimate": 2.07, "low": 0.0, "high": 4.0, **_EVIDENCE},
    ]
    row = next(m for m in metrics({"policy_values": values}) if m["metric"].startswith("Off-policy"))
    assert row["current"] == "+9.93 (interval low end -1.07)"
    assert "low end above 0" in row["benchmark"]
    assert row["status"] == "Review"
    values[0]["low"] = 3.0
    row = next(m for m in metrics({"policy_values": values}) if m["metric"].startswith("Off-policy"))
    assert (row["current"], row["status"]) == ("+9.93 (interval low end +0.93)", "On track")


def test_off_policy_metric_is_judged_on_the_paired_difference() -> None:
    # The learned policy's low end above the default's estimate said "On track" although the
    # paired difference's interval, the one that compares the two on the same decisions, holds 0.
    from nextmove.engine.run_facts import metrics

    values = [
        {"policy": "learned", "method": "dr", "estimate": 12.0, "low": 3.0, "high": 20.0, **_EVIDENCE},
        {"policy": "default", "method": "dr", "estimate": 2.07, "low": 0.0, "high": 4.0, **_EVIDENCE},
    ]
    difference = {"policy": "learned - default", "method": "dr", "estimate": 9.93, "low": -0.5, "high": 20.36}
    summary = {"policy_values": values, "policy_differences": [difference]}
    row = next(m for m in metrics(summary) if m["metric"].startswith("Off-policy"))
    assert (row["current"], row["status"]) == ("+9.93 (paired interval -0.50 to +20.36)", "Review")
    assert "paired difference" in row["benchmark"]
    difference["low"] = 0.5
    row = next(m for m in metrics(summary) if m["metric"].startswith("Off-policy"))
    assert (row["current"], row["status"]) == ("+9.93 (paired interval +0.50 to +20.36)", "On track")


def test_off_policy_metric_says_why_the_paired_difference_has_no_interval() -> None:
    # A default taking actions the history never took has no DR interval: the row says why, and the
    # fallback does not judge the learned policy's low end against that model-only estimate.
    from nextmove.engine.run_facts import metrics

    values = [
        {"policy": "learned", "method": "dr", "estimate": 12.0, "low": 3.0, "high": 20.0, **_EVIDENCE},
        {"policy": "default", "method": "dr", "estimate": 2.07, "low": None, "high": None, **_EVIDENCE},
    ]
    why = "the history never took coach_call, which the baseline takes on 46% of the decisions"
    difference = {"policy": "learned - default", "method": "dr", "estimate": 9.93, "low": None, "high": None}
    row = next(
        m
        for m in metrics({"policy_values": values, "policy_differences": [{**difference, "note": why}]})
        if m["metric"].startswith("Off-policy")
    )
    assert row["current"] == f"+9.93 (no interval: {why})"
    assert row["status"] == "Review"
    assert not any(m["metric"].startswith("Off-policy") for m in metrics({"policy_values": values}))


@pytest.mark.parametrize(
    ("evidence", "said"),
    [
        ({"n": 2, "effective_sample_size": 0.0, "matched_share": 0.0}, "2 logged decisions (at least 30)"),
        ({"n": 400, "effective_sample_size": 4.0, "matched_share": 0.35}, "effective sample size learned 4.0"),
        ({"n": 400, "effective_sample_size": 120.0, "matched_share": 0.02}, "matched share learned 2%"),
    ],
)
def test_off_policy_metric_is_not_on_track_on_too_little_evidence(evidence: dict[str, float], said: str) -> None:
    # A 3-account book: 2 decisions, ESS 0, no logged decision matching (DR = the in-sample model
    # alone), and the Metrics table said "On track".
    from nextmove.engine.run_facts import metrics

    values = [
        {"policy": "learned", "method": "dr", "estimate": 135.83, "low": 126.96, "high": 144.71, **evidence},
        {"policy": "default", "method": "dr", "estimate": 120.83, "low": 82.56, "high": 159.11, **_EVIDENCE},
    ]
    difference = {"policy": "learned - default", "method": "dr", "estimate": 15.0, "low": 6.12, "high": 23.88}
    for summary in ({"policy_values": values}, {"policy_values": values, "policy_differences": [difference]}):
        row = next(m for m in metrics(summary) if m["metric"].startswith("Off-policy"))
        assert row["status"] == "Review"
        assert "too little evidence to judge: " in row["current"]
        assert said in row["current"]


def test_segments_use_the_playbooks_action_names_and_plain_feature_words() -> None:
    summary, recs = make_run(20)
    family = {"family": "crm", "value_usd": 5.2, "ratio": 1.4, "best_action": "vip_upgrade", "material": True}
    summary["segments"] = {
        "segments": [
            {
                "id": 0,
                "name": "frequent shoppers",
                "accounts": 20,
                "traits": [{"feature": "orders_count_90d", "z": 0.9}, {"feature": "basket_usd_mean_28d", "z": -0.4}],
                "response": {"value_usd": 5.2, "ratio": 1.3, "families": [family]},
                "headline": "frequent shoppers: 20 accounts; best family crm (vip_upgrade)",
            }
        ]
    }
    segment = build_report_data(summary, recs).segments[0]
    assert segment.response == "responds 1.3× the book average; best family crm (VIP upgrade), 1.4× the book average"
    assert segment.details[0] == "distinct by: high orders count over 90 days, low basket usd over 28 days"


def test_report_names_no_best_family_when_no_family_pays_reliably() -> None:
    # "best family marketing (Promo email), -$1 per account" when every response was $0.
    summary, recs = make_run(20)
    family = {"family": "marketing", "value_usd": -1.0, "ratio": None, "best_action": "promo_email", "material": False}
    summary["segments"] = {
        "segments": [
            {
                "id": 0,
                "name": "quiet",
                "accounts": 20,
                "traits": [],
                "response": {"value_usd": 0.0, "ratio": None, "families": [family]},
            }
        ]
    }
    segment = build_report_data(summary, recs).segments[0]
    assert segment.response == "worth $0 per account (no action gains on average); no action pays reliably here"


def test_report_says_a_segment_figure_or_a_gain_that_may_be_zero_is_not_reliable() -> None:
    # "responds 1.1× the book average; best family sales, $26 per account" from figures of [-$384, $353].
    summary, recs = make_run(20)
    family = {"family": "sales", "value_usd": 26.0, "low": -384.0, "high": 353.0, "ratio": None,
              "best_action": "renewal_call", "material": False}  # fmt: skip
    response = {"value_usd": 26.0, "low": -384.0, "high": 353.0, "ratio": None, "families": [family],
                "best_family": None}  # fmt: skip
    spend = {"touches": 90, "days": 90, "share_below_average": 0.4, "touches_below_average": 36,
             "moved_touches": 12, "recoverable_usd": 1_830.0, "low": -240.0, "high": 3_100.0}  # fmt: skip
    summary["segments"] = {
        "segments": [{"id": 0, "name": "field", "accounts": 20, "traits": [], "response": response}],
        "spend": spend,
    }
    data = build_report_data(summary, recs)
    assert data.segments[0].response == (
        "worth $26 per account (-$384 to $353; the book average is not reliably above $0); no action pays reliably here"
    )
    said = next(n for n in data.segment_notes if "touches went to" in n)
    assert said.endswith("moving 12 of them is projected at $1.8k (-$240 to $3.1k), not reliably above $0.")
    summary["segments"]["spend"] = {**spend, "low": 120.0}
    said = next(n for n in build_report_data(summary, recs).segment_notes if "touches went to" in n)
    assert said.endswith("moving 12 of them is projected to recover $1.8k ($120 to $3.1k).")
    summary["segments"]["spend"] = {**spend, "moved_touches": 0, "recoverable_usd": 0.0, "low": 0.0, "high": 0.0}
    said = next(n for n in build_report_data(summary, recs).segment_notes if "touches went to" in n)
    assert said.endswith(
        "none is moved: no untouched account of a segment whose best action pays reliably would gain from one."
    )


def test_report_names_the_best_family_the_summary_names() -> None:
    # The summary's best_family is the segment rule's word; the report read value_usd > 0 again.
    summary, recs = make_run(20)
    families = [
        {"family": "crm", "value_usd": 3.0, "ratio": None, "best_action": "vip_upgrade", "material": False},
        {"family": "marketing", "value_usd": 2.0, "ratio": None, "best_action": "promo_email", "material": False},
    ]
    response = {"value_usd": 3.0, "ratio": None, "families": families}
    for best, said in (
        (None, "no action pays reliably here"),
        ("marketing", "best family marketing (promo_email), $2 per account"),
    ):
        summary["segments"] = {
            "segments": [
                {"id": 0, "name": "quiet", "accounts": 20, "traits": [], "response": {**response, "best_family": best}}
            ]
        }
        assert build_report_data(summary, recs).segments[0].response.endswith(said)


def test_report_says_which_customers_left_alone_are_control_or_exploration() -> None:
    summary, recs = make_run()
    nothing = recs.filter(pl.col("action_id") == "none")
    drawn = nothing.filter(pl.col("arm") != "model").height
    assert drawn > 0
    sentence = next(s for s in build_report_data(summary, recs).sentences if "left alone" in s)
    assert f"for {nothing.height - drawn:,}, no action is worth more than it costs" in sentence
    assert f"{drawn:,} are in the control cohort or an exploration draw that does nothing" in sentence
    only_model = recs.filter(pl.col("arm") == "model")
    summary = {**summary, "do_nothing": only_model.filter(pl.col("action_id") == "none").height}
    sentence = next(s for s in build_report_data(summary, only_model).sentences if "left alone" in s)
    assert sentence.endswith(
        "best left alone for now: no action is worth more than it costs, or none fits the capacities."
    )


def test_report_policy_rows_keep_an_estimate_without_an_interval_without_one() -> None:
    # An off-policy estimate over fewer than two accounts has no interval (null ends), and one that no
    # logged decision supports has no estimate at all: neither stops the report, and a row with
    # neither an estimate nor a note says nothing.
    from nextmove.report.data import _policies

    rows = _policies(
        {
            "policy_values": [
                {"policy": "learned", "method": "dr", "estimate": 12.5, "low": None, "high": None, "n": 1},
                {"policy": "nothing", "method": "snips", "estimate": None, "low": None, "high": None, "n": 0},
            ]
        }
    )
    assert [(r.estimate, r.low, r.high) for r in rows] == [(12.5, None, None)]


def test_run_metrics_skip_an_off_policy_row_whose_estimate_is_not_a_number() -> None:
    # NaN passed for a number and showed as "+nan" with status Review.
    from nextmove.engine.run_facts import metrics

    def summary(low: float) -> dict[str, object]:
        return {
            "policy_values": [
                {"policy": "learned", "method": "dr", "estimate": 10.0, "low": low},
                {"policy": "default", "method": "dr", "estimate": 4.0, "low": 1.0},
            ]
        }

    assert any("Off-policy" in row["metric"] for row in metrics(summary(5.0)))
    assert not any("Off-policy" in row["metric"] for row in metrics(summary(float("nan"))))


def small_book() -> tuple[dict[str, Any], pl.DataFrame]:
    """Ten accounts: eight left alone whose default is an action, two given an action (one the default)."""
    recs = pl.DataFrame(
        {
            "account_id": [f"ACC-{i}" for i in range(10)],
            "name": ["Acme", "Acme", *(f"Shop {i}" for i in range(2, 10))],
            "lifecycle_stage": ["renewal"] * 5 + ["onboarding"] * 5,
            "arr": [1_000.0 * (i + 1) for i in range(10)],
            "health_band": ["At risk"] * 10,
            "action_id": ["exec_call", "nurture"] + ["none"] * 8,
            "default_action_id": ["exec_call"] + ["webinar"] * 9,
            "differs_from_default": [False] + [True] * 9,
            "arm": ["control", "model", "control", "control", "control", "model", "explore", "model", "model", "model"],
            "expected_value_usd": [100.0, 50.0] + [0.0] * 8,
        }
    )
    summary = {
        "accounts": 10,
        "actions": 3,
        "as_of": "2026-01-05T00:00:00+00:00",
        "do_nothing": 8,
        "differs_from_default_share": 0.9,
        "arms": {"model": 5, "explore": 1, "control": 4},
        "metrics": [
            {
                "metric": "Recommendations that differ from the lifecycle default",
                "current": "90%",
                "benchmark": "some, not all: 10–80%",
                "status": "Review",
            }
        ],
        "impact_by_objective": [
            {"objective": "retention", "label": "Retention", "value_usd": 120.0, "low": 60.0, "high": 180.0},
            {"objective": "expansion", "label": "Expansion", "value_usd": 60.0, "low": 30.0, "high": 90.0},
        ],
        "projected_impact_usd": {"value": 150.0, "low": 90.0, "high": 240.0},
    }
    return summary, recs


def test_share_differing_from_the_default_says_its_base_and_splits_out_those_left_alone() -> None:
    # "90% of recommended actions differ" was over every account, the eight left alone included.
    summary, recs = small_book()
    data = build_report_data(summary, recs)
    sentence = next(s for s in data.sentences if "default" in s and "control" not in s)
    assert sentence == (
        "90% of accounts get something other than their lifecycle-stage default (8 of them nothing, where the "
        "default is an action); of the 2 accounts given an action, 50% (1) get one other than their default."
    )
    assert "of recommended actions differ" not in render_report(data)
    # The stage table counts both bases.
    stages = {s.stage: s for s in data.stages}
    assert (stages["renewal"].differs, stages["renewal"].acted, stages["renewal"].acted_differs) == (4, 2, 1)
    assert stages["onboarding"].acted_share is None
    html = render_report(data)
    assert "Share of those given an action" in html
    # The metric is judged on the accounts given an action (50%: on track), and says both figures.
    row = data.metrics[0]
    assert row.metric == "Accounts given something other than their lifecycle default"
    assert row.current == "90% of all accounts; 50% of the 2 given an action"
    assert row.benchmark == "some, not all: 10–80% of the accounts given an action"
    assert row.status == "On track"


def test_run_metrics_judge_the_default_share_on_the_accounts_given_an_action() -> None:
    from nextmove.engine.run_facts import metrics

    summary = {"differs_from_default_share": 0.97, "acted_differs_from_default": {"accounts": 2_972, "differs": 2_430}}
    row = metrics(summary)[0]
    assert row["current"] == "97% of all accounts; 82% of the 2,972 given an action"
    assert row["status"] == "Review"
    summary["acted_differs_from_default"] = {"accounts": 2_972, "differs": 1_500}
    assert metrics(summary)[0]["status"] == "On track"
    # An older summary without the split is judged on its own base, and the benchmark says which.
    row = metrics({"differs_from_default_share": 0.5})[0]
    assert (row["benchmark"], row["status"]) == (
        "some, not all: 10–80% of all accounts (those left alone included)",
        "On track",
    )


def test_control_cohort_sentence_counts_who_got_the_default_and_who_got_nothing() -> None:
    # It said the cohort "follows the default playbook" when most of it got nothing.
    summary, recs = small_book()
    sentence = next(
        s for s in build_report_data(summary, recs).sentences if "control cohort" in s and "randomised" in s
    )
    assert "follows the default" not in sentence
    assert sentence.endswith(
        ": 1 got their default and 3 got nothing (their default is not allowed for them now, or no capacity was "
        "left for it)."
    )


def test_impact_table_shows_the_actions_cost_between_the_objectives_and_the_net_total() -> None:
    # Retention $120 + Expansion $60 = $180, yet "All objectives" read $150 with nothing to say why.
    summary, recs = small_book()
    data = build_report_data(summary, recs)
    assert data.impact_cost_usd == pytest.approx(30.0)
    html = render_report(data)
    table = html.split('<section id="impact">')[1].split("</section>")[0]
    rows = re.findall(r"<tr[^>]*><td>([^<]+)</td><td class=\"num\">([^<]+)</td>", table)
    assert rows == [
        ("Retention", "$120"),
        ("Expansion", "$60"),
        ("Less the actions' cost", "-$30"),
        ("All objectives", "$150"),
    ]
    assert "net of the actions' cost" in table
    # Objectives that add up to the total need no such row.
    summary["projected_impact_usd"] = {"value": 180.0, "low": 90.0, "high": 270.0}
    data = build_report_data(summary, recs)
    assert data.impact_cost_usd is None
    assert "Less the actions" not in render_report(data)


def test_named_accounts_keep_their_id_in_the_table_and_the_at_risk_list() -> None:
    summary, recs = small_book()
    data = build_report_data(summary, recs)
    acme = [(r["account"], r["id"]) for r in data.table if r["account"] == "Acme"]
    assert sorted(acme) == [("Acme", "ACC-0"), ("Acme", "ACC-1")]
    assert {r["id"] for r in data.top_at_risk} >= {"ACC-9"}
    assert '<bdi>Shop 9</bdi> <span class="note">(<bdi>ACC-9</bdi>)</span>' in render_report(data)
    # Without a name the id is the account and is not repeated.
    summary, recs = make_run(5)
    assert all(r["id"] == "" for r in build_report_data(summary, recs).table)


def test_title_and_header_show_a_readable_date() -> None:
    from nextmove.report.data import _readable_date

    summary, recs = small_book()
    html = render_report(build_report_data(summary, recs))
    title = html.split("<title>")[1].split("</title>")[0]
    assert title.endswith(" · 5 January 2026")
    assert "2026-01-05T00:00:00+00:00</" not in html
    assert _readable_date("2026-01-05T23:15:00-02:00") == "6 January 2026, 01:15 UTC"
    assert _readable_date("last week") == "last week"


def test_report_is_accessible_in_its_markup() -> None:
    summary, recs = small_book()
    html = render_report(build_report_data(summary, recs))
    # Every table has a caption and every header cell a scope; sortable headers are buttons.
    assert html.count("<table") == html.count("<caption")
    headers = re.findall(r"<th\b[^>]*>", html)
    assert headers
    assert all('scope="col"' in h for h in headers)
    accounts = html.split('id="accounts"')[1].split("</thead>")[0]
    assert accounts.count('<button type="button">') == accounts.count("<th ")
    assert re.search(r'id="count"[^>]*aria-live="polite"', html)


def test_charts_list_their_values_for_screen_readers_and_amber_has_3_to_1_contrast() -> None:
    from nextmove.report.charts import _PALETTE, BAND_COLORS
    from nextmove.report.render import charts

    summary, recs = small_book()
    drawn = charts(build_report_data(summary, recs))
    assert (
        'aria-label="Recommended action distribution: Do nothing 8 (80%); exec_call 1 (10%); nurture 1 (10%)"'
        in str(drawn["actions"])
    )

    def luminance(color: str) -> float:
        c = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4 for x in c]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    # The interval charts' dashed zero line was #999: 2.8:1 against white.
    strokes = set(re.findall(r'class="zero"[^>]*stroke="#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})"', str(drawn["impact"])))
    assert strokes
    strokes = {"#" + (c if len(c) == 6 else "".join(x * 2 for x in c)) for c in strokes}
    colors = [*BAND_COLORS.values(), *_PALETTE, *strokes]
    assert len(colors) >= 4  # the bands and the charts' palette: a loop over nothing would check nothing
    for color in colors:
        assert 1.05 / (luminance(color) + 0.05) >= 3.0, color


def test_report_prints_every_column_without_its_controls() -> None:
    summary, recs = small_book()
    html = render_report(build_report_data(summary, recs))
    style = html.split("<style>")[1].split("</style>")[0]
    assert "@media print" in style
    printed = style.split("@media print")[1]
    for rule in (".controls button", ".controls input", "nav", ".scroll { overflow: visible; }", "min-width: 0"):
        assert rule in printed, rule
    assert "recommendations.csv" in html.split('class="print-only')[1].split("</p>")[0]


def test_table_data_in_the_page_stays_valid_json_whatever_the_names_hold() -> None:
    # "<!--" in a name was written "<\!--", which JSON.parse refuses: the accounts table came up empty.
    import json as _json

    from nextmove.report.render import _json_for_script

    names = {"a": "Acme <!-- old", "b": "</script><script>alert(1)</script>", "c": "R&D <b>"}
    text = str(_json_for_script(names))
    assert "<" not in text
    assert ">" not in text
    assert _json.loads(text) == names


def test_report_says_one_customer_and_one_action_in_the_singular() -> None:
    # "The playbook scored 1 active customers across 1 possible actions".
    recs = pl.DataFrame({"account_id": ["a"], "action_id": ["call"], "expected_value_usd": [10.0]})
    first = build_report_data({"accounts": 1, "actions": 1}, recs).sentences[0]
    assert first.startswith("The playbook scored 1 active customer across 1 possible action and recommended ")


def test_report_shows_a_missing_interval_as_missing_with_its_note() -> None:
    # A policy whose DR has no interval (the history never took its action) was drawn as a zero-width
    # interval (low = high = the estimate) and its note dropped; a null IPS was dropped silently.
    from nextmove.report.render import charts

    summary, recs = make_run()
    why = "the history never took none (doing nothing), which this policy takes on 100% of the decisions"
    summary["policy_values"] += [
        {"policy": "nothing", "method": "dr", "estimate": -1297.7, "low": None, "high": None, "n": 900, "note": why},
        {"policy": "nothing", "method": "ips", "estimate": None, "low": None, "high": None, "n": 900, "note": why},
    ]
    data = build_report_data(summary, recs)
    dr = next(p for p in data.policies if (p.policy, p.method) == ("nothing", "dr"))
    assert (dr.estimate, dr.low, dr.high) == (-1297.7, None, None)
    html = render_report(data)
    row = html.split("<td>nothing</td><td>dr</td>")[1].split("</tr>")[0]
    assert "-1,297.70" in row
    assert row.count("—") == 2
    assert f"nothing (DR, IPS): {why}" in " ".join(html.split())
    assert "(no interval)" in str(charts(data)["policies"])


def test_report_judges_a_stored_runs_off_policy_row_again() -> None:
    # A run stored before the row was judged on the paired difference said "On track" on 2 decisions.
    from nextmove.engine.run_facts import OFF_POLICY_METRIC

    summary, recs = make_run()
    thin = {"n": 2, "effective_sample_size": 0.0, "matched_share": 0.0}
    summary["policy_values"] = [
        {"policy": "learned", "method": "dr", "estimate": 135.8, "low": 127.0, "high": 144.7, **thin},
        {"policy": "default", "method": "dr", "estimate": 120.8, "low": 82.6, "high": 159.1, **thin},
    ]
    summary["metrics"] = [{"metric": OFF_POLICY_METRIC, "current": "+15.00", "benchmark": "old", "status": "On track"}]
    row = next(m for m in build_report_data(summary, recs).metrics if m.metric == OFF_POLICY_METRIC)
    assert row.status == "Review"
    assert "too little evidence" in row.current


def test_report_drops_a_stored_off_policy_verdict_todays_rule_cannot_judge() -> None:
    # A stored "On track" judged on a default whose estimate is the model's alone (no interval) was kept.
    from nextmove.engine.run_facts import OFF_POLICY_METRIC

    summary, recs = make_run()
    summary["policy_values"][1].update(low=None, high=None)
    summary["metrics"] = [{"metric": OFF_POLICY_METRIC, "current": "+2.20", "benchmark": "old", "status": "On track"}]
    assert not any(m.metric == OFF_POLICY_METRIC for m in build_report_data(summary, recs).metrics)


def test_report_shows_the_runs_notes_once_each_escaped_with_commands_as_code() -> None:
    # summary.json's notes were printed by `nextmove run` and shown nowhere in its report.
    summary, recs = make_run(30)
    note = "eligible for none of the 30 active accounts: vip (arr > 1e9); check it (`nextmove features`)"
    summary["notes"] = [note, "health bands use the fixed cut-offs <Healthy 71–100>", note]
    data = build_report_data(summary, recs)
    assert data.run_notes == [note, "health bands use the fixed cut-offs <Healthy 71–100>"]
    html = render_report(data)
    summary_section = html.split('<section id="summary"')[1].split("</section>")[0]
    assert "Notes on this run" in summary_section
    assert "vip (arr &gt; 1e9); check it (<code>nextmove features</code>)" in summary_section
    assert "cut-offs &lt;Healthy 71–100&gt;" in summary_section
    assert summary_section.count("<li>") == 2
    assert "Notes on this run" not in render_report(build_report_data({**summary, "notes": []}, recs))


def test_report_says_why_the_model_left_accounts_alone_from_their_receipts() -> None:
    # "no action is worth more than it costs, or none fits the capacities" for accounts no action was allowed for.
    def best(why: str, value: float) -> str:
        return json.dumps([{"action_id": "vip", "value_usd": value, "why": why, "reason": why}])

    whys = [("rule", 32.0)] * 5 + [("capacity", 12.0)] * 2 + [("lower_value", -4.0)] + [("rule", -1.0)]
    recs = pl.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(len(whys) + 1)],
            "action_id": ["none"] * (len(whys) + 1),
            "arm": ["model"] * len(whys) + ["control"],
            "expected_value_usd": [0.0] * (len(whys) + 1),
            "alternatives": [best(w, v) for w, v in whys] + ["[]"],
        }
    )
    summary = {"accounts": recs.height, "actions": 1, "do_nothing": recs.height}
    sentence = next(s for s in build_report_data(summary, recs).sentences if "left alone" in s)
    assert sentence == (
        "10 customers are left alone for now: for 5, the best action is not eligible for them; for 2, no action is "
        "worth more than it costs; for 2, the best action did not fit the capacities left; 1 is in the control "
        "cohort or an exploration draw that does nothing."
    )
    # The run's note says no account is eligible for the actions: the sentence points to it.
    noted = {**summary, "notes": ["eligible for none of the 10 active accounts, so never recommended: vip (arr > 1)"]}
    sentence = next(s for s in build_report_data(noted, recs).sentences if "left alone" in s)
    assert "for 5, the best action is not eligible for them (see the notes below);" in sentence
    # Every account of the model worth nothing: best left alone, in one reason.
    worthless = recs.head(9).with_columns(pl.lit(best("lower_value", -3.0)).alias("alternatives"))
    sentence = next(s for s in build_report_data({**summary, "do_nothing": 9}, worthless).sentences if "alone" in s)
    assert sentence == "9 customers are best left alone for now: no action is worth more than it costs."


def test_report_counts_an_explorer_that_capacity_left_alone_with_capacity_not_the_draw() -> None:
    # An exploring account whose best play no longer fitted when its draw was made was counted as "an exploration
    # draw that does nothing": capacity left it alone, the draw had nothing better to choose.
    def best(why: str, value: float) -> str:
        return json.dumps([{"action_id": "vip", "value_usd": value, "why": why, "reason": why}])

    rows = [("model", "capacity", 12.0), ("explore", "capacity", 9.0), ("explore", "capacity", 7.0)]
    rows += [("explore", "held_back", 5.0), ("explore", "lower_value", -2.0), ("control", "capacity", 4.0)]
    recs = pl.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(len(rows))],
            "action_id": ["none"] * len(rows),
            "arm": [arm for arm, _, _ in rows],
            "expected_value_usd": [0.0] * len(rows),
            "alternatives": [best(why, value) for _, why, value in rows],
        }
    )
    summary = {"accounts": recs.height, "actions": 1, "do_nothing": recs.height}
    sentence = next(s for s in build_report_data(summary, recs).sentences if "left alone" in s)
    assert sentence == (
        "6 customers are left alone for now: for 3, the best action did not fit the capacities left; 3 are in the "
        "control cohort or an exploration draw that does nothing."
    )
    assert left_alone_by_draw(recs) == 3
    # A stored run's report reads the best runner-up's two values only.
    stored = recs.with_columns(
        pl.Series("best_alternative_why", [why for _, why, _ in rows]),
        pl.Series("best_alternative_value_usd", [value for _, _, value in rows]),
    ).drop("alternatives")
    assert next(s for s in build_report_data(summary, stored).sentences if "left alone" in s) == sentence


def test_report_of_a_run_that_gave_no_account_an_action_says_so_where_the_focus_chart_would_be() -> None:
    summary, recs = make_run(20)
    nothing = recs.with_columns(pl.lit("none").alias("action_id"), pl.lit(0.0).alias("expected_value_usd"))
    data = build_report_data(summary, nothing)
    assert data.families_note == "No account was given an action."
    html = render_report(data)
    assert "No account was given an action." in html
    assert "groups no actions by focus" not in html
    no_families = {k: v for k, v in summary.items() if k != "action_families"}
    assert build_report_data(no_families, recs).families_note == "The playbook groups no actions by focus."
    assert build_report_data(summary, recs).families_note is None


def test_report_headline_impact_is_the_recommended_cohorts_and_control_is_apart() -> None:
    # The headline summed the control cohort's defaults in: -$62 where the recommendations were +$240.
    summary, recs = make_run(50)
    summary["projected_impact_usd"] = {"value": 240.0, "low": -90.0, "high": 610.0, "accounts": 40}
    summary["projected_impact_by_cohort"] = {
        "recommended": {"value": 240.0, "low": -90.0, "high": 610.0, "accounts": 40},
        "control": {"value": -302.0, "low": -700.0, "high": 80.0, "accounts": 6},
    }
    data = build_report_data(summary, recs)
    sentence = next(s for s in data.sentences if "projected impact" in s)
    assert sentence == (
        "The projected impact of the recommended actions (40 accounts of the model and exploration arms) is $240 "
        "(per-account 90% intervals summed: -$90 to $610). The control cohort's defaults (6 accounts) are projected "
        "at -$302 (per-account 90% intervals summed: -$700 to $80), apart: they are what the recommendations' lift "
        "is measured against."
    )
    assert data.impact[-1].value_usd == 240.0
    assert data.impact_note is not None
    assert (
        "defaults, projected at -$302 (per-account 90% intervals summed: -$700 to $80) over 6 accounts, are not in"
        in data.impact_note
    )
    assert data.impact_note in " ".join(render_report(data).split()).replace("&#39;", "'")
    # A run stored before the cohorts were kept apart says what its figure sums.
    old = {k: v for k, v in summary.items() if k != "projected_impact_by_cohort"}
    sentence = next(s for s in build_report_data(old, recs).sentences if "projected impact" in s)
    assert sentence.startswith("The projected impact of the actions given (the control cohort's defaults included)")


def test_report_names_the_run_segments_moved_since_or_says_there_is_none() -> None:
    summary, recs = make_run(20)
    segment = {"accounts": 10, "traits": [], "response": {"value_usd": 1.0, "ratio": 1.0, "families": []}}
    summary["segments"] = {
        "segments": [{**segment, "id": 0, "name": "quiet"}, {**segment, "id": 3, "name": "quiet"}],
        "moves": {"accounts": 18, "moved": 4, "moved_share": 4 / 18, "new": 2},
        "previous_run": {"run_id": "run-jan", "as_of": "2026-01-02T00:00:00+00:00"},
    }
    data = build_report_data(summary, recs)
    # Two segments of one name are told apart by their ids.
    assert [s.name for s in data.segments] == ["quiet (segment 0)", "quiet (segment 3)"]
    assert (
        "4 of 18 accounts (22%) moved to another segment since the previous run of this book, run-jan "
        "(as of 2 January 2026); 2 are new."
    ) in data.segment_notes
    summary["segments"].update(moves=None, previous_run=None)
    assert data.segment_notes[-1] != build_report_data(summary, recs).segment_notes[-1]
    assert (
        build_report_data(summary, recs).segment_notes[-1].startswith("No earlier run of this book under this playbook")
    )


def test_report_sets_the_evaluate_command_as_code_not_backticks() -> None:
    summary, recs = make_run(20)
    html = render_report(build_report_data(summary, recs))
    assert "<code>nextmove evaluate</code> gives out-of-sample estimates" in html
    assert "`nextmove evaluate`" not in html


def test_health_band_shares_are_the_same_on_every_build() -> None:
    # Without the summary's bands, each band's ARR share is over the bands' total: a float sum whose
    # value depends on the order it adds the bands in. That order was a hash table's, so two builds
    # of one run could differ in the last digits.
    recs = pl.DataFrame(
        {
            "account_id": ["a", "b", "c", "d"],
            "action_id": ["none"] * 4,
            "expected_value_usd": [0.0] * 4,
            "health_band": ["Healthy", "At risk", "Critical", None],
            "arr": [1e16, 1.0, -1e16, 1.0],
        }
    )
    shares = {tuple(b.arr_share for b in build_report_data({}, recs).bands) for _ in range(40)}
    assert len(shares) == 1


def test_report_says_no_customer_is_left_alone_when_every_one_is_given_an_action() -> None:
    # "0 customers are best left alone for now: no action is worth more than it costs, or none fits the capacities."
    recs = pl.DataFrame({"account_id": ["a", "b"], "action_id": ["call", "call"], "expected_value_usd": [95.0, 9.0]})
    for summary, frame in (
        ({"accounts": 2, "actions": 1, "do_nothing": 0}, recs),
        ({"accounts": 2, "actions": 1}, recs.with_columns(pl.lit("model").alias("arm"))),
    ):
        sentences = build_report_data(summary, frame).sentences
        alone = [s for s in sentences if "left alone" in s]
        assert alone == ["No customer is left alone: every one is given an action."]
        assert not any("0 customers" in s or "worth more than it costs" in s for s in sentences)


def test_health_band_chart_says_one_account_in_the_singular() -> None:
    # "$4.6k · 1 accounts" in the bar's text, its tooltip and the chart's aria-label.
    from nextmove.report.render import charts

    recs = pl.DataFrame(
        {
            "account_id": ["a", "b", "c"],
            "action_id": ["call", "none", "none"],
            "expected_value_usd": [95.0, 0.0, 0.0],
            "arr": [4_600.0, 1_000.0, 2_000.0],
            "health_band": ["At risk", "Healthy", "Healthy"],
        }
    )
    summary = {
        "accounts": 3,
        "actions": 1,
        "health_bands": [
            {"band": "At risk", "accounts": 1, "arr_usd": 4_600.0},
            {"band": "Healthy", "accounts": 2, "arr_usd": 3_000.0},
        ],
    }
    bands = str(charts(build_report_data(summary, recs))["bands"])
    assert "1 accounts" not in bands
    assert bands.count("$4.6k · 1 account") == 6  # text, tooltip and aria-label, in the wide and the narrow chart
    assert "$3.0k · 2 accounts" in bands


def test_report_of_a_run_that_projects_nothing_says_so_instead_of_drawing_a_chart() -> None:
    # "All objectives $0 ($0 to $0)" was drawn as a chart (a point on the zero line) and a table of $0.
    from nextmove.report.render import charts

    summary, recs = make_run(20)
    nothing = recs.with_columns(pl.lit("none").alias("action_id"), pl.lit(0.0).alias("expected_value_usd"))
    zero = {"value": 0.0, "low": 0.0, "high": 0.0, "accounts": 0}
    summary = {
        **summary,
        "impact_by_objective": [],
        "projected_impact_usd": zero,
        "projected_impact_by_cohort": {"recommended": zero, "control": zero},
    }
    data = build_report_data(summary, nothing)
    assert data.impact == []
    assert "impact" not in charts(data)
    section = render_report(data).split('<section id="impact">')[1].split("</section>")[0]
    assert "<svg" not in section
    assert "<table" not in section
    assert "No account of the model and exploration arms is given an action: this run projects no impact." in section
    # Zero on every objective while accounts are given an action: no chart either, and the note says so.
    zeros = {**summary, "projected_impact_usd": {**zero, "accounts": 3}}
    zeros["impact_by_objective"] = [{"objective": "churn", "label": "Retention", "value_usd": 0.0, "low": 0, "high": 0}]
    data = build_report_data(zeros, recs)
    assert data.impact == []
    assert data.impact_note == "This run projects no impact: every objective's figure and interval is zero."
    # A run that projects something keeps its chart, table and note.
    summary, recs = make_run(20)
    data = build_report_data(summary, recs)
    assert data.impact
    assert "impact" in charts(data)
    assert data.impact_note is not None
