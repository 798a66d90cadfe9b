"""Settings of a simulated book: size, length, seed, start date, playbook and file formats."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nextmove.playbook import Playbook
from nextmove.playbook.loader import load_playbook

DEFAULT_START = datetime(2025, 1, 6, tzinfo=UTC)
"""A Monday; the lab never depends on today's date."""


class SimConfig(BaseModel):
    """What to simulate.

    Parameters
    ----------
    accounts
        Active accounts at the end of the simulation (churned accounts are replaced one for one,
        so this is also the number active at every week).
    months
        Length of the history in months; rounded to a whole number of decision windows.
    seed
        Seed of every random draw: the same config gives the same book, byte for byte.
    start
        First day of the history (UTC).
    with_propensities
        Log the historical policy's propensity on each touch; ``False`` leaves the column null
        so that estimating propensities can be tested.
    playbook
        The playbook whose actions, objectives, eligibility, cooldowns and contact policy the
        world uses; ``None`` means the built-in default playbook.
    signals_format
        File format of ``signals`` and of the ``truth/`` tables when written.
    accounts_per_owner
        Accounts per CSM.

    Examples
    --------
    >>> SimConfig(accounts=300, months=6).decision_windows
    13
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    accounts: int = Field(default=4200, ge=10, le=1_000_000)
    months: float = Field(default=18, gt=0, le=120)
    seed: int = Field(default=0, ge=0)
    start: datetime = DEFAULT_START
    with_propensities: bool = True
    playbook: Playbook | None = None
    signals_format: Literal["parquet", "csv"] = "parquet"
    accounts_per_owner: int = Field(default=60, ge=1)

    @field_validator("start")
    @classmethod
    def _utc_start(cls, value: datetime) -> datetime:
        # Naive timestamps are UTC by the data contract; whole days keep the calendar clean.
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(hour=0, minute=0, second=0, microsecond=0)

    def resolved_playbook(self) -> Playbook:
        """The playbook used: :attr:`playbook`, or the built-in default."""
        return self.playbook if self.playbook is not None else load_playbook()

    @property
    def decision_windows(self) -> int:
        """Number of historical decision windows (of the playbook's ``window_days``)."""
        window = self.resolved_playbook().contact_policy.window_days
        days = self.months * 365.25 / 12
        return max(1, round(days / window))
