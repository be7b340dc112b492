"""Durations as people write and read them, from hours down to the milliseconds of a small restore."""

from datetime import timedelta

import pytest

from dr_portal.lib.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    "value, text",
    [
        (None, "—"),
        (timedelta(0), "0s"),
        (timedelta(microseconds=300), "<1ms"),
        (timedelta(milliseconds=9), "9ms"),
        (timedelta(milliseconds=999, microseconds=600), "1.0s"),
        (timedelta(seconds=2.5), "2.5s"),
        (45, "45s"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(days=7, hours=3, minutes=5), "7d3h"),
        (timedelta(seconds=-90), "-1m30s"),
    ],
)
def test_format(value, text):
    assert format_duration(value) == text


@pytest.mark.parametrize(
    "text, value",
    [
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(minutes=90)),
        (" 7 D ", timedelta(days=7)),
        ("250ms", timedelta(milliseconds=250)),
        ("1m30s", timedelta(seconds=90)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_parse(text, value):
    assert parse_duration(text) == value


@pytest.mark.parametrize("text", ["", "soon", "15", "15x", "1h-5m", None])
def test_parse_refuses_what_is_not_a_duration(text):
    with pytest.raises(ValueError, match="is not a duration; write it like 15m"):
        parse_duration(text)


@pytest.mark.parametrize("value", [timedelta(milliseconds=9), timedelta(hours=4), 90])
def test_what_is_shown_reads_back(value):
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    assert parse_duration(format_duration(value)).total_seconds() == pytest.approx(seconds)
