"""Charts as inline SVG strings: line, time-column, bar and histogram, with axes, ticks, a legend,
level lines and hover titles. No script and no external resource, so the page opens offline and
an injected string can do nothing: every text goes through `html.escape`.

Each chart is `<svg class="chart" data-chart="<id>">`; each series a `<g data-series="<name>">`
carrying `data-points` (line) or `data-total` (columns, bars), the numbers tests compare with the store.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

# Okabe-Ito: tells series apart for colour-blind readers too
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
WARNING = "#E69F00"
CRITICAL = "#C0392B"
_AXIS = "#555"
_GRID = "#e3e3e3"
_CHAR_PX = 6.6  # average glyph width at the 11 px the charts use, for laying out labels
_TIME_STEPS = (
    10,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10_800,
    21_600,
    43_200,
    86_400,
    2 * 86_400,
    7 * 86_400,
    14 * 86_400,
    30 * 86_400,
)


@dataclass(frozen=True)
class Series:
    """A line: (x, y) points; x in epoch seconds on a time axis. Points further apart than
    `max_gap` on x are not joined: no data in between is drawn as no line."""

    name: str
    points: Sequence[tuple[float, float]]
    color: str
    max_gap: float | None = None


@dataclass(frozen=True)
class Level:
    """A horizontal threshold line, e.g. a drawdown alert level."""

    name: str
    value: float
    color: str
    unit: str = ""

    def label(self) -> str:
        return f"{self.name} {format_number(self.value)}{self.unit}"


@dataclass(frozen=True)
class Mark:
    """A point of interest on a line chart (e.g. a guard alert), with its hover text."""

    x: float
    y: float
    label: str
    color: str


@dataclass(frozen=True)
class Bars:
    """One series of a column or bar chart: a value per bucket or category."""

    name: str
    values: Sequence[float]
    color: str


@dataclass(frozen=True)
class Box:
    """The canvas and the plot area inside its margins."""

    width: int
    height: int
    left: int = 64
    right: int = 16
    top: int = 30
    bottom: int = 34

    @property
    def x0(self) -> float:
        return float(self.left)

    @property
    def x1(self) -> float:
        return float(self.width - self.right)

    @property
    def y0(self) -> float:  # the bottom of the plot (SVG y grows downwards)
        return float(self.height - self.bottom)

    @property
    def y1(self) -> float:
        return float(self.top)


def esc(text: object) -> str:
    """Text or attribute value, escaped (quotes too)."""
    return html.escape(str(text), quote=True)


def _f(value: float) -> str:
    """A coordinate, short (a few hundred points per chart keep the page small)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def format_number(value: float, step: float | None = None) -> str:
    """Thousands separated; as many decimals as `step` (a tick interval) needs, else up to 2."""
    if step is not None and step > 0:
        decimals = max(0, -math.floor(math.log10(step) + 1e-9))
        if abs(step * 10**decimals - round(step * 10**decimals)) > 1e-6:
            decimals += 1
    else:
        decimals = 0 if abs(value) >= 1000 or float(value).is_integer() else 2
    text = f"{value:,.{decimals}f}"
    return "0" if text in ("-0", "-0.0", "-0.00") else text


def nice_ticks(lo: float, hi: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 × 10^n apart) covering [lo, hi]; whole numbers only for counts."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    multiples = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = next(m * magnitude for m in multiples if m * magnitude >= raw)
    step = max(1.0, round(step)) if integer else step
    first = math.ceil(lo / step - 1e-9) * step
    ticks: list[float] = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(0.0 if abs(value) < step * 1e-9 else value)
        value = first + len(ticks) * step
    return ticks


def time_ticks(lo: float, hi: float, max_ticks: int = 8) -> list[tuple[float, str]]:
    """Tick times on round UTC boundaries and their labels (dates only once steps are days)."""
    span = hi - lo
    if span <= 0:
        return []
    step = next((s for s in _TIME_STEPS if span / s <= max_ticks), _TIME_STEPS[-1])
    first = math.ceil(lo / step) * step
    if step >= 86_400:
        pattern = "%b %d"
    elif span > 86_400:
        pattern = "%b %d %H:%M"
    else:
        pattern = "%H:%M:%S" if step < 60 else "%H:%M"
    ticks: list[tuple[float, str]] = []
    at = float(first)
    while at <= hi:
        ticks.append((at, datetime.fromtimestamp(at, UTC).strftime(pattern)))
        at += step
    return ticks


