"""Server-drawn SVG line charts: no JavaScript, readable when printed.

    line_chart([("Restore duration", [(when, seconds), ...])], target=1800,
               y_format=format_duration, title="Restore duration vs RTO target")

Points are (datetime or number, number); None values are gaps. A target draws a
dashed horizontal line; points above it are drawn in the "bad" colour.
"""

from dataclasses import dataclass
from datetime import datetime
from html import escape

from django.utils.safestring import SafeString, mark_safe

COLOURS = ["#2b5cab", "#1a7f37", "#8e44ad", "#b7791f", "#555"]
BAD = "#c62828"
LEGEND_CHAR_W = 7  # px per character at font-size 11, generously


def _x_value(x):
    return x.timestamp() if isinstance(x, datetime) else float(x)


def _x_label(x, fmt="%d %b"):
    return x.strftime(fmt) if isinstance(x, datetime) else f"{x:g}"


def _x_format(first, last) -> str:
    """Dates; with the time of day when the points are less than two days apart."""
    if isinstance(first, datetime) and (last - first).total_seconds() < 2 * 86400:
        return "%d %b %H:%M"
    return "%d %b"


@dataclass(frozen=True)
class _Frame:
    """The plot area and the scales from data values to SVG coordinates."""

    width: int
    height: int
    pad_l: int
    pad_r: int
    pad_t: int
    pad_b: int
    x_min: float
    x_max: float
    y_min: float
    y_max: float

    def sx(self, x) -> float:
        span = self.width - self.pad_l - self.pad_r
        return self.pad_l + (_x_value(x) - self.x_min) / (self.x_max - self.x_min) * span

    def sy(self, y) -> float:
        span = self.height - self.pad_t - self.pad_b
        return self.pad_t + (1 - (y - self.y_min) / (self.y_max - self.y_min)) * span


def _frame(points, target, title: str, width: int, height: int) -> _Frame:
    xs = [_x_value(x) for x, _ in points]
    ys = [y for _, y in points] + ([target] if target is not None else [])
    x_min, x_max = min(xs), max(xs)
    if x_max == x_min:
        x_min, x_max = x_min - 1, x_max + 1
    return _Frame(
        width, height, 64, 16, 24 if title else 10, 28, x_min, x_max, 0.0, max(ys) * 1.1 or 1.0
    )


def _grid(f: _Frame, y_format) -> list[str]:
    """Three horizontal grid lines (0, half, top), each value written once."""
    parts, shown = [], set()
    for frac in (0, 0.5, 1):
        value = f.y_min + frac * (f.y_max - f.y_min)
        y = f.sy(value)
        parts.append(
            f'<line x1="{f.pad_l}" x2="{f.width - f.pad_r}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#e3e6ee"/>'
        )
        text = y_format(value)
        if text not in shown:  # tiny ranges round to the same text ("<1ms" twice)
            shown.add(text)
            parts.append(
                f'<text x="{f.pad_l - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#667">'
                f"{escape(text)}</text>"
            )
    return parts


def _x_labels(f: _Frame, points) -> list[str]:
    """The first and last x values under the axis; one label, centred, for a single x."""
    first = min(points, key=lambda p: _x_value(p[0]))[0]
    last = max(points, key=lambda p: _x_value(p[0]))[0]
    fmt = _x_format(first, last)
    labels = ((first, "start"), (last, "end"))
    if _x_value(first) == _x_value(last) or _x_label(first, fmt) == _x_label(last, fmt):
        labels = ((first, "middle"),)
    return [
        f'<text x="{f.sx(x):.1f}" y="{f.height - 8}" text-anchor="{anchor}" fill="#667">'
        f"{escape(_x_label(x, fmt))}</text>"
        for x, anchor in labels
    ]


def _target_line(f: _Frame, target: float, target_label: str, y_format) -> str:
    y = f.sy(target)
    return (
        f'<line x1="{f.pad_l}" x2="{f.width - f.pad_r}" y1="{y:.1f}" y2="{y:.1f}" '
        f'stroke="{BAD}" stroke-dasharray="6 4"/>'
        f'<text x="{f.width - f.pad_r}" y="{y - 4:.1f}" text-anchor="end" fill="{BAD}">'
        f"{escape(target_label)} {escape(y_format(target))}</text>"
    )


def _series(f: _Frame, index: int, label: str, pts, target, y_format, legend_x) -> list[str]:
    """One series: its line, its dots (over the target in the bad colour) and its legend."""
    parts = []
    colour = COLOURS[index % len(COLOURS)]
    pts = sorted((p for p in pts if p[1] is not None), key=lambda p: _x_value(p[0]))
    if len(pts) > 1:
        path = " ".join(f"{f.sx(x):.1f},{f.sy(y):.1f}" for x, y in pts)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
    for x, y in pts:
        dot = BAD if target is not None and y > target else colour
        parts.append(
            f'<circle cx="{f.sx(x):.1f}" cy="{f.sy(y):.1f}" r="3" fill="{dot}">'
            f"<title>{escape(label)}: {escape(y_format(y))} ({escape(_x_label(x))})</title></circle>"
        )
    parts.append(
        f'<text x="{legend_x:.0f}" y="{f.pad_t + 12}" fill="{colour}">{escape(label)}</text>'
    )
    return parts


def line_chart(
    series,
    *,
    target: float | None = None,
    target_label: str = "target",
    y_format=lambda v: f"{v:g}",
    title: str = "",
    width: int = 640,
    height: int = 220,
) -> SafeString:
    """Render one or more series as an SVG string safe to put in a template."""
    points = [(x, y) for _, pts in series for x, y in pts if y is not None]
    if not points:
        return mark_safe(
            f'<svg class="chart" viewBox="0 0 {width} 40" role="img" aria-label="{escape(title)}">'
            f'<text x="8" y="24" fill="#667" font-size="13">No data yet.</text></svg>'
        )
    f = _frame(points, target, title, width, height)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" font-size="11">'
    ]
    if title:
        parts.append(
            f'<text x="{f.pad_l}" y="14" font-size="12" font-weight="600">{escape(title)}</text>'
        )
    parts += _grid(f, y_format)
    parts += _x_labels(f, points)
    if target is not None:
        parts.append(_target_line(f, target, target_label, y_format))
    legend_x = f.pad_l + 8
    for index, (label, pts) in enumerate(series):
        parts += _series(f, index, label, pts, target, y_format, legend_x)
        legend_x += max(150, len(label) * LEGEND_CHAR_W + 24)  # long names push the next one
    parts.append("</svg>")
    return mark_safe("".join(parts))
