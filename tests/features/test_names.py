"""Sanitised names, collision handling and the vocabulary."""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nextmove.book import Book
from nextmove.errors import ConfigError
from nextmove.features import FeatureVocabulary, sanitize_name, terminal_outcome_kinds
from nextmove.features.names import signal_columns
from nextmove.playbook import Playbook

from .conftest import T0, day

ACCOUNTS = {"account_id": pl.String}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("active_users", "active_users"),
        ("Active Users", "active_users"),
        ("  page-views / day ", "page_views_day"),
        ("Basket Value (€)", "basket_value"),
        ("Größe", "grosse"),
        ("GROẞE", "grosse"),  # the capital sharp s (U+1E9E) as its lower case: it was dropped ("groe")
        ("ẞ", "ss"),
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
    stem = sanitize_name(raw)
    # An identifier as an eligibility expression reads it (Python reads identifiers in NFKC).
    assert stem.isidentifier()
    assert unicodedata.normalize("NFKC", stem) == stem
    assert stem == stem.casefold() or not stem.isascii()


@given(st.text(st.characters(max_codepoint=0x24F), max_size=30))
def test_sanitize_name_of_latin_text_stays_ascii(raw: str) -> None:
    # Latin letters keep only their ASCII base, as stems always did: existing books keep their stems.
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", sanitize_name(raw))


def test_every_latin_capital_stems_as_its_lower_case() -> None:
    # Every code point Unicode names a Latin letter, over the whole range: a capital whose lower case is one
    # letter stems as that letter does (ẞ was dropped while ß stems as ss), so a name's case never moves it.
    latin = [chr(cp) for cp in range(sys.maxunicode + 1) if "LATIN" in unicodedata.name(chr(cp), "")]
    assert len(latin) > 1_000
    differ = [
        (f"U+{ord(c):04X}", c, sanitize_name(c), sanitize_name(c.lower()))
        for c in latin
        if len(c.lower()) == 1 and c.lower() != c and sanitize_name(c) != sanitize_name(c.lower())
    ]
    assert differ == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ログイン回数", "ログイン回数"),
        ("ログイン回数 (30日)", "ログイン回数_30日"),
        ("ﾛｸﾞｲﾝ", "ログイン"),  # half-width kana read as Python reads an identifier (NFKC)
        ("解約", "解約"),
        ("Счёт", "счёт"),
        ("नमस्ते", "नमस्ते"),  # combining vowel signs stay with their letters
        ("Café ログイン", "cafe_ログイン"),
        ("٣ أيام", "x_٣_أيام"),
        ("Ⅻ", "xii"),
    ],
)
def test_sanitize_name_keeps_letters_of_any_script(raw: str, expected: str) -> None:
    assert sanitize_name(raw) == expected


def test_vocabulary_of_non_latin_names_does_not_renumber_when_a_signal_appears() -> None:
    # Every kana/kanji name used to stem to x, x_2 …: a new signal sorting first renumbered the others.
    names = ["ログイン回数", "課金額", "問い合わせ件数", "満足度"]
    kw = {"accounts_schema": ACCOUNTS, "action_ids": ["クーポン"], "outcome_kinds": ["解約"]}
    before = FeatureVocabulary.build(signal_names=names, **kw)
    after = FeatureVocabulary.build(signal_names=[*names, "アクティブ日数"], **kw)
    assert dict(before.signals) == {n: n for n in names}
    assert {n: after.signals[n] for n in names} == dict(before.signals)
    assert after.signals["アクティブ日数"] == "アクティブ日数"
    assert dict(before.actions) == {"クーポン": "クーポン"}
    assert dict(before.outcome_kinds) == {"解約": "解約"}


def test_vocabulary_non_latin_names_that_sanitise_alike_get_suffixes() -> None:
    # Full-width and half-width kana stem alike: the one spelt as its stem keeps it, as for Latin names.
    vocab = FeatureVocabulary.build(accounts_schema=ACCOUNTS, signal_names=["ﾛｸﾞｲﾝ", "ログイン", "Счёт", "счёт"])
    assert dict(vocab.signals) == {"ﾛｸﾞｲﾝ": "ログイン_2", "ログイン": "ログイン", "Счёт": "счёт_2", "счёт": "счёт"}


