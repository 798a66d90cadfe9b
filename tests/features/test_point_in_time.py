"""The point-in-time rule as a property: nothing dated at or after ``t`` changes the snapshot at ``t``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from nextmove.book import Book
from nextmove.features import compute_features
from nextmove.playbook import Playbook

T0 = datetime(2024, 3, 1, tzinfo=UTC)
MakeBook = Callable[..., Book]
HOURS = 24 * 200

ACCOUNTS = ["a", "b", "c"]
accounts = st.sampled_from(ACCOUNTS)
# Times are hours from T0, so that rows land exactly on T0 and on window boundaries often.
past = st.integers(-HOURS, -1)
future = st.integers(0, HOURS)
# Whole numbers sum exactly in any order, so snapshots can be compared exactly.
values = st.integers(-1000, 1000).map(float)
signal_names = st.sampled_from(["x", "Active Users", "tickets"])
future_signal_names = st.sampled_from(["x", "Active Users", "tickets", "brand new"])
actions = st.sampled_from(["call", "upsell", "none", "legacy"])
future_actions = st.sampled_from(["call", "upsell", "none", "legacy", "new_play"])
kinds = st.sampled_from(["churn", "expansion", "renewal"])
future_kinds = st.sampled_from(["churn", "expansion", "renewal", "downgrade"])


def at(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


Row = tuple[str, int, object, object]
"""(account_id, hours from T0, name / action / kind, value)."""


def _rows(data: st.DataObject, third: st.SearchStrategy[object], fourth: st.SearchStrategy[object]) -> list[Row]:
    return data.draw(st.lists(st.tuples(accounts, st.one_of(past, future), third, fourth), max_size=20))


def _changed(
    data: st.DataObject,
    rows: list[Row],
    third: st.SearchStrategy[object],
    fourth: st.SearchStrategy[object],
) -> list[Row]:
    """Rows at or after T0 replaced by anything else at or after T0; new ones inserted anywhere."""
    out = [
        data.draw(st.tuples(accounts, future, third, fourth)) if hours >= 0 else (acc, hours, a, b)
        for acc, hours, a, b in rows
    ]
    for new in data.draw(st.lists(st.tuples(accounts, future, third, fourth), max_size=5)):
        out.insert(data.draw(st.integers(0, len(out))), new)
    return out


@given(data=st.data())
def test_compute_features_ignores_every_row_at_or_after_as_of(
    data: st.DataObject, make_book: MakeBook, playbook: Playbook
) -> None:
    signals = _rows(data, signal_names, values)
    touches = _rows(data, actions, st.just(None))
    outcomes = _rows(data, kinds, values)

    def book(sig: list[Row], tou: list[Row], out: list[Row]) -> Book:
        return make_book(
            ACCOUNTS,
            signals=[(a, at(h), n, v) for a, h, n, v in sig],
            touches=[(a, act, at(h)) for a, h, act, _ in tou],
            outcomes=[(a, at(h), k, v) for a, h, k, v in out],
        )

    before = compute_features(book(signals, touches, outcomes), T0, playbook=playbook)
    after = compute_features(
        book(
            _changed(data, signals, future_signal_names, values),
            _changed(data, touches, future_actions, st.just(None)),
            _changed(data, outcomes, future_kinds, values),
        ),
        T0,
        playbook=playbook,
    )
    assert_frame_equal(before, after, check_exact=True)
