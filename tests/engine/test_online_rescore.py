"""Decisions rescored with fresh signals weigh the playbook's candidates, variants included, as the run does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nextmove.book import Book
from nextmove.book.validate import load_book
from nextmove.decide.rules import candidates
from nextmove.engine.online import DecideRequest, OnlineDecider
from nextmove.engine.run import run
from nextmove.playbook import Playbook
from nextmove.playbook.loader import load_playbook
from nextmove.store import Store, open_store
from nextmove.testing import write_subscription_book
from nextmove.testing.subscriptions import SUBSCRIPTION_PLAYBOOK

# The push has two variants the book never logged: the effect model has no arm of its own for either.
# The trailer costs $0.20 more than the action.
VARIANT_PLAYBOOK = SUBSCRIPTION_PLAYBOOK.replace(
    "cost_usd = 0.05\ncooldown_days = 14\n",
    'cost_usd = 0.05\ncooldown_days = 14\nvariants = [{ id = "teaser" }, { id = "trailer", cost_usd = 0.25 }]\n',
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Book, Playbook, Store]]:
    folder = tmp_path_factory.mktemp("subscriptions") / "book"
    write_subscription_book(folder, 300, playbook=VARIANT_PLAYBOOK)
    playbook = load_playbook(folder / "playbook.toml")
    assert [v.id for v in playbook.action("push_reminder").variants] == ["teaser", "trailer"]
    book = load_book(folder, playbook=playbook)
    with open_store("sqlite://") as store:
        run(book, playbook, store=store, seed=0)
        yield book, playbook, store


def test_rescored_options_are_the_playbook_s_candidates_with_their_variants(
    served: tuple[Book, Playbook, Store],
) -> None:
    book, playbook, store = served
    decider = OnlineDecider(store, playbook, book=book)
    assert decider.snapshot is not None
    rec = next(r for r in store.recommendations(decider.snapshot.run.run_id) if r.arm != "control")
    (d,) = decider.decide([DecideRequest(rec.account_id, signals={"minutes_watched": 300.0})])
    assert d.evidence["rescored_with_fresh_signals"] is True
    probs = d.context["propensities"]
    assert set(probs) == {c.key for c in candidates(playbook)} | {"none"}
    # A variant the model has no arm for is worth its action's value with its own cost, as in the run.
    shown = {(a["action_id"], a["variant"]): a["value_usd"] for a in d.alternatives}
    shown[(d.action_id, d.variant)] = d.evidence["value_usd"]
    assert shown[("push_reminder", "teaser")] - shown[("push_reminder", "trailer")] == pytest.approx(0.20, abs=0.011)


def test_a_rescored_control_account_gets_its_default_s_variant(served: tuple[Book, Playbook, Store]) -> None:
    book, playbook, store = served
    decider = OnlineDecider(store, playbook, book=book)
    assert decider.snapshot is not None
    control = [
        r
        for r in store.recommendations(decider.snapshot.run.run_id)
        if r.arm == "control" and r.action_id == "push_reminder"
    ]
    assert control
    rec = control[0]
    assert rec.variant == "teaser"
    (d,) = decider.decide([DecideRequest(rec.account_id, signals={"minutes_watched": 300.0})])
    assert d.evidence["rescored_with_fresh_signals"] is True
    assert (d.arm, d.action_id, d.variant, d.propensity) == ("control", "push_reminder", "teaser", 1.0)
