"""Tests of the regret against the lab's truth when the truth and the playbook do not know the same actions."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl

from nextmove.decide.policy import Decisions, decide
from nextmove.decide.rules import check_rules
from nextmove.engine.run import regret_against_truth, regret_notes
from nextmove.playbook import Playbook
from nextmove.playbook.loader import parse_playbook

T = datetime(2025, 6, 2, tzinfo=UTC)

PLAYBOOK = """
[objectives.keep]
outcome = "lapse"
sense = "avoid"
value = "arr"

[[actions]]
id = "call"
name = "Call"
team = "cs"
objective = "keep"
default_for_stages = ["loyal"]

[[actions]]
id = "tip_email"
name = "Tip of the week"
team = "marketing"
channel = "email"
objective = "keep"

[exploration]
method = "none"
"""


def _decisions(playbook: Playbook, n: int = 40) -> Decisions:
    ids = [f"acc-{i:03d}" for i in range(n)]
    features = pl.DataFrame({"account_id": ids, "spend": np.linspace(0, 100, n)})
    touches = pl.DataFrame(schema={"account_id": pl.String, "action_id": pl.String, "ts": pl.Datetime("us", "UTC")})
    rules = check_rules(features, touches, playbook, T, {"spend": "number"})
    # The new tip e-mail looks best for the first half of the book, the call for the rest.
    values = pl.concat(
        [
            pl.DataFrame({"account_id": ids, "action_id": action, "value_usd": v, "low": v - 5.0, "high": v + 5.0})
            for action, v in (
                ("call", np.full(n, 50.0)),
                ("tip_email", np.where(np.arange(n) < n // 2, 80.0, 10.0)),
            )
        ]
    )
    return decide(rules, values, playbook, owners=["o"] * n, stages=["loyal"] * n)


def _truth(ids: list[str], actions: dict[str, float]) -> pl.DataFrame:
    return pl.concat(
        [
            pl.DataFrame({"account_id": ids, "action_id": action, "eligible": True, "value_usd": value})
            for action, value in actions.items()
        ]
    )


def test_regret_is_not_measured_when_the_policy_picks_an_action_the_truth_has_no_value_for() -> None:
    playbook = parse_playbook(PLAYBOOK)
    decisions = _decisions(playbook)
    picked = int((decisions.frame()["model_action_id"] == "tip_email").sum())
    assert picked == 20

    # The lab simulated only the call: its truth knows nothing of the tip e-mail added since.
    regret = regret_against_truth(decisions, _truth(decisions.account_ids, {"call": 30.0}))
    assert regret is not None
    assert regret["model_regret_share"] is None
    assert regret["model_value_usd"] is None  # not $600 with the e-mails counted as $0
    assert regret["deployed_regret_share"] is None
    assert regret["picks_without_truth"]["model"] == {"tip_email": 20}
    assert regret["actions_without_truth"] == ["tip_email"]
    assert regret["oracle_value_usd"] == 1200.0  # the oracle's calls are still known
    [note] = regret_notes(regret)
    assert note.startswith("no regret against the oracle for the learned policy")
    assert "tip_email, given to 20 accounts by the learned policy" in note

    # A truth that knows both actions measures the regret, and says what it has that the playbook lacks.
    full = _truth(decisions.account_ids, {"call": 30.0, "tip_email": 50.0, "qbr": 99.0})
    regret = regret_against_truth(decisions, full)
    assert regret is not None
    assert regret["picks_without_truth"] == {}
    assert regret["model_value_usd"] == 20 * 50.0 + 20 * 30.0
    # The oracle e-mails all 40 ($2,000), the default calls them ($1,200): half its gain is missed.
    assert regret["model_regret_share"] == 0.5
    assert regret["truth_actions_outside_playbook"] == ["qbr"]
    assert regret_notes(regret) == [
        "the truth (truth/values) values actions the playbook does not have (qbr): "
        "the oracle chooses among the playbook's actions only"
    ]


def test_regret_notes_an_action_of_the_playbook_the_truth_does_not_value_even_when_unpicked() -> None:
    playbook = parse_playbook(PLAYBOOK)
    decisions = _decisions(playbook)
    truth = _truth(decisions.account_ids, {"tip_email": 5.0})
    regret = regret_against_truth(decisions, truth)
    assert regret is not None
    assert regret["actions_without_truth"] == ["call"]
    notes = regret_notes(regret)
    assert any("no value for call" in n for n in notes)


def test_render_run_says_the_regret_is_not_measured_rather_than_a_figure() -> None:
    from rich.console import Console

    from nextmove.cli.run import render_run
    from nextmove.engine.run import RunResult

    playbook = parse_playbook(PLAYBOOK)
    decisions = _decisions(playbook)
    regret = regret_against_truth(decisions, _truth(decisions.account_ids, {"call": 30.0}))
    assert regret is not None
    summary = {
        "accounts": 40,
        "actions": 2,
        "assigned": {"keep": 40},
        "do_nothing": 0,
        "differs_from_default_share": 0.5,
        "projected_impact_usd": {"value": 1.0, "low": 0.0, "high": 2.0},
        "by_action": {"call": 20, "tip_email": 20},
        "arms": {"model": 40},
        "allocation": {"method": "exact", "binding_resources": 0, "resources": 0},
        "regret": regret,
        "notes": regret_notes(regret),
    }
    result = RunResult("r", T, pl.DataFrame(), summary, None, None, [])  # type: ignore[arg-type]
    console = Console(record=True, width=400)
    render_run(result, console)
    text = console.export_text()
    [lab] = [line for line in text.splitlines() if line.startswith("Lab:")]
    assert "the learned policy not measured (see the note)" in lab
    assert "regret" not in lab  # no "regret 29.4%" made of the e-mails counted as $0


def test_the_oracle_keeps_the_runs_rules_as_well_as_the_truths() -> None:
    # The tip e-mail retired with eligibility = "false": the lab's truth still allows it, the run does not.
    retired = PLAYBOOK.replace('channel = "email"\n', 'channel = "email"\neligibility = "false"\n')
    assert retired != PLAYBOOK
    decisions = _decisions(parse_playbook(retired))
    assert not (decisions.frame()["model_action_id"] == "tip_email").any()
    regret = regret_against_truth(decisions, _truth(decisions.account_ids, {"call": 30.0, "tip_email": 50.0}))
    assert regret is not None
    assert regret["oracle_value_usd"] == 40 * 30.0  # not 40 e-mails the run may not send
    assert regret["model_value_usd"] == 40 * 30.0
    assert regret["model_regret_share"] is None  # the oracle gains nothing over the default: no share to give
