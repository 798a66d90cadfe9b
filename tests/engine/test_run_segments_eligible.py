"""The run's segments count only the actions the playbook allows, as ``nextmove segment`` does."""

from __future__ import annotations

import polars as pl
import pytest

from nextmove.engine.health import active_accounts
from nextmove.engine.run import run
from nextmove.features import compute_features, point_in_time
from nextmove.features.snapshot import vocabulary_of
from nextmove.measure.policy import eligible_actions
from nextmove.playbook import Playbook
from nextmove.segment import behavior_snapshot, segment_book, signal_labels
from nextmove.sim import SimConfig, SimResult, simulate

FAST = {"n_folds": 2, "n_estimators": 25, "n_draws": 60}


@pytest.fixture(scope="module")
def lab() -> SimResult:
    return simulate(SimConfig(accounts=240, months=10, seed=5))


def _retired(playbook: Playbook, action_id: str) -> Playbook:
    """The playbook with ``action_id`` retired: still in the catalog (and in the history), allowed to no account."""
    actions = [a.model_copy(update={"eligibility": "false"}) if a.id == action_id else a for a in playbook.actions]
    return playbook.model_copy(update={"actions": actions})


def test_run_segments_never_name_a_retired_action_and_match_segment_book_with_eligible(lab: SimResult) -> None:
    full = lab.config.resolved_playbook()
    best_before = run(lab.book, full, as_of=lab.as_of, effect_params=FAST, evaluate=False, evidence=False).summary
    named = {f["best_action"] for s in best_before["segments"]["segments"] for f in s["response"]["families"]}
    # The action the lab's segments favour, retired: the model still projects it (its touches are history).
    retired_id = "upsell_call"
    assert retired_id in named
    playbook = _retired(full, retired_id)

    result = run(lab.book, playbook, as_of=lab.as_of, effect_params=FAST, evaluate=False, evidence=False, seed=3)
    assert retired_id in result.projection.values["action_id"].unique().to_list()
    block = result.summary["segments"]
    best = {f["best_action"] for s in block["segments"] for f in s["response"]["families"]}
    assert retired_id not in best

    # The same figures as segment_book given the eligible pairs, as `nextmove segment` builds them.
    vocab = vocabulary_of(lab.book.accounts.schema, point_in_time(lab.book, lab.as_of), playbook=playbook)
    snapshot = compute_features(lab.book, lab.as_of, playbook=playbook, vocabulary=vocab).join(
        active_accounts(lab.book, playbook, lab.as_of), on="account_id", how="semi"
    )
    expected = segment_book(
        behavior_snapshot(lab.book, lab.as_of, playbook=playbook),
        projection=result.projection,
        playbook=playbook,
        outcomes=lab.book.outcomes,
        touches=lab.book.touches,
        accounts=lab.book.accounts,
        eligible=eligible_actions(snapshot, playbook),
        as_of=lab.as_of,
        seed=3,
        labels=signal_labels(lab.book, lab.as_of, playbook=playbook),
    ).to_dict()
    assert [s["response"] for s in block["segments"]] == [s["response"] for s in expected["segments"]]
    assert block["spend"] == expected["spend"]
    assert result.recommendations.filter(pl.col("action_id") == retired_id).height == 0
