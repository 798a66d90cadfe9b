"""A touch of an action the playbook no longer has: the problem says how to retire an action, not only to add one."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from nextmove.book.problems import Rule
from nextmove.book.validate import validate_book
from nextmove.playbook import Action, Objective, Playbook


def test_unknown_action_says_to_keep_the_old_id_retired_and_where_renaming_is_told() -> None:
    # upsell_pitch renamed expansion_pitch in the playbook, the touch log still naming the old id.
    playbook = Playbook(
        objectives={"win": Objective(outcome="win", value="fixed", value_usd=100.0)},
        actions=[Action(id="expansion_pitch", name="Expansion pitch", team="sales", objective="win")],
    )
    touches = pl.DataFrame(
        {"account_id": ["a", "b"], "ts": [datetime(2025, 1, 2, tzinfo=UTC)] * 2, "action_id": ["upsell_pitch"] * 2}
    )
    frames = {"accounts": pl.DataFrame({"account_id": ["a", "b"]}), "touches": touches}
    report = validate_book(frames, playbook=playbook, as_of=datetime(2025, 2, 1))
    unknown = [p for p in report.problems if p.rule is Rule.UNKNOWN_ACTION]
    assert [(p.row, p.value) for p in unknown] == [(1, "upsell_pitch"), (2, "upsell_pitch")]
    said = unknown[0].expected
    assert "add the action to [[actions]] or fix the id" in said
    assert 'keeps its old id in [[actions]], retired with eligibility = "false"' in said
    assert 'docs/decide.md, "Renaming an action"' in said
