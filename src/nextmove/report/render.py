"""Render :class:`~nextmove.report.data.ReportData` as one self-contained HTML file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from nextmove._files import writing
from nextmove._version import __version__
from nextmove._words import plural
from nextmove.decide.phrases import FSI, PDI, without_bidi_controls, without_stray_bidi_controls
from nextmove.playbook.money import CENTS_BELOW, currency_prefix, currency_unit, has_cents
from nextmove.report.charts import BAND_COLORS, NARROW_WIDTH, Bar, Interval, bar_chart, interval_chart, money_short
from nextmove.report.data import ReportData, policy_notes


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("nextmove.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=shown,
    )
    env.filters["money"] = money_short
    env.filters["pct"] = lambda x: f"{float(x):.0%}"
    env.filters["amount"] = _amount
    env.filters["code_spans"] = code_spans
    env.filters["sentence"] = sentence
    env.globals["policy_notes"] = policy_notes
    return env


class _Shown(Markup):
    """Markup already as the page shows it, which :func:`shown` leaves as it is: the accounts table's data, whose
    sentences keep their names' isolates for the page's script (:func:`_table_json`)."""

    __slots__ = ()


def shown(value: object) -> object:
    r"""``value`` as the page shows it: text, and markup, without the bidi controls (the page's every ``{{ … }}``).

    A name of the book's or the playbook's holding a right-to-left override (``"Acme\u202e tnuocca"``)
    showed the rest of the sentence, or the table cell, it was in reversed. A name, a cell, and the
    markup of a chart are cleaned whole (:func:`~nextmove.decide.phrases.without_bidi_controls`); a
    report of a run stored before the receipts' names were cleaned is cleaned too. nextmove's sentences
    go through :func:`sentence` first, which turns their names' isolates into ``<bdi>``.

    Examples
    --------
    >>> shown("Call Acme\u202e tnuocca"), shown(Markup("<b>\u2067x\u2069</b>")), shown(3)
    ('Call Acme tnuocca', Markup('<b>x</b>'), 3)
    """
    if isinstance(value, _Shown):
        return value
    if isinstance(value, Markup):
        return Markup(without_bidi_controls(str(value)))
    if isinstance(value, str):
        return without_bidi_controls(value)
    return value


def sentence(text: object) -> Markup:
    r"""A sentence of nextmove's (a receipt's summary, a segment's response) escaped, its names set apart as ``<bdi>``.

    The receipts set a right-to-left name apart with ``FSI`` … ``PDI``
    (:func:`~nextmove.decide.phrases.isolated`), so that "جلسات التطبيق: 6 reports in 90 days" does not
    show as "6 :جلسات التطبيق reports in 90 days"; the page writes each such pair as a ``<bdi>``
    element. Any other bidi control (a lone isolate, an override) is dropped
    (:func:`~nextmove.decide.phrases.without_stray_bidi_controls`).

    Examples
    --------
    >>> str(sentence("last \u2068\u05d3\u05d5\u05d0\u05f4\u05dc\u2069 160 days ago <b>\u202e"))
    'last <bdi>דוא״ל</bdi> 160 days ago &lt;b&gt;'
    """
    text = str(escape(without_stray_bidi_controls(str(text))))
    return Markup(text.replace(FSI, "<bdi>").replace(PDI, "</bdi>"))


def code_spans(text: object) -> Markup:
    """``text`` escaped, with its `backticked` spans (a command, an expression) set as code.

    Examples
    --------
    >>> str(code_spans("check it (`nextmove features`; a <b> is text)"))
    'check it (<code>nextmove features</code>; a &lt;b&gt; is text)'
    >>> str(code_spans("an odd ` stays"))
    'an odd ` stays'
    """
    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: no spans to set
        return escape(str(text))
    return Markup("").join(
        escape(part) if i % 2 == 0 else Markup("<code>") + escape(part) + Markup("</code>")
        for i, part in enumerate(parts)
    )


_SENTENCES = frozenset({"why"})
"""The accounts table's fields that are nextmove's sentences: they keep their names' isolates (the page's script
writes them as ``<bdi>``, and its search drops them)."""


def _table_cell(key: str, value: object) -> object:
    """A value of the accounts table as the rest of the page shows it (:func:`shown`, :func:`sentence`)."""
    if not isinstance(value, str):
        return value
    return without_stray_bidi_controls(value) if key in _SENTENCES else without_bidi_controls(value)


def _table_json(rows: list[dict[str, Any]]) -> _Shown:
    """The accounts table's data for the page's script, its text as the rest of the page shows it (its filters'
    options are: :func:`shown`), its sentences with their names' isolates."""
    return _Shown(_json_for_script([{key: _table_cell(key, value) for key, value in row.items()} for row in rows]))


def _json_for_script(value: object) -> Markup:
    # Inside <script>, "</" would end the element and "<!--" open an escaped-comment state. JSON's
    # \u escapes of <, > and & keep the text valid JSON ("<\\!--" was not: JSON.parse threw on it and
    # the accounts table of a report with one name holding "<!--" was empty).
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _per_decision(x: float, currency: str) -> str:
    """A policy's value per decision, to a tenth (a whole number for a currency without cents): "$12.3 per decision".

    Examples
    --------
    >>> _per_decision(-12.34, "USD"), _per_decision(0.04, "EUR"), _per_decision(-0.4, "JPY"), _per_decision(3, "CHF")
    ('-$12.3 per decision', '€0.0 per decision', '¥0 per decision', 'CHF 3.0 per decision')
    """
    places = 1 if has_cents(currency) else 0
    return f"{'-' if round(x, places) < 0 else ''}{currency_prefix(currency)}{abs(x):,.{places}f} per decision"


