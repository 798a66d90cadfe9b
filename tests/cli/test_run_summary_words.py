"""``nextmove run``'s executive summary and the report's say the same: who is left alone and why, and whose playbook."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import polars as pl
import pytest
from rich.console import Console

from nextmove.cli.run import render_run
from nextmove.report.data import build_report_data


def _alternative(why: str, value: float) -> str:
    return json.dumps([{"action_id": "call", "why": why, "value_usd": value, "reason": why}])


def _recommendations() -> pl.DataFrame:
    """3 given an action; the model leaves 5 alone (2 on a capacity, 2 on a cooldown, 1 worth nothing); control 2."""
    rows = [("call", "model", "[]")] * 3
    rows += [("none", "model", _alternative("capacity", 4.0))] * 2
    rows += [("none", "model", _alternative("cooldown", 2.5))] * 2
    rows += [("none", "model", _alternative("capacity", -1.0))]
    rows += [("none", "control", "[]")] * 2
    return pl.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(len(rows))],
            "action_id": [r[0] for r in rows],
            "arm": [r[1] for r in rows],
            "alternatives": [r[2] for r in rows],
            "expected_value_usd": [5.0 if r[0] == "call" else 0.0 for r in rows],
        }
    )


def _summary(**extra: Any) -> dict[str, Any]:
    return {
        "accounts": 10,
        "actions": 2,
        "assigned": {"keep": 3},
        "objective_names": {"keep": "Keep subscribers"},
        "do_nothing": 7,
        "projected_impact_usd": {"value": 15.0, "low": 1.0, "high": 30.0},
        "by_action": {"call": 3},
        "arms": {"model": 8, "control": 2},
        "allocation": {"method": "exact", "binding_resources": 1, "resources": 1},
        **extra,
    }


def _printed(summary: dict[str, Any], recs: pl.DataFrame) -> str:
    console = Console(record=True, width=400)
    result = SimpleNamespace(
        summary=summary, recommendations=recs, run_id="run-1", as_of=datetime(2026, 3, 2, tzinfo=UTC), files={}
    )
    render_run(result, console)  # type: ignore[arg-type]
    return " ".join(console.export_text().split())


def test_the_summary_says_why_the_model_left_accounts_alone_as_the_report_does() -> None:
    # "18,599 are best left alone this window" where the report said 10,434 did not fit the capacities
    # left and 8,165 waited on a cooldown: nothing-minus-drawn called every one of them not worth it.
    recs = _recommendations()
    printed = _printed(_summary(), recs)
    report = " ".join(build_report_data(_summary(), recs).sentences)
    reasons = [
        "for 2, the best action did not fit the capacities left",
        "for 2, the best action waits on a cooldown, a contact cap or a play in flight",
        "for 1, no action is worth more than it costs",
    ]
    assert (
        "5 customers are left alone this window: " + "; ".join(reasons) + ". 2 more are left alone by the control "
        "cohort (the lifecycle default) or an exploration draw."
    ) in printed
    assert "best left alone" not in printed
    for reason in reasons:
        assert reason in report


def test_the_summary_says_best_left_alone_only_when_nothing_is_worth_its_cost() -> None:
    recs = _recommendations().with_columns(alternatives=pl.lit(_alternative("lower_value", -3.0)))
    printed = _printed(_summary(), recs)
    assert "5 customers are best left alone this window: no action is worth more than it costs." in printed


@pytest.mark.parametrize(
    ("name", "subject"),
    [
        ("Streamly retention", "The Streamly retention playbook"),
        ("Default B2B SaaS playbook", "The Default B2B SaaS playbook"),
        ("playbook", "The playbook"),  # the schema's placeholder: no name of its own
        (None, "The playbook"),
    ],
)
def test_the_summary_and_the_report_name_the_playbook_alike(name: str | None, subject: str) -> None:
    # The CLI wrote "The Playbook scored …" (the product's name, copied from the brief), the report
    # "The playbook scored …", whatever the playbook was called.
    summary = _summary() if name is None else _summary(playbook_name=name)
    recs = _recommendations()
    first = build_report_data(summary, recs).sentences[0]
    assert first.startswith(f"{subject} scored 10 active customers across 2 possible actions")
    assert _printed(summary, recs).startswith(f"Executive summary {first} ")


def test_a_run_s_summary_and_report_agree() -> None:
    """On a real run's files: the same first sentence and the same reasons in both."""
    from nextmove.cli.run import executive_summary
    from nextmove.engine.run import run
    from nextmove.engine.run_facts import left_alone_by_draw, left_alone_reasons
    from nextmove.playbook.loader import parse_playbook
    from nextmove.sim import SimConfig, simulate

    lab = simulate(SimConfig(accounts=120, months=9, seed=3))
    playbook = parse_playbook(lab.playbook_text)
    result = run(lab.book, playbook, effect_params={"n_folds": 2, "n_estimators": 15}, evaluate=False)
    recs = result.recommendations
    printed = executive_summary(result.summary, drawn=left_alone_by_draw(recs), reasons=left_alone_reasons(recs))
    sentences = build_report_data(result.summary, recs).sentences
    assert printed.startswith(sentences[0])
    for reason, n in left_alone_reasons(recs):
        assert reason in printed
        assert reason in sentences[2]
        assert f"for {n:,}, {reason}" in sentences[2] or f": {reason}." in sentences[2]
    assert " 0 a " not in printed  # an objective no account was given is not listed (nor in the report)
