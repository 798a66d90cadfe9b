"""Online decisions flag an action valued at the pooled effect (too little history) as the run's receipts do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nextmove.engine.online import DecideRequest, OnlineDecider
from nextmove.engine.run import run
from nextmove.playbook import Action, Playbook
from nextmove.sim import SimConfig, simulate
from nextmove.store import open_store

QUICK: dict[str, Any] = {"effect_params": {"n_folds": 2, "n_estimators": 20}, "evaluate": False, "segments": False}
NOTE = "actions with too little history, valued at the pooled effect with a wide interval: "
POOLED_WORDS = "too few past touches to learn its own effect, so it is projected from the other actions'"


def test_online_receipts_and_runner_ups_carry_the_run_s_pooled_flag_served_or_rescored(tmp_path: Path) -> None:
    """An online receipt had no ``pooled`` at all, nor had its runner-ups: a new action looked learned."""
    lab = simulate(SimConfig(accounts=120, months=8, seed=11))
    base = lab.config.resolved_playbook()
    new = Action(id="brand_new_call", name="Brand new call", team="cs", objective=base.actions[0].objective)
    playbook = Playbook.model_validate({**base.model_dump(), "actions": [*base.model_dump()["actions"], new]})
    with open_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}") as store:
        result = run(lab.book, playbook, as_of=lab.as_of, store=store, run_id="pooled", seed=1, **QUICK)
        (note,) = [n for n in result.summary["notes"] if n.startswith(NOTE)]
        flagged = set(note.removeprefix(NOTE).split(", "))
        assert "brand_new_call" in flagged

        def pooled(row: dict[str, Any]) -> bool:
            # A variant the model has no arm of is valued (and flagged) by its action's arm, as in the run.
            key = row["action_id"] if row.get("variant") is None else f"{row['action_id']}:{row['variant']}"
            return key in flagged or row["action_id"] in flagged

        decider = OnlineDecider(store, playbook, book=lab.book)
        accounts = result.recommendations.get_column("account_id").to_list()
        signal = lab.book.signals.get_column("name").drop_nulls()[0]
        served = decider.decide([DecideRequest(a) for a in accounts], now=lab.as_of)
        rescored = decider.decide([DecideRequest(a, signals={signal: 1.0}) for a in accounts[:30]], now=lab.as_of)
        assert all(d.evidence["rescored_with_fresh_signals"] for d in rescored)
        shown = said = 0
        for d in [*served, *rescored]:
            mine = d.action_id != "none" and pooled(d.evidence)
            assert d.evidence["pooled"] is mine, (d.account_id, d.action_id, d.variant, d.evidence)
            if d.arm != "control" and d.action_id != "none":
                assert (POOLED_WORDS in d.evidence["summary"]) is mine, d.evidence["summary"]
                said += mine
            for alt in d.alternatives:
                assert alt["pooled"] is (alt["action_id"] != "none" and pooled(alt)), alt
                shown += alt["pooled"]
            shown += mine
        assert shown > 0  # the new action shows somewhere, flagged
        # What was logged is what was answered.
        logged = {x.decision_id: x for x in store.decisions()}
        assert all(logged[d.decision_id].evidence["pooled"] is d.evidence["pooled"] for d in served)
