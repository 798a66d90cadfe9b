"""``segment_book`` end to end on a small book the lab did not make: a web shop with its own signals and outcomes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from nextmove.book import Book, empty_table
from nextmove.errors import ConfigError
from nextmove.models.effect import EffectProjection
from nextmove.playbook import Action, Objective, Playbook
from nextmove.segment import BehaviorSegmenter, SegmentReport, behavior_snapshot, segment_book

AS_OF = datetime(2024, 7, 1, tzinfo=UTC)
N = 120


def _table(name: str, frame: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([empty_table(name), frame], how="diagonal_relaxed")


def _shop_book() -> tuple[Book, np.ndarray]:
    """Browsers (many page views, few chats) and chatters (few page views, many support chats), weekly."""
    rng = np.random.default_rng(7)
    group = np.arange(N) % 2
    ids = np.array([f"shop-{i:03d}" for i in range(N)])
    weeks = 40
    start = AS_OF - timedelta(weeks=weeks)
    acct = np.repeat(np.arange(N), weeks)
    week = np.tile(np.arange(weeks), N)
    ts = [start + timedelta(weeks=int(w), hours=5) for w in week]
    views = rng.poisson(np.where(group[acct] == 1, 400.0, 60.0)).astype(float)
    signals = pl.DataFrame({"account_id": ids[acct], "ts": ts, "name": "Page Views", "value": views})
    chats_per_week = np.where(group == 1, 0.1, 1.5)
    n_chats = rng.poisson(chats_per_week * weeks)
    chat_acct = np.repeat(np.arange(N), n_chats)
    chat_ts = [start + timedelta(hours=float(h)) for h in rng.uniform(0, weeks * 7 * 24 - 1, chat_acct.size)]
    chats = pl.DataFrame(
        {"account_id": ids[chat_acct], "ts": chat_ts, "name": "Support Chat", "value": np.ones(chat_acct.size)}
    )
    accounts = pl.DataFrame(
        {
            "account_id": ids,
            "arr": rng.uniform(500, 5000, N),
            "contract_start": [AS_OF - timedelta(days=400)] * N,
        }
    )
    # shop-000 (a chatter) lapsed a month ago; three browsers upgraded lately.
    outcomes = pl.DataFrame(
        {
            "account_id": ["shop-000", "shop-001", "shop-003", "shop-005"],
            "ts": [AS_OF - timedelta(days=30)] + [AS_OF - timedelta(days=d) for d in (10, 20, 40)],
            "kind": ["lapse", "upgrade", "upgrade", "upgrade"],
            "value": [3000.0, 200.0, 150.0, 100.0],
        }
    )
    touches = pl.DataFrame(
        {
            "account_id": ids[:20],
            "action_id": ["voucher" if i % 2 else "chat_followup" for i in range(20)],
            "ts": [AS_OF - timedelta(days=5 + i) for i in range(20)],
        }
    )
    book = Book(
        _table("accounts", accounts),
        _table("signals", pl.concat([signals, chats])),
        _table("touches", touches),
        _table("outcomes", outcomes),
    )
    return book, group


def _playbook() -> Playbook:
    return Playbook(
        objectives={
            "keep": Objective(outcome="lapse", sense="avoid", value="arr"),
            "grow": Objective(outcome="upgrade", value="amount"),
        },
        actions=[
            Action(id="voucher", name="Voucher", team="marketing", objective="grow", effort_hours=0.0),
            Action(id="chat_followup", name="Chat follow-up", team="support", objective="keep", effort_hours=0.5),
        ],
    )


def _projection(ids: list[str], group: dict[str, int]) -> EffectProjection:
    """Browsers gain from vouchers, chatters from follow-ups (values made up for the test)."""
    rows = []
    for a in ids:
        browser = group[a] == 1
        rows.append((a, "voucher", 80.0 if browser else 5.0, 40.0 if browser else -5.0, 120.0 if browser else 15.0))
        rows.append((a, "chat_followup", 10.0 if browser else 30.0, 0.0, 50.0))
        rows.append((a, "none", 0.0, 0.0, 0.0))
    values = pl.DataFrame(rows, schema=["account_id", "action_id", "value_usd", "low", "high"], orient="row")
    values = values.with_columns(cost_usd=pl.lit(0.0), pooled=pl.lit(False))
    effects = pl.DataFrame(
        {
            "account_id": ids * 2,
            "action_id": ["voucher"] * (2 * len(ids)),
            "objective": ["keep"] * len(ids) + ["grow"] * len(ids),
            "outcome": ["lapse"] * len(ids) + ["upgrade"] * len(ids),
            "unit": ["probability"] * len(ids) + ["usd"] * len(ids),
            "baseline": [0.05 if group[a] == 0 else 0.01 for a in ids] + [50.0] * len(ids),
            "effect": [0.0] * (2 * len(ids)),
            "low": [0.0] * (2 * len(ids)),
            "high": [0.0] * (2 * len(ids)),
            "effect_usd": [0.0] * (2 * len(ids)),
            "pooled": [False] * (2 * len(ids)),
        }
    )
    return EffectProjection(level=0.9, effects=effects, values=values, flagged_actions=())


@pytest.fixture(scope="module")
def shop() -> tuple[Book, dict[str, int], pl.DataFrame]:
    book, group = _shop_book()
    snapshot = behavior_snapshot(book, AS_OF, playbook=_playbook())
    by_id = dict(zip(book.accounts.get_column("account_id").to_list(), group.tolist(), strict=True))
    return book, by_id, snapshot


@pytest.fixture(scope="module")
def report(shop: tuple[Book, dict[str, int], pl.DataFrame]) -> SegmentReport:
    book, group, snapshot = shop
    ids = [a for a in group if a != "shop-000"]
    previous = pl.DataFrame({"account_id": ids, "segment_id": [7 + group[a] for a in ids]})
    health = pl.DataFrame({"account_id": ids, "health_score": [80.0 if group[a] else 40.0 for a in ids]})
    return segment_book(
        snapshot,
        projection=_projection(ids, group),
        playbook=_playbook(),
        outcomes=book.outcomes,
        touches=book.touches,
        health=health,
        previous=previous,
        as_of=AS_OF,
        segmenter=BehaviorSegmenter(k=2),
    )


def test_segment_book_finds_the_shop_behaviors_and_leaves_out_lapsed_accounts(
    report: SegmentReport, shop: tuple[Book, dict[str, int], pl.DataFrame]
) -> None:
    _book, group, _snapshot = shop
    assert report.k == 2
    assert report.accounts == N - 1
    assigned = dict(report.assignments.select("account_id", "segment_id").iter_rows())
    assert "shop-000" not in assigned
    # Every browser shares a segment, every chatter the other.
    pairs = {(group[a], s) for a, s in assigned.items()}
    assert len(pairs) == 2
    assert {p[0] for p in pairs} == {0, 1}
    names = {s.name for s in report.segments}
    assert any("high page views" in n for n in names)
    assert any("high support chat frequency" in n for n in names)


def test_segment_book_ranks_by_response_and_profiles_each_segment(report: SegmentReport) -> None:
    browsers, chatters = report.segments  # best response first
    assert browsers.response is not None
    assert chatters.response is not None
    assert (browsers.response.rank, chatters.response.rank) == (1, 2)
    assert browsers.response.value_usd == pytest.approx(80.0)
    assert chatters.response.value_usd == pytest.approx(30.0)
    # The book's best single action, the voucher: (80 × 60 browsers + 5 × 59 chatters) / 119.
    assert report.book_response_usd == pytest.approx((80 * 60 + 5 * 59) / 119)
    assert report.book_best_action == "voucher"
    assert report.book_response_low == pytest.approx((40 * 60 - 5 * 59) / 119)
    assert browsers.response.families[0].family == "marketing"
    assert chatters.response.families[0].family == "support"
    assert browsers.response.best_family is not None
    assert chatters.response.best_family is None  # $30 [$0, $50]: it may be worth nothing
    assert (browsers.health, chatters.health) == (80.0, 40.0)
    assert browsers.arr_usd is not None
    assert browsers.arr_usd > 0
    # Observed over the last year, lapsed accounts included: 1 of 60 chatters lapsed, 3 of 60 browsers upgraded.
    assert chatters.rates["lapse"].observed == pytest.approx(1 / 60)
    assert browsers.rates["upgrade"].observed == pytest.approx(3 / 60)
    assert browsers.rates["lapse"].observed == 0.0
    assert chatters.rates["lapse"].projected == pytest.approx(0.05)
    assert browsers.rates["upgrade"].unit == "usd"
    assert "marketing" in browsers.headline


def test_segment_book_spend_and_moves(report: SegmentReport) -> None:
    spend = report.spend
    assert spend is not None
    chatters = report.segments[1].id
    assert spend.below_average_segments == [chatters]
    assert spend.touches == 19  # shop-000's touch is gone with it
    assert spend.touches_below_average == 9  # shop-002, 004, … 018
    assert spend.share_below_average == pytest.approx(9 / 19)
    assert spend.moved_touches == 9
    # Nine chat follow-ups to chatters ($30 [$0, $50] each) moved to untouched browsers' vouchers ($80 [$40, $120]).
    assert spend.recoverable_usd == pytest.approx(9 * (80 - 30))
    assert (spend.low, spend.high) == (pytest.approx(9 * (40 - 50)), pytest.approx(9 * 120))
    assert not spend.material
    moves = report.moves
    assert moves is not None
    assert (moves.moved, moves.accounts, moves.new, moves.gone) == (0, 119, 0, 0)


def test_segment_report_is_json_ready(report: SegmentReport) -> None:
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["k"] == 2
    assert data["criterion"] == "fixed"
    assert data["segments"][0]["response"]["rank"] == 1
    assert set(data["segments"][0]["rates"]) == {"lapse", "upgrade"}
    assert data["moves"]["moved"] == 0
    assert "interval" in data
    assert report.segment(report.segments[0].id) is report.segments[0]
    with pytest.raises(KeyError):
        report.segment(99)


def test_segment_book_without_projection_or_outcomes(shop: tuple[Book, dict[str, int], pl.DataFrame]) -> None:
    _book, _group, snapshot = shop
    plain = segment_book(snapshot, segmenter=BehaviorSegmenter(k_range=(2, 3)))
    assert plain.accounts == N  # without outcomes nobody is known to be gone
    assert plain.spend is None
    assert plain.moves is None
    assert all(s.response is None for s in plain.segments)
    assert [s.id for s in plain.segments] == sorted(s.id for s in plain.segments)
    assert json.dumps(plain.to_dict(), allow_nan=False)
    with pytest.raises(ConfigError, match="lookback_days"):
        segment_book(snapshot, lookback_days=0)


@pytest.mark.parametrize(("days_before", "gone"), [(0, False), (1, True)])
def test_segment_book_counts_an_account_gone_at_the_as_of_as_the_run_does(
    shop: tuple[Book, dict[str, int], pl.DataFrame], days_before: int, gone: bool
) -> None:
    # As the run (active_accounts) and the training set do: the outcomes are dates, so a terminal outcome
    # dated the as-of's day happens after that day's decisions (still there), one the day before ended it.
    book, _group, snapshot = shop
    ts = AS_OF - timedelta(days=days_before)
    at_the_time = pl.concat(
        [
            book.outcomes,
            _table("outcomes", pl.DataFrame({"account_id": ["shop-002"], "ts": [ts], "kind": ["lapse"]})),
        ],
        how="diagonal_relaxed",
    )
    report = segment_book(
        snapshot, playbook=_playbook(), outcomes=at_the_time, as_of=AS_OF, segmenter=BehaviorSegmenter(k=2)
    )
    assert report.accounts == N - 1 - gone
    assert ("shop-002" in set(report.assignments.get_column("account_id").to_list())) is not gone


def _leavers_book() -> tuple[Book, np.ndarray, dict[str, datetime]]:
    """Frequent and occasional app users; half the accounts of each group left in the last year.

    Leaving does not depend on the group, and a leaver uses the app like the others of its group
    until it leaves, then not at all.
    """
    rng = np.random.default_rng(11)
    n = 160
    group = np.arange(n) % 2  # 1: about five sessions a week, 0: about one
    ids = [f"app-{i:03d}" for i in range(n)]
    ends = {ids[i]: AS_OF - timedelta(days=float(rng.uniform(60, 330))) for i in range(0, n, 4)}
    ends |= {ids[i]: AS_OF - timedelta(days=float(rng.uniform(60, 330))) for i in range(1, n, 4)}
    start = AS_OF - timedelta(days=365)
    rows = []
    for i, a in enumerate(ids):
        stop = ends.get(a, AS_OF)
        days = (stop - start).total_seconds() / 86_400
        count = rng.poisson((5.0 if group[i] else 1.0) / 7 * days)
        for offset in rng.uniform(0, days, count):
            rows.append((a, start + timedelta(days=float(offset)), float(rng.gamma(4.0, 5.0))))
    signals = pl.DataFrame(rows, schema=["account_id", "ts", "value"], orient="row").with_columns(
        name=pl.lit("App Session")
    )
    accounts = pl.DataFrame(
        {"account_id": ids, "arr": rng.uniform(100, 300, n), "contract_start": [AS_OF - timedelta(days=500)] * n}
    )
    outcomes = pl.DataFrame({"account_id": list(ends), "ts": list(ends.values()), "kind": "lapse"})
    book = Book(
        _table("accounts", accounts),
        _table("signals", signals),
        _table("touches", pl.DataFrame({"account_id": [ids[0]], "action_id": ["voucher"], "ts": [AS_OF]})),
        _table("outcomes", outcomes),
    )
    return book, group, ends


def test_segment_book_assigns_a_leaver_by_its_behavior_while_a_customer() -> None:
    # A leaver's sessions over the whole year, its months after leaving included, read as an
    # occasional user's: the frequent users who left landed in the occasional segment, whose
    # lapse rate then looked several times the book's although leaving does not depend on the group.
    book, group, ends = _leavers_book()
    playbook = _playbook()
    snapshot = behavior_snapshot(book, AS_OF, playbook=playbook)
    report = segment_book(
        snapshot, playbook=playbook, outcomes=book.outcomes, as_of=AS_OF, segmenter=BehaviorSegmenter(k=2)
    )
    assert report.accounts == len(group) - len(ends)
    by_group = {
        g: report.assignments.filter(pl.col("account_id").is_in([f"app-{i:03d}" for i in np.flatnonzero(group == g)]))
        .get_column("segment_id")
        .mode()
        .item()
        for g in (0, 1)
    }
    assert by_group[0] != by_group[1]
    book_rate = len(ends) / len(group)
    for segment in report.segments:
        rate = segment.rates["lapse"].observed
        assert rate is not None
        assert abs(rate - book_rate) < 0.08, (segment.name, rate, book_rate)
