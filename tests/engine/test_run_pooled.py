"""An action new to the playbook, with no history: its receipts say it is valued at the pooled effect, and so does
the run, whether it fits its model or reuses the stored one."""

from __future__ import annotations

import json
from pathlib import Path

from nextmove.engine.run import run
from nextmove.playbook import Action, Playbook
from nextmove.sim import SimConfig, simulate
from nextmove.store import open_store

QUICK = {"effect_params": {"n_folds": 2, "n_estimators": 20}, "evaluate": False, "segments": False}
NOTE = "actions with too little history, valued at the pooled effect with a wide interval: "


def test_a_new_action_is_flagged_pooled_in_receipts_and_in_the_notes_of_fitted_and_reused_runs(
    tmp_path: Path,
) -> None:
    lab = simulate(SimConfig(accounts=120, months=8, seed=11))
    base = lab.config.resolved_playbook()
    new = Action(id="brand_new_call", name="Brand new call", team="cs", objective=base.actions[0].objective)
    playbook = Playbook.model_validate({**base.model_dump(), "actions": [*base.model_dump()["actions"], new]})
    with open_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}") as store:
        fitted = run(lab.book, playbook, as_of=lab.as_of, store=store, run_id="fitted", seed=1, **QUICK)
        reused = run(
            lab.book, playbook, as_of=lab.as_of, store=store, run_id="reused", seed=1, reuse_model=True, **QUICK
        )
    said = []
    for result in (fitted, reused):
        notes = [n for n in result.summary["notes"] if n.startswith(NOTE)]
        assert len(notes) == 1, (result.run_id, result.summary["notes"])
        said.append(notes[0])
    assert said[0] == said[1]
    flagged = set(said[0].removeprefix(NOTE).split(", "))
    assert "brand_new_call" in flagged

    def key(row: dict[str, str | None]) -> str:
        return str(row["action_id"]) if row.get("variant") is None else f"{row['action_id']}:{row['variant']}"

    shown = 0
    recs = fitted.recommendations
    for row in recs.select("action_id", "variant", "evidence", "alternatives").iter_rows(named=True):
        evidence = json.loads(row["evidence"])
        # A variant the model has no arm of is valued (and flagged) by its action's arm.
        assert evidence["pooled"] is (key(row) in flagged or row["action_id"] in flagged), row
        for alt in json.loads(row["alternatives"]):
            assert alt["pooled"] is (key(alt) in flagged or alt["action_id"] in flagged), alt
            shown += alt["action_id"] == "brand_new_call"
    assert shown + (recs.get_column("action_id") == "brand_new_call").sum() > 0  # the new action shows somewhere
