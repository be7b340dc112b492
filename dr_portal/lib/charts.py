"""Server-drawn SVG line charts: no JavaScript, readable when printed.

    line_chart([("Restore duration", [(when, seconds), ...])], target=1800,
               y_format=format_duration, title="Restore duration vs RTO target")

Points are (datetime or number, number); None values are gaps. A target draws a
dashed horizontal line; points above it are drawn in the "bad" colour.
"""

from datetime import datetime
from html import escape

from django.utils.safestring import SafeString, mark_safe

COLOURS = ["#2b5cab", "#1a7f37", "#8e44ad", "#b7791f", "#555"]
BAD = "#c62828"


def _x_value(x):
    return x.timestamp() if isinstance(x, datetime) else float(x)


def _x_label(x):
    return x.strftime("%d %b") if isinstance(x, datetime) else f"{x:g}"


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
    pad_l, pad_r, pad_t, pad_b = 64, 16, 24 if title else 10, 28
    points = [(x, y) for _, pts in series for x, y in pts if y is not None]
    if not points:
        return mark_safe(
            f'<svg class="chart" viewBox="0 0 {width} 40" role="img" aria-label="{escape(title)}">'
            f'<text x="8" y="24" fill="#667" font-size="13">No data yet.</text></svg>'
        )
    xs = [_x_value(x) for x, _ in points]
    ys = [y for _, y in points] + ([target] if target is not None else [])
    x_min, x_max = min(xs), max(xs)
    y_min, y_max = 0.0, max(ys) * 1.1 or 1.0
    if x_max == x_min:
        x_min, x_max = x_min - 1, x_max + 1

    def sx(x):
        return pad_l + (_x_value(x) - x_min) / (x_max - x_min) * (width - pad_l - pad_r)

    def sy(y):
        return pad_t + (1 - (y - y_min) / (y_max - y_min)) * (height - pad_t - pad_b)

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" font-size="11">'
    ]
    if title:
        parts.append(
            f'<text x="{pad_l}" y="14" font-size="12" font-weight="600">{escape(title)}</text>'
        )
    for frac in (0, 0.5, 1):
        value = y_min + frac * (y_max - y_min)
        y = sy(value)
        parts.append(
            f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6ee"/>'
        )
        parts.append(
            f'<text x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#667">'
            f"{escape(y_format(value))}</text>"
        )
    first, last = (
        min(points, key=lambda p: _x_value(p[0])),
        max(points, key=lambda p: _x_value(p[0])),
    )
    for x, anchor in ((first[0], "start"), (last[0], "end")):
        parts.append(
            f'<text x="{sx(x):.1f}" y="{height - 8}" text-anchor="{anchor}" fill="#667">'
            f"{escape(_x_label(x))}</text>"
        )
    if target is not None:
        y = sy(target)
        parts.append(
            f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{BAD}" stroke-dasharray="6 4"/>'
            f'<text x="{width - pad_r}" y="{y - 4:.1f}" text-anchor="end" fill="{BAD}">'
            f"{escape(target_label)} {escape(y_format(target))}</text>"
        )
    for index, (label, pts) in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        pts = sorted((p for p in pts if p[1] is not None), key=lambda p: _x_value(p[0]))
        if len(pts) > 1:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>'
            )
        for x, y in pts:
            dot = BAD if target is not None and y > target else colour
            parts.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{dot}">'
                f"<title>{escape(label)}: {escape(y_format(y))} ({escape(_x_label(x))})</title></circle>"
            )
        parts.append(
            f'<text x="{pad_l + 8 + index * 150}" y="{pad_t + 12}" fill="{colour}">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))
