"""A factory of small typed books and a small playbook for the feature tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from nextmove.book import CONTRACT, Book
from nextmove.playbook import Playbook
from nextmove.playbook.loader import parse_playbook

T0 = datetime(2024, 3, 1, tzinfo=UTC)
"""The snapshot time most tests use; ``day(n)`` is ``n`` days after it (negative: before)."""


def day(n: float) -> datetime:
    """``T0`` plus ``n`` days."""
    return T0 + timedelta(days=n)


def _table(name: str, rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """A frame of contract table ``name`` from dict rows: contract dtypes, missing optional columns null."""
    spec = CONTRACT[name]
    contract = {c.name: c.type.polars for c in spec.columns}
    extra_keys = [k for row in rows for k in row if k not in contract]
    columns: dict[str, pl.Series] = {}
    for col, dtype in contract.items():
        columns[col] = pl.Series(col, [row.get(col) for row in rows], dtype=dtype)
    for col in dict.fromkeys(extra_keys):
        columns[col] = pl.Series(col, [row.get(col) for row in rows])
    return pl.DataFrame(columns)


def build_book(
    accounts: Iterable[str | Mapping[str, Any]],
    signals: Iterable[tuple[str, datetime, str, float]] = (),
    touches: Iterable[tuple[str, str, datetime] | Mapping[str, Any]] = (),
    outcomes: Iterable[tuple[str, datetime, str, float | None]] = (),
) -> Book:
    """A book from plain rows.

    ``accounts``: ids or dicts of columns; ``signals``: ``(account_id, ts, name, value)``;
    ``touches``: ``(account_id, action_id, ts)`` or dicts; ``outcomes``: ``(account_id, ts, kind, value)``.
    """
    acc = [{"account_id": a} if isinstance(a, str) else dict(a) for a in accounts]
    sig = [{"account_id": a, "ts": t, "name": n, "value": v} for a, t, n, v in signals]
    tou = [dict(t) if isinstance(t, Mapping) else {"account_id": t[0], "action_id": t[1], "ts": t[2]} for t in touches]
    out = [{"account_id": a, "ts": t, "kind": k, "value": v} for a, t, k, v in outcomes]
    return Book(_table("accounts", acc), _table("signals", sig), _table("touches", tou), _table("outcomes", out))


PLAYBOOK_TOML = """
horizon_days = 30

[objectives.retention]
outcome = "churn"
sense = "avoid"
value = "arr"

[objectives.growth]
outcome = "expansion"
value = "amount"

[[actions]]
id = "call"
name = "Call"
team = "cs"
objective = "retention"

[[actions]]
id = "upsell"
name = "Upsell"
team = "sales"
objective = "growth"

[[actions]]
id = "mail"
name = "Mail"
team = "marketing"
objective = "growth"

[contact_policy]
window_days = 7

[signal_roles]
usage = ["Active Users", "logins"]
support = ["tickets"]
"""


@pytest.fixture(scope="session")
def make_book() -> Callable[..., Book]:
    """The book factory :func:`build_book`."""
    return build_book


@pytest.fixture(scope="session")
def playbook() -> Playbook:
    """A three-action playbook: churn (avoid, ARR) and expansion objectives, 30-day horizon, 7-day window."""
    return parse_playbook(PLAYBOOK_TOML)
