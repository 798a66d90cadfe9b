"""The Hillstrom e-mail test (a real randomised B2C experiment) expressed as a book of business."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from nextmove.book import Book
from nextmove.book.validate import load_book
from nextmove.errors import ConfigError
from nextmove.playbook import Playbook

CAMPAIGN_TS = datetime(2008, 3, 1, tzinfo=UTC)
"""When the e-mails went out (the data set says March 2008; the day is a convention)."""
OUTCOME_TS = CAMPAIGN_TS + timedelta(days=7)
"""Outcomes happened within two weeks; the data set does not say when, so mid-window."""
ARMS = {"Mens E-Mail": "mens_email", "Womens E-Mail": "womens_email", "No E-Mail": "none"}

HILLSTROM_PLAYBOOK = """
name = "Hillstrom e-mail test"
horizon_days = 14
control_fraction = 0.0

[objectives.visit]
outcome = "visit"
value = "fixed"
value_usd = 1.0

[objectives.spend]
outcome = "spend"
value = "amount"

[[actions]]
id = "mens_email"
name = "Men's merchandise e-mail"
team = "marketing"
objective = "spend"
channel = "email"

[[actions]]
id = "womens_email"
name = "Women's merchandise e-mail"
team = "marketing"
objective = "spend"
channel = "email"
"""
"""A playbook for the Hillstrom book: two e-mails, visits and spend as objectives."""


def hillstrom_playbook(objective: str | None = None) -> Playbook:
    """The Hillstrom playbook, or the same with one objective only (both e-mails then serve it).

    A policy learned for one objective (visits, or spend) ranks the e-mails by that objective's
    effect alone.

    Raises
    ------
    ConfigError
        If ``objective`` is not one of the playbook's objectives.

    Examples
    --------
    >>> list(hillstrom_playbook().objectives)
    ['visit', 'spend']
    >>> pb = hillstrom_playbook("visit")
    >>> list(pb.objectives), {a.objective for a in pb.actions}
    (['visit'], {'visit'})
    """
    data: dict[str, Any] = tomllib.loads(HILLSTROM_PLAYBOOK)
    if objective is not None:
        if objective not in data["objectives"]:
            known = ", ".join(data["objectives"])
            raise ConfigError(f"objective must be one of the Hillstrom playbook's ({known}), got {objective!r}")
        data["objectives"] = {objective: data["objectives"][objective]}
        for action in data["actions"]:
            action["objective"] = objective
    return Playbook.model_validate(data)


def hillstrom_test_positions(n_rows: int = 64_000, *, random_state: int = 0) -> np.ndarray:
    """Row positions of the evaluation half: the data README's fixed split with ``random_state=0``.

    Other seeds give other 50/50 splits drawn the same way (``train_test_split(numpy.arange(n_rows),
    test_size=0.5, random_state=random_state)[1]``), to check a result is not one split's luck.
    """
    from sklearn.model_selection import train_test_split

    _, test = train_test_split(np.arange(n_rows), test_size=0.5, random_state=random_state)
    out: np.ndarray = np.asarray(test)
    return out


def hillstrom_book(csv_path: str | Path, *, rows: int | None = None) -> Book:
    """Load ``hillstrom.csv`` as a validated book: customers, one logged decision each, and outcomes.

    Each customer is an account (attributes as extra columns; ``account_id`` is the row position
    ``c00000``…); the campaign is a touch on 2008-03-01 with propensity 1/3 (``none`` for the
    no-e-mail arm, so the randomised control is in the log); ``visit`` and ``conversion`` are
    outcome events and ``spend`` an outcome with its dollar amount, attributed to the touch.
    """
    raw = pl.read_csv(csv_path, n_rows=rows, schema_overrides={"spend": pl.Float64, "history": pl.Float64})
    n = raw.height
    ids = [f"c{i:05d}" for i in range(n)]
    touch_ids = [f"t{i:05d}" for i in range(n)]
    accounts = raw.drop("segment", "visit", "conversion", "spend").with_columns(
        pl.Series("account_id", ids), pl.lit("customer").alias("lifecycle_stage")
    )
    touches = pl.DataFrame(
        {
            "account_id": ids,
            "action_id": raw.get_column("segment").replace_strict(ARMS).to_list(),
            "ts": [CAMPAIGN_TS] * n,
            "touch_id": touch_ids,
            "arm": ["explore"] * n,
            "propensity": [1 / 3] * n,
        }
    )
    events = []
    for kind, value in (("visit", pl.lit(1.0)), ("conversion", pl.lit(1.0)), ("spend", pl.col("spend"))):
        happened = raw.with_columns(pl.Series("account_id", ids), pl.Series("touch_id", touch_ids)).filter(
            pl.col(kind) > 0
        )
        events.append(
            happened.select(
                "account_id",
                pl.lit(OUTCOME_TS).alias("ts"),
                pl.lit(kind).alias("kind"),
                value.cast(pl.Float64).alias("value"),
                "touch_id",
            )
        )
    outcomes = (
        pl.concat(events).with_row_index("n").with_columns(pl.format("o{}", pl.col("n")).alias("outcome_id")).drop("n")
    )
    from nextmove.playbook.loader import parse_playbook

    playbook = parse_playbook(HILLSTROM_PLAYBOOK, source="<hillstrom playbook>")
    return load_book(
        {"accounts": accounts, "touches": touches, "outcomes": outcomes},
        playbook=playbook,
        as_of=CAMPAIGN_TS + timedelta(days=30),
    )
