"""The report's charts as inline SVG: bars, a Pareto (bars sorted with their cumulative
share), a histogram with its percentiles marked, and output by hour against the plan.

Plain SVG written here rather than a plotting library: a page and a PDF need nothing
else (no script, no file beside them), WeasyPrint draws it as it is, and a Pi keeps its
memory. Every text is escaped; words come in already in the report's language.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

__all__ = ["OutputWords", "hbars", "histogram", "output", "pareto"]

BAR = "#3b6fc4"
LINE = "#d0582b"
PLAN = "#5a5a5a"
GRID = "#dddddd"
INK = "#333333"
FONT = "Noto Sans CJK SC, Noto Sans SC, Source Han Sans SC, WenQuanYi Micro Hei, sans-serif"

ValueText = Callable[[float], str]


def _svg(width: float, height: float, body: list[str], title: str) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width:g}" '
        f'height="{height:g}" viewBox="0 0 {width:g} {height:g}" role="img" '
        f'aria-label="{escape(title)}" font-family="{FONT}" font-size="10" fill="{INK}">'
    )
    return Markup(head + f"<title>{escape(title)}</title>" + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, anchor: str = "middle", **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'


def _short(label: str, chars: int) -> str:
    return label if len(label) <= chars else label[: chars - 1] + "…"


def _empty(width: float, height: float, title: str, nothing: str) -> Markup:
    return _svg(width, height, [_text(width / 2, height / 2, nothing, fill="#888888")], title)


def hbars(
    items: Sequence[tuple[str, float | None]],
    *,
    title: str,
    nothing: str,
    value_text: ValueText,
    max_value: float | None = None,
    width: float = 640,
) -> Markup:
    """One horizontal bar per item, its value written after it (None: no bar, "–")."""
    if not items:
        return _empty(width, 60, title, nothing)
    row, left, right = 20.0, 110.0, 70.0
    height = row * len(items) + 10
    top = max([v for _, v in items if v is not None] + [max_value or 0.0, 1e-9])
    span = width - left - right
    body = []
    for i, (label, value) in enumerate(items):
        y = 5 + i * row
        body.append(_text(left - 6, y + 13, _short(label, 16), "end"))
        if value is None:
            body.append(_text(left + 4, y + 13, "–", "start"))
            continue
        w = max(0.0, span * value / top)
        body.append(
            f'<rect x="{left:.1f}" y="{y + 3:.1f}" width="{w:.1f}" height="{row - 6:.1f}" '
            f'fill="{BAR}"/>'
        )
        body.append(_text(left + w + 4, y + 13, value_text(value), "start"))
    return _svg(width, height, body, title)


def pareto(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    nothing: str,
    value_text: ValueText,
    other: str,
    width: float = 640,
    height: float = 220,
    most: int = 10,
) -> Markup:
    """Bars from the largest down, the rest as ``other``; the line is the cumulative share
    of the total, on the right-hand axis (0 to 100 %), with the 80 % mark dashed."""
    ranked = sorted(((k, v) for k, v in items if v > 0), key=lambda kv: (-kv[1], kv[0]))
    if not ranked:
        return _empty(width, 60, title, nothing)
    if len(ranked) > most:
        rest = sum(v for _, v in ranked[most - 1 :])
        ranked = [*ranked[: most - 1], (other, rest)]
    total = sum(v for _, v in ranked)
    left, right, top, bottom = 50.0, 40.0, 16.0, 34.0
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / len(ranked)
    biggest = ranked[0][1]
    chars = max(3, int(slot / 7))
    body = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        f'stroke="{INK}"/>',
        f'<line x1="{left + plot_w}" y1="{top}" x2="{left + plot_w}" y2="{top + plot_h}" '
        f'stroke="{GRID}"/>',
    ]
    for share in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - share)
        body.append(_text(left + plot_w + 4, y + 3, f"{share * 100:.0f}%", "start"))
    y80 = top + plot_h * 0.2
    body.append(
        f'<line x1="{left}" y1="{y80:.1f}" x2="{left + plot_w}" y2="{y80:.1f}" '
        f'stroke="{LINE}" stroke-dasharray="3 3" stroke-width="0.6"/>'
    )
    points, running = [], 0.0
    bar = min(slot * 0.7, 56.0)  # two causes still look like bars, not like walls
    for i, (label, value) in enumerate(ranked):
        x = left + i * slot
        h = plot_h * value / biggest
        body.append(
            f'<rect x="{x + (slot - bar) / 2:.1f}" y="{top + plot_h - h:.1f}" '
            f'width="{bar:.1f}" height="{h:.1f}" fill="{BAR}"/>'
        )
        body.append(_text(x + slot / 2, top + plot_h - h - 3, value_text(value)))
        body.append(_text(x + slot / 2, top + plot_h + 13, _short(label, chars)))
        running += value
        points.append((x + slot / 2, top + plot_h * (1 - running / total)))
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    body.append(f'<polyline points="{path}" fill="none" stroke="{LINE}" stroke-width="1.5"/>')
    body.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.2" fill="{LINE}"/>' for x, y in points)
    return _svg(width, height, body, title)


def histogram(
    values: Sequence[float],
    *,
    title: str,
    nothing: str,
    edge_text: ValueText,
    marks: Sequence[tuple[str, float]],
    bins: int = 12,
    width: float = 640,
    height: float = 200,
) -> Markup:
    """Equal-width bins from 0 to the largest value; each mark a dashed line, named."""
    if not values:
        return _empty(width, 60, title, nothing)
    hi = max(max(values), 1.0)
    step = hi / bins
    counts = [0] * bins
    for v in values:
        counts[min(int(v / step), bins - 1)] += 1
    left, right, top, bottom = 36.0, 40.0, 16.0 + 11 * len(marks), 30.0
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / bins
    tallest = max(counts)
    body = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        f'stroke="{INK}"/>'
    ]
    for i, n in enumerate(counts):
        h = plot_h * n / tallest
        x = left + i * slot
        body.append(
            f'<rect x="{x + 1:.1f}" y="{top + plot_h - h:.1f}" width="{slot - 2:.1f}" '
            f'height="{h:.1f}" fill="{BAR}"/>'
        )
        if n:
            body.append(_text(x + slot / 2, top + plot_h - h - 3, str(n)))
    for i in range(0, bins + 1, 3):
        body.append(_text(left + i * slot, top + plot_h + 13, edge_text(i * step)))
    for j, (name, at) in enumerate(marks):
        # Each mark's name on a line of its own above the bars: p90 and p99 are often close.
        x = left + plot_w * min(at / hi, 1.0)
        y = 12 + 11 * j
        body.append(
            f'<line x1="{x:.1f}" y1="{y + 2}" x2="{x:.1f}" y2="{top + plot_h}" '
            f'stroke="{LINE}" stroke-dasharray="4 2"/>'
        )
        body.append(_text(x + 3, y, name, "start", fill=LINE))
    return _svg(width, height, body, title)


@dataclass(frozen=True, slots=True)
class OutputWords:
    title: str
    nothing: str
    per_slot: str  # the bars: units in each hour (or day)
    cumulative: str
    plan: str


def output(
    slots: Sequence[tuple[str, int]],
    planned: int | None,
    words: OutputWords,
    *,
    width: float = 640,
    height: float = 220,
) -> Markup:
    """Units made in each slot (bars, left axis) and the running total against the plan
    (lines, right axis): the plan is drawn as an even pace from 0 to ``planned``."""
    if not slots:
        return _empty(width, 60, words.title, words.nothing)
    left, right, top, bottom = 36.0, 44.0, 26.0, 30.0
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / len(slots)
    tallest = max([n for _, n in slots] + [1])
    total = sum(n for _, n in slots)
    scale = max(total, planned or 0, 1)
    base = top + plot_h
    body = [f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}" stroke="{INK}"/>']
    body.append(_text(left - 4, top + 3, str(tallest), "end"))
    body.append(_text(left + plot_w + 4, top + 3, str(scale), "start", fill=LINE))
    every = max(1, len(slots) // 12)
    running, points = 0, [(left, base)]
    for i, (label, n) in enumerate(slots):
        x = left + i * slot
        h = plot_h * n / tallest
        body.append(
            f'<rect x="{x + slot * 0.15:.1f}" y="{base - h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}" fill="{BAR}"/>'
        )
        if i % every == 0:
            body.append(_text(x + slot / 2, base + 13, label))
        running += n
        points.append((x + slot, base - plot_h * running / scale))
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    body.append(f'<polyline points="{path}" fill="none" stroke="{LINE}" stroke-width="1.6"/>')
    if planned:
        y = base - plot_h * planned / scale
        body.append(
            f'<line x1="{left}" y1="{base}" x2="{left + plot_w:.1f}" y2="{y:.1f}" '
            f'stroke="{PLAN}" stroke-dasharray="5 3" stroke-width="1.2"/>'
        )
    legend = [(BAR, words.per_slot), (LINE, words.cumulative)]
    if planned:
        legend.append((PLAN, words.plan))
    x = left
    for color, name in legend:
        body.append(f'<rect x="{x:.1f}" y="6" width="10" height="8" fill="{color}"/>')
        body.append(_text(x + 14, 14, name, "start"))
        x += 24 + 7 * len(name) + (6 * sum(1 for c in name if ord(c) > 0x2E80))
    return _svg(width, height, body, words.title)
