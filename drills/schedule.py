"""Drill dates from a recurrence rule (RFC 5545 RRULE via dateutil), a local time and a zone.

Plain Python, no Django. Cron cannot say "first Friday of each quarter" (its day-of-month and
day-of-week fields are OR-ed), an RRULE can: FREQ=MONTHLY;BYMONTH=1,4,7,10;BYDAY=1FR.

The rule is evaluated on the wall clock of the plan's time zone (naive local datetimes), and
each occurrence is then given that zone, so "10:00 Europe/Berlin" stays 10:00 across DST.
"""

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrulestr

DEFAULT_RULE = "FREQ=MONTHLY;BYMONTH=1,4,7,10;BYDAY=1FR"
DEFAULT_TIME = time(10, 0)
ALLOWED_FREQ = {YEARLY, MONTHLY, WEEKLY, DAILY}
# The time of day comes from the plan's own field, the anchor from the plan: not from the rule.
FORBIDDEN_PARTS = ("DTSTART", "TZID", "BYHOUR", "BYMINUTE", "BYSECOND")
# Far enough to find "the previous occurrence" of a yearly rule without scanning forever.
MAX_SCAN = 2000


class ScheduleError(ValueError):
    """The rule or zone is unusable; the message says what to write instead."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"{name!r} is not a known time zone; use a name like Europe/Berlin or UTC"
        ) from None


def zone_choices() -> list[tuple[str, str]]:
    names = sorted(available_timezones())
    return [(n, n) for n in names]


def normalise_rule(text: str) -> str:
    """Upper-case, no 'RRULE:' prefix, no spaces; refuse parts we set ourselves."""
    rule = "".join((text or "").split()).upper()
    if rule.startswith("RRULE:"):
        rule = rule[len("RRULE:") :]
    if not rule:
        raise ScheduleError("Write a recurrence rule, for example " + DEFAULT_RULE)
    for part in FORBIDDEN_PARTS:
        if part in rule:
            raise ScheduleError(
                f"Leave {part} out of the rule: the time of day and the time zone are set in "
                "their own fields."
            )
    return rule


def build(rule: str, start_time: time, tz: str, anchor: date):
    """The dateutil rule on the local wall clock, starting on `anchor` at `start_time`."""
    rule = normalise_rule(rule)
    zone(tz)
    try:
        parsed = rrulestr(rule, dtstart=datetime.combine(anchor, start_time))
    except (ValueError, TypeError) as exc:
        raise ScheduleError(
            f"Not a valid recurrence rule ({exc}); for example {DEFAULT_RULE}"
        ) from None
    freq = parsed._freq  # dateutil keeps it private; there is no public accessor
    if freq not in ALLOWED_FREQ:
        raise ScheduleError(
            "A drill repeats at most daily: use FREQ=DAILY, WEEKLY, MONTHLY or YEARLY."
        )
    return parsed


def _local(dt: datetime, tz: str) -> datetime:
    return dt.astimezone(zone(tz)).replace(tzinfo=None)


def _aware(naive: datetime, tz: str) -> datetime:
    return naive.replace(tzinfo=zone(tz))


def next_dates(
    rule: str, start_time: time, tz: str, *, after: datetime, anchor: date, count: int = 4
) -> list[datetime]:
    """The next `count` occurrences strictly after `after` (aware, in the plan's zone)."""
    parsed = build(rule, start_time, tz, anchor)
    out: list[datetime] = []
    cursor = _local(after, tz)
    for _ in range(count):
        found = parsed.after(cursor, inc=False)
        if found is None:
            break
        out.append(_aware(found, tz))
        cursor = found
    return out


def previous_date(
    rule: str, start_time: time, tz: str, *, before: datetime, anchor: date
) -> datetime | None:
    """The last occurrence at or before `before`, or None."""
    parsed = build(rule, start_time, tz, anchor)
    found = parsed.before(_local(before, tz), inc=True)
    return _aware(found, tz) if found else None


def occurrences_between(
    rule: str, start_time: time, tz: str, *, start: datetime, end: datetime, anchor: date
) -> list[datetime]:
    parsed = build(rule, start_time, tz, anchor)
    found = parsed.between(_local(start, tz), _local(end, tz), inc=True)
    return [_aware(f, tz) for f in found[:MAX_SCAN]]


def describe(rule: str) -> str:
    """A sentence for the common rules; the rule itself otherwise."""
    try:
        rule = normalise_rule(rule)
    except ScheduleError:
        return rule
    if rule == DEFAULT_RULE:
        return "First Friday of each quarter"
    return rule


def utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)
