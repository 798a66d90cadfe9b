"""Tests of the playbook schema, the loader's messages and the default playbook."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextmove.errors import PlaybookError
from nextmove.playbook import Team
from nextmove.playbook.loader import default_playbook_text, load_playbook, parse_playbook

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


def test_default_playbook_has_fourteen_actions_across_four_teams() -> None:
    pb = load_playbook()
    assert len(pb.actions) == 14
    assert {a.team for a in pb.actions} == set(Team)
    assert {a.objective for a in pb.actions} == {"retention", "expansion", "advocacy", "recovery", "onboarding"}
    assert pb.horizon_days == 90


def test_default_playbook_maps_lifecycle_stages_to_defaults() -> None:
    pb = load_playbook()
    assert pb.default_action_for_stage("onboarding") == "onboarding_catchup"
    assert pb.default_action_for_stage("renewal") == "exec_sponsor_call"
    assert pb.default_action_for_stage("unknown-stage") == "none"
    assert pb.default_action_for_stage(None) == "none"


def test_a_playbook_names_its_own_teams() -> None:
    # A B2C company's teams are not a B2B SaaS company's: any id is a team, and caps and budgets use it.
    text = MINIMAL.replace('team = "cs"', 'team = "growth"\nchannel = "push"') + (
        '[contact_policy]\ncaps = [{ team = "growth", channel = "push", max_touches = 2, window_days = 7 }]\n'
        "[capacity]\nbudget_usd_per_team = { growth = 500 }\n"
    )
    pb = parse_playbook(text)
    assert pb.actions[0].team == "growth"
    assert pb.capacity.budget_usd_per_team == {"growth": 500.0}
    assert pb.contact_policy.caps[0].team == "growth"


def test_parse_playbook_minimal_fills_defaults() -> None:
    pb = parse_playbook(MINIMAL)
    assert pb.contact_policy.max_actions_per_window == 1
    assert pb.control_fraction == pytest.approx(0.1)
    assert pb.exploration.method == "thompson"


def test_load_playbook_reads_file(tmp_path: Path) -> None:
    path = tmp_path / "playbook.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    assert load_playbook(path).action_ids == ["call"]


def test_load_playbook_missing_file_says_how_to_create(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match="nextmove init"):
        load_playbook(tmp_path / "nope.toml")


def test_parse_playbook_bad_toml_names_source() -> None:
    with pytest.raises(PlaybookError, match=r"pb\.toml: not valid TOML"):
        parse_playbook("actions = [", source="pb.toml")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (('team = "cs"', 'team = "c s"'), "actions[0] (id='call').team"),
        (
            ('objective = "retention"', 'objective = "retention"\n[capacity]\nbudget_usd_per_team = { finanse = 10 }'),
            "capacity.budget_usd_per_team.finanse names team 'finanse', which no action in [[actions]] has "
            "(teams of the actions: cs)",
        ),
        (
            (
                'objective = "retention"',
                'objective = "retention"\n[contact_policy]\n'
                'caps = [{ team = "sales", max_touches = 1, window_days = 7 }]',
            ),
            "contact_policy.caps[0].team names team 'sales'",
        ),
        (('objective = "retention"', 'objective = "growth"'), "names objective 'growth', which is not in [objectives]"),
        (('id = "call"', 'id = "none"'), "'none' is reserved"),
        (('name = "Call"', 'name = "Call"\ncost_usd = -3'), "actions[0] (id='call').cost_usd"),
        (('name = "Call"', 'name = "Call"\neligibility = "arr >"'), "syntax error"),
        (('name = "Call"', 'name = "Call"\nbogus = 1'), "bogus: unknown key (the keys here: id, name,"),
        (('value = "arr"', 'value = "fixed"'), "needs value_usd"),
        (('name = "Call"', 'name = "Call"\ncost_usd = inf'), "(id='call').cost_usd: Input should be a finite"),
        (('value = "arr"', 'value = "arr"\nweight = inf'), "objectives.retention.weight: Input should be a finite"),
        (
            ('objective = "retention"', 'objective = "retention"\n[capacity]\nbudget_usd_per_team = { cs = -1500 }'),
            "capacity.budget_usd_per_team.cs: must be from 0 to 1,000,000,000,000 (in the playbook's currency); "
            "got -1,500",
        ),
        (
            ('objective = "retention"', 'objective = "retention"\n[capacity]\nbudget_usd_per_team = { cs = nan }'),
            "capacity.budget_usd_per_team.cs: Input should be a finite",
        ),
        (
            (
                'objective = "retention"',
                'objective = "retention"\n[contact_policy]\n'
                'caps = [{ channel = "phone", max_touches = 1, window_days = 7 }]',
            ),
            "contact_policy.caps[0].channel names channel 'phone', which no action or variant in [[actions]] has "
            "(their channels: call)",
        ),
        (
            ('objective = "retention"', 'objective = "retention"\n[signal_kinds]\ncount = ["nps"]\nlevel = ["nps"]'),
            "signal_kinds lists 'nps' as both count and level; keep one",
        ),
    ],
)
def test_parse_playbook_reports_field_and_fix(change: tuple[str, str], fragment: str) -> None:
    text = MINIMAL.replace(*change)
    with pytest.raises(PlaybookError) as info:
        parse_playbook(text, source="pb.toml")
    assert fragment in str(info.value)


def test_parse_playbook_duplicate_action_ids_rejected() -> None:
    text = MINIMAL + MINIMAL.split("[[actions]]")[1].join(["[[actions]]", ""])
    with pytest.raises(PlaybookError, match="appears more than once"):
        parse_playbook(text)


def test_parse_playbook_two_defaults_for_one_stage_rejected() -> None:
    text = default_playbook_text().replace('default_for_stages = ["maturity"]', 'default_for_stages = ["growth"]')
    with pytest.raises(PlaybookError, match="stage 'growth' has two default actions"):
        parse_playbook(text)


def test_signal_kinds_leave_the_hash_of_a_playbook_without_them_as_it_was() -> None:
    # Models are stored with the playbook's hash: a playbook that does not set [signal_kinds] keeps its hash.
    assert parse_playbook(MINIMAL).content_hash() == "162daf87bbd67b79"
    assert load_playbook().content_hash() == "bae83f6317c67f46"
    kinds = parse_playbook(MINIMAL + '\n[signal_kinds]\nlevel = ["nps"]\n')
    assert kinds.signal_kinds.level == ["nps"]
    assert kinds.content_hash() != "162daf87bbd67b79"


def test_playbook_reference_says_ids_are_ascii_and_names_any_text() -> None:
    from nextmove.playbook.reference import playbook_markdown
    from nextmove.playbook.schema import ID_PATTERN, Identifier

    assert Identifier.__metadata__[0].pattern == ID_PATTERN  # type: ignore[attr-defined]
    doc = playbook_markdown()
    assert f"`{ID_PATTERN}`" in doc
    assert "ASCII" in doc
    assert "`name` may be any text" in doc
    action_rows = doc.split("## `[[actions]]`")[1].split("## ")[0]
    assert "ASCII" in next(line for line in action_rows.splitlines() if line.startswith("| `id` |"))
    assert "any text" in next(line for line in action_rows.splitlines() if line.startswith("| `name` |"))
    with pytest.raises(PlaybookError, match=r"id='Rückruf'\)\.id"):
        parse_playbook(MINIMAL.replace('id = "call"', 'id = "Rückruf"'))
    assert parse_playbook(MINIMAL.replace('name = "Call"', 'name = "Rückruf 📞"')).actions[0].name == "Rückruf 📞"


def test_playbook_content_hash_is_stable_and_sensitive() -> None:
    a = parse_playbook(MINIMAL)
    b = parse_playbook(MINIMAL)
    c = parse_playbook(MINIMAL.replace('name = "Call"', 'name = "Phone call"'))
    assert a.content_hash() == b.content_hash()
    assert a.content_hash() != c.content_hash()


@pytest.mark.parametrize("days", [14, 30])
def test_health_window_days_must_be_a_feature_window(days: int) -> None:
    # A window the features are not computed over would leave the usage, engagement and support
    # measures out of the score without a word (seat_util_mean_30d does not exist).
    with pytest.raises(PlaybookError, match=rf"health: window_days = {days} is not a feature window.*7, 28 or 90"):
        parse_playbook(MINIMAL + f"[health]\nwindow_days = {days}\n")
    # Explicit components name their own features: window_days is not read, so any value is fine.
    explicit = MINIMAL + (
        f"[health]\nwindow_days = {days}\n[health.components.usage]\nweight = 1.0\n"
        '[[health.components.usage.measures]]\nfeature = "logins_mean_28d"\n'
    )
    assert parse_playbook(explicit).health.window_days == days


def test_health_window_days_takes_each_feature_window() -> None:
    from nextmove.features import DEFAULT_WINDOWS_DAYS
    from nextmove.playbook.schema import FEATURE_WINDOWS_DAYS, Health

    assert DEFAULT_WINDOWS_DAYS == FEATURE_WINDOWS_DAYS  # one list of windows, which the features compute
    for days in FEATURE_WINDOWS_DAYS:
        assert parse_playbook(MINIMAL + f"[health]\nwindow_days = {days}\n").health.window_days == days
    windows = ", ".join(map(str, FEATURE_WINDOWS_DAYS[:-1])) + f" or {FEATURE_WINDOWS_DAYS[-1]}"
    assert windows in (Health.model_fields["window_days"].description or "")  # the reference page says them
