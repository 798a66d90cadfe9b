"""The playbook's ``currency``: its ISO 4217 code checked, and amounts written in it ("€1,235", "CHF 40", "¥86").

Every amount of a book and a playbook is in one currency, the playbook's; nextmove converts nothing.
The columns and keys keep their ``_usd`` suffix (``value_usd``, ``cost_usd``) whatever it is.
:func:`~nextmove.decide.phrases.format_money` writes amounts as :func:`money_text` does, as a Polars expression.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

DEFAULT_CURRENCY = "USD"
"""The currency of a playbook that names none."""

_CODE = re.compile("[A-Za-z]{3}")


def currency_code(value: object) -> str:
    """``value`` as a currency code: three letters A-Z, upper-cased.

    Raises
    ------
    ValueError
        If ``value`` is not three ASCII letters; the message says what a code is.

    Examples
    --------
    >>> currency_code("eur")
    'EUR'
    >>> currency_code("EURO")
    Traceback (most recent call last):
    ...
    ValueError: must be an ISO 4217 code of three letters A-Z, e.g. "EUR" or "JPY"; got 'EURO'
    """
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        raise ValueError(f'must be an ISO 4217 code of three letters A-Z, e.g. "EUR" or "JPY"; got {value!r}')
    return value.upper()


CURRENCY_SYMBOLS: Mapping[str, str] = {
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "JPY": "¥",
    "INR": "₹",
    "KRW": "₩",
    "ILS": "₪",
    "CNY": "CN¥",
    "AUD": "A$",
    "CAD": "CA$",
    "NZD": "NZ$",
    "HKD": "HK$",
    "TWD": "NT$",
    "MXN": "MX$",
    "BRL": "R$",
}
"""The symbols amounts are written with, by ISO 4217 code: those English text writes before the amount and that
name one currency (CLDR's English symbols). "¥" alone is the yen; the yuan is "CN¥", the dollars other than the
US dollar carry their country ("A$", "CA$"). Any other code is written before the amount: "CHF 1,235"."""

ZERO_DECIMAL_CURRENCIES = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "ISK",
        "JPY",
        "KMF",
        "KRW",
        "PYG",
        "RWF",
        "UGX",
        "UYI",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)
"""The ISO 4217 currencies of 0 minor units: their amounts are never written with cents (0.86 yen is "¥1")."""

CENTS_BELOW = 10.0
"""Amounts smaller than this are written with their cents (unless whole): a subscriber's $0.86 is not "$0"."""


def currency_unit(currency: str) -> str:
    """How ``currency`` (an ISO 4217 code) is named beside a number: its symbol, else its code.

    As a table's header says it ("€ per decision", "CHF per decision").

    Examples
    --------
    >>> currency_unit("USD"), currency_unit("eur"), currency_unit("CHF")
    ('$', '€', 'CHF')
    """
    code = currency.upper()
    return CURRENCY_SYMBOLS.get(code, code)


def currency_prefix(currency: str) -> str:
    """What an amount in ``currency`` starts with (after its sign): ``$``, ``€`` … or the code and a space.

    Examples
    --------
    >>> currency_prefix("USD"), currency_prefix("JPY"), currency_prefix("CHF")
    ('$', '¥', 'CHF ')
    """
    code = currency.upper()
    return CURRENCY_SYMBOLS.get(code, f"{code} ")


def has_cents(currency: str) -> bool:
    """Whether amounts in ``currency`` may be written with cents (not those of :data:`ZERO_DECIMAL_CURRENCIES`)."""
    return currency.upper() not in ZERO_DECIMAL_CURRENCIES


def money_text(x: float, currency: str, *, signed: bool = False) -> str:
    """An amount in ``currency`` as the receipts and the CLI write it: ``$5,235``, ``-€40``, ``CHF 0.86``.

    The symbol of :data:`CURRENCY_SYMBOLS`, else the code and a space, after the sign (``+`` too
    when ``signed``); cents below :data:`CENTS_BELOW` unless whole, never for the currencies of
    :data:`ZERO_DECIMAL_CURRENCIES`.

    Examples
    --------
    >>> usd = [money_text(x, "USD") for x in (5234.7, -40, 0.857, -0.004, -5)] + [money_text(12, "USD", signed=True)]
    >>> usd
    ['$5,235', '-$40', '$0.86', '$0', '-$5', '+$12']
    >>> money_text(-40, "EUR"), money_text(0.857, "GBP"), money_text(1234.6, "CHF"), money_text(-3.2, "chf")
    ('-€40', '£0.86', 'CHF 1,235', '-CHF 3.20')
    >>> money_text(0.857, "JPY"), money_text(-1234.6, "KRW"), money_text(-0.4, "JPY")
    ('¥1', '-₩1,235', '¥0')
    """
    places = 2 if has_cents(currency) and abs(x) < CENTS_BELOW and round(x, 2) != round(round(x, 2)) else 0
    shown = round(x, places)
    sign = "-" if shown < 0 else ("+" if signed and shown > 0 else "")
    return f"{sign}{currency_prefix(currency)}{abs(x):,.{places}f}"
