"""Online decisions write their amounts in the playbook's currency, served from the run or rescored."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from nextmove.engine.online import DecideRequest, OnlineDecider
from nextmove.engine.run import run
from nextmove.sim import SimConfig, simulate
from nextmove.store import open_store

QUICK: dict[str, Any] = {"effect_params": {"n_folds": 2, "n_estimators": 20}, "evaluate": False, "segments": False}


def test_online_receipts_of_a_book_in_euros_say_euros(tmp_path: Path) -> None:
    lab = simulate(SimConfig(accounts=120, months=8, seed=11))
    playbook = lab.config.resolved_playbook().model_copy(update={"currency": "EUR"})
    with open_store(f"sqlite:///{(tmp_path / 'nextmove.db').as_posix()}") as store:
        result = run(lab.book, playbook, as_of=lab.as_of, store=store, run_id="euros", seed=1, **QUICK)
        assert result.summary["currency"] == "EUR"
        decider = OnlineDecider(store, playbook, book=lab.book)
        accounts = result.recommendations.get_column("account_id").to_list()
        signal = lab.book.signals.get_column("name").drop_nulls()[0]
        # Half served from the run, half rescored: an account decided once has a play in flight, so deciding it
        # again (once the decider has refreshed from the store) would give nothing to rescore.
        served = decider.decide([DecideRequest(a) for a in accounts[::2]], now=lab.as_of)
        rescored = decider.decide([DecideRequest(a, signals={signal: 1.0}) for a in accounts[1::2]], now=lab.as_of)
    said = [d.evidence[k] for d in [*served, *rescored] for k in ("summary", "default_why")]
    assert all("$" not in s for s in said)
    fresh = [d.evidence["summary"] for d in rescored if d.action_id != "none" and d.arm != "control"]
    assert fresh
    assert all(re.search(r" for \S+: projected -?€[\d,.]+ over doing nothing", s) for s in fresh), fresh[:3]
