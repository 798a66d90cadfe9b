"""The closed-loop lab: a policy decides each window, the hidden world answers with what followed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from nextmove.book import Book
from nextmove.book.contract import ARMS
from nextmove.errors import ConfigError
from nextmove.sim.config import SimConfig
from nextmove.sim.frames import accounts_frame, outcomes_frame, signals_frame, touches_frame
from nextmove.sim.simulate import SimResult, simulate
from nextmove.sim.world import F64, I64, World, decision_truth_frame, parse_account_id


@dataclass(frozen=True)
class StepResult:
    """What followed one window of decisions, and their true value."""

    decided_at: datetime
    """The decision time the decisions were taken at."""
    now: datetime
    """The time after the window (the next decision time)."""
    touches: pl.DataFrame
    """The touches logged for the decisions (contract dtypes)."""
    outcomes: pl.DataFrame
    """Outcomes realised during the window (any earlier decision's, too)."""
    signals: pl.DataFrame
    """Signals observed during the window."""
    values: pl.DataFrame
    """One row per account active at ``decided_at``: ``decided`` (in the decisions given; the
    others were left alone), ``action_id``, ``eligible``, true outcome probabilities,
    ``value_usd``, and the ``oracle_action`` with its ``oracle_value_usd``."""
    true_value_usd: float
    """Sum of the true values of the decisions (accounts left alone count as ``none``: 0)."""
    oracle_value_usd: float
    """Sum of the oracle's values over the same accounts."""

    @property
    def regret_usd(self) -> float:
        """Oracle value minus the decisions' value (0 or more when the decisions were eligible)."""
        return self.oracle_value_usd - self.true_value_usd


class LabEnvironment:
    """A simulated book that answers a policy's decisions, window after window.

    It simulates the history of ``config`` first; from then on :meth:`step` takes the
    decisions for the current decision time, advances the hidden world by one decision window
    and returns what followed, with the true value of those decisions.

    Parameters
    ----------
    config
        The world to simulate (defaults: :class:`SimConfig`).

    Examples
    --------
    >>> import polars as pl
    >>> env = LabEnvironment(SimConfig(accounts=40, months=1, seed=2))
    >>> ids = env.book().accounts.filter(pl.col("lifecycle_stage") != "churned")["account_id"]
    >>> decisions = pl.DataFrame({"account_id": ids, "action_id": "none", "propensity": 1.0,
    ...                           "arm": "model"})
    >>> step = env.step(decisions)
    >>> step.true_value_usd
    0.0
    >>> (step.now - step.decided_at).days
    14
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self._result: SimResult = simulate(config)
        self._world: World = self._result.world
        self._signals = self._result.book.signals
        self._touches = self._result.book.touches
        self._outcomes = self._result.book.outcomes

    @property
    def world(self) -> World:
        """The hidden world (for truth: ``world.true_values(...)``)."""
        return self._world

    @property
    def history(self) -> SimResult:
        """The simulated history the environment started from (its book and truth)."""
        return self._result

    @property
    def now(self) -> datetime:
        """The current decision time."""
        return self._world.now

    def book(self) -> Book:
        """The book of business observable now: the history plus everything the steps produced."""
        return Book(
            accounts=accounts_frame(self._world),
            signals=self._signals,
            touches=self._touches,
            outcomes=self._outcomes,
            source=f"<nextmove.sim env seed={self._world.config.seed}>",
            as_of=self.now,
        )

    def true_values(
        self, account_ids: Sequence[str] | None = None, actions: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """The truth of each candidate for each active account at the current decision time
        (see :meth:`World.true_values`)."""
        return self._world.true_values(account_ids, None, actions)

    def step(self, decisions: pl.DataFrame) -> StepResult:
        """Carry out ``decisions`` at the current decision time and advance one window.

        Parameters
        ----------
        decisions
            Columns ``account_id`` and ``action_id`` (an action of the playbook or ``none``),
            optionally ``propensity`` (in (0, 1]), ``arm`` (default ``model``) and ``variant``.
            At most one row per account; active accounts left out are left alone (no touch is
            logged, their outcomes are drawn under ``none``). Ineligible actions are carried out
            too: the returned ``values`` flag them.

        Returns
        -------
        StepResult

        Raises
        ------
        ConfigError
            If a column is missing, an account is not active, an action, arm or variant is
            unknown, a propensity lies outside (0, 1], or an account appears twice.
        """
        world = self._world
        x = world.snapshot()
        rows, code, propensity, arm, variant = self._parse(decisions, x.idx)
        n = len(x.idx)
        codes = np.zeros(n, dtype=np.int64)
        logged = np.zeros(n, dtype=bool)
        props = np.full(n, np.nan)
        arms = np.full(n, ARMS.index("model"), dtype=np.int64)
        variants = np.full(n, -1, dtype=np.int64)
        codes[rows], logged[rows], props[rows], arms[rows], variants[rows] = (
            code, True, propensity, arm, variant,
        )  # fmt: skip
        marks = (len(world.touch_chunks), len(world.outcome_chunks), len(world.signal_chunks))
        decided_at = world.now
        record = world.apply_decisions(x, codes, propensity=props, arm=arms, logged=logged, variant=variants)
        world.advance_window()
        world.begin_decision()
        touches = touches_frame(world, marks[0])
        outcomes = outcomes_frame(world, marks[1])
        signals = signals_frame(world.signal_chunks[marks[2] :])
        self._touches = pl.concat([self._touches, touches])
        self._outcomes = pl.concat([self._outcomes, outcomes])
        self._signals = pl.concat([self._signals, signals])

        ids = world.account_ids(x.idx)
        values = decision_truth_frame(
            ids, x.t_s, "", x.eligible[np.arange(n), codes], record.probs_taken, record.value_usd
        ).with_columns(
            pl.Series("action_id", [world.action_ids[c] for c in codes]),
            pl.Series("decided", logged),
            pl.Series("oracle_action", [world.action_ids[c] for c in record.oracle_code]),
            pl.Series("oracle_value_usd", record.oracle_value_usd),
        )
        values = values.select(
            "account_id", "ts", "decided", *[c for c in values.columns if c not in ("account_id", "ts", "decided")]
        )
        return StepResult(
            decided_at=decided_at,
            now=world.now,
            touches=touches,
            outcomes=outcomes,
            signals=signals,
            values=values,
            true_value_usd=float(record.value_usd.sum()),
            oracle_value_usd=float(record.oracle_value_usd.sum()),
        )

    def _parse(self, decisions: pl.DataFrame, active: I64) -> tuple[I64, I64, F64, I64, I64]:
        """Check ``decisions`` and turn them into rows of the current state, codes, propensities,
        arms and variants."""
        world = self._world
        for col in ("account_id", "action_id"):
            if col not in decisions.columns:
                raise ConfigError(f"decisions: missing column {col!r} (have {decisions.columns})")
        position = {int(i): r for r, i in enumerate(active)}
        ids = decisions.get_column("account_id").cast(pl.String).to_list()
        actions = decisions.get_column("action_id").cast(pl.String).to_list()
        n = len(ids)
        rows = np.zeros(n, dtype=np.int64)
        code = np.zeros(n, dtype=np.int64)
        seen: set[str] = set()
        for i, (account_id, action_id) in enumerate(zip(ids, actions, strict=True)):
            k = parse_account_id(account_id) if account_id is not None else None
            if k is None or k not in position:
                raise ConfigError(f"decisions row {i}: account {account_id!r} is not active now")
            if account_id in seen:
                raise ConfigError(f"decisions row {i}: account {account_id!r} appears twice")
            seen.add(account_id)
            if action_id not in world.action_ids:
                raise ConfigError(
                    f"decisions row {i}: action {action_id!r} is not in the playbook "
                    f"(actions: {', '.join(world.action_ids)})"
                )
            rows[i] = position[k]
            code[i] = world.action_ids.index(action_id)
        propensity = np.full(n, np.nan)
        if "propensity" in decisions.columns:
            values = decisions.get_column("propensity").cast(pl.Float64).to_numpy()
            bad = ~np.isnan(values) & ((values <= 0) | (values > 1))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ConfigError(f"decisions row {i}: propensity {values[i]} is not in (0, 1]")
            propensity = values.astype(np.float64)
        arm = np.full(n, ARMS.index("model"), dtype=np.int64)
        if "arm" in decisions.columns:
            for i, value in enumerate(decisions.get_column("arm").cast(pl.String).to_list()):
                if value is None:
                    continue
                if value not in ARMS:
                    raise ConfigError(f"decisions row {i}: arm {value!r} is not one of {', '.join(ARMS)}")
                arm[i] = ARMS.index(value)
        variant = np.full(n, -1, dtype=np.int64)
        if "variant" in decisions.columns:
            for i, value in enumerate(decisions.get_column("variant").cast(pl.String).to_list()):
                if value is None:
                    continue
                allowed = world.variants[code[i]]
                if value not in allowed:
                    raise ConfigError(
                        f"decisions row {i}: variant {value!r} is not a variant of {actions[i]!r} "
                        f"(variants: {', '.join(allowed) or 'none'})"
                    )
                variant[i] = world.variant_names.index(value)
        return rows, code, propensity, arm, variant