def test_vocabulary_suffixes_names_that_sanitise_alike() -> None:
    vocab = FeatureVocabulary.build(
        accounts_schema=ACCOUNTS, signal_names=["active_users", "Active Users", "ACTIVE-USERS"]
    )
    # The name spelt as its stem keeps it; the others claim in sorted order: "ACTIVE-USERS" < "Active Users".
    assert dict(vocab.signals) == {
        "ACTIVE-USERS": "active_users_2",
        "Active Users": "active_users_3",
        "active_users": "active_users",
    }


@pytest.mark.parametrize("family", ["signal_names", "action_ids", "outcome_kinds"])
def test_vocabulary_name_spelt_as_its_stem_keeps_it_when_a_variant_appears(family: str) -> None:
    # "Cancel" sorts before "cancel": it used to take the bare stem, and "cancel"'s columns moved to _2.
    alone = FeatureVocabulary.build(accounts_schema=ACCOUNTS, **{family: ["cancel"]})
    both = FeatureVocabulary.build(accounts_schema=ACCOUNTS, **{family: ["Cancel", "cancel", "CANCEL"]})
    mapping = {"signal_names": "signals", "action_ids": "actions", "outcome_kinds": "outcome_kinds"}[family]
    assert getattr(alone, mapping) == {"cancel": "cancel"}
    assert getattr(both, mapping) == {"CANCEL": "cancel_2", "Cancel": "cancel_3", "cancel": "cancel"}
    assert list(getattr(both, mapping)) == ["CANCEL", "Cancel", "cancel"]  # columns stay in sorted order


def test_vocabulary_extra_column_spelt_as_its_stem_keeps_it() -> None:
    vocab = FeatureVocabulary.build(accounts_schema={**ACCOUNTS, "Seats": pl.Int64, "seats": pl.Int64})
    assert [(e.source, e.feature) for e in vocab.extras] == [("Seats", "seats_2"), ("seats", "seats")]


def test_vocabulary_lookups_map_the_exact_name() -> None:
    vocab = FeatureVocabulary.build(
        accounts_schema=ACCOUNTS,
        signal_names=["Gym Visits", "gym_visits", "Logins"],
        action_ids=["Call", "call"],
        outcome_kinds=["Cancel", "cancel"],
    )
    assert vocab.signal_stem("gym_visits") == "gym_visits"
    assert vocab.signal_stem("Gym Visits") == "gym_visits_2"
    # A name the book lacks matches by sanitised name (as role members do), the one spelt as its stem first.
    assert vocab.signal_stem("GYM-VISITS") == "gym_visits"
    assert vocab.signal_stem("logins") == "logins"
    assert vocab.outcome_stem("cancel") == "cancel"
    assert vocab.outcome_stem("Cancel") == "cancel_2"
    assert vocab.action_stem("Call") == "call_2"
    # Kinds and actions match exactly: an unknown one never gets another's columns.
    assert vocab.outcome_stem("CANCEL") == "cancel_3"
    assert vocab.action_stem("CALL") == "call_3"
    assert vocab.signal_stem("steps") == "steps"
    assert FeatureVocabulary().outcome_stem("Churn Risk") == "churn_risk"


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


def test_non_latin_signal_features_are_named_in_eligibility(make_book: Callable[..., Book]) -> None:
    from nextmove.features import compute_features, feature_schema
    from nextmove.playbook.expr import check_playbook_expressions
    from nextmove.playbook.loader import parse_playbook

    book = make_book(
        ["a1", "a2"],
        signals=[
            ("a1", day(-3), "ログイン回数", 5.0),
            ("a2", day(-3), "ログイン回数", 1.0),
            ("a1", day(-2), "満足度", 4.0),
        ],
    )
    playbook = parse_playbook(
        'horizon_days = 30\n[objectives.keep]\noutcome = "解約"\nsense = "avoid"\nvalue = "arr"\n'
        '[[actions]]\nid = "call"\nname = "電話"\nteam = "cs"\nobjective = "keep"\n'
        'eligibility = "ログイン回数_mean_28d > 3 and 満足度_last >= 1"\n'
    )
    features = compute_features(book, T0, playbook=playbook)
    assert {"ログイン回数_mean_28d", "満足度_last", "outcome_解約_days_since"} <= set(features.columns)
    errors = check_playbook_expressions([(a.id, a.eligibility) for a in playbook.actions], feature_schema(features))
    assert errors == []
