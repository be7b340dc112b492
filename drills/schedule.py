"""Drill dates from a recurrence rule (RFC 5545 RRULE via dateutil), a local time and a zone.

Plain Python, no Django. Cron cannot say "first Friday of each quarter" (its day-of-month and
day-of-week fields are OR-ed), an RRULE can: FREQ=MONTHLY;BYMONTH=1,4,7,10;BYDAY=1FR.

The rule is evaluated on the wall clock of the plan's time zone (naive local datetimes), and
each occurrence is then given that zone, so "10:00 Europe/Berlin" stays 10:00 across DST.

Every evaluation is bounded. dateutil checks UNTIL only when a date matches, so a rule that
never matches (FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30) scans day by day to the year 9999: seconds
per call. Rules are refused at validation unless they have a date in the next HORIZON_YEARS,
and a rule already stored gets a scan budget (see _CappedRule) instead of a hang.
"""

import functools
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.relativedelta import relativedelta
from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, rrulestr

DEFAULT_RULE = "FREQ=MONTHLY;BYMONTH=1,4,7,10;BYDAY=1FR"
DEFAULT_TIME = time(10, 0)
ALLOWED_FREQ = {YEARLY, MONTHLY, WEEKLY, DAILY}
# The time of day comes from the plan's own field, the anchor from the plan: not from the rule.
FORBIDDEN_PARTS = ("DTSTART", "TZID", "BYHOUR", "BYMINUTE", "BYSECOND")
# A valid rule has a date within this many years; no evaluation scans further ahead.
HORIZON_YEARS = 10
# No evaluation scans more than this many months in all (plan age included).
MAX_SCAN_MONTHS = 12 * 60


class ScheduleError(ValueError):
    """The rule or zone is unusable; the message says what to write instead."""


class _ScanLimit(Exception):
    """An evaluation used up its scan budget before reaching its end."""


class _CappedRule(rrule):
    """A dateutil rule whose scan stops after a budget of months (years for YEARLY rules).

    dateutil rebuilds its calendar masks (_iterinfo.rebuild) once per new month or year it
    scans, and every rebuild reads rule._bynweekday once or twice: counting those reads is
    the only hook inside its loop, which never yields for a rule that does not match. If a
    dateutil release stops reading it there, rules are merely uncapped again, and
    tests/security/test_web_hardening.py (a stored never-matching rule) notices.
    """

    @property
    def _bynweekday(self):
        left = self.__dict__.get("_scan_left")
        if left is not None:
            if left <= 0:
                raise _ScanLimit
            self.__dict__["_scan_left"] = left - 1
        return self.__dict__["_bynweekday"]


def _scan(parsed: "_CappedRule", until: datetime):
    """Iterate `parsed` from its start, with a budget for scanning up to `until` (naive)."""
    start = parsed._dtstart
    if parsed._freq == YEARLY:
        periods = until.year - start.year + 1
    else:
        periods = (until.year - start.year) * 12 + until.month - start.month + 1
    periods = min(max(periods, 1), MAX_SCAN_MONTHS)
    parsed.__dict__["_scan_left"] = 2 * periods + 4  # one or two reads per rebuild
    try:
        yield from parsed
    except _ScanLimit:
        return
    finally:
        parsed.__dict__["_scan_left"] = None


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"{name!r} is not a known time zone; use a name like Europe/Berlin or UTC"
        ) from None


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
    if not isinstance(parsed, rrule):
        raise ScheduleError(f"Write a single recurrence rule, for example {DEFAULT_RULE}")
    parsed.__class__ = _CappedRule  # same layout, one counting property (see above)
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


def _after(parsed, cursor: datetime) -> datetime | None:
    """The first occurrence strictly after `cursor`, within HORIZON_YEARS of it."""
    horizon = cursor + relativedelta(years=HORIZON_YEARS)
    for found in _scan(parsed, horizon):
        if found > horizon:
            return None
        if found > cursor:
            return found
    return None


@functools.lru_cache(maxsize=256)
def _nothing_ahead(rule: str, start_time: time, tz: str, anchor: date, day: date) -> bool:
    """A rule with no date ahead costs its full budgeted scan once a day per process, not on
    every page that shows it."""
    return _after(build(rule, start_time, tz, anchor), datetime.combine(day, time.min)) is None


def next_dates(
    rule: str, start_time: time, tz: str, *, after: datetime, anchor: date, count: int = 4
) -> list[datetime]:
    """The next `count` occurrences strictly after `after` (aware, in the plan's zone)."""
    parsed = build(rule, start_time, tz, anchor)
    out: list[datetime] = []
    cursor = _local(after, tz)
    if _nothing_ahead(rule, start_time, tz, anchor, cursor.date()):
        return out
    for _ in range(count):
        found = _after(parsed, cursor)
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
    limit = _local(before, tz)
    last = None
    for found in _scan(parsed, limit):
        if found > limit:
            break
        last = found
    return _aware(last, tz) if last else None


def check_recurs(rule: str, start_time: time, tz: str, *, anchor: date, now: datetime) -> None:
    """Refuse a rule with no date in the next HORIZON_YEARS (30 February, an UNTIL passed)."""
    if not next_dates(rule, start_time, tz, after=now, anchor=anchor, count=1):
        raise ScheduleError(
            f"This rule has no date in the next {HORIZON_YEARS} years (for example, "
            "30 February never comes, or its UNTIL or COUNT has run out): write one that "
            f"does, like {DEFAULT_RULE}"
        )


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
