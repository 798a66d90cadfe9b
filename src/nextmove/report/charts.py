"""Charts as inline SVG: they render offline, in any browser, with no script and no network."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from nextmove.playbook.money import currency_prefix, money_text

_PALETTE = ("#2f6f9f", "#c27317", "#3f9c5a", "#b5485d", "#7a5ea8", "#8c7a3c", "#3b8f8f", "#666666")
BAND_COLORS = {"Healthy": "#3f9c5a", "At risk": "#c27317", "Critical": "#b5485d"}
"""Health bands in the colours people read them by: green, amber, red (each at least 3:1 against white,
the contrast WCAG asks of graphics)."""

ZERO_LINE_COLOR = "#767676"
"""The interval charts' dashed zero line: 4.5:1 against white (the #999 it was, 2.8:1, fell short of 3:1)."""


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its value and the text shown beside it."""

    label: str
    value: float
    text: str
    color: str | None = None
    """Its fill; default: the palette's next colour."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with its interval (``low`` ≤ ``value`` ≤ ``high`` is not required)."""

    label: str
    value: float
    low: float
    high: float
    text: str


FONT_PX = 12
"""The charts' text size in the SVG's own units (the page's CSS sets it; the layout reserves room for it)."""

NARROW_WIDTH = 360
"""Width of the narrow charts (phones): drawn near their own size, so their text stays readable."""

# Advance widths in em of DejaVu Sans (Chromium's system-ui and sans-serif on Debian, wider than most
# system fonts), so a label the layout says fits does fit; characters not listed count as a wide 1 em.
_EM = {
    **dict.fromkeys("0123456789$#+<=>^_~", 0.64),
    **dict.fromkeys("abcdeghknopquvxy", 0.64),
    **dict.fromkeys("ABCDEFGHJKLNOPQRSTUVXYZ", 0.78),
    **dict.fromkeys("ilj'|.,:;·!", 0.34),
    **dict.fromkeys('frt()[]{}/\\-−– "', 0.42),
    "s": 0.53,
    "z": 0.53,
    "m": 0.98,
    "w": 0.82,
    "I": 0.3,
    "M": 0.87,
    "W": 1.0,
    "%": 0.96,
    "&": 0.78,
    "?": 0.54,
    "*": 0.5,
    "×": 0.84,
}


def text_width(text: str, font_px: float = FONT_PX) -> float:
    """The width ``text`` takes when drawn at ``font_px`` (an estimate that errs wide).

    Examples
    --------
    >>> text_width("Do nothing") < text_width("Product-value nurture sequence")
    True
    """
    return sum(_EM.get(c, 1.0) for c in text) * font_px


def fit_text(text: str, max_width: float) -> str:
    """``text``, cut at the end with "…" so it fits in ``max_width`` (unchanged when it already fits).

    Examples
    --------
    >>> fit_text("Product-value nurture sequence", 120)
    'Product-value n…'
    >>> fit_text("Do nothing", 120)
    'Do nothing'
    """
    if text_width(text) <= max_width:
        return text
    room = max_width - text_width("…")
    cut = ""
    for c in text:
        if text_width(cut + c) > room:
            break
        cut += c
    return cut.rstrip() + "…"


def _text(text: str, max_width: float, attrs: str) -> str:
    """An SVG <text> that fits ``max_width``; a cut one keeps the whole text as its tooltip."""
    shown = fit_text(text, max_width)
    tip = f"<title>{escape(text)}</title>" if shown != text else ""
    return f"<text {attrs}>{escape(shown)}{tip}</text>"


