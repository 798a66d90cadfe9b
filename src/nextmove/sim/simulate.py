"""Simulating a book of business with its ground truth: :func:`simulate` and :class:`SimResult`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from nextmove.book import Book
from nextmove.book.contract import ARMS
from nextmove.playbook.loader import default_playbook_text, load_playbook
from nextmove.sim.config import SimConfig
from nextmove.sim.frames import Truth, TruthSummary, build_book, build_truth, summarize_truth
from nextmove.sim.playbook_toml import dump_playbook
from nextmove.sim.world import World


@dataclass(frozen=True)
class SimResult:
    """A simulated book, its truth, and the world that made it (to compute more truth)."""

    config: SimConfig
    book: Book
    """The book of business, in the contract dtypes, as of :attr:`as_of`."""
    as_of: datetime
    """End of the history, and the decision time the ``truth.values`` are for."""
    truth: Truth
    world: World
    """The world at :attr:`as_of`: ``world.true_values(account_ids, t, actions)`` for any logged
    decision time."""
    playbook_text: str
    """The TOML text of the playbook the world used (written as ``playbook.toml``)."""

    @property
    def summary(self) -> TruthSummary:
        """Oracle vs lifecycle-default value at as_of, share where doing nothing is best, top group."""
        return summarize_truth(self.truth)


def simulate(config: SimConfig | None = None) -> SimResult:
    """Simulate a book of business with hidden states, a confounded historical policy and exact truth.

    Parameters
    ----------
    config
        What to simulate; the defaults give the seed's scale (4,200 active accounts, 18 months,
        the default playbook's 14 actions).

    Returns
    -------
    SimResult
        The book, its ``as_of``, the truth tables and the world.

    Raises
    ------
    ConfigError
        If the playbook cannot be simulated (a decision window that is not whole weeks, an
        eligibility expression over features the lab does not have).

    Examples
    --------
    >>> result = simulate(SimConfig(accounts=60, months=2, seed=3))
    >>> result.book.accounts.filter(result.book.accounts["lifecycle_stage"] != "churned").height
    60
    >>> sorted(result.book.touches["arm"].unique().to_list())
    ['default']
    """
    config = config or SimConfig()
    world = World(config)
    default_arm = ARMS.index("default")
    for _ in range(config.decision_windows):
        x = world.begin_decision()
        codes, propensity, probs = world.choose_historical(x)
        arm = np.full(len(codes), default_arm, dtype=np.int64)
        world.apply_decisions(
            x,
            codes,
            propensity=propensity,
            arm=arm,
            logged=np.ones(len(codes), dtype=bool),
            propensities=probs,
        )
        world.advance_window()
    world.begin_decision()
    book = build_book(
        world,
        with_propensities=config.with_propensities,
        source=f"<nextmove.sim seed={config.seed}>",
    )
    playbook = config.resolved_playbook()
    text = default_playbook_text() if playbook == load_playbook() else dump_playbook(playbook)
    return SimResult(
        config=config,
        book=book,
        as_of=world.now,
        truth=build_truth(world),
        world=world,
        playbook_text=text,
    )
