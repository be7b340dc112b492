"""Server-drawn charts: no two labels overlap, also for a series of one point (issue 18)."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from dr_portal.lib.charts import line_chart
from dr_portal.lib.durations import format_duration

TEXT = re.compile(r'<text x="([\d.]+)" y="([\d.]+)"(?: text-anchor="(\w+)")?[^>]*>([^<]*)</text>')
CHAR_W, LINE_H, GAP = 6.5, 11, 3  # font-size 11: generous width per character, 3 px apart


def _boxes(svg: str):
    for x, y, anchor, text in TEXT.findall(svg):
        width = len(text) * CHAR_W
        left = float(x) - {"end": width, "middle": width / 2}.get(anchor, 0)
        yield text, (left, float(y) - LINE_H, left + width, float(y))


def _overlaps(svg: str) -> list[tuple[str, str]]:
    boxes = list(_boxes(svg))
    return [
        (a, b)
        for i, (a, (l1, t1, r1, b1)) in enumerate(boxes)
        for b, (l2, t2, r2, b2) in boxes[i + 1 :]
        if l1 < r2 + GAP and l2 < r1 + GAP and t1 < b2 and t2 < b1
    ]


WHEN = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "points, target",
    [
        ([(WHEN, 712.6)], None),
        ([(WHEN, 712.6)], 1800),
        ([(WHEN, 0.0004)], None),  # a tiny restore: grid values round to the same text
        ([(WHEN, 0.0)], 60),
        ([(WHEN, 30.0), (WHEN + timedelta(hours=3), 45.0)], 1800),  # same day
        ([(WHEN - timedelta(days=9), 30.0), (WHEN, 45.0)], 40),
    ],
)
def test_no_labels_overlap(points, target):
    svg = str(
        line_chart(
            [("Restore duration", points)],
            target=target,
            y_format=format_duration,
            title="Restore duration vs RTO target",
        )
    )
    assert _overlaps(svg) == []


def test_long_series_names_do_not_run_into_each_other():
    pts = [(WHEN, 10.0), (WHEN + timedelta(days=3), 20.0)]
    names = ["Simulate network failure (primary)", "Restore the database from S3", "Fastest"]
    svg = str(line_chart([(name, pts) for name in names], target=15))
    assert _overlaps(svg) == []


def test_one_point_has_one_centred_date_and_two_points_the_same_day_show_times():
    one = str(line_chart([("RTO", [(WHEN, 10.0)])], y_format=format_duration))
    assert one.count(">01 Mar 02:00</text>") == 1 and 'text-anchor="middle"' in one
    same_day = str(line_chart([("RTO", [(WHEN, 10.0), (WHEN + timedelta(hours=3), 12.0)])]))
    assert ">01 Mar 02:00</text>" in same_day and ">01 Mar 05:00</text>" in same_day
