"""Line and bar charts as SVG markup, drawn on the server.

No JavaScript and no styles: the admin CSP forbids inline scripts and style attributes, and
the printed report must look the same. Colours are SVG presentation attributes; every text is
escaped (bar labels may be residents' masked questions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 720
HEIGHT = 280
MARGIN_LEFT = 64
MARGIN_RIGHT = 20
MARGIN_TOP = 40  # room for the legend
MARGIN_BOTTOM = 44  # two lines of axis labels (month, and the year under January)
PALETTE = ("#06c755", "#1565c0", "#ef6c00", "#8e24aa", "#c62828", "#00838f")
REFERENCE_COLOURS = ("#c62828", "#616e7c")
AXIS = "#9aa5b1"
GRID = "#e4e9ee"
TEXT = "#1f2933"
FONT = 'font-family="inherit"'


@dataclass(frozen=True)
class Series:
    """One named line or set of bars."""

    name: str
    values: Sequence[float | int | None]


@dataclass(frozen=True)
class Reference:
    """A horizontal line across the chart: a target, or the plan's baseline figure."""

    value: float
    label: str


def _num(value: float) -> str:
    """A coordinate with at most one decimal (short markup, stable output)."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def nice_max(value: float, integer: bool) -> float:
    """A round axis maximum at or above value (1, 2, 2.5, 5 x 10^n); integer axes start at 5."""
    if value <= 0:
        return 5.0 if integer else 1.0
    exponent = 10.0 ** math.floor(math.log10(value))
    top = next(step * exponent for step in (1.0, 2.0, 2.5, 5.0, 10.0) if step * exponent >= value)
    return max(top, 5.0) if integer else top


def format_number(value: float, unit: str = "") -> str:
    """1234 -> '1,234', 12.5 -> '12.5', with the unit suffix."""
    text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
    return text + unit


def _plain(labels: Sequence[str]) -> list[str]:
    """Axis labels on one line (for descriptions and tooltips)."""
    return [label.replace("\n", " ") for label in labels]


def _is_integer_data(series: Sequence[Series]) -> bool:
    return all(v is None or float(v).is_integer() for s in series for v in s.values)


def _open(chart_id: str, title: str, height: int, summary: str) -> list[str]:
    return [
        (f'<svg xmlns="http://www.w3.org/2000/svg" class="kpi-chart" id="{escape(chart_id)}" '
         f'viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" role="img" '
         f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" {FONT} font-size="12">'),
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(summary)}</desc>',
    ]


def _text_width(text: str) -> float:
    """Rough width at font-size 12: full-width characters 12 px, others 7 px."""
    return sum(12.0 if ord(ch) > 0x2E7F else 7.0 for ch in text)


def _legend(entries: Sequence[tuple[str, str, bool]]) -> tuple[list[str], int]:
    """Legend along the top, wrapped into rows: (name, colour, dashed); returns markup and the plot's top."""
    parts: list[str] = ['<g class="kpi-legend">']
    x, y = float(MARGIN_LEFT), 16
    for name, colour, dashed in entries:
        width = 24 + _text_width(name) + 20
        if x > MARGIN_LEFT and x + width > WIDTH - MARGIN_RIGHT:
            x, y = float(MARGIN_LEFT), y + 18
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        parts.append(f'<line x1="{_num(x)}" y1="{y}" x2="{_num(x + 18)}" y2="{y}" stroke="{colour}" stroke-width="3"{dash}/>')
        parts.append(f'<text x="{_num(x + 24)}" y="{y + 4}" fill="{TEXT}">{escape(name)}</text>')
        x += width
    parts.append("</g>")
    return parts, max(MARGIN_TOP, y + 22) if entries else 20


