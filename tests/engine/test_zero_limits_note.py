"""Tests of the run's note on limits of 0: it names what they block, and no more."""

from __future__ import annotations

from nextmove.decide.rules import candidates
from nextmove.engine.run import zero_limits_note
from nextmove.playbook.loader import parse_playbook

PLAYBOOK = """
[objectives.keep]
outcome = "cancel"
sense = "avoid"
value = "arr"

[[actions]]
id = "ring"
name = "Phone call"
team = "cs"
objective = "keep"
cost_usd = 50

[[actions]]
id = "mailer"
name = "Mailer"
team = "mkt"
channel = "email"
objective = "keep"
cost_usd = 2
variants = [{ id = "am", send_window = "morning" }, { id = "sms", channel = "sms", cost_usd = 40 },
            { id = "push", channel = "push", cost_usd = 0 }]
"""


def _note(extra: str) -> str | None:
    pb = parse_playbook(PLAYBOOK + extra)
    return zero_limits_note(pb, candidates(pb), ["ana"])


def test_zero_limits_note_a_cap_on_one_variants_channel_blocks_that_variant_only() -> None:
    # It said "the contact cap on sms (max_touches = 0) blocks mailer", and mailer's am and push were given.
    note = _note('[contact_policy]\ncaps = [{ channel = "sms", max_touches = 0, window_days = 7 }]\n')
    assert note is not None
    assert note.endswith(
        "the contact cap on sms (max_touches = 0) blocks mailer's variant sms, not mailer's variants am, push"
    )


def test_zero_limits_note_a_budget_of_0_spares_a_free_variant() -> None:
    note = _note("[capacity]\nbudget_usd_per_team = { mkt = 0, cs = 0 }\n")
    assert note is not None
    assert "budget_usd_per_team.mkt = 0 blocks mailer's variants am, sms (its cost_usd), not mailer's variant push" in (
        note
    )
    assert "budget_usd_per_team.cs = 0 blocks ring (its cost_usd)" in note


def test_zero_limits_note_an_action_is_blocked_when_every_variant_is() -> None:
    note = _note('[contact_policy]\ncaps = [{ team = "mkt", max_touches = 0, window_days = 7 }]\n')
    assert note is not None
    assert note.endswith("the contact cap on mkt (max_touches = 0) blocks mailer")