def format_span(lo: float, hi: float) -> str:
    """A bucket as hover text: `Nov 20 08:15 – 08:30`."""
    start, end = datetime.fromtimestamp(lo, UTC), datetime.fromtimestamp(hi, UTC)
    seconds = "%S" if start.second or end.second else ""
    head = start.strftime("%b %d %H:%M" + (":" + seconds if seconds else ""))
    tail = end.strftime("%H:%M" + (":" + seconds if seconds else ""))
    return f"{head} – {tail} UTC"


class _Scale:
    """A linear map from data to pixels."""

    def __init__(self, lo: float, hi: float, p0: float, p1: float) -> None:
        self.lo, self.hi, self.p0, self.p1 = lo, hi, p0, p1

    def __call__(self, value: float) -> float:
        if self.hi == self.lo:
            return (self.p0 + self.p1) / 2
        return self.p0 + (value - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)


def _padded(values: Sequence[float], include: Sequence[float] = ()) -> tuple[float, float]:
    """A y range around the values (and `include`), with a little headroom."""
    every = [v for v in (*values, *include) if math.isfinite(v)]
    if not every:
        return 0.0, 1.0
    lo, hi = min(every), max(every)
    if hi == lo:
        pad = abs(hi) * 0.01 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.08
    return (lo if lo in include else lo - pad), hi + pad


def _open(chart_id: str, title: str, box: Box) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{esc(chart_id)}" '
        f'viewBox="0 0 {box.width} {box.height}" width="{box.width}" height="{box.height}" role="img" '
        f'aria-label="{esc(title)}">',
        f"<title>{esc(title)}</title>",
    ]


def _y_axis(parts: list[str], scale: _Scale, ticks: list[float], box: Box, label: str) -> None:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else None
    for tick in ticks:
        y = scale(tick)
        if box.y1 - 0.5 <= y <= box.y0 + 0.5:
            parts.append(
                f'<line x1="{_f(box.x0)}" x2="{_f(box.x1)}" y1="{_f(y)}" y2="{_f(y)}" stroke="{_GRID}"/>'
                f'<text x="{_f(box.x0 - 6)}" y="{_f(y + 4)}" text-anchor="end" class="tick">'
                f"{esc(format_number(tick, step))}</text>"
            )
    middle = (box.y0 + box.y1) / 2
    parts.append(
        f'<text transform="translate(12 {_f(middle)}) rotate(-90)" text-anchor="middle" class="axis-label">'
        f"{esc(label)}</text>"
    )


def _x_time_axis(parts: list[str], scale: _Scale, lo: float, hi: float, box: Box) -> None:
    ticks = time_ticks(lo, hi, max_ticks=max(2, int((box.x1 - box.x0) / 110)))
    for at, label in ticks:
        x = scale(at)
        parts.append(
            f'<line x1="{_f(x)}" x2="{_f(x)}" y1="{_f(box.y0)}" y2="{_f(box.y0 + 4)}" stroke="{_AXIS}"/>'
            f'<text x="{_f(x)}" y="{_f(box.y0 + 17)}" text-anchor="middle" class="tick">{esc(label)}</text>'
        )
    parts.append(f'<text x="{_f(box.x1)}" y="{_f(box.y0 + 30)}" text-anchor="end" class="axis-label">UTC</text>')


def _frame_lines(parts: list[str], box: Box) -> None:
    parts.append(
        f'<line x1="{_f(box.x0)}" x2="{_f(box.x1)}" y1="{_f(box.y0)}" y2="{_f(box.y0)}" stroke="{_AXIS}"/>'
        f'<line x1="{_f(box.x0)}" x2="{_f(box.x0)}" y1="{_f(box.y1)}" y2="{_f(box.y0)}" stroke="{_AXIS}"/>'
    )