def _y_axis(top: float, height: int, unit: str, integer: bool, plot_top: int) -> tuple[list[str], float]:
    """Grid lines and labels; returns the markup and the plot's pixel height."""
    plot_h = height - plot_top - MARGIN_BOTTOM
    parts = ['<g class="kpi-axis">']
    for i in range(6):
        value = top * i / 5
        y = plot_top + plot_h - plot_h * i / 5
        label = format_number(round(value) if integer else value, unit)
        parts.append(f'<line x1="{MARGIN_LEFT}" y1="{_num(y)}" x2="{WIDTH - MARGIN_RIGHT}" y2="{_num(y)}" '
                     f'stroke="{GRID if i else AXIS}" stroke-width="1"/>')
        parts.append(f'<text x="{MARGIN_LEFT - 6}" y="{_num(y + 4)}" text-anchor="end" fill="{TEXT}">{escape(label)}</text>')
    parts.append("</g>")
    return parts, plot_h


def _x_labels(labels: Sequence[str], centre: list[float], height: int) -> list[str]:
    """Labels under the axis; a newline in a label starts a second, smaller line."""
    step = max(1, math.ceil(len(labels) / 24))
    parts = ['<g class="kpi-xlabels">']
    for i, label in enumerate(labels):
        if i % step:
            continue
        first, _, second = label.partition("\n")
        y = height - MARGIN_BOTTOM + 18
        parts.append(f'<text x="{_num(centre[i])}" y="{y}" text-anchor="middle" fill="{TEXT}">{escape(first)}')
        if second:
            parts.append(f'<tspan x="{_num(centre[i])}" dy="14" font-size="10" fill="#616e7c">{escape(second)}</tspan>')
        parts.append("</text>")
    parts.append("</g>")
    return parts


def _empty_note(height: int, note: str) -> list[str]:
    return [f'<text x="{WIDTH / 2}" y="{height / 2}" text-anchor="middle" fill="#616e7c" font-size="14">{escape(note)}</text>']


def line_chart(
    chart_id: str,
    title: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    unit: str = "",
    references: Sequence[Reference] = (),
    empty_note: str = "データがありません",
) -> Markup:
    """Lines over months (gaps where a value is None), with dashed reference lines."""
    values = [float(v) for s in series for v in s.values if v is not None]
    integer = _is_integer_data(series) and all(float(r.value).is_integer() for r in references)
    top = nice_max(max(values + [r.value for r in references] + [0.0]), integer)
    plain = _plain(x_labels)
    summary = "; ".join(f"{s.name}: " + ", ".join(
        f"{x} {'—' if v is None else format_number(v, unit)}" for x, v in zip(plain, s.values, strict=True)
    ) for s in series)
    ref_colours = [REFERENCE_COLOURS[i % len(REFERENCE_COLOURS)] for i in range(len(references))]
    legend, plot_top = _legend(
        [(r.label, c, True) for r, c in zip(references, ref_colours, strict=True)]
        + [(s.name, PALETTE[i % len(PALETTE)], False) for i, s in enumerate(series)]
    )
    parts = _open(chart_id, title, HEIGHT, summary)
    axis, plot_h = _y_axis(top, HEIGHT, unit, integer, plot_top)
    parts += axis
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    n = max(len(x_labels), 1)
    xs = [MARGIN_LEFT + plot_w * (i + 0.5) / n for i in range(n)]

    def y_of(value: float) -> float:
        return plot_top + plot_h - plot_h * value / top

    for ref, colour in zip(references, ref_colours, strict=True):
        y = y_of(ref.value)
        parts.append(f'<line class="kpi-reference" x1="{MARGIN_LEFT}" y1="{_num(y)}" x2="{WIDTH - MARGIN_RIGHT}" '
                     f'y2="{_num(y)}" stroke="{colour}" stroke-width="2" stroke-dasharray="6 4">'
                     f'<title>{escape(ref.label)}</title></line>')
    for index, one in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        segments: list[list[str]] = [[]]
        for i, value in enumerate(one.values):
            if value is None:
                segments.append([])
            else:
                segments[-1].append(f"{_num(xs[i])},{_num(y_of(float(value)))}")
        for points in segments:
            if len(points) > 1:
                parts.append(f'<polyline class="kpi-line" points="{" ".join(points)}" fill="none" '
                             f'stroke="{colour}" stroke-width="2.5"/>')
        for i, value in enumerate(one.values):
            if value is not None:
                tip = escape(f"{one.name} {plain[i]}: {format_number(value, unit)}")
                parts.append(f'<circle class="kpi-point" cx="{_num(xs[i])}" cy="{_num(y_of(float(value)))}" r="3.5" '
                             f'fill="{colour}"><title>{tip}</title></circle>')
    if not values:
        parts += _empty_note(HEIGHT, empty_note)
    parts += _x_labels(x_labels, xs, HEIGHT)
    parts += legend
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(
    chart_id: str,
    title: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    unit: str = "",
    stacked: bool = False,
) -> Markup:
    """Vertical bars per label: grouped side by side, or stacked."""
    n = max(len(x_labels), 1)
    per_label = [sum(float(s.values[i] or 0) for s in series) for i in range(len(x_labels))]
    values = per_label if stacked else [float(v or 0) for s in series for v in s.values]
    integer = _is_integer_data(series)
    top = nice_max(max(values + [0.0]), integer)
    plain = _plain(x_labels)
    summary = "; ".join(f"{s.name}: " + ", ".join(
        f"{x} {format_number(v or 0, unit)}" for x, v in zip(plain, s.values, strict=True)
    ) for s in series)
    legend, plot_top = _legend([(s.name, PALETTE[i % len(PALETTE)], False) for i, s in enumerate(series)])
    parts = _open(chart_id, title, HEIGHT, summary)
    axis, plot_h = _y_axis(top, HEIGHT, unit, integer, plot_top)
    parts += axis
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    band = plot_w / n
    group_w = band * 0.7
    bar_w = group_w if stacked else group_w / max(len(series), 1)
    centres = [MARGIN_LEFT + band * (i + 0.5) for i in range(n)]
    for i, label in enumerate(plain):
        base = 0.0
        for index, one in enumerate(series):
            value = float(one.values[i] or 0)
            h = plot_h * value / top
            x = centres[i] - group_w / 2 + (0 if stacked else index * bar_w)
            y = plot_top + plot_h - h - (plot_h * base / top if stacked else 0)
            tip = escape(f"{one.name} {label}: {format_number(value, unit)}")
            parts.append(f'<rect class="kpi-bar" x="{_num(x)}" y="{_num(y)}" width="{_num(max(bar_w - 1, 1))}" '
                         f'height="{_num(h)}" fill="{PALETTE[index % len(PALETTE)]}"><title>{tip}</title></rect>')
            if stacked:
                base += value
    parts += _x_labels(x_labels, centres, HEIGHT)
    parts += legend
    parts.append("</svg>")
    return Markup("".join(parts))


