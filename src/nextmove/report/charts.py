"""Charts as inline SVG: they render offline, in any browser, with no script and no network."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from nextmove.decide.phrases import usd_text

_PALETTE = ("#2f6f9f", "#d9822b", "#3f9c5a", "#b5485d", "#7a5ea8", "#8c7a3c", "#3b8f8f", "#666666")
BAND_COLORS = {"Healthy": "#3f9c5a", "At risk": "#d9822b", "Critical": "#b5485d"}
"""Health bands in the colours people read them by: green, amber, red."""


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


def _fmt(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def bar_chart(bars: Sequence[Bar], *, title: str, width: int = 640, bar_height: int = 22) -> Markup:
    """A horizontal bar chart, one bar per item, labels left and values right.

    Examples
    --------
    >>> svg = bar_chart([Bar("Retention", 312, "312"), Bar("Expansion", 280, "280")], title="Actions")
    >>> svg.count('class="bar"')
    2
    """
    label_w, text_w, gap = 190, 90, 6
    plot_w = max(width - label_w - text_w, 40)
    height = max(len(bars), 1) * (bar_height + gap) + gap
    top = max((abs(b.value) for b in bars), default=0.0) or 1.0
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i, b in enumerate(bars):
        y = gap + i * (bar_height + gap)
        w = max(abs(b.value) / top * plot_w, 1.0 if b.value else 0.0)
        color = b.color or _PALETTE[i % len(_PALETTE)]
        parts.append(
            f'<text x="{label_w - 8}" y="{y + bar_height * 0.7:.1f}" text-anchor="end" class="label">'
            f"{escape(b.label)}</text>"
            f'<rect class="bar" x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_height}" fill="{color}">'
            f"<title>{escape(b.label)}: {escape(b.text)}</title></rect>"
            f'<text x="{label_w + w + 6:.1f}" y="{y + bar_height * 0.7:.1f}" class="value">{escape(b.text)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def interval_chart(items: Sequence[Interval], *, title: str, width: int = 640, row_height: int = 28) -> Markup:
    """Points with horizontal whiskers for their intervals, on one shared axis that includes 0.

    Examples
    --------
    >>> svg = interval_chart([Interval("Learned", 12.0, 8.0, 16.0, "$12")], title="Value")
    >>> svg.count('class="point"')
    1
    """
    label_w, text_w, pad = 190, 150, 10
    plot_w = max(width - label_w - text_w, 60)
    height = max(len(items), 1) * row_height + 2 * pad + 16
    finite = [v for it in items for v in (it.value, it.low, it.high) if v == v]
    lo, hi = min([0.0, *finite]), max([0.0, *finite])
    span = (hi - lo) or 1.0

    def sx(v: float) -> float:
        return label_w + (v - lo) / span * plot_w

    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line class="zero" x1="{sx(0):.1f}" x2="{sx(0):.1f}" y1="{pad}" y2="{height - pad - 12}" '
        'stroke="#999" stroke-dasharray="3,3"/>',
        f'<text x="{sx(0):.1f}" y="{height - 4}" text-anchor="middle" class="axis">0</text>',
    ]
    for i, it in enumerate(items):
        y = pad + i * row_height + row_height / 2
        color = _PALETTE[i % len(_PALETTE)]
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 4:.1f}" text-anchor="end" class="label">{escape(it.label)}</text>'
            f'<line class="whisker" x1="{sx(it.low):.1f}" x2="{sx(it.high):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{color}" stroke-width="3"/>'
            f'<circle class="point" cx="{sx(it.value):.1f}" cy="{y:.1f}" r="5" fill="{color}">'
            f"<title>{escape(it.label)}: {escape(it.text)}</title></circle>"
            f'<text x="{label_w + plot_w + 10}" y="{y + 4:.1f}" class="value">{escape(it.text)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def usd(x: float) -> str:
    """Dollars in short form: ``$1.2M``, ``$340k``, ``$95``.

    Examples
    --------
    >>> usd(1_234_567), usd(-340_000), usd(95.4), usd(0.857), usd(-0.001)
    ('$1.2M', '−$340k', '$95', '$0.86', '$0')
    """
    a = abs(x)
    text = f"${_fmt(a / 1e6)}M" if a >= 1e6 else f"${a / 1e3:,.0f}k" if a >= 1e3 else usd_text(a)
    return ("−" if x < 0 and text != "$0" else "") + text