def _legend(parts: list[str], entries: Sequence[tuple[str, str, bool]], box: Box) -> None:
    """Swatches right-aligned above the plot; (name, colour, dashed)."""
    x = box.x1
    items: list[str] = []
    for name, color, dashed in reversed(entries):
        width = len(name) * _CHAR_PX
        x -= width
        items.append(f'<text x="{_f(x)}" y="{_f(box.y1 - 10)}" class="legend">{esc(name)}</text>')
        x -= 20
        dash = ' stroke-dasharray="5 3"' if dashed else ""
        items.append(
            f'<line x1="{_f(x)}" x2="{_f(x + 15)}" y1="{_f(box.y1 - 14)}" y2="{_f(box.y1 - 14)}" '
            f'stroke="{esc(color)}" stroke-width="3"{dash}/>'
        )
        x -= 14
    parts.append('<g class="legend">' + "".join(items) + "</g>")


def _finish(
    parts: list[str], box: Box, *, empty: bool, empty_text: str, legend: Sequence[tuple[str, str, bool]] = ()
) -> str:
    """Every chart's ending: the no-data note when there is nothing to draw, a legend when more than
    one thing is drawn, the closing tag."""
    if empty:
        _no_data(parts, box, empty_text)
    if len(legend) > 1:
        _legend(parts, legend, box)
    parts.append("</svg>")
    return "".join(parts)


def _no_data(parts: list[str], box: Box, text: str) -> None:
    parts.append(
        f'<text x="{_f((box.x0 + box.x1) / 2)}" y="{_f((box.y0 + box.y1) / 2)}" text-anchor="middle" '
        f'class="no-data">{esc(text)}</text>'
    )


def _segments(points: Sequence[tuple[float, float]], max_gap: float | None) -> list[list[tuple[float, float]]]:
    ordered = sorted(p for p in points if math.isfinite(p[1]))
    runs: list[list[tuple[float, float]]] = []
    for point in ordered:
        if runs and (max_gap is None or point[0] - runs[-1][-1][0] <= max_gap):
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs


def line_chart(
    chart_id: str,
    title: str,
    series: Sequence[Series],
    *,
    x_range: tuple[float, float],
    y_label: str,
    levels: Sequence[Level] = (),
    marks: Sequence[Mark] = (),
    y_include: Sequence[float] = (),
    integer: bool = False,
    box: Box | None = None,
    empty_text: str = "no data in this period",
) -> str:
    """Lines over time, level lines (those beyond the data's range are named, not drawn:
    stretching the axis to a distant alert level would flatten the line into it)."""
    box = box or Box(960, 260)
    values = [y for s in series for _, y in s.points if math.isfinite(y)]
    lo, hi = _padded(values + [m.y for m in marks], y_include)
    x = _Scale(x_range[0], x_range[1], box.x0, box.x1)
    y = _Scale(lo, hi, box.y0, box.y1)
    parts = _open(chart_id, title, box)
    _y_axis(parts, y, nice_ticks(lo, hi, integer=integer), box, y_label)
    _x_time_axis(parts, x, *x_range, box)
    _frame_lines(parts, box)
    beyond = [level for level in levels if not lo <= level.value <= hi]
    for level in levels:
        if level in beyond:
            continue
        ly = y(level.value)
        parts.append(
            f'<g class="level" data-level="{esc(level.name)}" data-value="{level.value:g}">'
            f'<line x1="{_f(box.x0)}" x2="{_f(box.x1)}" y1="{_f(ly)}" y2="{_f(ly)}" stroke="{esc(level.color)}" '
            f'stroke-width="1.5" stroke-dasharray="6 4"/>'
            f'<text x="{_f(box.x1 - 4)}" y="{_f(ly - 4)}" text-anchor="end" class="level-label" '
            f'fill="{esc(level.color)}">{esc(level.label())}</text></g>'
        )
    if beyond:
        names = ", ".join(f"{lv.label()} ({'above' if lv.value > hi else 'below'} this scale)" for lv in beyond)
        parts.append(f'<text x="{_f(box.x0)}" y="{_f(box.y1 - 10)}" class="level-label off-scale">{esc(names)}</text>')
    for s in series:
        runs = _segments(s.points, s.max_gap)
        shapes: list[str] = []
        for run in runs:
            if len(run) == 1:
                px, py = run[0]
                shapes.append(f'<circle cx="{_f(x(px))}" cy="{_f(y(py))}" r="2.5" fill="{esc(s.color)}"/>')
            else:
                coords = " ".join(f"{_f(x(px))},{_f(y(py))}" for px, py in run)
                shapes.append(
                    f'<polyline points="{coords}" fill="none" stroke="{esc(s.color)}" stroke-width="1.8" '
                    'stroke-linejoin="round"/>'
                )
        count = sum(len(run) for run in runs)
        parts.append(f'<g class="series" data-series="{esc(s.name)}" data-points="{count}">{"".join(shapes)}</g>')
    for mark in marks:
        mx, my = x(mark.x), y(mark.y)
        parts.append(
            f'<path class="mark" d="M{_f(mx)},{_f(my - 6)} L{_f(mx + 5)},{_f(my + 3)} L{_f(mx - 5)},{_f(my + 3)} Z" '
            f'fill="{esc(mark.color)}" stroke="#fff" stroke-width="0.8"><title>{esc(mark.label)}</title></path>'
        )
    legend = [(s.name, s.color, False) for s in series]
    legend += [(lv.name, lv.color, True) for lv in levels if lv not in beyond]
    return _finish(parts, box, empty=not values, empty_text=empty_text, legend=legend)


