"""Lift's projected effect per action reads the receipts that project it: those of accounts that got it."""

from __future__ import annotations

from dataclasses import replace

import pytest
from tests.measure.test_lift import AS_OF, planted

from nextmove.measure.lift import estimate_lift, recommendations_frame


def test_projected_effect_reads_only_receipts_of_accounts_that_got_the_action() -> None:
    # A receipt projects the action its account got: a control account's, its lifecycle default (premium
    # trial), not the model's pick. Averaged in, those made the discount's projected effect on keep
    # -0.08 on its treated accounts and +0.00 on control accounts given the trial: about -0.05.
    case = planted(1500, seed=5)
    records = []
    for r in case.records:
        if r.arm == "control" and r.evidence and r.evidence["model_action_id"] != r.action_id:
            trial = [
                {**p, "effect": 0.0, "effect_usd": 0.0} if p["objective"] == "keep" else p
                for p in r.evidence["projected"]
            ]
            r = replace(r, evidence={**r.evidence, "projected": trial})
        records.append(r)
    report = estimate_lift(recommendations_frame(records), case.book, case.playbook, as_of=AS_OF)
    discount = next(a for a in report.actions if (a.action_id, a.objective) == ("winback_discount", "keep"))
    got = [r for r in records if r.action_id == "winback_discount" and r.evidence["model_action_id"] == r.action_id]
    assert discount.control_accounts > 100  # control accounts still measure the realised effect
    assert discount.projected_accounts == len(got)
    assert discount.projected_effect == pytest.approx(-0.08)
