"""Latin letters without an ASCII base in NFKD (the Turkish dotless ı, ð, ħ, ŋ …) keep a letter in stems: "Ödeme
hatası" was ``odeme_hatas``, "ılık" ``lk``."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from nextmove.book import Book, empty_table
from nextmove.features import compute_features, feature_schema, sanitize_name
from nextmove.playbook.expr import check_playbook_expressions


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("Ödeme hatası", "odeme_hatasi"),
        ("ılık", "ilik"),
        ("İptal sayfası ziyareti", "iptal_sayfasi_ziyareti"),
        ("IŞIK Ağaoğlu", "isik_agaoglu"),
        ("Əli", "eli"),  # Azerbaijani
        ("Maħżen", "mahzen"),  # Maltese
        ("Þórður", "thordur"),  # Icelandic
        ("Áŧŧa", "atta"),  # Sami
        ("ŋoŋ", "ngong"),
        ("Ǿre", "ore"),  # an accented letter without an ASCII base maps as its base letter (Ø)
        ("ǽble", "aeble"),
        ("Straße", "strasse"),  # as before
        ("⭐ αξιολόγηση", "αξιολόγηση"),  # other scripts stay
    ],
)
def test_latin_letters_keep_a_letter_in_stems(name: str, stem: str) -> None:
    assert sanitize_name(name) == stem


def test_an_eligibility_on_the_old_stem_names_the_new_one() -> None:
    # A playbook written against the old stem (odeme_hatas_count_90d) is refused; the message names the new one.
    signals = pl.DataFrame(
        {"account_id": ["a"], "ts": [datetime(2025, 1, 1, tzinfo=UTC)], "name": ["Ödeme hatası"], "value": [1.0]}
    )
    book = Book(pl.DataFrame({"account_id": ["a"]}), signals, empty_table("touches"), empty_table("outcomes"))
    snapshot = compute_features(book, datetime(2025, 2, 1, tzinfo=UTC))
    [error] = check_playbook_expressions([("call", "odeme_hatas_count_90d > 2")], feature_schema(snapshot))
    assert "unknown feature 'odeme_hatas_count_90d' (did you mean 'odeme_hatasi_count_90d'" in str(error)