def time_columns(
    chart_id: str,
    title: str,
    bars: Sequence[Bars],
    *,
    starts: Sequence[float],
    bucket_secs: float,
    x_range: tuple[float, float],
    y_label: str,
    box: Box | None = None,
    empty_text: str = "nothing happened in this period",
) -> str:
    """Counts per time bucket, the series side by side within each bucket."""
    box = box or Box(960, 240)
    top = max((v for b in bars for v in b.values), default=0.0)
    lo, hi = 0.0, max(1.0, top * 1.1)
    x = _Scale(x_range[0], x_range[1], box.x0, box.x1)
    y = _Scale(lo, hi, box.y0, box.y1)
    parts = _open(chart_id, title, box)
    _y_axis(parts, y, nice_ticks(lo, hi, integer=True), box, y_label)
    _x_time_axis(parts, x, *x_range, box)
    slot = max(1.0, x(x_range[0] + bucket_secs) - x(x_range[0]))
    inner = slot * 0.8 / max(1, len(bars))
    for index, series in enumerate(bars):
        rects: list[str] = []
        for start, value in zip(starts, series.values, strict=True):
            if value <= 0:
                continue
            left = x(start) + slot * 0.1 + index * inner
            right = min(left + max(inner, 1.0), box.x1)
            height = max(2.0, box.y0 - y(value))
            span = format_span(start, min(start + bucket_secs, x_range[1]))
            rects.append(
                f'<rect x="{_f(left)}" y="{_f(box.y0 - height)}" width="{_f(max(0.5, right - left))}" '
                f'height="{_f(height)}" fill="{esc(series.color)}">'
                f"<title>{esc(span)}: {esc(format_number(value))} {esc(series.name)}</title></rect>"
            )
        total = sum(series.values)
        parts.append(f'<g class="series" data-series="{esc(series.name)}" data-total="{total:g}">{"".join(rects)}</g>')
    _frame_lines(parts, box)
    legend = [(b.name, b.color, False) for b in bars]
    return _finish(parts, box, empty=top <= 0, empty_text=empty_text, legend=legend)