def _svg(title: str, width: int, height: float, narrow: bool, values: Sequence[str] = ()) -> str:
    # The text alternative names the chart and lists what it draws, so a screen reader reads the values.
    label = f"{title}: {'; '.join(values)}" if values else title
    return (
        f'<svg class="chart {"narrow" if narrow else "wide"}" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {width} {height:g}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    )


def bar_chart(
    bars: Sequence[Bar], *, title: str, width: int = 640, bar_height: int = 22, narrow: bool = False
) -> Markup:
    """A horizontal bar chart, one bar per item, labels left and values right.

    Labels and values get the room they need (a label wider than 45% of the chart is cut with
    "…" and keeps its whole text as a tooltip). ``narrow`` draws each label above its bar, for a
    phone: give it a ``width`` near the screen's (:data:`NARROW_WIDTH`).

    Examples
    --------
    >>> svg = bar_chart([Bar("Retention", 312, "312"), Bar("Expansion", 280, "280")], title="Actions")
    >>> svg.count('class="bar"')
    2
    >>> 'aria-label="Actions: Retention 312; Expansion 280"' in svg
    True
    """
    gap = 6
    text_w = max([90.0, *(text_width(b.text) + 2 * gap for b in bars)])
    text_w = min(text_w, width / 2)
    top = max((abs(b.value) for b in bars), default=0.0) or 1.0
    if narrow:
        label_h = FONT_PX + 4
        row_h = label_h + bar_height + gap + 4
        label_w = 0.0
    else:
        row_h = bar_height + gap
        label_w = min(max([190.0, *(text_width(b.label) + 8 for b in bars)]), width * 0.45)
    plot_w = max(width - label_w - text_w, 40)
    height = max(len(bars), 1) * row_h + gap
    parts = [_svg(title, width, height, narrow, [f"{b.label} {b.text}" for b in bars])]
    for i, b in enumerate(bars):
        y = gap + i * row_h
        color = b.color or _PALETTE[i % len(_PALETTE)]
        if narrow:
            parts.append(_text(b.label, width, f'x="0" y="{y + FONT_PX:.1f}" class="label"'))
            y += label_h
        else:
            parts.append(
                _text(
                    b.label,
                    label_w - 8,
                    f'x="{label_w - 8:.1f}" y="{y + bar_height * 0.7:.1f}" text-anchor="end" class="label"',
                )
            )
        w = max(abs(b.value) / top * plot_w, 1.0 if b.value else 0.0)
        parts.append(
            f'<rect class="bar" x="{label_w:.1f}" y="{y}" width="{w:.1f}" height="{bar_height}" fill="{color}">'
            f"<title>{escape(b.label)}: {escape(b.text)}</title></rect>"
        )
        parts.append(
            _text(
                b.text,
                width - label_w - w - gap,
                f'x="{label_w + w + gap:.1f}" y="{y + bar_height * 0.7:.1f}" class="value"',
            )
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def interval_chart(
    items: Sequence[Interval], *, title: str, width: int = 640, row_height: int = 28, narrow: bool = False
) -> Markup:
    """Points with horizontal whiskers for their intervals, on one shared axis that includes 0.

    Labels and values get the room they need, as in :func:`bar_chart`; ``narrow`` writes each
    label and its value on a line above its whisker, for a phone.

    Examples
    --------
    >>> svg = interval_chart([Interval("Learned", 12.0, 8.0, 16.0, "$12")], title="Value")
    >>> svg.count('class="point"')
    1
    """
    pad = 10
    text_ws = [text_width(it.text) for it in items]
    if narrow:
        label_h = FONT_PX + 4
        row_h = label_h + row_height
        label_w, plot_w = 6.0, width - 12.0
    else:
        row_h = row_height
        text_w = min(max([150.0, *(w + 14 for w in text_ws)]), width * 0.4)
        label_w = min(max([190.0, *(text_width(it.label) + 8 for it in items)]), width * 0.4)
        plot_w = max(width - label_w - text_w, 60)
    height = max(len(items), 1) * row_h + 2 * pad + 16
    finite = [v for it in items for v in (it.value, it.low, it.high) if v == v]
    lo, hi = min([0.0, *finite]), max([0.0, *finite])
    span = (hi - lo) or 1.0

    def sx(v: float) -> float:
        return label_w + (v - lo) / span * plot_w

    parts = [
        _svg(title, width, height, narrow, [f"{it.label} {it.text}" for it in items]),
        f'<line class="zero" x1="{sx(0):.1f}" x2="{sx(0):.1f}" y1="{pad}" y2="{height - pad - 12}" '
        f'stroke="{ZERO_LINE_COLOR}" stroke-dasharray="3,3"/>',
        f'<text x="{sx(0):.1f}" y="{height - 4}" text-anchor="middle" class="axis">0</text>',
    ]
    for i, it in enumerate(items):
        color = _PALETTE[i % len(_PALETTE)]
        if narrow:
            top = pad + i * row_h
            value_w = min(text_ws[i], width * 0.6)
            parts.append(_text(it.label, width - value_w - 12, f'x="0" y="{top + FONT_PX:.1f}" class="label"'))
            parts.append(
                _text(it.text, value_w, f'x="{width}" y="{top + FONT_PX:.1f}" text-anchor="end" class="value"')
            )
            y = top + label_h + row_height / 2
        else:
            y = pad + i * row_h + row_height / 2
            parts.append(
                _text(it.label, label_w - 8, f'x="{label_w - 8:.1f}" y="{y + 4:.1f}" text-anchor="end" class="label"')
            )
            parts.append(
                _text(
                    it.text,
                    width - label_w - plot_w - 10,
                    f'x="{label_w + plot_w + 10:.1f}" y="{y + 4:.1f}" class="value"',
                )
            )
        parts.append(
            f'<line class="whisker" x1="{sx(it.low):.1f}" x2="{sx(it.high):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{color}" stroke-width="3"/>'
            f'<circle class="point" cx="{sx(it.value):.1f}" cy="{y:.1f}" r="5" fill="{color}">'
            f"<title>{escape(it.label)}: {escape(it.text)}</title></circle>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def money_short(x: float, currency: str) -> str:
    """An amount in ``currency`` in short form: ``$1.2M``, ``-€340k``, ``$95``, ``$0.86``, ``CHF 1.8k``.

    The sign, then the currency's symbol or code, as :func:`~nextmove.playbook.money.money_text`.
    Thousands and millions keep one decimal below 10 of the unit (``$1.8k``, ``-$1.0k``), whole
    ones above (``$12k``); below 1,000 the amount is :func:`~nextmove.playbook.money.money_text`'s
    (without cents for a currency that has none: ``¥1``).

    Examples
    --------
    >>> [money_short(x, "USD") for x in (1_234_567, -340_000, 1_804, -1_026, 95.4, 0.857, -0.001)]
    ['$1.2M', '-$340k', '$1.8k', '-$1.0k', '$95', '$0.86', '$0']
    >>> [money_short(x, "USD") for x in (999.7, 9_960, 999_600, 174_100_000)]
    ['$1.0k', '$10k', '$1.0M', '$174M']
    >>> money_short(-340_000, "EUR"), money_short(1_804, "CHF"), money_short(0.857, "JPY"), money_short(-0.4, "JPY")
    ('-€340k', 'CHF 1.8k', '¥1', '¥0')
    """
    a = abs(x)
    prefix = currency_prefix(currency)
    if round(a) < 1_000:
        text = money_text(a, currency)
    else:
        # The unit after rounding, so 999,600 is "$1.0M" rather than "$1,000k".
        v, unit = (a / 1e6, "M") if round(a / 1e3) >= 1_000 else (a / 1e3, "k")
        text = f"{prefix}{v:.1f}{unit}" if round(v, 1) < 10 else f"{prefix}{v:,.0f}{unit}"
    return ("-" if x < 0 and text != f"{prefix}0" else "") + text