def _amount(x: float | None, currency: str) -> str:
    """A value per decision of the policies' table, without its unit (the header names it): to the cent, or whole.

    Examples
    --------
    >>> _amount(1234.567, "USD"), _amount(1234.567, "JPY"), _amount(None, "EUR")
    ('1,234.57', '1,235', '—')
    """
    return "—" if x is None else f"{float(x):,.{2 if has_cents(currency) else 0}f}"


def _money_script(currency: str) -> Markup:
    """How the accounts table's script writes amounts (``money`` in the page): the prefix, and whether cents show.

    Examples
    --------
    >>> str(_money_script("EUR")), str(_money_script("JPY"))
    ('{"prefix":"€","cents":10.0}', '{"prefix":"¥","cents":0}')
    """
    return _json_for_script({"prefix": currency_prefix(currency), "cents": CENTS_BELOW if has_cents(currency) else 0})


def _bars(bars: list[Bar], title: str) -> Markup:
    # Two drawings of one chart; the page's CSS shows the narrow one on a phone.
    return bar_chart(bars, title=title) + bar_chart(bars, title=title, width=NARROW_WIDTH, narrow=True)


def _intervals(items: list[Interval], title: str) -> Markup:
    return interval_chart(items, title=title) + interval_chart(items, title=title, width=NARROW_WIDTH, narrow=True)


def charts(data: ReportData) -> dict[str, Markup]:
    """The report's charts as inline SVG, by section name (a section without data has none).

    Each chart is drawn twice, wide and narrow (``svg.chart.wide``, ``svg.chart.narrow``); the
    page shows the one that fits the screen.
    """
    out: dict[str, Markup] = {}
    if data.actions:
        out["actions"] = _bars(
            [Bar(c.label, c.count, f"{c.count:,} ({c.share:.0%})") for c in data.actions],
            "Recommended action distribution",
        )
    if data.families:
        out["families"] = _bars([Bar(c.label, c.count, f"{c.count:,}") for c in data.families], "Accounts by focus")
    if data.stages:
        out["stages"] = _bars(
            [Bar(s.stage, s.share * 100, f"{s.share:.0%} of {s.accounts:,}") for s in data.stages],
            "Accounts given something other than the lifecycle default (the left-alone included), by stage",
        )
    if data.bands and data.has_arr:
        out["bands"] = _bars(
            [
                Bar(
                    b.band,
                    b.arr_usd,
                    f"{money_short(b.arr_usd, data.currency)} · {plural(b.accounts, 'account')}",
                    BAND_COLORS.get(b.band),
                )
                for b in data.bands
            ],
            "ARR by health band",
        )
    elif data.bands:
        # A book without ARR (consumers) counts accounts per band rather than drawing bars of $0.
        out["bands"] = _bars(
            [
                Bar(b.band, b.accounts, f"{b.accounts:,} ({b.account_share:.0%})", BAND_COLORS.get(b.band))
                for b in data.bands
            ],
            "Accounts by health band",
        )
    if data.impact:
        out["impact"] = _intervals(
            [
                Interval(
                    i.label,
                    i.value_usd,
                    i.low_usd,
                    i.high_usd,
                    f"{money_short(i.value_usd, data.currency)} ({money_short(i.low_usd, data.currency)} to "
                    f"{money_short(i.high_usd, data.currency)})",
                )
                for i in data.impact
            ],
            "Projected impact by objective",
        )
    if any(p.estimate is not None for p in data.policies):
        out["policies"] = _intervals(
            [
                Interval(
                    f"{p.policy} ({p.method})",
                    estimate,
                    estimate if p.low is None else p.low,  # no interval: the point alone (the table says why)
                    estimate if p.high is None else p.high,
                    _per_decision(estimate, data.currency) + ("" if p.low is not None else " (no interval)"),
                )
                for p in data.policies
                if (estimate := p.estimate) is not None
            ],
            "Off-policy value per decision",
        )
    return out


def render_report(data: ReportData) -> str:
    """The report as one HTML document: inline CSS, SVG charts and a small script, no network.

    Examples
    --------
    >>> import polars as pl
    >>> from nextmove.report.data import build_report_data
    >>> recs = pl.DataFrame({"account_id": ["a"], "action_id": ["none"], "expected_value_usd": [0.0]})
    >>> html = render_report(build_report_data({"accounts": 1, "actions": 3}, recs))
    >>> html.startswith("<!DOCTYPE html>") and "http" not in html.split("<body")[0]
    True
    """
    template = _environment().get_template("report.html.j2")
    return template.render(
        data=data,
        charts=charts(data),
        table_json=_table_json(data.table),
        money_json=_money_script(data.currency),
        money_unit=currency_unit(data.currency),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        version=__version__,
    )


def write_report(data: ReportData, path: Path) -> Path:
    """Write the report to ``path`` (through a temporary file, so a failed write leaves no half page).

    Raises
    ------
    WriteError
        If the page cannot be written (a full disk …): no temporary file is left, and a report
        already at ``path`` is left as it was.
    """
    page = render_report(data)
    kept = f"{path} is left as it was" if path.exists() else "no file was written"
    with writing(f"the report {path}", kept):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(page, encoding="utf-8")
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
    return path