def hbar_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    values: Sequence[float | int],
    *,
    unit: str = "",
    label_chars: int = 22,
    empty_note: str = "データがありません",
) -> Markup:
    """Horizontal bars, one per label (rankings: top questions, categories)."""
    row_h, label_w, plot_top = 26, 300, 12
    height = plot_top + row_h * max(len(labels), 1) + 12
    integer = all(float(v).is_integer() for v in values)
    top = nice_max(max([float(v) for v in values] + [0.0]), integer)
    summary = ", ".join(f"{label} {format_number(v, unit)}" for label, v in zip(labels, values, strict=True))
    parts = _open(chart_id, title, height, summary)
    plot_w = WIDTH - label_w - MARGIN_RIGHT - 60
    parts.append(f'<line x1="{label_w}" y1="{plot_top - 4}" x2="{label_w}" y2="{height - 8}" stroke="{AXIS}"/>')
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = plot_top + i * row_h
        shown = label if len(label) <= label_chars else label[: label_chars - 1] + "…"
        w = plot_w * float(value) / top
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" fill="{TEXT}">'
                     f'<title>{escape(label)}</title>{escape(shown)}</text>')
        parts.append(f'<rect class="kpi-bar" x="{label_w}" y="{y + 3}" width="{_num(max(w, 0))}" height="{row_h - 8}" '
                     f'fill="{PALETTE[0]}"><title>{escape(f"{label}: {format_number(value, unit)}")}</title></rect>')
        parts.append(f'<text x="{_num(label_w + w + 6)}" y="{y + 15}" fill="{TEXT}">{escape(format_number(value, unit))}</text>')
    if not labels:
        parts += _empty_note(height, empty_note)
    parts.append("</svg>")
    return Markup("".join(parts))