def bar_chart(
    chart_id: str,
    title: str,
    categories: Sequence[str],
    bars: Sequence[Bars],
    *,
    y_label: str,
    box: Box | None = None,
    empty_text: str = "nothing to show in this period",
) -> str:
    """Values per category (grouped series); negative values hang below the zero line."""
    box = box or Box(960, 280, bottom=70)
    values = [v for b in bars for v in b.values]
    lo, hi = _padded(values, (0.0,))
    x_slot = (box.x1 - box.x0) / max(1, len(categories))
    y = _Scale(lo, hi, box.y0, box.y1)
    parts = _open(chart_id, title, box)
    _y_axis(parts, y, nice_ticks(lo, hi), box, y_label)
    zero = y(0.0)
    inner = x_slot * 0.7 / max(1, len(bars))
    for index, series in enumerate(bars):
        rects: list[str] = []
        for position, (category, value) in enumerate(zip(categories, series.values, strict=True)):
            if value == 0:
                continue
            left = box.x0 + position * x_slot + x_slot * 0.15 + index * inner
            top, bottom = sorted((y(value), zero))
            rects.append(
                f'<rect x="{_f(left)}" y="{_f(top)}" width="{_f(max(1.0, inner - 1))}" '
                f'height="{_f(max(0.5, bottom - top))}" fill="{esc(series.color)}">'
                f"<title>{esc(category)}: {esc(series.name)} {esc(format_number(value))}</title></rect>"
            )
        parts.append(
            f'<g class="series" data-series="{esc(series.name)}" data-total="{sum(series.values):g}">'
            f"{''.join(rects)}</g>"
        )
    rotate = any(len(c) * _CHAR_PX > x_slot for c in categories)
    for position, category in enumerate(categories):
        cx = box.x0 + (position + 0.5) * x_slot
        transform = f' transform="rotate(-35 {_f(cx)} {_f(box.y0 + 14)})"' if rotate else ""
        anchor = "end" if rotate else "middle"
        parts.append(
            f'<text x="{_f(cx)}" y="{_f(box.y0 + 14)}" text-anchor="{anchor}"{transform} class="tick category">'
            f"{esc(category)}</text>"
        )
    parts.append(f'<line x1="{_f(box.x0)}" x2="{_f(box.x1)}" y1="{_f(zero)}" y2="{_f(zero)}" stroke="{_AXIS}"/>')
    _frame_lines(parts, box)
    legend = [(b.name, b.color, False) for b in bars]
    return _finish(parts, box, empty=not categories, empty_text=empty_text, legend=legend)


def histogram(
    chart_id: str,
    title: str,
    bins: Sequence[tuple[float, float | None, int]],
    *,
    x_label: str,
    y_label: str,
    color: str = PALETTE[0],
    box: Box | None = None,
    empty_text: str = "nothing to show in this period",
) -> str:
    """Counts per bin (lo, hi, count); a bin with hi None is the open-ended `≥ lo` tail."""
    box = box or Box(960, 260, bottom=44)
    top = max((count for _, _, count in bins), default=0)
    y = _Scale(0.0, max(1.0, top * 1.1), box.y0, box.y1)
    slot = (box.x1 - box.x0) / max(1, len(bins))
    parts = _open(chart_id, title, box)
    _y_axis(parts, y, nice_ticks(0.0, max(1.0, top * 1.1), integer=True), box, y_label)
    step = bins[0][1] - bins[0][0] if bins and bins[0][1] is not None else None
    rects: list[str] = []
    labels: list[str] = []
    every = max(1, math.ceil(len(bins) * 40 / (box.x1 - box.x0)))
    for position, (lo, hi, count) in enumerate(bins):
        left = box.x0 + position * slot
        name = f"≥ {format_number(lo, step)}" if hi is None else f"{format_number(lo, step)}–{format_number(hi, step)}"
        if count > 0:
            height = max(2.0, box.y0 - y(count))  # a single slipped fill among thousands stays visible
            rects.append(
                f'<rect x="{_f(left + 1)}" y="{_f(box.y0 - height)}" width="{_f(max(1.0, slot - 2))}" '
                f'height="{_f(height)}" fill="{esc(color)}"><title>{esc(name)}: {count:,}</title></rect>'
            )
        if hi is None or position % every == 0:
            text = name if hi is None else format_number(lo, step)
            anchor = "middle" if hi is None else "start"
            tx = left + slot / 2 if hi is None else left
            labels.append(
                f'<text x="{_f(tx)}" y="{_f(box.y0 + 16)}" text-anchor="{anchor}" class="tick">{esc(text)}</text>'
            )
    total = sum(count for _, _, count in bins)
    parts.append(f'<g class="series" data-series="{esc(y_label)}" data-total="{total}">{"".join(rects)}</g>')
    parts.extend(labels)
    parts.append(
        f'<text x="{_f((box.x0 + box.x1) / 2)}" y="{_f(box.y0 + 36)}" text-anchor="middle" class="axis-label">'
        f"{esc(x_label)}</text>"
    )
    _frame_lines(parts, box)
    return _finish(parts, box, empty=total == 0, empty_text=empty_text)
