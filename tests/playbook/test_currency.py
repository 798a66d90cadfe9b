"""The playbook's ``currency``: checked, upper-cased, USD by default; amounts written in it as one rule says."""

from __future__ import annotations

import pickle
from pathlib import Path

import polars as pl
import pytest

from nextmove.decide.phrases import format_money
from nextmove.errors import PlaybookError
from nextmove.playbook.loader import default_playbook_text, load_playbook, parse_playbook
from nextmove.playbook.money import CURRENCY_SYMBOLS, ZERO_DECIMAL_CURRENCIES, money_text
from nextmove.report.charts import money_short


def test_a_playbook_is_in_dollars_unless_it_says_otherwise_and_the_hash_stays() -> None:
    default = load_playbook()
    assert default.currency == "USD"
    euro = parse_playbook('currency = "eur"\n' + default_playbook_text())
    assert euro.currency == "EUR"
    # A currency is part of the playbook's content; saying the default one changes nothing, hash included.
    assert euro.content_hash() != default.content_hash()
    assert parse_playbook('currency = "usd"\n' + default_playbook_text()).content_hash() == default.content_hash()


@pytest.mark.parametrize("bad", ['"EURO"', '"EU"', '"E1R"', '"ÉUR"', '"US D"', '""', "978"])
def test_a_currency_that_is_not_three_letters_is_refused_naming_the_file_and_key(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "playbook.toml"
    path.write_text(f"currency = {bad}\n" + default_playbook_text(), encoding="utf-8")
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: the playbook has 1 problem:")
    assert '  currency: must be an ISO 4217 code of three letters A-Z, e.g. "EUR" or "JPY"; got ' in message


def test_a_playbook_pickled_before_it_had_a_currency_reads_as_dollars() -> None:
    """A stored effect model keeps its playbook pickled: one saved before ``currency`` existed still loads."""
    playbook = load_playbook()
    state = playbook.__getstate__()
    del state["__dict__"]["currency"]  # as a playbook pickled by an earlier version holds it
    old = object.__new__(type(playbook))
    old.__setstate__(state)
    assert old.currency == "USD"
    assert old.content_hash() == playbook.content_hash()
    assert pickle.loads(pickle.dumps(old)) == playbook


@pytest.mark.parametrize(
    ("currency", "texts"),
    [
        ("USD", ["$5,235", "-$40", "$0.86", "$0", "+$12", "$1,234,568"]),
        ("EUR", ["€5,235", "-€40", "€0.86", "€0", "+€12", "€1,234,568"]),
        ("GBP", ["£5,235", "-£40", "£0.86", "£0", "+£12", "£1,234,568"]),
        ("INR", ["₹5,235", "-₹40", "₹0.86", "₹0", "+₹12", "₹1,234,568"]),
        ("JPY", ["¥5,235", "-¥40", "¥1", "¥0", "+¥12", "¥1,234,568"]),
        ("KRW", ["₩5,235", "-₩40", "₩1", "₩0", "+₩12", "₩1,234,568"]),
        ("CHF", ["CHF 5,235", "-CHF 40", "CHF 0.86", "CHF 0", "+CHF 12", "CHF 1,234,568"]),
        ("SEK", ["SEK 5,235", "-SEK 40", "SEK 0.86", "SEK 0", "+SEK 12", "SEK 1,234,568"]),
        ("ISK", ["ISK 5,235", "-ISK 40", "ISK 1", "ISK 0", "+ISK 12", "ISK 1,234,568"]),
    ],
)
def test_amounts_are_written_with_the_symbol_or_the_code_after_the_sign(currency: str, texts: list[str]) -> None:
    xs = [5234.7, -40.0, 0.857, -0.004]
    assert [*(money_text(x, currency) for x in xs), money_text(12, currency, signed=True)] == texts[:5]
    assert money_text(1_234_567.8, currency) == texts[5]


def test_currencies_without_minor_units_are_never_written_with_cents() -> None:
    for currency in ZERO_DECIMAL_CURRENCIES:
        for x in (0.857, -3.25, 9.99, 0.004, 12.5):
            assert "." not in money_text(x, currency), (currency, x)
            assert "." not in money_short(x, currency), (currency, x)
    assert money_short(1_804, "JPY") == "¥1.8k"  # thousands in short form keep their decimal


def test_symbols_name_one_currency() -> None:
    # "$" is the US dollar's alone; the yen has "¥", so the yuan is told apart.
    assert list(CURRENCY_SYMBOLS.values()).count("$") == 1
    assert len(set(CURRENCY_SYMBOLS.values())) == len(CURRENCY_SYMBOLS)
    assert CURRENCY_SYMBOLS["CNY"] != CURRENCY_SYMBOLS["JPY"]


@pytest.mark.parametrize("currency", ["USD", "EUR", "JPY", "CHF", "KRW"])
def test_the_expression_and_the_text_write_amounts_alike(currency: str) -> None:
    xs = [0.0, 0.857, -0.39, 5.0, -5.0, 9.99, 9.996, 12.5, -40.0, 999.7, 1234.56, -98_765.4, 1_234_567.8]
    frame = pl.DataFrame({"x": xs}, schema={"x": pl.Float64})
    written = frame.select(format_money(pl.col("x"), currency)).to_series().to_list()
    assert written == [money_text(x, currency) for x in xs]
