"""Sanitised names, collision handling and the vocabulary."""

from __future__ import annotations

import re

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nextmove.errors import ConfigError
from nextmove.features import FeatureVocabulary, sanitize_name, terminal_outcome_kinds
from nextmove.features.names import signal_columns
from nextmove.playbook import Playbook

ACCOUNTS = {"account_id": pl.String}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("active_users", "active_users"),
        ("Active Users", "active_users"),
        ("  page-views / day ", "page_views_day"),
        ("Basket Value (€)", "basket_value"),
        ("Größe", "grosse"),
        ("NPS", "nps"),
        ("30d_logins", "x_30d_logins"),
        ("%%%", "x"),
        ("", "x"),
    ],
)
def test_sanitize_name_makes_lowercase_identifiers(raw: str, expected: str) -> None:
    assert sanitize_name(raw) == expected


@given(st.text(max_size=30))
def test_sanitize_name_always_gives_an_identifier(raw: str) -> None:
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", sanitize_name(raw))


def test_vocabulary_suffixes_names_that_sanitise_alike() -> None:
    vocab = FeatureVocabulary.build(
        accounts_schema=ACCOUNTS, signal_names=["active_users", "Active Users", "ACTIVE-USERS"]
    )
    # Sorted raw names claim stems in order: "ACTIVE-USERS" < "Active Users" < "active_users".
    assert dict(vocab.signals) == {
        "ACTIVE-USERS": "active_users",
        "Active Users": "active_users_2",
        "active_users": "active_users_3",
    }


def test_vocabulary_keeps_signal_columns_clear_of_touch_columns() -> None:
    vocab = FeatureVocabulary.build(
        accounts_schema=ACCOUNTS, signal_names=["touch_mail"], action_ids=["mail"], windows_days=(90,)
    )
    # The signal's touch_mail_count_90d would be the action's count column: the signal yields.
    assert vocab.actions == {"mail": "mail"}
    assert vocab.signals == {"touch_mail": "touch_mail_2"}


def test_vocabulary_keeps_action_stems_clear_of_any_and_team_columns(playbook: Playbook) -> None:
    vocab = FeatureVocabulary.build(accounts_schema=ACCOUNTS, action_ids=["any", "team_cs"], playbook=playbook)
    assert vocab.actions["any"] == "any_2"
    assert vocab.actions["team_cs"] == "team_cs_2"


def test_vocabulary_prefixes_names_that_look_like_labels() -> None:
    vocab = FeatureVocabulary.build(accounts_schema={**ACCOUNTS, "y_flag": pl.Float64}, signal_names=["y", "Y score"])
    assert vocab.signals == {"Y score": "x_y_score", "y": "x_y"}
    assert [e.feature for e in vocab.extras] == ["x_y_flag"]


def test_vocabulary_extra_columns_yield_to_account_features() -> None:
    schema = {
        **ACCOUNTS,
        "Tenure Days": pl.Int64,
        "action_id": pl.String,
        "renewal": pl.Date,
        "tags": pl.List(pl.String),
    }
    vocab = FeatureVocabulary.build(accounts_schema=schema)
    assert [(e.source, e.feature, e.kind) for e in vocab.extras] == [
        ("Tenure Days", "tenure_days_2", "number"),
        ("action_id", "action_id_2", "text"),  # a training-set column name
        ("renewal", "days_since_renewal", "time"),
    ]  # the list column is not a feature


def test_vocabulary_outcome_stems_keep_label_names_unique() -> None:
    vocab = FeatureVocabulary.build(accounts_schema=ACCOUNTS, outcome_kinds=["churn", "churn_value"])
    # y_churn_value is churn's value label, so the kind "churn_value" needs another stem.
    assert vocab.outcome_kinds == {"churn": "churn", "churn_value": "churn_value_2"}


def test_vocabulary_adds_playbook_actions_teams_kinds_and_roles(playbook: Playbook) -> None:
    vocab = FeatureVocabulary.build(
        accounts_schema=ACCOUNTS,
        signal_names=["active_users", "tickets", "csat"],
        action_ids=["none", "legacy"],
        outcome_kinds=["renewal"],
        playbook=playbook,
    )
    assert list(vocab.actions) == ["call", "legacy", "mail", "upsell"]
    assert dict(vocab.teams) == {"cs": ("call",), "marketing": ("mail",), "sales": ("upsell",)}
    assert list(vocab.outcome_kinds) == ["churn", "expansion", "renewal"]
    # "Active Users" in the playbook matches the book's "active_users"; "logins" is absent.
    assert dict(vocab.roles) == {"usage": ("active_users",), "support": ("tickets",)}


@pytest.mark.parametrize("windows", [(), (0,), (7, 7), (-1,), (2.5,), (True,)])
def test_vocabulary_rejects_bad_windows(windows: tuple[object, ...]) -> None:
    with pytest.raises(ConfigError, match="windows_days"):
        FeatureVocabulary.build(accounts_schema=ACCOUNTS, windows_days=windows)  # type: ignore[arg-type]


def test_signal_columns_name_every_window() -> None:
    assert signal_columns("logins", (7,)) == [
        "logins_last",
        "logins_days_since_last",
        "logins_mean_7d",
        "logins_sum_7d",
        "logins_count_7d",
        "logins_trend_7d",
    ]


def test_terminal_outcome_kinds_come_from_avoid_arr_objectives(playbook: Playbook) -> None:
    assert terminal_outcome_kinds(playbook) == ["churn"]
    other = playbook.model_copy(
        update={
            "objectives": {k: v.model_copy(update={"outcome": "cancelled"}) for k, v in playbook.objectives.items()}
        }
    )
    assert terminal_outcome_kinds(other) == ["cancelled"]
