"""Tests of signal kinds: counts add up over a window, levels are readings whose total means nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from nextmove.book import Book
from nextmove.features import compute_features, declared_signal_kinds, signal_kinds
from nextmove.playbook import Playbook
from nextmove.playbook.loader import load_playbook, parse_playbook
from nextmove.sim import SimConfig, simulate

from .conftest import PLAYBOOK_TOML, T0, day

USERS = 60
DAYS = 100


def _app_rows(seed: int = 3) -> list[tuple[str, object, str, float]]:
    """A consumer app's signals: a rolling 7-day count reported daily, crashes on the days they happen,
    a survey score now and then, and a daily heartbeat of 1."""
    rng = np.random.default_rng(seed)
    opens = rng.poisson(rng.lognormal(0.6, 0.6, USERS)[:, None], (USERS, DAYS))
    rolling = np.cumsum(opens, axis=1)
    rolling[:, 7:] -= rolling[:, :-7].copy()
    crashes = rng.poisson(rng.choice([0.02, 0.3], USERS)[:, None], (USERS, DAYS))
    surveyed = rng.random((USERS, DAYS)) < 1 / 30
    rows: list[tuple[str, object, str, float]] = []
    for i in range(USERS):
        for d in range(DAYS):
            ts = day(d - DAYS) + timedelta(hours=23)
            rows.append((f"u{i}", ts, "app_opens_7d", float(rolling[i, d])))
            rows.append((f"u{i}", ts, "heartbeat", 1.0))
            if crashes[i, d]:
                rows.append((f"u{i}", ts, "crash_count", float(crashes[i, d])))
            if surveyed[i, d]:
                rows.append((f"u{i}", ts, "nps_last", float(rng.integers(0, 11))))
    return rows


@pytest.fixture(scope="module")
def app(make_book: Callable[..., Book]) -> Book:
    return make_book([f"u{i}" for i in range(USERS)], _app_rows())


def test_signal_kinds_tell_regular_readings_from_events(app: Book) -> None:
    kinds = signal_kinds(compute_features(app, T0))
    # Read every day, however its values vary: a level. Rows on the days something happened: a count.
    assert kinds["app_opens_7d"] == "level"
    assert kinds["crash_count"] == "count"
    # A score answered now and then is too sparse to tell from its rows: the data alone keeps it a count.
    assert kinds["nps_last"] == "count"
    # Rows of 1 mark events, however regular.
    assert kinds["heartbeat"] == "count"


def test_signal_kinds_need_enough_accounts_to_judge(make_book: Callable[..., Book]) -> None:
    rows = [r for r in _app_rows() if r[0] in {"u1", "u2", "u3"}]
    few = make_book(["u1", "u2", "u3"], rows)
    assert signal_kinds(compute_features(few, T0))["app_opens_7d"] == "count"


def test_signal_kinds_follow_the_playbook_first(app: Book) -> None:
    base = PLAYBOOK_TOML.replace('support = ["tickets"]', 'support = ["tickets"]\nsurvey = ["NPS last"]')
    playbook = parse_playbook(base)
    declared = declared_signal_kinds(playbook)
    assert declared == {"tickets": "count", "nps_last": "level"}  # by stem; usage signals are left to the data
    snapshot = compute_features(app, T0, playbook=playbook)
    assert signal_kinds(snapshot, declared)["nps_last"] == "level"  # a survey score, by its role
    # [signal_kinds] overrides both the role and the data.
    declaring = parse_playbook(base + '\n[signal_kinds]\ncount = ["app_opens_7d"]\nlevel = ["crash_count"]\n')
    kinds = signal_kinds(snapshot, declared_signal_kinds(declaring))
    assert (kinds["app_opens_7d"], kinds["crash_count"], kinds["nps_last"]) == ("count", "level", "level")


def test_role_kinds_are_those_the_health_score_reads() -> None:
    playbook = load_playbook()
    declared = declared_signal_kinds(playbook)
    roles = playbook.signal_roles
    assert {declared[s] for s in roles.engagement + roles.support} == {"count"}
    assert {declared[s] for s in roles.sentiment + roles.survey} == {"level"}
    assert not set(roles.usage) & set(declared)  # usage mixes both: its signals are read from the data


def test_signal_kinds_change_no_feature(app: Book) -> None:
    plain = parse_playbook(PLAYBOOK_TOML)
    declaring = parse_playbook(PLAYBOOK_TOML + '\n[signal_kinds]\nlevel = ["crash_count", "app_opens_7d"]\n')
    assert compute_features(app, T0, playbook=plain).equals(compute_features(app, T0, playbook=declaring))


def test_signal_kinds_of_the_lab() -> None:
    result = simulate(SimConfig(accounts=200, months=6, seed=2))
    playbook: Playbook = parse_playbook(result.playbook_text)
    snapshot = compute_features(result.book, result.as_of, playbook=playbook)
    data = signal_kinds(snapshot)
    # Weekly usage readings and the monthly adoption share are levels; emails, meetings and tickets are events.
    levels = {"active_users", "seat_utilization", "logins", "sessions", "feature_adoption"}
    assert {s for s, k in data.items() if k == "level"} == levels
    kinds = signal_kinds(snapshot, declared_signal_kinds(playbook))
    # Sentiment and survey scores are levels by their role; support and engagement signals stay counts.
    assert {s for s, k in kinds.items() if k == "level"} == levels | {"ticket_sentiment", "csat", "nps"}
    assert pl.Series(list(kinds)).is_in(list(data)).all()
