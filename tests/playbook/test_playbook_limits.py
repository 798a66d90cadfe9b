"""Tests of the playbook's number bounds and of the loader's messages for what an author gets wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nextmove.errors import PlaybookError
from nextmove.playbook.loader import load_playbook, parse_playbook
from nextmove.playbook.schema import MAX_DAYS, MAX_HOURS, MAX_PLAYS, MAX_USD, MAX_WEEKS, MAX_WEIGHT

MINIMAL = """
[objectives.retention]
outcome = "churn"
sense = "avoid"
value = "arr"

[[actions]]
id = "call"
name = "Call"
team = "cs"
objective = "retention"
"""


def _error(text: str) -> str:
    with pytest.raises(PlaybookError) as info:
        parse_playbook(text, source="pb.toml")
    return str(info.value)


DAY_COUNTS = [
    ("actions[0] (id='call').cooldown_days", 'name = "Call"', 'name = "Call"\ncooldown_days = {n}', 0, "days"),
    ("contact_policy.window_days", "", "[contact_policy]\nwindow_days = {n}\n", 1, "days"),
    (
        "contact_policy.caps[0].window_days",
        "",
        '[contact_policy]\ncaps = [{{ team = "cs", max_touches = 1, window_days = {n} }}]\n',
        1,
        "days",
    ),
    ("health.trend_weeks", "", "[health]\ntrend_weeks = {n}\n", 1, "weeks"),
]


@pytest.mark.parametrize(("where", "old", "new", "low", "unit"), DAY_COUNTS)
@pytest.mark.parametrize("n", [800_000, 1_000_000_000, 9_000_000_000])
def test_playbook_limits_refuse_a_day_count_no_date_can_hold(
    where: str, old: str, new: str, low: int, unit: str, n: int
) -> None:
    # window_days = 1e9 passed validate, and `nextmove run` died in timedelta(days=…) (OverflowError).
    text = MINIMAL.replace(old, new.format(n=n)) if old else MINIMAL + new.format(n=n)
    high = MAX_WEEKS if unit == "weeks" else MAX_DAYS
    said = _error(text)
    assert f"{where}: must be a whole number from {low} to {high:,} {unit}; got {n:,}" in said
    assert "the playbook has 1 problem:" in said


@pytest.mark.parametrize(("where", "old", "new", "low", "unit"), DAY_COUNTS)
def test_playbook_limits_take_the_longest_day_count_and_a_date_holds_it(
    where: str, old: str, new: str, low: int, unit: str
) -> None:
    high = MAX_WEEKS if unit == "weeks" else MAX_DAYS
    text = MINIMAL.replace(old, new.format(n=high)) if old else MINIMAL + new.format(n=high)
    parse_playbook(text)
    # The run moves dates of the book by them (a window back, a cooldown ahead): such dates exist.
    span = timedelta(weeks=high) if unit == "weeks" else timedelta(days=high)
    assert datetime(1900, 1, 1, tzinfo=UTC) - span < datetime(2900, 1, 1, tzinfo=UTC) + span


@pytest.mark.parametrize(
    ("where", "text"),
    [
        ("actions[0] (id='call').cost_usd", MINIMAL.replace('name = "Call"', 'name = "Call"\ncost_usd = 1e308')),
        (
            "actions[0] (id='call').variants[0] (id='sms').cost_usd",
            MINIMAL.replace('name = "Call"', 'name = "Call"\nvariants = [{ id = "sms", cost_usd = 1e308 }]'),
        ),
        ("capacity.budget_usd_per_team.cs", MINIMAL + "[capacity]\nbudget_usd_per_team = { cs = 1e308 }\n"),
        (
            "objectives.retention.value_usd",
            MINIMAL.replace('value = "arr"', 'value = "fixed"\nvalue_usd = 1e308'),
        ),
    ],
)
def test_playbook_limits_refuse_dollar_amounts_whose_sums_overflow(where: str, text: str) -> None:
    # cost_usd = 1e308 passed, and the run's summary said the spend was -inf.
    assert f"{where}: must be from 0 to {MAX_USD:,.0f} (in the playbook's currency); got 1e+308" in _error(text)
    ok = text.replace("1e308", f"{MAX_USD:.0f}")
    parse_playbook(ok)


@pytest.mark.parametrize(
    ("where", "text", "high"),
    [
        (
            "actions[0] (id='call').effort_hours",
            MINIMAL.replace('name = "Call"', 'name = "Call"\neffort_hours = 1e308'),
            f"{MAX_HOURS:,.0f} hours",
        ),
        (
            "capacity.hours_per_owner_per_week",
            MINIMAL + "[capacity]\nhours_per_owner_per_week = 1e308\n",
            f"{MAX_HOURS:,.0f} hours",
        ),
        (
            "capacity.owner_hours.ana",
            MINIMAL + "[capacity.owner_hours]\nana = 1e308\n",
            f"{MAX_HOURS:,.0f} hours",
        ),
        (
            "objectives.retention.weight",
            MINIMAL.replace('value = "arr"', 'value = "arr"\nweight = 1e308'),
            f"{MAX_WEIGHT:,.0f}",
        ),
    ],
)
def test_playbook_limits_refuse_huge_hours_and_weights(where: str, text: str, high: str) -> None:
    assert f"{where}: must be from 0 to {high}; got 1e+308" in _error(text)


def test_playbook_limits_a_lower_bound_says_the_range_too() -> None:
    said = _error("control_fraction = 1\n" + MINIMAL)
    assert "control_fraction: must be at least 0 and less than 1; got 1" in said
    said = _error("horizon_days = 0\n" + MINIMAL)
    assert "horizon_days: must be a whole number from 1 to 730 days; got 0" in said


@pytest.mark.parametrize(
    ("line", "where", "what"),
    [
        ("cooldown_days = true", "actions[0] (id='call').cooldown_days", "must be a number, not true"),
        ("cost_usd = false", "actions[0] (id='call').cost_usd", "must be a number, not false"),
        (
            'cooldown_days = "30"',
            "actions[0] (id='call').cooldown_days",
            "must be a number, not the text '30': write it without quotes",
        ),
    ],
)
def test_playbook_refuses_booleans_and_text_for_numbers(line: str, where: str, what: str) -> None:
    # `cooldown_days = true` was read as a 1-day cooldown.
    assert f"{where}: {what}" in _error(MINIMAL.replace('name = "Call"', f'name = "Call"\n{line}'))


def test_playbook_refuses_a_boolean_max_actions_per_window() -> None:
    said = _error(MINIMAL + "[contact_policy]\nmax_actions_per_window = true\n")
    assert "contact_policy.max_actions_per_window: must be a number, not true" in said
    said = _error(MINIMAL + "[capacity]\nbudget_usd_per_team = { cs = true }\n")
    assert "capacity.budget_usd_per_team.cs: must be a number, not true" in said


def test_playbook_unknown_key_names_the_key_it_resembles() -> None:
    said = _error(MINIMAL.replace('name = "Call"', 'name = "Call"\ncooldown = 30'))
    assert "actions[0] (id='call').cooldown: unknown key; did you mean cooldown_days?" in said
    said = _error(MINIMAL + "[contact_policy]\nwindow_day = 7\n")
    assert "contact_policy.window_day: unknown key; did you mean window_days?" in said
    said = _error("horizon = 30\n" + MINIMAL)
    assert "horizon: unknown key; did you mean horizon_days?" in said


def test_playbook_id_error_says_in_words_what_an_id_may_contain() -> None:
    said = _error(MINIMAL.replace('id = "call"', 'id = "Rückruf"'))
    assert "actions[0] (id='Rückruf').id: 'Rückruf' is not an id: an id is ASCII letters, digits, '_' and '-'" in said
    assert "[A-Za-z" not in said  # no regular expression
    said = _error(MINIMAL.replace('id = "call"', f'id = "{"p" * 65}"'))
    assert "an id is at most 64 characters; this one has 65" in said


def test_playbook_problems_are_counted_in_words() -> None:
    said = _error(MINIMAL.replace('name = "Call"', 'name = "Call"\ncost_usd = -1\neffort_hours = -1'))
    assert "the playbook has 2 problems:" in said


def test_load_playbook_reads_a_file_saved_with_a_byte_order_mark(tmp_path: Path) -> None:
    # Windows editors save UTF-8 with a BOM: it was read as TOML and refused at line 1, column 1.
    path = tmp_path / "playbook.toml"
    path.write_text("\ufeff" + MINIMAL, encoding="utf-8")
    assert load_playbook(path).action_ids == ["call"]
    assert parse_playbook("\ufeff" + MINIMAL).action_ids == ["call"]
    assert parse_playbook("\ufeff" + MINIMAL).content_hash() == parse_playbook(MINIMAL).content_hash()


PLAY_COUNTS = [
    ("actions[0] (id='call').max_per_run", 'name = "Call"', 'name = "Call"\nmax_per_run = {n}'),
    ("contact_policy.max_actions_per_window", "", "[contact_policy]\nmax_actions_per_window = {n}\n"),
    (
        "contact_policy.caps[0].max_touches",
        "",
        '[contact_policy]\ncaps = [{{ team = "cs", max_touches = {n}, window_days = 7 }}]\n',
    ),
]


@pytest.mark.parametrize(("where", "old", "new"), PLAY_COUNTS)
def test_playbook_limits_bound_the_counts_of_plays(where: str, old: str, new: str) -> None:
    def text(n: int) -> str:
        return MINIMAL.replace(old, new.format(n=n)) if old else MINIMAL + new.format(n=n)

    said = _error(text(10**12))
    assert f"{where}: must be a whole number from 0 to {MAX_PLAYS:,}; got {10**12:,}" in said
    assert parse_playbook(text(MAX_PLAYS), source="pb.toml") is not None


def test_playbook_limits_owner_hours_name_owners_as_the_book_reads_them() -> None:
    said = _error(MINIMAL + '[capacity.owner_hours]\n" ana" = 4\n')
    assert "owner_hours names ' ana' with spaces around: accounts.owner is read without them" in said
    assert "owner_hours names a blank owner" in _error(MINIMAL + '[capacity.owner_hours]\n"" = 4\n')
