"""Plain-word phrases for feature values, used as evidence: "renewal in 45 days", "logins 41, down from 63".

A feature's wording (what kind of number it is, its words, its window) depends on its name
only, so it is worked out once per feature (:func:`feature_wording`); the phrases of many
accounts are then formatted by Polars expressions (:func:`render_phrases`), with no Python
loop over accounts. :func:`feature_phrase` phrases one feature of one account the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, partial
from typing import overload

import numpy as np
import polars as pl

from nextmove.features.kinds import cited_statistic
from nextmove.features.names import BEHAVIOR_STAT
from nextmove.playbook.money import CENTS_BELOW, currency_prefix, has_cents

_LAST = re.compile(r"^(?P<stem>.+)_last$")
_SINCE = re.compile(r"^(?P<stem>.+)_days_since_last$")
_TOUCH = re.compile(r"^touch_(?P<stem>.+)_(?:count_(?P<w>\d+)d|days_since)$")
_OUTCOME = re.compile(r"^outcome_(?P<stem>.+)_(?:count_(?P<w>\d+)d|days_since)$")
_ROLE = re.compile(r"^role_(?P<stem>.+)_trend_(?P<w>\d+)d$")
_EXTRA_TIME = re.compile(r"^days_since_(?P<stem>.+)$")

KINDS = (
    "renewal",
    "tenure",
    "money",
    "trend",
    "count",
    "readings",
    "reports",
    "sum",
    "mean",
    "last",
    "since",
    "reading_since",
    "touch_count",
    "touch_since",
    "team_count",
    "team_since",
    "outcome_count",
    "outcome_since",
    "role_trend",
    "days_since",
    "text",
    "number",
    "flag",
)
"""Every kind of wording :func:`feature_wording` gives ("flag": a number column that only holds 0 and 1;
"readings" and "reading_since": the count and recency of a level signal's readings; "reports": the count of
the rows of a count signal whose rows each carry an amount (logins per week); "team_…": a team's touches)."""

_WITH_PREVIOUS = frozenset({"money", "count", "readings", "reports", "sum", "mean", "last", "number"})
"""Kinds whose phrase cites an earlier value ("down from 63%"); a change of a trend or an age is not news."""

_ACCOUNT_KINDS = frozenset({"money", "number", "flag"})
"""Kinds of the accounts table's columns: they cite an earlier value only when it differs."""

STALE_AFTER_DAYS = 28.0
"""A signal's latest value older than this says its age ("nps 10 (latest, 326 days ago)"), whatever the
signal's usual interval; the evidence says it sooner for a signal read more often (see :attr:`Wording.stale_after`)."""

PHRASE_COLUMNS = {
    "kind": pl.String,
    "words": pl.String,
    "window": pl.Int64,
    "percent": pl.Boolean,
    "value": pl.Float64,
    "text": pl.String,
    "trend": pl.Float64,
    "previous": pl.Float64,
    "age": pl.Float64,
    "stale_after": pl.Float64,
}
"""The columns :func:`render_phrases` reads (the first four and ``stale_after`` come from :func:`wording_table`);
``age`` and ``stale_after`` may be left out (no latest value then says its age)."""

_OPTIONAL_COLUMNS = ("age", "stale_after")


@dataclass(frozen=True)
class Wording:
    """How to phrase one feature: the kind of number, its words and its window."""

    feature: str
    kind: str
    """One of :data:`KINDS`."""
    words: str
    """The thing measured, in plain words: a signal, action or outcome name from the book or playbook."""
    window: int | None = None
    """Days of the feature's window, when it has one."""
    percent: bool = False
    """Show levels as percentages (a signal between 0 and 1, such as a utilisation)."""
    trend_feature: str | None = None
    """For a windowed mean: the trend feature of the same signal and window, cited when no earlier value is."""
    cited: bool = True
    """False for a feature whose value says nothing in words: the total of a level signal's readings
    (seven daily readings of a rolling 7-day count, or three NPS answers, add up to no quantity), and the
    window mean of a count signal (one lesson in four weekly reports averages 0.25 per report, which
    reads as a quantity: its total says it)."""
    age_feature: str | None = None
    """For a latest value: the feature of its age (``{s}_days_since_last``), cited when it is stale."""
    stale_after: float | None = None
    """For a latest value: the age in days past which its phrase says it ("nps 10 (latest, 326 days ago)")."""


@dataclass(frozen=True)
class Labels:
    """Stem → plain words, one map per family: a signal, an action and an outcome kind may share a stem.

    A book's signal ``Schulung`` and a playbook's action ``schulung`` both have the stem
    ``schulung``: ``schulung_mean_28d`` is worded by ``signals``, ``touch_schulung_days_since`` by
    ``touches``.
    """

    signals: Mapping[str, str] = field(default_factory=dict)
    """Signal (and account column) stems."""
    touches: Mapping[str, str] = field(default_factory=dict)
    """Touch stems: actions, teams (``team_support``) and ``any``."""
    outcomes: Mapping[str, str] = field(default_factory=dict)
    """Outcome kind stems."""
    roles: Mapping[str, str] = field(default_factory=dict)
    """Signal role stems."""


Names = Mapping[str, str] | Labels
"""Plain words of stems: one map for every family, or :class:`Labels`, one per family."""


def _words(stem: str, names: Names, family: str = "signals") -> str:
    table = getattr(names, family) if isinstance(names, Labels) else names
    return table.get(stem) or stem.replace("_", " ")


def feature_wording(
    feature: str,
    *,
    names: Names | None = None,
    percent: Collection[str] = (),
    levels: Collection[str] = (),
    counts: Collection[str] = (),
    reports: Collection[str] = (),
    teams: Collection[str] = (),
    stale_after: Mapping[str, float] | None = None,
) -> Wording:
    """The wording of one feature, from its name alone.

    Parameters
    ----------
    feature
        A feature column of a snapshot (see ``docs/features.md``).
    names
        Stem → plain words, e.g. a signal's stem → its name in the book, an action's stem →
        its name in the playbook; a stem without one is shown with spaces for underscores.
        :class:`Labels` keeps one map per family, for stems that two families share.
    percent
        Stems whose levels are shown as percentages.
    levels
        Stems of level signals (:func:`nextmove.features.signal_kinds`): their readings are counted
        as readings, and their window totals are not cited.
    counts
        Stems of count signals: their window means (per report, or 1 per event) are not cited, their
        totals are. A stem in neither ``levels`` nor ``counts`` has every statistic cited.
    reports
        Stems of count signals whose rows each carry an amount (lessons per week), not one event each:
        their rows are counted as reports ("lessons done: 13 reports in 90 days"), not as the quantity.
    teams
        Touch stems that are teams (``team_support``): "last touch by the support team".
    stale_after
        Stem → days past which a latest value says its age (a signal's usual interval between
        readings); :data:`STALE_AFTER_DAYS` for a stem without one.

    Examples
    --------
    >>> w = feature_wording("logins_mean_28d")
    >>> w.kind, w.words, w.window, w.trend_feature
    ('mean', 'logins', 28, 'logins_trend_28d')
    >>> feature_wording("touch_exec_call_days_since", names={"exec_call": "Executive call"}).words
    'Executive call'
    >>> feature_wording("nps_sum_90d", levels={"nps"}).cited
    False
    >>> feature_wording("lessons_mean_28d", counts={"lessons"}).cited
    False
    >>> w = feature_wording("nps_last", stale_after={"csat": 7.0})
    >>> w.age_feature, w.stale_after
    ('nps_days_since_last', 28.0)
    """
    names = names or {}
    if feature == "days_to_renewal":
        return Wording(feature, "renewal", "renewal")
    if feature == "tenure_days":
        return Wording(feature, "tenure", "tenure")
    if feature == "arr":
        return Wording(feature, "money", "ARR")
    if m := _ROLE.match(feature):
        return Wording(feature, "role_trend", _words(m["stem"], names, "roles"), int(m["w"]))
    if m := _TOUCH.match(feature):
        kind = "touch_count" if m["w"] else "touch_since"
        if m["stem"] in teams:
            kind = kind.replace("touch_", "team_")
        return Wording(feature, kind, _words(m["stem"], names, "touches"), int(m["w"]) if m["w"] else None)
    if m := _OUTCOME.match(feature):
        kind = "outcome_count" if m["w"] else "outcome_since"
        return Wording(feature, kind, _words(m["stem"], names, "outcomes"), int(m["w"]) if m["w"] else None)
    if m := BEHAVIOR_STAT.match(feature):
        stem, stat, w = m["stem"], m["stat"], int(m["w"])
        level = stem in levels
        trend = f"{stem}_trend_{w}d" if stat == "mean" else None
        kind = "readings" if level and stat == "count" else "reports" if stem in reports and stat == "count" else stat
        cited = cited_statistic(stat, "level" if level else "count" if stem in counts else None)
        return Wording(feature, kind, _words(stem, names), w, stem in percent, trend, cited)
    if m := _SINCE.match(feature):
        kind = "reading_since" if m["stem"] in levels else "since"
        return Wording(feature, kind, _words(m["stem"], names))
    if m := _LAST.match(feature):
        stem = m["stem"]
        stale = (stale_after or {}).get(stem, STALE_AFTER_DAYS)
        return Wording(
            feature,
            "last",
            _words(stem, names),
            None,
            stem in percent,
            age_feature=f"{stem}_days_since_last",
            stale_after=stale,
        )
    if m := _EXTRA_TIME.match(feature):
        return Wording(feature, "days_since", _words(m["stem"], names))
    return Wording(feature, "number", _words(feature, names), None, feature in percent)


_CHANGES = frozenset({"trend", "role_trend"})
"""Kinds whose value is a relative change: one that reads "0%" says nothing, so it is not cited."""


def citable(wording: Wording, values: np.ndarray) -> np.ndarray:
    """Where the values of a feature have something to say: a phrase that is not empty of meaning.

    False for every value of a feature that is not :attr:`Wording.cited` (a level's window total)
    and for a relative change that reads 0% ("up 0% over 28 days"). Missing values are False.

    Examples
    --------
    >>> citable(feature_wording("logins_trend_28d"), np.array([0.004, -0.2, np.nan])).tolist()
    [False, True, False]
    >>> citable(feature_wording("nps_sum_90d", levels={"nps"}), np.array([27.0])).tolist()
    [False]
    """
    values = np.asarray(values, dtype=np.float64)
    present: np.ndarray = ~np.isnan(values)
    if not wording.cited:
        return np.zeros(values.shape, dtype=bool)
    if wording.kind in _CHANGES:
        # As format_percent rounds it (half to even, like Polars): a change that shows as 0% is none.
        shown: np.ndarray = np.round(np.abs(np.where(present, values, 0.0)) * 100) != 0
        both: np.ndarray = present & shown
        return both
    return present


def feature_family(feature: str) -> str:
    """The signal, action, outcome or column a feature is about: its features share one family.

    Evidence cites one feature per family, so three windows of the same signal do not crowd
    out the other signals.

    Examples
    --------
    >>> [feature_family(f) for f in ("logins_mean_28d", "logins_last", "touch_call_count_90d", "arr")]
    ['logins', 'logins', 'touch:call', 'arr']
    """
    for prefix, pattern in (("role:", _ROLE), ("touch:", _TOUCH), ("outcome:", _OUTCOME)):
        if m := pattern.match(feature):
            return prefix + m["stem"]
    for pattern in (BEHAVIOR_STAT, _SINCE, _LAST):
        if m := pattern.match(feature):
            return m["stem"]
    return feature


def wording_table(wordings: Sequence[Wording]) -> pl.DataFrame:
    """The wordings as a table: ``feature, kind, words, window, percent, trend_feature, age_feature, stale_after``."""
    return pl.DataFrame(
        {
            "feature": [w.feature for w in wordings],
            "kind": [w.kind for w in wordings],
            "words": [w.words for w in wordings],
            "window": [w.window for w in wordings],
            "percent": [w.percent for w in wordings],
            "trend_feature": [w.trend_feature for w in wordings],
            "age_feature": [w.age_feature for w in wordings],
            "stale_after": [w.stale_after for w in wordings],
        },
        schema={
            "feature": pl.String,
            "kind": pl.String,
            "words": pl.String,
            "window": pl.Int64,
            "percent": pl.Boolean,
            "trend_feature": pl.String,
            "age_feature": pl.String,
            "stale_after": pl.Float64,
        },
    )


# ---- number formats as expressions ---------------------------------------------------------------

_MAX_EXACT = 9.0e15
"""Beyond this, numbers are shown as Polars prints them (no thousands separators)."""


def _thousands(digits: pl.Expr) -> pl.Expr:
    """Digits with thousands separators: "1234567" → "1,234,567" (groups of three from the right)."""
    return digits.str.reverse().str.extract_all(r"\d{1,3}").list.join(",").str.reverse()


def format_fixed(x: pl.Expr, decimals: int | pl.Expr = 0) -> pl.Expr:
    """``x`` with ``decimals`` decimals and thousands separators, like Python's ``f"{x:,.{decimals}f}"``.

    ``decimals`` may be an expression (a number of decimals per row).

    Examples
    --------
    >>> pl.select(format_fixed(pl.lit(-1234567.891), 2)).item()
    '-1,234,567.89'
    """
    places = pl.lit(decimals, pl.Int64) if isinstance(decimals, int) else decimals.cast(pl.Int64)
    factor = pl.lit(10, pl.Int64).pow(places)
    scaled = (x.abs() * factor).round(0)
    exact = scaled.cast(pl.Int64, strict=False)
    whole = _thousands((exact // factor).cast(pl.String))
    fraction = pl.concat_str([pl.lit("."), (exact % factor).cast(pl.String).str.zfill(places)])
    sign = pl.when((x < 0) & (exact > 0)).then(pl.lit("-")).otherwise(pl.lit(""))
    shown = pl.concat_str([sign, whole, pl.when(places > 0).then(fraction).otherwise(pl.lit(""))])
    return pl.when(scaled <= _MAX_EXACT).then(shown).otherwise(x.cast(pl.String))


def format_number(x: pl.Expr) -> pl.Expr:
    """A number in a readable precision: its own decimals when it has at most two, else rounded by its size.

    A value written with at most two decimals (a price of 6.99, a mean of 4.25, 12,345.6) is shown
    with them, never rounded to fewer ("7.0" for a monthly price of 6.99) nor padded ("7", not
    "7.0"). A longer one (a mean of 41.2345, a ratio) is rounded: whole from 100, one decimal from
    1, two below.

    Examples
    --------
    >>> xs = [6.99, 12.99, 7.0, 4.25, 12345.6, 41.2345, 0.3, 0.123, 129.99, 1234.567]
    >>> pl.DataFrame({"x": xs}).select(format_number(pl.col("x"))).to_series().to_list()
    ['6.99', '12.99', '7', '4.25', '12,345.6', '41.2', '0.3', '0.12', '129.99', '1,235']
    """
    return format_fixed(x, _places(x))


_OWN_DECIMALS_BELOW = 1e12
"""Values at least this large are rounded by their size: a double no longer holds their cents exactly."""


def _places(x: pl.Expr) -> pl.Expr:
    """The decimals :func:`format_number` writes ``x`` with: its own up to two, else by its size."""
    size = x.abs()

    def has(decimals: int) -> pl.Expr:
        # As a double holds it: 6.99 is 6.9900000000000002 (a relative error of 1e-16), 41.2345 is not 41.23.
        return (x - x.round(decimals)).abs() <= 1e-9 * size.clip(lower_bound=1.0)

    by_size = pl.when(size >= 100).then(pl.lit(0)).when(size >= 1).then(pl.lit(1)).otherwise(pl.lit(2))
    own = pl.when(has(0)).then(pl.lit(0)).when(has(1)).then(pl.lit(1)).when(has(2)).then(pl.lit(2))
    return pl.when(size < _OWN_DECIMALS_BELOW).then(own.otherwise(by_size)).otherwise(pl.lit(0))


def format_percent(share: pl.Expr) -> pl.Expr:
    """A share as a whole percentage: 0.413 → "41%"."""
    return pl.concat_str([format_fixed(share * 100, 0), pl.lit("%")])


# ---- money -------------------------------------------------------------------------------------


def format_money(x: pl.Expr, currency: str) -> pl.Expr:
    """Amounts in ``currency``: 5234.7 → "$5,235", -40 → "-$40", 0.857 → "$0.86"; whole from 10 up.

    The expression form of :func:`~nextmove.playbook.money.money_text`: the symbol (or the code)
    after the sign, cents only below :data:`~nextmove.playbook.money.CENTS_BELOW` and never for a
    currency without minor units.

    Examples
    --------
    >>> frame = pl.DataFrame({"x": [5234.7, -40.0, 0.857]})
    >>> frame.select(format_money(pl.col("x"), "EUR")).to_series().to_list()
    ['€5,235', '-€40', '€0.86']
    >>> frame.select(format_money(pl.col("x"), "JPY")).to_series().to_list()
    ['¥5,235', '-¥40', '¥1']
    """
    rounded = x.round(2)
    cents = (x.abs() < CENTS_BELOW) & (rounded != rounded.round(0)) if has_cents(currency) else pl.lit(False)
    places = pl.when(cents).then(pl.lit(2)).otherwise(pl.lit(0))
    negative = pl.when(cents).then(rounded < 0).otherwise(x.round(0) < 0)
    sign = pl.when(negative).then(pl.lit("-")).otherwise(pl.lit(""))
    return pl.concat_str([sign, pl.lit(currency_prefix(currency)), format_fixed(x.abs(), places)])


# ---- names in sentences ------------------------------------------------------------------------

BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
"""The Unicode ``Bidi_Control`` characters: the marks ALM, LRM and RLM, the embeddings and overrides LRE,
RLE, PDF, LRO and RLO, and the isolates LRI, RLI, FSI and PDI. Invisible, they reorder the text around them."""

FSI, PDI = "\u2068", "\u2069"
"""FIRST STRONG ISOLATE and POP DIRECTIONAL ISOLATE: :func:`isolated` sets a right-to-left name apart with them."""

_BIDI_CONTROL = re.compile(f"[{BIDI_CONTROLS}]")

_RIGHT_TO_LEFT = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefe\U00010800-\U00010fff\U0001e800-\U0001efff]")
"""The blocks of the right-to-left scripts (Hebrew, Arabic, Syriac, Thaana, N'Ko … and their presentation forms):
the letters of bidi class R or AL, with their marks and Arabic-Indic digits. A name with none of them reads the
same, set apart or not, in a left-to-right sentence."""

_STRAY_CONTROL = re.compile(f"({FSI}[^{BIDI_CONTROLS}]*{PDI})|[{BIDI_CONTROLS}]")


@overload
def without_bidi_controls(text: str) -> str: ...
@overload
def without_bidi_controls(text: pl.Expr) -> pl.Expr: ...
def without_bidi_controls(text: str | pl.Expr) -> str | pl.Expr:
    r"""``text`` (a name, a sentence, or an expression of them) without the :data:`BIDI_CONTROLS`.

    A book's or playbook's name holding one (``"Acme\u202e tnuocca"``) made the rest of the
    sentence it was put in show reversed, in the report, a spreadsheet or a terminal: "Trojan
    Source" text that reads otherwise than it is. A name is cleaned so before it is put in a sentence
    (:func:`isolated`); a name's letters of either direction are kept. The data (``name``, ``owner``,
    the ids) keeps the book's text as it is.

    Examples
    --------
    >>> without_bidi_controls("Call Acme\u202e tnuocca, worth $120")
    'Call Acme tnuocca, worth $120'
    >>> pl.select(without_bidi_controls(pl.lit("\u2067logins\u2069 41"))).item()
    'logins 41'
    """
    if isinstance(text, pl.Expr):
        return text.str.replace_all(_BIDI_CONTROL.pattern, "")
    return _BIDI_CONTROL.sub("", text)


@overload
def isolated(name: str) -> str: ...
@overload
def isolated(name: pl.Expr) -> pl.Expr: ...
def isolated(name: str | pl.Expr) -> str | pl.Expr:
    r"""``name`` as a sentence holds it: without its bidi controls, set apart (``FSI`` … ``PDI``) when right-to-left.

    Put in an English sentence, an Arabic or Hebrew name took the numbers next to it into its
    right-to-left run (the Unicode bidi algorithm reads digits by the letters before them):
    "جلسات التطبيق: 6 reports in 90 days" showed as "6 :جلسات التطبيق reports in 90 days", "last
    رسالة 90 days ago" as "last 90 رسالة days ago". Isolated, the name is laid out on its own and
    the sentence around it reads in order. A name of left-to-right letters only (Latin, Greek,
    Cyrillic, CJK …) reads the same either way and is left as it is, so a sentence of such names
    holds no invisible character. The sentence keeps only these balanced pairs
    (:func:`without_stray_bidi_controls`).

    Examples
    --------
    >>> ascii(isolated("جلسات\u202e"))
    "'\\u2068\\u062c\\u0644\\u0633\\u0627\\u062a\\u2069'"
    >>> isolated("Yılmaz\u200f"), pl.select(isolated(pl.lit("logins"))).item()
    ('Yılmaz', 'logins')
    >>> pl.select(isolated(pl.lit("צפיות")).str.len_chars()).item()
    7
    """
    if isinstance(name, pl.Expr):
        bare = without_bidi_controls(name)
        around = pl.concat_str([pl.lit(FSI), bare, pl.lit(PDI)])
        return pl.when(bare.str.contains(_RIGHT_TO_LEFT.pattern)).then(around).otherwise(bare)
    clean = _BIDI_CONTROL.sub("", name)
    return f"{FSI}{clean}{PDI}" if _RIGHT_TO_LEFT.search(clean) else clean


@overload
def without_stray_bidi_controls(text: str) -> str: ...
@overload
def without_stray_bidi_controls(text: pl.Expr) -> pl.Expr: ...
def without_stray_bidi_controls(text: str | pl.Expr) -> str | pl.Expr:
    r"""``text`` (a sentence) without the :data:`BIDI_CONTROLS`, but for balanced ``FSI`` … ``PDI`` pairs holding none.

    Those are :func:`isolated`'s: a name's own controls are gone before it is set apart, and a pair
    cannot reorder the text outside it. A lone ``FSI`` or ``PDI``, a pair around another control, and
    every other control (an override, an embedding, a mark) are dropped. Applied to a whole receipt
    sentence, it keeps its names' isolates and drops whatever else came with a text (a stored receipt's).

    Examples
    --------
    >>> ascii(without_stray_bidi_controls("last \u2068\u05d0\u2069 3 days ago\u202e \u2068"))
    "'last \\u2068\\u05d0\\u2069 3 days ago '"
    >>> pl.select(without_stray_bidi_controls(pl.lit("\u2068a\u202eb\u2069 c"))).item()
    'ab c'
    """
    if isinstance(text, pl.Expr):
        return text.str.replace_all(_STRAY_CONTROL.pattern, "${1}")
    return _STRAY_CONTROL.sub(lambda m: m.group(1) or "", text)


# ---- phrases -----------------------------------------------------------------------------------


def _level(value: pl.Expr) -> pl.Expr:
    return pl.when(pl.col("percent")).then(format_percent(value)).otherwise(format_number(value))


def _plural(word: str, plural: str) -> pl.Expr:
    return pl.when(pl.col("value").round(0) == 1).then(pl.lit(word)).otherwise(pl.lit(plural))


def _up_down(x: pl.Expr) -> pl.Expr:
    return pl.when(x >= 0).then(pl.lit("up")).otherwise(pl.lit("down"))


def _count_of(x: pl.Expr, unit: str) -> pl.Expr:
    """A whole count with its unit, singular for one: "1 day", "45 days"."""
    one = format_fixed(x, 0) == "1"
    return pl.concat_str([format_fixed(x, 0), pl.when(one).then(pl.lit(f" {unit}")).otherwise(pl.lit(f" {unit}s"))])


_UNDER_A_DAY = "less than a day"


def format_days(x: pl.Expr) -> pl.Expr:
    """A time span in days as every receipt says it (:func:`days_said`): "15 days", "1 day", "less than a day".

    Examples
    --------
    >>> pl.DataFrame({"x": [15.92, 1.5, 0.3, 1234.0]}).select(format_days(pl.col("x"))).to_series().to_list()
    ['15 days', '1 day', 'less than a day', '1,234 days']
    """
    whole = x.floor()
    return pl.when(whole == 0).then(pl.lit(_UNDER_A_DAY)).otherwise(_count_of(whole, "day"))


def days_said(days: float) -> str:
    """A time span in days as every receipt says it: whole days, rounded down; "less than a day" under one.

    A touch done 15.9 days ago was done 15 days ago, as the cooldown's reason says it (never "16 days
    ago" in the evidence and "15" in the runner-up's reason); 29.6 days never reads as a 30-day
    cooldown itself; a renewal 0.3 days off is "in less than a day", never "in 0 days".

    Examples
    --------
    >>> days_said(15.92), days_said(1.0), days_said(0.3)
    ('15 days', '1 day', 'less than a day')
    """
    whole = math.floor(days)
    return _UNDER_A_DAY if whole == 0 else f"{whole:,} day{'' if whole == 1 else 's'}"


def _days(x: pl.Expr) -> pl.Expr:
    return format_fixed(x, 0)


def _change(kind: str, currency: str) -> pl.Expr:
    """ ", down from 63%" when an earlier value is known; for a mean without one, its trend (amounts: ``currency``)."""
    value, previous = pl.col("value"), pl.col("previous")
    # The earlier value in the same format as the value; equal as shown reads "unchanged".
    shows: dict[str, Callable[[pl.Expr], pl.Expr]] = {
        "money": partial(format_money, currency=currency),
        "count": _days,
        "readings": _days,
        "reports": _days,
        "sum": format_number,
    }
    show = shows.get(kind, _level)
    equal = show(value) == show(previous)
    if show in (format_number, _level):
        # A whole value and a fractional one compare at the finer of their precisions: 4 after a mean of
        # 3.9666… is unchanged ("4.0" both), not "4, up from 4.0"; 4 after 3.9 is "up from 3.9".
        finer = pl.max_horizontal(_places(value), _places(previous))
        same_number = format_fixed(value, finer) == format_fixed(previous, finer)
        equal = pl.when(pl.col("percent")).then(equal).otherwise(same_number) if show is _level else same_number
    direction = pl.when(value > previous).then(pl.lit(", up from ")).otherwise(pl.lit(", down from "))
    # An account column (ARR, a column of the accounts table) is one value per account in a book, so
    # "unchanged" says nothing; a change shows when the earlier snapshot came from an older export.
    same = pl.lit("") if kind in _ACCOUNT_KINDS else pl.lit(", unchanged")
    change = (
        pl.when(previous.is_null() | previous.is_nan())
        .then(pl.lit(""))
        .when(equal)
        .then(same)
        .otherwise(pl.concat_str([direction, show(previous)]))
    )
    if kind != "mean":
        return change
    trend = pl.col("trend")
    by_trend = (
        pl.when(trend.is_not_null() & trend.is_not_nan() & (trend.abs() >= 0.05))
        .then(
            pl.concat_str(
                [
                    pl.lit(", "),
                    _up_down(trend),
                    pl.lit(" "),
                    format_percent(trend.abs()),
                    pl.lit(" on the "),
                    pl.col("window").cast(pl.String),
                    pl.lit(" days before"),
                ]
            )
        )
        .otherwise(pl.lit(""))
    )
    return pl.when(previous.is_null() | previous.is_nan()).then(by_trend).otherwise(change)


_ANY_ACTION = "any"
"""The words of the touch features that count every action (their stem is ``any``)."""


def _phrase(kind: str, currency: str) -> pl.Expr:
    # The book's names (``words``, set apart by _set_apart) and text values keep to themselves when right-to-left.
    x, words, window = pl.col("value"), pl.col("words"), pl.col("window").cast(pl.String)
    if kind == "renewal":
        return (
            pl.when(x >= 0)
            .then(pl.concat_str([pl.lit("renewal in "), format_days(x)]))
            .otherwise(pl.concat_str([pl.lit("renewal date passed "), format_days(-x), pl.lit(" ago")]))
        )
    if kind == "tenure":
        return (
            pl.when(x >= 61)
            .then(pl.concat_str([pl.lit("customer for "), _count_of((x / 30.4).floor(), "month")]))
            .otherwise(pl.concat_str([pl.lit("customer for "), format_days(x)]))
        )
    if kind == "money":
        return pl.concat_str([words, pl.lit(" "), format_money(x, currency)])
    if kind in ("trend", "role_trend"):
        what = pl.concat_str([words, pl.lit(" signals")]) if kind == "role_trend" else words
        return pl.concat_str(
            [
                what,
                pl.lit(" "),
                _up_down(x),
                pl.lit(" "),
                format_percent(x.abs()),
                pl.lit(" over "),
                window,
                pl.lit(" days"),
            ]
        )
    if kind == "count":
        return pl.concat_str([words, pl.lit(": "), _days(x), pl.lit(" in "), window, pl.lit(" days")])
    if kind == "readings":
        return pl.concat_str([words, pl.lit(": "), _count_of(x, "reading"), pl.lit(" in "), window, pl.lit(" days")])
    if kind == "reports":
        return pl.concat_str([words, pl.lit(": "), _count_of(x, "report"), pl.lit(" in "), window, pl.lit(" days")])
    if kind == "sum":
        return pl.concat_str([words, pl.lit(" "), format_number(x), pl.lit(" in total over "), window, pl.lit(" days")])
    if kind == "mean":
        return pl.concat_str([words, pl.lit(" "), _level(x), pl.lit(" on average over "), window, pl.lit(" days")])
    if kind == "last":
        # A latest value older than the signal's usual interval says its age: an NPS answer of 11 months
        # ago is no reading of today's customer.
        age, after = pl.col("age"), pl.col("stale_after")
        stale = age.is_not_null() & age.is_not_nan() & after.is_not_null() & (age > after)
        said = pl.when(stale).then(pl.concat_str([pl.lit(", "), format_days(age), pl.lit(" ago")]))
        return pl.concat_str(
            [words, pl.lit(" "), _level(x), pl.lit(" (latest"), said.otherwise(pl.lit("")), pl.lit(")")]
        )
    # Names from the book lead, then a neutral template: "nps last: last reading 114 days ago", never
    # "last nps last 114 days ago"; an outcome kind is a label ("cancelled"), not a noun to build on.
    if kind in ("since", "outcome_since"):
        return pl.concat_str([words, pl.lit(": last seen "), format_days(x), pl.lit(" ago")])
    if kind == "reading_since":
        return pl.concat_str([words, pl.lit(": last reading "), format_days(x), pl.lit(" ago")])
    if kind == "outcome_count":
        return pl.concat_str([words, pl.lit(": "), _days(x), pl.lit(" in "), window, pl.lit(" days")])
    if kind == "team_since":
        return pl.concat_str([pl.lit("last touch by the "), words, pl.lit(" team "), format_days(x), pl.lit(" ago")])
    if kind == "team_count":
        touches = _plural("touch", "touches")
        return pl.concat_str(
            [_days(x), pl.lit(" "), touches, pl.lit(" by the "), words, pl.lit(" team in "), window, pl.lit(" days")]
        )
    # The touch totals over every action have the stem "any": "last touch 28 days ago", "3 touches in 90 days".
    every_action = words == _ANY_ACTION
    if kind == "touch_since":
        what = pl.when(every_action).then(pl.lit("touch")).otherwise(words)
        return pl.concat_str([pl.lit("last "), what, pl.lit(" "), format_days(x), pl.lit(" ago")])
    if kind == "touch_count":
        touches = _plural("touch", "touches")
        what = pl.when(every_action).then(pl.lit("")).otherwise(pl.concat_str([words, pl.lit(" ")]))
        return pl.concat_str([_days(x), pl.lit(" "), what, touches, pl.lit(" in "), window, pl.lit(" days")])
    if kind == "days_since":
        return pl.concat_str([words, pl.lit(" "), format_days(x), pl.lit(" ago")])
    if kind == "text":
        return pl.concat_str([words, pl.lit(" "), isolated(pl.col("text"))])
    if kind == "flag":
        return pl.concat_str([words, pl.when(x > 0.5).then(pl.lit(": yes")).otherwise(pl.lit(": no"))])
    return pl.concat_str([words, pl.lit(" "), _level(x)])


def render_phrases(frame: pl.DataFrame, *, currency: str = "USD") -> pl.Series:
    """The phrase of every row of ``frame`` (null where the value is missing), vectorised; ARR in ``currency``.

    ``frame`` has the :data:`PHRASE_COLUMNS`: the wording (``kind, words, window, percent``,
    as :func:`wording_table` makes) and the account's ``value`` (numbers), ``text`` (text
    features), ``trend`` (for a mean: its trend feature's value), ``previous`` (the value in
    an earlier snapshot, or null) and ``age`` (for a latest value: its age in days, said past the
    wording's ``stale_after``). Rows are phrased kind by kind, so each row pays for its own kind's
    format only.

    Examples
    --------
    >>> rows = pl.DataFrame(
    ...     {"kind": ["mean", "renewal"], "words": ["seat utilization", "renewal"], "window": [28, None],
    ...      "percent": [True, False], "value": [0.41, 45.0], "text": [None, None], "trend": [None, None],
    ...      "previous": [0.63, None]}
    ... )
    >>> render_phrases(rows).to_list()
    ['seat utilization 41% on average over 28 days, down from 63%', 'renewal in 45 days']
    """
    missing = [c for c in PHRASE_COLUMNS if c not in frame.columns and c not in _OPTIONAL_COLUMNS]
    if missing:
        raise ValueError(f"render_phrases needs the columns {missing}")
    if frame.height == 0:
        return pl.Series("phrase", [], dtype=pl.String)
    data = frame.select(
        [pl.col(c).cast(t) if c in frame.columns else pl.lit(None, t).alias(c) for c, t in PHRASE_COLUMNS.items()]
    ).with_row_index("_row")
    data = data.with_columns(_set_apart(data.get_column("words")))
    parts = [
        part.select("_row", _kind_phrase(str(kind), currency))
        for (kind,), part in data.partition_by("kind", as_dict=True, include_key=True).items()
    ]
    return pl.concat(parts).sort("_row").get_column("phrase")


def _set_apart(words: pl.Series) -> pl.Series:
    """``words`` as a phrase holds them (:func:`isolated`), worked out once per name: a book has few."""
    names = words.drop_nulls().unique().to_list()
    return words.replace(names, [isolated(str(n)) for n in names])


@cache
def _kind_phrase(kind: str, currency: str) -> pl.Expr:
    """The whole phrase expression of one kind (built once: building it costs more than running it on a row)."""
    phrase = _phrase(kind, currency)
    if kind in _WITH_PREVIOUS:
        phrase = pl.concat_str([phrase, _change(kind, currency)])
    present = pl.col("text").is_not_null() if kind == "text" else pl.col("value").is_not_nan()
    if kind in _CHANGES:
        # A change that reads 0% is no news: "support signals up 0% over 90 days" is never said (see citable).
        present = present & ((pl.col("value").abs() * 100).round(0) != 0)
    return pl.when(present).then(phrase).alias("phrase")


def _number_or_none(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(float(value)) else float(value)


def feature_phrase(
    feature: str,
    row: Mapping[str, object],
    unit_interval: Collection[str] = frozenset(),
    *,
    previous: float | None = None,
    names: Names | None = None,
    levels: Collection[str] = (),
    counts: Collection[str] = (),
    reports: Collection[str] = (),
    teams: Collection[str] = (),
    stale_after: Mapping[str, float] | None = None,
    currency: str = "USD",
) -> str | None:
    """A short phrase for one feature of one account, or None when the value is missing or says nothing.

    ``row`` holds the account's features (so a level can cite its trend, a latest value its age).
    Stems listed in ``unit_interval`` are shown as percentages (e.g. seat utilisation); ``previous``
    is the feature's value in an earlier snapshot ("down from 63%"); ``names``, ``levels``,
    ``counts``, ``reports``, ``teams`` and ``stale_after`` are as in :func:`feature_wording`; an amount
    (ARR) is written in ``currency`` (:func:`~nextmove.playbook.money.money_text`). A value that is not
    :func:`citable` (a level's window total, a count's window mean, a change that reads 0%) has no
    phrase. Phrases many accounts at once with
    :func:`render_phrases`, which gives the same words.

    Examples
    --------
    >>> row = {"days_to_renewal": 45.2, "logins_mean_28d": 41.0, "logins_trend_28d": -0.35}
    >>> feature_phrase("days_to_renewal", row)
    'renewal in 45 days'
    >>> feature_phrase("logins_mean_28d", row)
    'logins 41 on average over 28 days, down 35% on the 28 days before'
    >>> feature_phrase("seat_utilization_last", {"seat_utilization_last": 0.41}, frozenset({"seat_utilization"}))
    'seat utilization 41% (latest)'
    >>> feature_phrase("seat_utilization_last", {"seat_utilization_last": 0.41}, {"seat_utilization"}, previous=0.63)
    'seat utilization 41% (latest), down from 63%'
    >>> feature_phrase("nps_days_since_last", {"nps_days_since_last": 114.0}, levels={"nps"})
    'nps: last reading 114 days ago'
    >>> feature_phrase("nps_last", {"nps_last": 10.0, "nps_days_since_last": 326.2}, previous=10.0)
    'nps 10 (latest, 326 days ago), unchanged'
    """
    value = row.get(feature)
    text = value if isinstance(value, str) else None
    number = _number_or_none(value)
    if text is None and number is None:
        return None
    wording = feature_wording(
        feature,
        names=names,
        percent=unit_interval,
        levels=levels,
        counts=counts,
        reports=reports,
        teams=teams,
        stale_after=stale_after,
    )
    if number is not None and not citable(wording, np.array([number]))[0]:
        return None
    kind = "text" if text is not None else wording.kind
    trend = _number_or_none(row.get(wording.trend_feature)) if wording.trend_feature else None
    frame = pl.DataFrame(
        {
            "kind": [kind],
            "words": [isolated(wording.words)],
            "window": [wording.window],
            "percent": [wording.percent],
            "value": [number],
            "text": [text],
            "trend": [trend],
            "previous": [_number_or_none(previous)],
            "age": [_number_or_none(row.get(wording.age_feature)) if wording.age_feature else None],
            "stale_after": [wording.stale_after],
        },
        schema=PHRASE_COLUMNS,
    )
    phrase = frame.select(_kind_phrase(kind, currency)).item()
    return None if phrase is None else str(phrase)
